//! Drill files: the principal type is [`Drill`], parsed and validated from
//! TOML by [`Drill::parse`]. A drill names the scenario, its parameters, the
//! targets it may touch with what grants, limits, and steady-state checks.
//! Every error names the file, line and field. `examples/drill.toml` shows
//! every key with its default.

use crate::drivers::proxy::{ProxyConfig, ProxyMode};
use crate::policy::{FaultKind, Policy};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A drill file problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillError {
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted field path, e.g. `targets.api.command`.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for DrillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DrillError {}

mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{s}` is not a duration ({e}); write e.g. \"250ms\", \"5s\" or \"2m\""
            ))
        })
    }

    pub(super) mod option {
        use super::*;
        pub(in crate::drill) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

/// `[scenario]`: what to run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSection {
    /// Path to a component, relative to the drill file.
    pub path: Option<PathBuf>,
    /// A scenario bundled with firedrill (`kill-and-recover`, …).
    pub bundled: Option<String>,
    /// Parameters (strings, numbers or booleans).
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// Seed of the run's generator (default: random, recorded).
    pub seed: Option<u64>,
}

/// `[limits]`: what a run may consume.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock limit of the scenario's `run` (default 5m).
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Linear memory limit in MiB (default 64).
    pub memory_mib: u64,
    /// Component instances (default 16).
    pub instances: usize,
    /// Tables (default 16).
    pub tables: usize,
    /// Elements per table (default 100000).
    pub table_elements: usize,
    /// Guest stdout + stderr kept, bytes (default 1 MiB).
    pub output_bytes: usize,
    /// Log lines and marks a run may write, bytes (default 8 MiB); past it
    /// the run is aborted.
    pub log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(300),
            memory_mib: 64,
            instances: 16,
            tables: 16,
            table_elements: 100_000,
            output_bytes: 1 << 20,
            log_bytes: 8 << 20,
        }
    }
}

/// How a supervised process is restarted when it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never (default).
    #[default]
    Never,
    /// Only after a non-zero exit or a signal.
    OnFailure,
    /// Always, with exponential backoff (100 ms doubling to 5 s).
    Always,
}

/// When a process target is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// `GET path` on the target's address answers 2xx or 3xx.
    Http {
        /// Path.
        http: String,
    },
    /// A TCP connect to the target's address succeeds.
    Tcp {
        /// Always true.
        tcp: bool,
    },
}

/// A process target, spawned or attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Program to spawn.
    pub command: Option<String>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Attach to the pid in this file instead of spawning.
    pub pid_file: Option<PathBuf>,
    /// Or name a group: every process whose command line contains this.
    pub pgrep: Option<String>,
    /// For a group: how many of its processes each fault reaches.
    pub select: Option<Selection>,
    /// Readiness check.
    pub ready: Option<Readiness>,
    /// How long to wait for readiness (default 10s).
    pub ready_timeout: Duration,
    /// `host:port` where it serves, for probes.
    pub address: Option<String>,
}

/// How many processes of a group a fault reaches, drawn from the run's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// This many (or all, if fewer).
    Count(u32),
    /// This percentage, rounded up, at least one.
    Percent(u8),
}

impl Selection {
    /// How many of `n` processes.
    pub fn of(self, n: usize) -> usize {
        match self {
            Selection::Count(c) => (c as usize).min(n),
            Selection::Percent(p) => (n * p as usize).div_ceil(100).clamp(1, n.max(1)).min(n),
        }
    }
}

/// What a target is.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetSpec {
    /// A process.
    Process(ProcessSpec),
    /// A proxy.
    Proxy(ProxyConfig),
    /// A proxy on a server with Toxiproxy's API (`kind = "toxiproxy"`).
    Remote(crate::targets::remote::RemoteSpec),
    /// The host itself, for resource stress (`kind = "host"`).
    Host(crate::targets::host::HostSpec),
}

/// A declared target and what may be done to it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetDecl {
    /// What it is.
    pub spec: TargetSpec,
    /// Fault kinds granted on it.
    pub grants: BTreeSet<FaultKind>,
}

/// Which probe a steady-state check uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckProbe {
    /// `GET path`.
    Http {
        /// Path.
        path: String,
        /// Expected status; `None` means any 2xx.
        status: Option<u16>,
    },
    /// TCP connect.
    Tcp,
    /// Connect, send `send`, read until `expect` comes back (any line
    /// protocol: `tcp = { send = "PING\r\n", expect = "+PONG" }`).
    TcpExchange {
        /// Bytes sent.
        send: Vec<u8>,
        /// Bytes the answer must contain.
        expect: Vec<u8>,
    },
    /// The process is alive.
    Process,
}

/// What to do when a check fails during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnViolation {
    /// Stop the run and revert (default).
    #[default]
    Abort,
    /// Only record it.
    Record,
}

/// A steady-state check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// Name shown in reports.
    pub name: String,
    /// Target probed.
    pub target: String,
    /// Probe.
    pub probe: CheckProbe,
    /// Latency bound, if any.
    pub max_latency: Option<Duration>,
    /// How long the probe waits for an answer: `timeout`, else
    /// `max_latency` (so a hung service fails within the bound), else 5 s.
    pub timeout: Duration,
    /// Phases it runs in.
    pub phases: BTreeSet<crate::history::Phase>,
    /// Interval during the run.
    pub interval: Duration,
    /// Reaction to a violation during the run.
    pub on_violation: OnViolation,
    /// After the run, retry for this long before calling it violated.
    pub after_grace: Duration,
}

/// A validated drill.
#[derive(Debug, Clone, Default)]
pub struct Drill {
    /// The file it came from.
    pub file: Option<PathBuf>,
    /// Its text, as read.
    pub text: Option<String>,
    /// `[scenario]`, paths resolved.
    pub scenario: ScenarioSection,
    /// `[limits]`.
    pub limits: Limits,
    /// `[policy]` and the grants of `[targets]`.
    pub policy: Policy,
    /// `[targets.NAME]`.
    pub targets: BTreeMap<String, TargetDecl>,
    /// `[[steady_state]]`.
    pub checks: Vec<CheckSpec>,
    /// Line of `[scenario]` and of each `[targets.NAME]` (keys `scenario`,
    /// `targets.NAME`), for messages about them.
    pub lines: BTreeMap<String, usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    scenario: Option<Spanned<ScenarioSection>>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    targets: BTreeMap<String, Spanned<RawTarget>>,
    #[serde(default)]
    steady_state: Vec<Spanned<RawCheck>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPolicy {
    #[serde(with = "duration")]
    max_fault_duration: Duration,
    max_concurrent_faults: u32,
    max_calls_per_second: u32,
    protected_ports: Vec<u16>,
}

impl Default for RawPolicy {
    fn default() -> Self {
        let p = Policy::default();
        RawPolicy {
            max_fault_duration: p.max_fault_duration,
            max_concurrent_faults: p.max_concurrent_faults,
            max_calls_per_second: p.max_calls_per_second,
            protected_ports: p.protected_ports,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RawKind {
    Process,
    Proxy,
    Toxiproxy,
    Host,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelect {
    count: Option<u32>,
    percent: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    http: Option<String>,
    tcp: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    kind: RawKind,
    #[serde(default)]
    grants: Vec<FaultKind>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    #[serde(default)]
    restart: RestartPolicy,
    pid_file: Option<PathBuf>,
    pgrep: Option<String>,
    select: Option<RawSelect>,
    ready: Option<RawReady>,
    #[serde(default, with = "duration::option")]
    ready_timeout: Option<Duration>,
    address: Option<String>,
    listen: Option<String>,
    upstream: Option<String>,
    #[serde(default)]
    mode: ProxyMode,
    api: Option<String>,
    proxy: Option<String>,
    token_env: Option<String>,
    lease: Option<String>,
    path: Option<PathBuf>,
    helper: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: String,
    target: String,
    http: Option<String>,
    tcp: Option<RawTcpCheck>,
    #[serde(default)]
    process: bool,
    status: Option<u16>,
    #[serde(default, with = "duration::option")]
    max_latency: Option<Duration>,
    #[serde(default, with = "duration::option")]
    timeout: Option<Duration>,
    phases: Option<Vec<crate::history::Phase>>,
    #[serde(default, with = "duration::option")]
    interval: Option<Duration>,
    #[serde(default)]
    on_violation: OnViolation,
    #[serde(default, with = "duration::option")]
    after_grace: Option<Duration>,
}

/// `tcp = true`, or `tcp = { send = "…", expect = "…" }` (text, with TOML
/// escapes), or the same as hex bytes (`send_hex`, `expect_hex`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTcpCheck {
    Connect(bool),
    Exchange(RawExchange),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExchange {
    send: Option<String>,
    expect: Option<String>,
    send_hex: Option<String>,
    expect_hex: Option<String>,
}

struct Ctx<'a> {
    file: String,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn err(&self, span: std::ops::Range<usize>, field: String, message: String) -> DrillError {
        DrillError {
            file: self.file.clone(),
            line: Some(self.line(span.start)),
            field,
            message,
        }
    }
}

impl Drill {
    /// Read and validate a drill file.
    pub fn load(path: &Path) -> Result<Drill, DrillError> {
        let text = std::fs::read_to_string(path).map_err(|e| DrillError {
            file: path.display().to_string(),
            line: None,
            field: String::new(),
            message: format!("cannot read the drill file: {e}"),
        })?;
        Drill::parse(&text, path)
    }

    /// Validate drill text; `path` names it in errors and anchors relative
    /// paths.
    pub fn parse(text: &str, path: &Path) -> Result<Drill, DrillError> {
        let cx = Ctx {
            file: path.display().to_string(),
            text,
        };
        let raw: RawDrill = toml::from_str(text).map_err(|e| DrillError {
            file: cx.file.clone(),
            line: e.span().map(|s| cx.line(s.start)),
            field: String::new(),
            message: e.message().trim().to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut lines = BTreeMap::new();
        let mut scenario = match raw.scenario {
            Some(s) => {
                lines.insert("scenario".to_string(), cx.line(s.span().start));
                s.into_inner()
            }
            None => ScenarioSection::default(),
        };
        if scenario.path.is_some() && scenario.bundled.is_some() {
            return Err(DrillError {
                file: cx.file.clone(),
                line: None,
                field: "scenario".into(),
                message: "set either `path` or `bundled`, not both".into(),
            });
        }
        scenario.path = scenario.path.map(|p| base.join(p));

        let mut targets = BTreeMap::new();
        for (name, spanned) in raw.targets {
            let span = spanned.span();
            lines.insert(format!("targets.{name}"), cx.line(span.start));
            let decl = target(&cx, &base, &name, span, spanned.into_inner())?;
            targets.insert(name, decl);
        }
        let mut checks = Vec::new();
        for (i, spanned) in raw.steady_state.into_iter().enumerate() {
            let span = spanned.span();
            checks.push(check(&cx, &targets, i, span, spanned.into_inner())?);
        }
        Ok(Drill {
            file: Some(path.to_path_buf()),
            text: Some(text.to_string()),
            scenario,
            limits: raw.limits,
            policy: Policy {
                max_fault_duration: raw.policy.max_fault_duration,
                max_concurrent_faults: raw.policy.max_concurrent_faults,
                max_calls_per_second: raw.policy.max_calls_per_second,
                protected_ports: raw.policy.protected_ports,
            },
            targets,
            checks,
            lines,
        })
    }

    /// A problem at `key` (`scenario`, `targets.NAME`) of this drill.
    pub fn problem(&self, key: &str, field: &str, message: String) -> DrillError {
        DrillError {
            file: self
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "(no drill)".into()),
            line: self.lines.get(key).copied(),
            field: field.to_string(),
            message,
        }
    }

    /// The scenario's component bytes and a name for them: `[scenario] path`
    /// or `bundled`.
    pub fn scenario_bytes(&self) -> Result<(Vec<u8>, String), DrillError> {
        match (&self.scenario.path, &self.scenario.bundled) {
            (Some(path), _) => std::fs::read(path)
                .map(|b| (b, path.display().to_string()))
                .map_err(|e| {
                    self.problem(
                        "scenario",
                        "scenario.path",
                        format!("cannot read {}: {e}", path.display()),
                    )
                }),
            (None, Some(name)) => crate::bundled::get(name)
                .map(|b| (b.to_vec(), format!("bundled:{name}")))
                .ok_or_else(|| {
                    self.problem(
                        "scenario",
                        "scenario.bundled",
                        format!(
                            "no bundled scenario `{name}` (bundled: {})",
                            crate::bundled::names().join(", ")
                        ),
                    )
                }),
            (None, None) => Err(self.problem(
                "scenario",
                "scenario",
                "set `path = \"my-scenario.wasm\"` or `bundled = \"NAME\"`".into(),
            )),
        }
    }

    /// Parameters from `[scenario.params]` as text.
    pub fn params(&self) -> BTreeMap<String, String> {
        self.scenario
            .params
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect()
    }
}

