//! A guest that restarts a process target (`fault = "restart"`) or puts a
//! load on a host target (`cpu`, `memory`, `disk`) and holds it for `hold`.

use std::time::Duration;

use firedrill_sdk::*;

struct Process;

fn kind() -> FaultKind {
    match host::param_or("fault", "restart").as_str() {
        "cpu" => FaultKind::CpuStress,
        "memory" => FaultKind::MemoryStress,
        "disk" => FaultKind::DiskFill,
        _ => FaultKind::Restart,
    }
}

impl Scenario for Process {
    fn describe() -> Metadata {
        Metadata::new("process", "0.1.0", "Restarts a process or stresses a host.")
            .param("target", ParamType::String, Some("box"), "The target")
            .param(
                "fault",
                ParamType::String,
                Some("restart"),
                "restart, cpu, memory or disk",
            )
            .param(
                "value",
                ParamType::Integer,
                Some("1"),
                "cpu: cores (at 50 %); memory, disk: bytes",
            )
            .param("hold", ParamType::Duration, Some("1s"), "How long to hold")
            .need(kind(), host::param_or("target", "box"))
    }

    fn run() -> Result<Outcome, Error> {
        let target = host::param_or("target", "box");
        let name = host::param_or("fault", "restart");
        let value = host::param_u64("value", 1)?;
        let builder = match name.as_str() {
            "cpu" => faults::cpu_stress(&target, value as u32, 50),
            "memory" => faults::memory_stress(&target, value),
            "disk" => faults::disk_fill(&target, value),
            _ => {
                faults::restart(&target)?;
                return Ok(Outcome::pass(format!("{target} restarted")));
            }
        };
        let fault = builder.apply()?;
        host::event("applied", &name);
        host::sleep(host::param_duration("hold", Duration::from_secs(1))?)?;
        fault.revert()?;
        Ok(Outcome::pass(format!(
            "{name} on {target} held and reverted"
        )))
    }
}

export_scenario!(Process);
