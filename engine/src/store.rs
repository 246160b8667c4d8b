//! The on-disk layout of a data dir: one sled database whose trees are named
//! here, a schema version key, and the upgrade path.
//!
//! ```text
//! <data-dir>/
//!   db/            sled: the trees below
//!   cache/         compiled components (<sha256>-<engine hash>.cwasm)
//!   scenarios/     components of past runs (<sha256>.wasm), for replay
//!   control.sock   the running engine's control socket
//! ```
//!
//! Keys start with the run id in big-endian, so a prefix scan yields one
//! run's records in order and a full scan yields runs by start time.

use std::path::Path;

/// `meta`: schema version and other engine-wide keys.
pub const TREE_META: &str = "meta";
/// `runs`: run id → [`crate::history::Run`] (JSON).
pub const TREE_RUNS: &str = "runs";
/// `events`: run id ++ seq (u32 BE) → [`crate::history::Event`] (JSON).
pub const TREE_EVENTS: &str = "events";
/// `ledger`: run id ++ fault id (u32 BE) → [`crate::ledger::LedgerEntry`] (JSON).
pub const TREE_LEDGER: &str = "ledger";
/// `compiled`: component sha256 → sha256 of the `.cwasm` the engine wrote.
pub const TREE_COMPILED: &str = "compiled";

/// Key in `meta` holding the schema version as u32 BE.
pub const KEY_SCHEMA_VERSION: &[u8] = b"schema-version";
/// Key in `meta` holding the engine-wide halt ([`crate::engine::HaltState`],
/// JSON) while `firedrill halt` is in force; absent otherwise.
pub const KEY_HALT: &[u8] = b"halt";
/// The schema this build writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Errors opening or using the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed; the message carries sled's cause (not also as a
    /// `source`, so a cause chain prints it once).
    #[error("history database: {0}")]
    Sled(sled::Error),
    /// Another process holds the data dir.
    #[error("the data dir {0} is in use by another firedrill process (sled allows one at a time)")]
    Locked(String),
    /// The data dir cannot be made or written: it is a file, or the
    /// permissions or a read-only file system refuse it. Another data dir
    /// (or fixed permissions) works.
    #[error("the data dir {dir} cannot be used: {cause}")]
    Unusable {
        /// The data dir.
        dir: String,
        /// What refused it, with the path concerned.
        cause: String,
    },
    /// The database in the data dir cannot be read: damaged files or an
    /// I/O error of the disk.
    #[error("the history database in {dir} is damaged or unreadable: {cause}")]
    Damaged {
        /// The data dir.
        dir: String,
        /// sled's or the system's message.
        cause: String,
    },
    /// The data was written by a newer firedrill.
    #[error(
        "history schema version {found} is newer than this firedrill supports ({SCHEMA_VERSION}); upgrade firedrill"
    )]
    TooNew {
        /// Version found on disk.
        found: u32,
    },
    /// A stored record does not parse.
    #[error("corrupt record in tree `{tree}`: {error}")]
    Corrupt {
        /// Tree name.
        tree: &'static str,
        /// serde's message.
        error: String,
    },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        StoreError::Sled(e)
    }
}

impl StoreError {
    /// What an I/O error met on the way to `dir` means: the dir cannot
    /// be used (configuration), or what is there cannot be read (I/O).
    pub fn of_io(dir: &Path, what: &Path, e: &std::io::Error) -> StoreError {
        use std::io::ErrorKind::*;
        let dir_text = dir.display().to_string();
        match e.kind() {
            PermissionDenied | ReadOnlyFilesystem | NotADirectory | AlreadyExists
            | IsADirectory | NotFound => StoreError::Unusable {
                dir: dir_text,
                cause: format!("{}: {e}", what.display()),
            },
            _ => StoreError::Damaged {
                dir: dir_text,
                cause: format!("{}: {e}", what.display()),
            },
        }
    }
}

