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
//! - The first `TASK_RUNNING` of a task carries the label [`WORK_DIR`]`=<absolute path>`: the
//!   task's own work directory, `<executor sandbox>/tasks/<task id>`, which the scheduler shows
//!   in `/api/tasks/running`.

use crate::mesos::proto::v1::{Label, Labels, TaskStatus};

/// Message of the `TASK_RUNNING` update before a daemon fire.
pub const FIRE_BEGIN: &str = "BEGIN";
/// Message of the `TASK_RUNNING` update after a daemon fire.
pub const FIRE_COMPLETE: &str = "COMPLETE";
/// Label key on the terminal update of a task stopped because another task broke the executor.
pub const STOPPED_FOR: &str = "shardex.stopped_for";

/// Label key on a task's first `TASK_RUNNING`: the task's work directory on the agent.
pub const WORK_DIR: &str = "shardex.work_dir";

/// The labels announcing a task's work directory.
pub fn work_dir(path: &str) -> Labels {
    Labels {
        labels: vec![Label {
            key: WORK_DIR.to_owned(),
            value: Some(path.to_owned()),
        }],
    }
}

/// The work directory an update announces, if any.
pub fn work_dir_of(status: &TaskStatus) -> Option<&str> {
    label(status, WORK_DIR)
}

fn label<'a>(status: &'a TaskStatus, key: &str) -> Option<&'a str> {
    status
        .labels
        .as_ref()?
        .labels
        .iter()
        .find(|label| label.key == key)
        .and_then(|label| label.value.as_deref())
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

/// The task whose failure stopped this one's executor, if the update says so.
pub fn stopped_for_of(status: &TaskStatus) -> Option<&str> {
    label(status, STOPPED_FOR)
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
        let status = TaskStatus {
            labels: Some(work_dir("/sandbox/tasks/t")),
            ..Default::default()
        };
        assert_eq!(work_dir_of(&status), Some("/sandbox/tasks/t"));
        assert_eq!(stopped_for_of(&status), None);
    }
}
