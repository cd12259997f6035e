//! The scheduler's durable state in memory: registry, ready and failover queues, parked items,
//! every task Mesos may be running for us, recently finished tasks, and the framework id.
//!
//! Every mutation goes through a method of [`State`] or a [`Tracked`] map, which records the
//! changed key; the owner writes every changed key to the store in one transaction before it
//! acts on the outside world (ACCEPT, ACKNOWLEDGE). The store therefore never lags behind
//! anything Mesos was told, and no code has to remember to mark what it changed.

use serde::{Deserialize, Serialize};

use shardex_mesos::proto::v1::TaskState;

use super::ids::{ExecutionKind, item_key};
use super::registry::Registry;
use super::tracked::Tracked;

/// Task states are stored and shown by their Mesos names (`TASK_RUNNING`).
mod task_state_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use shardex_mesos::proto::v1::TaskState;

    pub fn serialize<S: Serializer>(state: &TaskState, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(state.as_str_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TaskState, D::Error> {
        let name = String::deserialize(d)?;
        TaskState::from_str_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown task state '{name}'")))
    }
}

/// Milliseconds since the Unix epoch: the scheduler's clock, persisted as is.
pub type Millis = i64;

/// Why the scheduler asked Mesos to kill a task. Kills the scheduler (or its operator) asked
/// for never count as failures and never fail over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillReason {
    /// The job or its app was disabled.
    Disabled,
    /// The job or its app was deregistered.
    Deregistered,
    /// A daemon's job or app configuration changed; it is relaunched with the new one.
    Updated,
    /// Suspect (unreachable/unknown) for longer than `tasks.suspect_timeout`; already failed
    /// over.
    SuspectTimeout,
    /// Ran longer than its job's `timeout`: the run failed (the job's `retries` apply).
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KillRequest {
    pub reason: KillReason,
    pub requested_at: Millis,
}

/// A task the scheduler launched and has not yet seen end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningTask {
    pub task_id: String,
    pub job: String,
    pub item: u32,
    pub kind: ExecutionKind,
    pub agent_id: String,
    pub executor_id: String,
    /// The task's work directory on the agent, as its executor announced it on `TASK_RUNNING`
    /// (`shardex.work_dir` label); `None` before that or from other executors.
    #[serde(default)]
    pub work_dir: Option<String>,
    /// The Mesos state last reported (`TASK_STAGING` until the first update).
    #[serde(with = "task_state_name")]
    pub state: TaskState,
    pub launched_at: Millis,
    /// When the first `TASK_RUNNING` arrived (a job's `timeout` counts from here).
    #[serde(default)]
    pub started_at: Option<Millis>,
    /// Consecutive failures of this item before this launch (0 for a fresh run).
    pub attempt: u32,
    /// The task this one re-runs (failover launches).
    pub original_task_id: Option<String>,
    /// Since when Mesos has reported the task unreachable or unknown.
    pub suspect_since: Option<Millis>,
    pub kill: Option<KillRequest>,
    /// Given up on after the suspect deadline: its item was failed over and no longer waits
    /// for it; the kill is still retried until Mesos confirms an end.
    pub abandoned: bool,
    /// Daemon tasks: between BEGIN and COMPLETE of a fire (false) or waiting (true).
    pub idle: Option<bool>,
    /// Uuids (text form) of the latest updates applied, to drop byte-identical re-sends.
    pub seen_uuids: Vec<String>,
}

/// How many update uuids a running task remembers.
pub const SEEN_UUIDS: usize = 16;

impl RunningTask {
    /// Whether the task still occupies its sharding item.
    pub fn blocks_item(&self) -> bool {
        !self.abandoned
    }
}

/// A sharding item waiting to be re-run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverEntry {
    pub job: String,
    pub item: u32,
    pub original_task_id: String,
    /// Consecutive failures so far (the relaunch carries it on).
    pub attempts: u32,
    /// Not relaunched before this time (retry backoff).
    pub not_before: Millis,
    pub recorded_at: Millis,
    /// The state (and message) that caused it.
    pub cause: String,
}

/// An item that is not run again, by failover or by cron, until released: it failed
/// `failover.max_attempts` times in a row, or its setup failed in a way that recurs on every
/// launch. Updating or re-enabling its job (or updating its app) releases it, and so does
/// `POST /api/tasks/parked/{job}/{item}/release`. A parked item is never queued for failover
/// at the same time ([`State`] keeps the two apart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedItem {
    pub job: String,
    pub item: u32,
    pub attempts: u32,
    pub last_task_id: String,
    pub cause: String,
    pub parked_at: Millis,
}

