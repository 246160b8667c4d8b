//! Cold and warm start of one scenario written in Rust, Python and
//! JavaScript, side by side in one run, for docs/PERFORMANCE.md: the
//! README's slow-link (tests/guests/slow-link, tests/guests/python/slow_link
//! built with componentize-py, tests/guests/js/slow-link.js built with
//! componentize-js; the toolchains are installed under `target/toolchains`
//! on first use), run as a user runs it, `firedrill run drill.toml`, against
//! a real upstream through an HTTP proxy, with `latency=0ms` so the figure
//! is the engine's own work.
//!
//! - *cold*: a fresh data dir, nothing compiled;
//! - *after check*: a fresh data dir where `firedrill check` ran first (it
//!   compiles the component into the data dir's cache);
//! - *warm*: the same data dir again.
//!
//! Then, in-process, what compiling each component costs with each of
//! wasmtime's code generators, the options weighed for the first run.
//!
//! Rounds rotate the languages so noise hits each alike. Run it with
//! `cargo bench -p firedrill-cli --bench startup` (`-- --quick`: one round, no
//! compilers' table).

use firedrill_tests::{median_duration as median, timed};

// The allocator the `firedrill` binary uses, so that compiling in-process
// here costs what it costs there.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Lang {
    name: &'static str,
    wasm: Vec<u8>,
    cold: Vec<Duration>,
    checked: Vec<Duration>,
    check: Vec<Duration>,
    warm: Vec<Duration>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 5 };
    let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/guests");
    let toolchains = firedrill_tests::toolchains::dir();
    eprintln!(
        "building the Python and JavaScript components (toolchains in {})",
        toolchains.display()
    );
    let python = guests.join("python/slow_link");
    let mut langs = vec![
        lang("Rust", firedrill_tests::SLOW_LINK.to_vec()),
        lang(
            "Python",
            firedrill_tests::toolchains::python(&python, false),
        ),
        lang(
            "Python, --stub-wasi",
            firedrill_tests::toolchains::python(&python, true),
        ),
        lang(
            "JavaScript",
            firedrill_tests::toolchains::javascript(&guests.join("js/slow-link.js")),
        ),
    ];
    let upstream = firedrill_tests::Upstream::start("t").await;
    let scratch = tempfile::tempdir()?;
    let mut floor = Vec::new();
    for round in 0..rounds {
        let count = langs.len();
        for i in 0..count {
            let l = &mut langs[(i + round) % count];
            let dir = scratch.path().join(format!("{}-{round}", slug(l.name)));
            std::fs::create_dir_all(&dir)?;
            let drill = drill(&dir, &l.wasm, upstream.addr)?;
            let data = dir.join("cold");
            l.cold.push(timed(&mut run(&data, &drill))?);
            l.warm.push(timed(&mut run(&data, &drill))?);
            let data = dir.join("checked");
            l.check
                .push(timed(&mut firedrill(&data, &["check"], &drill))?);
            l.checked.push(timed(&mut run(&data, &drill))?);
            floor.push(timed(&mut Command::new("true"))?);
        }
    }
    println!(
        "| scenario | size | cold: first `firedrill run` | `firedrill check` | first run after check | warm run | n |"
    );
    println!("|---|---|---|---|---|---|---|");
    for l in &langs {
        println!(
            "| slow-link, {} | {:.1} MB | **{:.0} ms** | {:.0} ms | **{:.0} ms** | {:.0} ms | {rounds} |",
            l.name,
            l.wasm.len() as f64 / 1e6,
            ms(median(&l.cold)),
            ms(median(&l.check)),
            ms(median(&l.checked)),
            ms(median(&l.warm)),
        );
    }
    println!(
        "| `true`, the floor of starting and reaping any process | | {:.1} ms | | | | {} |",
        ms(median(&floor)),
        floor.len()
    );
    if quick {
        // The smoke run skips the compilers' table: a minute of compiling.
        return Ok(());
    }
    println!();
    compilers(&langs, 3)
}

