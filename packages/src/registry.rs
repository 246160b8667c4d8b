//! Registries packages are published to and installed from. Today: a
//! directory ([`DirRegistry`]), laid out as wasm-pkg-tools' local backend
//! lays out releases (`<root>/<namespace>/<name>/<version>.wasm`), with the
//! signature (`.wasm.minisig`) and what a catalog shows without running
//! the component (`.json`) beside each. The data dir holds one, the
//! default; any directory a team shares can be another.

use crate::catalog::{Catalog, SyncState};
use crate::error::io;
use crate::index::{Index, IndexEntry};
use crate::{PackageError, PackageId, PackageReq, Trust};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest component a package may hold.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;
/// The largest signature or metadata file read from a registry.
pub const MAX_SIDE_FILE_BYTES: u64 = 1 << 20;
/// The largest registry index read (about 100,000 versions).
pub const MAX_INDEX_BYTES: u64 = 64 << 20;

/// What a registry says of one published version, without running it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageMeta {
    /// `namespace:name@version`.
    pub package: String,
    /// The component's digest, `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its `describe()`: description, parameters, needs.
    pub metadata: firedrill::Metadata,
    /// Search words.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Its README, if one was published with it.
    #[serde(default)]
    pub readme: Option<String>,
    /// The key that signed it.
    pub key_id: String,
    /// When it was published (Unix ms).
    pub published_at: u64,
    /// No new installs (pins keep working).
    #[serde(default)]
    pub yanked: bool,
    /// Where its source is (a URL), as the publisher gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Its licence (an SPDX expression), as the publisher gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

impl PackageMeta {
    /// Its identity.
    pub fn id(&self) -> Result<PackageId, PackageError> {
        self.package.parse()
    }
}

/// An index as read from a registry, not yet verified.
#[derive(Debug, Clone)]
pub struct FetchedIndex {
    /// The document.
    pub bytes: Vec<u8>,
    /// Its minisign signature.
    pub signature: String,
    /// What identifies this version of it (see [`Registry::index_version`]).
    pub version: String,
}

/// A directory registry.
#[derive(Debug, Clone)]
pub struct DirRegistry {
    root: PathBuf,
}

fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, PackageError> {
    let size = std::fs::metadata(path).map_err(io(path))?.len();
    if size > cap {
        return Err(PackageError::TooLarge {
            what: format!("{what} ({})", path.display()),
            size,
            limit: cap,
        });
    }
    std::fs::read(path).map_err(io(path))
}

/// Write `bytes` to `path` only if nothing is there (a temporary file,
/// then a hard link, which refuses to replace).
fn write_new(path: &Path, bytes: &[u8]) -> Result<bool, PackageError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

impl DirRegistry {
    /// The registry at `root` (made on first publish).
    pub fn new(root: impl Into<PathBuf>) -> DirRegistry {
        DirRegistry { root: root.into() }
    }

