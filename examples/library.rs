//! The engine as a library: start a real HTTP service, declare a proxy
//! target in front of it, run the bundled `latency-ramp` scenario, and
//! assert on the run record, in a few lines.
//!
//! Run it with `cargo run -p firedrill --example library`.

use firedrill::history::RunStatus;
use firedrill::{Drill, EngineBuilder, RunSpec};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = start_service().await?;

    // An engine with history in memory: nothing touches the disk.
    let engine = EngineBuilder::new().build()?;
    let drill = Drill::parse(
        &format!(
            r#"
            [targets.api-link]
            kind = "proxy"
            mode = "http"
            listen = "127.0.0.1:0"
            upstream = "{service}"
            grants = ["delay"]
            "#
        ),
        "library.toml".as_ref(),
    )?;
    let targets = engine
        .start_targets(&drill.targets)
        .await
        .map_err(anyhow::Error::msg)?;

    let scenario = engine.load(
        firedrill::bundled::get("latency-ramp").unwrap(),
        "latency-ramp",
    )?;
    let mut spec = RunSpec::new(scenario);
    spec.targets = targets.clone();
    spec.seed = Some(1);
    spec.params.insert("steps".into(), "20ms,300ms".into());
    spec.params.insert("samples".into(), "3".into());
    let run = engine.run(spec).await?;
    targets.shutdown().await;

    let outcome = run.outcome.as_ref().expect("the scenario returned");
    println!("{} {}: {}", run.scenario.name, run.status, outcome.summary);
    for m in &outcome.measurements {
        println!("  {} = {:.1} {}", m.name, m.value, m.unit);
    }
    assert_eq!(run.status, RunStatus::Passed);
    let breaking = outcome
        .measurements
        .iter()
        .find(|m| m.name == "breaking-step")
        .unwrap();
    assert_eq!(
        breaking.value, 300.0,
        "a 300ms delay breaks the 250ms objective"
    );
    Ok(())
}

/// A tiny real HTTP service on loopback that answers 200 to everything.
async fn start_service() -> anyhow::Result<std::net::SocketAddr> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                // One request per read is enough for the scenario's probes.
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0
                        || s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}
