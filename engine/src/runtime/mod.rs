//! The component host: compiles scenario components (with a compiled-code
//! cache on disk), links the host implementations of `wit/` (one file per
//! interface under `host/`) and deny-all WASI, and builds one `Store` per
//! run with memory, instance and table limits and an epoch deadline.
//!
//! Instances come from wasmtime's pooling allocator: memories, tables and
//! fiber stacks are reserved once per engine and reused, so a run does not
//! pay for mmap, munmap and the TLB flushes they cause. One slot holds one
//! live scenario instance; a run waits for a free slot when all are taken.
//!
//! Code comes in two tiers. Cranelift optimizes; it compiles a Rust
//! scenario in well under 0.1 s but an 18 MB Python or 12 MB JavaScript
//! runtime in 6–8 s on two cores. Winch, wasmtime's baseline compiler, does
//! those in about 1.3 s. So a large component's first run compiles with
//! Winch, and `firedrill check` (or [`Runtime::load`] with
//! [`Tier::Optimizing`]) compiles it with Cranelift ahead of time; cached
//! optimized code is preferred whenever it exists. Winch's code lives in a
//! second wasmtime engine with its own linker, made on first need, whose
//! instances are allocated on demand (it is the rare path).

pub(crate) mod bindings;
mod host;
mod shape;

pub use shape::{Toolchain, interfaces};

use crate::drill::Limits;
use crate::run::RunCtx;
use crate::store::Store as DataStore;
use bindings::ScenarioPre;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
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

/// Components at least this large compile with Winch when no compiled
/// code is cached (Rust scenarios are 0.1–1 MB; Python and JavaScript
/// runtimes 12–18 MB).
const BASELINE_FROM_BYTES: usize = 2 << 20;

/// Which of wasmtime's compilers made a scenario's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// Cranelift, optimizing: what small components get, and what
    /// `firedrill check` compiles ahead of time.
    Optimizing,
    /// Winch, wasmtime's baseline compiler: about five times quicker to
    /// compile, slower code; a large component's first run.
    Baseline,
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tier::Optimizing => "optimized (Cranelift)",
            Tier::Baseline => "baseline (Winch)",
        })
    }
}

/// Where a loaded scenario's code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Compiled {
    /// The compiler that made it.
    pub tier: Tier,
    /// How long compiling took in this process; `None`: read back from the
    /// data dir's cache (or from a scenario this engine loaded before).
    /// In JSON, seconds.
    #[serde(serialize_with = "seconds")]
    pub took: Option<Duration>,
}