fn lang(name: &'static str, wasm: Vec<u8>) -> Lang {
    Lang {
        name,
        wasm,
        cold: vec![],
        checked: vec![],
        check: vec![],
        warm: vec![],
    }
}

/// In-process: compiling each component with each code generator, and
/// loading the compiled code back.
fn compilers(langs: &[Lang], n: usize) -> anyhow::Result<()> {
    use wasmtime::component::Component;
    use wasmtime::{Config, Engine, OptLevel, RegallocAlgorithm, Strategy};
    type Setting = (&'static str, fn(&mut Config));
    let configs: [Setting; 6] = [
        ("Cranelift, optimizing, parallel", |_| {}),
        ("Cranelift, optimizing, one thread", |c| {
            c.parallel_compilation(false);
        }),
        ("Cranelift, no optimization", |c| {
            c.cranelift_opt_level(OptLevel::None);
        }),
        (
            "Winch (baseline), its trampolines by optimizing Cranelift",
            |c| {
                c.strategy(Strategy::Winch);
            },
        ),
        ("Winch, trampolines unoptimized", |c| {
            c.strategy(Strategy::Winch)
                .cranelift_opt_level(OptLevel::None);
        }),
        (
            "… and single-pass register allocation, no address map, no native unwind info: firedrill's first compile",
            |c| {
                c.strategy(Strategy::Winch)
                    .cranelift_opt_level(OptLevel::None)
                    .cranelift_regalloc_algorithm(RegallocAlgorithm::SinglePass)
                    .generate_address_map(false)
                    .native_unwind_info(false);
            },
        ),
    ];
    print!("| compiling (median of {n}) |");
    for l in langs {
        print!(" {} |", l.name);
    }
    println!();
    println!("|---|{}", "---|".repeat(langs.len()));
    for (name, set) in configs {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        set(&mut config);
        let engine = Engine::new(&config)?;
        print!("| {name} |");
        let mut loads = Vec::new();
        for l in langs {
            let mut took = Vec::new();
            let mut compiled = None;
            for _ in 0..n {
                let t = Instant::now();
                match Component::from_binary(&engine, &l.wasm) {
                    Ok(c) => {
                        took.push(t.elapsed());
                        compiled = Some(c);
                    }
                    Err(e) => {
                        print!(" fails: {} |", one_line(&format!("{e:#}")));
                        break;
                    }
                }
            }
            let Some(c) = compiled else {
                loads.push(None);
                continue;
            };
            print!(" {:.0} ms |", ms(median(&took)));
            let bytes = c.serialize()?;
            let t = Instant::now();
            // SAFETY: the bytes were serialized by this engine just above.
            #[allow(unsafe_code)]
            let _ = unsafe { Component::deserialize(&engine, &bytes)? };
            loads.push(Some((t.elapsed(), bytes.len())));
        }
        println!();
        print!("| … its compiled code loaded back (size) |");
        for l in loads {
            match l {
                Some((t, size)) => print!(" {:.0} ms ({:.0} MB) |", ms(t), size as f64 / 1e6),
                None => print!(" — |"),
            }
        }
        println!();
    }
    Ok(())
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(120).collect()
}

fn slug(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

fn drill(dir: &Path, wasm: &[u8], upstream: std::net::SocketAddr) -> anyhow::Result<PathBuf> {
    std::fs::write(dir.join("scenario.wasm"), wasm)?;
    let path = dir.join("drill.toml");
    std::fs::write(
        &path,
        format!(
            "[scenario]\npath = \"scenario.wasm\"\nparams = {{ latency = \"0ms\" }}\n\
             [targets.api-link]\nkind = \"proxy\"\nmode = \"http\"\nlisten = \"127.0.0.1:0\"\n\
             upstream = \"{upstream}\"\ngrants = [\"delay\"]\n"
        ),
    )?;
    Ok(path)
}

fn firedrill(data: &Path, args: &[&str], drill: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_firedrill"));
    c.env("FIREDRILL_DATA_DIR", data)
        .args(args)
        .arg(drill)
        .stdout(std::process::Stdio::null());
    c
}

fn run(data: &Path, drill: &Path) -> Command {
    firedrill(data, &["run"], drill)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
