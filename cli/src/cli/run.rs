use super::{
    Exit, Failure, open_engine, parse_params, progress, start_run, start_targets, stop::Stop, usage,
};
use firedrill::{Drill, RunSpec};
use std::collections::BTreeMap;
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
    /// Write a report: junit=PATH, json=PATH or markdown=PATH (repeatable)
    #[arg(long = "report", value_name = "KIND=PATH")]
    reports: Vec<String>,
    /// Resolve the drill's package again instead of using firedrill.lock
    #[arg(long)]
    update: bool,
    /// Launch on a `firedrill serve` at this URL instead of here (the token
    /// comes from FIREDRILL_TOKEN); TARGET is then a package (or a drill
    /// naming one)
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// With --server: the team the run is for
    #[arg(long, requires = "server")]
    team: Option<String>,
    /// With --server: the server's registered target that plays a target
    /// the scenario needs, NEED=NAME (repeatable; default: the same name)
    #[arg(long = "target", value_name = "NEED=NAME", requires = "server")]
    targets: Vec<String>,
}

pub(crate) async fn run(args: Args, data_dir: &Path) -> Result<Exit, Failure> {
    if let Some(server) = args.server.clone() {
        return remote(args, server).await;
    }
    let stop = Stop::install()?;
    let reports = super::report::parse(&args.reports)?;
    let cli_params = parse_params(&args.params)?;
    let drill = load_drill(&args.target)?;
    let engine = open_engine(data_dir, true)?;
    let (bytes, source, package) = if is_drill(&args.target) {
        super::packages::drill_scenario(&engine, &drill, data_dir, true, args.update)
            .await
            .map_err(usage)?
    } else {
        let (bytes, source) = scenario_bytes(&drill, &args.target)?;
        (bytes, source, None)
    };
    let mut scenario = engine.load(&bytes, &source).map_err(usage)?;
    if let Some(p) = package {
        scenario = scenario.with_package(p);
    }
    let mut params = drill.params();
    params.extend(cli_params);
    // Everything a run would be refused for, before any target starts.
    super::preflight(&engine, &drill, &scenario, &params).await?;

    let targets = start_targets(&engine, &drill.targets, &stop).await?;
    let mut spec = RunSpec::new(scenario);
    spec.params = params;
    spec.seed = args.seed.or(drill.scenario.seed);
    spec.targets = targets.clone();
    spec.policy = drill.policy.clone();
    spec.limits = drill.limits.clone();
    spec.checks = drill.checks.clone();
    spec.dry_run = args.dry_run;
    spec.drill = drill.file.as_ref().map(|f| f.display().to_string());
    spec.drill_text = drill.text.clone();
    let handle = start_run(&engine, spec, &targets).await?;
    let run = progress::follow(handle, &stop).await;
    targets.shutdown().await;
    progress::summary(&run, &engine);
    if args.dry_run {
        progress::plan(&run, &engine);
    }
    super::report::emit(&engine, &run, &reports)?;
    Ok(Exit::of(run.status))
}

/// A drill file by its extension, in any case (`Drill.TOML` too).
fn is_drill(target: &str) -> bool {
    Path::new(target)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

fn load_drill(target: &str) -> Result<Drill, Failure> {
    if is_drill(target) {
        Drill::load(Path::new(target)).map_err(usage)
    } else {
        Ok(Drill::default())
    }
}

/// The component bytes and a name for them: from the drill, a `.wasm` path,
/// or `bundled:NAME`.
pub(crate) fn scenario_bytes(drill: &Drill, target: &str) -> Result<(Vec<u8>, String), Failure> {
    if is_drill(target) {
        return drill.scenario_bytes().map_err(usage);
    }
    let mut d = Drill::default();
    match target.strip_prefix("bundled:") {
        Some(name) => d.scenario.bundled = Some(name.to_string()),
        None => d.scenario.path = Some(PathBuf::from(target)),
    }
    d.scenario_bytes().map_err(|e| usage(e.message))
}

/// `run --server`: the package (from the drill, or named directly) and
/// parameters, launched there.
async fn remote(args: Args, server: String) -> Result<Exit, Failure> {
    let mut params = BTreeMap::new();
    let scenario = if is_drill(&args.target) {
        let drill = load_drill(&args.target)?;
        params = drill.params();
        drill.scenario.package.clone().ok_or_else(|| {
            usage(format!(
                "{}: a run on a server names a package in [scenario] (`package = \"ns:name@^1\"`); its targets are the server's",
                args.target
            ))
        })?
    } else {
        args.target.clone()
    };
    params.extend(parse_params(&args.params)?);
    let targets = parse_params(&args.targets)?;
    super::remote::run(super::remote::Remote {
        server,
        team: args.team,
        scenario,
        params,
        targets,
        dry_run: args.dry_run,
        seed: args.seed,
    })
    .await
}
