//! Fault primitives.
//!
//! Every fault is checked against the run's policy (the scenario must have
//! declared it as a [`Need`](crate::Need) and the operator must have granted
//! it), written to the engine's ledger before it takes effect, and reverted
//! by the engine when the run ends. Lasting faults return a [`Fault`] handle;
//! call [`Fault::revert`] to undo one earlier. Dropping the handle does not
//! revert it.
//!
//! ```no_run
//! # use firedrill_sdk::*;
//! # use std::time::Duration;
//! # fn f() -> Result<(), Error> {
//! let fault = faults::delay("db-link", Duration::from_millis(200))
//!     .jitter(Duration::from_millis(50))
//!     .direction(Direction::Both)
//!     .for_duration(Duration::from_secs(30))
//!     .apply()?;
//! // ... probe ...
//! fault.revert()?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::wit::firedrill::scenario::faults as raw;
use crate::{
    AbortPoint, AuthMode, Direction, Error, Fault, FaultOptions, LinkFault, RequestMatch,
    ResponsePatch, Signal, Slicer, StressLoad, to_nanos,
};

/// Send `signal` to a process target's process. Not reverted (a signal
/// cannot be taken back); a supervised target is restarted by its policy.
pub fn kill(target: &str, signal: Signal) -> Result<(), Error> {
    raw::kill(target, signal)
}

/// Restart a process target firedrill spawned and supervises (SIGTERM,
/// SIGKILL after 2 s, started again at once whatever its restart policy).
/// Returns once the new process runs. Not reverted.
pub fn restart(target: &str) -> Result<(), Error> {
    raw::restart(target)
}

/// Start building a `delay` fault: add `latency` to a proxy target's
/// traffic. By default downstream (responses), without jitter, lasting
/// until reverted, on every connection.
pub fn delay(target: impl Into<String>, latency: Duration) -> DelayBuilder {
    DelayBuilder {
        target: target.into(),
        latency,
        jitter: Duration::ZERO,
        direction: Direction::Downstream,
        options: no_options(),
    }
}

/// Start building a `pause` fault: stop a process target (SIGSTOP) until
/// reverted (SIGCONT).
pub fn pause(target: impl Into<String>) -> PauseBuilder {
    PauseBuilder {
        target: target.into(),
        options: no_options(),
    }
}

/// Start building a `fail-auth` fault on an HTTP proxy target.
pub fn fail_auth(target: impl Into<String>, mode: AuthMode) -> FailAuthBuilder {
    FailAuthBuilder {
        target: target.into(),
        mode,
        status: None,
        options: no_options(),
    }
}

/// Start building an `http-error` fault: answer requests on an HTTP proxy
/// target with `status` (400..=599) without reaching upstream.
pub fn http_error(target: impl Into<String>, status: u16) -> HttpErrorBuilder {
    HttpErrorBuilder {
        target: target.into(),
        status,
        body: None,
        headers: Vec::new(),
        options: no_options(),
    }
}

fn no_options() -> FaultOptions {
    FaultOptions {
        duration: None,
        probability: None,
        request_match: None,
    }
}

/// The options every lasting fault takes.
macro_rules! common_options {
    ($builder:ident) => {
        impl $builder {
            /// Revert by itself after `d` (capped by the policy's maximum).
            /// Without it the fault lasts until reverted or the run ends.
            pub fn for_duration(mut self, d: Duration) -> Self {
                self.options.duration = Some(to_nanos(d));
                self
            }

            /// Apply to each connection, request or chunk with chance `p`
            /// (0.0 to 1.0), drawn from the run's seeded generator.
            pub fn probability(mut self, p: f64) -> Self {
                self.options.probability = Some(p);
                self
            }

            /// On HTTP proxy targets, apply only to requests that match.
            pub fn matching(mut self, request_match: RequestMatch) -> Self {
                self.options.request_match = Some(request_match);
                self
            }
        }
    };
}

/// Builds a `delay` fault; see [`delay`].
#[derive(Clone, Debug)]
#[must_use = "a fault builder does nothing until `.apply()`"]
pub struct DelayBuilder {
    target: String,
    latency: Duration,
    jitter: Duration,
    direction: Direction,
    options: FaultOptions,
}

common_options!(DelayBuilder);

impl DelayBuilder {
    /// Add a uniformly drawn extra latency in `[0, jitter]`.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Which way the traffic to delay flows (default downstream).
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// Make the fault.
    pub fn apply(self) -> Result<Fault, Error> {
        raw::delay(
            &self.target,
            to_nanos(self.latency),
            to_nanos(self.jitter),
            self.direction,
            &self.options,
        )
    }
}

/// Builds a `pause` fault; see [`pause`].
#[derive(Clone, Debug)]
#[must_use = "a fault builder does nothing until `.apply()`"]
pub struct PauseBuilder {
    target: String,
    options: FaultOptions,
}

