//! The revert ledger: the principal type is [`Ledger`].
//!
//! Every fault is written here, with what it takes to undo it, and flushed
//! to disk *before* it is applied. It is marked reverted after the undo. An
//! engine that starts and finds entries still applied (its predecessor
//! crashed) undoes them: that is how no fault outlives the engine that made
//! it. Undo steps must be idempotent, since a crash can land between the
//! undo and the mark.

use crate::history::{RunId, unix_ms};
use crate::store::{self, Store, StoreError, TREE_LEDGER};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What it takes to undo a fault (defined with the drivers that make
/// faults; kept here by name for the library's users).
pub use crate::drivers::undo::Undo;

/// Where a fault stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LedgerState {
    /// Written; being applied (or the engine died while applying).
    Applying,
    /// In effect.
    Applied,
    /// Undone.
    Reverted,
    /// The undo failed; the error is kept.
    RevertFailed,
    /// Applying failed, so nothing is in effect.
    NotApplied,
}

/// One fault in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LedgerEntry {
    /// The run that made it.
    pub run: RunId,
    /// Fault id within the run (ids of spawned targets count down from u32::MAX).
    pub fault: u32,
    /// Fault kind, e.g. `pause`.
    pub kind: String,
    /// Target name.
    pub target: String,
    /// How to undo it.
    pub undo: Undo,
    /// Where it stands.
    pub state: LedgerState,
    /// When it was written, Unix ms.
    pub applied_at: u64,
    /// When it was reverted, Unix ms.
    pub reverted_at: Option<u64>,
    /// The undo's error, if it failed.
    pub error: Option<String>,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Entries that were still in effect and have been undone.
    pub reverted: Vec<LedgerEntry>,
    /// Entries whose undo failed.
    pub failed: Vec<LedgerEntry>,
}

/// The ledger over the data dir's store.
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Store,
}

impl Ledger {
    /// The ledger of an opened store.
    pub fn new(store: Store) -> Ledger {
        Ledger { store }
    }

    /// Write `entry` (state `Applying`) and flush: call before applying.
    pub fn begin(&self, entry: &LedgerEntry) -> Result<(), StoreError> {
        self.put(entry)?;
        self.store.ledger.flush()?;
        Ok(())
    }

    /// Record a new state for the entry `(run, fault)`.
    pub fn set_state(
        &self,
        run: RunId,
        fault: u32,
        state: LedgerState,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        let k = store::key(run.to_be_bytes(), fault);
        if let Some(v) = self.store.ledger.get(k)? {
            let mut entry: LedgerEntry = store::decode(TREE_LEDGER, &v)?;
            entry.state = state;
            entry.error = error;
            if matches!(state, LedgerState::Reverted | LedgerState::RevertFailed) {
                entry.reverted_at = Some(unix_ms());
            }
            self.put(&entry)?;
            self.store.ledger.flush()?;
        }
        Ok(())
    }

    fn put(&self, entry: &LedgerEntry) -> Result<(), StoreError> {
        self.store.ledger.insert(
            store::key(entry.run.to_be_bytes(), entry.fault),
            store::encode(entry),
        )?;
        Ok(())
    }

    /// All entries of one run.
    pub fn entries(&self, run: RunId) -> Result<Vec<LedgerEntry>, StoreError> {
        self.store
            .ledger
            .scan_prefix(run.to_be_bytes())
            .map(|item| store::decode(TREE_LEDGER, &item?.1))
            .collect()
    }

    /// Entries that may still be in effect, across all runs.
    pub fn outstanding(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.store.ledger.iter() {
            let entry: LedgerEntry = store::decode(TREE_LEDGER, &item?.1)?;
            if matches!(entry.state, LedgerState::Applying | LedgerState::Applied) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Undo every outstanding entry. Called when an engine opens a data dir:
    /// none of its own faults exist yet, so every outstanding entry belongs
    /// to an engine that died.
    pub fn recover(&self) -> Result<Recovery, StoreError> {
        let mut report = Recovery::default();
        for mut entry in self.outstanding()? {
            let result = entry.undo.run();
            match result {
                Ok(()) => {
                    self.set_state(entry.run, entry.fault, LedgerState::Reverted, None)?;
                    entry.state = LedgerState::Reverted;
                    report.reverted.push(entry);
                }
                Err(e) => {
                    self.set_state(
                        entry.run,
                        entry.fault,
                        LedgerState::RevertFailed,
                        Some(e.clone()),
                    )?;
                    entry.state = LedgerState::RevertFailed;
                    entry.error = Some(e);
                    report.failed.push(entry);
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::process::ProcessId;

    #[test]
    fn recovery_continues_a_paused_process_left_by_a_dead_engine() {
        let store = Store::temporary().unwrap();
        let ledger = Ledger::new(store);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let process = ProcessId::of(child.id()).unwrap();
        let entry = LedgerEntry {
            run: RunId(7),
            fault: 0,
            kind: "pause".into(),
            target: "victim".into(),
            undo: Undo::Continue {
                processes: vec![process],
            },
            state: LedgerState::Applying,
            applied_at: unix_ms(),
            reverted_at: None,
            error: None,
        };
        ledger.begin(&entry).unwrap();
        process.pause().unwrap();
        ledger
            .set_state(RunId(7), 0, LedgerState::Applied, None)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(process.is_stopped());

        let report = ledger.recover().unwrap();
        assert_eq!(report.reverted.len(), 1);
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(!process.is_stopped());
        assert!(ledger.outstanding().unwrap().is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
