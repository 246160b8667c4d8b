//! Remote proxies: the principal type is [`RemoteProxy`], a proxy that lives
//! on a server speaking Toxiproxy's HTTP API — `firedrill proxy serve`, or
//! Toxiproxy itself. A fault becomes one toxic per stream, made with
//! `POST /proxies/{proxy}/toxics` and reverted with `DELETE`.
//!
//! Two things keep a toxic from outliving the engine that made it:
//! - the ledger records the toxic names before they are made, so the next
//!   engine to open the data dir deletes them ([`delete_blocking`]);
//! - the toxics carry a lease the engine renews every quarter of its ttl;
//!   if the engine dies or hangs, `firedrill proxy serve` removes them once
//!   the lease expires (the dead-man's switch). Toxiproxy has no leases:
//!   drive it with `lease = "off"`.

use crate::drivers::proxy::Effect;
use crate::probe::HttpProbe;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;

/// Default lease: a dead engine's toxics go within this (plus the
/// server's 50 ms check period).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A `kind = "toxiproxy"` target as the drill declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSpec {
    /// The server's control API, `ip:port`.
    pub api: SocketAddr,
    /// The proxy's name on that server.
    pub proxy: String,
    /// The environment variable holding the API's bearer token.
    pub token_env: String,
    /// Lease ttl for the dead-man's switch; `None` drives a server without
    /// leases (Toxiproxy itself).
    pub lease: Option<Duration>,
    /// Take the lease sealed: the server leaves this engine's toxics out
    /// of its listings (`seal_toxics = true`, set for a game day's runs).
    pub seal: bool,
}

/// One toxic to make.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteToxic {
    /// Unique on the proxy.
    pub name: String,
    /// Toxic type.
    pub kind: &'static str,
    /// `upstream` or `downstream`.
    pub stream: &'static str,
    /// Attributes in Toxiproxy's units.
    pub attributes: Value,
    /// Share of connections.
    pub toxicity: f64,
}

/// The toxics that make `effect` happen, named `{base}-{stream}`; an error
/// for effects no Toxiproxy toxic expresses.
pub fn toxics_for(
    effect: &Effect,
    probability: f64,
    base: &str,
) -> Result<Vec<RemoteToxic>, String> {
    use crate::drivers::proxy::Direction;
    match effect {
        e if e.needs_http() => {
            return Err(format!(
                "{effect} is an HTTP fault; a Toxiproxy-API proxy carries TCP only"
            ));
        }
        Effect::Bandwidth { rate, .. } if *rate < 1000 => {
            return Err(format!(
                "a Toxiproxy-API proxy takes bandwidth in KB/s: {rate} B/s is below 1 KB/s"
            ));
        }
        _ => {}
    }
    let (kind, attributes) = crate::toxiproxy::toxic::describe(effect);
    let streams: &[&'static str] = match effect.direction() {
        // reset_peer resets both ends whichever stream carries it.
        _ if matches!(effect, Effect::ResetPeer { .. }) => &["downstream"],
        Some(Direction::Upstream) => &["upstream"],
        Some(Direction::Both) => &["upstream", "downstream"],
        Some(Direction::Downstream) | None => &["downstream"],
    };
    Ok(streams
        .iter()
        .map(|stream| RemoteToxic {
            name: format!("{base}-{stream}"),
            kind,
            stream,
            attributes: attributes.clone(),
            toxicity: probability,
        })
        .collect())
}

/// A proxy on a Toxiproxy-API server.
#[derive(Debug)]
pub struct RemoteProxy {
    name: String,
    spec: RemoteSpec,
    token: Option<String>,
    /// Where the proxy listens, as the server reports it.
    listen: String,
    /// The lease this target's toxics are made under.
    holder: Option<String>,
    heartbeat: Mutex<Option<AbortHandle>>,
}

