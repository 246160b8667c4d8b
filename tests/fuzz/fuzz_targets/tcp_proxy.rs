//! A TCP-mode proxy with fuzz-chosen faults from the TCP catalogue (delay,
//! bandwidth, slicer, limit-data, blackhole, reset-peer, timeout,
//! slow-close, plus connect-delay and refuse) applied and reverted while
//! fuzz-chosen bytes flow through it to an echo server.
//!
//! What must hold, whatever the faults:
//! - nothing panics (libfuzzer-sys aborts on a panic in any task);
//! - what comes back is always a prefix of what was sent: faults delay,
//!   slice, hold or cut the stream, never alter or reorder it;
//! - once every fault is reverted, a connection that met no cutting fault
//!   (reset-peer, timeout, limit-data, refuse) gets every byte back: a
//!   revert releases what its fault held;
//! - the proxy keeps accepting: a fresh connection echoes after each input.
//!
//! The input is a little program: each step is an op byte and its
//! operands. Waits are at most 3 ms and there are at most 12 steps, so an
//! input takes a few milliseconds unless a revert fails to release.
#![no_main]

use firedrill::drivers::proxy::{Direction, Effect, Proxy, ProxyConfig, ProxyFault, ProxyMode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the bytes have, after every fault is reverted, to come back.
/// Loopback takes microseconds; this is for a machine busy with other work.
const RELEASE: Duration = Duration::from_secs(10);

struct Setup {
    rt: tokio::runtime::Runtime,
    proxy: Arc<Proxy>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let proxy = rt.block_on(async {
            let upstream = firedrill_tests::echo_server().await;
            Proxy::start(ProxyConfig {
                name: "fuzz".into(),
                listen: "127.0.0.1:0".parse().unwrap(),
                upstream: upstream.to_string(),
                mode: ProxyMode::Tcp,
            })
            .await
            .unwrap()
        });
        Setup { rt, proxy }
    })
}

/// Reads the input as operands; runs dry as zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }

    fn direction(&mut self) -> Direction {
        match self.u8() % 3 {
            0 => Direction::Upstream,
            1 => Direction::Downstream,
            _ => Direction::Both,
        }
    }

    /// A duration: mostly zero to a few milliseconds, sometimes one that
    /// never ends in practice (the Toxiproxy API accepts i64::MAX ms).
    fn duration(&mut self) -> Duration {
        let b = self.u8();
        match b >> 6 {
            0 => Duration::ZERO,
            1 => Duration::from_micros(u64::from(b & 63) * 10),
            2 => Duration::from_micros(u64::from(b & 63) * 50),
            _ if b & 1 == 0 => Duration::from_secs(3600),
            _ => Duration::from_millis(i64::MAX as u64),
        }
    }

    fn size(&mut self) -> u64 {
        let b = self.u8();
        match b >> 6 {
            0..=2 => u64::from(b & 127),
            _ if b & 1 == 0 => u64::from(b) * 1000,
            _ => u64::MAX,
        }
    }

    fn probability(&mut self) -> f64 {
        match self.u8() % 4 {
            0 => 0.5,
            1 => 0.0,
            _ => 1.0,
        }
    }
}

/// A fault from the input, and whether it may cut a connection (so the
/// bytes sent need not all come back).
fn fault(b: &mut Bytes) -> (Effect, bool) {
    match b.u8() % 10 {
        0 => (
            Effect::Delay {
                latency: b.duration(),
                jitter: b.duration(),
                direction: b.direction(),
            },
            false,
        ),
        1 => (
            Effect::Bandwidth {
                rate: b.size().max(1),
                direction: b.direction(),
            },
            false,
        ),
        2 => (
            Effect::Slicer {
                average: (b.size().max(1)).min(1 << 20) as usize,
                variation: b.size().min(1 << 20) as usize,
                delay: b.duration(),
                direction: b.direction(),
            },
            false,
        ),
        3 => (
            Effect::LimitData {
                bytes: b.size(),
                direction: b.direction(),
            },
            true,
        ),
        4 => (
            Effect::Blackhole {
                direction: b.direction(),
            },
            false,
        ),
        5 => (
            Effect::ResetPeer {
                after: b.duration(),
                direction: b.direction(),
            },
            true,
        ),
        6 => {
            let after = b.duration();
            let close_on_revert = b.u8() & 1 == 1;
            let cuts = !after.is_zero() || close_on_revert;
            (
                Effect::Timeout {
                    after,
                    direction: b.direction(),
                    close_on_revert,
                },
                cuts,
            )
        }
        7 => (
            Effect::SlowClose {
                delay: b.duration(),
                direction: b.direction(),
            },
            false,
        ),
        8 => (
            Effect::ConnectDelay {
                latency: b.duration(),
                jitter: b.duration(),
            },
            false,
        ),
        // Refuse acts at accept, which may come after the client's connect
        // returned (the kernel completes the handshake): it may cut.
        _ => (Effect::Refuse, true),
    }
}

