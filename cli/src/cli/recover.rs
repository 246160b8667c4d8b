use super::{Exit, Failure, open_engine};
use std::path::Path;

pub(crate) async fn run(data_dir: &Path) -> Result<Exit, Failure> {
    // Opening the data dir is what recovers: it reports what it did.
    let engine = open_engine(data_dir, false)?;
    let r = engine.recovery();
    if r.reverted.is_empty() && r.failed.is_empty() {
        println!("nothing to recover: no fault is left applied");
    } else {
        println!(
            "recovery reverted {} fault(s), {} failed",
            r.reverted.len(),
            r.failed.len()
        );
    }
    Ok(if r.failed.is_empty() {
        Exit::Pass
    } else {
        Exit::RevertFailed
    })
}
