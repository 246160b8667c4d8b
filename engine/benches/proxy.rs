//! Fidelity and cost of the TCP proxy, printed as a Markdown table for
//! docs/PERFORMANCE.md. Each figure is measured against direct loopback in
//! the same run, interleaved where it is a ratio:
//!
//! - throughput of a bulk transfer through the proxy / direct;
//! - accuracy of a 100 ms delay fault (error of each round trip beyond the
//!   baseline, p50 and p99);
//! - accuracy of the bandwidth fault from 1 KB/s to 100 MB/s;
//! - time from a fault call to its effect on the next byte: how long data
//!   still flows after a blackhole is applied, and how long held data waits
//!   after it is reverted.
//!
//! Run it with `cargo bench -p firedrill --bench proxy` (add `-- --quick`
//! for a smoke run, as CI does in the test profile; `-- --threads` serves
//! the connections on threads of their own, as `firedrill proxy serve`
//! does, instead of the bench's runtime, as a drill does; `-- --only
//! switch` runs only the rows named, comma-separated, from `throughput`,
//! `delay`, `bandwidth` and `switch`).

use firedrill::drivers::proxy::{Direction, Effect, Proxy, ProxyConfig, ProxyFault, ProxyMode};
use firedrill_tests::{bench_rows, echo_server, median, percentiles, round_trip, source_server};
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, sockopt};
use nix::sys::time::TimeSpec;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::TcpStream;

struct Sizes {
    bulk: u64,
    bulk_rounds: usize,
    delay_conns: usize,
    delay_pings: usize,
    rates: &'static [u64],
    rate_seconds: f64,
    switch_trials: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows =
        bench_rows(&["throughput", "delay", "bandwidth", "switch"]).map_err(anyhow::Error::msg)?;
    let runs = |row: &str| rows.contains(&row);
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--threads") {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        firedrill::drivers::proxy::serve_connections_on_threads(cores)?;
    }
    let n = if quick {
        Sizes {
            bulk: 8 << 20,
            bulk_rounds: 1,
            delay_conns: 2,
            delay_pings: 3,
            rates: &[100_000, 10_000_000],
            rate_seconds: 0.3,
            switch_trials: 3,
        }
    } else {
        Sizes {
            bulk: 512 << 20,
            bulk_rounds: 5,
            delay_conns: 10,
            delay_pings: 50,
            rates: &[1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000],
            rate_seconds: 3.0,
            switch_trials: 500,
        }
    };
    println!("| figure | value | n |");
    println!("|---|---|---|");
    if runs("throughput") {
        throughput(&n).await?;
    }
    if runs("delay") {
        delay_accuracy(&n).await?;
    }
    if runs("bandwidth") {
        bandwidth_accuracy(&n).await?;
    }
    if runs("switch") {
        switch_time(&n).await?;
    }
    Ok(())
}

async fn proxy(upstream: SocketAddr) -> anyhow::Result<Arc<Proxy>> {
    Ok(Proxy::start(ProxyConfig {
        name: "bench".into(),
        listen: "127.0.0.1:0".parse()?,
        upstream: upstream.to_string(),
        mode: ProxyMode::Tcp,
    })
    .await?)
}

fn fault(effect: Effect) -> ProxyFault {
    ProxyFault::new(effect, 1.0, None, 1)
}

/// Read everything `addr` sends; bytes and the time from the first byte to
/// the last.
async fn drain(addr: SocketAddr) -> anyhow::Result<(u64, Duration)> {
    let mut s = TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut first = None;
    loop {
        let k = s.read(&mut buf).await?;
        if k == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        total += k as u64;
    }
    Ok((total, first.map(|f| f.elapsed()).unwrap_or_default()))
}

