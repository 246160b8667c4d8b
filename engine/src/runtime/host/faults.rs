use crate::drivers::FaultSpec;
use crate::drivers::proxy::{self, Effect, RequestMatch};
use crate::run::FaultRep;
use crate::runtime::RunState;
use crate::runtime::bindings::GuestError;
use crate::runtime::bindings::firedrill::scenario::faults::{
    AbortPoint, AuthMode, Host, HostFault, LinkFault, ResponsePatch, Signal, StressLoad,
};
use crate::runtime::bindings::firedrill::scenario::types::{self, FaultKind, FaultOptions};
use serde_json::json;
use std::time::Duration;
use wasmtime::component::Resource;

/// Longest duration a scenario may ask for; anything above is a mistake.
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

impl RunState {
    async fn fault_call(
        &mut self,
        call: &str,
        target: &str,
        spec: Result<FaultSpec, GuestError>,
        options: &FaultOptions,
        args: serde_json::Value,
    ) -> Result<Resource<FaultRep>, GuestError> {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        let spec_kind = spec.as_ref().ok().map(FaultSpec::kind);
        let result = self.make_fault(target, spec, options).await;
        self.ctx.call(call, args, &result);
        let id = result?;
        let kind = spec_kind.expect("a fault was made, so its spec was valid");
        self.table
            .push(FaultRep {
                id,
                kind,
                target: target.to_string(),
            })
            .map_err(|e| GuestError::Failed(e.to_string()))
    }

    async fn make_fault(
        &mut self,
        target: &str,
        spec: Result<FaultSpec, GuestError>,
        options: &FaultOptions,
    ) -> Result<u32, GuestError> {
        if self.ctx.is_describing() {
            return Err(GuestError::Unsupported(
                "faults cannot be made inside describe()".into(),
            ));
        }
        let spec = spec?;
        let duration = match options.duration {
            Some(ns) => Some(duration_arg("duration", ns)?),
            None => None,
        };
        self.ctx.apply_fault(target, spec, duration).await
    }
}

fn duration_arg(name: &str, ns: u64) -> Result<Duration, GuestError> {
    let d = Duration::from_nanos(ns);
    if d > MAX_DURATION {
        return Err(GuestError::InvalidArgument(format!(
            "{name} of {} is longer than the 7 day maximum",
            humantime::format_duration(d)
        )));
    }
    Ok(d)
}

fn probability(options: &FaultOptions) -> Result<f64, GuestError> {
    match options.probability {
        None => Ok(1.0),
        Some(p) if (0.0..=1.0).contains(&p) => Ok(p),
        Some(p) => Err(GuestError::InvalidArgument(format!(
            "probability must be within 0.0..=1.0, got {p}"
        ))),
    }
}

fn matcher(options: &FaultOptions) -> Result<Option<RequestMatch>, GuestError> {
    let Some(m) = &options.request_match else {
        return Ok(None);
    };
    let path = match &m.path {
        Some(p) => Some(glob::Pattern::new(p).map_err(|e| {
            GuestError::InvalidArgument(format!("request-match path glob `{p}`: {e}"))
        })?),
        None => None,
    };
    if let Some((name, _)) = &m.header
        && hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err()
    {
        return Err(GuestError::InvalidArgument(format!(
            "request-match header `{name}` is not a valid header name"
        )));
    }
    Ok(Some(RequestMatch {
        method: m.method.clone(),
        path,
        header: m.header.clone(),
    }))
}

fn proxy_spec(effect: Effect, options: &FaultOptions) -> Result<FaultSpec, GuestError> {
    Ok(FaultSpec::Proxy {
        effect,
        probability: probability(options)?,
        matcher: matcher(options)?,
    })
}

fn direction_of(d: types::Direction) -> proxy::Direction {
    match d {
        types::Direction::Upstream => proxy::Direction::Upstream,
        types::Direction::Downstream => proxy::Direction::Downstream,
        types::Direction::Both => proxy::Direction::Both,
    }
}

