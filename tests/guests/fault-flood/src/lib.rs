//! A guest that applies a `pause` fault to `target` (default `victim`) 5000
//! times, keeping every fault it gets, so the engine must bound the faults
//! one run can hold. It fails if no call was refused; otherwise it passes,
//! measuring `applied` and `refused`, with the first refusal as a finding.

use firedrill_sdk::*;

struct FaultFlood;

const ATTEMPTS: usize = 5000;

fn target() -> String {
    host::param_or("target", "victim")
}

impl Scenario for FaultFlood {
    fn describe() -> Metadata {
        Metadata::new("fault-flood", "0.1.0", "Applies a pause fault 5000 times.")
            .param(
                "target",
                ParamType::String,
                Some("victim"),
                "The process target to pause",
            )
            .need(FaultKind::Pause, target())
    }

    fn run() -> Result<Outcome, Error> {
        let target = target();
        let mut held: Vec<Fault> = Vec::new();
        let mut refused = 0usize;
        let mut first_error: Option<Error> = None;
        for _ in 0..ATTEMPTS {
            match faults::pause(&target).apply() {
                Ok(fault) => held.push(fault),
                Err(e) => {
                    refused += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        let applied = held.len();
        let outcome = if refused == 0 {
            Outcome::fail(format!("all {applied} pause faults applied"))
        } else {
            Outcome::pass(format!("{applied} applied, {refused} refused"))
        };
        let detail = first_error.map_or_else(|| "none".to_owned(), |e| e.to_string());
        Ok(outcome
            .finding(Severity::Info, "first refusal", detail)
            .measure("applied", applied as f64, "count")
            .measure("refused", refused as f64, "count"))
    }
}

export_scenario!(FaultFlood);
