//! Proxy targets: the principal type is [`Proxy`], a listener that real
//! clients connect through, forwarding to an upstream, with a set of active
//! [`ProxyFault`]s that every connection consults as data flows.
//!
//! ```text
//!  client ──► listen ──► [tcp.rs: delay per chunk] ──────────────► upstream
//!                    └─► [http.rs: hyper server → fail-auth, http-error,
//!                         request delay → hyper client] ──────────► upstream
//! ```
//!
//! Faults are read at the moment data moves, so adding or removing one takes
//! effect on live connections as well as new ones.

mod body;
mod buffers;
mod fast;
mod h1;
mod http;
mod relay;
mod tcp;
mod timer;
mod wakes;

use glob::Pattern;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wakes::Wakes;

/// How a proxy understands its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyMode {
    /// Bytes: connection-level faults only.
    #[default]
    Tcp,
    /// HTTP/1.1 with keep-alive and HTTP/2 cleartext (gRPC): request-level
    /// faults too.
    Http,
}

/// Which way traffic flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Client to upstream.
    Upstream,
    /// Upstream to client.
    Downstream,
    /// Both.
    Both,
}

impl Direction {
    fn covers(self, flow: Direction) -> bool {
        self == Direction::Both || self == flow
    }
}

/// How `fail-auth` breaks authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Answer 401/403 without reaching upstream.
    Reject,
    /// Remove credentials before forwarding.
    Strip,
    /// Alter credentials before forwarding.
    Corrupt,
    /// Answer 401 for an expired access token.
    Expire,
}

/// Where `http-abort` breaks an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbortPoint {
    /// Before the request reaches upstream: no response at all.
    Request,
    /// After the response headers and half the body (or its first byte
    /// when the length is unknown).
    Response,
}

/// What `http-modify` changes in a matching response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponsePatch {
    /// New status.
    pub status: Option<u16>,
    /// Headers to set, replacing those of the same name.
    pub set_headers: Vec<(String, String)>,
    /// Headers to remove.
    pub remove_headers: Vec<String>,
    /// New body.
    pub body: Option<String>,
}

/// What a fault does to traffic. Connection-level effects (everything but
/// `FailAuth` and `HttpError`) decide once per connection whether they apply
/// to it, as Toxiproxy's toxicity does; request-level effects draw per
/// request.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Add latency (+ uniform jitter) to every chunk in a direction; on an
    /// HTTP proxy, to every matching request or response.
    Delay {
        /// Fixed part.
        latency: Duration,
        /// Upper bound of the random part.
        jitter: Duration,
        /// Which way.
        direction: Direction,
    },
    /// Hold a new connection this long before its first byte moves.
    ConnectDelay {
        /// Fixed part.
        latency: Duration,
        /// Upper bound of the random part.
        jitter: Duration,
    },
    /// Limit throughput to `rate` bytes per second.
    Bandwidth {
        /// Bytes per second, at least 1.
        rate: u64,
        /// Which way.
        direction: Direction,
    },
    /// Forward nothing; bytes wait (TCP flow control pushes back, as on a
    /// partitioned link) and flow again on revert.
    Blackhole {
        /// Which way.
        direction: Direction,
    },
    /// The listener is down: new connections are refused. With a
    /// probability below 1, that share of new connections is reset at
    /// accept instead. Live connections are untouched.
    Refuse,
    /// Reset (TCP RST) connections `after` this long.
    ResetPeer {
        /// Since the connection opened or the fault began, whichever is
        /// later.
        after: Duration,
        /// Downstream resets the client, upstream resets the upstream.
        direction: Direction,
    },
    /// Stop data and close connections after `after`; zero never closes.
    Timeout {
        /// Since the connection opened or the fault began.
        after: Duration,
        /// Which way data stops.
        direction: Direction,
        /// Close the connections it held when it is reverted (Toxiproxy's
        /// behaviour) instead of letting held data flow again.
        close_on_revert: bool,
    },
    /// Hold back the close (FIN) for this long once the sender closed.
    SlowClose {
        /// How long.
        delay: Duration,
        /// Which way.
        direction: Direction,
    },
    /// Cut data into pieces of `average` ± `variation` bytes, `delay` apart.
    Slicer {
        /// Mean piece size, at least 1.
        average: usize,
        /// Largest deviation from the mean.
        variation: usize,
        /// Pause between pieces.
        delay: Duration,
        /// Which way.
        direction: Direction,
    },
    /// Close the connection once `bytes` have passed in a direction since
    /// the fault began.
    LimitData {
        /// Bytes.
        bytes: u64,
        /// Which way.
        direction: Direction,
    },
    /// Break authentication (HTTP mode).
    FailAuth {
        /// How.
        mode: AuthMode,
        /// Status for `reject`.
        status: u16,
    },
    /// Answer with an error status (HTTP mode).
    HttpError {
        /// Status.
        status: u16,
        /// Body.
        body: String,
        /// Extra headers, e.g. `retry-after`.
        headers: Vec<(String, String)>,
    },
    /// Break the exchange: close (or reset) the client's connection
    /// (HTTP mode).
    HttpAbort {
        /// Where.
        at: AbortPoint,
        /// RST instead of FIN.
        reset: bool,
    },
    /// Change responses (HTTP mode).
    HttpModify {
        /// How.
        patch: Box<ResponsePatch>,
    },
}

