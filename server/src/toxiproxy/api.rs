//! The Toxiproxy 2.x HTTP routes over a [`Registry`], with Toxiproxy's
//! status codes, JSON shapes and error texts. Request bodies are read as
//! JSON whatever their `Content-Type` (the Java client sends none).
//!
//! Deny by default: every route but `GET /version` (the health check
//! Testcontainers waits on) needs `Authorization: Bearer <token>` unless
//! the server was started for anonymous loopback clients.
//!
//! Every error, the router's own included (unknown route, wrong method,
//! body over [`MAX_BODY`]), answers in the one JSON shape
//! `{"error": …, "status": …}`.

use super::{ApiError, ProxyInput, Registry, TOXIPROXY_VERSION, ToxicInput};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde::Serialize;
use std::sync::Arc;

/// The largest request body, in bytes. The largest real one is a
/// `/populate` of many proxies, a few hundred bytes each.
pub const MAX_BODY: usize = 1 << 20;

/// Who may use the API.
#[derive(Debug, Clone)]
pub enum Access {
    /// Clients must send this bearer token.
    Token(String),
    /// Any client (loopback only; the CLI enforces it).
    Anonymous,
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    access: Arc<Access>,
}

/// The router: mount it with `axum::serve`.
pub fn router(registry: Arc<Registry>, access: Access) -> Router {
    let state = AppState {
        registry,
        access: Arc::new(access),
    };
    Router::new()
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/proxies", get(list).post(create))
        .route("/populate", post(populate))
        .route("/reset", post(reset))
        .route("/leases", get(leases))
        .route("/leases/{holder}", put(renew).delete(release))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Browsers are refused (no cross-site requests to a fault injector), then
/// the token is checked.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ua.starts_with("Mozilla/") {
        return text(StatusCode::FORBIDDEN, "User agent not allowed\n");
    }
    if let Access::Token(token) = &*state.access
        && req.uri().path() != "/version"
    {
        let sent = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        if !sent.is_some_and(|s| constant_time_eq(s.as_bytes(), token.as_bytes())) {
            let mut r = error(ApiError::new(
                401,
                "missing or wrong token: send `Authorization: Bearer <token>` (the token `firedrill proxy serve` was started with)",
            ));
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"firedrill\""),
            );
            return r;
        }
    }
    next.run(req).await
}

/// The token of `Bearer <token>` credentials. Auth schemes are
/// case-insensitive (RFC 9110 §11.1): clients send `bearer` and `BEARER`
/// too. One or more spaces separate scheme and token.
fn bearer(credentials: &str) -> Option<&str> {
    let (scheme, token) = credentials.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

async fn no_route(method: Method, uri: Uri) -> Response {
    error(ApiError::new(
        404,
        format!(
            "no route {method} {}: see the Toxiproxy 2.x API",
            uri.path()
        ),
    ))
}

/// The `Allow` header is added by the router.
async fn wrong_method(method: Method, uri: Uri) -> Response {
    error(ApiError::new(
        405,
        format!("method {method} not allowed on {}", uri.path()),
    ))
}

/// A request body read whole, up to [`MAX_BODY`]; what cannot be read is
/// an error in the API's shape (413 when too large) rather than the
/// router's plain text.
struct ApiBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<ApiBody, Response> {
        let too_large = || {
            error(ApiError::new(
                413,
                format!("request body too large: at most {MAX_BODY} bytes"),
            ))
        };
        // A declared length over the limit is refused before any of it is read.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        match Bytes::from_request(req, state).await {
            Ok(body) => Ok(ApiBody(body)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large()),
            Err(e) => Err(error(ApiError::new(
                e.status().as_u16(),
                format!("bad request body: {}", e.body_text()),
            ))),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn json<T: Serialize>(status: u16, value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("serializable");
    (
        StatusCode::from_u16(status).expect("valid status"),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Toxiproxy sends errors through Go's `http.Error`: JSON text, plain
/// content type, trailing newline.
fn error(e: ApiError) -> Response {
    let body = format!(
        "{}\n",
        serde_json::json!({"error": e.message, "status": e.status})
    );
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("bad request body: EOF"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))
}

fn reply<T: Serialize>(status: u16, r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => json(status, &v),
        Err(e) => error(e),
    }
}

async fn version() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        Body::from(format!("{{\"version\": \"{TOXIPROXY_VERSION}\"}}\n")),
    )
        .into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.registry.metrics().await,
    )
        .into_response()
}

