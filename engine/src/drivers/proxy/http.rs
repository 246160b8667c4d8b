//! HTTP mode: a hyper server per client connection speaking HTTP/1.1 and
//! HTTP/2 cleartext (prior knowledge, as gRPC clients use it), forwarding
//! each request over an upstream connection of its own in the same version
//! (reopened when upstream drops it). Answers made here for a gRPC request
//! carry a gRPC status. Request-level faults apply in order: `http-abort` at
//! the request, `fail-auth` (reject, expire, strip, corrupt), `http-error`,
//! per-request delay and request-body `bandwidth`; then on the way back
//! `http-modify`, response-body `bandwidth` and `http-abort` at the response.

use super::body::{Aborted, BoxBody, Cut, Throttled};
use super::h1::Rewound;
use super::{AbortPoint, AuthMode, Direction, Effect, ResponsePatch, Shared};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HeaderName, HeaderValue,
    PROXY_AUTHORIZATION, TRANSFER_ENCODING,
};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

type Body = BoxBody;

/// A second descriptor of the client's socket (a `dup`, not registered
/// with the reactor), so an `http-abort` with reset can set a zero linger
/// before hyper closes it: the close is then a RST.
type Resetter = Arc<std::sync::Mutex<Option<std::os::fd::OwnedFd>>>;

/// Serve a client connection whose first bytes, `prefix`, the fast path
/// ([`super::h1`]) already read.
pub(super) async fn serve(client: TcpStream, prefix: Bytes, shared: Arc<Shared>) {
    use std::os::fd::AsFd;
    let Ok(dup) = client.as_fd().try_clone_to_owned() else {
        return;
    };
    let client = Rewound { prefix, io: client };
    let resetter: Resetter = Arc::new(std::sync::Mutex::new(Some(dup)));
    let upstream = Arc::new(Upstream::default());
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        let upstream = upstream.clone();
        let resetter = resetter.clone();
        async move {
            let req = req.map(|b| b.map_err(Into::into).boxed());
            handle(req, &shared, &upstream, &resetter).await
        }
    });
    // Clients may shut down their write side once the request is sent
    // (`nc`, some test harnesses): answer them anyway, as servers do.
    // Found by the http_proxy fuzz target.
    let mut server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    server.http1().keep_alive(true).half_close(true);
    let _ = server.serve_connection(TokioIo::new(client), service).await;
}

/// The connection's way upstream, one per HTTP version in use.
#[derive(Default)]
struct Upstream {
    h1: Mutex<Option<http1::SendRequest<Body>>>,
    h2: Mutex<Option<http2::SendRequest<Body>>>,
}

/// Arm a reset: the connection's last close sends RST instead of FIN.
fn arm_reset(resetter: &Resetter) {
    use nix::sys::socket::{setsockopt, sockopt::Linger};
    if let Some(fd) = resetter.lock().unwrap().take() {
        let zero = nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        let _ = setsockopt(&fd, Linger, &zero);
    }
}

/// What the faults do to a response on its way back. Held states
/// (delays, rates, the abort point) keep the key of the fault behind them,
/// so that reverting the fault releases them.
#[derive(Default)]
struct Back {
    delay: Vec<(u64, Duration)>,
    patches: Vec<ResponsePatch>,
    rates: Vec<(u64, u64)>,
    abort: Option<(u64, bool)>,
}