fn target(
    cx: &Ctx<'_>,
    base: &Path,
    name: &str,
    span: std::ops::Range<usize>,
    raw: RawTarget,
) -> Result<TargetDecl, DrillError> {
    let field = |f: &str| format!("targets.{name}.{f}");
    let grants: BTreeSet<FaultKind> = raw.grants.iter().copied().collect();
    let spec = match raw.kind {
        RawKind::Toxiproxy => remote(cx, name, span, raw)?,
        RawKind::Host => host(cx, base, name, span, raw)?,
        RawKind::Process => {
            for (set, key) in [
                (raw.listen.is_some(), "listen"),
                (raw.upstream.is_some(), "upstream"),
            ] {
                if set {
                    return Err(cx.err(
                        span,
                        field(key),
                        "only proxy targets have this key".into(),
                    ));
                }
            }
            remote_keys(cx, name, &span, &raw)?;
            let sources = [
                raw.command.is_some(),
                raw.pid_file.is_some(),
                raw.pgrep.is_some(),
            ];
            match sources.iter().filter(|s| **s).count() {
                0 => {
                    return Err(cx.err(
                        span,
                        format!("targets.{name}"),
                        "a process target needs `command` (to spawn it) or `pid_file` (to attach to it)".into(),
                    ));
                }
                1 => {}
                _ => {
                    return Err(cx.err(
                        span,
                        format!("targets.{name}"),
                        "set one of `command`, `pid_file` or `pgrep`".into(),
                    ));
                }
            }
            let select = match (&raw.select, raw.pgrep.is_some()) {
                (None, _) => None,
                (Some(_), false) => {
                    return Err(cx.err(
                        span,
                        field("select"),
                        "only a group (`pgrep`) has a selection".into(),
                    ));
                }
                (
                    Some(RawSelect {
                        count: Some(c),
                        percent: None,
                    }),
                    true,
                ) if *c >= 1 => Some(Selection::Count(*c)),
                (
                    Some(RawSelect {
                        count: None,
                        percent: Some(p),
                    }),
                    true,
                ) if (1..=100).contains(p) => Some(Selection::Percent(*p)),
                (Some(_), true) => {
                    return Err(cx.err(
                        span,
                        field("select"),
                        "write `select = { count = N }` (N ≥ 1) or `select = { percent = P }` (1 to 100)".into(),
                    ));
                }
            };
            if raw.pgrep.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return Err(cx.err(
                    span,
                    field("pgrep"),
                    "an empty pattern would match every process".into(),
                ));
            }
            for kind in &grants {
                if !kind.on_process() {
                    let to = if kind.on_host() { "host" } else { "proxy" };
                    return Err(cx.err(
                        span,
                        field("grants"),
                        format!("`{kind}` applies to {to} targets, not to a process"),
                    ));
                }
            }
            let ready = match raw.ready {
                None => None,
                Some(RawReady {
                    http: Some(p),
                    tcp: None,
                }) => Some(Readiness::Http { http: p }),
                Some(RawReady {
                    http: None,
                    tcp: Some(true),
                }) => Some(Readiness::Tcp { tcp: true }),
                Some(_) => {
                    return Err(cx.err(
                        span,
                        field("ready"),
                        "write `ready = { http = \"/health\" }` or `ready = { tcp = true }`".into(),
                    ));
                }
            };
            if ready.is_some() && raw.address.is_none() {
                return Err(cx.err(
                    span,
                    field("address"),
                    "a readiness check needs the `address` (host:port) the process serves on"
                        .into(),
                ));
            }
            if let Some(a) = &raw.address {
                check_addr(cx, span.clone(), field("address"), a)?;
            }
            TargetSpec::Process(ProcessSpec {
                command: raw.command,
                args: raw.args,
                env: raw.env,
                cwd: raw.cwd.map(|p| base.join(p)),
                restart: raw.restart,
                pid_file: raw.pid_file.map(|p| base.join(p)),
                pgrep: raw.pgrep,
                select,
                ready,
                ready_timeout: raw.ready_timeout.unwrap_or(Duration::from_secs(10)),
                address: raw.address,
            })
        }
        RawKind::Proxy => {
            remote_keys(cx, name, &span, &raw)?;
            if raw.command.is_some() || raw.pid_file.is_some() || raw.pgrep.is_some() {
                return Err(cx.err(
                    span,
                    format!("targets.{name}"),
                    "a proxy target has `listen` and `upstream`, not `command` or `pid_file`"
                        .into(),
                ));
            }
            let listen = raw.listen.ok_or_else(|| {
                cx.err(
                    span.clone(),
                    field("listen"),
                    "missing: the address clients connect to, e.g. \"127.0.0.1:18080\"".into(),
                )
            })?;
            let upstream = raw.upstream.ok_or_else(|| {
                cx.err(
                    span.clone(),
                    field("upstream"),
                    "missing: where traffic goes, e.g. \"127.0.0.1:8080\"".into(),
                )
            })?;
            let listen_addr = check_addr(cx, span.clone(), field("listen"), &listen)?;
            check_addr(cx, span.clone(), field("upstream"), &upstream)?;
            for kind in &grants {
                if !kind.on_proxy() {
                    let to = if kind.on_host() { "host" } else { "process" };
                    return Err(cx.err(
                        span,
                        field("grants"),
                        format!("`{kind}` applies to {to} targets, not to a proxy"),
                    ));
                }
                if kind.needs_http() && raw.mode != ProxyMode::Http {
                    return Err(cx.err(
                        span,
                        field("grants"),
                        format!("`{kind}` needs an HTTP proxy: add `mode = \"http\"`"),
                    ));
                }
                if kind.needs_tcp() && raw.mode == ProxyMode::Http {
                    return Err(cx.err(
                        span,
                        field("grants"),
                        format!(
                            "`{kind}` acts on the byte stream and needs a TCP proxy: use `mode = \"tcp\"` (a second proxy in front works too)"
                        ),
                    ));
                }
            }
            TargetSpec::Proxy(ProxyConfig {
                name: name.to_string(),
                listen: listen_addr,
                upstream,
                mode: raw.mode,
            })
        }
    };
    Ok(TargetDecl { spec, grants })
}

