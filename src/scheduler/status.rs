//! Status updates → state: the failover table of the architecture doc (Elastic-Job-Cloud §2.8),
//! made durable and idempotent.
//!
//! | state | effect |
//! |---|---|
//! | STAGING, STARTING, RUNNING, KILLING | stays running; a suspect task is back (suspicion cleared); daemon `BEGIN`/`COMPLETE` set idle, `COMPLETE` resets the item's failure count |
//! | UNREACHABLE, UNKNOWN | stays running, its item blocked, marked suspect; after `tasks.suspect_timeout` it is abandoned: killed (retried) and failed over |
//! | FINISHED | removed; the item's failure count ends with it; a parked item is released |
//! | KILLED | removed; no failover when the scheduler asked for the kill; an outside kill of a daemon shard fails it over (not counted as a failure: daemons must run), of a transient shard does not (Elastic-Job parity) |
//! | FAILED, ERROR, LOST, DROPPED, GONE, GONE_BY_OPERATOR | removed; failover entry when the job has failover on or is a daemon, unless one exists, the item runs, the job is gone/disabled, or the queue is full (logged loudly, counted); after `failover.max_attempts` consecutive failures the item is parked |
//! | FAILED labelled `shardex.stopped_for` | as above, but not counted as an attempt: the executor stopped because another task broke it |
//! | DROPPED, GONE of a task that never reported a state | as above, but queued even with failover off: the launch never reached an executor, so nothing ran |
//!
//! Before any of this: an update for a task already seen ending is ignored (duplicates, the
//! `TASK_GONE` reconciliation answer for an acknowledged finished task, updates after a
//! terminal one), and so is one whose uuid the task already applied.

use crate::mesos::proto::v1::{TaskState, TaskStatus};
use crate::mesos::{states, uuid as update_uuid};
use crate::status_contract::{FIRE_BEGIN, FIRE_COMPLETE, stopped_for_of, work_dir_of};

use super::ids::item_key;
use super::state::{
    FailoverEntry, Millis, ParkedItem, RunningTask, SEEN_UUIDS, State, TerminalRecord,
};

/// The failover rules' knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub failover_limit: usize,
}

/// What a failure did to the failover queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverOutcome {
    /// Queued; relaunch not before `delay_ms` from now.
    Recorded {
        attempts: u32,
        delay_ms: u64,
    },
    /// Too many consecutive failures: parked, not queued.
    Parked {
        attempts: u32,
    },
    /// The job has failover off and is not a daemon.
    NotWanted,
    AlreadyQueued,
    /// Another task runs the item.
    ItemRunning,
    /// The failover queue is at its limit.
    QueueFull,
    JobGone,
    JobDisabled,
    /// The job's sharding total count no longer includes the item (it was updated).
    ItemGone,
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The uuid was applied before (Mesos re-sends pending updates after an agent restart).
    Duplicate,
    /// The task was already seen ending.
    AlreadyTerminal {
        state: String,
    },
    /// Not a task of ours, or one long forgotten.
    Unknown {
        terminal: bool,
    },
    /// A non-terminal state recorded.
    Progress {
        resolved_suspect: bool,
    },
    /// Unreachable or unknown: the item stays blocked.
    Suspect {
        since: Millis,
    },
    Finished,
    /// Ended after the scheduler asked for a kill (or after it gave up on it): no failover,
    /// not a failure.
    EndedByScheduler {
        state: String,
    },
    /// Killed by someone else.
    KilledOutside {
        failover: FailoverOutcome,
    },
    Failed {
        failover: FailoverOutcome,
    },
    /// An update with a state number this build does not know.
    UnknownState,
}

/// Delay before relaunch number `attempts` (1-based): the first is immediate.
pub fn backoff_ms(policy: &Policy, attempts: u32) -> u64 {
    if attempts <= 1 {
        return 0;
    }
    let shift = (attempts - 2).min(32);
    policy
        .backoff_initial_ms
        .saturating_mul(1u64 << shift)
        .min(policy.backoff_max_ms)
}

/// Queues `(job, item)` for a re-run, when the rules allow it.
#[allow(clippy::too_many_arguments)]
pub fn record_failover(
    state: &mut State,
    policy: &Policy,
    job: &str,
    item: u32,
    original_task_id: &str,
    attempts: u32,
    cause: &str,
    now: Millis,
) -> FailoverOutcome {
    record(
        state,
        policy,
        job,
        item,
        original_task_id,
        attempts,
        cause,
        now,
        false,
    )
}