impl RemoteProxy {
    /// Check the proxy exists and the token is accepted, take the lease and
    /// start renewing it.
    pub async fn start(name: &str, spec: &RemoteSpec) -> Result<Arc<RemoteProxy>, String> {
        let token = std::env::var(&spec.token_env)
            .ok()
            .filter(|t| !t.is_empty());
        let listen = lookup(name, spec, token.as_deref()).await?;
        let holder = spec.lease.map(|_| holder_name(name));
        let remote = Arc::new(RemoteProxy {
            name: name.to_string(),
            spec: spec.clone(),
            token,
            listen,
            holder,
            heartbeat: Mutex::new(None),
        });
        if let (Some(ttl), Some(holder)) = (spec.lease, &remote.holder) {
            let (status, body) = renew(spec, remote.token.as_deref(), holder, ttl).await?;
            if status == 404 || status == 405 {
                return Err(format!(
                    "target `{name}`: the server at {} has no leases, so it is not `firedrill proxy serve` (Toxiproxy itself?): set `lease = \"off\"` to drive it without the dead-man's switch",
                    spec.api
                ));
            }
            if status != 200 {
                return Err(format!(
                    "target `{name}`: the server at {} refused the lease ({status}): {}",
                    spec.api,
                    String::from_utf8_lossy(&body).trim()
                ));
            }
            let (spec, token) = (spec.clone(), remote.token.clone());
            let (holder, target) = (holder.clone(), name.to_string());
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(ttl / 4);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match renew(&spec, token.as_deref(), &holder, ttl).await {
                        Ok((200, _)) => {}
                        Ok((status, body)) => tracing::warn!(
                            target = %target,
                            "renewing lease {holder}: {status} {}",
                            String::from_utf8_lossy(&body).trim()
                        ),
                        Err(e) => tracing::warn!(target = %target, "renewing lease {holder}: {e}"),
                    }
                }
            });
            // Renewal stops when the target shuts down or is dropped.
            *remote.heartbeat.lock().unwrap() = Some(task.abort_handle());
        }
        Ok(remote)
    }

    /// Where clients and probes connect.
    pub fn address(&self) -> String {
        match self.listen.parse::<SocketAddr>() {
            Ok(mut a) if a.ip().is_unspecified() => {
                a.set_ip(if a.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
                a.to_string()
            }
            _ => self.listen.clone(),
        }
    }

    /// Its declaration.
    pub fn spec(&self) -> &RemoteSpec {
        &self.spec
    }

    /// The lease its toxics carry, if any.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref()
    }

    /// Make `toxics`; all or none.
    pub async fn add(&self, toxics: &[RemoteToxic]) -> Result<(), String> {
        for (i, t) in toxics.iter().enumerate() {
            let mut body = json!({
                "name": t.name,
                "type": t.kind,
                "stream": t.stream,
                "toxicity": t.toxicity,
                "attributes": t.attributes,
            });
            if let Some(h) = &self.holder {
                body["lease"] = json!(h);
            }
            let path = format!("/proxies/{}/toxics", self.spec.proxy);
            let made = call(
                self.spec.api,
                self.token.as_deref(),
                "POST",
                &path,
                Some(body),
            )
            .await
            .and_then(|(status, body)| match status {
                200 => Ok(()),
                _ => Err(format!(
                    "the server at {} refused toxic {} ({status}): {}",
                    self.spec.api,
                    t.name,
                    String::from_utf8_lossy(&body).trim()
                )),
            });
            if let Err(e) = made {
                let names: Vec<String> = toxics[..i].iter().map(|t| t.name.clone()).collect();
                let _ = self.remove(&names).await;
                return Err(format!("target `{}`: {e}", self.name));
            }
        }
        Ok(())
    }

    /// Delete toxics by name; ones already gone (the lease expired, an
    /// operator removed them) count as removed.
    pub async fn remove(&self, names: &[String]) -> Result<(), String> {
        remove(&self.spec, self.token.as_deref(), names).await
    }

    /// Stop renewing and end the lease (the server removes anything left
    /// under it).
    pub async fn shutdown(&self) {
        if let Some(h) = self.heartbeat.lock().unwrap().take() {
            h.abort();
        }
        if let Some(holder) = &self.holder {
            let _ = call(
                self.spec.api,
                self.token.as_deref(),
                "DELETE",
                &format!("/leases/{holder}"),
                None,
            )
            .await;
        }
    }
}

impl Drop for RemoteProxy {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.lock().unwrap().take() {
            h.abort();
        }
    }
}

async fn renew(
    spec: &RemoteSpec,
    token: Option<&str>,
    holder: &str,
    ttl: Duration,
) -> Result<(u16, Vec<u8>), String> {
    call(
        spec.api,
        token,
        "PUT",
        &format!("/leases/{holder}"),
        Some(json!({ "ttl": ttl.as_millis() as u64, "sealed": spec.seal })),
    )
    .await
}

