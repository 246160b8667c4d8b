//! `http-error-storm`: an HTTP dependency starts answering errors.
//!
//! For `duration`, a share (`probability`) of the requests through the
//! HTTP proxy `link` that match `method` and the `path` prefix are
//! answered `status` (503 by default) with a `Retry-After` header, never
//! reaching the upstream. The scenario probes `probe_target` (by default
//! the link, `GET /`) throughout and reports the failed share.
//!
//! Passes when failed probes stay within `max_failure_percent` and the
//! probe is healthy within `recover_within` after the storm. Needs:
//! `http-error` on `link`.

use firedrill_sdk::*;
use std::time::Duration;

struct HttpErrorStorm;

impl Scenario for HttpErrorStorm {
    fn describe() -> Metadata {
        let link = host::param_or("link", "api-link");
        probes::Check::declare(Metadata::new(
            "http-error-storm",
            "0.1.0",
            "Answers a share of the matching requests through an HTTP proxy with an error status for a while and checks the failed share and the recovery.",
        ))
        .param("link", ParamType::String, Some("api-link"), "The HTTP proxy target")
        .param("status", ParamType::Integer, Some("503"), "The status to answer")
        .param("probability", ParamType::Float, Some("0.5"), "The share of matching requests answered with it (0 to 1)")
        .param("match_path", ParamType::String, Some(""), "Only requests whose path starts with this (empty: all)")
        .param("match_method", ParamType::String, Some(""), "Only requests with this method (empty: all)")
        .param("duration", ParamType::Duration, Some("10s"), "How long the storm lasts")
        .param("probe_target", ParamType::String, Some(""), "The target to probe (default: the link)")
        .param("interval", ParamType::Duration, Some("200ms"), "Time between probes")
        .param("max_failure_percent", ParamType::Float, Some("100"), "The most failed probes the service may have, in percent")
        .param("recover_within", ParamType::Duration, Some("10s"), "How soon after the storm the probe must be healthy again")
        .need(FaultKind::HttpError, link)
    }

    fn run() -> Result<Outcome, Error> {
        let link = host::param_or("link", "api-link");
        let status = u16::try_from(host::param_u64("status", 503)?).map_err(|_| {
            Error::InvalidArgument("parameter `status` must be an HTTP status".into())
        })?;
        let probability = host::param_f64("probability", 0.5)?;
        let duration = host::param_duration("duration", Duration::from_secs(10))?;
        let interval = host::param_duration("interval", Duration::from_millis(200))?;
        let budget = host::param_f64("max_failure_percent", 100.0)?;
        let within = host::param_duration("recover_within", Duration::from_secs(10))?;
        let target = probes::Check::target_or(&link);
        let none_if_empty = |s: String| (!s.is_empty()).then_some(s);
        let check = probes::Check::from_params()?;
        let fault = faults::http_error(&link, status)
            .header("retry-after", "1")
            .body(format!(
                "{{\"error\":\"injected by firedrill\",\"status\":{status}}}"
            ))
            .probability(probability)
            .matching(RequestMatch {
                method: none_if_empty(host::param_or("match_method", "")),
                path: none_if_empty(host::param_or("match_path", "")),
                header: None,
            })
            .for_duration(duration)
            .apply()?;
        let seen = check.watch(&target, duration, interval)?;
        fault.revert()?;
        let recovered = check.until_healthy(&target, within)?;
        let failed = seen.failure_percent();
        let outcome = match recovered {
            None => Outcome::fail(format!(
                "`{target}` was still unhealthy {} s after the storm",
                within.as_secs_f64()
            )),
            Some(_) if failed > budget => Outcome::fail(format!(
                "{failed:.0}% of probes failed during the storm; the budget is {budget}%"
            )),
            Some(t) => Outcome::pass(format!(
                "{failed:.0}% of {} probes failed while {:.0}% of matching requests got {status}; healthy {} ms after",
                seen.samples,
                probability * 100.0,
                t.as_millis()
            ))
            .measure("recovery-time", t.as_secs_f64() * 1e3, "ms"),
        };
        Ok(outcome.measure("failed-probes", failed, "%"))
    }
}

export_scenario!(HttpErrorStorm);
