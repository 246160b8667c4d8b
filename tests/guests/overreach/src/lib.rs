//! A guest that declares no needs and still makes faults: a delay on
//! `api-link` and a kill of the undeclared target `nope`. Its findings hold
//! the `Display` text of each error the host returns.

use std::time::Duration;

use firedrill_sdk::*;

struct Overreach;

impl Scenario for Overreach {
    fn describe() -> Metadata {
        Metadata::new("overreach", "0.1.0", "Makes faults it did not declare.")
    }

    fn run() -> Result<Outcome, Error> {
        let delay = faults::delay("api-link", Duration::from_millis(100))
            .apply()
            .map(|fault| format!("allowed: fault {}", fault.id()));
        let kill = faults::kill("nope", Signal::Kill).map(|()| "allowed".to_owned());
        let mut outcome = Outcome::fail("tried faults it did not declare");
        for (title, result) in [("delay on api-link", delay), ("kill on nope", kill)] {
            let detail = match result {
                Ok(allowed) => allowed,
                Err(Error::Halted) => return Err(Error::Halted),
                Err(e) => e.to_string(),
            };
            outcome = outcome.finding(Severity::Info, title, detail);
        }
        Ok(outcome)
    }
}

export_scenario!(Overreach);
