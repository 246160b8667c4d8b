//! Who is calling: an API token (`Authorization: Bearer fdt_…`) or a
//! browser session (the `firedrill_session` cookie, `HttpOnly;
//! SameSite=Strict`, whose state-changing requests must also carry the
//! session's CSRF token). Tokens and session ids are 256-bit random
//! secrets stored only as SHA-256; passwords as argon2id.

use super::model::{Session, Token, User};
use super::store::{PlatformStore, StoreError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use sha2::Digest;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The prefix of API tokens (so secret scanners can find leaked ones).
pub const TOKEN_PREFIX: &str = "fdt_";
/// The session cookie.
pub const SESSION_COOKIE: &str = "firedrill_session";
/// The header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// A new random secret: 32 bytes, URL-safe base64, after `prefix`.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The SHA-256 of a secret, hex: what the store keeps.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// An argon2id hash of a password (PHC string, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// How a caller authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// An API token (its public id).
    Token(String),
    /// A browser session, with its CSRF token and id hash.
    Session {
        /// The CSRF token its state-changing requests must carry.
        csrf: String,
        /// The session id's hash.
        hash: String,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user: User,
    /// How.
    pub via: Via,
}

/// Why a caller is not authenticated.
#[derive(Debug)]
pub enum AuthError {
    /// No credentials.
    Missing,
    /// Credentials that are not (or no longer) valid.
    Invalid(&'static str),
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> AuthError {
        AuthError::Store(e)
    }
}

/// The caller of a request with these headers, if any.
pub fn authenticate(
    store: &PlatformStore,
    headers: &http::HeaderMap,
    now_ms: u64,
) -> Result<Principal, AuthError> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AuthError::Invalid("Authorization must be `Bearer fdt_…`"))?
            .trim();
        let record: Token = store
            .token(&hash_secret(token))?
            .ok_or(AuthError::Invalid("unknown token"))?;
        if record.revoked {
            return Err(AuthError::Invalid("the token was revoked"));
        }
        if record.expires_at.is_some_and(|e| e <= now_ms) {
            return Err(AuthError::Invalid("the token has expired"));
        }
        let user = store
            .user(&record.user)?
            .ok_or(AuthError::Invalid("the token's user was removed"))?;
        return Ok(Principal {
            user,
            via: Via::Token(record.id),
        });
    }
    let Some(id) = session_cookie(headers) else {
        return Err(AuthError::Missing);
    };
    let hash = hash_secret(&id);
    let session: Session = store
        .session(&hash)?
        .ok_or(AuthError::Invalid("the session ended; log in again"))?;
    if session.expires_at <= now_ms {
        store.remove_session(&hash)?;
        return Err(AuthError::Invalid("the session expired; log in again"));
    }
    let user = store
        .user(&session.user)?
        .ok_or(AuthError::Invalid("the session's user was removed"))?;
    Ok(Principal {
        user,
        via: Via::Session {
            csrf: session.csrf,
            hash,
        },
    })
}

/// The session cookie's value, if sent.
pub fn session_cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

/// The `Set-Cookie` value of a new session (or, with `None`, of its end).
pub fn session_set_cookie(id: Option<&str>) -> String {
    let mut c = cookie::Cookie::new(SESSION_COOKIE, id.unwrap_or("").to_string());
    c.set_http_only(true);
    c.set_same_site(cookie::SameSite::Strict);
    c.set_path("/");
    match id {
        Some(_) => c.set_max_age(cookie::time::Duration::seconds(SESSION_TTL.as_secs() as i64)),
        None => c.set_max_age(cookie::time::Duration::ZERO),
    }
    c.to_string()
}

/// Failed logins per (user, address): after [`LoginLimiter::MAX`] within
/// [`LoginLimiter::WINDOW`], further attempts are refused until the window
/// passes, right password or not.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<(String, IpAddr), Vec<Instant>>>,
}

impl LoginLimiter {
    /// Failures allowed per window.
    pub const MAX: usize = 5;
    /// The window.
    pub const WINDOW: Duration = Duration::from_secs(300);

    /// Whether `user` from `ip` may try now; if not, for how long not.
    pub fn check(&self, user: &str, ip: IpAddr) -> Result<(), Duration> {
        let mut map = self.failures.lock().unwrap();
        let now = Instant::now();
        let Some(list) = map.get_mut(&(user.to_string(), ip)) else {
            return Ok(());
        };
        list.retain(|t| now.duration_since(*t) < Self::WINDOW);
        if list.len() >= Self::MAX {
            return Err(Self::WINDOW.saturating_sub(now.duration_since(list[0])));
        }
        Ok(())
    }

    /// Count a failure.
    pub fn failed(&self, user: &str, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap();
        if map.len() > 100_000 {
            map.clear(); // bounded memory under a spray of names
        }
        map.entry((user.to_string(), ip))
            .or_default()
            .push(Instant::now());
    }

    /// Forget failures after a success.
    pub fn succeeded(&self, user: &str, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap()
            .remove(&(user.to_string(), ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_a_salt() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password(&a, "correct horse"));
        assert!(!verify_password(&a, "correct horse "));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn secrets_are_random_and_stored_as_hashes() {
        let a = new_secret(TOKEN_PREFIX);
        assert!(a.starts_with("fdt_") && a.len() == 4 + 43, "{a}");
        assert_ne!(a, new_secret(TOKEN_PREFIX));
        assert_eq!(hash_secret(&a).len(), 64);
        assert!(!hash_secret(&a).contains(&a[4..]));
    }

    #[test]
    fn the_limiter_refuses_after_five_failures() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..LoginLimiter::MAX {
            assert!(l.check("u", ip).is_ok());
            l.failed("u", ip);
        }
        assert!(l.check("u", ip).is_err());
        assert!(l.check("v", ip).is_ok());
    }
}