async fn handle(
    mut req: Request<Body>,
    shared: &Arc<Shared>,
    upstream: &Upstream,
    resetter: &Resetter,
) -> Result<Response<Body>, Aborted> {
    let grpc = req
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let mut delay_up = Vec::new();
    let mut rates_up = Vec::new();
    let mut back = Back::default();
    // No fault: no lock and no shared reference count touched per request
    // (both are cache lines every connection's thread would share).
    let faults = (!shared.quiet()).then(|| shared.faults());
    for fault in faults.iter().flat_map(|f| f.iter()) {
        if fault.matcher.as_ref().is_some_and(|m| !m.matches(&req)) {
            continue;
        }
        match &fault.effect {
            Effect::Delay {
                latency,
                jitter,
                direction,
            } if fault.fires() => {
                let d = *latency + fault.jitter(*jitter);
                if direction.covers(Direction::Upstream) {
                    delay_up.push((fault.key, d));
                }
                if direction.covers(Direction::Downstream) {
                    back.delay.push((fault.key, d));
                }
            }
            Effect::HttpAbort { at, reset } if fault.fires() => match at {
                AbortPoint::Request => {
                    if *reset {
                        arm_reset(resetter);
                    }
                    return Err(Aborted);
                }
                AbortPoint::Response => back.abort = Some((fault.key, *reset)),
            },
            Effect::FailAuth { mode, status } if fault.fires() => match mode {
                AuthMode::Reject if grpc => {
                    return Ok(grpc_status(*status, "the access token is invalid"));
                }
                AuthMode::Expire if grpc => {
                    return Ok(grpc_status(401, "the access token expired"));
                }
                AuthMode::Reject => return Ok(reject(*status, is_basic(req.headers()))),
                AuthMode::Expire => return Ok(expired(is_basic(req.headers()))),
                AuthMode::Strip => {
                    let h = req.headers_mut();
                    h.remove(AUTHORIZATION);
                    h.remove(COOKIE);
                    h.remove(PROXY_AUTHORIZATION);
                }
                AuthMode::Corrupt => corrupt(req.headers_mut()),
            },
            Effect::HttpError {
                status,
                body,
                headers,
            } if fault.fires() => {
                let mut resp = if grpc {
                    grpc_status(*status, body)
                } else {
                    local(*status, "application/json", body.clone(), &[])
                };
                for (name, value) in headers {
                    if let (Ok(n), Ok(v)) = (
                        HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(value),
                    ) {
                        resp.headers_mut().insert(n, v);
                    }
                }
                return Ok(resp);
            }
            Effect::HttpModify { patch } if fault.fires() => back.patches.push((**patch).clone()),
            Effect::Bandwidth { rate, direction } if fault.fires() => {
                if direction.covers(Direction::Upstream) {
                    rates_up.push((fault.key, *rate));
                }
                if direction.covers(Direction::Downstream) {
                    back.rates.push((fault.key, *rate));
                }
            }
            _ => {}
        }
    }
    if !delay_up.is_empty() {
        shared.hold(std::time::Instant::now(), &delay_up).await;
    }
    if !rates_up.is_empty() {
        let shared = shared.clone();
        req = req.map(|b| Throttled::new(b, rates_up, shared).boxed());
    }
    let mut resp = match forward(req, shared, upstream).await {
        Ok(resp) => resp.map(|b| b.map_err(Into::into).boxed()),
        Err(e) if grpc => grpc_status(
            502,
            &format!("firedrill proxy: upstream {}: {e}", shared.upstream),
        ),
        Err(e) => local(502, "application/json", bad_gateway(shared, &e), &[]),
    };
    if !back.delay.is_empty() {
        shared.hold(std::time::Instant::now(), &back.delay).await;
    }
    for patch in &back.patches {
        resp = modify(resp, patch);
    }
    if !back.rates.is_empty() {
        let shared = shared.clone();
        resp = resp.map(|b| Throttled::new(b, back.rates, shared).boxed());
    }
    if let Some((key, reset)) = back.abort {
        // Half the body when its length is known, else its first piece.
        let cut = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .map_or(1, |len| len / 2);
        let resetter = resetter.clone();
        let on_cut: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            if reset {
                arm_reset(&resetter);
            }
        });
        let live = shared.clone();
        let armed: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(move || live.has(key));
        resp = resp.map(|b| Cut::new(b, cut, armed, on_cut).boxed());
    }
    Ok(resp)
}

/// Apply `http-modify` to a response.
fn modify(mut resp: Response<Body>, patch: &ResponsePatch) -> Response<Body> {
    if let Some(status) = patch.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        *resp.status_mut() = status;
    }
    let h = resp.headers_mut();
    for name in &patch.remove_headers {
        h.remove(name.as_str());
    }
    for (name, value) in &patch.set_headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.insert(n, v);
        }
    }
    if let Some(body) = &patch.body {
        h.remove(CONTENT_LENGTH);
        h.remove(TRANSFER_ENCODING);
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, full(Bytes::from(body.clone())));
    }
    resp
}

fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|n| match n {}).boxed()
}

/// Open a connection upstream.
pub(super) async fn connect(shared: &Shared) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(&shared.upstream)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The body of a 502 for an upstream that failed with `e`.
fn bad_gateway(shared: &Shared, e: &str) -> String {
    format!(
        r#"{{"error":"bad_gateway","detail":"firedrill proxy: upstream {}: {e}"}}"#,
        shared.upstream
    )
}

/// The fast path's 502: the full path's answer as bytes on the wire.
pub(super) fn bad_gateway_bytes(shared: &Shared, e: &str) -> Vec<u8> {
    let body = bad_gateway(shared, e);
    format!(
        "HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\n\
         x-firedrill-fault: 1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn forward(
    req: Request<Body>,
    shared: &Shared,
    upstream: &Upstream,
) -> Result<Response<hyper::body::Incoming>, String> {
    if req.version() == hyper::Version::HTTP_2 {
        // One multiplexed connection; requests go out concurrently.
        let mut sender = {
            let mut guard = upstream.h2.lock().await;
            match guard.as_ref().filter(|s| !s.is_closed()) {
                Some(s) => s.clone(),
                None => {
                    let (sender, conn) = http2::handshake(
                        TokioExecutor::new(),
                        TokioIo::new(connect(shared).await?),
                    )
                    .await
                    .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
                    tokio::spawn(conn);
                    *guard = Some(sender.clone());
                    sender
                }
            }
        };
        return sender.send_request(req).await.map_err(|e| e.to_string());
    }
    let mut guard = upstream.h1.lock().await;
    let reusable = match guard.as_mut() {
        Some(s) => s.ready().await.is_ok(),
        None => false,
    };
    if !reusable {
        let (sender, conn) = http1::handshake(TokioIo::new(connect(shared).await?))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        *guard = Some(sender);
    }
    let sender = guard.as_mut().expect("connected above");
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// A gRPC answer for an HTTP status, as a gRPC server sends an error: a
/// 200 whose headers end the stream with `grpc-status` and `grpc-message`
/// (a trailers-only response). The code follows gRPC's HTTP-to-gRPC table.
fn grpc_status(http: u16, message: &str) -> Response<Body> {
    let code = match http {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    };
    let mut resp = Response::new(full(Bytes::new()));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(code));
    // grpc-message is percent-encoded: keep the safe characters.
    let message: String = message
        .bytes()
        .map(|b| match b {
            b' '..=b'~' if b != b'%' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&message) {
        h.insert("grpc-message", v);
    }
    h.insert("x-firedrill-fault", HeaderValue::from_static("1"));
    resp
}

/// Whether the client authenticates with HTTP Basic (RFC 7617): it is then
/// refused as a Basic server refuses, not with a bearer token's error.
fn is_basic(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().get(..6))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"basic "))
}