/// The proxy effect of a `link` call, with its arguments for the timeline.
fn link_effect(
    fault: &LinkFault,
    direction: proxy::Direction,
) -> (serde_json::Value, Result<Effect, GuestError>) {
    let positive = |name: &str, v: u64| {
        if v == 0 {
            Err(GuestError::InvalidArgument(format!(
                "{name} must be at least 1"
            )))
        } else {
            Ok(v)
        }
    };
    match *fault {
        LinkFault::ConnectDelay((latency, jitter)) => (
            json!({"connect-delay": {"latency_ns": latency, "jitter_ns": jitter}}),
            (|| {
                Ok(Effect::ConnectDelay {
                    latency: duration_arg("latency", latency)?,
                    jitter: duration_arg("jitter", jitter)?,
                })
            })(),
        ),
        LinkFault::Bandwidth(rate) => (
            json!({"bandwidth": {"bytes_per_second": rate}}),
            positive("bandwidth", rate).map(|rate| Effect::Bandwidth { rate, direction }),
        ),
        LinkFault::Blackhole => (json!("blackhole"), Ok(Effect::Blackhole { direction })),
        LinkFault::Refuse => (json!("refuse"), Ok(Effect::Refuse)),
        LinkFault::ResetPeer(after) => (
            json!({"reset-peer": {"after_ns": after}}),
            duration_arg("after", after).map(|after| Effect::ResetPeer { after, direction }),
        ),
        LinkFault::Timeout(after) => (
            json!({"timeout": {"after_ns": after}}),
            duration_arg("after", after).map(|after| Effect::Timeout {
                after,
                direction,
                close_on_revert: false,
            }),
        ),
        LinkFault::SlowClose(delay) => (
            json!({"slow-close": {"delay_ns": delay}}),
            duration_arg("delay", delay).map(|delay| Effect::SlowClose { delay, direction }),
        ),
        LinkFault::Slicer(s) => (
            json!({"slicer": {"average_size": s.average_size, "size_variation": s.size_variation, "delay_ns": s.delay}}),
            (|| {
                positive("slicer average-size", u64::from(s.average_size))?;
                Ok(Effect::Slicer {
                    average: s.average_size as usize,
                    variation: s.size_variation as usize,
                    delay: duration_arg("delay", s.delay)?,
                    direction,
                })
            })(),
        ),
        LinkFault::LimitData(bytes) => (
            json!({"limit-data": {"bytes": bytes}}),
            Ok(Effect::LimitData { bytes, direction }),
        ),
    }
}

fn options_json(o: &FaultOptions) -> serde_json::Value {
    json!({
        "duration_ns": o.duration,
        "probability": o.probability,
        "request_match": o.request_match.as_ref().map(|m| json!({"method": m.method, "path": m.path, "header": m.header})),
    })
}

impl Host for RunState {
    async fn kill(&mut self, target: String, signal: Signal) -> Result<(), GuestError> {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        let sig = match signal {
            Signal::Term => nix::sys::signal::Signal::SIGTERM,
            Signal::Kill => nix::sys::signal::Signal::SIGKILL,
            Signal::Int => nix::sys::signal::Signal::SIGINT,
            Signal::Hup => nix::sys::signal::Signal::SIGHUP,
            Signal::Quit => nix::sys::signal::Signal::SIGQUIT,
            Signal::Usr1 => nix::sys::signal::Signal::SIGUSR1,
            Signal::Usr2 => nix::sys::signal::Signal::SIGUSR2,
            Signal::Abrt => nix::sys::signal::Signal::SIGABRT,
            Signal::Alrm => nix::sys::signal::Signal::SIGALRM,
            Signal::Bus => nix::sys::signal::Signal::SIGBUS,
            Signal::Cont => nix::sys::signal::Signal::SIGCONT,
            Signal::Fpe => nix::sys::signal::Signal::SIGFPE,
            Signal::Ill => nix::sys::signal::Signal::SIGILL,
            Signal::Pipe => nix::sys::signal::Signal::SIGPIPE,
            Signal::Segv => nix::sys::signal::Signal::SIGSEGV,
            Signal::Stop => nix::sys::signal::Signal::SIGSTOP,
            Signal::Sys => nix::sys::signal::Signal::SIGSYS,
            Signal::Trap => nix::sys::signal::Signal::SIGTRAP,
            Signal::Tstp => nix::sys::signal::Signal::SIGTSTP,
            Signal::Xcpu => nix::sys::signal::Signal::SIGXCPU,
            Signal::Xfsz => nix::sys::signal::Signal::SIGXFSZ,
            Signal::Winch => nix::sys::signal::Signal::SIGWINCH,
        };
        let result = if self.ctx.is_describing() {
            Err(GuestError::Unsupported(
                "faults cannot be made inside describe()".into(),
            ))
        } else {
            self.ctx
                .apply_fault(&target, FaultSpec::Kill(sig), None)
                .await
                .map(|_| ())
        };
        self.ctx.call(
            "faults.kill",
            json!({"target": target, "signal": sig.as_str()}),
            &result,
        );
        result
    }

