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
use std::ops::RangeInclusive;
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

/// `[scenario]`: what to run.
#[derive(Debug, Clone, Default)]
pub struct ScenarioSection {
    /// Path to a component, relative to the drill file.
    pub path: Option<PathBuf>,
    /// A scenario bundled with firedrill (`kill-and-recover`, …).
    pub bundled: Option<String>,
    /// An installed package, `namespace:name[@requirement]`: resolved by
    /// the `firedrill` command (crate `firedrill-packages`), not here.
    pub package: Option<String>,
    /// Parameters (strings, numbers or booleans), each at most
    /// [`MAX_PARAM_BYTES`] as text.
    pub params: BTreeMap<String, toml::Value>,
    /// Seed of the run's generator (default: random, recorded).
    pub seed: Option<u64>,
}

/// `[limits]`: what a run may consume. A drill file's values are checked
/// against the ranges in README.md ("Drill files").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock limit of the scenario's `run` (default 5m).
    pub timeout: Duration,
    /// Linear memory limit in MiB (default 64).
    pub memory_mib: u64,
    /// Core instances a scenario may create (default 64, the engine's
    /// maximum: Python and JavaScript runtimes need 14 to 40).
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
            instances: 64,
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
    scenario: Option<Spanned<RawScenario>>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    targets: BTreeMap<String, Spanned<RawTarget>>,
    #[serde(default)]
    steady_state: Vec<Spanned<RawCheck>>,
}

/// A number or duration as written, with its place: deserializing one
/// never fails, so a wrong type or an out-of-range value is reported by
/// [`Ctx::integer`] or [`Ctx::duration`] with its field and line rather than
/// by serde without them.
type RawValue = Option<Spanned<toml::Value>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawScenario {
    path: Option<PathBuf>,
    bundled: Option<String>,
    package: Option<String>,
    params: BTreeMap<String, Spanned<toml::Value>>,
    seed: RawValue,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    timeout: RawValue,
    memory_mib: RawValue,
    instances: RawValue,
    tables: RawValue,
    table_elements: RawValue,
    output_bytes: RawValue,
    log_bytes: RawValue,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPolicy {
    max_fault_duration: RawValue,
    max_concurrent_faults: RawValue,
    max_calls_per_second: RawValue,
    protected_ports: RawValue,
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
    #[serde(default)]
    count: RawValue,
    #[serde(default)]
    percent: RawValue,
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
    #[serde(default)]
    ready_timeout: RawValue,
    address: Option<String>,
    listen: Option<String>,
    upstream: Option<String>,
    #[serde(default)]
    mode: ProxyMode,
    api: Option<String>,
    proxy: Option<String>,
    token_env: Option<String>,
    #[serde(default)]
    lease: RawValue,
    seal_toxics: Option<bool>,
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
    #[serde(default)]
    status: RawValue,
    #[serde(default)]
    max_latency: RawValue,
    #[serde(default)]
    timeout: RawValue,
    phases: Option<Vec<crate::history::Phase>>,
    #[serde(default)]
    interval: RawValue,
    #[serde(default)]
    on_violation: OnViolation,
    #[serde(default)]
    after_grace: RawValue,
}

/// The range of every numeric key of a drill file (README.md, "Drill
/// files", lists them). The bounds keep a drill from overflowing a limit
/// (`memory_mib = 17592186044416` once became "0 MiB"), from disabling one
/// (`timeout = "0s"`), from spinning (`interval = "0s"` made 2,222 checks in
/// 3 s) or from asking for more than the engine's instance pool holds.
mod range {
    use std::ops::RangeInclusive;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);
    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }
    const HOUR: Duration = secs(3600);
    const DAY: Duration = secs(24 * 3600);

    /// The epoch tick (10 ms) is the finest time the engine keeps.
    pub(super) const TIMEOUT: RangeInclusive<Duration> = Duration::from_millis(10)..=DAY;
    /// A wasm32 linear memory is at most 4 GiB.
    pub(super) const MEMORY_MIB: RangeInclusive<i64> = 1..=4096;
    /// The instance pool holds 64 core instances and 32 tables per
    /// scenario, of at most 2^20 elements (`runtime/mod.rs`).
    pub(super) const INSTANCES: RangeInclusive<i64> = 1..=64;
    pub(super) const TABLES: RangeInclusive<i64> = 1..=32;
    pub(super) const TABLE_ELEMENTS: RangeInclusive<i64> = 1..=(1 << 20);
    /// Guest output is held in memory until the run ends; 0 keeps none.
    pub(super) const OUTPUT_BYTES: RangeInclusive<i64> = 0..=(64 << 20);
    /// Log lines go to history; below 1 KiB the first lines would abort.
    pub(super) const LOG_BYTES: RangeInclusive<i64> = 1024..=(256 << 20);
    pub(super) const MAX_FAULT_DURATION: RangeInclusive<Duration> = Duration::from_millis(10)..=DAY;
    pub(super) const MAX_CONCURRENT_FAULTS: RangeInclusive<i64> = 1..=1000;
    pub(super) const MAX_CALLS_PER_SECOND: RangeInclusive<i64> = 1..=1_000_000;
    pub(super) const PORT: RangeInclusive<i64> = 1..=65535;
    pub(super) const READY_TIMEOUT: RangeInclusive<Duration> = Duration::from_millis(100)..=HOUR;
    /// The server checks leases every 50 ms and the engine renews every
    /// quarter of one.
    pub(super) const LEASE: RangeInclusive<Duration> = Duration::from_millis(200)..=HOUR;
    pub(super) const SELECT_COUNT: RangeInclusive<i64> = 1..=100_000;
    pub(super) const SELECT_PERCENT: RangeInclusive<i64> = 1..=100;
    pub(super) const STATUS: RangeInclusive<i64> = 100..=599;
    pub(super) const MAX_LATENCY: RangeInclusive<Duration> = MS..=HOUR;
    pub(super) const INTERVAL: RangeInclusive<Duration> = Duration::from_millis(10)..=HOUR;
    pub(super) const AFTER_GRACE: RangeInclusive<Duration> = Duration::ZERO..=HOUR;
}

