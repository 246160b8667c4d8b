//! Crash recovery: SIGKILL the engine mid-run with a paused target; the
//! next start continues the target and closes the run as crashed.

use crate::support::*;
use firedrill::history::{EventKind, RunStatus};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_then_recover_continues_the_paused_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut victim, pid_file) = victim(dir.path());
    std::fs::write(dir.path().join("pauser.wasm"), firedrill_tests::PAUSER).unwrap();
    std::fs::write(
        dir.path().join("drill.toml"),
        format!(
            "[scenario]\npath = \"pauser.wasm\"\n\n[targets.victim]\nkind = \"process\"\npid_file = \"{}\"\ngrants = [\"pause\"]\n",
            pid_file.display()
        ),
    )
    .unwrap();
    let mut engine = firedrill(&data)
        .arg("run")
        .arg(dir.path().join("drill.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || proc_state(victim.id())
            == Some('T'))
        .await,
        "victim paused"
    );
    // Events become durable within sled's 100 ms flush period.
    tokio::time::sleep(Duration::from_millis(400)).await;

    // While the run holds the data dir, history goes through its control socket.
    let out = firedrill(&data)
        .args(["history", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<firedrill::history::Run> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0].status, RunStatus::Running);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(engine.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    engine.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        proc_state(victim.id()),
        Some('T'),
        "the fault outlived the engine until recovery"
    );

    let out = firedrill(&data).arg("recover").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("recovery reverted 1 fault(s), 0 failed"),
        "{text}"
    );
    assert!(
        eventually(Duration::from_secs(2), || proc_state(victim.id())
            != Some('T'))
        .await,
        "victim continued"
    );

    let out = firedrill(&data).args(["show", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run: firedrill::history::Run = serde_json::from_value(v["run"].clone()).unwrap();
    let timeline: Vec<firedrill::history::Event> =
        serde_json::from_value(v["timeline"].clone()).unwrap();
    assert_eq!(run.status, RunStatus::Crashed);
    assert!(timeline.iter().any(
        |e| matches!(&e.kind, EventKind::FaultReverted { reason, .. } if reason == "recovery")
    ));
    assert!(
        timeline
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Mark { name, .. } if name == "paused")),
        "events before the crash are kept"
    );

    // A second recovery finds nothing left.
    let out = firedrill(&data).arg("recover").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to recover"));
    victim.kill().unwrap();
    victim.wait().unwrap();
}
