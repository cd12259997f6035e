//! What `shardex-executor` tells the scheduler beyond the Mesos task state, in one place for
//! both sides.
//!
//! - A daemon task stays `TASK_RUNNING` and sends `TASK_RUNNING` with message [`FIRE_BEGIN`]
//!   before each cron fire and [`FIRE_COMPLETE`] after it (Elastic-Job-Cloud's convention).
//! - When the executor stops itself because one task broke it (a setup error, a plugin panic,
//!   `error_policy = "stop"`, a job ignoring cancellation), every *other* task it ran ends
//!   `TASK_FAILED` carrying the label [`STOPPED_FOR`]`=<task id of the broken task>`. Those
//!   shards did nothing wrong: the scheduler fails them over without counting an attempt
//!   against them.
//! - The broken task's own terminal update carries [`EXECUTOR_STOPPING`] when the executor stops
//!   because of it: the scheduler then launches nothing more into that executor id until Mesos
//!   reports the executor gone (a task sent to a terminating executor ends `TASK_DROPPED`).
//! - A setup error that will happen again on every launch (a plugin file that is missing or not
//!   a plugin, a kind the plugin does not implement, a daemon cron the executor cannot parse, a
//!   payload it cannot decode) carries [`SETUP_ERROR`]`=job|item`: the scheduler parks the job's
//!   items (or the one item) instead of retrying blindly.
//! - A job whose worker process died (a signal such as `SIGSEGV`, a non-zero exit, an exit
//!   without an outcome, a broken protocol stream) ends its task `TASK_FAILED` with the label
//!   [`JOB_CRASHED`]`=<what happened>`. Only that task ends; the scheduler counts it as a crash
//!   of that task (failed over per the job's `failover`, charged to its attempts), not as a job
//!   failure (`retries`).
//! - The first `TASK_RUNNING` of a task carries the label [`WORK_DIR`]`=<absolute path>`: the
//!   task's own work directory, `<executor sandbox>/tasks/<task id>`, which the scheduler shows
//!   in `/api/tasks/running`.

use shardex_mesos::proto::v1::{Label, Labels, TaskStatus};

/// Message of the `TASK_RUNNING` update before a daemon fire.
pub const FIRE_BEGIN: &str = "BEGIN";
/// Message of the `TASK_RUNNING` update after a daemon fire.
pub const FIRE_COMPLETE: &str = "COMPLETE";
/// Label key on the terminal update of a task stopped because another task broke the executor.
pub const STOPPED_FOR: &str = "shardex.stopped_for";
/// Label key on the terminal update of the task that made its executor stop itself.
pub const EXECUTOR_STOPPING: &str = "shardex.executor_stopping";
/// Label key on a `TASK_ERROR` caused by a setup error that will recur on every launch.
pub const SETUP_ERROR: &str = "shardex.setup_error";

/// Label key on the terminal update of a task whose job process crashed.
pub const JOB_CRASHED: &str = "shardex.job_crashed";

/// What a deterministic setup error makes unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupScope {
    /// Every item of the job fails the same way (the plugin, its kind, the daemon cron).
    Job,
    /// This task's payload.
    Item,
}

impl SetupScope {
    pub fn as_str(self) -> &'static str {
        match self {
            SetupScope::Job => "job",
            SetupScope::Item => "item",
        }
    }
}

/// Label key on a task's first `TASK_RUNNING`: the task's work directory on the agent.
pub const WORK_DIR: &str = "shardex.work_dir";

/// The labels announcing a task's work directory.
pub fn work_dir(path: &str) -> Labels {
    Labels {
        labels: vec![label(WORK_DIR, path)],
    }
}

/// The work directory an update announces, if any.
pub fn work_dir_of(status: &TaskStatus) -> Option<&str> {
    label_of(status, WORK_DIR)
}

/// The labels marking a task stopped because of `culprit`.
pub fn stopped_for(culprit: &str) -> Labels {
    Labels {
        labels: vec![Label {
            key: STOPPED_FOR.to_owned(),
            value: Some(culprit.to_owned()),
        }],
    }
}

/// One label.
pub fn label(key: &str, value: &str) -> Label {
    Label {
        key: key.to_owned(),
        value: Some(value.to_owned()),
    }
}

fn label_of<'a>(status: &'a TaskStatus, key: &str) -> Option<&'a str> {
    status
        .labels
        .as_ref()?
        .labels
        .iter()
        .find(|label| label.key == key)
        .and_then(|label| label.value.as_deref())
}

/// The task whose failure stopped this one's executor, if the update says so.
pub fn stopped_for_of(status: &TaskStatus) -> Option<&str> {
    label_of(status, STOPPED_FOR)
}

/// Whether the update says its executor is stopping (because of this task or of another).
pub fn executor_stopping(status: &TaskStatus) -> bool {
    label_of(status, EXECUTOR_STOPPING).is_some() || stopped_for_of(status).is_some()
}

/// How the task's job process crashed, if the update says it did.
pub fn job_crashed_of(status: &TaskStatus) -> Option<&str> {
    label_of(status, JOB_CRASHED)
}

/// The scope of a deterministic setup error, if the update reports one.
pub fn setup_error_of(status: &TaskStatus) -> Option<SetupScope> {
    match label_of(status, SETUP_ERROR)? {
        "job" => Some(SetupScope::Job),
        "item" => Some(SetupScope::Item),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_round_trips() {
        let status = TaskStatus {
            labels: Some(stopped_for("broken-task")),
            ..Default::default()
        };
        assert_eq!(stopped_for_of(&status), Some("broken-task"));
        assert_eq!(stopped_for_of(&TaskStatus::default()), None);
        assert!(executor_stopping(&status));
        assert!(!executor_stopping(&TaskStatus::default()));
        let status = TaskStatus {
            labels: Some(work_dir("/sandbox/tasks/t")),
            ..Default::default()
        };
        assert_eq!(work_dir_of(&status), Some("/sandbox/tasks/t"));
        assert_eq!(stopped_for_of(&status), None);
    }

    #[test]
    fn setup_error_scopes_round_trip() {
        for scope in [SetupScope::Job, SetupScope::Item] {
            let status = TaskStatus {
                labels: Some(Labels {
                    labels: vec![label(SETUP_ERROR, scope.as_str())],
                }),
                ..Default::default()
            };
            assert_eq!(setup_error_of(&status), Some(scope));
        }
        assert_eq!(setup_error_of(&TaskStatus::default()), None);
    }
}
