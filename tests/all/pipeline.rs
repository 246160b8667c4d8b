//! firedrill in pipelines: reports (JUnit read by a consumer outside the
//! project, versioned JSON, Markdown), GitHub Actions output, replay, diff,
//! `check` snapshots, history prune and trend.

use crate::support::*;
use firedrill::report::RunReport;
use std::path::Path;
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Parse a JUnit file with Python's standard library (a consumer outside
/// the project) and return `tests failures errors cases` as it counts them.
fn python_junit(path: &Path) -> String {
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suite = root.find("testsuite")
cases = suite.findall("testcase")
assert int(suite.get("tests")) == len(cases)
failures = sum(1 for c in cases if c.find("failure") is not None)
errors = sum(1 for c in cases if c.find("error") is not None)
assert int(suite.get("failures")) == failures and int(suite.get("errors")) == errors
print(suite.get("tests"), failures, errors, "|".join(c.get("name") for c in cases))
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python could not read the JUnit file: {}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn a_drill_writes_all_three_reports_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let drill = dir.path().join("drill.toml");
    let printed = firedrill(&data)
        .args(["demo", "--print-drill"])
        .output()
        .unwrap();
    let mut text_drill = String::from_utf8(printed.stdout).unwrap();
    text_drill.push_str("\n[scenario]\nbundled = \"auth-outage\"\nparams = { outage = \"300ms\", samples = \"2\" }\n");
    std::fs::write(&drill, text_drill).unwrap();

    let reports = dir.path().join("reports");
    let o = firedrill(&data)
        .arg("run")
        .arg(&drill)
        .arg("--report")
        .arg(format!("junit={}", reports.join("r.xml").display()))
        .arg("--report")
        .arg(format!("json={}", reports.join("r.json").display()))
        .arg("--report")
        .arg(format!("markdown={}", reports.join("r.md").display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let junit = python_junit(&reports.join("r.xml"));
    assert_eq!(
        junit,
        "3 0 0 steady state before: api answers through the proxy|steady state after: api answers through the proxy|scenario verdict"
    );
    let report: RunReport =
        serde_json::from_slice(&std::fs::read(reports.join("r.json")).unwrap()).unwrap();
    assert_eq!(report.schema, firedrill::report::SCHEMA);
    assert_eq!(report.run.scenario.name, "auth-outage");
    assert_eq!(report.faults.len(), 1);
    let md = std::fs::read_to_string(reports.join("r.md")).unwrap();
    assert!(
        md.starts_with("### firedrill: auth-outage 0.1.0 — PASSED"),
        "{md}"
    );
    assert!(md.contains("| rejected-during-outage | 100 % |"), "{md}");

    // The run can be replayed: same component, params, seed and drill.
    let id = report.run.id.to_string();
    let o = firedrill(&data).args(["replay", &id]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("replay of run {id} as run")),
        "{}",
        text(&o)
    );
}

#[test]
fn a_failed_verdict_is_a_junit_failure_and_a_github_annotation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wasm = dir.path().join("overreach.wasm");
    std::fs::write(&wasm, firedrill_tests::OVERREACH).unwrap();
    let summary = dir.path().join("summary.md");
    let junit = dir.path().join("r.xml");
    let o = firedrill(&data)
        .arg("run")
        .arg(&wasm)
        .arg("--report")
        .arg(format!("junit={}", junit.display()))
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("::error title=firedrill overreach failed::"),
        "{}",
        text(&o)
    );
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("— FAILED")
    );
    assert_eq!(python_junit(&junit), "1 1 0 scenario verdict");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<failure type="verdict" message="the scenario&apos;s verdict was fail: tried faults it did not declare""#),
        "{xml}"
    );
}

#[test]
fn replay_of_a_seeded_run_reproduces_its_timeline_and_diff_shows_another_seed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wasm = dir.path().join("seeded.wasm");
    std::fs::write(&wasm, firedrill_tests::SEEDED).unwrap();
    let run = |seed: &str| {
        let o = firedrill(&data)
            .args(["run", wasm.to_str().unwrap(), "--seed", seed])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let line = String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.starts_with("run "))
            .unwrap()
            .to_string();
        line.split_whitespace().nth(1).unwrap().to_string()
    };
    let a = run("11");
    let b = run("12");
    // The component file may change or vanish: the data dir keeps a copy.
    std::fs::remove_file(&wasm).unwrap();
    let o = firedrill(&data).args(["replay", &a]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("the timelines match: no divergence"),
        "{}",
        text(&o)
    );

    let o = firedrill(&data).args(["diff", &a, &b]).output().unwrap();
    let t = text(&o);
    assert!(t.contains("first divergence at compared event #1"), "{t}");
    assert!(t.contains("host.random"), "{t}");
    assert!(t.contains("draw-0"), "measurements side by side: {t}");
}

#[test]
fn history_prune_keeps_the_newest_and_trend_shows_the_pass_rate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wasm = dir.path().join("seeded.wasm");
    std::fs::write(&wasm, firedrill_tests::SEEDED).unwrap();
    for seed in ["1", "2", "3"] {
        assert!(
            firedrill(&data)
                .args(["run", wasm.to_str().unwrap(), "--seed", seed])
                .status()
                .unwrap()
                .success()
        );
    }
    let o = firedrill(&data)
        .args(["history", "trend", "seeded", "--measure", "draw-0"])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(
        t.contains("seeded: 3/3 passed (100%) over the last 3 run(s)"),
        "{t}"
    );
    assert!(t.contains("draw-0: min"), "{t}");
    let o = firedrill(&data)
        .args(["history", "prune", "--keep", "1"])
        .output()
        .unwrap();
    assert!(text(&o).contains("deleted 2 run(s)"), "{}", text(&o));
    let o = firedrill(&data)
        .args(["history", "--json"])
        .output()
        .unwrap();
    let runs: Vec<firedrill::history::Run> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].seed, 3, "the newest is kept");
}

#[test]
fn the_committed_json_schema_matches_the_report_type() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schema/run-report.v1.json");
    let generated = RunReport::json_schema();
    if std::env::var_os("FIREDRILL_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/schema/run-report.v1.json is stale: run the tests with FIREDRILL_BLESS=1 (and bump the schema version if the change is not additive)"
    );
}

/// `firedrill check` over the drill files in tests/ui: each `NAME.toml` has
/// its exact output pinned in `NAME.out`. FIREDRILL_BLESS=1 rewrites them.
#[test]
fn check_snapshots() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui");
    let data = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&ui)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the ui fixtures are there");
    let mut stale = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let o = firedrill(data.path())
            .current_dir(&ui)
            .args(["check", name])
            .output()
            .unwrap();
        let got = format!("exit {}\n{}", o.status.code().unwrap_or(-1), text(&o));
        let expected_path = file.with_extension("out");
        if std::env::var_os("FIREDRILL_BLESS").is_some() {
            std::fs::write(&expected_path, &got).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            stale.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}