/// A task seen ending, remembered for `tasks.history_retention` so that duplicate or stale
/// updates about it (Mesos re-sends, reconciliation's TASK_GONE for acknowledged tasks) change
/// nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminalRecord {
    pub job: String,
    pub item: u32,
    #[serde(with = "task_state_name")]
    pub state: TaskState,
    pub at: Millis,
}

/// The scheduler's durable state. Its fields are private: every change goes through a method
/// (or through the [`Tracked`] maps of the registry), so every change is recorded for the next
/// commit, and the invariants hold by construction (an item is never parked and queued for
/// failover at once).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    framework_id: Option<String>,
    framework_id_changed: bool,
    registry: Registry,
    /// Pending runs per transient job; 1 for a daemon job waiting for its (re)launch.
    ready: Tracked<u32>,
    /// By `item_key(job, item)`.
    failover: Tracked<FailoverEntry>,
    /// By task id.
    running: Tracked<RunningTask>,
    /// By `item_key(job, item)`.
    parked: Tracked<ParkedItem>,
    /// By task id.
    history: Tracked<TerminalRecord>,
}

/// Everything the store holds, as loaded (nothing counts as changed).
#[derive(Debug, Default)]
pub struct Loaded {
    pub framework_id: Option<String>,
    pub registry: Registry,
    pub ready: Tracked<u32>,
    pub failover: Tracked<FailoverEntry>,
    pub running: Tracked<RunningTask>,
    pub parked: Tracked<ParkedItem>,
    pub history: Tracked<TerminalRecord>,
}

impl State {
    pub fn from_loaded(loaded: Loaded) -> State {
        State {
            framework_id: loaded.framework_id,
            framework_id_changed: false,
            registry: loaded.registry,
            ready: loaded.ready,
            failover: loaded.failover,
            running: loaded.running,
            parked: loaded.parked,
            history: loaded.history,
        }
    }

    pub fn framework_id(&self) -> Option<&str> {
        self.framework_id.as_deref()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry, to change it (its maps record what changes).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn ready(&self) -> &Tracked<u32> {
        &self.ready
    }

    pub fn failover(&self) -> &Tracked<FailoverEntry> {
        &self.failover
    }

    pub fn running(&self) -> &Tracked<RunningTask> {
        &self.running
    }

    pub fn parked(&self) -> &Tracked<ParkedItem> {
        &self.parked
    }

    pub fn history(&self) -> &Tracked<TerminalRecord> {
        &self.history
    }

    /// Whether anything changed since the last commit.
    pub fn has_changes(&self) -> bool {
        self.framework_id_changed
            || !self.ready.changed().is_empty()
            || !self.failover.changed().is_empty()
            || !self.running.changed().is_empty()
            || !self.parked.changed().is_empty()
            || !self.history.changed().is_empty()
            || self.registry.has_changes()
    }

    /// Whether the framework id changed since the last commit.
    pub fn framework_id_changed(&self) -> bool {
        self.framework_id_changed
    }

    /// Everything counts as changed: the next commit writes the whole state (to a new store).
    pub fn all_changed(&mut self) {
        self.framework_id_changed = self.framework_id.is_some();
        self.ready.all_changed();
        self.failover.all_changed();
        self.running.all_changed();
        self.parked.all_changed();
        self.history.all_changed();
        self.registry.all_changed();
    }

    /// Everything changed is stored: nothing counts as changed any more.
    pub fn committed(&mut self) {
        self.framework_id_changed = false;
        self.ready.committed();
        self.failover.committed();
        self.running.committed();
        self.parked.committed();
        self.history.committed();
        self.registry.committed();
    }

    pub fn set_framework_id(&mut self, id: Option<String>) {
        if self.framework_id != id {
            self.framework_id = id;
            self.framework_id_changed = true;
        }
    }

    pub fn ready_count(&self, job: &str) -> u32 {
        self.ready.get(job).copied().unwrap_or(0)
    }

    pub fn set_ready(&mut self, job: &str, count: u32) {
        if self.ready_count(job) == count {
            return;
        }
        if count == 0 {
            self.ready.remove(job);
        } else {
            self.ready.insert(job, count);
        }
    }

    /// Queues an item for failover; refused (returns false) while the item is parked.
    pub fn put_failover(&mut self, entry: FailoverEntry) -> bool {
        let key = item_key(&entry.job, entry.item);
        if self.parked.contains_key(&key) {
            return false;
        }
        self.failover.insert(key, entry);
        true
    }

    pub fn is_parked(&self, job: &str, item: u32) -> bool {
        self.parked.contains_key(&item_key(job, item))
    }

    pub fn remove_failover(&mut self, job: &str, item: u32) -> Option<FailoverEntry> {
        self.failover.remove(&item_key(job, item))
    }

    pub fn put_running(&mut self, task: RunningTask) {
        self.running.insert(task.task_id.clone(), task);
    }

    /// Mutable access to a running task.
    pub fn running_mut(&mut self, task_id: &str) -> Option<&mut RunningTask> {
        self.running.get_mut(task_id)
    }

    pub fn remove_running(&mut self, task_id: &str) -> Option<RunningTask> {
        self.running.remove(task_id)
    }

    /// Parks an item; a failover entry it had is dropped (parked and queued exclude each
    /// other).
    pub fn put_parked(&mut self, parked: ParkedItem) {
        let key = item_key(&parked.job, parked.item);
        self.failover.remove(&key);
        self.parked.insert(key, parked);
    }

    /// Releases one parked item.
    pub fn remove_parked(&mut self, job: &str, item: u32) -> Option<ParkedItem> {
        self.parked.remove(&item_key(job, item))
    }

    /// What breaks the state's invariants (empty when sound): an item both parked and queued
    /// for failover, queue entries of unknown jobs or of items beyond the job's count.
    pub fn invariant_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for key in self.parked.keys() {
            if self.failover.contains_key(key) {
                out.push(format!("item {key} is parked and queued for failover"));
            }
        }
        for (key, entry) in self.failover.iter() {
            match self.registry.jobs.get(&entry.job) {
                None => out.push(format!("failover entry {key} names unknown job")),
                Some(job) if entry.item >= job.sharding_total_count => {
                    out.push(format!("failover entry {key} is beyond the job's items"))
                }
                Some(_) => {}
            }
        }
        out
    }

