//! `dependency-outage`: a dependency drops off the network, then comes back.
//!
//! The link to the dependency (a proxy target) refuses new connections, or
//! becomes a blackhole that accepts and never answers, for `outage`. The
//! scenario probes `probe_target` (by default the link itself) before,
//! during and after, with the probe the drill chooses (HTTP, a TCP connect,
//! or a line protocol's request and answer, so a key-value store, a
//! database or a broker is probed in its own protocol), and measures how
//! long the service takes to answer again once the link is back.
//!
//! Passes when the probe is healthy before the outage and healthy again
//! within `recover_within` after it. A probe that stayed healthy during
//! the outage is a warning: the probe does not go through the link.
//! Needs: `refuse` or `blackhole` (per `mode`) on `link`.

use firedrill_sdk::*;
use std::time::Duration;

struct DependencyOutage;

fn mode() -> Result<FaultKind, Error> {
    match host::param_or("mode", "refuse").as_str() {
        "refuse" => Ok(FaultKind::Refuse),
        "blackhole" => Ok(FaultKind::Blackhole),
        other => Err(Error::InvalidArgument(format!(
            "parameter `mode` is `{other}`; expected refuse or blackhole"
        ))),
    }
}

impl Scenario for DependencyOutage {
    fn describe() -> Metadata {
        let link = host::param_or("link", "db-link");
        let m = Metadata::new(
            "dependency-outage",
            "0.1.0",
            "Cuts a dependency off (refused connections or a blackhole) for a while and measures how long the service takes to answer again.",
        )
        .param("link", ParamType::String, Some("db-link"), "The proxy target in front of the dependency")
        .param("mode", ParamType::String, Some("refuse"), "refuse (connections refused) or blackhole (accepted, never answered)")
        .param("outage", ParamType::Duration, Some("5s"), "How long the dependency is gone")
        .param("probe_target", ParamType::String, Some(""), "The target to probe (default: the link)")
        .param("interval", ParamType::Duration, Some("500ms"), "Time between probes during the outage")
        .param("recover_within", ParamType::Duration, Some("10s"), "How soon after the outage the probe must be healthy again");
        let m = probes::Check::declare(m);
        match mode() {
            Ok(kind) => m.need(kind, link),
            Err(_) => m,
        }
    }

    fn run() -> Result<Outcome, Error> {
        let link = host::param_or("link", "db-link");
        let kind = mode()?;
        let outage = host::param_duration("outage", Duration::from_secs(5))?;
        let interval = host::param_duration("interval", Duration::from_millis(500))?;
        let recover_within = host::param_duration("recover_within", Duration::from_secs(10))?;
        let target = probes::Check::target_or(&link);
        let check = probes::Check::from_params()?;

        if let Err(why) = check.run(&target)? {
            return Ok(Outcome::fail(format!(
                "`{target}` was unhealthy before the outage: {why}"
            )));
        }
        let fault = match kind {
            FaultKind::Blackhole => faults::blackhole(&link),
            _ => faults::refuse(&link),
        }
        .direction(Direction::Both)
        .for_duration(outage)
        .apply()?;
        let started = host::now();
        let (mut samples, mut failures) = (0u32, 0u32);
        while host::now() - started < outage {
            samples += 1;
            if let Err(why) = check.run(&target)? {
                failures += 1;
                if failures == 1 {
                    host::event("outage-seen", &why);
                }
            }
            host::sleep(interval)?;
        }
        fault.revert()?;

        let back = host::now();
        let recovered = loop {
            match check.run(&target)? {
                Ok(_) => break Some(host::now() - back),
                Err(_) if host::now() - back >= recover_within => break None,
                Err(_) => host::sleep(Duration::from_millis(100))?,
            }
        };
        let mut outcome = match recovered {
            Some(t) => Outcome::pass(format!(
                "`{target}` answered again {} ms after the {} outage of `{link}`",
                t.as_millis(),
                if kind == FaultKind::Blackhole {
                    "blackhole"
                } else {
                    "refuse"
                }
            ))
            .measure("recovery-time", t.as_secs_f64() * 1e3, "ms"),
            None => Outcome::fail(format!(
                "`{target}` was still unhealthy {} s after `{link}` came back",
                recover_within.as_secs_f64()
            )),
        };
        outcome = outcome.measure(
            "failed-during-outage",
            f64::from(failures) * 100.0 / f64::from(samples.max(1)),
            "%",
        );
        if failures == 0 {
            outcome = outcome.finding(
                Severity::Warning,
                "the outage did not reach the probe",
                format!("every probe of `{target}` was healthy while `{link}` was down: does `{target}` depend on `{link}`?"),
            );
        }
        Ok(outcome)
    }
}

export_scenario!(DependencyOutage);
