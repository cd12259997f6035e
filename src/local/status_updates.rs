//! The agent's task status update manager (`src/slave/task_status_update_manager.cpp`).
//!
//! One stream per (framework, task): updates are de-duplicated by uuid, queued, and only the
//! oldest unacknowledged one is "in flight" towards the scheduler; the next is forwarded when the
//! scheduler's ACKNOWLEDGE for it arrives. The in-flight update is re-sent on a timer (10 s,
//! doubling, capped at 10 min in Mesos) until acknowledged. While the agent is not registered
//! with the master the manager is paused; [`StatusUpdateManager::resume`] returns every stream's
//! in-flight update to be sent again, byte for byte.
//!
//! This type only keeps the books; the agent forwards what it returns and arms the timers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use shardex_mesos::proto::v1::{TaskState, TaskStatus};
use shardex_mesos::states::is_terminal;

/// Mesos' `STATUS_UPDATE_RETRY_INTERVAL_MIN` / `_MAX`.
pub const RETRY_INTERVAL_MIN: Duration = Duration::from_secs(10);
pub const RETRY_INTERVAL_MAX: Duration = Duration::from_secs(600);

/// Key of a stream: (framework id, task id).
pub type StreamKey = (String, String);

#[derive(Debug, Default)]
struct Stream {
    pending: VecDeque<TaskStatus>,
    received: HashSet<Vec<u8>>,
    acknowledged: HashSet<Vec<u8>>,
    /// Bumped whenever the in-flight update changes, so stale retry timers are ignored.
    generation: u64,
    retry_interval: Duration,
}

/// What happened to an update handed to [`StatusUpdateManager::update`].
// Short-lived return values; boxing the update would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum UpdateOutcome {
    /// Same uuid as one already received: the agent still acknowledges it to the executor.
    Duplicate,
    /// Queued; `Some` when it became the in-flight update and must be forwarded now.
    Queued(Option<Forward>),
}

/// An update to send to the master, with the retry timer to arm for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub key: StreamKey,
    pub status: TaskStatus,
    pub generation: u64,
    pub retry_after: Duration,
}

/// What an acknowledgement did.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum AckOutcome {
    /// Matched the in-flight update. `terminal` when it was the task's terminal update (the
    /// stream is then closed); `next` is the following update to forward.
    Matched {
        terminal: bool,
        next: Option<Forward>,
    },
    /// Already acknowledged (e.g. the scheduler acknowledged a duplicate copy).
    Duplicate,
    /// No such stream or not the in-flight update.
    Unexpected,
}

#[derive(Debug)]
pub struct StatusUpdateManager {
    streams: HashMap<StreamKey, Stream>,
    /// Stream creation order, so resumes re-send in a stable order.
    order: Vec<StreamKey>,
    paused: bool,
    retry_min: Duration,
}

impl StatusUpdateManager {
    pub fn new(retry_min: Duration) -> StatusUpdateManager {
        StatusUpdateManager {
            streams: HashMap::new(),
            order: Vec::new(),
            paused: false,
            retry_min,
        }
    }

    /// Every update taken and not yet acknowledged by the scheduler, stream by stream.
    pub fn pending(&self) -> Vec<TaskStatus> {
        self.order
            .iter()
            .filter_map(|key| self.streams.get(key))
            .flat_map(|stream| stream.pending.iter().cloned())
            .collect()
    }

    /// Records an update; see [`UpdateOutcome`].
    pub fn update(&mut self, framework_id: &str, status: TaskStatus) -> UpdateOutcome {
        let key = (framework_id.to_owned(), status.task_id.value.clone());
        let uuid = status.uuid.clone().unwrap_or_default();
        let stream = match self.streams.get_mut(&key) {
            Some(stream) => stream,
            None => {
                self.order.push(key.clone());
                self.streams.entry(key.clone()).or_default()
            }
        };
        if !stream.received.insert(uuid) {
            return UpdateOutcome::Duplicate;
        }
        stream.pending.push_back(status);
        if stream.pending.len() > 1 || self.paused {
            return UpdateOutcome::Queued(None);
        }
        stream.generation += 1;
        stream.retry_interval = self.retry_min;
        UpdateOutcome::Queued(Some(Forward {
            key: key.clone(),
            status: stream.pending[0].clone(),
            generation: stream.generation,
            retry_after: stream.retry_interval,
        }))
    }

    /// Handles the scheduler's acknowledgement of `uuid` for a task.
    pub fn acknowledge(&mut self, framework_id: &str, task_id: &str, uuid: &[u8]) -> AckOutcome {
        let key = (framework_id.to_owned(), task_id.to_owned());
        let Some(stream) = self.streams.get_mut(&key) else {
            return AckOutcome::Unexpected;
        };
        if stream.acknowledged.contains(uuid) {
            return AckOutcome::Duplicate;
        }
        let Some(front) = stream.pending.front() else {
            return AckOutcome::Unexpected;
        };
        if front.uuid.as_deref() != Some(uuid) {
            return AckOutcome::Unexpected;
        }
        let acked = stream.pending.pop_front();
        stream.acknowledged.insert(uuid.to_vec());
        let terminal =
            acked.is_some_and(|status| TaskState::try_from(status.state).is_ok_and(is_terminal));
        if terminal {
            // The task is done: the stream closes, later updates (which an executor must not
            // send) open a new one.
            self.streams.remove(&key);
            self.order.retain(|k| *k != key);
            return AckOutcome::Matched {
                terminal: true,
                next: None,
            };
        }
        let next = if self.paused {
            None
        } else {
            stream.generation += 1;
            stream.retry_interval = self.retry_min;
            stream.pending.front().map(|status| Forward {
                key: key.clone(),
                status: status.clone(),
                generation: stream.generation,
                retry_after: stream.retry_interval,
            })
        };
        AckOutcome::Matched {
            terminal: false,
            next,
        }
    }

