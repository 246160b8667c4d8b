//! Server figures for docs/PERFORMANCE.md (issue 17), against the real
//! `firedrill serve` process on loopback:
//!
//! - idle memory (VmRSS) after start;
//! - the catalog page over 1,000 published packages (time to the last
//!   byte, a bound on server time);
//! - a game day's abort: from the referee's request to every fault
//!   reverted (issue 18 asks for 100 ms);
//! - 50 runs launched at once through the API against real proxy targets,
//!   with 200 live viewers on their server-sent events: the time from an
//!   engine event to a viewer (p50/p99), the API's latency under that load
//!   (p50/p99), and whether every run ended in history with nothing left
//!   in effect.
//!
//! Run it with `cargo bench -p firedrill-cli --bench serve` (`-- --quick`:
//! 100 packages; the 50 runs and 200 viewers still, since CI asserts with it
//! that every run ends in history with nothing left in effect).

use serde_json::{Value, json};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms_f() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1e3
}

/// A table row: two percentiles of `v` (ms, `digits` after the point)
/// and how many values.
fn row(label: &str, v: &mut [f64], p: f64, q: f64, digits: usize) {
    let (a, b) = (pct(v, p), pct(v, q));
    println!("| {label} | {a:.digits$} / {b:.digits$} ms | {} |", v.len());
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (packages, runs, viewers) = if quick {
        (100, 50, 200)
    } else {
        (1000, 50, 200)
    };
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_firedrill");
    let fd = || {
        let mut c = Command::new(bin);
        c.env("FIREDRILL_DATA_DIR", &data).stdin(Stdio::null());
        c
    };
    // A registry of many packages with its signed index, trusted.
    let keys = dir.path().join("keys");
    fd().args(["key", "generate", "--out"])
        .arg(&keys)
        .output()?;
    fd().args(["trust", "add"])
        .arg(keys.join("firedrill.pub"))
        .args(["--namespace", "acme"])
        .output()?;
    let wasm = dir.path().join("slow-link.wasm");
    std::fs::write(&wasm, firedrill_tests::SLOW_LINK)?;
    let out = fd()
        .arg("publish")
        .arg(&wasm)
        .args(["--namespace", "acme", "--key"])
        .arg(keys.join("firedrill.key"))
        .output()?;
    anyhow::ensure!(out.status.success(), "publish: {out:?}");
    let registry = data.join("registry");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(registry.join("acme/slow-link/0.1.0.json"))?)?;
    for i in 0..packages {
        let d = registry.join("acme").join(format!("scenario-{i}"));
        std::fs::create_dir_all(&d)?;
        let mut m = meta.clone();
        m["package"] = format!("acme:scenario-{i}@0.1.0").into();
        std::fs::write(d.join("0.1.0.json"), serde_json::to_vec(&m)?)?;
    }
    fd().args(["reindex", "--key"])
        .arg(keys.join("firedrill.key"))
        .output()?;

    let mut child = fd()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut admin, mut addr) = (String::new(), String::new());
    while addr.is_empty() {
        let line = lines.next().unwrap()?;
        if line.trim().starts_with("fdt_") {
            admin = line.trim().to_string();
        }
        if let Some(rest) = line.strip_prefix("firedrill serve: http://") {
            addr = rest.split_whitespace().next().unwrap().to_string();
        }
    }
    std::thread::spawn(move || for _ in lines {});
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);

    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut r = http
            .request(method, format!("{base}{path}"))
            .header("authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    use reqwest::Method;
    call(
        Method::POST,
        "/api/v1/teams",
        &admin,
        Some(json!({"name": "payments"})),
    )
    .await?;
    call(
        Method::POST,
        "/api/v1/users",
        &admin,
        Some(json!({"name": "rita"})),
    )
    .await?;
    call(
        Method::PUT,
        "/api/v1/teams/payments/members/rita",
        &admin,
        Some(json!({"role": "runner"})),
    )
    .await?;
    let runner: Value = call(
        Method::POST,
        "/api/v1/tokens",
        &admin,
        Some(json!({"name": "bench", "user": "rita"})),
    )
    .await?
    .json()
    .await?;
    let runner = runner["token"].as_str().unwrap().to_string();
    let upstream = firedrill_tests::Upstream::start("t").await;
    call(
        Method::PUT,
        "/api/v1/targets/api-link",
        &admin,
        Some(
            json!({"declaration": {"kind": "proxy", "mode": "http", "listen": "127.0.0.1:0",
                                    "upstream": upstream.addr.to_string()}}),
        ),
    )
    .await?;
    call(
        Method::PUT,
        "/api/v1/teams/payments/grants/api-link",
        &admin,
        Some(json!({"kinds": ["delay"]})),
    )
    .await?;

    // The catalog page: the first request syncs the index; then timed.
    let page = call(Method::GET, "/?q=scenario", &admin, None)
        .await?
        .text()
        .await?;
    anyhow::ensure!(
        page.contains("acme:scenario-1@"),
        "the catalog lists the packages"
    );
    let mut catalog = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        call(Method::GET, "/", &admin, None).await?.text().await?;
        catalog.push(t.elapsed().as_secs_f64() * 1e3);
    }

    // Runs at once, viewers on them, API load meanwhile.
    let launch = json!({"scenario": "firedrill:latency-ramp@^0.2",
        "params": {"steps": "100ms,100ms,100ms", "samples": 5, "slo": "60s", "must-tolerate": "0ms", "path": "/"}});
    let mut launched = Vec::new();
    let starts: Vec<_> = (0..runs)
        .map(|_| {
            call(
                Method::POST,
                "/api/v1/teams/payments/runs",
                &runner,
                Some(launch.clone()),
            )
        })
        .collect();
    for r in futures_util::future::join_all(starts).await {
        let v: Value = r?.json().await?;
        let id = v["run"].as_str().unwrap_or_default().to_string();
        anyhow::ensure!(!id.is_empty(), "a launch was refused: {v}");
        launched.push(id);
    }
    let event_lag = Arc::new(Mutex::new(Vec::<f64>::new()));
    let mut tasks = Vec::new();
    for v in 0..viewers {
        let run = launched[v % launched.len()].clone();
        let (http, base, token, lag) = (
            http.clone(),
            base.clone(),
            runner.clone(),
            event_lag.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let view: Value = http
                .get(format!("{base}/api/v1/teams/payments/runs/{run}"))
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await?
                .json()
                .await?;
            let started = view["record"]["started_at"].as_f64().unwrap_or(0.0);
            let mut events = http
                .get(format!("{base}/api/v1/teams/payments/runs/{run}/events"))
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await?;
            let connected = now_ms_f();
            let mut buf = String::new();
            while let Some(chunk) = events.chunk().await? {
                let got = now_ms_f();
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let msg: String = buf.drain(..end + 2).collect();
                    let data: String = msg
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .collect();
                    let Ok(e) = serde_json::from_str::<Value>(data.trim()) else {
                        continue;
                    };
                    let at = started + e["at_us"].as_f64().unwrap_or(0.0) / 1e3;
                    // Only events that happened after this viewer connected
                    // (the rest are the history it is sent first).
                    if at >= connected {
                        lag.lock().unwrap().push(got - at);
                    }
                    if e["status"].is_string() {
                        return Ok::<_, anyhow::Error>(());
                    }
                }
            }
            Ok(())
        }));
    }
    let api_lat = Arc::new(Mutex::new(Vec::<f64>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for c in 0..8 {
        let (http, base, token, lat, stop) = (
            http.clone(),
            base.clone(),
            runner.clone(),
            api_lat.clone(),
            stop.clone(),
        );
        let run = launched[c % launched.len()].clone();
        load.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let r = http
                    .get(format!("{base}/api/v1/teams/payments/runs/{run}"))
                    .header("authorization", format!("Bearer {token}"))
                    .send()
                    .await;
                if let Ok(r) = r {
                    let _ = r.bytes().await;
                    lat.lock().unwrap().push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        l.await?;
    }
    // Every run in history, ended, nothing in effect.
    let mut ended = 0;
    for run in &launched {
        let v: Value = call(
            Method::GET,
            &format!("/api/v1/teams/payments/runs/{run}"),
            &runner,
            None,
        )
        .await?
        .json()
        .await?;
        if v["record"]["status"] == "passed" {
            ended += 1;
        }
    }
    // Halt: from the request to the fault's revert in the run's timeline
    // (`started_at + at_us`, the same clock), over long runs, one at a time.
    let long = json!({"scenario": "firedrill:latency-ramp@^0.2",
        "params": {"steps": "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms", "samples": 10,
                   "slo": "60s", "must-tolerate": "0ms", "path": "/"}});
    // Once `run` has ended (after a halt): its last revert, Unix ms on the
    // run's own clock.
    let last_revert = async |run: &str| -> anyhow::Result<f64> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let view: Value = call(
                Method::GET,
                &format!("/api/v1/teams/payments/runs/{run}"),
                &runner,
                None,
            )
            .await?
            .json()
            .await?;
            if view["record"]["ended_at"].is_number() {
                let started = view["record"]["started_at"].as_f64().unwrap_or(0.0);
                let reverted = view["timeline"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| e["event"] == "fault-reverted")
                    .filter_map(|e| e["at_us"].as_f64())
                    .map(|us| started + us / 1e3)
                    .fold(f64::NAN, f64::max);
                anyhow::ensure!(reverted.is_finite(), "no revert in run {run}'s timeline");
                return Ok(reverted);
            }
            anyhow::ensure!(
                Instant::now() < until,
                "run {run} did not end after its halt"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Launch a long run; its id.
    let launch_long = async || -> anyhow::Result<String> {
        let v: Value = call(
            Method::POST,
            "/api/v1/teams/payments/runs",
            &runner,
            Some(long.clone()),
        )
        .await?
        .json()
        .await?;
        Ok(v["run"].as_str().unwrap_or_default().to_string())
    };
    let mut halt_ms = Vec::new();
    for _ in 0..10 {
        let run = launch_long().await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = now_ms_f();
        call(
            Method::POST,
            &format!("/api/v1/teams/payments/runs/{run}/halt"),
            &runner,
            None,
        )
        .await?;
        halt_ms.push(last_revert(&run).await? - sent);
    }
    // Halt all: five long runs at once, the admin's halt-all, until the
    // last of their faults is reverted; then resume. Five trials.
    let mut halt_all_ms = Vec::new();
    for _ in 0..5 {
        let mut runs = Vec::new();
        for _ in 0..5 {
            runs.push(launch_long().await?);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = now_ms_f();
        call(Method::POST, "/api/v1/halt", &admin, Some(json!({}))).await?;
        let mut last = f64::NAN;
        for run in &runs {
            last = last.max(last_revert(run).await?);
        }
        halt_all_ms.push(last - sent);
        call(Method::POST, "/api/v1/resume", &admin, Some(json!({}))).await?;
    }
    // Game day abort: a referee's abort, from the request to every fault
    // reverted (the ledger's revert in the game day's timeline, and the
    // server's own `reverted_in_ms`, the time before it answered).
    call(
        Method::POST,
        "/api/v1/teams",
        &admin,
        Some(json!({"name": "chaos"})),
    )
    .await?;
    call(
        Method::POST,
        "/api/v1/users",
        &admin,
        Some(json!({"name": "vera"})),
    )
    .await?;
    call(
        Method::PUT,
        "/api/v1/teams/chaos/members/vera",
        &admin,
        Some(json!({"role": "runner"})),
    )
    .await?;
    call(
        Method::PUT,
        "/api/v1/teams/chaos/grants/api-link",
        &admin,
        Some(json!({"kinds": ["delay"]})),
    )
    .await?;
    let villain: Value = call(
        Method::POST,
        "/api/v1/tokens",
        &admin,
        Some(json!({"name": "bench", "user": "vera"})),
    )
    .await?
    .json()
    .await?;
    let villain = villain["token"].as_str().unwrap().to_string();
    let (mut abort_ms, mut abort_server_ms) = (Vec::new(), Vec::new());
    for i in 0..if quick { 3 } else { 10 } {
        let gd: Value = call(
            Method::POST,
            "/api/v1/gamedays",
            &villain,
            Some(json!({
                "name": format!("abort {i}"), "villains": "chaos", "referee": "admin",
                "responders": ["payments"],
                "plan": {"steps": [{"scenario": "firedrill:latency-ramp@^0.2", "params": {
                    "link": "api-link", "steps": "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms",
                    "samples": 10, "slo": "60s", "must-tolerate": "0ms", "path": "/"}}],
                    "max_duration": "2m"},
            })),
        )
        .await?
        .json()
        .await?;
        let id = gd["id"].as_str().unwrap_or_default().to_string();
        anyhow::ensure!(!id.is_empty(), "a game day was refused: {gd}");
        let path = format!("/api/v1/gamedays/{id}");
        call(Method::POST, &format!("{path}/start"), &admin, None).await?;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let v: Value = call(Method::GET, &path, &admin, None).await?.json().await?;
            if v["first_fault_at"].is_number() {
                break;
            }
            anyhow::ensure!(Instant::now() < until, "game day {id} applied no fault");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = now_ms_f();
        let v: Value = call(Method::POST, &format!("{path}/abort"), &admin, None)
            .await?
            .json()
            .await?;
        abort_server_ms.push(v["reverted_in_ms"].as_f64().unwrap_or(f64::NAN));
        let reverted = v["timeline"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["kind"] == "fault-reverted")
            .filter_map(|l| l["at"].as_f64())
            .fold(f64::NAN, f64::max);
        anyhow::ensure!(
            reverted.is_finite(),
            "no revert in game day {id}'s timeline: {v}"
        );
        abort_ms.push(reverted - sent);
    }
    let metrics = call(Method::GET, "/metrics", &admin, None)
        .await?
        .text()
        .await?;
    let clean = metrics.contains("firedrill_server_active_faults 0")
        && metrics.contains("firedrill_server_gamedays_active 0");
    let _ = child.kill();
    let _ = child.wait();

    let mut lag = event_lag.lock().unwrap().clone();
    let mut api = api_lat.lock().unwrap().clone();
    println!("| figure | value | n |");
    println!("|---|---|---|");
    println!(
        "| `firedrill serve` idle memory (VmRSS after start) | {:.1} MiB | 1 |",
        rss_kib as f64 / 1024.0
    );
    row(
        &format!("catalog page over {packages} packages, time to last byte (p50 / p99)"),
        &mut catalog,
        0.5,
        0.99,
        1,
    );
    row(
        &format!("engine event → a live viewer, {runs} runs, {viewers} viewers (p50 / p99)"),
        &mut lag,
        0.5,
        0.99,
        1,
    );
    row(
        "API `GET /api/v1/teams/{team}/runs/{run}` under that load, 8 clients (p50 / p99)",
        &mut api,
        0.5,
        0.99,
        1,
    );
    row(
        "Halt (API) → the fault reverted, one run at a time (p50 / max)",
        &mut halt_ms,
        0.5,
        1.0,
        1,
    );
    row(
        "Halt all (API), 5 runs at once → the last of their faults reverted (p50 / max of 5 trials)",
        &mut halt_all_ms,
        0.5,
        1.0,
        1,
    );
    row(
        "Game day abort (API) → every fault reverted, ledger time (p50 / max)",
        &mut abort_ms,
        0.5,
        1.0,
        1,
    );
    row(
        "Game day abort, the server's `reverted_in_ms` before it answers (p50 / max)",
        &mut abort_server_ms,
        0.5,
        1.0,
        0,
    );
    println!(
        "| runs launched at once that passed and are in history | {ended} of {runs} | {runs} |"
    );
    println!(
        "| faults in effect after the last run | {} | 1 |",
        if clean { "none" } else { "SOME" }
    );
    anyhow::ensure!(ended == runs && clean, "runs lost or faults left");
    Ok(())
}