/// `kind = "host"`: the machine, for resource stress.
fn host(
    cx: &Ctx<'_>,
    base: &Path,
    name: &str,
    span: std::ops::Range<usize>,
    raw: RawTarget,
) -> Result<TargetSpec, DrillError> {
    let field = |f: &str| format!("targets.{name}.{f}");
    if let Some(key) = keys_set(&raw).find(|k| !["path", "helper"].contains(k)) {
        return Err(cx.err(
            span,
            field(key),
            "a `host` target has `path` (where disk-fill may write) and `helper`, and grants cpu-stress, memory-stress or disk-fill".into(),
        ));
    }
    for kind in &raw.grants {
        if !kind.on_host() {
            return Err(cx.err(
                span,
                field("grants"),
                format!("`{kind}` does not apply to a host: grant cpu-stress, memory-stress or disk-fill"),
            ));
        }
    }
    if raw.grants.contains(&FaultKind::DiskFill) && raw.path.is_none() {
        return Err(cx.err(
            span,
            field("path"),
            "missing: disk-fill writes only under a directory the drill names, e.g. path = \"/var/tmp/firedrill\"".into(),
        ));
    }
    Ok(TargetSpec::Host(crate::targets::host::HostSpec {
        path: raw.path.map(|p| base.join(p)),
        helper: raw.helper.map(|p| base.join(p)),
    }))
}

