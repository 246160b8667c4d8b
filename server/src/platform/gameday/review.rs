//! After the reveal: the review, shaped like a blameless postmortem
//! (Markdown and JSON), and the scoreboard over every revealed game day,
//! per team and per scenario, as medians, 90th percentiles and every
//! point (never means: with few incidents a mean misleads).

use super::api::timeline;
use super::{GameDay, Phase, duration_text, from_t0_text, median_p90};
use crate::platform::store::StoreError;
use crate::platform::{Platform, now_ms};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn clock_time(unix_ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms as i64)
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// The review as JSON.
pub(crate) fn json(p: &Platform, gd: &GameDay) -> Value {
    json!({
        "gameday": {
            "id": gd.id, "name": gd.name, "villains": gd.villains, "referee": gd.referee,
            "responders": gd.responders, "replay_of": gd.replay_of, "seed": gd.seed,
            "ended_at": gd.ended_at, "end_reason": gd.end_reason,
        },
        "plan": gd.plan,
        "planned_faults": gd.planned,
        "times": gd.times(),
        "diagnosis": gd.diagnosis(&gd.planned),
        "timeline": timeline(p, gd),
        "notes": gd.notes,
        "action_items": gd.actions,
        "written_at": now_ms(),
    })
}

/// The review as Markdown.
pub(crate) fn markdown(p: &Platform, gd: &GameDay) -> String {
    let t = gd.times();
    let d = gd.diagnosis(&gd.planned);
    let mut o = String::new();
    let _ = writeln!(o, "# Game day review: {} ({})\n", gd.name, gd.id);
    let _ = writeln!(
        o,
        "A blameless review: it describes what the system and the people did, to learn from it, not who to blame.\n"
    );
    let _ = writeln!(o, "## Summary\n");
    let _ = writeln!(
        o,
        "- Villains: {}; referee: {}; responders: {}",
        gd.villains,
        gd.referee,
        gd.responders.join(", ")
    );
    if let Some(r) = &gd.replay_of {
        let _ = writeln!(
            o,
            "- A replay of {r} (same packages, parameters and seed {})",
            gd.seed
        );
    }
    let faults: Vec<String> = gd
        .planned
        .iter()
        .map(|(k, t)| format!("{k} on {t}"))
        .collect();
    let _ = writeln!(
        o,
        "- Faults: {}",
        if faults.is_empty() {
            "none".into()
        } else {
            faults.join(", ")
        }
    );
    let _ = writeln!(
        o,
        "- Ended: {}",
        gd.end_reason.as_deref().unwrap_or("not yet")
    );
    let _ = writeln!(
        o,
        "- First fault (t0): {}",
        t.first_fault_at
            .map_or("no fault was applied".into(), clock_time)
    );
    let _ = writeln!(
        o,
        "- Time to detect: {}{}",
        duration_text(t.detect_ms),
        t.detected_by
            .as_ref()
            .map_or(String::new(), |b| format!(" (first: {b})"))
    );
    let _ = writeln!(o, "- Time to mitigate: {}", duration_text(t.mitigate_ms));
    let _ = writeln!(
        o,
        "- Time to restore: {}",
        if t.restored_by_team {
            format!(
                "{} (confirmed by the guardrails)",
                duration_text(t.restore_ms)
            )
        } else {
            "not restored by the team (the drill's end or an abort restored service)".into()
        }
    );
    if t.paused_ms > 0 {
        let _ = writeln!(
            o,
            "- The clock was paused for {} (left out of every time)",
            duration_text(Some(t.paused_ms))
        );
    }
    let _ = writeln!(o, "\n## Expected versus what happened\n");
    let _ = writeln!(o, "| | expected (written before the drill) | happened |");
    let _ = writeln!(o, "|---|---|---|");
    let _ = writeln!(
        o,
        "| detection | {} | {} |",
        if gd.plan.expected.signals.is_empty() {
            "—".into()
        } else {
            gd.plan.expected.signals.join(", ")
        },
        t.detected_by
            .clone()
            .unwrap_or_else(|| "not detected".into())
    );
    let mark = |right: bool| if right { "right" } else { "wrong" };
    let _ = writeln!(
        o,
        "| cause: target | {} | {} ({}) |",
        d.expected_target,
        d.suspected_target
            .clone()
            .unwrap_or_else(|| "not named".into()),
        mark(d.target_right)
    );
    let _ = writeln!(
        o,
        "| cause: fault | {} | {} ({}) |",
        d.expected_fault,
        d.suspected_fault
            .clone()
            .unwrap_or_else(|| "not named".into()),
        mark(d.fault_right)
    );
    if !gd.plan.expected.notes.is_empty() {
        let _ = writeln!(o, "\nThe villains' notes: {}", gd.plan.expected.notes);
    }
    let _ = writeln!(o, "\n## Timeline\n");
    let _ = writeln!(o, "| from t0 | clock (UTC) | lane | who | what |");
    let _ = writeln!(o, "|---|---|---|---|---|");
    for l in timeline(p, gd) {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            from_t0_text(l.from_t0_ms),
            clock_time(l.at),
            l.lane,
            l.who.replace('|', "/"),
            l.text.replace('|', "/")
        );
    }
    let _ = writeln!(o, "\n## Notes\n");
    if gd.notes.is_empty() {
        let _ = writeln!(o, "None yet.");
    }
    for n in &gd.notes {
        let _ = writeln!(o, "- **{}** ({}): {}", n.by, n.role, n.text);
    }
    let _ = writeln!(o, "\n## Action items\n");
    if gd.actions.is_empty() {
        let _ = writeln!(o, "None yet.");
    }
    for a in &gd.actions {
        let owner = if a.owner.is_empty() {
            "unowned".to_string()
        } else {
            a.owner.clone()
        };
        let _ = writeln!(o, "- [ ] {} — {owner}", a.text);
    }
    o
}

