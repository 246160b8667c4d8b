//! Toxiproxy toxics as firedrill proxy effects: the principal function is
//! [`effect`], which turns a toxic's type and attributes (in Toxiproxy's
//! units: milliseconds, KB/s, microseconds for the slicer) into an
//! [`Effect`]; [`describe`] goes the other way for faults that scenarios
//! made, so both show up in one list.

use super::ApiError;
use crate::drivers::proxy::{Direction, Effect};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The toxic types Toxiproxy 2.x registers, with their attributes and
/// zero defaults in the order Toxiproxy lists them; then firedrill's own,
/// for faults Toxiproxy lacks.
const TYPES: &[(&str, &[&str])] = &[
    ("noop", &[]),
    ("latency", &["latency", "jitter"]),
    ("bandwidth", &["rate"]),
    ("slow_close", &["delay"]),
    ("timeout", &["timeout"]),
    ("reset_peer", &["timeout"]),
    ("slicer", &["average_size", "size_variation", "delay"]),
    ("limit_data", &["bytes"]),
    ("firedrill_connect_delay", &["latency", "jitter"]),
    ("firedrill_refuse", &[]),
];

/// Whether `kind` is a toxic type.
pub fn known(kind: &str) -> bool {
    TYPES.iter().any(|(t, _)| *t == kind)
}

/// The unit of an attribute, in Toxiproxy's terms, for error messages.
fn unit(kind: &str, name: &str) -> &'static str {
    match (kind, name) {
        ("slicer", "delay") => "microseconds",
        (_, "rate") => "KB/s",
        (_, "bytes" | "average_size" | "size_variation") => "bytes",
        _ => "milliseconds",
    }
}

/// Every attribute of `kind`, zero unless `given` sets it; `given` keys
/// that the type does not have are ignored, as Toxiproxy's decoder does.
///
/// Unlike Toxiproxy, values out of range are refused, naming the
/// attribute: a negative latency, rate, size or timeout would be read as
/// zero (a rate of zero stalls the stream) instead of saying what is
/// wrong, and a slicer needs pieces of at least a byte.
pub fn attributes(kind: &str, given: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let names = TYPES
        .iter()
        .find(|(t, _)| *t == kind)
        .map(|(_, a)| *a)
        .unwrap_or_default();
    let mut out = Map::new();
    for name in names {
        let v = match given.get(*name) {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_i64().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "bad request body: json: cannot unmarshal {v} into Go struct field {kind}.attributes.{name} of type int64"
                ))
            })?,
        };
        let least = if (kind, *name) == ("slicer", "average_size") {
            1
        } else {
            0
        };
        if v < least {
            let got = match given.get(*name) {
                None | Some(Value::Null) => format!("none given (the default is {v})"),
                Some(_) => format!("got {v}"),
            };
            return Err(ApiError::bad_request(format!(
                "attributes.{name}: must be {least} or more ({}) for a {kind} toxic, {got}",
                unit(kind, name)
            )));
        }
        out.insert((*name).to_string(), json!(v));
    }
    Ok(out)
}

/// An attribute as checked by [`attributes`] (never negative there).
fn get(attrs: &Map<String, Value>, name: &str) -> u64 {
    attrs.get(name).and_then(Value::as_i64).unwrap_or(0).max(0) as u64
}

/// The effect of a toxic; `None` for `noop`.
pub fn effect(kind: &str, attrs: &Map<String, Value>, stream: Direction) -> Option<Effect> {
    let ms = |name| Duration::from_millis(get(attrs, name));
    Some(match kind {
        // Toxiproxy's jitter is ± around the latency; ours is added on top.
        "latency" => {
            let (latency, jitter) = (ms("latency"), ms("jitter"));
            let low = latency.saturating_sub(jitter);
            Effect::Delay {
                latency: low,
                jitter: latency + jitter - low,
                direction: stream,
            }
        }
        // A rate of 0 stalls the stream until removed (Testcontainers cuts
        // connections this way).
        "bandwidth" if get(attrs, "rate") == 0 => Effect::Blackhole { direction: stream },
        "bandwidth" => Effect::Bandwidth {
            rate: get(attrs, "rate").saturating_mul(1000),
            direction: stream,
        },
        "slow_close" => Effect::SlowClose {
            delay: ms("delay"),
            direction: stream,
        },
        "timeout" => Effect::Timeout {
            after: ms("timeout"),
            direction: stream,
            close_on_revert: true,
        },
        "reset_peer" => Effect::ResetPeer {
            after: ms("timeout"),
            direction: Direction::Both,
        },
        "slicer" => Effect::Slicer {
            average: get(attrs, "average_size").max(1) as usize,
            variation: get(attrs, "size_variation") as usize,
            delay: Duration::from_micros(get(attrs, "delay")),
            direction: stream,
        },
        "limit_data" => Effect::LimitData {
            bytes: get(attrs, "bytes"),
            direction: stream,
        },
        "firedrill_connect_delay" => Effect::ConnectDelay {
            latency: ms("latency"),
            jitter: ms("jitter"),
        },
        "firedrill_refuse" => Effect::Refuse,
        _ => return None,
    })
}

