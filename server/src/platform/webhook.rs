//! Deliveries of "a run ended" to the registered webhooks: a JSON `POST`
//! signed with HMAC-SHA256, tried three times (at once, after 1 s, after
//! 5 s); each outcome goes to the audit log.

use super::Platform;
use super::model::{LaunchedRun, Webhook};
use hmac::{Hmac, Mac};
use serde_json::json;
use std::time::Duration;

/// The header carrying the signature, `sha256=<hex>`.
pub(crate) const SIGNATURE_HEADER: &str = "x-firedrill-signature";

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Tell every webhook for `launched.team` that `run` ended.
pub(crate) async fn run_ended(p: &Platform, launched: &LaunchedRun, run: &firedrill::history::Run) {
    let hooks: Vec<Webhook> = match p.inner.store.webhooks() {
        Ok(h) => h
            .into_iter()
            .filter(|h| h.teams.is_empty() || h.teams.contains(&launched.team))
            .collect(),
        Err(e) => {
            tracing::error!("webhooks: {e}");
            return;
        }
    };
    if hooks.is_empty() {
        return;
    }
    let body = json!({
        "event": "run.ended",
        "run": launched.run,
        "team": launched.team,
        "launched_by": launched.launched_by,
        "scenario": launched.scenario,
        "package": run.scenario.package,
        "status": run.status.as_str(),
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "summary": run.outcome.as_ref().map(|o| o.summary.clone()),
        "error": run.error,
    })
    .to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    for hook in hooks {
        let mut outcome = String::new();
        for wait in [0, 1, 5] {
            tokio::time::sleep(Duration::from_secs(wait)).await;
            let sent = client
                .post(&hook.url)
                .header("content-type", "application/json")
                .header("x-firedrill-event", "run.ended")
                .header(SIGNATURE_HEADER, sign(&hook.secret, body.as_bytes()))
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    outcome.clear();
                    break;
                }
                Ok(r) => outcome = format!("{} answered {}", hook.url, r.status()),
                Err(e) => outcome = format!("{}: {e}", hook.url),
            }
        }
        let (result, detail) = if outcome.is_empty() {
            ("ok", hook.url.clone())
        } else {
            ("failed", outcome)
        };
        p.audit(
            "firedrill",
            "webhook",
            &format!("{} {}", hook.name, launched.run),
            result,
            &detail,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            super::sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
