//! The web pages, served by the binary itself (no CDN, works offline):
//! login, the catalog, a package page with its capability review and a
//! launch form generated from `describe()`, a live run page (server-sent
//! events, a Halt button), and a team's history. Server-rendered HTML
//! (maud, escaped by default); the only scripts are the live run page's
//! `EventSource` and a game day's reload while it runs (`gameday/web.rs`). Elements a browser test drives carry stable ids.

use super::api::{self, Launch, team_run};
use super::auth::{Principal, Via};
use super::model::{LaunchedRun, Role};
use super::{ApiError, Platform};
use axum::Extension;
use axum::extract::{Form, FromRequest, Path, Query, Request, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use firedrill::history::{EventKind, RunId};
use http::{StatusCode, header};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::convert::Infallible;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#222}\
nav{display:flex;gap:1rem;align-items:center;border-bottom:1px solid #ccc;padding-bottom:.5rem}\
nav form{margin-left:auto}table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eee}\
.alert{background:#fee;border:1px solid #c33;padding:.5rem}.ok{color:#060}.bad{color:#a00}\
label{display:block;margin:.5rem 0}input[type=text],input[type=number],select{min-width:20rem}\
#timeline li{font-family:monospace;font-size:.9rem}";

pub(crate) fn page(title: &str, who: Option<&Principal>, body: Markup) -> Response {
    let csrf = who.and_then(|w| match &w.via {
        Via::Session { csrf, .. } => Some(csrf.clone()),
        Via::Token(_) => None,
    });
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — firedrill" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                @if let Some(w) = who {
                    nav {
                        a href="/" id="nav-catalog" { "Catalog" }
                        @for team in w.user.teams.keys() {
                            a href={ "/teams/" (team) "/runs" } { (team) " runs" }
                            a href={ "/teams/" (team) "/schedules" } { (team) " schedules" }
                        }
                        a href="/gamedays" id="nav-gamedays" { "Game days" }
                        @if w.user.admin { a href="/admin" id="nav-admin" { "Admin" } }
                        span id="whoami" { (w.user.name) }
                        @if w.user.admin {
                            @if let Some(csrf) = &csrf {
                                form method="post" action="/halt-all" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button id="halt-all" title="Halt every run and hold every schedule until resumed" { "Halt all" }
                                }
                            }
                        }
                        @if let Some(csrf) = &csrf {
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button id="logout" { "Log out" }
                            }
                        }
                    }
                }
                (body)
            }
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// The names of the registered targets (none if the store fails: a page
/// shows fewer choices rather than an error).
pub(crate) fn target_names(p: &Platform) -> Vec<String> {
    p.inner
        .store
        .targets()
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.name)
        .collect()
}

pub(crate) fn csrf_of(who: &Principal) -> String {
    match &who.via {
        Via::Session { csrf, .. } => csrf.clone(),
        Via::Token(_) => String::new(),
    }
}

/// An error as a page.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let mut r = page(
        "Error",
        None,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.alert role="alert" id="error" { (message) }
            p { a href="/" { "Back to the catalog" } }
        },
    );
    *r.status_mut() = status;
    r
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    #[serde(default)]
    failed: Option<String>,
}

pub(super) async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    page(
        "Log in",
        None,
        html! {
            h1 { "firedrill" }
            @if let Some(why) = &q.failed {
                p.alert role="alert" id="login-error" { (why) }
            }
            form method="post" action="/login" id="login-form" {
                label { "User " input type="text" name="user" id="user" autocomplete="username" required; }
                label { "Password " input type="password" name="password" id="password" autocomplete="current-password" required; }
                button type="submit" id="login" { "Log in" }
            }
            details {
                summary { "Log in with an API token (e.g. the one the first start printed)" }
                form method="post" action="/login/token" id="token-form" {
                    label { "Token " input type="password" name="token" id="token" autocomplete="off" required; }
                    button type="submit" id="token-login" { "Log in" }
                }
            }
        },
    )
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    user: String,
    password: String,
}

pub(super) async fn login_form(State(p): State<Platform>, req: Request) -> Response {
    let ip = api::client_ip(&req);
    let Form(input): Form<LoginForm> = match Form::from_request(req, &()).await {
        Ok(f) => f,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    match api::open_session(&p, ip, &input.user, &input.password) {
        Ok(done) => {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut().insert(header::SET_COOKIE, done.set_cookie);
            r
        }
        Err(r) => {
            let why = if r.status() == StatusCode::TOO_MANY_REQUESTS {
                "Too many failed logins: wait a few minutes."
            } else {
                "Wrong user or password."
            };
            let mut to = Redirect::to(&format!(
                "/login?failed={}",
                form_urlencoded::byte_serialize(why.as_bytes()).collect::<String>()
            ))
            .into_response();
            *to.status_mut() = StatusCode::SEE_OTHER;
            to
        }
    }
}

pub(super) async fn logout_form(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
) -> Response {
    if let Via::Session { hash, .. } = &who.via {
        let _ = p.inner.store.remove_session(hash);
    }
    p.audit(&who.user.name, "logout", &who.user.name, "ok", "");
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        http::HeaderValue::from_str(&super::auth::session_set_cookie(None))
            .expect("a cookie header"),
    );
    r
}

#[derive(Deserialize)]
pub(super) struct CatalogQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    needs: String,
}

pub(super) async fn catalog(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Query(q): Query<CatalogQuery>,
) -> Response {
    let needs = Some(q.needs.as_str()).filter(|n| !n.is_empty());
    let found = match api::catalog_search(&p, &q.q, needs).await {
        Ok(f) => f,
        Err(e) => return error_page(e.0, &e.1),
    };
    page(
        "Catalog",
        Some(&who),
        html! {
            h1 { "Scenario catalog" }
            form method="get" action="/" id="search-form" {
                input type="text" name="q" id="q" value=(q.q) placeholder="name, description, keyword";
                " "
                input type="text" name="needs" id="needs" value=(q.needs) placeholder="fault kind, e.g. delay";
                " "
                button type="submit" id="search" { "Search" }
            }
            p id="count" { (found.len()) " package(s)" }
            table id="packages" {
                tr { th { "Package" } th { "What it does" } th { "Needs" } th { "Signed by" } }
                @for e in &found {
                    tr {
                        td { a href={ "/packages/" (e.package) } data-package=(e.package) { (e.package) } }
                        td { (e.description) }
                        td { (e.needs.join(", ")) }
                        td { (e.key_id) }
                    }
                }
            }
        },
    )
}

