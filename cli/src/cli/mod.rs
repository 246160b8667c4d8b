//! Command-line verbs, one file each.

mod check;
mod demo;
mod demo_service;
mod diff;
mod gameday;
mod halt;
mod history;
mod inspect;
mod new;
mod packages;
mod progress;
mod proxy;
mod recover;
mod remote;
mod replay;
mod report;
mod run;
mod serve;
mod show;
mod stop;

use clap::{Parser, Subcommand};
use firedrill::history::RunStatus;
use std::path::PathBuf;

/// Exit codes, stable and documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Exit {
    /// The run passed.
    Pass = 0,
    /// The scenario's verdict was fail.
    Fail = 1,
    /// A steady-state check failed (before, during or after).
    SteadyState = 2,
    /// Aborted: trap, time limit, resource limit, scenario error.
    Aborted = 3,
    /// Halted by the operator (Ctrl-C, SIGTERM, `firedrill halt`).
    Halted = 4,
    /// A fault could not be reverted.
    RevertFailed = 5,
    /// `replay`: the run's timeline diverged from the original's.
    Diverged = 6,
    /// Bad command line, drill file, scenario, parameters or grants; a
    /// data dir that cannot be used (a file, no permission).
    Usage = 64,
    /// firedrill itself failed.
    Internal = 70,
    /// The data dir's database cannot be read: damaged, or a disk error
    /// (EX_IOERR).
    IoError = 74,
}

impl Exit {
    pub(crate) fn of(status: RunStatus) -> Exit {
        match status {
            RunStatus::Passed => Exit::Pass,
            RunStatus::Failed => Exit::Fail,
            RunStatus::SteadyStateViolated => Exit::SteadyState,
            RunStatus::Aborted => Exit::Aborted,
            RunStatus::Halted => Exit::Halted,
            RunStatus::RevertFailed => Exit::RevertFailed,
            RunStatus::Refused => Exit::Usage,
            RunStatus::Crashed | RunStatus::Running => Exit::Internal,
        }
    }

    /// The more serious of two.
    pub(crate) fn worst(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Pass => 0,
            Exit::Fail => 1,
            Exit::Diverged => 1,
            Exit::SteadyState => 2,
            Exit::Aborted => 3,
            Exit::Halted => 4,
            Exit::Usage => 5,
            Exit::RevertFailed => 6,
            Exit::IoError => 7,
            Exit::Internal => 8,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// An error for the user: the message, and the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) exit: Exit,
    pub(crate) error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            exit: Exit::Internal,
            error: e.into(),
        }
    }
}

