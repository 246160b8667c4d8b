//! A guest whose `run` never returns: it logs the same 16 KiB message at
//! `info` as fast as it can, so the engine's log and timeline must bound
//! what they keep.

use firedrill_sdk::*;

struct LogFlood;

impl Scenario for LogFlood {
    fn describe() -> Metadata {
        Metadata::new("log-flood", "0.1.0", "Logs 16 KiB messages forever.")
    }

    fn run() -> Result<Outcome, Error> {
        let message = "x".repeat(16 * 1024);
        loop {
            host::log(Level::Info, &message);
        }
    }
}

export_scenario!(LogFlood);
