//! firedrill's servers, on top of the engine library (which has none):
//! the Toxiproxy-compatible proxy API of `firedrill proxy serve`
//! ([`toxiproxy`]) and the team platform of `firedrill serve`
//! ([`platform`]).

#![warn(missing_docs, missing_debug_implementations)]

pub mod platform;
pub mod toxiproxy;
