use std::path::PathBuf;

/// Why a package operation was refused. Each names the package, the place
/// and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// An identity or requirement that does not parse.
    #[error("{0}")]
    BadId(String),
    /// A file that cannot be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A key, signature or trust file that does not parse.
    #[error("{path}: {cause}")]
    BadFile {
        /// The file (or what stood for it).
        path: String,
        /// Why.
        cause: String,
    },
    /// No trusted key for the namespace signed it.
    #[error(
        "{package}: signed by key {key_id}, which is not trusted for namespace `{namespace}`; if you trust its publisher: `firedrill trust add <their .pub file> --namespace {namespace}`"
    )]
    Untrusted {
        /// The package.
        package: String,
        /// Its namespace.
        namespace: String,
        /// The signing key's id.
        key_id: String,
    },
    /// The signature does not match the bytes.
    #[error(
        "{package}: the signature does not verify with trusted key {key_id}: the component was changed after it was signed (or the signature was); do not install it, and tell its publisher"
    )]
    Tampered {
        /// The package.
        package: String,
        /// The key.
        key_id: String,
    },
    /// A valid signature made for something else.
    #[error(
        "{package}: the signature is valid but was made for `{signed}`, not for this package, version and digest; a signature cannot be reused: do not install it"
    )]
    Replayed {
        /// The package.
        package: String,
        /// What the signature's trusted comment names.
        signed: String,
    },
    /// The component's bytes are not the digest the registry lists.
    #[error(
        "{package}: the component's digest is {actual}, but {registry} lists {expected}; the registry's copy is damaged or was changed"
    )]
    DigestMismatch {
        /// The package.
        package: String,
        /// The registry.
        registry: String,
        /// What it lists.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// No such package or version.
    #[error("{0}")]
    NotFound(String),
    /// A version that exists already.
    #[error(
        "{package} is already published in {registry}: versions are immutable; publish a new version (bump it in describe())"
    )]
    Exists {
        /// The package.
        package: String,
        /// The registry.
        registry: String,
    },
    /// A component too large to be a scenario.
    #[error(
        "{what} is {size} bytes, over the {limit}-byte cap for a scenario package: it is not a scenario this registry should serve; ask its publisher, or use another registry"
    )]
    TooLarge {
        /// What.
        what: String,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// Something else wrong with the package.
    #[error("{0}")]
    Invalid(String),
    /// A registry that did not answer, or answered with an error.
    #[error("{0}")]
    Registry(String),
}

impl PackageError {
    /// Whether a registry failed to answer (which may pass), rather than
    /// something being wrong with what was asked.
    pub fn is_registry(&self) -> bool {
        matches!(self, PackageError::Registry(_))
    }
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PackageError {
    let path = path.into();
    move |cause| PackageError::Io { path, cause }
}
