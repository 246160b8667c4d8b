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
use crate::{AuthMode, Direction, Error, Fault, FaultOptions, RequestMatch, Signal, to_nanos};

/// Send `signal` to a process target's process. Not reverted (a signal
/// cannot be taken back); a supervised target is restarted by its policy.
pub fn kill(target: &str, signal: Signal) -> Result<(), Error> {
    raw::kill(target, signal)
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
    options: FaultOptions,
}

common_options!(HttpErrorBuilder);

impl HttpErrorBuilder {
    /// The response body (default: a short JSON error).
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Make the fault.
    pub fn apply(self) -> Result<Fault, Error> {
        raw::http_error(
            &self.target,
            self.status,
            self.body.as_deref(),
            &self.options,
        )
    }
}
