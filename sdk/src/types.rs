//! The error type, and builders on the generated records.

use std::fmt;
use std::str::FromStr;

use crate::{
    AuthMode, FaultKind, Finding, Measurement, Metadata, Need, Outcome, ParamSpec, ParamType,
    RequestMatch, Severity, Signal, Verdict,
};

/// What went wrong with a host call, as the scenario sees it.
///
/// The same cases as the WIT `error` variant; the bindings convert to and
/// from it. `Display` gives a short sentence with the host's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The run's policy does not grant this; the payload names the missing
    /// grant, e.g. `delay on target "db-link"`.
    Denied(String),
    /// No target of that name is declared in the drill file.
    UnknownTarget(String),
    /// An argument is out of range or malformed; the payload says which.
    InvalidArgument(String),
    /// The target cannot take this fault or probe.
    Unsupported(String),
    /// The host tried and failed; the payload has the cause.
    Failed(String),
    /// The run is being stopped: return promptly. The engine reverts faults.
    Halted,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Denied(what) => write!(f, "denied: {what}"),
            Error::UnknownTarget(what) => write!(f, "unknown target: {what}"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
            Error::Failed(what) => write!(f, "failed: {what}"),
            Error::Halted => f.write_str("halted: the run is being stopped"),
        }
    }
}

impl std::error::Error for Error {}

impl FromStr for Signal {
    type Err = Error;

    /// Parses a signal's name: `term`, `kill`, `int`, `hup`, `quit`,
    /// `usr1`, `usr2`, `abrt`, `segv`, … (case-insensitive, with or without
    /// a `SIG` prefix).
    fn from_str(s: &str) -> Result<Self, Error> {
        let lower = s.trim().to_ascii_lowercase();
        let name = lower.strip_prefix("sig").unwrap_or(&lower);
        Ok(match name {
            "term" => Signal::Term,
            "kill" => Signal::Kill,
            "int" => Signal::Int,
            "hup" => Signal::Hup,
            "quit" => Signal::Quit,
            "usr1" => Signal::Usr1,
            "usr2" => Signal::Usr2,
            "abrt" => Signal::Abrt,
            "alrm" => Signal::Alrm,
            "bus" => Signal::Bus,
            "cont" => Signal::Cont,
            "fpe" => Signal::Fpe,
            "ill" => Signal::Ill,
            "pipe" => Signal::Pipe,
            "segv" => Signal::Segv,
            "stop" => Signal::Stop,
            "sys" => Signal::Sys,
            "trap" => Signal::Trap,
            "tstp" => Signal::Tstp,
            "xcpu" => Signal::Xcpu,
            "xfsz" => Signal::Xfsz,
            "winch" => Signal::Winch,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unknown signal {s:?} (expected term, kill, int, hup, quit, usr1, usr2, abrt, alrm, bus, cont, fpe, ill, pipe, segv, stop, sys, trap, tstp, xcpu, xfsz or winch)"
                )));
            }
        })
    }
}

impl FromStr for AuthMode {
    type Err = Error;

    /// Parses `reject`, `strip`, `corrupt` or `expire` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "reject" => AuthMode::Reject,
            "strip" => AuthMode::Strip,
            "corrupt" => AuthMode::Corrupt,
            "expire" => AuthMode::Expire,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unknown auth mode {s:?} (expected reject, strip, corrupt or expire)"
                )));
            }
        })
    }
}

