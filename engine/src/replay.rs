//! Replay and comparison of runs. A run records everything needed to run it
//! again: the component (stored by sha256 in the data dir), its parameters,
//! its seed and its drill's text. [`Engine::replay`] runs it again and
//! [`first_divergence`] finds the first event where two timelines part.
//!
//! Timelines are compared by a *signature* per event that keeps what the
//! scenario controls and so should repeat (calls and their arguments,
//! random draws, faults and their reverts, marks, the final status) and
//! drops what the environment decides (times, latencies, probe answers,
//! steady-state checks, logs, guest output). A service that answers
//! differently still shows up when the scenario then acts differently.

use crate::engine::{Engine, EngineError};
use crate::history::{Event, EventKind, Run, RunId};
use crate::run::RunSpec;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where two timelines part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// Index in the compared (signed) events, from 0.
    pub index: usize,
    /// The first run's event there (none: it ended first).
    pub old: Option<String>,
    /// The second run's event there (none: it ended first).
    pub new: Option<String>,
}

/// The result of a replay.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The run replayed.
    pub original: Run,
    /// The new run.
    pub run: Run,
    /// Where the new timeline first differs, if it does.
    pub divergence: Option<Divergence>,
}

/// The part of an event that a faithful replay repeats; `None` for events
/// that are not compared.
pub fn signature(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::Started => "started".into(),
        EventKind::Call { call, args, result } => {
            if call.starts_with("probes.") {
                // What the service answered is the environment's.
                return Some(format!("{call}({args})"));
            }
            let result = result.to_string();
            if call == "host.sleep" {
                // Scenarios often sleep "the rest" of a period: the length
                // follows measured time, so only the call itself is compared.
                return Some(format!("{call} {result}"));
            }
            format!("{call}({args}) {result}")
        }
        EventKind::FaultApplied {
            kind,
            target,
            detail,
            planned,
            ..
        } => format!(
            "{} {kind} on {target}: {detail}",
            if *planned { "planned fault" } else { "fault" }
        ),
        EventKind::FaultReverted {
            fault,
            reason,
            error,
        } => {
            // A scenario that reverts when its fault's duration is up races
            // the duration's timer: which of the two ended it is timing.
            let reason = match reason.as_str() {
                "duration" | "scenario" => "scenario or duration",
                other => other,
            };
            format!(
                "revert {fault} ({reason}){}",
                if error.is_some() { " failed" } else { "" }
            )
        }
        EventKind::Mark { name, detail } => format!("mark {name}: {detail}"),
        EventKind::Ended { status, .. } => format!("ended {status}"),
        EventKind::Check { .. } | EventKind::Log { .. } | EventKind::Output { .. } => return None,
    })
}

/// The first place where `a` and `b` differ, comparing signatures. A run
/// of equal signatures counts once: a scenario that polls until a service
/// is back makes as many identical calls as the service takes, and that
/// is the environment's doing. A sleep that ends as its fault's duration
/// does races that duration's revert, so the two, side by side, count in
/// one order (the revert first).
pub fn first_divergence(a: &[Event], b: &[Event]) -> Option<Divergence> {
    let signed = |t: &[Event]| {
        let mut s: Vec<String> = t.iter().filter_map(|e| signature(&e.kind)).collect();
        s.dedup();
        for i in 1..s.len() {
            if s[i - 1].starts_with("host.sleep ") && s[i].ends_with("(scenario or duration)") {
                s.swap(i - 1, i);
            }
        }
        s
    };
    let (sa, sb) = (signed(a), signed(b));
    let n = sa.len().max(sb.len());
    (0..n)
        .find(|&i| sa.get(i) != sb.get(i))
        .map(|index| Divergence {
            index,
            old: sa.get(index).cloned(),
            new: sb.get(index).cloned(),
        })
}

/// A replay ready to start: the run to repeat, the drill it ran under
/// (whose targets the caller starts) and a spec with the same component,
/// parameters, seed, policy, limits and checks.
#[derive(Debug)]
pub struct ReplayPlan {
    /// The run replayed.
    pub original: Run,
    /// Its drill, rebuilt from the recorded text.
    pub drill: crate::Drill,
    /// The spec to start once `drill`'s targets run (set `spec.targets`).
    pub spec: RunSpec,
}

impl Engine {
    /// Run `id` again with the same component, parameters, seed and drill,
    /// and compare the timelines.
    pub async fn replay(&self, id: RunId) -> Result<Replay, EngineError> {
        let mut plan = self.plan_replay(id)?;
        let targets = self
            .start_targets(&plan.drill.targets)
            .await
            .map_err(EngineError::Replay)?;
        plan.spec.targets = targets.clone();
        let run = self.run(plan.spec).await;
        targets.shutdown().await;
        self.compare(plan.original, run?)
    }

