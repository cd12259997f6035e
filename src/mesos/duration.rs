//! Mesos' textual duration format (`5secs`, `2500ms`, `15mins`, `1.5hrs`), as the agent writes
//! it into `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`, `MESOS_RECOVERY_TIMEOUT` and
//! `MESOS_SUBSCRIPTION_BACKOFF_MAX`.
//!
//! Parsing follows stout's `Duration::parse`: a prefix of digits and dots read as a double, then
//! exactly one unit out of `ns us ms secs mins hrs days weeks`. Formatting follows stout's
//! `operator<<`: the largest unit the value reaches, unless a smaller unit gives a whole number,
//! printed with 15 significant digits (so `2secs`, `2500ms`, and `90mins` for 1.5 hours).

use std::fmt;
use std::time::Duration;

const NANOS_PER: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("secs", 1_000_000_000),
    ("mins", 60_000_000_000),
    ("hrs", 3_600_000_000_000),
    ("days", 86_400_000_000_000),
    ("weeks", 604_800_000_000_000),
];

/// Why a Mesos duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; expected a number followed by a unit, e.g. '5secs'")]
    Empty,
    #[error("duration '{0}' has no number before its unit; expected e.g. '5secs'")]
    MissingNumber(String),
    #[error("duration '{input}' has an invalid number '{number}'")]
    InvalidNumber { input: String, number: String },
    #[error(
        "duration '{input}' has unknown unit '{unit}'; supported units are 'ns', 'us', 'ms', \
         'secs', 'mins', 'hrs', 'days' and 'weeks'"
    )]
    UnknownUnit { input: String, unit: String },
    #[error("duration '{0}' is too large")]
    Overflow(String),
}

/// Parses a Mesos duration such as `5secs` or `1.5hrs`.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    let (number, unit) = input.split_at(split);
    if number.is_empty() {
        return Err(DurationError::MissingNumber(input.to_owned()));
    }
    let value: f64 = number.parse().map_err(|_| DurationError::InvalidNumber {
        input: input.to_owned(),
        number: number.to_owned(),
    })?;
    let factor = NANOS_PER
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, factor)| *factor)
        .ok_or_else(|| DurationError::UnknownUnit {
            input: input.to_owned(),
            unit: unit.to_owned(),
        })?;
    let nanos = value * factor as f64;
    // stout bounds durations by int64 nanoseconds.
    if !nanos.is_finite() || nanos > i64::MAX as f64 {
        return Err(DurationError::Overflow(input.to_owned()));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// A duration in Mesos' notation: displayed the way Mesos prints it (e.g. into an executor's
/// environment), and read and written as that text by serde (the scheduler's config file).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MesosDuration(pub Duration);

impl MesosDuration {
    pub const fn secs(secs: u64) -> MesosDuration {
        MesosDuration(Duration::from_secs(secs))
    }

    pub const fn millis(millis: u64) -> MesosDuration {
        MesosDuration(Duration::from_millis(millis))
    }
}

impl fmt::Debug for MesosDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for MesosDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MesosDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text)
            .map(MesosDuration)
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for MesosDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        // The bucket is the largest unit the duration reaches; stout then steps down one unit
        // when the bucket's unit gives a fraction but the smaller one a whole number.
        let bucket = NANOS_PER
            .iter()
            .rposition(|(_, factor)| nanos >= *factor)
            .unwrap_or(0);
        let index = if bucket > 0 {
            let (_, unit) = NANOS_PER[bucket];
            let (_, smaller) = NANOS_PER[bucket - 1];
            if !nanos.is_multiple_of(unit) && nanos.is_multiple_of(smaller) {
                bucket - 1
            } else {
                bucket
            }
        } else {
            0
        };
        let (name, factor) = NANOS_PER[index];
        write!(
            f,
            "{}{name}",
            format_significant(nanos as f64 / factor as f64)
        )
    }
}

/// Formats like C++ iostream's default float format with precision 15 (`%.15g`).
fn format_significant(value: f64) -> String {
    if value == value.trunc() && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (14 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("5secs"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("2500ms"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse("15mins"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1.5hrs"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("3us"), Ok(Duration::from_micros(3)));
        assert_eq!(parse("2days"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse("1weeks"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse("0secs"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_malformed_input_with_a_reason() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(
            parse("secs"),
            Err(DurationError::MissingNumber("secs".into()))
        );
        assert_eq!(
            parse("5"),
            Err(DurationError::UnknownUnit {
                input: "5".into(),
                unit: "".into()
            })
        );
        assert_eq!(
            parse("5seconds"),
            Err(DurationError::UnknownUnit {
                input: "5seconds".into(),
                unit: "seconds".into()
            })
        );
        assert_eq!(
            parse("1.2.3secs"),
            Err(DurationError::InvalidNumber {
                input: "1.2.3secs".into(),
                number: "1.2.3".into()
            })
        );
        assert_eq!(
            parse("-5secs"),
            Err(DurationError::MissingNumber("-5secs".into()))
        );
        assert_eq!(
            parse("99999999999weeks"),
            Err(DurationError::Overflow("99999999999weeks".into()))
        );
        let message = parse("5 secs").unwrap_err().to_string();
        assert!(message.contains("unknown unit ' secs'"), "{message}");
    }

    #[test]
    fn prints_like_stout() {
        let show = |d: Duration| MesosDuration(d).to_string();
        assert_eq!(show(Duration::from_secs(5)), "5secs");
        assert_eq!(show(Duration::from_secs(2)), "2secs");
        assert_eq!(show(Duration::from_secs(900)), "15mins");
        assert_eq!(show(Duration::from_secs(60)), "1mins");
        assert_eq!(show(Duration::from_millis(2500)), "2500ms");
        // A smaller unit that gives a whole number wins: 1.5 hours is "90mins".
        assert_eq!(show(Duration::from_secs(5400)), "90mins");
        assert_eq!(show(Duration::from_nanos(1_000_000_001)), "1.000000001secs");
        assert_eq!(show(Duration::from_secs(90)), "90secs");
        assert_eq!(show(Duration::from_nanos(7)), "7ns");
        assert_eq!(show(Duration::ZERO), "0ns");
        assert_eq!(show(Duration::from_secs(10 * 86_400)), "10days");
    }

    #[test]
    fn round_trips_through_text() {
        for text in ["5secs", "15mins", "2500ms", "90mins", "3days", "250us"] {
            let parsed = parse(text).unwrap();
            assert_eq!(MesosDuration(parsed).to_string(), text);
        }
    }
}
