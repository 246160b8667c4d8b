//! Services are process trees, and steady state sees what users care about
//! (issue 14, items 4-7): a pre-fork server (a master and workers sharing
//! one listening socket, as nginx or gunicorn run) is paused, killed and
//! stopped as a whole; its output's tail explains why it did not start; a
//! `tcp = { send, expect }` check fails against a paused service where a
//! bare connect passes, and within its `max_latency`.

use crate::support::*;
use firedrill::history::{EventKind, Phase, RunStatus};
use firedrill::{EngineBuilder, RunSpec};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

/// A master that binds, forks `n` workers which accept on the shared
/// socket and answer every request with a tiny HTTP response whose body is
/// `+PONG`, and then only waits (it serves nothing itself).
const PREFORK: &str = r#"
import os, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
print("master", os.getpid(), "serving on", port, flush=True)
for i in range(n):
    if os.fork() == 0:
        while True:
            c, _ = s.accept()
            try:
                c.recv(1024)
                c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\n+PONG\r\n")
            except OSError:
                pass  # a client that connected and left (a readiness check)
            c.close()
while True:
    time.sleep(1)
"#;

fn prefork_drill(port: u16, extra: &str) -> firedrill::Drill {
    let text = format!(
        r#"[targets.svc]
kind = "process"
command = "python3"
args = ["-c", {script:?}, "{port}", "3"]
address = "127.0.0.1:{port}"
ready = {{ tcp = true }}
restart = "always"
grants = ["pause", "kill", "restart"]
{extra}"#,
        script = PREFORK
    );
    firedrill::Drill::parse(&text, Path::new("prefork.toml")).unwrap()
}

/// Every live process whose process group is `pgid`.
fn group(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                let f: Vec<&str> = s[s.rfind(')').unwrap() + 2..].split(' ').collect();
                f[2] == pgid.to_string() && f[0] != "Z"
            })
        })
        .collect()
}

/// A run of the component `bytes` on `targets` with `params`.
fn run_spec(
    engine: &firedrill::Engine,
    bytes: &[u8],
    targets: &std::sync::Arc<firedrill::targets::TargetSet>,
    params: &[(&str, &str)],
) -> RunSpec {
    let mut spec = RunSpec::new(engine.load(bytes, "scenario").unwrap());
    spec.targets = targets.clone();
    spec.params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    spec
}

