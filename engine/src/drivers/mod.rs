//! Fault drivers: turn a [`FaultSpec`] into a real effect on a target and
//! back. Applying happens in two steps so the ledger can record the undo
//! before anything changes: [`prepare`] resolves the target (which pid,
//! which proxy) and yields a [`Prepared`] whose [`Prepared::undo`] goes to
//! the ledger; [`Prepared::apply`] then makes it real and returns an
//! [`Applied`] with a mandatory [`Applied::revert`].

pub mod cgroup;
pub mod process;
pub mod proxy;
pub mod undo;

use crate::history::RunId;
use crate::policy::FaultKind;
use crate::targets::Target;
use crate::targets::host::{HostTarget, Load};
use crate::targets::remote::{RemoteProxy, RemoteToxic};
use nix::sys::signal::Signal;
use process::ProcessId;
use proxy::{Effect, Proxy, ProxyFault, ProxyMode, RequestMatch};
use std::path::PathBuf;
use std::sync::Arc;
use undo::Undo;

/// A fault to make.
#[derive(Debug, Clone)]
pub enum FaultSpec {
    /// Send a signal.
    Kill(Signal),
    /// SIGSTOP until reverted.
    Pause,
    /// Terminate a supervised process and start it again.
    Restart,
    /// Load the host from a child process.
    Stress(crate::targets::host::Load),
    /// A proxy fault.
    Proxy {
        /// Effect.
        effect: Effect,
        /// Chance per chunk or request.
        probability: f64,
        /// Which requests.
        matcher: Option<RequestMatch>,
    },
}

impl FaultSpec {
    /// Its kind, for policy.
    pub fn kind(&self) -> FaultKind {
        match self {
            FaultSpec::Kill(_) => FaultKind::Kill,
            FaultSpec::Pause => FaultKind::Pause,
            FaultSpec::Restart => FaultKind::Restart,
            FaultSpec::Stress(load) => match load {
                Load::Cpu { .. } => FaultKind::CpuStress,
                Load::Memory(_) => FaultKind::MemoryStress,
                Load::Disk(_) => FaultKind::DiskFill,
            },
            FaultSpec::Proxy { effect, .. } => match effect {
                Effect::Delay { .. } | Effect::ConnectDelay { .. } => FaultKind::Delay,
                Effect::FailAuth { .. } => FaultKind::FailAuth,
                Effect::HttpError { .. } => FaultKind::HttpError,
                Effect::Bandwidth { .. } => FaultKind::Bandwidth,
                Effect::Blackhole { .. } => FaultKind::Blackhole,
                Effect::Refuse => FaultKind::Refuse,
                Effect::ResetPeer { .. } => FaultKind::ResetPeer,
                Effect::Timeout { .. } => FaultKind::Timeout,
                Effect::SlowClose { .. } => FaultKind::SlowClose,
                Effect::Slicer { .. } => FaultKind::Slicer,
                Effect::LimitData { .. } => FaultKind::LimitData,
                Effect::HttpAbort { .. } => FaultKind::HttpAbort,
                Effect::HttpModify { .. } => FaultKind::HttpModify,
            },
        }
    }

    /// A short description for timelines and plans.
    pub fn describe(&self) -> String {
        match self {
            FaultSpec::Kill(sig) => format!("signal {sig}"),
            FaultSpec::Pause => "SIGSTOP until reverted".into(),
            FaultSpec::Restart => "SIGTERM (SIGKILL after 2 s), then start again".into(),
            FaultSpec::Stress(load) => load.to_string(),
            FaultSpec::Proxy {
                effect,
                probability,
                matcher,
            } => {
                let mut s = effect.to_string();
                if *probability < 1.0 {
                    s.push_str(&format!(", probability {probability}"));
                }
                if let Some(m) = matcher {
                    if let Some(meth) = &m.method {
                        s.push_str(&format!(", method {meth}"));
                    }
                    if let Some(p) = &m.path {
                        s.push_str(&format!(", path {}", p.as_str()));
                    }
                    if let Some((h, _)) = &m.header {
                        s.push_str(&format!(", header {h}"));
                    }
                }
                s
            }
        }
    }
}

/// Why a fault could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The target cannot take this fault.
    #[error("{0}")]
    Unsupported(String),
    /// The target is protected: no grant reaches it.
    #[error("{0}")]
    Protected(String),
    /// The attempt failed.
    #[error("{0}")]
    Failed(String),
}

/// init and the engine itself are never signalled, whatever the drill says.
fn unprotected(name: &str, processes: Vec<ProcessId>) -> Result<Vec<ProcessId>, DriverError> {
    if let Some(p) = processes
        .iter()
        .find(|p| p.pid == 1 || p.pid == std::process::id())
    {
        return Err(DriverError::Protected(format!(
            "target `{name}` is process {}, which is protected: firedrill never signals init or itself",
            p.pid
        )));
    }
    Ok(processes)
}

/// Which fault of which run is being made: names what it leaves on remote
/// servers and seeds its random draws.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The run.
    pub run: RunId,
    /// The fault's id in the run.
    pub fault: u32,
    /// Seed of the fault's random draws.
    pub seed: u64,
}

