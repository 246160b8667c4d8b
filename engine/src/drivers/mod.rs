//! Fault drivers: turn a [`FaultSpec`] into a real effect on a target and
//! back. Applying happens in two steps so the ledger can record the undo
//! before anything changes: [`prepare`] resolves the target (which pid,
//! which proxy) and yields a [`Prepared`] whose [`Prepared::undo`] goes to
//! the ledger; [`Prepared::apply`] then makes it real and returns an
//! [`Applied`] with a mandatory [`Applied::revert`].

pub mod process;
pub mod proxy;

use crate::ledger::Undo;
use crate::policy::FaultKind;
use crate::targets::Target;
use nix::sys::signal::Signal;
use process::ProcessId;
use proxy::{Effect, Proxy, ProxyFault, ProxyMode, RequestMatch};
use std::sync::Arc;

/// A fault to make.
#[derive(Debug, Clone)]
pub enum FaultSpec {
    /// Send a signal.
    Kill(Signal),
    /// SIGSTOP until reverted.
    Pause,
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
            },
        }
    }

    /// A short description for timelines and plans.
    pub fn describe(&self) -> String {
        match self {
            FaultSpec::Kill(sig) => format!("signal {sig}"),
            FaultSpec::Pause => "SIGSTOP until reverted".into(),
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
    /// Add `fault` to `proxy`.
    Proxy {
        /// Proxy.
        proxy: Arc<Proxy>,
        /// Fault.
        fault: Box<ProxyFault>,
    },
}

/// Resolve `spec` against `target`. `seed` drives the fault's random draws.
pub fn prepare(
    name: &str,
    target: &Target,
    spec: FaultSpec,
    seed: u64,
) -> Result<Prepared, DriverError> {
    match (target, spec) {
        (Target::Process(p), FaultSpec::Kill(signal)) => Ok(Prepared::Kill {
            processes: unprotected(name, p.select(seed).map_err(DriverError::Failed)?)?,
            signal,
        }),
        (Target::Process(p), FaultSpec::Pause) => Ok(Prepared::Pause {
            processes: unprotected(name, p.select(seed).map_err(DriverError::Failed)?)?,
        }),
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
        (Target::Process(_), spec) => Err(DriverError::Unsupported(format!(
            "target `{name}` is a process; {} applies to proxy targets",
            spec.kind()
        ))),
        (Target::Proxy(_), spec) => Err(DriverError::Unsupported(format!(
            "target `{name}` is a proxy; {} applies to process targets",
            spec.kind()
        ))),
    }
}

impl Prepared {
    /// How to undo it if the engine dies.
    pub fn undo(&self) -> Undo {
        match self {
            Prepared::Kill { .. } => Undo::Nothing,
            Prepared::Pause { processes } => Undo::Continue {
                processes: processes.clone(),
            },
            Prepared::Proxy { .. } => Undo::InProcess,
        }
    }

    /// Make it real.
    pub fn apply(self) -> Result<Applied, DriverError> {
        match self {
            Prepared::Kill { processes, signal } => {
                for p in &processes {
                    p.signal(signal)
                        .map_err(|e| DriverError::Failed(e.to_string()))?;
                }
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
            Prepared::Proxy { proxy, fault } => {
                let key = proxy.add_fault(*fault);
                Ok(Applied::Proxy { proxy, key })
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
    /// A fault on a proxy.
    Proxy {
        /// Proxy.
        proxy: Arc<Proxy>,
        /// Key of the fault.
        key: u64,
    },
}

impl Applied {
    /// Undo it. Idempotent.
    pub fn revert(&self) -> Result<(), String> {
        match self {
            Applied::Done => Ok(()),
            Applied::Paused(ps) => resume_all(ps),
            Applied::Proxy { proxy, key } => {
                proxy.remove_fault(*key);
                Ok(())
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
