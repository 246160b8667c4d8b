use super::{Exit, Failure, usage};
use firedrill::control::{self, Request, Response};
use firedrill::history::{Run, RunStatus, unix_ms};
use std::path::Path;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Delete old runs, their timelines and settled ledger entries
    Prune(PruneArgs),
    /// Pass rate and a measurement over a scenario's recent runs
    Trend(TrendArgs),
}

#[derive(Debug, clap::Args)]
struct PruneArgs {
    /// Keep the newest N runs
    #[arg(long)]
    keep: Option<usize>,
    /// Delete runs started longer ago than this, e.g. 30d (with --keep: only runs that are both older and beyond the newest N)
    #[arg(long)]
    older_than: Option<String>,
    /// List the runs that would be deleted, and delete nothing
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, clap::Args)]
struct TrendArgs {
    /// The scenario
    scenario: String,
    /// A measurement to follow (default: the first the scenario reports)
    #[arg(long)]
    measure: Option<String>,
    /// Over the last N runs (1 or more)
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    last: usize,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only runs of this scenario
    #[arg(long)]
    scenario: Option<String>,
    /// Only runs with this status (passed, failed, aborted, …)
    #[arg(long)]
    status: Option<String>,
    /// Only runs started within this long, e.g. 2h or 7d
    #[arg(long)]
    since: Option<String>,
    /// At most this many (1 or more)
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    limit: usize,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `--limit` and `--last`: a count of runs to show. 0 is refused rather
/// than showing nothing (a listing of no runs answers no question; it once
/// showed one run).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("0 would show no runs: give 1 or more".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a number of runs")),
    }
}

/// Answer `request` from the data dir: directly when no engine holds it,
/// else through the control socket of the engine that does.
pub(crate) async fn ask(data_dir: &Path, request: Request) -> Result<Response, Failure> {
    match super::open_engine(data_dir, false) {
        Ok(engine) => Ok(control::answer(&engine, request)),
        Err(f) if f.error.is::<super::DataDirInUse>() => {
            control::request(data_dir, &request).await.map_err(|e| {
                usage(format!(
                    "{}; and its control socket did not answer: {e}",
                    f.error
                ))
            })
        }
        Err(f) => Err(f),
    }
}

pub(crate) async fn run(args: Args, data_dir: &Path) -> Result<Exit, Failure> {
    match args.action {
        Some(Action::Prune(p)) => prune(p, data_dir).await,
        Some(Action::Trend(t)) => trend(t, data_dir).await,
        None => list(args.list, data_dir).await,
    }
}

fn ago(flag: &str, s: &str) -> Result<u64, Failure> {
    let d = humantime::parse_duration(s).map_err(|e| usage(format!("{flag} `{s}`: {e}")))?;
    Ok(unix_ms().saturating_sub(d.as_millis() as u64))
}

async fn prune(args: PruneArgs, data_dir: &Path) -> Result<Exit, Failure> {
    if args.keep.is_none() && args.older_than.is_none() {
        return Err(usage(
            "history prune: give --keep N and/or --older-than DURATION",
        ));
    }
    let before = args
        .older_than
        .as_deref()
        .map(|s| ago("--older-than", s))
        .transpose()?;
    let (keep, dry_run) = (args.keep, args.dry_run);
    let request = if dry_run {
        Request::PruneDryRun { keep, before }
    } else {
        Request::Prune { keep, before }
    };
    match ask(data_dir, request).await? {
        Response::Pruned { runs, list, .. } => {
            for r in &list {
                println!(
                    "{:<16}  {:<19}  {:<18}  {}",
                    r.id.to_string(),
                    when(r.started_at),
                    r.scenario.name,
                    r.status.as_str()
                );
            }
            if dry_run {
                println!("would delete {runs} run(s) (dry run: nothing deleted)");
            } else {
                println!("deleted {runs} run(s)");
            }
        }
        Response::Error { message } => return Err(usage(message)),
        other => return Err(usage(format!("unexpected answer: {other:?}"))),
    }
    Ok(Exit::Pass)
}