common_options!(PauseBuilder);

impl PauseBuilder {
    /// Make the fault.
    pub fn apply(self) -> Result<Fault, Error> {
        raw::pause(&self.target, &self.options)
    }
}

/// Builds a `fail-auth` fault; see [`fail_auth`].
#[derive(Clone, Debug)]
#[must_use = "a fault builder does nothing until `.apply()`"]
pub struct FailAuthBuilder {
    target: String,
    mode: AuthMode,
    status: Option<u16>,
    options: FaultOptions,
}

common_options!(FailAuthBuilder);

impl FailAuthBuilder {
    /// The status to answer with in `reject` mode: 401 (default) or 403.
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Make the fault.
    pub fn apply(self) -> Result<Fault, Error> {
        raw::fail_auth(&self.target, self.mode, self.status, &self.options)
    }
}

/// Builds an `http-error` fault; see [`http_error`].
#[derive(Clone, Debug)]
#[must_use = "a fault builder does nothing until `.apply()`"]
pub struct HttpErrorBuilder {
    target: String,
    status: u16,
    body: Option<String>,
    headers: Vec<(String, String)>,
    options: FaultOptions,
}

common_options!(HttpErrorBuilder);

impl HttpErrorBuilder {
    /// The response body (default: a short JSON error).
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Add a header to the answer, e.g. `("retry-after", "30")`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Make the fault.
    pub fn apply(self) -> Result<Fault, Error> {
        raw::http_error(
            &self.target,
            self.status,
            self.body.as_deref(),
            &self.headers,
            &self.options,
        )
    }
}

/// Start building a fault on a proxy target's connections; see
/// [`LinkFault`] for the kinds. By default downstream, lasting until
/// reverted, on every connection. The shorthands below build the common
/// ones.
///
/// ```no_run
/// # use firedrill_sdk::*;
/// # use std::time::Duration;
/// # fn f() -> Result<(), Error> {
/// // 64 KB/s toward the client for 30 s, on a third of the connections.
/// faults::bandwidth("db-link", 64 * 1024)
///     .probability(0.33)
///     .for_duration(Duration::from_secs(30))
///     .apply()?;
/// // The database drops off the network; clients' bytes wait.
/// faults::blackhole("db-link").direction(Direction::Both).apply()?;
/// # Ok(()) }
/// ```
pub fn link(target: impl Into<String>, fault: LinkFault) -> LinkBuilder {
    LinkBuilder {
        target: target.into(),
        fault,
        direction: Direction::Downstream,
        options: no_options(),
    }
}

/// Hold new connections `latency` before their first byte.
pub fn connect_delay(target: impl Into<String>, latency: Duration) -> LinkBuilder {
    link(target, LinkFault::ConnectDelay((to_nanos(latency), 0)))
}

/// Limit throughput to `bytes_per_second`.
pub fn bandwidth(target: impl Into<String>, bytes_per_second: u64) -> LinkBuilder {
    link(target, LinkFault::Bandwidth(bytes_per_second))
}

/// Forward nothing until reverted.
pub fn blackhole(target: impl Into<String>) -> LinkBuilder {
    link(target, LinkFault::Blackhole)
}

/// Refuse new connections (the listener is down).
pub fn refuse(target: impl Into<String>) -> LinkBuilder {
    link(target, LinkFault::Refuse)
}

/// Reset connections `after` they opened (or the fault began).
pub fn reset_peer(target: impl Into<String>, after: Duration) -> LinkBuilder {
    link(target, LinkFault::ResetPeer(to_nanos(after)))
}

/// Stop data, close connections `after` (zero: never close).
pub fn timeout(target: impl Into<String>, after: Duration) -> LinkBuilder {
    link(target, LinkFault::Timeout(to_nanos(after)))
}

/// Hold back each close by `delay`.
pub fn slow_close(target: impl Into<String>, delay: Duration) -> LinkBuilder {
    link(target, LinkFault::SlowClose(to_nanos(delay)))
}

/// Cut data into pieces of `average_size` ± `size_variation` bytes, `delay`
/// apart.
pub fn slicer(
    target: impl Into<String>,
    average_size: u32,
    size_variation: u32,
    delay: Duration,
) -> LinkBuilder {
    link(
        target,
        LinkFault::Slicer(Slicer {
            average_size,
            size_variation,
            delay: to_nanos(delay),
        }),
    )
}

/// Close connections after `bytes`.
pub fn limit_data(target: impl Into<String>, bytes: u64) -> LinkBuilder {
    link(target, LinkFault::LimitData(bytes))
}

/// Builds a link fault; see [`link`].
#[derive(Clone, Debug)]
#[must_use = "a fault builder does nothing until `.apply()`"]
pub struct LinkBuilder {
    target: String,
    fault: LinkFault,
    direction: Direction,
    options: FaultOptions,
}

