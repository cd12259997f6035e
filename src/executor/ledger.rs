//! The executor's record of what the agent has not yet confirmed (SUBSCRIBE's
//! `unacknowledged_tasks` and `unacknowledged_updates` in Mesos' `docs/executor-http-api.md`):
//! every UPDATE not yet ACKNOWLEDGED, in the order it was created, and every task received whose updates have not been acknowledged at all. Both are re-sent in the next
//! SUBSCRIBE; the updates byte for byte (same uuid, same timestamp), because the agent
//! de-duplicates by uuid and a new uuid would be a new update.
//!
//! It also keeps the outbox: updates created on the current subscription and not yet accepted
//! (`202`) by the agent, oldest first. Updates of one task are POSTed one at a time (the next
//! only after the previous got its `202`), so the agent sees each task's updates in order;
//! updates of different tasks may be in flight together. A resubscription delivers every
//! unacknowledged update, so it empties the outbox.

use std::collections::VecDeque;

use shardex_mesos::proto::v1::{TaskInfo, TaskState, executor};
use shardex_mesos::states;

/// One update the agent has not acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingUpdate {
    pub uuid: Vec<u8>,
    pub task_id: String,
    pub state: TaskState,
    /// Exactly what was (or will be) sent; never rebuilt.
    pub update: executor::call::Update,
}

/// What an ACKNOWLEDGED event confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub task_id: String,
    pub state: TaskState,
    pub terminal: bool,
}

#[derive(Debug, Default)]
pub struct Ledger {
    updates: VecDeque<PendingUpdate>,
    tasks: Vec<TaskInfo>,
    /// uuids of `updates` still to POST on the current subscription, oldest first.
    outbox: VecDeque<Vec<u8>>,
    /// uuids of outbox updates being POSTed.
    in_flight: Vec<Vec<u8>>,
}

impl Ledger {
    /// Remembers a task received in LAUNCH.
    pub fn record_task(&mut self, task: TaskInfo) {
        if !self
            .tasks
            .iter()
            .any(|known| known.task_id.value == task.task_id.value)
        {
            self.tasks.push(task);
        }
    }

    /// Remembers a new update and queues it for sending.
    pub fn record_update(&mut self, update: executor::call::Update) {
        let status = &update.status;
        let uuid = status.uuid.clone().unwrap_or_default();
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        self.outbox.push_back(uuid.clone());
        self.updates.push_back(PendingUpdate {
            uuid,
            task_id: status.task_id.value.clone(),
            state,
            update,
        });
    }

    /// Picks the next update to POST and marks it in flight: the oldest queued update whose task
    /// has no update in flight and no older one queued. `None` when nothing may go now or
    /// `max_in_flight` are already out.
    pub fn start_next_send(&mut self, max_in_flight: usize) -> Option<PendingUpdate> {
        if self.in_flight.len() >= max_in_flight {
            return None;
        }
        let mut blocked: Vec<&str> = self
            .in_flight
            .iter()
            .filter_map(|uuid| self.find(uuid))
            .map(|update| update.task_id.as_str())
            .collect();
        let mut chosen = None;
        for uuid in &self.outbox {
            if self.in_flight.contains(uuid) {
                continue;
            }
            let Some(update) = self.find(uuid) else {
                continue;
            };
            if blocked.contains(&update.task_id.as_str()) {
                continue;
            }
            if chosen.is_none() {
                chosen = Some(update.clone());
                break;
            }
            blocked.push(update.task_id.as_str());
        }
        let chosen = chosen?;
        self.in_flight.push(chosen.uuid.clone());
        Some(chosen)
    }

    /// Whether the update with `uuid` is being POSTed.
    pub fn is_in_flight(&self, uuid: &[u8]) -> bool {
        self.in_flight.iter().any(|queued| queued == uuid)
    }

    /// The agent accepted (`202`) the update with `uuid`.
    pub fn mark_sent(&mut self, uuid: &[u8]) {
        self.in_flight.retain(|queued| queued != uuid);
        self.outbox.retain(|queued| queued != uuid);
    }

    /// The POST of `uuid` failed in a way worth retrying: it stays queued in its place.
    pub fn mark_unsent(&mut self, uuid: &[u8]) {
        self.in_flight.retain(|queued| queued != uuid);
    }

    /// The connection is gone: nothing is in flight any more.
    pub fn abandon_in_flight(&mut self) {
        self.in_flight.clear();
    }

    fn find(&self, uuid: &[u8]) -> Option<&PendingUpdate> {
        self.updates.iter().find(|update| update.uuid == uuid)
    }

    /// Applies an ACKNOWLEDGED event. `None` for an acknowledgement of nothing we hold (a
    /// duplicate, or one for an update already confirmed).
    pub fn acknowledge(&mut self, task_id: &str, uuid: &[u8]) -> Option<Acknowledgement> {
        let index = self
            .updates
            .iter()
            .position(|update| update.uuid == uuid && update.task_id == task_id)?;
        let update = self.updates.remove(index)?;
        self.outbox.retain(|queued| queued != uuid);
        // Any acknowledged update means the agent knows the task.
        self.tasks.retain(|task| task.task_id.value != task_id);
        Some(Acknowledgement {
            task_id: update.task_id,
            state: update.state,
            terminal: states::is_terminal(update.state),
        })
    }

    /// The body of the next SUBSCRIBE. Everything unacknowledged goes in it, so the outbox is
    /// cleared.
    pub fn subscribe_message(&mut self) -> executor::call::Subscribe {
        self.outbox.clear();
        self.in_flight.clear();
        executor::call::Subscribe {
            unacknowledged_tasks: self.tasks.clone(),
            unacknowledged_updates: self
                .updates
                .iter()
                .map(|pending| pending.update.clone())
                .collect(),
        }
    }

