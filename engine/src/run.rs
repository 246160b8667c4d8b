//! One run, start to end: the principal types are [`RunSpec`] (what to run),
//! [`RunHandle`] (a run in progress) and the internal `RunCtx` that the host
//! implementations share.
//!
//! ```text
//! describe() ─► params checked ─► needs ∩ grants ─► steady state (before)
//!     ─► run() under limits, steady state (during) ─► revert every fault
//!     ─► steady state (after) ─► status ─► history
//! ```
//!
//! Every fault goes through [`RunCtx::apply_fault`]: policy, ledger entry
//! flushed, driver applies, timeline event; and back through
//! [`RunCtx::revert_fault`]. Whatever ends the run (return, trap, time
//! limit, halt, a violated check), `revert_all` runs before the status is
//! written.

use crate::drill::{CheckSpec, Limits};
use crate::drivers::{self, Applied, FaultSpec};
use crate::history::{
    Event, EventKind, HistoryStore, Outcome, Phase, Redactor, Run, RunId, RunStatus, ScenarioRef,
    unix_ms,
};
use crate::ledger::{Ledger, LedgerEntry, LedgerState};
use crate::policy::{self, FaultKind, Need, Policy};
use crate::runtime::bindings::GuestError;
use crate::runtime::{Runtime, Scenario};
use crate::steady;
use crate::targets::TargetSet;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How long a guest that ignores `halted` may keep running after a halt.
const HALT_GRACE: Duration = Duration::from_secs(1);
/// `describe()` must answer within this.
const DESCRIBE_LIMIT: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The scenario.
    pub scenario: Scenario,
    /// Parameters given by the operator.
    pub params: BTreeMap<String, String>,
    /// Seed; random (and recorded) when absent.
    pub seed: Option<u64>,
    /// The targets it may touch.
    pub targets: Arc<TargetSet>,
    /// Limits on faults.
    pub policy: Policy,
    /// Limits on the guest.
    pub limits: Limits,
    /// Steady-state checks.
    pub checks: Vec<CheckSpec>,
    /// Record faults without applying them.
    pub dry_run: bool,
    /// The drill file, for the record.
    pub drill: Option<String>,
    /// The drill's text, recorded so `replay` can rebuild the targets.
    pub drill_text: Option<String>,
    /// Sealed from the start, for this reason (a game day's plan): the
    /// control socket (`history`, `show`, `diff`) masks the run until
    /// [`crate::history::HistoryStore::unseal`].
    pub sealed: Option<String>,
}

impl RunSpec {
    /// A spec with no targets, default policy and limits.
    pub fn new(scenario: Scenario) -> RunSpec {
        RunSpec {
            scenario,
            params: BTreeMap::new(),
            seed: None,
            targets: Arc::new(TargetSet::default()),
            policy: Policy::default(),
            limits: Limits::default(),
            checks: Vec::new(),
            dry_run: false,
            drill: None,
            drill_text: None,
            sealed: None,
        }
    }
}

/// A run in progress.
#[derive(Debug)]
pub struct RunHandle {
    /// Its id.
    pub id: RunId,
    /// Live timeline events.
    pub events: broadcast::Receiver<Event>,
    ctx: Arc<RunCtx>,
    join: tokio::task::JoinHandle<Run>,
}

impl RunHandle {
    /// Ask the run to stop: `sleep` returns `halted`, faults are reverted,
    /// the run ends as halted.
    pub fn halt(&self) {
        self.ctx.stop(StopReason::Operator);
    }

    /// A handle that can halt the run from elsewhere.
    pub fn halter(&self) -> Halter {
        Halter(self.ctx.clone())
    }

