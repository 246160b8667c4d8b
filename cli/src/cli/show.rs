use super::history::{ask, when};
use super::{Exit, Failure, usage};
use firedrill::control::{Request, Response};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Run id as `firedrill history` shows it (default: the newest run)
    run: Option<String>,
    /// Print JSON (the run and its timeline)
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: Args, data_dir: &Path) -> Result<Exit, Failure> {
    let id = match args.run.as_deref() {
        None | Some("last") => None,
        Some(s) => Some(s.parse().map_err(usage)?),
    };
    let (run, timeline, halt) = match ask(data_dir, Request::Show { run: id }).await? {
        Response::Show {
            run,
            timeline,
            halt,
        } => (run, timeline, halt),
        Response::Error { message } => return Err(usage(message)),
        other => return Err(usage(format!("unexpected answer: {other:?}"))),
    };
    let run = Box::new(run.for_display());
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "run": run, "timeline": timeline }))?
        );
        return Ok(Exit::Pass);
    }
    super::halt::banner(&halt);
    println!(
        "run {}  {} {}  {}",
        run.id,
        run.scenario.name,
        run.scenario.version,
        run.verdict()
    );
    if run.dry_run {
        println!("  dry run   the faults were planned and recorded, none was applied");
    }
    println!("  started   {} UTC", when(run.started_at));
    println!(
        "  scenario  {} (sha256 {})",
        run.scenario.source, run.scenario.sha256
    );
    if let Some(p) = &run.scenario.package {
        println!(
            "  package   {} {} (signed by {}, from {})",
            p.id, p.digest, p.signer, p.registry
        );
    }
    println!("  seed      {}", run.seed);
    if !run.params.is_empty() {
        let p: Vec<String> = run
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", firedrill::drill::elide(v)))
            .collect();
        println!("  params    {}", p.join(" "));
    }
    if let Some(e) = &run.error {
        println!("  cause     {e}");
    }
    if let Some(o) = &run.outcome {
        println!("  summary   {}", o.summary);
    }
    println!("timeline:");
    for ev in &timeline {
        let t = ev.at_us as f64 / 1e6;
        let text = &ev.kind;
        println!("  {t:9.3}s  {text}");
    }
    Ok(Exit::Pass)
}