/// A package this server can run: its component and what it says of
/// itself.
pub(super) struct Runnable {
    pub(super) digest: String,
    pub(super) signer: String,
    pub(super) registry: String,
    pub(super) meta: firedrill::Metadata,
    pub(super) readme: Option<String>,
    /// Every version known here (installed, or in the catalog of the
    /// namespace's registry), newest first.
    pub(super) versions: Vec<String>,
}

pub(super) async fn runnable(p: &Platform, package: &str) -> Result<Runnable, ApiError> {
    use firedrill_packages::{PackageId, PackageReq, Store, Trust, bundled};
    let id: PackageId = package
        .parse()
        .map_err(|e: firedrill_packages::PackageError| {
            ApiError::new(StatusCode::NOT_FOUND, e.to_string())
        })?;
    let dir = &p.inner.data_dir;
    let engine = p.engine();
    let mut readme = None;
    let mut versions: Vec<semver::Version> = Vec::new();
    let (bytes, digest, signer, registry) = if id.namespace == bundled::NAMESPACE {
        let req: PackageReq = format!("{}:{}@={}", id.namespace, id.name, id.version)
            .parse()
            .map_err(|e: firedrill_packages::PackageError| {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            })?;
        let catalog = firedrill_packages::Catalog::open(dir)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let (entry, bytes) = bundled::resolve(engine, &catalog, &req)
            .await
            .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.to_string()))?;
        (
            bytes.to_vec(),
            entry.digest,
            bundled::SIGNER.to_string(),
            bundled::REGISTRY.to_string(),
        )
    } else {
        let trust = Trust::load(dir)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let (installed, bytes) = Store::new(dir).component(&id, &trust).map_err(|e| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("{e}; an admin installs it on the server with `firedrill install {id}`"),
            )
        })?;
        readme = installed.meta.readme.clone();
        for i in Store::new(dir)
            .versions(&id.namespace, &id.name)
            .unwrap_or_default()
        {
            versions.extend(i.meta.id().ok().map(|i| i.version));
        }
        if let Ok(config) = firedrill_packages::RegistryConfig::load(dir)
            && let Ok(catalog) = firedrill_packages::Catalog::open(dir)
        {
            let registry = config.registry_for(Some(&id.namespace));
            let name = firedrill_packages::Registry::open(&registry, &config)
                .map(|r| r.name())
                .unwrap_or(registry);
            for e in catalog
                .versions(&name, &id.namespace, &id.name)
                .unwrap_or_default()
            {
                versions.extend(e.version());
            }
        }
        (
            bytes,
            installed.meta.digest,
            installed.signer.key_id,
            installed.registry,
        )
    };
    versions.push(id.version.clone());
    versions.sort();
    versions.dedup();
    versions.reverse();
    let scenario = engine
        .load(&bytes, &format!("package {id}"))
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let meta = engine
        .inspect(&scenario, &Default::default())
        .await
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    Ok(Runnable {
        digest,
        signer,
        registry,
        meta,
        readme,
        versions: versions.iter().map(|v| v.to_string()).collect(),
    })
}

pub(super) async fn package_page(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(package): Path<String>,
) -> Response {
    let r = match runnable(&p, &package).await {
        Ok(r) => r,
        Err(e) => return error_page(e.0, &e.1),
    };
    let teams: Vec<String> = who
        .user
        .teams
        .iter()
        .filter(|(_, role)| **role >= Role::Runner)
        .map(|(t, _)| t.clone())
        .chain(if who.user.admin {
            p.inner
                .store
                .teams()
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.name)
                .collect()
        } else {
            Vec::new()
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // What the user's runner teams were granted, per registered target.
    let granted: Vec<BTreeMap<String, std::collections::BTreeSet<String>>> = p
        .inner
        .store
        .teams()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| teams.contains(&t.name))
        .map(|t| t.grants)
        .collect();
    let registered = target_names(&p);
    // Each target the scenario names, with the registered targets that
    // could play it: one of the teams was granted every kind it needs there.
    let mut needed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for n in &r.meta.needs {
        needed
            .entry(n.target.as_str())
            .or_default()
            .push(n.kind.to_string());
    }
    let players: BTreeMap<&str, Vec<&String>> = needed
        .iter()
        .map(|(target, kinds)| {
            let fit = registered
                .iter()
                .filter(|reg| {
                    granted.iter().any(|g| {
                        g.get(*reg)
                            .is_some_and(|have| kinds.iter().all(|k| have.contains(k)))
                    })
                })
                .collect();
            (*target, fit)
        })
        .collect();
    let req = package.replacen('@', "@=", 1);
    page(
        &package,
        Some(&who),
        html! {
            h1 id="package" { (package) }
            p id="description" { (r.meta.description) }
            table {
                tr { th { "Digest" } td id="digest" { (r.digest) } }
                tr { th { "Signed by" } td id="signer" { (r.signer) } }
                tr { th { "From" } td { (r.registry) } }
                tr { th { "Versions" } td id="versions" {
                    @for v in &r.versions {
                        @let other = format!("{}:{}@{v}", package.split(':').next().unwrap_or(""), package.split(':').nth(1).and_then(|x| x.split('@').next()).unwrap_or(""));
                        @if other == package { strong { (v) } " " } @else { a href={ "/packages/" (other) } { (v) } " " }
                    }
                } }
            }
            @if let Some(readme) = &r.readme {
                h2 { "README" }
                pre id="readme" { (readme) }
            }
            h2 { "What it may do" }
            ul id="review" {
                @if r.meta.needs.is_empty() { li { "Apply no fault." } }
                @for n in &r.meta.needs {
                    li { (review_line(&n.kind.to_string(), &n.target)) }
                }
            }
            p { "A launch is refused unless your team was granted each of these on the target it names." }
            h2 { "Launch" }
            @if teams.is_empty() {
                p id="no-launch" { "You are not a runner in any team." }
            } @else {
                form method="post" action="/launch" id="launch-form" {
                    input type="hidden" name="csrf" value=(csrf_of(&who));
                    input type="hidden" name="scenario" value=(req);
                    label { "Team " select name="team" id="team" {
                        @for t in &teams { option value=(t) { (t) } }
                    } }
                    @for (target, fit) in &players {
                        label { "Target " code { (target) } " (" (needed[target].join(", ")) ") is played by "
                            @if fit.is_empty() {
                                span.alert id={ "no-target-" (target) } { "no registered target your teams were granted this on" }
                            } @else {
                                select name={ "target." (target) } id={ "target-" (target) } {
                                    @for reg in fit {
                                        option value=(reg) selected[*reg == target] { (reg) }
                                    }
                                }
                            }
                        }
                    }
                    @for param in &r.meta.params {
                        label title=(param.doc) {
                            code { (param.name) } " (" (param.ty) ") "
                            @if param.ty == "boolean" {
                                select name={ "param." (param.name) } id={ "param-" (param.name) } {
                                    option value="" { "default (" (param.default.as_deref().unwrap_or("none")) ")" }
                                    option value="true" { "true" }
                                    option value="false" { "false" }
                                }
                            } @else {
                                input type=(param_input_type(param))
                                    step=[(param.ty == "float").then_some("any")]
                                    placeholder=[(param.ty == "duration").then_some("e.g. 250ms, 2s")]
                                    name={ "param." (param.name) } id={ "param-" (param.name) }
                                    value=(if param.secret { "" } else { param.default.as_deref().unwrap_or("") })
                                    required[param.default.is_none()];
                            }
                            br;
                            small { (param.doc) }
                        }
                    }
                    button type="submit" id="launch" { "Launch" }
                    " "
                    button type="submit" name="dry_run" value="true" id="dry-run" title="Plan and record the faults, apply none" { "Dry run: show the plan" }
                }
            }
        },
    )
}

