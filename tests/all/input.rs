//! Input a user gets wrong, seen from the real binary: values out of range,
//! oversized parameters, data dirs that cannot be used, files of the wrong
//! kind. Each is refused with the exit code, the place and what to do.

use crate::support::*;
use std::path::Path;
use std::process::Output;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o))
}

#[test]
fn a_memory_limit_that_overflowed_to_zero_is_refused_with_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "seeded.wasm", firedrill_tests::SEEDED);
    let drill = write(
        dir.path(),
        "drill.toml",
        b"[scenario]\npath = \"seeded.wasm\"\n[limits]\nmemory_mib = 17592186044416\n",
    );
    let o = firedrill(&dir.path().join("data"))
        .args(["run", drill.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}:4: limits.memory_mib: 17592186044416 is out of range (1..=4096 MiB)\n",
            drill.display()
        )
    );
}

#[test]
fn a_parameter_value_over_64_kib_is_refused_naming_it_and_long_values_are_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // One argument may be at most 128 KiB (MAX_ARG_STRLEN).
    let big = format!("steps={}", "5".repeat(100_000));
    let o = firedrill(&data)
        .args(["run", "bundled:latency-ramp", "--param", &big])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", &text(&o)[..500]);
    assert_eq!(
        stderr(&o),
        "error: --param steps: the value is 100000 bytes; parameter values are capped at 64 KiB (65536 bytes)\n"
    );
    assert!(
        !data.join("db").exists(),
        "refused before the data dir is touched"
    );

    // The same from a drill's `params`, with its line.
    let drill = write(
        dir.path(),
        "big.toml",
        format!(
            "[scenario]\nbundled = \"latency-ramp\"\n\nparams = {{ steps = \"{}\" }}\n",
            "5".repeat(70_000)
        )
        .as_bytes(),
    );
    let o = firedrill(&data)
        .args(["check", drill.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", &text(&o)[..500]);
    assert!(
        text(&o).starts_with(&format!(
            "{}:4: scenario.params.steps: the value is 70000 bytes; parameter values are capped at 64 KiB",
            drill.display()
        )),
        "{}",
        text(&o)
    );

    // Under the cap, a value the scenario refuses is echoed cut short.
    let long = format!("samples={}", "x".repeat(60_000));
    let o = firedrill(&data)
        .args(["run", "bundled:latency-ramp", "--param", &long])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", &text(&o)[..500]);
    assert!(
        text(&o).contains("parameter `samples` must be of type integer, got `xxxx"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("… (60000 bytes)`"), "{}", text(&o));
    assert!(text(&o).len() < 1000, "{} bytes of output", text(&o).len());
}

/// The data dir is a file: a configuration error (64) naming the path,
/// with the cause once and what to do.
#[test]
fn a_file_where_the_data_dir_should_be_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "data", b"not a dir");
    let o = firedrill(&file).args(["history"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(
        err.contains(&format!("the data dir {} cannot be used", file.display())),
        "{err}"
    );
    assert!(
        err.contains("Choose another --data-dir (or FIREDRILL_DATA_DIR), or fix its permissions"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line, no repeated cause: {err}");
    assert_eq!(err.matches("File exists").count(), 1, "{err}");
}

/// A directory nobody may write in, root included (sysfs refuses mkdir):
/// the same configuration error.
#[test]
fn a_data_dir_that_cannot_be_written_is_a_configuration_error() {
    let ro = Path::new("/sys/kernel");
    let o = firedrill(ro).args(["history"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(
        err.contains("the data dir /sys/kernel cannot be used: /sys/kernel/db: "),
        "{err}"
    );
    assert!(err.contains("fix its permissions"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A damaged database is an I/O error (74): the path, the cause once, what
/// to do, and no terminal colour codes in a captured stderr.
#[test]
fn a_damaged_database_exits_74_with_the_path_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = firedrill(&data).args(["history"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Overwrite every file of sled's with noise of the same length.
    let mut damaged = 0;
    for entry in std::fs::read_dir(data.join("db")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            let noise: Vec<u8> = (0..len.max(64)).map(|i| (i * 7 + 3) as u8).collect();
            std::fs::write(&path, noise).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0);
    let o = firedrill(&data)
        .args(["history"])
        .env("FIREDRILL_LOG", "warn")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(74), "{err}");
    assert!(
        err.contains(&format!(
            "the history database in {} is damaged or unreadable",
            data.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "Move it aside (`mv {0} {0}.damaged`)",
            data.display()
        )),
        "{err}"
    );
    assert!(!err.contains("caused by"), "the cause once: {err}");
    // sled warns about the damage through the log: those lines are where
    // colour codes came from.
    assert!(err.contains("WARN sled"), "{err}");
    assert!(
        !err.contains('\x1b'),
        "no ANSI colours off a terminal: {err:?}"
    );
}

#[test]
fn history_limit_0_and_trend_last_0_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let seeded = write(dir.path(), "seeded.wasm", firedrill_tests::SEEDED);
    let o = firedrill(&data)
        .args(["run", seeded.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for args in [
        &["history", "--limit", "0"][..],
        &["history", "trend", "seeded", "--last", "0"][..],
    ] {
        let o = firedrill(&data).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", text(&o));
        assert!(
            stderr(&o).contains("0 would show no runs: give 1 or more"),
            "{args:?}: {}",
            text(&o)
        );
        assert!(
            o.stdout.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    let o = firedrill(&data)
        .args(["history", "--limit", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("passed"), "{}", text(&o));
}

#[test]
fn a_drill_with_an_upper_case_extension_is_a_drill() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "seeded.wasm", firedrill_tests::SEEDED);
    let drill = write(
        dir.path(),
        "Drill.TOML",
        b"[scenario]\npath = \"seeded.wasm\"\nseed = 3\n",
    );
    let o = firedrill(&dir.path().join("data"))
        .args(["run", drill.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn check_of_a_component_points_to_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = write(dir.path(), "x.wasm", firedrill_tests::SEEDED);
    let o = firedrill(&dir.path().join("data"))
        .args(["check", wasm.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert_eq!(
        text(&o),
        format!(
            "{0}: this is a WebAssembly component, not a drill file (TOML): `firedrill inspect {0}` shows its parameters and needs, `firedrill run {0}` runs it\n1 problem(s)\n",
            wasm.display()
        )
    );
}

#[test]
fn random_bytes_as_a_scenario_are_one_line_naming_the_first_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let junk = write(
        dir.path(),
        "x.wasm",
        &[0x3f, 0x8a, 0x00, 0x11, 0xfe, 0x42, 0x07],
    );
    let o = firedrill(&dir.path().join("data"))
        .args(["run", junk.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: not a WebAssembly component (starts with bytes 3f 8a 00 11 …; expected `\\0asm`)\n",
            junk.display()
        )
    );
}
