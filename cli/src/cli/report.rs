//! `--report KIND=PATH` and GitHub Actions output for finished runs.

use super::{Exit, Failure, usage};
use firedrill::history::RunStatus;
use firedrill::report::RunReport;
use firedrill::{Engine, history::Run};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A parsed `--report` argument.
#[derive(Debug, Clone)]
pub(crate) enum Report {
    Junit(PathBuf),
    Json(PathBuf),
    Markdown(PathBuf),
}

impl Report {
    fn path(&self) -> &Path {
        match self {
            Report::Junit(p) | Report::Json(p) | Report::Markdown(p) => p,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Report::Junit(_) => "junit",
            Report::Json(_) => "json",
            Report::Markdown(_) => "markdown",
        }
    }
}

/// Parse `--report` arguments and check that every destination can be
/// written, so a bad path is refused before the run touches anything
/// rather than found after it. Every bad destination is named at once.
pub(crate) fn parse(raw: &[String]) -> Result<Vec<Report>, Failure> {
    let reports = raw
        .iter()
        .map(|r| match r.split_once('=') {
            Some(("junit", p)) if !p.is_empty() => Ok(Report::Junit(p.into())),
            Some(("json", p)) if !p.is_empty() => Ok(Report::Json(p.into())),
            Some(("markdown", p)) if !p.is_empty() => Ok(Report::Markdown(p.into())),
            _ => Err(usage(format!(
                "--report `{r}`: write junit=PATH, json=PATH or markdown=PATH"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut problems = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let path = r.path();
        let problem = if reports[..i].iter().any(|o| o.path() == path) {
            Err("another --report writes the same file".to_string())
        } else {
            check_destination(path)
        };
        if let Err(cause) = problem {
            problems.push(format!("--report {}={}: {cause}", r.kind(), path.display()));
        }
    }
    if problems.is_empty() {
        Ok(reports)
    } else {
        Err(usage(format!(
            "cannot write {} report destination(s), so nothing was run:\n  {}",
            problems.len(),
            problems.join("\n  ")
        )))
    }
}

/// Whether `path` can take a report: its directory exists or can be made
/// (it is made now, as writing would), and the file can be opened for
/// writing. An existing file is opened without truncating it, and a file
/// made to find out is removed again, so a run that never finishes leaves
/// earlier reports and the directory listing as they were.
fn check_destination(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err("is a directory; give a file path".into());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Said plainly: create_dir_all reports a file in the way as
        // "File exists" or "Not a directory", depending on where it is.
        if let Some(file) = dir.ancestors().find(|a| a.exists() && !a.is_dir()) {
            return Err(format!("{} is a file, not a directory", file.display()));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    let open = |o: &mut std::fs::OpenOptions| o.open(path).map(drop);
    match open(std::fs::OpenOptions::new().append(true)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            open(std::fs::OpenOptions::new().write(true).create_new(true))
                .map_err(|e| format!("cannot create it: {e}"))?;
            let _ = std::fs::remove_file(path);
            Ok(())
        }
        Err(e) => Err(format!("cannot write it: {e}")),
    }
}

/// Write the reports of `run`, and when running in GitHub Actions, turn
/// problems into annotations and the summary into the job summary. A report
/// that cannot be written does not stop the others: every failure is
/// reported together, and the exit code is the run's verdict or usage,
/// whichever is worse.
pub(crate) fn emit(engine: &Engine, run: &Run, reports: &[Report]) -> Result<(), Failure> {
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    if reports.is_empty() && !github {
        return Ok(());
    }
    let report = RunReport::load(engine, run.id)?
        .ok_or_else(|| usage(format!("run {} is not in history", run.id)))?;
    let mut failures = Vec::new();
    for r in reports {
        let path = r.path();
        let text = match r {
            Report::Junit(_) => report.junit(),
            Report::Json(_) => report.json(),
            Report::Markdown(_) => report.markdown(),
        };
        let written = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create directory {}: {e}", dir.display())),
            None => Ok(()),
        }
        .and_then(|()| std::fs::write(path, text).map_err(|e| format!("cannot write it: {e}")));
        if let Err(cause) = written {
            failures.push(format!("--report {}={}: {cause}", r.kind(), path.display()));
        }
    }
    if github {
        github_output(run, &report);
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(Failure {
        exit: Exit::of(run.status).worst(Exit::Usage),
        error: anyhow::anyhow!(
            "run {} {}, but {} of {} report(s) could not be written:\n  {}",
            run.id,
            run.status,
            failures.len(),
            reports.len(),
            failures.join("\n  ")
        ),
    })
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