impl Effect {
    /// Whether this effect needs an HTTP-mode proxy.
    pub fn needs_http(&self) -> bool {
        matches!(
            self,
            Effect::FailAuth { .. }
                | Effect::HttpError { .. }
                | Effect::HttpAbort { .. }
                | Effect::HttpModify { .. }
        )
    }

    /// Whether this effect works on byte streams only (a TCP-mode proxy).
    pub fn needs_tcp(&self) -> bool {
        !self.needs_http()
            && !matches!(
                self,
                Effect::Delay { .. }
                    | Effect::ConnectDelay { .. }
                    | Effect::Refuse
                    | Effect::Bandwidth { .. }
            )
    }

    /// The direction data it acts on flows, for stream effects.
    pub fn direction(&self) -> Option<Direction> {
        match *self {
            Effect::Delay { direction, .. }
            | Effect::Bandwidth { direction, .. }
            | Effect::Blackhole { direction }
            | Effect::ResetPeer { direction, .. }
            | Effect::Timeout { direction, .. }
            | Effect::SlowClose { direction, .. }
            | Effect::Slicer { direction, .. }
            | Effect::LimitData { direction, .. } => Some(direction),
            _ => None,
        }
    }
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use humantime::format_duration as d;
        match self {
            Effect::Delay {
                latency,
                jitter,
                direction,
            } => write!(f, "{} ± {} {direction}", d(*latency), d(*jitter)),
            Effect::ConnectDelay { latency, jitter } => {
                write!(f, "{} ± {} on connect", d(*latency), d(*jitter))
            }
            Effect::Bandwidth { rate, direction } => write!(f, "{rate} B/s {direction}"),
            Effect::Blackhole { direction } => write!(f, "hold all data {direction}"),
            Effect::Refuse => f.write_str("refuse new connections"),
            Effect::ResetPeer { after, direction } => {
                write!(f, "reset after {} {direction}", d(*after))
            }
            Effect::Timeout {
                after, direction, ..
            } if after.is_zero() => write!(f, "stop data, never close {direction}"),
            Effect::Timeout {
                after, direction, ..
            } => {
                write!(f, "stop data, close after {} {direction}", d(*after))
            }
            Effect::SlowClose { delay, direction } => {
                write!(f, "close {} late {direction}", d(*delay))
            }
            Effect::Slicer {
                average,
                variation,
                delay,
                direction,
            } => write!(
                f,
                "pieces of {average} ± {variation} bytes, {} apart {direction}",
                d(*delay)
            ),
            Effect::LimitData { bytes, direction } => {
                write!(f, "close after {bytes} bytes {direction}")
            }
            Effect::FailAuth { mode, status } => {
                let mode = match mode {
                    AuthMode::Reject => "reject",
                    AuthMode::Strip => "strip",
                    AuthMode::Corrupt => "corrupt",
                    AuthMode::Expire => "expire",
                };
                write!(f, "{mode} ({status})")
            }
            Effect::HttpError { status, .. } => write!(f, "status {status}"),
            Effect::HttpAbort { at, reset } => {
                let how = if *reset { "reset" } else { "close" };
                match at {
                    AbortPoint::Request => write!(f, "{how} before the request goes upstream"),
                    AbortPoint::Response => write!(f, "{how} mid-response"),
                }
            }
            Effect::HttpModify { patch } => {
                let mut parts = Vec::new();
                if let Some(s) = patch.status {
                    parts.push(format!("status {s}"));
                }
                for (h, _) in &patch.set_headers {
                    parts.push(format!("set {h}"));
                }
                for h in &patch.remove_headers {
                    parts.push(format!("remove {h}"));
                }
                if patch.body.is_some() {
                    parts.push("replace body".into());
                }
                write!(f, "modify response: {}", parts.join(", "))
            }
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
            Direction::Both => "both",
        })
    }
}

/// Selects HTTP requests.
#[derive(Debug, Clone, Default)]
pub struct RequestMatch {
    /// Method, case-insensitive.
    pub method: Option<String>,
    /// Glob over the path.
    pub path: Option<Pattern>,
    /// Header name, and value if non-empty.
    pub header: Option<(String, String)>,
}

