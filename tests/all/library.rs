//! The scenario library (`scenarios/`, bundled) against real third-party
//! services, probed in their own protocols.

use crate::support::*;
use std::io::{Read, Write};

use crate::support::text;

/// A real client's `PING` to Redis at `addr`.
fn redis_ping(addr: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let mut buf = [0u8; 64];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// `dependency-outage` against Debian's redis-server behind a TCP proxy,
/// probed with Redis's own `PING`/`+PONG`: in `refuse` and `blackhole`
/// mode the probe sees the outage, Redis answers again after it, and the
/// recovery time is measured; the engine stops its Redis at the end.
#[test]
fn dependency_outage_cuts_off_a_real_redis_and_measures_its_return() {
    let redis = firedrill_tests::debian_program("/usr/bin/redis-server", &["redis-server"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let drill = dir.path().join("drill.toml");
    std::fs::write(
        &drill,
        format!(
            r#"[scenario]
bundled = "dependency-outage"
params = {{ link = "redis-link", probe = "exchange", send = "PING\r\n", expect = "+PONG", outage = "1s", interval = "200ms", probe_timeout = "300ms" }}

[targets.redis]
kind = "process"
command = "{}"
args = ["--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
address = "127.0.0.1:{port}"
ready = {{ tcp = true }}

[targets.redis-link]
kind = "proxy"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{port}"
grants = ["refuse", "blackhole"]
"#,
            redis.display()
        ),
    )
    .unwrap();
    for mode in ["refuse", "blackhole"] {
        let o = firedrill(&data)
            .arg("run")
            .arg(&drill)
            .args(["--param", &format!("mode={mode}")])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", text(&o));
        let t = text(&o);
        assert!(t.contains(&format!("{mode} outage of `redis-link`")), "{t}");
        assert!(t.contains("recovery-time"), "{t}");
        assert!(!t.contains("did not reach the probe"), "{t}");
        let shown = text(&firedrill(&data).arg("show").output().unwrap());
        assert!(shown.contains("outage-seen"), "{shown}");
        assert!(
            shown.contains("probes.tcp-exchange(") && shown.contains("expect=+PONG"),
            "{shown}"
        );
    }
    // The proxy is gone with the run; Redis itself was stopped by the
    // engine at the end of the run (a spawned target).
    assert!(!redis_ping(&format!("127.0.0.1:{port}")));
}

/// A drill running the bundled `scenario` with `params` (TOML inline-table
/// entries) against a Debian redis-server (`redis`, spawned) behind a TCP
/// proxy (`redis-link`), both granted every fault these scenarios use.
fn redis_drill(dir: &std::path::Path, scenario: &str, params: &str) -> std::path::PathBuf {
    redis_drill_restarting(dir, scenario, params, "never")
}

/// [`redis_drill`] with Redis under the `restart` policy.
fn redis_drill_restarting(
    dir: &std::path::Path,
    scenario: &str,
    params: &str,
    restart: &str,
) -> std::path::PathBuf {
    let redis = firedrill_tests::debian_program("/usr/bin/redis-server", &["redis-server"]);
    let port = free_port();
    let drill = dir.join(format!("{scenario}.toml"));
    std::fs::write(
        &drill,
        format!(
            r#"[scenario]
bundled = "{scenario}"
params = {{ probe = "exchange", send = "PING\r\n", expect = "+PONG", probe_timeout = "300ms", {params} }}

[targets.redis]
kind = "process"
command = "{}"
args = ["--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
address = "127.0.0.1:{port}"
ready = {{ tcp = true }}
restart = "{restart}"
grants = ["pause", "restart", "kill"]

[targets.redis-link]
kind = "proxy"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{port}"
grants = ["reset-peer", "timeout", "delay"]
"#,
            redis.display()
        ),
    )
    .unwrap();
    drill
}

fn run_ok(data: &std::path::Path, drill: &std::path::Path) -> (String, String) {
    let o = firedrill(data).arg("run").arg(drill).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}: {}",
        drill.display(),
        text(&o)
    );
    let shown = text(&firedrill(data).arg("show").output().unwrap());
    (text(&o), shown)
}

/// `hung-dependency` pauses a real Redis: the PING probe times out while
/// it hangs and answers again after; `restart-under-load` restarts it and
/// measures the downtime; `flaky-link` resets every connection through its
/// proxy and counts the failed probes, within a budget of 100%, and fails
/// the run when the budget is smaller than what it saw.
#[test]
fn the_library_hangs_restarts_and_flakes_a_real_redis() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let drill = redis_drill(
        dir.path(),
        "hung-dependency",
        r#"service = "redis", hold = "1s", interval = "100ms""#,
    );
    let (out, shown) = run_ok(&data, &drill);
    assert!(out.contains("answered again"), "{out}");
    assert!(shown.contains("unhealthy"), "the hang was seen: {shown}");
    assert!(shown.contains("fault 0 applied: pause on redis"), "{shown}");

    let drill = redis_drill(
        dir.path(),
        "restart-under-load",
        r#"service = "redis", restarts = "2", between = "300ms", interval = "100ms""#,
    );
    let (out, shown) = run_ok(&data, &drill);
    assert!(out.contains("2 restart(s) of `redis`"), "{out}");
    // The summary says what happened: a restart has nothing to revert.
    assert!(
        out.contains("2 delivered at once (restart), nothing to revert"),
        "{out}"
    );
    assert!(out.contains("max-downtime"), "{out}");
    assert_eq!(shown.matches("restart 1: healthy").count(), 1, "{shown}");

    let drill = redis_drill(
        dir.path(),
        "flaky-link",
        r#"link = "redis-link", probability = "1.0", duration = "1s", interval = "100ms""#,
    );
    let (out, _) = run_ok(&data, &drill);
    assert!(
        out.contains("100% of") && out.contains("probes failed"),
        "{out}"
    );
    let drill = redis_drill(
        dir.path(),
        "flaky-link",
        r#"link = "redis-link", probability = "1.0", duration = "1s", max_failure_percent = "10", interval = "100ms""#,
    );
    let o = firedrill(&data).arg("run").arg(&drill).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("the budget is 10%"), "{}", text(&o));
}

/// The two demo scenarios work on a service that is not HTTP:
/// `kill-and-recover` SIGKILLs a real Redis (restarted by the engine's
/// supervisor) and measures how long until it answers `PING` again;
/// `latency-ramp` delays Redis's answers through its proxy step by step
/// and finds the step where the PING p50 breaks the objective.
#[test]
fn kill_and_recover_and_latency_ramp_on_a_real_redis() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let drill = redis_drill_restarting(
        dir.path(),
        "kill-and-recover",
        r#"target = "redis", probe_target = "redis", poll = "20ms", max-recovery = "5s""#,
        "on-failure",
    );
    let (out, shown) = run_ok(&data, &drill);
    assert!(out.contains("redis recovered"), "{out}");
    assert!(
        out.contains("1 delivered at once (kill), nothing to revert"),
        "a kill is not counted as reverted: {out}"
    );
    assert!(out.contains("recovery-time"), "{out}");
    assert!(shown.contains("fault 0 applied: kill on redis"), "{shown}");
    assert!(
        shown.contains("probes.tcp-exchange(") && shown.contains("expect=+PONG"),
        "probed in Redis's protocol: {shown}"
    );
    let down: f64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("measured down-probes = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no down-probes in {out}"));
    assert!(down >= 1.0, "the probe saw Redis down after SIGKILL: {out}");

    let drill = redis_drill(
        dir.path(),
        "latency-ramp",
        r#"link = "redis-link", steps = "20ms,150ms", slo = "100ms", must-tolerate = "10ms", samples = "3""#,
    );
    let (out, shown) = run_ok(&data, &drill);
    assert!(out.contains("at 150ms of added latency"), "{out}");
    assert!(
        shown.contains("fault 1 applied: delay on redis-link"),
        "{shown}"
    );
    let p50 = |step: &str| -> f64 {
        out.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("measured p50-at-{step}ms = "))
            })
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no p50 at {step} ms in {out}"))
    };
    assert!((20.0..100.0).contains(&p50("20")), "{out}");
    assert!(p50("150") >= 150.0, "{out}");

    // A TCP connect cannot see a delay on the answers: refused, named.
    let drill = redis_drill(dir.path(), "latency-ramp", r#"link = "redis-link""#);
    let o = firedrill(&data)
        .arg("run")
        .arg(&drill)
        .args(["--param", "probe=tcp"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("`tcp` measures the connect"),
        "{}",
        text(&o)
    );
}

/// `http-error-storm` in front of Debian's nginx: every matching request
/// is answered 503 by the proxy during the storm, requests outside the
/// match reach nginx, and nginx answers again after it.
#[test]
fn http_error_storm_in_front_of_a_real_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let (nginx, args) = firedrill_tests::nginx(dir.path(), port);
    let drill = dir.path().join("storm.toml");
    std::fs::write(
        &drill,
        format!(
            r#"[scenario]
bundled = "http-error-storm"
params = {{ link = "web-link", probability = "1.0", match_path = "/api", path = "/api/orders", duration = "1s", interval = "100ms" }}

[targets.web]
kind = "process"
command = "{}"
args = {args:?}
address = "127.0.0.1:{port}"
ready = {{ http = "/" }}

[targets.web-link]
kind = "proxy"
mode = "http"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{port}"
grants = ["http-error"]

[[steady_state]]
name = "pages outside the match still reach nginx"
target = "web-link"
http = "/index"
status = 200
phases = ["during"]
"#,
            nginx.display()
        ),
    )
    .unwrap();
    let (out, shown) = run_ok(&data, &drill);
    assert!(out.contains("100% of") && out.contains("got 503"), "{out}");
    assert!(shown.contains("status 503"), "{shown}");
}

