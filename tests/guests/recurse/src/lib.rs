//! A guest whose `run` recurses without bound until it exhausts its stack
//! and traps. Each frame holds a 1 KiB array passed through `black_box`, and
//! the recursive call is not in tail position, so the optimizer can turn it
//! into neither a loop nor a no-op.

use firedrill_sdk::*;

struct Recurse;

#[inline(never)]
fn deeper(depth: u64) -> u64 {
    // Never true, but the compiler cannot know: keeps the function from
    // being an unconditional recursion (a lint) without bounding it.
    if core::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    let mut frame = [0u8; 1024];
    frame[(depth % 1024) as usize] = depth as u8;
    let frame = core::hint::black_box(frame);
    let below = deeper(core::hint::black_box(depth + 1));
    below.wrapping_add(u64::from(frame[(depth % 1024) as usize]))
}

impl Scenario for Recurse {
    fn describe() -> Metadata {
        Metadata::new("recurse", "0.1.0", "Recurses until its stack runs out.")
    }

    fn run() -> Result<Outcome, Error> {
        let depth = deeper(0);
        Ok(Outcome::pass(format!("returned from depth {depth}")))
    }
}

export_scenario!(Recurse);
