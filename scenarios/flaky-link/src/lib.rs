//! `flaky-link`: a link that drops connections now and then.
//!
//! For `duration`, a fraction (`probability`) of the connections through
//! `link` are reset (`mode = "reset-peer"`, after `after`) or go silent
//! (`mode = "timeout"`, closed after `after`). The scenario probes
//! `probe_target` (by default the link itself) throughout, with the probe
//! the drill chooses, and reports the share of failed probes.
//!
//! Passes when the failed share stays within `max_failure_percent` (the
//! service's error budget under a flaky network; 100 accepts any) and the
//! probe is healthy within `recover_within` after the link is repaired.
//! Needs: `reset-peer` or `timeout` (per `mode`) on `link`.

use firedrill_sdk::*;
use std::time::Duration;

struct FlakyLink;

fn mode() -> Result<FaultKind, Error> {
    match host::param_or("mode", "reset-peer").as_str() {
        "reset-peer" => Ok(FaultKind::ResetPeer),
        "timeout" => Ok(FaultKind::Timeout),
        other => Err(Error::InvalidArgument(format!(
            "parameter `mode` is `{other}`; expected reset-peer or timeout"
        ))),
    }
}

impl Scenario for FlakyLink {
    fn describe() -> Metadata {
        let link = host::param_or("link", "db-link");
        let m = probes::Check::declare(Metadata::new(
            "flaky-link",
            "0.1.0",
            "Resets or silences a share of the connections through a link for a while and checks the service's failed share and its recovery.",
        ))
        .param("link", ParamType::String, Some("db-link"), "The proxy target to make flaky")
        .param("mode", ParamType::String, Some("reset-peer"), "reset-peer (connections reset) or timeout (connections go silent, then close)")
        .param("after", ParamType::Duration, Some("0s"), "How long a connection lives before it is reset or closed")
        .param("probability", ParamType::Float, Some("0.3"), "The share of connections affected (0 to 1)")
        .param("duration", ParamType::Duration, Some("10s"), "How long the link is flaky")
        .param("probe_target", ParamType::String, Some(""), "The target to probe (default: the link)")
        .param("interval", ParamType::Duration, Some("200ms"), "Time between probes")
        .param("max_failure_percent", ParamType::Float, Some("100"), "The most failed probes the service may have, in percent")
        .param("recover_within", ParamType::Duration, Some("10s"), "How soon after the repair the probe must be healthy again");
        match mode() {
            Ok(kind) => m.need(kind, link),
            Err(_) => m,
        }
    }

    fn run() -> Result<Outcome, Error> {
        let link = host::param_or("link", "db-link");
        let kind = mode()?;
        let after = host::param_duration("after", Duration::ZERO)?;
        let probability = host::param_f64("probability", 0.3)?;
        let duration = host::param_duration("duration", Duration::from_secs(10))?;
        let interval = host::param_duration("interval", Duration::from_millis(200))?;
        let budget = host::param_f64("max_failure_percent", 100.0)?;
        let within = host::param_duration("recover_within", Duration::from_secs(10))?;
        let target = probes::Check::target_or(&link);
        let check = probes::Check::from_params()?;
        let fault = match kind {
            FaultKind::Timeout => faults::timeout(&link, after),
            _ => faults::reset_peer(&link, after),
        }
        .probability(probability)
        .for_duration(duration)
        .apply()?;
        let seen = check.watch(&target, duration, interval)?;
        fault.revert()?;
        let recovered = check.until_healthy(&target, within)?;
        let failed = seen.failure_percent();
        let outcome = match recovered {
            None => Outcome::fail(format!(
                "`{target}` was still unhealthy {} s after `{link}` was repaired",
                within.as_secs_f64()
            )),
            Some(_) if failed > budget => Outcome::fail(format!(
                "{failed:.0}% of probes failed while `{link}` was flaky; the budget is {budget}%"
            )),
            Some(t) => Outcome::pass(format!(
                "{failed:.0}% of {} probes failed while {:.0}% of `{link}`'s connections were cut; healthy {} ms after",
                seen.samples,
                probability * 100.0,
                t.as_millis()
            ))
            .measure("recovery-time", t.as_secs_f64() * 1e3, "ms"),
        };
        Ok(outcome.measure("failed-probes", failed, "%"))
    }
}

export_scenario!(FlakyLink);
