//! Running a game day: starting it (targets up for the whole drill, the
//! start drawn), the driver task (steps at the hidden start, the ledger's
//! first fault, guardrails, mitigation, restore confirmation, the end),
//! abort, and the Alertmanager hook.

use super::{GameDay, GameEvent, Phase, run_team};
use crate::platform::api::{self, Launch, Prepared, Refused};
use crate::platform::model::{AlertRecord, LaunchedRun};
use crate::platform::{ApiError, Platform, now_ms};
use firedrill::Halter;
use firedrill::drill::CheckSpec;
use firedrill::history::{EventKind, RunId};
use firedrill::targets::TargetSet;
use http::StatusCode;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often the driver looks: steps, the ledger, guardrails.
const TICK: Duration = Duration::from_millis(200);

/// A started game day's handles.
#[derive(Default)]
pub(crate) struct Live {
    halters: Mutex<Vec<(RunId, Halter)>>,
    stopped: AtomicBool,
    wake: Notify,
}

impl Live {
    /// The game day's runs (to keep them out of `/metrics`).
    pub(crate) fn runs(&self) -> Vec<RunId> {
        self.halters
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| *id)
            .collect()
    }

    fn active_faults(&self) -> usize {
        self.halters
            .lock()
            .unwrap()
            .iter()
            .map(|(_, h)| h.active_faults().len())
            .sum()
    }

    fn halt(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for (_, h) in self.halters.lock().unwrap().iter() {
            h.halt();
        }
        self.wake.notify_one();
    }
}

pub(crate) fn event(kind: &str, by: &str, text: impl Into<String>, sealed: bool) -> GameEvent {
    GameEvent {
        at: now_ms(),
        kind: kind.into(),
        by: by.into(),
        team: None,
        source: None,
        target: None,
        fault: None,
        text: text.into(),
        sealed,
    }
}

/// Read, change and write a game day under the platform's game day lock.
pub(crate) fn update<T>(
    p: &Platform,
    id: &str,
    f: impl FnOnce(&mut GameDay) -> Result<T, ApiError>,
) -> Result<(T, GameDay), ApiError> {
    let _held = p.inner.gameday_lock.lock().unwrap();
    let mut gd = p
        .inner
        .store
        .gameday(id)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no game day {id:?}")))?;
    let out = f(&mut gd)?;
    p.inner.store.put_gameday(&gd)?;
    Ok((out, gd))
}

pub(crate) fn duration(field: &str, text: &str) -> Result<Duration, ApiError> {
    humantime::parse_duration(text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("plan.{field}: {text:?} is not a duration ({e}); write e.g. \"30s\" or \"5m\""),
        )
    })
}

fn refused(context: &str, r: Refused) -> ApiError {
    ApiError::new(r.status, format!("{context}: {}", r.message))
}

/// Every step of `gd` resolved with the villains' grants, and (with
/// `preflight`) checked by the run policy.
pub(crate) async fn prepare_steps(
    p: &Platform,
    gd: &GameDay,
    preflight: bool,
) -> Result<Vec<Prepared>, ApiError> {
    let villains = api::team(p, &gd.villains)?;
    let mut out = Vec::new();
    for (i, step) in gd.plan.steps.iter().enumerate() {
        let input = Launch {
            scenario: step.package.clone().map_or_else(
                || step.scenario.clone(),
                |exact| match exact.split_once('@') {
                    Some((name, version)) => format!("{name}@={version}"),
                    None => exact,
                },
            ),
            params: step.params.clone(),
            targets: BTreeMap::new(),
            ..Default::default()
        };
        let header = format!("Game day {} step {}", gd.id, i + 1);
        let prepared = api::prepare_launch(p, &villains, &input, &header, preflight)
            .await
            .map_err(|r| refused(&format!("plan.steps[{i}] ({})", step.scenario), r))?;
        out.push(prepared);
    }
    Ok(out)
}

