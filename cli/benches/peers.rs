//! firedrill's TCP proxy side by side with its peers, each in a process of
//! its own, in one run, printed as a Markdown table for
//! docs/PERFORMANCE.md:
//!
//! - `firedrill proxy serve` (this build), with one proxy from `--config`;
//! - nginx's `stream` proxy from Debian (`nginx` + `libnginx-mod-stream`,
//!   installed with apt-get if missing) as the raw-proxy baseline;
//! - `noxious-proxy` (tests/peers/noxious-proxy: the `noxious` crate's
//!   Toxiproxy-style proxy, built with cargo on first use) as the
//!   fault-proxy peer;
//! - direct loopback as the physical limit.
//!
//! Figures: added round-trip latency (64 B, no fault), small requests
//! pipelined 16 deep on 50 connections (a cache client's shape), bulk
//! throughput as a ratio to direct loopback, and 10,000 connections held
//! with 1,000 active (errors, the proxy's memory per connection, the
//! round-trip rate and the proxy's CPU per round trip; every proxy's
//! connections held at once, rounds interleaved). Clients
//! and servers live in this process; rounds rotate through the targets so
//! noise hits all alike. A second table: HTTP/1.1 keep-alive through
//! firedrill's HTTP-mode proxy (`firedrill proxy run --mode http`) and
//! nginx's `proxy_pass` (keep-alive upstream) in front of one nginx origin,
//! with Debian's wrk at 8, 64 and 256 connections, in interleaved rounds
//! (the median of three); then h2c (HTTP/2 with
//! prior knowledge) with nghttp2's h2load: firedrill forwards HTTP/2 as
//! HTTP/2 (to the origin's h2c port), nginx takes h2c and forwards HTTP/1.1,
//! as it can.
//!
//! Run it with `cargo bench -p firedrill-cli --bench peers` (add `-- --quick`
//! for a smoke run of firedrill alone, as CI does; `-- --only held,http`
//! for some rows: `latency`, `pipelined`, `bulk`, `held`, `http`). To judge a change, set
//! `FIREDRILL_BASELINE` to another build's `firedrill` binary: it runs as
//! one more peer, "firedrill (baseline)", in every row.

use anyhow::Context;
use firedrill_tests::{
    bench_rows, echo_server, median, median_duration, percentiles, round_trip, source_server,
};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Sizes {
    pings: usize,
    pipe_conns: usize,
    pipe_depth: usize,
    pipe_rounds: usize,
    bulk: u64,
    bulk_rounds: usize,
    held: usize,
    active: usize,
    active_pings: usize,
    active_rounds: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--holder") {
        return holder().await;
    }
    let rows = bench_rows(&["latency", "pipelined", "bulk", "held", "http"])
        .map_err(anyhow::Error::msg)?;
    let only = |row: &str| rows.contains(&row);
    let quick = std::env::args().any(|a| a == "--quick");
    let mut n = if quick {
        Sizes {
            pings: 300,
            pipe_conns: 10,
            pipe_depth: 16,
            pipe_rounds: 20,
            bulk: 16 << 20,
            bulk_rounds: 1,
            held: 300,
            active: 30,
            active_pings: 5,
            active_rounds: 1,
        }
    } else {
        Sizes {
            pings: 20_000,
            pipe_conns: 50,
            pipe_depth: 16,
            pipe_rounds: 500,
            bulk: 512 << 20,
            bulk_rounds: 5,
            held: 10_000,
            active: 1_000,
            active_pings: 20,
            active_rounds: 8,
        }
    };
    // Each held connection costs a holder two descriptors (client and
    // echo side) and a proxy two (children inherit the limit).
    let fds = raise_fd_limit();
    if (n.held as u64) * 2 + 64 > fds {
        n.held = ((fds - 64) / 2) as usize;
        println!(
            "note: the open-file limit is {fds} and cannot be raised here: holding {} connections",
            n.held
        );
    }
    let echo = echo_server().await;
    let source = source_server(n.bulk).await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers/run");
    std::fs::create_dir_all(&dir)?;

    let mut peers = Vec::new();
    // The smoke run (CI) leaves the peers out: it installs nothing.
    let mut starters: Vec<(&str, Starter)> = vec![("firedrill", firedrill)];
    if baseline().is_some() {
        starters.push(("firedrill (baseline)", firedrill_baseline));
    }
    if !quick {
        starters.push(("nginx stream", nginx));
        starters.push(("noxious", noxious));
    }
    for (name, start) in starters {
        let holder = Holder::start()?;
        let up = Upstreams {
            echo,
            source,
            held: holder.echo,
        };
        match start(&dir, up) {
            Ok(mut p) => {
                p.holder = Some(holder);
                peers.push(p);
            }
            Err(e) => println!("| {name} | not measured: {e:#} | — |"),
        }
    }
    for p in &peers {
        p.ready().await?;
    }

    println!("| figure | direct loopback | {} | n |", names(&peers));
    println!("|---|---|{}---|", "---|".repeat(peers.len()));
    if only("latency") {
        latency(&n, echo, &peers).await?;
    }
    if only("pipelined") {
        pipelined(&n, echo, &peers).await?;
    }
    if only("bulk") {
        throughput(&n, source, &peers).await?;
    }
    if only("held") {
        connections(&n, &mut peers)?;
    }
    drop(peers);
    if quick {
        println!("\n(HTTP rows: not in the smoke run; they install wrk)");
    } else if only("http") {
        println!();
        if let Err(e) = http_rows(&dir).await {
            println!("HTTP rows not measured: {e:#}");
        }
    }
    Ok(())
}

