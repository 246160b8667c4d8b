//! Scenarios bundled into the binary, built from `scenarios/` by the build
//! script: `firedrill demo` runs them, and drill files name them with
//! `bundled = "NAME"`.

/// Name and component bytes of each bundled scenario.
pub const ALL: &[(&str, &[u8])] = &[
    (
        "kill-and-recover",
        include_bytes!(concat!(env!("OUT_DIR"), "/kill_and_recover.wasm")),
    ),
    (
        "latency-ramp",
        include_bytes!(concat!(env!("OUT_DIR"), "/latency_ramp.wasm")),
    ),
    (
        "auth-outage",
        include_bytes!(concat!(env!("OUT_DIR"), "/auth_outage.wasm")),
    ),
];

/// A bundled scenario's bytes by name.
pub fn get(name: &str) -> Option<&'static [u8]> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The names, for messages.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|(n, _)| *n).collect()
}
