//! The scheduler's durable state in memory: registry, ready and failover queues, parked items,
//! every task Mesos may be running for us, recently finished tasks, and the framework id.
//!
//! Every mutation goes through a method that marks the touched key dirty; the owner writes all
//! dirty keys to the store in one transaction before it acts on the outside world (ACCEPT,
//! ACKNOWLEDGE). The store therefore never lags behind anything Mesos was told.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ids::{ExecutionKind, item_key};
use super::registry::Registry;

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
    pub state: String,
    pub launched_at: Millis,
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

/// An item that failed `failover.max_attempts` times in a row; it stays out of the queues until
/// its job is updated or disabled and enabled again.
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
    pub state: String,
    pub at: Millis,
}

/// A key of the store, marked dirty when its value changed in memory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    FrameworkId,
    App(String),
    Job(String),
    Ready(String),
    Failover(String),
    Running(String),
    Parked(String),
    History(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub framework_id: Option<String>,
    pub registry: Registry,
    /// Pending runs per transient job; 1 for a daemon job waiting for its (re)launch.
    pub ready: BTreeMap<String, u32>,
    /// By `item_key(job, item)`.
    pub failover: BTreeMap<String, FailoverEntry>,
    /// By task id.
    pub running: BTreeMap<String, RunningTask>,
    /// By `item_key(job, item)`.
    pub parked: BTreeMap<String, ParkedItem>,
    /// By task id.
    pub history: BTreeMap<String, TerminalRecord>,
    /// Keys changed since the last commit.
    pub dirty: BTreeSet<Key>,
}

impl State {
    pub fn set_framework_id(&mut self, id: Option<String>) {
        if self.framework_id != id {
            self.framework_id = id;
            self.dirty.insert(Key::FrameworkId);
        }
    }

    pub fn touch_app(&mut self, name: &str) {
        self.dirty.insert(Key::App(name.to_owned()));
    }

    pub fn touch_job(&mut self, name: &str) {
        self.dirty.insert(Key::Job(name.to_owned()));
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
            self.ready.insert(job.to_owned(), count);
        }
        self.dirty.insert(Key::Ready(job.to_owned()));
    }

    pub fn put_failover(&mut self, entry: FailoverEntry) {
        let key = item_key(&entry.job, entry.item);
        self.dirty.insert(Key::Failover(key.clone()));
        self.failover.insert(key, entry);
    }

    pub fn remove_failover(&mut self, job: &str, item: u32) -> Option<FailoverEntry> {
        let key = item_key(job, item);
        let removed = self.failover.remove(&key);
        if removed.is_some() {
            self.dirty.insert(Key::Failover(key));
        }
        removed
    }

    pub fn put_running(&mut self, task: RunningTask) {
        self.dirty.insert(Key::Running(task.task_id.clone()));
        self.running.insert(task.task_id.clone(), task);
    }

    /// Mutable access that marks the task dirty.
    pub fn running_mut(&mut self, task_id: &str) -> Option<&mut RunningTask> {
        let task = self.running.get_mut(task_id)?;
        self.dirty.insert(Key::Running(task_id.to_owned()));
        Some(task)
    }

    pub fn remove_running(&mut self, task_id: &str) -> Option<RunningTask> {
        let removed = self.running.remove(task_id);
        if removed.is_some() {
            self.dirty.insert(Key::Running(task_id.to_owned()));
        }
        removed
    }

    pub fn put_parked(&mut self, parked: ParkedItem) {
        let key = item_key(&parked.job, parked.item);
        self.dirty.insert(Key::Parked(key.clone()));
        self.parked.insert(key, parked);
    }

    pub fn remove_parked_of_job(&mut self, job: &str) {
        let keys: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, p)| p.job == job)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.parked.remove(&key);
            self.dirty.insert(Key::Parked(key));
        }
    }

    pub fn remove_failover_of_job(&mut self, job: &str) {
        let keys: Vec<String> = self
            .failover
            .iter()
            .filter(|(_, f)| f.job == job)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.failover.remove(&key);
            self.dirty.insert(Key::Failover(key));
        }
    }

    pub fn put_history(&mut self, task_id: &str, record: TerminalRecord) {
        self.dirty.insert(Key::History(task_id.to_owned()));
        self.history.insert(task_id.to_owned(), record);
    }

    /// Forgets terminal records older than `before`.
    pub fn prune_history(&mut self, before: Millis) {
        let old: Vec<String> = self
            .history
            .iter()
            .filter(|(_, r)| r.at < before)
            .map(|(k, _)| k.clone())
            .collect();
        for key in old {
            self.history.remove(&key);
            self.dirty.insert(Key::History(key));
        }
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
