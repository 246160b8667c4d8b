//! The game day API: plan, start / pause / resume / abort / reveal,
//! responders' reports, notes and action items, the review, the
//! scoreboard and replays. Every route needs a user (the route table);
//! the seat a caller has at the game day ([`Seat`]) decides the rest, and
//! a caller with no seat is told the game day does not exist.

use super::drive::{self, event, update};
use super::{GameDay, Phase, Plan, Seat, responder_view};
use crate::platform::api::{bad, body, read_body, team};
use crate::platform::auth::Principal;
use crate::platform::{ApiError, Platform, now_ms};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Extension, Json};
use http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

type ApiResult = Result<Response, ApiError>;

/// The handler of a game day route, if `path` is one.
pub(crate) fn handler(
    filter: MethodFilter,
    method: &str,
    path: &str,
) -> Option<MethodRouter<Platform>> {
    Some(match (method, path) {
        ("GET", "/api/v1/gamedays") => on(filter, list),
        ("POST", "/api/v1/gamedays") => on(filter, create),
        ("GET", "/api/v1/gamedays/{id}") => on(filter, show),
        ("POST", "/api/v1/gamedays/{id}/{action}") => on(filter, act),
        ("GET", "/api/v1/gamedays/{id}/review/{format}") => on(filter, review),
        ("GET", "/api/v1/scoreboard") => on(filter, scoreboard),
        ("GET", "/gamedays") => on(filter, super::web::list_page),
        ("POST", "/gamedays") => on(filter, super::web::create_form),
        ("GET", "/gamedays/{id}") => on(filter, super::web::gameday_page),
        ("POST", "/gamedays/{id}/{action}") => on(filter, super::web::action_form),
        ("GET", "/scoreboard") => on(filter, super::web::scoreboard_page),
        _ => return None,
    })
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, message)
}

/// A new game day.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGameDay {
    /// Its name.
    pub name: String,
    /// The villains' team (you need its runner role).
    pub villains: String,
    /// The referee (a user).
    pub referee: String,
    /// The responder teams.
    pub responders: Vec<String>,
    /// The sealed plan.
    pub plan: Plan,
    /// The scenarios' seed (random by default).
    #[serde(default)]
    pub seed: Option<u64>,
}

/// A responder's report.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// `detected`, `mitigated` or `restored`.
    pub kind: String,
    /// How it was noticed (which alert, dashboard, user report); needed
    /// for `detected`.
    #[serde(default)]
    pub source: String,
    /// The suspected target.
    #[serde(default)]
    pub target: String,
    /// The suspected kind of fault (`delay`, `pause`, `kill`, …).
    #[serde(default)]
    pub fault: String,
    /// Free text.
    #[serde(default)]
    pub text: String,
    /// For which responder team, when you are in more than one.
    #[serde(default)]
    pub team: String,
}

/// A note or an action item after the reveal.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Remark {
    /// What.
    pub text: String,
    /// An action item's owner.
    #[serde(default)]
    pub owner: String,
}

/// A replay of a past game day's plan (same packages, parameters, seed).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// Its name (by default the original's, marked as a replay).
    #[serde(default)]
    pub name: String,
    /// Other responder teams (by default the original's).
    #[serde(default)]
    pub responders: Vec<String>,
    /// Another referee.
    #[serde(default)]
    pub referee: String,
    /// Registered targets to use instead: `{"old": "new"}` (a staging
    /// copy, another team's service).
    #[serde(default)]
    pub targets: BTreeMap<String, String>,
}

/// A body as `T`; an empty body reads as `{}` (the referee's actions
/// take none).
fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    body(if bytes.is_empty() { b"{}" } else { bytes })
}

/// The game day `id` and the caller's seat; no seat reads as "no such
/// game day", and a responder does not see a planned one.
pub(crate) fn seated(p: &Platform, who: &Principal, id: &str) -> Result<(GameDay, Seat), ApiError> {
    let none = || ApiError::new(StatusCode::NOT_FOUND, format!("no game day {id:?}"));
    let gd = p.inner.store.gameday(id)?.ok_or_else(none)?;
    match gd.seat(&who.user) {
        Some(Seat::Responder(_)) if gd.phase == Phase::Planned => Err(none()),
        Some(seat) => Ok((gd, seat)),
        None => Err(none()),
    }
}

