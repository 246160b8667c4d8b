//! # latency-ramp
//!
//! Adds growing latency to a link and finds the step at which the service
//! behind it stops meeting its latency objective.
//!
//! For each duration in `steps`, in order: delay the responses on `link` by
//! it (downstream, no jitter), probe through `link` `samples` times (HTTP
//! `GET path`, or a line protocol's `send`/`expect`, as `probe` chooses),
//! take the median (p50) latency, and revert the delay. The first step
//! whose p50 exceeds `slo` is the breaking step: the ramp stops there.
//!
//! Fails iff it broke at a step no larger than `must-tolerate`. Measures
//! `p50-at-<step>ms` for each step and `breaking-step` (ms; 0 if none broke).
//! An unhealthy probe (no answer, a 4xx or 5xx, the wrong answer) counts as
//! taking its whole time-out: the larger of `probe_timeout` and the step
//! plus four times `slo`. `probe = "tcp"` is refused: a delay on the
//! answers does not slow the connect it measures.

use std::time::Duration;

use firedrill_sdk::*;

struct LatencyRamp;

fn link() -> String {
    host::param_or("link", "api-link")
}

impl Scenario for LatencyRamp {
    fn describe() -> Metadata {
        probes::Check::declare(Metadata::new(
            "latency-ramp",
            "0.2.0",
            "Ramps up latency on a proxy link step by step and reports the first step \
             at which the p50 latency of a probe through it (HTTP or a line protocol) \
             exceeds the objective.",
        ))
        .param(
            "link",
            ParamType::String,
            Some("api-link"),
            "The proxy target to delay (and probe through)",
        )
        .param(
            "steps",
            ParamType::String,
            Some("50ms,100ms,200ms,400ms"),
            "Comma-separated latencies to add, in order",
        )
        .param(
            "slo",
            ParamType::Duration,
            Some("250ms"),
            "The p50 latency objective",
        )
        .param("samples", ParamType::Integer, Some("5"), "Probes per step")
        .param(
            "must-tolerate",
            ParamType::Duration,
            Some("100ms"),
            "Fail if it breaks at a step no larger than this",
        )
        .need(FaultKind::Delay, link())
    }

    fn run() -> Result<Outcome, Error> {
        let link = link();
        let check = probes::Check::from_params()?;
        if check.kind == probes::CheckKind::Tcp {
            return Err(Error::InvalidArgument(
                "parameter `probe`: `tcp` measures the connect, which a delay on the link's \
                 answers does not slow; use `http` or `exchange` (`send`, `expect`)"
                    .into(),
            ));
        }
        let steps = parse_steps(&host::param_or("steps", "50ms,100ms,200ms,400ms"))?;
        let slo = host::param_duration("slo", Duration::from_millis(250))?;
        let samples = host::param_u64("samples", 5)?;
        if samples == 0 {
            return Err(Error::InvalidArgument(
                "parameter `samples`: must be at least 1".into(),
            ));
        }
        let must_tolerate = host::param_duration("must-tolerate", Duration::from_millis(100))?;

        let mut measurements = Vec::new();
        let mut failed_probes = 0u64;
        let mut breaking = None;
        for step in steps {
            host::event("step", &format!("delay {}ms on {link}", ms(step)));
            let fault = faults::delay(&link, step)
                .direction(Direction::Downstream)
                .apply()?;
            let timeout = check
                .timeout
                .max(step.saturating_add(slo.saturating_mul(4)));
            let probe = probes::Check {
                timeout,
                ..check.clone()
            };
            let mut latencies = Vec::new();
            for _ in 0..samples {
                latencies.push(match probe.run(&link)? {
                    Ok(latency) => latency,
                    Err(_) => {
                        failed_probes += 1;
                        timeout
                    }
                });
            }
            fault.revert()?;
            latencies.sort();
            let p50 = latencies[(latencies.len() - 1) / 2];
            measurements.push((format!("p50-at-{}ms", ms(step)), ms(p50)));
            if p50 > slo {
                breaking = Some((step, p50));
                break;
            }
        }

        let mut outcome = match breaking {
            Some((step, _)) if step <= must_tolerate => Outcome::fail(format!(
                "p50 broke the {}ms objective at {}ms of added latency (must tolerate {}ms)",
                ms(slo),
                ms(step),
                ms(must_tolerate)
            )),
            Some((step, _)) => Outcome::pass(format!(
                "p50 broke the {}ms objective at {}ms of added latency",
                ms(slo),
                ms(step)
            )),
            None => Outcome::pass(format!("p50 stayed within {}ms at every step", ms(slo))),
        };
        if let Some((step, p50)) = breaking {
            outcome = outcome.finding(
                Severity::Warning,
                format!("breaks at {}ms of latency", ms(step)),
                format!("p50 {:.1}ms > objective {}ms on {link}", ms(p50), ms(slo)),
            );
        }
        if failed_probes > 0 {
            outcome = outcome.finding(
                Severity::Warning,
                "probes failed during the ramp",
                format!("{failed_probes} probe(s) were unhealthy (no answer, an error status or the wrong answer)"),
            );
        }
        for (name, value) in measurements {
            outcome = outcome.measure(name, value, "ms");
        }
        let breaking_ms = breaking.map_or(0.0, |(step, _)| ms(step));
        Ok(outcome.measure("breaking-step", breaking_ms, "ms"))
    }
}

fn parse_steps(text: &str) -> Result<Vec<Duration>, Error> {
    let steps = text
        .split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            host::parse_duration(item).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "parameter `steps`: {:?} in {text:?} is not a duration",
                    item.trim()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if steps.is_empty() {
        return Err(Error::InvalidArgument("parameter `steps`: no steps".into()));
    }
    Ok(steps)
}

/// Milliseconds, exact for whole numbers of them.
fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

export_scenario!(LatencyRamp);
