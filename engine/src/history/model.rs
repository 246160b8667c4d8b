//! The typed run journal: [`Run`], [`RunStatus`], [`Event`] and [`EventKind`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// A run's id: milliseconds since the Unix epoch in the high 48 bits and a
/// counter in the low 16, so ids sort by start time. Shown as 16 hex digits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct RunId(pub u64);

impl RunId {
    /// Big-endian bytes: the key prefix of the run in every store tree.
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for RunId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(RunId).map_err(|_| {
            format!("`{s}` is not a run id (16 hex digits, as `firedrill history` shows)")
        })
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) from Unix ms.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
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
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// How a run ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Still running (or the engine died; recovery turns it into `Crashed`).
    Running,
    /// The scenario's verdict was pass and steady state held.
    Passed,
    /// The scenario's verdict was fail.
    Failed,
    /// A steady-state check failed before, during or after the run.
    SteadyStateViolated,
    /// Stopped by a trap, the time limit or a resource limit.
    Aborted,
    /// Stopped by an operator (Ctrl-C, SIGTERM, halt).
    Halted,
    /// The engine died during the run; faults were reverted on recovery.
    Crashed,
    /// At least one fault could not be reverted.
    RevertFailed,
    /// Not started: needs not granted, bad parameters.
    Refused,
}

impl RunStatus {
    /// Lower-case name as shown and filtered on.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Passed => "passed",
            RunStatus::Failed => "failed",
            RunStatus::SteadyStateViolated => "steady-state-violated",
            RunStatus::Aborted => "aborted",
            RunStatus::Halted => "halted",
            RunStatus::Crashed => "crashed",
            RunStatus::RevertFailed => "revert-failed",
            RunStatus::Refused => "refused",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scenario a run ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioRef {
    /// Name from `describe()`.
    pub name: String,
    /// Version from `describe()`.
    pub version: String,
    /// sha256 of the component bytes, hex.
    pub sha256: String,
    /// Where it came from (a path, or `bundled:NAME`).
    pub source: String,
    /// The package it was installed as, when a drill named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<PackageRef>,
}

/// The package a run's scenario came from: what was verified before the
/// run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PackageRef {
    /// `namespace:name@version`.
    pub id: String,
    /// The component's digest, `sha256:<hex>`.
    pub digest: String,
    /// The id of the key that signed it (`bundled` for scenarios that
    /// ship inside firedrill).
    pub signer: String,
    /// The registry it was installed from.
    pub registry: String,
}

/// A measurement reported by the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Measurement {
    /// Name.
    pub name: String,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: String,
}

/// A finding reported by the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// One line.
    pub title: String,
    /// Details.
    pub detail: String,
}

/// What the scenario's `run()` returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Outcome {
    /// True for `pass`.
    pub pass: bool,
    /// One line.
    pub summary: String,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Measurements.
    pub measurements: Vec<Measurement>,
}

/// One run, as stored in history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    /// Id, time-sortable.
    pub id: RunId,
    /// The scenario.
    pub scenario: ScenarioRef,
    /// Parameters after defaults were applied.
    pub params: BTreeMap<String, String>,
    /// Seed of the run's generator.
    pub seed: u64,
    /// firedrill version that ran it.
    pub engine_version: String,
    /// The drill file, if any.
    pub drill: Option<String>,
    /// The drill's text, so the run can be replayed with the same targets.
    #[serde(default)]
    pub drill_text: Option<String>,
    /// True when faults were planned but not applied.
    pub dry_run: bool,
    /// Start, Unix ms.
    pub started_at: u64,
    /// End, Unix ms.
    pub ended_at: Option<u64>,
    /// Status.
    pub status: RunStatus,
    /// What the scenario returned, if it returned.
    pub outcome: Option<Outcome>,
    /// Why it did not pass, in words, when there is a cause beyond the
    /// verdict (a trap, a violated check, a failed revert).
    pub error: Option<String>,
    /// Parameters the scenario declared secret in `describe()`; with those
    /// whose names say so ([`is_secret`]), their values are masked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_params: Vec<String>,
}