/// Keys only `toxiproxy` and `host` targets have.
fn remote_keys(
    cx: &Ctx<'_>,
    name: &str,
    span: &std::ops::Range<usize>,
    raw: &RawTarget,
) -> Result<(), DrillError> {
    const THEIRS: [&str; 6] = ["api", "proxy", "token_env", "lease", "path", "helper"];
    match keys_set(raw).find(|k| THEIRS.contains(k)) {
        Some(key) => Err(cx.err(
            span.clone(),
            format!("targets.{name}.{key}"),
            "only `kind = \"toxiproxy\"` (api, proxy, token_env, lease) or `kind = \"host\"` (path, helper) targets have this key".into(),
        )),
        None => Ok(()),
    }
}

/// The kind-specific keys a target sets.
fn keys_set(raw: &RawTarget) -> impl Iterator<Item = &'static str> {
    [
        (raw.command.is_some(), "command"),
        (raw.pid_file.is_some(), "pid_file"),
        (raw.pgrep.is_some(), "pgrep"),
        (raw.listen.is_some(), "listen"),
        (raw.upstream.is_some(), "upstream"),
        (raw.address.is_some(), "address"),
        (raw.mode != ProxyMode::Tcp, "mode"),
        (raw.api.is_some(), "api"),
        (raw.proxy.is_some(), "proxy"),
        (raw.token_env.is_some(), "token_env"),
        (raw.lease.is_some(), "lease"),
        (raw.path.is_some(), "path"),
        (raw.helper.is_some(), "helper"),
    ]
    .into_iter()
    .filter_map(|(set, key)| set.then_some(key))
}

