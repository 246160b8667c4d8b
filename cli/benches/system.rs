//! Whole-system figures for docs/PERFORMANCE.md, printed as a Markdown
//! table:
//!
//! - `firedrill run` of a trivial scenario as a whole process (compiled code
//!   cached), against Chaos Toolkit's trivial experiment in the same run
//!   (installed into `target/peers/chaostoolkit` with pip on first use);
//! - 1,000 concurrent runs in one engine process, and its peak memory;
//! - history: events appended durably, listing 10,000 runs, reading a
//!   100,000-event timeline.
//!
//! Run it with `cargo bench -p firedrill-cli --bench system` (add `-- --quick`
//! for a smoke run: small sizes, no peer).

use firedrill::history::{Event, EventKind, RunFilter, RunId};
use firedrill::{EngineBuilder, RunSpec};
use firedrill_tests::{median_duration as median, timed};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (process_runs, concurrent, runs, events) = if quick {
        (3, 50, 500, 5_000)
    } else {
        (20, 1_000, 10_000, 100_000)
    };
    println!("| figure | value | n |");
    println!("|---|---|---|");
    let scratch = tempfile::tempdir()?;
    whole_process(scratch.path(), process_runs, !quick)?;
    concurrent_runs(scratch.path(), concurrent).await?;
    history(scratch.path(), runs, events).await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn whole_process(dir: &Path, n: usize, peers: bool) -> anyhow::Result<()> {
    let wasm = dir.join("trivial.wasm");
    std::fs::write(&wasm, firedrill_tests::SEEDED)?;
    let data = dir.join("data");
    let run = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_firedrill"));
        c.env("FIREDRILL_DATA_DIR", &data)
            .arg("run")
            .arg(&wasm)
            .stdout(std::process::Stdio::null());
        c
    };
    timed(&mut run())?; // compiles and caches the component
    // Rounds alternate with `true`, this machine's floor for any process
    // started and waited for, so both see the same noise.
    let mut ours = Vec::with_capacity(n);
    let mut floor = Vec::with_capacity(n);
    for _ in 0..n {
        ours.push(timed(&mut run())?);
        floor.push(timed(&mut Command::new("true"))?);
    }
    let (ours, floor) = (median(&ours), median(&floor));
    println!(
        "| `firedrill run` of a trivial scenario, whole process, compiled code cached (median) | {:.1} ms | {n} |",
        ms(ours)
    );
    println!(
        "| `true`, whole process, same rounds: the floor of starting and reaping any process here (median) | {:.1} ms | {n} |",
        ms(floor)
    );
    if !peers {
        return Ok(());
    }
    match chaostoolkit(dir) {
        Ok(chaos) => {
            let experiment = dir.join("experiment.json");
            std::fs::write(
                &experiment,
                r#"{"title": "trivial", "description": "one probe", "method": [{"type": "probe", "name": "true", "provider": {"type": "process", "path": "true"}}]}"#,
            )?;
            let peer = median(
                &(0..n.min(10))
                    .map(|_| {
                        timed(
                            Command::new(&chaos)
                                .current_dir(dir)
                                .args(["--no-log-file", "run", "--no-verify-tls"])
                                .arg(&experiment)
                                .stdout(std::process::Stdio::null())
                                .stderr(std::process::Stdio::null()),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            );
            println!(
                "| Chaos Toolkit `chaos run` of a trivial experiment (one process probe), same machine, same run (median) | {:.1} ms | {} |",
                ms(peer),
                n.min(10)
            );
            println!(
                "| **firedrill run speed-up over Chaos Toolkit** | **{:.1}×** | ratio of the medians |",
                peer.as_secs_f64() / ours.as_secs_f64()
            );
        }
        Err(e) => println!("| Chaos Toolkit | not measured: {e} | — |"),
    }
    Ok(())
}

/// `chaos` from a venv under target/peers, installed with pip if missing.
fn chaostoolkit(_dir: &Path) -> anyhow::Result<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers/chaostoolkit");
    let chaos = venv.join("bin/chaos");
    if !chaos.exists() {
        timed(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        timed(
            Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "chaostoolkit"])
                .stdout(std::process::Stdio::null()),
        )?;
    }
    Ok(chaos)
}

/// Peak resident memory of this process (VmHWM), bytes.
fn peak_rss() -> u64 {
    firedrill_tests::proc_memory("self", "VmHWM")
}

async fn concurrent_runs(dir: &Path, n: usize) -> anyhow::Result<()> {
    let engine = EngineBuilder::new()
        .data_dir(dir.join("concurrent"))
        .control_socket(false)
        .build()?;
    let scenario = engine.load(firedrill_tests::SLEEPER, "sleeper")?;
    let before = peak_rss();
    let t = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let mut spec = RunSpec::new(scenario.clone());
        spec.params.insert("hold".into(), "1s".into());
        handles.push(engine.start(spec)?);
    }
    let mut passed = 0;
    for h in handles {
        if h.wait().await.status == firedrill::history::RunStatus::Passed {
            passed += 1;
        }
    }
    let took = t.elapsed();
    let peak = peak_rss();
    println!(
        "| {n} concurrent runs in one engine process (each sleeps 1 s) | {passed} passed in {:.2} s; peak memory {} MiB ({} MiB before, {:.0} KiB per run) | {n} |",
        took.as_secs_f64(),
        peak >> 20,
        before >> 20,
        (peak.saturating_sub(before)) as f64 / 1024.0 / n as f64
    );
    Ok(())
}

async fn history(dir: &Path, runs: usize, events: u32) -> anyhow::Result<()> {
    let engine = EngineBuilder::new()
        .data_dir(dir.join("history"))
        .control_socket(false)
        .build()?;
    let scenario = engine.load(firedrill_tests::SEEDED, "seeded")?;
    let template = engine.run(RunSpec::new(scenario)).await?;
    let history = engine.history();

    let run = RunId(template.id.0 + 1);
    let event = |seq: u32| Event {
        seq,
        at_us: u64::from(seq) * 10,
        kind: EventKind::Call {
            call: "host.now".into(),
            args: serde_json::json!({}),
            result: serde_json::json!({"ok": seq}),
        },
    };
    let t = Instant::now();
    for seq in 0..events {
        history.append_event(run, &event(seq))?;
    }
    history.flush()?;
    let append = t.elapsed();
    println!(
        "| history: append events to one run's timeline, durable (flushed) at the end | {:.0} k events/s | {events} |",
        f64::from(events) / append.as_secs_f64() / 1e3
    );
    let t = Instant::now();
    let read = history.timeline(run)?;
    let took = t.elapsed();
    anyhow::ensure!(read.len() == events as usize);
    println!(
        "| history: read a {events}-event timeline | {:.1} ms | 1 |",
        ms(took)
    );

    for i in 0..runs as u64 {
        let mut r = template.clone();
        r.id = RunId(template.id.0 + 10 + i);
        history.put_run(&r)?;
    }
    let t = Instant::now();
    let listed = history.list_runs(&RunFilter::default())?;
    let took = t.elapsed();
    anyhow::ensure!(listed.len() > runs);
    println!(
        "| history: list {} runs | {:.1} ms | 1 |",
        listed.len(),
        ms(took)
    );
    Ok(())
}