async fn throughput(n: &Sizes) -> anyhow::Result<()> {
    let source = source_server(n.bulk).await;
    let p = proxy(source).await?;
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    for _ in 0..n.bulk_rounds {
        let (b, t) = drain(source).await?;
        direct.push(b as f64 / t.as_secs_f64());
        let (b, t) = drain(p.local_addr()).await?;
        proxied.push(b as f64 / t.as_secs_f64());
    }
    let d = median(&mut direct);
    let q = median(&mut proxied);
    println!(
        "| bulk transfer, direct loopback | {:.0} MB/s | {} × {} MiB |",
        d / 1e6,
        n.bulk_rounds,
        n.bulk >> 20
    );
    println!(
        "| bulk transfer through the proxy, no fault | {:.0} MB/s | {} × {} MiB |",
        q / 1e6,
        n.bulk_rounds,
        n.bulk >> 20
    );
    println!(
        "| **throughput ratio, proxy / direct** | **{:.2}** | medians of the above |",
        q / d
    );
    Ok(())
}

async fn delay_accuracy(n: &Sizes) -> anyhow::Result<()> {
    const DELAY: Duration = Duration::from_millis(100);
    let echo = echo_server().await;
    let p = proxy(echo).await?;
    // The same connections' round trip without the fault is the baseline.
    let mut conns = Vec::new();
    let mut base = Vec::new();
    for _ in 0..n.delay_conns {
        let mut s = TcpStream::connect(p.local_addr()).await?;
        s.set_nodelay(true)?;
        for _ in 0..20 {
            base.push(round_trip(&mut s).await?);
        }
        conns.push(s);
    }
    let baseline = base[..].iter().copied().min().unwrap_or_default();
    p.add_fault(fault(Effect::Delay {
        latency: DELAY,
        jitter: Duration::ZERO,
        direction: Direction::Downstream,
    }));
    let pings = n.delay_pings;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut out = Vec::new();
                for _ in 0..pings {
                    out.push(round_trip(&mut s).await?);
                }
                anyhow::Ok(out)
            })
        })
        .collect();
    let mut errors = Vec::new();
    for t in tasks {
        for rtt in t.await?? {
            let extra = rtt.saturating_sub(baseline).as_secs_f64() - DELAY.as_secs_f64();
            errors.push(extra.abs() * 1e3);
        }
    }
    errors.sort_by(f64::total_cmp);
    let at = |q: f64| errors[((errors.len() - 1) as f64 * q) as usize];
    println!(
        "| **delay fault accuracy, 100 ms** (round trip − fastest baseline − 100 ms) | **p50 {:.2} ms, p99 {:.2} ms** | {} |",
        at(0.5),
        at(0.99),
        errors.len()
    );
    Ok(())
}

async fn bandwidth_accuracy(n: &Sizes) -> anyhow::Result<()> {
    let mut cells = Vec::new();
    let mut worst: f64 = 0.0;
    for &rate in n.rates {
        let bytes = (rate as f64 * n.rate_seconds) as u64;
        let source = source_server(bytes).await;
        let p = proxy(source).await?;
        p.add_fault(fault(Effect::Bandwidth {
            rate,
            direction: Direction::Downstream,
        }));
        let (got, t) = drain(p.local_addr()).await?;
        // The first byte is not paced: rate over the bytes after it.
        let measured = (got.saturating_sub(1)) as f64 / t.as_secs_f64();
        let err = (measured / rate as f64 - 1.0) * 100.0;
        worst = worst.max(err.abs());
        cells.push(format!("{} {:+.1} %", human(rate), err));
    }
    println!(
        "| **bandwidth fault accuracy** (measured rate vs set, {:.1} s transfers) | {}; **worst {:.1} %** | 1 per rate |",
        n.rate_seconds,
        cells.join(", "),
        worst
    );
    Ok(())
}

fn human(rate: u64) -> String {
    match rate {
        r if r >= 1_000_000 => format!("{} MB/s", r / 1_000_000),
        r if r >= 1_000 => format!("{} KB/s", r / 1_000),
        r => format!("{r} B/s"),
    }
}

