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
        check_fields(expression).map_err(error)?;
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

/// The fields of a Quartz expression: name, lowest and highest value.
const FIELDS: [(&str, u32, u32); 7] = [
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 1, 7),
    ("year", 1970, 2099),
];
const DAY_OF_MONTH: usize = 3;
const DAY_OF_WEEK: usize = 5;

/// Quartz's own checks, made before the parser so a mistake is named by its field: every number
/// within its field's range, a step of at least 1, and `?` in exactly one of day-of-month and
/// day-of-week (Quartz does not implement both together).
fn check_fields(expression: &str) -> Result<(), String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    for (index, field) in fields.iter().enumerate() {
        let (name, low, high) = FIELDS[index];
        for part in field.split(',') {
            let (base, step) = match part.split_once('/') {
                Some((base, step)) => (base, Some(step)),
                None => (part, None),
            };
            if let Some(step) = step
                && let Ok(step) = step.parse::<u32>()
                && step == 0
            {
                return Err(format!("{name} step '/0' must be at least 1"));
            }
            for bound in base.split('-') {
                // `5L`, `15W`, `6#3`: the number is the part before the Quartz suffix.
                let number = bound
                    .split('#')
                    .next()
                    .unwrap_or(bound)
                    .trim_end_matches(['L', 'W']);
                if let Ok(value) = number.parse::<u32>()
                    && !(low..=high).contains(&value)
                {
                    return Err(format!("{name} {value} is out of range {low}-{high}"));
                }
            }
        }
        if *field == "?" && index != DAY_OF_MONTH && index != DAY_OF_WEEK {
            return Err(format!(
                "{name} is '?', which only day-of-month and day-of-week may be"
            ));
        }
    }
    match (fields[DAY_OF_MONTH] == "?", fields[DAY_OF_WEEK] == "?") {
        (true, false) | (false, true) => Ok(()),
        (true, true) => Err(
            "day-of-month and day-of-week are both '?'; Quartz needs a value in one of them \
             (e.g. '*' in day-of-month for every day)"
                .to_owned(),
        ),
        (false, false) => Err(format!(
            "day-of-month '{}' and day-of-week '{}' are both set; Quartz needs '?' in one of \
             them ('0 * * * * ?' every minute, '0 0 12 ? * 2' Mondays at noon)",
            fields[DAY_OF_MONTH], fields[DAY_OF_WEEK]
        )),
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

    #[test]
    fn a_value_out_of_range_names_its_field() {
        let reason = |expression: &str| Schedule::parse(expression).unwrap_err().reason;
        assert_eq!(reason("0 0 25 * * ?"), "hour 25 is out of range 0-23");
        assert_eq!(reason("60 * * * * ?"), "second 60 is out of range 0-59");
        assert_eq!(reason("0 0-61 * * * ?"), "minute 61 is out of range 0-59");
        assert_eq!(
            reason("0 0 0 32 * ?"),
            "day-of-month 32 is out of range 1-31"
        );
        assert_eq!(reason("0 0 0 ? 13 2"), "month 13 is out of range 1-12");
        assert_eq!(reason("0 0 0 ? * 8"), "day-of-week 8 is out of range 1-7");
        assert_eq!(reason("0 0 0 ? * 0#2"), "day-of-week 0 is out of range 1-7");
        assert_eq!(
            reason("0 0 0 1 1 ? 1969"),
            "year 1969 is out of range 1970-2099"
        );
        assert_eq!(
            reason("0/0 * * * * ?"),
            "second step '/0' must be at least 1"
        );
        // Quartz suffixes and names still parse.
        for ok in [
            "0 0 0 L * ?",
            "0 0 0 15W * ?",
            "0 0 0 ? * 6#3",
            "0 0 0 ? * 6L",
            "0 0 0 ? JAN-MAR MON",
        ] {
            assert!(Schedule::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn quartz_needs_a_question_mark_in_one_day_field() {
        let reason = |expression: &str| Schedule::parse(expression).unwrap_err().reason;
        assert_eq!(
            reason("0 * * * * *"),
            "day-of-month '*' and day-of-week '*' are both set; Quartz needs '?' in one of them \
             ('0 * * * * ?' every minute, '0 0 12 ? * 2' Mondays at noon)"
        );
        assert_eq!(
            reason("0 * * ? * ?"),
            "day-of-month and day-of-week are both '?'; Quartz needs a value in one of them \
             (e.g. '*' in day-of-month for every day)"
        );
        assert_eq!(
            reason("? * * * * ?"),
            "second is '?', which only day-of-month and day-of-week may be"
        );
        assert!(Schedule::parse("0 * * * * ?").is_ok());
        assert!(Schedule::parse("0 * * ? * *").is_ok());
    }
}
