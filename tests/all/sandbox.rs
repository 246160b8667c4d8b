//! Hostile and broken guests are stopped or refused with a clear cause; the
//! engine keeps serving, and faults they made are reverted.

use crate::support::*;
use firedrill::history::{EventKind, RunStatus};
use firedrill::runtime::LoadError;
use firedrill::{Engine, EngineBuilder, EngineError, RunSpec};
use std::time::Duration;

async fn run_guest(
    engine: &Engine,
    bytes: &[u8],
    name: &str,
    timeout: Duration,
) -> firedrill::history::Run {
    let mut spec = RunSpec::new(engine.load(bytes, name).unwrap());
    spec.limits.timeout = timeout;
    engine.run(spec).await.unwrap()
}

/// The run was aborted with an error naming `cause`.
fn assert_aborted(run: &firedrill::history::Run, cause: &str) {
    assert_eq!(run.status, RunStatus::Aborted);
    assert!(
        run.error.as_deref().unwrap().contains(cause),
        "{:?}",
        run.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_are_stopped_with_their_cause_and_the_engine_goes_on() {
    let engine = EngineBuilder::new().build().unwrap();

    let spin = run_guest(
        &engine,
        firedrill_tests::SPIN,
        "spin",
        Duration::from_millis(500),
    )
    .await;
    assert_aborted(&spin, "time limit of 500ms exceeded");

    let bomb = run_guest(
        &engine,
        firedrill_tests::MEMORY_BOMB,
        "memory-bomb",
        Duration::from_secs(30),
    )
    .await;
    assert_aborted(&bomb, "memory limit of 64 MiB exceeded");

    let panic = run_guest(
        &engine,
        firedrill_tests::PANIC,
        "panic",
        Duration::from_secs(30),
    )
    .await;
    assert_aborted(&panic, "run() trapped");
    let timeline = engine.history().timeline(panic.id).unwrap();
    let stderr: String = timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Output { stream, text } if stream == "stderr" => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert!(
        stderr.contains("scenario panicked on purpose"),
        "guest stderr goes to the run's log: {stderr:?}"
    );

    // After all that, a well-behaved guest runs normally, with the same seed
    // giving the same draws.
    let mut spec = RunSpec::new(engine.load(firedrill_tests::SEEDED, "seeded").unwrap());
    spec.seed = Some(7);
    let a = engine.run(spec.clone()).await.unwrap();
    let b = engine.run(spec).await.unwrap();
    assert_eq!(a.status, RunStatus::Passed);
    assert_eq!(
        a.outcome.as_ref().unwrap().measurements,
        b.outcome.as_ref().unwrap().measurements
    );
    // Each of them is in history.
    assert_eq!(
        engine
            .history()
            .list_runs(&Default::default())
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test]
async fn components_that_are_not_scenarios_are_refused_clearly() {
    let engine = EngineBuilder::new().build().unwrap();
    let err = |bytes: &[u8]| engine.load(bytes, "bad.wasm").unwrap_err();

    let e = err(firedrill_tests::OTHER_WORLD);
    assert!(
        matches!(e, EngineError::Load(LoadError::WrongWorld { .. })),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("bad.wasm is not a firedrill scenario"),
        "{e}"
    );

    let core = b"\0asm\x01\0\0\0";
    let e = err(core);
    assert!(
        e.to_string()
            .contains("is a core WebAssembly module, not a component"),
        "{e}"
    );

    let truncated = &firedrill::bundled::get("latency-ramp").unwrap()[..1000];
    let e = err(truncated);
    assert!(
        e.to_string()
            .starts_with("bad.wasm is not a valid WebAssembly component"),
        "{e}"
    );

    let e = err(b"#!/bin/sh\necho not wasm\n");
    assert!(
        matches!(e, EngineError::Load(LoadError::NotWasm { .. })),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "bad.wasm: not a WebAssembly component (starts with bytes 23 21 2f 62 …; expected `\\0asm`)"
    );
    // Whatever wasmtime says of a damaged component fits on one line.
    assert!(!err(truncated).to_string().contains('\n'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_stopped_by_its_time_limit_has_its_faults_reverted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = EngineBuilder::new().build().unwrap();
    let (mut victim, targets) = victim_target(dir.path(), &engine).await;
    let mut spec = RunSpec::new(engine.load(firedrill_tests::PAUSER, "pauser").unwrap());
    spec.targets = targets;
    spec.limits.timeout = Duration::from_millis(700);
    let handle = engine.start(spec).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || proc_state(victim.id())
            == Some('T'))
        .await,
        "victim paused"
    );
    let run = handle.wait().await;
    assert_eq!(run.status, RunStatus::Aborted, "{run:#?}");
    assert!(
        run.error.as_deref().unwrap().contains("time limit"),
        "{:?}",
        run.error
    );
    assert!(
        eventually(Duration::from_secs(2), || proc_state(victim.id())
            != Some('T'))
        .await,
        "victim continued"
    );
    let ledger = engine.ledger().entries(run.id).unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].state, firedrill::ledger::LedgerState::Reverted);
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_engine_runs_many_runs_at_once() {
    let engine = EngineBuilder::new().build().unwrap();
    let seeded = engine.load(firedrill_tests::SEEDED, "seeded").unwrap();
    let sleeper = engine.load(firedrill_tests::SLEEPER, "sleeper").unwrap();
    let mut handles = Vec::new();
    for i in 0..8u64 {
        let mut spec = RunSpec::new(if i % 2 == 0 {
            seeded.clone()
        } else {
            sleeper.clone()
        });
        spec.seed = Some(i);
        if i % 2 == 1 {
            spec.params.insert("hold".into(), "200ms".into());
        }
        handles.push(engine.start(spec).unwrap());
    }
    assert!(engine.active_runs().len() >= 4, "runs overlap");
    for h in handles {
        assert_eq!(h.wait().await.status, RunStatus::Passed);
    }
    assert!(engine.active_runs().is_empty());
    assert_eq!(
        engine
            .history()
            .list_runs(&Default::default())
            .unwrap()
            .len(),
        8
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_beyond_the_instance_pool_wait_for_a_slot_then_pass() {
    // Two slots, six runs that each hold theirs for 300 ms: they go in
    // three waves, and none fails for want of room.
    let engine = EngineBuilder::new().max_concurrent_runs(2).build().unwrap();
    let sleeper = engine.load(firedrill_tests::SLEEPER, "sleeper").unwrap();
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let mut spec = RunSpec::new(sleeper.clone());
            spec.params.insert("hold".into(), "300ms".into());
            engine.start(spec).unwrap()
        })
        .collect();
    for h in handles {
        let run = h.wait().await;
        assert_eq!(run.status, RunStatus::Passed, "{:?}", run.error);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "six 300 ms runs through two slots took only {:?}",
        started.elapsed()
    );
    // A hostile guest in a reused slot is still contained, and the slot is
    // given back after it.
    let bomb = engine
        .load(firedrill_tests::MEMORY_BOMB, "memory-bomb")
        .unwrap();
    let run = engine.run(RunSpec::new(bomb)).await.unwrap();
    assert_eq!(run.status, RunStatus::Aborted);
    let mut spec = RunSpec::new(sleeper);
    spec.params.insert("hold".into(), "10ms".into());
    let run = engine.run(spec).await.unwrap();
    assert_eq!(run.status, RunStatus::Passed, "{:?}", run.error);
}

#[tokio::test]
async fn the_compiled_code_cache_never_loads_a_file_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = EngineBuilder::new()
            .data_dir(dir.path())
            .control_socket(false)
            .build()
            .unwrap();
        engine.load(firedrill_tests::SEEDED, "seeded").unwrap();
    }
    let cache = dir.path().join("cache");
    let file = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(file.to_str().unwrap().ends_with(".cwasm"));
    let written = std::fs::read(&file).unwrap();
    // Someone replaces the compiled code with other bytes.
    let mut tampered = written.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0xff;
    std::fs::write(&file, &tampered).unwrap();

    let engine = EngineBuilder::new()
        .data_dir(dir.path())
        .control_socket(false)
        .build()
        .unwrap();
    let scenario = engine.load(firedrill_tests::SEEDED, "seeded").unwrap();
    assert_eq!(
        engine.run(RunSpec::new(scenario)).await.unwrap().status,
        RunStatus::Passed
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        written,
        "the tampered file was recompiled over, not loaded"
    );
}

