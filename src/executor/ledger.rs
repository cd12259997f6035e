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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

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

/// Every record is indexed (by creation number, uuid and task), so each operation costs the
/// same with ten thousand tasks in flight as with one: a burst of LAUNCHes no longer makes
/// every update scan every other.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Creation number of the next update or task.
    next: u64,
    /// Updates not acknowledged, by creation number (so in creation order).
    updates: BTreeMap<u64, PendingUpdate>,
    by_uuid: HashMap<Vec<u8>, u64>,
    /// Tasks received and not yet known to the agent, by arrival number.
    tasks: BTreeMap<u64, TaskInfo>,
    task_numbers: HashMap<String, u64>,
    /// The outbox: each task's updates still to POST on this subscription, oldest first.
    queues: HashMap<String, VecDeque<u64>>,
    /// The tasks whose oldest queued update may go now (no update of theirs in flight), by
    /// that update's number: the first is the oldest update that may go.
    ready: BTreeSet<(u64, String)>,
    /// Updates being POSTed: uuid → (number, task).
    in_flight: HashMap<Vec<u8>, (u64, String)>,
    /// The update in flight that holds each task's next ones back.
    holding: HashMap<String, Vec<u8>>,
}

impl Ledger {
    /// Remembers a task received in LAUNCH.
    pub fn record_task(&mut self, task: TaskInfo) {
        if !self.task_numbers.contains_key(&task.task_id.value) {
            let number = self.number();
            self.task_numbers.insert(task.task_id.value.clone(), number);
            self.tasks.insert(number, task);
        }
    }