/// [`record_failover`]; `never_started` queues the item even when the job has failover off: its
/// task never ran, so running it is not a re-run.
#[allow(clippy::too_many_arguments)]
fn record(
    state: &mut State,
    policy: &Policy,
    job: &str,
    item: u32,
    original_task_id: &str,
    attempts: u32,
    cause: &str,
    now: Millis,
    never_started: bool,
) -> FailoverOutcome {
    let Some(config) = state.registry.jobs.get(job) else {
        return FailoverOutcome::JobGone;
    };
    if !(config.failover || config.is_daemon() || never_started) {
        return FailoverOutcome::NotWanted;
    }
    if item >= config.sharding_total_count {
        return FailoverOutcome::ItemGone;
    }
    if !state.registry.job_enabled(job) {
        return FailoverOutcome::JobDisabled;
    }
    if state.failover.contains_key(&item_key(job, item)) {
        return FailoverOutcome::AlreadyQueued;
    }
    if state.item_running(job, item) {
        return FailoverOutcome::ItemRunning;
    }
    if attempts > policy.max_attempts {
        state.put_parked(ParkedItem {
            job: job.to_owned(),
            item,
            attempts: attempts - 1,
            last_task_id: original_task_id.to_owned(),
            cause: cause.to_owned(),
            parked_at: now,
        });
        return FailoverOutcome::Parked {
            attempts: attempts - 1,
        };
    }
    if state.failover.len() >= policy.failover_limit {
        return FailoverOutcome::QueueFull;
    }
    let delay_ms = backoff_ms(policy, attempts);
    state.put_failover(FailoverEntry {
        job: job.to_owned(),
        item,
        original_task_id: original_task_id.to_owned(),
        attempts,
        not_before: now.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX)),
        recorded_at: now,
        cause: cause.to_owned(),
    });
    FailoverOutcome::Recorded { attempts, delay_ms }
}

fn cause_of(status: &TaskStatus) -> String {
    let mut cause = states::name(status.state);
    if let Some(reason) = status.reason.and_then(|r| {
        crate::mesos::proto::v1::task_status::Reason::try_from(r)
            .ok()
            .map(|r| r.as_str_name())
    }) {
        cause.push_str(" (");
        cause.push_str(reason);
        cause.push(')');
    }
    if let Some(message) = status.message.as_deref().filter(|m| !m.is_empty()) {
        let short: String = message.chars().take(300).collect();
        cause.push_str(": ");
        cause.push_str(&short);
    }
    cause
}

/// Applies one update to the state.
pub fn apply_update(
    state: &mut State,
    policy: &Policy,
    status: &TaskStatus,
    now: Millis,
) -> Outcome {
    let task_id = status.task_id.value.as_str();
    let Ok(task_state) = TaskState::try_from(status.state) else {
        return Outcome::UnknownState;
    };
    if let Some(record) = state.history.get(task_id) {
        return Outcome::AlreadyTerminal {
            state: record.state.clone(),
        };
    }
    let Some(task) = state.running.get(task_id) else {
        return Outcome::Unknown {
            terminal: states::is_terminal(task_state),
        };
    };
    let uuid = status.uuid.as_deref().map(update_uuid::display);
    if let Some(uuid) = &uuid
        && task.seen_uuids.contains(uuid)
    {
        return Outcome::Duplicate;
    }
    let name = task_state.as_str_name().to_owned();
    if !states::is_terminal(task_state) {
        let Some(task) = state.running_mut(task_id) else {
            return Outcome::Unknown { terminal: false };
        };
        task.state = name;
        if let Some(dir) = work_dir_of(status) {
            task.work_dir = Some(dir.to_owned());
        }
        if let Some(uuid) = uuid {
            task.seen_uuids.push(uuid);
            if task.seen_uuids.len() > SEEN_UUIDS {
                task.seen_uuids.remove(0);
            }
        }
        return match task_state {
            TaskState::TaskUnreachable | TaskState::TaskUnknown => {
                let since = *task.suspect_since.get_or_insert(now);
                Outcome::Suspect { since }
            }
            _ => {
                let resolved_suspect = task.suspect_since.take().is_some();
                match status.message.as_deref() {
                    Some(FIRE_BEGIN) => task.idle = Some(false),
                    Some(FIRE_COMPLETE) => {
                        task.idle = Some(true);
                        // A daemon fire went through: the item is healthy again.
                        task.attempt = 0;
                    }
                    _ => {}
                }
                Outcome::Progress { resolved_suspect }
            }
        };
    }

    let Some(task) = state.remove_running(task_id) else {
        return Outcome::Unknown { terminal: true };
    };
    state.put_history(
        task_id,
        TerminalRecord {
            job: task.job.clone(),
            item: task.item,
            state: name.clone(),
            at: now,
        },
    );
    terminal_effect(state, policy, &task, task_state, status, now)
}

