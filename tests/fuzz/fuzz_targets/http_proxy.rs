//! Any bytes a client sends to an HTTP-mode proxy get an answer or a
//! closed connection, and the proxy keeps serving valid requests
//! afterwards: with faults active (the full path), and, when the input's
//! first byte is odd, on a proxy with none (the HTTP/1.1 fast path).
#![no_main]

use firedrill::drivers::proxy::{
    AuthMode, Direction, Effect, Proxy, ProxyConfig, ProxyFault, ProxyMode, RequestMatch,
};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Setup {
    rt: tokio::runtime::Runtime,
    proxy: SocketAddr,
    quiet: SocketAddr,
    _keep: [std::sync::Arc<Proxy>; 2],
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (proxy, quiet) = rt.block_on(async {
            let upstream = firedrill_tests::Upstream::start("t").await;
            let start = || {
                Proxy::start(ProxyConfig {
                    name: "fuzz".into(),
                    listen: "127.0.0.1:0".parse().unwrap(),
                    upstream: upstream.addr.to_string(),
                    mode: ProxyMode::Http,
                })
            };
            let proxy = start().await.unwrap();
            let quiet = start().await.unwrap();
            proxy.add_fault(ProxyFault::new(
                Effect::FailAuth {
                    mode: AuthMode::Corrupt,
                    status: 401,
                },
                0.5,
                None,
                1,
            ));
            proxy.add_fault(ProxyFault::new(
                Effect::HttpError {
                    status: 503,
                    body: String::new(),
                    headers: vec![("retry-after".into(), "1".into())],
                },
                1.0,
                Some(RequestMatch {
                    method: Some("DELETE".into()),
                    path: Some(glob::Pattern::new("/a*").unwrap()),
                    header: Some(("x-f".into(), String::new())),
                }),
                2,
            ));
            proxy.add_fault(ProxyFault::new(
                Effect::Delay {
                    latency: Duration::ZERO,
                    jitter: Duration::from_micros(50),
                    direction: Direction::Both,
                },
                0.5,
                None,
                3,
            ));
            (proxy, quiet)
        });
        Setup {
            rt,
            proxy: proxy.local_addr(),
            quiet: quiet.local_addr(),
            _keep: [proxy, quiet],
        }
    })
}

async fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return out;
    };
    let _ = s.write_all(bytes).await;
    let _ = s.shutdown().await;
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    out
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let s = setup();
    let addr = match data.first() {
        Some(b) if b % 2 == 1 => s.quiet,
        _ => s.proxy,
    };
    s.rt.block_on(exchange(addr, data, Duration::from_millis(200)));
    if RUNS.fetch_add(1, Ordering::Relaxed) % 64 == 0 {
        let ok = s.rt.block_on(exchange(
            addr,
            b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            Duration::from_secs(5),
        ));
        assert!(
            ok.starts_with(b"HTTP/1.1 200"),
            "the proxy stopped serving: {:?}",
            String::from_utf8_lossy(&ok)
        );
    }
});
