//! `firedrill run --server URL --team TEAM`: launch on a `firedrill
//! serve` instead of here, so a CI job uses the team's shared targets
//! within its grants. The run's timeline streams back (server-sent
//! events) and the exit code is the run's, as for a local run; Ctrl-C,
//! SIGTERM or SIGHUP halt the run on the server, which reverts it.

use super::stop::Stop;
use super::{Exit, Failure, usage};
use firedrill::history::RunStatus;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The environment variable holding the API token.
pub(crate) const TOKEN_ENV: &str = "FIREDRILL_TOKEN";

/// What to launch.
pub(crate) struct Remote {
    pub(crate) server: String,
    pub(crate) team: Option<String>,
    pub(crate) scenario: String,
    pub(crate) params: BTreeMap<String, String>,
    pub(crate) targets: BTreeMap<String, String>,
    pub(crate) dry_run: bool,
    pub(crate) seed: Option<u64>,
}

fn failed(server: &str) -> impl Fn(reqwest::Error) -> Failure + '_ {
    move |e| {
        usage(format!(
            "--server {server}: {e}; is `firedrill serve` running there?"
        ))
    }
}

pub(crate) async fn run(r: Remote) -> Result<Exit, Failure> {
    let stop = Stop::install()?;
    let token = std::env::var(TOKEN_ENV).map_err(|_| {
        usage(format!(
            "--server needs an API token in {TOKEN_ENV} (an admin makes one: POST /api/v1/tokens)"
        ))
    })?;
    let team = r
        .team
        .as_deref()
        .ok_or_else(|| usage("--server needs --team TEAM: the team the run is for"))?;
    let base = r.server.trim_end_matches('/').to_string();
    let client = reqwest::Client::new();
    let auth = format!("Bearer {token}");
    let answer = client
        .post(format!("{base}/api/v1/teams/{team}/runs"))
        .header("authorization", &auth)
        .json(&json!({
            "scenario": r.scenario,
            "params": r.params,
            "targets": r.targets,
            "dry_run": r.dry_run,
            "seed": r.seed,
        }))
        .send()
        .await
        .map_err(failed(&base))?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    if status.as_u16() != 202 {
        let mut message = format!(
            "{base} refused the launch ({status}): {}",
            body["error"].as_str().unwrap_or("no reason given")
        );
        for p in body["problems"].as_array().into_iter().flatten() {
            message += &format!("\n  {}", p.as_str().unwrap_or_default());
        }
        return Err(if status.is_server_error() {
            Failure {
                exit: Exit::Internal,
                error: anyhow::anyhow!(message),
            }
        } else {
            usage(message)
        });
    }
    let run = body["run"].as_str().unwrap_or_default().to_string();
    println!("run {run} launched on {base} for team {team}");
    let mut events = client
        .get(format!("{base}/api/v1/teams/{team}/runs/{run}/events"))
        .header("authorization", &auth)
        .send()
        .await
        .map_err(failed(&base))?;
    let mut buffer = String::new();
    let mut halted = false;
    loop {
        let chunk = tokio::select! {
            chunk = events.chunk() => chunk.map_err(failed(&base))?,
            signal = stop.wait(), if !halted => {
                halted = true;
                eprintln!("{signal}: halting run {run} on {base}");
                client
                    .post(format!("{base}/api/v1/teams/{team}/runs/{run}/halt"))
                    .header("authorization", &auth)
                    .send()
                    .await
                    .map_err(failed(&base))?;
                continue;
            }
        };
        let Some(chunk) = chunk else {
            return Err(Failure {
                exit: Exit::Internal,
                error: anyhow::anyhow!(
                    "{base} closed the run's stream before it ended: `firedrill show` there, or GET /api/v1/teams/{team}/runs/{run}"
                ),
            });
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let data: String = message
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            let Ok(event) = serde_json::from_str::<Value>(&data) else {
                continue; // keep-alives and comments
            };
            println!("{}", event["line"].as_str().unwrap_or_default());
            if let Some(final_status) = event["status"].as_str() {
                let status: RunStatus = serde_json::from_value(Value::String(final_status.into()))
                    .unwrap_or(RunStatus::Crashed);
                println!("run {run}: {}", final_status.to_uppercase());
                return Ok(Exit::of(status));
            }
        }
    }
}