    /// Wait for the run to end; its final record.
    pub async fn wait(self) -> Run {
        match self.join.await {
            Ok(run) => run,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Halts one run; cheap to clone.
#[derive(Debug, Clone)]
pub struct Halter(Arc<RunCtx>);

impl Halter {
    pub(crate) fn new(ctx: Arc<RunCtx>) -> Halter {
        Halter(ctx)
    }

    /// See [`RunHandle::halt`].
    pub fn halt(&self) {
        self.0.stop(StopReason::Operator);
    }

    /// The run's timeline events from now on (the history has the ones
    /// before; both carry `seq`, so a reader can join them). The last is
    /// `Ended`.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.recorder.live.subscribe()
    }

    /// Faults currently in effect: (id, kind, target).
    pub fn active_faults(&self) -> Vec<(u32, FaultKind, String)> {
        self.0
            .faults
            .lock()
            .unwrap()
            .iter()
            .map(|(id, f)| (*id, f.kind, f.target.clone()))
            .collect()
    }
}

/// The guest's handle to a lasting fault.
#[derive(Debug)]
#[allow(unreachable_pub)] // named by the generated bindings
pub struct FaultRep {
    pub(crate) id: u32,
    pub(crate) kind: FaultKind,
    pub(crate) target: String,
}

#[derive(Debug, Clone)]
pub(crate) enum StopReason {
    Operator,
    Timeout(Duration),
    SteadyState(String),
    /// A resource limit other than time or memory (logs, outcome size).
    Limit(String),
}

#[derive(Debug)]
struct ActiveFault {
    kind: FaultKind,
    target: String,
    applied: Option<Applied>,
    timer: Option<tokio::task::AbortHandle>,
    /// When its duration runs out.
    due: Option<Instant>,
}

/// Writes a run's timeline to history and to live subscribers.
#[derive(Debug)]
pub(crate) struct Recorder {
    run: RunId,
    start: Instant,
    /// The wall clock at `start` (Unix ms): the run's `started_at`, so
    /// `started_at + at_us` is when an event happened.
    started_unix_ms: u64,
    seq: AtomicU32,
    history: HistoryStore,
    live: broadcast::Sender<Event>,
    /// Masks secret parameter values in what is recorded, once the
    /// parameters are known.
    redactor: RwLock<Redactor>,
}

impl Recorder {
    pub(crate) fn record(&self, kind: EventKind) {
        let redactor = self.redactor.read().unwrap();
        let kind = redactor.value(kind);
        let event = Event {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            at_us: self.start.elapsed().as_micros() as u64,
            kind,
        };
        if let Err(e) = self.history.append_event(self.run, &event) {
            tracing::warn!("cannot record event of run {}: {e}", self.run);
        }
        let _ = self.live.send(event);
    }
}

/// State shared by a run's host calls, timers and checks.
#[derive(Debug)]
pub(crate) struct RunCtx {
    pub(crate) id: RunId,
    pub(crate) seed: u64,
    start: Instant,
    params: RwLock<BTreeMap<String, String>>,
    pub(crate) targets: Arc<TargetSet>,
    policy: Policy,
    needs: RwLock<Vec<Need>>,
    describing: std::sync::atomic::AtomicBool,
    dry_run: bool,
    pub(crate) recorder: Recorder,
    ledger: Ledger,
    rng: Mutex<ChaCha8Rng>,
    faults: Mutex<BTreeMap<u32, ActiveFault>>,
    /// Held through each revert, so a second revert of the same fault (the
    /// scenario's, racing the duration's timer) returns only once the first
    /// is done and recorded: the timeline's order does not depend on which
    /// task won.
    reverting: tokio::sync::Mutex<()>,
    next_fault: AtomicU32,
    stop_token: CancellationToken,
    stop_reason: Mutex<Option<(StopReason, Instant)>>,
    /// Log bytes the run may still write.
    log_budget: std::sync::atomic::AtomicUsize,
    log_limit: usize,
    /// Start and count of the current rate-limit window.
    calls: Mutex<(Instant, u32)>,
    /// When `run()` must end, and the limit it came from.
    deadline: Mutex<Option<(Instant, Duration)>>,
}

impl RunCtx {
    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// A generator for WASI's random interfaces, derived from the seed.
    pub(crate) fn wasi_rng(&self) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.seed ^ 0x5eed_f1e1_d000_0001_u64)
    }

    pub(crate) fn random(&self) -> u64 {
        self.rng.lock().unwrap().random()
    }

    pub(crate) fn param(&self, name: &str) -> Option<String> {
        self.params.read().unwrap().get(name).cloned()
    }

    pub(crate) fn params(&self) -> Vec<(String, String)> {
        self.params.read().unwrap().clone().into_iter().collect()
    }

    pub(crate) fn is_describing(&self) -> bool {
        self.describing.load(Ordering::Relaxed)
    }

    pub(crate) fn stop_token(&self) -> &CancellationToken {
        &self.stop_token
    }

    pub(crate) fn stop(&self, reason: StopReason) {
        let mut r = self.stop_reason.lock().unwrap();
        if r.is_none() {
            *r = Some((reason, Instant::now()));
        }
        self.stop_token.cancel();
    }

    fn stop_reason(&self) -> Option<StopReason> {
        self.stop_reason
            .lock()
            .unwrap()
            .as_ref()
            .map(|(r, _)| r.clone())
    }

