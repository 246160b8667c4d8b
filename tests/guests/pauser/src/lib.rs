//! A guest that pauses a process target (no duration) and then holds for
//! `hold`, returning `halted` if the run is stopped meanwhile.

use std::time::Duration;

use firedrill_sdk::*;

struct Pauser;

fn target() -> String {
    host::param_or("target", "victim")
}

impl Scenario for Pauser {
    fn describe() -> Metadata {
        Metadata::new("pauser", "0.1.0", "Pauses a process target and holds.")
            .param(
                "target",
                ParamType::String,
                Some("victim"),
                "The process target to pause",
            )
            .param(
                "hold",
                ParamType::Duration,
                Some("60s"),
                "How long to hold after pausing",
            )
            .need(FaultKind::Pause, target())
    }

    fn run() -> Result<Outcome, Error> {
        let target = target();
        let hold = host::param_duration("hold", Duration::from_secs(60))?;
        host::event("pausing", &target);
        faults::pause(&target).apply()?;
        host::event("paused", &target);
        // `halted` if the run is stopped meanwhile: pass it on.
        host::sleep(hold)?;
        Ok(Outcome::pass(format!("held {target} paused for {hold:?}")))
    }
}

export_scenario!(Pauser);