/// What a secret parameter's value is shown as.
pub const MASKED: &str = "********";

/// Whether a parameter (or header) with this name holds a secret: one of
/// its words is token, password, passwd, secret, key, apikey or
/// credential(s), and its last word does not say it names or locates one
/// (`token_path`, `secret_name`, `key_count`, `password_file` are not
/// secrets). Words are split at `_`, `-`, `.` and lower-to-upper case
/// changes. Its value is masked wherever a run is shown or reported.
/// History keeps it, for replay.
pub fn is_secret(name: &str) -> bool {
    const SECRET: &[&str] = &[
        "token",
        "password",
        "passwd",
        "secret",
        "key",
        "apikey",
        "credential",
        "credentials",
    ];
    const NOT: &[&str] = &[
        "path", "url", "uri", "endpoint", "name", "file", "count", "length", "id", "type",
        "header", "env", "size", "prefix",
    ];
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            words.push(std::mem::take(&mut word));
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    words.push(word);
    words.retain(|w| !w.is_empty());
    let named = words.iter().any(|w| SECRET.contains(&w.as_str()));
    let locates = words.len() > 1 && words.last().is_some_and(|w| NOT.contains(&w.as_str()));
    named && !locates
}

/// Replaces secret parameter values in the text a run records (log lines,
/// events, probe arguments, output, the outcome), so a scenario that echoes
/// its token does not put it in history. Values shorter than
/// [`Redactor::MIN_LEN`] are left alone: masking every `1` would make the
/// timeline unreadable and hide nothing.
#[derive(Debug, Default)]
pub(crate) struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    pub(crate) const MIN_LEN: usize = 4;

    /// The values of `params` that are secret, by name or by `declared`.
    pub(crate) fn new(params: &BTreeMap<String, String>, declared: &[String]) -> Redactor {
        let mut values: Vec<String> = params
            .iter()
            .filter(|(k, v)| {
                (is_secret(k) || declared.contains(k)) && v.chars().count() >= Self::MIN_LEN
            })
            .map(|(_, v)| v.clone())
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactor { values }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret value masked.
    pub(crate) fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASKED);
            }
        }
        out
    }

    /// `value` with every string in it (not the field names) masked.
    pub(crate) fn value<T: serde::Serialize + serde::de::DeserializeOwned>(&self, value: T) -> T {
        fn walk(r: &Redactor, v: &mut serde_json::Value) {
            match v {
                serde_json::Value::String(s) if r.values.iter().any(|x| s.contains(x.as_str())) => {
                    *s = r.text(s);
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(|v| walk(r, v)),
                serde_json::Value::Object(o) => o.values_mut().for_each(|v| walk(r, v)),
                _ => {}
            }
        }
        if self.is_empty() {
            return value;
        }
        let Ok(mut json) = serde_json::to_value(&value) else {
            return value;
        };
        walk(self, &mut json);
        serde_json::from_value(json).unwrap_or(value)
    }
}

impl Run {
    /// Whether the parameter `name` of this run is a secret: declared so
    /// by the scenario, or named like one.
    pub fn is_secret_param(&self, name: &str) -> bool {
        is_secret(name) || self.secret_params.iter().any(|s| s == name)
    }

    /// The parameters, secret ones masked.
    pub fn masked_params(&self) -> BTreeMap<String, String> {
        self.params
            .iter()
            .map(|(k, v)| {
                let v = if self.is_secret_param(k) {
                    MASKED.to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// The same run with secret parameters masked, for showing it.
    pub fn for_display(&self) -> Run {
        Run {
            params: self.masked_params(),
            ..self.clone()
        }
    }

    /// The status as people read it: a dry run says so, since its verdict
    /// judged a plan, not faults that were applied.
    pub fn verdict(&self) -> String {
        if self.dry_run {
            format!("dry run ({})", self.status.as_str())
        } else {
            self.status.as_str().to_string()
        }
    }
}

/// One entry of a run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Position in the timeline, from 0.
    pub seq: u32,
    /// Microseconds since the run started.
    pub at_us: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Steady-state check phase.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Before the scenario starts.
    Before,
    /// While it runs.
    During,
    /// After it ended and its faults were reverted.
    After,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Before => "before",
            Phase::During => "during",
            Phase::After => "after",
        })
    }
}