    /// Take `bytes` from the run's log budget; false (and the run is
    /// stopped) once it is spent.
    pub(crate) fn charge_log(&self, bytes: usize) -> bool {
        let left = self
            .log_budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                b.checked_sub(bytes)
            });
        if left.is_err() {
            self.stop(StopReason::Limit(format!(
                "log limit of {} MiB exceeded: the scenario logs too much; raise [limits] log_bytes if it must",
                self.log_limit >> 20
            )));
            return false;
        }
        true
    }

    /// Wait, if needed, so the scenario makes at most
    /// `max_calls_per_second` host calls (counted in 100 ms windows).
    pub(crate) async fn throttle(&self) {
        const WINDOW: Duration = Duration::from_millis(100);
        let per_window = (self.policy.max_calls_per_second / 10).max(1);
        let wait = {
            let mut calls = self.calls.lock().unwrap();
            let now = Instant::now();
            if now.duration_since(calls.0) >= WINDOW {
                *calls = (now, 0);
            }
            calls.1 += 1;
            if calls.1 > per_window {
                let next = calls.0 + WINDOW;
                *calls = (next, 1);
                Some(next)
            } else {
                None
            }
        };
        if let Some(at) = wait {
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = self.stop_token.cancelled() => {}
            }
        }
    }

    /// Called by the epoch callback: stop the guest now?
    pub(crate) fn must_interrupt(&self) -> bool {
        if let Some((d, limit)) = *self.deadline.lock().unwrap()
            && Instant::now() >= d
        {
            self.stop(StopReason::Timeout(limit));
            return true;
        }
        matches!(&*self.stop_reason.lock().unwrap(), Some((_, at)) if at.elapsed() >= HALT_GRACE)
    }

    /// Apply a fault on behalf of the scenario: policy, ledger, driver,
    /// timeline, and an automatic revert after `duration` (capped by policy).
    pub(crate) async fn apply_fault(
        self: &Arc<Self>,
        target: &str,
        spec: FaultSpec,
        duration: Option<Duration>,
    ) -> Result<u32, GuestError> {
        if self.stop_token.is_cancelled() {
            return Err(GuestError::Halted);
        }
        let kind = spec.kind();
        let Some(t) = self.targets.get(target) else {
            let names: Vec<&str> = self.targets.names().collect();
            return Err(GuestError::UnknownTarget(if names.is_empty() {
                format!("no target named `{target}`: the drill declares no targets")
            } else {
                format!(
                    "no target named `{target}` (declared: {})",
                    names.join(", ")
                )
            }));
        };
        let needs = self.needs.read().unwrap().clone();
        policy::check_call(kind, target, &needs, self.targets.decls())
            .map_err(GuestError::Denied)?;
        let lasting = !matches!(kind, FaultKind::Kill | FaultKind::Restart);
        if lasting {
            let active = self.faults.lock().unwrap().len() as u32;
            if active >= self.policy.max_concurrent_faults {
                return Err(GuestError::Denied(format!(
                    "max_concurrent_faults ({}) reached: revert a fault first",
                    self.policy.max_concurrent_faults
                )));
            }
        }
        let duration = lasting.then(|| {
            duration
                .unwrap_or(self.policy.max_fault_duration)
                .min(self.policy.max_fault_duration)
        });
        let id = self.next_fault.fetch_add(1, Ordering::Relaxed);
        let detail = spec.describe();

        let applied = if self.dry_run {
            None
        } else {
            let fault_seed = self
                .seed
                .wrapping_add(u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let origin = drivers::Origin {
                run: self.id,
                fault: id,
                seed: fault_seed,
            };
            let prepared = drivers::prepare(target, t, spec, origin).map_err(|e| match e {
                drivers::DriverError::Unsupported(m) => GuestError::Unsupported(m),
                drivers::DriverError::Protected(m) => GuestError::Denied(m),
                drivers::DriverError::Failed(m) => GuestError::Failed(m),
            })?;
            let entry = LedgerEntry {
                run: self.id,
                fault: id,
                kind: kind.to_string(),
                target: target.to_string(),
                undo: prepared.undo(),
                state: LedgerState::Applying,
                applied_at: unix_ms(),
                reverted_at: None,
                error: None,
            };
            self.ledger
                .begin(&entry)
                .map_err(|e| GuestError::Failed(format!("ledger: {e}")))?;
            match prepared.apply().await {
                Ok(a) => {
                    let state = if lasting {
                        LedgerState::Applied
                    } else {
                        LedgerState::Reverted
                    };
                    let _ = self.ledger.set_state(self.id, id, state, None);
                    Some(a)
                }
                Err(e) => {
                    let _ = self.ledger.set_state(
                        self.id,
                        id,
                        LedgerState::NotApplied,
                        Some(e.to_string()),
                    );
                    return Err(GuestError::Failed(e.to_string()));
                }
            }
        };
        if lasting {
            self.faults.lock().unwrap().insert(
                id,
                ActiveFault {
                    kind,
                    target: target.to_string(),
                    applied,
                    timer: None,
                    due: duration.map(|d| Instant::now() + d),
                },
            );
        }
        // Listed as active before the event goes out, so a live view that
        // reads the active faults on the event sees this one; its timer
        // starts after, so its revert never precedes it in the timeline.
        self.recorder.record(EventKind::FaultApplied {
            fault: id,
            kind: kind.to_string(),
            target: target.to_string(),
            detail,
            duration_ms: duration.map(|d| d.as_millis() as u64),
            planned: self.dry_run,
        });
        if let Some(d) = duration {
            let ctx = Arc::downgrade(self);
            let timer = tokio::spawn(async move {
                tokio::time::sleep(d).await;
                if let Some(ctx) = ctx.upgrade() {
                    let _ = ctx.revert_fault(id, "duration").await;
                }
            })
            .abort_handle();
            match self.faults.lock().unwrap().get_mut(&id) {
                Some(f) => f.timer = Some(timer),
                None => timer.abort(),
            }
        }
        Ok(id)
    }

    /// Whether fault `id` is still in effect.
    pub(crate) fn fault_active(&self, id: u32) -> bool {
        self.faults.lock().unwrap().contains_key(&id)
    }

    /// Undo fault `id`; reverting one that is gone is a no-op.
    pub(crate) async fn revert_fault(&self, id: u32, reason: &str) -> Result<(), String> {
        let _one_at_a_time = self.reverting.lock().await;
        let Some(fault) = self.faults.lock().unwrap().remove(&id) else {
            return Ok(());
        };
        if let Some(t) = &fault.timer {
            t.abort();
        }
        // A scenario that reverts once the duration is up races its timer;
        // either way the duration ended the fault, and replay must see the
        // same reason whichever won.
        let reason = match fault.due {
            Some(due) if reason == "scenario" && Instant::now() >= due => "duration",
            _ => reason,
        };
        let result = match &fault.applied {
            Some(a) => a.revert().await,
            None => Ok(()),
        };
        if fault.applied.is_some() {
            let (state, err) = match &result {
                Ok(()) => (LedgerState::Reverted, None),
                Err(e) => (LedgerState::RevertFailed, Some(e.clone())),
            };
            if let Err(e) = self.ledger.set_state(self.id, id, state, err) {
                tracing::error!("ledger: cannot mark fault {id} of run {}: {e}", self.id);
            }
        }
        self.recorder.record(EventKind::FaultReverted {
            fault: id,
            reason: reason.to_string(),
            error: result.as_ref().err().cloned(),
        });
        result
    }

    /// Undo every fault still in effect; the errors of those that failed.
    pub(crate) async fn revert_all(&self, reason: &str) -> Vec<String> {
        let ids: Vec<u32> = self.faults.lock().unwrap().keys().copied().collect();
        let mut errors = Vec::new();
        for id in ids {
            if let Err(e) = self.revert_fault(id, reason).await {
                errors.push(format!("fault {id}: {e}"));
            }
        }
        errors
    }

    /// The scenario tried an outgoing `wasi:http` request, which is
    /// denied: recorded as a call, so `show` and replay see it.
    pub(crate) fn deny_outgoing_http(&self, method: &str, uri: &str) {
        let denied: Result<(), String> = Err(
            "denied: scenarios reach targets only through firedrill's probes (probes.http)".into(),
        );
        self.call(
            "wasi:http/outgoing-handler.handle",
            serde_json::json!({ "method": method, "uri": crate::drill::elide(uri) }),
            &denied,
        );
    }

    /// Record a host call in the timeline.
    pub(crate) fn call<T: serde::Serialize, E: std::fmt::Debug>(
        &self,
        call: &str,
        args: serde_json::Value,
        result: &Result<T, E>,
    ) {
        let result = match result {
            Ok(v) => serde_json::json!({ "ok": v }),
            Err(e) => serde_json::json!({ "err": format!("{e:?}") }),
        };
        self.recorder.record(EventKind::Call {
            call: call.to_string(),
            args,
            result,
        });
    }
}

