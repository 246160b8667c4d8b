//! `firedrill demo`: the main job on a fresh machine. Starts the demo
//! service as a real process (supervised, restarted when killed), puts an
//! HTTP proxy in front of it, and runs the three bundled scenarios against
//! them with steady-state checks. The runs land in history.

use super::{Exit, Failure, open_engine, progress, start_run, start_targets, stop::Stop, usage};
use firedrill::{Drill, RunSpec};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print the drill file the demo uses, and exit
    #[arg(long)]
    print_drill: bool,
    /// Seed for every run (default: 42, so demos are reproducible)
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) async fn run(args: Args, data_dir: &Path) -> Result<Exit, Failure> {
    let exe = std::env::current_exe()?;
    let text = firedrill::demo::drill_text(&exe, free_port()?, free_port()?);
    if args.print_drill {
        print!("{text}");
        return Ok(Exit::Pass);
    }
    let stop = Stop::install()?;
    let drill = Drill::parse(&text, Path::new("demo.toml")).map_err(usage)?;
    let engine = open_engine(data_dir, true)?;
    println!("firedrill demo: data in {}", data_dir.display());
    // Every scenario is checked against the policy before anything starts.
    let mut scenarios = Vec::new();
    let demo = firedrill::bundled::ALL
        .iter()
        .filter(|(name, _)| firedrill::bundled::DEMO.contains(name));
    for (name, bytes) in demo {
        let scenario = engine.load(bytes, &format!("bundled:{name}"))?;
        super::preflight(&engine, &drill, &scenario, &Default::default()).await?;
        scenarios.push((name, scenario));
    }
    let targets = start_targets(&engine, &drill.targets, &stop).await?;
    println!(
        "  api: demo service pid {} on {}; api-link: HTTP proxy on {}",
        match targets.get("api") {
            Some(firedrill::targets::Target::Process(p)) =>
                p.pid().map(|p| p.pid.to_string()).unwrap_or_default(),
            _ => String::new(),
        },
        targets
            .get("api")
            .and_then(|t| t.address())
            .unwrap_or_default(),
        targets
            .get("api-link")
            .and_then(|t| t.address())
            .unwrap_or_default(),
    );
    let mut exit = Exit::Pass;
    let mut runs = Vec::new();
    for (name, scenario) in scenarios {
        if stop.requested().is_some() {
            exit = exit.worst(Exit::Halted);
            break;
        }
        println!();
        println!("== {name}");
        let mut spec = RunSpec::new(scenario);
        spec.seed = Some(args.seed);
        spec.targets = targets.clone();
        spec.policy = drill.policy.clone();
        spec.limits = drill.limits.clone();
        spec.checks = drill.checks.clone();
        spec.drill = Some("demo".into());
        spec.drill_text = Some(text.clone());
        let handle = start_run(&engine, spec, &targets).await?;
        let run = progress::follow(handle, &stop).await;
        progress::summary(&run, &engine);
        exit = exit.worst(Exit::of(run.status));
        let halted = run.status == firedrill::history::RunStatus::Halted;
        runs.push(run);
        if halted {
            break;
        }
    }
    targets.shutdown().await;
    println!();
    println!("demo finished:");
    for r in &runs {
        println!("  {}  {:<18} {}", r.id, r.scenario.name, r.status);
    }
    println!(
        "see them again with `firedrill history`, and one timeline with `firedrill show <run>`"
    );
    Ok(exit)
}
