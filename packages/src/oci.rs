//! OCI registries (Distribution spec v2) through `oci-client`, in the CNCF
//! Wasm OCI artifact layout: an image manifest whose config is
//! `application/vnd.wasm.config.v0+json` and whose one layer is the
//! `application/wasm` component, at `<registry>/<prefix><namespace>/<name>:<version>`
//! as wasm-pkg-tools names it. The package's catalog metadata rides in a
//! manifest annotation; the minisign signature is a second artifact under
//! the cosign-style tag `sha256-<manifest hex>.sig` (no referrers API needed).

use crate::config::Auth;
use crate::index::Index;
use crate::registry::{
    FetchedIndex, MAX_COMPONENT_BYTES, MAX_INDEX_BYTES, MAX_SIDE_FILE_BYTES, pick,
};
use crate::{PackageError, PackageId, PackageMeta, PackageReq};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::BTreeMap;
use std::time::Duration;

/// The config media type of a Wasm component artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The layer media type of a component.
pub const WASM_LAYER: &str = "application/wasm";
/// The layer media type of a minisign signature.
pub const SIGNATURE_LAYER: &str = "application/vnd.dev.firedrill.minisign.signature";
/// The layer media type of a registry index document.
pub const INDEX_LAYER: &str = "application/vnd.dev.firedrill.index.v1+json";
/// The repository (under the prefix) holding the registry's index, tag
/// `latest`: one path segment, so no `namespace/name` package meets it.
pub const INDEX_REPOSITORY: &str = "firedrill-index";
/// The manifest annotation holding the package's catalog metadata.
pub const META_ANNOTATION: &str = "dev.firedrill.package";
/// The environment variables holding registry credentials (HTTP Basic).
pub const USER_ENV: &str = "FIREDRILL_REGISTRY_USER";
/// See [`USER_ENV`].
pub const PASSWORD_ENV: &str = "FIREDRILL_REGISTRY_PASSWORD";
/// The environment variable holding a bearer token for the registry.
pub const TOKEN_ENV: &str = "FIREDRILL_REGISTRY_TOKEN";
/// How long a registry may take to answer (a duration, default 30s).
pub const TIMEOUT_ENV: &str = "FIREDRILL_REGISTRY_TIMEOUT";

/// An OCI registry, `oci://HOST[:PORT]/PREFIX/`.
pub struct OciRegistry {
    client: Client,
    auth: RegistryAuth,
    host: String,
    prefix: String,
    url: String,
}

impl std::fmt::Debug for OciRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials are never printed.
        f.debug_struct("OciRegistry")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

