//! `--report KIND=PATH` and GitHub Actions output for finished runs.

use super::{Failure, usage};
use firedrill::history::RunStatus;
use firedrill::report::RunReport;
use firedrill::{Engine, history::Run};
use std::io::Write;
use std::path::PathBuf;

/// A parsed `--report` argument.
#[derive(Debug, Clone)]
pub(crate) enum Report {
    Junit(PathBuf),
    Json(PathBuf),
    Markdown(PathBuf),
}

pub(crate) fn parse(raw: &[String]) -> Result<Vec<Report>, Failure> {
    raw.iter()
        .map(|r| match r.split_once('=') {
            Some(("junit", p)) if !p.is_empty() => Ok(Report::Junit(p.into())),
            Some(("json", p)) if !p.is_empty() => Ok(Report::Json(p.into())),
            Some(("markdown", p)) if !p.is_empty() => Ok(Report::Markdown(p.into())),
            _ => Err(usage(format!(
                "--report `{r}`: write junit=PATH, json=PATH or markdown=PATH"
            ))),
        })
        .collect()
}

/// Write the reports of `run`, and when running in GitHub Actions, turn
/// problems into annotations and the summary into the job summary.
pub(crate) fn emit(engine: &Engine, run: &Run, reports: &[Report]) -> Result<(), Failure> {
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    if reports.is_empty() && !github {
        return Ok(());
    }
    let report = RunReport::load(engine, run.id)?
        .ok_or_else(|| usage(format!("run {} is not in history", run.id)))?;
    for r in reports {
        let (path, text) = match r {
            Report::Junit(p) => (p, report.junit()),
            Report::Json(p) => (p, report.json()),
            Report::Markdown(p) => (p, report.markdown()),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| usage(format!("cannot create {}: {e}", dir.display())))?;
        }
        std::fs::write(path, text)
            .map_err(|e| usage(format!("cannot write report {}: {e}", path.display())))?;
    }
    if github {
        github_output(run, &report);
    }
    Ok(())
}

/// Workflow commands: https://docs.github.com/actions/reference/workflow-commands-for-github-actions
fn github_output(run: &Run, report: &RunReport) {
    let escape = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    if run.status != RunStatus::Passed {
        let title = format!("firedrill {} {}", run.scenario.name, run.status);
        let message = run
            .error
            .clone()
            .or_else(|| run.outcome.as_ref().map(|o| o.summary.clone()))
            .unwrap_or_default();
        println!(
            "::error title={}::{}",
            escape(&title).replace(',', "%2C").replace(':', "%3A"),
            escape(&message)
        );
    }
    if let Ok(path) = std::env::var("GITHUB_STEP_SUMMARY")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{}", report.markdown());
    }
}
