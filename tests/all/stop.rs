//! The one stop path (issue 14, items 1 and 3): every command that applies
//! faults halts on SIGINT, SIGTERM and SIGHUP, reverts, records the run as
//! halted and exits 4; `firedrill halt` holds in the data dir until
//! `firedrill resume`, with or without an engine running.

use crate::support::*;
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn cmd(data: &Path, args: &[&str]) -> Output {
    firedrill(data).args(args).output().unwrap()
}

/// Wait until `victim` is stopped, signal `child`, and check that it exits
/// 4 with the victim continued.
async fn halts_and_reverts(mut child: Child, victim: &Child, sig: Signal, what: &str) -> Output {
    if !eventually(Duration::from_secs(20), || {
        proc_state(victim.id()) == Some('T')
    })
    .await
    {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("{what}: the victim was never paused: {}", text(&out));
    }
    signal(&child, sig);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{what} {sig}: {}", text(&out));
    assert_ne!(
        proc_state(victim.id()),
        Some('T'),
        "{what} {sig}: the paused process was continued"
    );
    out
}

/// The newest run's status as `history --json` reports it.
fn last_status(data: &Path) -> String {
    let o = cmd(data, &["history", "--json", "--limit", "1"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    runs[0]["status"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_replay_halt_on_sigint_sigterm_and_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut victim, drill) = pauser_drill(dir.path(), "", "");
    // The run to replay, itself halted by SIGHUP (`kill -HUP`, as a
    // supervisor or a closed session sends it).
    let child = spawn_run(&data, &drill, &[]);
    halts_and_reverts(child, &victim, Signal::SIGHUP, "run").await;
    assert_eq!(last_status(&data), "halted");
    // The id as `history` shows it (the first column).
    let listing = cmd(&data, &["history", "--limit", "1"]);
    let original = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let child = firedrill(&data)
            .args(["replay", &original])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = halts_and_reverts(child, &victim, sig, "replay").await;
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("HALTED"),
            "{}",
            text(&out)
        );
        assert_eq!(last_status(&data), "halted", "replay {sig}");
    }
    // Nothing is left in the ledger: a later engine has nothing to recover.
    let o = cmd(&data, &["recover"]);
    assert!(!text(&o).contains("recovered:"), "{}", text(&o));
    victim.kill().unwrap();
    victim.wait().unwrap();
}

/// A real terminal hanging up: `firedrill run` is the session leader on a
/// pseudo-terminal (python's `pty.fork`), and the terminal's other end is
/// closed while a process is paused. The kernel sends SIGHUP, every later
/// write to the terminal fails with EIO, and the run must still revert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_that_hangs_up_halts_the_run_and_reverts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut victim, drill) = pauser_drill(dir.path(), "", "");
    const SCRIPT: &str = r#"
import os, pty, select, sys, time
exe, drill = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(exe, [exe, "run", drill])
seen, deadline = b"", time.time() + 30
while b"paused" not in seen and time.time() < deadline:
    if select.select([fd], [], [], 0.5)[0]:
        try:
            seen += os.read(fd, 4096)
        except OSError:
            break
os.close(fd)
_, status = os.waitpid(pid, 0)
print("exit", os.waitstatus_to_exitcode(status))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT, env!("CARGO_BIN_EXE_firedrill")])
        .arg(&drill)
        .env("FIREDRILL_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "exit 4",
        "{}",
        text(&out)
    );
    assert_ne!(proc_state(victim.id()), Some('T'), "reverted");
    assert_eq!(last_status(&data), "halted");
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_halts_on_sigterm_and_runs_no_further_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = firedrill(&data)
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Halt it while its first scenario runs.
    assert!(
        eventually(Duration::from_secs(30), || {
            std::fs::read_dir(data.join("scenarios")).is_ok_and(|mut d| d.next().is_some())
        })
        .await,
        "the demo never started a run"
    );
    signal(&child, Signal::SIGTERM);
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(4), "{stdout}");
    let o = cmd(&data, &["history", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "no scenario starts after the halt: {runs:?}");
    assert_eq!(runs[0]["status"], "halted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_holds_in_the_data_dir_until_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut victim, drill) = pauser_drill(dir.path(), "hold = \"10ms\"", "");
    // No engine is running: the halt is stored, not lost.
    let o = cmd(&data, &["halt"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("new runs are refused until `firedrill resume`"),
        "{}",
        text(&o)
    );
    // A later run is refused before it touches anything, and says why.
    let o = cmd(&data, &["run", drill.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("firedrill is halted"), "{}", text(&o));
    assert!(text(&o).contains("firedrill resume"), "{}", text(&o));
    assert_ne!(proc_state(victim.id()), Some('T'));
    // history and show say it too.
    let o = cmd(&data, &["history"]);
    assert!(
        text(&o).contains("HALTED: firedrill is halted"),
        "{}",
        text(&o)
    );
    // resume lifts it, once.
    let o = cmd(&data, &["resume"]);
    assert!(
        text(&o).contains("resumed: new runs are accepted"),
        "{}",
        text(&o)
    );
    let o = cmd(&data, &["resume"]);
    assert!(text(&o).contains("was not halted"), "{}", text(&o));
    let o = cmd(&data, &["run", drill.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = cmd(&data, &["history"]);
    assert!(!text(&o).contains("HALTED"), "{}", text(&o));
    // A halt in force shows on a run's page too.
    cmd(&data, &["halt"]);
    let o = cmd(&data, &["show", &last_run(&data)]);
    assert!(
        text(&o).contains("HALTED: firedrill is halted"),
        "{}",
        text(&o)
    );
    cmd(&data, &["resume"]);
    victim.kill().unwrap();
    victim.wait().unwrap();
}
