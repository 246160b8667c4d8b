//! Host implementations of the WIT interfaces, one file per interface. Each
//! is thin: check policy, record the event, call a driver or probe.

mod faults;
mod probes;
/// The WIT `host` interface: log, sleep, time, random, params, events.
mod services;

impl super::bindings::firedrill::scenario::types::Host for super::RunState {}