common_options!(LinkBuilder);

impl LinkBuilder {
    /// Which way the affected traffic flows (default downstream).
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// Make the fault.
    pub fn apply(self) -> Result<Fault, Error> {
        raw::link(&self.target, self.fault, self.direction, &self.options)
    }
}

/// Start building an `http-abort` fault: break matching exchanges on an
/// HTTP proxy target at `at` (before the request goes upstream, or halfway
/// through the response body). The client's connection closes; call
/// [`HttpAbortBuilder::reset`] to reset it (RST) instead.
pub fn http_abort(target: impl Into<String>, at: AbortPoint) -> HttpAbortBuilder {
    HttpAbortBuilder {
        target: target.into(),
        at,
        reset: false,
        options: no_options(),
    }
}

/// Builds an `http-abort` fault; see [`http_abort`].
#[derive(Clone, Debug)]
#[must_use = "a fault builder does nothing until `.apply()`"]
pub struct HttpAbortBuilder {
    target: String,
    at: AbortPoint,
    reset: bool,
    options: FaultOptions,
}

common_options!(HttpAbortBuilder);

impl HttpAbortBuilder {
    /// Reset the connection (TCP RST) instead of closing it.
    pub fn reset(mut self) -> Self {
        self.reset = true;
        self
    }

    /// Make the fault.
    pub fn apply(self) -> Result<Fault, Error> {
        raw::http_abort(&self.target, self.at, self.reset, &self.options)
    }
}

/// Start building an `http-modify` fault: change matching responses on an
/// HTTP proxy target. The request still reaches upstream.
///
/// ```no_run
/// # use firedrill_sdk::*;
/// # fn f() -> Result<(), Error> {
/// // Upstream answers, but clients see a stale cache and a 200 with no body.
/// faults::http_modify("api-link")
///     .header("cache-control", "max-age=86400")
///     .body("")
///     .matching(RequestMatch { method: Some("GET".into()), path: Some("/api/*".into()), header: None })
///     .apply()?;
/// # Ok(()) }
/// ```
pub fn http_modify(target: impl Into<String>) -> HttpModifyBuilder {
    HttpModifyBuilder {
        target: target.into(),
        patch: ResponsePatch {
            status: None,
            set_headers: Vec::new(),
            remove_headers: Vec::new(),
            body: None,
        },
        options: no_options(),
    }
}

/// Builds an `http-modify` fault; see [`http_modify`].
#[derive(Clone, Debug)]
#[must_use = "a fault builder does nothing until `.apply()`"]
pub struct HttpModifyBuilder {
    target: String,
    patch: ResponsePatch,
    options: FaultOptions,
}

common_options!(HttpModifyBuilder);

impl HttpModifyBuilder {
    /// Replace the status.
    pub fn status(mut self, status: u16) -> Self {
        self.patch.status = Some(status);
        self
    }

    /// Set a header, replacing any of the same name.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.patch.set_headers.push((name.into(), value.into()));
        self
    }

    /// Remove a header.
    pub fn remove_header(mut self, name: impl Into<String>) -> Self {
        self.patch.remove_headers.push(name.into());
        self
    }

    /// Replace the body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.patch.body = Some(body.into());
        self
    }

    /// Make the fault.
    pub fn apply(self) -> Result<Fault, Error> {
        raw::http_modify(&self.target, &self.patch, &self.options)
    }
}

/// Start building a stress fault on a host target: keep `cores` CPUs busy
/// `percent` (1..=100) of the time each, from a child process the engine
/// owns, until reverted.
pub fn cpu_stress(target: impl Into<String>, cores: u32, percent: u8) -> StressBuilder {
    stress(target, StressLoad::Cpu((cores, percent)))
}

/// Hold `bytes` of memory on a host target until reverted.
pub fn memory_stress(target: impl Into<String>, bytes: u64) -> StressBuilder {
    stress(target, StressLoad::Memory(bytes))
}

/// Write a file of `bytes` under a host target's granted `path`, deleted on
/// revert.
pub fn disk_fill(target: impl Into<String>, bytes: u64) -> StressBuilder {
    stress(target, StressLoad::Disk(bytes))
}

fn stress(target: impl Into<String>, load: StressLoad) -> StressBuilder {
    StressBuilder {
        target: target.into(),
        load,
        options: no_options(),
    }
}

/// Builds a stress fault; see [`cpu_stress`], [`memory_stress`],
/// [`disk_fill`].
#[derive(Clone, Debug)]
#[must_use = "a fault builder does nothing until `.apply()`"]
pub struct StressBuilder {
    target: String,
    load: StressLoad,
    options: FaultOptions,
}

common_options!(StressBuilder);

impl StressBuilder {
    /// Make the fault.
    pub fn apply(self) -> Result<Fault, Error> {
        raw::stress(&self.target, self.load, &self.options)
    }
}
