//! A guest that draws five values from the run's seeded generator and
//! records them as `draw` events and `draw-0`..`draw-4` measurements.

use firedrill_sdk::*;

struct Seeded;

impl Scenario for Seeded {
    fn describe() -> Metadata {
        Metadata::new(
            "seeded",
            "0.1.0",
            "Records draws from the seeded generator.",
        )
    }

    fn run() -> Result<Outcome, Error> {
        let mut outcome = Outcome::pass("drew 5 values");
        for i in 0..5 {
            let value = host::random_u64();
            host::event("draw", &value.to_string());
            outcome = outcome.measure(format!("draw-{i}"), value as f64, "");
        }
        Ok(outcome)
    }
}

export_scenario!(Seeded);
