//! A guest whose `run` returns a passing outcome with 200 000 findings of
//! about 100 bytes each (about 20 MB), so the engine must bound the outcome
//! it accepts and stores.

use firedrill_sdk::*;

struct HugeOutcome;

const FINDINGS: usize = 200_000;

impl Scenario for HugeOutcome {
    fn describe() -> Metadata {
        Metadata::new(
            "huge-outcome",
            "0.1.0",
            "Returns an outcome of about 20 MB.",
        )
    }

    fn run() -> Result<Outcome, Error> {
        let mut outcome = Outcome::pass(format!("{FINDINGS} findings"));
        outcome.findings.reserve_exact(FINDINGS);
        for i in 0..FINDINGS {
            // 100 bytes: a fixed prefix, the index padded to 10 digits.
            let title = format!("{:-<90}{i:010}", "finding ");
            outcome = outcome.finding(Severity::Info, title, "");
        }
        Ok(outcome)
    }
}

export_scenario!(HugeOutcome);