impl RequestMatch {
    fn matches<B>(&self, req: &hyper::Request<B>) -> bool {
        if let Some(m) = &self.method
            && !req.method().as_str().eq_ignore_ascii_case(m)
        {
            return false;
        }
        if let Some(p) = &self.path
            && !p.matches(req.uri().path())
        {
            return false;
        }
        if let Some((name, value)) = &self.header {
            match req.headers().get(name.as_str()) {
                None => return false,
                Some(v) if !value.is_empty() && v.as_bytes() != value.as_bytes() => return false,
                Some(_) => {}
            }
        }
        true
    }
}

/// An active fault on a proxy.
#[derive(Debug)]
pub struct ProxyFault {
    /// Key to remove it with.
    pub key: u64,
    /// What it does.
    pub effect: Effect,
    /// Chance per connection (connection-level effects) or per request.
    pub probability: f64,
    /// Which requests (HTTP mode).
    pub matcher: Option<RequestMatch>,
    /// A name the control API knows it by.
    pub name: Option<String>,
    added: Instant,
    rng: Mutex<ChaCha8Rng>,
}

impl ProxyFault {
    /// A fault whose random draws come from `seed`.
    pub fn new(
        effect: Effect,
        probability: f64,
        matcher: Option<RequestMatch>,
        seed: u64,
    ) -> ProxyFault {
        ProxyFault {
            key: 0,
            effect,
            probability,
            matcher,
            name: None,
            added: Instant::now(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// The same fault, known by `name`.
    pub fn named(mut self, name: impl Into<String>) -> ProxyFault {
        self.name = Some(name.into());
        self
    }

    /// When it took effect.
    pub fn added(&self) -> Instant {
        self.added
    }

    /// Draw: does the fault apply this time?
    fn fires(&self) -> bool {
        self.probability >= 1.0 || self.rng.lock().unwrap().random::<f64>() < self.probability
    }

    fn jitter(&self, max: Duration) -> Duration {
        if max.is_zero() {
            return max;
        }
        let nanos = self
            .rng
            .lock()
            .unwrap()
            .random_range(0..=max.as_nanos() as u64);
        Duration::from_nanos(nanos)
    }

    /// A piece size for the slicer: `average` ± `variation`, at least 1.
    fn piece(&self, average: usize, variation: usize) -> usize {
        let lo = average.saturating_sub(variation).max(1);
        let hi = average.saturating_add(variation).max(lo);
        self.rng.lock().unwrap().random_range(lo..=hi)
    }
}

/// One client connection's view of the faults: whether each applies to it is
/// drawn once, the first time the connection meets it.
#[derive(Debug)]
pub(crate) struct Conn {
    opened: Instant,
    decided: Mutex<std::collections::HashMap<u64, bool>>,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            opened: Instant::now(),
            decided: Mutex::default(),
        }
    }

    fn applies(&self, f: &ProxyFault) -> bool {
        *self
            .decided
            .lock()
            .unwrap()
            .entry(f.key)
            .or_insert_with(|| f.fires())
    }

    /// When `f` began for this connection.
    fn since(&self, f: &ProxyFault) -> Instant {
        self.opened.max(f.added)
    }
}

/// What a proxy is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyConfig {
    /// Target name.
    pub name: String,
    /// Where clients connect (port 0 picks one).
    pub listen: SocketAddr,
    /// Where traffic goes, `host:port`.
    pub upstream: String,
    /// TCP or HTTP.
    pub mode: ProxyMode,
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    /// Cancelled once the listener is closed.
    closed: CancellationToken,
}

#[derive(Debug)]
pub(crate) struct Shared {
    upstream: String,
    faults: RwLock<Arc<Vec<Arc<ProxyFault>>>>,
    /// How many faults `faults` holds, readable without the lock: the
    /// TCP fast path checks it before every write.
    active: AtomicUsize,
    next_key: AtomicU64,
    /// Bumped on every change to `faults`, so waiting connections re-read.
    changes: watch::Sender<u64>,
    /// The same news for each TCP connection's watchdog, without the
    /// shared lock a `watch` receiver takes on every poll.
    watchers: Watchers,
    shutdown: CancellationToken,
    stats: Stats,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Bytes client → upstream.
    pub bytes_up: Counter,
    /// Bytes upstream → client.
    pub bytes_down: Counter,
    /// Connections refused or reset at accept by `refuse`.
    pub refused: AtomicU64,
}

/// A byte counter added to by every write of every connection, on
/// several threads: one cell per thread (up to [`Counter::CELLS`]), each on
/// a cache line of its own, so threads do not pull one line back and forth
/// on every write, nor slow the reads of the flags beside it.
#[derive(Debug, Default)]
pub struct Counter([Padded; Counter::CELLS]);

#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

impl Counter {
    const CELLS: usize = 8;

