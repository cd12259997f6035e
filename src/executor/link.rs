//! The executor's connection to its agent as a state machine without I/O: each state carries
//! its own deadlines, every input takes `now`, and what to do comes back as a [`Step`]. The
//! event loop (`runtime.rs`) performs the steps (SUBSCRIBE, reading the stream) and feeds the
//! results back.
//!
//! The rules (Mesos' `docs/executor-http-api.md`, "Disconnections", and the v1 executor library
//! `src/executor/executor.cpp`):
//! - the first SUBSCRIBE is retried while the agent starts (404, 503, refused) about once a
//!   second, bounded like a recovery by `MESOS_RECOVERY_TIMEOUT` (a real agent destroys an
//!   executor that does not register in time anyway);
//! - an error the agent will repeat (400, 401, 403, 415) ends the connection at once;
//! - when the stream of a subscribed executor ends: with checkpointing, resubscribe at once,
//!   then after uniform random delays up to `MESOS_SUBSCRIPTION_BACKOFF_MAX`, until
//!   `MESOS_RECOVERY_TIMEOUT` after the loss; without checkpointing, give up.

use std::time::Duration;

use tokio::time::Instant;

use shardex_mesos::backoff::Backoff;

/// The connection's state; deadlines live in the variants that have them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A SUBSCRIBE is in flight; failing after `give_up_at` ends the connection.
    Subscribing {
        give_up_at: Instant,
    },
    Subscribed,
    /// SUBSCRIBE again at `at`; failing after `give_up_at` ends the connection.
    Retrying {
        at: Instant,
        give_up_at: Instant,
    },
    /// No further connection will be made.
    Closed,
}

/// Why the connection ended for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveUp {
    /// The agent answered with an error it will repeat.
    Refused,
    /// The agent did not come back within the recovery timeout.
    RecoveryTimeout(Duration),
    /// The stream ended and the framework does not checkpoint: the agent cannot recover us.
    NotCheckpointing,
}

/// What the event loop does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing now.
    Wait,
    /// Send a SUBSCRIBE now (carrying everything unacknowledged).
    Subscribe,
    /// Stop reconnecting; the executor stops.
    GiveUp(GiveUp),
}

#[derive(Debug)]
pub struct Link {
    state: State,
    ever_subscribed: bool,
    recovery_timeout: Duration,
    first_retry: Duration,
    backoff: Backoff,
}

impl Link {
    /// A link whose first SUBSCRIBE goes out now.
    pub fn new(now: Instant, recovery_timeout: Duration, backoff_max: Duration) -> Link {
        Link {
            state: State::Subscribing {
                give_up_at: now + recovery_timeout,
            },
            ever_subscribed: false,
            recovery_timeout,
            first_retry: Duration::from_secs(1).min(backoff_max.max(Duration::from_millis(100))),
            backoff: Backoff::uniform(backoff_max),
        }
    }

