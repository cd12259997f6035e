//! The scheduler's durable state in memory: registry, ready and failover queues, parked items,
//! every task Mesos may be running for us, recently finished tasks, and the framework id.
//!
//! Every mutation goes through a method of [`State`] or a [`Tracked`] map, which records the
//! changed key; the owner writes every changed key to the store in one transaction before it
//! acts on the outside world (ACCEPT, ACKNOWLEDGE). The store therefore never lags behind
//! anything Mesos was told, and no code has to remember to mark what it changed.

use serde::{Deserialize, Serialize};

use shardex_mesos::proto::v1::TaskState;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::ids::{ExecutionKind, item_key};
use super::open_runs::OpenRuns;
use super::registry::Registry;
use super::runs::{self, Run, RunId, RunIndex, StateEntry, TaskRun, Trigger};
use super::tracked::Tracked;

/// Task states are stored and shown by their Mesos names (`TASK_RUNNING`).
pub(crate) mod task_state_name {
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
    /// The run the task belonged to.
    #[serde(default)]
    pub run: Option<RunId>,
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
    /// Runs not settled yet.
    runs: OpenRuns,
    /// Settled runs, archived in the store.
    run_index: RunIndex,
    /// Archived runs to write (`Some`) or forget (`None`) with the next commit, by store key.
    archive: Vec<(String, Option<Vec<u8>>)>,
    /// The id of the next run.
    next_run: RunId,
    /// Derived from `runs`: the run of each task of an open run.
    run_of_task: HashMap<String, RunId>,
    /// Derived from `runs`: each job's runs not launched yet, oldest first.
    pending_runs: BTreeMap<String, VecDeque<RunId>>,
    /// Open runs that something other than a status update (a failover entry dropped or
    /// replaced, an item parked or released) may have let settle: [`State::settle_runs`]
    /// looks at these instead of every open run.
    settle_due: SettleDue,
}

/// For `retain` closures that collect what they drop: notes `task` in `dropped`, and keeps
/// nothing (false).
fn dropping(dropped: &mut Vec<String>, task: &str) -> bool {
    dropped.push(task.to_owned());
    false
}

/// Runs to look at for settling. Bookkeeping, like [`Tracked`]'s changed keys: two states with
/// the same entries are equal whatever is due.
#[derive(Debug, Clone, Default)]
struct SettleDue(BTreeSet<RunId>);

impl PartialEq for SettleDue {
    fn eq(&self, _: &Self) -> bool {
        true
    }
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
    pub runs: OpenRuns,
    pub run_index: RunIndex,
}

impl State {
    pub fn from_loaded(loaded: Loaded) -> State {
        let mut run_of_task = HashMap::new();
        let mut pending_runs: BTreeMap<String, VecDeque<RunId>> = BTreeMap::new();
        let mut last = loaded.run_index.last_id().unwrap_or(0);
        // What happened before a restart is not known: every launched run is looked at once.
        let mut settle_due = BTreeSet::new();
        for run in loaded.runs.values() {
            last = last.max(run.head.id);
            if run.head.launched_at.is_some() {
                settle_due.insert(run.head.id);
            }
            for task in run.task_ids() {
                run_of_task.insert(task.to_owned(), run.head.id);
            }
            if run.head.launched_at.is_none() {
                pending_runs
                    .entry(run.head.job.clone())
                    .or_default()
                    .push_back(run.head.id);
            }
        }
        // Tracked iterates in key order, which is id order: each queue is oldest first.
        State {
            framework_id: loaded.framework_id,
            framework_id_changed: false,
            registry: loaded.registry,
            ready: loaded.ready,
            failover: loaded.failover,
            running: loaded.running,
            parked: loaded.parked,
            history: loaded.history,
            runs: loaded.runs,
            run_index: loaded.run_index,
            archive: Vec::new(),
            // 0 until there is a run (as in a default state); ids start at 1.
            next_run: if last == 0 { 0 } else { last + 1 },
            run_of_task,
            pending_runs,
            settle_due: SettleDue(settle_due),
        }
    }