/// Everything about a game day, for the plan's seats and, after the
/// reveal, for everyone taking part: the plan, the merged timeline, the
/// times and the diagnosis.
pub(crate) fn full_view(p: &Platform, gd: &GameDay) -> Value {
    let mut v = serde_json::to_value(gd).unwrap_or(Value::Null);
    v["times"] = json!(gd.times());
    v["diagnosis"] = json!(gd.diagnosis(&gd.planned));
    v["timeline"] = json!(timeline(p, gd));
    v["status"] = json!(match gd.phase {
        Phase::Planned => "planned",
        Phase::Armed | Phase::Running => "active",
        Phase::Ended => "ended",
        Phase::Revealed => "revealed",
    });
    v
}

/// One line of the merged timeline.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Line {
    /// Unix ms.
    pub at: u64,
    /// From t0, clock pauses taken out (negative before it).
    pub from_t0_ms: Option<i64>,
    /// `villains` (faults), `checks`, `responders`, `alerts`, `referee`.
    pub lane: &'static str,
    pub kind: String,
    pub who: String,
    pub text: String,
}

/// The villains' faults (from the ledger), the guardrails, the alerts and
/// every responder and referee action, in one order.
pub(crate) fn timeline(p: &Platform, gd: &GameDay) -> Vec<Line> {
    let t0 = gd.first_fault_at;
    let rel = |at: u64| {
        t0.map(|t| {
            if at >= t {
                gd.clock(t, at) as i64
            } else {
                -(gd.clock(at, t) as i64)
            }
        })
    };
    let mut lines = Vec::new();
    for e in &gd.events {
        let lane = match (e.kind.as_str(), e.by.as_str()) {
            (_, "alertmanager") => "alerts",
            ("guardrail-red" | "guardrail-green" | "mitigated-by-checks", _) => "checks",
            ("restore-confirmed" | "restore-rejected", _) => "checks",
            ("detected" | "mitigated" | "restored", _) => "responders",
            ("step", _) => "villains",
            _ => "referee",
        };
        let mut text = if lane == "responders" {
            format!("{}: {}", e.kind, e.text)
        } else {
            e.text.clone()
        };
        for (label, value) in [
            ("source", &e.source),
            ("target", &e.target),
            ("fault", &e.fault),
        ] {
            if let Some(v) = value
                && e.by != "alertmanager"
            {
                text = format!("{text} [{label}: {v}]");
            }
        }
        let who = match &e.team {
            Some(t) if e.by != "firedrill" => format!("{} ({t})", e.by),
            _ => e.by.clone(),
        };
        lines.push(Line {
            at: e.at,
            from_t0_ms: rel(e.at),
            lane,
            kind: e.kind.clone(),
            who,
            text: text.trim().to_string(),
        });
    }
    let history = p.engine().history();
    for run in &gd.runs {
        let Ok(id) = run.parse() else { continue };
        let Ok(Some(record)) = history.get_run(id) else {
            continue;
        };
        for e in history.timeline(id).unwrap_or_default() {
            let at = record.started_at + e.at_us / 1000;
            let (kind, text) = match &e.kind {
                firedrill::history::EventKind::FaultApplied {
                    fault,
                    kind,
                    target,
                    detail,
                    ..
                } => (
                    "fault-applied",
                    format!("fault {fault}: {kind} on {target}: {detail}"),
                ),
                firedrill::history::EventKind::FaultReverted { fault, reason, .. } => (
                    "fault-reverted",
                    format!("fault {fault} reverted ({reason})"),
                ),
                _ => continue,
            };
            lines.push(Line {
                at,
                from_t0_ms: rel(at),
                lane: "villains",
                kind: kind.into(),
                who: record.scenario.name.clone(),
                text,
            });
        }
    }
    lines.sort_by_key(|l| l.at);
    lines
}

/// What `seat` is shown of `gd`.
fn view_for(p: &Platform, gd: &GameDay, seat: &Seat) -> Value {
    match seat {
        Seat::Plan(_) => full_view(p, gd),
        Seat::Responder(_) if gd.phase == Phase::Revealed => full_view(p, gd),
        Seat::Responder(team) => responder_view(gd, team),
    }
}

async fn list(State(p): State<Platform>, Extension(who): Extension<Principal>) -> ApiResult {
    let mut out = Vec::new();
    for gd in p.inner.store.gamedays()? {
        let Some(seat) = gd.seat(&who.user) else {
            continue;
        };
        match &seat {
            Seat::Responder(_) if gd.phase == Phase::Planned => {}
            Seat::Responder(team) if gd.phase != Phase::Revealed => {
                out.push(responder_view(&gd, team))
            }
            _ => out.push(json!({
                "id": gd.id, "name": gd.name, "phase": gd.phase, "villains": gd.villains,
                "referee": gd.referee, "responders": gd.responders, "created_at": gd.created_at,
                "status": if gd.phase.active() { "active" } else { "" },
            })),
        }
    }
    Ok(Json(out).into_response())
}