/// A Basic server's refusal: 401 with a `Basic` challenge, or a plain 403.
fn basic_refusal(status: u16, why: &str) -> Response<Body> {
    if status == 403 {
        return local(403, "text/plain; charset=utf-8", format!("{why}\n"), &[]);
    }
    local(
        status,
        "text/plain; charset=utf-8",
        format!("{why}\n"),
        &[("www-authenticate", r#"Basic realm="api", charset="UTF-8""#)],
    )
}

/// A realistic refusal: RFC 6750 bearer error for 401, insufficient scope
/// for 403, JSON body as identity providers send it; to a Basic client, a
/// Basic challenge.
fn reject(status: u16, basic: bool) -> Response<Body> {
    if basic {
        return basic_refusal(status, "Unauthorized: the user name or password is wrong");
    }
    let (challenge, body) = if status == 403 {
        (
            r#"Bearer realm="api", error="insufficient_scope", error_description="The request requires higher privileges than provided by the access token""#,
            r#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token"}"#,
        )
    } else {
        (
            r#"Bearer realm="api", error="invalid_token", error_description="The access token is invalid""#,
            r#"{"error":"invalid_token","error_description":"The access token is invalid"}"#,
        )
    };
    local(
        status,
        "application/json",
        body.to_string(),
        &[("www-authenticate", challenge)],
    )
}

/// What a resource server answers for an access token past its `exp`
/// (RFC 6750 §3.1); to a Basic client, a refusal for an expired password.
fn expired(basic: bool) -> Response<Body> {
    if basic {
        return basic_refusal(401, "Unauthorized: the password has expired");
    }
    local(
        401,
        "application/json",
        r#"{"error":"invalid_token","error_description":"The access token expired"}"#.into(),
        &[(
            "www-authenticate",
            r#"Bearer realm="api", error="invalid_token", error_description="The access token expired""#,
        )],
    )
}

/// Flip the last alphanumeric character of the credentials, so a bearer
/// token's signature no longer validates; for Basic, of the decoded
/// password (base64's last character before padding may carry only bits a
/// server ignores).
fn corrupt(headers: &mut hyper::HeaderMap) {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    if is_basic(headers) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        if let Ok(decoded) = b64.decode(value[6..].trim())
            && let Ok(text) = String::from_utf8(decoded)
        {
            let corrupted = format!("Basic {}", b64.encode(flip_last_alphanumeric(&text)));
            if let Ok(v) = HeaderValue::from_str(&corrupted) {
                headers.insert(AUTHORIZATION, v);
            }
            return;
        }
    }
    let corrupted = flip_last_alphanumeric(value);
    if let Ok(v) = HeaderValue::from_str(&corrupted) {
        headers.insert(AUTHORIZATION, v);
    }
}

fn flip_last_alphanumeric(value: &str) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    if let Some(c) = chars.iter_mut().rev().find(|c| c.is_ascii_alphanumeric()) {
        *c = match *c {
            'z' => 'a',
            'Z' => 'A',
            '9' => '0',
            c => (c as u8 + 1) as char,
        };
    }
    chars.into_iter().collect()
}

fn local(
    status: u16,
    content_type: &str,
    body: String,
    extra: &[(&'static str, &str)],
) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(CONTENT_TYPE, v);
    }
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    h.insert("x-firedrill-fault", HeaderValue::from_static("1"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_basic_client_is_refused_with_a_basic_challenge() {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("basic dXNlcjpwYXNz"),
        );
        assert!(is_basic(&h));
        let r = reject(401, is_basic(&h));
        let challenge = r
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
        let r = expired(true);
        assert_eq!(r.status(), 401);
        // "ops:s3cret": the corrupted header decodes to another password.
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic b3BzOnMzY3JldA=="),
        );
        corrupt(&mut h);
        assert_eq!(h.get(AUTHORIZATION).unwrap(), "Basic b3BzOnMzY3JldQ==");
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(!is_basic(&h));
        let r = reject(401, false);
        let challenge = r
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    }

    #[test]
    fn corrupt_changes_the_token_and_keeps_the_scheme() {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def.xyz"),
        );
        corrupt(&mut h);
        assert_eq!(h.get(AUTHORIZATION).unwrap(), "Bearer abc.def.xya");
    }
}
