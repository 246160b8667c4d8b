//! The control socket: sled lets one process hold a data dir, so the engine
//! that holds it serves `<data-dir>/control.sock` and other `firedrill`
//! commands (`history`, `show`, `halt`) talk to it there. One JSON request
//! line, one JSON response line.

use crate::engine::{Engine, HaltState};
use crate::history::{Event, Run, RunFilter, RunId, RunStatus};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// File name of the socket in the data dir.
pub const SOCKET: &str = "control.sock";

/// A request to the engine that holds the data dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// List runs.
    Runs {
        /// Scenario name.
        scenario: Option<String>,
        /// Status.
        status: Option<RunStatus>,
        /// Since, Unix ms.
        since: Option<u64>,
        /// At most.
        limit: Option<usize>,
    },
    /// One run and its timeline (`None`: the newest).
    Show {
        /// Run.
        run: Option<RunId>,
    },
    /// Delete old runs (see [`crate::history::HistoryStore::prune`]): those
    /// beyond the newest `keep` and started before `before`, each rule that
    /// is given.
    Prune {
        /// Keep the newest this many.
        keep: Option<usize>,
        /// Delete runs started before this, Unix ms.
        before: Option<u64>,
    },
    /// The runs [`Request::Prune`] would delete, deleting nothing. An op of
    /// its own rather than a flag on `prune`: an engine that predates it
    /// refuses an unknown op, where it would ignore an unknown flag and
    /// delete.
    PruneDryRun {
        /// Keep the newest this many.
        keep: Option<usize>,
        /// Runs started before this, Unix ms.
        before: Option<u64>,
    },
    /// Halt every run and refuse new ones.
    Halt,
    /// Accept runs again.
    Resume,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum Response {
    /// Runs, newest first.
    Runs {
        /// Runs.
        runs: Vec<Run>,
        /// The halt in force, if any.
        #[serde(default)]
        halt: Option<HaltState>,
    },
    /// A run and its timeline.
    Show {
        /// Run.
        run: Box<Run>,
        /// Timeline.
        timeline: Vec<Event>,
        /// The halt in force, if any.
        #[serde(default)]
        halt: Option<HaltState>,
    },
    /// How many runs were deleted (or, in a dry run, would be).
    Pruned {
        /// Count.
        runs: usize,
        /// Those runs, newest first.
        #[serde(default)]
        list: Vec<Run>,
        /// True when nothing was deleted.
        #[serde(default)]
        dry_run: bool,
    },
    /// How many runs were halted.
    Halted {
        /// Count.
        runs: usize,
    },
    /// Runs are accepted again.
    Resumed {
        /// The halt that was lifted (none: there was no halt).
        was: Option<HaltState>,
    },
    /// It failed.
    Error {
        /// Why.
        message: String,
    },
}

/// A sealed run as lists show it: when it ran and how it ended, nothing
/// of what it did.
fn masked(mut r: Run, why: &str) -> Run {
    r.scenario.name = format!("sealed ({why})");
    r.scenario.version = String::new();
    r.scenario.sha256 = String::new();
    r.scenario.source = String::new();
    r.scenario.package = None;
    r.params.clear();
    r.drill_text = None;
    r.outcome = None;
    r.error = None;
    r
}

/// Answer `request` from `engine`.
pub fn answer(engine: &Engine, request: Request) -> Response {
    let h = engine.history();
    let result = match request {
        Request::Runs {
            scenario,
            status,
            since,
            limit,
        } => h
            .list_runs(&RunFilter {
                scenario,
                status,
                since,
                limit,
            })
            .map(|runs| Response::Runs {
                runs: runs
                    .into_iter()
                    .map(|r| match h.sealed(r.id) {
                        Ok(Some(why)) => masked(r, &why),
                        _ => r,
                    })
                    .collect(),
                halt: engine.halt_state(),
            }),
        Request::Show { run } => {
            let found = match run {
                Some(id) => h.get_run(id),
                None => h.last_run(),
            };
            match found {
                Ok(Some(r)) => match h.sealed(r.id) {
                    Ok(Some(why)) => Ok(Response::Error {
                        message: format!(
                            "run {} is sealed ({why}) until it is revealed: its scenario, parameters and timeline stay hidden",
                            r.id
                        ),
                    }),
                    _ => h.timeline(r.id).map(|timeline| Response::Show {
                        run: Box::new(r),
                        timeline,
                        halt: engine.halt_state(),
                    }),
                },
                Ok(None) => Ok(Response::Error {
                    message: match run {
                        Some(id) => format!("no run {id} in history"),
                        None => "history is empty".into(),
                    },
                }),
                Err(e) => Err(e),
            }
        }
        Request::Prune { keep, before } => {
            h.prune(keep, before, false).map(|list| Response::Pruned {
                runs: list.len(),
                list,
                dry_run: false,
            })
        }
        Request::PruneDryRun { keep, before } => {
            h.prune(keep, before, true).map(|list| Response::Pruned {
                runs: list.len(),
                list,
                dry_run: true,
            })
        }
        Request::Halt => {
            return match engine.halt() {
                Ok(runs) => Response::Halted { runs },
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            };
        }
        Request::Resume => {
            return match engine.resume() {
                Ok(was) => Response::Resumed { was },
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            };
        }
    };
    result.unwrap_or_else(|e| Response::Error {
        message: e.to_string(),
    })
}

/// Serve the socket in `dir` for as long as the process lives. The caller
/// holds the data dir's lock, so a socket file left there is stale.
pub(crate) fn serve(engine: Engine, dir: &Path) -> std::io::Result<()> {
    let path = dir.join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let engine = engine.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(rd).read_line(&mut line).await.is_err() {
                    return;
                }
                let response = match serde_json::from_str::<Request>(&line) {
                    Ok(req) => answer(&engine, req),
                    Err(e) => Response::Error {
                        message: format!("bad request: {e}"),
                    },
                };
                let mut out = serde_json::to_vec(&response).unwrap_or_default();
                out.push(b'\n');
                let _ = wr.write_all(&out).await;
            });
        }
    });
    Ok(())
}

/// Send `request` to the engine serving `dir`.
pub async fn request(dir: &Path, request: &Request) -> std::io::Result<Response> {
    let path = dir.join(SOCKET);
    let stream = UnixStream::connect(&path).await?;
    let (rd, mut wr) = stream.into_split();
    let mut out = serde_json::to_vec(request)?;
    out.push(b'\n');
    wr.write_all(&out).await?;
    let mut line = String::new();
    BufReader::new(rd).read_line(&mut line).await?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}
