//! A guest whose `run` never returns: it spins doing work the optimizer
//! cannot remove, so only the engine's time limit or halt can stop it.

use firedrill_sdk::*;

struct Spin;

impl Scenario for Spin {
    fn describe() -> Metadata {
        Metadata::new("spin", "0.1.0", "Loops forever in run.")
    }

    fn run() -> Result<Outcome, Error> {
        let mut counter = 0u64;
        loop {
            counter = core::hint::black_box(counter.wrapping_add(1));
        }
    }
}

export_scenario!(Spin);
