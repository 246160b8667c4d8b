//! The `/api/v1` handlers. Who may call each is decided before they run
//! ([`super::authorize`] and the route table); a handler re-checks only
//! what depends on the record (a user changing their own password,
//! revoking their own token).

use super::auth::{self, Principal, Via};
use super::model::{LaunchedRun, Role, Target, Team, Token, User};
use super::routes::ROUTES;
use super::store::{PlatformStore, StoreError};
use super::{ApiError, Platform, now_ms, parse_role, web};
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Extension, Json};
use firedrill::history::RunId;
use firedrill_packages::{PackageReq, Store, Trust};
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

type ApiResult = Result<Response, ApiError>;

pub(super) fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn not_found_error(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, message)
}

/// A name for a user, team or target: lowercase letters, digits and
/// single dashes, at most 64 (the same rule as package names).
fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    firedrill_packages::check_label(what, name).map_err(|e| bad(e.to_string()))
}

/// The handlers, one per entry of the route table, grouped by path.
pub(super) fn handlers() -> Vec<(&'static str, MethodRouter<Platform>)> {
    let mut by_path: BTreeMap<&'static str, MethodRouter<Platform>> = BTreeMap::new();
    for r in ROUTES {
        let h = handler(&r.method, r.path);
        let merged = match by_path.remove(r.path) {
            Some(existing) => existing.merge(h),
            None => h,
        };
        by_path.insert(r.path, merged);
    }
    by_path.into_iter().collect()
}

fn handler(method: &Method, path: &str) -> MethodRouter<Platform> {
    let filter = MethodFilter::try_from(method.clone()).expect("a routable method");
    match (method.as_str(), path) {
        ("GET", "/healthz") => on(filter, healthz),
        ("GET", "/metrics") => on(filter, metrics),
        ("POST", "/api/v1/login") => on(filter, login),
        ("POST", "/api/v1/logout") => on(filter, logout),
        ("GET", "/api/v1/me") => on(filter, me),
        ("GET", "/api/v1/openapi.json") => on(filter, openapi),
        ("GET", "/api/v1/users") => on(filter, list_users),
        ("POST", "/api/v1/users") => on(filter, create_user),
        ("DELETE", "/api/v1/users/{user}") => on(filter, delete_user),
        ("PUT", "/api/v1/users/{user}/password") => on(filter, set_password),
        ("GET", "/api/v1/tokens") => on(filter, list_tokens),
        ("POST", "/api/v1/tokens") => on(filter, create_token),
        ("DELETE", "/api/v1/tokens/{id}") => on(filter, revoke_token),
        ("GET", "/api/v1/teams") => on(filter, list_teams),
        ("POST", "/api/v1/teams") => on(filter, create_team),
        ("GET", "/api/v1/teams/{team}") => on(filter, show_team),
        ("PUT", "/api/v1/teams/{team}/members/{user}") => on(filter, set_member),
        ("DELETE", "/api/v1/teams/{team}/members/{user}") => on(filter, remove_member),
        ("PUT", "/api/v1/teams/{team}/grants/{target}") => on(filter, set_grant),
        ("GET", "/api/v1/targets") => on(filter, list_targets),
        ("PUT", "/api/v1/targets/{target}") => on(filter, put_target),
        ("DELETE", "/api/v1/targets/{target}") => on(filter, delete_target),
        ("GET", "/api/v1/packages") => on(filter, packages),
        ("GET", "/api/v1/packages/{package}") => on(filter, package_detail),
        ("GET", "/api/v1/teams/{team}/trends") => on(filter, trends),
        ("PUT", "/api/v1/teams/{team}/namespaces") => on(filter, set_namespaces),
        ("POST", "/api/v1/teams/{team}/packages") => {
            on(filter, publish).layer(axum::extract::DefaultBodyLimit::max(MAX_PUBLISH_BODY))
        }
        ("GET", "/api/v1/teams/{team}/runs") => on(filter, list_runs),
        ("POST", "/api/v1/teams/{team}/runs") => on(filter, launch),
        ("GET", "/api/v1/teams/{team}/runs/{run}") => on(filter, show_run),
        ("POST", "/api/v1/teams/{team}/runs/{run}/halt") => on(filter, halt_run),
        ("POST", "/api/v1/teams/{team}/halt") => on(filter, halt_team),
        ("POST", "/api/v1/halt") => on(filter, halt_all),
        ("POST", "/api/v1/resume") => on(filter, resume),
        ("GET", "/api/v1/audit") => on(filter, audit_log),
        ("POST", "/api/v1/alerts") => on(filter, receive_alerts),
        ("GET", "/api/v1/alerts") => on(filter, list_alerts),
        ("GET", "/api/v1/teams/{team}/runs/{run}/report/{format}") => on(filter, web::report),
        ("GET", "/api/v1/teams/{team}/diff") => on(filter, web::diff_json),
        ("GET", "/api/v1/webhooks") => on(filter, list_webhooks),
        ("PUT", "/api/v1/webhooks/{name}") => on(filter, put_webhook),
        ("DELETE", "/api/v1/webhooks/{name}") => on(filter, delete_webhook),
        ("GET", "/api/v1/teams/{team}/runs/{run}/events") => on(filter, web::events),
        ("GET", "/api/v1/teams/{team}/schedules") => on(filter, list_schedules),
        ("POST", "/api/v1/teams/{team}/schedules") => on(filter, create_schedule),
        ("POST", "/api/v1/teams/{team}/schedules/{id}/pause") => on(filter, pause_schedule),
        ("POST", "/api/v1/teams/{team}/schedules/{id}/resume") => on(filter, resume_schedule),
        ("DELETE", "/api/v1/teams/{team}/schedules/{id}") => on(filter, delete_schedule),
        ("GET", "/login") => on(filter, web::login_page),
        ("POST", "/login") => on(filter, web::login_form),
        ("POST", "/logout") => on(filter, web::logout_form),
        ("GET", "/") => on(filter, web::catalog),
        ("GET", "/packages/{package}") => on(filter, web::package_page),
        ("POST", "/launch") => on(filter, web::launch_form),
        ("GET", "/teams/{team}/runs") => on(filter, web::history_page),
        ("GET", "/teams/{team}/runs/{run}") => on(filter, web::run_page),
        ("POST", "/teams/{team}/runs/{run}/halt") => on(filter, web::halt_form),
        ("GET", "/teams/{team}/runs/{run}/report/{format}") => on(filter, web::report),
        ("POST", "/halt-all") => on(filter, web::halt_all_form),
        ("POST", "/login/token") => on(filter, web::token_login),
        ("GET", "/teams/{team}/schedules") => on(filter, web::schedules_page),
        ("POST", "/teams/{team}/schedules") => on(filter, web::schedule_form),
        ("POST", "/teams/{team}/schedules/{id}/{action}") => on(filter, web::schedule_action),
        ("GET", "/teams/{team}/diff") => on(filter, web::diff_page),
        ("GET", "/admin") => on(filter, web::admin_page),
        ("POST", "/admin/teams") => on(filter, web::admin_form),
        ("POST", "/admin/users") => on(filter, web::admin_form),
        ("POST", "/admin/members") => on(filter, web::admin_form),
        ("POST", "/admin/targets") => on(filter, web::admin_form),
        ("POST", "/admin/grants") => on(filter, web::admin_form),
        ("POST", "/resume-all") => on(filter, web::resume_all_form),
        (m, p) => super::gameday::api::handler(filter, m, p).unwrap_or_else(|| {
            panic!("the route table lists {method} {path}, which has no handler")
        }),
    }
}

pub(super) async fn not_found(req: Request) -> ApiError {
    not_found_error(format!("no route {} {}", req.method(), req.uri().path()))
}

/// Parse a JSON body, naming what is wrong.
pub(super) fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| bad(format!("the request body: {e}")))
}

pub(super) async fn read_body(req: Request) -> Result<axum::body::Bytes, ApiError> {
    read_body_up_to(req, super::MAX_BODY).await
}

