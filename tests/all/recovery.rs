//! Crash recovery: SIGKILL the engine mid-run with a paused target; the
//! next start continues the target and closes the run as crashed.

use crate::support::*;
use firedrill::history::{EventKind, RunStatus};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_then_recover_continues_the_paused_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut victim, drill) = pauser_drill(dir.path(), "", "");
    let mut engine = spawn_run(&data, &drill, &[]);
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

    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    signal(&engine, nix::sys::signal::Signal::SIGKILL);
    engine.wait().unwrap();
    // Recovery comes a while later; the run still ends when its engine died.
    tokio::time::sleep(Duration::from_millis(1500)).await;
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
    let ended = run.ended_at.expect("a crashed run has an end");
    assert!(
        ended <= killed_at,
        "the run ended at its last event ({ended}), not at recovery, 1.5 s after the kill at {killed_at}"
    );
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

/// Stop the engine at pseudo-random points of runs that pause a process,
/// spawn a supervised service with two workers and hold a proxy, and
/// recover after each stop. The stops rotate: SIGKILL during `run`,
/// SIGKILL during `replay` of an earlier run, and SIGHUP during `run` (a
/// closed terminal: the run must halt, revert and exit 4 by itself).
/// Counts, after recovery: processes left stopped, spawned processes
/// (service or worker) left running, proxy ports left bound, SIGHUPs that
/// did not end in exit 4. All must be 0. `FIREDRILL_KILLS` sets the number
/// of stops (21 by default; `tests/reliability.sh` runs more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sigkills_leave_no_fault_behind() {
    let kills: u32 = std::env::var("FIREDRILL_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(21);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut victim, pid_file) = victim(dir.path());
    std::fs::write(dir.path().join("pauser.wasm"), firedrill_tests::PAUSER).unwrap();
    let link = free_port();
    // A marker argument finds the spawned child among all processes.
    let marker = format!("{}.{}", 7000 + std::process::id() % 1000, link);
    std::fs::write(
        dir.path().join("drill.toml"),
        format!(
            r#"[scenario]
path = "pauser.wasm"
params = {{ hold = "200ms" }}

[targets.victim]
kind = "process"
pid_file = "{}"
grants = ["pause"]

[targets.child]
kind = "process"
command = "sh"
args = ["-c", "sleep {marker} & sleep {marker} & wait"]

[targets.link]
kind = "proxy"
listen = "127.0.0.1:{link}"
upstream = "127.0.0.1:9"
"#,
            pid_file.display()
        ),
    )
    .unwrap();

    let mut seed: u64 = 0x5eed;
    let (mut paused_at_kill, mut stopped_left, mut children_left, mut ports_left) = (0, 0, 0, 0);
    let (mut replays, mut hangups, mut hangup_not_halted) = (0, 0, 0);
    // A run to replay: one that completes.
    let first = firedrill(&data)
        .arg("run")
        .arg(dir.path().join("drill.toml"))
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let original = String::from_utf8_lossy(&first.stdout)
        .lines()
        .find(|l| l.starts_with("run "))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        .unwrap();
    for i in 0..kills {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(20 + (seed >> 33) % 500);
        let mut engine = firedrill(&data);
        match i % 3 {
            1 => engine.args(["replay", &original]),
            _ => engine.arg("run").arg(dir.path().join("drill.toml")),
        };
        let mut engine = engine
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(delay).await;
        let sig = if i % 3 == 2 {
            nix::sys::signal::Signal::SIGHUP
        } else {
            nix::sys::signal::Signal::SIGKILL
        };
        replays += u32::from(i % 3 == 1);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(engine.id() as i32), sig);
        let status = engine.wait().unwrap();
        if sig == nix::sys::signal::Signal::SIGHUP {
            hangups += 1;
            // Exit 4 if it was halted; 0 if the run had already ended.
            if !matches!(status.code(), Some(4) | Some(0)) {
                hangup_not_halted += 1;
            }
        }
        if proc_state(victim.id()) == Some('T') {
            paused_at_kill += 1;
        }
        let out = firedrill(&data).arg("recover").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        if proc_state(victim.id()) == Some('T') {
            stopped_left += 1;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(victim.id() as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
        // The keeper kills the service's group once the kernel tells it of
        // the engine's death: quick, but a loaded CI machine schedules it
        // late; what counts is that nothing is left, so wait up to 5 s.
        if eventually(Duration::from_secs(5), || !process_with_arg(&marker)).await {
        } else {
            children_left += 1;
        }
        if std::net::TcpListener::bind(("127.0.0.1", link)).is_err() {
            ports_left += 1;
        }
    }
    let line = format!(
        "stops={kills} (sigkill during run {}, sigkill during replay {replays}, sighup during run {hangups}) paused_at_stop={paused_at_kill} left_stopped={stopped_left} left_children={children_left} left_ports={ports_left} sighup_not_halted={hangup_not_halted}",
        kills - replays - hangups
    );
    println!("{line}");
    if let Some(out) = std::env::var_os("FIREDRILL_RELIABILITY_OUT") {
        std::fs::write(out, &line).unwrap();
    }
    assert_eq!(
        (stopped_left, children_left, ports_left, hangup_not_halted),
        (0, 0, 0, 0),
        "{line}"
    );
    assert!(
        paused_at_kill > 0,
        "some kills landed while the fault was applied: {line}"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
}

fn process_with_arg(arg: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
                && proc_state(
                    e.file_name()
                        .to_str()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0),
                ) != Some('Z')
        })
}