    fn number(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Remembers a new update and queues it for sending.
    pub fn record_update(&mut self, update: executor::call::Update) {
        let status = &update.status;
        let uuid = status.uuid.clone().unwrap_or_default();
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        let task_id = status.task_id.value.clone();
        let number = self.number();
        self.by_uuid.insert(uuid.clone(), number);
        self.updates.insert(
            number,
            PendingUpdate {
                uuid,
                task_id: task_id.clone(),
                state,
                update,
            },
        );
        let queue = self.queues.entry(task_id.clone()).or_default();
        queue.push_back(number);
        if queue.len() == 1 && !self.holding.contains_key(&task_id) {
            self.ready.insert((number, task_id));
        }
    }

    /// Puts `task` back among those that may send, if it has something queued and nothing
    /// holding it back.
    fn refresh(&mut self, task: &str) {
        if self.holding.contains_key(task) {
            return;
        }
        if let Some(&head) = self.queues.get(task).and_then(VecDeque::front) {
            self.ready.insert((head, task.to_owned()));
        }
    }

    /// Picks the next update to POST and marks it in flight: the oldest queued update whose task
    /// has no update in flight and no older one queued. `None` when nothing may go now or
    /// `max_in_flight` are already out.
    pub fn start_next_send(&mut self, max_in_flight: usize) -> Option<PendingUpdate> {
        if self.in_flight.len() >= max_in_flight {
            return None;
        }
        let (number, task) = self.ready.pop_first()?;
        let chosen = self.updates.get(&number)?.clone();
        self.in_flight
            .insert(chosen.uuid.clone(), (number, task.clone()));
        self.holding.insert(task, chosen.uuid.clone());
        Some(chosen)
    }

    /// Whether the update with `uuid` is being POSTed.
    pub fn is_in_flight(&self, uuid: &[u8]) -> bool {
        self.in_flight.contains_key(uuid)
    }

    /// Ends the POST of `uuid`: the task's next update may go. Whether it held the task back.
    fn land(&mut self, uuid: &[u8]) -> Option<(u64, String)> {
        let (number, task) = self.in_flight.remove(uuid)?;
        if self.holding.get(&task).is_some_and(|held| held == uuid) {
            self.holding.remove(&task);
        }
        Some((number, task))
    }

    /// Removes update `number` from its task's queue.
    fn unqueue(&mut self, task: &str, number: u64) {
        let Some(queue) = self.queues.get_mut(task) else {
            return;
        };
        if queue.front() == Some(&number) {
            self.ready.remove(&(number, task.to_owned()));
        }
        queue.retain(|queued| *queued != number);
        if queue.is_empty() {
            self.queues.remove(task);
        }
    }

    /// The agent accepted (`202`) the update with `uuid`.
    pub fn mark_sent(&mut self, uuid: &[u8]) {
        let Some((number, task)) = self.land(uuid) else {
            return;
        };
        self.unqueue(&task, number);
        self.refresh(&task);
    }

    /// The POST of `uuid` failed in a way worth retrying: it stays queued in its place.
    pub fn mark_unsent(&mut self, uuid: &[u8]) {
        if let Some((_, task)) = self.land(uuid) {
            self.refresh(&task);
        }
    }

    /// The connection is gone: nothing is in flight any more.
    pub fn abandon_in_flight(&mut self) {
        let landed: Vec<Vec<u8>> = self.in_flight.keys().cloned().collect();
        for uuid in landed {
            if let Some((_, task)) = self.land(&uuid) {
                self.refresh(&task);
            }
        }
    }

    /// Applies an ACKNOWLEDGED event. `None` for an acknowledgement of nothing we hold (a
    /// duplicate, or one for an update already confirmed).
    pub fn acknowledge(&mut self, task_id: &str, uuid: &[u8]) -> Option<Acknowledgement> {
        let number = *self.by_uuid.get(uuid)?;
        if self.updates.get(&number)?.task_id != task_id {
            return None;
        }
        self.by_uuid.remove(uuid);
        let update = self.updates.remove(&number)?;
        self.unqueue(task_id, number);
        // Acknowledged while its POST is still out: it holds nothing back any more (its
        // answer will still come, and is still expected).
        if self.holding.get(task_id).is_some_and(|held| held == uuid) {
            self.holding.remove(task_id);
        }
        self.refresh(task_id);
        // Any acknowledged update means the agent knows the task.
        if let Some(number) = self.task_numbers.remove(task_id) {
            self.tasks.remove(&number);
        }
        Some(Acknowledgement {
            task_id: update.task_id,
            state: update.state,
            terminal: states::is_terminal(update.state),
        })
    }

    /// The body of the next SUBSCRIBE. Everything unacknowledged goes in it, so the outbox is
    /// cleared.
    pub fn subscribe_message(&mut self) -> executor::call::Subscribe {
        self.queues.clear();
        self.ready.clear();
        self.in_flight.clear();
        self.holding.clear();
        executor::call::Subscribe {
            unacknowledged_tasks: self.tasks.values().cloned().collect(),
            unacknowledged_updates: self
                .updates
                .values()
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
    fn an_update_acknowledged_before_its_202_lets_the_next_one_go() {
        let mut ledger = Ledger::default();
        ledger.record_update(update("a", TaskState::TaskStarting, 1));
        ledger.record_update(update("a", TaskState::TaskRunning, 2));
        assert_eq!(ledger.start_next_send(8).unwrap().uuid, vec![1; 16]);
        assert_eq!(ledger.start_next_send(8), None);
        ledger.acknowledge("a", &[1; 16]).unwrap();
        assert!(ledger.is_in_flight(&[1; 16]), "its answer is still awaited");
        assert_eq!(ledger.start_next_send(8).unwrap().uuid, vec![2; 16]);
        // The late 202 of the first changes nothing for the second.
        ledger.mark_sent(&[1; 16]);
        assert!(ledger.is_in_flight(&[2; 16]));
        assert_eq!(ledger.start_next_send(8), None);
    }

    #[test]
    fn many_tasks_go_out_oldest_first_one_update_each_at_a_time() {
        let mut ledger = Ledger::default();
        for round in 0..3u8 {
            for task in 0..100u8 {
                let mut u = update(&format!("t{task}"), TaskState::TaskRunning, 0);
                u.status.uuid = Some(vec![round, task]);
                ledger.record_update(u);
            }
        }
        let mut sent = Vec::new();
        while let Some(next) = ledger.start_next_send(usize::MAX) {
            sent.push(next.uuid.clone());
        }
        // One per task: each task's first update, in creation order.
        assert_eq!(sent, (0..100u8).map(|t| vec![0, t]).collect::<Vec<_>>());
        ledger.mark_sent(&[0, 7]);
        assert_eq!(ledger.start_next_send(usize::MAX).unwrap().uuid, vec![1, 7]);
        ledger.abandon_in_flight();
        // Everything not accepted goes again, still oldest first.
        assert_eq!(ledger.start_next_send(usize::MAX).unwrap().uuid, vec![0, 0]);
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
