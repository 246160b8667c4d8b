//! The request-level faults of an HTTP proxy — `http-abort`, `http-modify`,
//! body `bandwidth` — made by a scenario (the `http` guest) and seen by a
//! raw HTTP/1.1 client beside it.

use firedrill::history::RunStatus;
use firedrill::{Engine, EngineBuilder, RunSpec};
use firedrill_tests::Upstream;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a raw client saw: the bytes before the end, and how it ended.
struct Seen {
    bytes: Vec<u8>,
    end: Result<(), ErrorKind>,
    took: Duration,
}

impl Seen {
    fn status(&self) -> Option<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }
    fn head(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        text.split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    }
    fn body(&self) -> &[u8] {
        let at = self
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(self.bytes.len(), |i| i + 4);
        &self.bytes[at..]
    }
}

async fn raw_get(addr: &str, path: &str) -> Seen {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Err(_) => break Err(ErrorKind::TimedOut),
            Ok(Ok(0)) => break Ok(()),
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => break Err(e.kind()),
        }
    };
    Seen {
        bytes,
        end,
        took: t.elapsed(),
    }
}

struct Setup {
    engine: Engine,
    targets: Arc<firedrill::targets::TargetSet>,
    addr: String,
    upstream: Upstream,
}

async fn setup(grant: &str) -> Setup {
    let engine = EngineBuilder::new().build().unwrap();
    let upstream = Upstream::start("t").await;
    let text = format!(
        "[targets.api]\nkind = \"proxy\"\nmode = \"http\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\ngrants = [\"{grant}\"]\n",
        upstream.addr
    );
    let drill = firedrill::Drill::parse(&text, std::path::Path::new("http.toml")).unwrap();
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let addr = targets.get("api").unwrap().address().unwrap();
    Setup {
        engine,
        targets,
        addr,
        upstream,
    }
}

