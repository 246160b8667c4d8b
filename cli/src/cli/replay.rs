use super::{Exit, Failure, open_engine, progress, start_run, start_targets, stop::Stop, usage};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The run to replay, as `firedrill history` shows it
    run: String,
}

/// Run a recorded run again with the same component, parameters, seed and
/// drill; report the first event where the timelines diverge.
pub(crate) async fn run(args: Args, data_dir: &Path) -> Result<Exit, Failure> {
    let stop = Stop::install()?;
    let id = args.run.parse().map_err(usage)?;
    let engine = open_engine(data_dir, true)?;
    let mut plan = engine.plan_replay(id).map_err(usage)?;
    // What a run would be refused for (protected ports, pids, grants),
    // before any target starts: the policy may have changed since.
    super::preflight(&engine, &plan.drill, &plan.spec.scenario, &plan.spec.params).await?;
    let targets = start_targets(&engine, &plan.drill.targets, &stop).await?;
    plan.spec.targets = targets.clone();
    let handle = start_run(&engine, plan.spec, &targets).await?;
    let run = progress::follow(handle, &stop).await;
    targets.shutdown().await;
    let replay = engine.compare(plan.original, run)?;
    progress::summary(&replay.run, &engine);
    println!(
        "replay of run {} as run {}: {} then, {} now",
        replay.original.id, replay.run.id, replay.original.status, replay.run.status
    );
    let exit = Exit::of(replay.run.status);
    match &replay.divergence {
        None => {
            println!("the timelines match: no divergence");
            Ok(exit)
        }
        Some(d) => {
            println!("first divergence at compared event #{}:", d.index);
            println!("  then: {}", d.old.as_deref().unwrap_or("(timeline ended)"));
            println!("  now:  {}", d.new.as_deref().unwrap_or("(timeline ended)"));
            // A verdict worse than a failed scenario says more; else 6.
            Ok(match exit {
                Exit::Pass | Exit::Fail => Exit::Diverged,
                other => other,
            })
        }
    }
}