/// `kind = "toxiproxy"`: a proxy on a server that speaks Toxiproxy's API.
fn remote(
    cx: &Ctx<'_>,
    name: &str,
    span: std::ops::Range<usize>,
    raw: RawTarget,
) -> Result<TargetSpec, DrillError> {
    use crate::targets::remote::{DEFAULT_LEASE, RemoteSpec};
    let field = |f: &str| format!("targets.{name}.{f}");
    if let Some(key) = keys_set(&raw).find(|k| !["api", "proxy", "token_env", "lease"].contains(k))
    {
        return Err(cx.err(
            span,
            field(key),
            "a `toxiproxy` target has `api`, `proxy`, `token_env` and `lease`: the server knows where its proxy listens and what it forwards to".into(),
        ));
    }
    let api = raw.api.ok_or_else(|| {
        cx.err(
            span.clone(),
            field("api"),
            "missing: the control API of `firedrill proxy serve` (or Toxiproxy), e.g. \"127.0.0.1:8474\"".into(),
        )
    })?;
    let api = check_addr(cx, span.clone(), field("api"), &api)?;
    let proxy = raw.proxy.ok_or_else(|| {
        cx.err(
            span.clone(),
            field("proxy"),
            "missing: the proxy's name on that server".into(),
        )
    })?;
    if proxy.is_empty()
        || !proxy
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(cx.err(
            span,
            field("proxy"),
            format!("`{proxy}` is not a proxy name: use letters, digits, `-`, `_` and `.`"),
        ));
    }
    let lease = match raw.lease.as_deref() {
        None => Some(DEFAULT_LEASE),
        Some("off") => None,
        Some(text) => {
            let ttl = humantime::parse_duration(text)
                .ok()
                .filter(|d| (Duration::from_millis(200)..=Duration::from_secs(3600)).contains(d));
            Some(ttl.ok_or_else(|| {
                cx.err(
                    span.clone(),
                    field("lease"),
                    format!("`{text}` is not a lease: write a duration from \"200ms\" to \"1h\" (e.g. \"5s\"), or \"off\" for a server without leases"),
                )
            })?)
        }
    };
    for kind in &raw.grants {
        if !kind.on_proxy() || kind.needs_http() {
            return Err(cx.err(
                span,
                field("grants"),
                format!("`{kind}` cannot be made on a `toxiproxy` target: it carries TCP, so it takes the faults of a TCP proxy"),
            ));
        }
    }
    Ok(TargetSpec::Remote(RemoteSpec {
        api,
        proxy,
        token_env: raw.token_env.unwrap_or_else(|| "FIREDRILL_TOKEN".into()),
        lease,
    }))
}

