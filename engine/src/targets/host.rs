//! Host targets (`kind = "host"`): the machine itself, for resource stress.
//! The principal type is [`HostTarget`]; a stress fault is a child process
//! the engine owns — this firedrill binary run as `firedrill stress-child`
//! ([`child_main`]) — that dies with the engine (`PR_SET_PDEATHSIG`), is
//! killed and reaped on revert, and whose disk file is deleted on revert or
//! by recovery.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The load a stress fault puts on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Keep `cores` CPUs busy `percent` of the time each.
    Cpu {
        /// CPUs.
        cores: u32,
        /// 1..=100.
        percent: u8,
    },
    /// Allocate and touch this many bytes, held until revert.
    Memory(u64),
    /// Write a file of this many bytes, deleted on revert.
    Disk(u64),
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Load::Cpu { cores, percent } => write!(f, "{cores} CPU(s) at {percent} %"),
            Load::Memory(b) => write!(f, "hold {} MiB of memory", b >> 20),
            Load::Disk(b) => write!(f, "fill {} MiB of disk", b >> 20),
        }
    }
}

/// A `kind = "host"` target as the drill declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Where `disk-fill` may write its file.
    pub path: Option<PathBuf>,
    /// The firedrill binary that runs the stress children (default: this
    /// process's executable when it is firedrill).
    pub helper: Option<PathBuf>,
}

/// The host, as a target.
#[derive(Debug)]
pub struct HostTarget {
    name: String,
    spec: HostSpec,
}

/// Disk fills leave at least this share of the file system free.
const KEEP_FREE: f64 = 0.05;

impl HostTarget {
    /// Check the declaration against the machine.
    pub fn start(name: &str, spec: &HostSpec) -> Result<HostTarget, String> {
        if let Some(p) = &spec.path
            && !p.is_dir()
        {
            return Err(format!(
                "target `{name}`: path {} is not a directory",
                p.display()
            ));
        }
        Ok(HostTarget {
            name: name.to_string(),
            spec: spec.clone(),
        })
    }

    /// The file a disk fill writes, named after its run and fault.
    pub fn fill_file(&self, run: u64, fault: u32) -> Result<PathBuf, String> {
        let dir = self.spec.path.as_ref().ok_or_else(|| {
            format!(
                "target `{}` has no `path`: disk-fill writes only under a granted directory",
                self.name
            )
        })?;
        Ok(dir.join(format!("firedrill-fill-{run:x}-{fault}.bin")))
    }

    /// Refuse loads the machine cannot take without harm: a disk fill that
    /// would leave less than 5 % of its file system free.
    pub fn check(&self, load: Load, file: Option<&Path>) -> Result<(), String> {
        if let (Load::Disk(bytes), Some(file)) = (load, file) {
            let dir = file.parent().unwrap_or(Path::new("/"));
            let fs = nix::sys::statvfs::statvfs(dir)
                .map_err(|e| format!("cannot read free space of {}: {e}", dir.display()))?;
            let block = fs.fragment_size();
            let total = fs.blocks() * block;
            let free = fs.blocks_available() * block;
            let left = free.saturating_sub(bytes);
            let keep = (total as f64 * KEEP_FREE) as u64;
            if left < keep {
                return Err(format!(
                    "disk-fill of {} MiB on target `{}` would leave {} MiB of {} MiB free in {}; it must leave 5 %: \
                     ask for at most {} MiB, or point the target's `path` at a file system with more room",
                    bytes >> 20,
                    self.name,
                    left >> 20,
                    total >> 20,
                    dir.display(),
                    free.saturating_sub(keep) >> 20,
                ));
            }
        }
        Ok(())
    }

    /// Start the child that makes `load`; `file` for a disk fill.
    pub fn spawn(&self, load: Load, file: Option<&Path>) -> Result<tokio::process::Child, String> {
        let helper = match &self.spec.helper {
            Some(h) => h.clone(),
            None => super::firedrill_exe().ok_or_else(|| {
                    format!(
                        "target `{}`: stress runs in a child `firedrill stress-child`, and this process is not firedrill: set `helper` to the firedrill binary",
                        self.name
                    )
                })?,
        };
        let mut cmd = tokio::process::Command::new(&helper);
        cmd.arg("stress-child");
        match load {
            Load::Cpu { cores, percent } => {
                cmd.args(["cpu", &cores.to_string(), &percent.to_string()]);
            }
            Load::Memory(bytes) => {
                cmd.args(["memory", &bytes.to_string()]);
            }
            Load::Disk(bytes) => {
                let file = file.expect("a disk fill has its file");
                cmd.args(["disk", &bytes.to_string()]).arg(file);
            }
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        crate::targets::process::die_with_parent(&mut cmd);
        cmd.spawn()
            .map_err(|e| format!("cannot start {}: {e}", helper.display()))
    }
}

/// Undo a stress from its ledger description alone: its child died with
/// the engine (`PR_SET_PDEATHSIG`), so only a disk fill's file is left.
pub fn undo(file: Option<&Path>) -> Result<(), String> {
    match file.map(std::fs::remove_file) {
        Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => Err(format!(
            "cannot delete {}: {e}",
            file.expect("some").display()
        )),
        _ => Ok(()),
    }
}

/// `firedrill stress-child cpu CORES PERCENT | memory BYTES | disk BYTES
/// FILE`: make the load, then hold it until killed.
pub fn child_main(args: &[String]) -> Result<(), String> {
    let num = |i: usize| -> Result<u64, String> {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("stress-child: argument {i} must be a number: {args:?}"))
    };
    match args.first().map(String::as_str) {
        Some("cpu") => {
            let (cores, percent) = (num(1)?, num(2)?.clamp(1, 100));
            let threads: Vec<_> = (0..cores)
                .map(|_| std::thread::spawn(move || busy(percent)))
                .collect();
            threads.into_iter().for_each(|t| drop(t.join()));
        }
        Some("memory") => {
            let bytes = usize::try_from(num(1)?).map_err(|e| e.to_string())?;
            let mut held = vec![0u8; bytes];
            // Touch every page so the memory is really taken.
            for page in held.chunks_mut(4096) {
                page[0] = 1;
            }
            std::hint::black_box(&held);
            hold();
        }
        Some("disk") => {
            use std::io::Write;
            let bytes = num(1)?;
            let path = args.get(2).ok_or("stress-child disk: missing FILE")?;
            let mut f = std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?;
            let chunk = vec![0x5a_u8; 1 << 20];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n])
                    .map_err(|e| format!("{path}: {e}"))?;
                left -= n as u64;
            }
            f.sync_all().map_err(|e| format!("{path}: {e}"))?;
            hold();
        }
        _ => return Err(format!("stress-child: unknown load {args:?}")),
    }
    Ok(())
}

/// Busy `percent` of every 100 ms, forever.
fn busy(percent: u64) {
    const PERIOD: Duration = Duration::from_millis(100);
    loop {
        let start = Instant::now();
        let on = PERIOD * percent as u32 / 100;
        while start.elapsed() < on {
            std::hint::black_box(start.elapsed());
        }
        if let Some(rest) = PERIOD.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

fn hold() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
