//! What the driver takes from a SUBSCRIBED event, checked: the framework id the master assigned
//! and how long the event stream may stay silent (the heartbeat watchdog).
//!
//! prost reads a SUBSCRIBED whose required `framework_id` is missing as an empty id. Taking it
//! would store "" as the framework's id and send it on every later SUBSCRIBE, so such an event
//! is refused ([`UnusableSubscribed`]): the driver drops the stream and resubscribes.
//!
//! A heartbeat interval that is not a positive number of seconds, or so large that the watchdog
//! period is beyond any `Duration` (`Duration::from_secs_f64` panics there), is the master's
//! mistake too, but a harmless one: Mesos' default of 15 s is watched for instead, and the
//! driver says so.

use std::time::Duration;

use shardex_mesos::proto::v1::scheduler::event;

/// Mesos' heartbeat interval (`DEFAULT_HEARTBEAT_INTERVAL` of the master), watched for until a
/// SUBSCRIBED says otherwise, and when it says something unusable.
pub const DEFAULT_HEARTBEAT_SECONDS: f64 = 15.0;

/// A SUBSCRIBED event the driver cannot act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnusableSubscribed {
    #[error(
        "{master} sent a SUBSCRIBED event without its `subscribed` field; check that it is a \
         Mesos master"
    )]
    MissingBody { master: String },
    #[error(
        "{master} sent SUBSCRIBED without the required framework_id; a master must name the \
         framework it subscribed"
    )]
    MissingFrameworkId { master: String },
}

/// What a usable SUBSCRIBED says.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribed {
    pub framework_id: String,
    /// The heartbeat interval watched for.
    pub heartbeat_seconds: f64,
    /// Silence longer than this drops the stream.
    pub watchdog: Duration,
    /// The interval the master sent when it could not be used (the default was taken).
    pub unusable_interval: Option<f64>,
}

/// Checks the `subscribed` field of a SUBSCRIBED event from `master`.
pub fn check(
    subscribed: Option<event::Subscribed>,
    master: &str,
    missed_heartbeats: u32,
) -> Result<Subscribed, UnusableSubscribed> {
    let Some(subscribed) = subscribed else {
        return Err(UnusableSubscribed::MissingBody {
            master: master.to_owned(),
        });
    };
    let framework_id = subscribed.framework_id.value;
    if framework_id.is_empty() {
        return Err(UnusableSubscribed::MissingFrameworkId {
            master: master.to_owned(),
        });
    }
    let sent = subscribed.heartbeat_interval_seconds;
    let usable = sent.and_then(|seconds| {
        watchdog(seconds, missed_heartbeats).map(|watchdog| (seconds, watchdog))
    });
    let (heartbeat_seconds, watchdog) = usable.unwrap_or_else(|| {
        (
            DEFAULT_HEARTBEAT_SECONDS,
            default_watchdog(missed_heartbeats),
        )
    });
    Ok(Subscribed {
        framework_id,
        heartbeat_seconds,
        watchdog,
        unusable_interval: sent.filter(|_| usable.is_none()),
    })
}

/// The watchdog period before any SUBSCRIBED: the default interval, `missed_heartbeats` times.
pub fn default_watchdog(missed_heartbeats: u32) -> Duration {
    Duration::from_secs(DEFAULT_HEARTBEAT_SECONDS as u64) * missed_heartbeats
}

/// `missed_heartbeats` intervals of `heartbeat_seconds`, when that is a positive period a
/// `Duration` can hold.
fn watchdog(heartbeat_seconds: f64, missed_heartbeats: u32) -> Option<Duration> {
    if !(heartbeat_seconds.is_finite() && heartbeat_seconds > 0.0) {
        return None;
    }
    Duration::try_from_secs_f64(heartbeat_seconds * f64::from(missed_heartbeats)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardex_mesos::proto::v1::FrameworkId;

    fn event(id: &str, interval: Option<f64>) -> Option<event::Subscribed> {
        Some(event::Subscribed {
            framework_id: FrameworkId { value: id.into() },
            heartbeat_interval_seconds: interval,
            master_info: None,
        })
    }

    #[test]
    fn takes_the_id_and_watches_for_missed_heartbeats() {
        assert_eq!(
            check(event("fw-1", Some(0.1)), "m", 2),
            Ok(Subscribed {
                framework_id: "fw-1".into(),
                heartbeat_seconds: 0.1,
                watchdog: Duration::from_millis(200),
                unusable_interval: None,
            })
        );
        // Absent (it is optional): the default, said nowhere.
        assert_eq!(
            check(event("fw-1", None), "m", 5).unwrap(),
            Subscribed {
                framework_id: "fw-1".into(),
                heartbeat_seconds: 15.0,
                watchdog: Duration::from_secs(75),
                unusable_interval: None,
            }
        );
    }

    #[test]
    fn refuses_a_subscribed_without_a_framework_id() {
        assert_eq!(
            check(None, "http://m:5050/api/v1/scheduler", 5)
                .unwrap_err()
                .to_string(),
            "http://m:5050/api/v1/scheduler sent a SUBSCRIBED event without its `subscribed` \
             field; check that it is a Mesos master"
        );
        assert_eq!(
            check(event("", Some(15.0)), "http://m:5050/api/v1/scheduler", 5)
                .unwrap_err()
                .to_string(),
            "http://m:5050/api/v1/scheduler sent SUBSCRIBED without the required framework_id; \
             a master must name the framework it subscribed"
        );
    }

    #[test]
    fn unusable_intervals_fall_back_to_the_default_without_panicking() {
        // 1e300 and f64::MAX overflow a Duration; f64::MAX × 5 is infinite.
        for sent in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300, f64::MAX, 1e19] {
            let subscribed = check(event("fw-1", Some(sent)), "m", 5).unwrap();
            assert_eq!(subscribed.heartbeat_seconds, 15.0, "{sent}");
            assert_eq!(subscribed.watchdog, Duration::from_secs(75), "{sent}");
            assert_eq!(
                subscribed.unusable_interval.map(f64::to_bits),
                Some(sent.to_bits())
            );
        }
    }
}