/// Blackhole a stream in full flow: how long the proxy keeps writing after
/// the call returns. Then revert: how long from the call until the first
/// held byte reaches the client.
async fn switch_time(n: &Sizes) -> anyhow::Result<()> {
    let source = source_server(u64::MAX).await;
    let p = proxy(source).await?;
    // Receive timestamps are switched on for the whole host by the first
    // socket that asks and off by the last one closed, each time patching
    // the kernel's code and deferred: this socket keeps them on throughout.
    let stamping = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket::setsockopt(&stamping, sockopt::ReceiveTimestampns, &true)?;
    let mut apply = Vec::new();
    let mut revert = Vec::new();
    for _ in 0..n.switch_trials {
        // The client keeps reading, so the proxy is never held up by it.
        let before = p.stats().bytes_down.get();
        let s = TcpStream::connect(p.local_addr()).await?;
        socket::setsockopt(&s, sockopt::ReceiveTimestampns, &true)?;
        let client = Arc::new(Client::default());
        let seen = client.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while s.readable().await.is_ok() {
                let fd = s.as_raw_fd();
                match s.try_io(Interest::READABLE, || seen.read(fd, &mut buf)) {
                    Ok(0) => break,
                    Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                        *seen.failed.lock().unwrap() = Some(e.to_string());
                        break;
                    }
                    _ => {}
                }
            }
        });
        let p2 = p.clone();
        // Watched from a thread of its own, so the watching takes no turn
        // from the proxy's runtime.
        let (a, r) =
            tokio::task::spawn_blocking(move || switch_once(&p2, before, &client)).await??;
        apply.push(a);
        revert.push(r);
        reader.abort();
        // The next trial starts once this connection is gone from the
        // proxy: the byte counter is the proxy's, over all connections, and
        // a dying connection's last write would be timed as the next
        // trial's.
        let t = Instant::now();
        while p.stats().open.load(Ordering::Relaxed) > 0 {
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(5),
                "connection not closed"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    drop(stamping);
    let (a50, a99) = percentiles(&mut apply);
    let (r50, r99) = percentiles(&mut revert);
    println!(
        "| **fault call → effect on the next byte**: apply (blackhole on a stream in full flow; last byte the proxy writes after the call) | **p50 {:.3} ms, p99 {:.3} ms** | {} |",
        ms(a50),
        ms(a99),
        apply.len()
    );
    println!(
        "| **fault call → effect on the next byte**: revert (from the call to the first held byte at the client, by its receive timestamp) | **p50 {:.3} ms, p99 {:.3} ms** | {} |",
        ms(r50),
        ms(r99),
        revert.len()
    );
    Ok(())
}

/// The switch bench's client, as its watcher sees it: the bytes it read,
/// and when the first byte it read after [`Client::clear`] came in, by the
/// kernel's receive timestamp (`SO_TIMESTAMPNS`). On loopback that stamp
/// is taken in the receive softirq before the segment is queued to the
/// socket, usually inside the proxy's write (later, never earlier, if
/// the softirq is deferred to ksoftirqd), however late the client's task
/// runs to read it.
struct Client {
    read: AtomicU64,
    /// Nanoseconds since the epoch; zero while waiting for a read;
    /// `u64::MAX` before the first [`Client::clear`].
    first: AtomicU64,
    /// Why the client stopped reading, if it failed.
    failed: std::sync::Mutex<Option<String>>,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            read: AtomicU64::new(0),
            first: AtomicU64::new(u64::MAX),
            failed: std::sync::Mutex::new(None),
        }
    }
}

impl Client {
    fn clear(&self) {
        self.first.store(0, Ordering::SeqCst);
    }

