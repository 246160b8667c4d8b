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

    let mut spec = auth_outage(engine, targets);
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

/// A run of the bundled `auth-outage` scenario on `targets`.
fn auth_outage(
    engine: &firedrill::Engine,
    targets: &std::sync::Arc<firedrill::targets::TargetSet>,
) -> RunSpec {
    let bundled = firedrill::bundled::get("auth-outage").unwrap();
    let mut spec = RunSpec::new(engine.load(bundled, "auth-outage").unwrap());
    spec.targets = targets.clone();
    spec
}

async fn outage_against_recording_upstream(
    mode: &str,
) -> (firedrill::history::Run, Vec<firedrill_tests::Seen>) {
    let upstream = Upstream::start("secret-token").await;
    let engine = EngineBuilder::new().build().unwrap();
    let drill = demo_drill(Some(upstream.addr), "");
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let mut spec = auth_outage(&engine, &targets);
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

/// `restart` terminates a supervised process and starts it again even
/// under `restart = "never"`; an attached process cannot be restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replaces_a_supervised_process_and_refuses_an_attached_one() {
    let engine = EngineBuilder::new().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut attached, pid_file) = victim(dir.path());
    let text = format!(
        "[targets.box]\nkind = \"process\"\ncommand = \"sleep\"\nargs = [\"300\"]\nrestart = \"never\"\ngrants = [\"restart\"]\n[targets.other]\nkind = \"process\"\npid_file = \"{}\"\ngrants = [\"restart\"]\n",
        pid_file.display()
    );
    let drill = firedrill::Drill::parse(&text, std::path::Path::new("restart.toml")).unwrap();
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let Some(Target::Process(boxed)) = targets.get("box") else {
        panic!("box is a process target")
    };
    let old = boxed.pid().unwrap();
    let component = engine.load(firedrill_tests::PROCESS, "process").unwrap();
    let mut spec = RunSpec::new(component.clone());
    spec.targets = targets.clone();
    spec.params = params(&[("target", "box")]);
    let run = engine.run(spec).await.unwrap();
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
    let new = boxed.pid().unwrap();
    assert_ne!(new, old, "a new process runs");
    assert!(!old.is_alive(), "the old one is gone");
    assert_eq!(boxed.restarts(), 1);

    let mut spec = RunSpec::new(component);
    spec.targets = targets.clone();
    spec.params = params(&[("target", "other")]);
    let run = engine.run(spec).await.unwrap();
    assert_ne!(run.status, RunStatus::Passed);
    let text = format!("{run:?}");
    assert!(text.contains("is attached, not spawned"), "{text}");
    assert!(
        proc_state(attached.id()).is_some_and(|s| s != 'Z'),
        "left alone"
    );
    attached.kill().unwrap();
    attached.wait().unwrap();
    targets.shutdown().await;
}

/// The stress child of a running `firedrill run`, found from outside.
fn stress_child(engine: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid: u32 = stat[stat.rfind(')')? + 2..]
            .split(' ')
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == engine && String::from_utf8_lossy(&cmdline).contains("stress-child"))
            .then_some(pid)
    })
}

