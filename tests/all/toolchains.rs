//! Scenarios as their authors build them in Python (componentize-py, with
//! and without `--stub-wasi`) and JavaScript (componentize-js with its
//! default flags), installed from PyPI and npm on first use: they load, run
//! against a real proxy and upstream, and meet the engine's limits and
//! denials in their own terms.

use crate::support::*;
use firedrill_tests::toolchains;
use std::path::{Path, PathBuf};
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn guests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/guests")
}

/// A drill running `wasm` against an HTTP proxy `api-link` in front of a
/// real upstream, with `extra` appended.
fn drill(dir: &Path, wasm: &[u8], upstream: &firedrill_tests::Upstream, extra: &str) -> PathBuf {
    std::fs::write(dir.join("scenario.wasm"), wasm).unwrap();
    let path = dir.join("drill.toml");
    std::fs::write(
        &path,
        format!(
            r#"[scenario]
path = "scenario.wasm"
[targets.api-link]
kind = "proxy"
mode = "http"
listen = "127.0.0.1:0"
upstream = "{}"
grants = ["delay"]
{extra}"#,
            upstream.addr
        ),
    )
    .unwrap();
    path
}

fn run(data: &Path, drill: &Path, params: &[&str]) -> Output {
    let mut c = firedrill(data);
    c.arg("run").arg(drill);
    for p in params {
        c.args(["--param", p]);
    }
    c.output().unwrap()
}