    async fn restart(&mut self, target: String) -> Result<(), GuestError> {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        let result = if self.ctx.is_describing() {
            Err(GuestError::Unsupported(
                "faults cannot be made inside describe()".into(),
            ))
        } else {
            self.ctx
                .apply_fault(&target, FaultSpec::Restart, None)
                .await
                .map(|_| ())
        };
        self.ctx
            .call("faults.restart", json!({"target": target}), &result);
        result
    }

    async fn pause(
        &mut self,
        target: String,
        options: FaultOptions,
    ) -> Result<Resource<FaultRep>, GuestError> {
        let args = json!({"target": target, "options": options_json(&options)});
        self.fault_call(
            "faults.pause",
            &target,
            Ok(FaultSpec::Pause),
            &options,
            args,
        )
        .await
    }

    async fn delay(
        &mut self,
        target: String,
        latency: u64,
        jitter: u64,
        direction: types::Direction,
        options: FaultOptions,
    ) -> Result<Resource<FaultRep>, GuestError> {
        let args = json!({"target": target, "latency_ns": latency, "jitter_ns": jitter, "direction": direction_of(direction).to_string(), "options": options_json(&options)});
        let spec = (|| {
            let latency = duration_arg("latency", latency)?;
            let jitter = duration_arg("jitter", jitter)?;
            let direction = direction_of(direction);
            proxy_spec(
                Effect::Delay {
                    latency,
                    jitter,
                    direction,
                },
                &options,
            )
        })();
        self.fault_call("faults.delay", &target, spec, &options, args)
            .await
    }

    async fn fail_auth(
        &mut self,
        target: String,
        mode: AuthMode,
        status: Option<u16>,
        options: FaultOptions,
    ) -> Result<Resource<FaultRep>, GuestError> {
        let args = json!({"target": target, "mode": match mode { AuthMode::Reject => "reject", AuthMode::Strip => "strip", AuthMode::Corrupt => "corrupt", AuthMode::Expire => "expire" }, "status": status, "options": options_json(&options)});
        let spec = (|| {
            let status = status.unwrap_or(401);
            if status != 401 && status != 403 {
                return Err(GuestError::InvalidArgument(format!(
                    "fail-auth status must be 401 or 403, got {status}"
                )));
            }
            let mode = match mode {
                AuthMode::Reject => proxy::AuthMode::Reject,
                AuthMode::Strip => proxy::AuthMode::Strip,
                AuthMode::Corrupt => proxy::AuthMode::Corrupt,
                AuthMode::Expire => proxy::AuthMode::Expire,
            };
            proxy_spec(Effect::FailAuth { mode, status }, &options)
        })();
        self.fault_call("faults.fail-auth", &target, spec, &options, args)
            .await
    }

    async fn link(
        &mut self,
        target: String,
        fault: LinkFault,
        direction: types::Direction,
        options: FaultOptions,
    ) -> Result<Resource<FaultRep>, GuestError> {
        let direction = direction_of(direction);
        let (fault_json, effect) = link_effect(&fault, direction);
        let args = json!({"target": target, "fault": fault_json, "direction": direction.to_string(), "options": options_json(&options)});
        let spec = effect.and_then(|e| proxy_spec(e, &options));
        self.fault_call("faults.link", &target, spec, &options, args)
            .await
    }