/// `bail!`-like helper for usage and configuration errors.
pub(crate) fn usage(msg: impl std::fmt::Display) -> Failure {
    Failure {
        exit: Exit::Usage,
        error: anyhow::anyhow!("{msg}"),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "firedrill",
    version,
    about = "WebAssembly-pluggable chaos scenarios: provoke failure, revert it, record it"
)]
pub(crate) struct Cli {
    /// Where history, the ledger and compiled code live
    /// [default: $XDG_DATA_HOME/firedrill or ~/.local/share/firedrill]
    #[arg(long, global = true, env = "FIREDRILL_DATA_DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario: a drill file (.toml) or a component (.wasm)
    Run(run::Args),
    /// Start a demo service, put a proxy in front, run the bundled scenarios
    Demo(demo::Args),
    /// List past runs, newest first
    History(history::Args),
    /// Show one run and its timeline
    Show(show::Args),
    /// Show a scenario's metadata, parameters and needs
    Inspect(inspect::Args),
    /// Write a new scenario project in Rust, Python or JavaScript, with a drill to run it
    New(new::Args),
    /// Validate a drill file: syntax, scenario, grants against needs, reachability
    Check(check::Args),
    /// Run a recorded run again with the same inputs; report where the timelines diverge
    Replay(replay::Args),
    /// Compare two runs: verdicts, measurements, timelines
    Diff(diff::Args),
    /// Proxies with a Toxiproxy-compatible control API
    Proxy(proxy::Args),
    /// Serve the team platform: teams, roles, targets and grants, launches
    /// and history over a JSON API
    Serve(serve::Args),
    /// Game days on a `firedrill serve`: report as a responder, show one;
    /// `gameday demo` runs a whole drill here
    #[command(subcommand)]
    Gameday(gameday::Command),
    /// Signing keys for packages
    #[command(subcommand)]
    Key(packages::KeyCommand),
    /// Which keys may sign which package namespaces
    #[command(subcommand)]
    Trust(packages::TrustCommand),
    /// Sign a scenario component and publish it to a registry
    Publish(packages::PublishArgs),
    /// Search a registry's packages
    Search(packages::SearchArgs),
    /// Verify, review and install a package
    Install(packages::InstallArgs),
    /// List installed packages
    Packages {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Check an installed package's digest and signature again
    Verify {
        /// NAMESPACE:NAME@VERSION
        package: String,
    },
    /// Withdraw a published version from new installs
    Yank {
        /// NAMESPACE:NAME@VERSION
        package: String,
        /// The secret key to sign the registry's rewritten index with
        #[arg(long)]
        key: std::path::PathBuf,
        #[command(flatten)]
        registry: packages::RegistryArg,
    },
    /// Rebuild a registry's signed index from the packages it holds
    Reindex {
        /// The secret key to sign the index with
        #[arg(long)]
        key: std::path::PathBuf,
        #[command(flatten)]
        registry: packages::RegistryArg,
    },
    /// Revert faults left by an engine that died, and close its runs
    Recover,
    /// Halt every run of the engine holding the data dir and refuse new ones
    Halt,
    /// Accept runs again after `halt`
    Resume,
    /// The demo's HTTP service (used by `demo`)
    #[command(hide = true)]
    DemoService(demo_service::Args),
    /// Stands between the engine and a spawned service (started by the engine)
    #[command(hide = true)]
    Keep {
        /// The service's command and arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// A stress fault's child process (started by the engine)
    #[command(hide = true)]
    StressChild {
        /// `cpu CORES PERCENT`, `memory BYTES` or `disk BYTES FILE`
        load: Vec<String>,
    },
}

pub(crate) async fn dispatch(cli: Cli) -> Exit {
    let data_dir = cli.data_dir.unwrap_or_else(default_data_dir);
    let result = match cli.command {
        Command::Run(a) => run::run(a, &data_dir).await,
        Command::Demo(a) => demo::run(a, &data_dir).await,
        Command::History(a) => history::run(a, &data_dir).await,
        Command::Show(a) => show::run(a, &data_dir).await,
        Command::Inspect(a) => inspect::run(a, &data_dir).await,
        Command::Check(a) => check::run(a, &data_dir).await,
        Command::New(a) => new::run(a).await,
        Command::Replay(a) => replay::run(a, &data_dir).await,
        Command::Diff(a) => diff::run(a, &data_dir).await,
        Command::Proxy(a) => proxy::run(a).await,
        Command::Serve(a) => serve::run(a, &data_dir).await,
        Command::Gameday(c) => gameday::run(c, &data_dir).await,
        Command::Key(c) => packages::key(c),
        Command::Trust(c) => packages::trust(c, &data_dir),
        Command::Publish(a) => packages::publish(a, &data_dir).await,
        Command::Search(a) => packages::search(a, &data_dir).await,
        Command::Install(a) => packages::install(a, &data_dir).await,
        Command::Packages { json } => packages::packages(json, &data_dir),
        Command::Verify { package } => packages::verify(&package, &data_dir).await,
        Command::Yank {
            package,
            key,
            registry,
        } => packages::yank(&package, &key, registry, &data_dir).await,
        Command::Reindex { key, registry } => packages::reindex(&key, registry, &data_dir).await,
        Command::Recover => recover::run(&data_dir).await,
        Command::Halt => halt::run(&data_dir, true).await,
        Command::Resume => halt::run(&data_dir, false).await,
        Command::DemoService(a) => demo_service::run(a).await,
        // Blocking by design: it only burns CPU, holds memory or writes a
        // file, then waits to be killed.
        Command::Keep { command } => firedrill::targets::process::keeper_main(&command).await,
        Command::StressChild { load } => firedrill::targets::host::child_main(&load)
            .map(|()| Exit::Pass)
            .map_err(usage),
    };
    match result {
        Ok(exit) => exit,
        Err(f) => {
            eprintln!("error: {}", f.error);
            for cause in f.error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            f.exit
        }
    }
}

fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("firedrill");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/firedrill"),
        None => PathBuf::from(".firedrill"),
    }
}