/// The registered targets the plan touches (steps and guardrails), as one
/// drill with the villains' grants and the guardrails as its checks.
pub(crate) fn plan_drill(
    p: &Platform,
    gd: &GameDay,
    prepared: &[Prepared],
) -> Result<firedrill::Drill, ApiError> {
    let villains = api::team(p, &gd.villains)?;
    let mut names: BTreeSet<String> = prepared
        .iter()
        .flat_map(|s| s.needs.iter().map(|(_, t)| t.clone()))
        .collect();
    for (i, g) in gd.plan.guardrails.iter().enumerate() {
        match g.check.get("target").and_then(|t| t.as_str()) {
            Some(t) => names.insert(t.to_string()),
            None => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "plan.guardrails[{i}] ({}): no \"target\": name the registered target it probes",
                        g.name
                    ),
                ));
            }
        };
    }
    let mut decls = Vec::new();
    for name in &names {
        let t = p.inner.store.target(name)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the plan names target {name:?}, and no such target is registered"),
            )
        })?;
        let grants: Vec<String> = villains
            .grants
            .get(name)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        // A game day's toxics on a `firedrill proxy serve` are left out of
        // its listings, so its Toxiproxy API shows responders nothing.
        let mut declaration = t.declaration;
        if declaration.get("kind").and_then(|k| k.as_str()) == Some("toxiproxy")
            && declaration.get("lease").and_then(|l| l.as_str()) != Some("off")
        {
            declaration.insert("seal_toxics".into(), Value::Bool(true));
        }
        decls.push((name.clone(), declaration, grants));
    }
    let borrowed: Vec<_> = decls
        .iter()
        .map(|(n, d, g)| (n.clone(), d, g.clone()))
        .collect();
    let scenario = gd
        .plan
        .steps
        .first()
        .map_or("firedrill:none", |s| s.scenario.as_str());
    let mut text = api::drill_text(&format!("Game day {}", gd.id), scenario, &borrowed)?;
    let mut checks = Vec::new();
    for (i, g) in gd.plan.guardrails.iter().enumerate() {
        duration(&format!("guardrails[{i}].abort_after"), &g.abort_after)?;
        let mut check = toml::Table::try_from(&g.check).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("plan.guardrails[{i}]: {e}"),
            )
        })?;
        check.insert("name".into(), toml::Value::String(g.name.clone()));
        checks.push(check);
    }
    api::append_steady_state(&mut text, checks)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("plan.guardrails: {e}")))?;
    firedrill::Drill::parse(&text, std::path::Path::new(&format!("game day {}", gd.id))).map_err(
        |e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "plan: {}: {}",
                    e.field.replace("steady_state", "guardrails"),
                    e.message
                ),
            )
        },
    )
}

/// Start a planned game day: every step checked, the targets up for the
/// whole drill (so nothing appears at the hidden start), the start drawn
/// inside the window, the driver running.
pub(crate) async fn start(p: &Platform, who: &str, id: &str) -> Result<GameDay, ApiError> {
    let gd = p
        .inner
        .store
        .gameday(id)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no game day {id:?}")))?;
    if gd.phase != Phase::Planned {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("game day {id} is {:?}: only a planned one starts", gd.phase).to_lowercase(),
        ));
    }
    api::refuse_when_halted(p)?;
    let earliest = duration("start_earliest", &gd.plan.start_earliest)?;
    let latest = duration("start_latest", &gd.plan.start_latest)?.max(earliest);
    let max = duration("max_duration", &gd.plan.max_duration)?;
    let hold = duration("restore_hold", &gd.plan.restore_hold)?;
    let prepared = prepare_steps(p, &gd, true).await?;
    let drill = plan_drill(p, &gd, &prepared)?;
    let mut offsets = Vec::new();
    for (i, s) in gd.plan.steps.iter().enumerate() {
        offsets.push(duration(&format!("steps[{i}].after"), &s.after)?);
    }
    let mut aborts = Vec::new();
    for (i, g) in gd.plan.guardrails.iter().enumerate() {
        aborts.push(duration(
            &format!("guardrails[{i}].abort_after"),
            &g.abort_after,
        )?);
    }
    let targets = p
        .engine()
        .start_targets(&drill.targets)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the targets did not start: {e}"),
            )
        })?;
    let window = (latest - earliest).as_millis() as u64;
    let drawn = earliest + Duration::from_millis(rand::random::<u64>() % (window + 1));
    let now = now_ms();
    let armed = update(p, id, |gd| {
        if gd.phase != Phase::Planned {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "it was started meanwhile",
            ));
        }
        gd.phase = Phase::Armed;
        gd.armed_at = Some(now);
        gd.start_at = Some(now + drawn.as_millis() as u64);
        gd.push(event(
            "announced",
            who,
            "a drill is active on your services: watch them, and report what you notice",
            false,
        ));
        Ok(())
    });
    let gd = match armed {
        Ok(((), gd)) => gd,
        Err(e) => {
            targets.shutdown().await;
            return Err(e);
        }
    };
    p.audit(who, "gameday-start", &format!("game day {id}"), "ok", "");
    let live = Arc::new(Live::default());
    p.inner
        .gamedays
        .lock()
        .unwrap()
        .insert(id.to_string(), live.clone());
    let steps = prepared
        .into_iter()
        .zip(offsets)
        .enumerate()
        .map(|(i, (prep, after))| Some((i, after, prep)))
        .collect();
    let checks = drill.checks.into_iter().zip(aborts).collect();
    let driver = Driver {
        p: p.clone(),
        id: id.to_string(),
        live,
        targets,
        checks,
        hold,
        max,
    };
    p.inner.tasks.spawn(driver.run(steps));
    Ok(gd)
}

