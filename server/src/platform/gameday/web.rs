//! The game day pages: the list (and a form to write a plan), one game
//! day's page cut per seat (the plan's seats get the plan, the referee's
//! controls and the timeline, reloaded every 3 s while the drill runs;
//! responders get "a drill is active" and the report form, nothing else,
//! until the reveal), and the scoreboard.

use super::api::{Line, full_view, perform, seated, timeline};
use super::{GameDay, Phase, Seat, duration_text, from_t0_text};
use crate::platform::auth::Principal;
use crate::platform::web::{csrf_of, error_page, page};
use crate::platform::{ApiError, Platform};
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Fault kinds offered in the report form (as drill files name them).
const FAULT_KINDS: &[&str] = &[
    "kill",
    "pause",
    "restart",
    "delay",
    "fail-auth",
    "http-error",
    "bandwidth",
    "blackhole",
    "refuse",
    "reset-peer",
    "timeout",
    "slow-close",
    "slicer",
    "limit-data",
    "http-abort",
    "http-modify",
    "cpu-stress",
    "memory-stress",
    "disk-fill",
];

fn err(e: ApiError) -> Response {
    error_page(e.0, &e.1)
}

pub(crate) async fn list_page(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
) -> Response {
    let all = match p.inner.store.gamedays() {
        Ok(all) => all,
        Err(e) => return err(e.into()),
    };
    let csrf = csrf_of(&who);
    let can_plan = who
        .user
        .highest_role()
        .is_some_and(|r| r >= crate::platform::model::Role::Runner);
    let rows: Vec<(GameDay, Seat)> = all
        .into_iter()
        .filter_map(|gd| {
            let seat = gd.seat(&who.user)?;
            let hidden = matches!(seat, Seat::Responder(_)) && gd.phase == Phase::Planned;
            (!hidden).then_some((gd, seat))
        })
        .collect();
    page(
        "Game days",
        Some(&who),
        html! {
            h1 { "Game days" }
            p { a href="/scoreboard" id="scoreboard-link" { "Scoreboard" } }
            table id="gamedays" {
                tr { th { "Game day" } th { "Status" } th { "Your seat" } }
                @for (gd, seat) in &rows {
                    tr data-gameday=(gd.id) {
                        td { a href={ "/gamedays/" (gd.id) } { (gd.name) } }
                        td { (status_for(gd, seat)) }
                        td { (seat_name(seat)) }
                    }
                }
            }
            @if can_plan {
                h2 { "Write a plan" }
                p { "The villains' plan, as the API takes it (POST /api/v1/gamedays): "
                    code { "name, villains, referee, responders, plan { steps, start_earliest, start_latest, max_duration, guardrails, restore_hold, expected }" } "." }
                form method="post" action="/gamedays" id="plan-form" {
                    input type="hidden" name="csrf" value=(csrf);
                    textarea name="plan" id="plan-json" rows="16" cols="90" {}
                    p { button id="plan-submit" { "Write it down (sealed)" } }
                }
            }
        },
    )
}

fn seat_name(seat: &Seat) -> String {
    match seat {
        Seat::Plan(r) => r.to_string(),
        Seat::Responder(t) => format!("responder ({t})"),
    }
}

fn status_for(gd: &GameDay, seat: &Seat) -> &'static str {
    match (gd.phase, seat) {
        (Phase::Armed | Phase::Running, Seat::Responder(_)) => "active",
        (Phase::Planned, _) => "planned",
        (Phase::Armed, _) => "armed (waiting for the hidden start)",
        (Phase::Running, _) => "running",
        (Phase::Ended, _) => "ended",
        (Phase::Revealed, _) => "revealed",
    }
}

pub(crate) async fn create_form(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let text = form.get("plan").map(String::as_str).unwrap_or("");
    let input = match serde_json::from_str(text) {
        Ok(i) => i,
        Err(e) => {
            return error_page(
                http::StatusCode::BAD_REQUEST,
                &format!("the plan, line {} column {}: {e}", e.line(), e.column()),
            );
        }
    };
    match super::api::plan(&p, &who, input, None).await {
        Ok(gd) => Redirect::to(&format!("/gamedays/{}", gd.id)).into_response(),
        Err(e) => err(e),
    }
}

