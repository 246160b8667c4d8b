use super::{Exit, Failure};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The drill file
    drill: PathBuf,
}

pub(crate) async fn run(args: Args, data_dir: &std::path::Path) -> Result<Exit, Failure> {
    let engine = super::scratch_engine(data_dir)?;
    let drill = match firedrill::Drill::load(&args.drill) {
        Ok(d) => d,
        Err(e) => {
            println!("{e}\n1 problem(s)");
            return Ok(Exit::Usage);
        }
    };
    let bytes = super::packages::drill_scenario(&engine, &drill, data_dir, false, false)
        .await
        .map(|(bytes, source, _)| (bytes, source));
    match firedrill::check::check_drill(&engine, &drill, bytes).await {
        Ok(c) => {
            println!(
                "{}: ok: scenario {}, {} target(s), {} steady-state check(s); {}",
                args.drill.display(),
                c.scenario,
                c.targets,
                c.checks,
                c.compiled
            );
            Ok(Exit::Pass)
        }
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            println!("{} problem(s)", problems.len());
            Ok(Exit::Usage)
        }
    }
}
