//! The Python and JavaScript component toolchains, as a scenario author
//! installs them (componentize-py from PyPI, ComponentizeJS from npm, at
//! pinned versions), installed on first use under `target/toolchains`, and
//! components built with them, kept there by a digest of their inputs so a
//! second test run does not build them again.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// componentize-py's version on PyPI.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// ComponentizeJS's version on npm.
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// The workspace's `target/toolchains`.
pub fn dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("toolchains")
}

/// firedrill's WIT, which scenarios are built against.
pub fn wit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

/// The Python SDK's directory (a package on the Python path).
pub fn python_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python")
}

/// The JavaScript SDK's directory.
pub fn js_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/js")
}

/// Holds `target/toolchains/.lock` (test binaries and tests run at once)
/// while it lives: take it around installs.
pub fn lock() -> std::fs::File {
    std::fs::create_dir_all(dir()).unwrap();
    let f = std::fs::File::create(dir().join(".lock")).unwrap();
    f.lock().unwrap();
    f
}

fn run(what: &str, c: &mut Command) {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `componentize-py` (its path and its package directory, for
/// `PYTHONPATH`), installed with pip on first use.
pub fn componentize_py() -> (PathBuf, PathBuf) {
    let home = dir().join(format!("componentize-py-{COMPONENTIZE_PY}"));
    let bin = home.join("bin/componentize-py");
    if !bin.exists() {
        run(
            "pip install componentize-py",
            Command::new("python3")
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .arg("--target")
                .arg(&home)
                .arg(format!("componentize-py=={COMPONENTIZE_PY}")),
        );
    }
    (bin, home)
}

/// `componentize-js`, installed with npm on first use (in
/// `<its dir>/node_modules`).
pub fn componentize_js() -> PathBuf {
    let home = dir().join(format!("componentize-js-{COMPONENTIZE_JS}"));
    let bin = home.join("node_modules/.bin/componentize-js");
    if !bin.exists() {
        std::fs::create_dir_all(&home).unwrap();
        run(
            "npm install @bytecodealliance/componentize-js",
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&home)
                .arg(format!(
                    "@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"
                )),
        );
    }
    bin
}

/// A digest of a build's inputs: the sources, the WIT and the command.
fn digest(parts: &[&[u8]]) -> String {
    fn files(dir: &Path, h: &mut impl Hasher) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                files(&path, h);
            } else if let Ok(text) = std::fs::read(&path) {
                path.file_name().hash(h);
                text.hash(h);
            }
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    for dir in [wit(), python_sdk().join("firedrill"), js_sdk()] {
        files(&dir, &mut h);
    }
    format!("{:016x}", h.finish())
}

/// A Python scenario (`app.py` defining `WitWorld`, beside its other
/// modules in `src`) built with componentize-py, with `--stub-wasi` or not.
pub fn python(src: &Path, stub_wasi: bool) -> Vec<u8> {
    let app = std::fs::read(src.join("app.py")).unwrap();
    let key = digest(&[&app, COMPONENTIZE_PY.as_bytes(), &[stub_wasi as u8]]);
    let out = dir().join(format!("built/py-{key}.wasm"));
    let _lock = lock();
    if !out.exists() {
        let (bin, home) = componentize_py();
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let tmp = out.with_extension("tmp");
        let mut c = Command::new(bin);
        c.env("PYTHONPATH", &home)
            .arg("-d")
            .arg(wit())
            .args(["-w", "scenario", "componentize"]);
        if stub_wasi {
            c.arg("--stub-wasi");
        }
        c.arg("-p")
            .arg(src)
            .arg("-p")
            .arg(python_sdk())
            .args(["app", "-o"])
            .arg(&tmp);
        run("componentize-py", &mut c);
        std::fs::rename(&tmp, &out).unwrap();
    }
    std::fs::read(out).unwrap()
}

/// A JavaScript scenario (an ES module exporting `describe` and `run`)
/// built with componentize-js and its default flags.
pub fn javascript(source: &Path) -> Vec<u8> {
    let text = std::fs::read(source).unwrap();
    let key = digest(&[&text, COMPONENTIZE_JS.as_bytes()]);
    let out = dir().join(format!("built/js-{key}.wasm"));
    let _lock = lock();
    if !out.exists() {
        let bin = componentize_js();
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let tmp = out.with_extension("tmp");
        run(
            "componentize-js",
            // ComponentizeJS reads modules only under its working directory,
            // which must hold both the scenario and the SDK it imports.
            Command::new(bin)
                .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
                .arg(source)
                .arg("--wit")
                .arg(wit())
                .args(["-n", "scenario", "-o"])
                .arg(&tmp),
        );
        std::fs::rename(&tmp, &out).unwrap();
    }
    std::fs::read(out).unwrap()
}

/// The `oras` Python package (oras-py) on PyPI.
pub const ORAS: &str = "0.2.43";

/// openapi-spec-validator's package directory (for `PYTHONPATH`),
/// installed with pip on first use: checks our OpenAPI document against
/// the OpenAPI 3.1 specification, independently of how we generate it.
pub fn openapi_spec_validator() -> PathBuf {
    const VERSION: &str = "0.9.0";
    let _lock = lock();
    let home = dir().join(format!("openapi-spec-validator-{VERSION}"));
    if !home.join("openapi_spec_validator").exists() {
        run(
            "pip install openapi-spec-validator",
            Command::new("python3")
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .arg("--target")
                .arg(&home)
                .arg(format!("openapi-spec-validator=={VERSION}")),
        );
    }
    home
}

/// oras-py's package directory (for `PYTHONPATH`), installed with pip on
/// first use: an OCI client nobody here wrote, to check what we push.
pub fn oras() -> PathBuf {
    let _lock = lock();
    let home = dir().join(format!("oras-{ORAS}"));
    if !home.join("oras").exists() {
        run(
            "pip install oras",
            Command::new("python3")
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .arg("--target")
                .arg(&home)
                .arg(format!("oras=={ORAS}")),
        );
    }
    home
}
