//! A guest whose `run` allocates 1 MiB blocks, touching each, until the
//! allocation fails and the component aborts (the engine caps memory).

use firedrill_sdk::*;

struct MemoryBomb;

impl Scenario for MemoryBomb {
    fn describe() -> Metadata {
        Metadata::new("memory-bomb", "0.1.0", "Allocates memory until it dies.")
    }

    fn run() -> Result<Outcome, Error> {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            blocks.push(core::hint::black_box(vec![0xa5; 1 << 20]));
            core::hint::black_box(&blocks);
        }
    }
}

export_scenario!(MemoryBomb);