    pub fn remove_parked_of_job(&mut self, job: &str) {
        self.parked.retain(|_, p| p.job != job);
    }

    pub fn remove_failover_of_job(&mut self, job: &str) {
        self.failover.retain(|_, f| f.job != job);
    }

    pub fn put_history(&mut self, task_id: &str, record: TerminalRecord) {
        self.history.insert(task_id, record);
    }

    /// Forgets terminal records older than `before`, then the oldest beyond `max` records.
    pub fn prune_history(&mut self, before: Millis, max: usize) {
        self.history.retain(|_, r| r.at >= before);
        let excess = self.history.len().saturating_sub(max);
        if excess == 0 {
            return;
        }
        let mut by_age: Vec<(Millis, &String)> =
            self.history.iter().map(|(id, r)| (r.at, id)).collect();
        by_age.select_nth_unstable(excess - 1);
        let oldest: std::collections::HashSet<String> = by_age[..excess]
            .iter()
            .map(|(_, id)| (*id).clone())
            .collect();
        self.history.retain(|id, _| !oldest.contains(id));
    }

    /// The tasks that occupy `(job, item)`.
    pub fn item_running(&self, job: &str, item: u32) -> bool {
        self.running
            .values()
            .any(|t| t.job == job && t.item == item && t.blocks_item())
    }

    /// Whether any task of `job` occupies an item.
    pub fn job_running(&self, job: &str) -> bool {
        self.running
            .values()
            .any(|t| t.job == job && t.blocks_item())
    }

    /// Total pending runs, for metrics.
    pub fn ready_total(&self) -> u64 {
        self.ready.values().map(|c| u64::from(*c)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_pruned_by_age_then_by_count_oldest_first() {
        let mut state = State::default();
        for n in 0..1_500 {
            state.put_history(
                &format!("task-{n}"),
                TerminalRecord {
                    job: "j".into(),
                    item: 0,
                    state: TaskState::TaskFinished,
                    at: n,
                },
            );
        }
        state.committed();
        state.prune_history(100, 1_000);
        assert_eq!(state.history().len(), 1_000);
        assert_eq!(
            state.history().values().map(|r| r.at).min(),
            Some(500),
            "the oldest 500 went, the first 100 of them by age"
        );
        assert_eq!(
            state.history().changed().len(),
            500,
            "each removal is committed"
        );
        state.prune_history(0, 1_000);
        assert_eq!(
            state.history().len(),
            1_000,
            "within both bounds: nothing pruned"
        );
    }
}