    pub(crate) fn add(&self, n: u64) {
        thread_local! {
            static CELL: usize = {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed) % Counter::CELLS
            };
        }
        let cell = CELL.with(|c| *c);
        self.0[cell].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The total so far.
    pub fn get(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// Wakes the connections that wait for a change to a proxy's faults. A
/// connection task polls its watchdog on every wake-up (each read and
/// write): with a `watch` receiver that poll takes the channel's waiter
/// lock, shared by every connection of the proxy, so busy connections on
/// two threads contended for it. Here each connection has its own
/// `AtomicWaker` (registering is a compare on its own memory) and reads a
/// shared generation; the lock is taken only when a connection opens or
/// closes and when the faults change.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    /// Set once when the proxy stops: every connection ends.
    stopping: std::sync::atomic::AtomicBool,
    generation: AtomicU64,
    next: AtomicU64,
    wakers: Mutex<std::collections::HashMap<u64, Arc<Wakes>>>,
}

impl Watchers {
    /// End every connection: set the flag, then wake them all.
    fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.bump();
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for w in self.wakers.lock().unwrap().values() {
            w.wake_all();
        }
    }
}

/// One connection's place among a proxy's [`Watchers`]: it is woken when
/// the faults change and when the proxy stops.
pub(super) struct Watch<'a> {
    watchers: &'a Watchers,
    id: u64,
    wakes: Arc<Wakes>,
    seen: AtomicU64,
}

impl<'a> Watch<'a> {
    pub(super) fn new(shared: &'a Shared) -> Watch<'a> {
        let watchers = &shared.watchers;
        let id = watchers.next.fetch_add(1, Ordering::Relaxed);
        let wakes = Arc::new(Wakes::default());
        watchers.wakers.lock().unwrap().insert(id, wakes.clone());
        Watch {
            watchers,
            id,
            wakes,
            seen: AtomicU64::new(watchers.generation.load(Ordering::Acquire)),
        }
    }

    /// Note the faults as they are now: [`Watch::changed`] waits for any
    /// change after this.
    pub(super) fn mark(&self) {
        self.seen.store(
            self.watchers.generation.load(Ordering::Acquire),
            Ordering::Relaxed,
        );
    }

    /// Until the faults change after the last [`Watch::mark`]. Only inside
    /// [`Watch::unless_stopped`] on the same watch: that registers the
    /// task to be woken, once per wake-up.
    pub(super) async fn changed(&self) {
        std::future::poll_fn(|_| {
            let now = self.watchers.generation.load(Ordering::Acquire);
            if now == self.seen.load(Ordering::Relaxed) {
                return std::task::Poll::Pending;
            }
            self.seen.store(now, Ordering::Relaxed);
            std::task::Poll::Ready(())
        })
        .await
    }

    /// The waker of part `part` of the connection's work (see `wakes.rs`).
    pub(super) fn part(&self, part: u32) -> std::task::Waker {
        self.wakes.part(part)
    }

    /// The parts of the connection's work woken since the last call, as
    /// bits; every part after a change to the faults.
    pub(super) fn woken(&self) -> usize {
        self.wakes.take()
    }

    /// Runs `work` until it ends or the proxy stops (`None`). Checking is
    /// one load of a flag per wake-up: a cancellation token's future here
    /// took two locks shared by all of the proxy's connections on every
    /// wake-up (docs/PERFORMANCE.md, issue 19, fourth look).
    /// `work` is pinned by the caller: taken by value, it would be stored
    /// twice in the connection's future (a moved-from future's space is not
    /// reused), adding kilobytes to every connection.
    pub(super) async fn unless_stopped<F: Future>(
        &self,
        mut work: std::pin::Pin<&mut F>,
    ) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            self.wakes.register(cx.waker());
            if self.watchers.stopping.load(Ordering::Acquire) {
                return std::task::Poll::Ready(None);
            }
            work.as_mut().poll(cx).map(Some)
        })
        .await
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.watchers.wakers.lock().unwrap().remove(&self.id);
    }
}

impl Shared {
    /// Stop: the listener closes and every connection ends.
    fn stop(&self) {
        self.watchers.stop();
        self.shutdown.cancel();
    }

    /// Tell everything waiting that the faults changed.
    fn changed(&self) {
        self.changes.send_modify(|v| *v += 1);
        self.watchers.bump();
    }

    /// True while no fault at all is active (no lock taken).
    fn quiet(&self) -> bool {
        self.active.load(Ordering::Acquire) == 0
    }

    fn faults(&self) -> Arc<Vec<Arc<ProxyFault>>> {
        self.faults.read().unwrap().clone()
    }

    /// Whether the fault with `key` is still active.
    pub(super) fn has(&self, key: u64) -> bool {
        self.faults.read().unwrap().iter().any(|f| f.key == key)
    }