/// A fault resolved against its target, not yet applied.
#[derive(Debug)]
pub enum Prepared {
    /// Send `signal` to `processes`.
    Kill {
        /// Processes.
        processes: Vec<ProcessId>,
        /// Signal.
        signal: Signal,
    },
    /// Stop `processes`.
    Pause {
        /// Processes.
        processes: Vec<ProcessId>,
    },
    /// Freeze the cgroup an attached target lives in.
    Freeze {
        /// Its freezer.
        freezer: cgroup::Freezer,
    },
    /// Restart a supervised process.
    Restart {
        /// The target.
        target: Arc<crate::targets::process::ProcessTarget>,
    },
    /// Start a stress child.
    Stress {
        /// The host.
        host: Arc<HostTarget>,
        /// Its load.
        load: Load,
        /// A disk fill's file.
        file: Option<PathBuf>,
    },
    /// Add `fault` to `proxy`.
    Proxy {
        /// Proxy.
        proxy: Arc<Proxy>,
        /// Fault.
        fault: Box<ProxyFault>,
    },
    /// Make `toxics` on a remote proxy.
    Remote {
        /// The proxy.
        remote: Arc<RemoteProxy>,
        /// The toxics.
        toxics: Vec<RemoteToxic>,
    },
}

/// Resolve `spec` against `target`.
pub fn prepare(
    name: &str,
    target: &Target,
    spec: FaultSpec,
    origin: Origin,
) -> Result<Prepared, DriverError> {
    let seed = origin.seed;
    match (target, spec) {
        (Target::Process(p), FaultSpec::Kill(signal)) => Ok(Prepared::Kill {
            processes: unprotected(name, p.select(seed).map_err(DriverError::Failed)?)?,
            signal,
        }),
        (Target::Process(p), FaultSpec::Pause) => {
            let processes = unprotected(name, p.select(seed).map_err(DriverError::Failed)?)?;
            // An attached service in a cgroup of its own freezes as a whole,
            // as container platforms pause one.
            match p
                .attached()
                .then(|| cgroup::Freezer::of(&processes))
                .flatten()
            {
                Some(freezer) => Ok(Prepared::Freeze { freezer }),
                None => Ok(Prepared::Pause { processes }),
            }
        }
        (Target::Process(p), FaultSpec::Restart) => {
            unprotected(name, p.select(seed).map_err(DriverError::Failed)?)?;
            Ok(Prepared::Restart { target: p.clone() })
        }
        (
            Target::Proxy(proxy),
            FaultSpec::Proxy {
                effect,
                probability,
                matcher,
            },
        ) => {
            if effect.needs_http() && proxy.config().mode != ProxyMode::Http {
                return Err(DriverError::Unsupported(format!(
                    "target `{name}` is a TCP proxy; HTTP faults need mode = \"http\""
                )));
            }
            if effect.needs_tcp() && proxy.config().mode != ProxyMode::Tcp {
                return Err(DriverError::Unsupported(format!(
                    "target `{name}` is an HTTP proxy; byte-stream faults need mode = \"tcp\""
                )));
            }
            Ok(Prepared::Proxy {
                proxy: proxy.clone(),
                fault: Box::new(ProxyFault::new(effect, probability, matcher, seed)),
            })
        }
        (
            Target::Remote(remote),
            FaultSpec::Proxy {
                effect,
                probability,
                matcher: _,
            },
        ) => {
            let base = format!(
                "{}-r{}-f{}",
                remote.holder().unwrap_or("firedrill"),
                origin.run.0,
                origin.fault
            );
            let toxics = crate::targets::remote::toxics_for(&effect, probability, &base)
                .map_err(|e| DriverError::Unsupported(format!("target `{name}`: {e}")))?;
            Ok(Prepared::Remote {
                remote: remote.clone(),
                toxics,
            })
        }
        (Target::Host(host), FaultSpec::Stress(load)) => {
            let file = match load {
                Load::Disk(_) => Some(
                    host.fill_file(origin.run.0, origin.fault)
                        .map_err(DriverError::Unsupported)?,
                ),
                _ => None,
            };
            host.check(load, file.as_deref())
                .map_err(DriverError::Unsupported)?;
            Ok(Prepared::Stress {
                host: host.clone(),
                load,
                file,
            })
        }
        (Target::Host(_), spec) => Err(DriverError::Unsupported(format!(
            "target `{name}` is the host; {} applies to {} targets",
            spec.kind(),
            if spec.kind().on_process() {
                "process"
            } else {
                "proxy"
            }
        ))),
        (
            Target::Process(_) | Target::Proxy(_) | Target::Remote(_),
            spec @ FaultSpec::Stress(_),
        ) => Err(DriverError::Unsupported(format!(
            "target `{name}` is not a host; {} applies to `kind = \"host\"` targets",
            spec.kind()
        ))),
        (Target::Process(_), spec) => Err(DriverError::Unsupported(format!(
            "target `{name}` is a process; {} applies to proxy targets",
            spec.kind()
        ))),
        (Target::Proxy(_) | Target::Remote(_), spec) => Err(DriverError::Unsupported(format!(
            "target `{name}` is a proxy; {} applies to process targets",
            spec.kind()
        ))),
    }
}

