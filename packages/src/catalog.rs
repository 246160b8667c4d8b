//! The local catalog: each registry's index, synced into a sled database
//! in `<data-dir>/catalog`, so a search reads local pages, not the
//! registry. A sync downloads an index only when the registry's copy
//! changed (one small read, or one HEAD request on an OCI registry).
//!
//! Trees: `registries` (registry → [`SyncState`]), `versions`
//! (`registry \0 ns:name@version` → [`IndexEntry`]), and `search`
//! (registry → one value, a line per package's newest installable
//! version: `ns:name@version \t needs \t search text`), so a search reads
//! one value, matches plain text and decodes only what it returns.

use crate::PackageError;
use crate::index::{Index, IndexEntry, IndexSigner, text_matches};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, Instant};

/// What the catalog last synced of a registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncState {
    /// What identifies the registry's index version (the digest of its
    /// signature, or of its OCI manifest).
    pub version: String,
    /// The index's change stamp.
    pub stamp: u64,
    /// Who signed it.
    pub signer: IndexSigner,
    /// When it was synced (Unix ms).
    pub synced_at: u64,
    /// How many versions it lists.
    pub versions: usize,
}

/// The catalog database.
#[derive(Debug, Clone)]
pub struct Catalog {
    db: sled::Db,
    registries: sled::Tree,
    versions: sled::Tree,
    search: sled::Tree,
}

fn failed(dir: &Path) -> impl Fn(sled::Error) -> PackageError + '_ {
    move |e| PackageError::BadFile {
        path: dir.display().to_string(),
        cause: format!(
            "the package catalog: {e}; it is a cache: remove the directory to rebuild it"
        ),
    }
}

fn key(registry: &str, rest: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(registry.len() + 1 + rest.len());
    k.extend_from_slice(registry.as_bytes());
    k.push(0);
    k.extend_from_slice(rest.as_bytes());
    k
}

