//! `restart-under-load`: a deploy, or a crash loop, in miniature.
//!
//! The service's process target is restarted `restarts` times (stopped
//! with its whole tree, then started again as the drill declares it)
//! while `probe_target` (by default the service) is probed every
//! `interval`. Each restart's downtime, from the restart until the probe
//! is healthy again, is measured.
//!
//! Passes when every restart comes back within `recover_within`. Needs:
//! `restart` on `service`.

use firedrill_sdk::*;
use std::time::Duration;

struct RestartUnderLoad;

impl Scenario for RestartUnderLoad {
    fn describe() -> Metadata {
        let service = host::param_or("service", "api");
        probes::Check::declare(Metadata::new(
            "restart-under-load",
            "0.1.0",
            "Restarts a service while probing it and measures each restart's downtime.",
        ))
        .param(
            "service",
            ParamType::String,
            Some("api"),
            "The process target to restart",
        )
        .param(
            "restarts",
            ParamType::Integer,
            Some("1"),
            "How many restarts",
        )
        .param(
            "between",
            ParamType::Duration,
            Some("1s"),
            "Probing time after each recovery",
        )
        .param(
            "probe_target",
            ParamType::String,
            Some(""),
            "The target to probe (default: the service)",
        )
        .param(
            "interval",
            ParamType::Duration,
            Some("200ms"),
            "Time between probes",
        )
        .param(
            "recover_within",
            ParamType::Duration,
            Some("30s"),
            "How soon after a restart the probe must be healthy again",
        )
        .need(FaultKind::Restart, service)
    }

    fn run() -> Result<Outcome, Error> {
        let service = host::param_or("service", "api");
        let restarts = host::param_u64("restarts", 1)?;
        let between = host::param_duration("between", Duration::from_secs(1))?;
        let interval = host::param_duration("interval", Duration::from_millis(200))?;
        let within = host::param_duration("recover_within", Duration::from_secs(30))?;
        let target = probes::Check::target_or(&service);
        let check = probes::Check::from_params()?;
        if let Err(why) = check.run(&target)? {
            return Ok(Outcome::fail(format!(
                "`{target}` was unhealthy before the first restart: {why}"
            )));
        }
        let mut worst = Duration::ZERO;
        let mut failed_between = 0.0f64;
        for i in 1..=restarts {
            faults::restart(&service)?;
            match check.until_healthy(&target, within)? {
                Some(t) => {
                    host::event(
                        "back",
                        &format!("restart {i}: healthy after {} ms", t.as_millis()),
                    );
                    worst = worst.max(t);
                }
                None => {
                    return Ok(Outcome::fail(format!(
                        "`{target}` was still unhealthy {} s after restart {i} of `{service}`",
                        within.as_secs_f64()
                    )));
                }
            }
            failed_between =
                failed_between.max(check.watch(&target, between, interval)?.failure_percent());
        }
        Ok(Outcome::pass(format!(
            "{restarts} restart(s) of `{service}`: `{target}` healthy again within {} ms each",
            worst.as_millis()
        ))
        .measure("max-downtime", worst.as_secs_f64() * 1e3, "ms")
        .measure("failed-after-recovery", failed_between, "%"))
    }
}

export_scenario!(RestartUnderLoad);