async fn create(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    req: Request,
) -> ApiResult {
    let input: NewGameDay = parse(&read_body(req).await?)?;
    let gd = plan(&p, &who, input, None).await?;
    Ok((StatusCode::CREATED, Json(full_view(&p, &gd))).into_response())
}

/// Write a plan down: the villains' runner role, teams and referee that
/// exist, responders other than the villains, and every step resolved and
/// checked against the villains' grants now, not at the hidden start.
pub(crate) async fn plan(
    p: &Platform,
    who: &Principal,
    input: NewGameDay,
    replay_of: Option<String>,
) -> Result<GameDay, ApiError> {
    let name = input.name.trim();
    if name.is_empty() || name.len() > 120 {
        return Err(bad("name: 1 to 120 characters"));
    }
    team(p, &input.villains)?;
    if who
        .user
        .role_in(&input.villains)
        .is_none_or(|r| r < super::super::model::Role::Runner)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "writing a game day for the villains' team {:?} needs its runner role",
                input.villains
            ),
        ));
    }
    if p.inner.store.user(&input.referee)?.is_none() {
        return Err(bad(format!("referee: no user {:?}", input.referee)));
    }
    if input.responders.is_empty() {
        return Err(bad("responders: name at least one team"));
    }
    for t in &input.responders {
        team(p, t)?;
        if *t == input.villains {
            return Err(bad(format!(
                "responders: {t:?} is the villains' team, which knows the plan"
            )));
        }
    }
    if input.plan.steps.is_empty() {
        return Err(bad("plan.steps: a plan needs at least one scenario"));
    }
    for (field, text) in [
        ("start_earliest", &input.plan.start_earliest),
        ("start_latest", &input.plan.start_latest),
        ("max_duration", &input.plan.max_duration),
        ("restore_hold", &input.plan.restore_hold),
    ] {
        drive::duration(field, text)?;
    }
    let id = format!("gd-{:010x}", rand::random::<u64>() & 0xff_ffff_ffff);
    let mut gd = GameDay {
        id: id.clone(),
        name: name.to_string(),
        villains: input.villains,
        referee: input.referee,
        responders: input.responders,
        plan: input.plan,
        planned: Vec::new(),
        seed: input.seed.unwrap_or_else(rand::random),
        phase: Phase::Planned,
        created_by: who.user.name.clone(),
        created_at: now_ms(),
        replay_of,
        armed_at: None,
        start_at: None,
        first_fault_at: None,
        faults_cleared_at: None,
        ended_at: None,
        end_reason: None,
        paused_since: None,
        pauses: Vec::new(),
        runs: Vec::new(),
        events: Vec::new(),
        mitigated_at: None,
        restore: None,
        notes: Vec::new(),
        actions: Vec::new(),
    };
    let prepared = drive::prepare_steps(p, &gd, true).await?;
    drive::plan_drill(p, &gd, &prepared)?;
    for (i, s) in gd.plan.steps.iter().enumerate() {
        drive::duration(&format!("steps[{i}].after"), &s.after)?;
    }
    gd.planned = prepared.iter().flat_map(|s| s.needs.clone()).collect();
    p.inner.store.put_gameday(&gd)?;
    p.audit(
        &who.user.name,
        "gameday-plan",
        &format!("game day {id}"),
        "ok",
        "",
    );
    Ok(gd)
}

async fn show(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let (gd, seat) = seated(&p, &who, &id)?;
    Ok(Json(view_for(&p, &gd, &seat)).into_response())
}

async fn act(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((id, action)): Path<(String, String)>,
    req: Request,
) -> ApiResult {
    let bytes = read_body(req).await?;
    let (status, v) = perform(&p, &who, &id, &action, &bytes).await?;
    Ok((status, Json(v)).into_response())
}

fn referee_only(seat: &Seat, action: &str) -> Result<(), ApiError> {
    match seat {
        Seat::Plan("referee" | "admin") => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{action} is the referee's (or a server admin's)"),
        )),
    }
}

