//! A scenario made without the SDK against `wit/scenario.wit` as it was at
//! `firedrill:scenario@0.1.0` (kept in `engine/wit/0.1.0/`), as a component built by
//! any toolchain before 0.1.1 is: the engine must still load, describe and
//! run it. It declares two parameters, logs, sleeps 10 ms and reports the
//! length of its `pin`.

wit_bindgen::generate!({
    world: "scenario",
    path: "../../../engine/wit/0.1.0",
});

use firedrill::scenario::host;

struct Legacy;

impl Guest for Legacy {
    fn describe() -> Metadata {
        Metadata {
            name: "legacy".into(),
            version: "0.1.0".into(),
            description: "Built against firedrill:scenario@0.1.0.".into(),
            params: vec![
                ParamSpec {
                    name: "pin".into(),
                    ty: ParamType::String,
                    default: Some("0000".into()),
                    doc: "A value".into(),
                },
                ParamSpec {
                    name: "hold".into(),
                    ty: ParamType::Duration,
                    default: Some("10ms".into()),
                    doc: "How long to sleep".into(),
                },
            ],
            needs: Vec::new(),
        }
    }

    fn run() -> Result<Outcome, firedrill::scenario::types::Error> {
        let pin = host::param("pin").unwrap_or_default();
        host::log(host::Level::Info, "legacy scenario running");
        host::sleep(10_000_000)?;
        Ok(Outcome {
            verdict: Verdict::Pass,
            summary: format!("legacy pin of {} characters", pin.len()),
            findings: Vec::new(),
            measurements: Vec::new(),
        })
    }
}

export!(Legacy);
