//! firedrill's integration tests: real processes, real sockets on loopback,
//! real sled files, real components built from `scenarios/` and
//! `tests/guests/`.
//!
//! - `scenarios`: the bundled scenarios end to end, and `firedrill demo`.
//! - `faults`: each fault seen from a real client's side (401s, stripped
//!   headers, added latency, a killed and restarted process).
//! - `network`: the byte-stream faults of a TCP proxy from a client's side.
//! - `http`: the request-level faults of an HTTP proxy from a client's side.
//! - `sandbox`: hostile guests are stopped or refused with a clear cause.
//! - `recovery`: SIGKILL the engine mid-run; the next start reverts.
//! - `cli`: bad input, exit codes, halt by signal, dry run, inspect.
//! - `input`: values out of range, oversized parameters, unusable data
//!   dirs, files of the wrong kind: refused with the place and what to do.
//! - `toxiproxy`: `firedrill proxy serve` driven as Toxiproxy clients drive Toxiproxy.
//! - `services`: a pre-fork server paused, killed and stopped as a whole
//!   tree; its output in errors and timelines; line-protocol checks.
//! - `stop`: SIGINT, SIGTERM and SIGHUP (a real terminal hanging up) halt
//!   `run`, `replay` and `demo` and revert; `halt` persists until `resume`.
//! - `library`: the bundled scenario library against real third-party services.
//! - `pipeline`: reports, GitHub output, replay, diff, check, prune, trend.
//! - `packages`: signed packages published, searched, reviewed and
//!   installed; Debian's minisign CLI both ways; attacks refused.
//! - `serve`: `firedrill serve`: the route × role matrix, teams launching
//!   within their grants, halts, the audit log, tokens, sessions, CSRF,
//!   shutdown.
//! - `gameday`: game days end to end: a hidden start on Debian's nginx,
//!   Prometheus + blackbox exporter + Alertmanager detecting it, reports
//!   through the CLI, the API and chromium, the reveal, review, scoreboard;
//!   responders see nothing of the plan; a guardrail breach aborts.
//! - `toolchains`: Python and JavaScript scenarios built with componentize-py
//!   and componentize-js, installed on first use.

mod cli;
mod faults;
mod gameday;
mod http;
mod input;
mod library;
mod network;
mod packages;
mod pipeline;
mod recovery;
mod sandbox;
mod scenarios;
mod serve;
mod services;
mod stop;
mod support;
mod toolchains;
mod toxiproxy;