    async fn http_error(
        &mut self,
        target: String,
        status: u16,
        body: Option<String>,
        headers: Vec<(String, String)>,
        options: FaultOptions,
    ) -> Result<Resource<FaultRep>, GuestError> {
        let args = json!({"target": target, "status": status, "body": body, "headers": headers, "options": options_json(&options)});
        let spec = (|| {
            if !(400..=599).contains(&status) {
                return Err(GuestError::InvalidArgument(format!(
                    "http-error status must be within 400..=599, got {status}"
                )));
            }
            if body.as_ref().is_some_and(|b| b.len() > 1 << 20) {
                return Err(GuestError::InvalidArgument(
                    "http-error body is over 1 MiB".into(),
                ));
            }
            check_headers("http-error", &headers)?;
            let body = body.clone().unwrap_or_else(|| {
                format!(r#"{{"error":"injected by firedrill","status":{status}}}"#)
            });
            proxy_spec(
                Effect::HttpError {
                    status,
                    body,
                    headers: headers.clone(),
                },
                &options,
            )
        })();
        self.fault_call("faults.http-error", &target, spec, &options, args)
            .await
    }

    async fn stress(
        &mut self,
        target: String,
        load: StressLoad,
        options: FaultOptions,
    ) -> Result<Resource<FaultRep>, GuestError> {
        use crate::targets::host::Load;
        let (args, load) = match load {
            StressLoad::Cpu((cores, percent)) => (
                json!({"cpu": {"cores": cores, "percent": percent}}),
                if cores == 0 || cores > 1024 || !(1..=100).contains(&percent) {
                    Err(GuestError::InvalidArgument(format!(
                        "cpu stress needs 1..=1024 cores at 1..=100 percent, got {cores} at {percent}"
                    )))
                } else {
                    Ok(Load::Cpu { cores, percent })
                },
            ),
            StressLoad::Memory(bytes) => (
                json!({"memory": {"bytes": bytes}}),
                match bytes {
                    0 => Err(GuestError::InvalidArgument(
                        "memory stress needs at least 1 byte".into(),
                    )),
                    b => Ok(Load::Memory(b)),
                },
            ),
            StressLoad::Disk(bytes) => (json!({"disk": {"bytes": bytes}}), Ok(Load::Disk(bytes))),
        };
        let args = json!({"target": target, "load": args, "options": options_json(&options)});
        let spec = load.map(FaultSpec::Stress);
        self.fault_call("faults.stress", &target, spec, &options, args)
            .await
    }

    async fn http_abort(
        &mut self,
        target: String,
        at: AbortPoint,
        reset: bool,
        options: FaultOptions,
    ) -> Result<Resource<FaultRep>, GuestError> {
        let at = match at {
            AbortPoint::Request => proxy::AbortPoint::Request,
            AbortPoint::Response => proxy::AbortPoint::Response,
        };
        let args =
            json!({"target": target, "at": at, "reset": reset, "options": options_json(&options)});
        let spec = proxy_spec(Effect::HttpAbort { at, reset }, &options);
        self.fault_call("faults.http-abort", &target, spec, &options, args)
            .await
    }

    async fn http_modify(
        &mut self,
        target: String,
        patch: ResponsePatch,
        options: FaultOptions,
    ) -> Result<Resource<FaultRep>, GuestError> {
        let args = json!({"target": target, "status": patch.status, "set_headers": patch.set_headers, "remove_headers": patch.remove_headers, "body_bytes": patch.body.as_ref().map(String::len), "options": options_json(&options)});
        let spec = response_patch(patch).and_then(|patch| {
            proxy_spec(
                Effect::HttpModify {
                    patch: Box::new(patch),
                },
                &options,
            )
        });
        self.fault_call("faults.http-modify", &target, spec, &options, args)
            .await
    }
}

/// Every header a fault sets must be one hyper can send.
fn check_headers(call: &str, headers: &[(String, String)]) -> Result<(), GuestError> {
    use hyper::header::{HeaderName, HeaderValue};
    for (name, value) in headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(GuestError::InvalidArgument(format!(
                "{call} header name `{name}` is not valid"
            )));
        }
        if HeaderValue::from_str(value).is_err() {
            return Err(GuestError::InvalidArgument(format!(
                "{call} header `{name}` has an invalid value"
            )));
        }
    }
    Ok(())
}

