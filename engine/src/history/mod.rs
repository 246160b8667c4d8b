//! Run history: the principal type is [`HistoryStore`], which stores each
//! [`Run`] and its timeline of [`Event`]s in the data dir's sled database.

mod model;

pub use model::*;

use crate::store::{self, Store, StoreError, TREE_EVENTS, TREE_RUNS};

/// Reads and writes runs and timelines.
#[derive(Debug, Clone)]
pub struct HistoryStore {
    store: Store,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs of this scenario name.
    pub scenario: Option<String>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs started at or after this Unix ms.
    pub since: Option<u64>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

/// Events read from sled per chunk; a timeline longer than one chunk is
/// decoded on several threads while the rest is read.
const DECODE_CHUNK: usize = 4096;

impl HistoryStore {
    /// History over an opened store.
    pub fn new(store: Store) -> HistoryStore {
        HistoryStore { store }
    }

    /// Insert or replace a run record, durably, together with every event
    /// appended before it (sled writes one log, in order, for all trees).
    pub fn put_run(&self, run: &Run) -> Result<(), StoreError> {
        self.update_run(run)?;
        self.store.runs.flush()?;
        Ok(())
    }

    /// Replace a run record; it becomes durable with the next flush (within
    /// 100 ms, and before any fault applies, as the ledger flushes first).
    pub fn update_run(&self, run: &Run) -> Result<(), StoreError> {
        self.store
            .runs
            .insert(run.id.to_be_bytes(), store::encode(run))?;
        Ok(())
    }

    /// Append an event to a run's timeline (made durable by the next flush).
    pub fn append_event(&self, run: RunId, event: &Event) -> Result<(), StoreError> {
        self.store.events.insert(
            store::key(run.to_be_bytes(), event.seq),
            store::encode(event),
        )?;
        Ok(())
    }

    /// Flush appended events to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.events.flush()?;
        Ok(())
    }

    /// One run.
    pub fn get_run(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        match self.store.runs.get(id.to_be_bytes())? {
            Some(v) => Ok(Some(store::decode(TREE_RUNS, &v)?)),
            None => Ok(None),
        }
    }

    /// The newest run, if any.
    pub fn last_run(&self) -> Result<Option<Run>, StoreError> {
        match self.store.runs.last()? {
            Some((_, v)) => Ok(Some(store::decode(TREE_RUNS, &v)?)),
            None => Ok(None),
        }
    }