/// Addresses must be `ip:port`; names are not resolved, so a drill cannot
/// point at a host that DNS decides.
fn check_addr(
    cx: &Ctx<'_>,
    span: std::ops::Range<usize>,
    field: String,
    value: &str,
) -> Result<std::net::SocketAddr, DrillError> {
    value.parse().map_err(|_| {
        cx.err(
            span,
            field,
            format!("`{value}` is not an ip:port address, e.g. \"127.0.0.1:8080\""),
        )
    })
}

/// The bytes of a `tcp = { … }` check: text or hex, one of each side.
fn exchange(
    cx: &Ctx<'_>,
    span: std::ops::Range<usize>,
    field: &str,
    raw: RawExchange,
) -> Result<CheckProbe, DrillError> {
    let side = |text: Option<String>, hex_text: Option<String>, name: &str| match (text, hex_text) {
        (Some(t), None) => Ok(t.into_bytes()),
        (None, Some(h)) => hex::decode(h.replace([' ', ':'], "")).map_err(|e| {
            cx.err(
                span.clone(),
                format!("{field}.{name}_hex"),
                format!("not hex bytes ({e}): write them like \"2a310d0a\""),
            )
        }),
        (None, None) if name == "send" => Ok(Vec::new()),
        (None, None) => Err(cx.err(
            span.clone(),
            format!("{field}.{name}"),
            "say what the answer must contain: `expect = \"+PONG\"` (or `expect_hex`)".into(),
        )),
        (Some(_), Some(_)) => Err(cx.err(
            span.clone(),
            format!("{field}.{name}"),
            format!("set `{name}` or `{name}_hex`, not both"),
        )),
    };
    let send = side(raw.send, raw.send_hex, "send")?;
    let expect = side(raw.expect, raw.expect_hex, "expect")?;
    if expect.is_empty() {
        return Err(cx.err(
            span,
            format!("{field}.expect"),
            "is empty: every answer would match".into(),
        ));
    }
    Ok(CheckProbe::TcpExchange { send, expect })
}

