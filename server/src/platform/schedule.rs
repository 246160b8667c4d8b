//! Schedules: a team's launch (a package with parameters and targets) on a
//! cron expression (five fields, or six with seconds first; croner's
//! POSIX/Vixie syntax), with Chaos Mesh's concurrency policy — `forbid`
//! skips a firing while the schedule's last run is still going, `allow`
//! starts another — pause and resume, and the next times it fires. A
//! halt-all holds every schedule (firings are skipped and recorded) until
//! resume. A firing launches as the schedule's author, so it is refused
//! if they lost the runner role, with the same policy as any launch.

use super::api::{Launch, launch_run};
use super::auth::{Principal, Via};
use super::model::Role;
use super::{Platform, now_ms};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a schedule does when it fires while its last run is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// Skip the firing.
    #[default]
    Forbid,
    /// Start another run.
    Allow,
}

/// A schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Schedule {
    /// Its id.
    pub id: String,
    /// The team it launches for.
    pub team: String,
    /// Who made it (firings launch as them).
    pub author: String,
    /// The cron expression.
    pub cron: String,
    /// The package requirement.
    pub scenario: String,
    /// Parameters.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Which registered target plays each needed target.
    #[serde(default)]
    pub targets: BTreeMap<String, String>,
    /// Plan only.
    #[serde(default)]
    pub dry_run: bool,
    /// Overlaps.
    #[serde(default)]
    pub concurrency: Concurrency,
    /// Paused: it does not fire.
    #[serde(default)]
    pub paused: bool,
    /// When it was made (Unix ms).
    pub created_at: u64,
    /// What its firings did, newest last (at most [`HISTORY`]).
    #[serde(default)]
    pub firings: Vec<Firing>,
}

/// How many firings a schedule remembers.
pub const HISTORY: usize = 20;

/// One firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Firing {
    /// When (Unix ms).
    pub at: u64,
    /// The run it started, if it did.
    pub run: Option<String>,
    /// `launched`, `skipped` or `refused`.
    pub outcome: String,
    /// Why, when not launched.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Parse a cron expression, naming what is wrong.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::new().parse(expr).map_err(|e| {
        format!(
            "cron {expr:?}: {e}; write five fields (minute hour day-of-month month day-of-week, e.g. \"*/15 * * * *\") or six with seconds first"
        )
    })
}

/// The next `n` times (Unix ms) `expr` fires after `after_ms`.
pub fn next_times(expr: &str, after_ms: u64, n: usize) -> Vec<u64> {
    let Ok(cron) = parse_cron(expr) else {
        return Vec::new();
    };
    // Cron has whole seconds; croner steps from a start with milliseconds
    // unevenly, so start from the second `after_ms` falls in.
    let Some(start) = chrono::DateTime::from_timestamp((after_ms / 1000) as i64, 0) else {
        return Vec::new();
    };
    // Stepped by hand: croner 3.0's iterator moves a second past each
    // occurrence before its exclusive search, so it skips every other one
    // of a per-second schedule.
    let mut out = Vec::with_capacity(n);
    let mut t = start;
    while out.len() < n {
        let Ok(next) = cron.find_next_occurrence(&t, false) else {
            break;
        };
        let ms = next.timestamp_millis() as u64;
        if ms > after_ms {
            out.push(ms);
        }
        t = next;
    }
    out
}

impl Platform {
    /// Fire the schedules that are due, forever (every 250 ms).
    pub(crate) async fn run_schedules(self) {
        let mut checked = now_ms();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = now_ms();
            let schedules = match self.inner.store.schedules() {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("schedules: {e}");
                    continue;
                }
            };
            for s in schedules {
                // Each time it was due since the last check counts once.
                let due = next_times(&s.cron, checked, 1)
                    .first()
                    .is_some_and(|t| *t <= now);
                if due && !s.paused {
                    self.fire(s, now).await;
                }
            }
            checked = now;
        }
    }

    async fn fire(&self, mut s: Schedule, now: u64) {
        let skip = |why: String| Firing {
            at: now,
            run: None,
            outcome: "skipped".into(),
            detail: why,
        };
        let last_active = s
            .firings
            .iter()
            .rev()
            .find_map(|f| f.run.clone())
            .and_then(|r| r.parse().ok())
            .is_some_and(|id| self.inner.active.lock().unwrap().contains_key(&id));
        let firing = if let Some(halt) = self.engine().halt_state() {
            skip(format!("held by halt-all ({halt}); resume to let it fire"))
        } else if s.concurrency == Concurrency::Forbid && last_active {
            skip("its last run is still going (concurrency: forbid)".into())
        } else {
            match self.inner.store.user(&s.author) {
                Ok(Some(user)) if user.role_in(&s.team).is_some_and(|r| r >= Role::Runner) => {
                    let who = Principal {
                        user,
                        via: Via::Token(format!("schedule {}", s.id)),
                    };
                    let launch = Launch {
                        scenario: s.scenario.clone(),
                        params: s.params.clone(),
                        targets: s.targets.clone(),
                        dry_run: s.dry_run,
                        ..Default::default()
                    };
                    match launch_run(self, &who, &s.team, launch).await {
                        Ok(run) => Firing {
                            at: now,
                            run: Some(run.run),
                            outcome: "launched".into(),
                            detail: String::new(),
                        },
                        Err(r) => Firing {
                            at: now,
                            run: None,
                            outcome: "refused".into(),
                            detail: r.message,
                        },
                    }
                }
                _ => Firing {
                    at: now,
                    run: None,
                    outcome: "refused".into(),
                    detail: format!(
                        "its author {:?} is no longer a runner in team {:?}",
                        s.author, s.team
                    ),
                },
            }
        };
        self.audit(
            &s.author,
            "schedule-fired",
            &format!("{} {}", s.team, s.id),
            &firing.outcome,
            &firing.detail,
        );
        // Reread: it may have been paused or removed meanwhile.
        if let Ok(Some(current)) = self.inner.store.schedule(&s.id) {
            s = current;
            s.firings.push(firing);
            let extra = s.firings.len().saturating_sub(HISTORY);
            s.firings.drain(..extra);
            if let Err(e) = self.inner.store.put_schedule(&s) {
                tracing::error!("schedule {}: {e}", s.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_times_step_by_the_expression() {
        // 2026-12-06 12:00:00.500 UTC
        let t = 1_796_558_400_500;
        assert_eq!(
            next_times("* * * * * *", t, 3),
            [t + 500, t + 1500, t + 2500]
        );
        let every_15 = next_times("*/15 * * * *", t, 2);
        assert_eq!(every_15[1] - every_15[0], 15 * 60 * 1000);
        assert!(every_15[0] > t && every_15[0] <= t + 15 * 60 * 1000);
        assert!(parse_cron("61 * * * *").is_err());
        assert!(next_times("not cron", t, 3).is_empty());
    }
}