/// The HTML input for a parameter of type `ty`.
fn param_input_type(param: &firedrill::ParamSpec) -> &'static str {
    match param.ty.as_str() {
        _ if param.secret => "password",
        "integer" | "float" => "number",
        _ => "text",
    }
}

/// A need in plain words.
pub(super) fn review_line(kind: &str, target: &str) -> String {
    let what = match kind {
        "kill" => "kill the processes of",
        "pause" => "pause (freeze) the processes of",
        "restart" => "restart",
        "delay" => "add latency on",
        "http-error" => "answer requests with error statuses on",
        "fail-auth" => "make authentication fail on",
        "refuse" => "refuse connections to",
        "reset-peer" => "reset or silence connections through",
        "bandwidth" => "limit the bandwidth of",
        other => return format!("{other} on target \"{target}\""),
    };
    format!("{what} target \"{target}\" ({kind})")
}

pub(super) async fn launch_form(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let Some(team) = form.get("team").cloned() else {
        return error_page(StatusCode::BAD_REQUEST, "the form names no team");
    };
    let mut launch = Launch {
        scenario: form.get("scenario").cloned().unwrap_or_default(),
        dry_run: form.get("dry_run").is_some_and(|v| v == "true"),
        ..Default::default()
    };
    for (k, v) in &form {
        // An empty field leaves the scenario's default.
        if let Some(name) = k.strip_prefix("param.")
            && !v.is_empty()
        {
            launch
                .params
                .insert(name.to_string(), serde_json::Value::String(v.clone()));
        }
        if let Some(name) = k.strip_prefix("target.") {
            launch.targets.insert(name.to_string(), v.clone());
        }
    }
    match api::launch_run(&p, &who, &team, launch).await {
        Ok(run) => Redirect::to(&format!("/teams/{team}/runs/{}", run.run)).into_response(),
        Err(refused) => {
            let mut r = page(
                "Launch refused",
                Some(&who),
                html! {
                    h1 { "Launch refused" }
                    p.alert role="alert" id="launch-error" { (refused.message) }
                    @if !refused.problems.is_empty() {
                        ul id="problems" { @for pr in &refused.problems { li { (pr) } } }
                    }
                    p { a href="javascript:history.back()" { "Back" } }
                },
            );
            *r.status_mut() = refused.status;
            r
        }
    }
}