fn master(targets: &firedrill::targets::TargetSet) -> u32 {
    match targets.get("svc") {
        Some(firedrill::targets::Target::Process(p)) => p.pid().unwrap().pid,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_the_master_and_every_worker_and_a_line_check_sees_it() {
    let engine = EngineBuilder::new().build().unwrap();
    let port = free_port();
    let drill = prefork_drill(
        port,
        r#"
[[steady_state]]
name = "pong"
target = "svc"
tcp = { send = "PING\r\n", expect = "+PONG" }
max_latency = "300ms"
phases = ["during"]
interval = "200ms"
on_violation = "record"

[[steady_state]]
name = "connect"
target = "svc"
tcp = true
phases = ["during"]
interval = "200ms"
on_violation = "record"
"#,
    );
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let leader = master(&targets);
    // The master listens (ready) before it forks its workers.
    assert!(eventually(Duration::from_secs(5), || group(leader).len() == 4).await);
    let tree = group(leader);

    let mut spec = run_spec(
        &engine,
        firedrill_tests::PAUSER,
        &targets,
        &[("target", "svc"), ("hold", "1500ms")],
    );
    spec.checks = drill.checks.clone();
    let handle = engine.start(spec).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || tree.iter().all(|p| proc_state(
            *p
        ) == Some(
            'T'
        )))
        .await,
        "every process of the tree is stopped: {:?}",
        tree.iter().map(|p| (p, proc_state(*p))).collect::<Vec<_>>()
    );
    let run = handle.wait().await;
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
    assert!(
        tree.iter().all(|p| proc_state(*p) != Some('T')),
        "all continued after the run"
    );

    let timeline = engine.history().timeline(run.id).unwrap();
    let checks = |name: &str| -> Vec<(bool, String)> {
        timeline
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Check {
                    name: n,
                    phase: Phase::During,
                    ok,
                    detail,
                } if n == name => Some((*ok, detail.clone())),
                _ => None,
            })
            .collect()
    };
    // The kernel still accepts for a stopped server: a bare connect passes.
    assert!(checks("connect").iter().all(|(ok, _)| *ok), "{timeline:#?}");
    // The exchange does not, and says so within its bound, not after 5 s
    // (a check that began just before the resume may get its answer just
    // past the bound, and says that).
    let pong = checks("pong");
    let failed: Vec<_> = pong.iter().filter(|(ok, _)| !ok).collect();
    assert!(
        failed.iter().any(|(_, d)| d.contains("within 300ms")),
        "{pong:?}"
    );
    let just_late = |d: &str| {
        d.split_once("\" in ")
            .and_then(|(_, rest)| rest.split_once("ms, over the 300.0ms bound"))
            .and_then(|(ms, _)| ms.parse::<f64>().ok())
            .is_some_and(|ms| ms < 400.0)
    };
    assert!(
        failed
            .iter()
            .all(|(_, d)| d.contains("within 300ms") || just_late(d)),
        "{failed:?}"
    );
    // And it answers again once reverted.
    let answer = firedrill::probe::tcp_exchange(
        &format!("127.0.0.1:{port}"),
        b"PING\r\n",
        b"+PONG",
        Duration::from_secs(2),
    )
    .await;
    assert!(answer.is_ok(), "{answer:?}");
    targets.shutdown().await;
    assert!(
        eventually(Duration::from_secs(5), || group(leader).is_empty()).await,
        "shutdown stops every worker too: {:?}",
        group(leader)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_takes_the_workers_too_so_the_restarted_master_can_bind() {
    let engine = EngineBuilder::new().build().unwrap();
    let port = free_port();
    let drill = prefork_drill(port, "");
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let leader = master(&targets);
    assert!(eventually(Duration::from_secs(5), || group(leader).len() == 4).await);
    let old = group(leader);
    let spec = run_spec(
        &engine,
        firedrill::bundled::get("kill-and-recover").unwrap(),
        &targets,
        &[("target", "svc"), ("probe_target", "svc"), ("path", "/")],
    );
    let run = engine.run(spec).await.unwrap();
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
    assert!(
        eventually(Duration::from_secs(5), || old
            .iter()
            .all(|p| proc_state(*p).is_none_or(|s| s == 'Z')))
        .await,
        "no worker of the killed master is left: {:?}",
        old.iter().map(|p| (p, proc_state(*p))).collect::<Vec<_>>()
    );
    // The supervisor's new master bound the port and serves, with workers.
    assert!(
        eventually(Duration::from_secs(5), || {
            let m = master(&targets);
            !old.contains(&m) && group(m).len() == 4
        })
        .await
    );
    let answer = firedrill::probe::tcp_exchange(
        &format!("127.0.0.1:{port}"),
        b"GET / HTTP/1.1\r\n\r\n",
        b"+PONG",
        Duration::from_secs(2),
    )
    .await;
    assert!(answer.is_ok(), "{answer:?}");
    // Restarted once, not crash-looping on a port the old workers hold.
    if let Some(firedrill::targets::Target::Process(p)) = targets.get("svc") {
        assert_eq!(p.restarts(), 1);
    }
    targets.shutdown().await;
}

/// A restart stops the whole tree and starts it again: the new master
/// binds the port (no worker of the old one holds it) and has its workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replaces_the_master_and_every_worker() {
    let engine = EngineBuilder::new().build().unwrap();
    let port = free_port();
    let drill = prefork_drill(port, "");
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let leader = master(&targets);
    assert!(eventually(Duration::from_secs(5), || group(leader).len() == 4).await);
    let old = group(leader);
    let spec = run_spec(
        &engine,
        firedrill::bundled::get("restart-under-load").unwrap(),
        &targets,
        &[
            ("service", "svc"),
            ("probe", "http"),
            ("probe_target", "svc"),
            ("path", "/"),
            ("restarts", "2"),
            ("between", "200ms"),
        ],
    );
    let run = engine.run(spec).await.unwrap();
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
    assert!(
        old.iter().all(|p| proc_state(*p).is_none_or(|s| s == 'Z')),
        "no process of the first tree is left: {:?}",
        old.iter().map(|p| (p, proc_state(*p))).collect::<Vec<_>>()
    );
    let now = master(&targets);
    assert!(!old.contains(&now));
    assert!(eventually(Duration::from_secs(5), || group(now).len() == 4).await);
    targets.shutdown().await;
    assert!(eventually(Duration::from_secs(5), || group(now).is_empty()).await);
}

