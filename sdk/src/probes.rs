//! Observations of targets. Every probe is recorded in the run's timeline.
//!
//! ```no_run
//! # use firedrill_sdk::*;
//! # use std::time::Duration;
//! # fn f() -> Result<(), Error> {
//! let health = probes::get("api-link", "/health")?;
//! let orders = HttpRequest::get("/api/orders")
//!     .header("authorization", "Bearer demo-token")
//!     .timeout(Duration::from_secs(1))
//!     .send("api-link")?;
//! host::info(&format!("{} in {:?}", orders.status, orders.latency()));
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::wit::firedrill::scenario::probes as raw;
use crate::{Error, HttpRequest, HttpResponse, to_nanos};

/// Send `request` to a target's address. A connection failure or time-out
/// is [`Error::Failed`]; any HTTP status is `Ok`.
pub fn http(target: &str, request: &HttpRequest) -> Result<HttpResponse, Error> {
    raw::http(target, request)
}

/// `GET path` on a target, with the default time-out (5 s).
pub fn get(target: &str, path: &str) -> Result<HttpResponse, Error> {
    http(target, &HttpRequest::get(path))
}

/// Open a TCP connection to a target's address; returns the time it took.
pub fn tcp_connect(target: &str) -> Result<Duration, Error> {
    raw::tcp_connect(target, None).map(Duration::from_nanos)
}

/// Like [`tcp_connect`], giving up after `timeout`.
pub fn tcp_connect_within(target: &str, timeout: Duration) -> Result<Duration, Error> {
    raw::tcp_connect(target, Some(to_nanos(timeout))).map(Duration::from_nanos)
}

/// Whether a process target's process is running (a paused one is).
pub fn process_alive(target: &str) -> Result<bool, Error> {
    raw::process_alive(target)
}

impl HttpRequest {
    /// A request with no headers, no body and the default time-out.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// A `GET` request for `path` (path and query).
    pub fn get(path: impl Into<String>) -> Self {
        Self::new("GET", path)
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Give up after `timeout` (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(to_nanos(timeout));
        self
    }

    /// Send it to `target`; the same as [`http`].
    pub fn send(&self, target: &str) -> Result<HttpResponse, Error> {
        http(target, self)
    }
}

impl HttpResponse {
    /// Time from sending the request to the end of the body.
    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency)
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header called `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