/// The largest publish request: a component at the package cap, in base64.
const MAX_PUBLISH_BODY: usize =
    (firedrill_packages::registry::MAX_COMPONENT_BYTES as usize) * 4 / 3 + (1 << 20);

async fn read_body_up_to(req: Request, cap: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), cap)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body: {e} (at most {cap} bytes)"),
            )
        })
}

async fn openapi() -> Json<Value> {
    static DOC: std::sync::LazyLock<Value> = std::sync::LazyLock::new(super::openapi::document);
    Json(DOC.clone())
}

/// Prometheus' text exposition format: runs launched here by final
/// status, what is running, the faults in effect, run durations, the
/// schedules, the halt.
/// A metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

async fn metrics(State(p): State<Platform>) -> ApiResult {
    use std::fmt::Write as _;
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    const BUCKETS: [f64; 8] = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, f64::INFINITY];
    let mut counts = [0u64; 8];
    let (mut sum, mut n) = (0.0, 0u64);
    // A game day's runs would tell responders when its faults start.
    for launched in p.inner.store.runs()? {
        if super::gameday::of_run(&launched).is_some() {
            continue;
        }
        let Ok(id) = launched.run.parse::<RunId>() else {
            continue;
        };
        let Ok(Some(run)) = p.engine().history().get_run(id) else {
            continue;
        };
        let Some(ended) = run.ended_at else {
            continue;
        };
        *by_status
            .entry(run.status.as_str().to_string())
            .or_default() += 1;
        let secs = ended.saturating_sub(run.started_at) as f64 / 1000.0;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                counts[i] += 1;
            }
        }
        sum += secs;
        n += 1;
    }
    let hidden: Vec<RunId> = p
        .inner
        .gamedays
        .lock()
        .unwrap()
        .values()
        .flat_map(|live| live.runs())
        .collect();
    let (active, faults) = {
        let active = p.inner.active.lock().unwrap();
        let shown: Vec<&firedrill::Halter> = active
            .iter()
            .filter(|(id, _)| !hidden.contains(id))
            .map(|(_, h)| h)
            .collect();
        let faults: usize = shown.iter().map(|h| h.active_faults().len()).sum();
        (shown.len(), faults)
    };
    let gamedays = p.inner.store.gamedays()?;
    let announced = gamedays.iter().filter(|g| g.phase.active()).count();
    let schedules = p.inner.store.schedules()?;
    let paused = schedules.iter().filter(|s| s.paused).count();
    let mut out = String::new();
    family(
        &mut out,
        "firedrill_server_runs_total",
        "counter",
        "Runs launched through the server that ended, by final status.",
    );
    for (status, count) in &by_status {
        let _ = writeln!(
            out,
            "firedrill_server_runs_total{{status=\"{status}\"}} {count}"
        );
    }
    family(
        &mut out,
        "firedrill_server_active_runs",
        "gauge",
        "Runs launched through the server that are going.",
    );
    let _ = writeln!(out, "firedrill_server_active_runs {active}");
    family(
        &mut out,
        "firedrill_server_active_faults",
        "gauge",
        "Faults in effect in those runs.",
    );
    let _ = writeln!(out, "firedrill_server_active_faults {faults}");
    family(
        &mut out,
        "firedrill_server_run_duration_seconds",
        "histogram",
        "How long ended runs took.",
    );
    for (b, c) in BUCKETS.iter().zip(counts) {
        let le = if b.is_infinite() {
            "+Inf".to_string()
        } else {
            b.to_string()
        };
        let _ = writeln!(
            out,
            "firedrill_server_run_duration_seconds_bucket{{le=\"{le}\"}} {c}"
        );
    }
    let _ = writeln!(out, "firedrill_server_run_duration_seconds_sum {sum}");
    let _ = writeln!(out, "firedrill_server_run_duration_seconds_count {n}");
    family(
        &mut out,
        "firedrill_server_schedules",
        "gauge",
        "Schedules, by state.",
    );
    let _ = writeln!(
        out,
        "firedrill_server_schedules{{state=\"active\"}} {}",
        schedules.len() - paused
    );
    let _ = writeln!(
        out,
        "firedrill_server_schedules{{state=\"paused\"}} {paused}"
    );
    family(
        &mut out,
        "firedrill_server_gamedays_active",
        "gauge",
        "Game days announced to their responders and not over (their runs are in no other figure).",
    );
    let _ = writeln!(out, "firedrill_server_gamedays_active {announced}");
    family(
        &mut out,
        "firedrill_server_halted",
        "gauge",
        "1 while a halt-all holds every run and schedule.",
    );
    let _ = writeln!(
        out,
        "firedrill_server_halted {}",
        u8::from(p.engine().halt_state().is_some())
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Make an API token for `user`; the secret, shown once.
pub(super) fn issue_token(
    store: &PlatformStore,
    user: &str,
    name: &str,
    expires_at: Option<u64>,
) -> Result<String, StoreError> {
    let secret = auth::new_secret(auth::TOKEN_PREFIX);
    let hash = auth::hash_secret(&secret);
    let token = Token {
        id: hash[..16].to_string(),
        user: user.into(),
        name: name.into(),
        created_at: now_ms(),
        expires_at,
        revoked: false,
    };
    store.put_token(&hash, &token)?;
    Ok(secret)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    user: String,
    password: String,
}

/// A successful login: the session cookie to set and its CSRF token.
pub(super) struct LoggedIn {
    pub(super) set_cookie: HeaderValue,
    pub(super) csrf: String,
    pub(super) user: User,
}

/// The address a request came from (unknown: 0.0.0.0).
pub(super) fn client_ip(req: &Request) -> std::net::IpAddr {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

/// Check a password login (rate limited per user and address) and open a
/// session: always a new id, so a cookie planted before login is never
/// promoted (no session fixation).
pub(super) fn open_session(
    p: &Platform,
    ip: std::net::IpAddr,
    name: &str,
    password: &str,
) -> Result<LoggedIn, Box<Response>> {
    let name: String = name.chars().take(64).collect();
    if let Err(wait) = p.inner.limiter.check(&name, ip) {
        p.audit(&name, "login", &name, "denied", "too many failed attempts");
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed logins for {name:?}; try again in {} s",
                wait.as_secs() + 1
            ),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&(wait.as_secs() + 1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(Box::new(r));
    }
    let user = p
        .inner
        .store
        .user(&name)
        .map_err(|e| Box::new(ApiError::from(e).into_response()))?;
    let ok = user.as_ref().is_some_and(|u| {
        u.password
            .as_deref()
            .is_some_and(|h| auth::verify_password(h, password))
    });
    let Some(user) = user.filter(|_| ok) else {
        p.inner.limiter.failed(&name, ip);
        p.audit(&name, "login", &name, "failed", "wrong user or password");
        return Err(Box::new(
            ApiError::new(StatusCode::UNAUTHORIZED, "wrong user or password").into_response(),
        ));
    };
    p.inner.limiter.succeeded(&name, ip);
    new_session(p, user, "", None).map_err(|e| Box::new(e.into_response()))
}

/// A new session for `user`, who proved who they are (a password, or an
/// API token: `how`): always a new id, so a cookie planted before login is
/// never promoted. It ends after [`auth::SESSION_TTL`], or at `until` if
/// sooner (the expiry of the token it was opened with).
pub(super) fn new_session(
    p: &Platform,
    user: User,
    how: &str,
    until: Option<u64>,
) -> Result<LoggedIn, ApiError> {
    let id = auth::new_secret("fds_");
    let csrf = auth::new_secret("");
    let ttl_end = now_ms() + auth::SESSION_TTL.as_millis() as u64;
    p.inner.store.put_session(
        &auth::hash_secret(&id),
        &super::model::Session {
            user: user.name.clone(),
            csrf: csrf.clone(),
            expires_at: until.map_or(ttl_end, |u| u.min(ttl_end)),
        },
    )?;
    p.audit(&user.name, "login", &user.name, "ok", how);
    Ok(LoggedIn {
        set_cookie: HeaderValue::from_str(&auth::session_set_cookie(Some(&id)))
            .expect("a cookie header"),
        csrf,
        user,
    })
}

async fn login(State(p): State<Platform>, req: Request) -> ApiResult {
    let ip = client_ip(&req);
    let input: Login = body(&read_body(req).await?)?;
    match open_session(&p, ip, &input.user, &input.password) {
        Ok(done) => {
            let mut r = Json(json!({"user": done.user.view(), "csrf": done.csrf})).into_response();
            r.headers_mut().insert(header::SET_COOKIE, done.set_cookie);
            Ok(r)
        }
        Err(r) => Ok(*r),
    }
}

async fn logout(State(p): State<Platform>, Extension(who): Extension<Principal>) -> ApiResult {
    if let Via::Session { hash, .. } = &who.via {
        p.inner.store.remove_session(hash)?;
    }
    p.audit(&who.user.name, "logout", &who.user.name, "ok", "");
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::session_set_cookie(None)).expect("a cookie header"),
    );
    Ok(r)
}

