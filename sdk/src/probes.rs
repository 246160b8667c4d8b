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

/// A line protocol's request and answer: send `send`, wait for `expect` in
/// the answer (`b"PING\r\n"` and `b"+PONG"` for a key-value store); the
/// time from connecting to the answer. An answer without `expect`, a
/// closed connection or the time-out (5 s) is [`Error::Failed`].
pub fn tcp_exchange(target: &str, send: &[u8], expect: &[u8]) -> Result<Duration, Error> {
    raw::tcp_exchange(target, send, expect, None).map(Duration::from_nanos)
}

/// A health probe that the drill chooses, not the scenario's code, so one
/// scenario works on any service: an HTTP `GET` (`probe = "http"`, `path`),
/// a TCP connect (`probe = "tcp"`), or a line protocol's request and answer
/// (`probe = "exchange"`, `send`, `expect`: a key-value store's `PING` and
/// `+PONG`, a database's or a broker's own handshake).
///
/// ```no_run
/// # use firedrill_sdk::*;
/// let m = probes::Check::declare(Metadata::new("outage", "1.0.0", "…"));
/// # fn run() -> Result<(), Error> {
/// let check = probes::Check::from_params()?;
/// match check.run("db")? {
///     Ok(latency) => host::info(&format!("healthy in {latency:?}")),
///     Err(why) => host::warn(&format!("unhealthy: {why}")),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// How to probe.
    pub kind: CheckKind,
    /// How long one probe may take (`probe_timeout`, default 2 s).
    pub timeout: Duration,
}

/// How a [`Check`] probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// `GET path`; a status below 400 is healthy.
    Http {
        /// The path, e.g. `/health`.
        path: String,
    },
    /// A TCP connection opens.
    Tcp,
    /// `send`, then `expect` in the answer.
    Exchange {
        /// What to send.
        send: Vec<u8>,
        /// What the answer must contain.
        expect: Vec<u8>,
    },
}

impl Check {
    /// Add the parameters that choose the probe to a scenario's metadata.
    pub fn declare(m: crate::Metadata) -> crate::Metadata {
        m.param(
            "probe",
            crate::ParamType::String,
            Some("http"),
            "How to tell the service is healthy: http (GET `path`), tcp (connect) or exchange (`send`, then `expect` in the answer)",
        )
        .param("path", crate::ParamType::String, Some("/health"), "probe = http: the path to GET")
        .param("send", crate::ParamType::String, Some(""), "probe = exchange: what to send, e.g. \"PING\\r\\n\"")
        .param("expect", crate::ParamType::String, Some(""), "probe = exchange: what the answer must contain, e.g. \"+PONG\"")
        .param("probe_timeout", crate::ParamType::Duration, Some("2s"), "How long one probe may take")
    }

    /// The target the run's `probe_target` parameter names, or `default`
    /// when it is empty.
    pub fn target_or(default: &str) -> String {
        match crate::host::param_or("probe_target", "") {
            t if t.is_empty() => default.to_string(),
            t => t,
        }
    }

    /// The probe the run's parameters choose.
    pub fn from_params() -> Result<Check, Error> {
        let kind = match crate::host::param_or("probe", "http").as_str() {
            "http" => CheckKind::Http {
                path: crate::host::param_or("path", "/health"),
            },
            "tcp" => CheckKind::Tcp,
            "exchange" => CheckKind::Exchange {
                send: crate::host::param_or("send", "").into_bytes(),
                expect: crate::host::param_or("expect", "").into_bytes(),
            },
            other => {
                return Err(Error::InvalidArgument(format!(
                    "parameter `probe` is `{other}`; expected http, tcp or exchange"
                )));
            }
        };
        let timeout = crate::host::param_duration("probe_timeout", Duration::from_secs(2))?;
        Ok(Check { kind, timeout })
    }

    /// Probe `target` once: `Ok(Ok(latency))` when healthy, `Ok(Err(why))`
    /// when not (no connection, a 4xx or 5xx, the wrong answer, too slow);
    /// `Err` only for what ends the scenario (halted, denied, unknown
    /// target).
    pub fn run(&self, target: &str) -> Result<Result<Duration, String>, Error> {
        let t = Some(to_nanos(self.timeout));
        let outcome = match &self.kind {
            CheckKind::Http { path } => http(
                target,
                &HttpRequest::get(path.clone()).timeout(self.timeout),
            )
            .map(|r| {
                if r.status < 400 {
                    Ok(r.latency())
                } else {
                    Err(format!("status {}", r.status))
                }
            }),
            CheckKind::Tcp => raw::tcp_connect(target, t).map(|n| Ok(Duration::from_nanos(n))),
            CheckKind::Exchange { send, expect } => {
                raw::tcp_exchange(target, send, expect, t).map(|n| Ok(Duration::from_nanos(n)))
            }
        };
        match outcome {
            Err(Error::Failed(why)) => Ok(Err(why)),
            other => other,
        }
    }
}

/// What [`Check::watch`] saw: how many probes, how many unhealthy, the
/// slowest healthy one, and the first reason one was unhealthy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Watched {
    /// Probes made.
    pub samples: u32,
    /// Probes that were unhealthy.
    pub failures: u32,
    /// The slowest healthy probe.
    pub max_latency: Duration,
    /// Why the first unhealthy probe was.
    pub first_failure: Option<String>,
}

impl Watched {
    /// Unhealthy probes, in percent of all.
    pub fn failure_percent(&self) -> f64 {
        f64::from(self.failures) * 100.0 / f64::from(self.samples.max(1))
    }
}

impl Check {
    /// Probe `target` every `interval` for `duration`, as a fault holds.
    pub fn watch(
        &self,
        target: &str,
        duration: Duration,
        interval: Duration,
    ) -> Result<Watched, Error> {
        let started = crate::host::now();
        let mut w = Watched::default();
        while crate::host::now() - started < duration {
            w.samples += 1;
            match self.run(target)? {
                Ok(latency) => w.max_latency = w.max_latency.max(latency),
                Err(why) => {
                    w.failures += 1;
                    if w.first_failure.is_none() {
                        crate::host::event("unhealthy", &why);
                        w.first_failure = Some(why);
                    }
                }
            }
            crate::host::sleep(interval)?;
        }
        Ok(w)
    }

    /// Probe `target` every 100 ms until it is healthy: how long that took,
    /// or `None` if it was not within `within`.
    pub fn until_healthy(&self, target: &str, within: Duration) -> Result<Option<Duration>, Error> {
        let started = crate::host::now();
        loop {
            match self.run(target)? {
                Ok(_) => return Ok(Some(crate::host::now() - started)),
                Err(_) if crate::host::now() - started >= within => return Ok(None),
                Err(_) => crate::host::sleep(Duration::from_millis(100))?,
            }
        }
    }
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

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// `Authorization: Basic <base64 of user:password>` (RFC 7617).
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.header("authorization", format!("Basic {credentials}"))
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