pub(crate) async fn action_form(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((id, action)): Path<(String, String)>,
    Form(mut form): Form<BTreeMap<String, String>>,
) -> Response {
    form.remove("csrf");
    let body = match action.as_str() {
        "replay" => {
            let responders: Vec<String> = form
                .get("responders")
                .map(|s| {
                    s.split(',')
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let targets: BTreeMap<String, String> = form
                .get("targets")
                .map(|s| {
                    s.split(',')
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            json!({"name": form.get("name").cloned().unwrap_or_default(), "responders": responders, "targets": targets})
        }
        _ => json!(form),
    };
    let bytes = match action.as_str() {
        "start" | "pause" | "resume" | "abort" | "reveal" => Vec::new(),
        _ => serde_json::to_vec(&body).unwrap_or_default(),
    };
    match perform(&p, &who, &id, &action, &bytes).await {
        Ok((_, v)) if action == "replay" => {
            Redirect::to(&format!("/gamedays/{}", v["id"].as_str().unwrap_or(""))).into_response()
        }
        Ok(_) => Redirect::to(&format!("/gamedays/{id}")).into_response(),
        Err(e) => err(e),
    }
}

pub(crate) async fn gameday_page(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let (gd, seat) = match seated(&p, &who, &id) {
        Ok(x) => x,
        Err(e) => return err(e),
    };
    let body = match &seat {
        Seat::Responder(team) if gd.phase != Phase::Revealed => responder(&p, &gd, team, &who),
        _ => plan_side(&p, &gd, &seat, &who),
    };
    page(&gd.name, Some(&who), body)
}

fn responder(p: &Platform, gd: &GameDay, team: &str, who: &Principal) -> Markup {
    let csrf = csrf_of(who);
    let targets = crate::platform::web::target_names(p);
    let view = super::responder_view(gd, team);
    let events = view["events"].as_array().cloned().unwrap_or_default();
    html! {
        h1 { (gd.name) }
        @if gd.phase.active() {
            p.alert id="drill-active" role="status" {
                "A drill is active on your services (team " (team) "). Watch them; report what you notice. "
                "Referee: " (gd.referee) "."
                @if gd.paused_since.is_some() { " The clock is paused." }
            }
            h2 { "Report" }
            form method="post" action={ "/gamedays/" (gd.id) "/reports" } id="report-form" {
                input type="hidden" name="csrf" value=(csrf);
                label { "What " select name="kind" id="report-kind" {
                    option value="detected" { "detected: we see a problem" }
                    option value="mitigated" { "mitigated: we worked around it" }
                    option value="restored" { "restored: service is back" }
                } }
                label { "How you noticed (alert, dashboard, user report) " input type="text" name="source" id="report-source"; }
                label { "Suspected target " select name="target" id="report-target" {
                    option value="" { "—" }
                    @for t in &targets { option value=(t) { (t) } }
                } }
                label { "Suspected fault " select name="fault" id="report-fault" {
                    option value="" { "—" }
                    @for k in FAULT_KINDS { option value=(k) { (k) } }
                } }
                label { "Notes " input type="text" name="text" id="report-text"; }
                button id="report-submit" { "Report" }
            }
        } @else {
            p id="drill-over" { "The drill has ended. The referee reveals the plan next." }
        }
        h2 { "Your team's reports" }
        ul id="reports" {
            @for e in &events {
                li data-kind=(e["kind"].as_str().unwrap_or("")) {
                    (e["kind"].as_str().unwrap_or("")) " by " (e["by"].as_str().unwrap_or(""))
                    ": " (e["text"].as_str().unwrap_or(""))
                    @if let Some(s) = e["source"].as_str() { " [source: " (s) "]" }
                }
            }
        }
    }
}

fn plan_side(p: &Platform, gd: &GameDay, seat: &Seat, who: &Principal) -> Markup {
    let csrf = csrf_of(who);
    let v = full_view(p, gd);
    let t = gd.times();
    let d = gd.diagnosis(&gd.planned);
    let referee = matches!(seat, Seat::Plan("referee" | "admin"));
    let lines = timeline(p, gd);
    let control = |action: &str, label: &str| {
        html! {
            form method="post" action={ "/gamedays/" (gd.id) "/" (action) } style="display:inline" {
                input type="hidden" name="csrf" value=(csrf);
                button id={ "gameday-" (action) } { (label) }
            }
        }
    };
    html! {
        // The plan's seats watch it live: the page reloads while it runs.
        @if gd.phase.active() {
            script { (maud::PreEscaped("setTimeout(function(){location.reload()},3000)")) }
        }
        h1 { (gd.name) }
        p id="gameday-status" data-phase=(v["phase"].as_str().unwrap_or("")) {
            "Status: " strong { (status_for(gd, seat)) }
            " · villains " (gd.villains) " · referee " (gd.referee) " · responders " (gd.responders.join(", "))
            @if let Some(r) = &gd.end_reason { " · ended: " span id="end-reason" { (r) } }
            @if gd.paused_since.is_some() { " · " strong { "clock paused" } }
        }
        @if referee {
            p id="referee-controls" {
                @match gd.phase {
                    Phase::Planned => { (control("start", "Start (the start is drawn in the window)")) }
                    Phase::Armed | Phase::Running => {
                        @if gd.paused_since.is_some() { (control("resume", "Resume the clock")) }
                        @else { (control("pause", "Pause the clock")) }
                        " " (control("abort", "Abort (revert everything now)"))
                    }
                    Phase::Ended => { (control("reveal", "Reveal")) }
                    Phase::Revealed => {}
                }
            }
        }
        h2 { "Times (from the first fault, pauses left out)" }
        table id="times" {
            tr { th { "first fault (t0)" } td data-time="t0" { (t.first_fault_at.map_or("—".to_string(), |_| "recorded".into())) } }
            tr { th { "to detect" } td data-time="detect" { (duration_text(t.detect_ms)) @if let Some(b) = &t.detected_by { " (" (b) ")" } } }
            tr { th { "to mitigate" } td data-time="mitigate" { (duration_text(t.mitigate_ms)) } }
            tr { th { "to restore" } td data-time="restore" {
                @if t.restored_by_team { (duration_text(t.restore_ms)) " (confirmed by the guardrails)" }
                @else if gd.phase.active() { "—" }
                @else { "not restored by the team" }
            } }
        }
        @if !gd.phase.active() && gd.phase != Phase::Planned {
            h2 { "Diagnosis" }
            p id="diagnosis" data-target-right=(d.target_right) data-fault-right=(d.fault_right) {
                "Suspected: " (d.suspected_target.clone().unwrap_or_else(|| "no target named".into()))
                " / " (d.suspected_fault.clone().unwrap_or_else(|| "no fault named".into()))
                ". Planned: " (d.expected_target) " / " (d.expected_fault) ". "
                "Target " (if d.target_right { "right" } else { "wrong" }) ", fault " (if d.fault_right { "right" } else { "wrong" }) "."
            }
        }
        h2 { "The plan" }
        table id="plan" {
            @for (i, s) in gd.plan.steps.iter().enumerate() {
                tr { th { "step " (i + 1) } td { (s.package.clone().unwrap_or_else(|| s.scenario.clone())) " +" (s.after) " " code { (serde_json::to_string(&s.params).unwrap_or_default()) } } }
            }
            tr { th { "start window" } td { (gd.plan.start_earliest) " to " (gd.plan.start_latest) } }
            tr { th { "max duration" } td { (gd.plan.max_duration) } }
            @for g in &gd.plan.guardrails {
                tr { th { "guardrail" } td { (g.name) " (abort after " (g.abort_after) ") " code { (serde_json::to_string(&g.check).unwrap_or_default()) } } }
            }
            tr { th { "expected signals" } td { (gd.plan.expected.signals.join(", ")) } }
            tr { th { "expected cause" } td { (gd.plan.expected.cause_target) " / " (gd.plan.expected.cause_fault) } }
        }
        h2 { "Timeline" }
        (timeline_table(&lines))
        @if matches!(gd.phase, Phase::Ended | Phase::Revealed) {
            p { a href={ "/api/v1/gamedays/" (gd.id) "/review/md" } id="review-md" { "Review (Markdown)" }
                " · " a href={ "/api/v1/gamedays/" (gd.id) "/review/json" } { "Review (JSON)" } }
        }
        @if gd.phase == Phase::Revealed {
            h2 { "Notes" }
            ul id="notes" { @for n in &gd.notes { li { strong { (n.by) } " (" (n.role) "): " (n.text) } } }
            form method="post" action={ "/gamedays/" (gd.id) "/notes" } id="note-form" {
                input type="hidden" name="csrf" value=(csrf);
                input type="text" name="text" id="note-text" placeholder="What you saw, what you learned";
                button id="note-submit" { "Add a note" }
            }
            h2 { "Action items" }
            ul id="actions" { @for a in &gd.actions { li { (a.text) " — " (if a.owner.is_empty() { "unowned" } else { a.owner.as_str() }) } } }
            form method="post" action={ "/gamedays/" (gd.id) "/actions" } {
                input type="hidden" name="csrf" value=(csrf);
                input type="text" name="text" placeholder="What to do";
                input type="text" name="owner" placeholder="Who owns it";
                button { "Add an action item" }
            }
        }
        @if matches!(seat, Seat::Plan("villain" | "admin")) && matches!(gd.phase, Phase::Ended | Phase::Revealed) {
            h2 { "Replay for training" }
            form method="post" action={ "/gamedays/" (gd.id) "/replay" } id="replay-form" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Name " input type="text" name="name"; }
                label { "Responder teams (comma-separated; default the same) " input type="text" name="responders"; }
                label { "Targets to swap (old=new, comma-separated) " input type="text" name="targets"; }
                button { "Write the replay" }
            }
        }
    }
}

fn timeline_table(lines: &[Line]) -> Markup {
    html! {
        table id="gameday-timeline" {
            tr { th { "from t0" } th { "lane" } th { "who" } th { "what" } }
            @for l in lines {
                tr data-lane=(l.lane) data-kind=(l.kind) {
                    td { (from_t0_text(l.from_t0_ms)) }
                    td { (l.lane) } td { (l.who) } td { (l.text) }
                }
            }
        }
    }
}

/// A strip of dots: every point of a metric on a shared scale.
fn strip(points: &[u64], max: u64) -> Markup {
    let (w, h) = (300.0, 24.0);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(w) height=(h) role="img"
            aria-label=(format!("{} points", points.len())) {
            line x1="0" y1="12" x2=(w) y2="12" stroke="#ccc" {}
            @for p in points {
                circle cx=(format!("{:.1}", 5.0 + (w - 10.0) * (*p as f64 / max.max(1) as f64))) cy="12" r="4" fill="#36c" {
                    title { (duration_text(Some(*p))) }
                }
            }
        }
    }
}

fn summary_table(id: &str, groups: &serde_json::Map<String, Value>) -> Markup {
    let max = groups
        .values()
        .flat_map(|g| ["detect_ms", "mitigate_ms", "restore_ms"].map(|m| g[m]["points"].clone()))
        .flat_map(|p| p.as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_u64())
        .max()
        .unwrap_or(1);
    html! {
        table id=(id) {
            tr { th { "" } th { "drills" } th { "to detect: median / p90" } th { "to restore: median / p90" } th { "every detection" } th { "every restore" } }
            @for (name, g) in groups {
                tr data-group=(name) {
                    td { (name) }
                    td { (g["drills"]) }
                    td { (duration_text(g["detect_ms"]["median"].as_u64())) " / " (duration_text(g["detect_ms"]["p90"].as_u64())) }
                    td { (duration_text(g["restore_ms"]["median"].as_u64())) " / " (duration_text(g["restore_ms"]["p90"].as_u64()))
                        @if g["restore_ms"]["missing"].as_u64().unwrap_or(0) > 0 { " (" (g["restore_ms"]["missing"]) " not restored by the team)" } }
                    td { (strip(&points(&g["detect_ms"]["points"]), max)) }
                    td { (strip(&points(&g["restore_ms"]["points"]), max)) }
                }
            }
        }
    }
}

fn points(v: &Value) -> Vec<u64> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect()
}

pub(crate) async fn scoreboard_page(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
) -> Response {
    let board = match super::review::scoreboard(&p) {
        Ok(b) => b,
        Err(e) => return err(e.into()),
    };
    let empty = serde_json::Map::new();
    let rows = board["rows"].as_array().cloned().unwrap_or_default();
    page(
        "Scoreboard",
        Some(&who),
        html! {
            h1 { "Scoreboard" }
            p { "Every revealed game day, from the first fault. Medians and 90th percentiles with every point: with few drills a mean misleads." }
            h2 { "Per team" }
            (summary_table("by-team", board["by_team"].as_object().unwrap_or(&empty)))
            h2 { "Per scenario" }
            (summary_table("by-scenario", board["by_scenario"].as_object().unwrap_or(&empty)))
            h2 { "Every drill" }
            table id="drills" {
                tr { th { "game day" } th { "team" } th { "to detect" } th { "to mitigate" } th { "to restore" } }
                @for r in &rows {
                    tr data-gameday=(r["gameday"].as_str().unwrap_or("")) data-team=(r["team"].as_str().unwrap_or("")) {
                        td { a href={ "/gamedays/" (r["gameday"].as_str().unwrap_or("")) } { (r["name"].as_str().unwrap_or("")) } }
                        td { (r["team"].as_str().unwrap_or("")) }
                        td { (duration_text(r["detect_ms"].as_u64())) }
                        td { (duration_text(r["mitigate_ms"].as_u64())) }
                        td { @if r["restored_by_team"] == true { (duration_text(r["restore_ms"].as_u64())) } @else { "not restored by the team" } }
                    }
                }
            }
        },
    )
}