impl Catalog {
    /// Open `<data_dir>/catalog`, waiting a little for another firedrill
    /// process that has it open.
    pub fn open(data_dir: &Path) -> Result<Catalog, PackageError> {
        let dir = data_dir.join("catalog");
        let until = Instant::now() + Duration::from_secs(3);
        let db = loop {
            match sled::Config::new().path(&dir).flush_every_ms(None).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if Instant::now() < until
                        && (e.kind() == std::io::ErrorKind::WouldBlock
                            || e.to_string().contains("lock")) =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(failed(&dir)(e)),
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(failed(&dir));
        Ok(Catalog {
            registries: tree("registries")?,
            versions: tree("versions")?,
            search: tree("search")?,
            db,
        })
    }

    fn err(&self) -> impl Fn(sled::Error) -> PackageError {
        |e| PackageError::BadFile {
            path: "the package catalog".into(),
            cause: e.to_string(),
        }
    }

    /// What was last synced of `registry`.
    pub fn state(&self, registry: &str) -> Result<Option<SyncState>, PackageError> {
        let Some(bytes) = self.registries.get(registry).map_err(self.err())? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// Replace what the catalog holds of `registry` with `index`.
    pub fn replace(
        &self,
        registry: &str,
        index: &Index,
        state: &SyncState,
    ) -> Result<(), PackageError> {
        let prefix = key(registry, "");
        let mut versions = sled::Batch::default();
        for k in self.versions.scan_prefix(&prefix).keys() {
            versions.remove(k.map_err(self.err())?);
        }
        for e in &index.packages {
            let json = serde_json::to_vec(e).map_err(|e| PackageError::Invalid(e.to_string()))?;
            versions.insert(key(registry, &e.package), json);
        }
        let mut lines = String::new();
        for e in index.newest() {
            let clean = |s: &str| s.replace(['\t', '\n'], " ");
            lines += &format!(
                "{}\t{}\t{}\n",
                clean(&e.package),
                clean(&e.needs.join(",")),
                clean(&e.search_text())
            );
        }
        self.versions.apply_batch(versions).map_err(self.err())?;
        self.search
            .insert(registry, lines.into_bytes())
            .map_err(self.err())?;
        let state = serde_json::to_vec(state).map_err(|e| PackageError::Invalid(e.to_string()))?;
        self.registries
            .insert(registry, state)
            .map_err(self.err())?;
        self.db.flush().map_err(self.err())?;
        Ok(())
    }

    /// The newest installable version of each package of `registry`
    /// whose name, description or keywords hold every word of `query`
    /// and, if given, that needs the fault kind `needs`; by name.
    pub fn search(
        &self,
        registry: &str,
        query: &str,
        needs: Option<&str>,
    ) -> Result<Vec<IndexEntry>, PackageError> {
        let query = query.to_lowercase();
        let Some(lines) = self.search.get(registry).map_err(self.err())? else {
            return Ok(Vec::new());
        };
        let lines = String::from_utf8_lossy(&lines);
        let mut out = Vec::new();
        for line in lines.lines() {
            let mut parts = line.splitn(3, '\t');
            let (Some(package), Some(kinds), Some(text)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let kind_ok = needs.is_none_or(|k| kinds.split(',').any(|n| n == k));
            if kind_ok
                && text_matches(text, &query)
                && let Some(json) = self
                    .versions
                    .get(key(registry, package))
                    .map_err(self.err())?
                && let Ok(e) = serde_json::from_slice(&json)
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Every version of `namespace:name` in `registry`'s synced index,
    /// oldest first.
    pub fn versions(
        &self,
        registry: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<IndexEntry>, PackageError> {
        let mut out: Vec<IndexEntry> = self
            .versions
            .scan_prefix(key(registry, &format!("{namespace}:{name}@")))
            .values()
            .filter_map(|v| serde_json::from_slice(&v.ok()?).ok())
            .collect();
        out.sort_by_key(IndexEntry::version);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(package: &str, yanked: bool) -> IndexEntry {
        IndexEntry {
            package: package.into(),
            digest: "sha256:00".into(),
            size: 1,
            description: format!("about {package}"),
            keywords: vec![],
            needs: vec!["delay".into()],
            key_id: "K".into(),
            published_at: 0,
            yanked,
            source: None,
            license: None,
        }
    }

    #[test]
    fn search_shows_the_newest_installable_version_of_each_registry() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path()).unwrap();
        let state = SyncState {
            version: "v".into(),
            stamp: 1,
            signer: IndexSigner {
                key_id: "K".into(),
                trusted_for: Some("a".into()),
            },
            synced_at: 0,
            versions: 3,
        };
        let index = Index {
            format: crate::index::FORMAT,
            stamp: 1,
            updated_at: 0,
            packages: vec![
                entry("a:x@1.0.0", false),
                entry("a:x@1.10.0", false),
                entry("a:x@2.0.0", true),
                entry("a:y@0.1.0", false),
            ],
        };
        catalog.replace("r1", &index, &state).unwrap();
        catalog
            .replace(
                "r2",
                &Index {
                    packages: vec![entry("b:z@1.0.0", false)],
                    ..index.clone()
                },
                &state,
            )
            .unwrap();
        let found: Vec<_> = catalog
            .search("r1", "", Some("delay"))
            .unwrap()
            .into_iter()
            .map(|e| e.package)
            .collect();
        assert_eq!(found, ["a:x@1.10.0", "a:y@0.1.0"]);
        assert!(catalog.search("r1", "", Some("kill")).unwrap().is_empty());
        assert_eq!(catalog.search("r1", "about a:y", None).unwrap().len(), 1);
        assert_eq!(catalog.versions("r1", "a", "x").unwrap().len(), 3);
        // A later sync replaces, never merges.
        catalog
            .replace(
                "r1",
                &Index {
                    packages: vec![entry("a:y@0.2.0", false)],
                    ..index
                },
                &state,
            )
            .unwrap();
        let found: Vec<_> = catalog.search("r1", "", None).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].package, "a:y@0.2.0");
        assert_eq!(catalog.search("r2", "", None).unwrap().len(), 1);
        assert_eq!(catalog.state("r1").unwrap().unwrap().stamp, 1);
    }
}