fn seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl std::fmt::Display for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.took {
            Some(t) => write!(
                f,
                "{} code, compiled in {:.1} s",
                self.tier,
                t.as_secs_f64()
            ),
            None => write!(f, "{} code, from the cache", self.tier),
        }
    }
}

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

    /// The wasmtime engine its code belongs to (its stores come from it).
    fn engine(&self) -> &Engine {
        match self {
            Pre::Current(pre) => pre.instance_pre().engine(),
            Pre::V0_1_0(pre) => pre.instance_pre().engine(),
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
    compiled: Compiled,
    core_instances: u32,
    toolchain: Toolchain,
    sha256: String,
    source: String,
    package: Option<crate::history::PackageRef>,
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

    /// The package it came from, if it was installed as one.
    pub fn package(&self) -> Option<&crate::history::PackageRef> {
        self.package.as_ref()
    }

    /// The same scenario, recorded in runs as the package `package`
    /// (which the caller verified).
    pub fn with_package(mut self, package: crate::history::PackageRef) -> Scenario {
        self.package = Some(package);
        self
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

    /// Which compiler made its code, and whether that happened now.
    pub fn compiled(&self) -> Compiled {
        self.compiled
    }
}

/// One wasmtime engine and the host linked into it.
struct Compiler {
    engine: Engine,
    linker: Linker<RunState>,
    tier: Tier,
}

impl Compiler {
    /// `pool`: the pooling allocator's slots, or `None` for on-demand
    /// allocation.
    fn new(tier: Tier, pool: Option<u32>) -> wasmtime::Result<Compiler> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // Guests recurse on a bounded stack; exhaustion traps cleanly.
        config.max_wasm_stack(1 << 20);
        if tier == Tier::Baseline {
            config.strategy(wasmtime::Strategy::Winch);
            // Winch leaves the trampolines (one per function a table or an
            // export can reach: thousands in CPython) to Cranelift, which
            // then takes more time than Winch itself: unoptimized, with the
            // single-pass register allocator. No address map (a trap's
            // backtrace names functions, not offsets) and no native unwind
            // info (wasmtime's own backtraces do not use it): this code
            // lives until `firedrill check`, and together these take a
            // quarter off its compile (docs/PERFORMANCE.md).
            config
                .cranelift_opt_level(wasmtime::OptLevel::None)
                .cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass)
                .generate_address_map(false)
                .native_unwind_info(false);
        }
        if let Some(slots) = pool {
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
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // Linked so that components whose toolchain imports it (JavaScript's
        // `fetch`) load; every request is denied (`DenyHttp`).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::Scenario::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)?;
        Ok(Compiler {
            engine,
            linker,
            tier,
        })
    }
}

/// The wasmtime side of an engine.
pub(crate) struct Runtime {
    optimizing: Compiler,
    /// Made on first need; `None` inside if wasmtime refused to make it
    /// (then everything compiles optimized).
    baseline: std::sync::OnceLock<Option<Compiler>>,
    /// Engines the epoch thread advances.
    epochs: Arc<std::sync::Mutex<Vec<wasmtime::EngineWeak>>>,
    cache: Option<CodeCache>,
    /// Baseline code being written to the cache while its run goes on
    /// ([`Runtime::settle_cache`] waits for them).
    writes: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
    pres: std::sync::Mutex<std::collections::HashMap<String, Scenario>>,
    slots: Arc<Semaphore>,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    /// `slots`: how many scenario instances may be alive at once. Compiled
    /// code is not cached until [`Runtime::cache_in`] says where.
    pub(crate) fn new(slots: u32) -> wasmtime::Result<Runtime> {
        let slots = slots.max(1);
        let optimizing = Compiler::new(Tier::Optimizing, Some(slots))?;
        let epochs = Arc::new(std::sync::Mutex::new(vec![optimizing.engine.weak()]));
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (stop, engines) = (ticker_stop.clone(), epochs.clone());
        std::thread::Builder::new()
            .name("firedrill-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    let engines = engines.lock().unwrap();
                    let mut alive = false;
                    for e in engines.iter().filter_map(|w| w.upgrade()) {
                        e.increment_epoch();
                        alive = true;
                    }
                    if !alive {
                        break;
                    }
                }
            })
            .expect("spawn the epoch thread");
        Ok(Runtime {
            optimizing,
            baseline: std::sync::OnceLock::new(),
            epochs,
            cache: None,
            writes: Default::default(),
            pres: Default::default(),
            slots: Arc::new(Semaphore::new(slots as usize)),
            ticker_stop,
        })
    }

    /// Winch's engine, made on first call.
    fn baseline(&self) -> Option<&Compiler> {
        self.baseline
            .get_or_init(|| match Compiler::new(Tier::Baseline, None) {
                Ok(c) => {
                    self.epochs.lock().unwrap().push(c.engine.weak());
                    Some(c)
                }
                Err(e) => {
                    tracing::warn!(
                        "Winch is unavailable, compiling everything with Cranelift: {e:#}"
                    );
                    None
                }
            })
            .as_ref()
    }

    /// Keep compiled code in `dir`, each file's digest in `index`.
    pub(crate) fn cache_in(&mut self, dir: PathBuf, index: DataStore) {
        self.cache = Some(CodeCache { dir, index });
    }

    /// Compile (or fetch from cache) and link a component. `want`:
    /// [`Tier::Baseline`] takes whatever is quickest (cached code of either
    /// tier, else Winch for a large component); [`Tier::Optimizing`]
    /// insists on Cranelift's code.
    pub(crate) fn load(
        &self,
        bytes: &[u8],
        source: &str,
        want: Tier,
    ) -> Result<Scenario, LoadError> {
        tracing::debug!(source, bytes = bytes.len(), "loading");
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(s) = self.pres.lock().unwrap().get(&sha256)
            && (want == Tier::Baseline || s.compiled.tier == Tier::Optimizing)
        {
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
        tracing::debug!(source, "read its shape; compiling");
        let (compiler, component, compiled) =
            self.compile(bytes, &sha256, want)
                .map_err(|e| LoadError::Invalid {
                    source_name: source.to_string(),
                    cause: one_line(&format!("{e:#}")),
                    toolchain,
                })?;
        tracing::debug!(source, %compiled, "linking");
        let instance_pre =
            compiler
                .linker
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
            compiled,
            core_instances: shape.core_instances,
            toolchain,
            sha256: sha256.clone(),
            source: source.to_string(),
            package: None,
            bytes: bytes.into(),
        };
        // A later load of it in this process compiles nothing.
        let kept = Scenario {
            compiled: Compiled {
                took: None,
                ..compiled
            },
            ..scenario.clone()
        };
        self.pres.lock().unwrap().insert(sha256, kept);
        tracing::debug!(source, "loaded");
        Ok(scenario)
    }

    /// A component this runtime already loaded.
    pub(crate) fn loaded(&self, sha256: &str) -> Option<Scenario> {
        self.pres.lock().unwrap().get(sha256).cloned()
    }

    /// Cached code of the tier `want` allows, else code compiled now: with
    /// Winch when that is allowed and the component is large (falling back
    /// to Cranelift for what Winch does not support), else with Cranelift.
    fn compile(
        &self,
        bytes: &[u8],
        sha256: &str,
        want: Tier,
    ) -> wasmtime::Result<(&Compiler, Component, Compiled)> {
        let from_cache = |compiler: &Compiler| {
            let c = self.cached(compiler, sha256)?;
            let compiled = Compiled {
                tier: compiler.tier,
                took: None,
            };
            Some((c, compiled))
        };
        if let Some((c, compiled)) = from_cache(&self.optimizing) {
            return Ok((&self.optimizing, c, compiled));
        }
        let quick = want == Tier::Baseline && bytes.len() >= BASELINE_FROM_BYTES;
        if quick && let Some(baseline) = self.baseline() {
            if let Some((c, compiled)) = from_cache(baseline) {
                return Ok((baseline, c, compiled));
            }
            let started = std::time::Instant::now();
            match Component::from_binary(&baseline.engine, bytes) {
                Ok(c) => {
                    let compiled = Compiled {
                        tier: Tier::Baseline,
                        took: Some(started.elapsed()),
                    };
                    // Written while the run goes on: a tenth of a second
                    // of a first run's start.
                    if let Some((path, cache)) =
                        self.cache_path(baseline, sha256).zip(self.cache.clone())
                    {
                        let (component, sha256) = (c.clone(), sha256.to_string());
                        let write = std::thread::Builder::new()
                            .name("firedrill-code-cache".into())
                            .spawn(move || cache.store(&path, Tier::Baseline, &sha256, &component));
                        if let Ok(write) = write {
                            self.writes.lock().unwrap().push(write);
                        }
                    }
                    return Ok((baseline, c, compiled));
                }
                Err(e) => tracing::info!(
                    "Winch cannot compile component {sha256} ({e:#}); compiling it with Cranelift"
                ),
            }
        }
        let started = std::time::Instant::now();
        let c = Component::from_binary(&self.optimizing.engine, bytes)?;
        let compiled = Compiled {
            tier: Tier::Optimizing,
            took: Some(started.elapsed()),
        };
        if let Some((path, cache)) = self
            .cache_path(&self.optimizing, sha256)
            .zip(self.cache.as_ref())
        {
            cache.store(&path, Tier::Optimizing, sha256, &c);
        }
        Ok((&self.optimizing, c, compiled))
    }

    fn cache_path(&self, compiler: &Compiler, sha256: &str) -> Option<PathBuf> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        compiler.engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        let tier = match compiler.tier {
            Tier::Optimizing => "",
            Tier::Baseline => ".baseline",
        };
        Some(
            self.cache
                .as_ref()?
                .dir
                .join(format!("{sha256}-{:016x}{tier}.cwasm", h.finish())),
        )
    }

    /// A component from the cache, only if the file is byte for byte the
    /// one this engine wrote (its digest is in the store).
    fn cached(&self, compiler: &Compiler, sha256: &str) -> Option<Component> {
        let path = self.cache_path(compiler, sha256)?;
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
            Component::deserialize(&compiler.engine, &bytes).ok()
        }
    }

    /// Wait for the cache writes in flight (so that the next process
    /// finds the code).
    pub(crate) async fn settle_cache(&self) {
        let writes = std::mem::take(&mut *self.writes.lock().unwrap());
        if !writes.is_empty() {
            let _ = tokio::task::spawn_blocking(move || {
                writes.into_iter().for_each(|w| drop(w.join()))
            })
            .await;
        }
    }

    /// A store for one run (or one `describe`), with limits and deny-all
    /// WASI, once a pool slot is free.
    pub(crate) async fn store(
        &self,
        scenario: &Scenario,
        ctx: Arc<RunCtx>,
        limits: &Limits,
    ) -> (RunStore, GuestOutput) {
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
        let mut store = Store::new(scenario.pre.engine(), state);
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
#[derive(Clone)]
struct CodeCache {
    dir: PathBuf,
    /// sha256 of each file this engine wrote, by file name.
    index: DataStore,
}

impl CodeCache {
    /// Keep `component`'s code at `path`. Optimized code replaces every
    /// other file kept for the same component (its baseline code, and code
    /// of other engine versions).
    fn store(&self, path: &Path, tier: Tier, sha256: &str, component: &Component) {
        let Ok(bytes) = component.serialize() else {
            return;
        };
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let Some(name) = path.file_name() else { return };
        if std::fs::write(&tmp, &bytes).is_err() || std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        // Flushed now: a process that ends within sled's flush period (a
        // quick `inspect`) would otherwise lose the entry, and every later
        // run would compile again.
        let index = &self.index.compiled;
        let _ = index.insert(name.as_encoded_bytes(), Sha256::digest(&bytes).as_slice());
        if tier == Tier::Optimizing {
            let stale = std::fs::read_dir(dir).into_iter().flatten().flatten();
            for entry in stale {
                let other = entry.file_name();
                let text = other.to_string_lossy();
                if other != name && text.starts_with(sha256) && text.ends_with(".cwasm") {
                    let _ = index.remove(other.as_encoded_bytes());
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let _ = index.flush();
    }
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
        for write in std::mem::take(self.writes.get_mut().unwrap()) {
            let _ = write.join();
        }
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