    /// Runs matching `filter`, newest first.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>, StoreError> {
        let mut out = Vec::new();
        for item in self.store.runs.iter().rev() {
            let (_, v) = item?;
            let run: Run = store::decode(TREE_RUNS, &v)?;
            if let Some(since) = filter.since
                && run.started_at < since
            {
                break;
            }
            if filter
                .scenario
                .as_ref()
                .is_some_and(|s| *s != run.scenario.name)
                || filter.status.is_some_and(|s| s != run.status)
            {
                continue;
            }
            // Checked before the push: a limit of 0 lists none.
            if filter.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            out.push(run);
        }
        Ok(out)
    }

    /// A run's timeline in order. A long timeline is decoded by other
    /// threads while this one goes on reading it from sled, chunk by chunk;
    /// once the read is done this thread decodes too.
    pub fn timeline(&self, id: RunId) -> Result<Vec<Event>, StoreError> {
        let mut scan = self.store.events.scan_prefix(id.to_be_bytes()).values();
        let mut next_chunk = || -> Result<Vec<sled::IVec>, StoreError> {
            Ok(scan.by_ref().take(DECODE_CHUNK).collect::<Result<_, _>>()?)
        };
        let decode = |part: &[sled::IVec]| -> Result<Vec<Event>, StoreError> {
            part.iter().map(|v| store::decode(TREE_EVENTS, v)).collect()
        };
        let first = next_chunk()?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if first.len() < DECODE_CHUNK || threads < 2 {
            return decode(&first);
        }
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Vec<sled::IVec>)>();
        let rx = std::sync::Mutex::new(rx);
        let decoded = std::sync::Mutex::new(Vec::new());
        let work = || {
            loop {
                // The lock is held only while waiting for the next chunk.
                let next = rx.lock().expect("no decoder panics").recv();
                let Ok((i, part)) = next else { break };
                let events = decode(&part);
                decoded.lock().expect("no decoder panics").push((i, events));
            }
        };
        let read = std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(work);
            }
            let mut chunk = Ok(first);
            let mut i = 0;
            let read = loop {
                match chunk {
                    Ok(part) if part.is_empty() => break Ok(()),
                    Ok(part) => {
                        let _ = tx.send((i, part));
                        i += 1;
                    }
                    Err(e) => break Err(e),
                }
                chunk = next_chunk();
            };
            drop(tx);
            work();
            read
        });
        read?;
        let mut parts = decoded.into_inner().expect("no decoder panics");
        parts.sort_unstable_by_key(|(i, _)| *i);
        let mut out = Vec::with_capacity(parts.len() * DECODE_CHUNK);
        for (_, part) in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// Runs still marked running: after a crash these are closed by recovery.
    pub fn running(&self) -> Result<Vec<Run>, StoreError> {
        let mut out = Vec::new();
        for item in self.store.runs.iter() {
            let (_, v) = item?;
            let run: Run = store::decode(TREE_RUNS, &v)?;
            if run.status == RunStatus::Running {
                out.push(run);
            }
        }
        Ok(out)
    }

    /// Delete runs: all but the newest `keep`, and/or those started before
    /// `before` (Unix ms). Runs still running are kept. Returns how many
    /// were deleted, with their timelines and settled ledger entries.
    pub fn prune(&self, keep: Option<usize>, before: Option<u64>) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for (i, item) in self.store.runs.iter().rev().enumerate() {
            let (key, v) = item?;
            let run: Run = store::decode(TREE_RUNS, &v)?;
            let too_many = keep.is_some_and(|k| i >= k);
            let too_old = before.is_some_and(|b| run.started_at < b);
            if run.status == RunStatus::Running || !(too_many || too_old) {
                continue;
            }
            for tree in [&self.store.events, &self.store.ledger] {
                let keys: Vec<_> = tree.scan_prefix(&key).keys().collect::<Result<_, _>>()?;
                for k in keys {
                    tree.remove(k)?;
                }
            }
            self.store.runs.remove(&key)?;
            deleted += 1;
        }
        self.store.db.flush()?;
        Ok(deleted)
    }

    /// The number of events recorded for a run.
    pub fn event_count(&self, id: RunId) -> usize {
        self.store.events.scan_prefix(id.to_be_bytes()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(n: usize) -> Vec<Event> {
        (0..n as u32)
            .map(|seq| Event {
                seq,
                at_us: u64::from(seq) * 10,
                kind: EventKind::Mark {
                    name: format!("m{seq}"),
                    detail: String::new(),
                },
            })
            .collect()
    }

    #[test]
    fn a_long_timeline_reads_back_whole_and_in_order() {
        let history = HistoryStore::new(Store::temporary().unwrap());
        // One chunk exactly, and two and a bit: both cross into the
        // threaded read.
        for (run, n) in [(42, DECODE_CHUNK * 2 + 7), (44, DECODE_CHUNK)] {
            let events = marks(n);
            for e in &events {
                history.append_event(RunId(run), e).unwrap();
            }
            // Another run's events must not leak in.
            history.append_event(RunId(run + 1), &events[0]).unwrap();
            assert_eq!(history.timeline(RunId(run)).unwrap(), events);
        }
    }

    #[test]
    fn a_corrupt_event_deep_in_a_long_timeline_is_an_error_not_a_gap() {
        let store = Store::temporary().unwrap();
        let history = HistoryStore::new(store.clone());
        for e in &marks(DECODE_CHUNK * 3) {
            history.append_event(RunId(7), e).unwrap();
        }
        let seq = (DECODE_CHUNK * 2 + 5) as u32;
        store
            .events
            .insert(store::key(RunId(7).to_be_bytes(), seq), &b"{not json"[..])
            .unwrap();
        let err = history.timeline(RunId(7)).unwrap_err().to_string();
        assert!(err.contains(TREE_EVENTS), "{err}");
    }
}
