//! A guest whose `run` never returns: it sleeps 1 ms at a time forever and
//! ignores `halted`, so the engine must stop it without its cooperation.

use std::time::Duration;

use firedrill_sdk::*;

struct SleepLoop;

impl Scenario for SleepLoop {
    fn describe() -> Metadata {
        Metadata::new(
            "sleep-loop",
            "0.1.0",
            "Sleeps 1 ms at a time forever, ignoring halted.",
        )
    }

    fn run() -> Result<Outcome, Error> {
        loop {
            let _ = host::sleep(Duration::from_millis(1));
        }
    }
}

export_scenario!(SleepLoop);
