//! Process targets: spawned and supervised by the engine (restart policy
//! with exponential backoff, readiness check), or attached through a pid
//! file. Spawned children die with the engine (`PR_SET_PDEATHSIG`), so a
//! crashed engine leaves no supervised process behind.
//!
//! A service is a process tree, not a pid: a master with workers, a
//! pre-fork app server. Spawned targets run in a process group of their
//! own; faults, restarts and shutdown reach the process, its descendants
//! and (spawned) every member of its group, so no worker keeps serving
//! through a `pause` or keeps the port after a `kill`.

use crate::drill::{ProcessSpec, Readiness, RestartPolicy};
use crate::drivers::process::ProcessId;
use crate::probe;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A child that ran this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// A process target.
#[derive(Debug)]
pub struct ProcessTarget {
    name: String,
    source: Source,
    address: Option<String>,
    current: Mutex<Option<ProcessId>>,
    restarts: AtomicU32,
    /// Set by [`ProcessTarget::restart`]: the next exit restarts at once.
    restart_now: std::sync::atomic::AtomicBool,
    last_error: Mutex<Option<String>>,
    /// The last lines a spawned process wrote (stdout and stderr).
    output: std::sync::Arc<Mutex<Tail>>,
    /// Each exit of a spawned process, with its last output, as it happens
    /// (a run forwards them to its timeline).
    exits: tokio::sync::broadcast::Sender<String>,
    shutdown: CancellationToken,
}

/// The tail of a process's output: at most [`TAIL_LINES`] lines of at most
/// [`TAIL_LINE_BYTES`] bytes each.
#[derive(Debug, Default)]
struct Tail(std::collections::VecDeque<String>);

/// Lines of output kept per spawned target.
pub const TAIL_LINES: usize = 20;
/// Longer lines are cut to this.
pub const TAIL_LINE_BYTES: usize = 400;

impl Tail {
    fn push(&mut self, line: &str) {
        let mut line = line.trim_end().to_string();
        if line.len() > TAIL_LINE_BYTES {
            let mut cut = TAIL_LINE_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        if self.0.len() == TAIL_LINES {
            self.0.pop_front();
        }
        self.0.push_back(line);
    }

    /// "; its last output:\n  line…", or nothing when it wrote nothing.
    fn said(&self) -> String {
        if self.0.is_empty() {
            return "; it wrote no output".into();
        }
        let lines: Vec<String> = self.0.iter().map(|l| format!("  | {l}")).collect();
        format!("; its last output:\n{}", lines.join("\n"))
    }
}

#[derive(Debug)]
enum Source {
    Spawned(ProcessSpec),
    PidFile(PathBuf),
    Group(String, Option<crate::drill::Selection>),
}

impl ProcessTarget {
    /// Start (or attach to) the process and wait until it is ready.
    pub(crate) async fn start(
        name: &str,
        spec: &ProcessSpec,
    ) -> Result<std::sync::Arc<ProcessTarget>, String> {
        let source = match (&spec.command, &spec.pid_file, &spec.pgrep) {
            (_, _, Some(pattern)) => Source::Group(pattern.clone(), spec.select),
            (_, Some(p), _) => Source::PidFile(p.clone()),
            (Some(_), None, None) => Source::Spawned(spec.clone()),
            (None, None, None) => {
                unreachable!("drill validation requires command, pid_file or pgrep")
            }
        };
        let target = std::sync::Arc::new(ProcessTarget {
            name: name.to_string(),
            source,
            address: spec.address.clone(),
            current: Mutex::new(None),
            restarts: AtomicU32::new(0),
            restart_now: std::sync::atomic::AtomicBool::new(false),
            last_error: Mutex::new(None),
            output: Default::default(),
            exits: tokio::sync::broadcast::channel(16).0,
            shutdown: CancellationToken::new(),
        });
        match &target.source {
            Source::PidFile(_) | Source::Group(..) => {
                target.pid().map_err(|e| format!("target `{name}`: {e}"))?;
            }
            Source::Spawned(spec) => {
                let first =
                    spawn(spec, &target.output).map_err(|e| format!("target `{name}`: {e}"))?;
                // Known at once, so a fault right after start finds it.
                *target.current.lock().unwrap() = first.service().await;
                tokio::spawn(supervise(target.clone(), spec.clone(), first));
            }
        }
        target.wait_ready(spec).await?;
        Ok(target)
    }

