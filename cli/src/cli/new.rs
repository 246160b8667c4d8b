//! `firedrill new NAME --lang rust|python|js`: a ready-to-build scenario
//! project. It carries its own copy of firedrill's WIT and of the SDK for
//! its language (embedded in this binary, so they match the engine that
//! runs the scenario), a build script with the toolchain's exact command,
//! and a drill that runs the scenario against `firedrill demo`'s service.

use super::{Exit, Failure, usage};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The project's directory (created; must not exist) and the scenario's name
    name: PathBuf,
    /// The language to write the scenario in
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
}

const WIT: &str = include_str!("../../../wit/scenario.wit");

const RUST_SDK: &[(&str, &str)] = &[
    ("lib.rs", include_str!("../../../sdk/src/lib.rs")),
    ("faults.rs", include_str!("../../../sdk/src/faults.rs")),
    ("host.rs", include_str!("../../../sdk/src/host.rs")),
    ("probes.rs", include_str!("../../../sdk/src/probes.rs")),
    ("types.rs", include_str!("../../../sdk/src/types.rs")),
];

const PYTHON_SDK: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../../sdk/python/firedrill/__init__.py"),
    ),
    (
        "_core.py",
        include_str!("../../../sdk/python/firedrill/_core.py"),
    ),
    (
        "faults.py",
        include_str!("../../../sdk/python/firedrill/faults.py"),
    ),
    (
        "host.py",
        include_str!("../../../sdk/python/firedrill/host.py"),
    ),
    (
        "probes.py",
        include_str!("../../../sdk/python/firedrill/probes.py"),
    ),
];

const JS_SDK: &str = include_str!("../../../sdk/js/firedrill.js");

/// componentize-py and ComponentizeJS at the versions firedrill is tested with.
const COMPONENTIZE_PY: &str = "0.25.1";
const COMPONENTIZE_JS: &str = "0.23.0";

pub(crate) async fn run(args: Args) -> Result<Exit, Failure> {
    let dir = &args.name;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| {
            !n.is_empty()
                && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .ok_or_else(|| {
            usage(format!(
                "{}: a scenario's name starts with a letter and holds letters, digits, `-` and `_` (e.g. `slow-link`)",
                dir.display()
            ))
        })?
        .to_string();
    if dir.exists() {
        return Err(usage(format!(
            "{} already exists: give `firedrill new` a directory that does not exist yet",
            dir.display()
        )));
    }
    let files = match args.lang {
        Lang::Rust => rust(&name),
        Lang::Python => python(&name),
        Lang::Js => js(&name),
    };
    for (path, text) in &files {
        write(&dir.join(path), text)?;
    }
    let build = dir.join("build.sh");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&build, std::fs::Permissions::from_mode(0o755))?;
    }
    println!("wrote {} ({} files). Next:", dir.display(), files.len());
    println!("  cd {}", dir.display());
    println!("  ./build.sh                 # builds scenario.wasm");
    println!("  firedrill inspect scenario.wasm");
    println!("  firedrill run drill.toml   # against the demo service, started by the drill");
    Ok(Exit::Pass)
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| usage(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(path, text).map_err(|e| usage(format!("cannot write {}: {e}", path.display())))
}

/// The drill: the demo's service and proxy, and this scenario.
fn drill() -> String {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("firedrill"));
    let mut text = firedrill::demo::drill_text(&exe, 18080, 18081);
    text.push_str(
        "\n[scenario]\npath = \"scenario.wasm\"\nparams = { link = \"api-link\", latency = \"300ms\" }\n",
    );
    text
}

fn readme(name: &str, install: &str, build: &str) -> String {
    format!(
        "# {name}\n\nA firedrill scenario: it adds latency to a link and probes through it.\n\n\
         ```sh\n{install}\n./build.sh                    # {build}\nfiredrill inspect scenario.wasm\n\
         firedrill run drill.toml      # starts the demo service and its proxy, then runs the scenario\n```\n\n\
         `wit/` and the SDK are copies from the firedrill that wrote this project; \
         `firedrill new` again with a newer firedrill gives newer ones.\n"
    )
}

fn rust(name: &str) -> Vec<(String, String)> {
    let crate_name = name.replace('-', "_");
    let mut files = vec![
        (
            "Cargo.toml".to_string(),
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
firedrill-sdk = {{ path = "firedrill-sdk" }}

[profile.release]
opt-level = "s"
lto = true
strip = true
panic = "abort"

[workspace]
"#
            ),
        ),
        (
            "firedrill-sdk/Cargo.toml".to_string(),
            r#"[package]
name = "firedrill-sdk"
version = "0.1.0"
edition = "2024"
license = "Apache-2.0"

[dependencies]
wit-bindgen = { version = "0.61", default-features = false, features = ["macros", "realloc"] }
base64 = { version = "0.22", default-features = false, features = ["alloc"] }
"#
            .to_string(),
        ),
        (
            "src/lib.rs".to_string(),
            format!(
                r#"use firedrill_sdk::*;
use std::time::Duration;

struct SlowLink;

impl Scenario for SlowLink {{
    fn describe() -> Metadata {{
        let link = host::param_or("link", "api-link");
        Metadata::new("{name}", "0.1.0", "Adds latency to a link and probes through it.")
            .param("link", ParamType::String, Some("api-link"), "The proxy to slow down")
            .param("latency", ParamType::Duration, Some("200ms"), "Latency to add")
            .need(FaultKind::Delay, link)
    }}

    fn run() -> Result<Outcome, Error> {{
        let link = host::param_or("link", "api-link");
        let latency = host::param_duration("latency", Duration::from_millis(200))?;
        let fault = faults::delay(&link, latency).apply()?;
        let response = probes::get(&link, "/health")?;
        fault.revert()?;
        let outcome = if response.is_success() {{
            Outcome::pass("healthy under latency")
        }} else {{
            Outcome::fail(format!("status {{}} under latency", response.status))
        }};
        Ok(outcome.measure("latency", response.latency().as_secs_f64() * 1e3, "ms"))
    }}
}}

export_scenario!(SlowLink);
"#
            ),
        ),
        (
            "build.sh".to_string(),
            format!(
                "#!/bin/sh\n# Needs Rust through rustup; adds the wasm32-wasip2 target if it is missing.\nset -e\ncd \"$(dirname \"$0\")\"\nrustup target list --installed | grep -q wasm32-wasip2 || rustup target add wasm32-wasip2\ncargo build --release --target wasm32-wasip2\ncp target/wasm32-wasip2/release/{crate_name}.wasm scenario.wasm\n"
            ),
        ),
        ("wit/scenario.wit".to_string(), WIT.to_string()),
        ("drill.toml".to_string(), drill()),
        (
            "README.md".to_string(),
            readme(
                name,
                "rustup target add wasm32-wasip2",
                "cargo build --release --target wasm32-wasip2",
            ),
        ),
    ];
    for (file, text) in RUST_SDK {
        files.push((format!("firedrill-sdk/src/{file}"), text.to_string()));
    }
    files
}

