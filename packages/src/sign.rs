//! minisign signatures over a package's component. The trusted comment
//! (signed with the signature, and shown by `minisign -V`) binds the
//! package, the version and the digest:
//! `firedrill-package pkg=acme:checkout-latency version=1.2.0 digest=sha256:…`.

use crate::error::io;
use crate::{PackageError, PackageId, Trust, digest};
use minisign::{PublicKey, PublicKeyBox, SecretKey, SecretKeyBox, SignatureBox};
use std::io::Cursor;
use std::path::{Path, PathBuf};

/// The environment variable holding a secret key's password, for keys
/// generated with one (and for `key generate` to make one).
pub const PASSWORD_ENV: &str = "FIREDRILL_KEY_PASSWORD";

/// A key id as minisign prints it: the key number, 16 hex digits.
pub(crate) fn key_id(keynum: &[u8]) -> String {
    let mut le = [0u8; 8];
    le.copy_from_slice(&keynum[..8]);
    format!("{:016X}", u64::from_le_bytes(le))
}

/// The trusted comment a signature of `id` with `digest` must carry.
pub fn trusted_comment(id: &PackageId, digest: &str) -> String {
    format!(
        "firedrill-package pkg={}:{} version={} digest={digest}",
        id.namespace, id.name, id.version
    )
}

/// A signing key pair on disk, in minisign's formats (`minisign -G`
/// writes the same files; `minisign -W` the same unencrypted ones).
#[derive(Debug)]
pub struct KeyPair {
    /// `firedrill.pub`.
    pub public: PathBuf,
    /// `firedrill.key`.
    pub secret: PathBuf,
    /// The key id.
    pub key_id: String,
}

impl KeyPair {
    /// Generate a key pair into `dir` (`firedrill.pub`, `firedrill.key`,
    /// the secret one readable by its owner only). Encrypted with the
    /// password in `FIREDRILL_KEY_PASSWORD` if that is set. Refuses to
    /// overwrite a key.
    pub fn generate(dir: &Path) -> Result<KeyPair, PackageError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let public = dir.join("firedrill.pub");
        let secret = dir.join("firedrill.key");
        for p in [&public, &secret] {
            if p.exists() {
                return Err(PackageError::Invalid(format!(
                    "{} exists: a key is never overwritten; choose another --out directory",
                    p.display()
                )));
            }
        }
        let bad = |cause: minisign::PError| PackageError::BadFile {
            path: dir.display().to_string(),
            cause: cause.to_string(),
        };
        let pair = match std::env::var(PASSWORD_ENV) {
            Ok(pw) if !pw.is_empty() => minisign::KeyPair::generate_encrypted_keypair(Some(pw)),
            _ => minisign::KeyPair::generate_unencrypted_keypair(),
        }
        .map_err(bad)?;
        let key_id = key_id(pair.pk.keynum());
        let sk_box = pair
            .sk
            .to_box(Some(&format!("firedrill secret key {key_id}")))
            .map_err(bad)?;
        let pk_box = pair.pk.to_box().map_err(bad)?;
        write_private(&secret, sk_box.to_string().as_bytes())?;
        std::fs::write(&public, pk_box.to_string()).map_err(io(&public))?;
        Ok(KeyPair {
            public,
            secret,
            key_id,
        })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PackageError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))
}

/// Read a public key: a minisign `.pub` file, or the key's base64 line.
pub(crate) fn read_public(text_or_path: &str) -> Result<PublicKey, PackageError> {
    let path = Path::new(text_or_path);
    let (text, origin) = if path.exists() {
        (
            std::fs::read_to_string(path).map_err(io(path))?,
            path.display().to_string(),
        )
    } else {
        (text_or_path.to_string(), "the key given".to_string())
    };
    let bad = |cause: String| PackageError::BadFile {
        path: origin.clone(),
        cause: format!(
            "not a minisign public key ({cause}): give the .pub file `firedrill key generate` or `minisign -G` wrote, or its second line"
        ),
    };
    let trimmed = text.trim();
    if trimmed.lines().count() == 1 {
        return PublicKey::from_base64(trimmed).map_err(|e| bad(e.to_string()));
    }
    PublicKeyBox::from_string(&text)
        .and_then(PublicKeyBox::into_public_key)
        .map_err(|e| bad(e.to_string()))
}

