//! Test support for firedrill's integration tests (`tests/all`): the guest
//! components of `tests/guests`, built by `build.rs` into constants, and a
//! real HTTP upstream that records what reaches it.

pub mod toolchains;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

macro_rules! guests {
    ($($name:ident = $file:literal),* $(,)?) => {
        $(
            #[doc = concat!("The `", $file, "` guest component.")]
            pub const $name: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".wasm"));
        )*
    };
}

guests! {
    SPIN = "spin",
    MEMORY_BOMB = "memory_bomb",
    PANIC = "panic",
    OTHER_WORLD = "other_world",
    PAUSER = "pauser",
    OVERREACH = "overreach",
    SEEDED = "seeded",
    SLEEPER = "sleeper",
    CALLS = "calls",
    RECURSE = "recurse",
    LOG_FLOOD = "log_flood",
    HUGE_OUTCOME = "huge_outcome",
    FAULT_FLOOD = "fault_flood",
    SLEEP_LOOP = "sleep_loop",
    ABSURD = "absurd",
    BAD_IMPORT = "bad_import",
    LINK = "link",
    HTTP = "http",
    PROCESS = "process",
    LEGACY = "legacy",
    SECRET_PARAM = "secret_param",
    SLOW_LINK = "slow_link",
}

/// A request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Path.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Cookie` header, if any.
    pub cookie: Option<String>,
}

/// A real HTTP upstream on loopback: `/health` answers 200, `/api/orders`
/// answers 200 only with `Authorization: Bearer <token>`, else 401,
/// `/bytes/N` answers N bytes. Every request is recorded.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    /// Start it on a free port.
    pub async fn start(token: &str) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let expected = format!("Bearer {token}");
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let expected = expected.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let header = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                            };
                            let s = Seen {
                                path: req.uri().path().to_string(),
                                authorization: header("authorization"),
                                cookie: header("cookie"),
                            };
                            let ok = s.path != "/api/orders"
                                || s.authorization.as_deref() == Some(expected.as_str());
                            // `/bytes/N` answers N bytes, for body faults.
                            let size = s.path.strip_prefix("/bytes/").and_then(|n| n.parse().ok());
                            log.lock().unwrap().push(s);
                            let body = match size {
                                Some(n) => Bytes::from(vec![b'x'; n]),
                                None if ok => Bytes::from_static(b"{}"),
                                None => Bytes::from_static(b"{\"error\":\"unauthorized\"}"),
                            };
                            let mut r = Response::new(Full::new(body));
                            if !ok {
                                *r.status_mut() = hyper::StatusCode::UNAUTHORIZED;
                            }
                            async move { Ok::<_, std::convert::Infallible>(r) }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream { addr, seen }
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A TCP server on loopback that echoes back what each client sends.
pub async fn echo_server() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    serve_tcp(|mut s| async move {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    })
    .await
}

/// A TCP server on loopback that writes `n` bytes (0, 1, 2, … 255, 0, …) to
/// each client in one go and then closes.
pub async fn sending_server(n: usize) -> SocketAddr {
    use tokio::io::AsyncWriteExt;
    let data: Arc<Vec<u8>> = Arc::new((0..n).map(|i| i as u8).collect());
    serve_tcp(move |mut s| {
        let data = data.clone();
        async move {
            let _ = s.write_all(&data).await;
            let _ = s.shutdown().await;
        }
    })
    .await
}

/// A TCP server on loopback that writes `total` bytes to each client in
/// 64 KiB pieces as fast as the client takes them, then closes (`u64::MAX`:
/// until the client goes): a source for throughput and fault-timing figures.
pub async fn source_server(total: u64) -> SocketAddr {
    use tokio::io::AsyncWriteExt;
    serve_tcp(move |mut s| async move {
        let chunk = vec![0x5a_u8; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if s.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n as u64;
        }
        let _ = s.shutdown().await;
    })
    .await
}

/// One 64-byte round trip on `s` (to an echo server, directly or through a
/// proxy): how long it took.
pub async fn round_trip(s: &mut tokio::net::TcpStream) -> std::io::Result<std::time::Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    let t = std::time::Instant::now();
    s.write_all(&msg).await?;
    s.read_exact(&mut buf).await?;
    Ok(t.elapsed())
}

/// The median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A memory figure of a process from `/proc/PID/status` (`pid` may be
/// `self`), e.g. `VmRSS` or `VmHWM`, in bytes; 0 if it cannot be read.
pub fn proc_memory(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The rows of a bench that `--only a,b` (or `--only=a,b`) among its
/// arguments names, out of `known`: all of them without it. An unknown row
/// or a missing list is an error that names the rows there are.
pub fn bench_rows(known: &[&'static str]) -> Result<Vec<&'static str>, String> {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args
        .iter()
        .position(|a| a == "--only" || a.starts_with("--only="))
    else {
        return Ok(known.to_vec());
    };
    let list = match args[i].strip_prefix("--only=") {
        Some(list) => list,
        None => args
            .get(i + 1)
            .filter(|a| !a.starts_with("--"))
            .map_or("", String::as_str),
    };
    let there = known.join(", ");
    if list.is_empty() {
        return Err(format!(
            "--only needs a comma-separated list of rows from: {there}"
        ));
    }
    list.split(',')
        .map(|row| {
            known
                .iter()
                .find(|k| **k == row)
                .copied()
                .ok_or_else(|| format!("--only: there is no row {row:?}; the rows are: {there}"))
        })
        .collect()
}

/// The median and 99th percentile of `v` (sorted in place).
pub fn percentiles(v: &mut [std::time::Duration]) -> (std::time::Duration, std::time::Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() - 1) * 99 / 100])
}

