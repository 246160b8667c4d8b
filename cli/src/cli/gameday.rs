//! `firedrill gameday`: responders report to a game day on a `firedrill
//! serve` (`report`), read it (`show`), and `demo` runs a whole drill on
//! this machine: the demo service behind a proxy, a villain's plan with
//! a hidden start, a scripted responder that notices, finds the paused
//! process and resumes it, the checks confirming the restore, the reveal
//! and the review.

use super::remote::TOKEN_ENV;
use super::{Exit, Failure, usage};
use firedrill_server::platform::{Platform, router, store::PlatformStore};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Report to a game day as a responder: detected, mitigated or restored
    Report(ReportArgs),
    /// Show a game day as your seat sees it (JSON)
    Show(ShowArgs),
    /// Run a whole game day here: a hidden start, a scripted responder, the reveal and the review
    Demo(DemoArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// The server (`http://HOST:PORT`); the API token is read from FIREDRILL_TOKEN
    #[arg(long)]
    server: String,
    /// The game day's id (`gd-…`)
    gameday: String,
    /// detected, mitigated or restored
    kind: String,
    /// How you noticed: the alert's name, a dashboard, a user report (needed for `detected`)
    #[arg(long, default_value = "")]
    source: String,
    /// The target you suspect
    #[arg(long, default_value = "")]
    target: String,
    /// The kind of fault you suspect (delay, pause, kill, …)
    #[arg(long, default_value = "")]
    fault: String,
    /// Anything else
    #[arg(long, default_value = "")]
    text: String,
    /// Your responder team, if you are in more than one
    #[arg(long, default_value = "")]
    team: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The server (`http://HOST:PORT`); the API token is read from FIREDRILL_TOKEN
    #[arg(long)]
    server: String,
    /// The game day's id (`gd-…`)
    gameday: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// How long the villain's fault lasts
    #[arg(long, default_value = "8s")]
    hold: humantime::Duration,
}

pub(crate) async fn run(c: Command, data_dir: &Path) -> Result<Exit, Failure> {
    match c {
        Command::Report(a) => report(a).await,
        Command::Show(a) => show(a).await,
        Command::Demo(a) => demo(a, data_dir).await,
    }
}

fn token() -> Result<String, Failure> {
    std::env::var(TOKEN_ENV).map_err(|_| {
        usage(format!(
            "the server needs your API token in {TOKEN_ENV} (make one: POST /api/v1/tokens)"
        ))
    })
}

/// A call to a `firedrill serve`: the answer's JSON, or the server's error.
async fn call(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Failure> {
    let mut req = client
        .request(
            method.clone(),
            format!("{}{path}", base.trim_end_matches('/')),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let answer = req.send().await.map_err(|e| {
        usage(format!(
            "--server {base}: {e}; is `firedrill serve` running there?"
        ))
    })?;
    let status = answer.status();
    let v: Value = answer.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(usage(format!(
            "{method} {path}: {status}: {}",
            v["error"].as_str().unwrap_or("no explanation")
        )));
    }
    Ok(v)
}

async fn report(a: ReportArgs) -> Result<Exit, Failure> {
    let token = token()?;
    let client = reqwest::Client::new();
    let v = call(
        &client,
        &a.server,
        &token,
        reqwest::Method::POST,
        &format!("/api/v1/gamedays/{}/reports", a.gameday),
        Some(json!({
            "kind": a.kind, "source": a.source, "target": a.target,
            "fault": a.fault, "text": a.text, "team": a.team,
        })),
    )
    .await?;
    println!(
        "reported {} to game day {} for team {}",
        a.kind,
        a.gameday,
        v["reported"]["team"].as_str().unwrap_or("?")
    );
    if let Some(note) = v["note"].as_str() {
        println!("{note}");
    }
    Ok(Exit::Pass)
}

async fn show(a: ShowArgs) -> Result<Exit, Failure> {
    let token = token()?;
    let v = call(
        &reqwest::Client::new(),
        &a.server,
        &token,
        reqwest::Method::GET,
        &format!("/api/v1/gamedays/{}", a.gameday),
        None,
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(Exit::Pass)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether `pid` is stopped (`T` in /proc), as a responder finds it.
fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('T'))
        })
        .unwrap_or(false)
}

fn ms(v: &Value) -> String {
    v.as_u64()
        .map_or("—".into(), |ms| format!("{:.1} s", ms as f64 / 1e3))
}