    /// A retry timer fired: the in-flight update to send again, if it is still unacknowledged.
    pub fn retry(&mut self, key: &StreamKey, generation: u64) -> Option<Forward> {
        if self.paused {
            return None;
        }
        let stream = self.streams.get_mut(key)?;
        if stream.generation != generation {
            return None;
        }
        let status = stream.pending.front()?.clone();
        stream.generation += 1;
        stream.retry_interval = (stream.retry_interval * 2).min(RETRY_INTERVAL_MAX);
        Some(Forward {
            key: key.clone(),
            status,
            generation: stream.generation,
            retry_after: stream.retry_interval,
        })
    }

    /// Stops forwarding (the agent lost its master).
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Starts forwarding again: every stream's in-flight update, to send now.
    pub fn resume(&mut self) -> Vec<Forward> {
        self.paused = false;
        let mut out = Vec::new();
        for key in &self.order {
            if let Some(stream) = self.streams.get_mut(key)
                && let Some(status) = stream.pending.front()
            {
                stream.generation += 1;
                stream.retry_interval = self.retry_min;
                out.push(Forward {
                    key: key.clone(),
                    status: status.clone(),
                    generation: stream.generation,
                    retry_after: stream.retry_interval,
                });
            }
        }
        out
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Forgets every stream of a framework (framework shut down).
    pub fn remove_framework(&mut self, framework_id: &str) {
        self.streams.retain(|(fw, _), _| fw != framework_id);
        self.order.retain(|(fw, _)| fw != framework_id);
    }

    /// Whether a task still has updates the scheduler has not acknowledged.
    pub fn has_pending(&self, framework_id: &str, task_id: &str) -> bool {
        self.streams
            .get(&(framework_id.to_owned(), task_id.to_owned()))
            .is_some_and(|stream| !stream.pending.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardex_mesos::proto::v1::TaskId;

    fn status(task: &str, state: TaskState) -> TaskStatus {
        TaskStatus {
            task_id: TaskId { value: task.into() },
            state: state as i32,
            uuid: Some(shardex_mesos::uuid::new_update_uuid()),
            ..Default::default()
        }
    }

    #[test]
    fn one_update_in_flight_per_task() {
        let mut manager = StatusUpdateManager::new(RETRY_INTERVAL_MIN);
        let running = status("t", TaskState::TaskRunning);
        let finished = status("t", TaskState::TaskFinished);
        let UpdateOutcome::Queued(Some(first)) = manager.update("f", running.clone()) else {
            panic!("first update is forwarded at once");
        };
        assert_eq!(first.status, running);
        assert_eq!(
            manager.update("f", finished.clone()),
            UpdateOutcome::Queued(None)
        );
        assert_eq!(
            manager.update("f", running.clone()),
            UpdateOutcome::Duplicate
        );
        // A retry of the in-flight update doubles the interval.
        let again = manager.retry(&first.key, first.generation).unwrap();
        assert_eq!(again.retry_after, Duration::from_secs(20));
        assert!(
            manager.retry(&first.key, first.generation).is_none(),
            "stale"
        );
        assert_eq!(
            manager.acknowledge("f", "t", finished.uuid.as_ref().unwrap()),
            AckOutcome::Unexpected
        );
        let AckOutcome::Matched { terminal, next } =
            manager.acknowledge("f", "t", running.uuid.as_ref().unwrap())
        else {
            panic!("matches");
        };
        assert!(!terminal);
        assert_eq!(next.unwrap().status, finished);
        assert_eq!(
            manager.acknowledge("f", "t", running.uuid.as_ref().unwrap()),
            AckOutcome::Duplicate
        );
        assert!(matches!(
            manager.acknowledge("f", "t", finished.uuid.as_ref().unwrap()),
            AckOutcome::Matched {
                terminal: true,
                next: None
            }
        ));
        assert!(!manager.has_pending("f", "t"));
    }

    #[test]
    fn paused_manager_resends_everything_on_resume() {
        let mut manager = StatusUpdateManager::new(RETRY_INTERVAL_MIN);
        manager.pause();
        assert_eq!(
            manager.update("f", status("a", TaskState::TaskRunning)),
            UpdateOutcome::Queued(None)
        );
        manager.update("f", status("b", TaskState::TaskRunning));
        let sent: Vec<String> = manager
            .resume()
            .into_iter()
            .map(|f| f.status.task_id.value)
            .collect();
        assert_eq!(sent, ["a", "b"]);
        assert_eq!(manager.resume().len(), 2, "every resume re-sends");
    }
}