impl OciRegistry {
    /// Parse `oci://HOST[:PORT]/PREFIX/`. Plain HTTP on loopback only
    /// (the default there, unless the config says `protocol = "https"`);
    /// TLS everywhere else. Credentials from `FIREDRILL_REGISTRY_TOKEN`,
    /// or `FIREDRILL_REGISTRY_USER` and `FIREDRILL_REGISTRY_PASSWORD`, else
    /// from the config's `[registry."HOST".oci]`.
    pub fn new(url: &str, config: &crate::RegistryConfig) -> Result<OciRegistry, PackageError> {
        let bad = |why: &str| {
            PackageError::BadId(format!(
                "--registry {url}: {why}; write oci://HOST[:PORT]/PREFIX/, e.g. oci://127.0.0.1:5000/firedrill/"
            ))
        };
        let rest = url
            .strip_prefix("oci://")
            .ok_or_else(|| bad("not an oci:// reference"))?;
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || host.contains(['@', '?', '#']) {
            return Err(bad("no host"));
        }
        let prefix = prefix.trim_matches('/');
        for part in prefix.split('/').filter(|p| !p.is_empty()) {
            crate::check_label("registry prefix part", part)?;
        }
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let settings = config.oci(host).cloned().unwrap_or_default();
        let protocol = match (settings.protocol.as_deref(), is_loopback(host)) {
            (Some("https"), _) | (None, false) => ClientProtocol::Https,
            (Some("http") | None, true) => ClientProtocol::Http,
            (_, false) => {
                return Err(bad(
                    "plain HTTP is for loopback registries only: remove `protocol = \"http\"` from its [registry] table",
                ));
            }
            (Some(_), true) => ClientProtocol::Http,
        };
        let mut extra_root_certificates = Vec::new();
        if let Some(ca) = &settings.ca_file {
            let pem = std::fs::read(ca).map_err(crate::error::io(ca))?;
            extra_root_certificates.push(oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data: pem,
            });
        }
        let timeout = match std::env::var(TIMEOUT_ENV) {
            Ok(t) => humantime::parse_duration(&t).map_err(|e| {
                PackageError::BadId(format!(
                    "{TIMEOUT_ENV}={t:?} is not a duration ({e}), e.g. 30s"
                ))
            })?,
            Err(_) => Duration::from_secs(30),
        };
        let client = Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(timeout.min(Duration::from_secs(5))),
            read_timeout: Some(timeout),
            extra_root_certificates,
            ..Default::default()
        });
        let auth = match (
            std::env::var(TOKEN_ENV),
            std::env::var(USER_ENV),
            std::env::var(PASSWORD_ENV),
            settings.auth,
        ) {
            (Ok(t), ..) => RegistryAuth::Bearer(t),
            (_, Ok(u), Ok(p), _) => RegistryAuth::Basic(u, p),
            (.., Some(Auth::Basic { username, password })) => {
                RegistryAuth::Basic(username, password)
            }
            (.., Some(Auth::Token { token })) => RegistryAuth::Bearer(token),
            (.., Some(Auth::Encoded(b64))) => {
                use base64::Engine;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                let Some((u, p)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                    return Err(bad(&format!(
                        "its [registry.\"{host}\".oci] auth string is not base64 of `username:password`"
                    )));
                };
                RegistryAuth::Basic(u.to_string(), p.to_string())
            }
            _ => RegistryAuth::Anonymous,
        };
        Ok(OciRegistry {
            client,
            auth,
            host: host.to_string(),
            prefix,
            url: url.to_string(),
        })
    }

    /// The registry as the user wrote it.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn reference(&self, namespace: &str, name: &str, tag: &str) -> Reference {
        Reference::with_tag(
            self.host.clone(),
            format!("{}{namespace}/{name}", self.prefix),
            tag.to_string(),
        )
    }

    fn failed(
        &self,
        what: String,
    ) -> impl FnOnce(oci_client::errors::OciDistributionError) -> PackageError {
        let url = self.url.clone();
        move |e| {
            PackageError::Registry(format!(
                "{what}: registry {url} failed: {e}; is it up and reachable (and are its credentials right, if it needs them: {USER_ENV}/{PASSWORD_ENV}, {TOKEN_ENV} or its [registry] table in config.toml)?"
            ))
        }
    }

    /// Publish a signed component. Refuses a version that exists.
    pub async fn publish(
        &self,
        meta: &PackageMeta,
        component: &[u8],
        signature: &str,
    ) -> Result<(), PackageError> {
        let id = meta.id()?;
        let tag = id.version.to_string();
        let image = self.reference(&id.namespace, &id.name, &tag);
        if self
            .client
            .pull_image_manifest(&image, &self.auth)
            .await
            .is_ok()
        {
            return Err(PackageError::Exists {
                package: id.to_string(),
                registry: self.url.clone(),
            });
        }
        let layer = ImageLayer::new(
            component.to_vec(),
            WASM_LAYER.to_string(),
            Some(BTreeMap::from([(
                "org.opencontainers.image.title".to_string(),
                format!("{}.wasm", id.name),
            )])),
        );
        // The CNCF Wasm artifact's config, as wasm-pkg-tools (oci-wasm)
        // writes and reads it: the component's own imports and exports.
        let (imports, exports) = firedrill::runtime::interfaces(component)
            .map_err(|e| PackageError::Invalid(format!("{id}: not a component: {e}")))?;
        let created = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(meta.published_at),
        )
        .to_string();
        let config = serde_json::json!({
            "created": created,
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [meta.digest],
            "component": {
                "imports": imports,
                "exports": exports,
                "target": null,
            },
        });
        let config = Config::new(
            serde_json::to_vec(&config).map_err(|e| PackageError::Invalid(e.to_string()))?,
            WASM_CONFIG.to_string(),
            None,
        );
        let annotations = BTreeMap::from([
            (
                "org.opencontainers.image.title".to_string(),
                format!("{}:{}", id.namespace, id.name),
            ),
            ("org.opencontainers.image.version".to_string(), tag.clone()),
            (
                "org.opencontainers.image.description".to_string(),
                meta.metadata.description.clone(),
            ),
            ("org.opencontainers.image.created".to_string(), created),
            (
                META_ANNOTATION.to_string(),
                serde_json::to_string(meta).map_err(|e| PackageError::Invalid(e.to_string()))?,
            ),
        ]);
        let mut annotations = annotations;
        for (key, value) in [
            ("org.opencontainers.image.source", &meta.source),
            ("org.opencontainers.image.licenses", &meta.license),
        ] {
            if let Some(v) = value {
                annotations.insert(key.to_string(), v.clone());
            }
        }
        let manifest =
            OciImageManifest::build(std::slice::from_ref(&layer), &config, Some(annotations));
        let what = format!("publishing {id}");
        self.client
            .push(&image, &[layer], config, &self.auth, Some(manifest))
            .await
            .map_err(self.failed(what.clone()))?;
        let digest = self
            .client
            .fetch_manifest_digest(&image, &self.auth)
            .await
            .map_err(self.failed(what.clone()))?;
        let sig_layer = ImageLayer::new(
            signature.as_bytes().to_vec(),
            SIGNATURE_LAYER.to_string(),
            None,
        );
        let empty = Config::new(
            b"{}".to_vec(),
            "application/vnd.oci.empty.v1+json".to_string(),
            None,
        );
        self.client
            .push(
                &self.signature_ref(&id, &digest),
                &[sig_layer],
                empty,
                &self.auth,
                None,
            )
            .await
            .map_err(self.failed(format!("publishing the signature of {id}")))?;
        Ok(())
    }

    fn signature_ref(&self, id: &PackageId, manifest_digest: &str) -> Reference {
        let hex = manifest_digest
            .strip_prefix("sha256:")
            .unwrap_or(manifest_digest);
        self.reference(&id.namespace, &id.name, &format!("sha256-{hex}.sig"))
    }

    /// Every version of `namespace:name`, oldest first.
    pub async fn versions(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<PackageMeta>, PackageError> {
        let repo = self.reference(namespace, name, "latest");
        let tags = match self.client.list_tags(&repo, &self.auth, None, None).await {
            Ok(t) => t.tags,
            Err(oci_client::errors::OciDistributionError::RegistryError { .. }) => Vec::new(),
            Err(e) => return Err(self.failed(format!("listing {namespace}:{name}"))(e)),
        };
        let mut out = Vec::new();
        for tag in tags.iter().filter(|t| semver::Version::parse(t).is_ok()) {
            let (manifest, _) = self
                .client
                .pull_image_manifest(&self.reference(namespace, name, tag), &self.auth)
                .await
                .map_err(self.failed(format!("reading {namespace}:{name}@{tag}")))?;
            out.push(self.meta_of(&manifest, &format!("{namespace}:{name}@{tag}"))?);
        }
        out.sort_by_key(|m| m.id().map(|i| i.version).ok());
        Ok(out)
    }

    fn meta_of(
        &self,
        manifest: &OciImageManifest,
        package: &str,
    ) -> Result<PackageMeta, PackageError> {
        let text = manifest
            .annotations
            .as_ref()
            .and_then(|a| a.get(META_ANNOTATION))
            .ok_or_else(|| {
                PackageError::Invalid(format!(
                    "{package} in {}: no `{META_ANNOTATION}` annotation: not a firedrill package",
                    self.url
                ))
            })?;
        let meta: PackageMeta = serde_json::from_str(text).map_err(|e| PackageError::BadFile {
            path: format!("{package} in {}", self.url),
            cause: format!("not package metadata ({e})"),
        })?;
        if meta.package != package {
            return Err(PackageError::Invalid(format!(
                "{package} in {}: its metadata says it is {}; the registry's copy was moved or changed",
                self.url, meta.package
            )));
        }
        Ok(meta)
    }

    /// The newest version `req` matches that is not yanked (manifests
    /// are immutable: the registry's index says which are yanked).
    pub async fn resolve(&self, req: &PackageReq) -> Result<PackageMeta, PackageError> {
        let mut versions = self.versions(&req.namespace, &req.name).await?;
        if let Some(index) = self.fetch_index().await? {
            // Believed unverified: a yank can only stop an install.
            let index = Index::parse(&index.bytes, &self.url)?;
            for m in &mut versions {
                m.yanked |= index
                    .packages
                    .iter()
                    .any(|e| e.package == m.package && e.yanked);
            }
        }
        pick(&versions, req, &self.url)
    }

    /// A version's component and signature, sizes capped before download.
    pub async fn fetch(&self, id: &PackageId) -> Result<(Vec<u8>, String), PackageError> {
        let image = self.reference(&id.namespace, &id.name, &id.version.to_string());
        let (manifest, digest) = self
            .client
            .pull_image_manifest(&image, &self.auth)
            .await
            .map_err(self.failed(format!("fetching {id}")))?;
        let wasm: Vec<&OciDescriptor> = manifest
            .layers
            .iter()
            .filter(|l| l.media_type == WASM_LAYER)
            .collect();
        let [layer] = wasm.as_slice() else {
            return Err(PackageError::Invalid(format!(
                "{id} in {}: {} `{WASM_LAYER}` layers, not exactly one: not a Wasm component artifact",
                self.url,
                wasm.len()
            )));
        };
        let component = self
            .blob(
                &image,
                layer,
                MAX_COMPONENT_BYTES,
                &format!("{id}'s component"),
            )
            .await?;
        let sig_image = self.signature_ref(id, &digest);
        let (sig_manifest, _) = self
            .client
            .pull_image_manifest(&sig_image, &self.auth)
            .await
            .map_err(|e| PackageError::Invalid(format!("{id} in {}: no signature ({e}); it is unsigned or was published by another tool", self.url)))?;
        let Some(sig_layer) = sig_manifest
            .layers
            .iter()
            .find(|l| l.media_type == SIGNATURE_LAYER)
        else {
            return Err(PackageError::Invalid(format!(
                "{id} in {}: its signature artifact holds no signature",
                self.url
            )));
        };
        let signature = self
            .blob(
                &sig_image,
                sig_layer,
                MAX_SIDE_FILE_BYTES,
                &format!("{id}'s signature"),
            )
            .await?;
        let signature = String::from_utf8(signature)
            .map_err(|_| PackageError::Invalid(format!("{id}'s signature is not text")))?;
        Ok((component, signature))
    }

    async fn blob(
        &self,
        image: &Reference,
        layer: &OciDescriptor,
        cap: u64,
        what: &str,
    ) -> Result<Vec<u8>, PackageError> {
        let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if size > cap {
            return Err(PackageError::TooLarge {
                what: format!("{what} in {}", self.url),
                size,
                limit: cap,
            });
        }
        let mut out = Vec::with_capacity(size as usize);
        // oci-client checks the bytes against the layer's digest.
        self.client
            .pull_blob(image, layer, &mut out)
            .await
            .map_err(self.failed(format!("downloading {what}")))?;
        if out.len() as u64 > cap {
            return Err(PackageError::TooLarge {
                what: what.to_string(),
                size: out.len() as u64,
                limit: cap,
            });
        }
        Ok(out)
    }

    /// A version's metadata (from its manifest).
    pub async fn meta(&self, id: &PackageId) -> Result<PackageMeta, PackageError> {
        let image = self.reference(&id.namespace, &id.name, &id.version.to_string());
        let (manifest, _) = self
            .client
            .pull_image_manifest(&image, &self.auth)
            .await
            .map_err(|e| match e {
                oci_client::errors::OciDistributionError::ImageManifestNotFoundError(_)
                | oci_client::errors::OciDistributionError::RegistryError { .. } => {
                    PackageError::NotFound(format!("{id} is not in {}", self.url))
                }
                e => self.failed(format!("reading {id}"))(e),
            })?;
        self.meta_of(&manifest, &id.to_string())
    }

    /// Every version of every package under the prefix, by package,
    /// through the registry's catalog API (to rebuild an index; not every
    /// registry offers that API).
    pub async fn all(&self) -> Result<Vec<PackageMeta>, PackageError> {
        let any = self.reference("x", "x", "latest");
        let catalog = self
            .client
            .catalog(&any, &self.auth, None, None)
            .await
            .map_err(self.failed("listing packages (to rebuild its index)".to_string()))?;
        let mut out = Vec::new();
        for repo in catalog.repositories {
            let Some(rest) = repo.strip_prefix(&self.prefix) else {
                continue;
            };
            let Some((ns, name)) = rest.split_once('/') else {
                continue;
            };
            out.extend(self.versions(ns, name).await?);
        }
        out.sort_by(|a, b| a.package.cmp(&b.package));
        Ok(out)
    }

    fn index_ref(&self) -> Reference {
        Reference::with_tag(
            self.host.clone(),
            format!("{}{INDEX_REPOSITORY}", self.prefix),
            "latest".to_string(),
        )
    }

    /// The digest of the index's manifest (one HEAD request), if there is
    /// an index.
    pub async fn index_version(&self) -> Result<Option<String>, PackageError> {
        match self
            .client
            .fetch_manifest_digest(&self.index_ref(), &self.auth)
            .await
        {
            Ok(d) => Ok(Some(d)),
            Err(
                oci_client::errors::OciDistributionError::ImageManifestNotFoundError(_)
                | oci_client::errors::OciDistributionError::RegistryError { .. },
            ) => Ok(None),
            Err(e) => Err(self.failed("reading its index".to_string())(e)),
        }
    }

    /// The index document and its signature, if there is an index.
    pub async fn fetch_index(&self) -> Result<Option<FetchedIndex>, PackageError> {
        let image = self.index_ref();
        let (manifest, version) = match self.client.pull_image_manifest(&image, &self.auth).await {
            Ok(m) => m,
            Err(
                oci_client::errors::OciDistributionError::ImageManifestNotFoundError(_)
                | oci_client::errors::OciDistributionError::RegistryError { .. },
            ) => return Ok(None),
            Err(e) => return Err(self.failed("reading its index".to_string())(e)),
        };
        let layer = |media: &str| {
            manifest.layers.iter().find(|l| l.media_type == media).ok_or_else(|| {
                PackageError::Invalid(format!(
                    "the index of {} has no `{media}` layer: it was not written by firedrill; publish again to rewrite it",
                    self.url
                ))
            })
        };
        let bytes = self
            .blob(&image, layer(INDEX_LAYER)?, MAX_INDEX_BYTES, "the index")
            .await?;
        let signature = self
            .blob(
                &image,
                layer(SIGNATURE_LAYER)?,
                MAX_SIDE_FILE_BYTES,
                "the index signature",
            )
            .await?;
        Ok(Some(FetchedIndex {
            bytes,
            signature: String::from_utf8_lossy(&signature).into_owned(),
            version,
        }))
    }

    /// Replace the index: one artifact holding the document and its
    /// signature, so they change together.
    pub async fn put_index(&self, bytes: &[u8], signature: &str) -> Result<(), PackageError> {
        let layers = [
            ImageLayer::new(bytes.to_vec(), INDEX_LAYER.to_string(), None),
            ImageLayer::new(
                signature.as_bytes().to_vec(),
                SIGNATURE_LAYER.to_string(),
                None,
            ),
        ];
        let config = Config::new(
            b"{}".to_vec(),
            "application/vnd.oci.empty.v1+json".to_string(),
            None,
        );
        self.client
            .push(&self.index_ref(), &layers, config, &self.auth, None)
            .await
            .map_err(self.failed("writing its index".to_string()))?;
        Ok(())
    }
}
