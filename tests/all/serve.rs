//! `firedrill serve` as a real process over real HTTP on loopback: the
//! route × role matrix from the route table, teams launching bundled
//! scenarios within (and beyond) their grants against real targets,
//! halting, the audit log, tokens (revoked, expired), sessions (cookie
//! flags, CSRF, fixation, logout), login rate limiting, bad bodies, and
//! the graceful shutdown that reverts what is running.

use crate::support::firedrill;
use firedrill::probe::{self, HttpProbe};
use firedrill_server::platform::routes::{Need, ROUTES};
use serde_json::{Value, json};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    pub(crate) admin: String,
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) data: PathBuf,
}

impl Server {
    pub(crate) fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Self::start_in(dir, data, None)
    }

    /// Start on `data` (in `dir`); `admin`: the admin token of an earlier
    /// start (a first start prints one).
    pub(crate) fn start_in(dir: tempfile::TempDir, data: PathBuf, admin: Option<String>) -> Server {
        let mut child = firedrill(&data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut admin, mut addr) = (admin, None);
        while addr.is_none() {
            let line = lines.next().expect("serve printed its address").unwrap();
            if let Some(t) = line.trim().strip_prefix("fdt_") {
                admin = Some(format!("fdt_{t}"));
            }
            if let Some(rest) = line.strip_prefix("firedrill serve: http://") {
                addr = rest.split_whitespace().next().map(str::to_string);
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr: addr.unwrap(),
            admin: admin.expect("a first start prints the admin's token"),
            data,
            _dir: dir,
        }
    }

    /// SIGKILL it (no revert, no record), keeping its data dir.
    pub(crate) fn crash(mut self) -> (tempfile::TempDir, PathBuf, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        (dir, self.data.clone(), self.admin.clone())
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> probe::HttpAnswer {
        let mut p = HttpProbe::get(path);
        p.method = method.into();
        p.timeout = Duration::from_secs(30);
        match auth {
            Auth::None => {}
            Auth::Token(t) => p
                .headers
                .push(("authorization".into(), format!("Bearer {t}"))),
            Auth::Cookie(c, csrf) => {
                p.headers.push(("cookie".into(), c.into()));
                if let Some(csrf) = csrf {
                    p.headers.push(("x-csrf-token".into(), csrf.into()));
                }
            }
        }
        if let Some(b) = body {
            p.headers
                .push(("content-type".into(), "application/json".into()));
            p.body = serde_json::to_vec(&b).unwrap();
        }
        probe::http(&self.addr, &p).await.unwrap()
    }

    pub(crate) async fn json(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let a = self.call(method, path, Auth::Token(token), body).await;
        let v = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        (a.status, v)
    }

    /// As the admin: `method path body`, which must answer `status`.
    pub(crate) async fn admin(&self, method: &str, path: &str, body: Value, status: u16) -> Value {
        let (s, v) = self.json(method, path, &self.admin, Some(body)).await;
        assert_eq!(s, status, "{method} {path}: {v}");
        v
    }

    /// A user with `role` in team `team` (none: no team) and a token.
    pub(crate) async fn user(&self, name: &str, team: Option<(&str, &str)>) -> String {
        self.admin("POST", "/api/v1/users", json!({"name": name}), 201)
            .await;
        if let Some((team, role)) = team {
            self.admin(
                "PUT",
                &format!("/api/v1/teams/{team}/members/{name}"),
                json!({"role": role}),
                200,
            )
            .await;
        }
        let v = self
            .admin(
                "POST",
                "/api/v1/tokens",
                json!({"name": "tests", "user": name}),
                201,
            )
            .await;
        v["token"].as_str().unwrap().to_string()
    }

    /// As the admin: register `api-link`, an HTTP proxy on `listen` in
    /// front of `upstream`, and grant team `payments` `delay` on it.
    pub(crate) async fn api_link(&self, upstream: std::net::SocketAddr, listen: &str) {
        self.admin(
            "PUT",
            "/api/v1/targets/api-link",
            json!({"declaration": {"kind": "proxy", "mode": "http", "listen": listen,
                                   "upstream": upstream.to_string()}}),
            200,
        )
        .await;
        self.admin(
            "PUT",
            "/api/v1/teams/payments/grants/api-link",
            json!({"kinds": ["delay"]}),
            200,
        )
        .await;
    }

    pub(crate) fn stop(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's chromium driven over WebDriver by its chromedriver (both
/// installed on first use): headless, `--no-sandbox`, a fresh profile.
pub(crate) struct Chromium {
    pub(crate) client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Chromium {
    pub(crate) async fn start() -> Chromium {
        let driver = firedrill_tests::debian_program(
            "/usr/bin/chromedriver",
            &["chromium-driver", "chromium"],
        );
        let port = crate::support::free_port();
        let mut driver = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                let _ = driver.kill();
                panic!("chromedriver did not listen");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromium session");
        Chromium {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Save a screenshot as `target/tmp/screenshots/<name>.png`.
    pub(crate) async fn shot(&self, name: &str) {
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Wait until the element `css` shows `want`; its text.
    pub(crate) async fn wait_text(&self, css: &str, want: &str) -> String {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(e) = self.client.find(fantoccini::Locator::Css(css)).await
                && let Ok(t) = e.text().await
                && t.contains(want)
            {
                return t;
            }
            assert!(Instant::now() < until, "{css} never showed {want:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fill in the login form (on the page it is on) and submit it.
    pub(crate) async fn log_in(&self, user: &str, password: &str) {
        use fantoccini::Locator;
        for (id, text) in [("user", user), ("password", password)] {
            let e = self.client.find(Locator::Id(id)).await.unwrap();
            e.clear().await.unwrap();
            e.send_keys(text).await.unwrap();
        }
        self.client
            .find(Locator::Id("login"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    pub(crate) async fn close(mut self) {
        self.client.clone().close().await.unwrap();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Auth<'a> {
    None,
    Token(&'a str),
    Cookie(&'a str, Option<&'a str>),
}

pub(crate) fn header<'a>(a: &'a probe::HttpAnswer, name: &str) -> Option<&'a str> {
    a.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Every route of the table, called by every role: anonymous callers get
/// 401 on all but the open routes; a caller below the route's role (or
/// outside the team the path names) gets 403; callers with the role are
/// let through to the handler (which may still find the body or the
/// record wrong). A route missing from the table needs an admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_checked_for_every_role() {
    let s = Server::start();
    s.admin("POST", "/api/v1/teams", json!({"name": "payments"}), 201)
        .await;
    s.admin("POST", "/api/v1/teams", json!({"name": "search"}), 201)
        .await;
    // (who, user name, role in payments, token)
    let mut callers: Vec<(&str, String, Option<&str>, String)> = Vec::new();
    for role in ["viewer", "runner", "publisher", "admin"] {
        let name = format!("a-{role}");
        let token = s.user(&name, Some(("payments", role))).await;
        callers.push((role, name, Some(role), token));
    }
    let outsider = s.user("outsider", Some(("search", "admin"))).await;
    callers.push(("admin of another team", "outsider".into(), None, outsider));
    let nobody = s.user("nobody", None).await;
    callers.push(("no team", "nobody".into(), None, nobody));
    let server_admin = s.admin.clone();

    let rank = |r: &str| {
        ["viewer", "runner", "publisher", "admin"]
            .iter()
            .position(|x| *x == r)
    };
    // `{user}` is the caller (a handler lets users change their own
    // password); other records do not exist, so an allowed call reaches
    // its handler and gets 400 or 404, never 401 or 403.
    let path_for = |template: &str, user: &str| {
        // Not the caller's own membership: a team admin removing itself
        // would change the rest of the sweep.
        let user = if template.contains("/members/") {
            "ghost"
        } else {
            user
        };
        template
            .replace("{team}", "payments")
            .replace("{user}", user)
            .replace("{target}", "ghost-target")
            .replace("{id}", "ghost")
            .replace("{run}", "0000000000000000")
            .replace("{package}", "acme:ghost@1.0.0")
    };
    for route in ROUTES {
        let method = route.method.as_str();
        let path = path_for(route.path, "ghost");
        let a = s.call(method, &path, Auth::None, None).await;
        if route.need == Need::Open {
            assert_ne!(a.status, 401, "{method} {path} is open");
        } else if firedrill_server::platform::routes::is_page(&path) {
            assert_eq!(
                (a.status, header(&a, "location")),
                (303, Some("/login")),
                "{method} {path} without credentials"
            );
        } else {
            assert_eq!(a.status, 401, "{method} {path} without credentials");
        }
        for (who, name, role_in_payments, token) in &callers {
            let path = path_for(route.path, name);
            let a = s
                .call(method, &path, Auth::Token(token), Some(json!({})))
                .await;
            let highest = if *who == "admin of another team" {
                rank("admin")
            } else {
                role_in_payments.and_then(rank)
            };
            let allowed = match route.need {
                Need::Open | Need::User => true,
                Need::Admin => false, // team roles never make a server admin
                Need::Team(r) => role_in_payments
                    .and_then(rank)
                    .is_some_and(|mine| mine >= rank(r.as_str()).unwrap()),
                Need::AnyTeam(r) => highest.is_some_and(|mine| mine >= rank(r.as_str()).unwrap()),
            };
            if allowed {
                assert!(
                    a.status != 401 && a.status != 403,
                    "{who} may {method} {path}: {} {}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                );
            } else {
                assert_eq!(
                    a.status,
                    403,
                    "{who} may not {method} {path}: {}",
                    String::from_utf8_lossy(&a.body)
                );
            }
        }
        let path = path_for(route.path, "admin");
        let a = s
            .call(method, &path, Auth::Token(&server_admin), Some(json!({})))
            .await;
        assert!(
            a.status != 401 && a.status != 403,
            "the server admin may {method} {path}: {}",
            a.status
        );
    }
    // Whatever the sweep halted is resumed.
    s.admin("POST", "/api/v1/resume", json!({}), 200).await;
    // An unknown route: 401 for strangers (the API's shape is not told),
    // 404 for users.
    let a = s
        .call("GET", "/api/v1/nothing-here", Auth::None, None)
        .await;
    assert_eq!(a.status, 401);
    let (status, _) = s.json("GET", "/api/v1/nothing-here", &s.admin, None).await;
    assert_eq!(status, 404);
    // Each refusal is in the audit log.
    let (_, log) = s.json("GET", "/api/v1/audit", &s.admin, None).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "a-viewer" && e["outcome"] == "denied"),
        "{log}"
    );
}

async fn wait_for_run(s: &Server, token: &str, team: &str, run: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = s
            .json(
                "GET",
                &format!("/api/v1/teams/{team}/runs/{run}"),
                token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        if v["active"] == false && v["record"]["ended_at"].is_number() {
            return v;
        }
        assert!(Instant::now() < until, "the run did not end: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An admin registers a target and grants a team `delay` on it; the
/// team's runner launches the bundled latency-ramp against it and it
/// passes, recorded with its package; beyond the grants, a launch is
/// refused with what is missing; a viewer can neither launch nor halt; a
/// runner halts a long run and the proxy's delay is gone; the audit log
/// has it all, also as JSON lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_launches_within_its_grants_and_halts() {
    let s = Server::start();
    let upstream = firedrill_tests::Upstream::start("t").await;
    s.admin("POST", "/api/v1/teams", json!({"name": "payments"}), 201)
        .await;
    let runner = s.user("rita", Some(("payments", "runner"))).await;
    let viewer = s.user("victor", Some(("payments", "viewer"))).await;
    let port = crate::support::free_port();
    // A declaration a drill file would refuse is refused here too, with
    // the drill's message.
    let v = s
        .admin(
            "PUT",
            "/api/v1/targets/api-link",
            json!({"declaration": {"kind": "proxy", "mode": "gopher"}}),
            400,
        )
        .await;
    assert!(v["error"].as_str().unwrap().contains("api-link"), "{v}");
    s.admin(
        "PUT",
        "/api/v1/targets/api-link",
        json!({"declaration": {
            "kind": "proxy", "mode": "http",
            "listen": format!("127.0.0.1:{port}"),
            "upstream": upstream.addr.to_string(),
        }}),
        200,
    )
    .await;

    let launch = json!({
        "scenario": "firedrill:latency-ramp@^0.2",
        "params": {"steps": "1ms", "samples": 1, "slo": "5s", "must-tolerate": "0ms", "path": "/"},
    });
    // No grant yet: refused, naming the missing grant; nothing started.
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams/payments/runs",
            &runner,
            Some(launch.clone()),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    let why = v["error"].as_str().unwrap();
    assert!(why.contains("delay") && why.contains("api-link"), "{why}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    s.admin(
        "PUT",
        "/api/v1/teams/payments/grants/api-link",
        json!({"kinds": ["delay"]}),
        200,
    )
    .await;
    // A viewer sees the team's targets but may not launch.
    let (status, v) = s.json("GET", "/api/v1/targets", &viewer, None).await;
    assert_eq!(status, 200);
    assert_eq!(v[0]["name"], "api-link", "{v}");
    let (status, _) = s
        .json(
            "POST",
            "/api/v1/teams/payments/runs",
            &viewer,
            Some(launch.clone()),
        )
        .await;
    assert_eq!(status, 403);

    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams/payments/runs",
            &runner,
            Some(launch.clone()),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let run = v["run"].as_str().unwrap().to_string();
    let done = wait_for_run(&s, &viewer, "payments", &run).await;
    assert_eq!(done["record"]["status"], "passed", "{done}");
    assert_eq!(
        done["record"]["scenario"]["package"]["id"],
        "firedrill:latency-ramp@0.2.0"
    );
    assert_eq!(done["launched_by"], "rita");
    assert!(
        done["timeline"].as_array().unwrap().len() > 3,
        "the timeline: {done}"
    );
    // The run is the team's: listed for it, unknown to another team.
    let (_, list) = s
        .json("GET", "/api/v1/teams/payments/runs", &viewer, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    s.admin("POST", "/api/v1/teams", json!({"name": "search"}), 201)
        .await;
    let (status, _) = s
        .json(
            "GET",
            &format!("/api/v1/teams/search/runs/{run}"),
            &s.admin,
            None,
        )
        .await;
    assert_eq!(status, 404);

    // A long run: the viewer may not halt it, the runner does; the delay
    // it added is gone.
    let long = json!({
        "scenario": "firedrill:latency-ramp@^0.2",
        "params": {"steps": "400ms,400ms,400ms,400ms,400ms", "samples": 20, "slo": "60s", "must-tolerate": "0ms", "path": "/"},
    });
    let (status, v) = s
        .json("POST", "/api/v1/teams/payments/runs", &runner, Some(long))
        .await;
    assert_eq!(status, 202, "{v}");
    let run = v["run"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let halt = format!("/api/v1/teams/payments/runs/{run}/halt");
    let (status, _) = s.json("POST", &halt, &viewer, None).await;
    assert_eq!(status, 403);
    let (status, v) = s.json("POST", &halt, &runner, None).await;
    assert_eq!(status, 202, "{v}");
    let done = wait_for_run(&s, &viewer, "payments", &run).await;
    assert_eq!(done["record"]["status"], "halted", "{done}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the run's proxy was shut down with it"
    );

    // The audit log: launches (refused and accepted), the halt, refusals.
    let a = s
        .call(
            "GET",
            "/api/v1/audit?format=jsonl",
            Auth::Token(&s.admin),
            None,
        )
        .await;
    assert_eq!(header(&a, "content-type"), Some("application/x-ndjson"));
    let entries: Vec<Value> = String::from_utf8_lossy(&a.body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |actor: &str, action: &str, outcome: &str| {
        entries
            .iter()
            .any(|e| e["actor"] == actor && e["action"] == action && e["outcome"] == outcome)
    };
    assert!(has("rita", "launch", "denied"), "{entries:?}");
    assert!(has("rita", "launch", "ok"));
    assert!(has("rita", "halt", "ok"));
    assert!(has("victor", "denied", "denied"));
    assert!(has("admin", "grant", "ok"));
    // Not for viewers.
    let (status, _) = s.json("GET", "/api/v1/audit", &viewer, None).await;
    assert_eq!(status, 403);

    // The team's history page: a trend per scenario (one dot per run,
    // coloured by status) and a diff of the two runs.
    let a = s
        .call("GET", "/teams/payments/runs", Auth::Token(&viewer), None)
        .await;
    let page = String::from_utf8_lossy(&a.body).to_string();
    assert!(
        page.contains("data-scenario=\"firedrill:latency-ramp\"")
            && page.contains("data-status=\"passed\"")
            && page.contains("data-status=\"halted\""),
        "{page}"
    );
    let (_, list) = s
        .json("GET", "/api/v1/teams/payments/runs", &viewer, None)
        .await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_str().unwrap())
        .collect();
    let a = s
        .call(
            "GET",
            &format!("/teams/payments/diff?a={}&b={}", ids[0], ids[1]),
            Auth::Token(&viewer),
            None,
        )
        .await;
    let diff = String::from_utf8_lossy(&a.body).to_string();
    assert_eq!(a.status, 200, "{diff}");
    assert!(
        diff.contains("data-row=\"param.steps\"")
            && diff.contains("halted")
            && diff.contains("passed"),
        "{diff}"
    );

    // The same through the API.
    let (status, v) = s
        .json(
            "GET",
            &format!("/api/v1/teams/payments/diff?a={}&b={}", ids[0], ids[1]),
            &viewer,
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["params_differing"]["steps"].is_array(), "{v}");
    let a = s
        .call(
            "GET",
            &format!("/api/v1/teams/payments/runs/{}/report/json", ids[0]),
            Auth::Token(&viewer),
            None,
        )
        .await;
    assert_eq!(a.status, 200);
    let report: Value = serde_json::from_slice(&a.body).unwrap();
    assert!(report["run"]["id"].is_string(), "{report}");
    let a = s
        .call(
            "GET",
            &format!("/teams/payments/runs/{}/report/markdown", ids[0]),
            Auth::Token(&viewer),
            None,
        )
        .await;
    assert_eq!(a.status, 200);
    let md = String::from_utf8_lossy(&a.body);
    assert!(md.starts_with('#') && md.contains(ids[0]), "{md}");
    // The catalog filters by the fault kind a package needs.
    let a = s
        .call("GET", "/?needs=delay", Auth::Token(&viewer), None)
        .await;
    let page = String::from_utf8_lossy(&a.body).to_string();
    assert!(page.contains("firedrill:latency-ramp"), "{page}");
    assert!(!page.contains("firedrill:kill-and-recover"), "{page}");
    let a = s
        .call("GET", "/?needs=kill", Auth::Token(&viewer), None)
        .await;
    let page = String::from_utf8_lossy(&a.body).to_string();
    assert!(
        page.contains("firedrill:kill-and-recover") && !page.contains("firedrill:latency-ramp"),
        "{page}"
    );

    // The admin's Halt all (a page form; a token needs no CSRF token):
    // new launches are refused until Resume.
    let a = s
        .call("POST", "/halt-all", Auth::Token(&s.admin), None)
        .await;
    assert_eq!(a.status, 200);
    assert!(String::from_utf8_lossy(&a.body).contains("Everything is halted"));
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams/payments/runs",
            &runner,
            Some(launch.clone()),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    let a = s
        .call("POST", "/resume-all", Auth::Token(&s.admin), None)
        .await;
    assert_eq!(a.status, 303);

    // Prometheus metrics, for a token, in a format promtool accepts.
    let a = s.call("GET", "/metrics", Auth::None, None).await;
    assert_eq!(a.status, 401);
    let a = s.call("GET", "/metrics", Auth::Token(&viewer), None).await;
    assert_eq!(a.status, 200);
    let text = String::from_utf8_lossy(&a.body).to_string();
    for line in [
        "firedrill_server_runs_total{status=\"passed\"} 1",
        "firedrill_server_runs_total{status=\"halted\"} 1",
        "firedrill_server_active_runs 0",
        "firedrill_server_run_duration_seconds_count 2",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    let promtool = firedrill_tests::debian_program("/usr/bin/promtool", &["prometheus"]);
    let mut check = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Tokens are shown once, revocable and expire; sessions are HttpOnly,
/// SameSite=Strict cookies whose state-changing requests need the CSRF
/// token; a cookie planted before login is never promoted; logins are
/// rate limited; bodies too large or malformed are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_sessions_and_bad_input() {
    let s = Server::start();
    // No secret at rest: the database holds hashes only.
    let token = s.user("tess", None).await;
    let db_bytes: Vec<u8> = walk(&s.data.join("server"))
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap_or_default())
        .collect();
    let needle = token.as_bytes();
    assert!(
        !db_bytes.windows(needle.len()).any(|w| w == needle),
        "a token is stored only as its hash"
    );

    // Revoked: refused at once.
    let (status, v) = s.json("GET", "/api/v1/tokens", &token, None).await;
    assert_eq!(status, 200);
    let id = v[0]["id"].as_str().unwrap().to_string();
    assert!(!v.to_string().contains(&token), "never shown again: {v}");
    let (status, _) = s
        .json("DELETE", &format!("/api/v1/tokens/{id}"), &token, None)
        .await;
    assert_eq!(status, 204);
    let (status, v) = s.json("GET", "/api/v1/me", &token, None).await;
    assert_eq!(status, 401);
    assert!(v["error"].as_str().unwrap().contains("revoked"), "{v}");
    // Expired.
    let v = s
        .admin(
            "POST",
            "/api/v1/tokens",
            json!({"name": "short", "user": "tess", "expires_in": "1s"}),
            201,
        )
        .await;
    let short = v["token"].as_str().unwrap().to_string();
    assert_eq!(s.json("GET", "/api/v1/me", &short, None).await.0, 200);
    // A browser session opened with it ends with it.
    let a = post_form(&s, "/login/token", &short, &[("token", &short)]).await;
    assert_eq!(a.status, 303, "{}", String::from_utf8_lossy(&a.body));
    let cookie = header(&a, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let me = s
        .call("GET", "/api/v1/me", Auth::Cookie(&cookie, None), None)
        .await;
    assert_eq!(me.status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, v) = s.json("GET", "/api/v1/me", &short, None).await;
    assert_eq!(status, 401);
    assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");
    let me = s
        .call("GET", "/api/v1/me", Auth::Cookie(&cookie, None), None)
        .await;
    assert_eq!(me.status, 401, "the session outlived its token");

    // A password: too short is refused; a good one logs in.
    s.admin(
        "PUT",
        "/api/v1/users/tess/password",
        json!({"password": "short"}),
        400,
    )
    .await;
    let password = "a long enough passphrase";
    s.admin(
        "PUT",
        "/api/v1/users/tess/password",
        json!({"password": password}),
        204,
    )
    .await;
    let planted = "firedrill_session=planted-by-an-attacker";
    let a = s
        .call(
            "POST",
            "/api/v1/login",
            Auth::Cookie(planted, None),
            Some(json!({"user": "tess", "password": password})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let set_cookie = header(&a, "set-cookie").unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    assert_ne!(cookie, planted, "a new session id at login");
    let csrf = serde_json::from_slice::<Value>(&a.body).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let a = s
        .call("GET", "/api/v1/me", Auth::Cookie(&cookie, None), None)
        .await;
    assert_eq!(a.status, 200);
    // The planted cookie is nobody's session.
    let a = s
        .call("GET", "/api/v1/me", Auth::Cookie(planted, None), None)
        .await;
    assert_eq!(a.status, 401);
    // Without the CSRF token, a session cannot change anything.
    let a = s
        .call("POST", "/api/v1/logout", Auth::Cookie(&cookie, None), None)
        .await;
    assert_eq!(a.status, 403);
    let a = s
        .call(
            "POST",
            "/api/v1/logout",
            Auth::Cookie(&cookie, Some("a-guess")),
            None,
        )
        .await;
    assert_eq!(a.status, 403);
    let a = s
        .call(
            "POST",
            "/api/v1/logout",
            Auth::Cookie(&cookie, Some(&csrf)),
            None,
        )
        .await;
    assert_eq!(a.status, 204);
    let a = s
        .call("GET", "/api/v1/me", Auth::Cookie(&cookie, None), None)
        .await;
    assert_eq!(a.status, 401, "logged out");

    // Five wrong passwords, then even the right one waits.
    for _ in 0..5 {
        let a = s
            .call(
                "POST",
                "/api/v1/login",
                Auth::None,
                Some(json!({"user": "tess", "password": "wrong wrong wrong"})),
            )
            .await;
        assert_eq!(a.status, 401);
    }
    let a = s
        .call(
            "POST",
            "/api/v1/login",
            Auth::None,
            Some(json!({"user": "tess", "password": password})),
        )
        .await;
    assert_eq!(a.status, 429);
    assert!(header(&a, "retry-after").is_some());
    // Each failed login is in the audit log, with who was tried.
    let (_, log) = s.json("GET", "/api/v1/audit", &s.admin, None).await;
    let failed = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "login" && e["outcome"] != "ok" && e.to_string().contains("tess")
        })
        .count();
    assert!(failed >= 5, "{log}");

    // Bodies: malformed, unknown fields, too large.
    let mut bad = HttpProbe::get("/api/v1/teams");
    bad.method = "POST".into();
    bad.headers
        .push(("authorization".into(), format!("Bearer {}", s.admin)));
    bad.headers
        .push(("content-type".into(), "application/json".into()));
    bad.body = b"{\"name\": \"x\",".to_vec();
    let a = probe::http(&s.addr, &bad).await.unwrap();
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(a.status, 400, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams",
            &s.admin,
            Some(json!({"name": "x", "colour": 1})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("colour"), "{v}");
    let a = s
        .call(
            "POST",
            "/api/v1/teams",
            Auth::Token(&s.admin),
            Some(json!({"name": "y".repeat(400_000)})),
        )
        .await;
    assert_eq!(a.status, 413);
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams",
            &s.admin,
            Some(json!({"name": "../etc"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    // Health is open, and says nothing else.
    let a = s.call("GET", "/healthz", Auth::None, None).await;
    assert_eq!((a.status, a.body.as_slice()), (200, b"ok\n".as_slice()));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// SIGTERM while a team's run is applying a delay: the server halts it,
/// the run is recorded halted, its proxy is gone, and it exits 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_halts_what_is_running() {
    let mut s = Server::start();
    let upstream = firedrill_tests::Upstream::start("t").await;
    s.admin("POST", "/api/v1/teams", json!({"name": "payments"}), 201)
        .await;
    let port = crate::support::free_port();
    s.api_link(upstream.addr, &format!("127.0.0.1:{port}"))
        .await;
    let admin = s.admin.clone();
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams/payments/runs",
            &admin,
            Some(json!({
                "scenario": "firedrill:latency-ramp",
                "params": {"steps": "400ms,400ms,400ms,400ms", "samples": 20, "slo": "60s", "must-tolerate": "0ms", "path": "/"},
            })),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let run = v["run"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let data = s.data.clone();
    // The CLI still reads the data dir the server holds (through its
    // control socket).
    let out = firedrill(&data).arg("history").output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && listed.contains(&run), "{listed}");
    let status = s.stop(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(status.code(), Some(4));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let shown = firedrill(&data).args(["show", &run]).output().unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("HALTED") || text.contains("halted"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("package")
                && l.contains("firedrill:latency-ramp@0.2.0")),
        "{text}"
    );
    assert!(text.contains("fault 0 reverted"), "{text}");
}

/// Debian's chromium and chromedriver (installed on first use), headless,
/// a fresh profile: a runner logs in, searches the catalog, opens a
/// package, reads its review, launches it with parameters from the form,
/// watches the timeline grow live (server-sent events), halts it and
/// finds it halted in the team's history. A screenshot of each page is
/// saved under `target/tmp/screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_launches_watches_and_halts_in_a_real_browser() {
    use fantoccini::Locator;
    let s = Server::start();
    let upstream = firedrill_tests::Upstream::start("t").await;
    let password = "rita's long passphrase";
    let port = crate::support::free_port();

    let chromium = Chromium::start().await;
    let c = chromium.client.clone();
    let base = format!("http://{}", s.addr);
    let shot = |name: &'static str| chromium.shot(name);
    let wait_text = |css: &'static str, want: &'static str| chromium.wait_text(css, want);

    // The admin's first visit, with the token the first start printed:
    // a team, a runner, a target and the team's grant on it.
    let type_in = |id: &'static str, text: String| {
        let c = c.clone();
        async move {
            let e = c.find(Locator::Id(id)).await.unwrap();
            e.clear().await.unwrap();
            e.send_keys(&text).await.unwrap();
        }
    };
    let click = |id: &'static str| {
        let c = c.clone();
        async move {
            c.find(Locator::Id(id))
                .await
                .unwrap()
                .click()
                .await
                .unwrap()
        }
    };
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("details summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    type_in("token", s.admin.clone()).await;
    click("token-login").await;
    wait_text("#whoami", "admin").await;
    click("nav-admin").await;
    type_in("team-name", "payments".into()).await;
    click("create-team").await;
    wait_text("#done", "Team payments created").await;
    type_in("user-name", "rita".into()).await;
    type_in("user-password", password.into()).await;
    click("create-user").await;
    wait_text("#done", "User rita created").await;
    c.find(Locator::Id("member-team"))
        .await
        .unwrap()
        .select_by_value("payments")
        .await
        .unwrap();
    c.find(Locator::Id("member-user"))
        .await
        .unwrap()
        .select_by_value("rita")
        .await
        .unwrap();
    c.find(Locator::Id("member-role"))
        .await
        .unwrap()
        .select_by_value("runner")
        .await
        .unwrap();
    click("set-member").await;
    wait_text("#done", "rita is runner in payments").await;
    type_in("target-name", "api-link".into()).await;
    type_in(
        "target-declaration",
        format!(
            "kind = \"proxy\"\nmode = \"http\"\nlisten = \"127.0.0.1:{port}\"\nupstream = \"{}\"\n",
            upstream.addr
        ),
    )
    .await;
    click("register-target").await;
    wait_text("#done", "Target api-link registered").await;
    c.find(Locator::Id("grant-team"))
        .await
        .unwrap()
        .select_by_value("payments")
        .await
        .unwrap();
    c.find(Locator::Id("grant-target"))
        .await
        .unwrap()
        .select_by_value("api-link")
        .await
        .unwrap();
    type_in("grant-kinds", "delay".into()).await;
    click("set-grant").await;
    wait_text("#done", "Grants of payments set").await;
    let teams = wait_text("#teams", "api-link: delay").await;
    assert!(teams.contains("rita (runner)"), "{teams}");
    shot("00-admin").await;
    click("logout").await;

    // A stranger is sent to the login page.
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/login");
    c.find(Locator::Id("user"))
        .await
        .unwrap()
        .send_keys("rita")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("not it at all")
        .await
        .unwrap();
    shot("01-login").await;
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text("#login-error", "Wrong user or password").await;
    chromium.log_in("rita", password).await;
    wait_text("#whoami", "rita").await;

    // The catalog: search from the keyboard alone (Enter submits), then
    // open the package.
    c.find(Locator::Id("q"))
        .await
        .unwrap()
        .send_keys(&format!(
            "latency{}",
            char::from(fantoccini::key::Key::Enter)
        ))
        .await
        .unwrap();
    // The results page, not the catalog it replaces.
    let until = Instant::now() + Duration::from_secs(30);
    while !c
        .current_url()
        .await
        .unwrap()
        .query()
        .is_some_and(|q| q.contains("q=latency"))
    {
        assert!(Instant::now() < until, "the search did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let link = c
        .wait()
        .for_element(Locator::Css(
            r#"a[data-package="firedrill:latency-ramp@0.2.0"]"#,
        ))
        .await
        .unwrap();
    shot("02-catalog").await;
    link.click().await.unwrap();
    let review = wait_text("#review", "api-link").await;
    assert!(
        review.contains("add latency on target \"api-link\""),
        "{review}"
    );
    shot("03-package").await;

    // Launch with parameters from the generated form.
    for (id, value) in [
        ("param-steps", "400ms,400ms,400ms,400ms,400ms,400ms"),
        ("param-samples", "20"),
        ("param-slo", "60s"),
        ("param-must-tolerate", "0ms"),
        ("param-path", "/"),
    ] {
        let field = c.find(Locator::Id(id)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }
    c.find(Locator::Id("launch"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text("#status", "").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/teams/payments/runs/")
    );
    // The timeline grows while the page is open: events the page did not
    // have when it loaded arrive over server-sent events.
    let loaded = c
        .find_all(Locator::Css("#timeline li"))
        .await
        .unwrap()
        .len();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let now = c
            .find_all(Locator::Css("#timeline li"))
            .await
            .unwrap()
            .len();
        if now > loaded + 2 {
            break;
        }
        assert!(
            Instant::now() < until,
            "the live timeline did not grow past {loaded}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_text("#timeline", "fault 0 applied").await;
    // The faults in effect follow the stream too.
    wait_text("#faults", "delay on api-link").await;
    shot("04-live-run").await;

    c.find(Locator::Id("halt"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text("#status", "halted").await;
    let until = Instant::now() + Duration::from_secs(10);
    while !c
        .find_all(Locator::Css("#faults li"))
        .await
        .map(|l| l.is_empty())
        .unwrap_or(true)
    {
        assert!(Instant::now() < until, "a reverted fault stays listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let timeline = wait_text("#timeline", "reverted").await;
    assert!(timeline.contains("fault 0 reverted"), "{timeline}");
    shot("05-halted").await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the run's proxy is gone"
    );

    // Once it ended, its reports are on the page.
    let run_path = c.current_url().await.unwrap().path().to_string();
    c.refresh().await.unwrap();
    let link = c
        .wait()
        .for_element(Locator::Id("report-junit"))
        .await
        .unwrap();
    let href = link.attr("href").await.unwrap().unwrap();
    assert_eq!(href, format!("{run_path}/report/junit"));
    let a = s.call("GET", &href, Auth::Token(&s.admin), None).await;
    assert_eq!(a.status, 200);
    assert_eq!(header(&a, "content-type"), Some("application/xml"));
    assert!(String::from_utf8_lossy(&a.body).contains("<testsuite"));

    // The team's history lists it as halted, and filters by status.
    c.find(Locator::LinkText("payments runs"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let row = wait_text("#runs", "halted").await;
    assert!(row.contains("firedrill:latency-ramp"), "{row}");
    shot("06-history").await;
    c.goto(&format!("{base}/teams/payments/runs?status=passed"))
        .await
        .unwrap();
    let rows = c
        .find_all(Locator::Css("#runs tr[data-run]"))
        .await
        .unwrap();
    assert!(rows.is_empty(), "no passed run");
    c.goto(&format!("{base}/teams/payments/runs?status=halted"))
        .await
        .unwrap();
    let rows = c
        .find_all(Locator::Css("#runs tr[data-run]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    chromium.close().await;
}

/// A runner's schedule fires every second: the first firing launches a
/// run, firings while it goes are skipped (concurrency: forbid); paused,
/// it does not fire; a halt-all holds it (firings skipped and recorded)
/// until resume; a bad cron expression is refused naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_skip_overlaps_pause_and_are_held_by_halt_all() {
    let s = Server::start();
    let upstream = firedrill_tests::Upstream::start("t").await;
    s.admin("POST", "/api/v1/teams", json!({"name": "payments"}), 201)
        .await;
    let runner = s.user("rita", Some(("payments", "runner"))).await;
    s.api_link(upstream.addr, "127.0.0.1:0").await;
    let url = "/api/v1/teams/payments/schedules";
    let (status, v) = s
        .json(
            "POST",
            url,
            &runner,
            Some(json!({"cron": "every minute", "scenario": "firedrill:latency-ramp"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("every minute"), "{v}");
    let (status, v) = s
        .json(
            "POST",
            url,
            &runner,
            Some(json!({
                "cron": "* * * * * *",
                "scenario": "firedrill:latency-ramp@^0.2",
                "params": {"steps": "400ms,400ms,400ms,400ms", "samples": 3, "slo": "60s", "must-tolerate": "0ms", "path": "/"},
                "concurrency": "forbid",
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let next: Vec<u64> = serde_json::from_value(v["next"].clone()).unwrap();
    assert_eq!(next.len(), 3);
    assert_eq!(next[1] - next[0], 1000, "every second: {next:?}");

    let firings = |outcome: &'static str, detail: &'static str| {
        let s = &s;
        let runner = runner.clone();
        async move {
            let (_, v) = s.json("GET", url, &runner, None).await;
            v[0]["firings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| {
                    f["outcome"] == outcome && f["detail"].as_str().unwrap_or("").contains(detail)
                })
                .count()
        }
    };
    let until = Instant::now() + Duration::from_secs(30);
    while firings("launched", "").await < 1 || firings("skipped", "still going").await < 1 {
        assert!(Instant::now() < until, "no launch and skipped overlap");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, runs) = s
        .json("GET", "/api/v1/teams/payments/runs", &runner, None)
        .await;
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["launched_by"] == "rita")
    );

    // The team's schedules page shows it with its next times; its Pause
    // button (a form) pauses it.
    let a = s
        .call(
            "GET",
            "/teams/payments/schedules",
            Auth::Token(&runner),
            None,
        )
        .await;
    let page = String::from_utf8_lossy(&a.body).to_string();
    assert!(
        page.contains(&format!("data-schedule=\"{id}\"")) && page.contains("UTC"),
        "{page}"
    );
    let a = s
        .call(
            "POST",
            &format!("/teams/payments/schedules/{id}/pause"),
            Auth::Token(&runner),
            None,
        )
        .await;
    assert_eq!(a.status, 303);
    let (_, v) = s.json("GET", url, &runner, None).await;
    assert_eq!(v[0]["paused"], true);
    s.json("POST", &format!("{url}/{id}/resume"), &runner, None)
        .await;

    // Paused: no firing at all.
    let (status, v) = s
        .json("POST", &format!("{url}/{id}/pause"), &runner, None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["next"], json!([]));
    let (_, v) = s.json("GET", url, &runner, None).await;
    let before = v[0]["firings"].as_array().unwrap().len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, v) = s.json("GET", url, &runner, None).await;
    assert_eq!(v[0]["firings"].as_array().unwrap().len(), before, "{v}");

    // Halt-all holds it.
    s.admin("POST", "/api/v1/halt", json!({}), 200).await;
    s.json("POST", &format!("{url}/{id}/resume"), &runner, None)
        .await;
    let until = Instant::now() + Duration::from_secs(20);
    while firings("skipped", "halt-all").await < 1 {
        assert!(Instant::now() < until, "halt-all did not hold the schedule");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let launched = firings("launched", "").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        firings("launched", "").await,
        launched,
        "nothing launched while halted"
    );
    s.admin("POST", "/api/v1/resume", json!({}), 200).await;
    let until = Instant::now() + Duration::from_secs(20);
    while firings("launched", "").await <= launched {
        assert!(
            Instant::now() < until,
            "the schedule did not fire after resume"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = s
        .json("DELETE", &format!("{url}/{id}"), &runner, None)
        .await;
    assert_eq!(status, 204);
    let (_, v) = s.json("GET", url, &runner, None).await;
    assert_eq!(v, json!([]));

    // `allow`: a firing while the last run goes launches another; two runs
    // of the schedule are seen going at once, and nothing is skipped.
    let (status, v) = s
        .json(
            "POST",
            url,
            &runner,
            Some(json!({
                "cron": "* * * * * *",
                "scenario": "firedrill:latency-ramp@^0.2",
                "params": {"steps": "400ms,400ms,400ms,400ms", "samples": 3, "slo": "60s", "must-tolerate": "0ms", "path": "/"},
                "concurrency": "allow",
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, runs) = s
            .json("GET", "/api/v1/teams/payments/runs", &runner, None)
            .await;
        let going = runs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["active"] == true)
            .count();
        if going >= 2 {
            break;
        }
        assert!(Instant::now() < until, "no two runs at once: {runs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(firings("skipped", "").await, 0);
    s.json("POST", &format!("{url}/{id}/pause"), &runner, None)
        .await;
    s.json("DELETE", &format!("{url}/{id}"), &runner, None)
        .await;
}

/// The OpenAPI document: served to users (not to strangers), listing every
/// API route with its role, and valid OpenAPI 3.1 for an independent
/// validator (PyPI's openapi-spec-validator).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_and_complete() {
    let s = Server::start();
    let a = s
        .call("GET", "/api/v1/openapi.json", Auth::None, None)
        .await;
    assert_eq!(a.status, 401);
    let (status, doc) = s.json("GET", "/api/v1/openapi.json", &s.admin, None).await;
    assert_eq!(status, 200);
    for route in ROUTES
        .iter()
        .filter(|r| !firedrill_server::platform::routes::is_page(r.path))
    {
        assert!(
            doc["paths"][route.path][route.method.as_str().to_lowercase()]["x-firedrill-role"]
                .is_string(),
            "{} {} is not in the document",
            route.method,
            route.path
        );
    }
    // Each route's success status is the one its handler answers.
    let calls = [
        (
            "POST",
            "/api/v1/teams",
            "/api/v1/teams",
            Some(json!({"name": "docs"})),
        ),
        ("GET", "/api/v1/teams", "/api/v1/teams", None),
        (
            "PUT",
            "/api/v1/targets/{target}",
            "/api/v1/targets/t1",
            Some(
                json!({"declaration": {"kind": "proxy", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}}),
            ),
        ),
        (
            "DELETE",
            "/api/v1/targets/{target}",
            "/api/v1/targets/t1",
            None,
        ),
    ];
    for (method, template, path, body) in calls {
        let (status, v) = s.json(method, path, &s.admin, body).await;
        let documented = &doc["paths"][template][method.to_lowercase()]["responses"];
        assert!(
            documented[status.to_string()].is_object(),
            "{method} {path} answered {status} ({v}); the document says {documented}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .env(
            "PYTHONPATH",
            firedrill_tests::toolchains::openapi_spec_validator(),
        )
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `firedrill run --server URL --team TEAM PACKAGE` from another machine's
/// point of view (its own data dir): the timeline streams back and the
/// exit code is the run's; refused launches exit 64 with the server's
/// reasons; Ctrl-C halts the run on the server (exit 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_on_a_server_streams_back_and_exits_like_a_local_run() {
    let s = Server::start();
    let upstream = firedrill_tests::Upstream::start("t").await;
    for team in ["payments", "search"] {
        s.admin("POST", "/api/v1/teams", json!({"name": team}), 201)
            .await;
    }
    let runner = s.user("rita", Some(("payments", "runner"))).await;
    s.admin(
        "PUT",
        "/api/v1/teams/search/members/rita",
        json!({"role": "runner"}),
        200,
    )
    .await;
    s.admin(
        "PUT",
        "/api/v1/targets/staging-api",
        json!({"declaration": {
            "kind": "proxy", "mode": "http",
            "listen": "127.0.0.1:0",
            "upstream": upstream.addr.to_string(),
        }}),
        200,
    )
    .await;
    s.admin(
        "PUT",
        "/api/v1/teams/payments/grants/staging-api",
        json!({"kinds": ["delay"]}),
        200,
    )
    .await;
    let client = tempfile::tempdir().unwrap();
    let url = format!("http://{}", s.addr);
    let remote = |team: &str, steps: &str| {
        let mut c = firedrill(client.path());
        c.args(["run", "--server", &url, "--team", team])
            .args(["--target", "api-link=staging-api"])
            .arg("firedrill:latency-ramp@^0.2")
            .args([
                "-p",
                &format!("steps={steps}"),
                "-p",
                "samples=2",
                "-p",
                "slo=60s",
            ])
            .args(["-p", "must-tolerate=0ms", "-p", "path=/"]);
        c
    };
    let out = remote("payments", "1ms")
        .env("FIREDRILL_TOKEN", &runner)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("fault 0 applied") && text.contains("PASSED"),
        "{text}"
    );

    let out = remote("payments", "1ms").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FIREDRILL_TOKEN"));
    // Beyond the team's grants: the server's reasons, exit 64.
    let out = remote("search", "1ms")
        .env("FIREDRILL_TOKEN", &runner)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("refused") && err.contains("delay"), "{err}");

    // Ctrl-C: halted on the server, exit 4.
    let mut child = remote("payments", "400ms,400ms,400ms,400ms,400ms")
        .env("FIREDRILL_TOKEN", &runner)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("the stream").unwrap();
        if line.contains("fault 0 applied") {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(4), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("HALTED")), "{rest:?}");
}

/// A webhook hears of each run's end: a JSON POST whose HMAC-SHA256
/// signature Debian's `openssl dgst -hmac` computes the same; its secret is
/// shown once; the delivery is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_hear_of_each_run_end_signed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start();
    let upstream = firedrill_tests::Upstream::start("t").await;
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = receiver.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(4);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = receiver.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = conn.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        let n = conn.read(&mut chunk).await.unwrap();
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    break (head, buf[end + 4..end + 4 + len].to_vec());
                }
            };
            conn.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            let _ = tx.send((head, body)).await;
        }
    });
    s.admin("POST", "/api/v1/teams", json!({"name": "payments"}), 201)
        .await;
    let runner = s.user("rita", Some(("payments", "runner"))).await;
    s.api_link(upstream.addr, "127.0.0.1:0").await;
    let v = s
        .admin(
            "PUT",
            "/api/v1/webhooks/chat",
            json!({"url": format!("http://{hook_addr}/hook"), "teams": ["payments"]}),
            200,
        )
        .await;
    let secret = v["secret"].as_str().unwrap().to_string();
    let (_, list) = s.json("GET", "/api/v1/webhooks", &s.admin, None).await;
    assert!(!list.to_string().contains(&secret), "shown once: {list}");

    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams/payments/runs",
            &runner,
            Some(json!({"scenario": "firedrill:latency-ramp",
                        "params": {"steps": "1ms", "samples": 1, "slo": "5s", "must-tolerate": "0ms", "path": "/"}})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let run = v["run"].as_str().unwrap().to_string();
    let (head, body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a delivery")
        .unwrap();
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["event"], "run.ended");
    assert_eq!(event["run"], run.as_str());
    assert_eq!(event["status"], "passed");
    assert_eq!(event["package"]["id"], "firedrill:latency-ramp@0.2.0");
    let signature = head
        .lines()
        .find_map(|l| l.strip_prefix("x-firedrill-signature: "))
        .expect("a signature header")
        .to_string();
    let openssl = firedrill_tests::debian_program("/usr/bin/openssl", &["openssl"]);
    let mut dgst = std::process::Command::new(openssl)
        .args(["dgst", "-sha256", "-hmac", &secret, "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    dgst.stdin.take().unwrap().write_all(&body).unwrap();
    let out = dgst.wait_with_output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(signature, format!("sha256={hex}"));
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, log) = s.json("GET", "/api/v1/audit", &s.admin, None).await;
        if log
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "webhook" && e["outcome"] == "ok")
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "no audit entry for the delivery: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGKILL the server while a team's run has a process paused: the process
/// stays stopped (nothing could revert it), and the next start recovers:
/// the process runs again and the run is closed in history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_server_is_recovered_on_its_next_start() {
    let s = Server::start();
    let upstream = firedrill_tests::Upstream::start("t").await;
    let (mut victim, pid_file) = crate::support::victim(s._dir.path());
    let pid = victim.id();
    s.admin("POST", "/api/v1/teams", json!({"name": "payments"}), 201)
        .await;
    s.admin(
        "PUT",
        "/api/v1/targets/db",
        json!({"declaration": {"kind": "process", "pid_file": pid_file.display().to_string(),
                               "address": upstream.addr.to_string()}}),
        200,
    )
    .await;
    s.admin(
        "PUT",
        "/api/v1/teams/payments/grants/db",
        json!({"kinds": ["pause"]}),
        200,
    )
    .await;
    let admin = s.admin.clone();
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams/payments/runs",
            &admin,
            Some(json!({"scenario": "firedrill:hung-dependency",
                        "params": {"hold": "60s", "probe": "tcp", "probe_target": "db"}})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let run = v["run"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(20);
    while crate::support::proc_state(pid) != Some('T') {
        if Instant::now() >= until {
            let (_, v) = s
                .json(
                    "GET",
                    &format!("/api/v1/teams/payments/runs/{run}"),
                    &admin,
                    None,
                )
                .await;
            panic!("the process was never paused: {v}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (dir, data, admin) = s.crash();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        crate::support::proc_state(pid),
        Some('T'),
        "left paused by the crash"
    );

    let s = Server::start_in(dir, data, Some(admin));
    assert_eq!(
        crate::support::proc_state(pid),
        Some('S'),
        "the next start resumed it"
    );
    let (status, v) = s
        .json(
            "GET",
            &format!("/api/v1/teams/payments/runs/{run}"),
            &s.admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["active"], false);
    assert_ne!(v["record"]["status"], "running", "{v}");
    let _ = victim.kill();
    let _ = victim.wait();
}

/// A team's publisher publishes a signed component to the team's
/// namespace through the server: verified against the server's trusted
/// keys, pushed to the registry, installed, listed in the catalog (the
/// index signed by the server's key), shown with its README and versions,
/// and run by the team. Another namespace, a runner, a tampered component
/// and a second publish of the same version are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_publishes_to_the_teams_namespace() {
    use base64::Engine as _;
    let s = Server::start();
    let upstream = firedrill_tests::Upstream::start("t").await;
    s.admin("POST", "/api/v1/teams", json!({"name": "payments"}), 201)
        .await;
    s.admin(
        "PUT",
        "/api/v1/teams/payments/namespaces",
        json!({"namespaces": ["acme"]}),
        200,
    )
    .await;
    let publisher = s.user("pia", Some(("payments", "publisher"))).await;
    let runner = s.user("rita", Some(("payments", "runner"))).await;
    s.api_link(upstream.addr, "127.0.0.1:0").await;
    // The publisher's key, trusted for `acme` on the server.
    let client = tempfile::tempdir().unwrap();
    let keys = client.path().join("keys");
    let out = firedrill(client.path())
        .args(["key", "generate", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = firedrill(&s.data)
        .args(["trust", "add"])
        .arg(keys.join("firedrill.pub"))
        .args(["--namespace", "acme"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let id: firedrill_packages::PackageId = "acme:slow-link@0.1.0".parse().unwrap();
    let signature =
        firedrill_packages::sign(&keys.join("firedrill.key"), &id, firedrill_tests::SLOW_LINK)
            .unwrap();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let body = |namespace: &str, component: &[u8]| {
        json!({"namespace": namespace, "component": b64(component), "signature": signature,
               "readme": "# Slow link\nAdds latency to a link.", "keywords": ["latency"]})
    };
    let url = "/api/v1/teams/payments/packages";
    let (status, _) = s
        .json(
            "POST",
            url,
            &runner,
            Some(body("acme", firedrill_tests::SLOW_LINK)),
        )
        .await;
    assert_eq!(status, 403, "runners do not publish");
    let (status, v) = s
        .json(
            "POST",
            url,
            &publisher,
            Some(body("globex", firedrill_tests::SLOW_LINK)),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("acme"), "{v}");
    let mut tampered = firedrill_tests::SLOW_LINK.to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let (status, v) = s
        .json("POST", url, &publisher, Some(body("acme", &tampered)))
        .await;
    assert!(status == 400 || status == 403, "{status} {v}");
    let (status, v) = s
        .json(
            "POST",
            url,
            &publisher,
            Some(body("acme", firedrill_tests::SLOW_LINK)),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["package"], "acme:slow-link@0.1.0");
    let (status, _) = s
        .json(
            "POST",
            url,
            &publisher,
            Some(body("acme", firedrill_tests::SLOW_LINK)),
        )
        .await;
    assert_eq!(status, 409, "versions are immutable");

    // In the catalog, verified; its page has the README and versions.
    let (_, found) = s
        .json("GET", "/api/v1/packages?q=slow", &runner, None)
        .await;
    assert_eq!(found[0]["package"], "acme:slow-link@0.1.0", "{found}");
    let a = s
        .call(
            "GET",
            "/packages/acme:slow-link@0.1.0",
            Auth::Token(&runner),
            None,
        )
        .await;
    let page = String::from_utf8_lossy(&a.body).to_string();
    assert_eq!(a.status, 200, "{page}");
    assert!(
        page.contains("Adds latency to a link.")
            && page.contains("id=\"versions\"")
            && page.contains("0.1.0"),
        "{page}"
    );
    // And the team runs it.
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams/payments/runs",
            &runner,
            Some(json!({"scenario": "acme:slow-link@^0.1", "params": {"latency": "0ms"}})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let run = v["run"].as_str().unwrap().to_string();
    let done = wait_for_run(&s, &runner, "payments", &run).await;
    assert_eq!(done["record"]["status"], "passed", "{done}");
    assert_eq!(
        done["record"]["scenario"]["package"]["id"],
        "acme:slow-link@0.1.0"
    );
    let (_, log) = s.json("GET", "/api/v1/audit", &s.admin, None).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "pia" && e["action"] == "publish" && e["outcome"] == "ok"),
        "{log}"
    );
}

/// POST a form (`application/x-www-form-urlencoded`) with a token.
async fn post_form(
    s: &Server,
    path: &str,
    token: &str,
    fields: &[(&str, &str)],
) -> probe::HttpAnswer {
    let encode = |t: &str| -> String {
        t.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let mut p = HttpProbe::get(path);
    p.method = "POST".into();
    p.timeout = Duration::from_secs(30);
    p.headers
        .push(("authorization".into(), format!("Bearer {token}")));
    p.headers.push((
        "content-type".into(),
        "application/x-www-form-urlencoded".into(),
    ));
    p.body = fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes();
    probe::http(&s.addr, &p).await.unwrap()
}

/// A team's admins manage the team's own members and halt all of its runs;
/// the blast radius (grants) and other teams stay out of their reach. The
/// first start's token expires after a day, and a start where no server
/// admin can sign in any more prints a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_admins_manage_their_members_and_halt_their_runs() {
    let s = Server::start();
    let upstream = firedrill_tests::Upstream::start("t").await;
    for team in ["payments", "search"] {
        s.admin("POST", "/api/v1/teams", json!({"name": team}), 201)
            .await;
    }
    let ada = s.user("ada", Some(("payments", "admin"))).await;
    let rita = s.user("rita", Some(("payments", "runner"))).await;
    s.user("victor", None).await;
    let listen = format!("127.0.0.1:{}", crate::support::free_port());
    s.api_link(upstream.addr, &listen).await;

    let (status, v) = s
        .json(
            "PUT",
            "/api/v1/teams/payments/members/victor",
            &ada,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"user": "victor", "team": "payments", "role": "viewer"}),
        "the membership only, nothing of other teams"
    );
    let (status, v) = s.json("GET", "/api/v1/teams/payments", &ada, None).await;
    assert_eq!(v["members"]["victor"], "viewer", "{status} {v}");
    let (status, _) = s
        .json(
            "DELETE",
            "/api/v1/teams/payments/members/victor",
            &ada,
            None,
        )
        .await;
    assert_eq!(status, 204);
    // Not another team's members, not the grants, not the server's halt.
    for (method, path, body) in [
        (
            "PUT",
            "/api/v1/teams/search/members/victor",
            json!({"role": "viewer"}),
        ),
        (
            "PUT",
            "/api/v1/teams/payments/grants/api-link",
            json!({"kinds": ["delay", "kill"]}),
        ),
        ("POST", "/api/v1/halt", json!({})),
    ] {
        let (status, v) = s.json(method, path, &ada, Some(body)).await;
        assert_eq!(status, 403, "{method} {path}: {v}");
    }
    // A runner may not halt the whole team.
    let (status, _) = s
        .json("POST", "/api/v1/teams/payments/halt", &rita, None)
        .await;
    assert_eq!(status, 403);

    let long = json!({
        "scenario": "firedrill:latency-ramp@^0.2",
        "params": {"steps": "400ms,400ms,400ms,400ms,400ms", "samples": 20, "slo": "60s", "must-tolerate": "0ms", "path": "/"},
    });
    let (status, v) = s
        .json("POST", "/api/v1/teams/payments/runs", &rita, Some(long))
        .await;
    assert_eq!(status, 202, "{v}");
    let run = v["run"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, v) = s
        .json("POST", "/api/v1/teams/payments/halt", &ada, None)
        .await;
    assert_eq!((status, v["halting"].as_u64()), (202, Some(1)), "{v}");
    let done = wait_for_run(&s, &ada, "payments", &run).await;
    assert_eq!(done["record"]["status"], "halted", "{done}");
    // New runs are not held back by a team's halt.
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams/payments/runs",
            &rita,
            Some(json!({
                "scenario": "firedrill:latency-ramp@^0.2",
                "params": {"steps": "1ms", "samples": 1, "slo": "5s", "must-tolerate": "0ms", "path": "/"},
            })),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    wait_for_run(&s, &rita, "payments", v["run"].as_str().unwrap()).await;
    let (_, log) = s.json("GET", "/api/v1/audit", &s.admin, None).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "ada" && e["action"] == "halt-team" && e["outcome"] == "ok"),
        "{log}"
    );

    // The first start's token works for a day.
    let (_, tokens) = s.json("GET", "/api/v1/tokens", &s.admin, None).await;
    let first = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "first start")
        .unwrap_or_else(|| panic!("{tokens}"))
        .clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let expires = first["expires_at"].as_u64().expect("it expires");
    assert!(
        expires > now + 23 * 3_600_000 && expires <= now + 24 * 3_600_000,
        "{first}"
    );
    // A restart while the admin can sign in prints no token.
    let (dir, data, old) = s.crash();
    let s = Server::start_in(dir, data, Some(old.clone()));
    assert_eq!(s.admin, old, "no token re-issued while one works");
    // Revoked (as if expired unused): the next start prints a fresh one.
    let (status, _) = s
        .json(
            "DELETE",
            &format!("/api/v1/tokens/{}", first["id"].as_str().unwrap()),
            &s.admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (dir, data, old) = s.crash();
    let s = Server::start_in(dir, data, None);
    assert_ne!(s.admin, old, "a fresh token");
    let (status, me) = s.json("GET", "/api/v1/me", &s.admin, None).await;
    assert_eq!(
        (status, &me["user"]["name"]),
        (200, &json!("admin")),
        "{me}"
    );
}

/// What the pages show is in the API too (a package's detail and review,
/// filtered history, trends), the launch form offers only targets the
/// team may use for what the scenario needs, and its dry-run button shows
/// the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_launch_form_cover_packages_history_trends_and_dry_runs() {
    let s = Server::start();
    let upstream = firedrill_tests::Upstream::start("t").await;
    s.admin("POST", "/api/v1/teams", json!({"name": "payments"}), 201)
        .await;
    let rita = s.user("rita", Some(("payments", "runner"))).await;
    let listen = format!("127.0.0.1:{}", crate::support::free_port());
    s.api_link(upstream.addr, &listen).await;
    // Registered and granted to the team, but not for what the scenario
    // needs there (it delays; the team may only kill on it).
    s.admin(
        "PUT",
        "/api/v1/targets/other-link",
        json!({"declaration": {"kind": "proxy", "mode": "http",
               "listen": format!("127.0.0.1:{}", crate::support::free_port()),
               "upstream": upstream.addr.to_string()}}),
        200,
    )
    .await;
    s.admin(
        "PUT",
        "/api/v1/teams/payments/grants/other-link",
        json!({"kinds": ["reset-peer"]}),
        200,
    )
    .await;

    // The host itself is a target kind too (resource stress), granted per
    // kind like the others; a bad key is refused as a drill file would be.
    s.admin(
        "PUT",
        "/api/v1/targets/box",
        json!({"declaration": {"kind": "host"}}),
        200,
    )
    .await;
    s.admin(
        "PUT",
        "/api/v1/teams/payments/grants/box",
        json!({"kinds": ["cpu-stress"]}),
        200,
    )
    .await;
    let v = s
        .admin(
            "PUT",
            "/api/v1/targets/box2",
            json!({"declaration": {"kind": "host", "colour": "red"}}),
            400,
        )
        .await;
    assert!(v["error"].as_str().unwrap().contains("colour"), "{v}");
    let (_, targets) = s.json("GET", "/api/v1/targets", &rita, None).await;
    assert!(
        targets
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "box" && t["declaration"]["kind"] == "host"),
        "{targets}"
    );

    let package = "firedrill:latency-ramp@0.2.0";
    let (status, v) = s
        .json("GET", &format!("/api/v1/packages/{package}"), &rita, None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["signer"], "bundled", "{v}");
    assert_eq!(v["review"][0]["kind"], "delay", "{v}");
    assert!(
        v["review"][0]["says"]
            .as_str()
            .unwrap()
            .contains("add latency"),
        "{v}"
    );
    assert!(
        v["params"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "steps"),
        "{v}"
    );
    let (status, _) = s
        .json(
            "GET",
            "/api/v1/packages/firedrill:no-such@1.0.0",
            &rita,
            None,
        )
        .await;
    assert_eq!(status, 404);

    let page = s
        .call(
            "GET",
            &format!("/packages/{package}"),
            Auth::Token(&rita),
            None,
        )
        .await;
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(
        html.contains("<button type=\"submit\" name=\"dry_run\" value=\"true\" id=\"dry-run\""),
        "a dry-run button: {html}"
    );
    assert!(html.contains("<option value=\"api-link\""), "{html}");
    assert!(
        !html.contains("<option value=\"other-link\""),
        "a target granted only other kinds is not offered: {html}"
    );

    // The dry-run button: a run that records its plan, applies nothing.
    let a = post_form(
        &s,
        "/launch",
        &rita,
        &[
            ("team", "payments"),
            ("scenario", "firedrill:latency-ramp@=0.2.0"),
            ("target.api-link", "api-link"),
            ("param.steps", "1ms"),
            ("param.samples", "1"),
            ("param.slo", "5s"),
            ("param.must-tolerate", "0ms"),
            ("param.path", "/"),
            ("dry_run", "true"),
        ],
    )
    .await;
    assert_eq!(a.status, 303, "{}", String::from_utf8_lossy(&a.body));
    let location = header(&a, "location").unwrap().to_string();
    let dry = location.rsplit('/').next().unwrap().to_string();
    let done = wait_for_run(&s, &rita, "payments", &dry).await;
    assert_eq!(done["record"]["dry_run"], true, "{done}");
    let page = s.call("GET", &location, Auth::Token(&rita), None).await;
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(
        html.contains("id=\"plan\"") && html.contains("delay on api-link"),
        "{html}"
    );

    // A real run, then the history through the API with filters, and trends.
    // With a steady-state check of the team's own: its page has the checks.
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams/payments/runs",
            &rita,
            Some(json!({
                "scenario": "firedrill:latency-ramp@^0.2",
                "params": {"steps": "1ms", "samples": 1, "slo": "5s", "must-tolerate": "0ms", "path": "/"},
                "steady_state": [{"name": "origin-up", "target": "api-link", "http": "/",
                                  "phases": ["before", "during"], "interval": "100ms", "on_violation": "record"}],
            })),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let real = v["run"].as_str().unwrap().to_string();
    let done = wait_for_run(&s, &rita, "payments", &real).await;
    assert_eq!(done["record"]["status"], "passed", "{done}");
    let page = s
        .call(
            "GET",
            &format!("/teams/payments/runs/{real}"),
            Auth::Token(&rita),
            None,
        )
        .await;
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(
        html.contains("id=\"checks\"")
            && html.contains("data-check=\"origin-up\"")
            && html.contains("holds"),
        "{html}"
    );
    // A check the drill parser refuses is refused with its field named.
    let (status, v) = s
        .json(
            "POST",
            "/api/v1/teams/payments/runs",
            &rita,
            Some(json!({
                "scenario": "firedrill:latency-ramp@^0.2",
                "steady_state": [{"name": "x", "target": "api-link", "http": "/", "interval": "0s"}],
            })),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("interval"), "{v}");
    let runs = |query: &'static str| {
        let s = &s;
        let rita = &rita;
        async move {
            let (status, v) = s
                .json(
                    "GET",
                    &format!("/api/v1/teams/payments/runs{query}"),
                    rita,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{query}: {v}");
            v.as_array()
                .unwrap()
                .iter()
                .map(|r| r["run"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(runs("").await, [real.clone(), dry.clone()], "newest first");
    assert_eq!(runs("?scenario=latency&since=1h").await.len(), 2);
    assert_eq!(runs("?scenario=nothing-like-it").await.len(), 0);
    assert_eq!(runs("?status=failed").await.len(), 0);
    let (status, v) = s
        .json("GET", "/api/v1/teams/payments/runs?since=soon", &rita, None)
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("since"), "{v}");
    // Trends: per package, real runs only (the dry run is not one).
    let (status, v) = s
        .json("GET", "/api/v1/teams/payments/trends", &rita, None)
        .await;
    assert_eq!(status, 200, "{v}");
    let points = v["firedrill:latency-ramp"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(points.len(), 1, "{v}");
    assert!(points[0]["seconds"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(points[0]["status"], "passed", "{v}");
    let (_, v) = s
        .json(
            "GET",
            "/api/v1/teams/payments/trends?status=failed",
            &rita,
            None,
        )
        .await;
    assert_eq!(v, json!({}), "the history's filters apply");
}
