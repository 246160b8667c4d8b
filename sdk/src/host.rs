//! Services of the host: log, time, randomness, parameters and timeline.
//!
//! Parameters arrive as text: the operator's values merged over the
//! defaults declared in [`Metadata`](crate::Metadata). The typed getters
//! below parse them and report a bad value as [`Error::InvalidArgument`]
//! naming the parameter.

use std::time::Duration;

use crate::wit::firedrill::scenario::host as raw;
use crate::{Error, Level, to_nanos};

/// Write `message` to the run's log and timeline.
pub fn log(level: Level, message: &str) {
    raw::log(level, message);
}

/// Log at [`Level::Trace`].
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Log at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Log at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Log at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Log at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Sleep for `d`. Returns [`Error::Halted`] early if the run is being
/// stopped: pass it on with `?`.
pub fn sleep(d: Duration) -> Result<(), Error> {
    raw::sleep(to_nanos(d))
}

/// Monotonic time since the run started.
pub fn now() -> Duration {
    Duration::from_nanos(raw::now())
}

/// The next value of the run's seeded generator (the same seed replays the
/// same sequence).
pub fn random_u64() -> u64 {
    raw::random()
}

/// A value in `[0, 1)` from the run's seeded generator.
pub fn random_f64() -> f64 {
    // The top 53 bits, scaled: uniform over the representable values.
    (random_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Mark the timeline with a named event, e.g. `event("step", "delay 200ms")`.
pub fn event(name: &str, detail: &str) {
    raw::event(name, detail);
}

/// Every parameter of the run, as `(name, value)`.
pub fn params() -> Vec<(String, String)> {
    raw::params()
}

/// One parameter, if set (or declared with a default).
pub fn param(name: &str) -> Option<String> {
    raw::param(name)
}

/// One parameter, or `default` when it is not set.
pub fn param_or(name: &str, default: &str) -> String {
    param(name).unwrap_or_else(|| default.to_owned())
}

/// A duration parameter such as `500us`, `250ms`, `2s`, `1.5s` or `1m`
/// (see [`parse_duration`]), or `default` when it is not set.
pub fn param_duration(name: &str, default: Duration) -> Result<Duration, Error> {
    parse_param(
        name,
        default,
        parse_duration,
        "a duration such as 250ms or 2s",
    )
}

/// An unsigned integer parameter, or `default` when it is not set.
pub fn param_u64(name: &str, default: u64) -> Result<u64, Error> {
    parse_param(name, default, |s| s.parse().ok(), "an unsigned integer")
}

/// A floating-point parameter, or `default` when it is not set.
pub fn param_f64(name: &str, default: f64) -> Result<f64, Error> {
    parse_param(name, default, |s| s.parse().ok(), "a number")
}

/// A boolean parameter (`true`/`false`, `yes`/`no`, `1`/`0`), or `default`
/// when it is not set.
pub fn param_bool(name: &str, default: bool) -> Result<bool, Error> {
    parse_param(name, default, parse_bool, "true or false")
}

fn parse_param<T>(
    name: &str,
    default: T,
    parse: impl FnOnce(&str) -> Option<T>,
    expected: &str,
) -> Result<T, Error> {
    match param(name) {
        None => Ok(default),
        Some(value) => parse(value.trim()).ok_or_else(|| {
            Error::InvalidArgument(format!("parameter `{name}`: {value:?} is not {expected}"))
        }),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Parse a duration: a decimal number and a unit, `ns`, `us` (or `µs`),
/// `ms`, `s`, `m` or `h`, e.g. `500us`, `250ms`, `2s`, `1.5s`, `1m`. A bare
/// `0` is zero. Returns `None` for anything else or on overflow.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit.trim_start() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !fraction.chars().all(|c| c.is_ascii_digit()) || fraction.len() > 18 {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole.checked_mul(unit_nanos)?;
    if !fraction.is_empty() {
        let scale = 10u128.pow(fraction.len() as u32);
        nanos = nanos.checked_add(fraction.parse::<u128>().ok()? * unit_nanos / scale)?;
    }
    let nanos = u64::try_from(nanos).ok()?;
    Some(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn parses_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("500us"), Some(Duration::from_micros(500)));
        assert_eq!(parse_duration("500µs"), Some(Duration::from_micros(500)));
        assert_eq!(parse_duration("250ms"), Some(ms(250)));
        assert_eq!(parse_duration("2s"), Some(ms(2000)));
        assert_eq!(parse_duration("1.5s"), Some(ms(1500)));
        assert_eq!(parse_duration(".5s"), Some(ms(500)));
        assert_eq!(parse_duration("1m"), Some(ms(60_000)));
        assert_eq!(parse_duration("2h"), Some(ms(7_200_000)));
        assert_eq!(parse_duration("10ns"), Some(Duration::from_nanos(10)));
        assert_eq!(parse_duration(" 3 s "), Some(ms(3000)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("0ms"), Some(Duration::ZERO));
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in [
            "",
            "s",
            "10",
            "1.5",
            "ms",
            "-1s",
            "1..5s",
            "1.2.3s",
            "1x",
            "1 m s",
            "1e3ms",
            "99999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
