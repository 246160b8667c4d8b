//! Builds the bundled scenarios in `scenarios/` for wasm32-wasip2 so the
//! binary can embed them (see src/bundled.rs).

#[path = "build/guests.rs"]
mod guests;

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let scenarios = root.join("scenarios");
    let names = [
        "kill_and_recover",
        "latency_ramp",
        "auth_outage",
        "dependency_outage",
    ];
    let mut watch = vec![
        root.join("wit"),
        root.join("sdk/src"),
        root.join("sdk/Cargo.toml"),
        scenarios.join("Cargo.toml"),
        scenarios.join("Cargo.lock"),
    ];
    for dir in [
        "kill-and-recover",
        "latency-ramp",
        "auth-outage",
        "dependency-outage",
    ] {
        watch.push(scenarios.join(dir).join("src"));
        watch.push(scenarios.join(dir).join("Cargo.toml"));
    }
    guests::build(&scenarios, &names, &watch);
}