/// One action on a game day (the API's and the pages' forms').
pub(crate) async fn perform(
    p: &Platform,
    who: &Principal,
    id: &str,
    action: &str,
    body: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    let (gd, seat) = seated(p, who, id)?;
    let me = who.user.name.as_str();
    match action {
        "start" => {
            referee_only(&seat, "start")?;
            let gd = drive::start(p, me, id).await?;
            Ok((StatusCode::OK, full_view(p, &gd)))
        }
        "pause" | "resume" => {
            referee_only(&seat, action)?;
            let ((), gd) = update(p, id, |gd| {
                if !gd.phase.active() {
                    return Err(conflict(format!("game day {id} is not active")));
                }
                let now = now_ms();
                match (action, gd.paused_since) {
                    ("pause", None) => {
                        gd.paused_since = Some(now);
                        gd.push(event("clock-paused", me, "the clock is paused", false));
                    }
                    ("resume", Some(since)) => {
                        gd.pauses.push((since, now));
                        gd.paused_since = None;
                        gd.push(event("clock-resumed", me, "the clock runs again", false));
                    }
                    _ => return Err(conflict(format!("the clock is already {action}d"))),
                }
                Ok(())
            })?;
            p.audit(
                me,
                &format!("gameday-{action}"),
                &format!("game day {id}"),
                "ok",
                "",
            );
            Ok((StatusCode::OK, full_view(p, &gd)))
        }
        "abort" => {
            referee_only(&seat, "abort")?;
            let (gd, took) = drive::abort(p, me, id).await?;
            let mut v = full_view(p, &gd);
            v["reverted_in_ms"] = json!(took);
            Ok((StatusCode::OK, v))
        }
        "reveal" => {
            referee_only(&seat, "reveal")?;
            let ((), gd) = update(p, id, |gd| match gd.phase {
                Phase::Ended => {
                    drive::settle_ledger(p, gd);
                    drive::unseal(p, gd);
                    gd.phase = Phase::Revealed;
                    gd.push(event("revealed", me, "the plan is revealed", false));
                    Ok(())
                }
                Phase::Revealed => Ok(()),
                _ => Err(conflict(format!(
                    "game day {id} is {}: it is revealed after it ends (abort it to end it now)",
                    if gd.phase.active() {
                        "active"
                    } else {
                        "planned"
                    }
                ))),
            })?;
            p.audit(me, "gameday-reveal", &format!("game day {id}"), "ok", "");
            Ok((StatusCode::OK, full_view(p, &gd)))
        }
        "reports" => {
            let report: Report = parse(body)?;
            let e = report_event(&gd, &seat, who, report)?;
            let restored = e.kind == "restored";
            let ((), gd) = update(p, id, |gd| {
                if !gd.phase.active() {
                    return Err(conflict(format!(
                        "game day {id} has ended: reports are closed (add notes after the reveal)"
                    )));
                }
                if restored {
                    if gd
                        .restore
                        .as_ref()
                        .is_some_and(|r| r.confirmed_at.is_some())
                    {
                        return Err(conflict("restore is already confirmed"));
                    }
                    gd.restore = Some(super::Restore {
                        reported_at: e.at,
                        by: me.to_string(),
                        team: e.team.clone().unwrap_or_default(),
                        confirmed_at: None,
                    });
                }
                gd.push(e.clone());
                Ok(())
            })?;
            p.audit(
                me,
                "gameday-report",
                &format!("game day {id}"),
                "ok",
                &e.kind,
            );
            let team = e.team.clone().unwrap_or_default();
            let mut v = json!({"reported": e, "gameday": responder_view(&gd, &team)});
            if restored {
                v["note"] = json!(
                    "restored is confirmed once the service's checks hold for a while; the game day shows the verdict"
                );
            }
            Ok((StatusCode::CREATED, v))
        }
        "notes" | "actions" => {
            let remark: Remark = parse(body)?;
            if remark.text.trim().is_empty() || remark.text.len() > 4000 {
                return Err(bad("text: 1 to 4000 characters"));
            }
            let role = match &seat {
                Seat::Plan(r) => r.to_string(),
                Seat::Responder(_) => "responder".into(),
            };
            let ((), gd) = update(p, id, |gd| {
                if gd.phase != Phase::Revealed {
                    return Err(conflict("notes and action items come after the reveal"));
                }
                if action == "notes" {
                    gd.notes.push(super::Note {
                        at: now_ms(),
                        by: me.to_string(),
                        role,
                        text: remark.text.trim().to_string(),
                    });
                } else {
                    gd.actions.push(super::ActionItem {
                        text: remark.text.trim().to_string(),
                        owner: remark.owner.trim().to_string(),
                        by: me.to_string(),
                    });
                }
                Ok(())
            })?;
            Ok((StatusCode::CREATED, full_view(p, &gd)))
        }
        "replay" => {
            if !matches!(seat, Seat::Plan("villain" | "admin")) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "a replay is written by the villains (runners of the villains' team) or an admin",
                ));
            }
            if gd.phase.active() || gd.phase == Phase::Planned {
                return Err(conflict("a game day is replayed after it ends"));
            }
            let r: Replay = parse(body)?;
            let input = replay_of(&gd, r);
            let new = plan(p, who, input, Some(gd.id.clone())).await?;
            Ok((StatusCode::CREATED, full_view(p, &new)))
        }
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no game day action {other:?}: start, pause, resume, abort, reveal, reports, notes, actions, replay"
            ),
        )),
    }
}