pub(super) async fn run_page(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((team, run)): Path<(String, String)>,
) -> Response {
    let (launched, id) = match team_run(&p, &team, &run) {
        Ok(x) => x,
        Err(e) => return error_page(e.0, &e.1),
    };
    let record = p.engine().history().get_run(id).ok().flatten();
    let timeline = p.engine().history().timeline(id).unwrap_or_default();
    let active = p.inner.active.lock().unwrap().contains_key(&id);
    // The timeline's end, if it has one, is ahead of the record's status.
    let status = timeline
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Ended { status, .. } => Some(status.as_str().to_string()),
            _ => None,
        })
        .or_else(|| record.as_ref().map(|r| r.status.as_str().to_string()))
        .unwrap_or_else(|| "starting".to_string());
    let can_halt = who.user.role_in(&team).is_some_and(|r| r >= Role::Runner);
    let started = record.as_ref().map_or(launched.at, |r| r.started_at);
    let ended = record.as_ref().and_then(|r| r.ended_at);
    let faults = p
        .inner
        .active
        .lock()
        .unwrap()
        .get(&id)
        .map(|h| h.active_faults())
        .unwrap_or_default();
    let events_url = format!("/api/v1/teams/{team}/runs/{run}/events");
    let dry_run = record.as_ref().is_some_and(|r| r.dry_run);
    // A dry run's plan: the faults it would have applied, in order.
    let plan: Vec<String> = timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FaultApplied {
                kind,
                target,
                detail,
                duration_ms,
                planned: true,
                ..
            } => Some(format!(
                "at {:.3}s: {kind} on {target}{}{}",
                e.at_us as f64 / 1e6,
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                },
                duration_ms.map_or(String::new(), |ms| format!(" for {ms} ms"))
            )),
            _ => None,
        })
        .collect();
    // The steady-state checks: each one's latest result.
    let mut checks: BTreeMap<String, (bool, String, u32)> = BTreeMap::new();
    for e in &timeline {
        if let EventKind::Check {
            name, ok, detail, ..
        } = &e.kind
        {
            let c = checks
                .entry(name.clone())
                .or_insert((true, String::new(), 0));
            *c = (*ok, detail.clone(), c.2 + u32::from(!ok));
        }
    }
    page(
        &format!("Run {run}"),
        Some(&who),
        html! {
            h1 { "Run " code { (run) } }
            p { (launched.scenario) " for team " (team) ", launched by " (launched.launched_by) }
            p { "Status: " strong id="status" data-active=(active) { (status) }
                " · elapsed " span id="elapsed" data-started=(started) data-ended=(ended.unwrap_or(0)) {
                    (format!("{:.1}", (ended.unwrap_or_else(super::now_ms).saturating_sub(started)) as f64 / 1000.0)) " s"
                }
            }
            @if active && can_halt {
                form method="post" action={ "/teams/" (team) "/runs/" (run) "/halt" } id="halt-form" {
                    input type="hidden" name="csrf" value=(csrf_of(&who));
                    button type="submit" id="halt" { "Halt" }
                }
            }
            @if dry_run {
                h2 { "Plan (dry run: nothing was applied)" }
                ol id="plan" {
                    @if plan.is_empty() && !active { li { "No fault would be applied." } }
                    @for step in &plan { li { (step) } }
                }
            }
            @if !checks.is_empty() {
                h2 { "Steady-state checks" }
                ul id="checks" {
                    @for (name, (ok, detail, failures)) in &checks {
                        li data-check=(name) data-ok=(ok) {
                            strong { (if *ok { "holds" } else { "VIOLATED" }) } " " code { (name) } ": " (detail)
                            @if *failures > 0 { " (" (failures) " violation(s) so far)" }
                        }
                    }
                }
            }
            @if active || !faults.is_empty() {
                h2 { "Faults in effect" }
                ul id="faults" { @for (fid, kind, target) in &faults { li data-fault=(fid) { (fid) ": " (kind) " on " (target) } } }
            }
            @if let Some(o) = record.as_ref().and_then(|r| r.outcome.as_ref()) {
                h2 { "Outcome" }
                p id="summary" { (o.summary) }
                @if !o.measurements.is_empty() {
                    table id="measurements" {
                        tr { th { "Measurement" } th { "Value" } }
                        @for m in &o.measurements { tr { td { (m.name) } td { (m.value) " " (m.unit) } } }
                    }
                }
                @if !o.findings.is_empty() {
                    ul id="findings" { @for f in &o.findings { li { strong { (f.severity) } " " (f.title) ": " (f.detail) } } }
                }
            }
            @if !active {
                p id="reports" {
                    "Reports: "
                    a id="report-json" href={ "/teams/" (team) "/runs/" (run) "/report/json" } { "JSON" } " · "
                    a id="report-junit" href={ "/teams/" (team) "/runs/" (run) "/report/junit" } { "JUnit" } " · "
                    a id="report-markdown" href={ "/teams/" (team) "/runs/" (run) "/report/markdown" } { "Markdown" }
                }
            }
            h2 { "Timeline" }
            ol id="timeline" {
                @for e in &timeline {
                    li data-seq=(e.seq) { (format!("{:>9.3}s  {}", e.at_us as f64 / 1e6, e.kind)) }
                }
            }
            // The stream repeats what the page has (joined by `seq`): the
            // status and the faults still follow it, since a run can end
            // between the page's history read and its status read.
            @if active {
                script { (PreEscaped(format!(
                    "(function(){{var list=document.getElementById('timeline');var st=document.getElementById('status');\
                     var el=document.getElementById('elapsed');var t0=+el.dataset.started;\
                     var tick=setInterval(function(){{el.textContent=((Date.now()-t0)/1000).toFixed(1)+' s';}},100);\
                     var es=new EventSource({url:?});\
                     es.addEventListener('timeline',function(m){{var e=JSON.parse(m.data);\
                     var seen=list.querySelector('[data-seq=\"'+e.seq+'\"]');var fl=document.getElementById('faults');\
                     if(!seen){{var li=document.createElement('li');li.dataset.seq=e.seq;li.textContent=e.line;list.appendChild(li);\
                     if(fl&&e.applied){{var f=document.createElement('li');f.dataset.fault=e.applied.split(':')[0];f.textContent=e.applied;fl.appendChild(f);}}}}\
                     if(fl&&e.reverted!==null){{var g=fl.querySelector('[data-fault=\"'+e.reverted+'\"]');if(g)g.remove();}}\
                     if(e.check){{var cl=document.getElementById('checks');if(!cl){{var h=document.createElement('h2');h.textContent='Steady-state checks';cl=document.createElement('ul');cl.id='checks';list.parentNode.insertBefore(h,list.previousElementSibling);list.parentNode.insertBefore(cl,list.previousElementSibling);}}\
                     var c=null;for(var k=0;k<cl.children.length;k++){{if(cl.children[k].dataset.check===e.check.name)c=cl.children[k];}}if(!c){{c=document.createElement('li');c.dataset.check=e.check.name;cl.appendChild(c);}}\
                     c.dataset.ok=e.check.ok;c.textContent=(e.check.ok?'holds ':'VIOLATED ')+e.check.name+': '+e.check.detail;}}\
                     if(e.status){{st.textContent=e.status;st.dataset.active='false';clearInterval(tick);var h=document.getElementById('halt-form');if(h)h.remove();es.close();}}}});}})();",
                    url = events_url
                ))) }
            }
        },
    )
}

pub(super) async fn halt_form(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((team, run)): Path<(String, String)>,
) -> Response {
    // A run that already ended needs no halt: its page says so.
    if let Err(e) = api::halt_team_run(&p, &who, &team, &run) {
        return error_page(e.0, &e.1);
    }
    Redirect::to(&format!("/teams/{team}/runs/{run}")).into_response()
}

/// Which of a team's runs to list (the history page's filter and
/// `GET /api/v1/teams/{team}/runs`).
#[derive(Deserialize, Default)]
pub(super) struct HistoryQuery {
    /// Only runs with this status (`passed`, `failed`, …).
    #[serde(default)]
    pub(super) status: String,
    /// Only runs of scenarios whose name contains this.
    #[serde(default)]
    pub(super) scenario: String,
    /// Only runs launched within this long (e.g. `24h`).
    #[serde(default)]
    pub(super) since: String,
}

/// Each ended run's start (Unix ms), duration (s) and status, per scenario.
pub(super) type Trends = BTreeMap<String, Vec<(u64, f64, String)>>;