/// Metadata a scenario reports from `describe()`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    /// Name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Description.
    pub description: String,
    /// Parameters.
    pub params: Vec<ParamSpec>,
    /// Needs after parameters.
    pub needs: Vec<Need>,
}

/// A declared parameter.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParamSpec {
    /// Name.
    pub name: String,
    /// `string`, `integer`, `float`, `boolean` or `duration`.
    pub ty: String,
    /// Default; none means required.
    pub default: Option<String>,
    /// Doc.
    pub doc: String,
    /// Declared secret by the scenario: its value is masked wherever a run
    /// is shown (absent in metadata recorded before 0.1.1 of the WIT).
    #[serde(default)]
    pub secret: bool,
}

impl Metadata {
    /// Check `given` against the declared parameters and fill defaults.
    pub fn resolve_params(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for (k, v) in given {
            let Some(spec) = self.params.iter().find(|p| &p.name == k) else {
                let known: Vec<_> = self.params.iter().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "scenario `{}` has no parameter `{}` (it takes: {})",
                    self.name,
                    crate::drill::elide(k),
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ));
            };
            let ok = match spec.ty.as_str() {
                "integer" => v.parse::<i64>().is_ok(),
                "float" => v.parse::<f64>().is_ok(),
                "boolean" => v.parse::<bool>().is_ok(),
                "duration" => humantime::parse_duration(v).is_ok(),
                _ => true,
            };
            if !ok {
                let got = if spec.secret || crate::history::is_secret(k) {
                    crate::history::MASKED.to_string()
                } else {
                    crate::drill::elide(v).into_owned()
                };
                return Err(format!(
                    "parameter `{k}` must be of type {}, got `{got}`",
                    spec.ty
                ));
            }
            crate::drill::check_param_value(v).map_err(|e| format!("parameter `{k}`: {e}"))?;
            out.insert(k.clone(), v.clone());
        }
        for p in &self.params {
            if !out.contains_key(&p.name) {
                match &p.default {
                    Some(d) => {
                        out.insert(p.name.clone(), d.clone());
                    }
                    None => return Err(format!("parameter `{}` is required: {}", p.name, p.doc)),
                }
            }
        }
        Ok(out)
    }
}

