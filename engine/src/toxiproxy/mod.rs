//! The Toxiproxy 2.x data model, shared by the `toxiproxy` target (a
//! client of a remote Toxiproxy or `firedrill proxy serve`) and the
//! Toxiproxy-compatible API in `firedrill-server`: [`toxic`] maps toxics
//! to proxy [`Effect`](crate::drivers::proxy::Effect)s and back;
//! [`ApiError`] is an error in Toxiproxy's terms.

pub mod toxic;

/// An error as Toxiproxy reports it: `{"error": …, "status": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Message, Toxiproxy's wording where it has one.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }
    /// 404 for a proxy.
    pub fn proxy_not_found() -> ApiError {
        ApiError::new(404, "proxy not found")
    }
    /// 404 for a toxic.
    pub fn toxic_not_found() -> ApiError {
        ApiError::new(404, "toxic not found")
    }
}
