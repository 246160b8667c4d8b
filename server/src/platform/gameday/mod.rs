//! Game days: villains write a sealed plan (scenarios from the catalog
//! against registered targets, a start window, a maximum duration,
//! guardrail checks, the signals and cause they expect); a referee starts
//! it, and the start is drawn at random inside the window; responder teams
//! see only that a drill is active until the reveal.
//!
//! ```text
//! plan ─► start (targets up, start drawn) ─► steps launched at the hidden start ─► end
//!             │                                   │ guardrails every tick (breach: abort + reveal)
//!             │                                   │ ledger: first fault applied = t0
//! responders: detected / mitigated / restored ◄─ alerts (Alertmanager) ── restore held green ─► confirmed
//! reveal ─► one timeline, times from t0 (clock pauses excluded), diagnosis ─► review, scoreboard, replay
//! ```
//!
//! Hiding is structural: a game day's runs belong to the pseudo-team
//! `gameday:<id>` (no user has a role in it, so every team route answers
//! 403 to responders), they are left out of `/metrics` and webhooks, and
//! the audit log names the game day, never its scenarios. Views are cut
//! per seat ([`Seat`]): only the plan's seats see the plan before the
//! reveal.

pub mod api;
mod drive;
mod review;
pub(super) mod web;

use super::model::{Role, User};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(crate) use drive::{Live, on_alert, recover};

/// The pseudo-team a game day's runs belong to.
pub(crate) fn run_team(id: &str) -> String {
    format!("gameday:{id}")
}

/// The game day a launched run belongs to, if any.
pub(crate) fn of_run(run: &super::model::LaunchedRun) -> Option<&str> {
    run.team.strip_prefix("gameday:")
}

/// Where a game day is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Written, not started.
    Planned,
    /// Started by the referee: targets up, the start drawn (hidden).
    Armed,
    /// The plan's first step launched.
    Running,
    /// Over: its faults are reverted.
    Ended,
    /// Over, and everything is shown to everyone taking part.
    Revealed,
}

impl Phase {
    /// Whether responders are told a drill is active.
    pub fn active(self) -> bool {
        matches!(self, Phase::Armed | Phase::Running)
    }
}

/// The villains' plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The scenarios, each launched at the drawn start plus its `after`.
    pub steps: Vec<Step>,
    /// The start is drawn between these two offsets from when the referee
    /// starts the game day (e.g. `"0s"` and `"10m"`).
    #[serde(default = "zero")]
    pub start_earliest: String,
    /// The latest start (see `start_earliest`).
    #[serde(default = "zero")]
    pub start_latest: String,
    /// The drill ends (every fault reverted) this long after the start,
    /// clock pauses not counted.
    pub max_duration: String,
    /// Business-impact bounds: drill-file steady-state checks on registered
    /// targets, each with how long it may fail before the whole drill is
    /// aborted and revealed. All green is "service restored".
    #[serde(default)]
    pub guardrails: Vec<Guardrail>,
    /// A responder's "restored" is confirmed when the guardrails stay green
    /// this long.
    #[serde(default = "default_hold")]
    pub restore_hold: String,
    /// Written before the drill.
    #[serde(default)]
    pub expected: Expected,
}

fn zero() -> String {
    "0s".into()
}

fn default_hold() -> String {
    "30s".into()
}

/// One scenario of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// A package requirement (`acme:checkout-latency@^1`, `firedrill:hung-dependency`).
    pub scenario: String,
    /// Its parameters; target parameters name registered targets.
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// When, after the drawn start.
    #[serde(default = "zero")]
    pub after: String,
    /// The exact package it resolved to when it was launched (a replay
    /// runs this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

/// A guardrail: a steady-state check as a drill file writes it
/// (`target`, and `http = "/path"` or `tcp = true` or …, `max_latency`,
/// `timeout`), plus its bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Guardrail {
    /// Its name.
    pub name: String,
    /// How long it may fail without a break before the drill is aborted.
    pub abort_after: String,
    /// The check's keys, as in a drill file's `[[steady_state]]`.
    #[serde(flatten)]
    pub check: serde_json::Map<String, Value>,
}