/// What happened at one point of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    /// The run started.
    Started,
    /// The scenario called the host; arguments and result as JSON.
    Call {
        /// `interface.function`, e.g. `faults.delay`.
        call: String,
        /// Arguments.
        args: serde_json::Value,
        /// Result (`{"ok": …}` or `{"err": …}`).
        result: serde_json::Value,
    },
    /// A fault took effect (or, in a dry run, would have).
    FaultApplied {
        /// Fault id within the run.
        fault: u32,
        /// Fault kind, e.g. `delay`.
        kind: String,
        /// Target name.
        target: String,
        /// Human summary, e.g. `300ms ± 20ms downstream`.
        detail: String,
        /// Automatic revert after this many ms.
        duration_ms: Option<u64>,
        /// True in a dry run: recorded, not applied.
        planned: bool,
    },
    /// A fault was undone.
    FaultReverted {
        /// Fault id.
        fault: u32,
        /// Why: `scenario`, `duration`, `run-end`, `halt`, `recovery`.
        reason: String,
        /// Error, if the undo failed.
        error: Option<String>,
    },
    /// A log line from the scenario.
    Log {
        /// Level.
        level: String,
        /// Message.
        message: String,
    },
    /// A named mark from the scenario (`host.event`).
    Mark {
        /// Name.
        name: String,
        /// Detail.
        detail: String,
    },
    /// The guest wrote to stdout or stderr.
    Output {
        /// `stdout` or `stderr`.
        stream: String,
        /// Text (lossy UTF-8).
        text: String,
    },
    /// A steady-state check ran.
    Check {
        /// Check name.
        name: String,
        /// Phase.
        phase: Phase,
        /// Whether it held.
        ok: bool,
        /// What was seen.
        detail: String,
    },
    /// The run ended.
    Ended {
        /// Final status.
        status: RunStatus,
        /// Cause, if any.
        error: Option<String>,
    },
}

/// One line for people, as `firedrill show` and the live view print it.
impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Started => write!(f, "started"),
            EventKind::Call { call, args, result } => {
                let answer = match result.as_object().filter(|o| o.len() == 1) {
                    Some(o) if o.contains_key("ok") => match &o["ok"] {
                        serde_json::Value::Null => "ok".to_string(),
                        v => compact(v),
                    },
                    Some(o) if o.contains_key("err") => format!("error: {}", compact(&o["err"])),
                    _ => compact(result),
                };
                write!(f, "{call}({}) → {answer}", compact(args))
            }
            EventKind::FaultApplied {
                fault,
                kind,
                target,
                detail,
                planned,
                ..
            } => {
                let verb = if *planned { "planned" } else { "applied" };
                write!(f, "fault {fault} {verb}: {kind} on {target}: {detail}")
            }
            EventKind::FaultReverted {
                fault,
                reason,
                error,
            } => match error {
                Some(e) => write!(f, "fault {fault} NOT reverted ({reason}): {e}"),
                None => write!(f, "fault {fault} reverted ({reason})"),
            },
            EventKind::Log { level, message } => write!(f, "[{level}] {message}"),
            EventKind::Mark { name, detail } => write!(f, "{name}: {detail}"),
            EventKind::Output { stream, text } => write!(f, "{stream}: {}", text.trim_end()),
            EventKind::Check {
                name,
                phase,
                ok,
                detail,
            } => {
                let mark = if *ok { "ok" } else { "VIOLATED" };
                write!(f, "steady state `{name}` ({phase}): {mark}, {detail}")
            }
            EventKind::Ended { status, error } => match error {
                Some(e) => write!(f, "ended {status}: {e}"),
                None => write!(f, "ended {status}"),
            },
        }
    }
}

/// A JSON value as a person reads it in a timeline: `key=value` pairs,
/// bare strings, no braces.
fn compact(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", compact(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(a) => format!("[{}]", a.iter().map(compact).collect::<Vec<_>>().join(", ")),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