/// A fault a scenario made, as the nearest toxic type and attributes.
pub fn describe(effect: &Effect) -> (&'static str, Value) {
    let ms = |d: &Duration| d.as_millis() as u64;
    match effect {
        Effect::Delay {
            latency, jitter, ..
        } => (
            "latency",
            json!({"latency": ms(latency) + ms(jitter) / 2, "jitter": ms(jitter) / 2}),
        ),
        Effect::ConnectDelay { latency, jitter } => (
            "firedrill_connect_delay",
            json!({"latency": ms(latency), "jitter": ms(jitter)}),
        ),
        Effect::Bandwidth { rate, .. } => ("bandwidth", json!({"rate": rate / 1000})),
        Effect::Blackhole { .. } => ("bandwidth", json!({"rate": 0})),
        Effect::Refuse => ("firedrill_refuse", json!({})),
        Effect::ResetPeer { after, .. } => ("reset_peer", json!({"timeout": ms(after)})),
        Effect::Timeout { after, .. } => ("timeout", json!({"timeout": ms(after)})),
        Effect::SlowClose { delay, .. } => ("slow_close", json!({"delay": ms(delay)})),
        Effect::Slicer {
            average,
            variation,
            delay,
            ..
        } => (
            "slicer",
            json!({"average_size": average, "size_variation": variation, "delay": delay.as_micros() as u64}),
        ),
        Effect::LimitData { bytes, .. } => ("limit_data", json!({"bytes": bytes})),
        Effect::FailAuth { status, .. } => ("firedrill_fail_auth", json!({"status": status})),
        Effect::HttpError { status, .. } => ("firedrill_http_error", json!({"status": status})),
        Effect::HttpAbort { reset, .. } => ("firedrill_http_abort", json!({"reset": reset})),
        Effect::HttpModify { patch } => ("firedrill_http_modify", json!({"status": patch.status})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_jitter_is_centred_like_toxiproxy() {
        let attrs = attributes(
            "latency",
            json!({"latency": 100, "jitter": 10}).as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(
            effect("latency", &attrs, Direction::Downstream),
            Some(Effect::Delay {
                latency: Duration::from_millis(90),
                jitter: Duration::from_millis(20),
                direction: Direction::Downstream
            })
        );
    }

    #[test]
    fn attributes_fill_zeros_and_reject_fractions() {
        let a = attributes("slicer", json!({"average_size": 64}).as_object().unwrap()).unwrap();
        assert_eq!(
            Value::Object(a),
            json!({"average_size": 64, "size_variation": 0, "delay": 0})
        );
        assert!(attributes("latency", json!({"latency": 1.5}).as_object().unwrap()).is_err());
    }

    #[test]
    fn out_of_range_attributes_name_the_field() {
        let refused = |kind: &str, given: Value| {
            attributes(kind, given.as_object().unwrap())
                .unwrap_err()
                .message
        };
        assert_eq!(
            refused("latency", json!({"latency": 10, "jitter": -1})),
            "attributes.jitter: must be 0 or more (milliseconds) for a latency toxic, got -1"
        );
        assert_eq!(
            refused("slicer", json!({"size_variation": 4})),
            "attributes.average_size: must be 1 or more (bytes) for a slicer toxic, none given (the default is 0)"
        );
        assert_eq!(
            refused("slicer", json!({"average_size": 8, "delay": -3})),
            "attributes.delay: must be 0 or more (microseconds) for a slicer toxic, got -3"
        );
        // Zero stays valid where it means something: a stalled stream, a
        // timeout that never fires, a limit that closes at once.
        for (kind, name) in [
            ("bandwidth", "rate"),
            ("timeout", "timeout"),
            ("limit_data", "bytes"),
        ] {
            assert!(attributes(kind, json!({name: 0}).as_object().unwrap()).is_ok());
        }
    }
}
