use super::{Exit, Failure, usage};
use firedrill::control::{self, Request, Response};
use std::path::Path;

/// `halt` (or `resume` when `halt` is false) through the control socket of
/// the engine holding the data dir.
pub(crate) async fn run(data_dir: &Path, halt: bool) -> Result<Exit, Failure> {
    let request = if halt { Request::Halt } else { Request::Resume };
    match control::request(data_dir, &request).await {
        Ok(Response::Halted { runs }) => println!(
            "halted {runs} run(s); their faults are being reverted; new runs are refused until `firedrill resume`"
        ),
        Ok(Response::Ok) => println!("resumed: new runs are accepted"),
        Ok(other) => return Err(usage(format!("unexpected answer: {other:?}"))),
        Err(e) => {
            return Err(usage(format!(
                "no firedrill engine is running on {} ({e}): nothing to {}",
                data_dir.display(),
                if halt { "halt" } else { "resume" }
            )));
        }
    }
    Ok(Exit::Pass)
}
