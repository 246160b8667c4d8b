//! Validation of a drill before running it: the principal function is
//! [`check`]. It parses the file, resolves and loads the scenario, checks
//! parameters and needs against grants, and checks that targets can be
//! reached or started — without applying anything.

use crate::drill::{Drill, DrillError, TargetSpec};
use crate::engine::Engine;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// What `check` found valid.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The scenario's name and version.
    pub scenario: String,
    /// Number of targets.
    pub targets: usize,
    /// Number of steady-state checks.
    pub checks: usize,
    /// The scenario's code: `check` compiles it optimized ahead of the run
    /// (and keeps it in the data dir's cache), or found it cached.
    pub compiled: crate::runtime::Compiled,
}

/// Every problem of the drill at `path`, or a summary of what is valid.
pub async fn check(engine: &Engine, path: &Path) -> Result<Checked, Vec<DrillError>> {
    let drill = Drill::load(path).map_err(|e| vec![e])?;
    let bytes = drill.scenario_bytes();
    check_drill(engine, &drill, bytes).await
}

/// [`check`] of a loaded drill whose scenario's bytes (or why there are
/// none) the caller found: a package's, say.
pub async fn check_drill(
    engine: &Engine,
    drill: &Drill,
    bytes: Result<(Vec<u8>, String), DrillError>,
) -> Result<Checked, Vec<DrillError>> {
    let mut problems = Vec::new();
    let mut scenario = String::new();
    let mut compiled = None;
    match bytes {
        Err(e) => problems.push(e),
        Ok((bytes, source)) => match engine.precompile(&bytes, &source) {
            Err(e) => problems.push(drill.problem("scenario", "scenario", e.to_string())),
            Ok(loaded) => {
                compiled = Some(loaded.compiled());
                match preflight(engine, drill, &loaded, &drill.params()).await {
                    Ok(name) => scenario = name,
                    Err(found) => problems.extend(found),
                }
            }
        },
    }
    problems.extend(reachability(drill).await);
    match compiled {
        Some(compiled) if problems.is_empty() => Ok(Checked {
            scenario,
            targets: drill.targets.len(),
            checks: drill.checks.len(),
            compiled,
        }),
        _ => Err(problems),
    }
}

/// What a run of `scenario` under `drill` with `params` would be refused
/// for, found before any target starts (so nothing is bound, spawned or
/// probed on a protected port first): `describe()` fails, parameters do not
/// fit, the scenario needs more than the drill grants, a target uses a
/// protected port (the drill's or the engine's), or an attached target is
/// init or firedrill itself. `firedrill check` reports the same list;
/// `firedrill run` refuses on it. The scenario's name and version if none.
pub async fn preflight(
    engine: &Engine,
    drill: &Drill,
    scenario: &crate::runtime::Scenario,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<String, Vec<DrillError>> {
    let mut problems = Vec::new();
    let mut name = String::new();
    match engine.inspect(scenario, params).await {
        Err(e) => problems.push(drill.problem("scenario", "scenario", e.to_string())),
        Ok(meta) => {
            name = format!("{} {}", meta.name, meta.version);
            if let Err(e) = meta.resolve_params(params) {
                problems.push(drill.problem("scenario", "scenario.params", e));
            }
            for m in crate::policy::missing_grants(&meta.needs, &drill.targets) {
                let key = format!("targets.{}", m.need.target);
                let (key, field) = if drill.lines.contains_key(&key) {
                    (key.clone(), format!("{key}.grants"))
                } else {
                    ("scenario".to_string(), "scenario".to_string())
                };
                problems.push(drill.problem(
                    &key,
                    &field,
                    format!("the scenario needs {}: {}", m.need, m.hint),
                ));
            }
        }
    }
    let mut policy = drill.policy.clone();
    policy.protected_ports.extend(engine.protected_ports());
    for (name, field, port) in crate::drill::protected_uses(&policy, &drill.targets) {
        let key = format!("targets.{name}");
        problems.push(drill.problem(
            &key,
            &format!("{key}.{field}"),
            format!(
                "uses port {port}, which is protected (FIREDRILL_PROTECTED_PORTS or [policy] protected_ports): no drill may reach it"
            ),
        ));
    }
    for (name, decl) in &drill.targets {
        if let TargetSpec::Process(p) = &decl.spec
            && let Some(pid_file) = &p.pid_file
            && let Some(pid) = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
            && (pid == 1 || pid == std::process::id())
        {
            let key = format!("targets.{name}");
            problems.push(drill.problem(
                &key,
                &format!("{key}.pid_file"),
                format!(
                    "{} names process {pid}, which is protected: firedrill never signals init or itself",
                    pid_file.display()
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(name)
    } else {
        Err(problems)
    }
}

/// Proxies can listen and reach their upstream (unless the drill starts it);
/// spawned programs exist; attached processes are running.
async fn reachability(drill: &Drill) -> Vec<DrillError> {
    let started: BTreeSet<String> = drill
        .targets
        .values()
        .filter_map(|d| match &d.spec {
            TargetSpec::Process(p) if p.command.is_some() => p.address.clone(),
            _ => None,
        })
        .collect();
    let mut problems = Vec::new();
    for (name, decl) in &drill.targets {
        let key = format!("targets.{name}");
        match &decl.spec {
            TargetSpec::Proxy(p) => {
                if p.listen.port() != 0
                    && let Err(e) = std::net::TcpListener::bind(p.listen)
                {
                    problems.push(drill.problem(
                        &key,
                        &format!("{key}.listen"),
                        format!("cannot listen on {}: {e}", p.listen),
                    ));
                }
                if !started.contains(&p.upstream)
                    && let Err(e) = crate::probe::tcp(&p.upstream, Duration::from_secs(2)).await
                {
                    problems.push(drill.problem(
                        &key,
                        &format!("{key}.upstream"),
                        format!("{e}: start the service first, or declare it as a process target"),
                    ));
                }
            }
            TargetSpec::Host(spec) => {
                if let Err(e) = crate::targets::host::HostTarget::start(name, spec) {
                    problems.push(drill.problem(&key, &format!("{key}.path"), e));
                }
            }
            TargetSpec::Remote(spec) => {
                if let Err(e) = crate::targets::remote::check(name, spec).await {
                    problems.push(drill.problem(&key, &format!("{key}.api"), e));
                }
            }
            TargetSpec::Process(p) => {
                if let Some(cmd) = &p.command
                    && !program_exists(cmd)
                {
                    problems.push(drill.problem(
                        &key,
                        &format!("{key}.command"),
                        format!("`{cmd}` is not a file and not found on PATH"),
                    ));
                }
                if let Some(pattern) = &p.pgrep {
                    let running = crate::targets::process::matching(pattern);
                    if running == 0 {
                        problems.push(drill.problem(
                            &key,
                            &format!("{key}.pgrep"),
                            format!("no running process matches `{pattern}`"),
                        ));
                    }
                }
                if let Some(pid_file) = &p.pid_file {
                    let alive = std::fs::read_to_string(pid_file)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok())
                        .and_then(|pid| crate::drivers::process::ProcessId::of(pid).ok());
                    if alive.is_none() {
                        problems.push(drill.problem(
                            &key,
                            &format!("{key}.pid_file"),
                            format!("{} does not name a running process", pid_file.display()),
                        ));
                    }
                }
            }
        }
    }
    problems
}

pub(crate) fn program_exists(cmd: &str) -> bool {
    if cmd.contains('/') {
        return Path::new(cmd).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(cmd).is_file()))
}
