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
//!
//! # How to reach an OCI registry, by HOST[:PORT], as wkg writes it.
//! [registry."registry.acme.internal".oci]
//! auth = { username = "ci", password = "…" }   # or "base64(user:pass)", or { token = "…" }
//! protocol = "https"                             # the default; "http" on loopback only
//! ca_file = "/etc/ssl/acme-root.pem"             # firedrill's: a private CA to trust too
//! ```
//!
//! A registry is an `oci://HOST[:PORT]/PREFIX/` reference or a directory.
//! Without a config, everything goes to the data dir's own directory
//! registry. A config holding a password or token must be readable by
//! its owner only.

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
    /// How to reach each OCI registry host.
    #[serde(default)]
    pub registry: BTreeMap<String, RegistryHost>,
    #[serde(skip)]
    data_dir: PathBuf,
}

/// `[registry."HOST[:PORT]"]`: wkg's per-registry table (only its `oci`
/// part is read; its other protocols are left alone).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RegistryHost {
    /// How to reach it over OCI.
    #[serde(default)]
    pub oci: Option<OciSettings>,
}

/// `[registry."HOST".oci]`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciSettings {
    /// Credentials.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// `https` (the default) or `http` (loopback only).
    #[serde(default)]
    pub protocol: Option<String>,
    /// A PEM file of CA certificates to trust besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for OciSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials are never printed.
        f.debug_struct("OciSettings")
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("protocol", &self.protocol)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never printed.
        f.write_str("Auth(<redacted>)")
    }
}

/// Registry credentials, as wkg writes them.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum Auth {
    /// HTTP Basic (the registry may trade it for a bearer token).
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// A bearer token sent as it is.
    Token {
        /// The token.
        token: String,
    },
    /// `base64(username:password)`.
    Encoded(String),
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
        let secrets = config
            .registry
            .values()
            .any(|r| r.oci.as_ref().is_some_and(|o| o.auth.is_some()));
        if secrets {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map_err(io(&path))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(PackageError::BadFile {
                    path: path.display().to_string(),
                    cause: format!(
                        "it holds registry credentials and others can read it (mode {:o}): `chmod 600 {}`",
                        mode & 0o777,
                        path.display()
                    ),
                });
            }
        }
        for (host, r) in &config.registry {
            if let Some(p) = r.oci.as_ref().and_then(|o| o.protocol.as_deref())
                && !matches!(p, "http" | "https")
            {
                return Err(PackageError::BadFile {
                    path: path.display().to_string(),
                    cause: format!(
                        "[registry.\"{host}\".oci] protocol = {p:?}: write \"https\" or \"http\""
                    ),
                });
            }
        }
        config.data_dir = data_dir.to_path_buf();
        Ok(config)
    }

    /// The `[registry."HOST".oci]` settings for `host`, if any.
    pub fn oci(&self, host: &str) -> Option<&OciSettings> {
        self.registry.get(host).and_then(|r| r.oci.as_ref())
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
