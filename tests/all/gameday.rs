//! Game days on `firedrill serve`, with real parts: Debian's nginx as the
//! responders' service (attached by its pid file) behind a proxy target,
//! Debian's blackbox exporter, Prometheus and Alertmanager noticing the
//! incident and posting to the server, a responder reporting through the
//! CLI, the API and Debian's headless chromium, and /proc showing what the
//! faults did.

use crate::serve::{Auth, Chromium, Server};
use crate::support::{Nginx, firedrill, free_port};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The shop: teams `chaos` (villains; runner `vera`) and `checkout`
/// (responders; runner `rico`, viewer `rhea` with a password), referee
/// `reese`, targets `checkout-app` (nginx by its pid file) and `checkout`
/// (an HTTP proxy in front of it), and the villains' grant: `pause` on
/// `checkout-app`.
struct Shop {
    nginx: Nginx,
    proxy_port: u16,
    vera: String,
    reese: String,
    rico: String,
}

const RHEA_PASSWORD: &str = "rhea's long passphrase";

async fn shop(s: &Server) -> Shop {
    let nginx = Nginx::start(&s._dir.path().join("nginx"));
    for team in ["chaos", "checkout"] {
        s.admin("POST", "/api/v1/teams", json!({"name": team}), 201)
            .await;
    }
    let vera = s.user("vera", Some(("chaos", "runner"))).await;
    let reese = s.user("reese", None).await;
    let rico = s.user("rico", Some(("checkout", "runner"))).await;
    s.admin(
        "POST",
        "/api/v1/users",
        json!({"name": "rhea", "password": RHEA_PASSWORD}),
        201,
    )
    .await;
    s.admin(
        "PUT",
        "/api/v1/teams/checkout/members/rhea",
        json!({"role": "viewer"}),
        200,
    )
    .await;
    let proxy_port = free_port();
    s.admin(
        "PUT",
        "/api/v1/targets/checkout-app",
        json!({"declaration": {"kind": "process", "pid_file": nginx.pid_file.display().to_string(),
                               "address": format!("127.0.0.1:{}", nginx.port)}}),
        200,
    )
    .await;
    s.admin(
        "PUT",
        "/api/v1/targets/checkout",
        json!({"declaration": {"kind": "proxy", "mode": "http",
                               "listen": format!("127.0.0.1:{proxy_port}"),
                               "upstream": format!("127.0.0.1:{}", nginx.port)}}),
        200,
    )
    .await;
    s.admin(
        "PUT",
        "/api/v1/teams/chaos/grants/checkout-app",
        json!({"kinds": ["pause"]}),
        200,
    )
    .await;
    Shop {
        nginx,
        proxy_port,
        vera,
        reese,
        rico,
    }
}

/// A plan: nginx paused for `hold`, started 1 to 3 s after the referee
/// starts; the guardrail probes the shop through its proxy.
fn plan(name: &str, hold: &str, abort_after: &str) -> Value {
    json!({
        "name": name, "villains": "chaos", "referee": "reese", "responders": ["checkout"],
        "plan": {
            "steps": [{"scenario": "firedrill:hung-dependency", "params": {
                "service": "checkout-app", "hold": hold, "probe_target": "checkout", "path": "/",
                "interval": "250ms", "probe_timeout": "400ms", "recover_within": "20s"}}],
            "start_earliest": "1s", "start_latest": "3s", "max_duration": "2m",
            "guardrails": [{"name": "checkout answers", "target": "checkout", "http": "/",
                            "max_latency": "400ms", "abort_after": abort_after}],
            "restore_hold": "2s",
            "expected": {"signals": ["CheckoutSlow"], "cause_target": "checkout-app", "cause_fault": "pause"},
        },
    })
}

/// Poll `path` with `token` until `done` holds for its JSON.
async fn until(
    s: &Server,
    token: &str,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, v) = s.json("GET", path, token, None).await;
        assert_eq!(status, 200, "{path}: {v}");
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} never happened: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn has_event(v: &Value, kind: &str, by: Option<&str>) -> bool {
    v["events"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["kind"] == kind && by.is_none_or(|b| e["by"] == b))
}

