//! The `firedrill` command: a thin layer over the engine library. Parses the
//! command line, runs the verb, maps the result to an exit code (see
//! `cli::Exit`) and prints the cause chain of errors.

mod cli;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(cli::Exit::Usage as u8),
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIREDRILL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: in a CI log or a file
        // the escape codes are noise (sled's warnings carried them).
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::Exit::Internal as u8);
        }
    };
    let code = runtime.block_on(cli::dispatch(args));
    // Do not wait for lingering tasks (proxies, supervisors) at exit.
    runtime.shutdown_background();
    ExitCode::from(code as u8)
}
