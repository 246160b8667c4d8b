//! A registry's index: one signed document listing every package version
//! it holds, so a catalog can search a registry that has no search API
//! (OCI registries have none) with one download. A publish or a yank
//! rewrites it and signs it with the writer's key; the trusted comment
//! binds its change stamp and digest:
//! `firedrill-index stamp=42 digest=sha256:…`.
//!
//! The index is for finding packages. What it claims of one is checked
//! again at install, against the package's own signature; so a reader
//! accepts an index signed by any key it trusts for some namespace, and
//! believes its yanked flags (a yank can only stop installs).

use crate::sign::{key_id, read_secret};
use crate::{PackageError, PackageMeta, Trust, digest};
use minisign::SignatureBox;
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::Path;

/// The index format this build writes and reads.
pub const FORMAT: u32 = 1;

/// One version in an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IndexEntry {
    /// `namespace:name@version`.
    pub package: String,
    /// The component's digest, `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its description.
    pub description: String,
    /// Search words.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The fault kinds it needs.
    #[serde(default)]
    pub needs: Vec<String>,
    /// The key that signed it.
    pub key_id: String,
    /// When it was published (Unix ms).
    pub published_at: u64,
    /// No new installs.
    #[serde(default)]
    pub yanked: bool,
    /// Where its source is (a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Its licence (an SPDX expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

impl IndexEntry {
    /// The entry of a published version.
    pub fn of(meta: &PackageMeta) -> IndexEntry {
        IndexEntry {
            package: meta.package.clone(),
            digest: meta.digest.clone(),
            size: meta.size,
            description: meta.metadata.description.clone(),
            keywords: meta.keywords.clone(),
            needs: meta
                .metadata
                .needs
                .iter()
                .map(|n| n.kind.to_string())
                .collect(),
            key_id: meta.key_id.clone(),
            published_at: meta.published_at,
            yanked: meta.yanked,
            source: meta.source.clone(),
            license: meta.license.clone(),
        }
    }

    /// `namespace:name`.
    pub fn name(&self) -> &str {
        self.package
            .rsplit_once('@')
            .map_or(&self.package, |(n, _)| n)
    }

    /// Its version, if it parses.
    pub fn version(&self) -> Option<semver::Version> {
        semver::Version::parse(self.package.rsplit_once('@')?.1).ok()
    }

    /// The lowercase text a search matches: name, description, keywords.
    pub fn search_text(&self) -> String {
        format!(
            "{} {} {}",
            self.package,
            self.description,
            self.keywords.join(" ")
        )
        .to_lowercase()
    }

    /// Whether it matches `query` (any case; every word must appear) and,
    /// if given, needs the fault kind `needs`.
    pub fn matches(&self, query: &str, needs: Option<&str>) -> bool {
        text_matches(&self.search_text(), query)
            && needs.is_none_or(|k| self.needs.iter().any(|n| n == k))
    }
}

/// Whether lowercase `text` holds every word of `query`.
pub(crate) fn text_matches(text: &str, query: &str) -> bool {
    query
        .split_whitespace()
        .all(|w| text.contains(&w.to_lowercase()))
}

/// A registry's index document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// [`FORMAT`].
    pub format: u32,
    /// Raised by one on every change.
    pub stamp: u64,
    /// When it last changed (Unix ms).
    pub updated_at: u64,
    /// Every version, sorted by package.
    pub packages: Vec<IndexEntry>,
}

impl Index {
    /// Parse an index document (of any stamp; the signature is checked
    /// by [`Index::verify`]).
    pub fn parse(bytes: &[u8], registry: &str) -> Result<Index, PackageError> {
        let index: Index = serde_json::from_slice(bytes).map_err(|e| PackageError::BadFile {
            path: format!("the index of {registry}"),
            cause: format!(
                "not a firedrill index ({e}); publish to the registry again to rewrite it"
            ),
        })?;
        if index.format != FORMAT {
            return Err(PackageError::BadFile {
                path: format!("the index of {registry}"),
                cause: format!(
                    "index format {}, this firedrill reads format {FORMAT}: upgrade firedrill",
                    index.format
                ),
            });
        }
        Ok(index)
    }

    /// Add or replace a version's entry.
    pub fn upsert(&mut self, entry: IndexEntry) {
        match self
            .packages
            .binary_search_by(|e| e.package.as_str().cmp(&entry.package))
        {
            Ok(i) => self.packages[i] = entry,
            Err(i) => self.packages.insert(i, entry),
        }
    }

    /// The newest version of each package that is not yanked, by name.
    pub fn newest(&self) -> Vec<&IndexEntry> {
        let mut newest: std::collections::BTreeMap<&str, &IndexEntry> = Default::default();
        for e in &self.packages {
            if e.yanked || e.version().is_none() {
                continue;
            }
            let slot = newest.entry(e.name()).or_insert(e);
            if e.version() > slot.version() {
                *slot = e;
            }
        }
        newest.into_values().collect()
    }