/// A team's runs, newest first, with their status, as `q` filters them;
/// and the trends of all of them.
pub(super) fn team_history(
    p: &Platform,
    team: &str,
    q: &HistoryQuery,
) -> Result<(Vec<(LaunchedRun, String)>, Trends), ApiError> {
    let since = match q.since.trim() {
        "" => None,
        text => Some(humantime::parse_duration(text).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("since {:?}: {e}; a duration like `24h` or `7d`", q.since),
            )
        })?),
    };
    let now = super::now_ms();
    let runs: Vec<LaunchedRun> = p
        .inner
        .store
        .runs()?
        .into_iter()
        .filter(|r| r.team == team)
        .rev()
        .collect();
    let mut series = Trends::new();
    let mut rows = Vec::new();
    for r in runs {
        let record = r
            .run
            .parse::<RunId>()
            .ok()
            .and_then(|id| p.engine().history().get_run(id).ok().flatten());
        let status = record
            .as_ref()
            .map_or("?".to_string(), |run| run.status.as_str().to_string());
        let recent = since.is_none_or(|d| {
            r.at.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)) >= now
        });
        if !(recent
            && (q.status.is_empty() || status == q.status)
            && (q.scenario.is_empty() || r.scenario.contains(&q.scenario)))
        {
            continue;
        }
        // Real runs only, per package (`namespace:name`, however its
        // version was asked for), else per scenario name.
        if let Some(run) = &record
            && !run.dry_run
            && let Some(end) = run.ended_at
        {
            let key = run
                .scenario
                .package
                .as_ref()
                .and_then(|p| p.id.split_once('@').map(|(k, _)| k.to_string()))
                .unwrap_or_else(|| run.scenario.name.clone());
            series.entry(key).or_default().push((
                run.started_at,
                end.saturating_sub(run.started_at) as f64 / 1000.0,
                status.clone(),
            ));
        }
        rows.push((r, status));
    }
    for points in series.values_mut() {
        points.sort_by_key(|p| p.0);
    }
    Ok((rows, series))
}

pub(super) async fn history_page(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(team): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let (rows, series) = match team_history(&p, &team, &q) {
        Ok(x) => x,
        Err(e) => return error_page(e.0, &e.1),
    };
    page(
        &format!("{team} runs"),
        Some(&who),
        html! {
            h1 { "Runs of " (team) }
            form method="get" id="filter-form" {
                input type="text" name="scenario" id="filter-scenario" value=(q.scenario) placeholder="scenario";
                " "
                select name="status" id="filter-status" {
                    option value="" { "any status" }
                    @for st in ["running", "passed", "failed", "steady-state-violated", "aborted", "halted", "revert-failed", "refused", "crashed"] {
                        option value=(st) selected[q.status == st] { (st) }
                    }
                }
                " within "
                input type="text" name="since" id="filter-since" value=(q.since) placeholder="e.g. 24h" size="6";
                " "
                button type="submit" id="filter" { "Filter" }
            }
            @if !series.is_empty() {
                h2 { "Trends" }
                @for (scenario, points) in &series {
                    figure.trend data-scenario=(scenario) {
                        figcaption { (scenario) ": duration of each run; passed ● (green), otherwise ■ (red)" }
                        (trend_svg(points))
                    }
                }
            }
            form method="get" action={ "/teams/" (team) "/diff" } id="diff-form" {
                "Compare runs "
                input type="text" name="a" id="diff-a" placeholder="run id";
                " and "
                input type="text" name="b" id="diff-b" placeholder="run id";
                " "
                button id="diff" { "Diff" }
            }
            table id="runs" {
                tr { th { "Run" } th { "Scenario" } th { "Status" } th { "By" } }
                @for (r, status) in &rows {
                    tr data-run=(r.run) {
                        td { a href={ "/teams/" (team) "/runs/" (r.run) } { code { (r.run) } } }
                        td { (r.scenario) }
                        td.status { (status) }
                        td { (r.launched_by) }
                    }
                }
            }
        },
    )
}

/// The live timeline of a run as server-sent events named `timeline`:
/// what the history has so far, then each new event; the last carries
/// the final status.
pub(super) async fn events(
    State(p): State<Platform>,
    Path((team, run)): Path<(String, String)>,
) -> Response {
    let (_, id) = match team_run(&p, &team, &run) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    // Subscribe before reading the history, so nothing falls between.
    let live = p
        .inner
        .active
        .lock()
        .unwrap()
        .get(&id)
        .map(|h| h.subscribe());
    let past = p.engine().history().timeline(id).unwrap_or_default();
    let ended = past
        .iter()
        .any(|e| matches!(e.kind, EventKind::Ended { .. }));
    let stream = async_stream(
        p.engine().history().clone(),
        id,
        past,
        if ended { None } else { live },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn sse_of(e: &firedrill::history::Event) -> SseEvent {
    let status = match &e.kind {
        EventKind::Ended { status, .. } => Some(status.as_str()),
        _ => None,
    };
    let (applied, reverted) = match &e.kind {
        EventKind::FaultApplied {
            fault,
            kind,
            target,
            planned: false,
            ..
        } => (Some(format!("{fault}: {kind} on {target}")), None),
        EventKind::FaultReverted { fault, .. } => (None, Some(*fault)),
        _ => (None, None),
    };
    let check = match &e.kind {
        EventKind::Check {
            name, ok, detail, ..
        } => Some(serde_json::json!({"name": name, "ok": ok, "detail": detail})),
        _ => None,
    };
    let data = serde_json::json!({
        "seq": e.seq,
        "at_us": e.at_us,
        "line": format!("{:>9.3}s  {}", e.at_us as f64 / 1e6, e.kind),
        "status": status,
        "applied": applied,
        "reverted": reverted,
        "check": check,
    });
    SseEvent::default().event("timeline").data(data.to_string())
}

struct Feed {
    past: std::collections::VecDeque<firedrill::history::Event>,
    live: Option<tokio::sync::broadcast::Receiver<firedrill::history::Event>>,
    history: firedrill::history::HistoryStore,
    run: RunId,
    last: Option<u32>,
    done: bool,
}

/// The history so far, then live events. Events the channel skipped
/// (lagging) or did not carry (it closed) are read from the history,
/// which has every one.
fn async_stream(
    history: firedrill::history::HistoryStore,
    id: RunId,
    past: Vec<firedrill::history::Event>,
    live: Option<tokio::sync::broadcast::Receiver<firedrill::history::Event>>,
) -> impl futures_util::Stream<Item = Result<SseEvent, Infallible>> {
    use tokio::sync::broadcast::error::RecvError;
    let feed = Feed {
        past: past.into(),
        live,
        history,
        run: id,
        last: None,
        done: false,
    };
    futures_util::stream::unfold(feed, |mut f| async move {
        let next = loop {
            if let Some(e) = f.past.pop_front() {
                if f.last.is_some_and(|l| e.seq <= l) {
                    continue;
                }
                break e;
            }
            if f.done {
                return None;
            }
            let rx = f.live.as_mut()?;
            match rx.recv().await {
                Ok(e) if f.last.is_some_and(|l| e.seq <= l) => {}
                Ok(e) => break e,
                Err(RecvError::Lagged(_)) => {
                    f.past.extend(f.history.timeline(f.run).unwrap_or_default());
                }
                Err(RecvError::Closed) => {
                    f.live = None;
                    f.past.extend(f.history.timeline(f.run).unwrap_or_default());
                }
            }
        };
        f.last = Some(next.seq);
        f.done |= matches!(next.kind, EventKind::Ended { .. });
        Some((Ok(sse_of(&next)), f))
    })
}

pub(super) async fn report(
    State(p): State<Platform>,
    Path((team, run, format)): Path<(String, String, String)>,
) -> Response {
    let (_, id) = match team_run(&p, &team, &run) {
        Ok(x) => x,
        Err(e) => return error_page(e.0, &e.1),
    };
    let report = match firedrill::report::RunReport::load(p.engine(), id) {
        Ok(Some(r)) => r,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, "no such run in the history"),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let (text, kind, ext) = match format.as_str() {
        "json" => (report.json(), "application/json", "json"),
        "junit" => (report.junit(), "application/xml", "xml"),
        "markdown" => (report.markdown(), "text/markdown; charset=utf-8", "md"),
        other => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("report format {other:?}: json, junit or markdown"),
            );
        }
    };
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"firedrill-{run}.{ext}\""),
            ),
        ],
        text,
    )
        .into_response()
}

