//! `bad-day`: several things go wrong at once, in layers.
//!
//! 1. `latency` is added to the HTTP link `link` (downstream, with
//!    `jitter`);
//! 2. after `stagger`, a share (`error_rate`) of its requests are answered
//!    `503`;
//! 3. after another `stagger`, the dependency `dependency` (a process
//!    target; empty to skip) hangs for `hang`.
//!
//! Everything lasts until `duration` has passed since the first fault. The
//! scenario probes `probe_target` (by default the link) throughout, with
//! the probe the drill chooses, and measures each layer's failed share.
//!
//! Passes when the failed share over the whole day stays within
//! `max_failure_percent` and the probe is healthy again within
//! `recover_within` after everything is reverted. Needs: `delay` and
//! `http-error` on `link`, and `pause` on `dependency` when it is set.

use firedrill_sdk::*;
use std::time::Duration;

struct BadDay;

impl Scenario for BadDay {
    fn describe() -> Metadata {
        let link = host::param_or("link", "api-link");
        let dependency = host::param_or("dependency", "");
        let m = probes::Check::declare(Metadata::new(
            "bad-day",
            "0.1.0",
            "Layers added latency, an error storm and a hung dependency on a service, one after another, and checks the failed share and the recovery.",
        ))
        .param("link", ParamType::String, Some("api-link"), "The HTTP proxy target in front of the service")
        .param("dependency", ParamType::String, Some(""), "A process target to hang in the third layer (empty: none)")
        .param("latency", ParamType::Duration, Some("300ms"), "Latency added first")
        .param("jitter", ParamType::Duration, Some("100ms"), "Jitter on that latency")
        .param("error_rate", ParamType::Float, Some("0.2"), "The share of requests answered 503 in the second layer")
        .param("hang", ParamType::Duration, Some("2s"), "How long the dependency hangs")
        .param("stagger", ParamType::Duration, Some("2s"), "Time between layers")
        .param("duration", ParamType::Duration, Some("10s"), "The whole bad day, from the first fault")
        .param("probe_target", ParamType::String, Some(""), "The target to probe (default: the link)")
        .param("interval", ParamType::Duration, Some("200ms"), "Time between probes")
        .param("max_failure_percent", ParamType::Float, Some("100"), "The most failed probes over the day, in percent")
        .param("recover_within", ParamType::Duration, Some("10s"), "How soon after the day the probe must be healthy again")
        .need(FaultKind::Delay, link.clone())
        .need(FaultKind::HttpError, link);
        if dependency.is_empty() {
            m
        } else {
            m.need(FaultKind::Pause, dependency)
        }
    }

    fn run() -> Result<Outcome, Error> {
        let link = host::param_or("link", "api-link");
        let dependency = host::param_or("dependency", "");
        let latency = host::param_duration("latency", Duration::from_millis(300))?;
        let jitter = host::param_duration("jitter", Duration::from_millis(100))?;
        let error_rate = host::param_f64("error_rate", 0.2)?;
        let hang = host::param_duration("hang", Duration::from_secs(2))?;
        let stagger = host::param_duration("stagger", Duration::from_secs(2))?;
        let duration = host::param_duration("duration", Duration::from_secs(10))?;
        let interval = host::param_duration("interval", Duration::from_millis(200))?;
        let budget = host::param_f64("max_failure_percent", 100.0)?;
        let within = host::param_duration("recover_within", Duration::from_secs(10))?;
        let target = probes::Check::target_or(&link);
        let check = probes::Check::from_params()?;
        let start = host::now();
        let left = |now: Duration| duration.saturating_sub(now - start);

        host::event("layer", "1: latency");
        let slow = faults::delay(&link, latency).jitter(jitter).apply()?;
        let first = check.watch(&target, stagger.min(duration), interval)?;

        host::event("layer", "2: errors");
        let errors = faults::http_error(&link, 503)
            .header("retry-after", "1")
            .probability(error_rate)
            .for_duration(left(host::now()))
            .apply()?;
        let second = check.watch(&target, stagger.min(left(host::now())), interval)?;

        let mut third = probes::Watched::default();
        if !dependency.is_empty() && !left(host::now()).is_zero() {
            host::event("layer", "3: hung dependency");
            // Reverted by hand after the watch, so no probe of this layer
            // straddles the wake-up.
            let hung = faults::pause(&dependency).apply()?;
            third = check.watch(&target, hang.min(left(host::now())), interval)?;
            hung.revert()?;
        }
        let rest = check.watch(&target, left(host::now()), interval)?;
        errors.revert()?;
        slow.revert()?;

        let samples = first.samples + second.samples + third.samples + rest.samples;
        let failures = first.failures + second.failures + third.failures + rest.failures;
        let failed = f64::from(failures) * 100.0 / f64::from(samples.max(1));
        let outcome = match check.until_healthy(&target, within)? {
            None => Outcome::fail(format!(
                "`{target}` was still unhealthy {} s after the bad day",
                within.as_secs_f64()
            )),
            Some(_) if failed > budget => Outcome::fail(format!(
                "{failed:.0}% of probes failed over the bad day; the budget is {budget}%"
            )),
            Some(t) => Outcome::pass(format!(
                "{failed:.0}% of {samples} probes failed over the bad day; healthy {} ms after",
                t.as_millis()
            ))
            .measure("recovery-time", t.as_secs_f64() * 1e3, "ms"),
        };
        Ok(outcome
            .measure("failed-probes", failed, "%")
            .measure("failed-with-latency", first.failure_percent(), "%")
            .measure("failed-with-errors", second.failure_percent(), "%")
            .measure("failed-with-hang", third.failure_percent(), "%")
            .measure(
                "slowest-probe",
                first.max_latency.max(second.max_latency).as_secs_f64() * 1e3,
                "ms",
            ))
    }
}

export_scenario!(BadDay);
