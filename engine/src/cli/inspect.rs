use super::{Exit, Failure, parse_params, usage};
use firedrill::Drill;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A component (.wasm) or `bundled:NAME`
    scenario: String,
    /// A parameter, name=value, to see the needs it implies
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: Args) -> Result<Exit, Failure> {
    // A temporary engine: inspecting needs no data dir.
    let engine = super::scratch_engine()?;
    let (bytes, source) = super::run::scenario_bytes(&Drill::default(), &args.scenario)?;
    let scenario = engine.load(&bytes, &source).map_err(usage)?;
    let meta = engine
        .inspect(&scenario, &parse_params(&args.params)?)
        .await
        .map_err(usage)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "sha256": scenario.sha256(), "metadata": meta })
            )?
        );
        return Ok(Exit::Pass);
    }
    println!("{} {}", meta.name, meta.version);
    println!("  {}", meta.description);
    println!("  sha256 {}", scenario.sha256());
    println!("parameters:");
    for p in &meta.params {
        let default = p
            .default
            .as_deref()
            .map(|d| format!(" = {d}"))
            .unwrap_or_else(|| " (required)".into());
        println!("  {} ({}){default}: {}", p.name, p.ty, p.doc);
    }
    println!("needs (grant these in the drill file):");
    if meta.needs.is_empty() {
        println!("  nothing");
    }
    for n in &meta.needs {
        println!("  {n}");
    }
    Ok(Exit::Pass)
}
