//! `firedrill serve`: the team platform over the data dir (the library is
//! `firedrill_server::platform`). SIGINT, SIGTERM and SIGHUP stop it the
//! way they stop a run: every run launched through it is halted and its
//! faults reverted before it exits.

use super::stop::Stop;
use super::{Exit, Failure, usage};
use firedrill_server::platform::{Platform, router, store::PlatformStore};
use std::net::SocketAddr;
use std::path::Path;

/// Runs a server holds at once, across its teams.
const SERVE_MAX_CONCURRENT_RUNS: u32 = 128;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to listen (loopback by default; anything else is reachable by
    /// others, who still need a token or a session)
    #[arg(long, default_value = "127.0.0.1:8480")]
    listen: SocketAddr,
}

pub(crate) async fn run(args: Args, data_dir: &Path) -> Result<Exit, Failure> {
    let stop = Stop::install()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| usage(format!("--listen {}: {e}", args.listen)))?;
    let addr = listener.local_addr()?;
    let engine = super::open_engine_for(data_dir, true, SERVE_MAX_CONCURRENT_RUNS)?;
    let store = PlatformStore::open(data_dir).map_err(usage)?;
    let platform = Platform::new(engine, data_dir.to_path_buf(), store);
    if let Some(first) = platform.bootstrap().map_err(usage)? {
        println!(
            "{}: user `{}` (server admin) has no password; its API token, shown this once, works for 24 hours:\n  {}\nkeep it secret: sign in at http://{addr}/login with it, or `curl -H \"Authorization: Bearer $TOKEN\" http://{addr}/api/v1/me`; then set a password (PUT /api/v1/users/{}/password) or make a token of your own (POST /api/v1/tokens)",
            if first.reissued {
                "no server admin can sign in any more (no password, no live token): a new token"
            } else {
                "first start"
            },
            first.user,
            first.token,
            first.user
        );
    }
    platform.start_scheduler();
    println!("firedrill serve: http://{addr} (API under /api/v1, health at /healthz)");
    let app = router(platform.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = stop.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.wait().await;
        })
        .await?;
    let halted = platform.shutdown().await;
    let signal = stop.requested().unwrap_or("a signal");
    if halted > 0 {
        println!("{signal}: halted {halted} run(s); their faults are reverted");
        return Ok(Exit::Halted);
    }
    println!("{signal}: stopped");
    Ok(Exit::Pass)
}