/// Scenario instances a command's engine holds at once. A command runs one
/// drill at a time; the default pool of 1000 slots costs ~5 ms to set up,
/// half of a whole `firedrill run`.
pub(crate) const CLI_MAX_CONCURRENT_RUNS: u32 = 16;

/// The engine of a command that runs nothing (`check`, `inspect`): on the
/// data dir, for its compiled-code cache (an 18 MB Python component then
/// compiles once, not at every `inspect`), or without one while a run
/// holds the data dir.
pub(crate) fn scratch_engine(data_dir: &std::path::Path) -> Result<firedrill::Engine, Failure> {
    let builder = || -> Result<firedrill::EngineBuilder, Failure> {
        Ok(firedrill::EngineBuilder::new()
            .max_concurrent_runs(CLI_MAX_CONCURRENT_RUNS)
            .protected_ports(protected_ports()?))
    };
    match builder()?.data_dir(data_dir).build() {
        Ok(engine) => {
            report_recovery(engine.recovery());
            Ok(engine)
        }
        Err(e) => {
            tracing::debug!("no compiled-code cache ({e}); compiling in memory");
            Ok(builder()?.build()?)
        }
    }
}

/// The data dir is held by another firedrill: commands that only read
/// (`history`, `show`, `halt`) then ask that one through its control socket.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DataDirInUse(String);

/// Open the engine on the data dir. Each way the data dir can fail gets
/// its path, its cause once and what to do: in use (64), unusable (64: a
/// file, permissions, a read-only file system), damaged or unreadable (74).
pub(crate) fn open_engine(
    data_dir: &std::path::Path,
    control: bool,
) -> Result<firedrill::Engine, Failure> {
    open_engine_for(data_dir, control, CLI_MAX_CONCURRENT_RUNS)
}

/// [`open_engine`] with room for `max_runs` runs at once (`serve` runs
/// many teams' drills).
pub(crate) fn open_engine_for(
    data_dir: &std::path::Path,
    control: bool,
    max_runs: u32,
) -> Result<firedrill::Engine, Failure> {
    use firedrill::EngineError::Store;
    use firedrill::store::StoreError;
    let engine = firedrill::EngineBuilder::new()
        .data_dir(data_dir)
        .control_socket(control)
        .protected_ports(protected_ports()?)
        .max_concurrent_runs(max_runs)
        .build()
        .map_err(|e| match e {
            Store(StoreError::Locked(_)) => Failure {
                exit: Exit::Usage,
                error: DataDirInUse(format!(
                    "{e}. Another run is using it: `firedrill history`, `show` and `halt` still work; give this run its own --data-dir to run both at once"
                ))
                .into(),
            },
            Store(StoreError::Unusable { .. }) => usage(format!(
                "{e}. Choose another --data-dir (or FIREDRILL_DATA_DIR), or fix its permissions"
            )),
            Store(StoreError::Damaged { .. }) => {
                let dir = data_dir.display();
                Failure {
                    exit: Exit::IoError,
                    error: anyhow::anyhow!(
                        "{e}. Move it aside (`mv {dir} {dir}.damaged`) and run again with a fresh one. `firedrill recover` needs the same database: if a run was applying faults when it broke, check its targets by hand"
                    ),
                }
            }
            e => Failure::from(e),
        })?;
    report_recovery(engine.recovery());
    Ok(engine)
}

/// `FIREDRILL_PROTECTED_PORTS=22,5432`: ports no drill can reach.
fn protected_ports() -> Result<Vec<u16>, Failure> {
    let Ok(list) = std::env::var("FIREDRILL_PROTECTED_PORTS") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim().parse().map_err(|_| {
                usage(format!(
                    "FIREDRILL_PROTECTED_PORTS: `{p}` is not a port number"
                ))
            })
        })
        .collect()
}

fn report_recovery(r: &firedrill::ledger::Recovery) {
    for e in &r.reverted {
        eprintln!(
            "recovered: reverted {} on `{}` left by run {} (the engine that made it had died)",
            e.kind, e.target, e.run
        );
    }
    for e in &r.failed {
        eprintln!(
            "recovery FAILED: {} on `{}` of run {}: {}",
            e.kind,
            e.target,
            e.run,
            e.error.as_deref().unwrap_or("unknown error")
        );
    }
}

