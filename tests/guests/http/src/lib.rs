//! A guest that applies one HTTP fault, named by the `fault` parameter
//! (`abort`, `modify` or `throttle`), to requests matching `path` on an HTTP
//! proxy target, and holds for `hold`.

use std::time::Duration;

use firedrill_sdk::*;

struct Http;

fn kind() -> FaultKind {
    match host::param_or("fault", "abort").as_str() {
        "modify" => FaultKind::HttpModify,
        "throttle" => FaultKind::Bandwidth,
        _ => FaultKind::HttpAbort,
    }
}

impl Scenario for Http {
    fn describe() -> Metadata {
        let target = host::param_or("target", "api");
        Metadata::new("http", "0.1.0", "Applies one HTTP fault and holds.")
            .param(
                "target",
                ParamType::String,
                Some("api"),
                "The HTTP proxy target",
            )
            .param(
                "fault",
                ParamType::String,
                Some("abort"),
                "abort, modify or throttle",
            )
            .param(
                "at",
                ParamType::String,
                Some("request"),
                "abort: request or response",
            )
            .param(
                "reset",
                ParamType::Boolean,
                Some("false"),
                "abort: RST instead of FIN",
            )
            .param(
                "value",
                ParamType::Integer,
                Some("10000"),
                "throttle: bytes per second",
            )
            .param("path", ParamType::String, Some("/*"), "Which paths")
            .param("hold", ParamType::Duration, Some("1s"), "How long to hold")
            .need(kind(), target)
    }

    fn run() -> Result<Outcome, Error> {
        let target = host::param_or("target", "api");
        let name = host::param_or("fault", "abort");
        let only = RequestMatch {
            path: Some(host::param_or("path", "/*")),
            ..RequestMatch::default()
        };
        let fault = match name.as_str() {
            "modify" => faults::http_modify(&target)
                .status(299)
                .header("x-modified", "yes")
                .remove_header("content-type")
                .body("modified by firedrill")
                .matching(only)
                .apply()?,
            "throttle" => faults::bandwidth(&target, host::param_u64("value", 10_000)?)
                .matching(only)
                .apply()?,
            _ => {
                let at = match host::param_or("at", "request").as_str() {
                    "response" => AbortPoint::Response,
                    _ => AbortPoint::Request,
                };
                let mut b = faults::http_abort(&target, at).matching(only);
                if host::param_or("reset", "false") == "true" {
                    b = b.reset();
                }
                b.apply()?
            }
        };
        host::event("applied", &name);
        host::sleep(host::param_duration("hold", Duration::from_secs(1))?)?;
        fault.revert()?;
        Ok(Outcome::pass(format!(
            "{name} on {target} held and reverted"
        )))
    }
}

export_scenario!(Http);
