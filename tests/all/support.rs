//! Shared helpers: the real `firedrill` binary, drills, HTTP clients.

use firedrill::probe::{self, HttpProbe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `firedrill` binary built for these tests, or the one
/// `FIREDRILL_TEST_BIN` names (`tests/reliability.sh` runs the crash loop
/// on the release build).
pub(crate) fn firedrill(data_dir: &Path) -> Command {
    let bin = std::env::var_os("FIREDRILL_TEST_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_firedrill").into());
    let mut c = Command::new(bin);
    c.env("FIREDRILL_DATA_DIR", data_dir).stdin(Stdio::null());
    c
}

/// The newest run's id.
pub(crate) fn last_run(data: &Path) -> String {
    let o = firedrill(data)
        .args(["history", "--json"])
        .output()
        .unwrap();
    let runs: Vec<firedrill::history::Run> = serde_json::from_slice(&o.stdout).unwrap();
    runs[0].id.to_string()
}

/// A port free now, below the kernel's ephemeral range (32768–60999
/// here): a port from `bind(0)` is ephemeral, and another test's outgoing
/// connection could take it as its local port before this test binds it.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = 20_000 + (std::process::id() * 7919) % 12_000;
    for _ in 0..12_000 {
        let port = 20_000 + (start - 20_000 + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The demo's drill (`api` process, `api-link` HTTP proxy) with `extra`
/// appended, and `api-link` pointed at `upstream` when given.
pub(crate) fn demo_drill(upstream: Option<std::net::SocketAddr>, extra: &str) -> firedrill::Drill {
    let exe = Path::new(env!("CARGO_BIN_EXE_firedrill"));
    let text = firedrill::demo::drill_text(exe, free_port(), free_port()) + extra;
    let mut drill = firedrill::Drill::parse(&text, Path::new("test.toml")).unwrap();
    if let Some(addr) = upstream {
        let link = drill.targets.get_mut("api-link").unwrap();
        if let firedrill::drill::TargetSpec::Proxy(config) = &mut link.spec {
            config.upstream = addr.to_string();
        }
    }
    drill
}

/// GET `path` from `addr`, with a bearer token if given.
pub(crate) async fn get(
    addr: &str,
    path: &str,
    token: Option<&str>,
) -> Result<probe::HttpAnswer, String> {
    let mut p = HttpProbe::get(path);
    if let Some(t) = token {
        p.headers
            .push(("authorization".into(), format!("Bearer {t}")));
    }
    probe::http(addr, &p).await
}

/// Wait until `f` holds, up to `limit`.
pub(crate) async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// A `sleep` process that is not a child of the engine, with a pid file.
pub(crate) fn victim(dir: &Path) -> (Child, std::path::PathBuf) {
    let child = Command::new("sleep").arg("120").spawn().unwrap();
    let pid_file = dir.join("victim.pid");
    std::fs::write(&pid_file, child.id().to_string()).unwrap();
    (child, pid_file)
}

/// The state letter of a process in /proc (R, S, T, Z…).
pub(crate) fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

/// A `sleep` victim attached by pid file and a drill in `dir` that runs the
/// `pauser` guest on it (`params` is a TOML inline table body, e.g.
/// `hold = "300ms"`, and `extra` more TOML). Returns the victim and the
/// drill's path.
pub(crate) fn pauser_drill(dir: &Path, params: &str, extra: &str) -> (Child, std::path::PathBuf) {
    let (victim, pid_file) = victim(dir);
    std::fs::write(dir.join("pauser.wasm"), firedrill_tests::PAUSER).unwrap();
    let drill = dir.join("drill.toml");
    std::fs::write(
        &drill,
        format!(
            "[scenario]\npath = \"pauser.wasm\"\nparams = {{ {params} }}\n{extra}\n[targets.victim]\nkind = \"process\"\npid_file = \"{}\"\ngrants = [\"pause\"]\n",
            pid_file.display()
        ),
    )
    .unwrap();
    (victim, drill)
}

/// Start `firedrill run <drill>` on `data` with piped output.
pub(crate) fn spawn_run(data: &Path, drill: &Path, extra: &[&str]) -> Child {
    firedrill(data)
        .arg("run")
        .args(extra)
        .arg(drill)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Send `signal` to `child`.
pub(crate) fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// A `sleep` victim as process target `victim` (pause granted), started in
/// `engine`.
pub(crate) async fn victim_target(
    dir: &Path,
    engine: &firedrill::Engine,
) -> (Child, std::sync::Arc<firedrill::targets::TargetSet>) {
    let (victim, pid_file) = victim(dir);
    let text = format!(
        "[targets.victim]\nkind = \"process\"\npid_file = \"{}\"\ngrants = [\"pause\"]\n",
        pid_file.display()
    );
    let drill = firedrill::Drill::parse(&text, Path::new("victim.toml")).unwrap();
    (victim, engine.start_targets(&drill.targets).await.unwrap())
}

/// A finished command's stdout then stderr, as one text.
pub(crate) fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Debian's nginx (master and two workers), its pid file, and its port.
pub(crate) struct Nginx {
    child: Child,
    pub(crate) pid_file: PathBuf,
    pub(crate) port: u16,
}

impl Nginx {
    pub(crate) fn start(dir: &Path) -> Nginx {
        let port = free_port();
        let (program, args) = firedrill_tests::nginx(dir, port);
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid_file = dir.join("nginx.pid");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || !pid_file.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nginx did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            pid_file,
            port,
        }
    }

    /// The master and its workers (none once its directory is gone).
    pub(crate) fn pids(&self) -> Vec<u32> {
        let Some(master) = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        else {
            return Vec::new();
        };
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default();
        std::iter::once(master)
            .chain(children.split_whitespace().filter_map(|p| p.parse().ok()))
            .collect()
    }

    /// Whether any of its processes is stopped (`T` in /proc).
    pub(crate) fn stopped(&self) -> bool {
        self.pids().into_iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('T'))
                })
                .unwrap_or(false)
        })
    }

    /// What a responder does on finding it stopped: `kill -CONT` each.
    pub(crate) fn resume(&self) {
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
    }
}

impl Drop for Nginx {
    /// SIGTERM: the master stops its workers. SIGKILL to the master alone
    /// left both workers running (every CI run left eight behind); it is
    /// the fallback, for every process, after 5 s.
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        self.resume();
        let pids = self.pids();
        firedrill_tests::terminate(&mut self.child, Duration::from_secs(5));
        for pid in pids {
            if proc_state(pid).is_some_and(|s| s != 'Z') {
                let _ = kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}