/// What the villains expect, written before the drill.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// The signals that should reveal it (alert names, dashboards).
    #[serde(default)]
    pub signals: Vec<String>,
    /// The root cause: the target …
    #[serde(default)]
    pub cause_target: String,
    /// … and the kind of fault.
    #[serde(default)]
    pub cause_fault: String,
    /// Anything else.
    #[serde(default)]
    pub notes: String,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GameEvent {
    /// When (Unix ms).
    pub at: u64,
    /// `announced`, `step`, `guardrail-red`, `guardrail-green`,
    /// `mitigated-by-checks`, `detected`, `mitigated`, `restored`,
    /// `alert`, `restore-confirmed`, `restore-rejected`, `clock-paused`,
    /// `clock-resumed`, `ended`, `revealed`.
    pub kind: String,
    /// Who: a user, `alertmanager` or `firedrill`.
    pub by: String,
    /// The responder team, for a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// How it was noticed (an alert, a dashboard, a user report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The suspected target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The suspected kind of fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Free text.
    #[serde(default)]
    pub text: String,
    /// Part of the plan's side: shown to responders only after the reveal.
    #[serde(default)]
    pub sealed: bool,
}

/// A responder's "restored", waiting for the checks to hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Restore {
    /// When it was reported (Unix ms).
    pub reported_at: u64,
    /// By whom.
    pub by: String,
    /// For which team.
    pub team: String,
    /// When the checks confirmed it, once they have.
    #[serde(default)]
    pub confirmed_at: Option<u64>,
}

/// A note a participant adds after the reveal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Note {
    /// When (Unix ms).
    pub at: u64,
    /// Who.
    pub by: String,
    /// In which seat: `villain`, `referee`, `responder`, `admin`.
    pub role: String,
    /// What.
    pub text: String,
}

/// An action item from the review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionItem {
    /// What to do.
    pub text: String,
    /// Who owns it.
    #[serde(default)]
    pub owner: String,
    /// Who wrote it down.
    pub by: String,
}

/// A game day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GameDay {
    /// Its id (`gd-…`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The team whose runners wrote the plan (and may see it).
    pub villains: String,
    /// The user who starts, pauses, aborts and reveals it.
    pub referee: String,
    /// The teams that respond.
    pub responders: Vec<String>,
    /// The sealed plan.
    pub plan: Plan,
    /// What the plan's steps will do: (fault kind, target), sealed.
    #[serde(default)]
    pub planned: Vec<(String, String)>,
    /// The scenarios' seed (a replay uses it again).
    pub seed: u64,
    /// Where it is.
    pub phase: Phase,
    /// Who wrote it.
    pub created_by: String,
    /// When (Unix ms).
    pub created_at: u64,
    /// The game day this one replays.
    #[serde(default)]
    pub replay_of: Option<String>,
    /// When the referee started it.
    #[serde(default)]
    pub armed_at: Option<u64>,
    /// The drawn start (sealed).
    #[serde(default)]
    pub start_at: Option<u64>,
    /// The first fault the ledger applied: t0 of every time.
    #[serde(default)]
    pub first_fault_at: Option<u64>,
    /// When the last fault was reverted.
    #[serde(default)]
    pub faults_cleared_at: Option<u64>,
    /// When it ended.
    #[serde(default)]
    pub ended_at: Option<u64>,
    /// Why it ended.
    #[serde(default)]
    pub end_reason: Option<String>,
    /// The clock is paused since then.
    #[serde(default)]
    pub paused_since: Option<u64>,
    /// Past clock pauses: (from, to).
    #[serde(default)]
    pub pauses: Vec<(u64, u64)>,
    /// Its runs (engine run ids).
    #[serde(default)]
    pub runs: Vec<String>,
    /// Everything that happened, in order.
    #[serde(default)]
    pub events: Vec<GameEvent>,
    /// When the guardrails went green again while a fault was active.
    #[serde(default)]
    pub mitigated_at: Option<u64>,
    /// A responder's "restored", pending or confirmed.
    #[serde(default)]
    pub restore: Option<Restore>,
    /// Notes added after the reveal.
    #[serde(default)]
    pub notes: Vec<Note>,
    /// Action items.
    #[serde(default)]
    pub actions: Vec<ActionItem>,
}

