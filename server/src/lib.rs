//! firedrill's servers, on top of the engine library (which has none):
//! today the Toxiproxy-compatible proxy API of `firedrill proxy serve`
//! ([`toxiproxy`]).

#![warn(missing_docs, missing_debug_implementations)]

pub mod toxiproxy;