    /// Whether every update has been acknowledged.
    pub fn all_acknowledged(&self) -> bool {
        self.updates.is_empty()
    }

    pub fn unacknowledged_updates(&self) -> usize {
        self.updates.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardex_mesos::proto::v1::{self, TaskId, task_status};

    fn update(task: &str, state: TaskState, uuid: u8) -> executor::call::Update {
        executor::call::Update {
            status: v1::TaskStatus {
                task_id: TaskId { value: task.into() },
                state: state as i32,
                source: Some(task_status::Source::Executor as i32),
                uuid: Some(vec![uuid; 16]),
                timestamp: Some(1.5),
                ..Default::default()
            },
        }
    }

    fn task(id: &str) -> TaskInfo {
        TaskInfo {
            name: id.into(),
            task_id: TaskId { value: id.into() },
            ..Default::default()
        }
    }

    #[test]
    fn sends_in_creation_order_and_forgets_only_on_acknowledgement() {
        let mut ledger = Ledger::default();
        ledger.record_task(task("t1"));
        ledger.record_update(update("t1", TaskState::TaskStarting, 1));
        ledger.record_update(update("t1", TaskState::TaskRunning, 2));
        assert_eq!(ledger.start_next_send(8).unwrap().uuid, vec![1; 16]);
        // The task's next update waits for the first one's 202.
        assert_eq!(ledger.start_next_send(8), None);
        ledger.mark_sent(&[1; 16]);
        assert_eq!(ledger.start_next_send(8).unwrap().uuid, vec![2; 16]);
        ledger.mark_sent(&[2; 16]);
        assert!(ledger.start_next_send(8).is_none());
        assert_eq!(ledger.unacknowledged_updates(), 2);

        let ack = ledger.acknowledge("t1", &[1; 16]).unwrap();
        assert_eq!(ack.state, TaskState::TaskStarting);
        assert!(!ack.terminal);
        // A duplicate acknowledgement confirms nothing.
        assert_eq!(ledger.acknowledge("t1", &[1; 16]), None);
        // The task is known to the agent now: it leaves unacknowledged_tasks.
        assert!(ledger.subscribe_message().unacknowledged_tasks.is_empty());
    }

    #[test]
    fn different_tasks_go_out_together_but_each_task_in_order() {
        let mut ledger = Ledger::default();
        ledger.record_update(update("a", TaskState::TaskStarting, 1));
        ledger.record_update(update("a", TaskState::TaskRunning, 2));
        ledger.record_update(update("b", TaskState::TaskStarting, 3));
        ledger.record_update(update("c", TaskState::TaskStarting, 4));
        let first = ledger.start_next_send(2).unwrap();
        let second = ledger.start_next_send(2).unwrap();
        assert_eq!((first.uuid, second.uuid), (vec![1; 16], vec![3; 16]));
        // The bound holds.
        assert_eq!(ledger.start_next_send(2), None);
        // A retryable failure keeps the update first in line for its task.
        ledger.mark_unsent(&[1; 16]);
        assert_eq!(ledger.start_next_send(2).unwrap().uuid, vec![1; 16]);
        ledger.mark_sent(&[3; 16]);
        assert_eq!(ledger.start_next_send(2).unwrap().uuid, vec![4; 16]);
        ledger.mark_sent(&[1; 16]);
        ledger.mark_sent(&[4; 16]);
        assert_eq!(ledger.start_next_send(2).unwrap().uuid, vec![2; 16]);
        assert!(ledger.is_in_flight(&[2; 16]));
        ledger.abandon_in_flight();
        assert!(!ledger.is_in_flight(&[2; 16]));
    }

    #[test]
    fn resubscription_carries_both_maps_unchanged_and_empties_the_outbox() {
        let mut ledger = Ledger::default();
        ledger.record_task(task("t1"));
        ledger.record_task(task("t2"));
        ledger.record_task(task("t1"));
        let first = update("t1", TaskState::TaskRunning, 1);
        let second = update("t2", TaskState::TaskFinished, 2);
        ledger.record_update(first.clone());
        ledger.start_next_send(8).unwrap();
        ledger.mark_sent(&[1; 16]);
        ledger.record_update(second.clone());

        let subscribe = ledger.subscribe_message();
        assert_eq!(
            subscribe
                .unacknowledged_tasks
                .iter()
                .map(|t| t.task_id.value.as_str())
                .collect::<Vec<_>>(),
            ["t1", "t2"]
        );
        assert_eq!(subscribe.unacknowledged_updates, vec![first, second]);
        assert!(
            ledger.start_next_send(8).is_none(),
            "delivered by SUBSCRIBE"
        );

        ledger.acknowledge("t2", &[2; 16]).unwrap();
        ledger.acknowledge("t1", &[1; 16]).unwrap();
        assert!(ledger.all_acknowledged());
        let subscribe = ledger.subscribe_message();
        assert!(subscribe.unacknowledged_tasks.is_empty());
        assert!(subscribe.unacknowledged_updates.is_empty());
    }

    #[test]
    fn an_acknowledgement_must_match_task_and_uuid() {
        let mut ledger = Ledger::default();
        ledger.record_update(update("t1", TaskState::TaskFinished, 7));
        assert_eq!(ledger.acknowledge("t2", &[7; 16]), None);
        let ack = ledger.acknowledge("t1", &[7; 16]).unwrap();
        assert!(ack.terminal);
        assert!(
            ledger.start_next_send(8).is_none(),
            "acknowledged before it was sent"
        );
    }
}
