//! `<data-dir>/config.toml`: which registry serves which namespace, in
//! wasm-pkg-tools' `config.toml` terms where they fit, so a team already
//! using `wkg` recognises it:
//!
//! ```toml
//! default_registry = "oci://registry.example.com/chaos/"
//!
//! [namespace_registries]
//! acme = "oci://registry.acme.internal/firedrill/"
//! team-a = "/srv/shared/firedrill-registry"
//! ```
//!
//! A registry is an `oci://HOST[:PORT]/PREFIX/` reference or a directory.
//! Without a config, everything goes to the data dir's own directory
//! registry.

use crate::error::io;
use crate::{PackageError, check_label};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The registries of a data dir.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The registry for namespaces not listed.
    #[serde(default)]
    pub default_registry: Option<String>,
    /// A registry per namespace.
    #[serde(default)]
    pub namespace_registries: BTreeMap<String, String>,
    #[serde(skip)]
    data_dir: PathBuf,
}

impl RegistryConfig {
    /// `<data_dir>/config.toml`, or the defaults when there is none.
    pub fn load(data_dir: &Path) -> Result<RegistryConfig, PackageError> {
        let path = data_dir.join("config.toml");
        let mut config: RegistryConfig = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| PackageError::BadFile {
                path: path.display().to_string(),
                cause: format!(
                    "{e}; it takes `default_registry = \"oci://HOST/PREFIX/\"` and a `[namespace_registries]` table"
                ),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryConfig::default(),
            Err(e) => return Err(io(&path)(e)),
        };
        for ns in config.namespace_registries.keys() {
            check_label("namespace", ns).map_err(|e| PackageError::BadFile {
                path: path.display().to_string(),
                cause: format!("[namespace_registries]: {e}"),
            })?;
        }
        config.data_dir = data_dir.to_path_buf();
        Ok(config)
    }

    /// The registry for `namespace` (or the default one, for `None`): as
    /// configured, else the data dir's own.
    pub fn registry_for(&self, namespace: Option<&str>) -> String {
        namespace
            .and_then(|ns| self.namespace_registries.get(ns))
            .or(self.default_registry.as_ref())
            .cloned()
            .unwrap_or_else(|| self.data_dir.join("registry").display().to_string())
    }
}