    /// [`Index::newest`] of those matching `query` and `needs` (see
    /// [`IndexEntry::matches`]).
    pub fn search(&self, query: &str, needs: Option<&str>) -> Vec<IndexEntry> {
        self.newest()
            .into_iter()
            .filter(|e| e.matches(query, needs))
            .cloned()
            .collect()
    }

    /// A version's entry.
    pub fn get_mut(&mut self, package: &str) -> Option<&mut IndexEntry> {
        self.packages.iter_mut().find(|e| e.package == package)
    }

    /// The document, stamped one past the last, and its signature with
    /// the secret key at `key`.
    pub fn seal(&mut self, key: &Path, now_ms: u64) -> Result<(Vec<u8>, String), PackageError> {
        self.format = FORMAT;
        self.stamp += 1;
        self.updated_at = now_ms;
        self.packages.sort_by(|a, b| a.package.cmp(&b.package));
        let bytes = serde_json::to_vec(self).map_err(|e| PackageError::Invalid(e.to_string()))?;
        let sk = read_secret(key)?;
        let comment = trusted_comment(self.stamp, &digest(&bytes));
        let sig = minisign::sign(
            None,
            &sk,
            Cursor::new(&bytes),
            Some(&comment),
            Some("firedrill registry index"),
        )
        .map_err(|e| PackageError::BadFile {
            path: key.display().to_string(),
            cause: e.to_string(),
        })?;
        Ok((bytes, sig.into_string()))
    }

    /// Parse and check an index document against its signature. With a
    /// key trusted for some namespace, the signature must verify and bind
    /// the document's stamp and digest; a key trusted for none cannot be
    /// checked, and the index is returned as unverified (`None`): search
    /// results are hints, installs verify each package again.
    pub fn verify(
        trust: &Trust,
        bytes: &[u8],
        signature: &str,
        registry: &str,
    ) -> Result<(Index, IndexSigner), PackageError> {
        let what = format!("the index of {registry}");
        let sig = SignatureBox::from_string(signature).map_err(|e| PackageError::BadFile {
            path: format!("the signature of {what}"),
            cause: e.to_string(),
        })?;
        let key_id = key_id(sig.keynum());
        let index = Index::parse(bytes, registry)?;
        let Some(key) = trust.keys().iter().find(|k| k.key_id == key_id) else {
            return Ok((
                index,
                IndexSigner {
                    key_id,
                    trusted_for: None,
                },
            ));
        };
        let pk = key.public_key()?;
        if minisign::verify(&pk, &sig, Cursor::new(bytes), true, false, false).is_err() {
            return Err(PackageError::Invalid(format!(
                "{what} does not match its signature by key {key_id}: it was changed after \
                 signing (or is being rewritten: try again)"
            )));
        }
        let signed = sig.trusted_comment().unwrap_or_default();
        if signed != trusted_comment(index.stamp, &digest(bytes)) {
            return Err(PackageError::Invalid(format!(
                "{what}: its signature is for `{signed}`, not this document (stamp {}): an old or \
                 another index was put in its place",
                index.stamp
            )));
        }
        Ok((
            index,
            IndexSigner {
                key_id,
                trusted_for: Some(key.namespace.clone()),
            },
        ))
    }
}

/// Who signed an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSigner {
    /// The key id.
    pub key_id: String,
    /// A namespace the key is trusted for; `None`: trusted for none, so
    /// the index could not be verified.
    pub trusted_for: Option<String>,
}

/// The trusted comment an index signature must carry.
pub fn trusted_comment(stamp: u64, digest: &str) -> String {
    format!("firedrill-index stamp={stamp} digest={digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(package: &str, description: &str, needs: &[&str]) -> IndexEntry {
        IndexEntry {
            package: package.into(),
            digest: "sha256:00".into(),
            size: 1,
            description: description.into(),
            keywords: vec!["web".into()],
            needs: needs.iter().map(|s| s.to_string()).collect(),
            key_id: "K".into(),
            published_at: 0,
            yanked: false,
            source: None,
            license: None,
        }
    }

    #[test]
    fn upsert_keeps_one_sorted_entry_per_version() {
        let mut index = Index::default();
        index.upsert(entry("b:x@1.0.0", "one", &[]));
        index.upsert(entry("a:x@1.0.0", "two", &[]));
        index.upsert(entry("b:x@1.0.0", "three", &[]));
        let names: Vec<_> = index.packages.iter().map(|e| &e.description).collect();
        assert_eq!(names, ["two", "three"]);
    }

    #[test]
    fn search_needs_every_word_and_the_kind() {
        let e = entry("acme:checkout-latency@1.2.0", "Slow checkout", &["delay"]);
        assert!(e.matches("CHECKOUT slow", None));
        assert!(e.matches("web", Some("delay")));
        assert!(!e.matches("checkout fast", None));
        assert!(!e.matches("", Some("kill")));
        assert_eq!(e.name(), "acme:checkout-latency");
        assert_eq!(e.version().unwrap().to_string(), "1.2.0");
    }
}
