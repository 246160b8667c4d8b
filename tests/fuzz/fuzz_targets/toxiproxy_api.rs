//! Fuzz bytes as the request bodies of the Toxiproxy-compatible API's
//! writing routes (`POST /proxies`, `/populate`, proxy and toxic updates,
//! `POST /proxies/{p}/toxics`, leases), through the real router in process.
//!
//! The input is up to 8 requests separated by NUL bytes (which JSON text
//! never contains): each request's first byte picks the route, the rest is
//! its body. Before them, proxy `p` (with toxic `t`) and lease `h` exist.
//!
//! What must hold:
//! - nothing panics;
//! - every answer is the route's success status with a JSON object, 204
//!   with no body, or an error in the API's shape (`{"error": text,
//!   "status": n}` with n the HTTP status) and a 4xx status; a 5xx only for
//!   a listen address that cannot be bound;
//! - every proxy listed can be read, its toxics listed, and deleted.
//!
//! Bodies naming a listen address that would bind a fixed port or resolve
//! a host name through DNS are skipped: the machine is shared, and such an
//! input would depend on it.
#![no_main]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use firedrill_server::toxiproxy::Registry;
use firedrill_server::toxiproxy::api::{Access, router};
use serde_json::Value;
use std::sync::Arc;
use std::sync::OnceLock;
use tower::ServiceExt;

struct Route {
    method: Method,
    path: &'static str,
    ok: u16,
}

const ROUTES: &[(&str, &str, u16)] = &[
    ("POST", "/proxies", 201),
    ("POST", "/populate", 201),
    ("POST", "/proxies/p", 200),
    ("PATCH", "/proxies/p", 200),
    ("POST", "/proxies/p/toxics", 200),
    ("POST", "/proxies/p/toxics/t", 200),
    ("PATCH", "/proxies/p/toxics/t", 200),
    ("PUT", "/leases/h", 200),
];

fn route(b: u8) -> Route {
    let (m, path, ok) = ROUTES[usize::from(b) % ROUTES.len()];
    Route {
        method: m.parse().unwrap(),
        path,
        ok,
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A listen address that binds port 0 (or fails without a DNS lookup).
fn safe_listen(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return true;
    };
    match port.parse::<u16>() {
        Err(_) => true,
        Ok(p) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            p == 0
                && (host.is_empty()
                    || host == "localhost"
                    || host.parse::<std::net::IpAddr>().is_ok())
        }
    }
}

/// Every `listen` in `v` is safe to hand to the registry.
fn safe(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().all(|(k, v)| match (k.as_str(), v) {
            ("listen", Value::String(s)) => safe_listen(s),
            _ => safe(v),
        }),
        Value::Array(a) => a.iter().all(safe),
        _ => true,
    }
}

/// Path segment, percent-encoded.
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn call(app: &axum::Router, method: Method, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(body))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, body.to_vec())
}

/// The answer is a success of the route or an error in the API's shape.
fn check(what: &str, ok: u16, status: u16, body: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(body);
    if status == 204 {
        assert!(body.is_empty(), "{what}: 204 with a body: {text}");
        return None;
    }
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{what}: {status} answered with no JSON ({e}): {text}"));
    if status == ok {
        assert!(v.is_object(), "{what}: {status} with no object: {text}");
        return Some(v);
    }
    assert!(
        StatusCode::from_u16(status).is_ok_and(|s| s.is_client_error() || s.is_server_error()),
        "{what}: unexpected status {status}: {text}"
    );
    let message = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {status} with no error text: {text}"));
    assert_eq!(
        v["status"], status,
        "{what}: status in body differs: {text}"
    );
    if status >= 500 {
        assert!(
            message.starts_with("listen tcp"),
            "{what}: a server error that is not a bind failure: {text}"
        );
    }
    Some(v)
}

async fn run(data: &[u8]) {
    let app = router(Arc::new(Registry::new(1)), Access::Anonymous);
    for (method, path, body) in [
        (
            Method::POST,
            "/proxies",
            r#"{"name":"p","listen":"127.0.0.1:0","upstream":"127.0.0.1:9"}"#,
        ),
        (
            Method::POST,
            "/proxies/p/toxics",
            r#"{"name":"t","type":"latency","attributes":{"latency":1}}"#,
        ),
        (Method::PUT, "/leases/h", r#"{"ttl":60000}"#),
    ] {
        let (status, answer) = call(&app, method, path, body.into()).await;
        assert!(
            status < 300,
            "setup {path}: {status} {}",
            String::from_utf8_lossy(&answer)
        );
    }
    for part in data.split(|b| *b == 0).take(8) {
        let Some((&pick, body)) = part.split_first() else {
            continue;
        };
        let r = route(pick);
        let (status, answer) = call(&app, r.method.clone(), r.path, body.to_vec()).await;
        let what = format!("{} {}", r.method, r.path);
        check(&what, r.ok, status, &answer);
    }
    // Every proxy listed can be read, its toxics listed, and deleted.
    let (status, answer) = call(&app, Method::GET, "/proxies", Vec::new()).await;
    let list = check("GET /proxies", 200, status, &answer).unwrap();
    let list = list.as_object().expect("GET /proxies: an object");
    for (name, p) in list {
        assert_eq!(p["name"], name.as_str(), "listed under another name: {p}");
        let at = format!("/proxies/{}", segment(name));
        for path in [at.clone(), format!("{at}/toxics")] {
            let (status, answer) = call(&app, Method::GET, &path, Vec::new()).await;
            assert_eq!(
                status,
                200,
                "GET {path}: {}",
                String::from_utf8_lossy(&answer)
            );
            serde_json::from_slice::<Value>(&answer).expect("JSON");
        }
        let (status, answer) = call(&app, Method::DELETE, &at, Vec::new()).await;
        assert_eq!(
            status,
            204,
            "DELETE {at}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let (_, answer) = call(&app, Method::GET, "/proxies", Vec::new()).await;
    assert_eq!(answer, b"{}", "proxies left after deleting every one");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Skip inputs whose bodies would bind a fixed port or look a name up.
    for part in data.split(|b| *b == 0).take(8) {
        if let Some((_, body)) = part.split_first()
            && let Ok(v) = serde_json::from_slice::<Value>(body)
            && !safe(&v)
        {
            return;
        }
    }
    runtime().block_on(run(data));
});