pub(super) async fn halt_all_form(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
) -> Response {
    match p.engine().halt() {
        Ok(n) => {
            p.audit(&who.user.name, "halt-all", "*", "ok", &format!("{n} runs"));
            page(
                "Halted",
                Some(&who),
                html! {
                    h1 { "Everything is halted" }
                    p id="halted" { (n) " run(s) halted; new runs and schedules are held until you resume." }
                    form method="post" action="/resume-all" {
                        input type="hidden" name="csrf" value=(csrf_of(&who));
                        button id="resume-all" { "Resume" }
                    }
                },
            )
        }
        Err(e) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub(super) async fn resume_all_form(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
) -> Response {
    match p.engine().resume() {
        Ok(_) => {
            p.audit(&who.user.name, "resume", "*", "ok", "");
            Redirect::to("/").into_response()
        }
        Err(e) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    token: String,
}

/// A session for the user of a valid API token (how the first admin, who
/// has only the token the first start printed, gets into the pages).
pub(super) async fn token_login(State(p): State<Platform>, Form(f): Form<TokenForm>) -> Response {
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {}", f.token.trim())) {
        headers.insert(header::AUTHORIZATION, v);
    }
    let who = match super::auth::authenticate(&p.inner.store, &headers, super::now_ms()) {
        Ok(who) => who,
        Err(_) => {
            p.audit("?", "login", "token", "failed", "not a valid token");
            return Redirect::to("/login?failed=Not%20a%20valid%20token.").into_response();
        }
    };
    // The session ends no later than the token it was opened with.
    let until = p
        .inner
        .store
        .token(&super::auth::hash_secret(f.token.trim()))
        .ok()
        .flatten()
        .and_then(|t| t.expires_at);
    match api::new_session(&p, who.user, "with an API token", until) {
        Ok(done) => {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut().insert(header::SET_COOKIE, done.set_cookie);
            r
        }
        Err(e) => error_page(e.0, &e.1),
    }
}

#[derive(Deserialize, Default)]
pub(super) struct AdminQuery {
    #[serde(default)]
    done: String,
}

pub(super) async fn admin_page(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Query(q): Query<AdminQuery>,
) -> Response {
    let store = &p.inner.store;
    let (teams, users, targets) = (
        store.teams().unwrap_or_default(),
        store.users().unwrap_or_default(),
        store.targets().unwrap_or_default(),
    );
    let csrf = csrf_of(&who);
    page(
        "Admin",
        Some(&who),
        html! {
            h1 { "Administration" }
            @if !q.done.is_empty() { p.ok role="status" id="done" { (q.done) } }
            h2 { "Teams" }
            table id="teams" {
                tr { th { "Team" } th { "Members" } th { "Grants (its blast radius)" } }
                @for t in &teams {
                    tr data-team=(t.name) {
                        td { (t.name) }
                        td { @for u in &users { @if let Some(r) = u.teams.get(&t.name) { (u.name) " (" (r) ") " } } }
                        td { @for (target, kinds) in &t.grants { (target) ": " (kinds.iter().cloned().collect::<Vec<_>>().join(", ")) "; " } }
                    }
                }
            }
            form method="post" action="/admin/teams" id="team-form" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value="team";
                label { "New team " input type="text" name="name" id="team-name" required; }
                button id="create-team" { "Create team" }
            }
            h2 { "Users" }
            ul id="users" { @for u in &users { li { (u.name) @if u.admin { " (server admin)" } } } }
            form method="post" action="/admin/users" id="user-form" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value="user";
                label { "Name " input type="text" name="name" id="user-name" required; }
                label { "Password (12 characters or more) " input type="password" name="password" id="user-password" autocomplete="new-password" required; }
                button id="create-user" { "Create user" }
            }
            form method="post" action="/admin/members" id="member-form" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value="member";
                label { "Team " select name="team" id="member-team" { @for t in &teams { option value=(t.name) { (t.name) } } } }
                label { "User " select name="user" id="member-user" { @for u in &users { option value=(u.name) { (u.name) } } } }
                label { "Role " select name="role" id="member-role" {
                    @for r in Role::ALL { option value=(r.as_str()) { (r.as_str()) } }
                } }
                button id="set-member" { "Set role" }
            }
            h2 { "Targets" }
            table id="targets" {
                tr { th { "Target" } th { "Declaration" } }
                @for t in &targets {
                    tr { td { (t.name) } td { code { (toml::Table::try_from(&t.declaration).map(|d| d.to_string()).unwrap_or_default()) } } }
                }
            }
            form method="post" action="/admin/targets" id="target-form" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value="target";
                label { "Name " input type="text" name="name" id="target-name" required; }
                label { "Declaration, as a drill file's [targets.NAME] keys (no grants)" br;
                    textarea name="declaration" id="target-declaration" rows="6" cols="70" required {
                        "kind = \"proxy\"\nmode = \"http\"\nlisten = \"127.0.0.1:9090\"\nupstream = \"127.0.0.1:8080\""
                    }
                }
                button id="register-target" { "Register target" }
            }
            h2 { "Grants" }
            form method="post" action="/admin/grants" id="grant-form" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value="grant";
                label { "Team " select name="team" id="grant-team" { @for t in &teams { option value=(t.name) { (t.name) } } } }
                label { "Target " select name="target" id="grant-target" { @for t in &targets { option value=(t.name) { (t.name) } } } }
                label { "Fault kinds, comma-separated (empty: none) " input type="text" name="kinds" id="grant-kinds"; }
                button id="set-grant" { "Set grants" }
            }
        },
    )
}

