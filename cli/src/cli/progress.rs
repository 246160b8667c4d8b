//! Live view of a run (current step, active faults, elapsed time) and the
//! summary printed at its end.

use super::stop::Stop;
use firedrill::history::{EventKind, Run, RunStatus};
use firedrill::{Engine, RunHandle};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Follow a run to its end; a stop signal (see [`Stop`]) halts it, and its
/// faults are reverted.
pub(crate) async fn follow(handle: RunHandle, stop: &Stop) -> Run {
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let b = ProgressBar::new_spinner();
        b.set_style(ProgressStyle::with_template("{spinner} [{elapsed}] {wide_msg}").unwrap());
        b.enable_steady_tick(Duration::from_millis(120));
        b
    } else {
        ProgressBar::hidden()
    };
    let say = {
        let bar = bar.clone();
        move |line: String| {
            if tty {
                bar.println(line);
            } else {
                eprintln!("{line}");
            }
        }
    };
    let halter = handle.halter();
    let mut events = handle.events.resubscribe();
    let id = handle.id;
    say(format!("run {id} started"));
    let view = {
        let bar = bar.clone();
        let halter = halter.clone();
        let say = say.clone();
        tokio::spawn(async move {
            let mut step = String::from("starting");
            while let Ok(ev) = events.recv().await {
                let secs = ev.at_us as f64 / 1e6;
                match &ev.kind {
                    EventKind::Mark { name, detail } => step = format!("{name} {detail}"),
                    EventKind::Ended { .. } => break,
                    _ => {}
                }
                let shown = match &ev.kind {
                    EventKind::Mark { .. }
                    | EventKind::FaultApplied { .. }
                    | EventKind::FaultReverted { .. }
                    | EventKind::Check { .. } => true,
                    EventKind::Log { level, .. } => level != "trace" && level != "debug",
                    _ => false,
                };
                if shown {
                    say(format!("  {secs:7.2}s  {}", ev.kind));
                }
                let faults: Vec<String> = halter
                    .active_faults()
                    .into_iter()
                    .map(|(_, kind, target)| format!("{kind}@{target}"))
                    .collect();
                let faults = if faults.is_empty() {
                    "none".to_string()
                } else {
                    faults.join(", ")
                };
                bar.set_message(format!("{step} | active faults: {faults}"));
            }
        })
    };
    let mut wait = std::pin::pin!(handle.wait());
    let run = tokio::select! {
        run = &mut wait => run,
        name = stop.wait() => {
            say(format!("{name}: halting the run and reverting its faults…"));
            halter.halt();
            wait.await
        }
    };
    // The view stops at the `ended` event; give it a moment to print the last ones.
    if tokio::time::timeout(Duration::from_secs(1), view)
        .await
        .is_err()
    {
        tracing::debug!("live view did not drain");
    }
    bar.finish_and_clear();
    run
}

/// The summary of a finished run.
pub(crate) fn summary(run: &Run, engine: &Engine) {
    let secs = run
        .ended_at
        .unwrap_or(run.started_at)
        .saturating_sub(run.started_at) as f64
        / 1000.0;
    let verdict = match run.status {
        RunStatus::Passed => "PASSED".to_string(),
        s => s.as_str().to_uppercase(),
    };
    println!(
        "run {}  {} {}  {verdict}  ({secs:.1}s, seed {})",
        run.id,
        if run.scenario.name.is_empty() {
            &run.scenario.source
        } else {
            &run.scenario.name
        },
        run.scenario.version,
        run.seed
    );
    if let Some(o) = &run.outcome {
        println!("  summary: {}", o.summary);
        for m in &o.measurements {
            println!("  measured {} = {} {}", m.name, trim(m.value), m.unit);
        }
        for f in &o.findings {
            println!(
                "  [{}] {}{}",
                f.severity,
                f.title,
                if f.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", f.detail)
                }
            );
        }
    }
    if let Some(e) = &run.error {
        println!("  cause: {e}");
    }
    if let Ok(entries) = engine.ledger().entries(run.id) {
        use firedrill::ledger::LedgerState;
        // A signal or a restart is over once made: nothing to revert.
        let (instant, lasting): (Vec<_>, Vec<_>) = entries
            .iter()
            .partition(|e| e.kind == "kill" || e.kind == "restart");
        let mut parts = Vec::new();
        if !instant.is_empty() {
            let kinds: std::collections::BTreeSet<&str> =
                instant.iter().map(|e| e.kind.as_str()).collect();
            parts.push(format!(
                "{} delivered at once ({}), nothing to revert",
                instant.len(),
                kinds.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        if !lasting.is_empty() {
            let reverted = lasting
                .iter()
                .filter(|e| e.state == LedgerState::Reverted)
                .count();
            parts.push(format!("{} lasting, {reverted} reverted", lasting.len()));
        }
        if !parts.is_empty() {
            println!("  faults: {}", parts.join("; "));
        }
    }
}

/// The plan of a dry run: the faults it would have made.
pub(crate) fn plan(run: &Run, engine: &Engine) {
    let Ok(timeline) = engine.history().timeline(run.id) else {
        return;
    };
    println!("plan (dry run, nothing was applied):");
    let mut any = false;
    for ev in timeline {
        if let EventKind::FaultApplied {
            kind,
            target,
            detail,
            duration_ms,
            ..
        } = ev.kind
        {
            any = true;
            let lasting = duration_ms
                .map(|d| {
                    format!(
                        " for up to {}",
                        humantime::format_duration(Duration::from_millis(d))
                    )
                })
                .unwrap_or_default();
            println!(
                "  at {:.2}s: {kind} on {target}: {detail}{lasting}",
                ev.at_us as f64 / 1e6
            );
        }
    }
    if !any {
        println!("  no faults");
    }
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