fn rss_mib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096 / (1 << 20)
}

/// The hostile corpus of tests/guests, each stopped or refused with a clear
/// cause; the engine keeps serving, memory settles, history records each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_corpus_is_contained() {
    let dir = tempfile::tempdir().unwrap();
    let engine = EngineBuilder::new().build().unwrap();
    let (mut victim, targets) = victim_target(dir.path(), &engine).await;
    let err = engine
        .load(firedrill_tests::BAD_IMPORT, "bad-import.wasm")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "bad-import.wasm imports test:evil/backdoor, which firedrill does not provide"
        ),
        "{err}"
    );

    let cases: [(&str, &[u8], RunStatus, &str); 6] = [
        (
            "recurse",
            firedrill_tests::RECURSE,
            RunStatus::Aborted,
            "run() trapped: wasm trap: out of bounds memory access",
        ),
        (
            "log-flood",
            firedrill_tests::LOG_FLOOD,
            RunStatus::Aborted,
            "log limit of 8 MiB exceeded",
        ),
        (
            "huge-outcome",
            firedrill_tests::HUGE_OUTCOME,
            RunStatus::Aborted,
            "the outcome is too large (200000 findings",
        ),
        (
            "sleep-loop",
            firedrill_tests::SLEEP_LOOP,
            RunStatus::Aborted,
            "time limit of 1s exceeded",
        ),
        (
            "fault-flood",
            firedrill_tests::FAULT_FLOOD,
            RunStatus::Passed,
            "",
        ),
        ("absurd", firedrill_tests::ABSURD, RunStatus::Passed, ""),
    ];
    let mut baseline = 0;
    for round in 0..3 {
        for (name, bytes, status, cause) in &cases {
            let mut spec = RunSpec::new(engine.load(bytes, name).unwrap());
            spec.targets = targets.clone();
            spec.limits.timeout = Duration::from_secs(1);
            let run = engine.run(spec).await.unwrap();
            assert_eq!(run.status, *status, "{name}: {run:#?}");
            assert!(
                run.error.as_deref().unwrap_or("").contains(cause),
                "{name}: {:?}",
                run.error
            );
            if *name == "fault-flood" {
                let m = &run.outcome.as_ref().unwrap().measurements;
                assert_eq!(
                    m.iter().find(|m| m.name == "applied").unwrap().value,
                    8.0,
                    "max_concurrent_faults holds"
                );
                let f = &run.outcome.as_ref().unwrap().findings[0].detail;
                assert!(f.contains("max_concurrent_faults (8) reached"), "{f}");
                assert_ne!(proc_state(victim.id()), Some('T'), "all 8 pauses reverted");
            }
            if *name == "absurd" {
                let findings = &run.outcome.as_ref().unwrap().findings;
                let detail = |t: &str| {
                    findings
                        .iter()
                        .find(|f| f.title == t)
                        .map(|f| f.detail.clone())
                        .unwrap_or_default()
                };
                assert!(
                    detail("delay").contains("longer than the 7 day maximum"),
                    "{findings:#?}"
                );
                assert_eq!(detail("sleep-zero"), "ok");
                assert!(
                    !detail("http").is_empty() && detail("http") != "ok",
                    "{findings:#?}"
                );
            }
        }
        if round == 0 {
            baseline = rss_mib();
        }
    }
    // The test process's memory also holds what tests running beside this
    // one allocate: a leak grows with every round, noise does not.
    let grown = rss_mib().saturating_sub(baseline);
    if grown >= 64 {
        let before = rss_mib();
        for _ in 0..2 {
            for (name, bytes, _, _) in &cases {
                let mut spec = RunSpec::new(engine.load(bytes, name).unwrap());
                spec.targets = targets.clone();
                spec.limits.timeout = Duration::from_secs(1);
                let _ = engine.run(spec).await;
            }
        }
        let again = rss_mib().saturating_sub(before);
        assert!(
            again < 64,
            "memory settles after the first round: grew {grown} MiB over two more rounds, then {again} MiB over two after that"
        );
    }
    // Still serving, and every run is in history.
    let ok = engine
        .run(RunSpec::new(
            engine.load(firedrill_tests::SEEDED, "seeded").unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(ok.status, RunStatus::Passed);
    assert_eq!(
        engine
            .history()
            .list_runs(&Default::default())
            .unwrap()
            .len(),
        3 * cases.len() + 1
    );
    targets.shutdown().await;
    victim.kill().unwrap();
    victim.wait().unwrap();
}
