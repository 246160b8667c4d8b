//! Each fault seen from a real client's side.

use crate::support::*;
use firedrill::history::RunStatus;
use firedrill::targets::Target;
use firedrill::{EngineBuilder, RunSpec};
use firedrill_tests::Upstream;
use std::time::Duration;

fn params(p: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `reject` and `expire` answer 401 with the challenge an OAuth resource
/// server sends for a bad or an expired token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_auth_reject_and_expire_give_clients_401_then_200_after_revert() {
    let engine = EngineBuilder::new().build().unwrap();
    let drill = demo_drill(None, "");
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let link = targets.get("api-link").unwrap().address().unwrap();
    for (mode, description) in [
        ("reject", "The access token is invalid"),
        ("expire", "The access token expired"),
    ] {
        client_sees_auth_outage(&engine, &targets, &link, mode, description).await;
    }
    targets.shutdown().await;
}

async fn client_sees_auth_outage(
    engine: &firedrill::Engine,
    targets: &std::sync::Arc<firedrill::targets::TargetSet>,
    link: &str,
    mode: &str,
    description: &str,
) {
    assert_eq!(
        get(link, "/api/orders", Some("demo-token"))
            .await
            .unwrap()
            .status,
        200
    );

    let mut spec = RunSpec::new(
        engine
            .load(
                firedrill::bundled::get("auth-outage").unwrap(),
                "auth-outage",
            )
            .unwrap(),
    );
    spec.targets = targets.clone();
    spec.params = params(&[("outage", "2s"), ("samples", "2"), ("mode", mode)]);
    let handle = engine.start(spec).unwrap();

    // Our own client, beside the scenario, sees the outage.
    let mut rejected = None;
    for _ in 0..100 {
        let a = get(link, "/api/orders", Some("demo-token")).await.unwrap();
        if a.status == 401 {
            rejected = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rejected = rejected.expect("a client saw 401 during the outage");
    let challenge = rejected
        .headers
        .iter()
        .find(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.clone());
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Bearer ")
                && c.contains("error=\"invalid_token\"")
                && c.contains(&format!("error_description=\"{description}\""))),
        "{mode}: {challenge:?}"
    );
    assert!(String::from_utf8_lossy(&rejected.body).contains(description));

    let run = handle.wait().await;
    assert_eq!(run.status, RunStatus::Passed, "{mode}: {run:#?}");
    assert_eq!(
        get(link, "/api/orders", Some("demo-token"))
            .await
            .unwrap()
            .status,
        200,
        "{mode} reverted"
    );
}