    /// Hold a request or response from `start` for the delays in `parts`
    /// (fault key, delay) whose faults are still active: a revert releases
    /// what its fault holds, as it releases bytes on a TCP proxy.
    pub(super) async fn hold(&self, start: Instant, parts: &[(u64, Duration)]) {
        let mut changes = self.changes.subscribe();
        loop {
            changes.borrow_and_update();
            let due = start
                + parts
                    .iter()
                    .filter(|(key, _)| self.has(*key))
                    .map(|(_, d)| *d)
                    .sum::<Duration>();
            if Instant::now() >= due {
                return;
            }
            tokio::select! {
                _ = timer::sleep_until_precisely(due) => return,
                r = changes.changed() => if r.is_err() { return },
            }
        }
    }

    /// The listener is down while a `refuse` with probability 1 is active
    /// (a lower probability resets that share of connections at accept).
    fn listener_down(&self) -> bool {
        self.faults()
            .iter()
            .any(|f| f.effect == Effect::Refuse && f.probability >= 1.0)
    }
}

impl Proxy {
    /// Bind and start serving.
    pub async fn start(config: ProxyConfig) -> std::io::Result<Arc<Proxy>> {
        let listener = listen(config.listen).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "proxy `{}` cannot listen on {}: {e}",
                    config.name, config.listen
                ),
            )
        })?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: config.upstream.clone(),
            faults: RwLock::new(Arc::new(Vec::new())),
            active: AtomicUsize::new(0),
            next_key: AtomicU64::new(1),
            changes: watch::Sender::new(0),
            watchers: Watchers::default(),
            shutdown: CancellationToken::new(),
            stats: Stats::default(),
        });
        let closed = CancellationToken::new();
        let proxy = Arc::new(Proxy {
            config,
            local_addr,
            shared: shared.clone(),
            closed: closed.clone(),
        });
        let (name, mode) = (proxy.config.name.clone(), proxy.config.mode);
        tokio::spawn(async move {
            let _closed = closed.drop_guard();
            accept_loop(listener, local_addr, name, mode, shared).await;
        });
        Ok(proxy)
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Activate a fault; returns its key.
    pub fn add_fault(&self, mut fault: ProxyFault) -> u64 {
        fault.key = self.shared.next_key.fetch_add(1, Ordering::Relaxed);
        fault.added = Instant::now();
        let key = fault.key;
        let mut guard = self.shared.faults.write().unwrap();
        let mut next = (**guard).clone();
        next.push(Arc::new(fault));
        self.shared.active.store(next.len(), Ordering::Release);
        *guard = Arc::new(next);
        drop(guard);
        self.shared.changed();
        key
    }

    /// Deactivate a fault; false if it was not active.
    pub fn remove_fault(&self, key: u64) -> bool {
        let mut guard = self.shared.faults.write().unwrap();
        let before = guard.len();
        let next: Vec<_> = guard.iter().filter(|f| f.key != key).cloned().collect();
        let removed = next.len() != before;
        self.shared.active.store(next.len(), Ordering::Release);
        *guard = Arc::new(next);
        drop(guard);
        self.shared.changed();
        removed
    }

    /// The active faults, oldest first.
    pub fn faults(&self) -> Arc<Vec<Arc<ProxyFault>>> {
        self.shared.faults()
    }

    /// Number of active faults.
    pub fn fault_count(&self) -> usize {
        self.shared.faults().len()
    }

    /// Traffic counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Stop listening and close every connection.
    pub fn shutdown(&self) {
        self.shared.stop();
    }

    /// Shut down and wait until the listener is closed, so the next
    /// connection attempt is refused.
    pub async fn stop(&self) {
        self.shared.stop();
        self.closed.cancelled().await;
    }
}

/// Threads that serve proxied connections, each with a single-threaded
/// runtime of its own (set by [`serve_connections_on_threads`]).
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    /// Connections open on each thread.
    open: Vec<Arc<AtomicUsize>>,
}

impl Workers {
    /// A thread takes this many connections before the next one gets any.
    /// A few connections on one busy thread, rather than spread over
    /// threads that each sleep and wake between requests, served HTTP at 8
    /// connections 7–17 % faster (docs/PERFORMANCE.md, issue 19, fourth
    /// look); past it, connections are balanced.
    const FILL: usize = 16;

    /// The thread for a new connection: the one with the fewest open,
    /// counting fewer than [`Workers::FILL`] as that many (so the first go
    /// to the first thread), the lowest index on a tie.
    fn pick(&self) -> usize {
        pick_thread(self.open.iter().map(|o| o.load(Ordering::Relaxed)))
    }
}

static WORKERS: OnceLock<Workers> = OnceLock::new();

/// [`Workers::pick`] over each thread's count of open connections.
fn pick_thread(open: impl Iterator<Item = usize>) -> usize {
    let mut best = (usize::MAX, 0);
    for (i, open) in open.enumerate() {
        let load = open.max(Workers::FILL);
        if load < best.0 {
            best = (load, i);
        }
    }
    best.1
}