pub(crate) fn new_ctx(
    id: RunId,
    spec: &RunSpec,
    history: HistoryStore,
    ledger: Ledger,
) -> (Arc<RunCtx>, broadcast::Receiver<Event>) {
    let seed = spec.seed.unwrap_or_else(rand::random);
    let (live, rx) = broadcast::channel(1024);
    let start = Instant::now();
    let ctx = Arc::new(RunCtx {
        id,
        seed,
        start,
        params: RwLock::new(spec.params.clone()),
        targets: spec.targets.clone(),
        policy: spec.policy.clone(),
        needs: RwLock::new(Vec::new()),
        describing: std::sync::atomic::AtomicBool::new(true),
        dry_run: spec.dry_run,
        recorder: Recorder {
            run: id,
            start,
            started_unix_ms: unix_ms(),
            seq: AtomicU32::new(0),
            history,
            live,
            redactor: RwLock::new(Redactor::default()),
        },
        ledger,
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        faults: Mutex::new(BTreeMap::new()),
        reverting: tokio::sync::Mutex::new(()),
        next_fault: AtomicU32::new(0),
        stop_token: CancellationToken::new(),
        stop_reason: Mutex::new(None),
        log_budget: std::sync::atomic::AtomicUsize::new(spec.limits.log_bytes),
        log_limit: spec.limits.log_bytes,
        calls: Mutex::new((start, 0)),
        deadline: Mutex::new(None),
    });
    (ctx, rx)
}

impl RunHandle {
    pub(crate) fn new(
        ctx: Arc<RunCtx>,
        events: broadcast::Receiver<Event>,
        join: tokio::task::JoinHandle<Run>,
    ) -> RunHandle {
        RunHandle {
            id: ctx.id,
            events,
            ctx,
            join,
        }
    }
}

