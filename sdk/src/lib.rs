//! Write [firedrill] chaos scenarios as WebAssembly components.
//!
//! A scenario is a crate of type `cdylib`, built for `wasm32-wasip2`, that
//! implements [`Scenario`] for a type and hands it to [`export_scenario!`].
//! It describes itself ([`Metadata`]: parameters and the faults it needs),
//! then runs: it makes faults with [`faults`], observes targets with
//! [`probes`], uses the host's clock, log, parameters and timeline through
//! [`host`], and returns an [`Outcome`]. Every fault is reverted by the
//! engine when the run ends, whatever way it ends.
//!
//! ```no_run
//! use firedrill_sdk::*;
//! use std::time::Duration;
//!
//! /// Slows `link` down by `latency` and checks `/health` still answers.
//! struct SlowLink;
//!
//! impl Scenario for SlowLink {
//!     fn describe() -> Metadata {
//!         let link = host::param_or("link", "api-link");
//!         Metadata::new("slow-link", "0.1.0", "Adds latency to a link and probes through it.")
//!             .param("link", ParamType::String, Some("api-link"), "The proxy to slow down")
//!             .param("latency", ParamType::Duration, Some("200ms"), "Latency to add")
//!             .need(FaultKind::Delay, link)
//!     }
//!
//!     fn run() -> Result<Outcome, Error> {
//!         let link = host::param_or("link", "api-link");
//!         let latency = host::param_duration("latency", Duration::from_millis(200))?;
//!         let fault = faults::delay(&link, latency).apply()?;
//!         let response = probes::get(&link, "/health")?;
//!         fault.revert()?;
//!         let outcome = if response.is_success() {
//!             Outcome::pass("healthy under latency")
//!         } else {
//!             Outcome::fail(format!("status {} under latency", response.status))
//!         };
//!         Ok(outcome.measure("latency", response.latency().as_secs_f64() * 1e3, "ms"))
//!     }
//! }
//!
//! export_scenario!(SlowLink);
//! ```
//!
//! Times are [`std::time::Duration`]s here; the WIT contract carries them as
//! `u64` nanoseconds (longer durations saturate).
//!
//! [firedrill]: https://example.invalid/firedrill

#![warn(missing_docs)]

pub mod faults;
pub mod host;
pub mod probes;
mod types;

/// The bindings generated from `wit/scenario.wit`: an implementation detail
/// of [`export_scenario!`]. Use the re-exports at the crate root instead.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, unreachable_pub, clippy::all)]
pub mod wit {
    wit_bindgen::generate!({
        world: "scenario",
        path: "../wit",
        pub_export_macro: true,
        default_bindings_module: "firedrill_sdk::wit",
        // The generated `error` prints as its `Debug`; use our own type,
        // which has the same cases and a readable `Display`.
        with: { "firedrill:scenario/types@0.1.1/error": crate::Error },
        additional_derives: [PartialEq],
    });
}

pub use types::Error;
pub use wit::firedrill::scenario::faults::{
    AbortPoint, AuthMode, Fault, LinkFault, ResponsePatch, Signal, Slicer, StressLoad,
};
pub use wit::firedrill::scenario::host::Level;
pub use wit::firedrill::scenario::probes::{HttpRequest, HttpResponse};
pub use wit::firedrill::scenario::types::{Direction, FaultKind, FaultOptions, RequestMatch};
pub use wit::{
    Finding, Measurement, Metadata, Need, Outcome, ParamSpec, ParamType, Severity, Verdict,
};

/// A chaos scenario: what it is, and what it does.
///
/// Implement it for a type and export that type with [`export_scenario!`].
pub trait Scenario {
    /// Describe the scenario: name, version, parameters and the faults it
    /// needs. Host services such as [`host::param`] are available here;
    /// faults and probes are not.
    fn describe() -> Metadata;

    /// Run the scenario. Return [`Error::Halted`] promptly when a host call
    /// reports it.
    fn run() -> Result<Outcome, Error>;
}

/// Export a [`Scenario`] implementation as the component's `describe` and
/// `run`. Use it once per crate, at the top level:
///
/// ```no_run
/// use firedrill_sdk::*;
///
/// struct Noop;
///
/// impl Scenario for Noop {
///     fn describe() -> Metadata {
///         Metadata::new("noop", "0.1.0", "Does nothing.")
///     }
///     fn run() -> Result<Outcome, Error> {
///         Ok(Outcome::pass("nothing to do"))
///     }
/// }
///
/// export_scenario!(Noop);
/// ```
#[macro_export]
macro_rules! export_scenario {
    ($t:ty) => {
        #[allow(unsafe_code)]
        const _: () = {
            struct __FiredrillScenarioExport;

            impl $crate::wit::Guest for __FiredrillScenarioExport {
                fn describe() -> $crate::Metadata {
                    <$t as $crate::Scenario>::describe()
                }

                fn run() -> ::core::result::Result<$crate::Outcome, $crate::Error> {
                    <$t as $crate::Scenario>::run()
                }
            }

    $crate::wit::export!(__FiredrillScenarioExport with_types_in $crate::wit);
        };
    };
}

/// A `Duration` as WIT nanoseconds, saturating at `u64::MAX`.
pub(crate) fn to_nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