async fn serve_tcp<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // An accept queue as deep as the system allows, not tokio's 128: the
    // benches open thousands of connections at once.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let l = socket.listen(65_535).unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(handle(s));
        }
    });
    addr
}

/// The path of `program` from a Debian package, installed on first use
/// (`apt-get install -y -q PACKAGES`, with `apt-get update` first when the
/// install alone fails), as tests against real third-party services need.
/// Installs are serialized within the test binary.
pub fn debian_program(program: &str, packages: &[&str]) -> std::path::PathBuf {
    static APT: Mutex<()> = Mutex::new(());
    let path = std::path::PathBuf::from(program);
    if path.exists() {
        return path;
    }
    let _one = APT.lock().unwrap_or_else(|e| e.into_inner());
    if path.exists() {
        return path;
    }
    let install = || {
        std::process::Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
    };
    let ok =
        |o: &std::io::Result<std::process::Output>| o.as_ref().is_ok_and(|o| o.status.success());
    let mut out = install();
    if !ok(&out) {
        let _ = std::process::Command::new("apt-get")
            .args(["update", "-q"])
            .output();
        out = install();
    }
    assert!(
        ok(&out) && path.exists(),
        "this test needs {program} from the Debian package(s) {packages:?}, and installing them failed: {}",
        match &out {
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => e.to_string(),
        }
    );
    path
}

/// A Debian nginx (installed on first use) set up to run unprivileged in
/// `prefix`: master and 2 workers on `127.0.0.1:port`, answering `ok` to
/// every path but `/private/`, which takes HTTP Basic auth as user `ops`,
/// password `s3cret` (nginx's own `auth_basic`). Returns the program and
/// the arguments that start it in the foreground.
pub fn nginx(prefix: &std::path::Path, port: u16) -> (std::path::PathBuf, Vec<String>) {
    let nginx = debian_program("/usr/sbin/nginx", &["nginx"]);
    for d in ["logs", "tmp", "www/private"] {
        std::fs::create_dir_all(prefix.join(d)).unwrap();
    }
    std::fs::write(prefix.join("www/private/index.html"), "private\n").unwrap();
    std::fs::write(prefix.join("htpasswd"), "ops:{PLAIN}s3cret\n").unwrap();
    let p = prefix.display();
    std::fs::write(
        prefix.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process on;\nworker_processes 2;\npid {p}/nginx.pid;\nerror_log stderr;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {p}/tmp; proxy_temp_path {p}/tmp; fastcgi_temp_path {p}/tmp; uwsgi_temp_path {p}/tmp; scgi_temp_path {p}/tmp;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }}\n\
             location /private/ {{ auth_basic \"api\"; auth_basic_user_file {p}/htpasswd; root {p}/www; }} }} }}\n"
        ),
    )
    .unwrap();
    let args = [
        "-p",
        &p.to_string(),
        "-c",
        &format!("{p}/nginx.conf"),
        "-e",
        "stderr",
    ]
    .map(String::from)
    .to_vec();
    (nginx, args)
}

