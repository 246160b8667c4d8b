//! The README's slow-link scenario in Rust, as written there: the Rust
//! side of the cold- and warm-start figures (the Python and JavaScript
//! ones are tests/guests/python/slow_link and tests/guests/js/slow-link.js).
//! Its rustfmt.toml keeps the README's layout.

use firedrill_sdk::*;
use std::time::Duration;

struct SlowLink;

impl Scenario for SlowLink {
    fn describe() -> Metadata {
        let link = host::param_or("link", "api-link");
        Metadata::new("slow-link", "0.1.0", "Adds latency to a link and probes through it.")
            .param("link", ParamType::String, Some("api-link"), "The proxy to slow down")
            .param("latency", ParamType::Duration, Some("200ms"), "Latency to add")
            .need(FaultKind::Delay, link)
    }

    fn run() -> Result<Outcome, Error> {
        let link = host::param_or("link", "api-link");
        let latency = host::param_duration("latency", Duration::from_millis(200))?;
        let fault = faults::delay(&link, latency).apply()?;
        let response = probes::get(&link, "/health")?;
        fault.revert()?;
        let outcome = if response.is_success() {
            Outcome::pass("healthy under latency")
        } else {
            Outcome::fail(format!("status {} under latency", response.status))
        };
        Ok(outcome.measure("latency", response.latency().as_secs_f64() * 1e3, "ms"))
    }
}

export_scenario!(SlowLink);
