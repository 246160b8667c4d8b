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

mod http;
mod tcp;

use glob::Pattern;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How a proxy understands its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyMode {
    /// Bytes: connection-level faults only.
    #[default]
    Tcp,
    /// HTTP/1.1 with keep-alive: request-level faults too.
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
}

/// What a fault does to traffic.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Add latency (+ uniform jitter) in a direction.
    Delay {
        /// Fixed part.
        latency: Duration,
        /// Upper bound of the random part.
        jitter: Duration,
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
    },
}

impl Effect {
    /// Whether this effect needs an HTTP-mode proxy.
    pub fn needs_http(&self) -> bool {
        !matches!(self, Effect::Delay { .. })
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
    /// Chance per connection chunk or request.
    pub probability: f64,
    /// Which requests (HTTP mode).
    pub matcher: Option<RequestMatch>,
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
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
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

    /// Delay this fault adds to one chunk or request flowing in `flow`.
    fn delay_for(&self, flow: Direction) -> Option<Duration> {
        match self.effect {
            Effect::Delay {
                latency,
                jitter,
                direction,
            } if direction.covers(flow) && self.fires() => Some(latency + self.jitter(jitter)),
            _ => None,
        }
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
    shutdown: CancellationToken,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    faults: RwLock<Arc<Vec<Arc<ProxyFault>>>>,
    next_key: AtomicU64,
    shutdown: CancellationToken,
}

impl Shared {
    fn faults(&self) -> Arc<Vec<Arc<ProxyFault>>> {
        self.faults.read().unwrap().clone()
    }

    /// Total delay for a chunk flowing in `flow`, if any fault adds one.
    fn delay(&self, flow: Direction) -> Option<Duration> {
        let faults = self.faults();
        let mut total: Option<Duration> = None;
        for f in faults.iter() {
            if let Some(d) = f.delay_for(flow) {
                total = Some(total.unwrap_or_default() + d);
            }
        }
        total
    }
}

impl Proxy {
    /// Bind and start serving.
    pub async fn start(config: ProxyConfig) -> std::io::Result<Arc<Proxy>> {
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "proxy `{}` cannot listen on {}: {e}",
                    config.name, config.listen
                ),
            )
        })?;
        let local_addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            upstream: config.upstream.clone(),
            faults: RwLock::new(Arc::new(Vec::new())),
            next_key: AtomicU64::new(1),
            shutdown: shutdown.clone(),
        });
        let proxy = Arc::new(Proxy {
            config,
            local_addr,
            shared: shared.clone(),
            shutdown: shutdown.clone(),
        });
        let mode = proxy.config.mode;
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    a = listener.accept() => a,
                };
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let token = shared.shutdown.clone();
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = async {
                            match mode {
                                ProxyMode::Tcp => tcp::serve(stream, shared).await,
                                ProxyMode::Http => http::serve(stream, shared).await,
                            }
                        } => {}
                    }
                });
            }
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
        let key = fault.key;
        let mut guard = self.shared.faults.write().unwrap();
        let mut next = (**guard).clone();
        next.push(Arc::new(fault));
        *guard = Arc::new(next);
        key
    }

    /// Deactivate a fault; false if it was not active.
    pub fn remove_fault(&self, key: u64) -> bool {
        let mut guard = self.shared.faults.write().unwrap();
        let before = guard.len();
        let next: Vec<_> = guard.iter().filter(|f| f.key != key).cloned().collect();
        let removed = next.len() != before;
        *guard = Arc::new(next);
        removed
    }

    /// Number of active faults.
    pub fn fault_count(&self) -> usize {
        self.shared.faults().len()
    }

    /// Stop listening and close every connection.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

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

    async fn http_proxy(upstream: SocketAddr) -> Arc<Proxy> {
        Proxy::start(ProxyConfig {
            name: "api".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: upstream.to_string(),
            mode: ProxyMode::Http,
        })
        .await
        .unwrap()
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
            },
            1.0,
            Some(matcher),
            1,
        ));
        let hit = get(proxy.local_addr(), "/api/orders").await;
        assert_eq!(hit.status, 503);
        assert_eq!(hit.body, b"{\"error\":\"down\"}");
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
        let upstream = echo_server().await;
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
