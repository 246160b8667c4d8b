//! firedrill: a WebAssembly-pluggable chaos scenario engine.
//!
//! The principal type is [`Engine`]. A scenario is a WebAssembly component
//! of the `firedrill:scenario` world (see `wit/`); the engine runs it in a
//! sandbox against real targets, applies the faults it asks for through the
//! revert [`ledger`], and records the run in [`history`].
//!
//! ```text
//! scenario component ─► runtime (host impls of wit/) ─► policy (needs ∩ grants)
//!     ─► drivers (process signals, proxy faults) ─► targets (processes, proxies)
//!                 └─► ledger (undo, durable first)   └─► history (runs, timelines)
//! ```
//!
//! A test can run a scenario in a few lines:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let engine = firedrill::EngineBuilder::new().build()?;
//! let scenario = engine.load(firedrill::bundled::get("latency-ramp").unwrap(), "latency-ramp")?;
//! let drill = firedrill::Drill::parse(r#"
//!     [targets.api-link]
//!     kind = "proxy"
//!     listen = "127.0.0.1:0"
//!     upstream = "127.0.0.1:8080"
//!     grants = ["delay"]
//! "#, "drill.toml".as_ref())?;
//! let targets = engine.start_targets(&drill.targets).await.map_err(anyhow::Error::msg)?;
//! let mut spec = firedrill::RunSpec::new(scenario);
//! spec.targets = targets;
//! let run = engine.run(spec).await?;
//! assert_eq!(run.status, firedrill::history::RunStatus::Passed);
//! # Ok(()) }
//! ```

#![warn(missing_docs, missing_debug_implementations)]

pub mod bundled;
pub mod check;
pub mod control;
pub mod demo;
pub mod drill;
pub mod drivers;
mod engine;
pub mod history;
pub mod ledger;
pub mod policy;
pub mod probe;
pub mod replay;
pub mod report;
mod run;
pub mod runtime;
pub mod steady;
pub mod store;
pub mod targets;
pub mod toxiproxy;

pub use drill::Drill;
pub use engine::{DEFAULT_MAX_CONCURRENT_RUNS, Engine, EngineBuilder, EngineError, HaltState};
pub use run::{Halter, Metadata, ParamSpec, RunHandle, RunSpec};
pub use runtime::Scenario;