/// Check an `http-modify` patch: every status, header and body it sets must
/// be one hyper can send.
fn response_patch(p: ResponsePatch) -> Result<proxy::ResponsePatch, GuestError> {
    use hyper::header::HeaderName;
    let bad = |m: String| Err(GuestError::InvalidArgument(m));
    if let Some(s) = p.status
        && !(100..=599).contains(&s)
    {
        return bad(format!(
            "http-modify status must be within 100..=599, got {s}"
        ));
    }
    check_headers("http-modify", &p.set_headers)?;
    for name in &p.remove_headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return bad(format!("http-modify header name `{name}` is not valid"));
        }
    }
    if p.body.as_ref().is_some_and(|b| b.len() > 1 << 20) {
        return bad("http-modify body is over 1 MiB".into());
    }
    Ok(proxy::ResponsePatch {
        status: p.status,
        set_headers: p.set_headers,
        remove_headers: p.remove_headers,
        body: p.body,
    })
}

impl HostFault for RunState {
    async fn id(&mut self, fault: Resource<FaultRep>) -> u64 {
        self.table
            .get(&fault)
            .map(|f| u64::from(f.id))
            .unwrap_or(u64::MAX)
    }

    async fn kind(&mut self, fault: Resource<FaultRep>) -> FaultKind {
        match self.table.get(&fault).map(|f| f.kind) {
            Ok(crate::policy::FaultKind::Pause) => FaultKind::Pause,
            Ok(crate::policy::FaultKind::Delay) => FaultKind::Delay,
            Ok(crate::policy::FaultKind::FailAuth) => FaultKind::FailAuth,
            Ok(crate::policy::FaultKind::HttpError) => FaultKind::HttpError,
            Ok(crate::policy::FaultKind::Bandwidth) => FaultKind::Bandwidth,
            Ok(crate::policy::FaultKind::Blackhole) => FaultKind::Blackhole,
            Ok(crate::policy::FaultKind::Refuse) => FaultKind::Refuse,
            Ok(crate::policy::FaultKind::ResetPeer) => FaultKind::ResetPeer,
            Ok(crate::policy::FaultKind::Timeout) => FaultKind::Timeout,
            Ok(crate::policy::FaultKind::SlowClose) => FaultKind::SlowClose,
            Ok(crate::policy::FaultKind::Slicer) => FaultKind::Slicer,
            Ok(crate::policy::FaultKind::LimitData) => FaultKind::LimitData,
            Ok(crate::policy::FaultKind::HttpAbort) => FaultKind::HttpAbort,
            Ok(crate::policy::FaultKind::HttpModify) => FaultKind::HttpModify,
            Ok(crate::policy::FaultKind::Restart) => FaultKind::Restart,
            Ok(crate::policy::FaultKind::CpuStress) => FaultKind::CpuStress,
            Ok(crate::policy::FaultKind::MemoryStress) => FaultKind::MemoryStress,
            Ok(crate::policy::FaultKind::DiskFill) => FaultKind::DiskFill,
            _ => FaultKind::Kill,
        }
    }

    async fn target(&mut self, fault: Resource<FaultRep>) -> String {
        self.table
            .get(&fault)
            .map(|f| f.target.clone())
            .unwrap_or_default()
    }

    async fn active(&mut self, fault: Resource<FaultRep>) -> bool {
        match self.table.get(&fault) {
            Ok(f) => self.ctx.fault_active(f.id),
            Err(_) => false,
        }
    }

    async fn revert(&mut self, fault: Resource<FaultRep>) -> Result<(), GuestError> {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        let id = self
            .table
            .get(&fault)
            .map(|f| f.id)
            .map_err(|e| GuestError::Failed(e.to_string()))?;
        let result = self
            .ctx
            .revert_fault(id, "scenario")
            .await
            .map_err(GuestError::Failed);
        self.ctx.call("fault.revert", json!({"fault": id}), &result);
        result
    }

    async fn drop(&mut self, fault: Resource<FaultRep>) -> wasmtime::Result<()> {
        // Dropping the handle leaves the fault in place; the run reverts it.
        self.table.delete(fault)?;
        Ok(())
    }
}
