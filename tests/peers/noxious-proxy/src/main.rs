//! `noxious-proxy`: a tiny CLI around the `noxious` library (a Rust port of
//! Toxiproxy), used as a peer proxy in firedrill's benchmarks.
//!
//! ```text
//! noxious-proxy --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT
//!               [--latency-ms N] [--rate-kbps N] [--threads N]
//! ```
//!
//! * `--latency-ms N`  adds a noxious `latency` toxic (downstream, N ms, jitter 0).
//! * `--rate-kbps N`   adds a noxious `bandwidth` toxic (downstream). N is passed
//!   straight to the toxic's `rate`, which is Toxiproxy's unit: kilo*bytes* per
//!   second (1 KB = 1000 bytes), not kilobits. Below ~1310 KB/s a slicer
//!   toxic is put in front of it to dodge a noxious 1.0.4 bug (see `toxics`).
//! * `--threads N`     tokio worker threads (default: tokio's default, one per core).
//!
//! The proxy, its links and its toxics are all noxious' own machinery
//! (`ProxyRunner::initialize_proxy` + `ProxyRunner::run_proxy`); this file only
//! parses arguments and wires the pieces together.
//!
//! Readiness: once the listening socket is bound (the kernel accepts
//! connections from that moment on) one line `listening IP:PORT` is printed to
//! stdout and flushed. Port 0 is supported, best effort: noxious binds from an
//! address string and does not expose the bound address, so for port 0 a free
//! port is picked first by binding and releasing a probe socket (retried a few
//! times if the port is taken in between).
//!
//! Exits 0 on SIGINT/SIGTERM, 2 on bad arguments, 1 on runtime errors.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::process::ExitCode;

use noxious::proxy::{ProxyConfig, ProxyRunner, Runner, Toxics};
use noxious::signal::{Close, Stop};
use noxious::socket::TcpListener;
use noxious::toxic::{StreamDirection, Toxic, ToxicEvent, ToxicEventResult, ToxicKind};

const USAGE: &str = "usage: noxious-proxy --listen IP:PORT --upstream HOST:PORT \
[--latency-ms N] [--rate-kbps N] [--threads N]";

#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    upstream: String,
    latency_ms: Option<u64>,
    rate_kbps: Option<u64>,
    threads: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut latency_ms = None;
    let mut rate_kbps = None;
    let mut threads = None;

    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                listen = Some(
                    v.parse::<SocketAddr>()
                        .map_err(|e| format!("--listen {v:?}: {e}"))?,
                );
            }
            "--upstream" => upstream = Some(value()?),
            "--latency-ms" => {
                let v = value()?;
                latency_ms = Some(v.parse().map_err(|e| format!("--latency-ms {v:?}: {e}"))?);
            }
            "--rate-kbps" => {
                let v = value()?;
                rate_kbps = Some(v.parse().map_err(|e| format!("--rate-kbps {v:?}: {e}"))?);
            }
            "--threads" => {
                let v = value()?;
                let n: usize = v.parse().map_err(|e| format!("--threads {v:?}: {e}"))?;
                if n == 0 {
                    return Err("--threads must be >= 1".into());
                }
                threads = Some(n);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        upstream: upstream.ok_or("--upstream is required")?,
        latency_ms,
        rate_kbps,
        threads,
    })
}

fn toxics(args: &Args) -> Toxics {
    let mut t = Toxics::empty();
    if let Some(ms) = args.latency_ms {
        t.downstream.push(Toxic {
            kind: ToxicKind::Latency {
                latency: ms,
                jitter: 0,
            },
            name: "latency_downstream".into(),
            toxicity: 1.0,
            direction: StreamDirection::Downstream,
        });
    }
    if let Some(rate) = args.rate_kbps {
        // Work around a bug in noxious 1.0.4's bandwidth toxic: when a chunk is
        // larger than rate*100 bytes it sends 100-byte pieces (Toxiproxy sends
        // rate*100-byte pieces) and then subtracts 100 ms from a Duration
        // until it underflows, which panics the link task and stalls the
        // connection (any rate below ~330 KB/s with 32 KiB reads). Slicing the
        // data into rate*100-byte pieces first (noxious' own slicer toxic, no
        // delay) keeps the bandwidth toxic off that code path and gives the
        // same pacing Toxiproxy has. Only added where a read chunk (<= 32 KiB
        // in noxious, 128 KiB here for margin) can exceed rate*100, because
        // each slice costs a zero-length tokio sleep (up to ~1 ms).
        if rate > 0 && rate.saturating_mul(100) < 128 * 1024 {
            t.downstream.push(Toxic {
                kind: ToxicKind::Slicer {
                    average_size: rate * 100,
                    size_variation: 0,
                    delay: 0,
                },
                name: "bandwidth_slicer_downstream".into(),
                toxicity: 1.0,
                direction: StreamDirection::Downstream,
            });
        }
        t.downstream.push(Toxic {
            kind: ToxicKind::Bandwidth { rate },
            name: "bandwidth_downstream".into(),
            toxicity: 1.0,
            direction: StreamDirection::Downstream,
        });
    }
    t
}

/// Bind the noxious listener. For port 0, pick a concrete free port first
/// (noxious does not expose the bound address of its listener).
async fn bind(args: &Args) -> io::Result<(TcpListener, noxious::state::SharedProxyInfo, SocketAddr)> {
    let attempts = if args.listen.port() == 0 { 5 } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let addr = if args.listen.port() == 0 {
            let probe = StdTcpListener::bind(args.listen)?;
            let a = probe.local_addr()?;
            drop(probe);
            a
        } else {
            args.listen
        };
        let config = ProxyConfig {
            name: "noxious-proxy".into(),
            listen: addr.to_string(),
            upstream: args.upstream.clone(),
            enabled: true,
            rand_seed: None,
        };
        match ProxyRunner::initialize_proxy::<TcpListener>(config, toxics(args)).await {
            Ok((listener, info)) => return Ok((listener, info, addr)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempts > 1 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("bind failed")))
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

async fn run(args: Args) -> io::Result<()> {
    let (listener, info, addr) = bind(&args).await?;

    // Nothing sends toxic events (toxics are fixed at start-up), but keep the
    // sender alive for the proxy's lifetime so the receiver stays open.
    let (_event_tx, event_rx) = bmrng::channel::<ToxicEvent, ToxicEventResult>(1);
    let (stop, stopper) = Stop::new();
    let (_close, closer) = Close::new();

    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening {addr}")?;
        out.flush()?;
    }

    let proxy = tokio::spawn(ProxyRunner::run_proxy(listener, info, event_rx, stop, closer));
    tokio::select! {
        res = proxy => {
            res.map_err(io::Error::other)??;
            Err(io::Error::other("proxy stopped unexpectedly"))
        }
        _ = shutdown_signal() => {
            stopper.stop();
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("noxious-proxy: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("noxious-proxy: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("noxious-proxy: {e}");
            ExitCode::from(1)
        }
    }
}