/// Ask the scenario what it is. Used for runs and for `inspect`.
pub(crate) async fn describe(
    runtime: &Runtime,
    scenario: &Scenario,
    ctx: Arc<RunCtx>,
    limits: &Limits,
) -> Result<Metadata, String> {
    use crate::runtime::bindings::ParamType;
    let needs = scenario.core_instances() as usize;
    if needs > limits.instances {
        return Err(format!(
            "{} needs {needs} core instances, the limit is {} (raise `[limits] instances`, at most {})",
            scenario.source(),
            limits.instances,
            crate::runtime::CORE_INSTANCES_PER_SLOT
        ));
    }
    let (mut store, _) = runtime.store(scenario, ctx.clone(), limits).await;
    *ctx.deadline.lock().unwrap() = Some((Instant::now() + DESCRIBE_LIMIT, DESCRIBE_LIMIT));
    let result = scenario.pre.describe(&mut store).await;
    *ctx.deadline.lock().unwrap() = None;
    let m = result.map_err(|e| trap_cause(&e, &store, &ctx, "describe()"))?;
    Ok(Metadata {
        name: m.name,
        version: m.version,
        description: m.description,
        params: m
            .params
            .into_iter()
            .map(|p| ParamSpec {
                name: p.name,
                ty: match p.ty {
                    ParamType::String => "string",
                    ParamType::Integer => "integer",
                    ParamType::Float => "float",
                    ParamType::Boolean => "boolean",
                    ParamType::Duration => "duration",
                }
                .to_string(),
                default: p.default,
                doc: p.doc,
                secret: p.secret,
            })
            .collect(),
        needs: m
            .needs
            .into_iter()
            .map(|n| Need {
                kind: crate::runtime::fault_kind(n.kind),
                target: n.target,
            })
            .collect(),
    })
}

fn trap_cause(
    e: &wasmtime::Error,
    store: &wasmtime::Store<crate::runtime::RunState>,
    ctx: &RunCtx,
    what: &str,
) -> String {
    match ctx.stop_reason() {
        Some(StopReason::Timeout(limit)) => {
            return format!(
                "time limit of {} exceeded in {what}",
                humantime::format_duration(limit)
            );
        }
        Some(StopReason::Limit(msg)) => return msg,
        _ => {}
    }
    if let Some(limit) = store.data().limit_exceeded() {
        return limit;
    }
    let mut msg = format!("{what} trapped: {}", e.root_cause());
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        msg = format!("{what} trapped: {trap}");
    }
    msg
}

pub(crate) async fn execute(
    runtime: &Runtime,
    history: &HistoryStore,
    spec: RunSpec,
    ctx: Arc<RunCtx>,
) -> Run {
    let mut run = Run {
        id: ctx.id,
        scenario: ScenarioRef {
            name: String::new(),
            version: String::new(),
            sha256: spec.scenario.sha256().to_string(),
            source: spec.scenario.source().to_string(),
            package: spec.scenario.package().cloned(),
        },
        params: spec.params.clone(),
        seed: ctx.seed,
        engine_version: env!("CARGO_PKG_VERSION").to_string(),
        drill: spec.drill.clone(),
        drill_text: spec.drill_text.clone(),
        dry_run: spec.dry_run,
        started_at: ctx.recorder.started_unix_ms,
        ended_at: None,
        status: RunStatus::Running,
        outcome: None,
        error: None,
        secret_params: Vec::new(),
    };
    if let Some(why) = &spec.sealed
        && let Err(e) = history.seal(run.id, why)
    {
        tracing::error!("cannot seal run {}: {e}", run.id);
    }
    save(history, &run);
    ctx.recorder.record(EventKind::Started);

    let (status, error) = drive(runtime, &spec, &ctx, &mut run).await;
    let revert_errors = ctx.revert_all("run-end").await;
    let (status, error) = if !revert_errors.is_empty() {
        (
            RunStatus::RevertFailed,
            Some(format!("could not revert: {}", revert_errors.join("; "))),
        )
    } else {
        (status, error)
    };
    let (error, outcome) = {
        let redactor = ctx.recorder.redactor.read().unwrap();
        (redactor.value(error), redactor.value(run.outcome.take()))
    };
    run.status = status;
    run.error = error.clone();
    run.outcome = outcome;
    run.ended_at = Some(unix_ms());
    ctx.recorder.record(EventKind::Ended { status, error });
    // One flush makes the timeline and the closed record durable together.
    save(history, &run);
    runtime.settle_cache().await;
    run
}

fn save(history: &HistoryStore, run: &Run) {
    if let Err(e) = history.put_run(run) {
        tracing::error!("cannot store run {}: {e}", run.id);
    }
}

