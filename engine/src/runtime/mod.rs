//! The component host: compiles scenario components (with a compiled-code
//! cache on disk), links the host implementations of `wit/` (one file per
//! interface under `host/`) and deny-all WASI, and builds one `Store` per
//! run with memory, instance and table limits and an epoch deadline.
//!
//! Instances come from wasmtime's pooling allocator: memories, tables and
//! fiber stacks are reserved once per engine and reused, so a run does not
//! pay for mmap, munmap and the TLB flushes they cause. One slot holds one
//! live scenario instance; a run waits for a free slot when all are taken.

pub(crate) mod bindings;
mod host;
mod shape;

pub use shape::Toolchain;

use crate::drill::Limits;
use crate::run::RunCtx;
use crate::store::Store as DataStore;
use bindings::ScenarioPre;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, HasSelf, InstancePre, Linker, ResourceTable};
use wasmtime::{
    AsContext, AsContextMut, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    ResourceLimiter, Store, StoreContext, StoreContextMut, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// How often the epoch advances: the granularity of deadlines and yields.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What one pool slot holds, whatever a drill's `[limits]` allow: a
/// scenario component may contain up to this many core instances, linear
/// memories and tables. A Rust scenario has about 4, 1 and 2; a Python one
/// (componentize-py) 14, or 38 built with `--stub-wasi`.
pub(crate) const CORE_INSTANCES_PER_SLOT: u32 = 64;
const MEMORIES_PER_SLOT: u32 = 2;
const TABLES_PER_SLOT: u32 = 32;
/// Elements a pooled table can grow to (a drill's `table_elements` limit
/// applies below this).
const POOL_TABLE_ELEMENTS: usize = 1 << 20;
/// The bytes of a memory or table that are cleared by writing zeros rather
/// than returned to the kernel when an instance ends: a small scenario
/// touches little more, and the next run then takes no page faults there.
const KEEP_RESIDENT: usize = 16 << 10;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a component (or not valid Wasm).
    #[error("{source_name} is not a valid WebAssembly component: {cause}. To {}", .toolchain.build_hint())]
    Invalid {
        /// Where it came from.
        source_name: String,
        /// wasmtime's message.
        cause: String,
        /// What built it, for the advice.
        toolchain: Toolchain,
    },
    /// Not WebAssembly at all: the file does not start with `\0asm`.
    #[error("{source_name}: not a WebAssembly component ({head}; expected `\\0asm`)")]
    NotWasm {
        /// Where it came from.
        source_name: String,
        /// "starts with bytes 3f 8a 00 11 …", or "it is empty".
        head: String,
    },
    /// A core module was given where a component is needed.
    #[error(
        "{0} is a core WebAssembly module, not a component: build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule(String),
    /// It imports interfaces the engine does not provide.
    #[error(
        "{source_name} imports {}, which firedrill does not provide: a scenario may import only `firedrill:scenario` 0.1.x and the standard WASI 0.2 interfaces (`wasi:http` among them, with every request denied). To {}",
        .imports.join(", "), .toolchain.build_hint()
    )]
    Imports {
        /// Where it came from.
        source_name: String,
        /// The imports that are not provided.
        imports: Vec<String>,
        /// What built it, for the advice.
        toolchain: Toolchain,
    },
    /// More core instances than any scenario may have.
    #[error(
        "{source_name} needs {needs} core instances; firedrill allows at most {limit} per scenario (`[limits] instances` can only lower that)"
    )]
    TooManyInstances {
        /// Where it came from.
        source_name: String,
        /// How many it creates.
        needs: u32,
        /// The engine's maximum.
        limit: u32,
    },
    /// It is a component, but not of the `firedrill:scenario` world.
    #[error("{source_name} is not a firedrill scenario: {cause}. To {}", .toolchain.build_hint())]
    WrongWorld {
        /// Where it came from.
        source_name: String,
        /// What does not fit.
        cause: String,
        /// What built it, for the advice.
        toolchain: Toolchain,
    },
}

/// wasmtime's message on one line: its causes and byte dumps span several,
/// and a load error is printed as one line among others.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A linked component, by the version of the world it was built against.
#[derive(Clone)]
pub(crate) enum Pre {
    Current(ScenarioPre<RunState>),
    V0_1_0(bindings::v0_1_0::ScenarioPre<RunState>),
}

impl Pre {
    fn new(instance_pre: InstancePre<RunState>) -> wasmtime::Result<Pre> {
        match ScenarioPre::new(instance_pre.clone()) {
            Ok(pre) => Ok(Pre::Current(pre)),
            Err(current) => match bindings::v0_1_0::ScenarioPre::new(instance_pre) {
                Ok(pre) => Ok(Pre::V0_1_0(pre)),
                // The current world's complaint is the one to show.
                Err(_) => Err(current),
            },
        }
    }