async fn me(Extension(who): Extension<Principal>) -> Json<Value> {
    let (via, csrf) = match &who.via {
        Via::Token(id) => (format!("token {id}"), None),
        Via::Session { csrf, .. } => ("session".to_string(), Some(csrf.clone())),
    };
    Json(json!({"user": who.user.view(), "via": via, "csrf": csrf}))
}

async fn list_users(State(p): State<Platform>) -> ApiResult {
    let users: Vec<_> = p.inner.store.users()?.iter().map(User::view).collect();
    Ok(Json(users).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    admin: bool,
}

fn check_password(password: &str) -> Result<String, ApiError> {
    if password.chars().count() < 12 || password.len() > 1024 {
        return Err(bad(
            "a password has 12 to 1024 characters; a long passphrase is best",
        ));
    }
    auth::hash_password(password).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
}

async fn create_user(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    req: Request,
) -> ApiResult {
    let input: NewUser = body(&read_body(req).await?)?;
    let user = new_user(
        &p,
        &who,
        &input.name,
        input.password.as_deref(),
        input.admin,
    )?;
    Ok((StatusCode::CREATED, Json(user.view())).into_response())
}

/// Make a user (the API's and the admin page's).
pub(super) fn new_user(
    p: &Platform,
    who: &Principal,
    name: &str,
    password: Option<&str>,
    admin: bool,
) -> Result<User, ApiError> {
    check_name("user name", name)?;
    if p.inner.store.user(name)?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("user {name:?} exists"),
        ));
    }
    let user = User {
        name: name.to_string(),
        password: password.map(check_password).transpose()?,
        admin,
        teams: BTreeMap::new(),
        created_at: now_ms(),
    };
    p.inner.store.put_user(&user)?;
    p.audit(
        &who.user.name,
        "create-user",
        &user.name,
        "ok",
        if user.admin { "admin" } else { "" },
    );
    Ok(user)
}

async fn delete_user(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    if name == who.user.name {
        return Err(bad("you cannot remove yourself; ask another admin"));
    }
    if !p.inner.store.remove_user(&name)? {
        return Err(not_found_error(format!("no user {name:?}")));
    }
    p.audit(&who.user.name, "remove-user", &name, "ok", "");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewPassword {
    password: String,
}

async fn set_password(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult {
    if !(who.user.admin || who.user.name == name) {
        p.audit(&who.user.name, "set-password", &name, "denied", "");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only an admin may set another user's password",
        ));
    }
    let input: NewPassword = body(&read_body(req).await?)?;
    let mut user = p
        .inner
        .store
        .user(&name)?
        .ok_or_else(|| not_found_error(format!("no user {name:?}")))?;
    user.password = Some(check_password(&input.password)?);
    p.inner.store.put_user(&user)?;
    p.audit(&who.user.name, "set-password", &name, "ok", "");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_tokens(State(p): State<Platform>, Extension(who): Extension<Principal>) -> ApiResult {
    let tokens: Vec<Token> = p
        .inner
        .store
        .tokens()?
        .into_iter()
        .filter(|t| who.user.admin || t.user == who.user.name)
        .collect();
    Ok(Json(tokens).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    name: String,
    /// A duration, e.g. `30d`; none: it does not expire.
    #[serde(default)]
    expires_in: Option<String>,
    /// For another user (admins only).
    #[serde(default)]
    user: Option<String>,
}

async fn create_token(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    req: Request,
) -> ApiResult {
    let input: NewToken = body(&read_body(req).await?)?;
    let user = input.user.unwrap_or_else(|| who.user.name.clone());
    if user != who.user.name && !who.user.admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only an admin may make tokens for another user",
        ));
    }
    if p.inner.store.user(&user)?.is_none() {
        return Err(not_found_error(format!("no user {user:?}")));
    }
    if input.name.is_empty() || input.name.len() > 128 {
        return Err(bad(
            "a token's name says what it is for: 1 to 128 characters",
        ));
    }
    let expires_at = match &input.expires_in {
        Some(d) => Some(
            now_ms()
                + humantime::parse_duration(d)
                    .map_err(|e| bad(format!("expires_in {d:?}: {e} (e.g. \"30d\")")))?
                    .as_millis() as u64,
        ),
        None => None,
    };
    let secret = issue_token(&p.inner.store, &user, &input.name, expires_at)?;
    let id = auth::hash_secret(&secret)[..16].to_string();
    p.audit(
        &who.user.name,
        "create-token",
        &format!("{user} {id}"),
        "ok",
        &input.name,
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "token": secret, "user": user, "expires_at": expires_at})),
    )
        .into_response())
}