/// Refuse (exit 64) everything a run of `scenario` under `drill` would be
/// refused for, before any target starts: every command that applies
/// faults checks the same things `firedrill check` reports.
pub(crate) async fn preflight(
    engine: &firedrill::Engine,
    drill: &firedrill::Drill,
    scenario: &firedrill::runtime::Scenario,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<(), Failure> {
    firedrill::check::preflight(engine, drill, scenario, params)
        .await
        .map(|_| ())
        .map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            usage(format!(
                "the run is refused, nothing was started:\n  {}",
                lines.join("\n  ")
            ))
        })
}

/// Start a drill's targets, unless a stop signal comes first (exit 4) or
/// the data dir is halted (exit 4).
pub(crate) async fn start_targets(
    engine: &firedrill::Engine,
    decls: &std::collections::BTreeMap<String, firedrill::drill::TargetDecl>,
    stop: &stop::Stop,
) -> Result<std::sync::Arc<firedrill::targets::TargetSet>, Failure> {
    refuse_if_halted(engine)?;
    stop.check()?;
    tokio::select! {
        targets = engine.start_targets(decls) => targets.map_err(usage),
        // The half-started targets die with this process: spawned ones
        // carry PR_SET_PDEATHSIG, proxies live in it.
        _ = stop.wait() => stop.check().map(|()| unreachable!()),
    }
}

/// Start a run on `targets`; when the engine refuses it, stop the targets
/// and map the refusal (see [`refused`]).
pub(crate) async fn start_run(
    engine: &firedrill::Engine,
    spec: firedrill::RunSpec,
    targets: &firedrill::targets::TargetSet,
) -> Result<firedrill::RunHandle, Failure> {
    match engine.start(spec) {
        Ok(h) => Ok(h),
        Err(e) => {
            targets.shutdown().await;
            Err(refused(e))
        }
    }
}

/// Exit 4 with the halt's text while `firedrill halt` is in force.
pub(crate) fn refuse_if_halted(engine: &firedrill::Engine) -> Result<(), Failure> {
    match engine.halt_state() {
        Some(h) => Err(halted(firedrill::EngineError::Halted(h))),
        None => Ok(()),
    }
}

/// Map the engine's refusal of a run: a halt exits 4, the rest 64.
pub(crate) fn refused(e: firedrill::EngineError) -> Failure {
    match e {
        e @ firedrill::EngineError::Halted(_) => halted(e),
        e => usage(e),
    }
}

fn halted(e: firedrill::EngineError) -> Failure {
    Failure {
        exit: Exit::Halted,
        error: anyhow::anyhow!("{e}"),
    }
}

/// Parse `k=v` parameters, each value within
/// [`firedrill::drill::MAX_PARAM_BYTES`].
pub(crate) fn parse_params(
    raw: &[String],
) -> Result<std::collections::BTreeMap<String, String>, Failure> {
    raw.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                firedrill::drill::check_param_value(v)
                    .map_err(|e| usage(format!("--param {}: {e}", firedrill::drill::elide(k))))?;
                Ok((k.to_string(), v.to_string()))
            }
            _ => Err(usage(format!(
                "--param `{}`: write it as name=value",
                firedrill::drill::elide(kv)
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented exit codes (README, "Commands and exit codes"): scripts
    /// depend on these numbers, so they never change.
    #[test]
    fn exit_codes_are_the_documented_ones() {
        let table = [
            (RunStatus::Passed, 0),
            (RunStatus::Failed, 1),
            (RunStatus::SteadyStateViolated, 2),
            (RunStatus::Aborted, 3),
            (RunStatus::Halted, 4),
            (RunStatus::RevertFailed, 5),
            (RunStatus::Refused, 64),
            (RunStatus::Crashed, 70),
        ];
        for (status, code) in table {
            assert_eq!(Exit::of(status) as u8, code, "{status}");
        }
        assert_eq!(Exit::Usage as u8, 64);
        assert_eq!(Exit::Internal as u8, 70);
        assert_eq!(Exit::IoError as u8, 74);
        assert_eq!(Exit::Fail.worst(Exit::RevertFailed), Exit::RevertFailed);
        assert_eq!(Exit::Pass.worst(Exit::Fail), Exit::Fail);
    }
}