/// An attached service (`pid_file`) outside any cgroup of its own is paused
/// as its process and every descendant, and continued whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_of_an_attached_service_stops_its_descendants() {
    let port = free_port();
    let mut service = std::process::Command::new("python3")
        .args(["-c", PREFORK, &port.to_string(), "3"])
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let leader = service.id();
    // Its whole group goes, pass or fail.
    let _group = KillGroup(leader);
    // Python is running once it says so: until then the group may hold a
    // launcher's helpers (pyenv's shim runs a few), which a count of the
    // group would take for workers.
    let mut said = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(service.stdout.take().unwrap()),
        &mut said,
    )
    .unwrap();
    assert!(said.starts_with("master"), "{said:?}");
    assert!(eventually(Duration::from_secs(10), || group(leader).len() == 4).await);
    let tree = group(leader);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("svc.pid");
    std::fs::write(&pid_file, leader.to_string()).unwrap();
    let engine = EngineBuilder::new().build().unwrap();
    let text = format!(
        "[targets.svc]\nkind = \"process\"\npid_file = \"{}\"\naddress = \"127.0.0.1:{port}\"\nready = {{ tcp = true }}\ngrants = [\"pause\"]\n",
        pid_file.display()
    );
    let drill = firedrill::Drill::parse(&text, Path::new("attached.toml")).unwrap();
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let handle = engine
        .start(run_spec(
            &engine,
            firedrill_tests::PAUSER,
            &targets,
            &[("target", "svc"), ("hold", "1s")],
        ))
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || tree.iter().all(|p| proc_state(
            *p
        ) == Some(
            'T'
        )))
        .await,
        "the attached master and its workers are stopped: {:?}",
        tree.iter().map(|p| (p, proc_state(*p))).collect::<Vec<_>>()
    );
    let run = handle.wait().await;
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
    assert!(
        tree.iter()
            .all(|p| proc_state(*p).is_some_and(|s| s != 'T')),
        "all continued after the run: {:?}",
        tree.iter().map(|p| (p, proc_state(*p))).collect::<Vec<_>>()
    );
    let entries = engine.ledger().entries(run.id).unwrap();
    match &entries[0].undo {
        firedrill::ledger::Undo::Continue { processes, .. } => {
            assert_eq!(
                processes.len(),
                4,
                "the ledger names every process: {processes:?}"
            )
        }
        other => panic!("continue every process: {other:?}"),
    }
    targets.shutdown().await;
    drop(_group);
    service.wait().unwrap();
}

