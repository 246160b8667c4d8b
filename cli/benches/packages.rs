//! Package figures for docs/PERFORMANCE.md (issue 16), whole processes as a
//! user runs them, side by side in one run:
//!
//! - `firedrill publish` of the Rust slow-link (0.1 MB) and the JavaScript
//!   one (12 MB, componentize-js) to a directory registry and to Debian's
//!   docker-registry on loopback;
//! - `firedrill install` (fetch, digest, signature, `describe()` in the
//!   sandbox, compile, store) of the Rust one from each, into a fresh data
//!   dir each time;
//! - `oras pull` (oras-py, PyPI) of the same OCI artifact, the independent
//!   baseline;
//! - `firedrill search` over a directory registry of 10,000 packages.
//!
//! Run it with `cargo bench -p firedrill-cli --bench packages` (`-- --quick`:
//! one round, 200 packages, no JavaScript).

use firedrill_tests::{median_duration as median, timed};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn fd(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_firedrill"));
    c.env("FIREDRILL_DATA_DIR", data)
        .stdout(std::process::Stdio::null());
    c
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, packages) = if quick { (1, 200) } else { (7, 10_000) };
    let scratch = tempfile::tempdir()?;
    let root = scratch.path();
    let keys = root.join("keys");
    let seed = root.join("seed-data");
    timed(fd(&seed).args(["key", "generate", "--out"]).arg(&keys))?;
    timed(
        fd(&seed)
            .args(["trust", "add"])
            .arg(keys.join("firedrill.pub"))
            .args(["--namespace", "bench"]),
    )?;
    let trust = std::fs::read(seed.join("trust.toml"))?;
    let rust = root.join("slow-link.wasm");
    std::fs::write(&rust, firedrill_tests::SLOW_LINK)?;
    let oci_server = firedrill_tests::DockerRegistry::start(&root.join("oci"));
    let oci = format!("oci://127.0.0.1:{}/bench/", oci_server.port);
    let dir = root.join("registry").display().to_string();
    let oras = firedrill_tests::toolchains::oras();

    println!("| figure | median | n |");
    println!("|---|---|---|");
    // Publish: every round a new namespace, so each is a first publish.
    let mut components = vec![("Rust slow-link, 0.1 MB", rust.clone())];
    if !quick {
        let js = firedrill_tests::toolchains::javascript(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/guests/js/slow-link.js"),
        );
        let path = root.join("slow-link-js.wasm");
        std::fs::write(&path, &js)?;
        components.push(("JavaScript slow-link, 12 MB", path));
    }
    for (name, wasm) in &components {
        for (registry, label) in [
            (&dir, "directory registry"),
            (&oci, "docker-registry, loopback"),
        ] {
            let mut took = Vec::new();
            for round in 0..rounds {
                // A fresh data dir: nothing of it compiled before.
                let data = root.join(format!("pub-{}-{}-{round}", name.len(), label.len()));
                took.push(timed(
                    fd(&data)
                        .arg("publish")
                        .arg(wasm)
                        .args(["--namespace", &format!("p{round}x{}", name.len())])
                        .arg("--key")
                        .arg(keys.join("firedrill.key"))
                        .args(["--registry", registry]),
                )?);
            }
            println!(
                "| `firedrill publish`, {name}, to the {label} | {:.0} ms | {rounds} |",
                ms(median(&took))
            );
        }
    }
    // The package installs come from.
    for registry in [&dir, &oci] {
        timed(
            fd(&seed)
                .arg("publish")
                .arg(&rust)
                .args(["--namespace", "bench", "--key"])
                .arg(keys.join("firedrill.key"))
                .args(["--registry", registry]),
        )?;
    }
    for (registry, label) in [
        (&dir, "directory registry"),
        (&oci, "docker-registry, loopback"),
    ] {
        let mut took = Vec::new();
        for round in 0..rounds {
            let data = root.join(format!("install-{}-{round}", label.len()));
            std::fs::create_dir_all(&data)?;
            std::fs::write(data.join("trust.toml"), &trust)?;
            took.push(timed(fd(&data).args([
                "install",
                "bench:slow-link",
                "--yes",
                "--registry",
                registry,
            ]))?);
        }
        println!(
            "| `firedrill install` (fetch, verify, describe, compile, store), Rust slow-link, from the {label} | {:.0} ms | {rounds} |",
            ms(median(&took))
        );
    }
    let mut took = Vec::new();
    for round in 0..rounds {
        let out = root.join(format!("oras-{round}"));
        took.push(timed(
            Command::new("python3")
                .env("PYTHONPATH", &oras)
                .arg("-c")
                .arg(format!(
                    "import oras.client\nc = oras.client.OrasClient(hostname='127.0.0.1:{p}', insecure=True)\nc.pull(target='127.0.0.1:{p}/bench/bench/slow-link:0.1.0', outdir='{o}')\n",
                    p = oci_server.port,
                    o = out.display()
                )),
        )?);
    }
    println!(
        "| `oras pull` (oras-py, a Python process) of the same artifact from the docker-registry, the baseline | {:.0} ms | {rounds} |",
        ms(median(&took))
    );

    // Search over a registry of many packages (their metadata copied from
    // one real publish).
    let big = root.join("big-registry");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(
        PathBuf::from(&dir).join("bench/slow-link/0.1.0.json"),
    )?)?;
    for i in 0..packages {
        let name = format!("scenario-{i}");
        let d = big.join("acme").join(&name);
        std::fs::create_dir_all(&d)?;
        let mut m = meta.clone();
        m["package"] = format!("acme:{name}@0.1.0").into();
        std::fs::write(d.join("0.1.0.json"), serde_json::to_vec(&m)?)?;
    }
    // Its signed index, as publishes would leave it.
    timed(
        fd(&seed)
            .args(["reindex", "--key"])
            .arg(keys.join("firedrill.key"))
            .arg("--registry")
            .arg(&big),
    )?;
    let search = |data: &Path| {
        timed(
            fd(data)
                .args(["search", "scenario-42"])
                .arg("--registry")
                .arg(&big),
        )
    };
    let (mut first, mut warm) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // A fresh data dir: the first search downloads, verifies and
        // stores the index; later ones find it unchanged.
        let data = root.join(format!("search-{round}"));
        std::fs::create_dir_all(&data)?;
        std::fs::write(data.join("trust.toml"), &trust)?;
        first.push(search(&data)?);
        warm.push(search(&data)?);
    }
    println!(
        "| `firedrill search`, first in a data dir (sync: read, verify, store the signed index), directory registry of {packages} packages | {:.0} ms | {rounds} |",
        ms(median(&first))
    );
    println!(
        "| `firedrill search`, index unchanged since the last sync, directory registry of {packages} packages | {:.0} ms | {rounds} |",
        ms(median(&warm))
    );
    let mut took = Vec::new();
    for _ in 0..rounds {
        took.push(timed(fd(&seed).arg("--version"))?);
    }
    println!(
        "| `firedrill --version`, the process alone (for scale) | {:.0} ms | {rounds} |",
        ms(median(&took))
    );
    Ok(())
}