/// The README's slow-link in Python: both componentize-py builds load and
/// pass, and replay matches; a returned error, an uncaught exception (with
/// Python's traceback in the timeline) and the memory limit end the run as
/// they would in Rust; a limit below what the component needs is refused
/// up front, naming both numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_scenarios_load_run_and_fail_in_their_own_terms() {
    let upstream = firedrill_tests::Upstream::start("t").await;
    let src = guests().join("python/slow_link");
    for stub_wasi in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let wasm = toolchains::python(&src, stub_wasi);
        let drill = drill(dir.path(), &wasm, &upstream, "");
        let inspected = firedrill(&data)
            .arg("inspect")
            .arg(dir.path().join("scenario.wasm"))
            .output()
            .unwrap();
        let needs = if stub_wasi { 38 } else { 14 };
        assert!(
            text(&inspected).contains(&format!(
                "built with Python (componentize-py); {needs} core instances"
            )),
            "{}",
            text(&inspected)
        );
        let o = run(&data, &drill, &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "stub-wasi {stub_wasi}: {}",
            text(&o)
        );
        let shown = text(&firedrill(&data).arg("show").output().unwrap());
        assert!(shown.contains("status 200 under latency"), "{shown}");
        assert!(shown.contains("slowing api-link by 200ms"), "{shown}");
        let r = firedrill(&data)
            .args(["replay", &last_run(&data)])
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(0), "replay: {}", text(&r));
    }

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wasm = toolchains::python(&src, false);
    let drill_path = drill(dir.path(), &wasm, &upstream, "");
    let o = run(&data, &drill_path, &["mode=error"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("mode=error asks for an error"),
        "{}",
        text(&o)
    );
    let o = run(&data, &drill_path, &["mode=exception"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let shown = text(&firedrill(&data).arg("show").output().unwrap());
    assert!(
        shown.contains("Traceback")
            && shown.contains("ValueError: an exception the scenario did not catch"),
        "Python's own traceback is in the timeline: {shown}"
    );
    let o = run(&data, &drill_path, &["mode=memory"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("memory limit of 64 MiB exceeded"),
        "{}",
        text(&o)
    );

    let limited = drill(dir.path(), &wasm, &upstream, "[limits]\ninstances = 4\n");
    let o = run(&data, &limited, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("core instances, the limit is 4 (raise `[limits] instances`"),
        "{t}"
    );
    assert!(!t.contains("not a valid WebAssembly component"), "{t}");
}

/// A large component's first load compiles with Winch, wasmtime's baseline
/// compiler, and keeps that code; `firedrill check` compiles optimized
/// code, which replaces it in the cache and is what every later load uses.
/// A Rust scenario is small enough to compile optimized straight away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_component_starts_on_baseline_code_until_check_compiles_it_optimized() {
    let upstream = firedrill_tests::Upstream::start("t").await;
    let wasm = toolchains::python(&guests().join("python/slow_link"), false);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let drill_path = drill(dir.path(), &wasm, &upstream, "");
    let inspect = |wasm: &Path| text(&firedrill(&data).arg("inspect").arg(wasm).output().unwrap());
    let scenario = dir.path().join("scenario.wasm");
    let first = inspect(&scenario);
    assert!(
        first.contains("baseline (Winch) code, compiled in")
            && first.contains("`firedrill check` on a drill running it compiles optimized code"),
        "{first}"
    );
    let second = inspect(&scenario);
    assert!(
        second.contains("baseline (Winch) code, from the cache"),
        "the first inspect kept its code: {second}"
    );
    let o = run(&data, &drill_path, &[]);
    assert_eq!(o.status.code(), Some(0), "on baseline code: {}", text(&o));

    let checked = firedrill(&data)
        .arg("check")
        .arg(&drill_path)
        .output()
        .unwrap();
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked));
    assert!(
        text(&checked).contains("ok: scenario slow-link-py 0.1.0")
            && text(&checked).contains("optimized (Cranelift) code, compiled in"),
        "{}",
        text(&checked)
    );
    let kept: Vec<_> = std::fs::read_dir(data.join("cache"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "optimized code replaced the baseline code: {kept:?}"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &firedrill(&data)
            .args(["inspect", "--json"])
            .arg(&scenario)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        json["compiled"],
        serde_json::json!({"tier": "optimizing", "took": null}),
        "{json}"
    );
    let o = run(&data, &drill_path, &[]);
    assert_eq!(o.status.code(), Some(0), "on optimized code: {}", text(&o));

    let rust = dir.path().join("rust.wasm");
    std::fs::write(&rust, firedrill_tests::SLOW_LINK).unwrap();
    let shown = inspect(&rust);
    assert!(
        shown.contains("built with Rust")
            && shown.contains("optimized (Cranelift) code, compiled in"),
        "{shown}"
    );
    // The README's Rust slow-link, as written there, passes too.
    let rust_dir = tempfile::tempdir().unwrap();
    let rust_drill = drill(rust_dir.path(), firedrill_tests::SLOW_LINK, &upstream, "");
    let o = run(&data, &rust_drill, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let shown = text(&firedrill(&data).arg("show").output().unwrap());
    assert!(shown.contains("healthy under latency"), "{shown}");
}

/// The README's slow-link in JavaScript, built by componentize-js with its
/// default flags (which import `wasi:http`): it loads, passes and replays;
/// a thrown `FiredrillError`, an uncaught exception (its stack in the
/// timeline) and the memory limit end the run as in Rust; a `fetch` is
/// denied: the scenario sees an error, the listener it aimed at sees no
/// connection, and the timeline records the denied call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_javascript_build_loads_runs_and_its_fetch_is_denied() {
    let upstream = firedrill_tests::Upstream::start("t").await;
    let wasm = toolchains::javascript(&guests().join("js/slow-link.js"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let drill = drill(dir.path(), &wasm, &upstream, "");
    let inspected = firedrill(&data)
        .arg("inspect")
        .arg(dir.path().join("scenario.wasm"))
        .output()
        .unwrap();
    assert!(
        text(&inspected).contains("built with JavaScript (ComponentizeJS)"),
        "{}",
        text(&inspected)
    );
    let o = run(&data, &drill, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let shown = text(&firedrill(&data).arg("show").output().unwrap());
    assert!(shown.contains("slowing api-link by 200ms"), "{shown}");
    let r = firedrill(&data)
        .args(["replay", &last_run(&data)])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "replay: {}", text(&r));

    let o = run(&data, &drill, &["mode=error"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("mode=error asks for an error"),
        "{}",
        text(&o)
    );
    let o = run(&data, &drill, &["mode=exception"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let shown = text(&firedrill(&data).arg("show").output().unwrap());
    assert!(
        shown.contains("RangeError: an exception the scenario did not catch"),
        "the exception and its stack are in the timeline: {shown}"
    );
    let o = run(&data, &drill, &["mode=memory"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("memory limit of 64 MiB exceeded"),
        "{}",
        text(&o)
    );

    let bait = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    bait.set_nonblocking(true).unwrap();
    let url = format!("url=http://{}/steal", bait.local_addr().unwrap());
    let o = run(&data, &drill, &["mode=fetch", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        bait.accept().is_err(),
        "the scenario's fetch reached the network"
    );
    let shown = text(&firedrill(&data).arg("show").output().unwrap());
    assert!(shown.contains("fetch failed"), "{shown}");
    assert!(
        shown.contains("wasi:http/outgoing-handler.handle("),
        "{shown}"
    );
    assert!(
        shown.contains("denied: scenarios reach targets only through"),
        "{shown}"
    );
}

/// A component the engine would refuse at link time is refused before it
/// is compiled, naming the import, and nothing lands in the compiled-code
/// cache; `inspect` and `check` use that cache.
#[test]
fn refusals_come_before_compilation_and_inspect_uses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(dir.path().join("bad.wasm"), firedrill_tests::BAD_IMPORT).unwrap();
    let o = firedrill(&data)
        .arg("inspect")
        .arg(dir.path().join("bad.wasm"))
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o).contains("imports test:evil/backdoor, which firedrill does not provide"),
        "{}",
        text(&o)
    );
    let cached = |data: &Path| {
        std::fs::read_dir(data.join("cache"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(cached(&data), 0, "nothing compiled for a refused component");

    std::fs::write(dir.path().join("seeded.wasm"), firedrill_tests::SEEDED).unwrap();
    let o = firedrill(&data)
        .arg("inspect")
        .arg(dir.path().join("seeded.wasm"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        cached(&data),
        1,
        "inspect compiled into the data dir's cache"
    );
}

/// `firedrill new` writes a project in each language that builds with the
/// command its `build.sh` holds and whose drill passes against the demo
/// service it starts.
#[test]
fn new_projects_build_and_pass_in_each_language() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (py, py_home) = {
        let _lock = toolchains::lock();
        toolchains::componentize_py()
    };
    let js = {
        let _lock = toolchains::lock();
        toolchains::componentize_js()
    };
    let path = format!(
        "{}:{}",
        py.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for lang in ["rust", "python", "js"] {
        let project = dir.path().join(format!("slow-{lang}"));
        let o = firedrill(&data)
            .arg("new")
            .arg(&project)
            .args(["--lang", lang])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{lang}: {}", text(&o));
        if lang == "js" {
            // The toolchain the tests installed, in place of `npm install`.
            std::os::unix::fs::symlink(
                js.ancestors().nth(2).unwrap(),
                project.join("node_modules"),
            )
            .unwrap();
        }
        let o = std::process::Command::new(project.join("build.sh"))
            .env("PATH", &path)
            .env("PYTHONPATH", &py_home)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .output()
            .unwrap();
        assert!(o.status.success(), "{lang} build.sh: {}", text(&o));
        let o = firedrill(&data)
            .current_dir(&project)
            .args(["run", "drill.toml"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{lang} run: {}", text(&o));
        assert!(
            text(&o).contains(&format!("slow-{lang} 0.1.0  PASSED")),
            "{}",
            text(&o)
        );
    }
    let o = firedrill(&data)
        .arg("new")
        .arg(dir.path().join("slow-rust"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(text(&o).contains("already exists"), "{}", text(&o));
}

/// The Rust slow-link the tests build and time is the README's, word for
/// word, so the README's example is known to compile and pass.
#[test]
fn the_readme_rust_example_is_the_tested_guest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let tab = &readme[readme
        .find("<summary><b>Rust</b>")
        .expect("the README's Rust tab")..];
    let start = tab.find("```rust\n").unwrap() + "```rust\n".len();
    let example = &tab[start..start + tab[start..].find("```").unwrap()];
    let guest = std::fs::read_to_string(guests().join("slow-link/src/lib.rs")).unwrap();
    let body: String = guest
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        body, example,
        "tests/guests/slow-link differs from the README"
    );
}
