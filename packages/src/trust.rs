//! Which keys may sign which namespaces: `<data-dir>/trust.toml`. Deny by
//! default: a package verifies only with a key trusted for its namespace.

use crate::error::io;
use crate::sign::{key_id, read_public};
use crate::{PackageError, check_label};
use minisign::PublicKey;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One trusted key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    /// The namespace it may sign.
    pub namespace: String,
    /// Its id, as minisign prints it.
    pub key_id: String,
    /// The public key, base64 as in a minisign `.pub` file.
    pub public_key: String,
}

impl TrustedKey {
    pub(crate) fn public_key(&self) -> Result<PublicKey, PackageError> {
        PublicKey::from_base64(&self.public_key).map_err(|e| PackageError::BadFile {
            path: format!("the trusted key {} for `{}`", self.key_id, self.namespace),
            cause: e.to_string(),
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default, rename = "key")]
    keys: Vec<TrustedKey>,
}

/// The trusted keys of a data dir.
#[derive(Debug)]
pub struct Trust {
    path: PathBuf,
    file: File,
}

impl Trust {
    /// The trust file of `data_dir` (empty if there is none yet).
    pub fn load(data_dir: &Path) -> Result<Trust, PackageError> {
        let path = data_dir.join("trust.toml");
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| PackageError::BadFile {
                path: path.display().to_string(),
                cause: format!("{e}; fix it, or remove it and trust the keys again"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(Trust { path, file })
    }

    /// Trust `key` (a `.pub` file or its base64 line) for `namespace`.
    /// Returns the key's id.
    pub fn add(&mut self, key: &str, namespace: &str) -> Result<String, PackageError> {
        check_label("namespace", namespace)?;
        let pk = read_public(key)?;
        let id = key_id(pk.keynum());
        if self.key(namespace, &id).is_none() {
            self.file.keys.push(TrustedKey {
                namespace: namespace.to_string(),
                key_id: id.clone(),
                public_key: pk.to_base64(),
            });
            self.save()?;
        }
        Ok(id)
    }

    /// Stop trusting key `key_id` (for `namespace`, or for all).
    /// Returns how many entries went.
    pub fn remove(&mut self, key_id: &str, namespace: Option<&str>) -> Result<usize, PackageError> {
        let before = self.file.keys.len();
        self.file.keys.retain(|k| {
            !(k.key_id.eq_ignore_ascii_case(key_id) && namespace.is_none_or(|n| n == k.namespace))
        });
        let gone = before - self.file.keys.len();
        if gone > 0 {
            self.save()?;
        }
        Ok(gone)
    }

    /// Every trusted key.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.file.keys
    }

    /// The key `key_id` if it is trusted for `namespace`.
    pub fn key(&self, namespace: &str, key_id: &str) -> Option<&TrustedKey> {
        self.file
            .keys
            .iter()
            .find(|k| k.namespace == namespace && k.key_id.eq_ignore_ascii_case(key_id))
    }

    fn save(&self) -> Result<(), PackageError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let text = format!(
            "# Keys trusted to sign scenario packages, per namespace (`firedrill trust`).\n{}",
            toml::to_string(&self.file).map_err(|e| PackageError::Invalid(e.to_string()))?
        );
        let tmp = self.path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))
    }
}
