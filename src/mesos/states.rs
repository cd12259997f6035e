//! Facts about task states that both sides rely on.

use super::proto::v1::TaskState;

/// Terminal by Mesos' `isTerminalState` (TASK_LOST included, although a lost task may come
/// back; TASK_UNREACHABLE and TASK_UNKNOWN are not terminal).
pub fn is_terminal(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::TaskFinished
            | TaskState::TaskFailed
            | TaskState::TaskKilled
            | TaskState::TaskError
            | TaskState::TaskLost
            | TaskState::TaskDropped
            | TaskState::TaskGone
            | TaskState::TaskGoneByOperator
    )
}

/// The protobuf name (`TASK_RUNNING`) of a raw state number, or the number itself.
pub fn name(state: i32) -> String {
    TaskState::try_from(state)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("TaskState({state})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states() {
        assert!(is_terminal(TaskState::TaskFinished));
        assert!(is_terminal(TaskState::TaskGone));
        assert!(!is_terminal(TaskState::TaskRunning));
        assert!(!is_terminal(TaskState::TaskUnreachable));
        assert!(!is_terminal(TaskState::TaskUnknown));
        assert_eq!(name(TaskState::TaskStarting as i32), "TASK_STARTING");
        assert_eq!(name(99), "TaskState(99)");
    }
}