async fn revoke_token(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let token = p
        .inner
        .store
        .token_by_id(&id)?
        .filter(|t| who.user.admin || t.user == who.user.name)
        .ok_or_else(|| not_found_error(format!("no token {id:?} of yours")))?;
    p.inner.store.revoke_token(&token.id)?;
    p.audit(
        &who.user.name,
        "revoke-token",
        &format!("{} {id}", token.user),
        "ok",
        "",
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn team_view(store: &PlatformStore, team: &Team) -> Result<Value, ApiError> {
    let members: BTreeMap<String, Role> = store
        .users()?
        .into_iter()
        .filter_map(|u| u.teams.get(&team.name).map(|r| (u.name.clone(), *r)))
        .collect();
    Ok(
        json!({"name": team.name, "members": members, "grants": team.grants, "created_at": team.created_at}),
    )
}

async fn list_teams(State(p): State<Platform>, Extension(who): Extension<Principal>) -> ApiResult {
    let mut out = Vec::new();
    for team in p.inner.store.teams()? {
        if let Some(role) = who.user.role_in(&team.name) {
            let mut v = team_view(&p.inner.store, &team)?;
            v["your_role"] = json!(role);
            out.push(v);
        }
    }
    Ok(Json(out).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTeam {
    name: String,
}

async fn create_team(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    req: Request,
) -> ApiResult {
    let input: NewTeam = body(&read_body(req).await?)?;
    let team = new_team(&p, &who, &input.name)?;
    Ok((StatusCode::CREATED, Json(team_view(&p.inner.store, &team)?)).into_response())
}

/// Make a team.
pub(super) fn new_team(p: &Platform, who: &Principal, name: &str) -> Result<Team, ApiError> {
    check_name("team name", name)?;
    if p.inner.store.team(name)?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("team {name:?} exists"),
        ));
    }
    let team = Team {
        name: name.to_string(),
        grants: BTreeMap::new(),
        namespaces: Vec::new(),
        created_at: now_ms(),
    };
    p.inner.store.put_team(&team)?;
    p.audit(&who.user.name, "create-team", &team.name, "ok", "");
    Ok(team)
}

pub(super) fn team(p: &Platform, name: &str) -> Result<Team, ApiError> {
    p.inner
        .store
        .team(name)?
        .ok_or_else(|| not_found_error(format!("no team {name:?}")))
}

async fn show_team(State(p): State<Platform>, Path(name): Path<String>) -> ApiResult {
    let t = team(&p, &name)?;
    Ok(Json(team_view(&p.inner.store, &t)?).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Membership {
    role: String,
}

async fn set_member(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((team_name, user_name)): Path<(String, String)>,
    req: Request,
) -> ApiResult {
    let input: Membership = body(&read_body(req).await?)?;
    let user = set_role(&p, &who, &team_name, &user_name, &input.role)?;
    // The membership only: a team's admin sees nothing of other teams.
    Ok(Json(json!({
        "user": user.name,
        "team": team_name,
        "role": user.role_in(&team_name),
    }))
    .into_response())
}

/// Give a user a role in a team.
pub(super) fn set_role(
    p: &Platform,
    who: &Principal,
    team_name: &str,
    user_name: &str,
    role: &str,
) -> Result<User, ApiError> {
    let role = parse_role(role)?;
    team(p, team_name)?;
    let mut user = p
        .inner
        .store
        .user(user_name)?
        .ok_or_else(|| not_found_error(format!("no user {user_name:?}")))?;
    user.teams.insert(team_name.to_string(), role);
    p.inner.store.put_user(&user)?;
    p.audit(
        &who.user.name,
        "set-member",
        &format!("{team_name} {user_name}"),
        "ok",
        role.as_str(),
    );
    Ok(user)
}

async fn remove_member(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((team_name, user_name)): Path<(String, String)>,
) -> ApiResult {
    let not_member = || {
        not_found_error(format!(
            "{user_name:?} is not a member of team {team_name:?}"
        ))
    };
    let mut user = p.inner.store.user(&user_name)?.ok_or_else(not_member)?;
    if user.teams.remove(&team_name).is_none() {
        return Err(not_member());
    }
    p.inner.store.put_user(&user)?;
    p.audit(
        &who.user.name,
        "remove-member",
        &format!("{team_name} {user_name}"),
        "ok",
        "",
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Grant {
    kinds: Vec<String>,
}

async fn set_grant(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((team_name, target)): Path<(String, String)>,
    req: Request,
) -> ApiResult {
    let input: Grant = body(&read_body(req).await?)?;
    let t = grant(&p, &who, &team_name, &target, input.kinds)?;
    Ok(Json(team_view(&p.inner.store, &t)?).into_response())
}

/// Set a team's grants on a target (none: remove them).
pub(super) fn grant(
    p: &Platform,
    who: &Principal,
    team_name: &str,
    target: &str,
    requested: Vec<String>,
) -> Result<Team, ApiError> {
    let mut t = team(p, team_name)?;
    if p.inner.store.target(target)?.is_none() {
        return Err(not_found_error(format!(
            "no target {target:?}: register it first (PUT /api/v1/targets/{target})"
        )));
    }
    let mut kinds = BTreeSet::new();
    for k in requested {
        serde_json::from_value::<firedrill::policy::FaultKind>(Value::String(k.clone())).map_err(
            |_| {
                bad(format!(
                    "{k:?} is not a fault kind (`firedrill inspect` lists a scenario's)"
                ))
            },
        )?;
        kinds.insert(k);
    }
    let detail = kinds.iter().cloned().collect::<Vec<_>>().join(",");
    if kinds.is_empty() {
        t.grants.remove(target);
    } else {
        t.grants.insert(target.to_string(), kinds);
    }
    p.inner.store.put_team(&t)?;
    p.audit(
        &who.user.name,
        "grant",
        &format!("{team_name} {target}"),
        "ok",
        &detail,
    );
    Ok(t)
}

async fn list_targets(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
) -> ApiResult {
    let teams = p.inner.store.teams()?;
    let visible: Vec<Target> = p
        .inner
        .store
        .targets()?
        .into_iter()
        .filter(|t| {
            who.user.admin
                || teams.iter().any(|team| {
                    who.user.role_in(&team.name).is_some() && team.grants.contains_key(&t.name)
                })
        })
        .collect();
    Ok(Json(visible).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTarget {
    declaration: serde_json::Map<String, Value>,
}

/// The drill text of targets `(name in the drill, declaration, grants)`
/// for `scenario` (a package requirement).
pub(super) fn drill_text(
    header: &str,
    scenario: &str,
    targets: &[(String, &serde_json::Map<String, Value>, Vec<String>)],
) -> Result<String, ApiError> {
    let mut table = toml::Table::new();
    for (name, declaration, grants) in targets {
        let mut decl =
            toml::Table::try_from(declaration).map_err(|e| bad(format!("target {name:?}: {e}")))?;
        decl.insert(
            "grants".into(),
            toml::Value::Array(grants.iter().cloned().map(toml::Value::String).collect()),
        );
        table.insert(name.clone(), toml::Value::Table(decl));
    }
    let mut doc = toml::Table::new();
    let mut s = toml::Table::new();
    s.insert("package".into(), toml::Value::String(scenario.into()));
    doc.insert("scenario".into(), toml::Value::Table(s));
    doc.insert("targets".into(), toml::Value::Table(table));
    let text = toml::to_string(&doc).map_err(|e| bad(e.to_string()))?;
    Ok(format!("# {header}\n{text}"))
}

/// Add `checks` to a drill's text as its `[[steady_state]]` tables.
pub(super) fn append_steady_state(
    text: &mut String,
    checks: Vec<toml::Table>,
) -> Result<(), toml::ser::Error> {
    if !checks.is_empty() {
        let mut doc = toml::Table::new();
        doc.insert(
            "steady_state".into(),
            toml::Value::Array(checks.into_iter().map(toml::Value::Table).collect()),
        );
        text.push_str(&toml::to_string(&doc)?);
    }
    Ok(())
}

async fn put_target(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult {
    let input: NewTarget = body(&read_body(req).await?)?;
    let target = register_target(&p, &who, &name, input.declaration)?;
    Ok(Json(target).into_response())
}

/// Register (or replace) a target, checked as a drill file's would be.
pub(super) fn register_target(
    p: &Platform,
    who: &Principal,
    name: &str,
    declaration: serde_json::Map<String, Value>,
) -> Result<Target, ApiError> {
    check_name("target name", name)?;
    if declaration.contains_key("grants") {
        return Err(bad(
            "a registered target has no `grants`: teams get those (PUT /api/v1/teams/{team}/grants/{target})",
        ));
    }
    // Checked as a drill file would be, with the drill's own messages.
    let text = drill_text(
        &format!("target {name}"),
        "firedrill:kill-and-recover",
        &[(name.to_string(), &declaration, Vec::new())],
    )?;
    firedrill::Drill::parse(&text, std::path::Path::new(&format!("target {name}"))).map_err(
        |e| {
            bad(format!(
                "target {name:?}: {} ({}): {}",
                e.field, e.file, e.message
            ))
        },
    )?;
    let target = Target {
        name: name.to_string(),
        declaration,
        created_at: now_ms(),
    };
    p.inner.store.put_target(&target)?;
    p.audit(&who.user.name, "register-target", name, "ok", "");
    Ok(target)
}

async fn delete_target(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    if !p.inner.store.remove_target(&name)? {
        return Err(not_found_error(format!("no target {name:?}")));
    }
    for mut t in p.inner.store.teams()? {
        if t.grants.remove(&name).is_some() {
            p.inner.store.put_team(&t)?;
        }
    }
    p.audit(&who.user.name, "remove-target", &name, "ok", "");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct PackageQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    needs: Option<String>,
}

/// The catalog: the data dir's default registry (synced) and the bundled
/// scenarios, newest version of each matching package.
pub(super) async fn catalog_search(
    p: &Platform,
    query: &str,
    needs: Option<&str>,
) -> Result<Vec<firedrill_packages::IndexEntry>, ApiError> {
    use firedrill_packages::{Catalog, Registry, RegistryConfig, bundled};
    let dir = &p.inner.data_dir;
    let failed =
        |e: firedrill_packages::PackageError| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string());
    let config = RegistryConfig::load(dir).map_err(failed)?;
    let registry = Registry::open(&config.registry_for(None), &config).map_err(failed)?;
    let trust = Trust::load(dir).map_err(failed)?;
    let catalog = Catalog::open(dir).map_err(failed)?;
    let mut found = match registry.sync(&catalog, &trust, now_ms()).await {
        Ok(firedrill_packages::Synced::NoIndex) | Err(_) => Vec::new(),
        Ok(_) => catalog
            .search(&registry.name(), query, needs)
            .map_err(failed)?,
    };
    bundled::sync(p.engine(), &catalog).await.map_err(failed)?;
    found.extend(
        catalog
            .search(bundled::REGISTRY, query, needs)
            .map_err(failed)?,
    );
    found.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(found)
}

async fn packages(State(p): State<Platform>, Query(q): Query<PackageQuery>) -> ApiResult {
    Ok(Json(catalog_search(&p, &q.q, q.needs.as_deref()).await?).into_response())
}

fn run_view(p: &Platform, launched: &LaunchedRun) -> Result<Value, ApiError> {
    let id: RunId = launched.run.parse().map_err(bad)?;
    let run = p
        .engine()
        .history()
        .get_run(id)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(json!({
        "run": launched.run,
        "team": launched.team,
        "launched_by": launched.launched_by,
        "scenario": launched.scenario,
        "launched_at": launched.at,
        "active": p.inner.active.lock().unwrap().contains_key(&id),
        "record": run,
    }))
}

/// A team's runs, newest first, filtered by `status`, `scenario` and
/// `since` as the history page is.
async fn list_runs(
    State(p): State<Platform>,
    Path(team_name): Path<String>,
    Query(q): Query<web::HistoryQuery>,
) -> ApiResult {
    team(&p, &team_name)?;
    let (rows, _) = web::team_history(&p, &team_name, &q)?;
    let runs: Result<Vec<Value>, ApiError> = rows.iter().map(|(r, _)| run_view(&p, r)).collect();
    Ok(Json(runs?).into_response())
}

/// Per package (or scenario), each ended real run of the team as the
/// history's filters select them, oldest first: when it started, how long
/// it took and how it ended (the history page's trend charts).
async fn trends(
    State(p): State<Platform>,
    Path(team_name): Path<String>,
    Query(q): Query<web::HistoryQuery>,
) -> ApiResult {
    team(&p, &team_name)?;
    let (_, series) = web::team_history(&p, &team_name, &q)?;
    let out: BTreeMap<String, Vec<Value>> = series
        .into_iter()
        .map(|(scenario, points)| {
            let points = points
                .into_iter()
                .map(|(at, secs, status)| json!({"started_at": at, "seconds": secs, "status": status}))
                .collect();
            (scenario, points)
        })
        .collect();
    Ok(Json(out).into_response())
}

/// One package as the catalog shows it: description, digest, signer,
/// registry, versions, README, parameters and the capability review.
async fn package_detail(State(p): State<Platform>, Path(package): Path<String>) -> ApiResult {
    let r = web::runnable(&p, &package).await?;
    let review: Vec<Value> = r
        .meta
        .needs
        .iter()
        .map(|n| {
            json!({
                "kind": n.kind.to_string(),
                "target": n.target,
                "says": web::review_line(&n.kind.to_string(), &n.target),
            })
        })
        .collect();
    // A secret parameter's default is not shown.
    let params: Vec<Value> = r
        .meta
        .params
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "type": s.ty,
                "default": if s.secret { None } else { s.default.clone() },
                "doc": s.doc,
                "secret": s.secret,
            })
        })
        .collect();
    Ok(Json(json!({
        "package": package,
        "name": r.meta.name,
        "version": r.meta.version,
        "description": r.meta.description,
        "digest": r.digest,
        "signer": r.signer,
        "registry": r.registry,
        "versions": r.versions,
        "readme": r.readme,
        "params": params,
        "review": review,
    }))
    .into_response())
}

/// A run launched for `team_name`, and its id (another team's is not
/// found).
pub(super) fn team_run(
    p: &Platform,
    team_name: &str,
    run: &str,
) -> Result<(LaunchedRun, RunId), ApiError> {
    let launched = p
        .inner
        .store
        .run(run)?
        .filter(|r| r.team == team_name)
        .ok_or_else(|| not_found_error(format!("team {team_name:?} has no run {run:?}")))?;
    let id = launched.run.parse().map_err(not_found_error)?;
    Ok((launched, id))
}

/// Halt a team's run; whether it was going.
pub(super) fn halt_team_run(
    p: &Platform,
    who: &Principal,
    team_name: &str,
    run: &str,
) -> Result<bool, ApiError> {
    let (_, id) = team_run(p, team_name, run)?;
    let halter = p.inner.active.lock().unwrap().get(&id).cloned();
    let Some(halter) = halter else {
        return Ok(false);
    };
    halter.halt();
    p.audit(
        &who.user.name,
        "halt",
        &format!("{team_name} {run}"),
        "ok",
        "",
    );
    Ok(true)
}

async fn show_run(
    State(p): State<Platform>,
    Path((team_name, run)): Path<(String, String)>,
) -> ApiResult {
    let (launched, id) = team_run(&p, &team_name, &run)?;
    let mut view = run_view(&p, &launched)?;
    view["timeline"] = json!(
        p.engine()
            .history()
            .timeline(id)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    );
    Ok(Json(view).into_response())
}

async fn halt_run(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((team_name, run)): Path<(String, String)>,
) -> ApiResult {
    if !halt_team_run(&p, &who, &team_name, &run)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run {run} is not running"),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run": run, "halting": true})),
    )
        .into_response())
}