async fn list(State(s): State<AppState>) -> Response {
    json(200, &s.registry.list().await)
}

async fn create(State(s): State<AppState>, ApiBody(body): ApiBody) -> Response {
    let r = match parse::<ProxyInput>(&body) {
        Ok(input) => s.registry.create(input).await,
        Err(e) => Err(e),
    };
    reply(201, r)
}

async fn populate(State(s): State<AppState>, ApiBody(body): ApiBody) -> Response {
    let inputs = match parse::<Vec<ProxyInput>>(&body) {
        Ok(i) => i,
        Err(e) => return error(e),
    };
    match s.registry.populate(inputs).await {
        Ok(done) => json(201, &serde_json::json!({ "proxies": done })),
        Err((e, done)) => json(
            e.status,
            &serde_json::json!({"error": e.message, "status": e.status, "proxies": done}),
        ),
    }
}

async fn reset(State(s): State<AppState>) -> Response {
    match s.registry.reset().await {
        Ok(()) => no_content(),
        Err(e) => error(e),
    }
}

async fn show(State(s): State<AppState>, Path(proxy): Path<String>) -> Response {
    reply(200, s.registry.get(&proxy).await)
}

async fn update(
    State(s): State<AppState>,
    Path(proxy): Path<String>,
    ApiBody(body): ApiBody,
) -> Response {
    let r = match parse::<ProxyInput>(&body) {
        Ok(input) => s.registry.update(&proxy, input).await,
        Err(e) => Err(e),
    };
    reply(200, r)
}

async fn delete(State(s): State<AppState>, Path(proxy): Path<String>) -> Response {
    match s.registry.delete(&proxy).await {
        Ok(()) => no_content(),
        Err(e) => error(e),
    }
}

async fn toxics(State(s): State<AppState>, Path(proxy): Path<String>) -> Response {
    reply(200, s.registry.toxics(&proxy).await)
}

async fn add_toxic(
    State(s): State<AppState>,
    Path(proxy): Path<String>,
    ApiBody(body): ApiBody,
) -> Response {
    // The proxy is checked before the body, as Toxiproxy does.
    if let Err(e) = s.registry.get(&proxy).await {
        return error(e);
    }
    let r = match parse::<ToxicInput>(&body) {
        Ok(input) => s.registry.add_toxic(&proxy, input).await,
        Err(e) => Err(e),
    };
    reply(200, r)
}

async fn toxic(
    State(s): State<AppState>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Response {
    reply(200, s.registry.toxic(&proxy, &toxic).await)
}

async fn update_toxic(
    State(s): State<AppState>,
    Path((proxy, toxic)): Path<(String, String)>,
    ApiBody(body): ApiBody,
) -> Response {
    let r = match parse::<ToxicInput>(&body) {
        Ok(input) => s.registry.update_toxic(&proxy, &toxic, input).await,
        Err(e) => Err(e),
    };
    reply(200, r)
}

async fn remove_toxic(
    State(s): State<AppState>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Response {
    match s.registry.remove_toxic(&proxy, &toxic).await {
        Ok(()) => no_content(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
struct LeaseInput {
    /// Milliseconds.
    ttl: u64,
    /// Leave its toxics out of every listing (a firedrill game day's).
    #[serde(default)]
    sealed: bool,
}

async fn leases(State(s): State<AppState>) -> Response {
    json(200, &s.registry.leases().await)
}

async fn renew(
    State(s): State<AppState>,
    Path(holder): Path<String>,
    ApiBody(body): ApiBody,
) -> Response {
    let r = match parse::<LeaseInput>(&body) {
        Ok(input) => {
            s.registry
                .renew(
                    &holder,
                    std::time::Duration::from_millis(input.ttl),
                    input.sealed,
                )
                .await
        }
        Err(e) => Err(e),
    };
    reply(200, r)
}

async fn release(State(s): State<AppState>, Path(holder): Path<String>) -> Response {
    match s.registry.release(&holder).await {
        Ok(_) => no_content(),
        Err(e) => error(e),
    }
}
