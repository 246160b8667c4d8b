//! Whole-system figures of the engine's spine, printed as a Markdown table
//! for docs/PERFORMANCE.md:
//!
//! - scenario instantiation per run (warm: compiled, `InstancePre` cached);
//! - guest-to-host call cost (a guest calling `host.now` in a loop);
//! - the TCP proxy's added round-trip latency with no fault, 64-byte
//!   request/response, against direct loopback in the same run.
//!
//! Run it with `cargo bench -p firedrill --bench spine` (add `-- --quick`
//! for a smoke run).

use firedrill::drivers::proxy::{Proxy, ProxyConfig, ProxyMode};
use firedrill::{EngineBuilder, RunSpec};
use firedrill_tests::{echo_server, percentiles, round_trip};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (inst_n, calls_n, rtt_n) = if quick {
        (100, 10_000, 500)
    } else {
        (5_000, 1_000_000, 20_000)
    };
    let engine = EngineBuilder::new().build()?;

    let scenario = engine.load(firedrill_tests::CALLS, "calls")?;
    engine.bench_instantiate(&scenario, 10).await?; // warm up
    let inst = engine.bench_instantiate(&scenario, inst_n).await?;

    let mut spec = RunSpec::new(scenario);
    spec.params.insert("n".into(), calls_n.to_string());
    let run = engine.run(spec).await?;
    let per_call = run
        .outcome
        .as_ref()
        .and_then(|o| o.measurements.iter().find(|m| m.name == "ns-per-call"))
        .map(|m| m.value)
        .ok_or_else(|| anyhow::anyhow!("calls guest reported nothing: {:?}", run.error))?;

    let echo = echo_server().await;
    let proxy = Proxy::start(ProxyConfig {
        name: "bench".into(),
        listen: "127.0.0.1:0".parse()?,
        upstream: echo.to_string(),
        mode: ProxyMode::Tcp,
    })
    .await?;
    // Interleave the two so machine noise hits both alike.
    let mut direct = Vec::with_capacity(rtt_n);
    let mut proxied = Vec::with_capacity(rtt_n);
    let mut d = tokio::net::TcpStream::connect(echo).await?;
    let mut p = tokio::net::TcpStream::connect(proxy.local_addr()).await?;
    d.set_nodelay(true)?;
    p.set_nodelay(true)?;
    for _ in 0..rtt_n {
        direct.push(round_trip(&mut d).await?);
        proxied.push(round_trip(&mut p).await?);
    }
    let (d50, d99) = percentiles(&mut direct);
    let (p50, p99) = percentiles(&mut proxied);

    println!("| figure | value | n |");
    println!("|---|---|---|");
    println!(
        "| scenario instantiation per run (warm) | {:.1} µs | {inst_n} |",
        inst.as_secs_f64() * 1e6
    );
    println!("| guest → host call (`host.now`) | {per_call:.0} ns | {calls_n} |");
    println!(
        "| loopback round trip, direct, 64 B | p50 {:.1} µs, p99 {:.1} µs | {rtt_n} |",
        us(d50),
        us(d99)
    );
    println!(
        "| round trip through the TCP proxy, no fault | p50 {:.1} µs, p99 {:.1} µs | {rtt_n} |",
        us(p50),
        us(p99)
    );
    println!(
        "| proxy added latency, no fault | p50 {:.1} µs, p99 {:.1} µs | {rtt_n} |",
        us(p50.saturating_sub(d50)),
        us(p99.saturating_sub(d99))
    );
    Ok(())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