/// Halt every run of a team that is going (its admins' emergency stop).
/// Unlike the server-wide halt, later launches and the team's schedules
/// are not held back: pause those on their own.
async fn halt_team(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(team_name): Path<String>,
) -> ApiResult {
    team(&p, &team_name)?;
    // Under the lock a launch takes to record its run and make it active
    // (`start_prepared`): a run is seen in both or in neither.
    let halters: Vec<firedrill::Halter> = {
        let active = p.inner.active.lock().unwrap();
        p.inner
            .store
            .runs()?
            .iter()
            .filter(|r| r.team == team_name)
            .filter_map(|r| r.run.parse::<RunId>().ok())
            .filter_map(|id| active.get(&id).cloned())
            .collect()
    };
    for h in &halters {
        h.halt();
    }
    p.audit(
        &who.user.name,
        "halt-team",
        &team_name,
        "ok",
        &format!("{} runs", halters.len()),
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"team": team_name, "halting": halters.len()})),
    )
        .into_response())
}

async fn halt_all(State(p): State<Platform>, Extension(who): Extension<Principal>) -> ApiResult {
    let n = p
        .engine()
        .halt()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    p.audit(&who.user.name, "halt-all", "*", "ok", &format!("{n} runs"));
    Ok(Json(json!({"halted": n, "new_runs": "refused until POST /api/v1/resume"})).into_response())
}