type Starter = fn(&Path, Upstreams) -> anyhow::Result<Peer>;

/// Where a proxy forwards to: this process's echo server and bulk source,
/// and the echo server of the proxy's holder.
#[derive(Clone, Copy)]
struct Upstreams {
    echo: SocketAddr,
    source: SocketAddr,
    held: SocketAddr,
}

/// A proxy in a process of its own: one listener to the echo server, one
/// to the source, and one to its holder's echo server (the same as `echo`
/// where there is no holder).
struct Peer {
    name: &'static str,
    children: Vec<Child>,
    echo: SocketAddr,
    source: SocketAddr,
    held: SocketAddr,
    holder: Option<Holder>,
}

impl Peer {
    fn new(name: &'static str, children: Vec<Child>, echo: SocketAddr, source: SocketAddr) -> Peer {
        Peer {
            name,
            children,
            echo,
            source,
            held: echo,
            holder: None,
        }
    }

    /// Waits until both listeners accept.
    async fn ready(&self) -> anyhow::Result<()> {
        let t = Instant::now();
        for addr in [self.echo, self.source, self.held] {
            while TcpStream::connect(addr).await.is_err() {
                anyhow::ensure!(
                    t.elapsed() < Duration::from_secs(20),
                    "{} did not listen on {addr}",
                    self.name
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Resident memory of the proxy's process and its children (nginx's
    /// workers), bytes.
    fn rss(&self) -> u64 {
        self.children.iter().map(|c| tree_rss(c.id())).sum()
    }

    /// Sends `command` to the proxy's holder (see [`Holder::ask`]).
    fn ask(&mut self, command: &str) -> anyhow::Result<(f64, usize, String)> {
        self.holder.as_mut().context("no holder")?.ask(command)
    }

    /// CPU time the proxy's processes (with nginx's workers) have run so
    /// far, every thread: in all from `/proc/PID/task/*/schedstat`
    /// (nanoseconds), in user space from `…/stat` (clock ticks).
    fn cpu(&self) -> Cpu {
        // `/proc` counts in USER_HZ, 100 on Linux whatever the kernel's HZ.
        let tick = 100;
        let mut cpu = Cpu::default();
        for c in &self.children {
            for pid in std::iter::once(c.id()).chain(children_of(c.id())) {
                let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                    continue;
                };
                for t in tasks.flatten() {
                    let read =
                        |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
                    // Time on a CPU (ns), time waiting for one, times run.
                    let sched: Vec<u64> = read("schedstat")
                        .split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect();
                    // utime is field 14; fields count from 3 after the name.
                    let ticks = read("stat")
                        .rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(11)?.parse::<u64>().ok());
                    cpu.all += Duration::from_nanos(sched.first().copied().unwrap_or(0));
                    cpu.runs += sched.get(2).copied().unwrap_or(0);
                    cpu.user += Duration::from_nanos(ticks.unwrap_or(0) * 1_000_000_000 / tick);
                }
            }
        }
        cpu
    }
}

/// CPU time, in all and in user space, and how many times a thread was
/// put on a CPU.
#[derive(Clone, Copy, Default)]
struct Cpu {
    all: Duration,
    user: Duration,
    runs: u64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, before: Cpu) -> Cpu {
        Cpu {
            all: self.all.saturating_sub(before.all),
            user: self.user.saturating_sub(before.user),
            runs: self.runs.saturating_sub(before.runs),
        }
    }
}

impl std::ops::AddAssign for Cpu {
    fn add_assign(&mut self, more: Cpu) {
        self.all += more.all;
        self.user += more.user;
        self.runs += more.runs;
    }
}

impl Drop for Peer {
    /// SIGTERM first: nginx's master stops its workers on it (SIGKILL
    /// would leave them behind).
    fn drop(&mut self) {
        for c in &mut self.children {
            firedrill_tests::terminate(c, Duration::from_secs(3));
        }
    }
}

/// Resident memory of `pid` and its direct children, bytes.
fn tree_rss(pid: u32) -> u64 {
    rss_of(pid) + children_of(pid).map(rss_of).sum::<u64>()
}

/// The direct children of `pid`.
fn children_of(pid: u32) -> impl Iterator<Item = u32> {
    let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    entries.filter_map(move |e| {
        let child = e.file_name().to_str()?.parse::<u32>().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
        // Field 4, after the parenthesised name, is the parent pid.
        let ppid = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse::<u32>()
            .ok()?;
        (ppid == pid).then_some(child)
    })
}

fn rss_of(pid: u32) -> u64 {
    firedrill_tests::proc_memory(&pid.to_string(), "VmRSS")
}

fn names(peers: &[Peer]) -> String {
    peers.iter().map(|p| p.name).collect::<Vec<_>>().join(" | ")
}

/// Raises this process's soft open-file limit to its hard limit (and the
/// hard limit to 262,144 where allowed); returns the soft limit now.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    let want = hard.max(262_144);
    if setrlimit(Resource::RLIMIT_NOFILE, want, want).is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Another build of firedrill to compare with (`FIREDRILL_BASELINE`).
fn baseline() -> Option<std::path::PathBuf> {
    std::env::var_os("FIREDRILL_BASELINE").map(Into::into)
}

fn firedrill(dir: &Path, up: Upstreams) -> anyhow::Result<Peer> {
    let bin = Path::new(env!("CARGO_BIN_EXE_firedrill"));
    firedrill_at(bin, "firedrill", dir, up)
}

fn firedrill_baseline(dir: &Path, up: Upstreams) -> anyhow::Result<Peer> {
    let bin = baseline().expect("set");
    firedrill_at(&bin, "firedrill (baseline)", dir, up)
}

fn firedrill_at(bin: &Path, name: &'static str, dir: &Path, up: Upstreams) -> anyhow::Result<Peer> {
    let (e, s, h) = (free_port()?, free_port()?, free_port()?);
    let dir = dir.join(name.replace([' ', '(', ')'], ""));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("firedrill.json");
    std::fs::write(
        &config,
        serde_json::to_string(&serde_json::json!([
            {"name": "echo", "listen": local(e).to_string(), "upstream": up.echo.to_string()},
            {"name": "source", "listen": local(s).to_string(), "upstream": up.source.to_string()},
            {"name": "held", "listen": local(h).to_string(), "upstream": up.held.to_string()},
        ]))?,
    )?;
    let child = Command::new(bin)
        .args(["proxy", "serve", "--allow-anonymous", "--port"])
        .arg(free_port()?.to_string())
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .spawn()?;
    let mut p = Peer::new(name, vec![child], local(e), local(s));
    p.held = local(h);
    Ok(p)
}

/// Debian packages, installed with apt-get unless `present` exists.
fn debian(present: &str, packages: &[&str]) -> anyhow::Result<()> {
    if Path::new(present).exists() {
        return Ok(());
    }
    let install = |update: bool| -> anyhow::Result<()> {
        if update {
            quiet(Command::new("apt-get").arg("update"))?;
        }
        quiet(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(packages)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    install(false).or_else(|_| install(true))
}

/// nginx's stream proxy as Debian ships it (`worker_processes auto`).
fn nginx(dir: &Path, up: Upstreams) -> anyhow::Result<Peer> {
    const MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";
    debian("/usr/sbin/nginx", &["nginx"])?;
    debian(MODULE, &["nginx", "libnginx-mod-stream"])?;
    let (e, s, h) = (free_port()?, free_port()?, free_port()?);
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs"))?;
    let p = prefix.display();
    let server = |port: u16, up: SocketAddr| {
        format!("server {{ listen 127.0.0.1:{port}; proxy_pass {up}; }}")
    };
    std::fs::write(
        prefix.join("nginx.conf"),
        format!(
            "load_module {MODULE};\n\
             worker_processes auto;\n\
             worker_rlimit_nofile 65536;\n\
             pid {p}/nginx.pid;\n\
             error_log {p}/logs/error.log warn;\n\
             events {{ worker_connections 32768; }}\n\
             stream {{\n{}\n{}\n{}\n}}\n",
            server(e, up.echo),
            server(s, up.source),
            server(h, up.held),
        ),
    )?;
    let child = Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .spawn()?;
    let mut p = Peer::new("nginx stream", vec![child], local(e), local(s));
    p.held = local(h);
    Ok(p)
}

/// The noxious crate's proxy, one process per listener (it serves one).
fn noxious(_: &Path, up: Upstreams) -> anyhow::Result<Peer> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/peers/noxious");
    let bin = target.join("release/noxious-proxy");
    if !bin.exists() {
        quiet(
            Command::new(env!("CARGO"))
                .args(["build", "--release", "--locked", "--manifest-path"])
                .arg(root.join("tests/peers/noxious-proxy/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target),
        )?;
    }
    let (e, s, h) = (free_port()?, free_port()?, free_port()?);
    let start = |listen: u16, upstream: SocketAddr| {
        Command::new(&bin)
            .args(["--listen", &local(listen).to_string()])
            .args(["--upstream", &upstream.to_string()])
            .stdout(Stdio::null())
            .spawn()
    };
    let children = vec![start(e, up.echo)?, start(s, up.source)?, start(h, up.held)?];
    let mut p = Peer::new("noxious", children, local(e), local(s));
    p.held = local(h);
    Ok(p)
}

/// Runs a command, its output captured and shown only if it fails.
fn quiet(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn latency(n: &Sizes, echo: SocketAddr, peers: &[Peer]) -> anyhow::Result<()> {
    let mut conns = vec![TcpStream::connect(echo).await?];
    for p in peers {
        conns.push(TcpStream::connect(p.echo).await?);
    }
    for c in &conns {
        c.set_nodelay(true)?;
    }
    let mut times = vec![Vec::with_capacity(n.pings); conns.len()];
    for i in 0..n.pings {
        // Rotate the order so no target always goes first.
        for k in 0..conns.len() {
            let j = (i + k) % conns.len();
            times[j].push(round_trip(&mut conns[j]).await?);
        }
    }
    let stats: Vec<_> = times.iter_mut().map(|t| percentiles(t)).collect();
    let (d50, d99) = stats[0];
    let cells = |f: &dyn Fn(Duration, Duration) -> String| {
        stats[1..]
            .iter()
            .map(|&(p50, p99)| f(p50, p99))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!(
        "| round trip, 64 B, no fault: p50 / p99 | {:.1} µs / {:.1} µs | {} | {} |",
        us(d50),
        us(d99),
        cells(&|p50, p99| format!("{:.1} µs / {:.1} µs", us(p50), us(p99))),
        n.pings
    );
    println!(
        "| **added latency, 64 B, no fault: p50 / p99** | — | {} | {} |",
        cells(&|p50, p99| format!(
            "**{:.1} µs / {:.1} µs**",
            us(p50.saturating_sub(d50)),
            us(p99.saturating_sub(d99))
        )),
        n.pings
    );
    Ok(())
}

async fn throughput(n: &Sizes, source: SocketAddr, peers: &[Peer]) -> anyhow::Result<()> {
    let mut targets = vec![source];
    targets.extend(peers.iter().map(|p| p.source));
    let mut rates = vec![Vec::new(); targets.len()];
    for round in 0..n.bulk_rounds {
        for k in 0..targets.len() {
            let j = (round + k) % targets.len();
            rates[j].push(bulk(targets[j], n.bulk).await?);
        }
    }
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    let cells: Vec<String> = medians[1..]
        .iter()
        .map(|m| format!("{m:.0} MB/s (**{:.2}×**)", m / medians[0]))
        .collect();
    println!(
        "| bulk transfer, MB/s (ratio to direct) | {:.0} MB/s | {} | {} × {} MiB |",
        medians[0],
        cells.join(" | "),
        n.bulk_rounds,
        n.bulk >> 20
    );
    Ok(())
}

/// Reads everything `addr` sends; MB/s.
async fn bulk(addr: SocketAddr, expect: u64) -> anyhow::Result<f64> {
    let mut s = TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let t = Instant::now();
    let mut got = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    anyhow::ensure!(got == expect, "{addr}: got {got} of {expect} bytes");
    Ok(got as f64 / t.elapsed().as_secs_f64() / 1e6)
}

/// What holding many connections through a proxy showed.
struct Held {
    held: usize,
    active: usize,
    errors: usize,
    /// Round trips/s of each round.
    rates: Vec<f64>,
    /// The proxy's CPU time over its rounds.
    cpu: Cpu,
    idle_rss: u64,
    held_rss: u64,
}

impl Held {
    /// The median of the rounds' round trips/s.
    fn rate(&self) -> f64 {
        median(&mut self.rates.clone())
    }
}

/// This bench's binary again, in a process of its own (`--holder`): an
/// echo server and the clients of one proxy's held connections. This
/// process's open-file limit allows one proxy's ~10,000 connections (two
/// descriptors each: client and echo side) but not every proxy's at once;
/// a holder for each lets every proxy hold its connections at once, so the
/// rounds can interleave. Commands and answers are lines on its stdin and
/// stdout.
struct Holder {
    child: Child,
    to: std::process::ChildStdin,
    from: std::io::BufReader<std::process::ChildStdout>,
    /// The holder's echo server.
    echo: SocketAddr,
}

impl Holder {
    fn start() -> anyhow::Result<Holder> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--holder")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let to = child.stdin.take().expect("piped");
        let from = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut h = Holder {
            child,
            to,
            from,
            echo: local(0),
        };
        let first = h.answer()?;
        h.echo = first
            .strip_prefix("echo ")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("holder said {first:?}"))?;
        Ok(h)
    }

    fn answer(&mut self) -> anyhow::Result<String> {
        use std::io::BufRead;
        let mut line = String::new();
        self.from.read_line(&mut line)?;
        anyhow::ensure!(!line.is_empty(), "the holder ended");
        Ok(line.trim_end().to_string())
    }

    /// Sends `command`; the answer's count, errors and first error.
    fn ask(&mut self, command: &str) -> anyhow::Result<(f64, usize, String)> {
        use std::io::Write;
        writeln!(self.to, "{command}")?;
        let line = self.answer()?;
        let mut words = line.splitn(3, ' ');
        let value = words.next().and_then(|w| w.parse().ok());
        let errors = words.next().and_then(|w| w.parse().ok());
        match (value, errors) {
            (Some(v), Some(e)) => Ok((v, e, words.next().unwrap_or("").to_string())),
            _ => anyhow::bail!("holder answered {line:?} to {command:?}"),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A holder's side (see [`Holder`]): `hold ADDR N` opens N connections to
/// ADDR, each checked by a round trip, and answers `HELD ERRORS FIRST`;
/// `round ACTIVE PINGS` sends PINGS round trips on each of the next ACTIVE
/// connections, all at once, and answers `RATE ERRORS FIRST` (round
/// trips/s).
async fn holder() -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt;
    raise_fd_limit();
    println!("echo {}", echo_server().await);
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut errors = Vec::new();
        let value = match words[..] {
            ["hold", addr, n] => {
                let (addr, n): (SocketAddr, usize) = (addr.parse()?, n.parse()?);
                // Open in waves, so the accept queue is not what is
                // measured; a round trip on each proves it reached the
                // upstream.
                for wave in 0..n.div_ceil(500) {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in (wave * 500)..n.min((wave + 1) * 500) {
                        set.spawn(async move {
                            let mut c = TcpStream::connect(addr).await?;
                            echo_once(&mut c).await?;
                            anyhow::Ok(c)
                        });
                    }
                    gather(set, &mut conns, &mut errors).await;
                }
                conns.len() as f64
            }
            ["round", active, pings] => {
                let (active, pings): (usize, usize) = (active.parse()?, pings.parse()?);
                let active = active.min(conns.len());
                let t = Instant::now();
                let mut set = tokio::task::JoinSet::new();
                for mut c in conns.drain(..active) {
                    set.spawn(async move {
                        for _ in 0..pings {
                            echo_once(&mut c).await?;
                        }
                        anyhow::Ok(c)
                    });
                }
                // The connections just used go to the end: the next round
                // takes others while there are others.
                gather(set, &mut conns, &mut errors).await;
                (active * pings) as f64 / t.elapsed().as_secs_f64()
            }
            _ => anyhow::bail!("holder: unknown command {line:?}"),
        };
        let first = errors.first().map_or(String::new(), |e| format!("{e:#}"));
        println!("{value} {} {first}", errors.len());
    }
    Ok(())
}

/// Connections back from `set` go to `conns`; failures to `errors`.
async fn gather(
    set: tokio::task::JoinSet<anyhow::Result<TcpStream>>,
    conns: &mut Vec<TcpStream>,
    errors: &mut Vec<anyhow::Error>,
) {
    for r in set.join_all().await {
        match r {
            Ok(c) => conns.push(c),
            Err(e) => errors.push(e),
        }
    }
}

fn connections(n: &Sizes, peers: &mut [Peer]) -> anyhow::Result<()> {
    // Every proxy's connections are held at once, each proxy's by a
    // holder of its own, and the rounds interleave, each round starting
    // one proxy further: the machine's pace drifts over the minute this
    // takes (when each proxy was measured in a block of its own, a
    // proxy's rate moved 53–82 k between runs, more than between
    // proxies), and now every drift hits every proxy alike. A proxy's rate
    // is the median of its rounds.
    let mut all = Vec::new();
    for p in peers.iter_mut() {
        let idle_rss = p.rss();
        let (name, addr) = (p.name, p.held);
        let note = |errors: usize, first: &str, when: &str| {
            if errors > 0 {
                println!("note: {name}: {errors} errors {when}, the first: {first}");
            }
        };
        let (held, errors, first) = p.ask(&format!("hold {addr} {}", n.held))?;
        note(errors, &first, "while opening");
        let held_rss = p.rss();
        // One round not counted: a holder's first pays for its runtime's
        // warm-up.
        let active = (held as usize).min(n.active);
        let (_, warm, first) = p.ask(&format!("round {active} {}", n.active_pings))?;
        note(warm, &first, "on an active connection");
        all.push(Held {
            held: held as usize,
            active,
            errors: errors + warm,
            rates: Vec::new(),
            cpu: Cpu::default(),
            idle_rss,
            held_rss,
        });
    }
    let first = first_place(peers.len());
    for round in 0..n.active_rounds {
        for k in 0..peers.len() {
            let j = (first + round + k) % peers.len();
            let (p, h) = (&mut peers[j], &mut all[j]);
            let before = p.cpu();
            let (rate, errors, first) = p.ask(&format!("round {} {}", h.active, n.active_pings))?;
            let spent = p.cpu() - before;
            if errors > 0 && h.errors == 0 {
                println!(
                    "note: {}: first error on an active connection: {first}",
                    p.name
                );
            }
            h.errors += errors;
            h.rates.push(rate);
            h.cpu += spent;
        }
    }
    let row = |label: &str, cell: &dyn Fn(&Held) -> String| {
        let cells: Vec<String> = all.iter().map(cell).collect();
        println!(
            "| {label} | — | {} | {} held, {} active |",
            cells.join(" | "),
            n.held,
            n.active
        );
    };
    row(
        "**connections held, errors** (each checked by a round trip)",
        &|h| format!("{} held, **{} errors**", h.held, h.errors),
    );
    row(
        "round trips/s on the active connections (median of interleaved rounds, every proxy's connections held)",
        &|h| {
            let (lo, hi) = h
                .rates
                .iter()
                .fold((f64::MAX, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
            format!(
                "{:.0} ({} × {}; rounds {:.0}–{:.0})",
                h.rate(),
                h.active,
                n.active_pings,
                lo,
                hi
            )
        },
    );
    row(
        "proxy CPU per round trip on the active connections (every thread; of it in user space; how often a thread was scheduled)",
        &|h| {
            let trips = h.rates.len() * h.active * n.active_pings;
            let per = |d: Duration| d.as_secs_f64() * 1e6 / trips.max(1) as f64;
            format!(
                "{:.2} µs (user {:.2}; {:.1} runs on a CPU per 100 round trips)",
                per(h.cpu.all),
                per(h.cpu.user),
                h.cpu.runs as f64 * 100.0 / trips.max(1) as f64
            )
        },
    );
    row(
        "**proxy memory per connection** (RSS held − idle) / connections",
        &|h| {
            format!(
                "**{:.1} KiB** ({:.1} → {:.1} MiB)",
                h.held_rss.saturating_sub(h.idle_rss) as f64 / 1024.0 / h.held.max(1) as f64,
                h.idle_rss as f64 / f64::from(1 << 20),
                h.held_rss as f64 / f64::from(1 << 20),
            )
        },
    );
    Ok(())
}

/// One 64-byte round trip, checked.
async fn echo_once(c: &mut TcpStream) -> anyhow::Result<()> {
    let msg = [9u8; 64];
    let mut back = [0u8; 64];
    c.write_all(&msg).await?;
    c.read_exact(&mut back).await?;
    anyhow::ensure!(back == msg, "echo came back different");
    Ok(())
}

/// Small requests pipelined, as a cache or database client sends them:
/// `pipe_conns` connections each writing `pipe_depth` 64-byte requests at
/// once and reading every answer, `pipe_rounds` times; requests/s, the
/// median of three rounds that rotate through the targets.
async fn pipelined(n: &Sizes, echo: SocketAddr, peers: &[Peer]) -> anyhow::Result<()> {
    let mut targets = vec![echo];
    targets.extend(peers.iter().map(|p| p.echo));
    let mut rates = vec![Vec::new(); targets.len()];
    for round in 0..3 {
        for k in 0..targets.len() {
            let j = (round + k) % targets.len();
            rates[j].push(pipeline_rate(targets[j], n).await?);
        }
    }
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    let cells: Vec<String> = medians[1..]
        .iter()
        .map(|m| format!("{m:.0} (**{:.2}×**)", m / medians[0]))
        .collect();
    println!(
        "| small requests pipelined {} deep on {} connections, requests/s (ratio to direct) | {:.0} | {} | 3 × {} |",
        n.pipe_depth,
        n.pipe_conns,
        medians[0],
        cells.join(" | "),
        n.pipe_conns * n.pipe_depth * n.pipe_rounds
    );
    Ok(())
}

async fn pipeline_rate(addr: SocketAddr, n: &Sizes) -> anyhow::Result<f64> {
    let (depth, rounds) = (n.pipe_depth, n.pipe_rounds);
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n.pipe_conns {
        set.spawn(async move {
            let mut c = TcpStream::connect(addr).await?;
            c.set_nodelay(true)?;
            let burst = vec![7u8; 64 * depth];
            let mut back = vec![0u8; 64 * depth];
            for _ in 0..rounds {
                c.write_all(&burst).await?;
                c.read_exact(&mut back).await?;
                anyhow::ensure!(back == burst, "{addr}: the answers came back different");
            }
            anyhow::Ok(())
        });
    }
    for r in set.join_all().await {
        r?;
    }
    Ok((n.pipe_conns * depth * rounds) as f64 / t.elapsed().as_secs_f64())
}

/// What wrk measured: requests/s, p50, p99.
struct Wrk {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

/// Rounds and length of each HTTP measurement: rounds interleave the
/// targets, so a drift of the machine during a row hits each alike.
const HTTP_ROUNDS: usize = 3;
const HTTP_SECS: u64 = 3;

/// The median of each of wrk's figures over rounds.
fn median_wrk(rounds: &[Wrk]) -> Wrk {
    let of = |f: fn(&Wrk) -> f64| median(&mut rounds.iter().map(f).collect::<Vec<_>>());
    Wrk {
        rate: of(|w| w.rate),
        p50: Duration::from_secs_f64(of(|w| w.p50.as_secs_f64())),
        p99: Duration::from_secs_f64(of(|w| w.p99.as_secs_f64())),
    }
}

/// `rounds` of one measurement of each of `targets`: every round starts
/// one place further (the first round at a place that changes from run to
/// run), so no target is always first or always after the same one. Each
/// target's results in round order; a failure names its target.
fn rotated<T>(
    targets: &[Peer],
    rounds: usize,
    mut measure: impl FnMut(&Peer) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<Vec<T>>> {
    let first = first_place(targets.len());
    let mut got: Vec<Vec<T>> = targets.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for k in 0..targets.len() {
            let j = (first + round + k) % targets.len();
            got[j].push(measure(&targets[j]).with_context(|| targets[j].name)?);
        }
    }
    Ok(got)
}

/// A place among `n` to start a rotation, different from run to run.
fn first_place(n: usize) -> usize {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as usize)
        % n
}

/// A time as wrk and h2load print it (`812.00us`, `1.27ms`, `2s`).
fn duration(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let x: f64 = num.parse().ok()?;
    Some(Duration::from_secs_f64(match unit {
        "us" => x / 1e6,
        "ms" => x / 1e3,
        "s" => x,
        _ => return None,
    }))
}

/// `wrk -t1 -cC -dD --latency url`, parsed.
fn wrk(url: &str, connections: usize, secs: u64) -> anyhow::Result<Wrk> {
    let out = Command::new("/usr/bin/wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(
        out.status.success(),
        "wrk: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw errors against {url}:\n{text}"
    );
    let field = |label: &str| -> Option<&str> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(str::trim)
    };
    let parsed = (|| {
        Some(Wrk {
            rate: field("Requests/sec:")?.parse().ok()?,
            p50: duration(field("50%")?)?,
            p99: duration(field("99%")?)?,
        })
    })();
    parsed.ok_or_else(|| anyhow::anyhow!("cannot read wrk's output:\n{text}"))
}

/// HTTP/1.1 keep-alive through firedrill's HTTP-mode proxy and through
/// nginx as a reverse proxy (`proxy_pass` to a keep-alive upstream), both
/// in front of the same origin (an nginx answering `ok`), with wrk at a
/// few concurrency levels, rotating the order; direct to the origin as
/// the limit. A second table, since the peers differ from the TCP rows.
async fn http_rows(dir: &Path) -> anyhow::Result<()> {
    debian("/usr/sbin/nginx", &["nginx"])?;
    debian("/usr/bin/wrk", &["wrk"])?;
    debian("/usr/bin/h2load", &["nghttp2-client"])?;
    let (origin, via_nginx) = (free_port()?, free_port()?);
    let (origin_h2, via_nginx_h2) = (free_port()?, free_port()?);
    let conf = |name: &str, workers: &str, body: String| -> anyhow::Result<Child> {
        let prefix = dir.join(name);
        std::fs::create_dir_all(prefix.join("logs"))?;
        let p = prefix.display();
        std::fs::write(
            prefix.join("nginx.conf"),
            format!(
                "worker_processes {workers};\nworker_rlimit_nofile 65536;\npid {p}/nginx.pid;\n\
                 error_log {p}/logs/error.log warn;\nevents {{ worker_connections 32768; }}\n\
                 http {{ access_log off; client_body_temp_path {p}; proxy_temp_path {p}; \
                 fastcgi_temp_path {p}; uwsgi_temp_path {p}; scgi_temp_path {p};\n{body}\n}}\n"
            ),
        )?;
        Ok(Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stderr(Stdio::null())
            .spawn()?)
    };
    let mut targets = vec![
        Peer::new(
            "origin",
            vec![conf(
                "origin",
                "1",
                format!(
                    "server {{ listen 127.0.0.1:{origin}; keepalive_requests 1000000; location / {{ return 200 \"ok\\n\"; }} }}\n\
                     server {{ listen 127.0.0.1:{origin_h2} http2; keepalive_requests 1000000000; location / {{ return 200 \"ok\\n\"; }} }}"
                ),
            )?],
            local(origin),
            local(origin_h2),
        ),
        http_firedrill(
            Path::new(env!("CARGO_BIN_EXE_firedrill")),
            "firedrill (HTTP mode)",
            (local(origin), local(origin_h2)),
        )?,
        Peer::new(
            "nginx proxy_pass",
            vec![conf(
                "nginx-http",
                "auto",
                format!(
                    "upstream origin {{ server 127.0.0.1:{origin}; keepalive 1024; keepalive_requests 1000000; }}\n\
                     server {{ listen 127.0.0.1:{via_nginx}; listen 127.0.0.1:{via_nginx_h2} http2; keepalive_requests 1000000000; \
                     location / {{ proxy_pass http://origin; \
                     proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; }} }}"
                ),
            )?],
            local(via_nginx),
            local(via_nginx_h2),
        ),
    ];
    if let Some(bin) = baseline() {
        targets.push(http_firedrill(
            &bin,
            "firedrill (baseline)",
            (local(origin), local(origin_h2)),
        )?);
    }
    // Here `echo` is each target's HTTP/1.1 port, `source` its h2c port.
    for t in &targets {
        t.ready().await?;
    }
    let header = |title: &str| {
        let names: Vec<&str> = targets[1..].iter().map(|t| t.name).collect();
        println!(
            "| {title} | direct to the origin | {} | n |\n|---|---|{}---|",
            names.join(" | "),
            "---|".repeat(names.len())
        );
    };
    header(&format!(
        "HTTP/1.1 keep-alive (wrk -t1; median of {HTTP_ROUNDS} rounds of {HTTP_SECS} s)"
    ));
    for connections in [8usize, 64, 256] {
        let got = rotated(&targets, HTTP_ROUNDS, |t| {
            wrk(&format!("http://{}/", t.echo), connections, HTTP_SECS)
        })?;
        let got: Vec<Wrk> = got.iter().map(|w| median_wrk(w)).collect();
        let base = got[0].rate;
        let cell = |w: &Wrk, ratio: bool| {
            format!(
                "{:.0} req/s{}; {:.0} / {:.0} µs",
                w.rate,
                if ratio {
                    format!(" (**{:.2}×**)", w.rate / base)
                } else {
                    String::new()
                },
                us(w.p50),
                us(w.p99)
            )
        };
        println!(
            "| {connections} connections: requests/s; latency p50 / p99 | {} | {} | {HTTP_ROUNDS} × {HTTP_SECS} s |",
            cell(&got[0], false),
            got[1..]
                .iter()
                .map(|w| cell(w, true))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    println!();
    header(&format!(
        "h2c, prior knowledge (h2load, 10 streams per connection; median of {HTTP_ROUNDS} rounds of {HTTP_SECS} s)"
    ));
    for connections in [8usize, 64] {
        let got = rotated(&targets, HTTP_ROUNDS, |t| {
            h2load(&format!("http://{}/", t.source), connections, HTTP_SECS)
        })?;
        let got: Vec<(f64, Duration)> = got
            .iter()
            .map(|g| {
                let mut rates: Vec<f64> = g.iter().map(|(r, _)| *r).collect();
                let means: Vec<Duration> = g.iter().map(|(_, m)| *m).collect();
                (median(&mut rates), median_duration(&means))
            })
            .collect();
        let base = got[0].0;
        println!(
            "| {connections} connections: requests/s; mean latency | {:.0} req/s; {:.0} µs | {} | {HTTP_ROUNDS} × {HTTP_SECS} s |",
            base,
            us(got[0].1),
            got[1..]
                .iter()
                .map(|(rate, mean)| format!(
                    "{rate:.0} req/s (**{:.2}×**); {:.0} µs",
                    rate / base,
                    us(*mean)
                ))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(())
}

/// firedrill's HTTP-mode proxy from `bin` in front of `origin`'s HTTP/1.1
/// and h2c ports: `echo` is its HTTP/1.1 port, `source` its h2c port.
fn http_firedrill(
    bin: &Path,
    name: &'static str,
    origin: (SocketAddr, SocketAddr),
) -> anyhow::Result<Peer> {
    let (h1, h2) = (free_port()?, free_port()?);
    let start = |listen: u16, upstream: SocketAddr| {
        Command::new(bin)
            .args(["proxy", "run", "--mode", "http", "--listen"])
            .arg(local(listen).to_string())
            .arg("--upstream")
            .arg(upstream.to_string())
            .stdout(Stdio::null())
            .spawn()
    };
    Ok(Peer::new(
        name,
        vec![start(h1, origin.0)?, start(h2, origin.1)?],
        local(h1),
        local(h2),
    ))
}

/// `h2load -cC -m10 -DD url` (h2c with prior knowledge), parsed: requests/s
/// and the mean time per request.
fn h2load(url: &str, connections: usize, secs: u64) -> anyhow::Result<(f64, Duration)> {
    let out = Command::new("/usr/bin/h2load")
        .args([
            &format!("-c{connections}"),
            "-m10",
            &format!("-D{secs}"),
            url,
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(
        out.status.success() && text.contains(" 0 failed, 0 errored"),
        "h2load against {url}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = (|| {
        let rate = text
            .lines()
            .find_map(|l| l.strip_prefix("finished in "))?
            .split(", ")
            .nth(1)?
            .strip_suffix(" req/s")?
            .parse()
            .ok()?;
        let mean = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("time for request:"))?
            .split_whitespace()
            .nth(2)?;
        Some((rate, duration(mean)?))
    })();
    parsed.ok_or_else(|| anyhow::anyhow!("cannot read h2load's output:\n{text}"))
}