async fn outage_against_recording_upstream(
    mode: &str,
) -> (firedrill::history::Run, Vec<firedrill_tests::Seen>) {
    let upstream = Upstream::start("secret-token").await;
    let engine = EngineBuilder::new().build().unwrap();
    let drill = demo_drill(Some(upstream.addr), "");
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let mut spec = RunSpec::new(
        engine
            .load(
                firedrill::bundled::get("auth-outage").unwrap(),
                "auth-outage",
            )
            .unwrap(),
    );
    spec.targets = targets.clone();
    spec.params = params(&[
        ("mode", mode),
        ("token", "secret-token"),
        ("outage", "500ms"),
        ("samples", "3"),
    ]);
    let run = engine.run(spec).await.unwrap();
    targets.shutdown().await;
    (run, upstream.seen())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_auth_strip_removes_credentials_before_upstream() {
    let (run, seen) = outage_against_recording_upstream("strip").await;
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
    let orders: Vec<_> = seen.iter().filter(|s| s.path == "/api/orders").collect();
    let stripped = orders.iter().filter(|s| s.authorization.is_none()).count();
    let intact = orders
        .iter()
        .filter(|s| s.authorization.as_deref() == Some("Bearer secret-token"))
        .count();
    // 3 probes during the outage reached upstream with no credentials; the
    // probes before and after carried them intact.
    assert_eq!(stripped, 3, "{orders:#?}");
    assert!(intact >= 2, "{orders:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_auth_corrupt_alters_the_token_upstream_sees() {
    let (run, seen) = outage_against_recording_upstream("corrupt").await;
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
    let corrupted: Vec<_> = seen
        .iter()
        .filter_map(|s| s.authorization.clone())
        .filter(|a| a.starts_with("Bearer ") && a != "Bearer secret-token")
        .collect();
    assert_eq!(corrupted.len(), 3, "{seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ends_the_real_process_and_the_supervisor_restarts_it() {
    let engine = EngineBuilder::new().build().unwrap();
    let drill = demo_drill(None, "");
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let Some(Target::Process(api)) = targets.get("api") else {
        panic!("api is a process")
    };
    let before = api.pid().unwrap();

    let mut spec = RunSpec::new(
        engine
            .load(firedrill::bundled::get("kill-and-recover").unwrap(), "kar")
            .unwrap(),
    );
    spec.targets = targets.clone();
    let run = engine.run(spec).await.unwrap();
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");

    assert!(!before.is_alive(), "the killed process is gone");
    let after = api.pid().expect("restarted");
    assert_ne!(after.pid, before.pid);
    assert!(api.restarts() >= 1);
    let link = targets.get("api-link").unwrap().address().unwrap();
    assert_eq!(get(&link, "/health", None).await.unwrap().status, 200);
    let recovery = run
        .outcome
        .unwrap()
        .measurements
        .into_iter()
        .find(|m| m.name == "recovery-time")
        .unwrap();
    assert!(
        recovery.value > 0.0 && recovery.value < 10_000.0,
        "{recovery:?}"
    );
    targets.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_state_violation_during_the_run_aborts_and_reverts() {
    let engine = EngineBuilder::new().build().unwrap();
    let drill = demo_drill(
        None,
        r#"
[[steady_state]]
name = "api process alive"
target = "api"
process = true
phases = ["during"]
interval = "10ms"
"#,
    );
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let mut spec = RunSpec::new(
        engine
            .load(firedrill::bundled::get("kill-and-recover").unwrap(), "kar")
            .unwrap(),
    );
    spec.targets = targets.clone();
    spec.checks = drill.checks.clone();
    let run = engine.run(spec).await.unwrap();
    targets.shutdown().await;
    assert_eq!(run.status, RunStatus::SteadyStateViolated, "{run:#?}");
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .contains("steady state `api process alive` failed during the run"),
        "{:?}",
        run.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_target_faults_only_the_selected_share_of_its_processes() {
    let marker = format!("9{}.25", std::process::id());
    let mut workers: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new("sleep")
                .arg(&marker)
                .spawn()
                .unwrap()
        })
        .collect();
    let engine = EngineBuilder::new().build().unwrap();
    for (select, expected) in [("{ count = 3 }", 3), ("{ percent = 50 }", 2)] {
        let drill = firedrill::Drill::parse(
            &format!("[targets.workers]\nkind = \"process\"\npgrep = \"{marker}\"\nselect = {select}\ngrants = [\"pause\"]\n"),
            std::path::Path::new("g.toml"),
        )
        .unwrap();
        let targets = engine.start_targets(&drill.targets).await.unwrap();
        let mut spec = RunSpec::new(engine.load(firedrill_tests::PAUSER, "pauser").unwrap());
        spec.targets = targets;
        spec.params = params(&[("target", "workers"), ("hold", "400ms")]);
        let handle = engine.start(spec).unwrap();
        let stopped = || {
            workers
                .iter()
                .filter(|w| proc_state(w.id()) == Some('T'))
                .count()
        };
        assert!(
            eventually(Duration::from_secs(5), || stopped() == expected).await,
            "{select}: {} stopped",
            stopped()
        );
        assert_eq!(handle.wait().await.status, RunStatus::Passed);
        assert!(
            eventually(Duration::from_secs(2), || stopped() == 0).await,
            "all continued"
        );
    }
    for w in &mut workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
}