/// A responder's report as an event, checked.
fn report_event(
    gd: &GameDay,
    seat: &Seat,
    who: &Principal,
    r: Report,
) -> Result<super::GameEvent, ApiError> {
    let team = match seat {
        Seat::Responder(default) => {
            if r.team.is_empty() {
                default.clone()
            } else if gd.responders.contains(&r.team) && who.user.teams.contains_key(&r.team) {
                r.team.clone()
            } else {
                return Err(bad(format!(
                    "team: you respond for {default:?}, not {:?}",
                    r.team
                )));
            }
        }
        Seat::Plan(_) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "reports are the responders': you know the plan",
            ));
        }
    };
    if !matches!(r.kind.as_str(), "detected" | "mitigated" | "restored") {
        return Err(bad(format!(
            "kind: {:?}; one of detected, mitigated, restored",
            r.kind
        )));
    }
    if r.kind == "detected" && r.source.trim().is_empty() {
        return Err(bad(
            "source: say how you noticed (the alert's name, a dashboard, a user report)",
        ));
    }
    for (field, v, max) in [
        ("source", &r.source, 200),
        ("target", &r.target, 200),
        ("fault", &r.fault, 64),
        ("text", &r.text, 4000),
    ] {
        if v.len() > max {
            return Err(bad(format!("{field}: at most {max} characters")));
        }
    }
    let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let mut e = event(&r.kind, &who.user.name, r.text.trim(), false);
    e.team = Some(team);
    e.source = some(&r.source);
    e.target = some(&r.target);
    e.fault = some(&r.fault);
    Ok(e)
}

/// A new plan from a past game day: exact packages, same parameters and
/// seed, targets renamed.
fn replay_of(gd: &GameDay, r: Replay) -> NewGameDay {
    let rename = |v: &str| r.targets.get(v).cloned().unwrap_or_else(|| v.to_string());
    let mut plan = gd.plan.clone();
    for s in &mut plan.steps {
        for v in s.params.values_mut() {
            if let Value::String(text) = v {
                *text = rename(text);
            }
        }
    }
    for g in &mut plan.guardrails {
        if let Some(Value::String(t)) = g.check.get_mut("target") {
            *t = rename(t);
        }
    }
    if !plan.expected.cause_target.is_empty() {
        plan.expected.cause_target = rename(&plan.expected.cause_target);
    }
    NewGameDay {
        name: if r.name.trim().is_empty() {
            format!("{} (replay)", gd.name)
        } else {
            r.name
        },
        villains: gd.villains.clone(),
        referee: if r.referee.is_empty() {
            gd.referee.clone()
        } else {
            r.referee
        },
        responders: if r.responders.is_empty() {
            gd.responders.clone()
        } else {
            r.responders
        },
        plan,
        seed: Some(gd.seed),
    }
}

async fn review(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((id, format)): Path<(String, String)>,
) -> ApiResult {
    let (gd, seat) = seated(&p, &who, &id)?;
    review_response(&p, &gd, &seat, &format)
}

/// The review (`md` or `json`), once the plan may be shown to `seat`.
pub(crate) fn review_response(p: &Platform, gd: &GameDay, seat: &Seat, format: &str) -> ApiResult {
    let shown =
        gd.phase == Phase::Revealed || (matches!(seat, Seat::Plan(_)) && gd.phase == Phase::Ended);
    if !shown {
        return Err(conflict("the review is written after the reveal"));
    }
    match format {
        "json" => Ok(Json(super::review::json(p, gd)).into_response()),
        "md" => Ok((
            [(http::header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            super::review::markdown(p, gd),
        )
            .into_response()),
        other => Err(bad(format!("review format {other:?}: md or json"))),
    }
}

async fn scoreboard(State(p): State<Platform>) -> ApiResult {
    Ok(Json(super::review::scoreboard(&p)?).into_response())
}
