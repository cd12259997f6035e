//! Status updates → state: Elastic-Job-Cloud's failover table (`SchedulerEngine.statusUpdate`
//! in apache/shardingsphere-elasticjob's cloud scheduler),
//! made durable and idempotent, with retries of failed runs told apart from failover of crashed
//! ones.
//!
//! A terminal failure is either a **job failure** (the executor reports `TASK_FAILED` or
//! `TASK_ERROR` for the job's own error, or the scheduler killed the task for its `timeout`) or
//! a **crash** (anything else that ended the task without it finishing: the executor or agent
//! died, the task was lost, gone or dropped, the executor stopped because of another task).
//!
//! | state | effect |
//! |---|---|
//! | STAGING, STARTING, RUNNING, KILLING | stays running; a suspect task is back (suspicion cleared); the first RUNNING starts the `timeout` clock; daemon `BEGIN`/`COMPLETE` set idle, `COMPLETE` resets the item's failure count |
//! | UNREACHABLE, UNKNOWN | stays running, its item blocked, marked suspect; after `tasks.suspect_timeout` it is abandoned: killed (retried) and failed over |
//! | UNKNOWN of a task being killed | removed: Mesos knows no such task, so a KILL can never reach it (should it surface again, it is killed as a stray) |
//! | FINISHED | removed; the item's failure count ends with it; a parked item is released |
//! | KILLED | removed; no failover when the scheduler asked for the kill; an outside kill of a daemon shard fails it over (not counted as a failure: daemons must run), of a transient shard does not (Elastic-Job parity) |
//! | ERROR labelled `shardex.setup_error` | removed; the job's items (scope `job`) or the item (scope `item`) are parked at once with the cause: the same launch would fail the same way |
//! | job failure (transient) | removed; re-run while the item's consecutive failures are at most the job's `retries`, else the item's run has failed |
//! | crash (transient) | removed; failover when the job has failover on; after `failover.max_attempts` consecutive failures the item is parked |
//! | any failure of a daemon | removed; always relaunched, parked after `failover.max_attempts` consecutive failures |
//! | FAILED labelled `shardex.stopped_for` | a crash, not counted as an attempt: the executor stopped because another task broke it |
//! | DROPPED, GONE of a task that never reported a state | a crash, queued even with failover off: the launch never reached an executor, so nothing ran |
//!
//! Nothing is queued for an item that is queued already, runs, is parked, or whose job is gone,
//! disabled or no longer has it, or when the queue is full (logged loudly, counted).
//!
//! Before any of this: an update for a task already seen ending is ignored (duplicates, the
//! `TASK_GONE` reconciliation answer for an acknowledged finished task, updates after a
//! terminal one), and so is one whose uuid the task already applied.

use shardex_common::status_contract::{
    FIRE_BEGIN, FIRE_COMPLETE, SetupScope, job_crashed_of, setup_error_of, stopped_for_of,
    work_dir_of,
};
use shardex_mesos::proto::v1::task_status::Source;
use shardex_mesos::proto::v1::{TaskState, TaskStatus};
use shardex_mesos::{states, uuid as update_uuid};

use super::ids::item_key;
use super::state::{
    FailoverEntry, KillReason, Millis, ParkedItem, RunningTask, SEEN_UUIDS, State, TerminalRecord,
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
    /// The job has failover off (a crash) or no retries (a job failure), and is not a daemon.
    NotWanted,
    /// A job failure after the job's `retries` were used up: the item's run has failed.
    RetriesExhausted {
        retries: u32,
    },
    AlreadyQueued,
    /// The item is parked: nothing runs it until it is released.
    AlreadyParked,
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
        state: TaskState,
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
        state: TaskState,
    },
    /// Killed by someone else.
    KilledOutside {
        failover: FailoverOutcome,
    },
    Failed {
        failover: FailoverOutcome,
        /// The job itself failed or timed out (its `retries` apply), rather than crashed.
        job_failure: bool,
    },
    /// A setup error that recurs on every launch: the job's items (or this one) are parked.
    SetupError {
        scope: SetupScope,
        parked: u32,
    },
    /// Mesos does not know a task the scheduler was killing: it leaves the running set.
    Vanished,
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

