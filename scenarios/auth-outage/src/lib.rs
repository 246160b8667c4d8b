//! # auth-outage
//!
//! Makes authentication fail on an API for a while and checks that every
//! request is rejected during the outage and that the API serves again
//! after it.
//!
//! 1. `GET <path>` on `api` with `Authorization: Bearer <token>` (or, with
//!    `scheme = "basic"`, `Basic` and `user`:`password`) must answer 200, or
//!    the run fails.
//! 2. A `fail-auth` fault in `mode` (`reject`, `strip` or `corrupt`) is
//!    applied for `outage`; `samples` authenticated probes are sent during
//!    it and each should be rejected with 401 or 403. In `reject` mode a
//!    rejection should also carry a `WWW-Authenticate` challenge.
//! 3. After the rest of the outage the fault is reverted and the probe is
//!    retried (up to 10 times, 100 ms apart) until it answers 200.
//!
//! Passes iff every probe during the outage was rejected and the API
//! recovered. Measures `rejected-during-outage` (%) and `recovered-after`
//! (ms from the revert, when it recovered).

use std::time::Duration;

use firedrill_sdk::*;

struct AuthOutage;

const RECOVERY_TRIES: u32 = 10;
const RECOVERY_GAP: Duration = Duration::from_millis(100);

fn api() -> String {
    host::param_or("api", "api-link")
}

impl Scenario for AuthOutage {
    fn describe() -> Metadata {
        Metadata::new(
            "auth-outage",
            "0.1.0",
            "Makes authentication fail on an HTTP API for a while, checks that every \
             authenticated request is rejected during the outage and that the API \
             serves again after it.",
        )
        .param(
            "api",
            ParamType::String,
            Some("api-link"),
            "The HTTP proxy target in front of the API",
        )
        .param(
            "path",
            ParamType::String,
            Some("/api/orders"),
            "An authenticated path to probe",
        )
        .param(
            "scheme",
            ParamType::String,
            Some("bearer"),
            "How clients authenticate: bearer (`token`) or basic (`user`, `password`)",
        )
        .param(
            "token",
            ParamType::String,
            Some("demo-token"),
            "scheme = bearer: a valid bearer token",
        )
        .secret()
        .param(
            "user",
            ParamType::String,
            Some(""),
            "scheme = basic: a user name the API accepts",
        )
        .param(
            "password",
            ParamType::String,
            Some(""),
            "scheme = basic: that user's password",
        )
        .secret()
        .param(
            "mode",
            ParamType::String,
            Some("reject"),
            "How auth fails: reject, strip, corrupt or expire",
        )
        .param(
            "outage",
            ParamType::Duration,
            Some("1s"),
            "How long the outage lasts",
        )
        .param(
            "samples",
            ParamType::Integer,
            Some("5"),
            "Probes sent during the outage",
        )
        .need(FaultKind::FailAuth, api())
    }

    fn run() -> Result<Outcome, Error> {
        let api = api();
        let path = host::param_or("path", "/api/orders");
        let token = host::param_or("token", "demo-token");
        let mode_name = host::param_or("mode", "reject");
        let mode: AuthMode = mode_name.parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "parameter `mode`: {mode_name:?} is not one of reject, strip, corrupt, expire"
            ))
        })?;
        let outage = host::param_duration("outage", Duration::from_secs(1))?;
        let samples = host::param_u64("samples", 5)?;
        if samples == 0 {
            return Err(Error::InvalidArgument(
                "parameter `samples`: must be at least 1".into(),
            ));
        }
        let request = match host::param_or("scheme", "bearer").as_str() {
            "bearer" => HttpRequest::get(&path).bearer(&token),
            "basic" => HttpRequest::get(&path)
                .basic_auth(&host::param_or("user", ""), &host::param_or("password", "")),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "parameter `scheme`: {other:?} is not one of bearer, basic"
                )));
            }
        };

        // 1. Serving before?
        let status = status_of(request.send(&api))?;
        if status != Some(200) {
            return Ok(
                Outcome::fail(format!("{api}{path} did not serve before the outage")).finding(
                    Severity::Critical,
                    "not serving before the outage",
                    format!("GET {path} on {api} with the token: {}", answer(status)),
                ),
            );
        }

        // 2. The outage.
        host::event(
            "outage",
            &format!("fail-auth ({mode_name}) on {api} for {outage:?}"),
        );
        let started = host::now();
        let fault = faults::fail_auth(&api, mode).for_duration(outage).apply()?;
        let mut rejected = 0u64;
        let mut let_through = Vec::new();
        let mut without_challenge = 0u64;
        for _ in 0..samples {
            match request.send(&api) {
                Ok(response) if matches!(response.status, 401 | 403) => {
                    rejected += 1;
                    if matches!(mode, AuthMode::Reject | AuthMode::Expire)
                        && response.header("www-authenticate").is_none()
                    {
                        without_challenge += 1;
                    }
                }
                other => let_through.push(answer(status_of(other)?)),
            }
        }
        host::sleep(outage.saturating_sub(host::now() - started))?;
        fault.revert()?;
        let reverted = host::now();

        // 3. Recovery.
        let mut recovered_after = None;
        for attempt in 0..RECOVERY_TRIES {
            if attempt > 0 {
                host::sleep(RECOVERY_GAP)?;
            }
            if status_of(request.send(&api))? == Some(200) {
                recovered_after = Some(host::now() - reverted);
                break;
            }
        }

        let all_rejected = rejected == samples;
        let summary = match (all_rejected, recovered_after) {
            (true, Some(_)) => {
                format!("all {samples} requests rejected during the outage; recovered")
            }
            (false, _) => format!(
                "{} of {samples} requests got through the auth outage",
                samples - rejected
            ),
            (true, None) => format!("{api} did not serve again after the outage"),
        };
        let mut outcome = if all_rejected && recovered_after.is_some() {
            Outcome::pass(summary)
        } else {
            Outcome::fail(summary)
        };
        if !all_rejected {
            outcome = outcome.finding(
                Severity::Critical,
                "requests not rejected during the auth outage",
                format!(
                    "GET {path} on {api} during the outage: {}",
                    let_through.join(", ")
                ),
            );
        }
        if without_challenge > 0 {
            outcome = outcome.finding(
                Severity::Warning,
                "rejection without WWW-Authenticate",
                format!(
                    "{without_challenge} of {rejected} rejections had no www-authenticate header"
                ),
            );
        }
        if recovered_after.is_none() {
            outcome = outcome.finding(
                Severity::Critical,
                "no recovery after the outage",
                format!(
                    "GET {path} on {api} did not answer 200 in {RECOVERY_TRIES} tries, {}ms apart",
                    RECOVERY_GAP.as_millis()
                ),
            );
        }
        outcome = outcome.measure(
            "rejected-during-outage",
            rejected as f64 * 100.0 / samples as f64,
            "%",
        );
        if let Some(after) = recovered_after {
            outcome = outcome.measure("recovered-after", after.as_nanos() as f64 / 1e6, "ms");
        }
        Ok(outcome)
    }
}

/// The status of a probe's answer, `None` if there was none; errors other
/// than a failed connection end the run.
fn status_of(result: Result<HttpResponse, Error>) -> Result<Option<u16>, Error> {
    match result {
        Ok(response) => Ok(Some(response.status)),
        Err(Error::Failed(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn answer(status: Option<u16>) -> String {
    match status {
        Some(status) => format!("status {status}"),
        None => "no answer".to_owned(),
    }
}

export_scenario!(AuthOutage);
