//! The bundled scenarios end to end against the real demo service.

use crate::support::*;
use firedrill::history::RunStatus;
use firedrill::{EngineBuilder, RunSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_three_scenarios_and_history_lists_them() {
    let data = tempfile::tempdir().unwrap();
    let out = firedrill(data.path()).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["kill-and-recover", "latency-ramp", "auth-outage"] {
        assert!(
            stdout.contains(&format!("{name}   ")) || stdout.contains(name),
            "{name} missing: {stdout}"
        );
    }
    let out = firedrill(data.path())
        .args(["history", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let runs: Vec<firedrill::history::Run> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Passed),
        "{runs:#?}"
    );
    let mut names: Vec<_> = runs.iter().map(|r| r.scenario.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["auth-outage", "kill-and-recover", "latency-ramp"]);
    // The timeline of a run is there too, with its fault applied and reverted.
    let out = firedrill(data.path())
        .args(["show", &runs[0].id.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fault 0 applied") && text.contains("fault 0 reverted"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_ramp_measures_the_requested_delay() {
    let engine = EngineBuilder::new().build().unwrap();
    let drill = demo_drill(None, "");
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let scenario = engine
        .load(
            firedrill::bundled::get("latency-ramp").unwrap(),
            "latency-ramp",
        )
        .unwrap();
    let mut spec = RunSpec::new(scenario);
    spec.targets = targets.clone();
    spec.params = [
        ("steps", "150ms"),
        ("samples", "3"),
        ("slo", "100ms"),
        ("must-tolerate", "50ms"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let run = engine.run(spec).await.unwrap();
    targets.shutdown().await;
    // 150ms breaks a 100ms objective but is above must-tolerate: pass.
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
    let m = run.outcome.unwrap().measurements;
    let p50 = m
        .iter()
        .find(|m| m.name == "p50-at-150ms")
        .expect("p50 measured")
        .value;
    assert!(
        (150.0..200.0).contains(&p50),
        "p50 with 150ms delay was {p50}ms"
    );
    assert_eq!(
        m.iter().find(|m| m.name == "breaking-step").unwrap().value,
        150.0
    );
}
