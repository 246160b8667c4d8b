//! Policy: what a run may do. A fault is allowed only when the scenario
//! declared it in `describe()` *and* the drill file grants that kind on that
//! target; limits on duration and concurrency apply whatever is granted.
//! The principal types are [`Policy`] and [`FaultKind`].

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// A kind of fault, as declared in needs and granted in drill files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Signal a process.
    Kill,
    /// Stop a process until reverted.
    Pause,
    /// Add latency on a proxy.
    Delay,
    /// Break authentication on an HTTP proxy.
    FailAuth,
    /// Answer errors on an HTTP proxy.
    HttpError,
    /// Limit a proxy's throughput.
    Bandwidth,
    /// Forward nothing on a proxy.
    Blackhole,
    /// Take a proxy's listener down.
    Refuse,
    /// Reset a proxy's connections.
    ResetPeer,
    /// Stop data on a proxy, then close.
    Timeout,
    /// Delay the close of a proxy's connections.
    SlowClose,
    /// Cut a proxy's data into small delayed pieces.
    Slicer,
    /// Close a proxy's connections after some bytes.
    LimitData,
    /// Close or reset an HTTP proxy's exchanges mid-way.
    HttpAbort,
    /// Change an HTTP proxy's responses.
    HttpModify,
    /// Restart a supervised process.
    Restart,
    /// Keep CPUs of the host busy.
    CpuStress,
    /// Hold memory on the host.
    MemoryStress,
    /// Fill a directory of the host with a file.
    DiskFill,
}

impl FaultKind {
    /// Name as written in drill files.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Delay => "delay",
            FaultKind::FailAuth => "fail-auth",
            FaultKind::HttpError => "http-error",
            FaultKind::Bandwidth => "bandwidth",
            FaultKind::Blackhole => "blackhole",
            FaultKind::Refuse => "refuse",
            FaultKind::ResetPeer => "reset-peer",
            FaultKind::Timeout => "timeout",
            FaultKind::SlowClose => "slow-close",
            FaultKind::Slicer => "slicer",
            FaultKind::LimitData => "limit-data",
            FaultKind::HttpAbort => "http-abort",
            FaultKind::HttpModify => "http-modify",
            FaultKind::Restart => "restart",
            FaultKind::CpuStress => "cpu-stress",
            FaultKind::MemoryStress => "memory-stress",
            FaultKind::DiskFill => "disk-fill",
        }
    }

    /// Applies to process targets.
    pub fn on_process(self) -> bool {
        matches!(
            self,
            FaultKind::Kill | FaultKind::Pause | FaultKind::Restart
        )
    }

    /// Applies to host targets.
    pub fn on_host(self) -> bool {
        matches!(
            self,
            FaultKind::CpuStress | FaultKind::MemoryStress | FaultKind::DiskFill
        )
    }

    /// Applies to proxy targets.
    pub fn on_proxy(self) -> bool {
        !self.on_process() && !self.on_host()
    }

    /// Needs an HTTP-mode proxy.
    pub fn needs_http(self) -> bool {
        matches!(
            self,
            FaultKind::FailAuth
                | FaultKind::HttpError
                | FaultKind::HttpAbort
                | FaultKind::HttpModify
        )
    }

    /// Needs a TCP-mode proxy (acts on the byte stream).
    pub fn needs_tcp(self) -> bool {
        self.on_proxy()
            && !self.needs_http()
            && !matches!(
                self,
                FaultKind::Delay | FaultKind::Refuse | FaultKind::Bandwidth
            )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Engine-enforced limits that hold whatever a scenario asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Every fault is reverted after at most this long (default 5m).
    pub max_fault_duration: Duration,
    /// At most this many faults in effect at once (default 8).
    pub max_concurrent_faults: u32,
    /// Host calls a scenario may make per second (default 10000); faster
    /// callers wait. `now`, `param` and `params` are not counted.
    pub max_calls_per_second: u32,
    /// Ports no target may listen on or reach, whatever the grants.
    pub protected_ports: Vec<u16>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            max_fault_duration: Duration::from_secs(300),
            max_concurrent_faults: 8,
            max_calls_per_second: 10_000,
            protected_ports: Vec::new(),
        }
    }
}

