//! Signed scenario packages, on top of the engine library.
//!
//! A package is a scenario component with an identity,
//! `namespace:name@version` ([`PackageId`]), whose name and version are
//! what its `describe()` says; the namespace is its publisher's. Each
//! published version carries a minisign (Ed25519) signature whose trusted
//! comment binds the package, the version and the component's digest
//! ([`sign`]), so a signature cannot be moved onto another package or
//! version. Which keys may sign which namespace is the operator's
//! [`Trust`]: deny by default.
//!
//! ```text
//! publish: component ─► describe() ─► sign ─► registry (dir/<ns>/<name>/<version>.*)
//! install: registry ─► digest ─► signature vs. Trust ─► describe() ─► review ─► Installed
//! ```

#![warn(missing_docs, missing_debug_implementations)]

pub mod bundled;
pub mod catalog;
pub mod config;
mod error;
mod id;
pub mod index;
pub mod oci;
pub mod registry;
mod sign;
pub mod store;
mod trust;

pub use catalog::Catalog;
pub use config::RegistryConfig;
pub use error::PackageError;
pub use id::{PackageId, PackageReq, check_label};
pub use index::{Index, IndexEntry};
pub use registry::{DirRegistry, PackageMeta, Registry, Synced};
pub use sign::{KeyPair, PASSWORD_ENV, Signer, sign, signed_by, trusted_comment, verify};
pub use store::{Installed, Store};
pub use trust::{Trust, TrustedKey};

/// `sha256:<hex>` of bytes, as OCI writes digests.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
