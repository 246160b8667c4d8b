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

pub(crate) async fn run(args: Args, data_dir: &std::path::Path) -> Result<Exit, Failure> {
    let engine = super::scratch_engine(data_dir)?;
    let (bytes, source) = super::run::scenario_bytes(&Drill::default(), &args.scenario)?;
    let scenario = engine.load(&bytes, &source).map_err(usage)?;
    let mut meta = engine
        .inspect(&scenario, &parse_params(&args.params)?)
        .await
        .map_err(usage)?;
    // A secret's default is shown no more than its value would be.
    for p in meta.params.iter_mut().filter(|p| p.secret) {
        if let Some(d) = &mut p.default {
            *d = firedrill::history::MASKED.to_string();
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "sha256": scenario.sha256(), "compiled": scenario.compiled(), "metadata": meta })
            )?
        );
        return Ok(Exit::Pass);
    }
    println!("{} {}", meta.name, meta.version);
    println!("  {}", meta.description);
    println!("  sha256 {}", scenario.sha256());
    println!(
        "  built with {}; {} core instances",
        match scenario.toolchain() {
            firedrill::runtime::Toolchain::Rust => "Rust",
            firedrill::runtime::Toolchain::Python => "Python (componentize-py)",
            firedrill::runtime::Toolchain::JavaScript => "JavaScript (ComponentizeJS)",
            firedrill::runtime::Toolchain::Other => "an unknown toolchain",
        },
        scenario.core_instances()
    );
    let compiled = scenario.compiled();
    let advice = if compiled.tier == firedrill::runtime::Tier::Baseline {
        " (`firedrill check` on a drill running it compiles optimized code for later runs)"
    } else {
        ""
    };
    println!("  {compiled}{advice}");
    print_params(&meta.params);
    println!("needs (grant these in the drill file):");
    if meta.needs.is_empty() {
        println!("  nothing");
    }
    for n in &meta.needs {
        println!("  {n}");
    }
    Ok(Exit::Pass)
}

/// A scenario's parameters, one a line, a secret one's default masked (as
/// its value would be).
pub(super) fn print_params(params: &[firedrill::ParamSpec]) {
    println!("parameters:");
    for p in params {
        let default = match (&p.default, p.secret) {
            (Some(_), true) => format!(" = {}", firedrill::history::MASKED),
            (Some(d), false) => format!(" = {d}"),
            (None, _) => " (required)".into(),
        };
        let ty = if p.secret {
            format!("{}, secret", p.ty)
        } else {
            p.ty.clone()
        };
        println!("  {} ({ty}){default}: {}", p.name, p.doc);
    }
}
