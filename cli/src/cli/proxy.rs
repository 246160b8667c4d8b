use super::{Exit, Failure, usage};
use firedrill_server::toxiproxy::api::{self, Access};
use firedrill_server::toxiproxy::{ProxyInput, Registry};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// How often expired leases are looked for.
const DEAD_MANS_SWITCH_PERIOD: std::time::Duration = std::time::Duration::from_millis(50);

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run proxies with a Toxiproxy 2.x compatible control API
    Serve(Serve),
    /// One proxy with no control API and no faults: what the relay itself
    /// costs (the peers bench measures it against nginx)
    #[command(hide = true)]
    Run(RunOne),
}

#[derive(Debug, clap::Args)]
struct RunOne {
    /// Where clients connect
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// Where traffic goes, `host:port`
    #[arg(long)]
    upstream: String,
    /// What the proxy understands
    #[arg(long, value_enum, default_value = "tcp")]
    mode: Mode,
    /// Threads that serve proxied connections, each with a relay thread
    /// beside it for connections no fault touches [default: one per core]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

/// `proxy run --mode`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    /// Bytes: connection-level faults only
    Tcp,
    /// HTTP/1.1 keep-alive and h2c: request-level faults too
    Http,
}

/// `proxy run`: until SIGINT, SIGTERM or SIGHUP.
async fn run_one(a: RunOne) -> Result<Exit, Failure> {
    use firedrill::drivers::proxy::{Proxy, ProxyConfig, ProxyMode};
    let (mode, name) = match a.mode {
        Mode::Tcp => (ProxyMode::Tcp, "tcp"),
        Mode::Http => (ProxyMode::Http, "http"),
    };
    let stop = super::stop::Stop::install()?;
    raise_open_file_limit();
    serve_on_threads(a.threads)?;
    let proxy = Proxy::start(ProxyConfig {
        name: "proxy".into(),
        listen: a.listen,
        upstream: a.upstream.clone(),
        mode,
    })
    .await
    .map_err(|e| usage(format!("--listen {}: {e}", a.listen)))?;
    println!("proxy ({name}): {} -> {}", proxy.local_addr(), a.upstream);
    stop.wait().await;
    proxy.stop().await;
    Ok(Exit::Pass)
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// Address the control API listens on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port the control API listens on (Toxiproxy's default)
    #[arg(long, default_value_t = 8474)]
    port: u16,
    /// Proxies to create at start: a JSON array as `POST /populate` takes
    #[arg(long)]
    config: Option<PathBuf>,
    /// Bearer token every request but `GET /version` must carry
    #[arg(long, env = "FIREDRILL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Accept requests without a token, as Toxiproxy does (loopback hosts
    /// only): for existing Toxiproxy clients and Testcontainers
    #[arg(long, conflicts_with = "token")]
    allow_anonymous: bool,
    /// Seed for toxicity draws [default: from the clock]
    #[arg(long)]
    seed: Option<u64>,
    /// Threads that serve proxied connections, as nginx's
    /// `worker_processes`, each with a relay thread beside it for
    /// connections no fault touches [default: one per core]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

pub(crate) async fn run(args: Args) -> Result<Exit, Failure> {
    let a = match args.command {
        Command::Serve(a) => a,
        Command::Run(one) => return run_one(one).await,
    };
    let access = match (a.token, a.allow_anonymous) {
        (Some(t), _) if t.len() < 16 => {
            return Err(usage(
                "--token must be at least 16 characters; generate one with `openssl rand -hex 16`",
            ));
        }
        (Some(t), _) => Access::Token(t),
        (None, true) if a.host.is_loopback() => Access::Anonymous,
        (None, true) => {
            return Err(usage(format!(
                "--allow-anonymous is for loopback only, but --host is {}; give --token (or FIREDRILL_TOKEN) to serve other hosts",
                a.host
            )));
        }
        (None, false) => {
            return Err(usage(
                "the control API needs a token: give --token (or FIREDRILL_TOKEN), or --allow-anonymous on a loopback host for Toxiproxy clients that cannot send one",
            ));
        }
    };
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    raise_open_file_limit();
    serve_on_threads(a.threads)?;
    let registry = Arc::new(Registry::new(seed));
    if let Some(path) = &a.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
        let inputs: Vec<ProxyInput> = serde_json::from_str(&text).map_err(|e| {
            usage(format!(
                "{}:{}:{}: {e}; expected a JSON array of {{\"name\", \"listen\", \"upstream\"}} objects",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        if let Err((e, _)) = registry.populate(inputs).await {
            return Err(usage(format!("{}: {}", path.display(), e.message)));
        }
    }
    let listener = tokio::net::TcpListener::bind((a.host, a.port))
        .await
        .map_err(|e| usage(format!("cannot listen on {}:{}: {e}", a.host, a.port)))?;
    let addr = listener.local_addr()?;
    println!("firedrill proxy server: control API on http://{addr} (Toxiproxy 2.x compatible)");
    for (name, p) in registry.list().await {
        println!("  proxy {name}: {} -> {}", p.listen, p.upstream);
    }
    let app = api::router(registry.clone(), access);
    // The dead-man's switch: toxics whose lease went unrenewed are removed
    // within the lease's ttl plus this period.
    let reaper = {
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(DEAD_MANS_SWITCH_PERIOD);
            loop {
                tick.tick().await;
                for (holder, n) in registry.expire().await {
                    println!(
                        "lease {holder} expired (its holder stopped renewing it): removed {n} toxic(s)"
                    );
                }
            }
        })
    };
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    reaper.abort();
    registry.shutdown().await;
    println!("stopped: every proxy closed, no toxic left behind");
    Ok(Exit::Pass)
}

/// A long-lived proxy process serves its connections on `threads` threads
/// (default: a thread per core).
fn serve_on_threads(threads: Option<u16>) -> Result<(), Failure> {
    let n = threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    firedrill::drivers::proxy::serve_connections_on_threads(n)?;
    Ok(())
}

/// Every proxied connection takes two descriptors: lift the soft limit
/// (often 1,024) to the hard one, as nginx's `worker_rlimit_nofile` would.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