    /// Where it is.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn base(&self, id: &PackageId) -> PathBuf {
        self.root
            .join(&id.namespace)
            .join(&id.name)
            .join(id.version.to_string())
    }

    fn file(&self, id: &PackageId, ext: &str) -> PathBuf {
        let mut p = self.base(id).into_os_string();
        p.push(ext);
        PathBuf::from(p)
    }

    /// Publish a signed component. Refuses a version that exists.
    pub fn publish(
        &self,
        meta: &PackageMeta,
        component: &[u8],
        signature: &str,
    ) -> Result<(), PackageError> {
        let id = meta.id()?;
        let exists = || PackageError::Exists {
            package: id.to_string(),
            registry: self.root.display().to_string(),
        };
        let json_path = self.file(&id, ".json");
        if json_path.exists() {
            return Err(exists());
        }
        let dir = json_path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // The component and signature first; the metadata last, as the
        // mark that the version is complete (readers list only those).
        for (ext, bytes) in [
            (".wasm", component),
            (".wasm.minisig", signature.as_bytes()),
        ] {
            let path = self.file(&id, ext);
            let _ = std::fs::remove_file(&path); // a publish that died half-way
            write_new(&path, bytes)?;
        }
        let json =
            serde_json::to_vec_pretty(meta).map_err(|e| PackageError::Invalid(e.to_string()))?;
        if !write_new(&json_path, &json)? {
            return Err(exists());
        }
        Ok(())
    }

    /// Every complete version of `namespace:name`, oldest first.
    pub fn versions(&self, namespace: &str, name: &str) -> Result<Vec<PackageMeta>, PackageError> {
        let dir = self.root.join(namespace).join(name);
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push(self.read_meta(&path)?);
            }
        }
        out.sort_by_key(|m| m.id().map(|i| i.version).ok());
        Ok(out)
    }

    fn read_meta(&self, path: &Path) -> Result<PackageMeta, PackageError> {
        let bytes = read_capped(path, MAX_SIDE_FILE_BYTES, "package metadata")?;
        serde_json::from_slice(&bytes).map_err(|e| PackageError::BadFile {
            path: path.display().to_string(),
            cause: format!("not package metadata ({e}); the registry is damaged"),
        })
    }

    /// The newest version `req` matches that is not yanked.
    pub fn resolve(&self, req: &PackageReq) -> Result<PackageMeta, PackageError> {
        let versions = self.versions(&req.namespace, &req.name)?;
        pick(&versions, req, &self.root.display().to_string())
    }

    /// A version's metadata.
    pub fn meta(&self, id: &PackageId) -> Result<PackageMeta, PackageError> {
        let path = self.file(id, ".json");
        if !path.exists() {
            return Err(PackageError::NotFound(format!(
                "{id} is not in {}",
                self.root.display()
            )));
        }
        self.read_meta(&path)
    }

    /// A version's component and signature, the component's size capped.
    pub fn fetch(&self, id: &PackageId) -> Result<(Vec<u8>, String), PackageError> {
        let component = read_capped(
            &self.file(id, ".wasm"),
            MAX_COMPONENT_BYTES,
            &format!("{id}'s component"),
        )?;
        let sig_path = self.file(id, ".wasm.minisig");
        if !sig_path.exists() {
            return Err(PackageError::Invalid(format!(
                "{id} has no signature in {} ({} is missing): it was not published with `firedrill publish`, or the registry lost it; it cannot be installed unsigned — ask its publisher to publish it again",
                self.root.display(),
                sig_path.display()
            )));
        }
        let signature = read_capped(&sig_path, MAX_SIDE_FILE_BYTES, &format!("{id}'s signature"))?;
        let signature = String::from_utf8(signature).map_err(|_| PackageError::BadFile {
            path: sig_path.display().to_string(),
            cause: "not a minisign signature (not text)".into(),
        })?;
        Ok((component, signature))
    }

    /// Mark a version yanked: no new installs; pins keep working.
    pub fn yank(&self, id: &PackageId) -> Result<(), PackageError> {
        let mut meta = self.meta(id)?;
        meta.yanked = true;
        let path = self.file(id, ".json");
        let tmp = path.with_extension("json.tmp");
        let json =
            serde_json::to_vec_pretty(&meta).map_err(|e| PackageError::Invalid(e.to_string()))?;
        std::fs::write(&tmp, json).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Every complete version of every package, by package.
    pub fn all(&self) -> Result<Vec<PackageMeta>, PackageError> {
        let dirs = |p: &Path| -> Vec<(String, PathBuf)> {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
                .collect()
        };
        let mut out = Vec::new();
        for (ns, ns_dir) in dirs(&self.root) {
            for (name, _) in dirs(&ns_dir) {
                out.extend(self.versions(&ns, &name)?);
            }
        }
        out.sort_by(|a, b| a.package.cmp(&b.package));
        Ok(out)
    }

    fn index_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.root.join("index.json"),
            self.root.join("index.json.minisig"),
        )
    }

    /// What identifies the index's version (its signature's digest, and
    /// the document's size and change time), if there is an index.
    pub fn index_version(&self) -> Result<Option<String>, PackageError> {
        let (doc, sig) = self.index_paths();
        match read_capped(&sig, MAX_SIDE_FILE_BYTES, "the index signature") {
            Ok(bytes) => Ok(Some(Self::version_of(&doc, &bytes))),
            Err(PackageError::Io { .. }) if !sig.exists() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn version_of(doc: &Path, signature: &[u8]) -> String {
        let (len, changed) = std::fs::metadata(doc).map_or((0, 0), |m| {
            use std::os::unix::fs::MetadataExt;
            (
                m.len(),
                m.ctime_nsec() as u64 + m.ctime() as u64 * 1_000_000_000,
            )
        });
        format!("{} {len} {changed}", crate::digest(signature))
    }

    /// The index document and its signature, if there is an index.
    pub fn fetch_index(&self) -> Result<Option<FetchedIndex>, PackageError> {
        let (doc, sig) = self.index_paths();
        if !sig.exists() {
            return Ok(None);
        }
        // The signature first: a writer puts the document first.
        let signature = read_capped(&sig, MAX_SIDE_FILE_BYTES, "the index signature")?;
        let version = Self::version_of(&doc, &signature);
        let bytes = read_capped(&doc, MAX_INDEX_BYTES, "the index")?;
        Ok(Some(FetchedIndex {
            version,
            bytes,
            signature: String::from_utf8_lossy(&signature).into_owned(),
        }))
    }

    /// Replace the index (the document, then its signature).
    pub fn put_index(&self, bytes: &[u8], signature: &str) -> Result<(), PackageError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let (doc, sig) = self.index_paths();
        for (path, bytes) in [(&doc, bytes), (&sig, signature.as_bytes())] {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
            std::fs::rename(&tmp, path).map_err(io(path))?;
        }
        Ok(())
    }

    /// Hold the registry's index lock (released when the file drops), so
    /// two publishers do not lose each other's entries.
    pub fn lock_index(&self) -> Result<std::fs::File, PackageError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let path = self.root.join(".index.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }
}

/// The newest of `versions` that `req` matches and is not yanked, or why
/// there is none.
pub(crate) fn pick(
    versions: &[PackageMeta],
    req: &PackageReq,
    registry: &str,
) -> Result<PackageMeta, PackageError> {
    let matching: Vec<&PackageMeta> = versions
        .iter()
        .filter(|m| m.id().is_ok_and(|id| req.matches(&id.version)))
        .collect();
    if let Some(m) = matching.iter().rev().find(|m| !m.yanked) {
        return Ok((*m).clone());
    }
    Err(PackageError::NotFound(
        match (versions.is_empty(), matching.is_empty()) {
            (true, _) => format!(
                "{req}: no such package in {registry}; `firedrill search` lists what it has"
            ),
            (false, true) => format!(
                "{req}: no version matches in {registry} (it has {}); widen the requirement",
                versions
                    .iter()
                    .map(|m| m.package.rsplit('@').next().unwrap_or("?"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (false, false) => format!(
                "{req}: every matching version in {registry} is yanked ({}): its publisher withdrew it; pick another version",
                matching
                    .iter()
                    .map(|m| m.package.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    ))
}

/// A registry: a directory or an OCI registry.
#[derive(Debug)]
pub enum Registry {
    /// A directory.
    Dir(DirRegistry),
    /// An OCI registry.
    Oci(crate::oci::OciRegistry),
}

impl Registry {
    /// `oci://HOST[:PORT]/PREFIX/` (reached as `config` says), or a
    /// directory.
    pub fn open(spec: &str, config: &crate::RegistryConfig) -> Result<Registry, PackageError> {
        if spec.starts_with("oci://") {
            Ok(Registry::Oci(crate::oci::OciRegistry::new(spec, config)?))
        } else {
            Ok(Registry::Dir(DirRegistry::new(spec)))
        }
    }

    /// Where it is, for messages.
    pub fn name(&self) -> String {
        match self {
            Registry::Dir(d) => d.root().display().to_string(),
            Registry::Oci(o) => o.url().to_string(),
        }
    }

    /// See [`DirRegistry::publish`].
    pub async fn publish(
        &self,
        meta: &PackageMeta,
        component: &[u8],
        signature: &str,
    ) -> Result<(), PackageError> {
        match self {
            Registry::Dir(d) => d.publish(meta, component, signature),
            Registry::Oci(o) => o.publish(meta, component, signature).await,
        }
    }

    /// See [`DirRegistry::resolve`].
    pub async fn resolve(&self, req: &PackageReq) -> Result<PackageMeta, PackageError> {
        match self {
            Registry::Dir(d) => d.resolve(req),
            Registry::Oci(o) => o.resolve(req).await,
        }
    }

    /// See [`DirRegistry::fetch`].
    pub async fn fetch(&self, id: &PackageId) -> Result<(Vec<u8>, String), PackageError> {
        match self {
            Registry::Dir(d) => d.fetch(id),
            Registry::Oci(o) => o.fetch(id).await,
        }
    }

    /// See [`DirRegistry::all`].
    pub async fn all(&self) -> Result<Vec<PackageMeta>, PackageError> {
        match self {
            Registry::Dir(d) => d.all(),
            Registry::Oci(o) => o.all().await,
        }
    }

    /// See [`DirRegistry::index_version`].
    pub async fn index_version(&self) -> Result<Option<String>, PackageError> {
        match self {
            Registry::Dir(d) => d.index_version(),
            Registry::Oci(o) => o.index_version().await,
        }
    }

    /// See [`DirRegistry::fetch_index`].
    pub async fn fetch_index(&self) -> Result<Option<FetchedIndex>, PackageError> {
        match self {
            Registry::Dir(d) => d.fetch_index(),
            Registry::Oci(o) => o.fetch_index().await,
        }
    }

    /// See [`DirRegistry::put_index`].
    pub async fn put_index(&self, bytes: &[u8], signature: &str) -> Result<(), PackageError> {
        match self {
            Registry::Dir(d) => d.put_index(bytes, signature),
            Registry::Oci(o) => o.put_index(bytes, signature).await,
        }
    }

    /// A version's metadata.
    pub async fn meta(&self, id: &PackageId) -> Result<PackageMeta, PackageError> {
        match self {
            Registry::Dir(d) => d.meta(id),
            Registry::Oci(o) => o.meta(id).await,
        }
    }

    /// Mark a version yanked (no new installs; pins keep working) and
    /// sign the rewritten index with the secret key at `key`. A directory
    /// registry also marks the version's metadata; an OCI registry's
    /// manifests are immutable, so there the index says it.
    pub async fn yank(&self, id: &PackageId, key: &Path, now_ms: u64) -> Result<(), PackageError> {
        let mut meta = self.meta(id).await?;
        if let Registry::Dir(d) = self {
            d.yank(id)?;
        }
        meta.yanked = true;
        self.update_index(key, now_ms, |index| {
            index.upsert(IndexEntry::of(&meta));
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Rewrite the registry's index after `change`, signed with the secret
    /// key at `key`. Without a readable index, it is rebuilt from what
    /// the registry holds first.
    ///
    /// A directory registry is locked meanwhile. An OCI registry has no
    /// lock (nor a conditional tag update): another publisher may put its
    /// index between this one's read and write. So, a moment after writing
    /// (long enough for writers of the same moment to land theirs), the
    /// index is read back, and while `change` is not in what the registry
    /// holds it is applied again to the newest index and written again
    /// (`change` must be idempotent: an upsert, a yank). A write the
    /// registry refuses is tried again the same way; after five, the last
    /// refusal is the error.
    pub async fn update_index(
        &self,
        key: &Path,
        now_ms: u64,
        mut change: impl FnMut(&mut Index) -> Result<(), PackageError>,
    ) -> Result<Index, PackageError> {
        let _lock = match self {
            Registry::Dir(d) => Some(d.lock_index()?),
            Registry::Oci(_) => None,
        };
        let name = self.name();
        const WRITES: u32 = 5;
        let mut failed = None;
        for _ in 0..WRITES {
            match self.write_index_once(key, now_ms, &name, &mut change).await {
                Ok(Some(index)) => return Ok(index),
                Ok(None) => failed = None,
                // Content errors (a bad key, a refused change) stand.
                // (A directory registry fails only with those.)
                Err(e) if !e.is_registry() => return Err(e),
                // A registry may fail readers and writers of the same
                // moment: Distribution 2.8 answered one of four publishers
                // 500 UNKNOWN reading the index while others wrote it, and
                // another DIGEST_INVALID and MANIFEST_BLOB_UNKNOWN writing
                // it (all four upload the same empty config blob). Wait,
                // read again and write again, as for a lost write.
                Err(e) => {
                    failed = Some(e);
                    tokio::time::sleep(settle_time()).await;
                }
            }
        }
        Err(failed.unwrap_or_else(|| PackageError::Invalid(format!(
            "the index of {name} kept changing under {WRITES} writes (other publishers at the same moment): run `firedrill reindex --key KEY --registry {name}`"
        ))))
    }

    /// One read-change-write of the index; on OCI, the read-back too:
    /// `Some` once the registry holds the change, `None` when a writer of
    /// the same moment wrote over it.
    async fn write_index_once(
        &self,
        key: &Path,
        now_ms: u64,
        name: &str,
        change: &mut impl FnMut(&mut Index) -> Result<(), PackageError>,
    ) -> Result<Option<Index>, PackageError> {
        let current = self
            .fetch_index()
            .await?
            .and_then(|f| Index::parse(&f.bytes, name).ok());
        let mut index = match current {
            Some(index) => index,
            None => {
                let mut index = Index::default();
                for m in self.all().await? {
                    index.upsert(IndexEntry::of(&m));
                }
                index
            }
        };
        change(&mut index)?;
        let (bytes, signature) = index.seal(key, now_ms)?;
        self.put_index(&bytes, &signature).await?;
        if matches!(self, Registry::Dir(_)) {
            return Ok(Some(index));
        }
        tokio::time::sleep(settle_time()).await;
        let Some(held) = self
            .fetch_index()
            .await?
            .and_then(|f| Index::parse(&f.bytes, name).ok())
        else {
            return Ok(None);
        };
        let mut again = held.clone();
        change(&mut again)?;
        Ok((again.packages == held.packages).then_some(held))
    }

    /// Bring the catalog's copy of this registry's index up to date: a
    /// download only if the registry's copy changed, verified against
    /// `trust` (a writer caught half-way is read again once).
    pub async fn sync(
        &self,
        catalog: &Catalog,
        trust: &Trust,
        now_ms: u64,
    ) -> Result<Synced, PackageError> {
        let name = self.name();
        let Some(version) = self.index_version().await? else {
            return Ok(Synced::NoIndex);
        };
        // An unverified copy is checked again once its key is trusted.
        if let Some(state) = catalog.state(&name)?
            && state.version == version
            && (state.signer.trusted_for.is_some()
                || !trust.keys().iter().any(|k| k.key_id == state.signer.key_id))
        {
            return Ok(Synced::Current(state));
        }
        let mut retried = false;
        loop {
            let Some(fetched) = self.fetch_index().await? else {
                return Ok(Synced::NoIndex);
            };
            match Index::verify(trust, &fetched.bytes, &fetched.signature, &name) {
                Ok((index, signer)) => {
                    let state = SyncState {
                        version: fetched.version,
                        stamp: index.stamp,
                        signer,
                        synced_at: now_ms,
                        versions: index.packages.len(),
                    };
                    catalog.replace(&name, &index, &state)?;
                    return Ok(Synced::Fresh(state));
                }
                Err(_) if !retried => retried = true,
                Err(e) => return Err(e),
            }
        }
    }
}

/// How long a writer of an OCI registry's index waits before reading it
/// back: 150–450 ms, different for each writer, so writers of the same
/// moment do not check (and write again) in step.
fn settle_time() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread =
        (u64::from(nanos) ^ u64::from(std::process::id()).wrapping_mul(2_654_435_761)) % 300;
    Duration::from_millis(150 + spread)
}

/// What [`Registry::sync`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Synced {
    /// Downloaded a changed index.
    Fresh(SyncState),
    /// The catalog's copy is the registry's.
    Current(SyncState),
    /// The registry has no index (nothing was published to it by
    /// firedrill, or only by a firedrill without indexes).
    NoIndex,
}