    /// Reads from `fd` into `buf`; while waiting for the first byte, one
    /// byte only, so the stamp is that byte's segment's and not that of
    /// the last segment read.
    fn read(&self, fd: RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = if self.first.load(Ordering::SeqCst) != 0 {
            socket::recv(fd, buf, MsgFlags::empty())?
        } else {
            let mut space = nix::cmsg_space!(TimeSpec);
            let mut iov = [IoSliceMut::new(&mut buf[..1])];
            let msg = socket::recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::empty())?;
            if msg.bytes > 0 {
                let stamp = msg.cmsgs()?.find_map(|c| match c {
                    ControlMessageOwned::ScmTimestampns(t) => Some(t),
                    _ => None,
                });
                let stamp = stamp.ok_or_else(|| {
                    std::io::Error::other("a read came without its receive timestamp")
                })?;
                let ns = stamp.tv_sec() as u64 * 1_000_000_000 + stamp.tv_nsec() as u64;
                self.first.store(ns, Ordering::SeqCst);
            }
            msg.bytes
        };
        self.read.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }

    fn first(&self) -> Option<SystemTime> {
        match self.first.load(Ordering::SeqCst) {
            0 | u64::MAX => None,
            ns => Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)),
        }
    }

    fn failed(&self) -> anyhow::Result<()> {
        match self.failed.lock().unwrap().take() {
            Some(e) => anyhow::bail!("the client stopped reading: {e}"),
            None => Ok(()),
        }
    }
}

/// One blackhole on and off a stream in full flow; `before` is the proxy's
/// byte counter before the client connected. Apply is timed by that
/// counter: how long bytes still go out after the call (bytes the kernel
/// already holds in socket buffers are not the proxy's and are left out).
/// Revert is timed by the client's receive timestamp of its first byte
/// after the call. Not by a thread watching the counter: on two cores the
/// connection thread the revert wakes can take that thread's core, and the
/// figure was then the watcher's wait for a core (docs/PERFORMANCE.md,
/// issue 19, ninth look).
fn switch_once(p: &Proxy, before: u64, client: &Client) -> anyhow::Result<(Duration, Duration)> {
    let sent = || p.stats().bytes_down.get();
    // The watcher yields between looks so it takes no core the proxy
    // needs. Wait until the stream is in full flow.
    let start = sent();
    let t = Instant::now();
    while sent() < start + (1 << 20) {
        anyhow::ensure!(t.elapsed() < Duration::from_secs(5), "no flow");
        client.failed()?;
        std::thread::yield_now();
    }
    let key = p.add_fault(fault(Effect::Blackhole {
        direction: Direction::Downstream,
    }));
    let t0 = Instant::now();
    let (mut seen, mut last) = (sent(), t0);
    // Flow has stopped once the counter stays still for 50 ms.
    while last.elapsed() < Duration::from_millis(50) {
        let now = sent();
        if now != seen {
            (seen, last) = (now, Instant::now());
        }
        std::thread::yield_now();
    }
    let applied = last - t0;
    // Every byte the proxy wrote has reached the client and been read, so
    // the next byte the client reads is one the blackhole held.
    let t = Instant::now();
    while client.read.load(Ordering::SeqCst) < seen - before {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(5),
            "the client had not read all the proxy wrote before the revert"
        );
        client.failed()?;
        std::thread::sleep(Duration::from_micros(100));
    }
    client.clear();
    let (t1, called) = (Instant::now(), SystemTime::now());
    p.remove_fault(key);
    // Sleeping, not spinning: the kernel times the client's first byte.
    let received = loop {
        if let Some(at) = client.first() {
            break at;
        }
        client.failed()?;
        anyhow::ensure!(
            t1.elapsed() < Duration::from_secs(5),
            "no byte at the client within 5 s of the revert"
        );
        std::thread::sleep(Duration::from_micros(100));
    };
    let reverted = received.duration_since(called).map_err(|e| {
        anyhow::anyhow!(
            "the client's first byte after the revert was stamped {:?} before the call",
            e.duration()
        )
    })?;
    Ok((applied, reverted))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