async fn trend(args: TrendArgs, data_dir: &Path) -> Result<Exit, Failure> {
    let request = Request::Runs {
        scenario: Some(args.scenario.clone()),
        status: None,
        since: None,
        limit: None,
    };
    let mut runs = match ask(data_dir, request).await? {
        Response::Runs { runs, .. } => runs,
        Response::Error { message } => return Err(usage(message)),
        other => return Err(usage(format!("unexpected answer: {other:?}"))),
    };
    // A dry run applied nothing: its verdict says nothing of resilience.
    runs.retain(|r| r.status != RunStatus::Running && !r.dry_run);
    runs.truncate(args.last);
    runs.reverse();
    if runs.is_empty() {
        println!("no finished runs of `{}`", args.scenario);
        return Ok(Exit::Pass);
    }
    let passed = runs
        .iter()
        .filter(|r| r.status == RunStatus::Passed)
        .count();
    println!(
        "{}: {passed}/{} passed ({:.0}%) over the last {} run(s), oldest first",
        args.scenario,
        runs.len(),
        passed as f64 * 100.0 / runs.len() as f64,
        runs.len()
    );
    let marks: String = runs
        .iter()
        .map(|r| {
            if r.status == RunStatus::Passed {
                '+'
            } else {
                'x'
            }
        })
        .collect();
    println!("  verdicts  {marks}");
    let name = args.measure.or_else(|| {
        runs.iter().rev().find_map(|r| {
            r.outcome
                .as_ref()?
                .measurements
                .first()
                .map(|m| m.name.clone())
        })
    });
    if let Some(name) = name {
        let values: Vec<(String, f64, String)> = runs
            .iter()
            .filter_map(|r| {
                let m = r
                    .outcome
                    .as_ref()?
                    .measurements
                    .iter()
                    .find(|m| m.name == name)?;
                Some((r.id.to_string(), m.value, m.unit.clone()))
            })
            .collect();
        if values.is_empty() {
            println!("  no run measured `{name}`");
        } else {
            let min = values.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);
            let max = values.iter().map(|v| v.1).fold(f64::NEG_INFINITY, f64::max);
            let mean = values.iter().map(|v| v.1).sum::<f64>() / values.len() as f64;
            let unit = &values[0].2;
            println!("  {name}: min {min:.2} {unit}, mean {mean:.2} {unit}, max {max:.2} {unit}");
            for (id, v, unit) in &values {
                let width = if max > min {
                    ((v - min) / (max - min) * 30.0).round() as usize
                } else {
                    15
                };
                println!("    {id}  {:>10.2} {unit}  {}", v, "#".repeat(width + 1));
            }
        }
    }
    Ok(Exit::Pass)
}

async fn list(args: ListArgs, data_dir: &Path) -> Result<Exit, Failure> {
    let status = match &args.status {
        Some(s) => Some(
            serde_json::from_value::<RunStatus>(serde_json::Value::String(s.clone()))
                .map_err(|_| usage(format!("--status `{s}`: use passed, failed, steady-state-violated, aborted, halted, crashed, revert-failed, refused or running")))?,
        ),
        None => None,
    };
    let since = args
        .since
        .as_deref()
        .map(|s| ago("--since", s))
        .transpose()?;
    let request = Request::Runs {
        scenario: args.scenario,
        status,
        since,
        limit: Some(args.limit),
    };
    let (runs, halt) = match ask(data_dir, request).await? {
        Response::Runs { runs, halt } => (runs, halt),
        Response::Error { message } => return Err(usage(message)),
        other => return Err(usage(format!("unexpected answer: {other:?}"))),
    };
    if args.json {
        if let Some(h) = &halt {
            eprintln!("HALTED: {h}; new runs are refused until `firedrill resume`");
        }
        let runs: Vec<Run> = runs.iter().map(Run::for_display).collect();
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(Exit::Pass);
    }
    super::halt::banner(&halt);
    if runs.is_empty() {
        println!("no runs yet: try `firedrill demo`");
        return Ok(Exit::Pass);
    }
    println!(
        "{:<16}  {:<19}  {:<18}  {:<22}  {:>7}  summary",
        "run", "started (UTC)", "scenario", "status", "time"
    );
    for r in &runs {
        println!(
            "{:<16}  {:<19}  {:<18}  {:<22}  {:>7}  {}",
            r.id.to_string(),
            when(r.started_at),
            r.scenario.name,
            r.verdict(),
            duration(r),
            line(r)
        );
    }
    Ok(Exit::Pass)
}

fn duration(r: &Run) -> String {
    match r.ended_at {
        Some(e) => format!("{:.1}s", e.saturating_sub(r.started_at) as f64 / 1000.0),
        None => "…".into(),
    }
}

fn line(r: &Run) -> String {
    let s = r
        .outcome
        .as_ref()
        .map(|o| o.summary.clone())
        .or_else(|| r.error.clone())
        .unwrap_or_default();
    if s.chars().count() > 70 {
        format!("{}…", s.chars().take(69).collect::<String>())
    } else {
        s
    }
}

/// `YYYY-MM-DD HH:MM:SS` from Unix ms (UTC).
pub(crate) fn when(ms: u64) -> String {
    firedrill::history::iso8601(ms).replace('T', " ")
}