impl Prepared {
    /// How to undo it if the engine dies.
    pub fn undo(&self) -> Undo {
        match self {
            Prepared::Kill { .. } | Prepared::Restart { .. } => Undo::Nothing,
            Prepared::Stress { file, .. } => Undo::Stress { file: file.clone() },
            Prepared::Pause { processes } => Undo::Continue {
                processes: processes.clone(),
            },
            Prepared::Freeze { freezer } => Undo::Thaw {
                freezer: freezer.clone(),
            },
            Prepared::Proxy { .. } => Undo::InProcess,
            Prepared::Remote { remote, toxics } => Undo::Toxics {
                api: remote.spec().api,
                proxy: remote.spec().proxy.clone(),
                token_env: remote.spec().token_env.clone(),
                toxics: toxics.iter().map(|t| t.name.clone()).collect(),
            },
        }
    }

    /// Make it real.
    pub async fn apply(self) -> Result<Applied, DriverError> {
        match self {
            Prepared::Kill { processes, signal } => {
                // The service's own process comes first and must be there;
                // a descendant that ended since the tree was listed (a
                // worker being replaced, one that followed its master) has
                // nothing left to kill.
                for (i, p) in processes.iter().enumerate() {
                    match p.signal(signal) {
                        Err(crate::drivers::process::ProcessError::Gone(_)) if i > 0 => {}
                        r => r.map_err(|e| DriverError::Failed(e.to_string()))?,
                    }
                }
                Ok(Applied::Done)
            }
            Prepared::Stress { host, load, file } => {
                let child = host
                    .spawn(load, file.as_deref())
                    .map_err(DriverError::Failed)?;
                Ok(Applied::Stress {
                    child: std::sync::Mutex::new(Some(Box::new(child))),
                    file,
                })
            }
            Prepared::Restart { target } => {
                target.restart().await.map_err(DriverError::Failed)?;
                Ok(Applied::Done)
            }
            Prepared::Pause { processes } => {
                for (i, p) in processes.iter().enumerate() {
                    if let Err(e) = p.pause() {
                        // Leave none of the group stopped if one fails.
                        processes[..i].iter().for_each(|p| drop(p.resume()));
                        return Err(DriverError::Failed(e.to_string()));
                    }
                }
                Ok(Applied::Paused(processes))
            }
            Prepared::Freeze { freezer } => {
                freezer.freeze().map_err(DriverError::Failed)?;
                Ok(Applied::Frozen(freezer))
            }
            Prepared::Proxy { proxy, fault } => {
                let key = proxy.add_fault(*fault);
                Ok(Applied::Proxy { proxy, key })
            }
            Prepared::Remote { remote, toxics } => {
                remote.add(&toxics).await.map_err(DriverError::Failed)?;
                Ok(Applied::Remote {
                    remote,
                    toxics: toxics.into_iter().map(|t| t.name).collect(),
                })
            }
        }
    }
}

/// A fault in effect.
#[derive(Debug)]
pub enum Applied {
    /// Nothing lasts (a delivered signal).
    Done,
    /// Stopped processes.
    Paused(Vec<ProcessId>),
    /// A frozen cgroup.
    Frozen(cgroup::Freezer),
    /// A fault on a proxy.
    Proxy {
        /// Proxy.
        proxy: Arc<Proxy>,
        /// Key of the fault.
        key: u64,
    },
    /// A stress child (and a disk fill's file).
    Stress {
        /// The child, until reverted.
        child: std::sync::Mutex<Option<Box<tokio::process::Child>>>,
        /// The file.
        file: Option<PathBuf>,
    },
    /// Toxics on a remote proxy.
    Remote {
        /// The proxy.
        remote: Arc<RemoteProxy>,
        /// Their names.
        toxics: Vec<String>,
    },
}

impl Applied {
    /// Undo it. Idempotent.
    pub async fn revert(&self) -> Result<(), String> {
        match self {
            Applied::Done => Ok(()),
            Applied::Paused(ps) => resume_all(ps),
            Applied::Frozen(f) => f.thaw(),
            Applied::Proxy { proxy, key } => {
                proxy.remove_fault(*key);
                Ok(())
            }
            Applied::Remote { remote, toxics } => remote.remove(toxics).await,
            Applied::Stress { child, file } => {
                let child = child.lock().unwrap().take();
                if let Some(mut c) = child {
                    // Kill and reap: no zombie is left.
                    let _ = c.kill().await;
                }
                crate::targets::host::undo(file.as_deref())
            }
        }
    }
}

/// Continue every process; the errors of those that failed, joined.
pub(crate) fn resume_all(processes: &[ProcessId]) -> Result<(), String> {
    let errors: Vec<String> = processes
        .iter()
        .filter_map(|p| p.resume().err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