    /// The run of `task_id`, if open, is looked at by the next [`State::settle_runs`].
    fn settle_due_for(&mut self, task_id: &str) {
        if let Some(id) = self.run_of_task.get(task_id) {
            self.settle_due.0.insert(*id);
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
            || !self.runs.changed().is_empty()
            || !self.archive.is_empty()
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
        self.runs.all_changed();
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
        self.runs.committed();
        self.archive.clear();
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

    /// Sets a job's pending run count. Each run added is recorded as fired by `trigger` at
    /// `now`; each removed is cancelled, newest first.
    pub fn set_ready(&mut self, job: &str, count: u32, trigger: Trigger, now: Millis) {
        let before = self.ready_count(job);
        if before == count {
            return;
        }
        for _ in before..count {
            self.fire_run(job, trigger, now);
        }
        for _ in count..before {
            self.cancel_newest_pending(job, now);
        }
        self.put_ready(job, count);
    }

    fn put_ready(&mut self, job: &str, count: u32) {
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
        if let Some(old) = self.failover.insert(key, entry) {
            self.settle_due_for(&old.original_task_id);
        }
        true
    }

    pub fn is_parked(&self, job: &str, item: u32) -> bool {
        self.parked.contains_key(&item_key(job, item))
    }

    pub fn remove_failover(&mut self, job: &str, item: u32) -> Option<FailoverEntry> {
        let removed = self.failover.remove(&item_key(job, item))?;
        self.settle_due_for(&removed.original_task_id);
        Some(removed)
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
        if let Some(dropped) = self.failover.remove(&key) {
            self.settle_due_for(&dropped.original_task_id);
        }
        self.settle_due_for(&parked.last_task_id);
        if let Some(old) = self.parked.insert(key, parked) {
            self.settle_due_for(&old.last_task_id);
        }
    }

    /// Releases one parked item.
    pub fn remove_parked(&mut self, job: &str, item: u32) -> Option<ParkedItem> {
        let removed = self.parked.remove(&item_key(job, item))?;
        self.settle_due_for(&removed.last_task_id);
        Some(removed)
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
        let mut tasks = Vec::new();
        self.parked
            .retain(|_, p| p.job != job || dropping(&mut tasks, &p.last_task_id));
        tasks.iter().for_each(|task| self.settle_due_for(task));
    }

    pub fn remove_failover_of_job(&mut self, job: &str) {
        let mut tasks = Vec::new();
        self.failover
            .retain(|_, f| f.job != job || dropping(&mut tasks, &f.original_task_id));
        tasks.iter().for_each(|task| self.settle_due_for(task));
    }

    pub fn put_history(&mut self, task_id: &str, mut record: TerminalRecord) {
        if record.run.is_none() {
            record.run = self.run_of_task.get(task_id).copied();
        }
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

    /// Total pending runs, for metrics.
    pub fn ready_total(&self) -> u64 {
        self.ready.values().map(|c| u64::from(*c)).sum()
    }
}

/// Run history (see `runs.rs`): every change to a run goes through these, so the derived
/// indexes (`run_of_task`, `pending_runs`) and the archive outbox stay in step with `runs`.
impl State {
    /// Runs not settled yet, by key.
    pub fn open_runs(&self) -> &OpenRuns {
        &self.runs
    }

    pub fn open_run(&self, id: RunId) -> Option<&Run> {
        self.runs.get(id)
    }

    pub fn run_index(&self) -> &RunIndex {
        &self.run_index
    }

    /// The open run a task belongs to.
    pub fn run_of_task(&self, task_id: &str) -> Option<RunId> {
        self.run_of_task.get(task_id).copied()
    }

    /// Archived runs written or forgotten since the last commit.
    pub fn archive_changes(&self) -> &[(String, Option<Vec<u8>>)] {
        &self.archive
    }

    /// An archived run to write with the next commit, as it was read from another store (a
    /// migration copies history this way).
    pub fn put_archived(&mut self, run: &Run) {
        let head = runs::Head::of(run);
        self.run_index.insert(run.head.id, &head);
        self.next_run = self.next_run.max(run.head.id + 1);
        self.archive.push((
            runs::archive_key(run.head.id, &head),
            Some(runs::encode_archived(run)),
        ));
    }

    fn new_run(&mut self, job: &str, trigger: Trigger, now: Millis) -> RunId {
        let id = self.next_run.max(1);
        self.next_run = id + 1;
        let app = self
            .registry
            .jobs
            .get(job)
            .map(|j| j.app.clone())
            .unwrap_or_default();
        self.runs.insert(Run::new(id, job, &app, trigger, now));
        id
    }

    fn fire_run(&mut self, job: &str, trigger: Trigger, now: Millis) {
        let id = self.new_run(job, trigger, now);
        self.pending_runs
            .entry(job.to_owned())
            .or_default()
            .push_back(id);
    }

    fn cancel_newest_pending(&mut self, job: &str, now: Millis) {
        let Some(id) = self.pending_runs.get_mut(job).and_then(VecDeque::pop_back) else {
            return;
        };
        self.runs.cancel(id, now);
        self.archive_run(id);
    }

    /// One pending run of `job` launches: the ready count drops by one and its oldest pending
    /// run is the one launched (a run with no record, from a store older than the history, is
    /// recorded now).
    pub fn take_ready_run(&mut self, job: &str, now: Millis) -> RunId {
        let count = self.ready_count(job);
        self.put_ready(job, count.saturating_sub(1));
        let queued = self.pending_runs.get_mut(job).and_then(VecDeque::pop_front);
        if self.pending_runs.get(job).is_some_and(VecDeque::is_empty) {
            self.pending_runs.remove(job);
        }
        let id = match queued {
            Some(id) if self.runs.contains(id) => id,
            _ => self.new_run(job, Trigger::Unrecorded, now),
        };
        self.runs.set_launched(id, now);
        id
    }

    /// The run a failover launch continues: its original task's, while that run is open;
    /// otherwise a new run of its own.
    pub fn failover_run(&mut self, job: &str, original_task_id: &str, now: Millis) -> RunId {
        if let Some(id) = self.run_of_task(original_task_id)
            && self.runs.contains(id)
        {
            return id;
        }
        let id = self.new_run(job, Trigger::Failover, now);
        self.runs.set_launched(id, now);
        id
    }

    /// Room for `tasks` more launched tasks in the run index, before a launch of that many.
    pub fn reserve_launches(&mut self, tasks: usize) {
        self.run_of_task.reserve(tasks);
    }

    /// Records a launched task in its run.
    pub fn add_run_task(&mut self, id: RunId, item: u32, task: TaskRun) {
        let Some(run_item) = self.runs.item_mut(id, item) else {
            return;
        };
        self.run_of_task.insert(task.task_id.clone(), id);
        run_item.tasks.push(task);
    }

    /// Records a status update of a task in its run (nothing when its run is archived).
    pub fn note_run_state(
        &mut self,
        task_id: &str,
        entry: StateEntry,
        work_dir: Option<&str>,
        ended: bool,
    ) {
        let Some(id) = self.run_of_task(task_id) else {
            return;
        };
        let Some(task) = self.run_task_mut(id, task_id) else {
            return;
        };
        if ended && task.ended_at.is_none() {
            task.ended_at = Some(entry.at);
        }
        if let Some(dir) = work_dir {
            task.work_dir = Some(dir.to_owned());
        }
        runs::push_state(&mut task.states, entry);
    }

    /// A task of an open run, to change (its item counts as changed).
    fn run_task_mut(&mut self, id: RunId, task_id: &str) -> Option<&mut TaskRun> {
        let (item, _) = self.runs.get(id)?.task(task_id)?;
        self.runs
            .item_mut(id, item)?
            .tasks
            .iter_mut()
            .find(|t| t.task_id == task_id)
    }

    /// Records why the scheduler asked for a task's kill.
    pub fn note_run_kill(&mut self, task_id: &str, reason: KillReason) {
        let Some(id) = self.run_of_task(task_id) else {
            return;
        };
        if let Some(task) = self.run_task_mut(id, task_id)
            && task.kill.is_none()
        {
            task.kill = Some(reason);
        }
    }

    /// Archives the run if it has settled; returns whether it did.
    pub fn settle_run(&mut self, id: RunId, now: Millis) -> bool {
        let Some(run) = self.runs.get(id) else {
            return false;
        };
        let job = run.head.job.clone();
        // Items parked after this run's task ended: closed as failed.
        let parked_items: Vec<u32> = run
            .items
            .iter()
            .filter(|i| {
                i.closed.is_none()
                    && i.tasks.last().is_some_and(|t| {
                        t.ended_at.is_some()
                            && self
                                .parked
                                .get(&item_key(&job, i.item))
                                .is_some_and(|p| p.last_task_id == t.task_id)
                    })
            })
            .map(|i| i.item)
            .collect();
        let failover = &self.failover;
        let waiting = |item: u32, last: Option<&str>| {
            failover
                .get(&item_key(&job, item))
                .is_some_and(|entry| Some(entry.original_task_id.as_str()) == last)
        };
        let settled = self.runs.settle(id, now, &parked_items, waiting);
        if settled {
            self.archive_run(id);
        }
        settled
    }

    /// Settles the runs that something other than a status update may have let settle (a
    /// status update settles its own task's run); the others cannot have changed. Looking at
    /// every open run on every tick cost the scheduler most of a core at 100,000 jobs.
    pub fn settle_runs(&mut self, now: Millis) {
        for id in std::mem::take(&mut self.settle_due.0) {
            self.settle_run(id, now);
        }
    }

    /// Moves an ended run from the open table to the archive.
    fn archive_run(&mut self, id: RunId) {
        let Some(run) = self.runs.remove(id) else {
            return;
        };
        for task in run.task_ids() {
            self.run_of_task.remove(task);
        }
        if let Some(queue) = self.pending_runs.get_mut(&run.head.job) {
            queue.retain(|queued| *queued != id);
            if queue.is_empty() {
                self.pending_runs.remove(&run.head.job);
            }
        }
        let head = runs::Head::of(&run);
        self.run_index.insert(id, &head);
        self.archive.push((
            runs::archive_key(id, &head),
            Some(runs::encode_archived(&run)),
        ));
    }

    /// Forgets archived runs that ended before `cutoff`, then the oldest beyond `max`; returns
    /// how many.
    pub fn prune_runs(&mut self, cutoff: Millis, max: usize) -> usize {
        let expired = self.run_index.expired(cutoff, max);
        for id in &expired {
            if let Some(key) = self.run_index.key(*id) {
                self.archive.push((key, None));
            }
            self.run_index.remove(*id);
        }
        expired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{Outcome, StateEntry};

    /// A launched run of `job` whose one task (of item `item`) failed and waits for failover.
    fn failed_run_waiting_for_failover(state: &mut State, job: &str, item: u32) -> RunId {
        let task = format!("{job}-{item}");
        state.set_ready(job, 1, Trigger::Cron, 0);
        let id = state.take_ready_run(job, 1);
        state.add_run_task(id, item, crate::runs::tests::task(&task, None));
        assert!(state.put_failover(FailoverEntry {
            job: job.into(),
            item,
            original_task_id: task.clone(),
            attempts: 1,
            not_before: 0,
            recorded_at: 2,
            cause: "TASK_FAILED".into(),
        }));
        let failed = StateEntry {
            state: TaskState::TaskFailed,
            at: 2,
            source: None,
            reason: None,
            message: None,
        };
        state.note_run_state(&task, failed, None, true);
        assert!(!state.settle_run(id, 2), "it waits for its failover");
        id
    }

    #[test]
    fn runs_settle_on_the_tick_after_their_failover_is_dropped_or_their_item_parked() {
        let mut state = State::default();
        let dropped = failed_run_waiting_for_failover(&mut state, "a", 0);
        let parked = failed_run_waiting_for_failover(&mut state, "b", 3);
        let waiting = failed_run_waiting_for_failover(&mut state, "c", 1);

        state.settle_runs(3);
        assert_eq!(state.open_runs().len(), 3, "nothing happened to them");

        state.remove_failover("a", 0);
        state.put_parked(ParkedItem {
            job: "b".into(),
            item: 3,
            attempts: 3,
            last_task_id: "b-3".into(),
            cause: "TASK_FAILED".into(),
            parked_at: 4,
        });
        assert_eq!(
            state.settle_due.0,
            [dropped, parked].into(),
            "only these are looked at"
        );
        state.settle_runs(5);
        assert!(state.settle_due.0.is_empty());
        assert!(!state.open_runs().contains(dropped));
        assert!(!state.open_runs().contains(parked));
        assert!(
            state.open_runs().contains(waiting),
            "still waits for its failover"
        );
        let archived = |id| {
            state
                .archive
                .iter()
                .any(|(key, row)| row.is_some() && state.run_index.key(id).as_ref() == Some(key))
        };
        assert!(archived(dropped) && archived(parked));
        assert_eq!(
            state.run_index.get(parked).map(|h| h.outcome),
            Some(Outcome::Failed),
            "the parked item closed as failed"
        );
    }

    #[test]
    fn a_reloaded_state_looks_at_every_launched_run_once() {
        let mut state = State::default();
        let id = failed_run_waiting_for_failover(&mut state, "a", 0);
        // The failover entry went before the crash, the tick that would settle the run did not.
        state.failover.remove(&item_key("a", 0));
        let loaded = State::from_loaded(Loaded {
            failover: state.failover.clone(),
            runs: state.runs.clone(),
            ..Loaded::default()
        });
        assert_eq!(loaded.settle_due.0, [id].into());
        let mut loaded = loaded;
        loaded.settle_runs(9);
        assert!(!loaded.open_runs().contains(id));
    }

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
                    run: None,
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
