//! A guest that sleeps for `hold` and returns `halted` if the run is
//! stopped meanwhile.

use std::time::Duration;

use firedrill_sdk::*;

struct Sleeper;

impl Scenario for Sleeper {
    fn describe() -> Metadata {
        Metadata::new("sleeper", "0.1.0", "Sleeps until halted.").param(
            "hold",
            ParamType::Duration,
            Some("60s"),
            "How long to sleep",
        )
    }

    fn run() -> Result<Outcome, Error> {
        let hold = host::param_duration("hold", Duration::from_secs(60))?;
        // `halted` if the run is stopped meanwhile: pass it on.
        host::sleep(hold)?;
        Ok(Outcome::pass(format!("slept {hold:?}")))
    }
}

export_scenario!(Sleeper);