    /// Target name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where probes connect, if declared.
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// Each exit of the spawned process from now on, described with its
    /// exit status and last output.
    pub fn exits(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.exits.subscribe()
    }

    /// The last lines the spawned process wrote, oldest first.
    pub fn output_tail(&self) -> Vec<String> {
        self.output.lock().unwrap().0.iter().cloned().collect()
    }

    /// How many times the supervisor restarted it.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The processes a fault reaches: the one process, or for a group a
    /// selection drawn with `seed` (all of them without `select`).
    pub fn select(&self, seed: u64) -> Result<Vec<ProcessId>, String> {
        let Source::Group(pattern, selection) = &self.source else {
            return self.pid().map(|p| self.tree(p));
        };
        let mut all = group(pattern);
        if all.is_empty() {
            return Err(format!(
                "no process matches pgrep `{pattern}` of target `{}`",
                self.name
            ));
        }
        let k = selection.map_or(all.len(), |s| s.of(all.len()));
        // A seeded partial Fisher-Yates shuffle: the same seed picks the same processes.
        let mut state = seed | 1;
        for i in 0..k {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let j = i + (state % (all.len() - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(k);
        Ok(all)
    }

    /// The current process, if one is running (for a group: the first).
    pub fn pid(&self) -> Result<ProcessId, String> {
        match &self.source {
            Source::Group(pattern, _) => group(pattern).into_iter().next().ok_or_else(|| {
                format!(
                    "no process matches pgrep `{pattern}` of target `{}`",
                    self.name
                )
            }),
            Source::PidFile(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read pid file {}: {e}", path.display()))?;
                let pid: u32 = text.trim().parse().map_err(|_| {
                    format!(
                        "pid file {} does not hold a pid: {:?}",
                        path.display(),
                        text.trim()
                    )
                })?;
                ProcessId::of(pid).map_err(|e| e.to_string())
            }
            Source::Spawned(_) => {
                let current = *self.current.lock().unwrap();
                match current {
                    Some(p) if p.is_alive() => Ok(p),
                    _ => Err(match self.last_error.lock().unwrap().clone() {
                        Some(e) => {
                            format!("process of target `{}` is not running ({e})", self.name)
                        }
                        None => format!("process of target `{}` is not running", self.name),
                    }),
                }
            }
        }
    }

    /// `root` and every process below it, parents before children; for a
    /// spawned target also the members of its process group that left the
    /// tree (a daemonized worker).
    pub fn tree(&self, root: ProcessId) -> Vec<ProcessId> {
        let group = matches!(self.source, Source::Spawned(_)).then_some(root.pid);
        tree(root, group)
    }

    /// Whether it is attached (by pid file) rather than spawned or a group.
    pub fn attached(&self) -> bool {
        matches!(self.source, Source::PidFile(_))
    }

    /// Whether the process is running.
    pub fn alive(&self) -> bool {
        self.pid().is_ok()
    }

    async fn wait_ready(&self, spec: &ProcessSpec) -> Result<(), String> {
        let Some(ready) = &spec.ready else {
            return Ok(());
        };
        let addr = self.address.clone().unwrap_or_default();
        let deadline = Instant::now() + spec.ready_timeout;
        loop {
            let result = match ready {
                Readiness::Http { http } => probe::http(&addr, &probe::HttpProbe::get(http))
                    .await
                    .and_then(|a| {
                        if (200..400).contains(&a.status) {
                            Ok(())
                        } else {
                            Err(format!("GET {http} answered {}", a.status))
                        }
                    }),
                Readiness::Tcp { .. } => {
                    probe::tcp(&addr, Duration::from_secs(1)).await.map(|_| ())
                }
            };
            let gone = match (&self.source, spec.restart) {
                (Source::Spawned(_), RestartPolicy::Never) => {
                    self.current.lock().unwrap().is_none()
                }
                _ => false,
            };
            match result {
                Ok(()) => return Ok(()),
                Err(_) if gone => {
                    return Err(format!(
                        "target `{}` exited before it was ready ({}){}",
                        self.name,
                        self.last_error.lock().unwrap().clone().unwrap_or_default(),
                        self.output.lock().unwrap().said()
                    ));
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "target `{}` did not become ready within {}: {e}{}",
                        self.name,
                        humantime::format_duration(spec.ready_timeout),
                        match self.source {
                            Source::Spawned(_) => self.output.lock().unwrap().said(),
                            _ => String::new(),
                        }
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
    }

    /// The `restart` fault: terminate a spawned process (SIGTERM, SIGKILL
    /// after 2 s) and start it again at once, whatever its restart policy.
    /// Returns the new process once it runs.
    pub async fn restart(&self) -> Result<ProcessId, String> {
        if !matches!(self.source, Source::Spawned(_)) {
            return Err(format!(
                "target `{}` is attached, not spawned: restart needs a process firedrill starts and supervises (`command`)",
                self.name
            ));
        }
        let old = self.pid()?;
        let tree = self.tree(old);
        self.restart_now.store(true, Ordering::SeqCst);
        signal_all(&tree, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        loop {
            let current = *self.current.lock().unwrap();
            if let Some(new) = current.filter(|p| *p != old && p.is_alive()) {
                // The old tree is gone too before the new one counts as up.
                signal_all(&tree, nix::sys::signal::Signal::SIGKILL);
                return Ok(new);
            }
            if started.elapsed() > Duration::from_secs(2) && tree.iter().any(ProcessId::is_alive) {
                signal_all(&tree, nix::sys::signal::Signal::SIGKILL);
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "target `{}` did not come back within 10 s of the restart: {}",
                    self.name,
                    self.last_error.lock().unwrap().clone().unwrap_or_default()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stop supervising and terminate a spawned process (SIGTERM, then
    /// SIGKILL after 2 s). An attached process is left alone.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        if let Source::Spawned(_) = self.source {
            let deadline = Instant::now() + Duration::from_secs(3);
            while self.current.lock().unwrap().is_some() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// How many processes a group's `pgrep` pattern matches now.
pub fn matching(pattern: &str) -> usize {
    group(pattern).len()
}

/// Processes whose command line contains `pattern`, sorted by pid; never
/// this engine or its ancestors, never init.
fn group(pattern: &str) -> Vec<ProcessId> {
    let mut excluded = vec![1, std::process::id()];
    let mut pid = std::process::id();
    while let Some(parent) = parent_of(pid).filter(|p| *p > 1) {
        excluded.push(parent);
        pid = parent;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<ProcessId> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !excluded.contains(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let line: Vec<u8> = c.iter().map(|b| if *b == 0 { b' ' } else { *b }).collect();
                String::from_utf8_lossy(&line).contains(pattern)
            })
        })
        .filter_map(|pid| ProcessId::of(pid).ok().filter(ProcessId::is_alive))
        .collect();
    found.sort_by_key(|p| p.pid);
    found
}

fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid).map(|(ppid, _)| ppid)
}

/// (parent pid, process group) of `pid`, from /proc.
fn stat_fields(pid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = text[text.rfind(')')? + 2..].split(' ').skip(1);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// `root`, its descendants (breadth first, so parents come before their
/// children and a stopped master cannot fork around a `pause`), and the
/// live members of process group `group`; never init or this engine.
fn tree(root: ProcessId, group: Option<u32>) -> Vec<ProcessId> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![root];
    };
    let all: Vec<(u32, u32, u32)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| stat_fields(pid).map(|(ppid, pgid)| (pid, ppid, pgid)))
        .collect();
    let mut out = vec![root.pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            all.iter()
                .filter(|(pid, ppid, _)| *ppid == parent && !out.contains(pid))
                .map(|(pid, ..)| *pid)
                .collect::<Vec<_>>(),
        );
        i += 1;
    }
    if let Some(g) = group {
        for (pid, ..) in all.iter().filter(|(_, _, pgid)| *pgid == g) {
            if !out.contains(pid) {
                out.push(*pid);
            }
        }
    }
    let me = std::process::id();
    std::iter::once(root)
        .chain(
            out.into_iter()
                .skip(1)
                .filter(|pid| *pid != 1 && *pid != me)
                .filter_map(|pid| ProcessId::of(pid).ok()),
        )
        .filter(ProcessId::is_alive)
        .collect()
}

/// Send `sig` to each process (gone ones are skipped); continue them so a
/// paused tree can act on it.
fn signal_all(processes: &[ProcessId], sig: nix::sys::signal::Signal) {
    for p in processes {
        let _ = p.signal(sig);
        let _ = p.resume();
    }
}

/// A spawned service: the child the engine waits on (the service itself,
/// or its keeper), and whether it is a keeper.
struct Spawned {
    child: tokio::process::Child,
    keeper: bool,
}

fn spawn(spec: &ProcessSpec, output: &std::sync::Arc<Mutex<Tail>>) -> Result<Spawned, String> {
    let command = spec.command.as_deref().unwrap_or_default();
    if !crate::check::program_exists(command) {
        return Err(format!(
            "cannot start `{command}`: not a file and not found on PATH"
        ));
    }
    // The firedrill binary starts services under `firedrill keep` (see
    // [`keeper_main`]); other programs that embed the engine start them
    // directly.
    let keeper = super::firedrill_exe();
    let mut cmd = match &keeper {
        Some(exe) => {
            let mut c = Command::new(exe);
            c.args(["keep", "--", command]);
            // The keeper learns of the engine's death (a signal it can
            // catch) and takes the service's whole group with it.
            die_with_parent_by(&mut c, nix::sys::signal::Signal::SIGTERM);
            c
        }
        None => {
            let mut c = Command::new(command);
            c.process_group(0);
            die_with_parent(&mut c);
            c
        }
    };
    cmd.args(&spec.args)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{command}`: {e}"))?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(keep_tail(out, output.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(keep_tail(err, output.clone()));
    }
    Ok(Spawned {
        child,
        keeper: keeper.is_some(),
    })
}

impl Spawned {
    /// The service's process: the child itself, or the keeper's child
    /// once it has started it (a few milliseconds).
    async fn service(&self) -> Option<ProcessId> {
        let own = self.child.id()?;
        if !self.keeper {
            return ProcessId::of(own).ok();
        }
        let children = format!("/proc/{own}/task/{own}/children");
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            let first = std::fs::read_to_string(&children)
                .ok()
                .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok());
            if let Some(pid) = first {
                return ProcessId::of(pid).ok();
            }
            if ProcessId::of(own).is_ok_and(|k| !k.is_alive()) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    }
}

/// `firedrill keep -- COMMAND ARGS…`: start a spawned target's service in a
/// process group of its own and stand between it and the engine. The
/// engine starts the keeper with `PR_SET_PDEATHSIG` = SIGTERM, so when the
/// engine dies (even by SIGKILL) the keeper kills the service's whole
/// group: no worker outlives the engine. It exits as the service did,
/// after killing what the service left in its group. Terminal signals
/// (SIGINT, SIGHUP, SIGQUIT) are the engine's to handle; the keeper
/// ignores them.
pub async fn keeper_main(args: &[String]) -> ! {
    use std::os::unix::process::ExitStatusExt;
    use tokio::signal::unix::{SignalKind, signal};
    let _ignored: Vec<_> = [
        SignalKind::interrupt(),
        SignalKind::hangup(),
        SignalKind::quit(),
    ]
    .into_iter()
    .filter_map(|k| signal(k).ok())
    .collect();
    let mut term = signal(SignalKind::terminate()).ok();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("firedrill keep: no command given");
        std::process::exit(64);
    };
    let mut child = match Command::new(command).args(rest).process_group(0).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start `{command}`: {e}");
            std::process::exit(127);
        }
    };
    let group = child.id().unwrap_or(0) as i32;
    let kill_group = || {
        if group > 0 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    };
    let status = loop {
        tokio::select! {
            s = child.wait() => break s.ok(),
            _ = async {
                match term.as_mut() {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending().await,
                }
            } => kill_group(),
        }
    };
    kill_group();
    std::process::exit(match status {
        Some(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        None => 1,
    })
}

/// Read a child's output to its end, keeping the last lines. Reading it
/// all also keeps a chatty service from blocking on a full pipe.
async fn keep_tail(stream: impl tokio::io::AsyncRead + Unpin, tail: std::sync::Arc<Mutex<Tail>>) {
    use tokio::io::AsyncBufReadExt;
    let mut reader = tokio::io::BufReader::new(stream);
    // At most a kept line's worth is held (a UTF-8 character over, so a
    // longer line is seen as cut), however long a line the service writes.
    let mut line = Vec::new();
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => buf,
        };
        let (part, ends) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = (TAIL_LINE_BYTES + 4).saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        let used = part.len();
        reader.consume(used);
        if ends {
            tail.lock().unwrap().push(&String::from_utf8_lossy(&line));
            line.clear();
        }
    }
    if !line.is_empty() {
        tail.lock().unwrap().push(&String::from_utf8_lossy(&line));
    }
}

/// Make the child die (SIGKILL) when the engine does.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    die_with_parent_by(cmd, nix::sys::signal::Signal::SIGKILL);
}

/// Send the child `sig` when the engine dies.
#[allow(unsafe_code)]
fn die_with_parent_by(cmd: &mut Command, sig: nix::sys::signal::Signal) {
    let engine = nix::unistd::getpid();
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe system calls (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(sig).map_err(std::io::Error::from)?;
            // An engine that died between the fork and the prctl sends no
            // signal: the child was re-parented already. Do not exec it.
            if nix::unistd::getppid() != engine {
                return Err(std::io::Error::other(
                    "the engine ended while starting this child",
                ));
            }
            Ok(())
        });
    }
}

async fn supervise(target: std::sync::Arc<ProcessTarget>, spec: ProcessSpec, first: Spawned) {
    let mut backoff = BACKOFF_START;
    let mut child = Some(first);
    loop {
        let mut running = match child.take() {
            Some(c) => c,
            None => match spawn(&spec, &target.output) {
                Ok(c) => c,
                Err(e) => {
                    *target.last_error.lock().unwrap() = Some(e);
                    if spec.restart == RestartPolicy::Never || !pause(&target, &mut backoff).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let started = Instant::now();
        let id = running.service().await;
        *target.current.lock().unwrap() = id;
        let status = tokio::select! {
            s = running.child.wait() => s.ok(),
            _ = target.shutdown.cancelled() => {
                terminate(&mut running.child, id).await;
                *target.current.lock().unwrap() = None;
                return;
            }
        };
        *target.current.lock().unwrap() = None;
        // Workers the leader left behind would keep its port.
        if let Some(id) = id {
            signal_all(&tree(id, Some(id.pid)), nix::sys::signal::Signal::SIGKILL);
        }
        let success = status.is_some_and(|s| s.success());
        let exit = match status {
            // The keeper reports a signal as 128 + its number, as shells do.
            Some(s) if running.keeper && s.code().is_some_and(|c| c > 128) => {
                let n = s.code().unwrap_or(0) - 128;
                match nix::sys::signal::Signal::try_from(n) {
                    Ok(sig) => format!("exited: killed by signal {n} ({sig})"),
                    Err(_) => format!("exited: {s}"),
                }
            }
            Some(s) => format!("exited: {s}"),
            None => "exited".into(),
        };
        // Its last lines may still be in the pipe.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = target.exits.send(format!(
            "target `{}` {exit}{}",
            target.name,
            target.output.lock().unwrap().said()
        ));
        *target.last_error.lock().unwrap() = Some(exit);
        if target.restart_now.swap(false, Ordering::SeqCst) {
            target.restarts.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let restart = match spec.restart {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Always => true,
        };
        if !restart {
            return;
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff = BACKOFF_START;
        }
        if !pause(&target, &mut backoff).await {
            return;
        }
        target.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sleep the backoff (doubling it); false if the target is shutting down.
async fn pause(target: &ProcessTarget, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = target.shutdown.cancelled() => false,
    }
}

/// Stop a spawned service: its whole tree gets SIGTERM (continued first
/// if paused), and SIGKILL if the tree is not gone within 2 s.
async fn terminate(child: &mut tokio::process::Child, id: Option<ProcessId>) {
    let Some(id) = id else {
        let _ = child.kill().await;
        return;
    };
    let all = tree(id, Some(id.pid));
    signal_all(&all, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    while all.iter().any(ProcessId::is_alive) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal_all(&all, nix::sys::signal::Signal::SIGKILL);
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_service_writing_without_newlines_is_kept_cut_not_whole() {
        let mut output = vec![b'x'; 10 << 20];
        output.extend_from_slice(b"\nport 8080 in use\npartial");
        let tail = std::sync::Arc::new(Mutex::new(Tail::default()));
        keep_tail(&output[..], tail.clone()).await;
        let kept = &tail.lock().unwrap().0;
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(kept[0].ends_with('…') && kept[0].len() <= TAIL_LINE_BYTES + 3);
        assert_eq!(kept[1], "port 8080 in use");
        assert_eq!(kept[2], "partial");
    }
}