/// From now on, serve every proxied connection of this process on one of
/// `n` threads, each with a single-threaded runtime (the first few
/// connections on one thread, then to the thread with the fewest; a
/// connection's two sockets stay on its thread).
/// Nginx's model: no work stealing, no wake-up crossing threads, no task
/// stuck behind a preempted worker. The threads are not pinned to CPUs:
/// pinning raised HTTP rates at 8 connections but more than doubled the
/// added latency whenever a client shared the pinned CPU
/// (docs/PERFORMANCE.md, issue 19). For long-lived proxy processes
/// (`firedrill proxy serve`); without it, connections run on the runtime
/// that started the proxy.
pub fn serve_connections_on_threads(n: usize) -> std::io::Result<()> {
    timer::start_thread()?;
    let mut handles = Vec::new();
    for i in 0..n.max(1) {
        // No time driver: connection timers run on the timer thread
        // (`timer.rs`).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        handles.push(rt.handle().clone());
        let relay = relay::start(format!("relay-{i}"))?;
        std::thread::Builder::new()
            .name(format!("proxy-{i}"))
            .spawn(move || {
                relay::set_current(relay);
                rt.block_on(std::future::pending::<()>())
            })?;
    }
    let _ = WORKERS.set(Workers {
        open: handles.iter().map(|_| Arc::default()).collect(),
        handles,
    });
    Ok(())
}

/// A listener on `addr` whose accept queue is as deep as the system allows
/// (`net.core.somaxconn`, 4,096 on current kernels). tokio's `bind` asks for
/// 128, as std does: a burst of new connections (a pool opening, clients
/// reconnecting after a fault) then overflowed the queue and had SYNs
/// dropped, each retried a second or more later; nginx asks for 511.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(65_535)
}

