//! The command line: bad input gets errors that name the file, line or
//! field; exit codes are pinned; Ctrl-C halts and reverts.

use crate::support::*;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn run(data: &Path, args: &[&str]) -> Output {
    firedrill(data).args(args).output().unwrap()
}

use crate::support::text;

/// Run `args`; assert the exit code and that the output names `needle`.
fn fails_with(data: &Path, args: &[&str], code: i32, needle: &str) {
    let o = run(data, args);
    assert_eq!(o.status.code(), Some(code), "{}", text(&o));
    assert!(text(&o).contains(needle), "{}", text(&o));
}

#[test]
fn exit_codes_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let seeded = write(dir.path(), "seeded.wasm", firedrill_tests::SEEDED);
    let o = run(&data, &["run", seeded.to_str().unwrap(), "--seed", "3"]);
    assert_eq!(o.status.code(), Some(0), "pass: {}", text(&o));

    let over = write(dir.path(), "overreach.wasm", firedrill_tests::OVERREACH);
    let o = run(&data, &["run", over.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "failed verdict: {}", text(&o));

    write(dir.path(), "spin.wasm", firedrill_tests::SPIN);
    let drill = write(
        dir.path(),
        "spin.toml",
        b"[scenario]\npath = \"spin.wasm\"\n[limits]\ntimeout = \"300ms\"\n",
    );
    let o = run(&data, &["run", drill.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "aborted: {}", text(&o));
    assert!(
        text(&o).contains("time limit of 300ms exceeded"),
        "{}",
        text(&o)
    );

    let closed = free_port();
    let drill = write(
        dir.path(),
        "steady.toml",
        format!(
            "[scenario]\npath = \"seeded.wasm\"\n[targets.db]\nkind = \"process\"\ncommand = \"sleep\"\nargs = [\"30\"]\naddress = \"127.0.0.1:{closed}\"\n[[steady_state]]\nname = \"db up\"\ntarget = \"db\"\ntcp = true\n"
        )
        .as_bytes(),
    );
    let o = run(&data, &["run", drill.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "steady state violated: {}",
        text(&o)
    );
    assert!(
        text(&o).contains("steady state `db up` failed before the run"),
        "{}",
        text(&o)
    );

    let o = run(&data, &["run", "missing.toml"]);
    assert_eq!(o.status.code(), Some(64), "config error: {}", text(&o));
    let o = run(&data, &["frobnicate"]);
    assert_eq!(o.status.code(), Some(64), "usage error: {}", text(&o));
}

#[test]
fn bad_input_names_the_file_line_or_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let junk = write(dir.path(), "junk.wasm", b"this is not wasm");
    fails_with(
        &data,
        &["run", junk.to_str().unwrap()],
        64,
        "junk.wasm: not a WebAssembly component (starts with bytes 74 68 69 73 …; expected `\\0asm`)",
    );

    let drill = write(
        dir.path(),
        "bad.toml",
        b"[scenario]\nbundled = \"latency-ramp\"\n\n[targets.api]\nkind = \"proces\"\n",
    );
    fails_with(
        &data,
        &["run", drill.to_str().unwrap()],
        64,
        "bad.toml:5: targets.api.kind: unknown variant `proces`",
    );

    // A scenario whose needs the drill does not grant is refused, with the list.
    let drill = write(
        dir.path(),
        "ungranted.toml",
        b"[scenario]\nbundled = \"latency-ramp\"\n\n[targets.api-link]\nkind = \"proxy\"\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:9\"\n",
    );
    fails_with(
        &data,
        &["run", drill.to_str().unwrap()],
        64,
        "targets.api-link.grants: the scenario needs delay on target \"api-link\": add \"delay\" to targets.api-link.grants",
    );

    // At run time an ungranted call is denied naming the grant, and an
    // unknown target is named.
    write(dir.path(), "overreach.wasm", firedrill_tests::OVERREACH);
    let drill = write(
        dir.path(),
        "over.toml",
        b"[scenario]\npath = \"overreach.wasm\"\n\n[targets.api-link]\nkind = \"proxy\"\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:9\"\n",
    );
    let o = run(&data, &["run", drill.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(
            "delay on target \"api-link\" is not granted: add \"delay\" to targets.api-link.grants"
        ),
        "{t}"
    );
    assert!(t.contains("no target named `nope`"), "{t}");

    let o = run(
        &data,
        &["run", "bundled:latency-ramp", "--param", "samples=lots"],
    );
    assert_eq!(o.status.code(), Some(64));
    assert!(
        text(&o).contains("parameter `samples` must be of type integer, got `lots`"),
        "{}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_or_sigterm_halts_the_run_and_reverts_its_faults() {
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (mut victim, drill) = pauser_drill(dir.path(), "", "");
        let child = spawn_run(&data, &drill, &[]);
        assert!(
            eventually(Duration::from_secs(20), || proc_state(victim.id())
                == Some('T'))
            .await
        );
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{sig}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("HALTED"));
        assert_ne!(
            proc_state(victim.id()),
            Some('T'),
            "{sig}: the paused process was continued"
        );
        victim.kill().unwrap();
        victim.wait().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut victim, drill) = pauser_drill(
        dir.path(),
        "hold = \"300ms\"",
        "[policy]\nmax_fault_duration = \"1m\"",
    );
    let child = spawn_run(&data, &drill, &["--dry-run"]);
    let mut paused = false;
    for _ in 0..20 {
        paused |= proc_state(victim.id()) == Some('T');
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!paused, "a dry run applies nothing");
    assert!(
        stdout.contains("plan (dry run, nothing was applied):"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pause on victim: SIGSTOP until reverted for up to 1m"),
        "{stdout}"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn inspect_shows_parameters_and_needs() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &["inspect", "bundled:latency-ramp", "--param", "link=db-link"],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.starts_with("latency-ramp 0.2.0"), "{t}");
    assert!(t.contains("slo (duration) = 250ms"), "{t}");
    assert!(
        t.contains("delay on target \"db-link\""),
        "the needs follow the parameters: {t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firedrill_halt_stops_the_running_engine_and_refuses_new_runs_until_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut victim, drill) = pauser_drill(dir.path(), "", "");
    let child = spawn_run(&data, &drill, &[]);
    assert!(
        eventually(Duration::from_secs(20), || proc_state(victim.id())
            == Some('T'))
        .await
    );
    let started = std::time::Instant::now();
    let o = run(&data, &["halt"]);
    assert!(text(&o).contains("halted 1 run(s)"), "{}", text(&o));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_ne!(proc_state(victim.id()), Some('T'), "reverted");
    assert!(started.elapsed() < Duration::from_secs(5));
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn init_and_protected_ports_are_out_of_reach_whatever_the_drill_grants() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write(dir.path(), "pauser.wasm", firedrill_tests::PAUSER);
    write(dir.path(), "init.pid", b"1");
    let drill = write(
        dir.path(),
        "init.toml",
        b"[scenario]\npath = \"pauser.wasm\"\n[targets.victim]\nkind = \"process\"\npid_file = \"init.pid\"\ngrants = [\"pause\"]\n",
    );
    // Refused before anything starts (issue 14, item 8), and `check` says
    // the same.
    fails_with(
        &data,
        &["run", drill.to_str().unwrap()],
        64,
        "init.pid names process 1, which is protected",
    );
    fails_with(
        &data,
        &["check", drill.to_str().unwrap()],
        64,
        "init.pid names process 1, which is protected",
    );
    assert_eq!(proc_state(1).map(|s| s != 'T'), Some(true));

    let drill = write(
        dir.path(),
        "port.toml",
        b"[scenario]\nbundled = \"latency-ramp\"\n[targets.api-link]\nkind = \"proxy\"\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:9\"\ngrants = [\"delay\"]\n",
    );
    let o = firedrill(&data)
        .args(["run", drill.to_str().unwrap()])
        .env("FIREDRILL_PROTECTED_PORTS", "22,9")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        text(&o).contains("targets.api-link.upstream: uses port 9, which is protected"),
        "{}",
        text(&o)
    );
}

/// Issue 14, item 8: protected ports are checked before any target starts.
/// The protected service (a real HTTP server) gets no readiness request and
/// the protected listen port is never bound; `check` reports exactly what
/// `run` refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_ports_refuse_the_run_before_any_target_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let service = firedrill_tests::Upstream::start("t").await;
    let (mut victim, victim_pid) = victim(dir.path());
    write(dir.path(), "pauser.wasm", firedrill_tests::PAUSER);
    let listen = free_port();
    let drill = write(
        dir.path(),
        "drill.toml",
        format!(
            "[scenario]\npath = \"pauser.wasm\"\nparams = {{ target = \"svc\" }}\n\
             [targets.svc]\nkind = \"process\"\npid_file = \"{}\"\naddress = \"{}\"\nready = {{ http = \"/health\" }}\ngrants = [\"pause\"]\n\
             [targets.link]\nkind = \"proxy\"\nlisten = \"127.0.0.1:{listen}\"\nupstream = \"{}\"\ngrants = [\"delay\"]\n",
            victim_pid.display(),
            service.addr,
            service.addr
        )
        .as_bytes(),
    );
    let protected = format!("{},{listen}", service.addr.port());
    let outputs: Vec<Output> = ["check", "run"]
        .iter()
        .map(|verb| {
            firedrill(&data)
                .args([verb, drill.to_str().unwrap()])
                .env("FIREDRILL_PROTECTED_PORTS", &protected)
                .output()
                .unwrap()
        })
        .collect();
    let problems = |o: &Output| -> Vec<String> {
        text(o)
            .lines()
            .filter(|l| l.contains("which is protected"))
            .map(|l| l.trim().to_string())
            .collect()
    };
    for o in &outputs {
        assert_eq!(o.status.code(), Some(64), "{}", text(o));
    }
    let (check, run) = (problems(&outputs[0]), problems(&outputs[1]));
    assert_eq!(
        check.len(),
        3,
        "svc.address, link.listen, link.upstream: {check:?}"
    );
    assert_eq!(check, run, "check reports exactly what run refuses");
    assert!(text(&outputs[1]).contains("nothing was started"));
    assert!(
        service.seen().is_empty(),
        "no readiness request reached the protected service: {:?}",
        service.seen()
    );
    assert_ne!(proc_state(victim.id()), Some('T'));

    // A run recorded before the ports were protected is refused on replay
    // the same way, before its targets start.
    let o = firedrill(&data)
        .args(["run", drill.to_str().unwrap(), "--param", "hold=50ms"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let seen = service.seen().len();
    let o = firedrill(&data)
        .args(["replay", &last_run(&data)])
        .env("FIREDRILL_PROTECTED_PORTS", &protected)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert_eq!(problems(&o), run, "replay refuses what run refuses");
    assert!(text(&o).contains("nothing was started"), "{}", text(&o));
    assert_eq!(service.seen().len(), seen, "no readiness request on replay");
    assert_ne!(proc_state(victim.id()), Some('T'));
    victim.kill().unwrap();
    victim.wait().unwrap();
}

/// On a terminal the live line (spinner, elapsed time, step, active faults)
/// is cut to the terminal's width instead of wrapping, however long the
/// step and the fault list are; timeline lines are printed above it.
#[test]
fn the_live_line_fits_a_narrow_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut victim, drill) = pauser_drill(dir.path(), "hold = \"1500ms\"", "");
    const COLUMNS: usize = 40;
    // `firedrill run` on a pseudo-terminal COLUMNS wide; everything it
    // draws is copied to stdout.
    const SCRIPT: &str = r#"
import fcntl, os, pty, struct, sys, termios
exe, drill, cols = sys.argv[1], sys.argv[2], int(sys.argv[3])
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    os.environ["TERM"] = "xterm"
    os.execv(exe, [exe, "run", drill])
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    sys.stdout.buffer.write(chunk)
os.waitpid(pid, 0)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT, env!("CARGO_BIN_EXE_firedrill")])
        .arg(&drill)
        .arg(COLUMNS.to_string())
        .env("FIREDRILL_DATA_DIR", &data)
        .output()
        .unwrap();
    let drawn = String::from_utf8_lossy(&out.stdout);
    // Each drawing of the live line starts with the spinner (a braille
    // character) and " [elapsed]", and runs to the next carriage return,
    // newline or escape sequence.
    let live: Vec<String> = drawn
        .char_indices()
        .filter(|(i, c)| {
            ('\u{2800}'..='\u{28FF}').contains(c) && drawn[i + c.len_utf8()..].starts_with(" [")
        })
        .map(|(i, _)| {
            drawn[i..]
                .chars()
                .take_while(|c| !matches!(c, '\r' | '\n' | '\x1b'))
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect();
    assert!(
        live.iter().any(|l| l.contains("active faults")),
        "the live line was drawn: {drawn:?}"
    );
    for l in &live {
        assert!(
            l.chars().count() <= COLUMNS,
            "a live line wider than the terminal ({} > {COLUMNS}): {l:?}",
            l.chars().count()
        );
    }
    assert_ne!(proc_state(victim.id()), Some('T'));
    victim.kill().unwrap();
    victim.wait().unwrap();
}
