//! Builds the guest components in tests/guests for the engine's tests.

#[path = "../engine/build/guests.rs"]
mod guests;

use std::path::PathBuf;

const GUESTS: &[&str] = &[
    "spin",
    "memory-bomb",
    "panic",
    "other-world",
    "pauser",
    "overreach",
    "seeded",
    "sleeper",
    "calls",
    "recurse",
    "log-flood",
    "huge-outcome",
    "fault-flood",
    "sleep-loop",
    "absurd",
    "bad-import",
    "link",
    "http",
    "process",
    "legacy",
    "secret-param",
    "slow-link",
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let ws = root.join("guests");
    let mut watch = vec![
        ws.join("Cargo.toml"),
        ws.join("Cargo.lock"),
        root.join("../sdk/src"),
        root.join("../wit"),
    ];
    for g in GUESTS {
        watch.push(ws.join(g).join("src"));
        watch.push(ws.join(g).join("Cargo.toml"));
    }
    let names: Vec<String> = GUESTS.iter().map(|g| g.replace('-', "_")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    guests::build(&ws, &names, &watch);
}
