//! When the executor leaves, as rules without I/O: the time a stopping executor gives its tasks
//! and the agent's acknowledgements, when it may exit, and the idle timeout. `runtime.rs` asks
//! these with the current time.

use std::time::Duration;

use tokio::time::Instant;

/// What the command executor keeps back from the shutdown grace period so that terminal
/// updates still get out before the agent destroys the container.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(2);
/// After SIGKILL to a script's process group, how long to wait for the worker to notice.
pub const FORCED_KILL_REAP: Duration = Duration::from_secs(2);

/// The executor is on its way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopping {
    pub reason: String,
    /// The task that broke the executor, if one did.
    pub culprit: Option<String>,
    pub exit_code: u8,
    /// Waiting for acknowledgements ends here at the latest.
    pub ack_deadline: Instant,
}

/// How long stopping tasks get: the shutdown grace period less what the terminal updates need,
/// at least a second.
pub fn task_grace(shutdown_grace_period: Duration) -> Duration {
    shutdown_grace_period
        .saturating_sub(SHUTDOWN_BUDGET)
        .max(Duration::from_secs(1))
}

impl Stopping {
    /// Stopping from `now`: tasks get [`task_grace`] (plus the forced-kill wait), then the agent
    /// gets `ack_timeout` to acknowledge their terminal updates.
    pub fn new(
        reason: String,
        culprit: Option<String>,
        exit_code: u8,
        now: Instant,
        shutdown_grace_period: Duration,
        ack_timeout: Duration,
    ) -> Stopping {
        Stopping {
            reason,
            culprit,
            exit_code,
            ack_deadline: now + task_grace(shutdown_grace_period) + FORCED_KILL_REAP + ack_timeout,
        }
    }

    /// A second reason to stop keeps the first, but an error makes the exit an error.
    pub fn again(&mut self, exit_code: u8) {
        self.exit_code = self.exit_code.max(exit_code);
    }

    /// The exit status once the executor may go: no task runs any more, and every update was
    /// acknowledged, or no connection will come, or the acknowledgement deadline passed.
    pub fn exit_code(
        &self,
        tasks_live: bool,
        all_acknowledged: bool,
        link_closed: bool,
        now: Instant,
    ) -> Option<u8> {
        if tasks_live {
            return None;
        }
        (all_acknowledged || link_closed || now >= self.ack_deadline).then_some(self.exit_code)
    }
}

/// Whether an idle executor (no task, nothing unacknowledged since `idle_since`) has passed
/// its `--idle-timeout`.
pub fn idle_expired(
    idle_since: Option<Instant>,
    idle_timeout: Option<Duration>,
    now: Instant,
) -> bool {
    matches!((idle_since, idle_timeout), (Some(since), Some(idle)) if now >= since + idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopping(now: Instant) -> Stopping {
        Stopping::new(
            "shutdown".into(),
            None,
            0,
            now,
            Duration::from_secs(5),
            Duration::from_secs(10),
        )
    }

    #[test]
    fn tasks_get_the_grace_less_the_budget_and_at_least_a_second() {
        assert_eq!(task_grace(Duration::from_secs(5)), Duration::from_secs(3));
        assert_eq!(task_grace(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(task_grace(Duration::ZERO), Duration::from_secs(1));
    }

    #[test]
    fn the_executor_leaves_once_acknowledged_or_at_the_ack_deadline_never_with_live_tasks() {
        let t0 = Instant::now();
        let s = stopping(t0);
        // 3 s for the tasks, 2 s for a forced kill to be noticed, 10 s for acknowledgements.
        assert_eq!(s.ack_deadline, t0 + Duration::from_secs(15));
        assert_eq!(
            s.exit_code(true, true, true, t0 + Duration::from_secs(99)),
            None
        );
        assert_eq!(s.exit_code(false, false, false, t0), None);
        assert_eq!(s.exit_code(false, true, false, t0), Some(0));
        assert_eq!(
            s.exit_code(false, false, true, t0),
            Some(0),
            "no connection will come"
        );
        let just_before = s.ack_deadline - Duration::from_millis(1);
        assert_eq!(s.exit_code(false, false, false, just_before), None);
        assert_eq!(s.exit_code(false, false, false, s.ack_deadline), Some(0));
    }

    #[test]
    fn an_error_while_stopping_makes_the_exit_an_error() {
        let mut s = stopping(Instant::now());
        s.again(1);
        s.again(0);
        assert_eq!(s.exit_code, 1);
        assert_eq!(s.reason, "shutdown", "the first reason stays");
    }

    #[test]
    fn the_idle_timeout_counts_from_when_the_executor_became_idle() {
        let t0 = Instant::now();
        let idle = Some(Duration::from_secs(30));
        assert!(!idle_expired(Some(t0), idle, t0 + Duration::from_secs(29)));
        assert!(idle_expired(Some(t0), idle, t0 + Duration::from_secs(30)));
        assert!(
            !idle_expired(None, idle, t0 + Duration::from_secs(99)),
            "busy"
        );
        assert!(
            !idle_expired(Some(t0), None, t0 + Duration::from_secs(99)),
            "no timeout"
        );
    }
}
