//! A guest that makes host calls with absurd arguments and records what
//! each returned as a finding (the error's text, or `ok`), then passes:
//! none of them may trap the guest or upset the host.
//!
//! - `delay`: a `Duration::MAX` latency on an unknown target;
//! - `sleep-zero`: a zero sleep (should be `ok`);
//! - `http`: a request with a bad method, path and header name, a non-UTF-8
//!   body and a `u64::MAX` time-out;
//! - `tcp-connect-zero`: a TCP connect with a zero time-out;
//! - `param-1mib`: a parameter lookup with a 1 MiB name (`none` or `some`).

use std::time::Duration;

use firedrill_sdk::*;

struct Absurd;

fn text<T>(result: Result<T, Error>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    }
}

impl Scenario for Absurd {
    fn describe() -> Metadata {
        Metadata::new("absurd", "0.1.0", "Makes host calls with absurd arguments.")
    }

    fn run() -> Result<Outcome, Error> {
        let delay = text(faults::delay("x", Duration::MAX).apply());
        let sleep = text(host::sleep(Duration::ZERO));
        let request = HttpRequest {
            method: "GE T".into(),
            path: "no-slash".into(),
            headers: vec![("bad header".into(), "v".into())],
            body: vec![0xff, 0xfe, 0x00],
            timeout: Some(u64::MAX),
        };
        let http = text(probes::http("x", &request));
        let tcp = text(probes::tcp_connect_within("x", Duration::ZERO));
        let param = match host::param(&"p".repeat(1 << 20)) {
            None => "none".to_owned(),
            Some(_) => "some".to_owned(),
        };
        Ok(Outcome::pass("absurd calls made")
            .finding(Severity::Info, "delay", delay)
            .finding(Severity::Info, "sleep-zero", sleep)
            .finding(Severity::Info, "http", http)
            .finding(Severity::Info, "tcp-connect-zero", tcp)
            .finding(Severity::Info, "param-1mib", param))
    }
}

export_scenario!(Absurd);
