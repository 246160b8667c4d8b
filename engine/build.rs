//! Builds the bundled scenarios in `scenarios/` for wasm32-wasip2 so the
//! binary can embed them (see src/bundled.rs).

#[path = "build/guests.rs"]
mod guests;

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let scenarios = root.join("scenarios");
    let dirs = [
        "kill-and-recover",
        "latency-ramp",
        "auth-outage",
        "dependency-outage",
        "hung-dependency",
        "flaky-link",
        "http-error-storm",
        "restart-under-load",
        "bad-day",
    ];
    let names: Vec<String> = dirs.iter().map(|d| d.replace('-', "_")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut watch = vec![
        root.join("wit"),
        root.join("sdk/src"),
        root.join("sdk/Cargo.toml"),
        scenarios.join("Cargo.toml"),
        scenarios.join("Cargo.lock"),
    ];
    for dir in dirs {
        watch.push(scenarios.join(dir).join("src"));
        watch.push(scenarios.join(dir).join("Cargo.toml"));
    }
    guests::build(&scenarios, &names, &watch);
}
