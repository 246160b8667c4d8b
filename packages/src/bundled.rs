//! The scenarios bundled in firedrill, as packages
//! `firedrill:NAME@VERSION`: listed beside the data dir's own registry,
//! trusted because they ship inside the binary, never installed (their
//! bytes are in it). Nobody may publish to, or be trusted for, the
//! `firedrill` namespace.

use crate::catalog::{Catalog, SyncState};
use crate::index::{Index, IndexEntry, IndexSigner};
use crate::{PackageError, PackageReq, digest};

/// The namespace of the bundled scenarios.
pub const NAMESPACE: &str = "firedrill";
/// The catalog's name for them.
pub const REGISTRY: &str = "firedrill (bundled)";
/// The key id runs record as their signer.
pub const SIGNER: &str = "bundled";

/// What identifies this build's bundled scenarios (hashed once per
/// process: they are in the binary).
fn fingerprint() -> &'static str {
    static FINGERPRINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FINGERPRINT.get_or_init(|| {
        let mut all = Vec::new();
        for (_, bytes) in firedrill::bundled::ALL {
            all.extend_from_slice(digest(bytes).as_bytes());
        }
        format!("{} {}", env!("CARGO_PKG_VERSION"), digest(&all))
    })
}

/// Whether the catalog lists this build's bundled scenarios already (if
/// so, [`sync`] has nothing to do and needs no engine).
pub fn current(catalog: &Catalog) -> Result<bool, PackageError> {
    Ok(catalog
        .state(REGISTRY)?
        .is_some_and(|s| s.version == fingerprint()))
}

/// Bring the catalog's list of the bundled scenarios up to date: their
/// `describe()`, run in `engine` once per firedrill build.
pub async fn sync(engine: &firedrill::Engine, catalog: &Catalog) -> Result<(), PackageError> {
    if current(catalog)? {
        return Ok(());
    }
    let mut index = Index::default();
    for (name, bytes) in firedrill::bundled::ALL {
        let failed = |e: firedrill::EngineError| {
            PackageError::Invalid(format!("the bundled scenario {name}: {e}"))
        };
        let scenario = engine
            .load(bytes, &format!("bundled:{name}"))
            .map_err(failed)?;
        let meta = engine
            .inspect(&scenario, &Default::default())
            .await
            .map_err(failed)?;
        index.upsert(IndexEntry {
            package: format!("{NAMESPACE}:{name}@{}", meta.version),
            digest: digest(bytes),
            size: bytes.len() as u64,
            description: meta.description.clone(),
            keywords: vec!["bundled".into()],
            needs: meta.needs.iter().map(|n| n.kind.to_string()).collect(),
            key_id: SIGNER.into(),
            published_at: 0,
            yanked: false,
            source: None,
            license: None,
        });
    }
    let state = SyncState {
        version: fingerprint().to_string(),
        stamp: 0,
        signer: IndexSigner {
            key_id: SIGNER.into(),
            trusted_for: Some(NAMESPACE.into()),
        },
        synced_at: 0,
        versions: index.packages.len(),
    };
    catalog.replace(REGISTRY, &index, &state)
}

/// The bundled scenario `req` names: its catalog entry and its bytes.
pub async fn resolve(
    engine: &firedrill::Engine,
    catalog: &Catalog,
    req: &PackageReq,
) -> Result<(IndexEntry, &'static [u8]), PackageError> {
    sync(engine, catalog).await?;
    let entry = catalog
        .versions(REGISTRY, NAMESPACE, &req.name)?
        .into_iter()
        .rev()
        .find(|e| e.version().is_some_and(|v| req.matches(&v)))
        .ok_or_else(|| {
            PackageError::NotFound(format!(
                "{req}: this firedrill bundles no such scenario (it bundles {}); `firedrill search --needs KIND` lists them",
                firedrill::bundled::names()
                    .iter()
                    .map(|n| format!("{NAMESPACE}:{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let bytes = firedrill::bundled::get(&req.name)
        .ok_or_else(|| PackageError::NotFound(format!("{req}: not bundled")))?;
    if digest(bytes) != entry.digest {
        return Err(PackageError::Invalid(format!(
            "{req}: the bundled component is not the one catalogued; remove the data dir's `catalog` directory (a cache) and try again"
        )));
    }
    Ok((entry, bytes))
}