impl Metadata {
    /// Metadata with no parameters and no needs.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Metadata {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            params: Vec::new(),
            needs: Vec::new(),
        }
    }

    /// Declare a parameter. A `None` default makes it required.
    pub fn param(
        mut self,
        name: impl Into<String>,
        ty: ParamType,
        default: Option<&str>,
        doc: impl Into<String>,
    ) -> Self {
        self.params.push(ParamSpec {
            name: name.into(),
            ty,
            default: default.map(str::to_owned),
            doc: doc.into(),
            secret: false,
        });
        self
    }

    /// Mark the parameter declared last as a secret (a token, a password, a
    /// key): firedrill masks its value wherever a run is shown or reported.
    ///
    /// ```
    /// # use firedrill_sdk::*;
    /// let m = Metadata::new("login", "1.0.0", "Logs in.")
    ///     .param("pin", ParamType::String, None, "The account's PIN")
    ///     .secret();
    /// assert!(m.params[0].secret);
    /// ```
    ///
    /// # Panics
    /// If no parameter was declared yet.
    pub fn secret(mut self) -> Self {
        self.params
            .last_mut()
            .expect("`secret()` marks the parameter declared before it")
            .secret = true;
        self
    }

    /// Declare that the scenario will make a `kind` fault on `target`.
    pub fn need(mut self, kind: FaultKind, target: impl Into<String>) -> Self {
        self.needs.push(Need {
            kind,
            target: target.into(),
        });
        self
    }
}

impl Outcome {
    /// An outcome with `verdict` and no findings or measurements.
    pub fn new(verdict: Verdict, summary: impl Into<String>) -> Self {
        Outcome {
            verdict,
            summary: summary.into(),
            findings: Vec::new(),
            measurements: Vec::new(),
        }
    }

    /// A passing outcome.
    pub fn pass(summary: impl Into<String>) -> Self {
        Self::new(Verdict::Pass, summary)
    }

    /// A failing outcome.
    pub fn fail(summary: impl Into<String>) -> Self {
        Self::new(Verdict::Fail, summary)
    }

    /// Whether the verdict is [`Verdict::Pass`].
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// Add a finding.
    pub fn finding(
        mut self,
        severity: Severity,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        self.findings.push(Finding {
            severity,
            title: title.into(),
            detail: detail.into(),
        });
        self
    }

    /// Add a measurement, e.g. `.measure("recovery-time", 812.0, "ms")`.
    pub fn measure(mut self, name: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        self.measurements.push(Measurement {
            name: name.into(),
            value,
            unit: unit.into(),
        });
        self
    }
}

impl Default for RequestMatch {
    /// Matches every request.
    fn default() -> Self {
        RequestMatch {
            method: None,
            path: None,
            header: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_is_readable() {
        let e = Error::Denied(r#"delay on target "api-link""#.into());
        assert_eq!(e.to_string(), r#"denied: delay on target "api-link""#);
        assert_eq!(
            Error::UnknownTarget("nope".into()).to_string(),
            "unknown target: nope"
        );
    }

    #[test]
    fn parses_signals_and_modes() {
        assert_eq!("TERM".parse::<Signal>(), Ok(Signal::Term));
        assert_eq!("sigkill".parse::<Signal>(), Ok(Signal::Kill));
        assert_eq!("usr2".parse::<Signal>(), Ok(Signal::Usr2));
        assert_eq!("SIGSEGV".parse::<Signal>(), Ok(Signal::Segv));
        assert!("sigfoo".parse::<Signal>().is_err());
        assert_eq!("expire".parse::<AuthMode>(), Ok(AuthMode::Expire));
        assert_eq!("strip".parse::<AuthMode>(), Ok(AuthMode::Strip));
        assert!("nope".parse::<AuthMode>().is_err());
    }

    #[test]
    fn builders_collect() {
        let m = Metadata::new("n", "0.1.0", "d")
            .param("a", ParamType::String, Some("x"), "doc")
            .param("b", ParamType::Integer, None, "doc")
            .need(FaultKind::Kill, "api");
        assert_eq!(m.params.len(), 2);
        assert_eq!(m.params[0].default.as_deref(), Some("x"));
        assert_eq!(m.params[1].default, None);
        assert_eq!(m.needs[0].target, "api");
        let o = Outcome::fail("s")
            .finding(Severity::Critical, "t", "d")
            .measure("m", 1.5, "ms");
        assert!(!o.passed());
        assert_eq!(o.findings.len(), 1);
        assert_eq!(o.measurements[0].value, 1.5);
    }
}
