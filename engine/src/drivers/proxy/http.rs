//! HTTP mode: a hyper HTTP/1.1 server per client connection, forwarding each
//! request over one upstream connection of its own (reopened when upstream
//! drops it), with request-level faults applied in order: `fail-auth`
//! (reject, strip, corrupt), `http-error`, then per-request delay.

use super::{AuthMode, Direction, Effect, Shared, sleep_until_precisely};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderValue, PROXY_AUTHORIZATION};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

type Body = BoxBody<Bytes, hyper::Error>;

pub(super) async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let upstream: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::new(Mutex::new(None));
    let service = service_fn(move |req| {
        let shared = shared.clone();
        let upstream = upstream.clone();
        async move { Ok::<_, hyper::Error>(handle(req, &shared, &upstream).await) }
    });
    // Clients may shut down their write side once the request is sent
    // (`nc`, some test harnesses): answer them anyway, as servers do.
    // Found by the http_proxy fuzz target.
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .half_close(true)
        .serve_connection(TokioIo::new(client), service)
        .await;
}

async fn handle(
    mut req: Request<Incoming>,
    shared: &Shared,
    upstream: &Mutex<Option<SendRequest<Incoming>>>,
) -> Response<Body> {
    let mut delay_up = Duration::ZERO;
    let mut delay_down = Duration::ZERO;
    for fault in shared.faults().iter() {
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
                    delay_up += d;
                }
                if direction.covers(Direction::Downstream) {
                    delay_down += d;
                }
            }
            Effect::FailAuth { mode, status } if fault.fires() => match mode {
                AuthMode::Reject => return reject(*status),
                AuthMode::Expire => return expired(),
                AuthMode::Strip => {
                    let h = req.headers_mut();
                    h.remove(AUTHORIZATION);
                    h.remove(COOKIE);
                    h.remove(PROXY_AUTHORIZATION);
                }
                AuthMode::Corrupt => corrupt(req.headers_mut()),
            },
            Effect::HttpError { status, body } if fault.fires() => {
                return local(*status, "application/json", body.clone(), &[]);
            }
            _ => {}
        }
    }
    if !delay_up.is_zero() {
        sleep_until_precisely(std::time::Instant::now() + delay_up).await;
    }
    let resp = match forward(req, shared, upstream).await {
        Ok(resp) => resp.map(|b| b.boxed()),
        Err(e) => local(
            502,
            "application/json",
            format!(
                r#"{{"error":"bad_gateway","detail":"firedrill proxy: upstream {}: {e}"}}"#,
                shared.upstream
            ),
            &[],
        ),
    };
    if !delay_down.is_zero() {
        sleep_until_precisely(std::time::Instant::now() + delay_down).await;
    }
    resp
}

async fn forward(
    req: Request<Incoming>,
    shared: &Shared,
    upstream: &Mutex<Option<SendRequest<Incoming>>>,
) -> Result<Response<Incoming>, String> {
    let mut guard = upstream.lock().await;
    let reusable = match guard.as_mut() {
        Some(s) => s.ready().await.is_ok(),
        None => false,
    };
    if !reusable {
        let stream = TcpStream::connect(&shared.upstream)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        *guard = Some(sender);
    }
    let sender = guard.as_mut().expect("connected above");
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// A realistic refusal: RFC 6750 bearer error for 401, insufficient scope
/// for 403, JSON body as identity providers send it.
fn reject(status: u16) -> Response<Body> {
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
/// (RFC 6750 §3.1).
fn expired() -> Response<Body> {
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
/// token's signature or a basic password no longer validates.
fn corrupt(headers: &mut hyper::HeaderMap) {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let mut chars: Vec<char> = value.chars().collect();
    if let Some(c) = chars.iter_mut().rev().find(|c| c.is_ascii_alphanumeric()) {
        *c = match *c {
            'z' => 'a',
            'Z' => 'A',
            '9' => '0',
            c => (c as u8 + 1) as char,
        };
    }
    let corrupted: String = chars.into_iter().collect();
    if let Ok(v) = HeaderValue::from_str(&corrupted) {
        headers.insert(AUTHORIZATION, v);
    }
}

fn local(
    status: u16,
    content_type: &str,
    body: String,
    extra: &[(&'static str, &str)],
) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
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