/// One drill's times for one responder team.
fn row(gd: &GameDay, team: &str) -> Value {
    let t = gd.times();
    let scenarios: Vec<String> = gd
        .plan
        .steps
        .iter()
        .map(|s| s.package.clone().unwrap_or_else(|| s.scenario.clone()))
        .collect();
    // Only the team that reported is credited; an alert counts for all.
    let team_detected = gd.events.iter().any(|e| {
        e.kind == "detected" && (e.team.as_deref() == Some(team) || e.by == "alertmanager")
    });
    json!({
        "gameday": gd.id, "name": gd.name, "team": team, "scenarios": scenarios,
        "at": gd.first_fault_at.or(gd.armed_at),
        "detect_ms": if team_detected { t.detect_ms } else { None },
        "mitigate_ms": t.mitigate_ms,
        "restore_ms": if gd.restore.as_ref().is_some_and(|r| r.team == team) { t.restore_ms } else { None },
        "restored_by_team": t.restored_by_team && gd.restore.as_ref().is_some_and(|r| r.team == team),
    })
}

fn summary(rows: &[&Value]) -> Value {
    let mut out = serde_json::Map::new();
    for metric in ["detect_ms", "mitigate_ms", "restore_ms"] {
        let points: Vec<u64> = rows.iter().filter_map(|r| r[metric].as_u64()).collect();
        let (median, p90) = median_p90(&points);
        out.insert(
            metric.into(),
            json!({"median": median, "p90": p90, "points": points, "missing": rows.len() - points.len()}),
        );
    }
    out.insert("drills".into(), json!(rows.len()));
    Value::Object(out)
}

/// Every revealed game day's times, per team and per scenario.
pub(crate) fn scoreboard(p: &Platform) -> Result<Value, StoreError> {
    let mut rows = Vec::new();
    for gd in p.inner.store.gamedays()? {
        if gd.phase != Phase::Revealed {
            continue;
        }
        for team in &gd.responders {
            rows.push(row(&gd, team));
        }
    }
    rows.sort_by_key(|r| r["at"].as_u64().unwrap_or(0));
    let mut by_team: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    let mut by_scenario: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &rows {
        by_team
            .entry(r["team"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(r);
        for s in r["scenarios"].as_array().into_iter().flatten() {
            let name = s.as_str().unwrap_or("");
            // Per scenario across versions: `ns:name`.
            let name = name.split('@').next().unwrap_or(name).to_string();
            by_scenario.entry(name).or_default().push(r);
        }
    }
    Ok(json!({
        "rows": rows,
        "by_team": by_team.iter().map(|(k, v)| (k.clone(), summary(v))).collect::<BTreeMap<_, _>>(),
        "by_scenario": by_scenario.iter().map(|(k, v)| (k.clone(), summary(v))).collect::<BTreeMap<_, _>>(),
    }))
}