fn python(name: &str) -> Vec<(String, String)> {
    let mut files = vec![
        (
            "app.py".to_string(),
            format!(
                r#""""{name}: adds latency to a link and probes through it."""

import firedrill
from firedrill import Metadata, Outcome, faults, host, probes


class SlowLink(firedrill.Scenario):
    def describe(self) -> Metadata:
        link = host.param("link", "api-link")
        return (
            Metadata("{name}", "0.1.0", "Adds latency to a link and probes through it.")
            .param("link", "string", "api-link", "The proxy to slow down")
            .param("latency", "duration", "200ms", "Latency to add")
            .need("delay", link)
        )

    def run(self) -> Outcome:
        link = host.param("link", "api-link")
        fault = faults.delay(link, host.param("latency", "200ms")).apply()
        response = probes.get(link, "/health")
        fault.revert()
        if response.ok:
            outcome = Outcome.passed("healthy under latency")
        else:
            outcome = Outcome.failed(f"status {{response.status}} under latency")
        return outcome.measure("latency", response.latency_ms, "ms")


# componentize-py exports the class named WitWorld.
WitWorld = SlowLink
"#
            ),
        ),
        (
            "build.sh".to_string(),
            format!(
                "#!/bin/sh\n# Needs componentize-py: pip install componentize-py=={COMPONENTIZE_PY}\nset -e\ncd \"$(dirname \"$0\")\"\ncomponentize-py -d wit -w scenario componentize -p . app -o scenario.wasm\n"
            ),
        ),
        ("wit/scenario.wit".to_string(), WIT.to_string()),
        ("drill.toml".to_string(), drill()),
        (
            "README.md".to_string(),
            readme(
                name,
                &format!("pip install componentize-py=={COMPONENTIZE_PY}"),
                "componentize-py -d wit -w scenario componentize -p . app -o scenario.wasm",
            ),
        ),
    ];
    for (file, text) in PYTHON_SDK {
        files.push((format!("firedrill/{file}"), text.to_string()));
    }
    files
}

fn js(name: &str) -> Vec<(String, String)> {
    vec![
        (
            "scenario.js".to_string(),
            format!(
                r#"// {name}: adds latency to a link and probes through it.
import {{ scenario, Metadata, Outcome, faults, probes, host }} from './firedrill/firedrill.js';

export const {{ describe, run }} = scenario({{
  describe() {{
    const link = host.param('link', 'api-link');
    return new Metadata('{name}', '0.1.0', 'Adds latency to a link and probes through it.')
      .param('link', 'string', 'api-link', 'The proxy to slow down')
      .param('latency', 'duration', '200ms', 'Latency to add')
      .need('delay', link);
  }},
  run() {{
    const link = host.param('link', 'api-link');
    const fault = faults.delay(link, host.param('latency', '200ms')).apply();
    const response = probes.get(link, '/health');
    fault.revert();
    const outcome = response.ok
      ? Outcome.passed('healthy under latency')
      : Outcome.failed(`status ${{response.status}} under latency`);
    return outcome.measure('latency', response.latencyMs, 'ms');
  }},
}});
"#
            ),
        ),
        (
            "package.json".to_string(),
            format!(
                r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "type": "module",
  "private": true,
  "scripts": {{
    "build": "componentize-js scenario.js --wit wit -n scenario -o scenario.wasm"
  }},
  "devDependencies": {{
    "@bytecodealliance/componentize-js": "{COMPONENTIZE_JS}"
  }}
}}
"#
            ),
        ),
        (
            "build.sh".to_string(),
            "#!/bin/sh\n# Needs Node.js and npm; installs componentize-js on first use.\nset -e\ncd \"$(dirname \"$0\")\"\n[ -x node_modules/.bin/componentize-js ] || npm install --silent --no-audit --no-fund\nnpm run --silent build\n".to_string(),
        ),
        ("firedrill/firedrill.js".to_string(), JS_SDK.to_string()),
        ("wit/scenario.wit".to_string(), WIT.to_string()),
        ("drill.toml".to_string(), drill()),
        (
            "README.md".to_string(),
            readme(
                name,
                "npm install",
                "componentize-js scenario.js --wit wit -n scenario -o scenario.wasm",
            ),
        ),
    ]
}
