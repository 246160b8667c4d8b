//! Targets: the principal type is [`TargetSet`], the running processes,
//! proxies and remote proxies a drill declares, started before a run and stopped after it (or
//! kept across several runs, as `firedrill demo` does).

pub mod host;
pub mod process;
pub mod remote;

use crate::drill::{TargetDecl, TargetSpec};
use crate::drivers::proxy::Proxy;
use process::ProcessTarget;
use remote::RemoteProxy;
use std::collections::BTreeMap;
use std::sync::Arc;

/// This process's binary when it is firedrill, which has the helper verbs
/// (`keep`, `stress-child`) the engine starts children with; `None` when a
/// program embeds the engine as a library.
pub(crate) fn firedrill_exe() -> Option<std::path::PathBuf> {
    std::env::current_exe().ok().filter(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("firedrill"))
    })
}

/// One running target.
#[derive(Debug, Clone)]
pub enum Target {
    /// A process.
    Process(Arc<ProcessTarget>),
    /// A proxy.
    Proxy(Arc<Proxy>),
    /// A proxy on a Toxiproxy-API server.
    Remote(Arc<RemoteProxy>),
    /// The host, for resource stress.
    Host(Arc<host::HostTarget>),
}

impl Target {
    /// Where probes connect.
    pub fn address(&self) -> Option<String> {
        match self {
            Target::Process(p) => p.address().map(str::to_string),
            Target::Proxy(p) => Some(p.local_addr().to_string()),
            Target::Remote(r) => Some(r.address()),
            Target::Host(_) => None,
        }
    }
}

/// The running targets of a drill, with their grants.
#[derive(Debug, Default)]
pub struct TargetSet {
    targets: BTreeMap<String, Target>,
    decls: BTreeMap<String, TargetDecl>,
}

impl TargetSet {
    /// Start every declared target; on failure, stop those already started.
    pub async fn start(decls: &BTreeMap<String, TargetDecl>) -> Result<Arc<TargetSet>, String> {
        let mut set = TargetSet {
            targets: BTreeMap::new(),
            decls: decls.clone(),
        };
        // Processes first, so proxies in front of them find them up.
        let ordered = decls
            .iter()
            .filter(|(_, d)| matches!(d.spec, TargetSpec::Process(_)))
            .chain(
                decls
                    .iter()
                    .filter(|(_, d)| !matches!(d.spec, TargetSpec::Process(_))),
            );
        for (name, decl) in ordered {
            let started = match &decl.spec {
                TargetSpec::Process(spec) => {
                    ProcessTarget::start(name, spec).await.map(Target::Process)
                }
                TargetSpec::Proxy(config) => Proxy::start(config.clone())
                    .await
                    .map(Target::Proxy)
                    .map_err(|e| e.to_string()),
                TargetSpec::Remote(spec) => {
                    RemoteProxy::start(name, spec).await.map(Target::Remote)
                }
                TargetSpec::Host(spec) => {
                    host::HostTarget::start(name, spec).map(|h| Target::Host(Arc::new(h)))
                }
            };
            match started {
                Ok(t) => {
                    set.targets.insert(name.clone(), t);
                }
                Err(e) => {
                    set.shutdown().await;
                    return Err(e);
                }
            }
        }
        Ok(Arc::new(set))
    }

    /// A target by name.
    pub fn get(&self, name: &str) -> Option<&Target> {
        self.targets.get(name)
    }

    /// The declarations (specs and grants).
    pub fn decls(&self) -> &BTreeMap<String, TargetDecl> {
        &self.decls
    }

    /// Names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }

    /// Stop every target: proxies close, spawned processes terminate.
    pub async fn shutdown(&self) {
        for t in self.targets.values() {
            match t {
                Target::Proxy(p) => p.stop().await,
                Target::Process(p) => p.stop().await,
                Target::Remote(r) => r.shutdown().await,
                Target::Host(_) => {}
            }
        }
    }
}
