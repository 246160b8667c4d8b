//! The principal type is [`Engine`]: built by [`EngineBuilder`], it owns the
//! wasmtime runtime, the data dir (history, ledger, compiled-code cache) and
//! every run in progress. One engine runs many runs at once.

use crate::control;
use crate::drill::Limits;
use crate::history::{EventKind, HistoryStore, RunId, RunStatus, unix_ms};
use crate::ledger::{Ledger, Recovery};
use crate::run::{self, Halter, Metadata, RunHandle, RunSpec};
use crate::runtime::{LoadError, Runtime, Scenario, Tier};
use crate::store::{Store, StoreError};
use crate::targets::TargetSet;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Errors of the engine's operations.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The data dir's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A component could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        cause: std::io::Error,
    },
    /// wasmtime could not be set up.
    #[error("wasmtime: {0}")]
    Wasmtime(String),
    /// `describe()` failed.
    #[error("{0}")]
    Describe(String),
    /// A run cannot be replayed (not found, component or drill missing).
    #[error("cannot replay: {0}")]
    Replay(String),
    /// The engine is halted: no new runs until resumed.
    #[error("{0}: no new runs start until `firedrill resume`")]
    Halted(HaltState),
}

/// An engine-wide halt (`firedrill halt`, [`Engine::halt`]): kept in the
/// data dir, so it holds for every later engine on that dir (as an
/// emergency stop should) until [`Engine::resume`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HaltState {
    /// When it was halted, Unix ms.
    pub since: u64,
}

impl std::fmt::Display for HaltState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "firedrill is halted (since {} UTC, by `firedrill halt`)",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.since)
            )
            .to_string()
            .replace('T', " ")
            .trim_end_matches('Z')
        )
    }
}

/// How many runs an engine holds at once unless told otherwise.
pub const DEFAULT_MAX_CONCURRENT_RUNS: u32 = 1000;

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    data_dir: Option<PathBuf>,
    control_socket: bool,
    protected_ports: Vec<u16>,
    max_concurrent_runs: u32,
}

impl Default for EngineBuilder {
    fn default() -> EngineBuilder {
        EngineBuilder {
            data_dir: None,
            control_socket: false,
            protected_ports: Vec::new(),
            max_concurrent_runs: DEFAULT_MAX_CONCURRENT_RUNS,
        }
    }
}

impl EngineBuilder {
    /// A builder for a temporary engine: history in memory, no cache, no
    /// control socket, until [`EngineBuilder::data_dir`] is set.
    pub fn new() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Keep history, ledger and compiled code under `dir`. By default this
    /// also serves the control socket (`dir/control.sock`).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> EngineBuilder {
        self.data_dir = Some(dir.into());
        self.control_socket = true;
        self
    }

    /// Serve the control socket, through which other `firedrill` commands
    /// reach this engine's data dir. Default: on with a data dir.
    pub fn control_socket(mut self, on: bool) -> EngineBuilder {
        self.control_socket = on;
        self
    }

    /// Ports that no target of any run may listen on or reach, whatever its
    /// drill says (a drill's `[policy] protected_ports` adds to these).
    /// Default: none.
    pub fn protected_ports(mut self, ports: impl IntoIterator<Item = u16>) -> EngineBuilder {
        self.protected_ports.extend(ports);
        self
    }

    /// How many scenario instances may be alive at once: the size of the
    /// pool their memories, tables and stacks are taken from. A run that
    /// finds every slot taken waits for one. Default
    /// [`DEFAULT_MAX_CONCURRENT_RUNS`]; each slot reserves about 8 GiB of
    /// address space (not memory).
    pub fn max_concurrent_runs(mut self, n: u32) -> EngineBuilder {
        self.max_concurrent_runs = n.max(1);
        self
    }

    /// Open the data dir, revert whatever a crashed engine left applied,
    /// close its runs as crashed, and start the runtime. Must be called
    /// inside a tokio runtime when the control socket is on.
    pub fn build(self) -> Result<Engine, EngineError> {
        // Opening the store (sled replays its log and writes a snapshot),
        // reverting a crashed engine's faults and wasmtime's set-up do not
        // depend on each other: they run side by side, as they are most of
        // a command's start-up.
        let slots = self.max_concurrent_runs;
        let (opened, runtime) = std::thread::scope(|s| {
            let runtime = s.spawn(move || Runtime::new(slots));
            (self.open_store(), runtime.join())
        });
        let (store, history, ledger, recovery) = opened?;
        let halt = read_halt(&store.meta)?;
        let mut runtime = runtime
            .map_err(|_| EngineError::Wasmtime("wasmtime's set-up panicked".into()))?
            .map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;
        if let Some(dir) = &self.data_dir {
            runtime.cache_in(dir.join("cache"), store.clone());
        }
        let inner = Arc::new(Inner {
            runtime: Arc::new(runtime),
            history,
            ledger,
            data_dir: self.data_dir.clone(),
            recovery,
            active: Mutex::new(HashMap::new()),
            halted: Mutex::new(halt),
            meta: store.meta.clone(),
            last_id: AtomicU64::new(0),
            protected_ports: self.protected_ports.clone(),
        });
        let engine = Engine { inner };
        if self.control_socket
            && let Some(dir) = &self.data_dir
        {
            control::serve(engine.clone(), dir).map_err(|cause| EngineError::Read {
                path: dir.join(control::SOCKET).display().to_string(),
                cause,
            })?;
        }
        Ok(engine)
    }

    /// The store, its history and ledger, and what recovery did.
    fn open_store(&self) -> Result<(Store, HistoryStore, Ledger, Recovery), EngineError> {
        let store = match &self.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::of_io(dir, dir, &e))?;
                Store::open(dir)?
            }
            None => Store::temporary()?,
        };
        let history = HistoryStore::new(store.clone());
        let ledger = Ledger::new(store.clone());
        // Recovery is the first read of every record: a failure there is
        // of the database's contents.
        let recovery = recover(&history, &ledger).map_err(|e| match (&self.data_dir, e) {
            (Some(dir), StoreError::Sled(e)) => StoreError::Damaged {
                dir: dir.display().to_string(),
                cause: e.to_string(),
            },
            (Some(dir), StoreError::Corrupt { tree, error }) => StoreError::Damaged {
                dir: dir.display().to_string(),
                cause: format!("a record of `{tree}` does not parse: {error}"),
            },
            (_, e) => e,
        })?;
        Ok((store, history, ledger, recovery))
    }
}