    /// What it takes to replay run `id` (see [`Engine::replay`], which
    /// does all of it): for callers that start the run themselves, to
    /// follow or halt it.
    pub fn plan_replay(&self, id: RunId) -> Result<ReplayPlan, EngineError> {
        let original = self
            .history()
            .get_run(id)?
            .ok_or_else(|| EngineError::Replay(format!("no run {id} in history")))?;
        let bytes = self.component(&original.scenario.sha256).ok_or_else(|| {
            EngineError::Replay(format!(
                "the component of run {id} (sha256 {}) is not stored in this data dir",
                original.scenario.sha256
            ))
        })?;
        let scenario = self.load(&bytes, &original.scenario.source)?;
        let drill = match &original.drill_text {
            Some(text) => {
                let path = original
                    .drill
                    .clone()
                    .unwrap_or_else(|| "drill.toml".into());
                crate::Drill::parse(text, Path::new(&path)).map_err(|e| {
                    EngineError::Replay(format!("the recorded drill no longer parses: {e}"))
                })?
            }
            None => crate::Drill::default(),
        };
        let mut spec = RunSpec::new(scenario);
        spec.params = original.params.clone();
        spec.seed = Some(original.seed);
        spec.policy = drill.policy.clone();
        spec.limits = drill.limits.clone();
        spec.checks = drill.checks.clone();
        spec.dry_run = original.dry_run;
        spec.drill = original.drill.clone();
        spec.drill_text = original.drill_text.clone();
        Ok(ReplayPlan {
            original,
            drill,
            spec,
        })
    }

    /// Compare a replayed run with the original.
    pub fn compare(&self, original: Run, run: Run) -> Result<Replay, EngineError> {
        let divergence = first_divergence(
            &self.history().timeline(original.id)?,
            &self.history().timeline(run.id)?,
        );
        Ok(Replay {
            original,
            run,
            divergence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> Event {
        Event {
            seq: 0,
            at_us: 0,
            kind,
        }
    }

    #[test]
    fn what_the_environment_answers_does_not_count_but_calls_and_draws_do() {
        let probe = |status: u16, latency: u64| {
            ev(EventKind::Call {
                call: "probes.http".into(),
                args: serde_json::json!({"target": "api"}),
                result: serde_json::json!({"ok": {"status": status, "latency_ns": latency}}),
            })
        };
        let draw = |v: u64| {
            ev(EventKind::Call {
                call: "host.random".into(),
                args: serde_json::json!({}),
                result: serde_json::json!({ "ok": v }),
            })
        };
        let log = ev(EventKind::Log {
            level: "info".into(),
            message: "took 3ms".into(),
        });
        let a = [probe(200, 1_000), log.clone(), draw(7)];
        let b = [probe(200, 9_000), draw(7)];
        assert_eq!(first_divergence(&a, &b), None);
        let c = [probe(200, 1_000), draw(8)];
        let d = first_divergence(&a, &c).unwrap();
        assert_eq!(d.index, 1);
        assert_eq!(d.new.as_deref(), Some("host.random({}) {\"ok\":8}"));
        // A service that answered 503 this time is the environment's doing;
        // probing another target is the scenario's.
        let e = [probe(503, 1_000), draw(7)];
        assert_eq!(first_divergence(&a, &e), None);
        let other = ev(EventKind::Call {
            call: "probes.http".into(),
            args: serde_json::json!({"target": "db"}),
            result: serde_json::json!({"ok": {"status": 200, "latency_ns": 1}}),
        });
        assert_eq!(first_divergence(&a, &[other, draw(7)]).unwrap().index, 0);
        // Steady-state checks come and go with timing: never compared.
        let check = ev(EventKind::Check {
            name: "api".into(),
            phase: crate::history::Phase::During,
            ok: false,
            detail: String::new(),
        });
        assert_eq!(first_divergence(&a, &[probe(200, 5), check, draw(7)]), None);
    }

    #[test]
    fn a_sleep_and_the_duration_revert_it_races_count_in_either_order() {
        let sleep = ev(EventKind::Call {
            call: "host.sleep".into(),
            args: serde_json::json!({"ns": 5}),
            result: serde_json::json!({"ok": null}),
        });
        let revert = |reason: &str| {
            ev(EventKind::FaultReverted {
                fault: 0,
                reason: reason.into(),
                error: None,
            })
        };
        let ended = ev(EventKind::Ended {
            status: crate::history::RunStatus::Passed,
            error: None,
        });
        let then = [revert("duration"), sleep.clone(), ended.clone()];
        let now = [sleep.clone(), revert("scenario"), ended.clone()];
        assert_eq!(first_divergence(&then, &now), None);
        // A revert for another reason is not part of that race.
        let failed = [sleep, revert("halt"), ended];
        assert!(first_divergence(&then, &failed).is_some());
    }
}