    /// A new instance's `describe()`, in the current world's types.
    pub(crate) async fn describe(
        &self,
        store: &mut RunStore,
    ) -> wasmtime::Result<bindings::Metadata> {
        match self {
            Pre::Current(pre) => {
                pre.instantiate_async(&mut *store)
                    .await?
                    .call_describe(store)
                    .await
            }
            Pre::V0_1_0(pre) => Ok(pre
                .instantiate_async(&mut *store)
                .await?
                .call_describe(store)
                .await?
                .into()),
        }
    }

    /// A new instance's `run()`. Its signature is the same in every
    /// version, so the current types lift what any version returns.
    pub(crate) async fn run(
        &self,
        store: &mut RunStore,
    ) -> wasmtime::Result<Result<bindings::Outcome, bindings::GuestError>> {
        match self {
            Pre::Current(pre) => {
                pre.instantiate_async(&mut *store)
                    .await?
                    .call_run(store)
                    .await
            }
            Pre::V0_1_0(pre) => {
                let instance = pre.instance_pre().instantiate_async(&mut *store).await?;
                let run = instance
                    .get_typed_func::<(), (Result<bindings::Outcome, bindings::GuestError>,)>(
                        &mut *store,
                        "run",
                    )?;
                Ok(run.call_async(store, ()).await?.0)
            }
        }
    }

    /// Instantiate and drop, for the instantiation benchmark.
    pub(crate) async fn instantiate(&self, store: &mut RunStore) -> wasmtime::Result<()> {
        match self {
            Pre::Current(pre) => pre.instantiate_async(store).await.map(drop),
            Pre::V0_1_0(pre) => pre.instantiate_async(store).await.map(drop),
        }
    }
}

/// A compiled, linked scenario ready to instantiate.
#[derive(Clone)]
pub struct Scenario {
    pub(crate) pre: Pre,
    core_instances: u32,
    toolchain: Toolchain,
    sha256: String,
    source: String,
    bytes: Arc<[u8]>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("sha256", &self.sha256)
            .field("source", &self.source)
            .finish()
    }
}

impl Scenario {
    /// sha256 of the component bytes, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Where it came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The component's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many core instances it creates (what `[limits] instances`
    /// must allow).
    pub fn core_instances(&self) -> u32 {
        self.core_instances
    }

    /// What built it, as far as its `producers` sections tell.
    pub fn toolchain(&self) -> Toolchain {
        self.toolchain
    }
}

