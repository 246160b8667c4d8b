//! Probes: real HTTP/1.1 requests and TCP connects on behalf of scenarios,
//! steady-state checks and readiness checks.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Bodies are cut at this size.
pub const MAX_BODY: usize = 64 * 1024;

/// An HTTP request to send.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Time limit.
    pub timeout: Duration,
}

impl HttpProbe {
    /// `GET path` with a 5 s limit.
    pub fn get(path: &str) -> HttpProbe {
        HttpProbe {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// Status.
    pub status: u16,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body, cut at [`MAX_BODY`].
    pub body: Vec<u8>,
    /// From send to end of body.
    pub latency: Duration,
}

/// Send `probe` to `addr` (`host:port`) on a fresh connection.
pub async fn http(addr: &str, probe: &HttpProbe) -> Result<HttpAnswer, String> {
    let started = Instant::now();
    match tokio::time::timeout(probe.timeout, http_inner(addr, probe, started)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer from {addr} within {}",
            humantime::format_duration(probe.timeout)
        )),
    }
}

async fn http_inner(addr: &str, probe: &HttpProbe, started: Instant) -> Result<HttpAnswer, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(probe.method.as_str())
        .uri(probe.path.as_str())
        .header("host", addr)
        .header(
            "user-agent",
            concat!("firedrill/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in &probe.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(probe.body.clone())))
        .map_err(|e| format!("invalid request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request to {addr} failed: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match Limited::new(resp.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    Ok(HttpAnswer {
        status,
        headers,
        body,
        latency: started.elapsed(),
    })
}

/// How much of an answer a TCP exchange reads while looking for what it
/// expects.
pub const MAX_EXCHANGE: usize = 64 * 1024;

/// Connect to `addr`, send `send`, and read until the bytes seen contain
/// `expect` (at most [`MAX_EXCHANGE`] bytes, all within `timeout`): a check
/// of any line protocol (databases, caches, brokers) that a paused
/// process or a proxy whose upstream is dead fails, where a bare connect
/// passes because the kernel still accepts. The time it took.
pub async fn tcp_exchange(
    addr: &str,
    send: &[u8],
    expect: &[u8],
    timeout: Duration,
) -> Result<Duration, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let mut seen = Vec::new();
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        stream
            .write_all(send)
            .await
            .map_err(|e| format!("cannot send to {addr}: {e}"))?;
        let mut buf = [0u8; 4096];
        loop {
            if seen.windows(expect.len().max(1)).any(|w| w == expect) || expect.is_empty() {
                return Ok(());
            }
            if seen.len() >= MAX_EXCHANGE {
                return Err(format!(
                    "{addr} answered {} without {}",
                    shown(&seen),
                    shown(expect)
                ));
            }
            match stream.read(&mut buf).await {
                Ok(0) => {
                    return Err(format!(
                        "{addr} closed the connection after {} instead of {}",
                        shown(&seen),
                        shown(expect)
                    ));
                }
                Ok(n) => seen.extend_from_slice(&buf[..n.min(MAX_EXCHANGE - seen.len())]),
                Err(e) => return Err(format!("reading from {addr}: {e}")),
            }
        }
    };
    let result = tokio::time::timeout(timeout, exchange).await;
    match result {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "no {} from {addr} within {} (got {})",
            shown(expect),
            humantime::format_duration(timeout),
            shown(&seen)
        )),
    }
}

/// Bytes for a message: quoted text, cut at 64 characters.
fn shown(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing".into();
    }
    let text: String = String::from_utf8_lossy(bytes).chars().take(64).collect();
    let more = if text.len() < bytes.len() { "…" } else { "" };
    format!("{:?}{more}", text)
}

/// Open a TCP connection to `addr`; the time it took.
pub async fn tcp(addr: &str, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(format!("cannot connect to {addr}: {e}")),
        Err(_) => Err(format!(
            "no connection to {addr} within {}",
            humantime::format_duration(timeout)
        )),
    }
}