/// Stops `child` as a service manager would: SIGTERM, up to `grace` for it
/// to end (nginx's master ends its workers on it; SIGKILL to the master
/// alone leaves them running), then SIGKILL; reaped either way.
pub fn terminate(child: &mut std::process::Child, grace: std::time::Duration) {
    use nix::sys::signal::{Signal, kill};
    let _ = kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    );
    let started = std::time::Instant::now();
    while matches!(child.try_wait(), Ok(None)) && started.elapsed() < grace {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Wall time of `cmd` (a whole process, started and waited for), which
/// must succeed: the benches' measure of a command.
pub fn timed(cmd: &mut std::process::Command) -> std::io::Result<std::time::Duration> {
    let t = std::time::Instant::now();
    let out = cmd.output()?;
    let took = t.elapsed();
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(took)
}

/// The median of `v` (the upper one of an even count).
pub fn median_duration(v: &[std::time::Duration]) -> std::time::Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// Debian's docker-registry (CNCF Distribution 2.8; installed on first
/// use) serving `dir` on `127.0.0.1:<port>`, plain HTTP; stopped on drop.
pub struct DockerRegistry {
    /// Its port.
    pub port: u16,
    child: std::process::Child,
}

impl DockerRegistry {
    /// Start one and wait until it listens.
    pub fn start(dir: &std::path::Path) -> DockerRegistry {
        Self::start_with(dir, "")
    }

    /// Start one behind TLS, with a self-signed certificate for 127.0.0.1
    /// (made by Debian's `openssl`), that takes only `user` with
    /// `password` (HTTP Basic, an htpasswd file from Debian's
    /// apache2-utils). Returns it and the certificate's PEM file.
    pub fn start_secured(
        dir: &std::path::Path,
        user: &str,
        password: &str,
    ) -> (DockerRegistry, std::path::PathBuf) {
        std::fs::create_dir_all(dir).unwrap();
        let openssl = debian_program("/usr/bin/openssl", &["openssl"]);
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = std::process::Command::new(openssl)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let htpasswd = debian_program("/usr/bin/htpasswd", &["apache2-utils"]);
        let out = std::process::Command::new(htpasswd)
            .args(["-B", "-b", "-n", user, password])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let users = dir.join("htpasswd");
        std::fs::write(&users, &out.stdout).unwrap();
        let extra = format!(
            "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: firedrill-tests\n    path: {}\n",
            cert.display(),
            key.display(),
            users.display()
        );
        (Self::start_with(dir, &extra), cert)
    }

    fn start_with(dir: &std::path::Path, extra: &str) -> DockerRegistry {
        let bin = debian_program("/usr/bin/docker-registry", &["docker-registry"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed().as_secs() < 20,
                "docker-registry did not listen"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "docker-registry exited"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        DockerRegistry { port, child }
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Prometheus, Alertmanager and blackbox exporter (installed on
/// first use), wired as teams wire them: the exporter probes `probe_url`
/// over HTTP every second, Prometheus fires `CheckoutSlow` (label
/// `service=checkout`) when a probe takes over 300 ms or fails after
/// having answered, and Alertmanager delivers to `webhook_url` with
/// `Authorization: Bearer <token>` (payload version 4). Stopped on drop.
pub struct Alerting {
    children: Vec<std::process::Child>,
    /// Prometheus' address.
    pub prometheus: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Alerting {
    /// Start the three, configured in `dir`.
    pub fn start(
        dir: &std::path::Path,
        probe_url: &str,
        webhook_url: &str,
        token: &str,
    ) -> Alerting {
        let prometheus = debian_program("/usr/bin/prometheus", &["prometheus"]);
        let alertmanager = debian_program(
            "/usr/bin/prometheus-alertmanager",
            &["prometheus-alertmanager"],
        );
        let blackbox = debian_program(
            "/usr/bin/prometheus-blackbox-exporter",
            &["prometheus-blackbox-exporter"],
        );
        std::fs::create_dir_all(dir).unwrap();
        let (bb, am, prom) = (free_port(), free_port(), free_port());
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let bb_config = write(
            "blackbox.yml",
            "modules:\n  http_fast:\n    prober: http\n    timeout: 900ms\n    http:\n      preferred_ip_protocol: ip4\n".into(),
        );
        write(
            "rules.yml",
            "groups:\n- name: drill\n  rules:\n  - alert: CheckoutSlow\n    expr: probe_duration_seconds{job=\"blackbox\"} > 0.3\n    for: 0s\n    labels:\n      service: checkout\n".into(),
        );
        let prom_config = write(
            "prometheus.yml",
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  scrape_timeout: 1s\nrule_files: [rules.yml]\n\
                 alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['127.0.0.1:{am}']\n\
                 scrape_configs:\n- job_name: blackbox\n  metrics_path: /probe\n  params:\n    module: [http_fast]\n    target: ['{probe_url}']\n  static_configs:\n  - targets: ['127.0.0.1:{bb}']\n"
            ),
        );
        let am_config = write(
            "alertmanager.yml",
            format!(
                "route:\n  receiver: firedrill\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n- name: firedrill\n  webhook_configs:\n  - url: '{webhook_url}'\n    send_resolved: true\n    http_config:\n      authorization:\n        type: Bearer\n        credentials: '{token}'\n"
            ),
        );
        let spawn = |cmd: &mut std::process::Command| {
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let children = vec![
            spawn(
                std::process::Command::new(blackbox)
                    .arg(format!("--config.file={}", bb_config.display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{bb}")),
            ),
            spawn(
                std::process::Command::new(alertmanager)
                    .arg(format!("--config.file={}", am_config.display()))
                    .arg(format!("--storage.path={}", dir.join("am").display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{am}"))
                    .arg("--cluster.listen-address="),
            ),
            spawn(
                std::process::Command::new(prometheus)
                    .arg(format!("--config.file={}", prom_config.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        dir.join("tsdb").display()
                    ))
                    .arg(format!("--web.listen-address=127.0.0.1:{prom}")),
            ),
        ];
        let started = std::time::Instant::now();
        for port in [bb, am, prom] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    started.elapsed().as_secs() < 30,
                    "the alerting stack did not listen on {port}"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        Alerting {
            children,
            prometheus: format!("127.0.0.1:{prom}"),
        }
    }
}

impl Drop for Alerting {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