/// Read a secret key file, unencrypted or with its password from
/// `FIREDRILL_KEY_PASSWORD` (never asked for: firedrill runs in CI).
pub(crate) fn read_secret(path: &Path) -> Result<SecretKey, PackageError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let bad = |cause: String| PackageError::BadFile {
        path: path.display().to_string(),
        cause,
    };
    let sk_box = SecretKeyBox::from_string(&text).map_err(|e| bad(e.to_string()))?;
    let sk = sk_box
        .clone()
        .into_unencrypted_secret_key()
        .or_else(|e| minisign_cli_unencrypted(&text).ok_or(e));
    match (sk, std::env::var(PASSWORD_ENV)) {
        (Ok(sk), _) => Ok(sk),
        (Err(_), Ok(pw)) => sk_box
            .into_secret_key(Some(pw))
            .map_err(|e| bad(format!("{e} (the password comes from {PASSWORD_ENV})"))),
        (Err(e), Err(_)) => Err(bad(format!(
            "{e}: an encrypted key needs its password in {PASSWORD_ENV}"
        ))),
    }
}

/// A key from `minisign -G -W` (minisign 0.11): unencrypted, with its
/// checksum left as zeros, which the minisign crate takes for corruption.
/// The minisign CLI signs with such keys; so does firedrill.
fn minisign_cli_unencrypted(text: &str) -> Option<SecretKey> {
    use base64::Engine;
    let line = text.lines().nth(1)?.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .ok()?;
    // sig_alg (2), kdf_alg (2), chk_alg (2), salt (32), opslimit (8),
    // memlimit (8), keynum (8), secret key (64), checksum (32).
    let unencrypted = bytes.len() == 158 && bytes[2..4] == [0, 0];
    if unencrypted && bytes[126..].iter().all(|b| *b == 0) {
        SecretKey::from_bytes(&bytes).ok()
    } else {
        None
    }
}

/// Sign `component` as `id` with the secret key at `secret`: the text of
/// a minisign signature file (`.minisig`).
pub fn sign(secret: &Path, id: &PackageId, component: &[u8]) -> Result<String, PackageError> {
    let sk = read_secret(secret)?;
    let comment = trusted_comment(id, &digest(component));
    let untrusted = format!("signature of {id} by firedrill");
    let sig = minisign::sign(
        None,
        &sk,
        Cursor::new(component),
        Some(&comment),
        Some(&untrusted),
    )
    .map_err(|e| PackageError::BadFile {
        path: secret.display().to_string(),
        cause: e.to_string(),
    })?;
    Ok(sig.into_string())
}

/// The id of the key a signature (a `.minisig` text) names, unverified.
pub fn signed_by(signature: &str) -> Option<String> {
    SignatureBox::from_string(signature)
        .ok()
        .map(|s| key_id(s.keynum()))
}

/// Who signed a verified package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signer {
    /// The key id.
    pub key_id: String,
    /// The namespace it is trusted for.
    pub namespace: String,
}

/// Verify that `signature` (a `.minisig` text) is a trusted key's
/// signature of exactly `component` as `id`.
pub fn verify(
    trust: &Trust,
    id: &PackageId,
    component: &[u8],
    signature: &str,
) -> Result<Signer, PackageError> {
    let package = id.to_string();
    let sig = SignatureBox::from_string(signature).map_err(|e| PackageError::BadFile {
        path: format!("the signature of {package}"),
        cause: e.to_string(),
    })?;
    let signed_by = key_id(sig.keynum());
    let Some(key) = trust.key(&id.namespace, &signed_by) else {
        return Err(PackageError::Untrusted {
            package,
            namespace: id.namespace.clone(),
            key_id: signed_by,
        });
    };
    let pk = key.public_key()?;
    if minisign::verify(&pk, &sig, Cursor::new(component), true, false, false).is_err() {
        return Err(PackageError::Tampered {
            package,
            key_id: signed_by,
        });
    }
    let signed = sig.trusted_comment().unwrap_or_default();
    if signed != trusted_comment(id, &digest(component)) {
        return Err(PackageError::Replayed { package, signed });
    }
    Ok(Signer {
        key_id: signed_by,
        namespace: id.namespace.clone(),
    })
}