struct Driver {
    p: Platform,
    id: String,
    live: Arc<Live>,
    targets: Arc<TargetSet>,
    checks: Vec<(CheckSpec, Duration)>,
    hold: Duration,
    max: Duration,
}

type PendingStep = Option<(usize, Duration, Prepared)>;

impl Driver {
    fn update_if(&self, changed: bool, f: impl FnOnce(&mut GameDay)) {
        if changed {
            self.update(f);
        }
    }

    fn update(&self, f: impl FnOnce(&mut GameDay)) -> Option<GameDay> {
        update(&self.p, &self.id, |gd| {
            f(gd);
            Ok(())
        })
        .map(|(_, gd)| gd)
        .inspect_err(|e| tracing::error!("game day {}: {}", self.id, e.1))
        .ok()
    }

    async fn run(self, mut steps: Vec<PendingStep>) {
        let n = self.checks.len();
        let mut last: Vec<Option<bool>> = vec![None; n];
        let mut red_since: Vec<Option<u64>> = vec![None; n];
        let mut red_after_fault = false;
        let mut green_since: Option<u64> = None;
        let closing = self.p.inner.closing.clone();
        let end_reason: Option<String> = loop {
            if self.live.stopped.load(Ordering::SeqCst) {
                break None;
            }
            if closing.is_cancelled() {
                break Some("the server shut down; every fault was reverted".into());
            }
            let Ok(Some(gd)) = self.p.inner.store.gameday(&self.id) else {
                break None;
            };
            if !gd.phase.active() {
                break None;
            }
            let now = now_ms();
            let start = gd.start_at.unwrap_or(now);
            let paused = gd.paused_since.is_some();
            let shift = gd.paused_total(now);
            if let Some(halt) = self.p.engine().halt_state() {
                self.live.halt();
                break Some(format!("{halt}: everything was halted"));
            }
            if !paused {
                for slot in steps.iter_mut() {
                    let due = slot.as_ref().is_some_and(|(_, after, _)| {
                        now >= start + after.as_millis() as u64 + shift
                    });
                    if due && let Some((i, _, prep)) = slot.take() {
                        self.launch(&gd, i, prep).await;
                    }
                }
            }
            let faults = self.live.active_faults();
            let faults_seen_at = now_ms();
            let first_fault = gd.first_fault_at.is_some() || faults > 0;
            let results = futures_util::future::join_all(
                self.checks
                    .iter()
                    .map(|(c, _)| firedrill::steady::evaluate(c, &self.targets)),
            )
            .await;
            let now = now_ms();
            let mut transitions = Vec::new();
            let mut breach = None;
            for (i, (ok, seen)) in results.iter().enumerate() {
                let (check, abort_after) = &self.checks[i];
                if last[i] != Some(*ok) {
                    let (kind, verb) = if *ok {
                        ("guardrail-green", "holds")
                    } else {
                        ("guardrail-red", "fails")
                    };
                    transitions.push(event(
                        kind,
                        "firedrill",
                        format!("guardrail `{}` {verb}: {seen}", check.name),
                        true,
                    ));
                    last[i] = Some(*ok);
                }
                red_since[i] = if *ok {
                    None
                } else {
                    red_since[i].or(Some(now))
                };
                if let Some(since) = red_since[i]
                    && now - since >= abort_after.as_millis() as u64
                {
                    breach = Some(format!(
                        "guardrail `{}` failed for {} (its bound): the drill was aborted ({seen})",
                        check.name,
                        humantime::format_duration(*abort_after)
                    ));
                }
            }
            let all_green = results.iter().all(|(ok, _)| *ok);
            if faults > 0 && !all_green {
                red_after_fault = true;
            }
            green_since = if all_green {
                green_since.or(Some(now))
            } else {
                None
            };
            let mitigated = faults > 0 && all_green && red_after_fault && gd.mitigated_at.is_none();
            let hold = self.hold.as_millis() as u64;
            // Written back only when this tick changed something (it runs
            // five times a second).
            let restore_pending = gd
                .restore
                .as_ref()
                .is_some_and(|r| r.confirmed_at.is_none());
            let cleared_changes = (first_fault && faults == 0 && gd.faults_cleared_at.is_none())
                || (faults > 0 && gd.faults_cleared_at.is_some());
            let first_now = faults > 0 && gd.first_fault_at.is_none();
            let changed = !transitions.is_empty()
                || mitigated
                || restore_pending
                || cleared_changes
                || first_now;
            self.update_if(changed, |gd| {
                if first_now {
                    gd.first_fault_at = Some(faults_seen_at);
                }
                gd.events.extend(transitions);
                if first_fault && faults == 0 && gd.faults_cleared_at.is_none() {
                    gd.faults_cleared_at = Some(now);
                } else if faults > 0 {
                    gd.faults_cleared_at = None;
                }
                if mitigated {
                    gd.mitigated_at = Some(now);
                    gd.push(event(
                        "mitigated-by-checks",
                        "firedrill",
                        "every guardrail holds again while the fault is still active",
                        true,
                    ));
                }
                let Some(r) = gd.restore.as_mut().filter(|r| r.confirmed_at.is_none()) else {
                    return;
                };
                let team = r.team.clone();
                if !all_green {
                    let mut e = event(
                        "restore-rejected",
                        "firedrill",
                        "not confirmed: the service's checks fail again; report restored once it is",
                        false,
                    );
                    e.team = Some(team);
                    gd.restore = None;
                    gd.push(e);
                } else if green_since.is_some_and(|g| now >= g.max(r.reported_at) + hold) {
                    r.confirmed_at = Some(now);
                    let mut e = event(
                        "restore-confirmed",
                        "firedrill",
                        "confirmed: the service's checks held",
                        false,
                    );
                    e.team = Some(team);
                    gd.push(e);
                }
            });
            if let Some(reason) = breach {
                self.live.halt();
                break Some(reason);
            }
            let all_launched = steps.iter().all(Option::is_none);
            let going = {
                let active = self.p.inner.active.lock().unwrap();
                self.live.runs().iter().any(|id| active.contains_key(id))
            };
            if all_launched && !going {
                // A halt-all may have ended the runs since this tick began.
                break Some(match self.p.engine().halt_state() {
                    Some(halt) => format!("{halt}: everything was halted"),
                    None => "the plan ran to its end".into(),
                });
            }
            if !paused && now >= start + self.max.as_millis() as u64 + shift {
                self.live.halt();
                break Some(format!(
                    "the maximum duration ({}) was reached",
                    humantime::format_duration(self.max)
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = self.live.wake.notified() => {}
                _ = closing.cancelled() => {}
            }
        };
        if closing.is_cancelled() {
            self.live.halt();
        }
        self.wait_runs().await;
        self.targets.shutdown().await;
        self.p.inner.gamedays.lock().unwrap().remove(&self.id);
        let breach = end_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("guardrail"));
        let p = self.p.clone();
        self.update(|gd| {
            settle_ledger(&p, gd);
            if let Some(reason) = end_reason {
                end_now(gd, "firedrill", &reason);
            }
            if breach {
                unseal(&p, gd);
                gd.phase = Phase::Revealed;
                gd.push(event(
                    "revealed",
                    "firedrill",
                    "revealed: a guardrail was breached",
                    false,
                ));
            }
        });
    }

    async fn launch(&self, gd: &GameDay, i: usize, prep: Prepared) {
        let package = prep.package.clone();
        let scenario = gd.plan.steps[i].scenario.clone();
        if self.live.stopped.load(Ordering::SeqCst) {
            return;
        }
        let launched = LaunchedRun {
            run: String::new(),
            team: run_team(&gd.id),
            launched_by: gd.created_by.clone(),
            scenario: scenario.clone(),
            at: now_ms(),
        };
        let seed = Some(gd.seed.wrapping_add(i as u64));
        let result = api::start_prepared(
            &self.p,
            launched,
            prep,
            self.targets.clone(),
            false,
            seed,
            false,
        )
        .await;
        let subject = format!("game day {}", gd.id);
        match result {
            Ok(run) => {
                let id: Option<RunId> = run.run.parse().ok();
                let halter = id.and_then(|id| {
                    self.p
                        .inner
                        .active
                        .lock()
                        .unwrap()
                        .get(&id)
                        .cloned()
                        .map(|h| (id, h))
                });
                if let Some((id, h)) = halter {
                    if self.live.stopped.load(Ordering::SeqCst) {
                        h.halt();
                    }
                    self.live.halters.lock().unwrap().push((id, h));
                }
                self.p
                    .audit("firedrill", "gameday-step", &subject, "ok", "");
                self.update(|gd| {
                    gd.phase = Phase::Running;
                    gd.runs.push(run.run.clone());
                    gd.plan.steps[i].package = Some(package.clone());
                    gd.push(event(
                        "step",
                        "firedrill",
                        format!(
                            "step {}: {scenario} ({package}) started as run {}",
                            i + 1,
                            run.run
                        ),
                        true,
                    ));
                });
            }
            Err(r) => {
                self.p
                    .audit("firedrill", "gameday-step", &subject, "failed", "");
                self.update(|gd| {
                    gd.push(event(
                        "step",
                        "firedrill",
                        format!("step {}: {scenario} did not start: {}", i + 1, r.message),
                        true,
                    ))
                });
            }
        }
    }

    /// Until every run of the game day has ended (reverted).
    async fn wait_runs(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let going = {
                let active = self.p.inner.active.lock().unwrap();
                self.live.runs().iter().any(|id| active.contains_key(id))
            };
            if !going || Instant::now() > until {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Mark `gd` ended now for `reason`.
pub(crate) fn end_now(gd: &mut GameDay, by: &str, reason: &str) {
    if !gd.phase.active() {
        return;
    }
    gd.phase = Phase::Ended;
    gd.ended_at = Some(now_ms());
    gd.end_reason = Some(reason.to_string());
    if let Some(since) = gd.paused_since.take() {
        gd.pauses.push((since, now_ms()));
    }
    if gd
        .restore
        .as_ref()
        .is_some_and(|r| r.confirmed_at.is_none())
    {
        let team = gd.restore.take().map(|r| r.team);
        let mut e = event(
            "restore-rejected",
            "firedrill",
            "not confirmed before the drill ended: the drill's end restored service",
            false,
        );
        e.team = team;
        gd.push(e);
    }
    gd.push(event(
        "ended",
        by,
        format!("the drill ended: {reason}"),
        false,
    ));
}

/// Unseal a revealed game day's runs in the engine's history.
pub(crate) fn unseal(p: &Platform, gd: &GameDay) {
    for id in gd.runs.iter().filter_map(|r| r.parse::<RunId>().ok()) {
        if let Err(e) = p.engine().history().unseal(id) {
            tracing::error!("game day {}: unsealing run {id}: {e}", gd.id);
        }
    }
}

/// Set `gd`'s first fault and last revert from the ledger's timelines
/// (the driver's own look, once per tick, can be a tick late).
pub(crate) fn settle_ledger(p: &Platform, gd: &mut GameDay) {
    let runs: Vec<RunId> = gd.runs.iter().filter_map(|r| r.parse().ok()).collect();
    if let Some((first, cleared)) = ledger_times(p, &runs) {
        gd.first_fault_at = Some(first);
        gd.faults_cleared_at = cleared.or(gd.faults_cleared_at);
    }
}

/// The first fault applied and the last reverted, from the ledger's
/// timelines (Unix ms); `None` when no fault was applied.
fn ledger_times(p: &Platform, runs: &[RunId]) -> Option<(u64, Option<u64>)> {
    let history = p.engine().history();
    let mut first: Option<u64> = None;
    let mut last_revert: Option<u64> = None;
    let mut open = 0i64;
    for id in runs {
        let Ok(Some(run)) = history.get_run(*id) else {
            continue;
        };
        for e in history.timeline(*id).unwrap_or_default() {
            let at = run.started_at + e.at_us / 1000;
            match e.kind {
                EventKind::FaultApplied { planned: false, .. } => {
                    first = Some(first.map_or(at, |f| f.min(at)));
                    open += 1;
                }
                EventKind::FaultReverted { .. } => {
                    last_revert = Some(last_revert.map_or(at, |l| l.max(at)));
                    open -= 1;
                }
                _ => {}
            }
        }
    }
    first.map(|f| (f, if open <= 0 { last_revert } else { None }))
}

/// Abort an active game day: every run halted, and wait until their faults
/// are reverted; how long that took (ms).
pub(crate) async fn abort(p: &Platform, who: &str, id: &str) -> Result<(GameDay, u64), ApiError> {
    let began = Instant::now();
    let live = p.inner.gamedays.lock().unwrap().get(id).cloned();
    if let Some(live) = &live {
        live.halt();
    }
    update(p, id, |gd| {
        if !gd.phase.active() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("game day {id} is not active: nothing to abort"),
            ));
        }
        end_now(gd, who, &format!("aborted by the referee ({who})"));
        Ok(())
    })?;
    if let Some(live) = &live {
        let until = Instant::now() + Duration::from_secs(10);
        while live.active_faults() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let took = began.elapsed().as_millis() as u64;
    // The runs record their reverts as they end.
    if let Some(live) = &live {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until && {
            let active = p.inner.active.lock().unwrap();
            live.runs().iter().any(|id| active.contains_key(id))
        } {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let ((), gd) = update(p, id, |gd| {
        settle_ledger(p, gd);
        Ok(())
    })?;
    p.audit(who, "gameday-abort", &format!("game day {id}"), "ok", "");
    Ok((gd, took))
}

/// On a start: game days that were active when the server stopped are
/// ended (the engine's crash recovery reverted their faults).
pub(crate) fn recover(p: &Platform) {
    let Ok(all) = p.inner.store.gamedays() else {
        return;
    };
    for gd in all.into_iter().filter(|g| g.phase.active()) {
        let _ = update(p, &gd.id, |gd| {
            end_now(
                gd,
                "firedrill",
                "the server stopped during the drill; its faults were reverted when it started again",
            );
            Ok(())
        });
    }
}

/// Names and addresses of the services a game day acts on (targets of
/// its steps' needs and guardrails, and their addresses), for matching
/// alerts.
fn services(p: &Platform, gd: &GameDay) -> Vec<String> {
    let mut names: BTreeSet<String> = gd.planned.iter().map(|(_, t)| t.clone()).collect();
    for g in &gd.plan.guardrails {
        if let Some(t) = g.check.get("target").and_then(|t| t.as_str()) {
            names.insert(t.to_string());
        }
    }
    let mut out = Vec::new();
    for name in names {
        if let Ok(Some(t)) = p.inner.store.target(&name) {
            for key in ["listen", "address", "upstream", "api"] {
                if let Some(v) = t.declaration.get(key).and_then(|v| v.as_str())
                    && !v.ends_with(":0")
                {
                    out.push(v.to_string());
                }
            }
        }
        out.push(name);
    }
    out
}

/// An alert Alertmanager delivered: for each active game day whose
/// services it names (a label equal to a target's name, or holding its
/// address), recorded; the first firing one after the first fault is a
/// detection.
pub(crate) fn on_alert(p: &Platform, alert: &AlertRecord) {
    let Ok(all) = p.inner.store.gamedays() else {
        return;
    };
    for gd in all.into_iter().filter(|g| g.phase.active()) {
        let services = services(p, &gd);
        let hit = alert.labels.values().any(|v| {
            services
                .iter()
                .any(|s| v == s || (s.contains(':') && v.contains(s.as_str())))
        });
        if !hit {
            continue;
        }
        let _ = update(p, &gd.id, |gd| {
            let first = gd.first_fault_at.is_some()
                && alert.status == "firing"
                && !gd
                    .events
                    .iter()
                    .any(|e| e.kind == "detected" && e.by == "alertmanager");
            let mut e = event(
                if first { "detected" } else { "alert" },
                "alertmanager",
                format!("{} {}", alert.alertname, alert.status),
                false,
            );
            e.source = Some(format!("alert {}", alert.alertname));
            gd.push(e);
            Ok(())
        });
    }
}