/// Everything between start and the final revert; returns status and cause.
async fn drive(
    runtime: &Runtime,
    spec: &RunSpec,
    ctx: &Arc<RunCtx>,
    run: &mut Run,
) -> (RunStatus, Option<String>) {
    let meta = match describe(runtime, &spec.scenario, ctx.clone(), &spec.limits).await {
        Ok(m) => m,
        Err(e) => return (RunStatus::Aborted, Some(e)),
    };
    run.scenario.name = meta.name.clone();
    run.scenario.version = meta.version.clone();
    let params = match meta.resolve_params(&spec.params) {
        Ok(p) => p,
        Err(e) => return (RunStatus::Refused, Some(e)),
    };
    run.secret_params = meta
        .params
        .iter()
        .filter(|p| p.secret)
        .map(|p| p.name.clone())
        .collect();
    *ctx.recorder.redactor.write().unwrap() = Redactor::new(&params, &run.secret_params);
    run.params = params.clone();
    *ctx.params.write().unwrap() = params;
    let missing = policy::missing_grants(&meta.needs, spec.targets.decls());
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
        return (
            RunStatus::Refused,
            Some(format!(
                "the scenario needs what the drill does not grant: {}",
                list.join("; ")
            )),
        );
    }
    let protected = crate::drill::protected_violations(&spec.policy, spec.targets.decls());
    if !protected.is_empty() {
        return (
            RunStatus::Refused,
            Some(format!("protected ports: {}", protected.join("; "))),
        );
    }
    *ctx.needs.write().unwrap() = meta.needs.clone();
    save_quiet(ctx, run);

    // Steady state before: a failing check refuses the run.
    for check in spec
        .checks
        .iter()
        .filter(|c| c.phases.contains(&Phase::Before))
    {
        let (ok, detail) = steady::evaluate(check, &spec.targets).await;
        ctx.recorder.record(EventKind::Check {
            name: check.name.clone(),
            phase: Phase::Before,
            ok,
            detail: detail.clone(),
        });
        if !ok {
            return (
                RunStatus::SteadyStateViolated,
                Some(format!(
                    "steady state `{}` failed before the run: {detail}",
                    check.name
                )),
            );
        }
    }

    let during = steady::watch(spec.checks.clone(), ctx.clone());
    let _exits = record_target_exits(&spec.targets, ctx);
    ctx.describing.store(false, Ordering::Relaxed);
    let (mut store, output) = runtime
        .store(&spec.scenario, ctx.clone(), &spec.limits)
        .await;
    *ctx.deadline.lock().unwrap() =
        Some((Instant::now() + spec.limits.timeout, spec.limits.timeout));
    // The epoch deadline stops a guest that computes; this timer stops one
    // that waits in a host call (its sleep returns `halted`).
    let timer = {
        let ctx = ctx.clone();
        let limit = spec.limits.timeout;
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            ctx.stop(StopReason::Timeout(limit));
        })
    };
    let result = spec.scenario.pre.run(&mut store).await;
    timer.abort();
    *ctx.deadline.lock().unwrap() = None;
    during.abort();
    record_output(ctx, &output);

    let mut violated: Option<String> = None;
    let (mut status, mut error) = match result {
        Ok(Ok(o)) if outcome_too_large(&o).is_some() => (RunStatus::Aborted, outcome_too_large(&o)),
        Ok(Ok(o)) => {
            let outcome = outcome(o);
            let s = if outcome.pass {
                RunStatus::Passed
            } else {
                RunStatus::Failed
            };
            let e = (!outcome.pass).then(|| outcome.summary.clone());
            run.outcome = Some(outcome);
            (s, e)
        }
        Ok(Err(GuestError::Halted)) => (
            RunStatus::Halted,
            Some("the scenario stopped on halt".into()),
        ),
        Ok(Err(e)) => (
            RunStatus::Aborted,
            Some(format!(
                "the scenario returned an error: {}",
                guest_error_text(&e)
            )),
        ),
        Err(e) => (
            RunStatus::Aborted,
            Some(trap_cause(&e, &store, ctx, "run()")),
        ),
    };
    match ctx.stop_reason() {
        Some(StopReason::Operator) => {
            status = RunStatus::Halted;
            error = Some("halted by the operator".into());
        }
        Some(StopReason::Timeout(limit)) => {
            status = RunStatus::Aborted;
            error = Some(format!(
                "time limit of {} exceeded",
                humantime::format_duration(limit)
            ));
        }
        Some(StopReason::SteadyState(msg)) => violated = Some(msg),
        Some(StopReason::Limit(msg)) => {
            status = RunStatus::Aborted;
            error = Some(msg);
            run.outcome = None;
        }
        None => {}
    }
    drop(store);

    // Revert before the after-checks: they judge recovery.
    let revert_errors = ctx.revert_all("run-end").await;
    if !revert_errors.is_empty() {
        return (
            RunStatus::RevertFailed,
            Some(format!("could not revert: {}", revert_errors.join("; "))),
        );
    }
    if let Some(msg) = violated {
        return (RunStatus::SteadyStateViolated, Some(msg));
    }
    if matches!(status, RunStatus::Passed | RunStatus::Failed) {
        for check in spec
            .checks
            .iter()
            .filter(|c| c.phases.contains(&Phase::After))
        {
            let (ok, detail) = steady::evaluate_after(check, &spec.targets).await;
            ctx.recorder.record(EventKind::Check {
                name: check.name.clone(),
                phase: Phase::After,
                ok,
                detail: detail.clone(),
            });
            if !ok && status == RunStatus::Passed {
                status = RunStatus::SteadyStateViolated;
                error = Some(format!(
                    "steady state `{}` did not hold after the run: {detail}",
                    check.name
                ));
            }
        }
    }
    (status, error)
}