/// Why an item is re-run, and what bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerun {
    /// Lost to a crash: wanted with failover on (or for daemons); parked past
    /// `failover.max_attempts`.
    Crash,
    /// The launch never reached an executor: owed its run whatever the failover setting.
    NeverStarted,
    /// The job reported failure (or timed out): re-run up to the job's `retries` (daemons:
    /// as a crash).
    JobFailure,
}

/// Queues `(job, item)` for a re-run after a crash, when the rules allow it.
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
        Rerun::Crash,
    )
}

/// Queues `(job, item)` for a re-run of kind `why`, when the rules allow it.
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
    why: Rerun,
) -> FailoverOutcome {
    let Some(config) = state.registry().jobs.get(job) else {
        return FailoverOutcome::JobGone;
    };
    let daemon = config.is_daemon();
    let retries = config.retries;
    let wanted = daemon
        || match why {
            Rerun::Crash => config.failover,
            Rerun::NeverStarted => true,
            Rerun::JobFailure => retries > 0,
        };
    if !wanted {
        return FailoverOutcome::NotWanted;
    }
    if item >= config.sharding_total_count {
        return FailoverOutcome::ItemGone;
    }
    if !state.registry().job_enabled(job) {
        return FailoverOutcome::JobDisabled;
    }
    if state.is_parked(job, item) {
        return FailoverOutcome::AlreadyParked;
    }
    if state.failover().contains_key(&item_key(job, item)) {
        return FailoverOutcome::AlreadyQueued;
    }
    if state.item_running(job, item) {
        return FailoverOutcome::ItemRunning;
    }
    if why == Rerun::JobFailure && !daemon {
        if attempts > retries {
            return FailoverOutcome::RetriesExhausted { retries };
        }
    } else if attempts > policy.max_attempts {
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
    if state.failover().len() >= policy.failover_limit {
        return FailoverOutcome::QueueFull;
    }
    let delay_ms = backoff_ms(policy, attempts);
    let queued = state.put_failover(FailoverEntry {
        job: job.to_owned(),
        item,
        original_task_id: original_task_id.to_owned(),
        attempts,
        not_before: now.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX)),
        recorded_at: now,
        cause: cause.to_owned(),
    });
    if !queued {
        return FailoverOutcome::AlreadyParked;
    }
    FailoverOutcome::Recorded { attempts, delay_ms }
}

/// Parks the items a deterministic setup error makes unusable; returns how many were parked.
fn park_for_setup_error(
    state: &mut State,
    task: &RunningTask,
    scope: SetupScope,
    cause: &str,
    now: Millis,
) -> u32 {
    let items: Vec<u32> = match scope {
        SetupScope::Item => vec![task.item],
        SetupScope::Job => {
            let total = state
                .registry()
                .jobs
                .get(&task.job)
                .map_or(0, |j| j.sharding_total_count);
            (0..total).collect()
        }
    };
    let cause = format!(
        "setup error ({} scope; the same launch fails the same way, so it is not retried until \
         the job or its app is updated): {cause}",
        scope.as_str()
    );
    let mut parked = 0;
    for item in items {
        if state.is_parked(&task.job, item) {
            continue;
        }
        state.put_parked(ParkedItem {
            job: task.job.clone(),
            item,
            attempts: task.attempt.saturating_add(1),
            last_task_id: task.task_id.clone(),
            cause: cause.clone(),
            parked_at: now,
        });
        parked += 1;
    }
    parked
}

/// Whether a terminal update reports the job's own failure (not a crash around it). A job
/// process that crashed is a crash of its task, like an executor that crashed.
fn is_job_failure(status: &TaskStatus, task_state: TaskState) -> bool {
    matches!(task_state, TaskState::TaskFailed | TaskState::TaskError)
        && status.source == Some(Source::Executor as i32)
        && stopped_for_of(status).is_none()
        && job_crashed_of(status).is_none()
}