/// SIGKILLs a process group when dropped.
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0 as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Through a TCP proxy whose upstream is dead, a bare connect passes (the
/// proxy accepts) while a line-protocol check fails within its bound; the
/// check's bytes can be given as hex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_check_through_a_proxy_sees_a_dead_upstream() {
    let engine = EngineBuilder::new().build().unwrap();
    let dead = free_port();
    let text = format!(
        r#"[targets.link]
kind = "proxy"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{dead}"

[[steady_state]]
name = "pong"
target = "link"
tcp = {{ send_hex = "50494e470d0a", expect_hex = "2b504f4e47" }}
max_latency = "300ms"
phases = ["during"]
interval = "100ms"
on_violation = "record"

[[steady_state]]
name = "connect"
target = "link"
tcp = true
phases = ["during"]
interval = "100ms"
on_violation = "record"
"#
    );
    let drill = firedrill::Drill::parse(&text, Path::new("link.toml")).unwrap();
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let mut spec = run_spec(
        &engine,
        firedrill_tests::SLEEPER,
        &targets,
        &[("hold", "700ms")],
    );
    spec.checks = drill.checks.clone();
    let run = engine.run(spec).await.unwrap();
    let timeline = engine.history().timeline(run.id).unwrap();
    let checks = |name: &str| -> Vec<(bool, String)> {
        timeline
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Check {
                    name: n,
                    ok,
                    detail,
                    ..
                } if n == name => Some((*ok, detail.clone())),
                _ => None,
            })
            .collect()
    };
    let (connect, pong) = (checks("connect"), checks("pong"));
    assert!(
        !connect.is_empty() && connect.iter().all(|(ok, _)| *ok),
        "{connect:?}"
    );
    assert!(
        !pong.is_empty() && pong.iter().all(|(ok, _)| !ok),
        "{pong:?}"
    );
    targets.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_fails_to_start_shows_its_own_error() {
    let engine = EngineBuilder::new().build().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // restart = "never": the master dies on bind, and that is reported at
    // once with what Python printed, not after the readiness timeout.
    let text = format!(
        r#"[targets.svc]
kind = "process"
command = "python3"
args = ["-c", {PREFORK:?}, "{port}", "1"]
address = "127.0.0.1:{port}"
ready = {{ http = "/" }}
ready_timeout = "30s"
"#
    );
    let drill = firedrill::Drill::parse(&text, Path::new("busy.toml")).unwrap();
    let started = std::time::Instant::now();
    let err = engine.start_targets(&drill.targets).await.unwrap_err();
    assert!(err.contains("exited before it was ready"), "{err}");
    assert!(err.contains("Address already in use"), "{err}");
    assert!(err.contains("its last output:"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_exits_during_a_run_leaves_its_output_in_the_timeline() {
    let engine = EngineBuilder::new().build().unwrap();
    let port = free_port();
    let drill = prefork_drill(port, "");
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let spec = run_spec(
        &engine,
        firedrill::bundled::get("kill-and-recover").unwrap(),
        &targets,
        &[("target", "svc"), ("probe", "svc"), ("path", "/")],
    );
    let run = engine.run(spec).await.unwrap();
    let timeline = engine.history().timeline(run.id).unwrap();
    let said = timeline.iter().find_map(|e| match &e.kind {
        EventKind::Log { message, .. } if message.starts_with("target `svc` exited") => {
            Some(message.clone())
        }
        _ => None,
    });
    let said = said.unwrap_or_else(|| panic!("{timeline:#?}"));
    assert!(said.contains("signal: 9"), "{said}");
    // This drill says `probe = "svc"`, as drills did before `probe` chose
    // the protocol: still probed over HTTP, with a warning saying how to
    // write it now.
    assert!(
        timeline.iter().any(|e| matches!(&e.kind,
            EventKind::Log { message, .. } if message.contains("write `probe_target = \"svc\"`"))),
        "{timeline:#?}"
    );
    assert!(said.contains("| master"), "its own output: {said}");
    targets.shutdown().await;
}

/// Every live `python3` process whose command line contains `needle` (not
/// the keeper in front of it, whose command line holds the same words).
fn by_cmdline(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let line = String::from_utf8_lossy(&c).replace('\0', " ");
                line.contains("python3 -c") && !line.contains(" keep -- ") && line.contains(needle)
            }) && proc_state(*pid).is_some_and(|s| s != 'Z')
        })
        .collect()
}

