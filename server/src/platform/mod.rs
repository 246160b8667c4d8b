//! `firedrill serve`: the engine, the registries and the history of one
//! data dir behind a JSON API (`/api/v1`), for teams.
//!
//! The principal type is [`Platform`], the server's state; [`router`]
//! builds the HTTP routes from the one route table ([`routes::ROUTES`]),
//! and [`authorize`] checks every request against it before a handler
//! runs. Teams launch runs only within their grants on the targets an
//! admin registered: a launch becomes a drill (the registered target
//! declarations, the team's grants as their `grants`) checked by the
//! same policy as `firedrill run`.
//!
//! ```text
//! request ─► authorize (route table: role per route, CSRF for sessions) ─► handler
//! launch  ─► package (installed or bundled) ─► drill text ─► preflight ─► Engine::start
//! ```

mod api;
pub mod auth;
pub mod gameday;
pub mod model;
pub mod openapi;
pub mod routes;
pub mod schedule;
pub mod store;
mod web;
mod webhook;

use auth::{AuthError, LoginLimiter, Via};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use firedrill::Engine;
use firedrill::Halter;
use firedrill::history::RunId;
use http::StatusCode;
use model::{AuditEntry, Role, User};
use routes::Need;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use store::PlatformStore;

/// The largest request body (a launch with its parameters, a target).
pub const MAX_BODY: usize = 256 << 10;

/// The server's state.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    data_dir: PathBuf,
    store: PlatformStore,
    limiter: LoginLimiter,
    active: Mutex<HashMap<RunId, Halter>>,
    tasks: tokio_util::task::TaskTracker,
    /// Started game days.
    gamedays: Mutex<HashMap<String, Arc<gameday::Live>>>,
    /// Held while a game day record is read, changed and written.
    gameday_lock: Mutex<()>,
    /// Cancelled when the server shuts down.
    closing: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

/// What [`Platform::bootstrap`] made on a first start.
#[derive(Debug)]
pub struct Bootstrap {
    /// The admin's name.
    pub user: String,
    /// Its API token (shown once, stored as a hash).
    pub token: String,
    /// When the token stops working (Unix ms).
    pub expires_at: u64,
    /// Not a first start: no server admin could sign in any more.
    pub reissued: bool,
}