/// Record each exit of a spawned target (with its last output) in the
/// timeline as it happens, until the returned guard is dropped.
fn record_target_exits(targets: &TargetSet, ctx: &Arc<RunCtx>) -> tokio_util::sync::DropGuard {
    let stop = CancellationToken::new();
    for name in targets.names() {
        let Some(crate::targets::Target::Process(p)) = targets.get(name) else {
            continue;
        };
        let mut exits = p.exits();
        let (ctx, stop) = (ctx.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    m = exits.recv() => m,
                    _ = stop.cancelled() => return,
                };
                match message {
                    Ok(message) => ctx.recorder.record(EventKind::Log {
                        level: "warn".into(),
                        message,
                    }),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
    }
    stop.drop_guard()
}

fn save_quiet(ctx: &RunCtx, run: &Run) {
    if let Err(e) = ctx.recorder.history.update_run(run) {
        tracing::warn!("cannot update run {}: {e}", run.id);
    }
}

fn record_output(ctx: &RunCtx, output: &crate::runtime::GuestOutput) {
    for (stream, pipe) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let bytes = pipe.contents();
        if !bytes.is_empty() {
            ctx.recorder.record(EventKind::Output {
                stream: stream.into(),
                text: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
    }
}

/// Outcomes are bounded so one run cannot flood history.
const MAX_OUTCOME_ITEMS: usize = 1000;
const MAX_OUTCOME_TEXT: usize = 64 * 1024;

fn outcome_too_large(o: &crate::runtime::bindings::Outcome) -> Option<String> {
    let text = o.summary.len()
        + o.findings
            .iter()
            .map(|f| f.title.len() + f.detail.len())
            .sum::<usize>()
        + o.measurements
            .iter()
            .map(|m| m.name.len() + m.unit.len())
            .sum::<usize>();
    (o.findings.len() > MAX_OUTCOME_ITEMS || o.measurements.len() > MAX_OUTCOME_ITEMS || text > MAX_OUTCOME_TEXT * 16).then(|| {
        format!(
            "the outcome is too large ({} findings, {} measurements, {} KiB of text; at most {MAX_OUTCOME_ITEMS} each and {} KiB)",
            o.findings.len(),
            o.measurements.len(),
            text / 1024,
            MAX_OUTCOME_TEXT * 16 / 1024
        )
    })
}

fn outcome(o: crate::runtime::bindings::Outcome) -> Outcome {
    use crate::runtime::bindings::{Severity, Verdict};
    Outcome {
        pass: matches!(o.verdict, Verdict::Pass),
        summary: o.summary,
        findings: o
            .findings
            .into_iter()
            .map(|f| crate::history::Finding {
                severity: match f.severity {
                    Severity::Info => "info",
                    Severity::Warning => "warning",
                    Severity::Critical => "critical",
                }
                .into(),
                title: f.title,
                detail: f.detail,
            })
            .collect(),
        measurements: o
            .measurements
            .into_iter()
            .map(|m| crate::history::Measurement {
                name: m.name,
                value: m.value,
                unit: m.unit,
            })
            .collect(),
    }
}

/// The guest-visible error as text.
pub(crate) fn guest_error_text(e: &GuestError) -> String {
    match e {
        GuestError::Denied(m) => format!("denied: {m}"),
        GuestError::UnknownTarget(m) => format!("unknown target: {m}"),
        GuestError::InvalidArgument(m) => format!("invalid argument: {m}"),
        GuestError::Unsupported(m) => format!("unsupported: {m}"),
        GuestError::Failed(m) => format!("failed: {m}"),
        GuestError::Halted => "halted".into(),
    }
}