async fn resume(State(p): State<Platform>, Extension(who): Extension<Principal>) -> ApiResult {
    let was = p
        .engine()
        .resume()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    p.audit(&who.user.name, "resume", "*", "ok", "");
    Ok(Json(json!({"resumed": was.is_some()})).into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn audit_log(State(p): State<Platform>, Query(q): Query<AuditQuery>) -> ApiResult {
    let log = p.inner.store.audit_log()?;
    match q.format.as_deref() {
        Some("jsonl") => {
            let mut text = String::new();
            for e in &log {
                text += &serde_json::to_string(e).unwrap_or_default();
                text.push('\n');
            }
            Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response())
        }
        None | Some("json") => Ok(Json(log).into_response()),
        Some(f) => Err(bad(format!("format {f:?}: json or jsonl"))),
    }
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Launch {
    /// A package requirement: `acme:checkout-latency@^1.2`, or a bundled
    /// scenario `firedrill:latency-ramp`.
    pub(super) scenario: String,
    #[serde(default)]
    pub(super) params: BTreeMap<String, Value>,
    /// Which registered target plays each target the scenario needs (by
    /// default, the one of the same name).
    #[serde(default)]
    pub(super) targets: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) dry_run: bool,
    #[serde(default)]
    pub(super) seed: Option<u64>,
    /// Steady-state checks for the run, as a drill file's `[[steady_state]]`
    /// tables (`name`, `target` — a target the scenario names — `http`,
    /// `tcp`, `max_latency`, `phases`, `interval`, `on_violation`, …).
    #[serde(default)]
    pub(super) steady_state: Vec<serde_json::Map<String, Value>>,
}

/// Why a launch was refused: a status, a message, and for a policy
/// refusal each problem.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) problems: Vec<String>,
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Refused {
        Refused {
            status: e.0,
            message: e.1,
            problems: Vec::new(),
        }
    }
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Refused {
        ApiError::from(e).into()
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.message, "status": self.status.as_u16(), "problems": self.problems})),
        )
            .into_response()
    }
}

async fn launch(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(team_name): Path<String>,
    req: Request,
) -> ApiResult {
    let input: Launch = body(&read_body(req).await?)?;
    match launch_run(&p, &who, &team_name, input).await {
        Ok(launched) => Ok((StatusCode::ACCEPTED, Json(run_view(&p, &launched)?)).into_response()),
        Err(refused) => Ok(refused.into_response()),
    }
}

/// Launch a run for a team: its package (installed, or bundled), the
/// registered targets it needs with the team's grants on them, checked
/// by the same policy as `firedrill run`. Every outcome is audited.
pub(super) async fn launch_run(
    p: &Platform,
    who: &Principal,
    team_name: &str,
    input: Launch,
) -> Result<LaunchedRun, Refused> {
    let subject = format!("{team_name} {}", input.scenario);
    let result = launch_inner(p, who, team_name, &input).await;
    match &result {
        Ok(run) => p.audit(
            &who.user.name,
            "launch",
            &format!("{subject} {}", run.run),
            "ok",
            "",
        ),
        Err(r) => p.audit(&who.user.name, "launch", &subject, "denied", &r.message),
    }
    result
}

async fn launch_inner(
    p: &Platform,
    who: &Principal,
    team_name: &str,
    input: &Launch,
) -> Result<LaunchedRun, Refused> {
    let t = team(p, team_name)?;
    refuse_when_halted(p)?;
    if who.user.role_in(team_name).is_none_or(|r| r < Role::Runner) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("launching for team {team_name:?} needs its runner role"),
        )
        .into());
    }
    let header = format!(
        "Launched through firedrill serve by {} for team {team_name}",
        who.user.name
    );
    let prepared = prepare_launch(p, &t, input, &header, true).await?;
    let target_set = p
        .engine()
        .start_targets(&prepared.drill.targets)
        .await
        .map_err(|e| {
            Refused::from(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the targets did not start: {e}"),
            ))
        })?;
    let launched = LaunchedRun {
        run: String::new(),
        team: team_name.to_string(),
        launched_by: who.user.name.clone(),
        scenario: input.scenario.clone(),
        at: now_ms(),
    };
    start_prepared(
        p,
        launched,
        prepared,
        target_set,
        true,
        input.seed,
        input.dry_run,
    )
    .await
}

/// New runs are refused while everything is halted.
pub(super) fn refuse_when_halted(p: &Platform) -> Result<(), ApiError> {
    match p.engine().halt_state() {
        Some(halt) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{halt}: new runs are refused until an admin resumes (POST /api/v1/resume)"),
        )),
        None => Ok(()),
    }
}

/// A launch resolved and checked, ready to start.
pub(super) struct Prepared {
    pub(super) scenario: firedrill::Scenario,
    pub(super) params: BTreeMap<String, String>,
    pub(super) drill: firedrill::Drill,
    pub(super) text: String,
    /// The exact package (`ns:name@version`).
    pub(super) package: String,
    /// What the scenario will do: (fault kind, target) pairs.
    pub(super) needs: Vec<(String, String)>,
}

