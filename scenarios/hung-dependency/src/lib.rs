//! `hung-dependency`: a dependency hangs, then wakes up.
//!
//! The dependency's process target (`service`, its whole process tree) is
//! paused for `hold`: its connections stay open and nothing answers, the
//! failure that time-outs exist for. The scenario probes `probe_target`
//! (by default the service itself) during the hang and measures how long
//! it takes to answer again after. The probe is the drill's choice: HTTP,
//! a TCP connect, or a line protocol's request and answer.
//!
//! Passes when the probe is healthy before and healthy again within
//! `recover_within` after; `failed-during-hang` says how much of the hang
//! the probe noticed. Needs: `pause` on `service`.

use firedrill_sdk::*;
use std::time::Duration;

struct HungDependency;

impl Scenario for HungDependency {
    fn describe() -> Metadata {
        let service = host::param_or("service", "db");
        probes::Check::declare(Metadata::new(
            "hung-dependency",
            "0.1.0",
            "Pauses a dependency's processes for a while (it hangs: connections open, no answers) and measures how long the service takes to answer again.",
        ))
        .param("service", ParamType::String, Some("db"), "The process target to pause")
        .param("hold", ParamType::Duration, Some("5s"), "How long it hangs")
        .param("probe_target", ParamType::String, Some(""), "The target to probe (default: the service)")
        .param("interval", ParamType::Duration, Some("500ms"), "Time between probes during the hang")
        .param("recover_within", ParamType::Duration, Some("10s"), "How soon after the hang the probe must be healthy again")
        .need(FaultKind::Pause, service)
    }

    fn run() -> Result<Outcome, Error> {
        let service = host::param_or("service", "db");
        let hold = host::param_duration("hold", Duration::from_secs(5))?;
        let interval = host::param_duration("interval", Duration::from_millis(500))?;
        let within = host::param_duration("recover_within", Duration::from_secs(10))?;
        let target = probes::Check::target_or(&service);
        let check = probes::Check::from_params()?;
        if let Err(why) = check.run(&target)? {
            return Ok(Outcome::fail(format!(
                "`{target}` was unhealthy before the hang: {why}"
            )));
        }
        let fault = faults::pause(&service).for_duration(hold).apply()?;
        let seen = check.watch(&target, hold, interval)?;
        fault.revert()?;
        let outcome = match check.until_healthy(&target, within)? {
            Some(t) => Outcome::pass(format!(
                "`{target}` answered again {} ms after `{service}` woke up",
                t.as_millis()
            ))
            .measure("recovery-time", t.as_secs_f64() * 1e3, "ms"),
            None => Outcome::fail(format!(
                "`{target}` was still unhealthy {} s after `{service}` woke up",
                within.as_secs_f64()
            )),
        };
        Ok(outcome.measure("failed-during-hang", seen.failure_percent(), "%"))
    }
}

export_scenario!(HungDependency);