/// The engine SIGKILLed while a spawned pre-fork service is paused: its
/// keeper takes the master and every worker with it, stopped or not, and
/// the next firedrill finds nothing to recover for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_death_takes_a_spawned_services_workers_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(dir.path().join("pauser.wasm"), firedrill_tests::PAUSER).unwrap();
    let port = free_port();
    let marker = format!("{port} 3");
    let drill = dir.path().join("drill.toml");
    std::fs::write(
        &drill,
        format!(
            r#"[scenario]
path = "pauser.wasm"
params = {{ target = "svc", hold = "60s" }}
[targets.svc]
kind = "process"
command = "python3"
args = ["-c", {PREFORK:?}, "{port}", "3"]
address = "127.0.0.1:{port}"
ready = {{ tcp = true }}
grants = ["pause"]
"#
        ),
    )
    .unwrap();
    let mut engine = spawn_run(&data, &drill, &[]);
    let stopped = eventually(Duration::from_secs(20), || {
        let all = by_cmdline(&marker);
        all.len() == 4 && all.iter().all(|p| proc_state(*p) == Some('T'))
    })
    .await;
    if !stopped {
        let _ = engine.kill();
        let out = engine.wait_with_output().unwrap();
        panic!(
            "the master and 3 workers were never all paused: {:?}\n{}{}",
            by_cmdline(&marker),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    signal(&engine, nix::sys::signal::Signal::SIGKILL);
    engine.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || by_cmdline(&marker).is_empty()).await,
        "left behind: {:?}",
        by_cmdline(&marker)
            .iter()
            .map(|p| (p, proc_state(*p)))
            .collect::<Vec<_>>()
    );
    // A dying process drops its cmdline (exit_mm) before its sockets
    // (exit_files), so the port frees a moment after the check above.
    let port_free = eventually(Duration::from_secs(5), || {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(port_free, "the service's port is free again");
}

/// An attached service that lives in a cgroup of its own (as a systemd unit
/// or a container does) is paused by freezing the cgroup, as container
/// platforms pause a service: every process in it stops at once, the
/// ledger knows how to thaw it after a crash, and the revert thaws it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_freezes_the_cgroup_an_attached_service_lives_in() {
    pause_freezes_a_cgroup(Cgroups::V2).await;
}

/// The same with cgroup v1's `freezer` controller (older hosts, and
/// container runtimes still on v1), when the service's v2 cgroup is the
/// root's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_freezes_a_cgroup_v1_freezer_an_attached_service_lives_in() {
    pause_freezes_a_cgroup(Cgroups::V1Freezer).await;
}

#[derive(Clone, Copy, PartialEq)]
enum Cgroups {
    V2,
    V1Freezer,
}

async fn pause_freezes_a_cgroup(version: Cgroups) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = info
        .lines()
        .find(|l| match version {
            Cgroups::V2 => l.contains(" - cgroup2 "),
            Cgroups::V1Freezer => {
                l.contains(" - cgroup ")
                    && l.rsplit(' ')
                        .next()
                        .is_some_and(|o| o.split(',').any(|o| o == "freezer"))
            }
        })
        .and_then(|l| l.split(' ').nth(4));
    let mount = match (mount, version) {
        (Some(m), _) => m,
        // v1 is legacy: a host with cgroup v2 alone has no freezer
        // controller to test (this project's machines have both).
        (None, Cgroups::V1Freezer) => {
            eprintln!("skipped: no cgroup v1 freezer hierarchy is mounted on this host");
            return;
        }
        (None, Cgroups::V2) => panic!("a cgroup v2 hierarchy is mounted"),
    };
    let cgroup = std::path::PathBuf::from(mount).join(format!(
        "firedrill-test-{}-{}",
        std::process::id(),
        version as u8
    ));
    std::fs::create_dir_all(&cgroup).expect("root can create a cgroup");
    let port = free_port();
    // The shell moves itself into the cgroup, then becomes the master: its
    // workers are born inside.
    let mut service = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec python3 -c \"$0\" {port} 3",
            cgroup.display()
        ))
        .arg(PREFORK)
        .spawn()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("svc.pid");
    std::fs::write(&pid_file, service.id().to_string()).unwrap();
    let procs = || -> Vec<u32> {
        std::fs::read_to_string(cgroup.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    };
    assert!(eventually(Duration::from_secs(10), || procs().len() == 4).await);

    let engine = EngineBuilder::new().build().unwrap();
    let text = format!(
        r#"[targets.svc]
kind = "process"
pid_file = "{}"
address = "127.0.0.1:{port}"
ready = {{ tcp = true }}
grants = ["pause"]
"#,
        pid_file.display()
    );
    let drill = firedrill::Drill::parse(&text, Path::new("cgroup.toml")).unwrap();
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let spec = run_spec(
        &engine,
        firedrill_tests::PAUSER,
        &targets,
        &[("target", "svc"), ("hold", "1s")],
    );
    let handle = engine.start(spec).unwrap();
    let frozen = || match version {
        Cgroups::V2 => std::fs::read_to_string(cgroup.join("cgroup.events"))
            .is_ok_and(|e| e.lines().any(|l| l == "frozen 1")),
        Cgroups::V1Freezer => std::fs::read_to_string(cgroup.join("freezer.state"))
            .is_ok_and(|s| s.trim() == "FROZEN"),
    };
    assert!(
        eventually(Duration::from_secs(10), frozen).await,
        "the cgroup froze"
    );
    let during = firedrill::probe::tcp_exchange(
        &format!("127.0.0.1:{port}"),
        b"PING\r\n",
        b"+PONG",
        Duration::from_millis(300),
    )
    .await;
    assert!(
        during.is_err(),
        "a frozen service does not answer: {during:?}"
    );
    let run = handle.wait().await;
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
    assert!(!frozen(), "thawed by the revert");
    let entries = engine.ledger().entries(run.id).unwrap();
    match &entries[0].undo {
        firedrill::ledger::Undo::Thaw { freezer } => {
            assert_eq!(freezer.dir(), cgroup, "the service's own cgroup")
        }
        other => panic!("the ledger can thaw it after a crash: {other:?}"),
    }
    let after = firedrill::probe::tcp_exchange(
        &format!("127.0.0.1:{port}"),
        b"PING\r\n",
        b"+PONG",
        Duration::from_secs(2),
    )
    .await;
    assert!(after.is_ok(), "{after:?}");
    for pid in procs() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    service.wait().unwrap();
    assert!(eventually(Duration::from_secs(5), || procs().is_empty()).await);
    std::fs::remove_dir(&cgroup).unwrap();
}

