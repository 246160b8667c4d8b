//! `firedrill halt` and `firedrill resume`: the emergency stop. The halt is
//! kept in the data dir, so it holds whether or not an engine is running,
//! and for every engine that opens the dir later, until `resume`.

use super::history::ask;
use super::{Exit, Failure, usage};
use firedrill::control::{Request, Response};
use std::path::Path;

/// `halt` (or `resume` when `halt` is false): through the control socket of
/// the engine holding the data dir, or on the data dir itself when none does.
pub(crate) async fn run(data_dir: &Path, halt: bool) -> Result<Exit, Failure> {
    let request = if halt { Request::Halt } else { Request::Resume };
    match ask(data_dir, request).await? {
        Response::Halted { runs } => println!(
            "halted {runs} run(s){}; new runs are refused until `firedrill resume`",
            if runs > 0 {
                "; their faults are being reverted"
            } else {
                ""
            }
        ),
        Response::Resumed { was: Some(h) } => {
            println!(
                "resumed: new runs are accepted (the halt had been in force since {})",
                super::history::when(h.since)
            )
        }
        Response::Resumed { was: None } => {
            println!("firedrill was not halted: new runs were and are accepted")
        }
        Response::Error { message } => return Err(usage(message)),
        other => return Err(usage(format!("unexpected answer: {other:?}"))),
    }
    Ok(Exit::Pass)
}

/// The line `history` and `show` print while a halt is in force.
pub(crate) fn banner(halt: &Option<firedrill::HaltState>) {
    if let Some(h) = halt {
        println!("HALTED: {h}; new runs are refused until `firedrill resume`");
    }
}