/// The most bytes a parameter value may have. Parameters are kept with
/// every run (its record, the drill's text, the scenario's calls): a 10 MB
/// value once made a 154 MB data dir in two runs.
pub const MAX_PARAM_BYTES: usize = 64 << 10;

/// Why a parameter value is refused, if it is: over [`MAX_PARAM_BYTES`].
pub fn check_param_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_PARAM_BYTES {
        return Err(format!(
            "the value is {} bytes; parameter values are capped at 64 KiB ({MAX_PARAM_BYTES} bytes)",
            value.len()
        ));
    }
    Ok(())
}

/// `text` as it should be echoed in a message or on a terminal: unchanged
/// when short, else its start and its length, so a long value (a parameter
/// of 64 KiB) does not flood the screen.
pub fn elide(text: &str) -> std::borrow::Cow<'_, str> {
    const KEEP: usize = 60;
    if text.len() <= KEEP + 20 {
        return text.into();
    }
    let mut end = KEEP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len()).into()
}

/// "a string", "an integer": how a TOML value's type reads in a sentence.
fn a_kind(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// A duration as a drill would write it: "10ms", "5s", "2m", "24h".
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
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

    /// A problem with the value `v` of `field`, at the value's line.
    fn at(&self, v: &Spanned<toml::Value>, field: &str, message: String) -> DrillError {
        self.err(v.span(), field.to_string(), message)
    }

    /// The integer `field`, within `range` (`unit` follows the bounds in
    /// the message), or `default` when the drill does not set it.
    fn integer(
        &self,
        v: &RawValue,
        field: &str,
        range: RangeInclusive<i64>,
        unit: &str,
        default: i64,
    ) -> Result<i64, DrillError> {
        let Some(v) = v else {
            return Ok(default);
        };
        let toml::Value::Integer(n) = *v.get_ref() else {
            return Err(self.at(
                v,
                field,
                format!("expected an integer, got {}", a_kind(v.get_ref())),
            ));
        };
        if !range.contains(&n) {
            return Err(self.at(
                v,
                field,
                format!(
                    "{n} is out of range ({}..={}{unit})",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(n)
    }

    /// The duration `field` (text such as "30s"), within `range`, or
    /// `default` when the drill does not set it.
    fn duration(
        &self,
        v: &RawValue,
        field: &str,
        range: RangeInclusive<Duration>,
        default: Duration,
    ) -> Result<Duration, DrillError> {
        match v {
            None => Ok(default),
            Some(v) => self.duration_in(v, field, range, "\"30s\""),
        }
    }

    fn duration_in(
        &self,
        v: &Spanned<toml::Value>,
        field: &str,
        range: RangeInclusive<Duration>,
        example: &str,
    ) -> Result<Duration, DrillError> {
        let toml::Value::String(text) = v.get_ref() else {
            return Err(self.at(
                v,
                field,
                format!(
                    "expected a duration like {example}, got {}",
                    a_kind(v.get_ref())
                ),
            ));
        };
        let d = humantime::parse_duration(text).map_err(|e| {
            self.at(
                v,
                field,
                format!(
                    "`{}` is not a duration ({e}); write e.g. \"250ms\", \"5s\" or \"2m\"",
                    elide(text)
                ),
            )
        })?;
        if !range.contains(&d) {
            return Err(self.at(
                v,
                field,
                format!(
                    "\"{text}\" is out of range ({}..={})",
                    human(*range.start()),
                    human(*range.end())
                ),
            ));
        }
        Ok(d)
    }

    /// A serde error: at its line, and naming the key it is about when
    /// the span leads to one (serde's messages do not).
    fn serde_error(&self, e: &toml::de::Error) -> DrillError {
        let field = e
            .span()
            .and_then(|span| key_at(self.text, span.start))
            .unwrap_or_default();
        DrillError {
            file: self.file.clone(),
            line: e.span().map(|s| self.line(s.start)),
            field,
            message: e.message().trim().to_string(),
        }
    }
}

/// The dotted key (`targets.api.kind`, `steady_state[1].phases`) whose key
/// or value lies deepest around byte `at` of a drill that parses as TOML.
fn key_at(text: &str, at: usize) -> Option<String> {
    use toml::de::{DeTable, DeValue};
    fn table(t: &DeTable<'_>, at: usize, path: &str, best: &mut Option<(usize, String)>) {
        for (k, v) in t.iter() {
            let here = if path.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{path}.{}", k.get_ref())
            };
            value(v, at, here, k.span().contains(&at), best);
        }
    }
    fn value(
        v: &toml::Spanned<DeValue<'_>>,
        at: usize,
        path: String,
        on_key: bool,
        best: &mut Option<(usize, String)>,
    ) {
        let depth = path.matches(['.', '[']).count() + 1;
        if (on_key || v.span().contains(&at)) && best.as_ref().is_none_or(|(d, _)| depth >= *d) {
            *best = Some((depth, path.clone()));
        }
        match v.get_ref() {
            DeValue::Table(t) => table(t, at, &path, best),
            // Elements of an array of tables (`[[steady_state]]`) are
            // named by index; plain values stand for their array.
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        let here = format!("{path}[{i}]");
                        if item.span().contains(&at) {
                            *best = Some((depth + 1, here.clone()));
                        }
                        table(t, at, &here, best);
                    }
                }
            }
            _ => {}
        }
    }
    let doc = DeTable::parse(text).ok()?;
    let mut best = None;
    table(doc.get_ref(), at, "", &mut best);
    best.map(|(_, path)| path)
}