/// The wasmtime side of an engine.
pub(crate) struct Runtime {
    engine: Engine,
    linker: Linker<RunState>,
    cache: Option<CodeCache>,
    pres: std::sync::Mutex<std::collections::HashMap<String, Scenario>>,
    slots: Arc<Semaphore>,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    /// `slots`: how many scenario instances may be alive at once. Compiled
    /// code is not cached until [`Runtime::cache_in`] says where.
    pub(crate) fn new(slots: u32) -> wasmtime::Result<Runtime> {
        let slots = slots.max(1);
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // Guests recurse on a bounded stack; exhaustion traps cleanly.
        config.max_wasm_stack(1 << 20);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_stacks(slots)
            .max_core_instances_per_component(CORE_INSTANCES_PER_SLOT)
            .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_SLOT))
            .max_memories_per_component(MEMORIES_PER_SLOT)
            .max_memories_per_module(MEMORIES_PER_SLOT)
            .total_memories(slots.saturating_mul(MEMORIES_PER_SLOT))
            .max_tables_per_component(TABLES_PER_SLOT)
            .max_tables_per_module(TABLES_PER_SLOT)
            .total_tables(slots.saturating_mul(TABLES_PER_SLOT))
            .table_elements(POOL_TABLE_ELEMENTS)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // Linked so that components whose toolchain imports it (JavaScript's
        // `fetch`) load; every request is denied (`DenyHttp`).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::Scenario::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let stop = ticker_stop.clone();
        std::thread::Builder::new()
            .name("firedrill-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawn the epoch thread");
        Ok(Runtime {
            engine,
            linker,
            cache: None,
            pres: Default::default(),
            slots: Arc::new(Semaphore::new(slots as usize)),
            ticker_stop,
        })
    }

    /// Keep compiled code in `dir`, each file's digest in `index`.
    pub(crate) fn cache_in(&mut self, dir: PathBuf, index: DataStore) {
        self.cache = Some(CodeCache { dir, index });
    }

    /// Compile (or fetch from cache) and link a component.
    pub(crate) fn load(&self, bytes: &[u8], source: &str) -> Result<Scenario, LoadError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(s) = self.pres.lock().unwrap().get(&sha256) {
            return Ok(s.clone());
        }
        if !bytes.starts_with(b"\0asm") {
            // wasmparser would print a multi-line dump of the bytes it
            // expected and found; the first few say enough.
            let head = match bytes.len() {
                0 => "it is empty".to_string(),
                n => {
                    let shown: Vec<String> =
                        bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
                    let more = if n > 4 { " …" } else { "" };
                    format!("starts with bytes {}{more}", shown.join(" "))
                }
            };
            return Err(LoadError::NotWasm {
                source_name: source.to_string(),
                head,
            });
        }
        if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0] {
            return Err(LoadError::CoreModule(source.to_string()));
        }
        // Everything that would refuse the component after compiling it is
        // checked first, from its bytes.
        let shape = shape::read(bytes).map_err(|cause| LoadError::Invalid {
            source_name: source.to_string(),
            cause,
            toolchain: Toolchain::Other,
        })?;
        let toolchain = shape.toolchain;
        let unknown: Vec<String> = shape
            .imports
            .iter()
            .filter(|i| !shape::is_linked(i))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(LoadError::Imports {
                source_name: source.to_string(),
                imports: unknown,
                toolchain,
            });
        }
        if shape.core_instances > CORE_INSTANCES_PER_SLOT {
            return Err(LoadError::TooManyInstances {
                source_name: source.to_string(),
                needs: shape.core_instances,
                limit: CORE_INSTANCES_PER_SLOT,
            });
        }
        let component = match self.cached(&sha256) {
            Some(c) => c,
            None => {
                let c = Component::from_binary(&self.engine, bytes).map_err(|e| {
                    LoadError::Invalid {
                        source_name: source.to_string(),
                        cause: one_line(&format!("{e:#}")),
                        toolchain,
                    }
                })?;
                self.store_cache(&sha256, &c);
                c
            }
        };
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::WrongWorld {
                    source_name: source.to_string(),
                    cause: format!("{e:#}"),
                    toolchain,
                })?;
        let pre = Pre::new(instance_pre).map_err(|e| LoadError::WrongWorld {
            source_name: source.to_string(),
            cause: format!("{e:#}"),
            toolchain,
        })?;
        let scenario = Scenario {
            pre,
            core_instances: shape.core_instances,
            toolchain,
            sha256: sha256.clone(),
            source: source.to_string(),
            bytes: bytes.into(),
        };
        self.pres.lock().unwrap().insert(sha256, scenario.clone());
        Ok(scenario)
    }

    /// A component this runtime already loaded.
    pub(crate) fn loaded(&self, sha256: &str) -> Option<Scenario> {
        self.pres.lock().unwrap().get(sha256).cloned()
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        Some(
            self.cache
                .as_ref()?
                .dir
                .join(format!("{sha256}-{:016x}.cwasm", h.finish())),
        )
    }

    /// A component from the cache, only if the file is byte for byte the
    /// one this engine wrote (its digest is in the store).
    fn cached(&self, sha256: &str) -> Option<Component> {
        let path = self.cache_path(sha256)?;
        let expected = self
            .cache
            .as_ref()?
            .index
            .compiled
            .get(path.file_name()?.as_encoded_bytes())
            .ok()??;
        let bytes = std::fs::read(&path).ok()?;
        if Sha256::digest(&bytes).as_slice() != expected.as_ref() {
            return None;
        }
        // SAFETY: deserializing runs native code from the file; the digest
        // check above proves the file holds exactly what this engine's own
        // `serialize` produced.
        #[allow(unsafe_code)]
        unsafe {
            Component::deserialize(&self.engine, &bytes).ok()
        }
    }

    fn store_cache(&self, sha256: &str, component: &Component) {
        let Some(path) = self.cache_path(sha256) else {
            return;
        };
        let Ok(bytes) = component.serialize() else {
            return;
        };
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &bytes).is_ok()
            && std::fs::rename(&tmp, &path).is_ok()
            && let Some(name) = path.file_name()
            && let Some(cache) = &self.cache
        {
            let _ = cache
                .index
                .compiled
                .insert(name.as_encoded_bytes(), Sha256::digest(&bytes).as_slice());
        }
    }

    /// A store for one run (or one `describe`), with limits and deny-all
    /// WASI, once a pool slot is free.
    pub(crate) async fn store(&self, ctx: Arc<RunCtx>, limits: &Limits) -> (RunStore, GuestOutput) {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::info!(
                    run = %ctx.id,
                    "all instance slots are in use; the run waits for one to free"
                );
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the slot semaphore is never closed")
            }
        };
        let output = GuestOutput {
            stdout: MemoryOutputPipe::new(limits.output_bytes),
            stderr: MemoryOutputPipe::new(limits.output_bytes),
        };
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.stdout.clone())
            .stderr(output.stderr.clone())
            .wall_clock(EpochClock)
            .monotonic_clock(RunClock { ctx: ctx.clone() })
            .secure_random(ctx.wasi_rng())
            .insecure_random(ctx.wasi_rng())
            .insecure_random_seed(ctx.seed as u128)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let state = RunState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            http_hooks: DenyHttp { ctx: ctx.clone() },
            table: ResourceTable::new(),
            limiter: RunLimiter {
                // Saturating: `memory_mib << 20` once wrapped 2^44 MiB to 0.
                memory: usize::try_from(limits.memory_mib)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(1 << 20),
                instances: limits.instances,
                tables: limits.tables,
                table_elements: limits.table_elements,
                exceeded: None,
            },
            ctx: ctx.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |store| {
            if store.data().ctx.must_interrupt() {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        (RunStore { store, _slot: slot }, output)
    }
}