/// A real master/worker web server (Debian's nginx, installed on first
/// use, `daemon off` with two workers) as a spawned target: `pause` stops
/// the master and both workers, so a real client gets no answer; `kill`
/// takes the workers too, so the restarted master binds its port again;
/// shutdown leaves no nginx process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_master_and_workers_are_paused_and_killed_as_one_service() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (nginx, args) = firedrill_tests::nginx(dir.path(), port);
    let text = format!(
        r#"[targets.web]
kind = "process"
command = "{}"
args = {args:?}
address = "127.0.0.1:{port}"
ready = {{ http = "/" }}
restart = "always"
grants = ["pause", "kill"]
"#,
        nginx.display()
    );
    let drill = firedrill::Drill::parse(&text, Path::new("nginx.toml")).unwrap();
    let engine = EngineBuilder::new().build().unwrap();
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let web = |targets: &firedrill::targets::TargetSet| match targets.get("web") {
        Some(firedrill::targets::Target::Process(p)) => p.pid().unwrap().pid,
        _ => unreachable!(),
    };
    let leader = web(&targets);
    assert!(eventually(Duration::from_secs(5), || group(leader).len() == 3).await);
    let old = group(leader);

    let spec = run_spec(
        &engine,
        firedrill_tests::PAUSER,
        &targets,
        &[("target", "web"), ("hold", "1s")],
    );
    let handle = engine.start(spec).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || old.iter().all(|p| proc_state(
            *p
        ) == Some(
            'T'
        )))
        .await,
        "master and workers stopped"
    );
    let mut get = firedrill::probe::HttpProbe::get("/");
    get.timeout = Duration::from_millis(300);
    let during = firedrill::probe::http(&format!("127.0.0.1:{port}"), &get).await;
    assert!(
        during.is_err(),
        "a paused nginx answers nothing: {during:?}"
    );
    let run = handle.wait().await;
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");

    let spec = run_spec(
        &engine,
        firedrill::bundled::get("kill-and-recover").unwrap(),
        &targets,
        &[("target", "web"), ("probe_target", "web"), ("path", "/")],
    );
    let run = engine.run(spec).await.unwrap();
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
    assert!(
        eventually(Duration::from_secs(5), || old
            .iter()
            .all(|p| proc_state(*p).is_none_or(|s| s == 'Z')))
        .await,
        "no old worker left"
    );
    let answer = firedrill::probe::http(
        &format!("127.0.0.1:{port}"),
        &firedrill::probe::HttpProbe::get("/"),
    )
    .await;
    assert_eq!(answer.map(|a| a.status), Ok(200), "the new master serves");
    let leader = web(&targets);
    targets.shutdown().await;
    assert!(
        eventually(Duration::from_secs(5), || group(leader).is_empty()).await,
        "shutdown leaves no nginx process"
    );
}
