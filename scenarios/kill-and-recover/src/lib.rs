//! # kill-and-recover
//!
//! Kills a process target with a signal and measures how long its service
//! takes to answer again.
//!
//! 1. Probes `probe_target` once (HTTP `GET path`, a TCP connect, or a
//!    line protocol's `send`/`expect`, as `probe` chooses): it must be
//!    healthy, or the run fails with a critical "not healthy before the
//!    kill" finding.
//! 2. Sends `signal` to the process tree of `target` (its restart policy
//!    is expected to bring it back).
//! 3. Probes every `poll` until healthy (no connection, a 4xx or 5xx, or
//!    the wrong answer means still down), for at most `max-recovery`.
//!
//! Passes iff the service recovered within `max-recovery`. Measures
//! `recovery-time` (ms, when it recovered) and `down-probes` (how many
//! probes found it down).
//!
//! Drills written before `probe` chose the protocol said
//! `probe = "<target>"`: a `probe` that is not `http`, `tcp` or `exchange`
//! is still read as the target to probe over HTTP, with a warning.

use std::time::Duration;

use firedrill_sdk::*;

struct KillAndRecover;

fn target() -> String {
    host::param_or("target", "api")
}

/// The probe and its target, from the parameters (see the crate docs for
/// the older `probe = "<target>"` form).
fn probe() -> Result<(probes::Check, String), Error> {
    let probe = host::param_or("probe", "http");
    if matches!(probe.as_str(), "http" | "tcp" | "exchange") {
        return Ok((
            probes::Check::from_params()?,
            probes::Check::target_or("api-link"),
        ));
    }
    host::warn(&format!(
        "parameter `probe = \"{probe}\"` names a target: write `probe_target = \"{probe}\"` \
         (and `probe = \"http\"`, `\"tcp\"` or `\"exchange\"` for how to probe it)"
    ));
    let check = probes::Check {
        kind: probes::CheckKind::Http {
            path: host::param_or("path", "/health"),
        },
        timeout: host::param_duration("probe_timeout", Duration::from_secs(2))?,
    };
    Ok((check, probe))
}

impl Scenario for KillAndRecover {
    fn describe() -> Metadata {
        probes::Check::declare(Metadata::new(
            "kill-and-recover",
            "0.2.0",
            "Kills a process target with a signal, then probes its service (HTTP, TCP or a line \
             protocol) and measures how long it takes to be healthy again.",
        ))
        .param(
            "target",
            ParamType::String,
            Some("api"),
            "The process target to kill",
        )
        .param(
            "probe_target",
            ParamType::String,
            Some("api-link"),
            "The target to probe",
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
        let (check, probe) = probe()?;
        let signal_name = host::param_or("signal", "kill");
        let signal: Signal = signal_name.parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "parameter `signal`: {signal_name:?} is not one of term, kill, int, hup, quit, usr1, usr2"
            ))
        })?;
        let max_recovery = host::param_duration("max-recovery", Duration::from_secs(10))?;
        let poll = host::param_duration("poll", Duration::from_millis(50))?;

        // 1. Healthy before?
        if let Err(cause) = check.run(&probe)? {
            return Ok(
                Outcome::fail(format!("{probe} was not healthy before the kill")).finding(
                    Severity::Critical,
                    "not healthy before the kill",
                    format!("{probe}: {cause}"),
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

        // 3. Probe until healthy or the deadline passes; no probe may
        // outlast the deadline by more than 100 ms.
        let deadline = killed_at.checked_add(max_recovery).unwrap_or(Duration::MAX);
        let mut down_probes = 0u32;
        let recovered_at = loop {
            let left = deadline.saturating_sub(host::now());
            let once = probes::Check {
                timeout: check.timeout.min(left.max(Duration::from_millis(100))),
                ..check.clone()
            };
            match once.run(&probe)? {
                Ok(_) => break Some(host::now()),
                Err(_) => down_probes += 1,
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
                format!(
                    "recovered {:.0} ms after the kill; max-recovery is {limit_ms:.0} ms",
                    ms(took)
                ),
            )
            .measure("recovery-time", ms(took), "ms"),
            None => Outcome::fail(format!("{probe} did not recover within {limit_ms:.0} ms"))
                .finding(
                    Severity::Critical,
                    "no recovery",
                    format!(
                        "{probe} was not healthy within {limit_ms:.0} ms of the kill of {target}"
                    ),
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
