//! Installed packages: `<data-dir>/packages/<namespace>/<name>/<version>/`
//! holding `component.wasm`, its `component.wasm.minisig` and
//! `package.json`. A version is installed whole or not at all: it is
//! written to a temporary directory and renamed into place.

use crate::error::io;
use crate::{PackageError, PackageId, PackageMeta, Signer, Trust, digest, verify};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One installed version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Installed {
    /// What the registry said of it.
    pub meta: PackageMeta,
    /// Who signed it (verified at install).
    pub signer: Signer,
    /// The registry it came from.
    pub registry: String,
    /// When it was installed (Unix ms).
    pub installed_at: u64,
}

/// The installed packages of a data dir.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store in `data_dir`.
    pub fn new(data_dir: &Path) -> Store {
        Store {
            root: data_dir.join("packages"),
        }
    }

    fn dir(&self, id: &PackageId) -> PathBuf {
        self.root
            .join(&id.namespace)
            .join(&id.name)
            .join(id.version.to_string())
    }

    /// Install `component` (already verified by the caller, who showed the
    /// review). Installing a version that is there with the same digest
    /// does nothing; with another digest it is refused.
    pub fn install(
        &self,
        installed: &Installed,
        component: &[u8],
        signature: &str,
    ) -> Result<PathBuf, PackageError> {
        let id = installed.meta.id()?;
        let dir = self.dir(&id);
        if let Ok(there) = self.get(&id) {
            if there.meta.digest == installed.meta.digest {
                return Ok(dir);
            }
            return Err(PackageError::Invalid(format!(
                "{id} is installed with digest {}, but this one is {}: a published version cannot change; `firedrill verify {id}` checks the installed one",
                there.meta.digest, installed.meta.digest
            )));
        }
        let parent = dir.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let tmp = parent.join(format!(".{}.tmp{}", id.version, std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(io(&tmp))?;
        let json = serde_json::to_vec_pretty(installed)
            .map_err(|e| PackageError::Invalid(e.to_string()))?;
        let written = (|| {
            std::fs::write(tmp.join("component.wasm"), component)
                .map_err(io(tmp.join("component.wasm")))?;
            std::fs::write(tmp.join("component.wasm.minisig"), signature)
                .map_err(io(tmp.join("component.wasm.minisig")))?;
            std::fs::write(tmp.join("package.json"), &json)
                .map_err(io(tmp.join("package.json")))?;
            std::fs::rename(&tmp, &dir).map_err(io(&dir))
        })();
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        written.map(|()| dir)
    }

    /// An installed version.
    pub fn get(&self, id: &PackageId) -> Result<Installed, PackageError> {
        let path = self.dir(id).join("package.json");
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                PackageError::NotFound(format!("{id} is not installed: `firedrill install {id}`"))
            } else {
                io(&path)(e)
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|e| PackageError::BadFile {
            path: path.display().to_string(),
            cause: format!("{e}; install it again"),
        })
    }

    /// Every installed version, by identity.
    pub fn list(&self) -> Result<Vec<Installed>, PackageError> {
        let mut out = Vec::new();
        let walk = |p: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_dir()
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        };
        for ns in walk(&self.root) {
            for name in walk(&ns) {
                for version in walk(&name) {
                    if let Ok(bytes) = std::fs::read(version.join("package.json"))
                        && let Ok(i) = serde_json::from_slice::<Installed>(&bytes)
                    {
                        out.push(i);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.meta.package.cmp(&b.meta.package));
        Ok(out)
    }

    /// The installed versions of `namespace:name`.
    pub fn versions(&self, namespace: &str, name: &str) -> Result<Vec<Installed>, PackageError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|i| {
                i.meta
                    .id()
                    .is_ok_and(|id| id.namespace == namespace && id.name == name)
            })
            .collect())
    }

    /// The newest installed version `req` matches, verified again (see
    /// [`Store::component`]).
    pub fn resolve(
        &self,
        req: &crate::PackageReq,
        trust: &Trust,
    ) -> Result<(Installed, Vec<u8>), PackageError> {
        let newest = self
            .versions(&req.namespace, &req.name)?
            .into_iter()
            .filter_map(|i| i.meta.id().ok())
            .filter(|id| req.matches(&id.version))
            .max_by(|a, b| a.version.cmp(&b.version))
            .ok_or_else(|| {
                PackageError::NotFound(format!(
                    "no installed version of {}:{} matches `{req}`: `firedrill install {req}`",
                    req.namespace, req.name
                ))
            })?;
        self.component(&newest, trust)
    }

    /// An installed version's component, verified again: its digest is the
    /// one installed and its signature is a trusted key's.
    pub fn component(
        &self,
        id: &PackageId,
        trust: &Trust,
    ) -> Result<(Installed, Vec<u8>), PackageError> {
        let installed = self.get(id)?;
        let dir = self.dir(id);
        let component =
            std::fs::read(dir.join("component.wasm")).map_err(io(dir.join("component.wasm")))?;
        let signature = std::fs::read_to_string(dir.join("component.wasm.minisig"))
            .map_err(io(dir.join("component.wasm.minisig")))?;
        let actual = digest(&component);
        if actual != installed.meta.digest {
            return Err(PackageError::DigestMismatch {
                package: id.to_string(),
                registry: format!("the installed copy ({})", dir.display()),
                expected: installed.meta.digest.clone(),
                actual,
            });
        }
        verify(trust, id, &component, &signature)?;
        Ok((installed, component))
    }
}
