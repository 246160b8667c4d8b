//! A guest whose `run` panics (and, built with `panic = "abort"`, traps).

use firedrill_sdk::*;

struct Panic;

impl Scenario for Panic {
    fn describe() -> Metadata {
        Metadata::new("panic", "0.1.0", "Panics in run.")
    }

    fn run() -> Result<Outcome, Error> {
        panic!("scenario panicked on purpose")
    }
}

export_scenario!(Panic);