    #[cfg(test)]
    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_subscribed(&self) -> bool {
        self.state == State::Subscribed
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether a subscription was ever made (a later one is a resubscription).
    pub fn ever_subscribed(&self) -> bool {
        self.ever_subscribed
    }

    /// The SUBSCRIBE succeeded; `false` when the link was closed meanwhile (drop the stream).
    pub fn on_subscribed(&mut self) -> bool {
        if self.is_closed() {
            return false;
        }
        self.state = State::Subscribed;
        self.ever_subscribed = true;
        true
    }

    /// The SUBSCRIBE failed.
    pub fn on_subscribe_failed(&mut self, retryable: bool, now: Instant) -> Step {
        let give_up_at = match self.state {
            State::Subscribing { give_up_at } | State::Retrying { give_up_at, .. } => give_up_at,
            State::Subscribed | State::Closed => return Step::Wait,
        };
        if !retryable {
            self.state = State::Closed;
            return Step::GiveUp(GiveUp::Refused);
        }
        if now >= give_up_at {
            self.state = State::Closed;
            return Step::GiveUp(GiveUp::RecoveryTimeout(self.recovery_timeout));
        }
        let delay = if self.ever_subscribed {
            self.backoff.next_delay()
        } else {
            self.first_retry
        };
        self.state = State::Retrying {
            at: now + delay,
            give_up_at,
        };
        Step::Wait
    }

    /// The event stream ended (cleanly or not).
    pub fn on_stream_ended(&mut self, checkpoint: bool, now: Instant) -> Step {
        if !self.is_subscribed() {
            return Step::Wait;
        }
        if !checkpoint {
            self.state = State::Closed;
            return Step::GiveUp(GiveUp::NotCheckpointing);
        }
        self.backoff.reset();
        // The first attempt goes out at once.
        self.state = State::Retrying {
            at: now,
            give_up_at: now + self.recovery_timeout,
        };
        Step::Wait
    }

    /// A timer fired: a due retry becomes a SUBSCRIBE.
    pub fn on_time(&mut self, now: Instant) -> Step {
        match self.state {
            State::Retrying { at, give_up_at } if now >= at => {
                self.state = State::Subscribing { give_up_at };
                Step::Subscribe
            }
            _ => Step::Wait,
        }
    }

    /// No further connection.
    pub fn close(&mut self) {
        self.state = State::Closed;
    }

    /// When [`Link::on_time`] has something to do.
    pub fn wakeup(&self) -> Option<Instant> {
        match self.state {
            State::Retrying { at, .. } => Some(at),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECOVERY: Duration = Duration::from_secs(15);
    const BACKOFF_MAX: Duration = Duration::from_secs(2);

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn the_first_subscription_retries_each_second_until_the_recovery_timeout() {
        let t0 = Instant::now();
        let mut link = Link::new(t0, RECOVERY, BACKOFF_MAX);
        assert_eq!(
            link.state(),
            State::Subscribing {
                give_up_at: t0 + RECOVERY
            }
        );
        let mut now = t0;
        let mut attempts = 1;
        loop {
            match link.on_subscribe_failed(true, now) {
                Step::Wait => {}
                Step::GiveUp(reason) => {
                    assert_eq!(reason, GiveUp::RecoveryTimeout(RECOVERY));
                    break;
                }
                Step::Subscribe => panic!("a failure never subscribes at once"),
            }
            let at = link.wakeup().expect("a retry is scheduled");
            assert_eq!(
                at - now,
                secs(1.0),
                "the first subscription retries each second"
            );
            assert_eq!(
                link.on_time(at - secs(0.001)),
                Step::Wait,
                "not before its time"
            );
            assert_eq!(link.on_time(at), Step::Subscribe);
            now = at;
            attempts += 1;
        }
        // Attempts at 0, 1, …, 15 s: the one at 15 s fails at the deadline.
        assert_eq!(attempts, 16);
        assert!(link.is_closed());
        assert_eq!(link.wakeup(), None);
    }

    #[test]
    fn an_error_the_agent_repeats_closes_the_link_at_once() {
        let t0 = Instant::now();
        let mut link = Link::new(t0, RECOVERY, BACKOFF_MAX);
        assert_eq!(
            link.on_subscribe_failed(false, t0),
            Step::GiveUp(GiveUp::Refused)
        );
        assert!(link.is_closed());
        assert!(!link.on_subscribed(), "a late answer is dropped");
    }

    #[test]
    fn a_lost_stream_resubscribes_at_once_then_within_the_backoff_until_the_recovery_timeout() {
        let t0 = Instant::now();
        let mut link = Link::new(t0, RECOVERY, BACKOFF_MAX);
        assert!(link.on_subscribed());
        let lost = t0 + secs(100.0);
        assert_eq!(link.on_stream_ended(true, lost), Step::Wait);
        assert_eq!(
            link.state(),
            State::Retrying {
                at: lost,
                give_up_at: lost + RECOVERY
            },
            "the first attempt goes out at once"
        );
        assert_eq!(link.on_time(lost), Step::Subscribe);
        let mut now = lost;
        loop {
            match link.on_subscribe_failed(true, now) {
                Step::Wait => {
                    let at = link.wakeup().unwrap();
                    assert!(at - now <= BACKOFF_MAX, "{:?}", at - now);
                    assert_eq!(link.on_time(at), Step::Subscribe);
                    now = at;
                }
                Step::GiveUp(reason) => {
                    assert_eq!(reason, GiveUp::RecoveryTimeout(RECOVERY));
                    assert!(now >= lost + RECOVERY);
                    assert!(now < lost + RECOVERY + BACKOFF_MAX);
                    break;
                }
                Step::Subscribe => unreachable!(),
            }
        }
    }

    #[test]
    fn a_resubscription_in_time_keeps_the_link_and_resets_its_clock() {
        let t0 = Instant::now();
        let mut link = Link::new(t0, RECOVERY, BACKOFF_MAX);
        link.on_subscribed();
        link.on_stream_ended(true, t0 + secs(1.0));
        link.on_time(t0 + secs(1.0));
        link.on_subscribe_failed(true, t0 + secs(14.0));
        let at = link.wakeup().unwrap();
        link.on_time(at);
        assert!(link.on_subscribed());
        assert!(link.ever_subscribed());
        // A later loss gets a whole recovery timeout again.
        let lost = t0 + secs(50.0);
        link.on_stream_ended(true, lost);
        assert_eq!(
            link.state(),
            State::Retrying {
                at: lost,
                give_up_at: lost + RECOVERY
            }
        );
    }

    #[test]
    fn without_checkpointing_a_lost_stream_ends_the_link() {
        let t0 = Instant::now();
        let mut link = Link::new(t0, RECOVERY, BACKOFF_MAX);
        link.on_subscribed();
        assert_eq!(
            link.on_stream_ended(false, t0),
            Step::GiveUp(GiveUp::NotCheckpointing)
        );
        assert!(link.is_closed());
        // Inputs after the end change nothing.
        assert_eq!(link.on_stream_ended(true, t0), Step::Wait);
        assert_eq!(link.on_subscribe_failed(true, t0), Step::Wait);
        assert_eq!(link.on_time(t0 + RECOVERY), Step::Wait);
    }
}
