//! Steady-state checks: what "healthy" means for the targets, checked before
//! a run (a failure refuses it), during it (a failure aborts it, or is only
//! recorded) and after it (part of the verdict, with a grace period for
//! recovery).

use crate::drill::{CheckProbe, CheckSpec, OnViolation};
use crate::history::{EventKind, Phase};
use crate::probe;
use crate::run::{RunCtx, StopReason};
use crate::targets::{Target, TargetSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run one check now: whether it held, and what was seen.
pub async fn evaluate(check: &CheckSpec, targets: &TargetSet) -> (bool, String) {
    let Some(target) = targets.get(&check.target) else {
        return (false, format!("target `{}` is not running", check.target));
    };
    let address = target.address().unwrap_or_default();
    let (result, latency) = match &check.probe {
        CheckProbe::Http { path, status } => {
            let mut get = probe::HttpProbe::get(path);
            get.timeout = check.timeout;
            match probe::http(&address, &get).await {
                Ok(a) => {
                    let ok = match status {
                        Some(s) => a.status == *s,
                        None => (200..300).contains(&a.status),
                    };
                    let seen = format!("GET {path} → {} in {}", a.status, ms(a.latency));
                    (if ok { Ok(seen) } else { Err(seen) }, Some(a.latency))
                }
                Err(e) => (Err(e), None),
            }
        }
        CheckProbe::Tcp => match probe::tcp(&address, check.timeout).await {
            Ok(l) => (Ok(format!("connected in {}", ms(l))), Some(l)),
            Err(e) => (Err(e), None),
        },
        CheckProbe::TcpExchange { send, expect } => {
            match probe::tcp_exchange(&address, send, expect, check.timeout).await {
                Ok(l) => (
                    Ok(format!(
                        "answered {:?} in {}",
                        String::from_utf8_lossy(expect),
                        ms(l)
                    )),
                    Some(l),
                ),
                Err(e) => (Err(e), None),
            }
        }
        CheckProbe::Process => match target {
            Target::Process(p) => match p.pid() {
                Ok(id) => (Ok(format!("pid {} alive", id.pid)), None),
                Err(e) => (Err(e), None),
            },
            Target::Proxy(_) | Target::Remote(_) | Target::Host(_) => {
                (Err("not a process".into()), None)
            }
        },
    };
    match (result, latency, check.max_latency) {
        (Ok(seen), Some(l), Some(max)) if l > max => {
            (false, format!("{seen}, over the {} bound", ms(max)))
        }
        (Ok(seen), _, _) => (true, seen),
        (Err(e), _, _) => (false, e),
    }
}

/// Run an after-check, retrying for its grace period while the system
/// recovers from the reverted faults.
pub async fn evaluate_after(check: &CheckSpec, targets: &TargetSet) -> (bool, String) {
    let until = Instant::now() + check.after_grace;
    loop {
        let (ok, detail) = evaluate(check, targets).await;
        if ok || Instant::now() >= until {
            return (ok, detail);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Check the during-phase checks every interval until aborted.
pub(crate) fn watch(checks: Vec<CheckSpec>, ctx: Arc<RunCtx>) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let checks: Vec<_> = checks
            .into_iter()
            .filter(|c| c.phases.contains(&Phase::During))
            .collect();
        if checks.is_empty() {
            return;
        }
        let mut set = tokio::task::JoinSet::new();
        for check in checks {
            let ctx = ctx.clone();
            set.spawn(async move {
                loop {
                    tokio::time::sleep(check.interval).await;
                    let (ok, detail) = evaluate(&check, &ctx.targets).await;
                    ctx.recorder.record(EventKind::Check {
                        name: check.name.clone(),
                        phase: Phase::During,
                        ok,
                        detail: detail.clone(),
                    });
                    if !ok && check.on_violation == OnViolation::Abort {
                        ctx.stop(StopReason::SteadyState(format!(
                            "steady state `{}` failed during the run: {detail}",
                            check.name
                        )));
                        return;
                    }
                }
            });
        }
        while set.join_next().await.is_some() {}
    })
    .abort_handle()
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}