/// `auth-outage` with HTTP Basic in front of Debian's nginx and its own
/// `auth_basic`: in every mode the proxy or nginx refuses the requests
/// during the outage (a `Basic` challenge from the proxy in `reject` and
/// `expire`; nginx's own 401 for stripped or corrupted credentials), and
/// nginx serves the private page again after it. The password is masked.
#[test]
fn auth_outage_with_basic_auth_against_a_real_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let (nginx, args) = firedrill_tests::nginx(dir.path(), port);
    let drill = dir.path().join("basic.toml");
    std::fs::write(
        &drill,
        format!(
            r#"[scenario]
bundled = "auth-outage"
params = {{ api = "web-link", scheme = "basic", user = "ops", password = "s3cret", path = "/private/", outage = "300ms", samples = "3" }}

[targets.web]
kind = "process"
command = "{}"
args = {args:?}
address = "127.0.0.1:{port}"
ready = {{ http = "/" }}

[targets.web-link]
kind = "proxy"
mode = "http"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{port}"
grants = ["fail-auth"]
"#,
            nginx.display()
        ),
    )
    .unwrap();
    for mode in ["reject", "strip", "corrupt", "expire"] {
        let o = firedrill(&data)
            .arg("run")
            .arg(&drill)
            .args(["--param", &format!("mode={mode}")])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", text(&o));
        assert!(
            text(&o).contains("all 3 requests rejected"),
            "{mode}: {}",
            text(&o)
        );
        assert!(
            !text(&o).contains("rejection without WWW-Authenticate"),
            "{}",
            text(&o)
        );
        let shown = text(&firedrill(&data).arg("show").output().unwrap());
        assert!(shown.contains("password=********"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
    // Without credentials nginx itself refuses: the scenario sees that
    // before any fault and fails.
    let o = firedrill(&data)
        .arg("run")
        .arg(&drill)
        .args(["--param", "password=wrong"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("did not serve before the outage"),
        "{}",
        text(&o)
    );
}

fn scenarios_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// A drill running `wasm` against Debian's nginx (`web`, spawned, granted
/// `web_grants`) behind a proxy `web-link` (`mode`, granted `grants`), with
/// `params`, and `extra`.
#[allow(clippy::too_many_arguments)]
fn nginx_drill(
    dir: &std::path::Path,
    name: &str,
    wasm: &[u8],
    mode: &str,
    grants: &str,
    web_grants: &str,
    params: &str,
    extra: &str,
) -> std::path::PathBuf {
    let port = free_port();
    let prefix = dir.join(format!("nginx-{name}"));
    let (nginx, args) = firedrill_tests::nginx(&prefix, port);
    std::fs::write(dir.join(format!("{name}.wasm")), wasm).unwrap();
    let drill = dir.join(format!("{name}.toml"));
    std::fs::write(
        &drill,
        format!(
            r#"[scenario]
path = "{name}.wasm"
params = {{ {params} }}

[targets.web]
kind = "process"
command = "{}"
args = {args:?}
address = "127.0.0.1:{port}"
ready = {{ http = "/" }}
grants = [{web_grants}]

[targets.web-link]
kind = "proxy"
mode = "{mode}"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{port}"
grants = [{grants}]
{extra}"#,
            nginx.display()
        ),
    )
    .unwrap();
    drill
}

/// The library's Python scenarios, built with componentize-py and the
/// Python SDK: `idp-outage` fails nginx's `/token` through an HTTP proxy
/// (errors, then resets) while its other paths keep answering, and sees it
/// recover; `resource-pressure` keeps a core busy while nginx is probed.
#[test]
fn the_python_library_scenarios_against_a_real_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let idp =
        firedrill_tests::toolchains::python(&scenarios_dir().join("python/idp_outage"), false);
    let during = "\n[[steady_state]]\nname = \"discovery still answers\"\ntarget = \"web-link\"\nhttp = \"/.well-known/openid-configuration\"\nstatus = 200\nphases = [\"during\"]\n";
    for mode in ["error", "reset"] {
        let drill = nginx_drill(
            dir.path(),
            &format!("idp-{mode}"),
            &idp,
            "http",
            r#""http-error", "http-abort""#,
            "",
            &format!(
                r#"idp = "web-link", mode = "{mode}", path = "/token", duration = "1s", interval = "100ms", probe_timeout = "500ms""#
            ),
            during,
        );
        let (out, shown) = run_ok(&data, &drill);
        assert!(out.contains("probes failed while /token"), "{mode}: {out}");
        assert!(!out.contains("did not reach the probe"), "{mode}: {out}");
        assert!(shown.contains("unhealthy"), "{shown}");
    }

    let pressure = firedrill_tests::toolchains::python(
        &scenarios_dir().join("python/resource_pressure"),
        false,
    );
    let drill = nginx_drill(
        dir.path(),
        "pressure",
        &pressure,
        "http",
        "",
        "",
        r#"host = "machine", load = "cpu", cores = "1", percent = "50", duration = "1s", probe_target = "web-link", path = "/", max_latency = "2s""#,
        "\n[targets.machine]\nkind = \"host\"\ngrants = [\"cpu-stress\"]\n",
    );
    let (out, shown) = run_ok(&data, &drill);
    assert!(out.contains("held up under cpu pressure"), "{out}");
    assert!(shown.contains("cpu-stress on machine"), "{shown}");
}

/// The library's JavaScript scenarios, built with componentize-js and the
/// JS SDK: `bandwidth-squeeze` slows nginx's answers through a TCP proxy to
/// 2,000 B/s (the slowest probe shows it); `connection-churn` holds closes
/// and resets half the connections, and nginx is healthy after.
#[test]
fn the_javascript_library_scenarios_against_a_real_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let squeeze =
        firedrill_tests::toolchains::javascript(&scenarios_dir().join("js/bandwidth-squeeze.js"));
    let drill = nginx_drill(
        dir.path(),
        "squeeze",
        &squeeze,
        "tcp",
        r#""bandwidth""#,
        "",
        r#"link = "web-link", bytes_per_second = "2000", duration = "1s", path = "/""#,
        "",
    );
    let (out, _) = run_ok(&data, &drill);
    assert!(out.contains("held up at 2000 B/s"), "{out}");
    let slowest: f64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("measured slowest-probe = "))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no slowest-probe in {out}"));
    assert!(
        slowest >= 20.0,
        "a ~150-byte answer at 2000 B/s takes tens of ms: {slowest}"
    );

    let churn =
        firedrill_tests::toolchains::javascript(&scenarios_dir().join("js/connection-churn.js"));
    let drill = nginx_drill(
        dir.path(),
        "churn",
        &churn,
        "tcp",
        r#""slow-close", "reset-peer""#,
        "",
        r#"link = "web-link", probability = "0.5", duration = "1s", close_delay = "500ms", path = "/""#,
        "",
    );
    let (out, _) = run_ok(&data, &drill);
    assert!(
        out.contains("new connections failed during the churn"),
        "{out}"
    );
}

/// `bad-day` on Debian's nginx: latency, then a 503 storm on half the
/// requests, then nginx itself hung, each seen by the probe in its layer;
/// nginx serves again after the day.
#[test]
fn bad_day_layers_faults_on_a_real_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let drill = nginx_drill(
        dir.path(),
        "bad-day",
        firedrill::bundled::get("bad-day").unwrap(),
        "http",
        r#""delay", "http-error""#,
        r#""pause""#,
        r#"link = "web-link", dependency = "web", path = "/", latency = "50ms", jitter = "10ms", error_rate = "1.0", hang = "600ms", stagger = "600ms", duration = "2s", interval = "100ms", probe_timeout = "300ms""#,
        "",
    );
    let (out, shown) = run_ok(&data, &drill);
    assert!(out.contains("probes failed over the bad day"), "{out}");
    let measured = |name: &str| -> f64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("measured {name} = ")))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    assert_eq!(measured("failed-with-latency"), 0.0, "{out}");
    assert!(measured("failed-with-errors") > 0.0, "{out}");
    assert_eq!(measured("failed-with-hang"), 100.0, "{out}");
    for layer in ["1: latency", "2: errors", "3: hung dependency"] {
        assert!(shown.contains(layer), "{shown}");
    }
}