/// Where a user sits at a game day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seat {
    /// Sees the plan: a villain (runner or more in the villains' team), the
    /// referee, or a server admin.
    Plan(&'static str),
    /// A member of a responder team (its name).
    Responder(String),
}

impl GameDay {
    /// `user`'s seat, if any.
    pub(crate) fn seat(&self, user: &User) -> Option<Seat> {
        if user.admin {
            return Some(Seat::Plan("admin"));
        }
        if user.name == self.referee {
            return Some(Seat::Plan("referee"));
        }
        if user
            .teams
            .get(&self.villains)
            .is_some_and(|r| *r >= Role::Runner)
        {
            return Some(Seat::Plan("villain"));
        }
        self.responders
            .iter()
            .find(|t| user.teams.contains_key(*t))
            .map(|t| Seat::Responder(t.clone()))
    }

    /// Clock time between two instants, pauses taken out (ms).
    pub fn clock(&self, from: u64, to: u64) -> u64 {
        let mut paused = 0;
        let open = self.paused_since.map(|s| (s, u64::MAX));
        for &(a, b) in self.pauses.iter().chain(open.iter()) {
            let (a, b) = (a.max(from), b.min(to));
            if b > a {
                paused += b - a;
            }
        }
        to.saturating_sub(from).saturating_sub(paused)
    }

    /// Every pause so far, including one going on, up to `now` (ms).
    pub fn paused_total(&self, now: u64) -> u64 {
        let done: u64 = self.pauses.iter().map(|(a, b)| b - a).sum();
        done + self.paused_since.map_or(0, |s| now.saturating_sub(s))
    }

    pub(crate) fn push(&mut self, event: GameEvent) {
        self.events.push(event);
    }

    /// The measured times.
    pub fn times(&self) -> Times {
        let t0 = self.first_fault_at;
        let since = |at: u64| t0.filter(|t| at >= *t).map(|t| self.clock(t, at));
        let detection = self
            .events
            .iter()
            .filter(|e| e.kind == "detected")
            .find(|e| t0.is_some_and(|t| e.at >= t));
        let restored_by_team = self.restore.as_ref().is_some_and(|r| {
            r.confirmed_at.is_some()
                && t0.is_some_and(|t| r.reported_at >= t)
                && self.faults_cleared_at.is_none_or(|c| r.reported_at <= c)
        });
        Times {
            first_fault_at: t0,
            detect_ms: detection.and_then(|e| since(e.at)),
            detected_by: detection.map(|e| e.source.clone().unwrap_or_else(|| e.by.clone())),
            mitigate_ms: self.mitigated_at.and_then(since),
            restore_ms: if restored_by_team {
                self.restore.as_ref().and_then(|r| since(r.reported_at))
            } else {
                None
            },
            restored_by_team,
            paused_ms: self.pauses.iter().map(|(a, b)| b - a).sum(),
        }
    }

    /// Whether the first detection's suspected cause matches the plan.
    pub fn diagnosis(&self, planned: &[(String, String)]) -> Diagnosis {
        let report = self
            .events
            .iter()
            .filter(|e| e.kind == "detected" && e.team.is_some())
            .find(|e| e.target.is_some() || e.fault.is_some());
        let (expected_target, expected_fault) = if self.plan.expected.cause_target.is_empty() {
            planned
                .first()
                .map(|(k, t)| (t.clone(), k.clone()))
                .unwrap_or_default()
        } else {
            (
                self.plan.expected.cause_target.clone(),
                self.plan.expected.cause_fault.clone(),
            )
        };
        let suspected_target = report.and_then(|e| e.target.clone());
        let suspected_fault = report.and_then(|e| e.fault.clone());
        let target_right = suspected_target.as_deref() == Some(expected_target.as_str());
        let fault_right = suspected_fault.as_deref() == Some(expected_fault.as_str());
        Diagnosis {
            suspected_target,
            suspected_fault,
            expected_target,
            expected_fault,
            target_right,
            fault_right,
        }
    }
}