/// Start the `http` guest with `params` (hold 1s unless given), wait until
/// `during` holds for a client request to `path`, return what that client
/// saw and the finished run.
async fn during_run(
    s: &Setup,
    params: &[(&str, &str)],
    path: &str,
    during: impl Fn(&Seen) -> bool,
) -> (Seen, firedrill::history::Run) {
    let mut spec = RunSpec::new(s.engine.load(firedrill_tests::HTTP, "http").unwrap());
    spec.targets = s.targets.clone();
    spec.params = [("hold", "1s"), ("path", "/bytes/*")]
        .iter()
        .chain(params)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let handle = s.engine.start(spec).unwrap();
    let mut seen = None;
    let mut last = String::new();
    for _ in 0..100 {
        let got = raw_get(&s.addr, path).await;
        if during(&got) {
            seen = Some(got);
            break;
        }
        last = format!(
            "{:?} then {:?}",
            String::from_utf8_lossy(&got.bytes),
            got.end
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let run = handle.wait().await;
    assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
    let seen = seen.unwrap_or_else(|| panic!("{params:?}: not seen during the run; last: {last}"));
    (seen, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_abort_closes_or_resets_at_the_request_or_mid_response() {
    let s = setup("http-abort").await;
    let whole = raw_get(&s.addr, "/bytes/1000").await;
    assert_eq!((whole.status(), whole.body().len()), (Some(200), 1000));

    // At the request: no response at all; FIN or RST.
    for (reset, end) in [("false", Ok(())), ("true", Err(ErrorKind::ConnectionReset))] {
        let (seen, _) = during_run(
            &s,
            &[("at", "request"), ("reset", reset)],
            "/bytes/1000",
            |g| g.bytes.is_empty(),
        )
        .await;
        assert_eq!(seen.end, end, "reset={reset}: how the connection ended");
    }
    // Mid-response: the head promises 1000 bytes, half arrive, then the
    // connection ends.
    for (reset, rst) in [("false", false), ("true", true)] {
        let (seen, _) = during_run(
            &s,
            &[("at", "response"), ("reset", reset)],
            "/bytes/1000",
            |g| g.status().is_some() && g.body().len() < 1000,
        )
        .await;
        assert!(
            seen.head().contains("content-length: 1000"),
            "{}",
            seen.head()
        );
        if rst {
            assert!(
                seen.end == Err(ErrorKind::ConnectionReset) || seen.body().len() == 500,
                "reset mid-response: {:?} after {} bytes",
                seen.end,
                seen.body().len()
            );
        } else {
            assert_eq!((seen.end, seen.body().len()), (Ok(()), 500));
        }
    }
    // Unmatched paths pass during a run, and everything passes after.
    let (seen, _) = during_run(&s, &[("at", "request")], "/health", |g| {
        g.status() == Some(200)
    })
    .await;
    assert_eq!(seen.end, Ok(()));
    let after = raw_get(&s.addr, "/bytes/1000").await;
    assert_eq!((after.status(), after.body().len()), (Some(200), 1000));
    s.targets.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_modify_changes_the_response_after_upstream_answered() {
    let s = setup("http-modify").await;
    let (seen, _) = during_run(&s, &[("fault", "modify")], "/bytes/64", |g| {
        g.status() == Some(299)
    })
    .await;
    let head = seen.head();
    assert!(head.contains("x-modified: yes"), "{head}");
    assert!(!head.contains("content-type"), "{head}");
    assert_eq!(seen.body(), b"modified by firedrill");
    assert!(
        s.upstream.seen().iter().any(|r| r.path == "/bytes/64"),
        "the request still reached upstream"
    );
    let after = raw_get(&s.addr, "/bytes/64").await;
    assert_eq!((after.status(), after.body().len()), (Some(200), 64));
    s.targets.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_on_an_http_proxy_throttles_matching_response_bodies() {
    let s = setup("bandwidth").await;
    let fast = raw_get(&s.addr, "/bytes/20000").await;
    assert!(fast.took < Duration::from_millis(300), "{:?}", fast.took);
    // 20 KB at 20 KB/s: about a second.
    let (seen, _) = during_run(
        &s,
        &[("fault", "throttle"), ("value", "20000"), ("hold", "3s")],
        "/bytes/20000",
        |g| g.took > Duration::from_millis(700),
    )
    .await;
    assert_eq!(seen.body().len(), 20000, "throttled, not cut");
    assert!(seen.took < Duration::from_secs(2), "{:?}", seen.took);
    let after = raw_get(&s.addr, "/bytes/20000").await;
    assert!(after.took < Duration::from_millis(300), "{:?}", after.took);
    s.targets.shutdown().await;
}

/// HTTP/2 cleartext and gRPC through an HTTP proxy, with a real tonic client
/// and server (the standard gRPC health service): the client sees the gRPC
/// status that `http-error` and `fail-auth` make, a live stream of calls
/// goes on over one HTTP/2 connection, and SERVING comes back on revert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_clients_see_grpc_statuses_through_an_http_proxy() {
    use firedrill::drivers::proxy::{
        AuthMode, Effect, Proxy, ProxyConfig, ProxyFault, ProxyMode, RequestMatch,
    };
    use tonic::Code;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", tonic_health::ServingStatus::Serving)
        .await;
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let upstream = incoming.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    let proxy = Proxy::start(ProxyConfig {
        name: "grpc".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: upstream.to_string(),
        mode: ProxyMode::Http,
    })
    .await
    .unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", proxy.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let check = async |client: &mut HealthClient<tonic::transport::Channel>| {
        client
            .check(HealthCheckRequest {
                service: "orders".into(),
            })
            .await
            .map(|r| r.into_inner().status)
    };
    assert_eq!(
        check(&mut client).await.unwrap(),
        1,
        "SERVING through the proxy"
    );

    let only_health = RequestMatch {
        path: Some(glob::Pattern::new("/grpc.health.v1.Health/*").unwrap()),
        ..RequestMatch::default()
    };
    for (effect, code, message) in [
        (
            Effect::HttpError {
                status: 503,
                body: "orders are down".into(),
                headers: Vec::new(),
            },
            Code::Unavailable,
            "orders are down",
        ),
        (
            Effect::FailAuth {
                mode: AuthMode::Reject,
                status: 401,
            },
            Code::Unauthenticated,
            "the access token is invalid",
        ),
        (
            Effect::FailAuth {
                mode: AuthMode::Expire,
                status: 401,
            },
            Code::Unauthenticated,
            "the access token expired",
        ),
    ] {
        let key = proxy.add_fault(ProxyFault::new(
            effect.clone(),
            1.0,
            Some(only_health.clone()),
            1,
        ));
        let status = check(&mut client).await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (code, message),
            "{effect}"
        );
        proxy.remove_fault(key);
        assert_eq!(check(&mut client).await.unwrap(), 1, "{effect} reverted");
    }
    proxy.shutdown();
}

/// Faults on an identity provider: an HTTP proxy in front of it with a
/// match on the token endpoint. Its token endpoint answers 503 (with
/// `retry-after`) or hangs past the client's timeout; discovery and every
/// other route answer as usual.
#[tokio::test]
async fn an_identity_providers_token_endpoint_fails_or_times_out_alone() {
    use firedrill::drivers::proxy::{
        Direction, Effect, Proxy, ProxyConfig, ProxyFault, ProxyMode, RequestMatch,
    };
    use firedrill::probe::{HttpProbe, http};
    let idp = Upstream::start("t").await;
    let proxy = Proxy::start(ProxyConfig {
        name: "idp".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: idp.addr.to_string(),
        mode: ProxyMode::Http,
    })
    .await
    .unwrap();
    let addr = proxy.local_addr().to_string();
    let token = |timeout: Duration| {
        let mut p = HttpProbe::get("/oauth/token");
        p.method = "POST".into();
        p.body = b"grant_type=client_credentials".to_vec();
        p.timeout = timeout;
        p
    };
    let discovery = HttpProbe::get("/.well-known/openid-configuration");
    let token_endpoint = RequestMatch {
        method: Some("POST".into()),
        path: Some(glob::Pattern::new("/oauth/token").unwrap()),
        header: None,
    };
    let second = Duration::from_secs(1);
    assert_eq!(http(&addr, &token(second)).await.unwrap().status, 200);

    let key = proxy.add_fault(ProxyFault::new(
        Effect::HttpError {
            status: 503,
            body: r#"{"error":"temporarily_unavailable"}"#.into(),
            headers: vec![("retry-after".into(), "5".into())],
        },
        1.0,
        Some(token_endpoint.clone()),
        1,
    ));
    let failed = http(&addr, &token(second)).await.unwrap();
    assert_eq!(failed.status, 503);
    assert!(
        failed
            .headers
            .iter()
            .any(|(k, v)| k == "retry-after" && v == "5")
    );
    assert_eq!(http(&addr, &discovery).await.unwrap().status, 200);
    proxy.remove_fault(key);

    let key = proxy.add_fault(ProxyFault::new(
        Effect::Delay {
            latency: Duration::from_secs(3),
            jitter: Duration::ZERO,
            direction: Direction::Upstream,
        },
        1.0,
        Some(token_endpoint),
        1,
    ));
    let hung = http(&addr, &token(Duration::from_millis(300))).await;
    assert!(
        hung.as_ref().is_err_and(|e| e.contains("no answer")),
        "{hung:?}"
    );
    let t = std::time::Instant::now();
    assert_eq!(http(&addr, &discovery).await.unwrap().status, 200);
    assert!(t.elapsed() < second, "discovery is not delayed");
    proxy.remove_fault(key);
    assert_eq!(http(&addr, &token(second)).await.unwrap().status, 200);
    proxy.shutdown();
}

/// Issue 14, item 2: reverting an HTTP fault releases what it holds. A
/// request waiting in a 10 s delay, a body paced at 1 KB/s, a response
/// bound to be cut halfway: each goes on at once, whole, once its fault is
/// removed, as bytes held on a TCP proxy are released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_releases_requests_and_bodies_that_http_faults_hold() {
    use firedrill::drivers::proxy::{
        AbortPoint, Direction, Effect, Proxy, ProxyConfig, ProxyFault, ProxyMode,
    };
    let upstream = Upstream::start("t").await;
    let proxy = Proxy::start(ProxyConfig {
        name: "api".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: upstream.addr.to_string(),
        mode: ProxyMode::Http,
    })
    .await
    .unwrap();
    let addr = proxy.local_addr().to_string();
    let fault = |effect| ProxyFault::new(effect, 1.0, None, 7);
    let released_after = async |keys: Vec<u64>, path: &str| {
        let client = tokio::spawn({
            let addr = addr.clone();
            let path = path.to_string();
            async move { raw_get(&addr, &path).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reverted = Instant::now();
        for key in keys {
            assert!(proxy.remove_fault(key));
        }
        let seen = client.await.unwrap();
        (seen, reverted.elapsed())
    };

    for direction in [Direction::Upstream, Direction::Downstream] {
        let key = proxy.add_fault(fault(Effect::Delay {
            latency: Duration::from_secs(10),
            jitter: Duration::ZERO,
            direction,
        }));
        let (seen, after) = released_after(vec![key], "/bytes/100").await;
        assert_eq!((seen.status(), seen.body().len()), (Some(200), 100));
        assert!(
            after < Duration::from_secs(1),
            "{direction:?} delay: the request waited {after:?} after the revert"
        );
    }

    let key = proxy.add_fault(fault(Effect::Bandwidth {
        rate: 1000,
        direction: Direction::Downstream,
    }));
    let (seen, after) = released_after(vec![key], "/bytes/50000").await;
    assert_eq!(seen.body().len(), 50000, "the whole body, not a cut");
    assert!(
        after < Duration::from_secs(1),
        "bandwidth: the body took {after:?} more after the revert (50 s at the fault's rate)"
    );

    // Cut at half the body, which a 2 KB/s pace reaches after ~2.5 s: the
    // abort is reverted first, so the client gets all of it.
    let throttle = proxy.add_fault(fault(Effect::Bandwidth {
        rate: 2000,
        direction: Direction::Downstream,
    }));
    let abort = proxy.add_fault(fault(Effect::HttpAbort {
        at: AbortPoint::Response,
        reset: false,
    }));
    let client = tokio::spawn({
        let addr = addr.clone();
        async move { raw_get(&addr, "/bytes/10000").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(proxy.remove_fault(abort));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(proxy.remove_fault(throttle));
    let seen = client.await.unwrap();
    assert_eq!(
        (seen.end, seen.body().len()),
        (Ok(()), 10000),
        "an abort reverted before its cut point cuts nothing"
    );
    proxy.shutdown();
}

/// curl, keeping one connection for several requests (`--next`), through
/// `firedrill proxy run --mode http` in front of Debian's nginx: a 1 MiB
/// static file behind Basic auth, a wrong password's 401, a HEAD, a POST.
/// With no fault active the HTTP/1.1 fast path relays every byte as nginx
/// wrote it: the files arrive whole, and the headers keep nginx's own
/// spelling (`Server:`, where hyper would write `server:`).
#[test]
fn curl_keeps_one_connection_through_the_fast_path_unchanged() {
    use crate::support::{Nginx, firedrill, free_port};
    let dir = tempfile::tempdir().unwrap();
    let curl = firedrill_tests::debian_program("/usr/bin/curl", &["curl"]);
    let nginx = Nginx::start(&dir.path().join("nginx"));
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("nginx/www/private/big.bin"), &big).unwrap();
    let port = free_port();
    let mut proxy = firedrill(dir.path())
        .args(["proxy", "run", "--mode", "http", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--upstream")
        .arg(format!("127.0.0.1:{}", nginx.port))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the proxy did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let out = |name: &str| dir.path().join(name);
    let run = std::process::Command::new(curl)
        .args(["-sS", "-v", "-u", "ops:s3cret", "-o"])
        .arg(out("big"))
        .arg(url("/private/big.bin"))
        .args(["--next", "-u", "ops:wrong", "-o"])
        .arg(out("refused"))
        .args(["-w", "%{http_code}\n"])
        .arg(url("/private/big.bin"))
        .args(["--next", "-I", "-o"])
        .arg(out("head"))
        .arg(url("/"))
        .args(["--next", "-d", "hello", "-o"])
        .arg(out("posted"))
        .arg(url("/"))
        .output()
        .unwrap();
    let _ = proxy.kill();
    let _ = proxy.wait();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert!(
        std::fs::read(out("big")).unwrap() == big,
        "the file changed on the way"
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "401");
    let head = std::fs::read_to_string(out("head")).unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\nServer: nginx"),
        "{head}"
    );
    assert_eq!(std::fs::read_to_string(out("posted")).unwrap(), "ok\n");
    let reused = log
        .lines()
        .filter(|l| {
            l.to_ascii_lowercase()
                .contains("re-using existing connection")
        })
        .count();
    assert_eq!(reused, 3, "curl kept its connection: {log}");
    assert!(log.contains("< Server: nginx"), "{log}");
}