/// A lease name unique to this engine process and target.
fn holder_name(target: &str) -> String {
    let clean: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "firedrill-{}-{clean}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// The proxy's listen address; a clear error when it is missing or the
/// server refuses us.
async fn lookup(name: &str, spec: &RemoteSpec, token: Option<&str>) -> Result<String, String> {
    let (status, body) = call(
        spec.api,
        token,
        "GET",
        &format!("/proxies/{}", spec.proxy),
        None,
    )
    .await
    .map_err(|e| {
        format!("target `{name}`: {e}: start `firedrill proxy serve` (or Toxiproxy) there first")
    })?;
    match status {
        200 => serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["listen"].as_str().map(str::to_string))
            .ok_or_else(|| {
                format!(
                    "target `{name}`: {} answered GET /proxies/{} without a `listen` address: is it a Toxiproxy API?",
                    spec.api, spec.proxy
                )
            }),
        401 | 403 => Err(format!(
            "target `{name}`: the server at {} refused the token ({status}): put the token `firedrill proxy serve` was started with in ${}",
            spec.api, spec.token_env
        )),
        404 => Err(format!(
            "target `{name}`: the server at {} has no proxy `{}`: create it first (POST /proxies, or `--config`)",
            spec.api, spec.proxy
        )),
        _ => Err(format!(
            "target `{name}`: GET /proxies/{} on {} answered {status}: {}",
            spec.proxy,
            spec.api,
            String::from_utf8_lossy(&body).trim()
        )),
    }
}

/// `firedrill check`: the server answers and has the proxy.
pub async fn check(name: &str, spec: &RemoteSpec) -> Result<(), String> {
    let token = std::env::var(&spec.token_env).ok();
    lookup(name, spec, token.as_deref()).await.map(drop)
}

async fn remove(spec: &RemoteSpec, token: Option<&str>, names: &[String]) -> Result<(), String> {
    let mut errors = Vec::new();
    for n in names {
        let path = format!("/proxies/{}/toxics/{n}", spec.proxy);
        match call(spec.api, token, "DELETE", &path, None).await {
            Ok((204 | 200 | 404, _)) => {}
            Ok((status, body)) => errors.push(format!(
                "DELETE {path} on {}: {status} {}",
                spec.api,
                String::from_utf8_lossy(&body).trim()
            )),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Delete toxics a dead engine left, from the ledger alone (recovery runs
/// outside any async runtime's reach, so it gets one of its own). A server
/// that no longer listens has lost its toxics with its memory.
pub fn delete_blocking(
    api: SocketAddr,
    proxy: &str,
    token_env: &str,
    names: &[String],
) -> Result<(), String> {
    let spec = RemoteSpec {
        api,
        proxy: proxy.to_string(),
        token_env: token_env.to_string(),
        lease: None,
        seal: false,
    };
    let names = names.to_vec();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let token = std::env::var(&spec.token_env).ok();
            match remove(&spec, token.as_deref(), &names).await {
                Err(e) if e.contains("Connection refused") => Ok(()),
                r => r,
            }
        })
    })
    .join()
    .map_err(|_| "the recovery thread panicked".to_string())?
}

/// One request to the API: status and body.
async fn call(
    api: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Vec<u8>), String> {
    let mut probe = HttpProbe::get(path);
    probe.method = method.to_string();
    probe.timeout = CALL_TIMEOUT;
    if let Some(t) = token {
        probe
            .headers
            .push(("authorization".into(), format!("Bearer {t}")));
    }
    if let Some(v) = body {
        probe
            .headers
            .push(("content-type".into(), "application/json".into()));
        probe.body = v.to_string().into_bytes();
    }
    let answer = crate::probe::http(&api.to_string(), &probe)
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    Ok((answer.status, answer.body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::proxy::Direction;

    #[test]
    fn a_fault_both_ways_is_two_toxics_and_http_faults_are_refused() {
        let both = toxics_for(
            &Effect::Delay {
                latency: Duration::from_millis(100),
                jitter: Duration::from_millis(20),
                direction: Direction::Both,
            },
            0.5,
            "f1",
        )
        .unwrap();
        assert_eq!(
            both.iter()
                .map(|t| (t.name.as_str(), t.kind, t.stream))
                .collect::<Vec<_>>(),
            [
                ("f1-upstream", "latency", "upstream"),
                ("f1-downstream", "latency", "downstream")
            ]
        );
        assert_eq!(both[0].attributes, json!({"latency": 110, "jitter": 10}));
        assert_eq!(both[0].toxicity, 0.5);
        let refused = toxics_for(
            &Effect::HttpError {
                status: 503,
                body: String::new(),
                headers: Vec::new(),
            },
            1.0,
            "f2",
        );
        assert!(refused.unwrap_err().contains("HTTP fault"));
        let slow = toxics_for(
            &Effect::Bandwidth {
                rate: 500,
                direction: Direction::Downstream,
            },
            1.0,
            "f3",
        );
        assert!(slow.unwrap_err().contains("below 1 KB/s"));
    }
}