fn terminal_effect(
    state: &mut State,
    policy: &Policy,
    task: &RunningTask,
    task_state: TaskState,
    status: &TaskStatus,
    now: Millis,
) -> Outcome {
    let name = task_state.as_str_name().to_owned();
    if task.abandoned || task.kill.is_some() {
        return Outcome::EndedByScheduler { state: name };
    }
    match task_state {
        TaskState::TaskFinished => {
            let key = item_key(&task.job, task.item);
            if state.parked.remove(&key).is_some() {
                state.dirty.insert(super::state::Key::Parked(key));
            }
            Outcome::Finished
        }
        TaskState::TaskKilled => {
            let daemon = state
                .registry
                .jobs
                .get(&task.job)
                .is_some_and(|j| j.is_daemon());
            let failover = if daemon {
                record_failover(
                    state,
                    policy,
                    &task.job,
                    task.item,
                    &task.task_id,
                    task.attempt,
                    &cause_of(status),
                    now,
                )
            } else {
                FailoverOutcome::NotWanted
            };
            Outcome::KilledOutside { failover }
        }
        _ => {
            // Dropped or gone before any update: the launch never reached an executor (an
            // agent restart during launch, or a scheduler crash between recording the launch
            // and its ACCEPT). Nothing ran, so the item is owed a run whatever the failover
            // setting.
            let never_started = task.state == "TASK_STAGING"
                && matches!(task_state, TaskState::TaskDropped | TaskState::TaskGone);
            // Stopped because another task broke the shared executor: this shard did nothing
            // wrong, so it is failed over per policy without an attempt counted against it.
            let attempts = match stopped_for_of(status) {
                Some(_) => task.attempt,
                None => task.attempt.saturating_add(1),
            };
            let failover = record(
                state,
                policy,
                &task.job,
                task.item,
                &task.task_id,
                attempts,
                &cause_of(status),
                now,
                never_started,
            );
            Outcome::Failed { failover }
        }
    }
}