impl Drill {
    /// Read and validate a drill file.
    pub fn load(path: &Path) -> Result<Drill, DrillError> {
        let problem = |message: String| DrillError {
            file: path.display().to_string(),
            line: None,
            field: String::new(),
            message,
        };
        let bytes =
            std::fs::read(path).map_err(|e| problem(format!("cannot read the drill file: {e}")))?;
        // A component given where a drill goes (`check x.wasm`) would
        // otherwise read as "stream did not contain valid UTF-8".
        if bytes.starts_with(b"\0asm") {
            let p = path.display();
            return Err(problem(format!(
                "this is a WebAssembly component, not a drill file (TOML): `firedrill inspect {p}` shows its parameters and needs, `firedrill run {p}` runs it"
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            problem(format!(
                "not a drill file: a drill is TOML text, and byte {} is not UTF-8",
                e.utf8_error().valid_up_to()
            ))
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
        let raw: RawDrill = toml::from_str(text).map_err(|e| cx.serde_error(&e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut lines = BTreeMap::new();
        let mut scenario = match raw.scenario {
            Some(s) => {
                lines.insert("scenario".to_string(), cx.line(s.span().start));
                scenario(&cx, s)?
            }
            None => ScenarioSection::default(),
        };
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
            limits: limits(&cx, &raw.limits)?,
            policy: policy(&cx, &raw.policy)?,
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
            (None, None) if self.scenario.package.is_some() => Err(self.problem(
                "scenario",
                "scenario.package",
                "a package is resolved by the `firedrill` command (crate firedrill-packages): \
                 load the installed component's bytes yourself"
                    .into(),
            )),
            (None, None) => Err(self.problem(
                "scenario",
                "scenario",
                "set `path = \"my-scenario.wasm\"`, `bundled = \"NAME\"` or \
                 `package = \"NAMESPACE:NAME@VERSION\"`"
                    .into(),
            )),
        }
    }

    /// Parameters from `[scenario.params]` as text.
    pub fn params(&self) -> BTreeMap<String, String> {
        self.scenario
            .params
            .iter()
            .map(|(k, v)| (k.clone(), param_text(v)))
            .collect()
    }
}

/// `[scenario]`: a seed that fits, parameters within [`MAX_PARAM_BYTES`].
fn scenario(cx: &Ctx<'_>, spanned: Spanned<RawScenario>) -> Result<ScenarioSection, DrillError> {
    let span = spanned.span();
    let raw = spanned.into_inner();
    let sources = [
        raw.path.is_some(),
        raw.bundled.is_some(),
        raw.package.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(cx.err(
            span,
            "scenario".into(),
            "set one of `path`, `bundled` or `package`, not more".into(),
        ));
    }
    // A seed is a u64 and a TOML integer an i64: a recorded seed above
    // 2^63 can be written as a string of digits.
    let seed = match &raw.seed {
        None => None,
        Some(v) => Some(match v.get_ref() {
            toml::Value::Integer(n) if *n >= 0 => *n as u64,
            toml::Value::String(s) => s.parse().map_err(|_| {
                cx.at(
                    v,
                    "scenario.seed",
                    format!(
                        "`{}` is not a seed: write a whole number from 0 to {}",
                        elide(s),
                        u64::MAX
                    ),
                )
            })?,
            toml::Value::Integer(n) => {
                return Err(cx.at(
                    v,
                    "scenario.seed",
                    format!("{n} is out of range (0..={})", u64::MAX),
                ));
            }
            other => {
                return Err(cx.at(
                    v,
                    "scenario.seed",
                    format!("expected an integer, got {}", a_kind(other)),
                ));
            }
        }),
    };
    let mut params = BTreeMap::new();
    for (name, v) in raw.params {
        check_param_value(&param_text(v.get_ref()))
            .map_err(|e| cx.at(&v, &format!("scenario.params.{name}"), e))?;
        params.insert(name, v.into_inner());
    }
    Ok(ScenarioSection {
        path: raw.path,
        bundled: raw.bundled,
        package: raw.package,
        params,
        seed,
    })
}

/// A parameter's value as the scenario sees it: strings as they are,
/// other values as TOML writes them.
fn param_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `[limits]`, each within its [`range`].
fn limits(cx: &Ctx<'_>, raw: &RawLimits) -> Result<Limits, DrillError> {
    let d = Limits::default();
    // The ranges fit in i64 and usize (64-bit targets only: wasmtime's
    // pooling allocator needs them), so the casts below cannot truncate.
    let count = |v: &RawValue, field: &str, range, unit, default: usize| {
        cx.integer(v, field, range, unit, default as i64)
            .map(|n| n as usize)
    };
    Ok(Limits {
        timeout: cx.duration(&raw.timeout, "limits.timeout", range::TIMEOUT, d.timeout)?,
        memory_mib: cx.integer(
            &raw.memory_mib,
            "limits.memory_mib",
            range::MEMORY_MIB,
            " MiB",
            d.memory_mib as i64,
        )? as u64,
        instances: count(
            &raw.instances,
            "limits.instances",
            range::INSTANCES,
            "",
            d.instances,
        )?,
        tables: count(&raw.tables, "limits.tables", range::TABLES, "", d.tables)?,
        table_elements: count(
            &raw.table_elements,
            "limits.table_elements",
            range::TABLE_ELEMENTS,
            "",
            d.table_elements,
        )?,
        output_bytes: count(
            &raw.output_bytes,
            "limits.output_bytes",
            range::OUTPUT_BYTES,
            " bytes",
            d.output_bytes,
        )?,
        log_bytes: count(
            &raw.log_bytes,
            "limits.log_bytes",
            range::LOG_BYTES,
            " bytes",
            d.log_bytes,
        )?,
    })
}

/// `[policy]`, each within its [`range`].
fn policy(cx: &Ctx<'_>, raw: &RawPolicy) -> Result<Policy, DrillError> {
    let d = Policy::default();
    let protected_ports = match &raw.protected_ports {
        None => d.protected_ports,
        Some(v) => {
            let field = "policy.protected_ports";
            let toml::Value::Array(items) = v.get_ref() else {
                return Err(cx.at(
                    v,
                    field,
                    format!(
                        "expected a list of ports like [22, 5432], got {}",
                        a_kind(v.get_ref())
                    ),
                ));
            };
            // Array elements carry no span of their own here: the key's
            // line stands for them.
            let mut ports = Vec::new();
            for item in items {
                let item = Spanned::new(v.span(), item.clone());
                ports.push(cx.integer(&Some(item), field, range::PORT, "", 0)? as u16);
            }
            ports
        }
    };
    Ok(Policy {
        max_fault_duration: cx.duration(
            &raw.max_fault_duration,
            "policy.max_fault_duration",
            range::MAX_FAULT_DURATION,
            d.max_fault_duration,
        )?,
        max_concurrent_faults: cx.integer(
            &raw.max_concurrent_faults,
            "policy.max_concurrent_faults",
            range::MAX_CONCURRENT_FAULTS,
            "",
            d.max_concurrent_faults.into(),
        )? as u32,
        max_calls_per_second: cx.integer(
            &raw.max_calls_per_second,
            "policy.max_calls_per_second",
            range::MAX_CALLS_PER_SECOND,
            "",
            d.max_calls_per_second.into(),
        )? as u32,
        protected_ports,
    })
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
                        count: count @ Some(_),
                        percent: None,
                    }),
                    true,
                ) => Some(Selection::Count(cx.integer(
                    count,
                    &field("select.count"),
                    range::SELECT_COUNT,
                    "",
                    0,
                )? as u32)),
                (
                    Some(RawSelect {
                        count: None,
                        percent: percent @ Some(_),
                    }),
                    true,
                ) => Some(Selection::Percent(cx.integer(
                    percent,
                    &field("select.percent"),
                    range::SELECT_PERCENT,
                    "",
                    0,
                )? as u8)),
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
                ready_timeout: cx.duration(
                    &raw.ready_timeout,
                    &field("ready_timeout"),
                    range::READY_TIMEOUT,
                    Duration::from_secs(10),
                )?,
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
    const THEIRS: [&str; 7] = [
        "api",
        "proxy",
        "token_env",
        "lease",
        "seal_toxics",
        "path",
        "helper",
    ];
    match keys_set(raw).find(|k| THEIRS.contains(k)) {
        Some(key) => Err(cx.err(
            span.clone(),
            format!("targets.{name}.{key}"),
            "only `kind = \"toxiproxy\"` (api, proxy, token_env, lease, seal_toxics) or `kind = \"host\"` (path, helper) targets have this key".into(),
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
        (raw.seal_toxics.is_some(), "seal_toxics"),
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
    if let Some(key) =
        keys_set(&raw).find(|k| !["api", "proxy", "token_env", "lease", "seal_toxics"].contains(k))
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
    let lease = match &raw.lease {
        None => Some(DEFAULT_LEASE),
        Some(v) if v.get_ref().as_str() == Some("off") => None,
        Some(v) => Some(cx.duration_in(v, &field("lease"), range::LEASE, "\"5s\" (or \"off\")")?),
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
    let seal = raw.seal_toxics.unwrap_or(false);
    if seal && lease.is_none() {
        return Err(cx.err(
            span,
            field("seal_toxics"),
            "sealing toxics takes a lease, which only `firedrill proxy serve` has: drop `lease = \"off\"`".into(),
        ));
    }
    Ok(TargetSpec::Remote(RemoteSpec {
        api,
        proxy,
        token_env: raw.token_env.unwrap_or_else(|| "FIREDRILL_TOKEN".into()),
        lease,
        seal,
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
        (Some(path), None, false) => CheckProbe::Http { path, status: None },
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
    let status = match &raw.status {
        None => None,
        Some(_) => Some(cx.integer(&raw.status, &field("status"), range::STATUS, "", 0)? as u16),
    };
    let probe = match probe {
        CheckProbe::Http { path, .. } => CheckProbe::Http { path, status },
        other => other,
    };
    let max_latency = match &raw.max_latency {
        None => None,
        Some(v) => {
            Some(cx.duration_in(v, &field("max_latency"), range::MAX_LATENCY, "\"500ms\"")?)
        }
    };
    let timeout = match &raw.timeout {
        None => None,
        Some(v) => Some(cx.duration_in(v, &field("timeout"), range::MAX_LATENCY, "\"2s\"")?),
    };
    let phases: BTreeSet<Phase> = raw
        .phases
        .unwrap_or_else(|| vec![Phase::Before, Phase::During, Phase::After])
        .into_iter()
        .collect();
    Ok(CheckSpec {
        name: raw.name,
        target: raw.target,
        probe,
        max_latency,
        timeout: timeout.or(max_latency).unwrap_or(Duration::from_secs(5)),
        phases,
        interval: cx.duration(
            &raw.interval,
            &field("interval"),
            range::INTERVAL,
            Duration::from_secs(1),
        )?,
        on_violation: raw.on_violation,
        after_grace: cx.duration(
            &raw.after_grace,
            &field("after_grace"),
            range::AFTER_GRACE,
            Duration::from_secs(5),
        )?,
    })
}

impl crate::policy::Grants for BTreeMap<String, TargetDecl> {
    fn granted(&self, target: &str) -> Option<&BTreeSet<FaultKind>> {
        self.get(target).map(|decl| &decl.grants)
    }
}

/// Targets that listen on or reach a protected port.
pub fn protected_violations(
    policy: &Policy,
    targets: &BTreeMap<String, TargetDecl>,
) -> Vec<String> {
    protected_uses(policy, targets)
        .into_iter()
        .map(|(name, field, p)| format!("targets.{name}.{field} uses port {p}, which is protected"))
        .collect()
}

/// Each (target, field, port) of `targets` on a port `policy` protects.
pub fn protected_uses<'a>(
    policy: &Policy,
    targets: &'a BTreeMap<String, TargetDecl>,
) -> Vec<(&'a str, &'static str, u16)> {
    let port = |addr: &str| addr.parse::<std::net::SocketAddr>().ok().map(|a| a.port());
    let mut out = Vec::new();
    for (name, decl) in targets {
        let addrs: Vec<(&str, Option<u16>)> = match &decl.spec {
            TargetSpec::Proxy(p) => vec![
                ("listen", Some(p.listen.port())),
                ("upstream", port(&p.upstream)),
            ],
            TargetSpec::Process(p) => vec![("address", p.address.as_deref().and_then(port))],
            // Its proxy's ports are known once the server answers.
            TargetSpec::Remote(_) | TargetSpec::Host(_) => vec![],
        };
        for (field, p) in addrs {
            if let Some(p) = p.filter(|p| policy.protected_ports.contains(p)) {
                out.push((name.as_str(), field, p));
            }
        }
    }
    out
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
            e.starts_with("drill.toml:2: limits.timeout: `soon` is not a duration"),
            "{e}"
        );
        // serde's own errors are given the key their span leads to.
        let e = parse("[targets.x]\nkind = \"proxy\"\ngrants = [\"dely\"]\n").unwrap_err();
        assert!(
            e.starts_with("drill.toml:3: targets.x.grants: unknown variant `dely`"),
            "{e}"
        );
        let e = parse("[scenario]\nbundled = \"x\"\n\n[[steady_state]]\nname = \"a\"\ntarget = \"b\"\nphases = [\"sometime\"]\n").unwrap_err();
        assert!(
            e.starts_with("drill.toml:7: steady_state[0].phases: unknown variant `sometime`"),
            "{e}"
        );
        let e = parse("[targets.api]\nkind = \"process\"\ncommand = 5\n").unwrap_err();
        assert!(
            e.starts_with("drill.toml:3: targets.api.command: invalid type: integer `5`"),
            "{e}"
        );
    }

    /// Every numeric key has a range; a value outside it, of the wrong
    /// type, or that once overflowed or spun, is refused with its line
    /// and field.
    #[test]
    fn numbers_and_durations_out_of_range_or_of_the_wrong_type_are_refused() {
        let cases = [
            (
                "[limits]\nmemory_mib = 17592186044416\n",
                "drill.toml:2: limits.memory_mib: 17592186044416 is out of range (1..=4096 MiB)",
            ),
            (
                "[limits]\nmemory_mib = 0\n",
                "drill.toml:2: limits.memory_mib: 0 is out of range (1..=4096 MiB)",
            ),
            (
                "[limits]\nmemory_mib = \"64\"\n",
                "drill.toml:2: limits.memory_mib: expected an integer, got a string",
            ),
            (
                "[limits]\ntimeout = \"0s\"\n",
                "drill.toml:2: limits.timeout: \"0s\" is out of range (10ms..=24h)",
            ),
            (
                "[limits]\ntimeout = 30\n",
                "drill.toml:2: limits.timeout: expected a duration like \"30s\", got an integer",
            ),
            (
                "[limits]\ninstances = 65\n",
                "drill.toml:2: limits.instances: 65 is out of range (1..=64)",
            ),
            (
                "[limits]\ntable_elements = 2000000\n",
                "drill.toml:2: limits.table_elements: 2000000 is out of range (1..=1048576)",
            ),
            (
                "[limits]\noutput_bytes = -1\n",
                "drill.toml:2: limits.output_bytes: -1 is out of range (0..=67108864 bytes)",
            ),
            (
                "[limits]\nlog_bytes = 10\n",
                "drill.toml:2: limits.log_bytes: 10 is out of range (1024..=268435456 bytes)",
            ),
            (
                "[policy]\nmax_fault_duration = \"0s\"\n",
                "drill.toml:2: policy.max_fault_duration: \"0s\" is out of range (10ms..=24h)",
            ),
            (
                "[policy]\nmax_calls_per_second = 0\n",
                "drill.toml:2: policy.max_calls_per_second: 0 is out of range (1..=1000000)",
            ),
            (
                "[policy]\nmax_concurrent_faults = 0\n",
                "drill.toml:2: policy.max_concurrent_faults: 0 is out of range (1..=1000)",
            ),
            (
                "[policy]\nprotected_ports = [22, 70000]\n",
                "drill.toml:2: policy.protected_ports: 70000 is out of range (1..=65535)",
            ),
            (
                "[policy]\nprotected_ports = 22\n",
                "drill.toml:2: policy.protected_ports: expected a list of ports like [22, 5432], got an integer",
            ),
            (
                "[scenario]\nbundled = \"x\"\nseed = -1\n",
                "drill.toml:3: scenario.seed: -1 is out of range (0..=18446744073709551615)",
            ),
            (
                "[targets.api]\nkind = \"process\"\ncommand = \"x\"\nready_timeout = \"0s\"\n",
                "drill.toml:4: targets.api.ready_timeout: \"0s\" is out of range (100ms..=1h)",
            ),
            (
                "[targets.w]\nkind = \"process\"\npgrep = \"w\"\nselect = { count = 0 }\n",
                "drill.toml:4: targets.w.select.count: 0 is out of range (1..=100000)",
            ),
            (
                "[targets.w]\nkind = \"process\"\npgrep = \"w\"\nselect = { percent = 101 }\n",
                "drill.toml:4: targets.w.select.percent: 101 is out of range (1..=100)",
            ),
            (
                "[targets.c]\nkind = \"toxiproxy\"\napi = \"127.0.0.1:1\"\nproxy = \"p\"\nlease = 5\n",
                "drill.toml:5: targets.c.lease: expected a duration like \"5s\" (or \"off\"), got an integer",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).unwrap_err(), expected, "{text}");
        }
        let target = "[targets.api]\nkind = \"proxy\"\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:1\"\n\n[[steady_state]]\nname = \"up\"\ntarget = \"api\"\nhttp = \"/\"\n";
        for (key, expected) in [
            (
                "interval = \"0s\"",
                "drill.toml:10: steady_state[0].interval: \"0s\" is out of range (10ms..=1h)",
            ),
            (
                "status = 99",
                "drill.toml:10: steady_state[0].status: 99 is out of range (100..=599)",
            ),
            (
                "max_latency = \"0s\"",
                "drill.toml:10: steady_state[0].max_latency: \"0s\" is out of range (1ms..=1h)",
            ),
            (
                "after_grace = \"2h\"",
                "drill.toml:10: steady_state[0].after_grace: \"2h\" is out of range (0s..=1h)",
            ),
        ] {
            assert_eq!(parse(&format!("{target}{key}\n")).unwrap_err(), expected);
        }
    }

    #[test]
    fn values_at_the_edges_of_their_ranges_are_kept() {
        let d = parse(
            "[scenario]\nbundled = \"x\"\nseed = \"18446744073709551615\"\n[limits]\nmemory_mib = 4096\ntimeout = \"24h\"\noutput_bytes = 0\n[policy]\nmax_fault_duration = \"10ms\"\nprotected_ports = [1, 65535]\n",
        )
        .unwrap();
        assert_eq!(d.scenario.seed, Some(u64::MAX));
        assert_eq!(d.limits.memory_mib, 4096);
        assert_eq!(d.limits.timeout, Duration::from_secs(24 * 3600));
        assert_eq!(d.limits.output_bytes, 0);
        assert_eq!(d.policy.max_fault_duration, Duration::from_millis(10));
        assert_eq!(d.policy.protected_ports, vec![1, 65535]);
        assert_eq!(
            d.policy.max_calls_per_second,
            Policy::default().max_calls_per_second
        );
    }

    #[test]
    fn a_parameter_value_over_64_kib_is_refused_and_echoes_are_cut() {
        let long = "x".repeat(MAX_PARAM_BYTES + 1);
        let e = parse(&format!(
            "[scenario]\nbundled = \"x\"\nparams = {{ blob = \"{long}\" }}\n"
        ))
        .unwrap_err();
        assert_eq!(
            e,
            "drill.toml:3: scenario.params.blob: the value is 65537 bytes; parameter values are capped at 64 KiB (65536 bytes)"
        );
        let fits = "x".repeat(MAX_PARAM_BYTES);
        let d = parse(&format!(
            "[scenario]\nbundled = \"x\"\nparams = {{ blob = \"{fits}\" }}\n"
        ))
        .unwrap();
        assert_eq!(d.params()["blob"].len(), MAX_PARAM_BYTES);

        assert_eq!(elide("short"), "short");
        let cut = elide(&fits);
        assert!(cut.len() < 100, "{cut}");
        assert!(cut.ends_with("… (65536 bytes)"), "{cut}");
        // Never cut inside a character.
        assert!(elide(&"é".repeat(100)).starts_with(&"é".repeat(30)));
    }

    #[test]
    fn a_component_or_binary_given_as_a_drill_says_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("x.wasm");
        std::fs::write(&wasm, b"\0asm\x0d\0\x01\0").unwrap();
        let e = Drill::load(&wasm).unwrap_err().to_string();
        assert!(
            e.contains(
                "this is a WebAssembly component, not a drill file (TOML): `firedrill inspect"
            ),
            "{e}"
        );
        let junk = dir.path().join("junk.toml");
        std::fs::write(&junk, b"a = 1\n\xff\xfe").unwrap();
        let e = Drill::load(&junk).unwrap_err().to_string();
        assert!(
            e.ends_with("not a drill file: a drill is TOML text, and byte 6 is not UTF-8"),
            "{e}"
        );
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
            e.contains("targets.cache.lease: \"10ms\" is out of range (200ms..=1h)"),
            "{e}"
        );
        let d = parse(&format!("{base}lease = \"off\"\n")).unwrap();
        let TargetSpec::Remote(spec) = &d.targets["cache"].spec else {
            panic!("{:?}", d.targets["cache"]);
        };
        assert_eq!(spec.lease, None);
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
