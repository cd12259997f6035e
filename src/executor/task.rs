//! One task's state inside the executor, and the rules that only depend on it: the kill grace
//! period (`KillPolicy` in Mesos' `include/mesos/v1/mesos.proto`, as the command executor
//! applies it in `src/launcher/executor.cpp`) and a daemon's fire schedule.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use shardex_common::cron::Schedule;
use shardex_common::payload::ErrorPolicy;
use shardex_mesos::proto::v1::{KillPolicy, TaskInfo};

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Received; the job is being set up (plugin loaded, instance created).
    Starting,
    /// `TASK_RUNNING` sent.
    Running,
    /// A terminal update was sent; kept until the agent acknowledges it.
    Terminal,
}

/// Why the work of a task is being stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCause {
    /// A KILL from the framework: ends in `TASK_KILLED`.
    Killed,
    /// SHUTDOWN or the framework message `STOP`: ends in `TASK_KILLED`.
    Shutdown,
    /// The executor stops (`reason`): ends in `TASK_FAILED` naming the reason, labelled with
    /// the task that broke the executor when there is one (`status_contract::STOPPED_FOR`).
    ExecutorStopping {
        reason: String,
        culprit: Option<String>,
    },
}

/// A kill in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kill {
    pub started: Instant,
    pub deadline: Instant,
    /// Whether the deadline passed once already and the process group got SIGKILL.
    pub forced: bool,
}

impl Kill {
    pub fn new(now: Instant, grace: Duration) -> Kill {
        Kill {
            started: now,
            deadline: now + grace,
            forced: false,
        }
    }

    /// A repeated KILL may shorten the grace period, never extend it.
    pub fn shorten(&mut self, grace: Duration) {
        self.deadline = self.deadline.min(self.started + grace);
    }
}

/// The kill grace period: the KILL's policy, else the task's, else the default.
pub fn kill_grace(
    event_policy: Option<&KillPolicy>,
    task: &TaskInfo,
    default: Duration,
) -> Duration {
    let from = |policy: Option<&KillPolicy>| {
        policy
            .and_then(|p| p.grace_period.as_ref())
            .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
    };
    from(event_policy)
        .or_else(|| from(task.kill_policy.as_ref()))
        .unwrap_or(default)
}

/// A daemon task's in-executor cron.
#[derive(Debug)]
pub struct DaemonClock {
    schedule: Schedule,
    /// Run one fire that came while the previous one was still running, right after it.
    misfire: bool,
    next_fire: Option<DateTime<Utc>>,
    firing: bool,
    missed: bool,
}

/// What to do when a daemon's fire time comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    Now,
    /// The previous fire still runs; this one runs right after it.
    Deferred,
    /// The previous fire still runs and misfire is off: this one is skipped.
    Skipped,
}

impl DaemonClock {
    pub fn new(schedule: Schedule, misfire: bool, now: DateTime<Utc>) -> DaemonClock {
        let next_fire = schedule.next_after(now);
        DaemonClock {
            schedule,
            misfire,
            next_fire,
            firing: false,
            missed: false,
        }
    }

    pub fn next_fire(&self) -> Option<DateTime<Utc>> {
        self.next_fire
    }

    /// Called when `next_fire` has come.
    pub fn on_due(&mut self, now: DateTime<Utc>) -> Fire {
        self.next_fire = self.schedule.next_after(now);
        if !self.firing {
            self.firing = true;
            Fire::Now
        } else if self.misfire {
            // Several missed fires collapse into one.
            self.missed = true;
            Fire::Deferred
        } else {
            Fire::Skipped
        }
    }

    /// Called when a fire ends; `true` if a deferred fire must start now.
    pub fn on_fire_done(&mut self) -> bool {
        if self.missed {
            self.missed = false;
            true
        } else {
            self.firing = false;
            false
        }
    }

    /// Forgets a fire that could not start.
    pub fn reset(&mut self) {
        self.firing = false;
        self.missed = false;
    }

    #[cfg(test)]
    pub fn firing(&self) -> bool {
        self.firing
    }
}

/// A task the executor holds.
#[derive(Debug)]
pub struct Task {
    pub info: TaskInfo,
    pub phase: Phase,
    pub error_policy: ErrorPolicy,
    /// Its job worker runs (started and not yet reported done).
    pub job: bool,
    pub daemon: Option<DaemonClock>,
    pub stop: Option<(StopCause, Kill)>,
    /// Its job ignored cancellation past every deadline: the executor exits to stop it and
    /// sends no terminal update for it (the agent reports the task when the executor is gone).
    pub abandoned: bool,
}

impl Task {
    pub fn id(&self) -> &str {
        &self.info.task_id.value
    }

    /// Whether the executor still owes this task a terminal update.
    pub fn is_live(&self) -> bool {
        self.phase != Phase::Terminal && !self.abandoned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use shardex_mesos::proto::v1::{DurationInfo, TaskId};

    fn policy(secs: i64) -> KillPolicy {
        KillPolicy {
            grace_period: Some(DurationInfo {
                nanoseconds: secs * 1_000_000_000,
            }),
        }
    }

    #[test]
    fn grace_period_first_match_wins() {
        let mut task = TaskInfo {
            task_id: TaskId { value: "t".into() },
            ..Default::default()
        };
        let default = Duration::from_secs(3);
        assert_eq!(kill_grace(None, &task, default), default);
        task.kill_policy = Some(policy(10));
        assert_eq!(kill_grace(None, &task, default), Duration::from_secs(10));
        assert_eq!(
            kill_grace(Some(&policy(1)), &task, default),
            Duration::from_secs(1)
        );
        // A KILL whose policy has no grace period falls through to the task's.
        assert_eq!(
            kill_grace(Some(&KillPolicy::default()), &task, default),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn repeated_kills_only_shorten_the_grace() {
        let now = Instant::now();
        let mut kill = Kill::new(now, Duration::from_secs(10));
        kill.shorten(Duration::from_secs(30));
        assert_eq!(kill.deadline, now + Duration::from_secs(10));
        kill.shorten(Duration::from_secs(2));
        assert_eq!(kill.deadline, now + Duration::from_secs(2));
        kill.shorten(Duration::from_secs(5));
        assert_eq!(kill.deadline, now + Duration::from_secs(2));
    }

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, s).unwrap()
    }

    #[test]
    fn fires_never_overlap_and_misfire_defers_one() {
        let schedule = Schedule::parse("* * * * * ?").unwrap();
        let mut clock = DaemonClock::new(schedule.clone(), true, at(0));
        assert_eq!(clock.next_fire(), Some(at(1)));
        assert_eq!(clock.on_due(at(1)), Fire::Now);
        assert_eq!(clock.next_fire(), Some(at(2)));
        // Two fires come while the first still runs: they collapse into one deferred fire.
        assert_eq!(clock.on_due(at(2)), Fire::Deferred);
        assert_eq!(clock.on_due(at(3)), Fire::Deferred);
        assert!(clock.on_fire_done(), "the deferred fire starts right away");
        assert!(clock.firing());
        assert!(!clock.on_fire_done());
        assert!(!clock.firing());

        let mut clock = DaemonClock::new(schedule, false, at(0));
        assert_eq!(clock.on_due(at(1)), Fire::Now);
        assert_eq!(clock.on_due(at(2)), Fire::Skipped);
        assert!(!clock.on_fire_done());
    }
}
