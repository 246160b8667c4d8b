//! Process faults: signals (`kill`) and `pause` (SIGSTOP, reverted by
//! SIGCONT), aimed at a process identified by pid *and* start time so that a
//! recycled pid is never signalled by mistake.

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A process as the kernel knows it: pid plus its start time in clock ticks
/// since boot (field 22 of `/proc/<pid>/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcessId {
    /// Process id.
    pub pid: u32,
    /// Start time; 0 when it could not be read.
    pub start_time: u64,
}

/// Why a process fault failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The process is gone (or its pid now belongs to another process).
    #[error("process {0} is not running")]
    Gone(u32),
    /// The kernel refused the signal.
    #[error("cannot signal process {pid}: {errno}")]
    Signal {
        /// Target pid.
        pid: u32,
        /// errno.
        errno: nix::errno::Errno,
    },
}

impl ProcessId {
    /// Identify the running process `pid`.
    pub fn of(pid: u32) -> Result<ProcessId, ProcessError> {
        let stat = read_stat(pid).ok_or(ProcessError::Gone(pid))?;
        Ok(ProcessId {
            pid,
            start_time: stat.start_time,
        })
    }

    /// Whether this very process still exists (zombies count as gone).
    pub fn is_alive(&self) -> bool {
        match read_stat(self.pid) {
            Some(s) => s.state != 'Z' && s.state != 'X' && self.same_start(s.start_time),
            None => false,
        }
    }

    /// Whether the process is stopped (SIGSTOP).
    pub fn is_stopped(&self) -> bool {
        matches!(read_stat(self.pid), Some(s) if (s.state == 'T' || s.state == 't') && self.same_start(s.start_time))
    }

    fn same_start(&self, start: u64) -> bool {
        self.start_time == 0 || self.start_time == start
    }

    /// Send `sig`, after checking that the pid still names this process.
    pub fn signal(&self, sig: Signal) -> Result<(), ProcessError> {
        if !self.is_alive() {
            return Err(ProcessError::Gone(self.pid));
        }
        signal::kill(Pid::from_raw(self.pid as i32), sig).map_err(|errno| {
            if errno == nix::errno::Errno::ESRCH {
                ProcessError::Gone(self.pid)
            } else {
                ProcessError::Signal {
                    pid: self.pid,
                    errno,
                }
            }
        })
    }

    /// Stop the process (the `pause` fault).
    pub fn pause(&self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGSTOP)
    }

    /// Continue a stopped process (the undo of `pause`). A process that is
    /// gone needs no continuing, so that is not an error.
    pub fn resume(&self) -> Result<(), ProcessError> {
        match self.signal(Signal::SIGCONT) {
            Err(ProcessError::Gone(_)) => Ok(()),
            r => r,
        }
    }
}

struct Stat {
    state: char,
    start_time: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); start time is field 22.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

/// Parse a signal name as the WIT and drill files spell it (`term`, `kill`,
/// `SIGKILL`, `9`).
pub fn parse_signal(name: &str) -> Option<Signal> {
    let upper = name.trim().to_ascii_uppercase();
    let upper = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Ok(n) = upper.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    format!("SIG{upper}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_and_pauses_a_real_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let id = ProcessId::of(child.id()).unwrap();
        assert!(id.is_alive());
        id.pause().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(id.is_stopped());
        id.resume().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!id.is_stopped());
        // A different start time is a different process: never signalled.
        let impostor = ProcessId {
            pid: id.pid,
            start_time: id.start_time + 1,
        };
        assert!(matches!(
            impostor.signal(Signal::SIGKILL),
            Err(ProcessError::Gone(_))
        ));
        id.signal(Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        assert!(!id.is_alive());
    }

    #[test]
    fn parses_signal_names() {
        assert_eq!(parse_signal("kill"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("SIGTERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("15"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("bogus"), None);
    }
}