/// The opened database and its trees.
#[derive(Debug, Clone)]
pub struct Store {
    /// The sled database.
    pub db: sled::Db,
    /// See [`TREE_META`].
    pub meta: sled::Tree,
    /// See [`TREE_RUNS`].
    pub runs: sled::Tree,
    /// See [`TREE_EVENTS`].
    pub events: sled::Tree,
    /// See [`TREE_LEDGER`].
    pub ledger: sled::Tree,
    /// See [`TREE_COMPILED`].
    pub compiled: sled::Tree,
}

impl Store {
    /// Open (or create) the database under `dir/db`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        // A database this process just dropped keeps its lock until sled's
        // flusher thread lets go (up to its period): wait for that, but
        // not for another process's lock.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match Self::try_open(dir) {
                Err(StoreError::Locked(_))
                    if std::time::Instant::now() < until && locked_by_this_process() =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn try_open(dir: &Path) -> Result<Store, StoreError> {
        // Faults are flushed before they apply; events become durable
        // within this period (a crash loses at most its last 100 ms).
        let db = sled::Config::new()
            .path(dir.join("db"))
            .flush_every_ms(Some(100))
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    StoreError::Locked(dir.display().to_string())
                }
                e => Self::damaged(dir, e),
            })?;
        // Past the open, every failure is of what the database holds.
        Self::from_db(db).map_err(|e| match e {
            StoreError::Sled(e) => Self::damaged(dir, e),
            e => e,
        })
    }

    /// A sled error on opening `dir`: an I/O error is classified by
    /// [`StoreError::of_io`], anything else (corruption, sled's "bug"
    /// reports on damaged files) means the database cannot be read.
    fn damaged(dir: &Path, e: sled::Error) -> StoreError {
        match e {
            sled::Error::Io(io) => StoreError::of_io(dir, &dir.join("db"), &io),
            // sled's own message for this carries a backtrace.
            sled::Error::Corruption { at, .. } => StoreError::Damaged {
                dir: dir.display().to_string(),
                cause: match at {
                    Some(at) => format!(
                        "sled read corrupted data in {} at {at:?}",
                        dir.join("db").display()
                    ),
                    None => format!("sled read corrupted data in {}", dir.join("db").display()),
                },
            },
            e => StoreError::Damaged {
                dir: dir.display().to_string(),
                cause: e.to_string(),
            },
        }
    }

    /// A throwaway in-memory store (for `inspect` and tests).
    pub fn temporary() -> Result<Store, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Store, StoreError> {
        let meta = db.open_tree(TREE_META)?;
        match meta.get(KEY_SCHEMA_VERSION)? {
            None => {
                meta.insert(KEY_SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]));
                upgrade(found)?;
            }
        }
        Ok(Store {
            runs: db.open_tree(TREE_RUNS)?,
            events: db.open_tree(TREE_EVENTS)?,
            ledger: db.open_tree(TREE_LEDGER)?,
            compiled: db.open_tree(TREE_COMPILED)?,
            meta,
            db,
        })
    }
}

/// Bring a store written with schema `found` up to [`SCHEMA_VERSION`].
/// Version 1 is the first; later versions add their steps here.
fn upgrade(found: u32) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew { found });
    }
    Ok(())
}

/// Whether this process holds a file lock (`/proc/locks`): then a locked
/// data dir is one it opened and dropped a moment ago, not another
/// firedrill's.
fn locked_by_this_process() -> bool {
    let me = std::process::id().to_string();
    std::fs::read_to_string("/proc/locks").is_ok_and(|l| {
        l.lines()
            .any(|l| l.split_whitespace().nth(4) == Some(me.as_str()))
    })
}

/// `prefix ++ n` as a key.
pub fn key(prefix: [u8; 8], n: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&prefix);
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

/// Decode a JSON record from `tree`.
pub fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        error: e.to_string(),
    })
}

/// Encode a record as JSON.
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}
