//! Registries packages are published to and installed from. Today: a
//! directory ([`DirRegistry`]), laid out as wasm-pkg-tools' local backend
//! lays out releases (`<root>/<namespace>/<name>/<version>.wasm`), with the
//! signature (`.wasm.minisig`) and what a catalog shows without running
//! the component (`.json`) beside each. The data dir holds one, the
//! default; any directory a team shares can be another.

use crate::error::io;
use crate::{PackageError, PackageId, PackageReq};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The largest component a package may hold.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;
/// The largest signature or metadata file read from a registry.
pub const MAX_SIDE_FILE_BYTES: u64 = 1 << 20;

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
}

impl PackageMeta {
    /// Its identity.
    pub fn id(&self) -> Result<PackageId, PackageError> {
        self.package.parse()
    }
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

    /// The newest version of each package whose name, description or
    /// keywords contain `query` (any, if empty) and, if `needs` is given,
    /// that needs that fault kind.
    pub fn search(
        &self,
        query: &str,
        needs: Option<&str>,
    ) -> Result<Vec<PackageMeta>, PackageError> {
        let query = query.to_lowercase();
        let mut out = Vec::new();
        let dirs = |p: &Path| -> Vec<(String, PathBuf)> {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
                .collect()
        };
        for (ns, ns_dir) in dirs(&self.root) {
            for (name, _) in dirs(&ns_dir) {
                let Some(newest) = self
                    .versions(&ns, &name)?
                    .into_iter()
                    .rev()
                    .find(|m| !m.yanked)
                else {
                    continue;
                };
                let text = format!(
                    "{} {} {}",
                    newest.package,
                    newest.metadata.description,
                    newest.keywords.join(" ")
                )
                .to_lowercase();
                let kind_ok = needs.is_none_or(|k| {
                    newest
                        .metadata
                        .needs
                        .iter()
                        .any(|n| n.kind.to_string() == k)
                });
                if text.contains(&query) && kind_ok {
                    out.push(newest);
                }
            }
        }
        out.sort_by(|a, b| a.package.cmp(&b.package));
        Ok(out)
    }
}

/// Whether a package's name, description or keywords contain `query`
/// (any case) and, if `needs` is given, it needs that fault kind.
pub(crate) fn matches(m: &PackageMeta, query: &str, needs: Option<&str>) -> bool {
    let text = format!(
        "{} {} {}",
        m.package,
        m.metadata.description,
        m.keywords.join(" ")
    )
    .to_lowercase();
    let kind_ok = needs.is_none_or(|k| m.metadata.needs.iter().any(|n| n.kind.to_string() == k));
    text.contains(&query.to_lowercase()) && kind_ok
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
    /// `oci://HOST[:PORT]/PREFIX/`, or a directory.
    pub fn open(spec: &str) -> Result<Registry, PackageError> {
        if spec.starts_with("oci://") {
            Ok(Registry::Oci(crate::oci::OciRegistry::new(spec)?))
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

    /// See [`DirRegistry::search`].
    pub async fn search(
        &self,
        query: &str,
        needs: Option<&str>,
    ) -> Result<Vec<PackageMeta>, PackageError> {
        match self {
            Registry::Dir(d) => d.search(query, needs),
            Registry::Oci(o) => o.search(query, needs).await,
        }
    }

    /// See [`DirRegistry::yank`].
    pub fn yank(&self, id: &PackageId) -> Result<(), PackageError> {
        match self {
            Registry::Dir(d) => d.yank(id),
            Registry::Oci(o) => Err(PackageError::Invalid(format!(
                "{id}: yanking on an OCI registry ({}) needs the registry's signed index, which is not built yet",
                o.url()
            ))),
        }
    }
}