fn check(
    cx: &Ctx<'_>,
    targets: &BTreeMap<String, TargetDecl>,
    i: usize,
    span: std::ops::Range<usize>,
    raw: RawCheck,
) -> Result<CheckSpec, DrillError> {
    use crate::history::Phase;
    let field = |f: &str| format!("steady_state[{i}].{f}");
    let Some(decl) = targets.get(&raw.target) else {
        let known: Vec<_> = targets.keys().map(String::as_str).collect();
        return Err(cx.err(
            span,
            field("target"),
            format!(
                "no target named `{}` (declared: {})",
                raw.target,
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    let tcp = match raw.tcp {
        None | Some(RawTcpCheck::Connect(false)) => None,
        Some(RawTcpCheck::Connect(true)) => Some(CheckProbe::Tcp),
        Some(RawTcpCheck::Exchange(x)) => Some(exchange(cx, span.clone(), &field("tcp"), x)?),
    };
    let probe = match (raw.http, tcp, raw.process) {
        (Some(path), None, false) => CheckProbe::Http {
            path,
            status: raw.status,
        },
        (None, Some(tcp), false) => tcp,
        (None, None, true) => CheckProbe::Process,
        _ => {
            return Err(cx.err(
                span,
                format!("steady_state[{i}]"),
                "set exactly one probe: `http = \"/path\"`, `tcp = true`, `tcp = { send = \"PING\\r\\n\", expect = \"+PONG\" }` or `process = true`"
                    .into(),
            ));
        }
    };
    let is_process = matches!(decl.spec, TargetSpec::Process(_));
    let has_addr = match &decl.spec {
        TargetSpec::Process(p) => p.address.is_some(),
        TargetSpec::Proxy(_) | TargetSpec::Remote(_) => true,
        TargetSpec::Host(_) => false,
    };
    if probe == CheckProbe::Process && !is_process {
        return Err(cx.err(
            span,
            field("process"),
            format!("`{}` is a proxy, not a process", raw.target),
        ));
    }
    if probe != CheckProbe::Process && !has_addr {
        return Err(cx.err(
            span,
            field("target"),
            format!("target `{}` has no `address` to probe", raw.target),
        ));
    }
    let phases: BTreeSet<Phase> = raw
        .phases
        .unwrap_or_else(|| vec![Phase::Before, Phase::During, Phase::After])
        .into_iter()
        .collect();
    Ok(CheckSpec {
        name: raw.name,
        target: raw.target,
        probe,
        max_latency: raw.max_latency,
        timeout: raw
            .timeout
            .or(raw.max_latency)
            .unwrap_or(Duration::from_secs(5)),
        phases,
        interval: raw.interval.unwrap_or(Duration::from_secs(1)),
        on_violation: raw.on_violation,
        after_grace: raw.after_grace.unwrap_or(Duration::from_secs(5)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Drill, String> {
        Drill::parse(text, Path::new("drill.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_drill_parses() {
        let d = parse(
            r#"
[scenario]
bundled = "latency-ramp"
params = { link = "db", samples = 3 }
seed = 7

[policy]
max_concurrent_faults = 2

[targets.api]
kind = "process"
command = "sleep"
args = ["60"]
restart = "always"

[targets.db]
kind = "proxy"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:5432"
grants = ["delay"]

[[steady_state]]
name = "db reachable"
target = "db"
tcp = true
phases = ["before"]
"#,
        )
        .unwrap();
        assert_eq!(d.params()["samples"], "3");
        assert_eq!(d.policy.max_concurrent_faults, 2);
        assert_eq!(d.targets.len(), 2);
        assert_eq!(d.checks[0].probe, CheckProbe::Tcp);
    }

    #[test]
    fn the_commented_example_drill_parses() {
        let d = Drill::parse(
            include_str!("../../examples/drill.toml"),
            Path::new("examples/drill.toml"),
        )
        .unwrap();
        assert_eq!(d.limits.memory_mib, Limits::default().memory_mib);
        assert_eq!(d.policy, Policy::default());
        assert_eq!(d.targets.len(), 2);
        assert_eq!(d.checks[0].on_violation, OnViolation::Record);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = parse("[targets.api]\nkind = \"process\"\n").unwrap_err();
        assert_eq!(
            e,
            "drill.toml:1: targets.api: a process target needs `command` (to spawn it) or `pid_file` (to attach to it)"
        );
        let e = parse("[targets.db]\nkind = \"proxy\"\nlisten = \"127.0.0.1:1\"\nupstream = \"127.0.0.1:2\"\ngrants = [\"fail-auth\"]\n").unwrap_err();
        assert_eq!(
            e,
            "drill.toml:1: targets.db.grants: `fail-auth` needs an HTTP proxy: add `mode = \"http\"`"
        );
        let e = parse("[limits]\ntimeout = \"soon\"\n").unwrap_err();
        assert!(
            e.starts_with("drill.toml:2: `soon` is not a duration"),
            "{e}"
        );
        let e = parse("[targets.x]\nkind = \"proxy\"\ngrants = [\"dely\"]\n").unwrap_err();
        assert!(e.starts_with("drill.toml:3: unknown variant `dely`"), "{e}");
    }

    #[test]
    fn host_targets_take_stress_grants_and_disk_fill_needs_a_path() {
        let d = parse("[targets.box]\nkind = \"host\"\npath = \"fill\"\ngrants = [\"cpu-stress\", \"disk-fill\"]\n").unwrap();
        let TargetSpec::Host(spec) = &d.targets["box"].spec else {
            panic!("{:?}", d.targets["box"]);
        };
        assert_eq!(spec.path.as_deref(), Some(Path::new("fill")));
        let e = parse("[targets.box]\nkind = \"host\"\ngrants = [\"disk-fill\"]\n").unwrap_err();
        assert!(
            e.contains("targets.box.path: missing: disk-fill writes only under"),
            "{e}"
        );
        let e = parse("[targets.box]\nkind = \"host\"\ngrants = [\"kill\"]\n").unwrap_err();
        assert!(
            e.contains("targets.box.grants: `kill` does not apply to a host"),
            "{e}"
        );
        let e = parse(
            "[targets.p]\nkind = \"process\"\ncommand = \"x\"\ngrants = [\"memory-stress\"]\n",
        )
        .unwrap_err();
        assert!(e.contains("targets.p.grants: `memory-stress`"), "{e}");
    }

    #[test]
    fn toxiproxy_targets_default_a_lease_and_refuse_http_faults() {
        let d = Drill::parse(
            "[targets.cache]\nkind = \"toxiproxy\"\napi = \"127.0.0.1:8474\"\nproxy = \"redis\"\ngrants = [\"delay\"]\n",
            Path::new("drill.toml"),
        )
        .unwrap();
        let TargetSpec::Remote(spec) = &d.targets["cache"].spec else {
            panic!("{:?}", d.targets["cache"]);
        };
        assert_eq!(spec.lease, Some(crate::targets::remote::DEFAULT_LEASE));
        assert_eq!(spec.token_env, "FIREDRILL_TOKEN");
        let base =
            "[targets.cache]\nkind = \"toxiproxy\"\napi = \"127.0.0.1:8474\"\nproxy = \"redis\"\n";
        let e = parse(&format!("{base}grants = [\"http-error\"]\n")).unwrap_err();
        assert!(
            e.contains("targets.cache.grants: `http-error` cannot be made on a `toxiproxy` target"),
            "{e}"
        );
        let e = parse(&format!("{base}lease = \"10ms\"\n")).unwrap_err();
        assert!(
            e.contains("targets.cache.lease: `10ms` is not a lease"),
            "{e}"
        );
        let e = parse(&format!("{base}listen = \"127.0.0.1:1\"\n")).unwrap_err();
        assert!(
            e.contains("targets.cache.listen: a `toxiproxy` target has `api`"),
            "{e}"
        );
        let e = parse("[targets.x]\nkind = \"proxy\"\nlease = \"off\"\n").unwrap_err();
        assert!(
            e.contains("targets.x.lease: only `kind = \"toxiproxy\"`"),
            "{e}"
        );
    }
}
