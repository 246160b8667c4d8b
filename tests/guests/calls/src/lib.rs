//! A guest that calls `host.now` `n` times (default 100000) and reports the
//! mean cost of one guest-to-host call as `ns-per-call`.

use firedrill_sdk::*;

struct Calls;

impl Scenario for Calls {
    fn describe() -> Metadata {
        Metadata::new(
            "calls",
            "0.1.0",
            "Measures the cost of a guest-to-host call.",
        )
        .param("n", ParamType::Integer, Some("100000"), "How many calls")
    }

    fn run() -> Result<Outcome, Error> {
        let n = host::param_u64("n", 100_000)?.max(1);
        let start = host::now();
        for _ in 0..n {
            core::hint::black_box(host::now());
        }
        let per_call = (host::now() - start).as_nanos() as f64 / n as f64;
        Ok(Outcome::pass(format!("{n} calls")).measure("ns-per-call", per_call, "ns"))
    }
}

export_scenario!(Calls);
