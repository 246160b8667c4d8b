use super::{Exit, Failure, open_engine, parse_params, progress, usage};
use firedrill::{Drill, RunSpec};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A drill file (.toml), a component (.wasm), or `bundled:NAME`
    target: String,
    /// A scenario parameter, name=value (repeatable; overrides the drill file)
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Seed of the run's generator (default: the drill's, else random)
    #[arg(long)]
    seed: Option<u64>,
    /// Record the faults the scenario asks for without applying them, and print the plan
    #[arg(long)]
    dry_run: bool,
}

pub(crate) async fn run(args: Args, data_dir: &Path) -> Result<Exit, Failure> {
    let drill = load_drill(&args.target)?;
    let engine = open_engine(data_dir, true)?;
    let (bytes, source) = scenario_bytes(&drill, &args.target)?;
    let scenario = engine.load(&bytes, &source).map_err(usage)?;
    let mut params = drill.params();
    params.extend(parse_params(&args.params)?);

    let targets = engine.start_targets(&drill.targets).await.map_err(usage)?;
    let mut spec = RunSpec::new(scenario);
    spec.params = params;
    spec.seed = args.seed.or(drill.scenario.seed);
    spec.targets = targets.clone();
    spec.policy = drill.policy.clone();
    spec.limits = drill.limits.clone();
    spec.checks = drill.checks.clone();
    spec.dry_run = args.dry_run;
    spec.drill = drill.file.as_ref().map(|f| f.display().to_string());
    let handle = engine.start(spec).map_err(usage)?;
    let run = progress::follow(handle, &engine).await;
    targets.shutdown().await;
    progress::summary(&run, &engine);
    if args.dry_run {
        progress::plan(&run, &engine);
    }
    Ok(Exit::of(run.status))
}

fn load_drill(target: &str) -> Result<Drill, Failure> {
    if target.ends_with(".toml") {
        Drill::load(Path::new(target)).map_err(usage)
    } else {
        Ok(Drill::default())
    }
}

/// The component bytes and a name for them: from the drill, a `.wasm` path,
/// or `bundled:NAME`.
pub(crate) fn scenario_bytes(drill: &Drill, target: &str) -> Result<(Vec<u8>, String), Failure> {
    let bundled = |name: &str| {
        firedrill::bundled::get(name)
            .map(|b| (b.to_vec(), format!("bundled:{name}")))
            .ok_or_else(|| {
                usage(format!(
                    "no bundled scenario `{name}` (bundled: {})",
                    firedrill::bundled::names().join(", ")
                ))
            })
    };
    let path: PathBuf = if target.ends_with(".toml") {
        match (&drill.scenario.path, &drill.scenario.bundled) {
            (Some(p), _) => p.clone(),
            (None, Some(name)) => return bundled(name),
            (None, None) => {
                return Err(usage(format!(
                    "{target}: [scenario] needs `path = \"my-scenario.wasm\"` or `bundled = \"NAME\"`"
                )));
            }
        }
    } else if let Some(name) = target.strip_prefix("bundled:") {
        return bundled(name);
    } else {
        PathBuf::from(target)
    };
    let bytes = std::fs::read(&path)
        .map_err(|e| usage(format!("cannot read scenario {}: {e}", path.display())))?;
    Ok((bytes, path.display().to_string()))
}