async fn demo(a: DemoArgs, data_dir: &Path) -> Result<Exit, Failure> {
    let hold: Duration = a.hold.into();
    let dir = data_dir.join("gameday-demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    println!(
        "firedrill gameday demo: a whole game day on this machine (data in {})",
        dir.display()
    );

    // The platform, in this process, on a loopback port.
    let engine = super::open_engine_for(&dir, true, 16)?;
    let store = PlatformStore::open(&dir).map_err(usage)?;
    let platform = Platform::new(engine, dir.clone(), store);
    let admin = platform
        .bootstrap()
        .map_err(usage)?
        .ok_or_else(|| usage("the demo's data dir was not fresh"))?
        .token;
    platform.start_scheduler();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app =
        router(platform.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // The service the responders own: the demo service, behind a proxy.
    let (app_port, shop_port) = (free_port()?, free_port()?);
    let mut service = std::process::Command::new(std::env::current_exe()?)
        .args(["demo-service", "--listen", &format!("127.0.0.1:{app_port}")])
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let pid = service.id();
    let pid_file = dir.join("shop.pid");
    std::fs::write(&pid_file, format!("{pid}\n"))?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", app_port)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = service.kill();
            return Err(usage("the demo service did not start"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let result = drill(&base, &admin, pid, &pid_file, app_port, shop_port, hold).await;
    platform.shutdown().await;
    server.abort();
    let _ = service.kill();
    let _ = service.wait();
    result
}

async fn drill(
    base: &str,
    admin: &str,
    pid: u32,
    pid_file: &Path,
    app_port: u16,
    shop_port: u16,
    hold: Duration,
) -> Result<Exit, Failure> {
    use reqwest::Method;
    let client = reqwest::Client::new();
    let c = |token: &str, method: Method, path: &str, body: Option<Value>| {
        let (client, token, path) = (client.clone(), token.to_string(), path.to_string());
        async move { call(&client, base, &token, method, &path, body).await }
    };
    // The admin: two teams, three people, the service's targets, and the
    // villains' blast radius.
    for team in ["villains", "shop-team"] {
        c(
            admin,
            Method::POST,
            "/api/v1/teams",
            Some(json!({"name": team})),
        )
        .await?;
    }
    let mut tokens = std::collections::BTreeMap::new();
    for (user, team) in [
        ("vi", Some(("villains", "runner"))),
        ("ref", None),
        ("sam", Some(("shop-team", "runner"))),
    ] {
        c(
            admin,
            Method::POST,
            "/api/v1/users",
            Some(json!({"name": user})),
        )
        .await?;
        if let Some((team, role)) = team {
            c(
                admin,
                Method::PUT,
                &format!("/api/v1/teams/{team}/members/{user}"),
                Some(json!({"role": role})),
            )
            .await?;
        }
        let t = c(
            admin,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "demo", "user": user})),
        )
        .await?;
        tokens.insert(user, t["token"].as_str().unwrap_or_default().to_string());
    }
    let (vi, referee, sam) = (&tokens["vi"], &tokens["ref"], &tokens["sam"]);
    c(admin, Method::PUT, "/api/v1/targets/shop-app", Some(json!({"declaration": {
        "kind": "process", "pid_file": pid_file.display().to_string(), "address": format!("127.0.0.1:{app_port}"),
    }}))).await?;
    c(admin, Method::PUT, "/api/v1/targets/shop", Some(json!({"declaration": {
        "kind": "proxy", "mode": "http", "listen": format!("127.0.0.1:{shop_port}"), "upstream": format!("127.0.0.1:{app_port}"),
    }}))).await?;
    c(
        admin,
        Method::PUT,
        "/api/v1/teams/villains/grants/shop-app",
        Some(json!({"kinds": ["pause"]})),
    )
    .await?;
    println!(
        "  the shop: demo service pid {pid} on 127.0.0.1:{app_port}, reached through the proxy `shop` on 127.0.0.1:{shop_port}"
    );

    // The villain's sealed plan.
    let gd = c(vi, Method::POST, "/api/v1/gamedays", Some(json!({
        "name": "The shop hangs", "villains": "villains", "referee": "ref", "responders": ["shop-team"],
        "plan": {
            "steps": [{"scenario": "firedrill:hung-dependency", "params": {
                "service": "shop-app", "hold": humantime::format_duration(hold).to_string(),
                "probe_target": "shop", "path": "/health", "interval": "250ms", "probe_timeout": "300ms",
                "recover_within": "20s"}}],
            "start_earliest": "1s", "start_latest": "4s", "max_duration": "2m",
            "guardrails": [{"name": "the shop answers", "target": "shop", "http": "/health",
                            "max_latency": "300ms", "abort_after": "1m"}],
            "restore_hold": "1s",
            "expected": {"signals": ["the health poll"], "cause_target": "shop-app", "cause_fault": "pause",
                         "notes": "the shop's process hangs; the proxy keeps accepting"},
        },
    }))).await?;
    let id = gd["id"].as_str().unwrap_or_default().to_string();
    println!(
        "  villain vi wrote game day {id} (sealed): responders see only that a drill is active"
    );
    c(
        referee,
        Method::POST,
        &format!("/api/v1/gamedays/{id}/start"),
        None,
    )
    .await?;
    println!("  referee ref started it: the start is drawn between 1 s and 4 s from now");
    let view = c(sam, Method::GET, &format!("/api/v1/gamedays/{id}"), None).await?;
    println!(
        "  responder sam sees: {} (plan shown: {})",
        view["status"],
        view.get("plan").is_some()
    );

    // The scripted responder: a health poll through the proxy, as a user
    // would notice; then /proc, as an on-call engineer would look.
    let poll = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .map_err(|e| usage(e.to_string()))?;
    let health = format!("http://127.0.0.1:{shop_port}/health");
    let healthy = || {
        let (poll, health) = (poll.clone(), health.clone());
        async move {
            poll.get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    };
    let watch_started = Instant::now();
    while healthy().await {
        if watch_started.elapsed() > Duration::from_secs(30) {
            return Err(usage("the drill never showed on the shop"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  sam: the shop's health poll timed out after {:.1} s of watching",
        watch_started.elapsed().as_secs_f64()
    );
    let suspect = if stopped(pid) {
        ("shop-app", "pause")
    } else {
        ("shop", "delay")
    };
    c(sam, Method::POST, &format!("/api/v1/gamedays/{id}/reports"), Some(json!({
        "kind": "detected", "source": "health poll of shop", "target": suspect.0, "fault": suspect.1,
        "text": format!("process {pid} is in state T (stopped)"),
    }))).await?;
    println!(
        "  sam reported detected: suspects {} on {}",
        suspect.1, suspect.0
    );
    // Finding the right process and deciding what to do takes a person a
    // moment; the guardrail sees the impact meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .map_err(|e| usage(format!("SIGCONT {pid}: {e}")))?;
    println!("  sam: kill -CONT {pid}");
    c(
        sam,
        Method::POST,
        &format!("/api/v1/gamedays/{id}/reports"),
        Some(json!({"kind": "mitigated", "text": "resumed the process"})),
    )
    .await?;
    let until = Instant::now() + Duration::from_secs(20);
    while !healthy().await {
        if Instant::now() > until {
            return Err(usage("the shop did not answer after SIGCONT"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c(
        sam,
        Method::POST,
        &format!("/api/v1/gamedays/{id}/reports"),
        Some(json!({"kind": "restored", "text": "health is green"})),
    )
    .await?;
    println!(
        "  sam reported mitigated and restored; the guardrail must hold for 1 s to confirm it"
    );

    // The drill runs to its end, then the referee reveals.
    let until = Instant::now() + hold + Duration::from_secs(60);
    let ended = loop {
        let v = c(
            referee,
            Method::GET,
            &format!("/api/v1/gamedays/{id}"),
            None,
        )
        .await?;
        if v["phase"] == "ended" || v["phase"] == "revealed" {
            break v;
        }
        if Instant::now() > until {
            return Err(usage(format!("game day {id} did not end")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "  the drill ended: {}",
        ended["end_reason"].as_str().unwrap_or("")
    );
    let v = c(
        referee,
        Method::POST,
        &format!("/api/v1/gamedays/{id}/reveal"),
        None,
    )
    .await?;
    println!("\nreveal of {id}:");
    for l in v["timeline"].as_array().into_iter().flatten() {
        let at = l["from_t0_ms"].as_i64().map_or("      —".into(), |ms| {
            format!("{:+7.2}s", ms as f64 / 1e3)
        });
        println!(
            "  {at}  {:<10} {:<12} {}",
            l["lane"].as_str().unwrap_or(""),
            l["who"].as_str().unwrap_or(""),
            l["text"].as_str().unwrap_or("")
        );
    }
    let t = &v["times"];
    let d = &v["diagnosis"];
    println!(
        "\n  time to detect:   {} ({})",
        ms(&t["detect_ms"]),
        t["detected_by"].as_str().unwrap_or("—")
    );
    println!("  time to mitigate: {}", ms(&t["mitigate_ms"]));
    println!(
        "  time to restore:  {}",
        if t["restored_by_team"] == true {
            format!("{} (confirmed by the guardrail)", ms(&t["restore_ms"]))
        } else {
            "not restored by the team".into()
        }
    );
    println!(
        "  diagnosis: suspected {} on {}; the plan: {} on {} (target {}, fault {})",
        d["suspected_fault"].as_str().unwrap_or("—"),
        d["suspected_target"].as_str().unwrap_or("—"),
        d["expected_fault"].as_str().unwrap_or(""),
        d["expected_target"].as_str().unwrap_or(""),
        if d["target_right"] == true {
            "right"
        } else {
            "wrong"
        },
        if d["fault_right"] == true {
            "right"
        } else {
            "wrong"
        },
    );
    let review = client
        .get(format!("{base}/api/v1/gamedays/{id}/review/md"))
        .bearer_auth(referee)
        .send()
        .await
        .map_err(|e| usage(e.to_string()))?
        .text()
        .await
        .map_err(|e| usage(e.to_string()))?;
    let path = pid_file.with_file_name("review.md");
    std::fs::write(&path, review)?;
    println!(
        "\nthe review (a blameless postmortem, Markdown): {}",
        path.display()
    );
    Ok(if t["restored_by_team"] == true {
        Exit::Pass
    } else {
        Exit::Fail
    })
}