/// The admin page's forms: each calls what the API's route does.
pub(super) async fn admin_form(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    let done = match get("action") {
        "team" => api::new_team(&p, &who, get("name")).map(|t| format!("Team {} created.", t.name)),
        "user" => api::new_user(&p, &who, get("name"), Some(get("password")), false)
            .map(|u| format!("User {} created.", u.name)),
        "member" => api::set_role(&p, &who, get("team"), get("user"), get("role"))
            .map(|u| format!("{} is {} in {}.", u.name, get("role"), get("team"))),
        "target" => match get("declaration").parse::<toml::Table>() {
            Ok(decl) => match serde_json::to_value(decl) {
                Ok(serde_json::Value::Object(map)) => {
                    api::register_target(&p, &who, get("name"), map)
                        .map(|t| format!("Target {} registered.", t.name))
                }
                _ => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "the declaration is not a table",
                )),
            },
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the declaration is not TOML: {e}"),
            )),
        },
        "grant" => {
            let kinds: Vec<String> = get("kinds")
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect();
            api::grant(&p, &who, get("team"), get("target"), kinds)
                .map(|t| format!("Grants of {} set.", t.name))
        }
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("no action {other:?}"),
        )),
    };
    match done {
        Ok(message) => Redirect::to(&format!(
            "/admin?done={}",
            form_urlencoded::byte_serialize(message.as_bytes()).collect::<String>()
        ))
        .into_response(),
        Err(e) => error_page(e.0, &e.1),
    }
}

/// An inline SVG chart: one dot per run (time left to right, duration
/// bottom to top), green for passed, red for anything else.
fn trend_svg(points: &[(u64, f64, String)]) -> Markup {
    let (w, h, pad) = (600.0, 120.0, 10.0);
    let mut pts = points.to_vec();
    pts.sort_by_key(|p| p.0);
    let max = pts.iter().map(|p| p.1).fold(0.001_f64, f64::max);
    let n = pts.len().max(2) as f64 - 1.0;
    let xy: Vec<(f64, f64, f64, &str)> = pts
        .iter()
        .enumerate()
        .map(|(i, (_, secs, status))| {
            let x = pad + (w - 2.0 * pad) * (i as f64 / n);
            let y = h - pad - (h - 2.0 * pad) * (secs / max);
            (x, y, *secs, status.as_str())
        })
        .collect();
    let line: String = xy
        .iter()
        .map(|(x, y, ..)| format!("{x:.1},{y:.1} "))
        .collect();
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(w) height=(h) role="img"
            aria-label=(format!("durations, longest {max:.1} s")) {
            polyline points=(line) fill="none" stroke="#888" {}
            // Passed runs are circles, the others squares: readable
            // without colour.
            @for (x, y, secs, status) in &xy {
                @if *status == "passed" {
                    circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="4" fill="#2a2" data-status=(status) {
                        title { (format!("{secs:.1} s, {status}")) }
                    }
                } @else {
                    rect x=(format!("{:.1}", x - 4.0)) y=(format!("{:.1}", y - 4.0)) width="8" height="8" fill="#c33" data-status=(status) {
                        title { (format!("{secs:.1} s, {status}")) }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct DiffQuery {
    #[serde(default)]
    a: String,
    #[serde(default)]
    b: String,
}

/// Two runs of a team compared: what the diff page shows and its JSON
/// returns.
struct Comparison {
    runs: [firedrill::history::Run; 2],
    /// Faults applied in each.
    faults: [usize; 2],
    /// The parameters whose values differ, each value as shown (secret
    /// ones masked).
    params: BTreeMap<String, [Option<String>; 2]>,
    /// Every measurement of either, with its unit.
    measurements: BTreeMap<String, [Option<(f64, String)>; 2]>,
}

fn compare(p: &Platform, team: &str, q: &DiffQuery) -> Result<Comparison, ApiError> {
    let load = |run: &str| -> Result<(firedrill::history::Run, usize), ApiError> {
        let (_, id) = team_run(p, team, run.trim())?;
        let record = p
            .engine()
            .history()
            .get_run(id)
            .ok()
            .flatten()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no run {run:?} in the history"),
                )
            })?;
        let faults = p
            .engine()
            .history()
            .timeline(id)
            .unwrap_or_default()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::FaultApplied { .. }))
            .count();
        Ok((record, faults))
    };
    let ((a, fa), (b, fb)) = (load(&q.a)?, load(&q.b)?);
    let shown = |r: &firedrill::history::Run, k: &str| {
        r.params.get(k).map(|v| {
            if r.is_secret_param(k) {
                "(secret)".to_string()
            } else {
                v.clone()
            }
        })
    };
    let mut params = BTreeMap::new();
    for k in a.params.keys().chain(b.params.keys()) {
        if a.params.get(k) != b.params.get(k) {
            params.insert(k.clone(), [shown(&a, k), shown(&b, k)]);
        }
    }
    let mut measurements: BTreeMap<String, [Option<(f64, String)>; 2]> = BTreeMap::new();
    for (i, r) in [&a, &b].into_iter().enumerate() {
        for m in r.outcome.iter().flat_map(|o| o.measurements.iter()) {
            measurements.entry(m.name.clone()).or_default()[i] = Some((m.value, m.unit.clone()));
        }
    }
    Ok(Comparison {
        runs: [a, b],
        faults: [fa, fb],
        params,
        measurements,
    })
}