/// Where compiled components are kept between processes.
struct CodeCache {
    dir: PathBuf,
    /// sha256 of each file this engine wrote, by file name.
    index: DataStore,
}

/// A run's store and the pool slot its instance lives in. Fields drop in
/// order: the store gives its instance back to the pool before the slot is
/// released, so a run that takes the slot always finds room.
pub(crate) struct RunStore {
    store: Store<RunState>,
    _slot: OwnedSemaphorePermit,
}

impl std::ops::Deref for RunStore {
    type Target = Store<RunState>;
    fn deref(&self) -> &Store<RunState> {
        &self.store
    }
}

impl AsContext for RunStore {
    type Data = RunState;
    fn as_context(&self) -> StoreContext<'_, RunState> {
        self.store.as_context()
    }
}

impl AsContextMut for RunStore {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, RunState> {
        self.store.as_context_mut()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// The policy's fault kind for a WIT fault kind.
pub(crate) fn fault_kind(
    k: bindings::firedrill::scenario::types::FaultKind,
) -> crate::policy::FaultKind {
    use crate::policy::FaultKind as P;
    use bindings::firedrill::scenario::types::FaultKind as W;
    match k {
        W::Kill => P::Kill,
        W::Pause => P::Pause,
        W::Delay => P::Delay,
        W::FailAuth => P::FailAuth,
        W::HttpError => P::HttpError,
        W::Bandwidth => P::Bandwidth,
        W::Blackhole => P::Blackhole,
        W::Refuse => P::Refuse,
        W::ResetPeer => P::ResetPeer,
        W::Timeout => P::Timeout,
        W::SlowClose => P::SlowClose,
        W::Slicer => P::Slicer,
        W::LimitData => P::LimitData,
        W::HttpAbort => P::HttpAbort,
        W::HttpModify => P::HttpModify,
        W::Restart => P::Restart,
        W::CpuStress => P::CpuStress,
        W::MemoryStress => P::MemoryStress,
        W::DiskFill => P::DiskFill,
    }
}

/// What the guest wrote to stdout and stderr.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

/// Store data of a run.
pub struct RunState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: DenyHttp,
    table: ResourceTable,
    limiter: RunLimiter,
    pub(crate) ctx: Arc<RunCtx>,
}

impl std::fmt::Debug for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunState")
            .field("run", &self.ctx.id)
            .finish_non_exhaustive()
    }
}

impl RunState {
    /// Set when the guest hit the memory limit: the cause of its trap.
    pub(crate) fn limit_exceeded(&self) -> Option<String> {
        self.limiter.exceeded.clone()
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// `wasi:http`'s outgoing requests, all denied: a scenario reaches its
/// targets only through firedrill's probes, which the policy checks and the
/// timeline records. The guest gets `HTTP-request-denied` (a rejected
/// `fetch` in JavaScript) and the run's timeline a warning.
struct DenyHttp {
    ctx: Arc<RunCtx>,
}

type DeniedResponse = Box<
    dyn std::future::Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for DenyHttp {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> DeniedResponse {
        self.ctx
            .deny_outgoing_http(request.method().as_str(), &request.uri().to_string());
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

struct RunLimiter {
    memory: usize,
    instances: usize,
    tables: usize,
    table_elements: usize,
    exceeded: Option<String>,
}

impl ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            let msg = format!(
                "memory limit of {} MiB exceeded (the scenario asked for {} MiB); raise [limits] memory_mib if it really needs more",
                self.memory >> 20,
                desired.div_ceil(1 << 20)
            );
            self.exceeded = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            let msg = format!("table limit of {} elements exceeded", self.table_elements);
            self.exceeded = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.instances
    }
}

/// The guest's wall clock reads the Unix epoch: scenarios get time only
/// through `host.now`, relative to the run, so runs replay the same.
struct EpochClock;

impl wasmtime_wasi::HostWallClock for EpochClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// The guest's monotonic clock: time since the run started.
struct RunClock {
    ctx: Arc<RunCtx>,
}

impl wasmtime_wasi::HostMonotonicClock for RunClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        self.ctx.elapsed().as_nanos() as u64
    }
}