/// The times of a game day, from the first fault the ledger applied
/// (clock pauses taken out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Times {
    /// t0 (Unix ms).
    pub first_fault_at: Option<u64>,
    /// To the first detection (a responder's report or an alert).
    pub detect_ms: Option<u64>,
    /// What detected it first.
    pub detected_by: Option<String>,
    /// To the guardrails green again while a fault was still active.
    pub mitigate_ms: Option<u64>,
    /// To the team's "restored", confirmed by the guardrails; none when
    /// the drill's end (or an abort) is what restored service.
    pub restore_ms: Option<u64>,
    /// Whether the team restored service (not the drill's end).
    pub restored_by_team: bool,
    /// Clock pauses, in all.
    pub paused_ms: u64,
}

/// The suspected cause against the plan's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Diagnosis {
    /// The target the first detection named.
    pub suspected_target: Option<String>,
    /// The kind of fault it named.
    pub suspected_fault: Option<String>,
    /// The plan's cause: target …
    pub expected_target: String,
    /// … and kind of fault.
    pub expected_fault: String,
    /// Whether the target was right.
    pub target_right: bool,
    /// Whether the kind of fault was right.
    pub fault_right: bool,
}

/// What a responder is shown before the reveal: that a drill is active
/// (not when it started), the referee, their own team's reports and the
/// verdicts on them. Nothing of the plan.
pub(crate) fn responder_view(gd: &GameDay, team: &str) -> Value {
    let status = match gd.phase {
        Phase::Planned => "planned",
        Phase::Armed | Phase::Running => "active",
        Phase::Ended => "ended",
        Phase::Revealed => "revealed",
    };
    let events: Vec<&GameEvent> = gd
        .events
        .iter()
        .filter(|e| !e.sealed && e.team.as_deref().is_none_or(|t| t == team))
        .collect();
    json!({
        "id": gd.id,
        "name": gd.name,
        "status": status,
        "referee": gd.referee,
        "responders": gd.responders,
        "your_team": team,
        "events": events,
        "paused": gd.paused_since.is_some(),
    })
}

/// `ms` as people read a duration (`—` for none).
pub(crate) fn duration_text(ms: Option<u64>) -> String {
    match ms {
        Some(ms) if ms >= 60_000 => format!("{}m {:.1}s", ms / 60_000, (ms % 60_000) as f64 / 1e3),
        Some(ms) => format!("{:.1}s", ms as f64 / 1e3),
        None => "—".into(),
    }
}

/// A time from t0, signed (`—` for none).
pub(crate) fn from_t0_text(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms < 0 => format!("-{}", duration_text(Some(ms.unsigned_abs()))),
        Some(ms) => format!("+{}", duration_text(Some(ms as u64))),
        None => "—".into(),
    }
}

/// Median and 90th percentile (nearest rank) of `values`.
pub(crate) fn median_p90(values: &[u64]) -> (Option<u64>, Option<u64>) {
    if values.is_empty() {
        return (None, None);
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (Some(rank(0.5)), Some(rank(0.9)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_leaves_pauses_out() {
        let mut gd: GameDay = serde_json::from_value(json!({
            "id": "gd-1", "name": "n", "villains": "v", "referee": "r", "responders": [],
            "plan": {"steps": [], "max_duration": "1m"}, "seed": 1, "phase": "running",
            "created_by": "r", "created_at": 0,
        }))
        .unwrap();
        gd.pauses = vec![(1_000, 3_000)];
        assert_eq!(gd.clock(0, 10_000), 8_000);
        assert_eq!(gd.clock(2_000, 10_000), 7_000);
        assert_eq!(gd.clock(5_000, 10_000), 5_000);
        gd.paused_since = Some(9_000);
        assert_eq!(gd.clock(5_000, 10_000), 4_000);
        assert_eq!(gd.paused_total(10_000), 3_000);
    }

    #[test]
    fn median_and_p90_are_ranks_not_means() {
        assert_eq!(median_p90(&[]), (None, None));
        assert_eq!(median_p90(&[5]), (Some(5), Some(5)));
        assert_eq!(median_p90(&[1, 2, 3, 100]), (Some(2), Some(100)));
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(median_p90(&ten), (Some(5), Some(9)));
    }
}