/// A fault a scenario says it needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Need {
    /// Kind.
    pub kind: FaultKind,
    /// Target name.
    pub target: String,
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on target \"{}\"", self.kind, self.target)
    }
}

/// Why a need is not covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The need.
    pub need: Need,
    /// What to do about it.
    pub hint: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.need, self.hint)
    }
}

/// What each target of a run grants: the drill's target declarations
/// (`drill::TargetDecl`s by name) implement it, so policy needs nothing of
/// the drill file.
pub trait Grants {
    /// The fault kinds `target` grants, or `None` if no target of that
    /// name is declared.
    fn granted(&self, target: &str) -> Option<&BTreeSet<FaultKind>>;
}

/// Grants given directly, target by target.
impl Grants for BTreeMap<String, BTreeSet<FaultKind>> {
    fn granted(&self, target: &str) -> Option<&BTreeSet<FaultKind>> {
        self.get(target)
    }
}

/// The needs that `targets` do not grant.
pub fn missing_grants(needs: &[Need], targets: &impl Grants) -> Vec<Missing> {
    needs
        .iter()
        .filter_map(|need| {
            let hint = match targets.granted(&need.target) {
                None => format!("no target `{}` is declared in the drill file", need.target),
                Some(grants) if !grants.contains(&need.kind) => {
                    format!("add \"{}\" to targets.{}.grants", need.kind, need.target)
                }
                Some(_) => return None,
            };
            Some(Missing {
                need: need.clone(),
                hint,
            })
        })
        .collect()
}

/// Check one fault call at run time. `declared` are the needs from
/// `describe()`. Returns the text of the guest's `denied` error.
pub fn check_call(
    kind: FaultKind,
    target: &str,
    declared: &[Need],
    targets: &impl Grants,
) -> Result<(), String> {
    let need = Need {
        kind,
        target: target.to_string(),
    };
    if let Some(m) = missing_grants(std::slice::from_ref(&need), targets).pop() {
        return Err(format!("{} is not granted: {}", m.need, m.hint));
    }
    if !declared.contains(&need) {
        return Err(format!(
            "{need} is not declared in the scenario's describe() needs"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> BTreeMap<String, BTreeSet<FaultKind>> {
        BTreeMap::from([("db".to_string(), BTreeSet::from([FaultKind::Delay]))])
    }

    fn need(kind: FaultKind, target: &str) -> Need {
        Need {
            kind,
            target: target.into(),
        }
    }

    #[test]
    fn needs_are_covered_only_by_grants_on_that_target() {
        let t = targets();
        assert!(missing_grants(&[need(FaultKind::Delay, "db")], &t).is_empty());
        let m = missing_grants(
            &[
                need(FaultKind::HttpError, "db"),
                need(FaultKind::Delay, "cache"),
            ],
            &t,
        );
        assert_eq!(
            m.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            [
                "http-error on target \"db\" (add \"http-error\" to targets.db.grants)",
                "delay on target \"cache\" (no target `cache` is declared in the drill file)"
            ]
        );
    }

    #[test]
    fn a_call_needs_both_the_declaration_and_the_grant() {
        let t = targets();
        let declared = [need(FaultKind::Delay, "db")];
        assert!(check_call(FaultKind::Delay, "db", &declared, &t).is_ok());
        assert_eq!(
            check_call(FaultKind::Delay, "db", &[], &t).unwrap_err(),
            "delay on target \"db\" is not declared in the scenario's describe() needs"
        );
        assert!(
            check_call(FaultKind::HttpError, "db", &declared, &t)
                .unwrap_err()
                .contains("is not granted")
        );
    }
}
