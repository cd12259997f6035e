//! The cron dialect of Shardex jobs, shared by the scheduler (transient jobs) and the executor
//! (daemon jobs) so both read an expression the same way.
//!
//! It is Quartz's, which Elastic-Job users already write: `sec min hour day-of-month month
//! day-of-week [year]`, with `?`, `L`, `W`, `#`, Quartz weekday numbers (1 = Sunday … 7 =
//! Saturday) and `0/5`-style steps. Expressions are evaluated in UTC.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};

/// A parsed cron expression.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    cron: croner::Cron,
}

/// An expression that is not valid Quartz cron.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid cron expression '{expression}': {reason}; expected Quartz format 'second minute \
     hour day-of-month month day-of-week [year]', e.g. '0/30 * * * * ?'"
)]
pub struct CronError {
    pub expression: String,
    pub reason: String,
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Schedule, CronError> {
        let error = |reason: String| CronError {
            expression: expression.to_owned(),
            reason,
        };
        let fields = expression.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            return Err(error(format!("it has {fields} fields, not 6 or 7")));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Optional)
            .alternative_weekdays(true)
            .sloppy_ranges(true)
            .build();
        let cron = parser.parse(expression).map_err(|e| error(e.to_string()))?;
        Ok(Schedule {
            expression: expression.to_owned(),
            cron,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first fire strictly after `after`; `None` when the expression never fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.expression)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl FromStr for Schedule {
    type Err = CronError;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        Schedule::parse(expression)
    }
}

/// How long from now until `at` (zero if it has passed).
pub fn delay_until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, s).unwrap()
    }

    #[test]
    fn reads_quartz_expressions() {
        let every_five = Schedule::parse("0/5 * * * * ?").unwrap();
        assert_eq!(every_five.next_after(at(10, 0, 0)), Some(at(10, 0, 5)));
        assert_eq!(every_five.next_after(at(10, 0, 3)), Some(at(10, 0, 5)));
        let daily = Schedule::parse("0 30 2 * * ?").unwrap();
        assert_eq!(
            daily.next_after(at(10, 0, 0)),
            Some(at(2, 30, 0) + chrono::Days::new(1))
        );
        // Quartz weekdays: 2 is Monday; 2026-11-23 is a Monday.
        let mondays = Schedule::parse("0 0 12 ? * 2").unwrap();
        assert_eq!(mondays.next_after(at(10, 0, 0)), Some(at(12, 0, 0)));
        // Optional year field.
        assert!(Schedule::parse("0 0 12 * * ? 2099").is_ok());
    }

    #[test]
    fn refuses_with_a_reason() {
        let error = Schedule::parse("*/5 * * * *").unwrap_err();
        assert_eq!(error.reason, "it has 5 fields, not 6 or 7");
        assert!(
            error
                .to_string()
                .starts_with("invalid cron expression '*/5 * * * *'")
        );
        assert!(Schedule::parse("0 0 25 * * ?").is_err());
        assert!(Schedule::parse("not a cron at all !").is_err());
        assert!(Schedule::parse("").is_err());
    }
}
