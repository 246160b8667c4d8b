use crate::probe::{self, HttpProbe};
use crate::runtime::RunState;
use crate::runtime::bindings::GuestError;
use crate::runtime::bindings::firedrill::scenario::probes::{Host, HttpRequest, HttpResponse};
use crate::targets::Target;
use serde_json::json;
use std::time::Duration;

const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(300);

impl RunState {
    fn probe_address(&self, target: &str) -> Result<String, GuestError> {
        if self.ctx.is_describing() {
            return Err(GuestError::Unsupported(
                "probes cannot run inside describe()".into(),
            ));
        }
        match self.ctx.targets.get(target) {
            None => Err(GuestError::UnknownTarget(format!(
                "no target named `{target}`"
            ))),
            Some(t) => t.address().ok_or_else(|| {
                GuestError::Unsupported(format!("target `{target}` declares no `address` to probe"))
            }),
        }
    }
}

/// Run `fut` unless the run is stopped first.
async fn interruptible<T>(
    stop: tokio_util::sync::CancellationToken,
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, GuestError> {
    tokio::select! {
        r = fut => r.map_err(GuestError::Failed),
        _ = stop.cancelled() => Err(GuestError::Halted),
    }
}

/// What a `tcp-exchange` may send, and expect.
const MAX_EXCHANGE_BYTES: usize = 64 << 10;

fn timeout(ns: Option<u64>) -> Result<Duration, GuestError> {
    let t = ns
        .map(Duration::from_nanos)
        .unwrap_or(Duration::from_secs(5));
    if t > MAX_PROBE_TIMEOUT || t.is_zero() {
        return Err(GuestError::InvalidArgument(format!(
            "probe timeout must be within 1ns..=5m, got {}",
            humantime::format_duration(t)
        )));
    }
    Ok(t)
}

impl Host for RunState {
    async fn http(
        &mut self,
        target: String,
        request: HttpRequest,
    ) -> Result<HttpResponse, GuestError> {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        // Credentials never reach the timeline (it is shown, reported and
        // kept on disk); replay compares the masked form, which repeats.
        let shown_headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = crate::history::is_secret(k)
                    || ["authorization", "proxy-authorization", "cookie"]
                        .contains(&k.to_ascii_lowercase().as_str());
                let v = if secret {
                    crate::history::MASKED.to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect();
        let args = json!({"target": target, "method": request.method, "path": request.path, "headers": shown_headers, "body_len": request.body.len()});
        let prepared = (|| {
            let addr = self.probe_address(&target)?;
            if hyper::Method::from_bytes(request.method.as_bytes()).is_err() {
                return Err(GuestError::InvalidArgument(format!(
                    "`{}` is not an HTTP method",
                    request.method
                )));
            }
            if !request.path.starts_with('/') || request.path.parse::<hyper::Uri>().is_err() {
                return Err(GuestError::InvalidArgument(format!(
                    "`{}` is not a request path (start it with /)",
                    request.path
                )));
            }
            let probe = HttpProbe {
                method: request.method.clone(),
                path: request.path.clone(),
                headers: request.headers.clone(),
                body: request.body.clone(),
                timeout: timeout(request.timeout)?,
            };
            Ok((addr, probe))
        })();
        let stop = self.ctx.stop_token().clone();
        let result = match prepared {
            Err(e) => Err(e),
            Ok((addr, probe)) => {
                interruptible(stop, async move { probe::http(&addr, &probe).await })
                    .await
                    .map(|answer| HttpResponse {
                        status: answer.status,
                        headers: answer.headers,
                        body: answer.body,
                        latency: answer.latency.as_nanos() as u64,
                    })
            }
        };
        let summary = result.as_ref().map(
            |r| json!({"status": r.status, "latency_ns": r.latency, "body_len": r.body.len()}),
        );
        self.ctx.call("probes.http", args, &summary);
        result
    }

    async fn tcp_connect(
        &mut self,
        target: String,
        timeout_ns: Option<u64>,
    ) -> Result<u64, GuestError> {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        let prepared = self
            .probe_address(&target)
            .and_then(|a| Ok((a, timeout(timeout_ns)?)));
        let stop = self.ctx.stop_token().clone();
        let result = match prepared {
            Err(e) => Err(e),
            Ok((addr, t)) => interruptible(stop, async move { probe::tcp(&addr, t).await })
                .await
                .map(|d| d.as_nanos() as u64),
        };
        self.ctx
            .call("probes.tcp-connect", json!({"target": target}), &result);
        result
    }

    async fn tcp_exchange(
        &mut self,
        target: String,
        send: Vec<u8>,
        expect: Vec<u8>,
        timeout_ns: Option<u64>,
    ) -> Result<u64, GuestError> {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        let prepared = self.probe_address(&target).and_then(|a| {
            if send.len() > MAX_EXCHANGE_BYTES || expect.len() > MAX_EXCHANGE_BYTES {
                return Err(GuestError::InvalidArgument(format!(
                    "tcp-exchange sends and expects at most {MAX_EXCHANGE_BYTES} bytes, got {} and {}",
                    send.len(),
                    expect.len()
                )));
            }
            Ok((a, timeout(timeout_ns)?))
        });
        let stop = self.ctx.stop_token().clone();
        let result = match prepared {
            Err(e) => Err(e),
            Ok((addr, t)) => interruptible(stop, probe::tcp_exchange(&addr, &send, &expect, t))
                .await
                .map(|d| d.as_nanos() as u64),
        };
        let text = |b: &[u8]| crate::drill::elide(&String::from_utf8_lossy(b)).into_owned();
        self.ctx.call(
            "probes.tcp-exchange",
            json!({"target": target, "send": text(&send), "expect": text(&expect)}),
            &result,
        );
        result
    }

    async fn process_alive(&mut self, target: String) -> Result<bool, GuestError> {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        let result = match self.ctx.targets.get(&target) {
            None => Err(GuestError::UnknownTarget(format!(
                "no target named `{target}`"
            ))),
            Some(Target::Proxy(_) | Target::Remote(_) | Target::Host(_)) => Err(
                GuestError::Unsupported(format!("target `{target}` is a proxy, not a process")),
            ),
            Some(Target::Process(p)) => Ok(p.alive()),
        };
        self.ctx
            .call("probes.process-alive", json!({"target": target}), &result);
        result
    }
}
