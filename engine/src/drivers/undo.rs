//! [`Undo`]: what it takes to undo a fault from its description alone,
//! when the engine that applied it is gone. Each fault's `Prepared` form
//! says its `Undo`; the ledger keeps it durable and runs it in recovery.

use super::process::ProcessId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What it takes to undo a fault when the engine that applied it is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum Undo {
    /// Nothing can be undone (a signal that was delivered).
    Nothing,
    /// Continue paused processes.
    Continue {
        /// The processes.
        processes: Vec<ProcessId>,
    },
    /// Thaw a frozen cgroup.
    Thaw {
        /// Its freezer.
        freezer: super::cgroup::Freezer,
    },
    /// The fault lived in a proxy of the engine's own process: it died with
    /// the engine, so nothing is left to undo after a crash.
    InProcess,
    /// A stress child died with the engine (`PR_SET_PDEATHSIG`); delete the
    /// file a disk fill wrote.
    Stress {
        /// The file.
        #[schemars(with = "Option<String>")]
        file: Option<std::path::PathBuf>,
    },
    /// Delete these toxics from a proxy on a Toxiproxy-API server.
    Toxics {
        /// The server's control API.
        #[schemars(with = "String")]
        api: std::net::SocketAddr,
        /// The proxy.
        proxy: String,
        /// The environment variable holding the API token.
        token_env: String,
        /// Toxic names.
        toxics: Vec<String>,
    },
}

impl Undo {
    /// Undo the fault (after a crash, or as a run's last resort).
    /// Idempotent: a crash can land between the undo and its mark.
    pub fn run(&self) -> Result<(), String> {
        match self {
            Undo::Nothing | Undo::InProcess => Ok(()),
            Undo::Continue { processes } => super::resume_all(processes),
            Undo::Thaw { freezer } => freezer.thaw(),
            Undo::Stress { file } => crate::targets::host::undo(file.as_deref()),
            Undo::Toxics {
                api,
                proxy,
                token_env,
                toxics,
            } => crate::targets::remote::delete_blocking(*api, proxy, token_env, toxics),
        }
    }
}