/// Resolve a launch's package (installed, or bundled), load it, map the
/// targets it needs to registered ones with `t`'s grants on them, and
/// (with `preflight`) check it by the same policy as `firedrill run`.
pub(super) async fn prepare_launch(
    p: &Platform,
    t: &Team,
    input: &Launch,
    header: &str,
    preflight: bool,
) -> Result<Prepared, Refused> {
    let req: PackageReq = input
        .scenario
        .parse()
        .map_err(|e: firedrill_packages::PackageError| bad(e.to_string()))?;
    let dir = &p.inner.data_dir;
    let engine = p.engine();
    let (bytes, source, package) = if req.namespace == firedrill_packages::bundled::NAMESPACE {
        let catalog = firedrill_packages::Catalog::open(dir).map_err(|e| bad(e.to_string()))?;
        let (entry, bytes) = firedrill_packages::bundled::resolve(engine, &catalog, &req)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let package = firedrill::history::PackageRef {
            id: entry.package.clone(),
            digest: entry.digest.clone(),
            signer: firedrill_packages::bundled::SIGNER.into(),
            registry: firedrill_packages::bundled::REGISTRY.into(),
        };
        (
            bytes.to_vec(),
            format!("package {} (bundled)", entry.package),
            package,
        )
    } else {
        let trust = Trust::load(dir).map_err(|e| bad(e.to_string()))?;
        let (installed, bytes) = Store::new(dir)
            .resolve(&req, &trust)
            .map_err(|e| Refused::from(bad(e.to_string())))?;
        let package = firedrill::history::PackageRef {
            id: installed.meta.package.clone(),
            digest: installed.meta.digest.clone(),
            signer: installed.signer.key_id.clone(),
            registry: installed.registry.clone(),
        };
        (
            bytes,
            format!(
                "package {} {} (signed by {})",
                installed.meta.package, installed.meta.digest, installed.signer.key_id
            ),
            package,
        )
    };
    let package_id = package.id.clone();
    let params: BTreeMap<String, String> = input
        .params
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k.clone(), s.clone()),
            other => (k.clone(), other.to_string()),
        })
        .collect();
    let scenario = engine
        .load(&bytes, &source)
        .map_err(|e| bad(e.to_string()))?
        .with_package(package);
    let meta = engine
        .inspect(&scenario, &params)
        .await
        .map_err(|e| bad(e.to_string()))?;
    let needed: BTreeSet<String> = meta.needs.iter().map(|n| n.target.clone()).collect();
    let mut registered = Vec::new();
    for name in &needed {
        let real = input.targets.get(name).unwrap_or(name);
        let target = p.inner.store.target(real)?.ok_or_else(|| {
            Refused::from(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{} needs target {name:?}, and no target {real:?} is registered: name one of your team's targets with \"targets\": {{\"{name}\": \"NAME\"}}",
                    input.scenario
                ),
            ))
        })?;
        let grants: Vec<String> = t.grants.get(real).into_iter().flatten().cloned().collect();
        registered.push((name.clone(), target, grants));
    }
    let targets: Vec<_> = registered
        .iter()
        .map(|(name, target, grants)| (name.clone(), &target.declaration, grants.clone()))
        .collect();
    let mut text = drill_text(header, &input.scenario, &targets)?;
    let checks = input
        .steady_state
        .iter()
        .enumerate()
        .map(|(i, c)| toml::Table::try_from(c).map_err(|e| bad(format!("steady_state[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    append_steady_state(&mut text, checks).map_err(|e| bad(format!("steady_state: {e}")))?;
    let drill = firedrill::Drill::parse(&text, std::path::Path::new(&format!("team {}", t.name)))
        .map_err(|e| bad(format!("{}: {}", e.field, e.message)))?;
    if preflight
        && let Err(problems) = firedrill::check::preflight(engine, &drill, &scenario, &params).await
    {
        let lines: Vec<String> = problems.iter().map(|d| d.message.clone()).collect();
        return Err(Refused {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "the run is refused, nothing was started: {}",
                lines.join("; ")
            ),
            problems: lines,
        });
    }
    let needs = meta
        .needs
        .iter()
        .map(|n| (n.kind.to_string(), n.target.clone()))
        .collect();
    Ok(Prepared {
        scenario,
        params,
        drill,
        text,
        package: package_id,
        needs,
    })
}

/// Start a prepared launch on `target_set` (shut down when the run ends
/// if `owned`) and record it as `launched` (its `run` filled in here).
pub(super) async fn start_prepared(
    p: &Platform,
    mut launched: LaunchedRun,
    prepared: Prepared,
    target_set: std::sync::Arc<firedrill::targets::TargetSet>,
    owned: bool,
    seed: Option<u64>,
    dry_run: bool,
) -> Result<LaunchedRun, Refused> {
    let engine = p.engine();
    let mut spec = firedrill::RunSpec::new(prepared.scenario);
    spec.params = prepared.params;
    spec.seed = seed;
    spec.targets = target_set.clone();
    spec.policy = prepared.drill.policy.clone();
    spec.limits = prepared.drill.limits.clone();
    spec.checks = prepared.drill.checks.clone();
    spec.dry_run = dry_run;
    spec.drill = Some(format!("team {}", launched.team));
    spec.drill_text = Some(prepared.text);
    spec.sealed = super::gameday::of_run(&launched).map(|id| format!("game day {id}"));
    let handle = match engine.start(spec) {
        Ok(h) => h,
        Err(e) => {
            if owned {
                target_set.shutdown().await;
            }
            return Err(ApiError::new(StatusCode::CONFLICT, e.to_string()).into());
        }
    };
    let id = handle.id;
    launched.run = id.to_string();
    {
        // Recorded and made active together (see `halt_team`).
        let mut active = p.inner.active.lock().unwrap();
        active.insert(id, handle.halter());
        p.inner.store.put_run(&launched)?;
    }
    let watcher = p.clone();
    let launched_copy = launched.clone();
    p.inner.tasks.spawn(async move {
        let run = handle.wait().await;
        if owned {
            target_set.shutdown().await;
        }
        watcher.inner.active.lock().unwrap().remove(&id);
        // A game day's runs say nothing of their plan until it is revealed.
        let subject = match super::gameday::of_run(&launched_copy) {
            Some(gameday) => format!("game day {gameday} {id}"),
            None => format!("{} {id}", run.scenario.name),
        };
        watcher.audit("firedrill", "run-ended", &subject, run.status.as_str(), "");
        if super::gameday::of_run(&launched_copy).is_none() {
            super::webhook::run_ended(&watcher, &launched_copy, &run).await;
        }
    });
    Ok(launched)
}

fn schedule_view(s: &super::schedule::Schedule) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    v["next"] = json!(if s.paused {
        Vec::new()
    } else {
        super::schedule::next_times(&s.cron, now_ms(), 3)
    });
    v
}

async fn list_schedules(State(p): State<Platform>, Path(team_name): Path<String>) -> ApiResult {
    team(&p, &team_name)?;
    let list: Vec<Value> = p
        .inner
        .store
        .schedules()?
        .iter()
        .filter(|s| s.team == team_name)
        .map(schedule_view)
        .collect();
    Ok(Json(list).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSchedule {
    pub(super) cron: String,
    pub(super) scenario: String,
    #[serde(default)]
    pub(super) params: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) targets: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) dry_run: bool,
    #[serde(default)]
    pub(super) concurrency: super::schedule::Concurrency,
}

async fn create_schedule(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(team_name): Path<String>,
    req: Request,
) -> ApiResult {
    let input: NewSchedule = body(&read_body(req).await?)?;
    let schedule = new_schedule(&p, &who, &team_name, input)?;
    Ok((StatusCode::CREATED, Json(schedule_view(&schedule))).into_response())
}

/// Make a schedule for a team.
pub(super) fn new_schedule(
    p: &Platform,
    who: &Principal,
    team_name: &str,
    input: NewSchedule,
) -> Result<super::schedule::Schedule, ApiError> {
    team(p, team_name)?;
    super::schedule::parse_cron(&input.cron).map_err(bad)?;
    input
        .scenario
        .parse::<PackageReq>()
        .map_err(|e| bad(e.to_string()))?;
    let schedule = super::schedule::Schedule {
        id: auth::hash_secret(&auth::new_secret(""))[..12].to_string(),
        team: team_name.to_string(),
        author: who.user.name.clone(),
        cron: input.cron,
        scenario: input.scenario,
        params: input.params,
        targets: input.targets,
        dry_run: input.dry_run,
        concurrency: input.concurrency,
        paused: false,
        created_at: now_ms(),
        firings: Vec::new(),
    };
    p.inner.store.put_schedule(&schedule)?;
    p.audit(
        &who.user.name,
        "create-schedule",
        &format!("{team_name} {}", schedule.id),
        "ok",
        &format!("{} {}", schedule.cron, schedule.scenario),
    );
    Ok(schedule)
}

fn team_schedule(
    p: &Platform,
    team_name: &str,
    id: &str,
) -> Result<super::schedule::Schedule, ApiError> {
    p.inner
        .store
        .schedule(id)?
        .filter(|s| s.team == team_name)
        .ok_or_else(|| not_found_error(format!("team {team_name:?} has no schedule {id:?}")))
}

async fn set_paused(
    p: &Platform,
    who: &Principal,
    team_name: &str,
    id: &str,
    paused: bool,
) -> ApiResult {
    let s = pause_schedule_core(p, who, team_name, id, paused)?;
    Ok(Json(schedule_view(&s)).into_response())
}

/// Pause or resume a team's schedule.
pub(super) fn pause_schedule_core(
    p: &Platform,
    who: &Principal,
    team_name: &str,
    id: &str,
    paused: bool,
) -> Result<super::schedule::Schedule, ApiError> {
    let mut s = team_schedule(p, team_name, id)?;
    s.paused = paused;
    p.inner.store.put_schedule(&s)?;
    p.audit(
        &who.user.name,
        if paused {
            "pause-schedule"
        } else {
            "resume-schedule"
        },
        &format!("{team_name} {id}"),
        "ok",
        "",
    );
    Ok(s)
}

async fn pause_schedule(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((team_name, id)): Path<(String, String)>,
) -> ApiResult {
    set_paused(&p, &who, &team_name, &id, true).await
}

async fn resume_schedule(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((team_name, id)): Path<(String, String)>,
) -> ApiResult {
    set_paused(&p, &who, &team_name, &id, false).await
}

async fn delete_schedule(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((team_name, id)): Path<(String, String)>,
) -> ApiResult {
    team_schedule(&p, &team_name, &id)?;
    p.inner.store.remove_schedule(&id)?;
    p.audit(
        &who.user.name,
        "remove-schedule",
        &format!("{team_name} {id}"),
        "ok",
        "",
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_webhooks(State(p): State<Platform>) -> ApiResult {
    let hooks: Vec<super::model::Webhook> = p
        .inner
        .store
        .webhooks()?
        .into_iter()
        .map(|mut h| {
            h.secret.clear();
            h
        })
        .collect();
    Ok(Json(hooks).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewWebhook {
    url: String,
    #[serde(default)]
    teams: Vec<String>,
}

async fn put_webhook(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult {
    check_name("webhook name", &name)?;
    let input: NewWebhook = body(&read_body(req).await?)?;
    let url: reqwest::Url = input
        .url
        .parse()
        .map_err(|e| bad(format!("url {:?}: {e}", input.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("url {:?}: http or https", input.url)));
    }
    for t in &input.teams {
        team(&p, t)?;
    }
    let hook = super::model::Webhook {
        name: name.clone(),
        url: url.to_string(),
        teams: input.teams,
        secret: auth::new_secret("fdw_"),
        created_at: now_ms(),
    };
    p.inner.store.put_webhook(&hook)?;
    p.audit(&who.user.name, "register-webhook", &name, "ok", &hook.url);
    Ok(Json(json!({
        "name": hook.name,
        "url": hook.url,
        "teams": hook.teams,
        "secret": hook.secret,
        "note": "the secret signs each delivery (x-firedrill-signature: sha256=HMAC); it is shown this once",
    }))
    .into_response())
}

async fn delete_webhook(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    if !p.inner.store.remove_webhook(&name)? {
        return Err(not_found_error(format!("no webhook {name:?}")));
    }
    p.audit(&who.user.name, "remove-webhook", &name, "ok", "");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Namespaces {
    namespaces: Vec<String>,
}

async fn set_namespaces(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(team_name): Path<String>,
    req: Request,
) -> ApiResult {
    let input: Namespaces = body(&read_body(req).await?)?;
    let mut t = team(&p, &team_name)?;
    for ns in &input.namespaces {
        check_name("namespace", ns)?;
        if ns == firedrill_packages::bundled::NAMESPACE {
            return Err(bad("the `firedrill` namespace is the bundled scenarios'"));
        }
    }
    t.namespaces = input.namespaces;
    p.inner.store.put_team(&t)?;
    p.audit(
        &who.user.name,
        "set-namespaces",
        &team_name,
        "ok",
        &t.namespaces.join(","),
    );
    Ok(Json(team_view(&p.inner.store, &t)?).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Publish {
    /// One of the team's namespaces.
    namespace: String,
    /// The component, base64.
    component: String,
    /// Its minisign signature (the `.minisig` text), made by the publisher
    /// with a key this server trusts for the namespace.
    signature: String,
    #[serde(default)]
    readme: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    license: Option<String>,
}

/// The server's own key, which signs the registry indexes its publishes
/// rewrite (made on first use, readable by the server only). The server
/// trusts it for no package namespace of anyone's: only for
/// `firedrill-server`, so its own catalog reads the index as verified.
fn server_key(p: &Platform) -> Result<std::path::PathBuf, ApiError> {
    let dir = p.inner.data_dir.join("server-key");
    let secret = dir.join("firedrill.key");
    let failed = |e: firedrill_packages::PackageError| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    };
    if !secret.exists() {
        let pair = firedrill_packages::KeyPair::generate(&dir).map_err(failed)?;
        let mut trust = Trust::load(&p.inner.data_dir).map_err(failed)?;
        trust
            .add(&pair.public.display().to_string(), "firedrill-server")
            .map_err(failed)?;
    }
    Ok(secret)
}

/// Publish a signed component to a team's namespace, through the server:
/// checked as `firedrill publish` checks it, verified against the server's
/// trusted keys, pushed to the namespace's registry (whose index the
/// server signs), and installed here so the team can run it.
async fn publish(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(team_name): Path<String>,
    req: Request,
) -> ApiResult {
    use base64::Engine as _;
    use firedrill_packages::{
        IndexEntry, Installed, PackageId, PackageMeta, Registry, RegistryConfig, digest,
    };
    let input: Publish = body(&read_body_up_to(req, MAX_PUBLISH_BODY).await?)?;
    let t = team(&p, &team_name)?;
    if !t.namespaces.contains(&input.namespace) {
        p.audit(
            &who.user.name,
            "publish",
            &input.namespace,
            "denied",
            "not the team's namespace",
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "team {team_name:?} publishes to {:?}, not {:?}; an admin sets a team's namespaces",
                t.namespaces, input.namespace
            ),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(input.component.trim())
        .map_err(|e| bad(format!("component: not base64 ({e})")))?;
    let engine = p.engine();
    let scenario = engine
        .load(&bytes, &format!("publish to {}", input.namespace))
        .map_err(|e| bad(e.to_string()))?;
    let meta = engine
        .inspect(&scenario, &Default::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    let id: PackageId = format!("{}:{}@{}", input.namespace, meta.name, meta.version)
        .parse()
        .map_err(|e: firedrill_packages::PackageError| bad(format!("its describe(): {e}")))?;
    let dir = &p.inner.data_dir;
    let trust = Trust::load(dir).map_err(|e| bad(e.to_string()))?;
    let signer =
        firedrill_packages::verify(&trust, &id, &bytes, &input.signature).map_err(|e| {
            p.audit(
                &who.user.name,
                "publish",
                &id.to_string(),
                "denied",
                &e.to_string(),
            );
            ApiError::new(StatusCode::FORBIDDEN, e.to_string())
        })?;
    let config = RegistryConfig::load(dir).map_err(|e| bad(e.to_string()))?;
    let registry = Registry::open(&config.registry_for(Some(&id.namespace)), &config)
        .map_err(|e| bad(e.to_string()))?;
    let package = PackageMeta {
        package: id.to_string(),
        digest: digest(&bytes),
        size: bytes.len() as u64,
        metadata: meta,
        keywords: input.keywords,
        readme: input.readme,
        key_id: signer.key_id.clone(),
        published_at: now_ms(),
        yanked: false,
        source: input.source,
        license: input.license,
    };
    let failed = |e: firedrill_packages::PackageError| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("{e} (registry {})", registry.name()),
        )
    };
    registry
        .publish(&package, &bytes, &input.signature)
        .await
        .map_err(|e| match e {
            firedrill_packages::PackageError::Exists { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            e => failed(e),
        })?;
    let key = server_key(&p)?;
    registry
        .update_index(&key, now_ms(), |index| {
            index.upsert(IndexEntry::of(&package));
            Ok(())
        })
        .await
        .map_err(failed)?;
    engine
        .precompile(&bytes, &id.to_string())
        .map_err(|e| bad(e.to_string()))?;
    firedrill_packages::Store::new(dir)
        .install(
            &Installed {
                meta: package.clone(),
                signer,
                registry: registry.name(),
                installed_at: now_ms(),
            },
            &bytes,
            &input.signature,
        )
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    p.audit(
        &who.user.name,
        "publish",
        &id.to_string(),
        "ok",
        &package.digest,
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({"package": id.to_string(), "digest": package.digest, "registry": registry.name(), "installed": true})),
    )
        .into_response())
}

/// Alertmanager's webhook payload, version 4 (what is read of it).
#[derive(Deserialize, schemars::JsonSchema)]
pub(super) struct AlertmanagerPayload {
    version: String,
    #[serde(default)]
    receiver: String,
    alerts: Vec<AlertmanagerAlert>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct AlertmanagerAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default, rename = "startsAt")]
    starts_at: String,
    #[serde(default)]
    fingerprint: String,
}

async fn receive_alerts(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    req: Request,
) -> ApiResult {
    let input: AlertmanagerPayload = body(&read_body(req).await?)?;
    if input.version != "4" {
        return Err(bad(format!(
            "Alertmanager webhook payload version {:?}: this server reads version 4",
            input.version
        )));
    }
    let now = now_ms();
    for a in &input.alerts {
        let record = super::model::AlertRecord {
            received_at: now,
            alertname: a.labels.get("alertname").cloned().unwrap_or_default(),
            status: a.status.clone(),
            labels: a.labels.clone(),
            starts_at: a.starts_at.clone(),
            fingerprint: a.fingerprint.clone(),
            receiver: input.receiver.clone(),
        };
        p.inner.store.put_alert(&record)?;
        super::gameday::on_alert(&p, &record);
        p.audit(
            &who.user.name,
            "alert",
            &record.alertname,
            "ok",
            &record.status,
        );
    }
    Ok((
        StatusCode::OK,
        Json(json!({"received": input.alerts.len()})),
    )
        .into_response())
}

async fn list_alerts(State(p): State<Platform>) -> ApiResult {
    Ok(Json(p.inner.store.alerts()?).into_response())
}
