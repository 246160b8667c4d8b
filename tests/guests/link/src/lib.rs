//! A guest that applies one link fault, named by the `fault` parameter,
//! to a proxy target and holds for `hold`.

use std::time::Duration;

use firedrill_sdk::*;

struct Link;

fn target() -> String {
    host::param_or("target", "link")
}

fn kind() -> (String, FaultKind) {
    let name = host::param_or("fault", "blackhole");
    let kind = match name.as_str() {
        "bandwidth" => FaultKind::Bandwidth,
        "refuse" => FaultKind::Refuse,
        "reset-peer" => FaultKind::ResetPeer,
        "timeout" => FaultKind::Timeout,
        "slow-close" => FaultKind::SlowClose,
        "slicer" => FaultKind::Slicer,
        "limit-data" => FaultKind::LimitData,
        "connect-delay" => FaultKind::Delay,
        _ => FaultKind::Blackhole,
    };
    (name, kind)
}

impl Scenario for Link {
    fn describe() -> Metadata {
        Metadata::new("link", "0.1.0", "Applies one link fault and holds.")
            .param(
                "target",
                ParamType::String,
                Some("link"),
                "The proxy target",
            )
            .param(
                "fault",
                ParamType::String,
                Some("blackhole"),
                "Which link fault",
            )
            .param(
                "value",
                ParamType::Integer,
                Some("1000"),
                "Its number: bytes, bytes/s or ms",
            )
            .param(
                "direction",
                ParamType::String,
                Some("downstream"),
                "upstream, downstream or both",
            )
            .param("hold", ParamType::Duration, Some("1s"), "How long to hold")
            .need(kind().1, target())
    }

    fn run() -> Result<Outcome, Error> {
        let target = target();
        let (name, _) = kind();
        let value = host::param_u64("value", 1000)?;
        let ms = Duration::from_millis(value);
        let builder = match name.as_str() {
            "bandwidth" => faults::bandwidth(&target, value),
            "refuse" => faults::refuse(&target),
            "reset-peer" => faults::reset_peer(&target, ms),
            "timeout" => faults::timeout(&target, ms),
            "slow-close" => faults::slow_close(&target, ms),
            "slicer" => faults::slicer(&target, value as u32, 0, Duration::from_millis(1)),
            "limit-data" => faults::limit_data(&target, value),
            "connect-delay" => faults::connect_delay(&target, ms),
            _ => faults::blackhole(&target),
        };
        let direction = match host::param_or("direction", "downstream").as_str() {
            "upstream" => Direction::Upstream,
            "both" => Direction::Both,
            _ => Direction::Downstream,
        };
        let fault = builder.direction(direction).apply()?;
        host::event("applied", &name);
        host::sleep(host::param_duration("hold", Duration::from_secs(1))?)?;
        fault.revert()?;
        Ok(Outcome::pass(format!(
            "{name} on {target} held and reverted"
        )))
    }
}

export_scenario!(Link);