/// Gives up on suspect tasks older than the deadline: each is abandoned (its item freed), asked
/// to be killed, and failed over as a failure. Returns the abandoned tasks with the outcome.
pub fn expire_suspects(
    state: &mut State,
    policy: &Policy,
    suspect_timeout_ms: u64,
    now: Millis,
) -> Vec<(RunningTask, FailoverOutcome)> {
    let deadline = i64::try_from(suspect_timeout_ms).unwrap_or(i64::MAX);
    let expired: Vec<String> = state
        .running
        .values()
        .filter(|t| !t.abandoned)
        .filter(|t| {
            t.suspect_since
                .is_some_and(|s| now.saturating_sub(s) >= deadline)
        })
        .map(|t| t.task_id.clone())
        .collect();
    let mut out = Vec::new();
    for task_id in expired {
        let Some(task) = state.running_mut(&task_id) else {
            continue;
        };
        task.abandoned = true;
        task.kill = Some(super::state::KillRequest {
            reason: super::state::KillReason::SuspectTimeout,
            requested_at: now,
        });
        let task = task.clone();
        let cause = format!(
            "{} for longer than the suspect timeout ({} ms)",
            task.state, suspect_timeout_ms
        );
        let outcome = record_failover(
            state,
            policy,
            &task.job,
            task.item,
            &task.task_id,
            task.attempt.saturating_add(1),
            &cause,
            now,
        );
        out.push((task, outcome));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::proto::v1::{TaskId, task_status};
    use crate::scheduler::config::ExecutionTypeConfig;
    use crate::scheduler::config::tests_support::{app_record, job, running_task};

    use crate::scheduler::state::{KillReason, KillRequest};

    const POLICY: Policy = Policy {
        max_attempts: 3,
        backoff_initial_ms: 1000,
        backoff_max_ms: 3000,
        failover_limit: 10,
    };

    fn state_with(failover: bool, daemon: bool) -> State {
        let mut state = State::default();
        state
            .registry
            .apps
            .insert("app".into(), app_record("app", 1));
        let mut j = job("j", "app");
        j.failover = failover;
        if daemon {
            j.execution_type = ExecutionTypeConfig::Daemon;
        }
        state.registry.jobs.insert("j".into(), j);
        state
    }

    fn launch(state: &mut State, id: &str, item: u32, attempt: u32) {
        state.put_running(RunningTask {
            attempt,
            ..running_task(id, "j", item)
        });
    }

    fn update(id: &str, state: TaskState, uuid: Option<u8>) -> TaskStatus {
        TaskStatus {
            task_id: TaskId { value: id.into() },
            state: state as i32,
            uuid: uuid.map(|b| {
                let mut bytes = [b; 16];
                bytes[6] = 0x40;
                bytes.to_vec()
            }),
            ..TaskStatus::default()
        }
    }

    #[test]
    fn finished_removes_the_task_and_remembers_it() {
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 0, 0);
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskFinished, Some(1)),
            10,
        );
        assert_eq!(out, Outcome::Finished);
        assert!(state.running.is_empty());
        assert_eq!(state.history["t1"].state, "TASK_FINISHED");
        assert!(state.failover.is_empty());
    }

    #[test]
    fn every_failure_state_fails_over_when_failover_is_on() {
        for failure in [
            TaskState::TaskFailed,
            TaskState::TaskError,
            TaskState::TaskLost,
            TaskState::TaskDropped,
            TaskState::TaskGone,
            TaskState::TaskGoneByOperator,
        ] {
            let mut state = state_with(true, false);
            launch(&mut state, "t1", 2, 0);
            let out = apply_update(&mut state, &POLICY, &update("t1", failure, Some(1)), 10);
            assert_eq!(
                out,
                Outcome::Failed {
                    failover: FailoverOutcome::Recorded {
                        attempts: 1,
                        delay_ms: 0
                    }
                },
                "{failure:?}"
            );
            let entry = &state.failover["j@-@2"];
            assert_eq!((entry.attempts, entry.not_before), (1, 10));
            assert_eq!(entry.original_task_id, "t1");
            assert!(state.running.is_empty());
        }
    }

    #[test]
    fn a_shard_stopped_for_another_tasks_failure_is_not_charged_an_attempt() {
        let mut state = state_with(true, false);
        // Its third run: two failures before this one.
        launch(&mut state, "t1", 2, 2);
        let mut status = update("t1", TaskState::TaskFailed, Some(1));
        status.labels = Some(crate::status_contract::stopped_for("broken"));
        let out = apply_update(&mut state, &POLICY, &status, 10);
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::Recorded {
                    attempts: 2,
                    delay_ms: backoff_ms(&POLICY, 2)
                }
            }
        );
        assert_eq!(state.failover["j@-@2"].attempts, 2);
        // Without the label the same failure is the item's third.
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 2, 2);
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskFailed, Some(1)),
            10,
        );
        assert!(matches!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::Recorded { attempts: 3, .. }
            }
        ));
    }

    #[test]
    fn failures_do_not_fail_over_when_failover_is_off() {
        let mut state = state_with(false, false);
        launch(&mut state, "t1", 0, 0);
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskFailed, Some(1)),
            1,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::NotWanted
            }
        );
        assert!(state.failover.is_empty());
    }

    #[test]
    fn a_launch_that_never_started_is_owed_its_run_even_with_failover_off() {
        for end in [TaskState::TaskDropped, TaskState::TaskGone] {
            let mut state = state_with(false, false);
            launch(&mut state, "t1", 1, 0);
            let out = apply_update(&mut state, &POLICY, &update("t1", end, None), 1);
            assert_eq!(
                out,
                Outcome::Failed {
                    failover: FailoverOutcome::Recorded {
                        attempts: 1,
                        delay_ms: 0
                    }
                },
                "{end:?}"
            );
        }
        // Once it reported anything, failover off means no re-run.
        let mut state = state_with(false, false);
        launch(&mut state, "t1", 1, 0);
        apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskRunning, None),
            1,
        );
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskGone, None),
            2,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::NotWanted
            }
        );
    }

    #[test]
    fn daemons_always_fail_over() {
        let mut state = state_with(false, true);
        launch(&mut state, "t1", 1, 0);
        apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskLost, None),
            1,
        );
        assert!(state.failover.contains_key("j@-@1"));
    }

    #[test]
    fn killed_by_the_scheduler_never_fails_over() {
        for end in [TaskState::TaskKilled, TaskState::TaskFailed] {
            let mut state = state_with(true, true);
            launch(&mut state, "t1", 0, 0);
            state.running_mut("t1").unwrap().kill = Some(KillRequest {
                reason: KillReason::Disabled,
                requested_at: 0,
            });
            let out = apply_update(&mut state, &POLICY, &update("t1", end, Some(1)), 1);
            assert!(matches!(out, Outcome::EndedByScheduler { .. }), "{out:?}");
            assert!(state.failover.is_empty());
        }
    }

    #[test]
    fn outside_kills_relaunch_daemons_without_counting_a_failure() {
        let mut state = state_with(false, true);
        launch(&mut state, "t1", 0, 2);
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskKilled, Some(1)),
            1,
        );
        assert_eq!(
            out,
            Outcome::KilledOutside {
                failover: FailoverOutcome::Recorded {
                    attempts: 2,
                    delay_ms: 1000
                }
            }
        );
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 0, 0);
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskKilled, Some(1)),
            1,
        );
        assert_eq!(
            out,
            Outcome::KilledOutside {
                failover: FailoverOutcome::NotWanted
            }
        );
        assert!(state.failover.is_empty());
    }

    #[test]
    fn no_second_entry_no_entry_while_the_item_runs_none_past_the_limit() {
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 0, 0);
        launch(&mut state, "t2", 0, 0);
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskFailed, None),
            1,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::ItemRunning
            }
        );
        let mut state = state_with(true, false);
        record_failover(&mut state, &POLICY, "j", 0, "t0", 1, "x", 0);
        launch(&mut state, "t1", 0, 0);
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskFailed, None),
            1,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::AlreadyQueued
            }
        );
        let policy = Policy {
            failover_limit: 1,
            ..POLICY
        };
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 1, 0);
        record_failover(&mut state, &policy, "j", 0, "t0", 1, "x", 0);
        let out = apply_update(
            &mut state,
            &policy,
            &update("t1", TaskState::TaskFailed, None),
            1,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::QueueFull
            }
        );
        assert_eq!(state.failover.len(), 1);
    }

    #[test]
    fn disabled_or_deregistered_jobs_do_not_fail_over() {
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 0, 0);
        state.registry.jobs.get_mut("j").unwrap().disabled = true;
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskFailed, None),
            1,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::JobDisabled
            }
        );
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 0, 0);
        state.registry.jobs.clear();
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskFailed, None),
            1,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::JobGone
            }
        );
    }

    #[test]
    fn repeated_failures_back_off_then_park() {
        let mut state = state_with(true, false);
        let mut outcomes = Vec::new();
        for attempt in 0..4 {
            let id = format!("t{attempt}");
            launch(&mut state, &id, 0, attempt);
            state.remove_failover("j", 0);
            if let Outcome::Failed { failover } = apply_update(
                &mut state,
                &POLICY,
                &update(&id, TaskState::TaskFailed, None),
                0,
            ) {
                outcomes.push(failover);
            }
        }
        assert_eq!(
            outcomes,
            vec![
                FailoverOutcome::Recorded {
                    attempts: 1,
                    delay_ms: 0
                },
                FailoverOutcome::Recorded {
                    attempts: 2,
                    delay_ms: 1000
                },
                FailoverOutcome::Recorded {
                    attempts: 3,
                    delay_ms: 2000
                },
                FailoverOutcome::Parked { attempts: 3 },
            ]
        );
        assert_eq!(state.parked["j@-@0"].last_task_id, "t3");
        assert_eq!(backoff_ms(&POLICY, 9), 3000, "capped");
        // A clean finish of the item releases it.
        launch(&mut state, "t9", 0, 0);
        apply_update(
            &mut state,
            &POLICY,
            &update("t9", TaskState::TaskFinished, None),
            0,
        );
        assert!(state.parked.is_empty());
    }

    #[test]
    fn duplicates_and_updates_after_the_end_change_nothing() {
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 0, 0);
        let running = update("t1", TaskState::TaskRunning, Some(7));
        assert_eq!(
            apply_update(&mut state, &POLICY, &running, 1),
            Outcome::Progress {
                resolved_suspect: false
            }
        );
        assert_eq!(
            apply_update(&mut state, &POLICY, &running, 2),
            Outcome::Duplicate
        );
        apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskFinished, Some(8)),
            3,
        );
        let before = state.clone();
        // Re-sent terminal update, a RUNNING after the end, and reconciliation's TASK_GONE.
        for late in [
            update("t1", TaskState::TaskFinished, Some(8)),
            update("t1", TaskState::TaskRunning, Some(9)),
            TaskStatus {
                reason: Some(task_status::Reason::Reconciliation as i32),
                message: Some("Reconciliation: Task is unknown to the agent".into()),
                ..update("t1", TaskState::TaskGone, None)
            },
        ] {
            assert_eq!(
                apply_update(&mut state, &POLICY, &late, 4),
                Outcome::AlreadyTerminal {
                    state: "TASK_FINISHED".into()
                }
            );
        }
        assert_eq!(state.failover, before.failover);
        assert_eq!(state.history, before.history);
    }

    #[test]
    fn unreachable_keeps_the_item_blocked_until_it_resolves_or_expires() {
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 0, 0);
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskUnreachable, None),
            100,
        );
        assert_eq!(out, Outcome::Suspect { since: 100 });
        assert!(state.item_running("j", 0));
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskUnknown, None),
            200,
        );
        assert_eq!(
            out,
            Outcome::Suspect { since: 100 },
            "the first sighting counts"
        );
        assert!(expire_suspects(&mut state, &POLICY, 1000, 1099).is_empty());
        // Back before the deadline: nothing else happens.
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskRunning, None),
            300,
        );
        assert_eq!(
            out,
            Outcome::Progress {
                resolved_suspect: true
            }
        );
        assert!(expire_suspects(&mut state, &POLICY, 1000, 5000).is_empty());
        // Suspect again, past the deadline: abandoned, killed, failed over.
        apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskUnreachable, None),
            6000,
        );
        let expired = expire_suspects(&mut state, &POLICY, 1000, 7000);
        assert_eq!(expired.len(), 1);
        assert_eq!(
            expired[0].1,
            FailoverOutcome::Recorded {
                attempts: 1,
                delay_ms: 0
            }
        );
        let task = &state.running["t1"];
        assert!(task.abandoned);
        assert_eq!(
            task.kill.as_ref().unwrap().reason,
            KillReason::SuspectTimeout
        );
        assert!(
            !state.item_running("j", 0),
            "the item is free for its failover"
        );
        // Its eventual end does not fail it over a second time.
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskLost, None),
            8000,
        );
        assert!(matches!(out, Outcome::EndedByScheduler { .. }));
        assert_eq!(state.failover.len(), 1);
    }

    #[test]
    fn daemon_complete_resets_the_failure_count() {
        let mut state = state_with(false, true);
        launch(&mut state, "t1", 0, 2);
        let mut begin = update("t1", TaskState::TaskRunning, Some(1));
        begin.message = Some("BEGIN".into());
        apply_update(&mut state, &POLICY, &begin, 1);
        assert_eq!(state.running["t1"].idle, Some(false));
        let mut complete = update("t1", TaskState::TaskRunning, Some(2));
        complete.message = Some("COMPLETE".into());
        apply_update(&mut state, &POLICY, &complete, 2);
        assert_eq!(state.running["t1"].idle, Some(true));
        assert_eq!(state.running["t1"].attempt, 0);
    }

    #[test]
    fn unknown_tasks_are_reported_as_such() {
        let mut state = state_with(true, false);
        assert_eq!(
            apply_update(
                &mut state,
                &POLICY,
                &update("zz", TaskState::TaskRunning, None),
                1
            ),
            Outcome::Unknown { terminal: false }
        );
        assert_eq!(
            apply_update(
                &mut state,
                &POLICY,
                &update("zz", TaskState::TaskFailed, None),
                1
            ),
            Outcome::Unknown { terminal: true }
        );
    }
}
