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

/// The meta tree's key of a sealed run.
fn sealed_key(id: RunId) -> Vec<u8> {
    [b"sealed:".as_slice(), &id.to_be_bytes()].concat()
}

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

    /// Seal a run (a game day's, until its reveal): [`crate::control`]
    /// masks it, so `history`, `show` and `diff` tell nothing of it.
    pub fn seal(&self, id: RunId, why: &str) -> Result<(), StoreError> {
        self.store.meta.insert(sealed_key(id), why.as_bytes())?;
        Ok(())
    }

    /// Unseal a run.
    pub fn unseal(&self, id: RunId) -> Result<(), StoreError> {
        self.store.meta.remove(sealed_key(id))?;
        Ok(())
    }

    /// Why a run is sealed, if it is.
    pub fn sealed(&self, id: RunId) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .meta
            .get(sealed_key(id))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
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

    /// Delete runs beyond the newest `keep` **and** started before `before`
    /// (Unix ms): each rule given must hold for a run to go, so
    /// `keep = 10, before = a year ago` keeps the newest ten and every run
    /// of the last year. With neither rule nothing goes. Runs still running
    /// are kept. Returns the runs deleted, newest first, each with its
    /// timeline and settled ledger entries; with `dry_run`, the runs that
    /// would be, and nothing is deleted.
    pub fn prune(
        &self,
        keep: Option<usize>,
        before: Option<u64>,
        dry_run: bool,
    ) -> Result<Vec<Run>, StoreError> {
        if keep.is_none() && before.is_none() {
            return Ok(Vec::new());
        }
        let mut chosen = Vec::new();
        for (i, item) in self.store.runs.iter().rev().enumerate() {
            let (key, v) = item?;
            let run: Run = store::decode(TREE_RUNS, &v)?;
            let beyond_newest = keep.is_none_or(|k| i >= k);
            let old_enough = before.is_none_or(|b| run.started_at < b);
            if run.status == RunStatus::Running || !(beyond_newest && old_enough) {
                continue;
            }
            if !dry_run {
                for tree in [&self.store.events, &self.store.ledger] {
                    let keys: Vec<_> = tree.scan_prefix(&key).keys().collect::<Result<_, _>>()?;
                    for k in keys {
                        tree.remove(k)?;
                    }
                }
                self.store.runs.remove(&key)?;
            }
            chosen.push(run);
        }
        if !dry_run {
            self.store.db.flush()?;
        }
        Ok(chosen)
    }

    /// The number of events recorded for a run.
    pub fn event_count(&self, id: RunId) -> usize {
        self.store.events.scan_prefix(id.to_be_bytes()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_words_not_substrings() {
        for name in [
            "token",
            "auth_token",
            "password",
            "db-password",
            "apiKey",
            "x-api-key",
            "API_KEY",
            "clientSecret",
            "secret",
            "credentials",
            "passwd",
            "apikey",
        ] {
            assert!(is_secret(name), "{name} is a secret");
        }
        for name in [
            "token_path",
            "secret_name",
            "key_count",
            "password_file",
            "monkey",
            "keyspace",
            "tokenizer",
            "path",
            "target",
            "api_key_header",
            "tokenUrl",
        ] {
            assert!(!is_secret(name), "{name} is not a secret");
        }
    }

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

    fn run_at(id: u64, started_at: u64, status: RunStatus) -> Run {
        Run {
            id: RunId(id),
            scenario: ScenarioRef {
                name: "s".into(),
                version: "0.1.0".into(),
                sha256: String::new(),
                source: "s.wasm".into(),
                package: None,
            },
            params: Default::default(),
            seed: 0,
            engine_version: String::new(),
            drill: None,
            drill_text: None,
            dry_run: false,
            started_at,
            ended_at: Some(started_at + 1),
            status,
            outcome: None,
            error: None,
            secret_params: Vec::new(),
        }
    }

    /// Ids left after `prune(keep, before)` over runs 1..=5 started at
    /// 100, 200, … 500 ms (5 is the newest), run 3 still running.
    fn left_after(keep: Option<usize>, before: Option<u64>) -> (Vec<u64>, Vec<u64>) {
        let history = HistoryStore::new(Store::temporary().unwrap());
        for i in 1..=5 {
            let status = if i == 3 {
                RunStatus::Running
            } else {
                RunStatus::Passed
            };
            history.put_run(&run_at(i, i * 100, status)).unwrap();
            history.append_event(RunId(i), &marks(1)[0]).unwrap();
        }
        let planned: Vec<u64> = history
            .prune(keep, before, true)
            .unwrap()
            .iter()
            .map(|r| r.id.0)
            .collect();
        let all = history.list_runs(&RunFilter::default()).unwrap();
        assert_eq!(all.len(), 5, "a dry run deletes nothing");
        let deleted: Vec<u64> = history
            .prune(keep, before, false)
            .unwrap()
            .iter()
            .map(|r| r.id.0)
            .collect();
        assert_eq!(planned, deleted, "the dry run lists what goes");
        for id in &deleted {
            assert_eq!(history.event_count(RunId(*id)), 0, "timeline {id} deleted");
        }
        let left = history
            .list_runs(&RunFilter::default())
            .unwrap()
            .iter()
            .map(|r| r.id.0)
            .collect();
        (deleted, left)
    }

    #[test]
    fn prune_deletes_only_runs_every_given_rule_selects() {
        // Beyond the newest two: 3 is running, so 2 and 1 go.
        assert_eq!(left_after(Some(2), None), (vec![2, 1], vec![5, 4, 3]));
        // Started before 250 ms.
        assert_eq!(left_after(None, Some(250)), (vec![2, 1], vec![5, 4, 3]));
        // Both: beyond the newest one and before 250 ms.
        assert_eq!(left_after(Some(1), Some(250)), (vec![2, 1], vec![5, 4, 3]));
        // Both, where each alone would delete: only what both select.
        assert_eq!(left_after(Some(4), Some(450)), (vec![1], vec![5, 4, 3, 2]));
        // `--keep 0 --older-than 1y` over recent runs: nothing is that old.
        assert_eq!(left_after(Some(0), Some(50)), (vec![], vec![5, 4, 3, 2, 1]));
        // No rule, nothing goes.
        assert_eq!(left_after(None, None), (vec![], vec![5, 4, 3, 2, 1]));
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