#[derive(Debug)]
struct Inner {
    runtime: Arc<Runtime>,
    history: HistoryStore,
    ledger: Ledger,
    data_dir: Option<PathBuf>,
    recovery: Recovery,
    active: Mutex<HashMap<RunId, Halter>>,
    /// Mirrors [`crate::store::KEY_HALT`] in `meta`.
    halted: Mutex<Option<HaltState>>,
    meta: sled::Tree,
    last_id: AtomicU64,
    protected_ports: Vec<u16>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runtime")
    }
}

/// A chaos engine: loads scenarios, runs them against targets, records
/// history. Cheap to clone; clones share everything.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// use firedrill::{EngineBuilder, RunSpec};
/// let engine = EngineBuilder::new().build()?;
/// let scenario = engine.load_file("scenario.wasm".as_ref())?;
/// let run = engine.run(RunSpec::new(scenario)).await?;
/// println!("{}: {}", run.id, run.status);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Compile (or fetch from the cache) a component.
    pub fn load(&self, bytes: &[u8], source: &str) -> Result<Scenario, EngineError> {
        Ok(self.inner.runtime.load(bytes, source, Tier::Baseline)?)
    }

    /// Load a component with optimized code, compiling it now (and keeping
    /// it in the data dir's cache) unless it is cached: what `firedrill
    /// check` does, so that later runs start with optimized code. [`load`]
    /// compiles a large component (a Python or JavaScript runtime) with
    /// Winch, wasmtime's baseline compiler, when nothing is cached, which
    /// takes a fifth of the time.
    ///
    /// [`load`]: Engine::load
    pub fn precompile(&self, bytes: &[u8], source: &str) -> Result<Scenario, EngineError> {
        Ok(self.inner.runtime.load(bytes, source, Tier::Optimizing)?)
    }

    /// Read and load a component file.
    pub fn load_file(&self, path: &Path) -> Result<Scenario, EngineError> {
        let bytes = std::fs::read(path).map_err(|cause| EngineError::Read {
            path: path.display().to_string(),
            cause,
        })?;
        self.load(&bytes, &path.display().to_string())
    }

    /// A scenario's metadata and needs, with `params` applied.
    pub async fn inspect(
        &self,
        scenario: &Scenario,
        params: &std::collections::BTreeMap<String, String>,
    ) -> Result<Metadata, EngineError> {
        let mut spec = RunSpec::new(scenario.clone());
        spec.params = params.clone();
        spec.seed = Some(0);
        let (ctx, _rx) = run::new_ctx(
            RunId(0),
            &spec,
            self.inner.history.clone(),
            self.inner.ledger.clone(),
        );
        let described = run::describe(&self.inner.runtime, scenario, ctx, &Limits::default()).await;
        self.inner.runtime.settle_cache().await;
        described.map_err(EngineError::Describe)
    }

    /// Start a run; it goes on in the background.
    pub fn start(&self, mut spec: RunSpec) -> Result<RunHandle, EngineError> {
        spec.policy
            .protected_ports
            .extend(&self.inner.protected_ports);
        if let Some(halt) = self.halt_state() {
            return Err(EngineError::Halted(halt));
        }
        let id = self.next_id();
        self.store_component(&spec.scenario);
        let (ctx, rx) = run::new_ctx(
            id,
            &spec,
            self.inner.history.clone(),
            self.inner.ledger.clone(),
        );
        // Listed before the task starts: a run that ends at once must not
        // remove itself before it is added and then stay listed for good.
        self.inner
            .active
            .lock()
            .unwrap()
            .insert(id, Halter::new(ctx.clone()));
        let inner = self.inner.clone();
        let c = ctx.clone();
        let join = tokio::spawn(async move {
            let run = run::execute(&inner.runtime, &inner.history, spec, c).await;
            inner.active.lock().unwrap().remove(&run.id);
            run
        });
        Ok(RunHandle::new(ctx, rx, join))
    }

    /// Run to the end; the final record.
    pub async fn run(&self, spec: RunSpec) -> Result<crate::history::Run, EngineError> {
        Ok(self.start(spec)?.wait().await)
    }

    /// Halt every run in progress and refuse new ones until
    /// [`Engine::resume`], in this engine and in any later one on the same
    /// data dir (the halt is stored there). Returns how many runs were
    /// halted. Storing the halt can fail only with the store itself; the
    /// runs are halted either way.
    pub fn halt(&self) -> Result<usize, EngineError> {
        let state = {
            let mut halted = self.inner.halted.lock().unwrap();
            halted
                .get_or_insert_with(|| HaltState { since: unix_ms() })
                .clone()
        };
        let active = self.inner.active.lock().unwrap();
        for h in active.values() {
            h.halt();
        }
        let runs = active.len();
        drop(active);
        self.inner
            .meta
            .insert(crate::store::KEY_HALT, crate::store::encode(&state))
            .map_err(StoreError::from)?;
        self.inner.meta.flush().map_err(StoreError::from)?;
        Ok(runs)
    }

    /// Accept new runs again after [`Engine::halt`]; the halt that was in
    /// force, if there was one.
    pub fn resume(&self) -> Result<Option<HaltState>, EngineError> {
        let was = self.inner.halted.lock().unwrap().take();
        self.inner
            .meta
            .remove(crate::store::KEY_HALT)
            .map_err(StoreError::from)?;
        self.inner.meta.flush().map_err(StoreError::from)?;
        Ok(was)
    }

    /// The halt in force, if any.
    pub fn halt_state(&self) -> Option<HaltState> {
        self.inner.halted.lock().unwrap().clone()
    }

    /// Ports no target of any run may use (see
    /// [`EngineBuilder::protected_ports`]).
    pub fn protected_ports(&self) -> &[u16] {
        &self.inner.protected_ports
    }

    /// Runs in progress.
    pub fn active_runs(&self) -> Vec<RunId> {
        self.inner.active.lock().unwrap().keys().copied().collect()
    }

    /// Run history.
    pub fn history(&self) -> &HistoryStore {
        &self.inner.history
    }

    /// The revert ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// What recovery did when this engine opened its data dir.
    pub fn recovery(&self) -> &Recovery {
        &self.inner.recovery
    }

    /// The data dir, if not temporary.
    pub fn data_dir(&self) -> Option<&Path> {
        self.inner.data_dir.as_deref()
    }

    /// Start the targets of a drill (see [`TargetSet::start`]).
    pub async fn start_targets(
        &self,
        decls: &std::collections::BTreeMap<String, crate::drill::TargetDecl>,
    ) -> Result<Arc<TargetSet>, String> {
        TargetSet::start(decls).await
    }

    /// Keep the component of a run in the data dir (`scenarios/<sha256>.wasm`)
    /// so the run can be replayed after the file it came from changed.
    fn store_component(&self, scenario: &Scenario) {
        let Some(dir) = &self.inner.data_dir else {
            return;
        };
        let path = dir
            .join("scenarios")
            .join(format!("{}.wasm", scenario.sha256()));
        if path.exists() {
            return;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let stored = std::fs::create_dir_all(dir.join("scenarios"))
            .and_then(|()| std::fs::write(&tmp, scenario.bytes()))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = stored {
            tracing::warn!(
                "cannot keep component {} for replay: {e}",
                scenario.sha256()
            );
        }
    }

    /// A component's bytes by sha256: loaded in this engine, or kept in the
    /// data dir by an earlier run. Bytes from disk are checked against the
    /// digest.
    pub fn component(&self, sha256: &str) -> Option<Vec<u8>> {
        if let Some(s) = self.inner.runtime.loaded(sha256) {
            return Some(s.bytes().to_vec());
        }
        let dir = self.inner.data_dir.as_ref()?;
        let bytes = std::fs::read(dir.join("scenarios").join(format!("{sha256}.wasm"))).ok()?;
        use sha2::Digest;
        (hex::encode(sha2::Sha256::digest(&bytes)) == sha256).then_some(bytes)
    }

    /// For benchmarks: instantiate `scenario` `n` times, each in a fresh
    /// store as a run does; the mean time of one instantiation.
    #[doc(hidden)]
    pub async fn bench_instantiate(
        &self,
        scenario: &Scenario,
        n: u32,
    ) -> Result<std::time::Duration, EngineError> {
        let spec = RunSpec::new(scenario.clone());
        let (ctx, _rx) = run::new_ctx(
            RunId(0),
            &spec,
            self.inner.history.clone(),
            self.inner.ledger.clone(),
        );
        let limits = Limits::default();
        let started = std::time::Instant::now();
        for _ in 0..n {
            let (mut store, _) = self
                .inner
                .runtime
                .store(scenario, ctx.clone(), &limits)
                .await;
            scenario
                .pre
                .instantiate(&mut store)
                .await
                .map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;
        }
        Ok(started.elapsed() / n.max(1))
    }

    fn next_id(&self) -> RunId {
        let candidate = unix_ms() << 16;
        let mut last = self.inner.last_id.load(Ordering::SeqCst);
        loop {
            let next = candidate.max(last + 1);
            match self.inner.last_id.compare_exchange(
                last,
                next,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return RunId(next),
                Err(seen) => last = seen,
            }
        }
    }
}