/// Two runs of a team side by side: status, scenario build, seed, the
/// parameters that differ, measurements, faults applied.
pub(super) async fn diff_page(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(team): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Response {
    let c = match compare(&p, &team, &q) {
        Ok(c) => c,
        Err(e) => return error_page(e.0, &e.1),
    };
    let [a, b] = &c.runs;
    let build =
        |r: &firedrill::history::Run| r.scenario.sha256.chars().take(12).collect::<String>();
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let measured = |v: &Option<(f64, String)>| {
        v.as_ref()
            .map_or("-".to_string(), |(value, unit)| format!("{value} {unit}"))
    };
    page(
        "Diff",
        Some(&who),
        html! {
            h1 { "Runs " code { (a.id) } " and " code { (b.id) } }
            table id="diff" {
                tr { th { "" } th { (a.id) } th { (b.id) } }
                tr data-row="status" { td { "status" } td { (a.status.as_str()) } td { (b.status.as_str()) } }
                tr data-row="scenario" { td { "scenario" } td { (a.scenario.name) " " (a.scenario.version) } td { (b.scenario.name) " " (b.scenario.version) } }
                tr data-row="build" { td { "build" } td { (build(a)) } td { (build(b)) } }
                tr data-row="seed" { td { "seed" } td { (a.seed) } td { (b.seed) } }
                tr data-row="faults" { td { "faults applied" } td { (c.faults[0]) } td { (c.faults[1]) } }
                @for (k, [va, vb]) in &c.params {
                    tr data-row={ "param." (k) } { td { (k) } td { (or_dash(va)) } td { (or_dash(vb)) } }
                }
                @for (k, [ma, mb]) in &c.measurements {
                    tr data-row={ "measurement." (k) } { td { (k) } td { (measured(ma)) } td { (measured(mb)) } }
                }
            }
        },
    )
}

pub(super) async fn schedules_page(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(team): Path<String>,
) -> Response {
    let list: Vec<super::schedule::Schedule> = p
        .inner
        .store
        .schedules()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.team == team)
        .collect();
    let runner = who.user.role_in(&team).is_some_and(|r| r >= Role::Runner);
    let csrf = csrf_of(&who);
    let when = |ms: u64| {
        chrono::DateTime::from_timestamp_millis(ms as i64)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    };
    page(
        &format!("{team} schedules"),
        Some(&who),
        html! {
            h1 { "Schedules of " (team) }
            table id="schedules" {
                tr { th { "Schedule" } th { "Cron" } th { "Scenario" } th { "Next" } th { "Last firings" } th { "" } }
                @for s in &list {
                    tr data-schedule=(s.id) {
                        td { code { (s.id) } }
                        td { code { (s.cron) } }
                        td { (s.scenario) }
                        td.next {
                            @if s.paused { "paused" } @else {
                                @for t in super::schedule::next_times(&s.cron, super::now_ms(), 3) { (when(t)) br; }
                            }
                        }
                        td { @for f in s.firings.iter().rev().take(3) { (when(f.at)) ": " (f.outcome) " " (f.detail) br; } }
                        td {
                            @if runner {
                                form method="post" action={ "/teams/" (team) "/schedules/" (s.id) "/" (if s.paused { "resume" } else { "pause" }) } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button { (if s.paused { "Resume" } else { "Pause" }) }
                                }
                            }
                        }
                    }
                }
            }
            @if runner {
                h2 { "New schedule" }
                form method="post" action={ "/teams/" (team) "/schedules" } id="schedule-form" {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Cron (five fields, or six with seconds first) " input type="text" name="cron" id="schedule-cron" placeholder="*/15 * * * *" required; }
                    label { "Package " input type="text" name="scenario" id="schedule-scenario" placeholder="firedrill:latency-ramp@^0.2" required; }
                    label { "Parameters, NAME=VALUE per line " br; textarea name="params" id="schedule-params" rows="4" cols="50" {} }
                    label { "Overlaps " select name="concurrency" id="schedule-concurrency" {
                        option value="forbid" { "forbid: skip a firing while the last run goes" }
                        option value="allow" { "allow: start another" }
                    } }
                    button id="create-schedule" { "Create schedule" }
                }
            }
        },
    )
}

pub(super) async fn schedule_form(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path(team): Path<String>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let params = get("params")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                serde_json::Value::String(v.trim().to_string()),
            )
        })
        .collect();
    let input = api::NewSchedule {
        cron: get("cron"),
        scenario: get("scenario"),
        params,
        targets: BTreeMap::new(),
        dry_run: false,
        concurrency: if get("concurrency") == "allow" {
            super::schedule::Concurrency::Allow
        } else {
            super::schedule::Concurrency::Forbid
        },
    };
    match api::new_schedule(&p, &who, &team, input) {
        Ok(_) => Redirect::to(&format!("/teams/{team}/schedules")).into_response(),
        Err(e) => error_page(e.0, &e.1),
    }
}

pub(super) async fn schedule_action(
    State(p): State<Platform>,
    Extension(who): Extension<Principal>,
    Path((team, id, action)): Path<(String, String, String)>,
) -> Response {
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        other => return error_page(StatusCode::NOT_FOUND, &format!("no action {other:?}")),
    };
    match api::pause_schedule_core(&p, &who, &team, &id, paused) {
        Ok(_) => Redirect::to(&format!("/teams/{team}/schedules")).into_response(),
        Err(e) => error_page(e.0, &e.1),
    }
}

/// The diff page's comparison as JSON: both runs' records, the parameters
/// that differ, each measurement side by side, faults applied.
pub(super) async fn diff_json(
    State(p): State<Platform>,
    Path(team): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Response {
    let c = match compare(&p, &team, &q) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let side = |i: usize| {
        let r = &c.runs[i];
        let measurements: BTreeMap<&String, f64> = c
            .measurements
            .iter()
            .filter_map(|(k, v)| v[i].as_ref().map(|(value, _)| (k, *value)))
            .collect();
        serde_json::json!({"run": r.id.to_string(), "status": r.status.as_str(), "scenario": r.scenario,
                           "seed": r.seed, "faults_applied": c.faults[i], "measurements": measurements})
    };
    axum::Json(serde_json::json!({"a": side(0), "b": side(1), "params_differing": c.params}))
        .into_response()
}
