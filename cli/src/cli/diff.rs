use super::history::ask;
use super::{Exit, Failure, usage};
use firedrill::control::{Request, Response};
use firedrill::history::{Event, Run};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The first run
    a: String,
    /// The second run
    b: String,
}

async fn fetch(data_dir: &Path, id: &str) -> Result<(Run, Vec<Event>), Failure> {
    let id = id.parse().map_err(usage)?;
    match ask(data_dir, Request::Show { run: Some(id) }).await? {
        Response::Show { run, timeline, .. } => Ok((*run, timeline)),
        Response::Error { message } => Err(usage(message)),
        other => Err(usage(format!("unexpected answer: {other:?}"))),
    }
}

/// Compare two runs: scenario, verdicts, measurements, timelines.
pub(crate) async fn run(args: Args, data_dir: &Path) -> Result<Exit, Failure> {
    let (a, ta) = fetch(data_dir, &args.a).await?;
    let (b, tb) = fetch(data_dir, &args.b).await?;
    if a.scenario.name != b.scenario.name {
        println!(
            "note: different scenarios ({} and {})",
            a.scenario.name, b.scenario.name
        );
    } else if a.scenario.sha256 != b.scenario.sha256 {
        println!(
            "note: different builds of {} ({} and {})",
            a.scenario.name,
            &a.scenario.sha256[..12],
            &b.scenario.sha256[..12]
        );
    }
    println!(
        "{:<24} {:<24} {:<24}",
        "",
        a.id.to_string(),
        b.id.to_string()
    );
    if a.dry_run != b.dry_run {
        let (dry, real) = if a.dry_run { (&a, &b) } else { (&b, &a) };
        println!(
            "note: run {} is a dry run (its faults were planned, not applied) and run {} is not",
            dry.id, real.id
        );
    }
    println!("{:<24} {:<24} {:<24}", "status", a.verdict(), b.verdict());
    println!("{:<24} {:<24} {:<24}", "seed", a.seed, b.seed);
    for (k, va) in &a.params {
        let vb = b.params.get(k).map(String::as_str).unwrap_or("-");
        if va != vb {
            let (va, vb) = if a.is_secret_param(k) || b.is_secret_param(k) {
                ("(secret)", "(secret, different)")
            } else {
                (va.as_str(), vb)
            };
            let (va, vb) = (firedrill::drill::elide(va), firedrill::drill::elide(vb));
            println!("{:<24} {:<24} {:<24}", format!("param {k}"), va, vb);
        }
    }
    let measures = |r: &Run| {
        r.outcome
            .iter()
            .flat_map(|o| o.measurements.clone())
            .collect::<Vec<_>>()
    };
    let (ma, mb) = (measures(&a), measures(&b));
    for m in &ma {
        let other = mb.iter().find(|x| x.name == m.name);
        let (vb, delta) = match other {
            Some(x) if m.value != 0.0 => (
                format!("{} {}", x.value, x.unit),
                format!("{:+.1}%", (x.value - m.value) / m.value.abs() * 100.0),
            ),
            Some(x) => (format!("{} {}", x.value, x.unit), String::new()),
            None => ("-".into(), String::new()),
        };
        println!(
            "{:<24} {:<24} {:<24} {delta}",
            m.name,
            format!("{} {}", m.value, m.unit),
            vb
        );
    }
    for m in mb.iter().filter(|m| !ma.iter().any(|x| x.name == m.name)) {
        println!(
            "{:<24} {:<24} {:<24}",
            m.name,
            "-",
            format!("{} {}", m.value, m.unit)
        );
    }
    match firedrill::replay::first_divergence(&ta, &tb) {
        None => println!("timelines: the same"),
        Some(d) => {
            println!("timelines: first divergence at compared event #{}", d.index);
            println!("  {}: {}", a.id, d.old.as_deref().unwrap_or("(ended)"));
            println!("  {}: {}", b.id, d.new.as_deref().unwrap_or("(ended)"));
        }
    }
    Ok(Exit::Pass)
}
