//! `firedrill proxy serve` driven with raw HTTP/1.1 requests the way
//! Toxiproxy clients drive Toxiproxy 2.x (the README's CLI flow, the Go,
//! Ruby and Java clients, Testcontainers): status codes, JSON shapes, error
//! texts; and each toxic checked from a real client through the proxy.

use crate::support::{firedrill, free_port};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = firedrill(dir.path())
        .args(["proxy", "serve", "--port", &port.to_string(), "--seed", "1"])
        .args(extra)
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = Server {
        child,
        addr,
        _dir: dir,
    };
    for _ in 0..200 {
        if let Ok(r) = http(addr, "GET", "/version", "", &[]).await
            && r.status == 200
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("proxy server did not answer /version");
}

struct Answer {
    status: u16,
    content_type: String,
    /// The status line and headers.
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One request on its own connection, written byte for byte.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Answer> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        req.push_str("User-Agent: toxiproxy-cli\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    exchange(addr, req.as_bytes()).await
}

/// Write `request` as is on a new connection and read the answer until
/// the server closes.
async fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(request).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Ok(Answer {
        status,
        content_type,
        head: head.to_string(),
        body: body.to_string(),
    })
}

async fn call(s: &Server, method: &str, path: &str, body: &str) -> Answer {
    http(s.addr, method, path, body, &[]).await.unwrap()
}

async fn ping(addr: &str, within: Duration) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let t = Instant::now();
    s.write_all(b"ping").await.ok()?;
    let mut buf = [0u8; 4];
    tokio::time::timeout(within, s.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(t.elapsed())
}

