//! The cgroup freezer: how container platforms pause a whole service. An
//! attached target that lives in a cgroup of its own (a systemd unit, a
//! container) is paused by freezing that cgroup, which stops every process
//! in it at once, including ones forked a moment before, where signalling
//! a tree one process at a time can miss them. Version 2 (`cgroup.freeze`)
//! is preferred; version 1's `freezer` controller (`freezer.state`) is the
//! fallback.

use crate::drivers::process::ProcessId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A freezable cgroup: its directory, and which interface it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "version", rename_all = "kebab-case")]
pub enum Freezer {
    /// cgroup v2: `cgroup.freeze` takes 1 or 0.
    V2 {
        /// The cgroup's directory.
        #[schemars(with = "String")]
        dir: PathBuf,
    },
    /// cgroup v1 `freezer`: `freezer.state` takes FROZEN or THAWED.
    V1 {
        /// The cgroup's directory.
        #[schemars(with = "String")]
        dir: PathBuf,
    },
}

impl Freezer {
    /// The cgroup to freeze for a target whose processes are `tree` (root
    /// first), if it has one of its own: not the root cgroup, not this
    /// engine's, and holding no process outside `tree`.
    pub fn of(tree: &[ProcessId]) -> Option<Freezer> {
        let root = tree.first()?;
        let members: BTreeSet<u32> = tree.iter().map(|p| p.pid).collect();
        let own = |pid: &str, v2: bool| cgroup_path(pid, v2);
        let mounts = mounts();
        for (v2, mount) in [(true, &mounts.0), (false, &mounts.1)] {
            let (Some(mount), Some(path)) = (mount, own(&root.pid.to_string(), v2)) else {
                continue;
            };
            if path == "/" || Some(&path) == own("self", v2).as_ref() {
                continue;
            }
            let dir = mount.join(path.trim_start_matches('/'));
            let control = if v2 { "cgroup.freeze" } else { "freezer.state" };
            if !dir.join(control).exists() {
                continue;
            }
            let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
                continue;
            };
            let all: Vec<u32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if all.iter().all(|p| members.contains(p)) {
                return Some(if v2 {
                    Freezer::V2 { dir }
                } else {
                    Freezer::V1 { dir }
                });
            }
        }
        None
    }

    /// Freeze every process of the cgroup.
    pub fn freeze(&self) -> Result<(), String> {
        self.write(true)
    }

    /// Thaw it. A cgroup that is gone needs no thawing.
    pub fn thaw(&self) -> Result<(), String> {
        match self.write(false) {
            Err(_) if !self.dir().exists() => Ok(()),
            r => r,
        }
    }

    /// Whether the kernel reports it frozen.
    pub fn is_frozen(&self) -> bool {
        match self {
            Freezer::V2 { dir } => std::fs::read_to_string(dir.join("cgroup.events"))
                .is_ok_and(|e| e.lines().any(|l| l.trim() == "frozen 1")),
            Freezer::V1 { dir } => std::fs::read_to_string(dir.join("freezer.state"))
                .is_ok_and(|s| s.trim() == "FROZEN"),
        }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        match self {
            Freezer::V2 { dir } | Freezer::V1 { dir } => dir,
        }
    }

    fn write(&self, frozen: bool) -> Result<(), String> {
        let (file, value) = match (self, frozen) {
            (Freezer::V2 { dir }, f) => (dir.join("cgroup.freeze"), if f { "1" } else { "0" }),
            (Freezer::V1 { dir }, f) => (
                dir.join("freezer.state"),
                if f { "FROZEN" } else { "THAWED" },
            ),
        };
        std::fs::write(&file, value)
            .map_err(|e| format!("cannot write {value} to {}: {e}", file.display()))
    }
}

/// The cgroup path of process `pid` ("self" for this one): the v2 path, or
/// the v1 path of the `freezer` controller.
fn cgroup_path(pid: &str, v2: bool) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = if v2 {
            id == "0" && controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == "freezer")
        };
        wanted.then(|| path.to_string())
    })
}

/// Where the cgroup v2 hierarchy and the v1 freezer are mounted.
fn mounts() -> (Option<PathBuf>, Option<PathBuf>) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return (None, None);
    };
    let (mut v2, mut v1) = (None, None);
    for line in info.lines() {
        // Fields: … mount-point … - fstype source super-options.
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let point = left.split(' ').nth(4).map(PathBuf::from);
        let mut r = right.split(' ');
        match (r.next(), r.nth(1)) {
            (Some("cgroup2"), _) if v2.is_none() => v2 = point,
            (Some("cgroup"), Some(opts)) if opts.split(',').any(|o| o == "freezer") => v1 = point,
            _ => {}
        }
    }
    (v2, v1)
}
