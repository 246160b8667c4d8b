use super::{Exit, Failure, usage};
use firedrill::control::{self, Request, Response};
use firedrill::history::{Run, RunStatus, unix_ms};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only runs of this scenario
    #[arg(long)]
    scenario: Option<String>,
    /// Only runs with this status (passed, failed, aborted, …)
    #[arg(long)]
    status: Option<String>,
    /// Only runs started within this long, e.g. 2h or 7d
    #[arg(long)]
    since: Option<String>,
    /// At most this many
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Answer `request` from the data dir: directly when no engine holds it,
/// else through the control socket of the engine that does.
pub(crate) async fn ask(data_dir: &Path, request: Request) -> Result<Response, Failure> {
    match super::open_engine(data_dir, false) {
        Ok(engine) => Ok(control::answer(&engine, request)),
        Err(f) if f.exit == Exit::Usage => {
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
    let status = match &args.status {
        Some(s) => Some(
            serde_json::from_value::<RunStatus>(serde_json::Value::String(s.clone()))
                .map_err(|_| usage(format!("--status `{s}`: use passed, failed, steady-state-violated, aborted, halted, crashed, revert-failed, refused or running")))?,
        ),
        None => None,
    };
    let since = match &args.since {
        Some(s) => {
            let d =
                humantime::parse_duration(s).map_err(|e| usage(format!("--since `{s}`: {e}")))?;
            Some(unix_ms().saturating_sub(d.as_millis() as u64))
        }
        None => None,
    };
    let request = Request::Runs {
        scenario: args.scenario,
        status,
        since,
        limit: Some(args.limit),
    };
    let runs = match ask(data_dir, request).await? {
        Response::Runs { runs } => runs,
        Response::Error { message } => return Err(usage(message)),
        other => return Err(usage(format!("unexpected answer: {other:?}"))),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(Exit::Pass);
    }
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
            r.status.as_str(),
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
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