/// Accept clients until shutdown; close the listener while `refuse` holds
/// it down and bind the same address again once it is reverted.
async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    name: String,
    mode: ProxyMode,
    shared: Arc<Shared>,
) {
    let mut changes = shared.changes.subscribe();
    let mut listener = Some(listener);
    loop {
        if shared.listener_down() {
            listener = None;
        } else if listener.is_none() {
            match listen(addr) {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::error!(proxy = %name, %addr, "cannot listen again after refuse: {e}; retrying");
                    tokio::select! {
                        _ = shared.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            }
        }
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = changes.changed() => continue,
            a = async { listener.as_ref().expect("up").accept().await }, if listener.is_some() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let conn = Conn::new();
        if shared
            .faults()
            .iter()
            .any(|f| f.effect == Effect::Refuse && conn.applies(f))
        {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_zero_linger();
            continue;
        }
        let _ = stream.set_nodelay(true);
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let serve = move |stream: TcpStream| async move {
            shared.stats.open.fetch_add(1, Ordering::Relaxed);
            {
                let watch = Watch::new(&shared);
                let work = std::pin::pin!(async {
                    connect_delay(&conn, &shared).await;
                    match mode {
                        ProxyMode::Tcp => tcp::serve(stream, &conn, &shared, &watch).await,
                        ProxyMode::Http => h1::serve(stream, shared.clone()).await,
                    }
                });
                watch.unless_stopped(work).await;
            }
            shared.stats.open.fetch_sub(1, Ordering::Relaxed);
        };
        match WORKERS.get() {
            None => {
                tokio::spawn(serve(stream));
            }
            Some(w) => {
                let i = w.pick();
                let Ok(std) = stream.into_std() else { continue };
                let open = w.open[i].clone();
                open.fetch_add(1, Ordering::Relaxed);
                w.handles[i].spawn(async move {
                    if let Ok(stream) = TcpStream::from_std(std) {
                        serve(stream).await;
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
}

/// Hold a new connection for every `connect-delay` that applies to it,
/// while that fault is active: a revert releases the connections it holds
/// (found by the `tcp_proxy` fuzz target: a reverted delay of hours held
/// them on).
async fn connect_delay(conn: &Conn, shared: &Shared) {
    let parts: Vec<(u64, Duration)> = shared
        .faults()
        .iter()
        .filter_map(|f| match f.effect {
            Effect::ConnectDelay { latency, jitter } if conn.applies(f) => {
                Some((f.key, latency + f.jitter(jitter)))
            }
            _ => None,
        })
        .collect();
    if parts.iter().any(|(_, d)| !d.is_zero()) {
        shared.hold(Instant::now(), &parts).await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn round_trip(s: &mut tokio::net::TcpStream) -> Duration {
        let t = Instant::now();
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        t.elapsed()
    }

    async fn get(addr: SocketAddr, path: &str) -> crate::probe::HttpAnswer {
        crate::probe::http(&addr.to_string(), &crate::probe::HttpProbe::get(path))
            .await
            .unwrap()
    }

    async fn proxy_to(upstream: SocketAddr, name: &str, mode: ProxyMode) -> Arc<Proxy> {
        Proxy::start(ProxyConfig {
            name: name.into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: upstream.to_string(),
            mode,
        })
        .await
        .unwrap()
    }

    async fn tcp_proxy(upstream: SocketAddr) -> Arc<Proxy> {
        proxy_to(upstream, "db", ProxyMode::Tcp).await
    }

    pub(super) async fn http_proxy(upstream: SocketAddr) -> Arc<Proxy> {
        proxy_to(upstream, "api", ProxyMode::Http).await
    }

    #[tokio::test]
    async fn a_fault_takes_over_a_flowing_connection_and_hands_it_back() {
        let echo = firedrill_tests::echo_server().await;
        let proxy = tcp_proxy(echo).await;
        let mut s = tokio::net::TcpStream::connect(proxy.local_addr())
            .await
            .unwrap();
        // The fast path carries the first round trip.
        round_trip(&mut s).await;
        let key = proxy.add_fault(ProxyFault::new(
            Effect::Blackhole {
                direction: Direction::Upstream,
            },
            1.0,
            None,
            1,
        ));
        s.write_all(b"held").await.unwrap();
        let mut buf = [0u8; 4];
        let waited = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf)).await;
        assert!(waited.is_err(), "bytes went through a blackhole");
        proxy.remove_fault(key);
        // The held bytes go on in order, then the fast path again.
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .expect("held bytes released on revert")
            .unwrap();
        assert_eq!(&buf, b"held");
        for _ in 0..3 {
            round_trip(&mut s).await;
        }
        assert_eq!(proxy.stats().bytes_up.get(), 20);
    }

    /// A few connections share one thread; many are balanced.
    #[test]
    fn connections_fill_one_thread_then_balance() {
        let deal = |n: usize| {
            let mut open = [0usize; 2];
            for _ in 0..n {
                open[pick_thread(open.iter().copied())] += 1;
            }
            open
        };
        assert_eq!(deal(8), [8, 0]);
        assert_eq!(deal(Workers::FILL), [Workers::FILL, 0]);
        assert_eq!(deal(50), [25, 25]);
        assert_eq!(deal(9_968), [4_984, 4_984]);
        // A thread whose connections closed gets the next ones.
        assert_eq!(pick_thread([40, 30].into_iter()), 1);
        assert_eq!(pick_thread([3, 20].into_iter()), 0);
    }

    /// Stopping a proxy ends every live connection, whichever state it is
    /// in: TCP idle on the fast path, TCP held by a fault, and an HTTP
    /// keep-alive connection idle between requests. (Connections learn of
    /// the stop from a flag and their own waker, not from a shared token.)
    #[tokio::test]
    async fn stopping_a_proxy_ends_its_live_connections() {
        let echo = firedrill_tests::echo_server().await;
        let tcp = tcp_proxy(echo).await;
        let mut idle = tokio::net::TcpStream::connect(tcp.local_addr())
            .await
            .unwrap();
        round_trip(&mut idle).await;
        let mut held = tokio::net::TcpStream::connect(tcp.local_addr())
            .await
            .unwrap();
        round_trip(&mut held).await;
        tcp.add_fault(ProxyFault::new(
            Effect::Blackhole {
                direction: Direction::Upstream,
            },
            1.0,
            None,
            1,
        ));
        held.write_all(b"held").await.unwrap();

        let upstream = firedrill_tests::Upstream::start("t").await;
        let http = http_proxy(upstream.addr).await;
        let mut keep = tokio::net::TcpStream::connect(http.local_addr())
            .await
            .unwrap();
        keep.write_all(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
            let mut buf = [0u8; 1024];
            let n = keep.read(&mut buf).await.unwrap();
            assert!(n > 0, "the proxy closed before answering");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 "), "{got:?}");
        assert_eq!(tcp.stats().open.load(Ordering::Relaxed), 2);
        assert_eq!(http.stats().open.load(Ordering::Relaxed), 1);

        tcp.stop().await;
        http.stop().await;
        for (name, s) in [
            ("idle", &mut idle),
            ("held", &mut held),
            ("http", &mut keep),
        ] {
            let mut rest = Vec::new();
            let end = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
                .await
                .unwrap_or_else(|_| panic!("the {name} connection outlived the proxy"));
            // An end or a reset: either way, no longer served.
            if let Ok(n) = end {
                assert_eq!(n, 0, "the {name} connection got bytes after the stop");
            }
        }
        for p in [&tcp, &http] {
            let t = Instant::now();
            while p.stats().open.load(Ordering::Relaxed) != 0 {
                assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "connections still open"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Found by the `tcp_proxy` fuzz target (issue 14 item 18): a
    /// connection held by a connect-delay stayed held after the revert.
    #[tokio::test]
    async fn a_reverted_connect_delay_releases_the_connections_it_holds() {
        let echo = firedrill_tests::echo_server().await;
        let proxy = tcp_proxy(echo).await;
        let key = proxy.add_fault(ProxyFault::new(
            Effect::ConnectDelay {
                latency: Duration::from_secs(3600),
                jitter: Duration::ZERO,
            },
            1.0,
            None,
            1,
        ));
        let mut s = tokio::net::TcpStream::connect(proxy.local_addr())
            .await
            .unwrap();
        s.write_all(b"held").await.unwrap();
        let mut buf = [0u8; 4];
        let waited = tokio::time::timeout(Duration::from_millis(200), s.read_exact(&mut buf)).await;
        assert!(waited.is_err(), "the connect delay did not hold");
        proxy.remove_fault(key);
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .expect("the held connection released on revert")
            .unwrap();
        assert_eq!(&buf, b"held");
    }

    #[tokio::test]
    async fn http_error_answers_matching_requests_only_and_reverts() {
        let upstream = firedrill_tests::Upstream::start("t").await;
        let proxy = http_proxy(upstream.addr).await;
        let matcher = RequestMatch {
            method: Some("get".into()),
            path: Some(Pattern::new("/api/*").unwrap()),
            header: None,
        };
        let key = proxy.add_fault(ProxyFault::new(
            Effect::HttpError {
                status: 503,
                body: "{\"error\":\"down\"}".into(),
                headers: vec![("retry-after".into(), "30".into())],
            },
            1.0,
            Some(matcher),
            1,
        ));
        let hit = get(proxy.local_addr(), "/api/orders").await;
        assert_eq!(hit.status, 503);
        assert_eq!(hit.body, b"{\"error\":\"down\"}");
        assert!(
            hit.headers
                .iter()
                .any(|(k, v)| k == "retry-after" && v == "30"),
            "{:?}",
            hit.headers
        );
        assert_eq!(
            get(proxy.local_addr(), "/health").await.status,
            200,
            "unmatched path passes"
        );
        assert!(
            upstream.seen().iter().all(|s| s.path != "/api/orders"),
            "the error never reached upstream"
        );
        proxy.remove_fault(key);
        assert_eq!(get(proxy.local_addr(), "/health").await.status, 200);
        assert_eq!(
            get(proxy.local_addr(), "/api/orders").await.status,
            401,
            "upstream answers again"
        );
    }

    /// A client that half-closes after its request still gets the answer
    /// (the first crash the http_proxy fuzz target found).
    #[tokio::test]
    async fn http_mode_answers_a_client_that_half_closes() {
        let upstream = firedrill_tests::Upstream::start("t").await;
        let proxy = http_proxy(upstream.addr).await;
        let mut s = tokio::net::TcpStream::connect(proxy.local_addr())
            .await
            .unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }

    #[tokio::test]
    async fn probability_draws_from_the_seed() {
        let upstream = firedrill_tests::Upstream::start("t").await;
        let mut rejected = Vec::new();
        for _ in 0..2 {
            let proxy = http_proxy(upstream.addr).await;
            proxy.add_fault(ProxyFault::new(
                Effect::HttpError {
                    status: 500,
                    body: String::new(),
                    headers: Vec::new(),
                },
                0.5,
                None,
                42,
            ));
            let mut pattern = Vec::new();
            for _ in 0..40 {
                pattern.push(get(proxy.local_addr(), "/health").await.status == 500);
            }
            rejected.push(pattern);
        }
        let n = rejected[0].iter().filter(|r| **r).count();
        assert!((8..=32).contains(&n), "about half fail: {n}/40");
        assert_eq!(
            rejected[0], rejected[1],
            "the same seed gives the same requests failing"
        );
    }

    #[tokio::test]
    async fn delay_applies_to_a_live_connection_and_reverts() {
        let upstream = firedrill_tests::echo_server().await;
        let proxy = Proxy::start(ProxyConfig {
            name: "link".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: upstream.to_string(),
            mode: ProxyMode::Tcp,
        })
        .await
        .unwrap();
        let mut client = tokio::net::TcpStream::connect(proxy.local_addr())
            .await
            .unwrap();
        assert!(round_trip(&mut client).await < Duration::from_millis(50));
        let key = proxy.add_fault(ProxyFault::new(
            Effect::Delay {
                latency: Duration::from_millis(100),
                jitter: Duration::ZERO,
                direction: Direction::Downstream,
            },
            1.0,
            None,
            1,
        ));
        let rtt = round_trip(&mut client).await;
        assert!(rtt >= Duration::from_millis(100), "{rtt:?}");
        assert!(rtt < Duration::from_millis(180), "{rtt:?}");
        assert!(proxy.remove_fault(key));
        assert!(round_trip(&mut client).await < Duration::from_millis(50));
    }
}
