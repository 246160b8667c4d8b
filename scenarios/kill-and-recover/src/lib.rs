//! # kill-and-recover
//!
//! Kills a process target with a signal and measures how long its service
//! takes to answer again.
//!
//! 1. Probes `GET <path>` on `probe` once: it must answer 2xx, or the run
//!    fails with a critical "not healthy before the kill" finding.
//! 2. Sends `signal` to the process of `target` (its restart policy is
//!    expected to bring it back).
//! 3. Probes every `poll` until a 2xx answer (a connection error or any
//!    other status means still down), for at most `max-recovery`.
//!
//! Passes iff the service recovered within `max-recovery`. Measures
//! `recovery-time` (ms, when it recovered) and `down-probes` (how many
//! probes found it down).

use std::time::Duration;

use firedrill_sdk::*;

struct KillAndRecover;

fn target() -> String {
    host::param_or("target", "api")
}

impl Scenario for KillAndRecover {
    fn describe() -> Metadata {
        Metadata::new(
            "kill-and-recover",
            "0.1.0",
            "Kills a process target with a signal, then polls its service over HTTP \
             and measures how long it takes to answer 2xx again.",
        )
        .param(
            "target",
            ParamType::String,
            Some("api"),
            "The process target to kill",
        )
        .param(
            "probe",
            ParamType::String,
            Some("api-link"),
            "The target to probe over HTTP",
        )
        .param(
            "path",
            ParamType::String,
            Some("/health"),
            "The path to probe",
        )
        .param(
            "signal",
            ParamType::String,
            Some("kill"),
            "The signal: term, kill, int, hup, quit, usr1 or usr2",
        )
        .param(
            "max-recovery",
            ParamType::Duration,
            Some("10s"),
            "How long recovery may take",
        )
        .param(
            "poll",
            ParamType::Duration,
            Some("50ms"),
            "Time between probes while down",
        )
        .need(FaultKind::Kill, target())
    }

    fn run() -> Result<Outcome, Error> {
        let target = target();
        let probe = host::param_or("probe", "api-link");
        let path = host::param_or("path", "/health");
        let signal_name = host::param_or("signal", "kill");
        let signal: Signal = signal_name
            .parse()
            .map_err(|_| {
                Error::InvalidArgument(format!(
                    "parameter `signal`: {signal_name:?} is not one of term, kill, int, hup, quit, usr1, usr2"
                ))
            })?;
        let max_recovery = host::param_duration("max-recovery", Duration::from_secs(10))?;
        let poll = host::param_duration("poll", Duration::from_millis(50))?;

        // 1. Healthy before?
        let before = match probes::get(&probe, &path) {
            Ok(response) if response.is_success() => None,
            Ok(response) => Some(format!("status {}", response.status)),
            Err(Error::Failed(cause)) => Some(cause),
            Err(e) => return Err(e),
        };
        if let Some(cause) = before {
            return Ok(
                Outcome::fail(format!("{probe} was not healthy before the kill")).finding(
                    Severity::Critical,
                    "not healthy before the kill",
                    format!("GET {path} on {probe}: {cause}"),
                ),
            );
        }

        // 2. Kill.
        host::event(
            "kill",
            &format!("SIG{} to {target}", signal_name.to_uppercase()),
        );
        let killed_at = host::now();
        faults::kill(&target, signal)?;

        // 3. Poll until it answers 2xx or the deadline passes.
        let deadline = killed_at.checked_add(max_recovery).unwrap_or(Duration::MAX);
        let mut down_probes = 0u32;
        let recovered_at = loop {
            let left = deadline.saturating_sub(host::now());
            let timeout = left.clamp(Duration::from_millis(100), Duration::from_secs(5));
            match HttpRequest::get(&path).timeout(timeout).send(&probe) {
                Ok(response) if response.is_success() => break Some(host::now()),
                Ok(_) | Err(Error::Failed(_)) => down_probes += 1,
                Err(e) => return Err(e),
            }
            let left = deadline.saturating_sub(host::now());
            if left.is_zero() {
                break None;
            }
            host::sleep(poll.min(left))?;
        };

        let limit_ms = ms(max_recovery);
        let outcome = match recovered_at.map(|at| at - killed_at) {
            Some(took) if took <= max_recovery => Outcome::pass(format!(
                "{probe} recovered {:.0} ms after the kill of {target}",
                ms(took)
            ))
            .measure("recovery-time", ms(took), "ms"),
            Some(took) => Outcome::fail(format!(
                "{probe} recovered after {:.0} ms, more than {limit_ms:.0} ms",
                ms(took)
            ))
            .finding(
                Severity::Critical,
                "slow recovery",
                format!("recovered {:.0} ms after the kill; max-recovery is {limit_ms:.0} ms", ms(took)),
            )
            .measure("recovery-time", ms(took), "ms"),
            None => Outcome::fail(format!("{probe} did not recover within {limit_ms:.0} ms"))
                .finding(
                    Severity::Critical,
                    "no recovery",
                    format!("GET {path} on {probe} did not answer 2xx within {limit_ms:.0} ms of the kill of {target}"),
                ),
        };
        Ok(outcome.measure("down-probes", f64::from(down_probes), "probes"))
    }
}

/// Milliseconds, exact for whole numbers of them.
fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

export_scenario!(KillAndRecover);