fn cause_of(status: &TaskStatus) -> String {
    let mut cause = states::name(status.state);
    if let Some(reason) = status.reason.and_then(|r| {
        shardex_mesos::proto::v1::task_status::Reason::try_from(r)
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

/// The history state of a task that was being killed when Mesos answered it unknown.
pub const VANISHED: TaskState = TaskState::TaskUnknown;

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
    if let Some(record) = state.history().get(task_id) {
        // A task given up on as unknown to Mesos that shows up running after all: a stray.
        if record.state == VANISHED
            && !states::is_terminal(task_state)
            && task_state != TaskState::TaskUnknown
        {
            return Outcome::Unknown { terminal: false };
        }
        return Outcome::AlreadyTerminal {
            state: record.state,
        };
    }
    let Some(task) = state.running().get(task_id) else {
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
    if task_state == TaskState::TaskUnknown && task.kill.is_some() {
        // Being killed, and Mesos knows no such task: no KILL can reach it. It leaves the
        // running set; should it surface again it is killed as a stray.
        let Some(task) = state.remove_running(task_id) else {
            return Outcome::Unknown { terminal: false };
        };
        state.put_history(
            task_id,
            TerminalRecord {
                job: task.job,
                item: task.item,
                state: VANISHED,
                at: now,
                run: None,
            },
        );
        return Outcome::Vanished;
    }
    if !states::is_terminal(task_state) {
        let Some(task) = state.running_mut(task_id) else {
            return Outcome::Unknown { terminal: false };
        };
        task.state = task_state;
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
                if task_state == TaskState::TaskRunning && task.started_at.is_none() {
                    task.started_at = Some(now);
                }
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
            state: task_state,
            at: now,
            run: None,
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
    let timed_out = !task.abandoned
        && task
            .kill
            .as_ref()
            .is_some_and(|k| k.reason == KillReason::Timeout);
    if timed_out && task_state != TaskState::TaskFinished {
        let timeout = state
            .registry()
            .jobs
            .get(&task.job)
            .and_then(|j| j.timeout)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let failover = record(
            state,
            policy,
            &task.job,
            task.item,
            &task.task_id,
            task.attempt.saturating_add(1),
            &format!("timed out after {timeout}"),
            now,
            Rerun::JobFailure,
        );
        return Outcome::Failed {
            failover,
            job_failure: true,
        };
    }
    if task.abandoned || (task.kill.is_some() && !timed_out) {
        return Outcome::EndedByScheduler { state: task_state };
    }
    match task_state {
        TaskState::TaskFinished => {
            state.remove_parked(&task.job, task.item);
            Outcome::Finished
        }
        TaskState::TaskKilled => {
            let daemon = state
                .registry()
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
        TaskState::TaskError if setup_error_of(status).is_some() => {
            let scope = setup_error_of(status).unwrap_or(SetupScope::Item);
            let parked = park_for_setup_error(state, task, scope, &cause_of(status), now);
            Outcome::SetupError { scope, parked }
        }
        _ => {
            // Dropped or gone before any update: the launch never reached an executor (an
            // agent restart during launch, or a scheduler crash between recording the launch
            // and its ACCEPT). Nothing ran, so the item is owed a run whatever the failover
            // setting.
            let never_started = task.state == TaskState::TaskStaging
                && matches!(task_state, TaskState::TaskDropped | TaskState::TaskGone);
            let why = if never_started {
                Rerun::NeverStarted
            } else if is_job_failure(status, task_state) {
                Rerun::JobFailure
            } else {
                Rerun::Crash
            };
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
                why,
            );
            Outcome::Failed {
                failover,
                job_failure: why == Rerun::JobFailure,
            }
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
        .running()
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
            task.state.as_str_name(),
            suspect_timeout_ms
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
    use crate::config::ExecutionTypeConfig;
    use crate::config::tests_support::{app_record, job, running_task};
    use shardex_mesos::proto::v1::{TaskId, task_status};

    use crate::state::{KillReason, KillRequest};

    const POLICY: Policy = Policy {
        max_attempts: 3,
        backoff_initial_ms: 1000,
        backoff_max_ms: 3000,
        failover_limit: 10,
    };

    fn state_with(failover: bool, daemon: bool) -> State {
        let mut state = State::default();
        state
            .registry_mut()
            .apps
            .insert("app", app_record("app", 1));
        let mut j = job("j", "app");
        j.failover = failover;
        if daemon {
            j.execution_type = ExecutionTypeConfig::Daemon;
        }
        state.registry_mut().jobs.insert("j", j);
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
        assert!(state.running().is_empty());
        assert_eq!(state.history()["t1"].state, TaskState::TaskFinished);
        assert!(state.failover().is_empty());
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
                    job_failure: false,
                    failover: FailoverOutcome::Recorded {
                        attempts: 1,
                        delay_ms: 0
                    }
                },
                "{failure:?}"
            );
            let entry = &state.failover()["j@-@2"];
            assert_eq!((entry.attempts, entry.not_before), (1, 10));
            assert_eq!(entry.original_task_id, "t1");
            assert!(state.running().is_empty());
        }
    }

    #[test]
    fn a_shard_stopped_for_another_tasks_failure_is_not_charged_an_attempt() {
        let mut state = state_with(true, false);
        // Its third run: two failures before this one.
        launch(&mut state, "t1", 2, 2);
        let mut status = update("t1", TaskState::TaskFailed, Some(1));
        status.labels = Some(shardex_common::status_contract::stopped_for("broken"));
        let out = apply_update(&mut state, &POLICY, &status, 10);
        assert_eq!(
            out,
            Outcome::Failed {
                job_failure: false,
                failover: FailoverOutcome::Recorded {
                    attempts: 2,
                    delay_ms: backoff_ms(&POLICY, 2)
                }
            }
        );
        assert_eq!(state.failover()["j@-@2"].attempts, 2);
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
                failover: FailoverOutcome::Recorded { attempts: 3, .. },
                ..
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
                job_failure: false,
                failover: FailoverOutcome::NotWanted
            }
        );
        assert!(state.failover().is_empty());
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
                    job_failure: false,
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
                job_failure: false,
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
        assert!(state.failover().contains_key("j@-@1"));
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
            assert!(state.failover().is_empty());
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
        assert!(state.failover().is_empty());
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
                job_failure: false,
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
                job_failure: false,
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
                job_failure: false,
                failover: FailoverOutcome::QueueFull
            }
        );
        assert_eq!(state.failover().len(), 1);
    }

    #[test]
    fn disabled_or_deregistered_jobs_do_not_fail_over() {
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 0, 0);
        state.registry_mut().jobs.get_mut("j").unwrap().disabled = true;
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskFailed, None),
            1,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                job_failure: false,
                failover: FailoverOutcome::JobDisabled
            }
        );
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 0, 0);
        state.registry_mut().jobs.clear();
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskFailed, None),
            1,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                job_failure: false,
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
            if let Outcome::Failed { failover, .. } = apply_update(
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
        assert_eq!(state.parked()["j@-@0"].last_task_id, "t3");
        assert_eq!(backoff_ms(&POLICY, 9), 3000, "capped");
        // A clean finish of the item releases it.
        launch(&mut state, "t9", 0, 0);
        apply_update(
            &mut state,
            &POLICY,
            &update("t9", TaskState::TaskFinished, None),
            0,
        );
        assert!(state.parked().is_empty());
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
                    state: TaskState::TaskFinished
                }
            );
        }
        assert_eq!(state.failover(), before.failover());
        assert_eq!(state.history(), before.history());
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
        let task = &state.running()["t1"];
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
        assert_eq!(state.failover().len(), 1);
    }

    #[test]
    fn daemon_complete_resets_the_failure_count() {
        let mut state = state_with(false, true);
        launch(&mut state, "t1", 0, 2);
        let mut begin = update("t1", TaskState::TaskRunning, Some(1));
        begin.message = Some("BEGIN".into());
        apply_update(&mut state, &POLICY, &begin, 1);
        assert_eq!(state.running()["t1"].idle, Some(false));
        let mut complete = update("t1", TaskState::TaskRunning, Some(2));
        complete.message = Some("COMPLETE".into());
        apply_update(&mut state, &POLICY, &complete, 2);
        assert_eq!(state.running()["t1"].idle, Some(true));
        assert_eq!(state.running()["t1"].attempt, 0);
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

    fn executor_update(id: &str, state: TaskState, uuid: u8) -> TaskStatus {
        TaskStatus {
            source: Some(Source::Executor as i32),
            ..update(id, state, Some(uuid))
        }
    }

    fn labelled(mut status: TaskStatus, key: &str, value: &str) -> TaskStatus {
        status
            .labels
            .get_or_insert_with(Default::default)
            .labels
            .push(shardex_common::status_contract::label(key, value));
        status
    }

    #[test]
    fn a_setup_error_of_job_scope_parks_every_item_and_queues_nothing() {
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 1, 0);
        let mut status = labelled(
            executor_update("t1", TaskState::TaskError, 1),
            shardex_common::status_contract::SETUP_ERROR,
            "job",
        );
        status.message = Some("plugin file plugins/libnothere.so not found".into());
        let out = apply_update(&mut state, &POLICY, &status, 10);
        assert_eq!(
            out,
            Outcome::SetupError {
                scope: SetupScope::Job,
                parked: 3
            }
        );
        assert!(state.failover().is_empty());
        assert_eq!(
            state.parked().keys().collect::<Vec<_>>(),
            vec!["j@-@0", "j@-@1", "j@-@2"]
        );
        let parked = &state.parked()["j@-@2"];
        assert_eq!(parked.last_task_id, "t1");
        assert!(
            parked
                .cause
                .contains("plugin file plugins/libnothere.so not found"),
            "{}",
            parked.cause
        );
        assert!(state.invariant_violations().is_empty());
    }

    #[test]
    fn a_setup_error_of_item_scope_parks_only_that_item_even_with_failover_off() {
        let mut state = state_with(false, false);
        launch(&mut state, "t1", 1, 0);
        let status = labelled(
            executor_update("t1", TaskState::TaskError, 1),
            shardex_common::status_contract::SETUP_ERROR,
            "item",
        );
        let out = apply_update(&mut state, &POLICY, &status, 10);
        assert_eq!(
            out,
            Outcome::SetupError {
                scope: SetupScope::Item,
                parked: 1
            }
        );
        assert_eq!(state.parked().keys().collect::<Vec<_>>(), vec!["j@-@1"]);
    }

    #[test]
    fn a_parked_item_is_never_queued_and_parking_drops_its_queue_entry() {
        let mut state = state_with(true, false);
        // Queued, then parked by a sibling's setup error: the entry goes.
        launch(&mut state, "t0", 0, 0);
        apply_update(
            &mut state,
            &POLICY,
            &update("t0", TaskState::TaskLost, Some(1)),
            5,
        );
        assert!(state.failover().contains_key("j@-@0"));
        launch(&mut state, "t1", 1, 0);
        let status = labelled(
            executor_update("t1", TaskState::TaskError, 2),
            shardex_common::status_contract::SETUP_ERROR,
            "job",
        );
        apply_update(&mut state, &POLICY, &status, 10);
        assert!(state.failover().is_empty(), "parking removed the entry");
        assert!(state.invariant_violations().is_empty());
        // A later crash of a parked item queues nothing.
        launch(&mut state, "t2", 2, 0);
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t2", TaskState::TaskLost, Some(3)),
            20,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::AlreadyParked,
                job_failure: false
            }
        );
        assert!(state.failover().is_empty());
        assert!(!state.put_failover(FailoverEntry {
            job: "j".into(),
            item: 2,
            original_task_id: "t2".into(),
            attempts: 1,
            not_before: 0,
            recorded_at: 0,
            cause: String::new(),
        }));
        assert!(state.invariant_violations().is_empty());
    }

    #[test]
    fn a_job_failure_is_retried_up_to_retries_and_a_crash_follows_failover() {
        // failover on, retries 0: the job's own failure is not re-run, a crash is.
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 0, 0);
        let out = apply_update(
            &mut state,
            &POLICY,
            &executor_update("t1", TaskState::TaskFailed, 1),
            10,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::NotWanted,
                job_failure: true
            }
        );
        launch(&mut state, "t2", 1, 0);
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("t2", TaskState::TaskFailed, Some(2)),
            10,
        );
        assert!(matches!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::Recorded { attempts: 1, .. },
                job_failure: false
            }
        ));

        // failover off, retries 2: two re-runs of the job's failure, then the run has failed
        // (nothing parked: the next cron run starts afresh).
        let mut state = state_with(false, false);
        state.registry_mut().jobs.get_mut("j").unwrap().retries = 2;
        for (attempt, expected) in [
            (
                0,
                FailoverOutcome::Recorded {
                    attempts: 1,
                    delay_ms: 0,
                },
            ),
            (
                1,
                FailoverOutcome::Recorded {
                    attempts: 2,
                    delay_ms: 1000,
                },
            ),
            (2, FailoverOutcome::RetriesExhausted { retries: 2 }),
        ] {
            state.remove_failover_of_job("j");
            let id = format!("t{attempt}");
            launch(&mut state, &id, 0, attempt);
            let out = apply_update(
                &mut state,
                &POLICY,
                &executor_update(&id, TaskState::TaskFailed, 1),
                10,
            );
            assert_eq!(
                out,
                Outcome::Failed {
                    failover: expected,
                    job_failure: true
                }
            );
        }
        assert!(state.parked().is_empty());
        // A crash with failover off is still not re-run.
        launch(&mut state, "c", 1, 0);
        let out = apply_update(
            &mut state,
            &POLICY,
            &update("c", TaskState::TaskLost, Some(1)),
            10,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::NotWanted,
                job_failure: false
            }
        );
    }

    #[test]
    fn a_timed_out_task_fails_its_run_and_is_retried() {
        let mut state = state_with(false, false);
        {
            let job = state.registry_mut().jobs.get_mut("j").unwrap();
            job.retries = 1;
            job.timeout = Some(shardex_mesos::duration::MesosDuration::secs(10));
        }
        launch(&mut state, "t1", 0, 0);
        state.running_mut("t1").unwrap().kill = Some(KillRequest {
            reason: KillReason::Timeout,
            requested_at: 5,
        });
        let out = apply_update(
            &mut state,
            &POLICY,
            &executor_update("t1", TaskState::TaskKilled, 1),
            10,
        );
        assert_eq!(
            out,
            Outcome::Failed {
                failover: FailoverOutcome::Recorded {
                    attempts: 1,
                    delay_ms: 0
                },
                job_failure: true
            }
        );
        assert_eq!(state.failover()["j@-@0"].cause, "timed out after 10secs");
    }

    #[test]
    fn the_first_running_update_starts_the_timeout_clock() {
        let mut state = state_with(true, false);
        launch(&mut state, "t1", 0, 0);
        apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskStarting, Some(1)),
            5,
        );
        assert_eq!(state.running()["t1"].started_at, None);
        apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskRunning, Some(2)),
            7,
        );
        apply_update(
            &mut state,
            &POLICY,
            &update("t1", TaskState::TaskRunning, Some(3)),
            9,
        );
        assert_eq!(state.running()["t1"].started_at, Some(7));
    }

    #[test]
    fn a_task_being_killed_that_mesos_does_not_know_leaves_and_is_a_stray_if_it_returns() {
        let mut state = state_with(true, true);
        launch(&mut state, "t1", 0, 0);
        {
            let task = state.running_mut("t1").unwrap();
            task.abandoned = true;
            task.kill = Some(KillRequest {
                reason: KillReason::SuspectTimeout,
                requested_at: 1,
            });
        }
        // Suspect but not being killed: stays.
        launch(&mut state, "t2", 1, 0);
        let unknown = |id: &str| update(id, TaskState::TaskUnknown, None);
        assert_eq!(
            apply_update(&mut state, &POLICY, &unknown("t1"), 10),
            Outcome::Vanished
        );
        assert!(matches!(
            apply_update(&mut state, &POLICY, &unknown("t2"), 10),
            Outcome::Suspect { .. }
        ));
        assert_eq!(state.running().keys().collect::<Vec<_>>(), vec!["t2"]);
        assert_eq!(state.history()["t1"].state, VANISHED);
        // Answered unknown again: nothing changes; seen running again: a stray to kill.
        assert_eq!(
            apply_update(&mut state, &POLICY, &unknown("t1"), 11),
            Outcome::AlreadyTerminal { state: VANISHED }
        );
        assert_eq!(
            apply_update(
                &mut state,
                &POLICY,
                &update("t1", TaskState::TaskRunning, Some(4)),
                12
            ),
            Outcome::Unknown { terminal: false }
        );
    }
}
