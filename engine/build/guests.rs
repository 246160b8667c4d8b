// Builds a cargo workspace of guest components for wasm32-wasip2 and copies
// the `.wasm` files into OUT_DIR. Shared by engine/build.rs (scenarios/)
// and tests/build.rs (tests/guests/).

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// Build `workspace` (its Cargo.toml dir) and copy `names` (crate names with
/// `_`) to OUT_DIR as `<name>.wasm`. `watch` lists paths that trigger a
/// rebuild.
pub(crate) fn build(workspace: &Path, names: &[&str], watch: &[PathBuf]) {
    for p in watch {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    ensure_target(workspace);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // Beside the outer build's target dir, so guests are built once for
    // every profile and both build scripts share their dependencies.
    let target_dir = outer_target_dir(&out_dir).join("guests");
    let status = toolchain_command("cargo", workspace)
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_PRIMARY_PACKAGE")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .status()
        .expect("run cargo to build the guest components");
    assert!(
        status.success(),
        "building the guest components in {} failed",
        workspace.display()
    );
    for name in names {
        let built = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{name}.wasm"));
        std::fs::copy(&built, out_dir.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
    }
}

/// OUT_DIR is `<target>/<profile>/build/<pkg>-<hash>/out`.
fn outer_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.join("t"))
}

/// A command for the toolchain that rust-toolchain.toml pins, whatever
/// toolchain builds the host (a nightly fuzz build, say): guests always
/// build with the pinned one. Without rustup, the tools on PATH.
fn toolchain_command(program: &str, workspace: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(workspace)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO");
    c
}

/// rust-toolchain.toml lists the target, but machines with
/// RUSTUP_AUTO_INSTALL=0 do not install it from there: add it, or say how.
fn ensure_target(workspace: &Path) {
    let sysroot = toolchain_command("rustc", workspace)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let installed = sysroot.as_ref().is_some_and(|s| {
        Path::new(s)
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib")
            .exists()
    });
    if installed {
        return;
    }
    let added = toolchain_command("rustup", workspace)
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        added,
        "the {TARGET} target is missing and `rustup target add {TARGET}` failed; run it by hand (with --toolchain 1.95.0 if rustup asks)"
    );
}