/// The stored halt, if `firedrill halt` is in force.
fn read_halt(meta: &sled::Tree) -> Result<Option<HaltState>, StoreError> {
    meta.get(crate::store::KEY_HALT)?
        .map(|v| crate::store::decode(crate::store::TREE_META, &v))
        .transpose()
}

/// Revert faults a dead engine left applied and close its runs as crashed.
fn recover(history: &HistoryStore, ledger: &Ledger) -> Result<Recovery, StoreError> {
    let recovery = ledger.recover()?;
    for mut run in history.running()? {
        let reverted = recovery.reverted.iter().filter(|e| e.run == run.id).count();
        let failed: Vec<_> = recovery.failed.iter().filter(|e| e.run == run.id).collect();
        run.status = if failed.is_empty() {
            RunStatus::Crashed
        } else {
            RunStatus::RevertFailed
        };
        run.error = Some(format!(
            "the engine stopped during this run (crash or kill); recovery reverted {reverted} fault(s){}",
            if failed.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} could not be reverted: {}",
                    failed.len(),
                    failed
                        .iter()
                        .filter_map(|e| e.error.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ));
        // The run ended when its engine died, not when recovery found it:
        // its last recorded event is the best witness of that.
        let last = history
            .timeline(run.id)
            .ok()
            .and_then(|t| t.last().cloned());
        let at_us = last.as_ref().map_or(0, |e| e.at_us);
        run.ended_at = Some(run.started_at + at_us / 1000);
        let seq = last.map_or(history.event_count(run.id) as u32, |e| e.seq + 1);
        let kinds = recovery
            .reverted
            .iter()
            .filter(|e| e.run == run.id)
            .map(|e| EventKind::FaultReverted {
                fault: e.fault,
                reason: "recovery".into(),
                error: None,
            })
            .chain([EventKind::Ended {
                status: run.status,
                error: run.error.clone(),
            }]);
        for (i, kind) in kinds.enumerate() {
            let event = crate::history::Event {
                seq: seq + i as u32,
                at_us,
                kind,
            };
            history.append_event(run.id, &event)?;
        }
        history.flush()?;
        history.put_run(&run)?;
    }
    Ok(recovery)
}
