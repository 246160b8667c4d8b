//! The one stop path of every command that applies faults (`run`,
//! `replay`, `demo`): SIGINT (Ctrl-C), SIGTERM and SIGHUP (a closed
//! terminal, a dropped SSH session) halt the command's runs; each run
//! reverts its faults and is recorded as halted, and the command exits 4.
//!
//! The handlers are installed before anything starts and stay until the
//! command returns, so a signal during target start-up stops the command
//! before its run, and a second Ctrl-C cannot cut a revert short.

use super::{Exit, Failure};
use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Whether the command was asked to stop, and by which signal.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    token: CancellationToken,
    cause: Arc<OnceLock<&'static str>>,
}

impl Stop {
    /// Take over SIGINT, SIGTERM and SIGHUP for the rest of the command.
    pub(crate) fn install() -> Result<Stop, Failure> {
        let stop = Stop {
            token: CancellationToken::new(),
            cause: Arc::default(),
        };
        // Which outputs were a terminal before it hangs up: after a hangup
        // the terminal answers every call with EIO, and a failed print
        // must not end the command before its faults are reverted.
        let ttys = (
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
        );
        for (kind, name) in [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
        ] {
            let mut stream = signal(kind)?;
            let stop = stop.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if name == "SIGHUP" {
                        detach_from_terminal(ttys);
                    }
                    let _ = stop.cause.set(name);
                    stop.token.cancel();
                }
            });
        }
        Ok(stop)
    }

    /// The signal that asked the command to stop, if one has.
    pub(crate) fn requested(&self) -> Option<&'static str> {
        self.token
            .is_cancelled()
            .then(|| self.cause.get().copied().unwrap_or("a signal"))
    }

    /// Wait for a stop signal; its name.
    pub(crate) async fn wait(&self) -> &'static str {
        self.token.cancelled().await;
        self.cause.get().copied().unwrap_or("a signal")
    }

    /// `Err` (exit 4) if a signal came before a run could start.
    pub(crate) fn check(&self) -> Result<(), Failure> {
        match self.requested() {
            Some(name) => Err(Failure {
                exit: Exit::Halted,
                error: anyhow::anyhow!(
                    "{name}: stopped before the run started; nothing was applied"
                ),
            }),
            None => Ok(()),
        }
    }
}

/// Point the outputs that were a terminal at /dev/null, so the prints of
/// the halt and the summary go nowhere instead of failing.
fn detach_from_terminal((stdout, stderr): (bool, bool)) {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    if stdout {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    if stderr {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}