/// A whole drill. The villain's plan is sealed and its start hidden;
/// responders (token and browser) see only that a drill is active, on
/// every surface; the first fault the ledger applied is t0; Prometheus,
/// the blackbox exporter and Alertmanager detect it and post to the
/// server; a responder reports through the CLI, the API and a real
/// browser, resumes nginx, and the guardrail confirms the restore; the
/// referee aborts (reverted before the answer), reveals; the times, the
/// diagnosis, the review, the scoreboard and a replay follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_game_day_from_a_hidden_start_to_the_review() {
    let s = Server::start();
    let shop = shop(&s).await;
    let alertmanager = s.user("alertmanager", None).await;
    let stack = firedrill_tests::Alerting::start(
        &s._dir.path().join("alerting"),
        &format!("http://127.0.0.1:{}/", shop.proxy_port),
        &format!("http://{}/api/v1/alerts", s.addr),
        &alertmanager,
    );

    // Only the villains write plans, and responders are not villains.
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/gamedays",
            &shop.rico,
            Some(plan("x", "60s", "60s")),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    let mut bad = plan("x", "60s", "60s");
    bad["responders"] = json!(["chaos"]);
    let (status, v) = s
        .json("POST", "/api/v1/gamedays", &shop.vera, Some(bad))
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("villains"), "{v}");
    // A plan beyond the villains' grants is refused, naming what is missing.
    let mut beyond = plan("x", "60s", "60s");
    beyond["plan"]["steps"][0]["scenario"] = json!("firedrill:kill-and-recover");
    beyond["plan"]["steps"][0]["params"] = json!({"target": "checkout-app"});
    let (status, v) = s
        .json("POST", "/api/v1/gamedays", &shop.vera, Some(beyond))
        .await;
    assert_eq!(status, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("kill"), "{v}");

    let (status, v) = s
        .json(
            "POST",
            "/api/v1/gamedays",
            &shop.vera,
            Some(plan("Checkout hangs", "60s", "60s")),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let gd = format!("/api/v1/gamedays/{id}");
    assert_eq!(v["planned"], json!([["pause", "checkout-app"]]));
    // Planned: responders do not even see it; only the referee starts it.
    let (status, _) = s.json("GET", &gd, &shop.rico, None).await;
    assert_eq!(status, 404);
    let (status, _) = s
        .json("POST", &format!("{gd}/start"), &shop.vera, None)
        .await;
    assert_eq!(status, 403);
    let (status, v) = s
        .json("POST", &format!("{gd}/start"), &shop.reese, None)
        .await;
    assert_eq!(status, 200, "{v}");
    let start_at = v["start_at"].as_u64().unwrap();
    let armed_at = v["armed_at"].as_u64().unwrap();
    assert!(
        (armed_at + 1000..=armed_at + 3000).contains(&start_at),
        "{v}"
    );

    // The first fault the ledger applied; nginx is stopped (/proc).
    let villains_view = until(&s, &shop.vera, &gd, "the first fault", |v| {
        v["first_fault_at"].is_u64()
    })
    .await;
    let run = villains_view["runs"][0].as_str().unwrap().to_string();
    let started = Instant::now();
    while !shop.nginx.stopped() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx was not paused"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // What a responder's token sees while the fault is on: that a drill
    // is active, and nothing of the plan, on every surface.
    // (`checkout-app` stays a secret until a responder names it.)
    let secrets = [
        "hung-dependency",
        "checkout-app",
        "start_at",
        "first_fault_at",
        run.as_str(),
        "\"plan\"",
        "guardrail",
    ];
    let leaks = |text: &str| -> Vec<&str> {
        secrets
            .iter()
            .copied()
            .filter(|s| text.contains(s))
            .collect()
    };
    let leaks_after_report = |text: &str| -> Vec<&str> {
        leaks(text)
            .into_iter()
            .filter(|s| *s != "checkout-app")
            .collect()
    };
    let (status, v) = s.json("GET", &gd, &shop.rico, None).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("active")), "{v}");
    assert!(
        leaks(&v.to_string()).is_empty(),
        "{:?} in {v}",
        leaks(&v.to_string())
    );
    let (_, v) = s.json("GET", "/api/v1/gamedays", &shop.rico, None).await;
    assert!(leaks(&v.to_string()).is_empty(), "{v}");
    let (_, v) = s
        .json("GET", "/api/v1/teams/checkout/runs", &shop.rico, None)
        .await;
    assert_eq!(v, json!([]), "the responders' runs");
    for path in [
        format!("/api/v1/teams/gameday:{id}/runs"),
        format!("/api/v1/teams/gameday:{id}/runs/{run}"),
        format!("/api/v1/teams/gameday:{id}/runs/{run}/events"),
        "/api/v1/teams/chaos/runs".to_string(),
        "/api/v1/audit".to_string(),
        "/api/v1/alerts".to_string(),
    ] {
        let (status, _) = s.json("GET", &path, &shop.rico, None).await;
        assert_eq!(status, 403, "{path}");
    }
    for path in [
        format!("/api/v1/teams/checkout/runs/{run}"),
        format!("/api/v1/teams/checkout/runs/{run}/events"),
    ] {
        let (status, _) = s.json("GET", &path, &shop.rico, None).await;
        assert_eq!(status, 404, "{path}");
    }
    let metrics = s
        .call("GET", "/metrics", Auth::Token(&shop.rico), None)
        .await;
    let metrics = String::from_utf8_lossy(&metrics.body).to_string();
    for line in [
        "firedrill_server_active_runs 0",
        "firedrill_server_active_faults 0",
        "firedrill_server_gamedays_active 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(leaks(&metrics).is_empty(), "{metrics}");
    // Even the admin's audit log names the game day, not its plan.
    let (_, audit) = s.json("GET", "/api/v1/audit", &s.admin, None).await;
    assert!(
        !audit.to_string().contains("hung-dependency"),
        "the audit log: {audit}"
    );

    // Alertmanager's first firing alert for the shop is a detection.
    let v = until(&s, &shop.vera, &gd, "the alert's detection", |v| {
        has_event(v, "detected", Some("alertmanager"))
    })
    .await;
    let alert = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "detected")
        .unwrap()
        .clone();
    assert_eq!(alert["source"], "alert CheckoutSlow", "{alert}");
    assert!(
        alert["at"].as_u64().unwrap() >= v["first_fault_at"].as_u64().unwrap(),
        "{v}"
    );

    // The responder reports through the CLI: detected, with a diagnosis.
    let o = firedrill(&s._dir.path().join("cli-data"))
        .env("FIREDRILL_TOKEN", &shop.rico)
        .args([
            "gameday",
            "report",
            "--server",
            &format!("http://{}", s.addr),
            &id,
            "detected",
            "--source",
            "alert CheckoutSlow",
            "--target",
            "checkout-app",
            "--fault",
            "pause",
            "--text",
            "nginx answers nothing; its processes are in state T",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::support::text(&o));
    assert!(
        crate::support::text(&o).contains("reported detected"),
        "{}",
        crate::support::text(&o)
    );
    // A villain may not report; a report needs its kind right.
    let (status, _) = s
        .json(
            "POST",
            &format!("{gd}/reports"),
            &shop.vera,
            Some(json!({"kind": "detected", "source": "x"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, v) = s
        .json(
            "POST",
            &format!("{gd}/reports"),
            &shop.rico,
            Some(json!({"kind": "fixed"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("kind"), "{v}");

    // The guardrail fails while nginx is stopped; the responder resumes
    // it (the fault is still on in the ledger): mitigated, by the checks.
    until(&s, &shop.vera, &gd, "the guardrail failing", |v| {
        has_event(v, "guardrail-red", None)
    })
    .await;
    shop.nginx.resume();
    assert!(!shop.nginx.stopped());
    let (status, v) = s
        .json(
            "POST",
            &format!("{gd}/reports"),
            &shop.rico,
            Some(json!({"kind": "mitigated", "text": "kill -CONT on nginx"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    until(&s, &shop.vera, &gd, "mitigation by the checks", |v| {
        v["mitigated_at"].is_u64()
    })
    .await;

    // Restored, from the responders' page in a real browser: the page
    // says a drill is active and shows nothing of the plan.
    let chromium = Chromium::start().await;
    let c = chromium.client.clone();
    use fantoccini::Locator;
    let base = format!("http://{}", s.addr);
    c.goto(&format!("{base}/login")).await.unwrap();
    chromium.log_in("rhea", RHEA_PASSWORD).await;
    chromium.wait_text("#whoami", "rhea").await;
    c.find(Locator::Id("nav-gamedays"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    chromium.wait_text("#gamedays", "Checkout hangs").await;
    c.find(Locator::LinkText("Checkout hangs"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    chromium
        .wait_text("#drill-active", "A drill is active")
        .await;
    let html = c.source().await.unwrap();
    for secret in ["hung-dependency", run.as_str(), "guardrail", "start window"] {
        assert!(
            !html.contains(secret),
            "the responder's page shows {secret:?}"
        );
    }
    chromium.shot("10-gameday-responder").await;
    c.find(Locator::Id("report-kind"))
        .await
        .unwrap()
        .select_by_value("restored")
        .await
        .unwrap();
    c.find(Locator::Id("report-text"))
        .await
        .unwrap()
        .send_keys("checkout answers again")
        .await
        .unwrap();
    c.find(Locator::Id("report-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    chromium.wait_text("#reports", "restored by rhea").await;
    // The checks hold for the restore hold: confirmed, shown to her.
    let v = until(&s, &shop.vera, &gd, "the restore's confirmation", |v| {
        v["restore"]["confirmed_at"].is_u64()
    })
    .await;
    assert_eq!(v["restore"]["by"], "rhea");
    c.refresh().await.unwrap();
    chromium.wait_text("#reports", "confirmed").await;

    // The referee aborts: every fault is reverted before the answer.
    let (status, v) = s
        .json("POST", &format!("{gd}/pause"), &shop.reese, None)
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = s
        .json("POST", &format!("{gd}/resume"), &shop.reese, None)
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = s
        .json("POST", &format!("{gd}/abort"), &shop.reese, None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["reverted_in_ms"].is_u64(), "{v}");
    assert!(!shop.nginx.stopped());
    // Ended, not revealed: still nothing of the plan for responders.
    let (_, v) = s.json("GET", &gd, &shop.rico, None).await;
    assert_eq!(v["status"], "ended", "{v}");
    assert!(leaks_after_report(&v.to_string()).is_empty(), "{v}");
    let (status, _) = s
        .json("GET", &format!("{gd}/review/md"), &shop.rico, None)
        .await;
    assert_eq!(status, 409);
    let (status, _) = s
        .json(
            "POST",
            &format!("{gd}/reports"),
            &shop.rico,
            Some(json!({"kind": "restored"})),
        )
        .await;
    assert_eq!(status, 409);

    // The reveal: the times from t0, the diagnosis, one timeline.
    let (status, _) = s
        .json("POST", &format!("{gd}/reveal"), &shop.reese, None)
        .await;
    assert_eq!(status, 200);
    let (_, v) = s.json("GET", &gd, &shop.rico, None).await;
    assert_eq!(v["status"], "revealed");
    let t = &v["times"];
    assert_eq!(t["detected_by"], "alert CheckoutSlow", "{t}");
    let (detect, mitigate, restore) = (
        t["detect_ms"].as_u64().unwrap(),
        t["mitigate_ms"].as_u64().unwrap(),
        t["restore_ms"].as_u64().unwrap(),
    );
    assert!(detect <= mitigate && mitigate <= restore + 1000, "{t}");
    assert_eq!(t["restored_by_team"], true, "{t}");
    assert!(t["paused_ms"].as_u64().is_some(), "{t}");
    assert_eq!(v["diagnosis"]["target_right"], true, "{}", v["diagnosis"]);
    assert_eq!(v["diagnosis"]["fault_right"], true);
    let lanes: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lane"].as_str().unwrap())
        .collect();
    for lane in ["villains", "checks", "alerts", "responders", "referee"] {
        assert!(lanes.contains(&lane), "{lane} in {lanes:?}");
    }
    assert!(
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["kind"] == "fault-applied" && l["from_t0_ms"] == 0),
        "t0 is the ledger's first fault: {}",
        v["timeline"]
    );
    c.refresh().await.unwrap();
    chromium.wait_text("#diagnosis", "Target right").await;
    chromium
        .wait_text("#times", "confirmed by the guardrails")
        .await;
    chromium.shot("11-gameday-revealed").await;
    chromium.close().await;

    // Notes and action items, then the review in Markdown and JSON.
    let (status, _) = s
        .json(
            "POST",
            &format!("{gd}/notes"),
            &shop.rico,
            Some(json!({"text": "the alert came before any of us looked"})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = s
        .json(
            "POST",
            &format!("{gd}/actions"),
            &shop.vera,
            Some(json!({"text": "page on CheckoutSlow", "owner": "checkout"})),
        )
        .await;
    assert_eq!(status, 201);
    let a = s
        .call(
            "GET",
            &format!("{gd}/review/md"),
            Auth::Token(&shop.rico),
            None,
        )
        .await;
    let md = String::from_utf8_lossy(&a.body).to_string();
    for want in [
        "# Game day review: Checkout hangs",
        "Time to detect:",
        "(first: alert CheckoutSlow)",
        "confirmed by the guardrails",
        "| cause: fault | pause | pause (right) |",
        "aborted by the referee (reese)",
        "the alert came before any of us looked",
        "- [ ] page on CheckoutSlow — checkout",
        "fault 0: pause on checkout-app",
    ] {
        assert!(md.contains(want), "{want:?} in the review:\n{md}");
    }
    let (status, review) = s
        .json("GET", &format!("{gd}/review/json"), &shop.rico, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(review["times"]["restore_ms"], restore);

    // The scoreboard: medians and every point, per team and scenario.
    let (_, board) = s.json("GET", "/api/v1/scoreboard", &shop.rico, None).await;
    assert_eq!(board["by_team"]["checkout"]["drills"], 1, "{board}");
    assert_eq!(
        board["by_team"]["checkout"]["detect_ms"]["points"],
        json!([detect])
    );
    assert_eq!(
        board["by_scenario"]["firedrill:hung-dependency"]["restore_ms"]["median"],
        restore
    );

    // A replay for training: the exact package, the same seed.
    let (status, replay) = s
        .json(
            "POST",
            &format!("{gd}/replay"),
            &shop.vera,
            Some(json!({"name": "Checkout hangs, again"})),
        )
        .await;
    assert_eq!(status, 201, "{replay}");
    let (_, original) = s.json("GET", &gd, &shop.vera, None).await;
    assert_eq!(replay["seed"], original["seed"]);
    assert_eq!(replay["replay_of"], id);
    assert_eq!(
        replay["plan"]["steps"][0]["package"],
        "firedrill:hung-dependency@0.1.0"
    );

    // The alert resolves once nginx answers; Alertmanager says so too.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = s.json("GET", "/api/v1/alerts", &s.admin, None).await;
        if v.as_array()
            .unwrap()
            .iter()
            .any(|a| a["alertname"] == "CheckoutSlow" && a["status"] == "resolved")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no resolution reached the server (Prometheus at {})",
            stack.prometheus
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The safety net: a guardrail past its bound aborts the drill, reverts
/// its faults and reveals it; a drill never outlives its maximum
/// duration; halt-all ends a drill. The drill's end is never the team's
/// restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrails_the_maximum_duration_and_halt_all_end_a_drill_and_revert() {
    let s = Server::start();
    let shop = shop(&s).await;
    let start = |body: Value| {
        let s = &s;
        let (vera, reese) = (shop.vera.clone(), shop.reese.clone());
        async move {
            let (status, v) = s.json("POST", "/api/v1/gamedays", &vera, Some(body)).await;
            assert_eq!(status, 201, "{v}");
            let gd = format!("/api/v1/gamedays/{}", v["id"].as_str().unwrap());
            let (status, v) = s.json("POST", &format!("{gd}/start"), &reese, None).await;
            assert_eq!(status, 200, "{v}");
            gd
        }
    };

    let gd = start(plan("Breach", "60s", "1s")).await;
    let v = until(&s, &shop.rico, &gd, "the breach's reveal", |v| {
        v["status"] == "revealed"
    })
    .await;
    assert!(
        v["end_reason"]
            .as_str()
            .unwrap()
            .starts_with("guardrail `checkout answers` failed for 1s"),
        "{v}"
    );
    assert!(!shop.nginx.stopped(), "the pause was reverted");
    assert_eq!(v["times"]["restored_by_team"], false);
    assert!(v["times"]["restore_ms"].is_null());
    assert!(v["faults_cleared_at"].is_u64(), "{v}");
    // Nothing is left running: the proxy target is down with the drill.
    assert!(std::net::TcpStream::connect(("127.0.0.1", shop.proxy_port)).is_err());

    // A 60 s pause in a drill of at most 3 s.
    let mut short = plan("Short", "60s", "10m");
    short["plan"]["max_duration"] = json!("3s");
    short["plan"]["start_latest"] = json!("1s");
    let gd = start(short).await;
    let v = until(&s, &shop.reese, &gd, "the maximum duration", |v| {
        v["phase"] == "ended"
    })
    .await;
    assert_eq!(
        v["end_reason"], "the maximum duration (3s) was reached",
        "{v}"
    );
    assert!(!shop.nginx.stopped(), "the pause was reverted");

    // Halt-all ends a drill too, and holds new starts.
    let gd = start(plan("Halted", "60s", "10m")).await;
    until(&s, &shop.reese, &gd, "the first fault", |v| {
        v["first_fault_at"].is_u64()
    })
    .await;
    s.admin("POST", "/api/v1/halt", json!({}), 200).await;
    let v = until(&s, &shop.reese, &gd, "the halt's end", |v| {
        v["phase"] == "ended"
    })
    .await;
    assert!(v["end_reason"].as_str().unwrap().contains("halted"), "{v}");
    assert!(!shop.nginx.stopped(), "the pause was reverted");
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/gamedays",
            &shop.vera,
            Some(plan("Next", "60s", "10m")),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = s
        .json(
            "POST",
            &format!("/api/v1/gamedays/{}/start", v["id"].as_str().unwrap()),
            &shop.reese,
            None,
        )
        .await;
    assert_eq!(status, 409, "{v}");
}

/// A game day's faults stay sealed wherever firedrill shows faults: its
/// toxics on a `firedrill proxy serve` act on traffic but are left out of
/// that server's Toxiproxy API (toxics, proxies, leases, metrics), and the
/// CLI on the served data dir (`history`, `show`, through the control
/// socket) masks its run until the reveal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_days_toxics_and_runs_stay_sealed_until_the_reveal() {
    use firedrill::probe::{self, HttpProbe};
    let s = Server::start();
    let upstream = firedrill_tests::Upstream::start("t").await;
    let api_port = free_port();
    let proxy_dir = tempfile::tempdir().unwrap();
    let mut proxy_server = firedrill(proxy_dir.path())
        .args([
            "proxy",
            "serve",
            "--port",
            &api_port.to_string(),
            "--allow-anonymous",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let api = format!("127.0.0.1:{api_port}");
    let call = |method: &'static str, path: &str, body: Option<Value>| {
        let mut p = HttpProbe::get(path);
        p.method = method.into();
        if let Some(b) = body {
            p.headers
                .push(("content-type".into(), "application/json".into()));
            p.body = serde_json::to_vec(&b).unwrap();
        }
        let api = api.clone();
        async move { probe::http(&api, &p).await }
    };
    let started = Instant::now();
    while call("GET", "/version", None).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "proxy serve did not answer"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let created = call(
        "POST",
        "/proxies",
        Some(
            json!({"name": "shop", "listen": "127.0.0.1:0", "upstream": upstream.addr.to_string()}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(created.status, 201);
    let listen = serde_json::from_slice::<Value>(&created.body).unwrap()["listen"]
        .as_str()
        .unwrap()
        .to_string();

    for team in ["chaos", "checkout"] {
        s.admin("POST", "/api/v1/teams", json!({"name": team}), 201)
            .await;
    }
    let vera = s.user("vera", Some(("chaos", "runner"))).await;
    let reese = s.user("reese", None).await;
    s.admin(
        "PUT",
        "/api/v1/targets/shop-link",
        json!({"declaration": {"kind": "toxiproxy", "api": api, "proxy": "shop"}}),
        200,
    )
    .await;
    s.admin(
        "PUT",
        "/api/v1/teams/chaos/grants/shop-link",
        json!({"kinds": ["delay"]}),
        200,
    )
    .await;
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/gamedays",
            &vera,
            Some(json!({
                "name": "Slow shop", "villains": "chaos", "referee": "reese", "responders": ["checkout"],
                "plan": {
                    "steps": [{"scenario": "firedrill:latency-ramp", "params": {
                        "link": "shop-link", "steps": "1500ms", "samples": 30, "slo": "60s",
                        "must-tolerate": "0ms", "path": "/"}}],
                    "max_duration": "2m",
                },
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let gd = format!("/api/v1/gamedays/{id}");
    let (status, v) = s.json("POST", &format!("{gd}/start"), &reese, None).await;
    assert_eq!(status, 200, "{v}");
    let v = until(&s, &vera, &gd, "the first fault", |v| {
        v["first_fault_at"].is_u64()
    })
    .await;
    let run = v["runs"][0].as_str().unwrap().to_string();

    // The toxic acts on traffic…
    let through = probe::http(&listen, &HttpProbe::get("/")).await.unwrap();
    assert!(
        through.latency >= Duration::from_millis(1500),
        "{:?}",
        through.latency
    );
    // … and the Toxiproxy API shows none of it.
    let json_of = |a: probe::HttpAnswer| serde_json::from_slice::<Value>(&a.body).unwrap();
    assert_eq!(
        json_of(call("GET", "/proxies/shop/toxics", None).await.unwrap()),
        json!([])
    );
    assert_eq!(
        json_of(call("GET", "/proxies", None).await.unwrap())["shop"]["toxics"],
        json!([])
    );
    assert_eq!(
        json_of(call("GET", "/leases", None).await.unwrap()),
        json!([])
    );
    let metrics = call("GET", "/metrics", None).await.unwrap();
    let metrics = String::from_utf8_lossy(&metrics.body).to_string();
    let toxics_line = metrics
        .lines()
        .find(|l| l.starts_with("firedrill_proxy_toxics{"))
        .unwrap_or_default()
        .to_string();
    assert!(toxics_line.ends_with(" 0"), "{toxics_line}");

    // The CLI on the served data dir: masked in `history`, refused by `show`.
    let o = firedrill(&s.data).args(["history"]).output().unwrap();
    let text = crate::support::text(&o);
    assert!(text.contains(&format!("sealed (game day {id})")), "{text}");
    assert!(!text.contains("latency-ramp"), "{text}");
    let o = firedrill(&s.data).args(["show", &run]).output().unwrap();
    assert!(!o.status.success());
    assert!(
        crate::support::text(&o).contains("sealed"),
        "{}",
        crate::support::text(&o)
    );

    // Aborted and revealed: the toxic is gone, and `show` tells it all.
    let (status, _) = s.json("POST", &format!("{gd}/abort"), &reese, None).await;
    assert_eq!(status, 200);
    let fast = probe::http(&listen, &HttpProbe::get("/")).await.unwrap();
    assert!(
        fast.latency < Duration::from_millis(1500),
        "{:?}",
        fast.latency
    );
    let (status, _) = s.json("POST", &format!("{gd}/reveal"), &reese, None).await;
    assert_eq!(status, 200);
    let o = firedrill(&s.data).args(["show", &run]).output().unwrap();
    let text = crate::support::text(&o);
    assert!(text.contains("delay on shop-link"), "{text}");
    let _ = proxy_server.kill();
    let _ = proxy_server.wait();
}

/// The engine's promise holds for game days: a server killed mid-drill
/// leaves nginx paused only until it starts again, when crash recovery
/// resumes it and the game day is ended (never restored by the team).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_drill_reverts_on_restart_and_ends_the_game_day() {
    let s = Server::start();
    let shop = shop(&s).await;
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/gamedays",
            &shop.vera,
            Some(plan("Crash", "60s", "60s")),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let gd = format!("/api/v1/gamedays/{}", v["id"].as_str().unwrap());
    let (status, v) = s
        .json("POST", &format!("{gd}/start"), &shop.reese, None)
        .await;
    assert_eq!(status, 200, "{v}");
    let started = Instant::now();
    while !shop.nginx.stopped() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nginx was not paused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (dir, data, admin) = s.crash();
    assert!(shop.nginx.stopped(), "the kill left nginx paused");
    let s = Server::start_in(dir, data, Some(admin));
    assert!(!shop.nginx.stopped(), "recovery resumed nginx");
    let (_, v) = s.json("GET", &gd, &shop.reese, None).await;
    assert_eq!(v["phase"], "ended", "{v}");
    assert!(
        v["end_reason"]
            .as_str()
            .unwrap()
            .contains("the server stopped during the drill"),
        "{v}"
    );
    let (status, v) = s
        .json("POST", &format!("{gd}/reveal"), &shop.reese, None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["times"]["restored_by_team"], false);
}

/// `firedrill gameday demo`: the whole loop in one command, on a fresh
/// data dir, passing (the scripted responder restores the shop).
#[test]
fn the_gameday_demo_runs_the_whole_loop() {
    let dir = tempfile::tempdir().unwrap();
    let o = firedrill(dir.path())
        .args(["gameday", "demo"])
        .output()
        .unwrap();
    let text = crate::support::text(&o);
    assert!(o.status.success(), "{text}");
    for want in [
        "responder sam sees: \"active\" (plan shown: false)",
        "fault 0: pause on shop-app",
        "time to detect:",
        "(confirmed by the guardrail)",
        "target right, fault right",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    let review = std::fs::read_to_string(dir.path().join("gameday-demo/review.md")).unwrap();
    assert!(
        review.starts_with("# Game day review: The shop hangs"),
        "{review}"
    );
}