#[tokio::test]
async fn the_readme_flow_works_as_on_toxiproxy() {
    let s = serve(&["--allow-anonymous"]).await;
    let upstream = firedrill_tests::echo_server().await;

    // toxiproxy-cli create -l localhost:0 -u <upstream> redis
    let created = call(
        &s,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"redis","listen":"localhost:0","upstream":"{upstream}"}}"#),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.content_type, "application/json");
    let proxy = created.json();
    let listen = proxy["listen"].as_str().unwrap().to_string();
    assert!(listen.starts_with("127.0.0.1:"), "resolved: {listen}");
    assert_eq!(
        proxy,
        json!({"name": "redis", "listen": listen, "upstream": upstream.to_string(), "enabled": true, "toxics": []})
    );
    assert!(ping(&listen, Duration::from_secs(2)).await.unwrap() < Duration::from_millis(100));

    // toxiproxy-cli list
    let list = call(&s, "GET", "/proxies", "").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["redis"]["listen"], listen);

    // toxiproxy-cli toxic add -t latency -a latency=300 redis
    let added = call(
        &s,
        "POST",
        "/proxies/redis/toxics",
        r#"{"name":"","type":"latency","toxicity":1,"attributes":{"latency":300}}"#,
    )
    .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(
        added.json(),
        json!({"attributes": {"latency": 300, "jitter": 0}, "name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1})
    );
    let slow = ping(&listen, Duration::from_secs(2)).await.unwrap();
    assert!(slow >= Duration::from_millis(290), "{slow:?}");

    // toxiproxy-cli toxic remove -n latency_downstream redis
    let removed = call(&s, "DELETE", "/proxies/redis/toxics/latency_downstream", "").await;
    assert_eq!(removed.status, 204);
    assert!(removed.body.is_empty());
    assert!(ping(&listen, Duration::from_secs(2)).await.unwrap() < Duration::from_millis(100));

    // down: enabled=false refuses connections, enabled=true listens again
    let down = call(&s, "POST", "/proxies/redis", r#"{"enabled":false}"#).await;
    assert_eq!(
        (down.status, down.json()["enabled"].clone()),
        (200, json!(false))
    );
    assert_eq!(
        TcpStream::connect(&listen).await.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    let up = call(&s, "PATCH", "/proxies/redis", r#"{"enabled":true}"#).await;
    assert_eq!(up.json()["listen"], listen, "re-enabling keeps the port");
    assert!(ping(&listen, Duration::from_secs(2)).await.is_some());

    // reset removes toxics and enables proxies
    call(
        &s,
        "POST",
        "/proxies/redis/toxics",
        r#"{"type":"timeout","attributes":{"timeout":0}}"#,
    )
    .await;
    call(&s, "POST", "/proxies/redis", r#"{"enabled":false}"#).await;
    let reset = call(&s, "POST", "/reset", "").await;
    assert_eq!(reset.status, 204);
    let after = call(&s, "GET", "/proxies/redis", "").await.json();
    assert_eq!(
        (after["enabled"].clone(), after["toxics"].clone()),
        (json!(true), json!([]))
    );
    assert!(ping(&listen, Duration::from_secs(2)).await.is_some());

    // toxiproxy-cli delete redis
    assert_eq!(call(&s, "DELETE", "/proxies/redis", "").await.status, 204);
    let gone = call(&s, "GET", "/proxies/redis", "").await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.content_type, "text/plain; charset=utf-8");
    assert_eq!(
        gone.body,
        "{\"error\":\"proxy not found\",\"status\":404}\n"
    );
    assert!(
        TcpStream::connect(&listen).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn errors_have_toxiproxys_codes_and_texts() {
    let s = serve(&["--allow-anonymous"]).await;
    let p = r#"{"name":"db","listen":"127.0.0.1:0","upstream":"127.0.0.1:9"}"#;
    assert_eq!(call(&s, "POST", "/proxies", p).await.status, 201);
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("POST", "/proxies", p, 409, "proxy already exists"),
        (
            "POST",
            "/proxies",
            r#"{"name":"x"}"#,
            400,
            "missing required field: upstream",
        ),
        (
            "POST",
            "/proxies",
            r#"{"upstream":"a:1"}"#,
            400,
            "missing required field: name",
        ),
        ("POST", "/proxies", "", 400, "bad request body: EOF"),
        (
            "POST",
            "/proxies/db/toxics",
            r#"{"type":"nope"}"#,
            400,
            "invalid toxic type",
        ),
        (
            "POST",
            "/proxies/db/toxics",
            r#"{"type":"latency","stream":"sideways"}"#,
            400,
            "stream was invalid, can be either upstream or downstream",
        ),
        (
            "POST",
            "/proxies/nope/toxics",
            r#"{"type":"latency"}"#,
            404,
            "proxy not found",
        ),
        ("GET", "/proxies/db/toxics/nope", "", 404, "toxic not found"),
        (
            "DELETE",
            "/proxies/db/toxics/nope",
            "",
            404,
            "toxic not found",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let a = call(&s, method, path, body).await;
        assert_eq!(a.status, *status, "{method} {path} {body}: {}", a.body);
        assert_eq!(a.json()["error"], *message, "{method} {path} {body}");
        assert_eq!(a.json()["status"], *status);
    }
    let bad = call(&s, "POST", "/proxies", "{bad").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("bad request body: ")
    );
    // Same name twice, even across streams, is a conflict; default names
    // differ per stream.
    for (body, status) in [
        (r#"{"type":"latency","stream":"upstream"}"#, 200),
        (r#"{"type":"latency","stream":"downstream"}"#, 200),
        (r#"{"type":"latency","stream":"upstream"}"#, 409),
        (r#"{"name":"latency_upstream","type":"bandwidth"}"#, 409),
    ] {
        assert_eq!(
            call(&s, "POST", "/proxies/db/toxics", body).await.status,
            status,
            "{body}"
        );
    }
    let toxics = call(&s, "GET", "/proxies/db/toxics", "").await.json();
    assert_eq!(toxics[0]["stream"], "upstream", "upstream toxics first");
    // A listen address in use is a 500 with the bind error.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let body = format!(
        r#"{{"name":"clash","listen":"{}","upstream":"127.0.0.1:9"}}"#,
        taken.local_addr().unwrap()
    );
    let clash = call(&s, "POST", "/proxies", &body).await;
    assert_eq!(clash.status, 500);
    assert!(
        clash.json()["error"]
            .as_str()
            .unwrap()
            .contains("address already in use")
    );
    // Browsers are refused outright.
    let browser = http(
        s.addr,
        "GET",
        "/proxies",
        "",
        &[("User-Agent", "Mozilla/5.0")],
    )
    .await
    .unwrap();
    assert_eq!(browser.status, 403);
}

#[tokio::test]
async fn populate_version_metrics_and_partial_updates() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = firedrill_tests::echo_server().await;
    let config = dir.path().join("proxies.json");
    let port = free_port();
    std::fs::write(
        &config,
        format!(r#"[{{"name":"web","listen":"127.0.0.1:{port}","upstream":"{upstream}"}}]"#),
    )
    .unwrap();
    let s = serve(&["--allow-anonymous", "--config", config.to_str().unwrap()]).await;

    let version = call(&s, "GET", "/version", "").await;
    assert_eq!(version.body, "{\"version\": \"2.12.0\"}\n");

    let web = call(&s, "GET", "/proxies/web", "").await.json();
    assert_eq!(
        web["listen"],
        format!("127.0.0.1:{port}"),
        "loaded from --config"
    );
    call(&s, "POST", "/proxies/web/toxics", r#"{"name":"slow","type":"latency","attributes":{"latency":100,"jitter":50},"toxicity":0.5}"#).await;

    // Populating the same definition keeps the proxy and its toxics; a new
    // one is created.
    let pop = call(
        &s,
        "POST",
        "/populate",
        &format!(
            r#"[{{"name":"web","listen":"127.0.0.1:{port}","upstream":"{upstream}"}},{{"name":"cache","listen":"127.0.0.1:0","upstream":"{upstream}","enabled":null}}]"#
        ),
    )
    .await;
    assert_eq!(pop.status, 201, "{}", pop.body);
    let proxies = pop.json()["proxies"].clone();
    assert_eq!(proxies[0]["toxics"][0]["name"], "slow");
    assert_eq!(proxies[1]["enabled"], true);
    let bad = call(
        &s,
        "POST",
        "/populate",
        r#"[{"name":"a","upstream":"b:1"},{"upstream":"c:1"}]"#,
    )
    .await;
    assert_eq!(
        (bad.status, bad.json()["error"].clone()),
        (400, json!("missing required field: name at proxy 2"))
    );
    assert_eq!(
        call(&s, "GET", "/proxies/a", "").await.status,
        404,
        "nothing applied"
    );

    // A partial update changes only what it names (the Java client's
    // setJitter, the Go client's PATCH).
    let upd = call(
        &s,
        "POST",
        "/proxies/web/toxics/slow",
        r#"{"attributes":{"latency":300}}"#,
    )
    .await;
    assert_eq!(upd.status, 200);
    assert_eq!(
        upd.json(),
        json!({"attributes": {"latency": 300, "jitter": 50}, "name": "slow", "type": "latency", "stream": "downstream", "toxicity": 0.5})
    );
    let upd = call(&s, "PATCH", "/proxies/web/toxics/slow", r#"{"toxicity":0}"#).await;
    assert_eq!(upd.json()["toxicity"], 0);
    assert!(
        ping(&format!("127.0.0.1:{port}"), Duration::from_secs(2))
            .await
            .unwrap()
            < Duration::from_millis(100),
        "toxicity 0 affects no connection"
    );

    let metrics = call(&s, "GET", "/metrics", "").await;
    assert_eq!(metrics.status, 200);
    let line = metrics
        .body
        .lines()
        .find(|l| {
            l.starts_with("toxiproxy_proxy_sent_bytes_total{direction=\"upstream\",proxy=\"web\"")
        })
        .unwrap_or_else(|| panic!("{}", metrics.body));
    let sent: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(sent >= 4, "the ping went through: {line}");
}

#[tokio::test]
async fn testcontainers_cut_connection_stalls_and_restores() {
    let s = serve(&["--allow-anonymous"]).await;
    let upstream = firedrill_tests::echo_server().await;
    let p = call(
        &s,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"{upstream}","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#),
    )
    .await
    .json();
    let listen = p["listen"].as_str().unwrap().to_string();
    // The legacy container names proxies `host:port`: names with `:` work.
    let base = format!("/proxies/{upstream}");
    let mut live = TcpStream::connect(&listen).await.unwrap();
    for stream in ["upstream", "downstream"] {
        let a = call(&s, "POST", &format!("{base}/toxics"), &format!(r#"{{"name":"CUT_CONNECTION_{stream}","type":"bandwidth","stream":"{stream}","toxicity":1.0,"attributes":{{"rate":0}}}}"#)).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    live.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), live.read_exact(&mut buf))
            .await
            .is_err(),
        "cut: nothing flows"
    );
    for stream in ["upstream", "downstream"] {
        let t = call(
            &s,
            "GET",
            &format!("{base}/toxics/CUT_CONNECTION_{stream}"),
            "",
        )
        .await
        .json();
        assert_eq!(t["type"], "bandwidth");
        assert_eq!(
            call(
                &s,
                "DELETE",
                &format!("{base}/toxics/CUT_CONNECTION_{stream}"),
                ""
            )
            .await
            .status,
            204
        );
    }
    tokio::time::timeout(Duration::from_secs(2), live.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        &buf, b"ping",
        "restored: the held bytes arrive on the same connection"
    );
}

#[tokio::test]
async fn toxics_from_the_api_act_on_real_traffic() {
    let s = serve(&["--allow-anonymous"]).await;
    let sender = firedrill_tests::sending_server(100_000).await;
    let p = call(
        &s,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"bulk","listen":"127.0.0.1:0","upstream":"{sender}"}}"#),
    )
    .await
    .json();
    let listen = p["listen"].as_str().unwrap().to_string();
    async fn drain(addr: &str) -> (usize, std::io::Result<()>, Duration) {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let t = Instant::now();
        let mut n = 0;
        let mut buf = vec![0u8; 65536];
        loop {
            match c.read(&mut buf).await {
                Ok(0) => return (n, Ok(()), t.elapsed()),
                Ok(k) => n += k,
                Err(e) => return (n, Err(e), t.elapsed()),
            }
        }
    }
    // bandwidth: 100 KB at 200 KB/s takes half a second
    call(
        &s,
        "POST",
        "/proxies/bulk/toxics",
        r#"{"name":"bw","type":"bandwidth","attributes":{"rate":200}}"#,
    )
    .await;
    let (n, _, took) = drain(&listen).await;
    assert_eq!(n, 100_000);
    assert!((0.4..0.7).contains(&took.as_secs_f64()), "{took:?}");
    call(&s, "DELETE", "/proxies/bulk/toxics/bw", "").await;
    // limit_data: exactly 1000 bytes, then the connection closes
    call(
        &s,
        "POST",
        "/proxies/bulk/toxics",
        r#"{"name":"lim","type":"limit_data","attributes":{"bytes":1000}}"#,
    )
    .await;
    assert_eq!(drain(&listen).await.0, 1000);
    call(&s, "DELETE", "/proxies/bulk/toxics/lim", "").await;
    // reset_peer: the client sees RST
    call(
        &s,
        "POST",
        "/proxies/bulk/toxics",
        r#"{"name":"rst","type":"reset_peer","attributes":{"timeout":50}}"#,
    )
    .await;
    let echo = firedrill_tests::echo_server().await;
    call(
        &s,
        "POST",
        "/proxies/bulk",
        &format!(r#"{{"upstream":"{echo}"}}"#),
    )
    .await;
    let (_, end, _) = drain(&listen).await;
    assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
    call(&s, "DELETE", "/proxies/bulk/toxics/rst", "").await;
    // timeout: removing it closes the connections it held, as Toxiproxy does
    call(
        &s,
        "POST",
        "/proxies/bulk/toxics",
        r#"{"name":"to","type":"timeout","attributes":{"timeout":0}}"#,
    )
    .await;
    let mut held = TcpStream::connect(&listen).await.unwrap();
    held.write_all(b"ping").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    call(&s, "DELETE", "/proxies/bulk/toxics/to", "").await;
    let mut buf = [0u8; 4];
    let r = tokio::time::timeout(Duration::from_secs(2), held.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(r, Ok(0) | Err(_)), "closed: {r:?}");
}

#[tokio::test]
async fn a_token_is_required_unless_anonymous_loopback() {
    let token = "0123456789abcdef0123";
    let s = serve(&["--token", token]).await;
    assert_eq!(
        call(&s, "GET", "/version", "").await.status,
        200,
        "health stays open"
    );
    let denied = call(&s, "GET", "/proxies", "").await;
    assert_eq!(denied.status, 401);
    assert!(
        denied.json()["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    let wrong = http(
        s.addr,
        "GET",
        "/proxies",
        "",
        &[("Authorization", "Bearer nope")],
    )
    .await
    .unwrap();
    assert_eq!(wrong.status, 401);
    let ok = http(
        s.addr,
        "GET",
        "/proxies",
        "",
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await
    .unwrap();
    assert_eq!((ok.status, ok.body.as_str()), (200, "{}"));

    let dir = tempfile::tempdir().unwrap();
    for (args, why) in [
        (vec![], "needs a token"),
        (
            vec!["--host", "0.0.0.0", "--allow-anonymous"],
            "loopback only",
        ),
    ] {
        let out = firedrill(dir.path())
            .args(["proxy", "serve", "--port", "0"])
            .args(&args)
            .env_remove("FIREDRILL_TOKEN")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{err}");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let s = serve(&["--token", TOKEN]).await;
    // RFC 9110 §11.1: the scheme is case-insensitive; clients send all three.
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        for gap in [" ", "  "] {
            let credentials = format!("{scheme}{gap}{TOKEN}");
            let a = http(
                s.addr,
                "GET",
                "/proxies",
                "",
                &[("Authorization", &credentials)],
            )
            .await
            .unwrap();
            assert_eq!((a.status, a.body.as_str()), (200, "{}"), "{credentials:?}");
        }
    }
    // The scheme still has to be Bearer, and the token still has to match.
    for credentials in [
        format!("Basic {TOKEN}"),
        format!("bearer{TOKEN}"),
        format!("bearer {TOKEN}x"),
        "bearer ".to_string(),
    ] {
        let a = http(
            s.addr,
            "GET",
            "/proxies",
            "",
            &[("Authorization", &credentials)],
        )
        .await
        .unwrap();
        assert_eq!(a.status, 401, "{credentials:?}");
        assert_eq!(a.json()["status"], 401);
    }
}

/// The shape every API error has: `{"error": "…", "status": N}`.
fn api_error(a: &Answer, status: u16, needle: &str) {
    assert_eq!(a.status, status, "{}\n{}", a.head, a.body);
    let v = a.json();
    assert_eq!(v["status"], status, "{}", a.body);
    let message = v["error"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_huge_bodies_answer_in_the_api_error_shape() {
    let s = serve(&["--allow-anonymous"]).await;
    api_error(
        &call(&s, "GET", "/nope", "").await,
        404,
        "no route GET /nope",
    );
    api_error(
        &call(&s, "GET", "/proxies/a/b/c/d", "").await,
        404,
        "no route",
    );
    let wrong = call(&s, "DELETE", "/version", "").await;
    api_error(&wrong, 405, "method DELETE not allowed on /version");
    assert!(
        wrong.head.to_ascii_lowercase().contains("\r\nallow: get"),
        "405 says what is allowed: {}",
        wrong.head
    );
    api_error(
        &call(&s, "PUT", "/proxies", "{}").await,
        405,
        "method PUT not allowed on /proxies",
    );

    // A declared length over the limit is refused before the body is sent.
    let big = format!(
        "POST /proxies HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        2 * firedrill_server::toxiproxy::api::MAX_BODY
    );
    api_error(
        &exchange(s.addr, big.as_bytes()).await.unwrap(),
        413,
        "request body too large",
    );
    // So is a chunked body that grows past it. The final chunk is never
    // sent: the server answers once the limit is crossed.
    let n = firedrill_server::toxiproxy::api::MAX_BODY + 1;
    let mut chunked = format!(
        "POST /populate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{n:x}\r\n"
    )
    .into_bytes();
    chunked.extend(std::iter::repeat_n(b' ', n));
    api_error(
        &exchange(s.addr, &chunked).await.unwrap(),
        413,
        "request body too large",
    );
    // The server is still there, and a body within the limit is read.
    let padded = format!("{}[]", " ".repeat(100_000));
    let ok = call(&s, "POST", "/populate", &padded).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

#[tokio::test]
async fn long_names_and_out_of_range_toxic_values_are_refused_naming_the_field() {
    let s = serve(&["--allow-anonymous"]).await;
    let upstream = firedrill_tests::echo_server().await;
    let create = |name: &str| {
        format!(r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#)
    };
    // 70,000 characters: more than fits in a request line, so such a proxy
    // could never be read or deleted again.
    let long = "p".repeat(70_000);
    api_error(
        &call(&s, "POST", "/proxies", &create(&long)).await,
        400,
        "name: at most 255 bytes, got 70000",
    );
    api_error(
        &call(&s, "POST", "/populate", &format!("[{}]", create(&long))).await,
        400,
        "name at proxy 1: at most 255 bytes",
    );
    assert_eq!(call(&s, "GET", "/proxies", "").await.body, "{}");
    // The longest name allowed can be created, read and deleted.
    let longest = "q".repeat(firedrill_server::toxiproxy::MAX_NAME);
    assert_eq!(
        call(&s, "POST", "/proxies", &create(&longest)).await.status,
        201
    );
    let path = format!("/proxies/{longest}");
    assert_eq!(call(&s, "GET", &path, "").await.json()["name"], longest);
    assert_eq!(call(&s, "DELETE", &path, "").await.status, 204);

    let made = call(&s, "POST", "/proxies", &create("db")).await.json();
    let listen = made["listen"].as_str().unwrap().to_string();
    let cases: &[(&str, &str)] = &[
        (
            r#"{"type":"latency","attributes":{"latency":-100}}"#,
            "attributes.latency: must be 0 or more (milliseconds)",
        ),
        (
            r#"{"type":"latency","attributes":{"latency":100,"jitter":-5}}"#,
            "attributes.jitter: must be 0 or more",
        ),
        (
            r#"{"type":"bandwidth","attributes":{"rate":-1}}"#,
            "attributes.rate: must be 0 or more (KB/s)",
        ),
        (
            r#"{"type":"limit_data","attributes":{"bytes":-1}}"#,
            "attributes.bytes: must be 0 or more (bytes)",
        ),
        (
            r#"{"type":"timeout","attributes":{"timeout":-1}}"#,
            "attributes.timeout: must be 0 or more",
        ),
        (
            r#"{"type":"reset_peer","attributes":{"timeout":-1}}"#,
            "attributes.timeout: must be 0 or more",
        ),
        (
            r#"{"type":"slow_close","attributes":{"delay":-1}}"#,
            "attributes.delay: must be 0 or more",
        ),
        (
            r#"{"type":"slicer","attributes":{"average_size":0}}"#,
            "attributes.average_size: must be 1 or more (bytes) for a slicer toxic, got 0",
        ),
        (
            r#"{"type":"slicer","attributes":{"average_size":-64}}"#,
            "attributes.average_size: must be 1 or more",
        ),
        (
            r#"{"type":"slicer"}"#,
            "attributes.average_size: must be 1 or more (bytes) for a slicer toxic, none given",
        ),
        (
            r#"{"type":"slicer","attributes":{"average_size":8,"size_variation":-1}}"#,
            "attributes.size_variation: must be 0 or more",
        ),
        (
            r#"{"type":"slicer","attributes":{"average_size":8,"delay":-1}}"#,
            "attributes.delay: must be 0 or more (microseconds)",
        ),
        (
            r#"{"type":"latency","toxicity":1.5}"#,
            "toxicity: must be between 0 and 1",
        ),
        (
            r#"{"type":"latency","toxicity":-0.1}"#,
            "toxicity: must be between 0 and 1",
        ),
        (
            r#"{"type":"bandwidth","attributes":{"rate":-1},"toxicity":0.5}"#,
            "attributes.rate",
        ),
    ];
    for (body, needle) in cases {
        let a = call(&s, "POST", "/proxies/db/toxics", body).await;
        api_error(&a, 400, needle);
    }
    let long_toxic = format!(r#"{{"name":"{}","type":"latency"}}"#, "t".repeat(256));
    api_error(
        &call(&s, "POST", "/proxies/db/toxics", &long_toxic).await,
        400,
        "name: at most 255 bytes, got 256",
    );
    let long_holder = format!("/leases/{}", "h".repeat(256));
    api_error(
        &call(&s, "PUT", &long_holder, r#"{"ttl":1000}"#).await,
        400,
        "holder: at most 255 bytes",
    );
    assert_eq!(call(&s, "GET", "/proxies/db/toxics", "").await.body, "[]");
    // Nothing was applied: traffic flows (a negative rate used to stall it).
    assert!(ping(&listen, Duration::from_secs(1)).await.is_some());

    // Bounds that mean something are accepted: 0 and 1, a one-byte slicer.
    for body in [
        r#"{"name":"a","type":"latency","toxicity":0}"#,
        r#"{"name":"b","type":"latency","toxicity":1,"attributes":{"latency":0}}"#,
        r#"{"name":"c","type":"slicer","attributes":{"average_size":1}}"#,
    ] {
        let a = call(&s, "POST", "/proxies/db/toxics", body).await;
        assert_eq!(a.status, 200, "{body}: {}", a.body);
    }
    // An update out of range is refused and changes nothing.
    for (body, needle) in [
        (r#"{"toxicity":2}"#, "toxicity: must be between 0 and 1"),
        (r#"{"attributes":{"latency":-1}}"#, "attributes.latency"),
        (
            r#"{"toxicity":0.5,"attributes":{"latency":-1}}"#,
            "attributes.latency",
        ),
    ] {
        let a = call(&s, "POST", "/proxies/db/toxics/b", body).await;
        api_error(&a, 400, needle);
    }
    let b = call(&s, "GET", "/proxies/db/toxics/b", "").await.json();
    assert_eq!(
        (b["toxicity"].clone(), b["attributes"]["latency"].clone()),
        (json!(1), json!(0))
    );
}

// ---- The scenario path: `kind = "toxiproxy"` targets, leases, recovery ----

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

async fn authed(s: &Server, method: &str, path: &str, body: &str) -> Answer {
    let bearer = format!("Bearer {TOKEN}");
    http(s.addr, method, path, body, &[("Authorization", &bearer)])
        .await
        .unwrap()
}

/// A server with a token and proxy `link` in front of a server that sends
/// 5000 bytes to each client; returns it with the proxy's address.
async fn serve_link() -> (Server, String) {
    serve_link_to(firedrill_tests::sending_server(5000).await, &[]).await
}

/// A `proxy serve` (with `extra` arguments) with one proxy, `link`, to
/// `upstream`; where it listens.
async fn serve_link_to(upstream: SocketAddr, extra: &[&str]) -> (Server, String) {
    let s = serve(&[&["--token", TOKEN], extra].concat()).await;
    let created = authed(
        &s,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"link","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let listen = created.json()["listen"].as_str().unwrap().to_string();
    (s, listen)
}

/// Bytes a client reads through `addr` before EOF.
async fn bytes_through(addr: &str) -> usize {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut data = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut data)).await;
    data.len()
}

async fn toxic_names(s: &Server) -> Vec<String> {
    let list = authed(s, "GET", "/proxies/link/toxics", "").await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// `firedrill run` of the `link` guest (limit-data 1000 bytes, held for
/// `hold`) against proxy `link` on `s`, in its own data dir.
fn run_link(s: &Server, dir: &std::path::Path, hold: &str, lease: &str) -> std::process::Child {
    std::fs::write(dir.join("link.wasm"), firedrill_tests::LINK).unwrap();
    let drill = dir.join("drill.toml");
    std::fs::write(
        &drill,
        format!(
            "[scenario]\npath = \"link.wasm\"\nparams = {{ fault = \"limit-data\", value = \"1000\", hold = \"{hold}\" }}\n[targets.link]\nkind = \"toxiproxy\"\napi = \"{}\"\nproxy = \"link\"\nlease = \"{lease}\"\ngrants = [\"limit-data\"]\n",
            s.addr
        ),
    )
    .unwrap();
    firedrill(&dir.join("data"))
        .env("FIREDRILL_TOKEN", TOKEN)
        .arg("run")
        .arg(&drill)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

async fn until(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f().await {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A scenario's fault becomes a leased toxic the API lists and a client
/// feels; the run's end deletes it.
#[tokio::test]
async fn a_scenario_drives_a_proxy_serve_proxy_through_the_api() {
    let (s, listen) = serve_link().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = run_link(&s, dir.path(), "1500ms", "2s");
    let seen = until(Duration::from_secs(20), async || {
        !toxic_names(&s).await.is_empty()
    })
    .await;
    assert!(seen.is_some(), "the scenario's toxic appears in the API");
    let toxics = authed(&s, "GET", "/proxies/link/toxics", "").await.json();
    assert_eq!(toxics[0]["type"], "limit_data");
    assert_eq!(toxics[0]["attributes"], json!({"bytes": 1000}));
    assert!(
        toxics[0]["lease"]
            .as_str()
            .is_some_and(|l| l.starts_with("firedrill-")),
        "{toxics}"
    );
    assert_eq!(
        bytes_through(&listen).await,
        1000,
        "a client sees the fault"
    );
    let status = engine.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the run passes");
    assert!(
        toxic_names(&s).await.is_empty(),
        "the run deleted its toxic"
    );
    assert_eq!(bytes_through(&listen).await, 5000);
    let leases = authed(&s, "GET", "/leases", "").await.json();
    assert_eq!(leases, json!([]), "the engine ended its lease");
}

/// The dead-man's switch: an engine killed (SIGKILL) or hung (SIGSTOP)
/// stops renewing its lease, and the server removes its toxics once the
/// lease expires. The hung engine, woken, finishes its run cleanly.
#[tokio::test]
async fn a_dead_or_hung_engines_toxics_go_when_its_lease_expires() {
    use nix::sys::signal::Signal;
    let (s, listen) = serve_link().await;
    for (signal, hold) in [(Signal::SIGKILL, "2m"), (Signal::SIGSTOP, "3s")] {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = run_link(&s, dir.path(), hold, "1s");
        let seen = until(Duration::from_secs(20), async || {
            !toxic_names(&s).await.is_empty()
        })
        .await;
        assert!(seen.is_some(), "{signal}: the toxic appears");
        assert_eq!(bytes_through(&listen).await, 1000);
        crate::support::signal(&engine, signal);
        let gone = until(Duration::from_secs(10), async || {
            toxic_names(&s).await.is_empty()
        })
        .await;
        eprintln!("{signal}: toxic removed {gone:?} after the signal (lease 1s)");
        assert!(gone.is_some(), "{signal}: the server removed the toxic");
        assert_eq!(
            bytes_through(&listen).await,
            5000,
            "{signal}: traffic flows"
        );
        if signal == Signal::SIGSTOP {
            crate::support::signal(&engine, Signal::SIGCONT);
            let status = engine.wait().unwrap();
            let mut err = String::new();
            use std::io::Read;
            engine
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert_eq!(status.code(), Some(0), "the woken run ends cleanly: {err}");
        } else {
            engine.wait().unwrap();
        }
    }
}

/// Without a lease (as against Toxiproxy itself), a killed engine's toxic
/// stays until the ledger is recovered: `firedrill recover` deletes it.
#[tokio::test]
async fn recovery_deletes_toxics_a_killed_engine_left_without_a_lease() {
    let (s, listen) = serve_link().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = run_link(&s, dir.path(), "2m", "off");
    let seen = until(Duration::from_secs(20), async || {
        !toxic_names(&s).await.is_empty()
    })
    .await;
    assert!(seen.is_some(), "the toxic appears");
    crate::support::signal(&engine, nix::sys::signal::Signal::SIGKILL);
    engine.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        toxic_names(&s).await.len(),
        1,
        "no lease: nothing removes it"
    );
    let out = firedrill(&dir.path().join("data"))
        .env("FIREDRILL_TOKEN", TOKEN)
        .arg("recover")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("limit-data"), "{text}");
    assert!(
        toxic_names(&s).await.is_empty(),
        "recovery deleted it: {text}"
    );
    assert_eq!(bytes_through(&listen).await, 5000);
}

/// Leases over raw HTTP: a toxic may name only a lease that exists, and an
/// unrenewed lease takes its toxics with it.
#[tokio::test]
async fn leases_are_checked_and_expire() {
    let (s, _listen) = serve_link().await;
    let orphan = authed(
        &s,
        "POST",
        "/proxies/link/toxics",
        r#"{"type":"latency","lease":"nobody","attributes":{"latency":10}}"#,
    )
    .await;
    assert_eq!(orphan.status, 400);
    assert!(
        orphan.body.contains("lease nobody not found"),
        "{}",
        orphan.body
    );
    let bad = authed(&s, "PUT", "/leases/x", r#"{"ttl":5}"#).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let taken = authed(&s, "PUT", "/leases/ci-job", r#"{"ttl":300}"#).await;
    assert_eq!(
        taken.json(),
        json!({"holder": "ci-job", "ttl": 300, "toxics": 0})
    );
    let added = authed(
        &s,
        "POST",
        "/proxies/link/toxics",
        r#"{"type":"latency","lease":"ci-job","attributes":{"latency":10}}"#,
    )
    .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.json()["lease"], "ci-job");
    let gone = until(Duration::from_secs(5), async || {
        toxic_names(&s).await.is_empty()
    })
    .await;
    assert!(gone.is_some(), "the unrenewed lease expired with its toxic");
    assert_eq!(
        authed(&s, "DELETE", "/leases/ci-job", "").await.status,
        404,
        "an expired lease is gone"
    );
    let anonymous = http(s.addr, "GET", "/leases", "", &[]).await.unwrap();
    assert_eq!(anonymous.status, 401, "leases need the token too");
}

/// A burst of new clients while the proxy process cannot accept (stopped,
/// as a busy or paused process is) waits in the listener's accept queue:
/// every one is connected, and every one reaches the upstream once the
/// process runs again. With tokio's default queue of 128 the rest had their
/// SYNs dropped and could not connect while it was stopped.
#[tokio::test]
async fn a_burst_of_clients_waits_in_the_accept_queue() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let (s, listen) = serve_link_to(firedrill_tests::echo_server().await, &[]).await;
    let listen: SocketAddr = listen.parse().unwrap();
    // The queue the system allows (4,096 on current kernels), at most 1,000.
    let allowed: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let n = allowed.min(1000);
    let pid = Pid::from_raw(s.child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(tokio::time::timeout(
            Duration::from_secs(3),
            TcpStream::connect(listen),
        ));
    }
    let results = set.join_all().await;
    kill(pid, Signal::SIGCONT).unwrap();
    let mut conns: Vec<TcpStream> = results.into_iter().flatten().flatten().collect();
    assert_eq!(
        conns.len(),
        n,
        "clients connected while the proxy was stopped (queue of {allowed} allowed)"
    );
    for c in &mut conns {
        c.write_all(b"hi").await.unwrap();
    }
    for c in &mut conns {
        let mut back = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut back))
            .await
            .expect("an answer through the proxy")
            .unwrap();
        assert_eq!(&back, b"hi");
    }
}

/// The `/proc` directories of the threads of process `pid` whose name
/// starts with `prefix`.
fn threads_named(pid: u32, prefix: &str) -> impl Iterator<Item = std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|t| t.path())
        .filter(move |t| {
            std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
}

/// Threads named `proxy-N` in process `pid`: those serving connections.
fn connection_threads(pid: u32) -> usize {
    threads_named(pid, "proxy-")
        .filter(|t| {
            std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() != "proxy-timer")
        })
        .count()
}

/// `--threads` sets how many threads serve proxied connections (one per
/// core without it); out of range, it is refused naming the flag.
#[tokio::test]
async fn threads_set_how_many_threads_serve_connections() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let s = serve(&["--token", TOKEN]).await;
    assert_eq!(connection_threads(s.child.id()), cores);
    drop(s);
    let echo = firedrill_tests::echo_server().await;
    let (s, listen) = serve_link_to(echo, &["--threads", "1"]).await;
    assert_eq!(connection_threads(s.child.id()), 1);
    let mut c = TcpStream::connect(&listen).await.unwrap();
    c.write_all(b"one thread").await.unwrap();
    let mut back = [0u8; 10];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"one thread");
    let dir = tempfile::tempdir().unwrap();
    let out = firedrill(dir.path())
        .args(["proxy", "serve", "--token", TOKEN, "--threads", "0"])
        .output()
        .unwrap();
    // EX_USAGE, as every usage error.
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'--threads <THREADS>'") && err.contains("1..=1024"),
        "{err}"
    );
}

/// How many times the threads of `pid` named `prefix…` have been run
/// (`/proc/…/schedstat`'s third field).
fn runs_of_threads(pid: u32, prefix: &str) -> u64 {
    threads_named(pid, prefix)
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.join("schedstat")).ok()?;
            stat.split_whitespace().nth(2)?.parse::<u64>().ok()
        })
        .sum()
}

/// Point proxy `link` on `s` at `upstream`.
async fn move_link(s: &Server, upstream: SocketAddr) {
    let moved = authed(
        s,
        "POST",
        "/proxies/link",
        &format!(r#"{{"upstream":"{upstream}"}}"#),
    )
    .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
}

/// Add a toxic (JSON) to proxy `link` on `s`.
async fn add_toxic(s: &Server, toxic: &str) {
    let added = authed(s, "POST", "/proxies/link/toxics", toxic).await;
    assert_eq!(added.status, 200, "{}", added.body);
}

/// Delete toxic `name` of proxy `link` on `s`.
async fn delete_toxic(s: &Server, name: &str) {
    let gone = authed(s, "DELETE", &format!("/proxies/link/toxics/{name}"), "").await;
    assert_eq!(gone.status, 204, "{}", gone.body);
}

/// While a proxy has no toxic its connections' bytes go through the relay
/// threads (`relay-N`); a toxic added later acts on those open
/// connections (busy or idle), bytes stay whole and in order across the
/// change, and removing the proxy closes the connections the relay holds.
#[tokio::test]
async fn toxics_act_on_connections_the_relay_carries() {
    let echo = firedrill_tests::echo_server().await;
    let (s, listen) = serve_link_to(echo, &[]).await;
    let pid = s.child.id();
    let mut busy = TcpStream::connect(&listen).await.unwrap();
    let mut idle = TcpStream::connect(&listen).await.unwrap();
    async fn round_trip(c: &mut TcpStream, what: &[u8]) -> Duration {
        let t = Instant::now();
        c.write_all(what).await.unwrap();
        let mut back = vec![0u8; what.len()];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut back))
            .await
            .expect("an answer through the proxy")
            .unwrap();
        assert_eq!(back, what);
        t.elapsed()
    }
    round_trip(&mut idle, b"hello").await;
    let before = runs_of_threads(pid, "relay-");
    for i in 0..200u32 {
        round_trip(&mut busy, format!("ping {i}").as_bytes()).await;
    }
    let runs = runs_of_threads(pid, "relay-") - before;
    assert!(
        runs >= 100,
        "the relay threads ran {runs} times for 200 round trips"
    );

    add_toxic(
        &s,
        r#"{"name":"slow","type":"latency","stream":"upstream","attributes":{"latency":300}}"#,
    )
    .await;
    let took = round_trip(&mut busy, b"after the toxic").await;
    assert!(
        took >= Duration::from_millis(300),
        "the latency toxic held it {took:?}"
    );
    add_toxic(
        &s,
        r#"{"name":"rst","type":"reset_peer","attributes":{"timeout":0}}"#,
    )
    .await;
    // The idle connection sends nothing: the toxic reaches it all the same.
    let mut buf = [0u8; 8];
    let r = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("the reset reaches an idle connection");
    assert_eq!(
        r.map_err(|e| e.kind()).unwrap_err(),
        std::io::ErrorKind::ConnectionReset
    );
    for name in ["slow", "rst"] {
        delete_toxic(&s, name).await;
    }

    // A short answer and its sender's close come in one go: the close
    // goes through too.
    let short = firedrill_tests::sending_server(5000).await;
    move_link(&s, short).await;
    for _ in 0..20 {
        let mut c = TcpStream::connect(&listen).await.unwrap();
        let mut data = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut data))
            .await
            .expect("the sender's close arrives")
            .unwrap();
        assert_eq!(data.len(), 5000);
    }

    // 4 MB from a sender, read slowly at first (the relay waits on a full
    // socket with bytes in hand), a toxic added in the middle: every byte
    // arrives, in order.
    let sender = firedrill_tests::sending_server(4 << 20).await;
    move_link(&s, sender).await;
    let mut bulk = TcpStream::connect(&listen).await.unwrap();
    let mut got = Vec::with_capacity(4 << 20);
    let mut buf = vec![0u8; 4096];
    while got.len() < 512 << 10 {
        let n = bulk.read(&mut buf).await.unwrap();
        assert!(n > 0, "the sender's bytes end early at {}", got.len());
        got.extend_from_slice(&buf[..n]);
        if got.len() < 64 << 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    add_toxic(
        &s,
        r#"{"name":"lag","type":"latency","stream":"downstream","attributes":{"latency":1}}"#,
    )
    .await;
    tokio::time::timeout(Duration::from_secs(20), bulk.read_to_end(&mut got))
        .await
        .expect("the rest arrives")
        .unwrap();
    assert_eq!(got.len(), 4 << 20);
    assert!(
        got.iter().enumerate().all(|(i, b)| *b == i as u8),
        "bytes out of order or changed"
    );

    // Removing the proxy closes what the relay holds.
    delete_toxic(&s, "lag").await;
    move_link(&s, echo).await;
    let mut other = TcpStream::connect(&listen).await.unwrap();
    round_trip(&mut other, b"last").await;
    let removed = authed(&s, "DELETE", "/proxies/link", "").await;
    assert_eq!(removed.status, 204, "{}", removed.body);
    let r = tokio::time::timeout(Duration::from_secs(5), other.read(&mut buf))
        .await
        .expect("the proxy's removal closes its connections");
    assert!(matches!(r, Ok(0) | Err(_)), "closed: {r:?}");
}