/// Read what is there without waiting; false once the connection ended.
fn drain(s: &TcpStream, got: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match s.try_read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

async fn connect(addr: SocketAddr) -> Option<TcpStream> {
    // A connect-delay holds the connection after accept, so connect itself
    // is quick; refuse makes it fail.
    match tokio::time::timeout(Duration::from_millis(50), TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Some(s),
        _ => None,
    }
}

async fn run(proxy: &Proxy, data: &[u8]) {
    let addr = proxy.local_addr();
    let mut b = Bytes(data);
    let mut keys = Vec::new();
    let mut conn: Option<TcpStream> = None;
    let mut tried = false;
    let mut cut = false;
    let mut open = true;
    let (mut sent, mut got) = (Vec::new(), Vec::new());
    for _ in 0..12 {
        if b.0.is_empty() {
            break;
        }
        match b.u8() % 5 {
            0 | 1 => {
                let (effect, cuts) = fault(&mut b);
                let p = b.probability();
                cut |= cuts;
                keys.push(proxy.add_fault(ProxyFault::new(effect, p, None, u64::from(b.u8()))));
            }
            2 => {
                if !keys.is_empty() {
                    let i = usize::from(b.u8()) % keys.len();
                    assert!(proxy.remove_fault(keys.remove(i)));
                }
            }
            3 => {
                let n = usize::from(b.u8());
                let chunk = b.take(n);
                if !tried {
                    tried = true;
                    conn = connect(addr).await;
                }
                if let Some(s) = &conn
                    && open
                {
                    // Never block: flow control may hold what a fault holds.
                    let n = s.try_write(chunk).unwrap_or(0);
                    sent.extend_from_slice(&chunk[..n]);
                }
            }
            _ => {
                let wait = Duration::from_micros(u64::from(b.u8() % 31) * 100);
                tokio::time::sleep(wait).await;
                if let Some(s) = &conn
                    && open
                {
                    open = drain(s, &mut got);
                }
            }
        }
        assert!(
            sent.starts_with(&got),
            "bytes came back altered or out of order"
        );
    }
    for k in keys {
        assert!(proxy.remove_fault(k));
    }
    assert_eq!(proxy.fault_count(), 0);
    if let Some(mut s) = conn
        && open
    {
        let deadline = Instant::now() + RELEASE;
        let mut buf = [0u8; 8192];
        while got.len() < sent.len() {
            match tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Err(_) => panic!(
                    "{} of {} bytes came back within {RELEASE:?} of every fault being reverted",
                    got.len(),
                    sent.len()
                ),
            }
        }
        assert!(
            sent.starts_with(&got),
            "bytes came back altered or out of order"
        );
        if !cut {
            assert_eq!(
                got.len(),
                sent.len(),
                "a connection no fault cut lost bytes"
            );
        }
    }
    // The proxy still accepts and forwards.
    let deadline = Instant::now() + RELEASE;
    let mut s = loop {
        // After a refuse the listener is bound again a moment later.
        match connect(addr).await {
            Some(s) => break s,
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            None => panic!("the proxy stopped accepting"),
        }
    };
    let ping = tokio::time::timeout(RELEASE, async {
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await?;
        std::io::Result::Ok(buf)
    })
    .await;
    assert!(
        matches!(ping, Ok(Ok(ref b)) if b == b"ping"),
        "the proxy stopped forwarding: {ping:?}"
    );
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let s = setup();
    s.rt.block_on(run(&s.proxy, data));
});