/// How long the first start's token works: long enough to set a password
/// or make a token of one's own.
pub const BOOTSTRAP_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Platform {
    /// The platform over `engine` (which holds `data_dir`) and its store.
    pub fn new(engine: Engine, data_dir: PathBuf, store: PlatformStore) -> Platform {
        Platform {
            inner: Arc::new(Inner {
                engine,
                data_dir,
                store,
                limiter: LoginLimiter::default(),
                active: Mutex::default(),
                tasks: tokio_util::task::TaskTracker::new(),
                gamedays: Mutex::default(),
                gameday_lock: Mutex::default(),
                closing: tokio_util::sync::CancellationToken::new(),
            }),
        }
    }

    /// On a first start (no users), create the administrator `admin` with
    /// no password and an API token shown once, which expires after
    /// [`BOOTSTRAP_TOKEN_TTL`]; there is no default password. A later start
    /// where no server admin can sign in any more (no password, no live
    /// token: the first token expired unused) gives `admin` a fresh one: who
    /// can start the server over its data dir is trusted with it already.
    pub fn bootstrap(&self) -> Result<Option<Bootstrap>, store::StoreError> {
        let store = &self.inner.store;
        let users = store.users()?;
        let now = now_ms();
        let reissued = !users.is_empty();
        let user = if users.is_empty() {
            let user = User {
                name: "admin".into(),
                password: None,
                admin: true,
                teams: Default::default(),
                created_at: now,
            };
            store.put_user(&user)?;
            user
        } else {
            let tokens = store.tokens()?;
            let can_sign_in = |u: &User| {
                u.password.is_some()
                    || tokens.iter().any(|t| {
                        t.user == u.name && !t.revoked && t.expires_at.is_none_or(|e| e > now)
                    })
            };
            let admins: Vec<&User> = users.iter().filter(|u| u.admin).collect();
            match admins.iter().find(|u| u.name == "admin") {
                Some(u) if !admins.iter().any(|u| can_sign_in(u)) => (*u).clone(),
                _ => return Ok(None),
            }
        };
        let expires = now + BOOTSTRAP_TOKEN_TTL.as_millis() as u64;
        let token = api::issue_token(store, &user.name, "first start", Some(expires))?;
        let detail = if reissued {
            "token re-issued: no server admin could sign in"
        } else {
            "first start"
        };
        self.audit("firedrill", "bootstrap", &user.name, "ok", detail);
        Ok(Some(Bootstrap {
            user: user.name,
            token,
            expires_at: expires,
            reissued,
        }))
    }

    /// Start firing the schedules (in the background, for the life of the
    /// process).
    pub fn start_scheduler(&self) {
        gameday::recover(self);
        tokio::spawn(self.clone().run_schedules());
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Append to the audit log; a failure to is logged (the action it
    /// records has happened).
    pub(crate) fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        outcome: &str,
        detail: &str,
    ) {
        let entry = AuditEntry {
            at: now_ms(),
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            outcome: outcome.into(),
            detail: detail.into(),
        };
        if let Err(e) = self.inner.store.audit(&entry) {
            tracing::error!("audit log: {e}");
        }
    }

    /// Halt every run launched here and wait until each has reverted its
    /// faults and ended: the server's graceful shutdown. How many runs
    /// were halted.
    pub async fn shutdown(&self) -> usize {
        self.inner.closing.cancel();
        let halted = {
            let active = self.inner.active.lock().unwrap();
            for h in active.values() {
                h.halt();
            }
            active.len()
        };
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        halted
    }
}

/// The HTTP routes, each behind [`authorize`].
pub fn router(platform: Platform) -> Router {
    let mut router = Router::new();
    for (path, handler) in api::handlers() {
        router = router.route(path, handler);
    }
    router
        .fallback(api::not_found)
        .layer(middleware::from_fn_with_state(platform.clone(), authorize))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(platform)
}

/// An API error: a status and a message, as `{"error": …}`.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError(status, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            axum::Json(serde_json::json!({"error": self.1, "status": self.0.as_u16()})),
        )
            .into_response()
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// Check a request against the route table before its handler runs: the
/// caller's identity, the role the route needs (in the team its path
/// names), and for session callers of state-changing methods the CSRF
/// token. The caller is handed to the handler as an extension.
async fn authorize(State(p): State<Platform>, mut req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let method = req.method().clone();
    let need = match &template {
        Some(t) => routes::need(&method, t),
        // No route: answered by the fallback, after authentication, so
        // the API's shape is not told to strangers.
        None => Need::User,
    };
    if need == Need::Open {
        return next.run(req).await;
    }
    let page = routes::is_page(req.uri().path());
    let principal = match auth::authenticate(&p.inner.store, req.headers(), now_ms()) {
        Ok(principal) => principal,
        Err(AuthError::Missing | AuthError::Invalid(_)) if page => {
            return axum::response::Redirect::to("/login").into_response();
        }
        Err(AuthError::Missing) => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "log in, or send an API token as `Authorization: Bearer fdt_…`",
            )
            .into_response();
        }
        Err(AuthError::Invalid(why)) => {
            return ApiError::new(StatusCode::UNAUTHORIZED, why).into_response();
        }
        Err(AuthError::Store(e)) => return ApiError::from(e).into_response(),
    };
    if let Via::Session { csrf, .. } = &principal.via
        && !matches!(method, http::Method::GET | http::Method::HEAD)
    {
        let (ok, rebuilt) = csrf_sent(req, csrf).await;
        req = rebuilt;
        if !ok {
            let message = format!(
                "a session's {method} needs its CSRF token (the `{}` header, or a form's `csrf` field)",
                auth::CSRF_HEADER
            );
            return if page {
                web::error_page(StatusCode::FORBIDDEN, &message)
            } else {
                ApiError::new(StatusCode::FORBIDDEN, message).into_response()
            };
        }
    }
    let path = req.uri().path().to_string();
    let allowed = match need {
        Need::Open | Need::User => true,
        Need::Admin => principal.user.admin,
        Need::AnyTeam(role) => principal.user.highest_role().is_some_and(|r| r >= role),
        Need::Team(role) => template
            .as_deref()
            .and_then(|t| routes::path_param(t, &path, "team"))
            .and_then(|team| principal.user.role_in(team))
            .is_some_and(|r| r >= role),
    };
    if !allowed {
        let wants = match need {
            Need::Admin => "a server admin".to_string(),
            Need::Team(r) => format!("the {r} role (or higher) in this team"),
            Need::AnyTeam(r) => format!("the {r} role (or higher) in a team"),
            Need::Open | Need::User => unreachable!(),
        };
        p.audit(
            &principal.user.name,
            "denied",
            &format!("{method} {path}"),
            "denied",
            &wants,
        );
        let message = format!("{method} {path} needs {wants}; ask an admin");
        return if page {
            web::error_page(StatusCode::FORBIDDEN, &message)
        } else {
            ApiError::new(StatusCode::FORBIDDEN, message).into_response()
        };
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Whether `req` carries the session's CSRF token: in the header, or as
/// the `csrf` field of a form body (read, then put back).
async fn csrf_sent(req: Request, csrf: &str) -> (bool, Request) {
    let header = req
        .headers()
        .get(auth::CSRF_HEADER)
        .and_then(|v| v.to_str().ok());
    if let Some(sent) = header {
        return (sent == csrf, req);
    }
    let is_form = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (false, req);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (false, Request::from_parts(parts, axum::body::Body::empty()));
    };
    let ok = form_urlencoded::parse(&bytes).any(|(k, v)| k == "csrf" && v == csrf);
    (
        ok,
        Request::from_parts(parts, axum::body::Body::from(bytes)),
    )
}

/// A role parsed from a request.
pub(crate) fn parse_role(text: &str) -> Result<Role, ApiError> {
    Role::ALL
        .into_iter()
        .find(|r| r.as_str() == text)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("role {text:?}: one of viewer, runner, publisher, admin"),
            )
        })
}