/// CPU time of a process in clock ticks (utime + stime).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    Some(fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// A directory for disk fills on a file system of its own when the machine
/// has one (/dev/shm): a fill must leave 5 % of its file system free, and a
/// build machine's disk is often fuller than that, which would refuse the
/// fill for reasons that have nothing to do with the test.
fn fill_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    match shm.is_dir() {
        true => tempfile::tempdir_in(shm).unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

/// What a run that should still be running said: it is stopped first.
fn ended(mut engine: std::process::Child) -> String {
    let _ = engine.kill();
    let out = engine.wait_with_output().unwrap();
    format!(
        "the run {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stress_drill(
    dir: &std::path::Path,
    fill: &std::path::Path,
    fault: &str,
    value: &str,
    hold: &str,
) -> std::path::PathBuf {
    std::fs::write(dir.join("process.wasm"), firedrill_tests::PROCESS).unwrap();
    let drill = dir.join("drill.toml");
    std::fs::write(
        &drill,
        format!(
            "[scenario]\npath = \"process.wasm\"\nparams = {{ fault = \"{fault}\", value = \"{value}\", hold = \"{hold}\" }}\n[targets.box]\nkind = \"host\"\npath = \"{}\"\ngrants = [\"cpu-stress\", \"memory-stress\", \"disk-fill\"]\n",
            fill.display()
        ),
    )
    .unwrap();
    drill
}

/// CPU, memory and disk stress from a real `firedrill run`, measured on
/// the child from /proc: the load is there during the run, and the child
/// and the file are gone after it.
#[tokio::test]
async fn stress_loads_the_host_from_a_child_that_is_gone_after_the_run() {
    const MIB: u64 = 1 << 20;
    for (fault, value) in [("cpu", "1"), ("memory", "64000000"), ("disk", "8388608")] {
        let dir = tempfile::tempdir().unwrap();
        let fill = fill_dir();
        let drill = stress_drill(dir.path(), fill.path(), fault, value, "2s");
        let engine = spawn_run(&dir.path().join("data"), &drill, &[]);
        let mut child = None;
        eventually(Duration::from_secs(20), || {
            child = stress_child(engine.id());
            child.is_some()
        })
        .await;
        let Some(child) = child else {
            panic!("{fault}: no stress child ran; {}", ended(engine));
        };
        let file = fill.path();
        match fault {
            "cpu" => {
                // One core at 50 %: about half the wall time.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let before = cpu_ticks(child).unwrap();
                tokio::time::sleep(Duration::from_millis(1000)).await;
                let used = cpu_ticks(child).unwrap() - before;
                assert!((25..=80).contains(&used), "cpu: {used} ticks of 100 in 1 s");
            }
            "memory" => {
                assert!(
                    eventually(Duration::from_secs(5), || rss_bytes(child)
                        .is_some_and(|r| r >= 64_000_000))
                    .await,
                    "memory: resident {:?} MiB",
                    rss_bytes(child).map(|r| r / MIB)
                );
            }
            _ => {
                let size = || {
                    std::fs::read_dir(file)
                        .unwrap()
                        .flatten()
                        .map(|e| e.metadata().unwrap().len())
                        .sum::<u64>()
                };
                assert!(
                    eventually(Duration::from_secs(5), || size() == 8 * MIB).await,
                    "disk: {} bytes written",
                    size()
                );
            }
        }
        let out = engine.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{fault}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            proc_state(child).is_none(),
            "{fault}: the child is gone, not left running or as a zombie"
        );
        assert_eq!(
            std::fs::read_dir(file).unwrap().count(),
            0,
            "{fault}: no file left"
        );
    }
}

/// SIGKILL the engine during a disk fill: the child dies with it, and
/// `firedrill recover` deletes the file from the ledger.
#[tokio::test]
async fn a_killed_engines_disk_fill_is_deleted_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let fill_dir = fill_dir();
    let fill = fill_dir.path();
    let drill = stress_drill(dir.path(), fill, "disk", "4194304", "2m");
    let data = dir.path().join("data");
    let mut engine = spawn_run(&data, &drill, &[]);
    let written = || {
        std::fs::read_dir(fill)
            .unwrap()
            .flatten()
            .any(|e| e.metadata().unwrap().len() == 4 << 20)
    };
    if !eventually(Duration::from_secs(20), written).await {
        panic!("no 4 MiB file was written; {}", ended(engine));
    }
    let child = stress_child(engine.id()).expect("the stress child runs");
    signal(&engine, nix::sys::signal::Signal::SIGKILL);
    engine.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || proc_state(child).is_none()).await,
        "the child died with the engine"
    );
    assert!(written(), "the file outlives the engine until recovery");
    let out = firedrill(&data).arg("recover").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(fill).unwrap().count(),
        0,
        "recovery deleted it"
    );
}

/// A disk fill that would leave less than 5 % of its file system free is
/// refused before anything is written, and the refusal says how much was
/// asked, how much would be left, and where.
#[tokio::test]
async fn a_disk_fill_that_would_fill_the_file_system_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fill = fill_dir();
    let fs = nix::sys::statvfs::statvfs(fill.path()).unwrap();
    let free = fs.blocks_available() * fs.fragment_size();
    let drill = stress_drill(dir.path(), fill.path(), "disk", &free.to_string(), "2s");
    let out = spawn_run(&dir.path().join("data"), &drill, &[])
        .wait_with_output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("disk-fill of {} MiB on target `box`", free >> 20))
            && said.contains("it must leave 5 %: ask for at most")
            && said.contains(&fill.path().display().to_string()),
        "{said}"
    );
    assert_eq!(
        std::fs::read_dir(fill.path()).unwrap().count(),
        0,
        "nothing was written"
    );
}
