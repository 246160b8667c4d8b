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
    (
        "dependency-outage",
        include_bytes!(concat!(env!("OUT_DIR"), "/dependency_outage.wasm")),
    ),
    (
        "hung-dependency",
        include_bytes!(concat!(env!("OUT_DIR"), "/hung_dependency.wasm")),
    ),
    (
        "flaky-link",
        include_bytes!(concat!(env!("OUT_DIR"), "/flaky_link.wasm")),
    ),
    (
        "http-error-storm",
        include_bytes!(concat!(env!("OUT_DIR"), "/http_error_storm.wasm")),
    ),
    (
        "restart-under-load",
        include_bytes!(concat!(env!("OUT_DIR"), "/restart_under_load.wasm")),
    ),
    (
        "bad-day",
        include_bytes!(concat!(env!("OUT_DIR"), "/bad_day.wasm")),
    ),
];

/// The scenarios `firedrill demo` runs against its service; the others are
/// the library, for drills against a team's own services.
pub const DEMO: &[&str] = &["kill-and-recover", "latency-ramp", "auth-outage"];

/// A bundled scenario's bytes by name.
pub fn get(name: &str) -> Option<&'static [u8]> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The names, for messages.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|(n, _)| *n).collect()
}
