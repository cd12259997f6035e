//! Run history: one record per run of a job, from its fire to the end of its last task.
//!
//! A **run** is what one fire (cron, `POST /api/jobs/{job}/trigger`, a daemon's start) asked
//! for: every sharding item of the job, each launched as a task. A crashed item that fails over
//! stays in its run: the failover task is appended to the item's tasks, so an item's tasks read
//! in launch order as its story (READY, then FAILOVER, …). A failover whose run is no longer
//! open (its history was pruned, or the item was released from parking long after) opens a run
//! of its own, with trigger `failover`.
//!
//! Open runs (pending or running) live in the state like every other table and are written with
//! each commit. A run **settles** when each of its items has ended: its last task ended and no
//! failover of it is queued, or it never launched (parked, cancelled). A settled run is archived:
//! written once to the `run_history` table and dropped from memory, leaving only its id, job and
//! end time in the [`RunIndex`] that answers "which runs" queries and drives retention; the
//! records themselves are read back from the store when asked for.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flate2::{Compress, Compression, FlushCompress, Status};
use serde::{Deserialize, Serialize};

use shardex_mesos::proto::v1::{TaskState, TaskStatus, task_status};
use shardex_mesos::states;

use super::ids::ExecutionKind;
use super::state::{KillReason, Millis, task_state_name};

/// A run's id: a number that grows with each run the scheduler records.
pub type RunId = u64;

/// The store key of a run: its id, zero-padded so that keys sort as ids do.
pub fn run_key(id: RunId) -> String {
    format!("{id:020}")
}

/// The store key of a settled run: its id (zero-padded, so keys sort as ids do), then what
/// the run index needs (end and fire times, outcome, job), so that a restart lists keys and
/// reads no value: `{id:020}@{ended_at}@{fired_at}@{outcome}@{job}`. A settled run never
/// changes, so neither does its key.
pub fn archive_key(id: RunId, head: &Head) -> String {
    let outcome = head.outcome.unwrap_or(Outcome::Succeeded);
    format!(
        "{id:020}@{}@{}@{}@{}",
        head.ended_at.unwrap_or(head.fired_at),
        head.fired_at,
        outcome.as_str(),
        head.job
    )
}

/// The id and head in a key made by [`archive_key`].
pub fn parse_archive_key(key: &str) -> Option<(RunId, Head)> {
    let mut parts = key.splitn(5, '@');
    let id = parts.next()?.parse().ok()?;
    let ended_at = parts.next()?.parse().ok()?;
    let fired_at = parts.next()?.parse().ok()?;
    let outcome = Outcome::from_name(parts.next()?)?;
    let job = parts.next()?.to_owned();
    Some((
        id,
        Head {
            job,
            fired_at,
            ended_at: Some(ended_at),
            outcome: Some(outcome),
        },
    ))
}

thread_local! {
    /// One compressor per thread, reset between runs. A fresh one allocates and zeroes a few
    /// hundred KiB (its window and hash chains), which cost more than the rest of archiving a
    /// one-shard run: at 100,000 jobs, 40 % of the scheduler's CPU went to that memory's page
    /// faults and its unmapping.
    static COMPRESSOR: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), true));
}

/// A settled run as stored: its JSON, deflate-compressed (zlib framing; `zlib-flate
/// -uncompress` or Python's `zlib.decompress` read it).
pub fn encode_archived(run: &Run) -> Vec<u8> {
    // Our own plain structs always serialise, and compressing memory into memory cannot fail.
    let json = serde_json::to_vec(run).unwrap_or_default();
    COMPRESSOR.with_borrow_mut(|compressor| {
        compressor.reset();
        let mut out = Vec::with_capacity(json.len() / 4 + 64);
        loop {
            let read = usize::try_from(compressor.total_in()).unwrap_or(json.len());
            let input = json.get(read..).unwrap_or_default();
            match compressor.compress_vec(input, &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return out,
                // The output is full: room for more.
                Ok(Status::Ok | Status::BufError) => out.reserve(out.capacity().max(64)),
                Err(_) => return Vec::new(),
            }
        }
    })
}

/// A settled run from its stored bytes.
pub fn decode_archived(bytes: &[u8]) -> Result<Run, String> {
    use std::io::Read as _;
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(bytes)
        .take(MAX_ARCHIVED_JSON)
        .read_to_end(&mut json)
        .map_err(|e| format!("not zlib data: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| e.to_string())
}

/// The most JSON one stored run may inflate to.
const MAX_ARCHIVED_JSON: u64 = 64 * 1024 * 1024;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The job's cron fired.
    Cron,
    /// `POST /api/jobs/{job}/trigger`.
    Rest,
    /// A failover whose original run was no longer open.
    Failover,
    /// A daemon job's (re)start: enabling, registering or updating it.
    Daemon,
    /// A pending run recorded by a scheduler that kept no history (a store from before it).
    Unrecorded,
}

/// Where a run, an item or a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Fired, nothing launched yet.
    Pending,
    /// Something launched and not everything ended.
    Running,
    Succeeded,
    /// A task failed, crashed or was lost, and no failover followed.
    Failed,
    /// Killed by the scheduler: its job was disabled, deregistered or updated.
    Killed,
    /// Never launched: the job was disabled, or every item was parked.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Killed => "killed",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub fn from_name(name: &str) -> Option<Outcome> {
        [
            Outcome::Pending,
            Outcome::Running,
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::Killed,
            Outcome::Cancelled,
        ]
        .into_iter()
        .find(|o| o.as_str() == name)
    }
}

/// One status update as the run remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateEntry {
    #[serde(with = "task_state_name")]
    pub state: TaskState,
    pub at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One task of an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRun {
    pub task_id: String,
    pub kind: ExecutionKind,
    /// Consecutive failures of the item before this launch.
    pub attempt: u32,
    pub agent_id: String,
    pub executor_id: String,
    /// The agent's HTTP address (`http://host:port`), from the offer the task was launched on.
    #[serde(default)]
    pub agent_url: Option<String>,
    /// The task's own directory on the agent, as its executor announced it.
    #[serde(default)]
    pub work_dir: Option<String>,
    pub launched_at: Millis,
    #[serde(default)]
    pub ended_at: Option<Millis>,
    /// Why the scheduler killed it, when it did.
    #[serde(default)]
    pub kill: Option<KillReason>,
    /// Every state Mesos reported, in order (`TASK_STAGING` first, at launch).
    pub states: Vec<StateEntry>,
}

impl TaskRun {
    /// The state last reported.
    pub fn state(&self) -> TaskState {
        self.states
            .last()
            .map_or(TaskState::TaskStaging, |entry| entry.state)
    }

    /// How the task ended, when it has.
    pub fn outcome(&self) -> Outcome {
        if self.ended_at.is_none() {
            return Outcome::Running;
        }
        match self.state() {
            TaskState::TaskFinished => Outcome::Succeeded,
            _ if self
                .kill
                .is_some_and(|reason| reason != KillReason::Timeout) =>
            {
                Outcome::Killed
            }
            _ => Outcome::Failed,
        }
    }
}

/// One sharding item of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRun {
    pub item: u32,
    /// In launch order.
    pub tasks: Vec<TaskRun>,
    /// Set when the item ended without a task that settles it: parked, or its queued failover
    /// was dropped (the job was disabled).
    #[serde(default)]
    pub closed: Option<Outcome>,
}

impl ItemRun {
    pub fn outcome(&self) -> Outcome {
        if let Some(closed) = self.closed {
            return closed;
        }
        match self.tasks.last() {
            None => Outcome::Pending,
            Some(task) => task.outcome(),
        }
    }
}

/// A run's own fields: what an open run's header row holds (each item is a row of its own,
/// see `open_runs.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunHeader {
    pub id: RunId,
    pub job: String,
    pub app: String,
    pub trigger: Trigger,
    pub fired_at: Millis,
    #[serde(default)]
    pub launched_at: Option<Millis>,
    #[serde(default)]
    pub ended_at: Option<Millis>,
    /// Set when the run settles.
    #[serde(default)]
    pub outcome: Option<Outcome>,
}

/// One run of a job: its own fields and its items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    #[serde(flatten)]
    pub head: RunHeader,
    pub items: Vec<ItemRun>,
}

impl Run {
    /// A run from its header row and item rows (in any order).
    pub fn from_parts(head: RunHeader, mut items: Vec<ItemRun>) -> Run {
        items.sort_by_key(|i| i.item);
        Run { head, items }
    }

    pub fn new(id: RunId, job: &str, app: &str, trigger: Trigger, fired_at: Millis) -> Run {
        Run {
            head: RunHeader {
                id,
                job: job.to_owned(),
                app: app.to_owned(),
                trigger,
                fired_at,
                launched_at: None,
                ended_at: None,
                outcome: None,
            },
            items: Vec::new(),
        }
    }

    /// The run's outcome: its settled one, or where it stands now.
    pub fn outcome(&self) -> Outcome {
        if let Some(outcome) = self.head.outcome {
            return outcome;
        }
        if self.head.launched_at.is_none() {
            return Outcome::Pending;
        }
        // Not settled: something still runs, or an item waits for its failover.
        Outcome::Running
    }

    /// A settled run's outcome from its items': failed over killed over cancelled over
    /// succeeded.
    fn combine(items: impl Iterator<Item = Outcome>) -> Outcome {
        let all: BTreeSet<u8> = items
            .map(|o| match o {
                Outcome::Failed => 0,
                Outcome::Killed => 1,
                Outcome::Cancelled => 2,
                Outcome::Pending | Outcome::Running => 3,
                Outcome::Succeeded => 4,
            })
            .collect();
        match all.first() {
            Some(0) => Outcome::Failed,
            Some(1) => Outcome::Killed,
            Some(2) => Outcome::Cancelled,
            Some(3) => Outcome::Running,
            _ => Outcome::Succeeded,
        }
    }

    /// The item, added when the run had no task of it yet.
    pub fn item_mut(&mut self, item: u32) -> &mut ItemRun {
        let index = match self.items.binary_search_by_key(&item, |i| i.item) {
            Ok(index) => index,
            Err(index) => {
                self.items.insert(
                    index,
                    ItemRun {
                        item,
                        tasks: Vec::new(),
                        closed: None,
                    },
                );
                index
            }
        };
        &mut self.items[index]
    }

    pub fn task(&self, task_id: &str) -> Option<(u32, &TaskRun)> {
        self.items.iter().find_map(|item| {
            item.tasks
                .iter()
                .find(|t| t.task_id == task_id)
                .map(|t| (item.item, t))
        })
    }

    pub fn task_mut(&mut self, task_id: &str) -> Option<&mut TaskRun> {
        self.items
            .iter_mut()
            .flat_map(|item| item.tasks.iter_mut())
            .find(|t| t.task_id == task_id)
    }

    /// Every task id of the run.
    pub fn task_ids(&self) -> impl Iterator<Item = &str> {
        self.items
            .iter()
            .flat_map(|item| item.tasks.iter().map(|t| t.task_id.as_str()))
    }

    /// Settles the run at `now` when `waiting(item, last task id)` says no item waits for a
    /// relaunch and every launched task has ended; returns whether it did.
    pub fn try_settle(&mut self, now: Millis, waiting: impl Fn(u32, Option<&str>) -> bool) -> bool {
        if self.head.outcome.is_some() || self.head.launched_at.is_none() {
            return false;
        }
        for item in &self.items {
            if item.closed.is_some() {
                continue;
            }
            let last = item.tasks.last();
            if last.is_some_and(|t| t.ended_at.is_none())
                || waiting(item.item, last.map(|t| t.task_id.as_str()))
            {
                return false;
            }
        }
        self.head.ended_at = Some(now);
        self.head.outcome = Some(Self::combine(self.items.iter().map(ItemRun::outcome)));
        true
    }

    /// Ends a run that never launched.
    pub fn cancel(&mut self, now: Millis) {
        self.head.ended_at = Some(now);
        self.head.outcome = Some(Outcome::Cancelled);
    }
}

/// The history entry of one status update.
pub fn state_entry(status: &TaskStatus, state: TaskState, now: Millis) -> StateEntry {
    let source = status
        .source
        .and_then(|s| task_status::Source::try_from(s).ok())
        .map(|s| s.as_str_name().to_owned());
    let reason = status
        .reason
        .and_then(|r| task_status::Reason::try_from(r).ok())
        .map(|r| r.as_str_name().to_owned());
    let message = status
        .message
        .as_deref()
        .filter(|m| !m.is_empty())
        .map(|m| m.chars().take(MAX_MESSAGE).collect());
    StateEntry {
        state,
        at: now,
        source,
        reason,
        message,
    }
}

/// The longest status message a run keeps (characters).
pub const MAX_MESSAGE: usize = 1_000;

/// The most state entries one task keeps; a daemon reports two per fire, so its history
/// keeps its first entries and its latest ones.
pub const MAX_STATES: usize = 64;

/// Adds `entry` to a task's states, keeping the first half and the latest of at most
/// [`MAX_STATES`].
pub fn push_state(states: &mut Vec<StateEntry>, entry: StateEntry) {
    if states.len() >= MAX_STATES {
        states.remove(MAX_STATES / 2);
    }
    states.push(entry);
}

/// Whether a state ends a task.
pub fn is_terminal(state: TaskState) -> bool {
    states::is_terminal(state)
}

/// What the state keeps of an archived run: enough to list a job's runs and to prune.
#[derive(Debug, Clone, PartialEq)]
pub struct Archived {
    pub job: Arc<str>,
    pub fired_at: Millis,
    pub ended_at: Millis,
    pub outcome: Outcome,
}

/// What the index takes of a settled run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub job: String,
    pub fired_at: Millis,
    #[serde(default)]
    pub ended_at: Option<Millis>,
    #[serde(default)]
    pub outcome: Option<Outcome>,
}

impl Head {
    pub fn of(run: &Run) -> Head {
        Head {
            job: run.head.job.clone(),
            fired_at: run.head.fired_at,
            ended_at: run.head.ended_at,
            outcome: run.head.outcome,
        }
    }
}

/// The archived runs: by id, and by job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunIndex {
    by_id: BTreeMap<RunId, Archived>,
    by_job: BTreeMap<Arc<str>, BTreeSet<RunId>>,
}

impl RunIndex {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn get(&self, id: RunId) -> Option<&Archived> {
        self.by_id.get(&id)
    }

    /// The store key of an archived run.
    pub fn key(&self, id: RunId) -> Option<String> {
        self.by_id.get(&id).map(|a| {
            archive_key(
                id,
                &Head {
                    job: a.job.to_string(),
                    fired_at: a.fired_at,
                    ended_at: Some(a.ended_at),
                    outcome: Some(a.outcome),
                },
            )
        })
    }

    /// Every archived run's id, oldest first.
    pub fn ids(&self) -> impl DoubleEndedIterator<Item = RunId> + '_ {
        self.by_id.keys().copied()
    }

    pub fn last_id(&self) -> Option<RunId> {
        self.by_id.keys().next_back().copied()
    }

    pub fn insert(&mut self, id: RunId, head: &Head) {
        let job: Arc<str> = match self.by_job.get_key_value(head.job.as_str()) {
            Some((name, _)) => name.clone(),
            None => Arc::from(head.job.as_str()),
        };
        self.by_job.entry(job.clone()).or_default().insert(id);
        self.by_id.insert(
            id,
            Archived {
                job,
                fired_at: head.fired_at,
                ended_at: head.ended_at.unwrap_or(head.fired_at),
                outcome: head.outcome.unwrap_or(Outcome::Succeeded),
            },
        );
    }

    pub fn remove(&mut self, id: RunId) -> Option<Archived> {
        let archived = self.by_id.remove(&id)?;
        if let Some(ids) = self.by_job.get_mut(&archived.job) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_job.remove(&archived.job);
            }
        }
        Some(archived)
    }

    /// The newest archived run of `job`.
    pub fn last_of(&self, job: &str) -> Option<RunId> {
        self.by_job.get(job).and_then(|ids| ids.last().copied())
    }

    /// Archived runs of `job` below `before`, newest first.
    pub fn of_job(&self, job: &str, before: RunId) -> impl Iterator<Item = RunId> + '_ {
        self.by_job
            .get(job)
            .into_iter()
            .flat_map(move |ids| ids.range(..before).rev().copied())
    }

    /// The runs to forget: every run that ended before `cutoff`, then the oldest beyond `max`
    /// (both oldest first, by id).
    pub fn expired(&self, cutoff: Millis, max: usize) -> Vec<RunId> {
        let excess = self.by_id.len().saturating_sub(max);
        let mut out: Vec<RunId> = self.by_id.keys().take(excess).copied().collect();
        out.extend(
            self.by_id
                .iter()
                .skip(excess)
                .take_while(|(_, a)| a.ended_at < cutoff)
                .map(|(id, _)| *id),
        );
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A task launched at 0 (staging), ended as `ended` says.
    pub(crate) fn task(id: &str, ended: Option<(TaskState, Millis)>) -> TaskRun {
        let mut states = vec![StateEntry {
            state: TaskState::TaskStaging,
            at: 0,
            source: None,
            reason: None,
            message: None,
        }];
        if let Some((state, at)) = ended {
            states.push(StateEntry {
                state,
                at,
                source: None,
                reason: None,
                message: None,
            });
        }
        TaskRun {
            task_id: id.into(),
            kind: ExecutionKind::Ready,
            attempt: 0,
            agent_id: "S0".into(),
            executor_id: "e".into(),
            agent_url: None,
            work_dir: None,
            launched_at: 0,
            ended_at: ended.map(|(_, at)| at),
            kill: None,
            states,
        }
    }

    #[test]
    fn a_run_settles_once_every_item_ended_and_none_waits_for_a_failover() {
        let mut run = Run::new(1, "j", "a", Trigger::Cron, 0);
        run.head.launched_at = Some(1);
        run.item_mut(1).tasks.push(task("t1", None));
        run.item_mut(0)
            .tasks
            .push(task("t0", Some((TaskState::TaskFinished, 5))));
        assert_eq!(run.items.iter().map(|i| i.item).collect::<Vec<_>>(), [0, 1]);
        assert!(!run.try_settle(6, |_, _| false), "t1 still runs");
        assert_eq!(run.outcome(), Outcome::Running);
        run.task_mut("t1").unwrap().ended_at = Some(7);
        run.task_mut("t1").unwrap().states.push(StateEntry {
            state: TaskState::TaskFailed,
            at: 7,
            source: None,
            reason: None,
            message: None,
        });
        assert!(
            !run.try_settle(8, |item, _| item == 1),
            "item 1 waits to fail over"
        );
        run.item_mut(1)
            .tasks
            .push(task("t1b", Some((TaskState::TaskFinished, 9))));
        assert!(run.try_settle(10, |_, last| last == Some("t1")));
        assert_eq!(run.head.outcome, Some(Outcome::Succeeded));
        assert_eq!(run.head.ended_at, Some(10));
        assert_eq!(run.items[1].outcome(), Outcome::Succeeded);
    }

    #[test]
    fn outcomes_combine_failed_over_killed_over_cancelled_over_succeeded() {
        let mut run = Run::new(1, "j", "a", Trigger::Rest, 0);
        run.head.launched_at = Some(1);
        run.item_mut(0)
            .tasks
            .push(task("a", Some((TaskState::TaskFinished, 2))));
        let mut killed = task("b", Some((TaskState::TaskKilled, 2)));
        killed.kill = Some(KillReason::Disabled);
        run.item_mut(1).tasks.push(killed);
        assert!(run.try_settle(3, |_, _| false));
        assert_eq!(run.outcome(), Outcome::Killed);
        let mut timed_out = task("c", Some((TaskState::TaskKilled, 2)));
        timed_out.kill = Some(KillReason::Timeout);
        assert_eq!(
            timed_out.outcome(),
            Outcome::Failed,
            "a timeout is a failure"
        );
    }

    #[test]
    fn the_index_lists_a_jobs_runs_newest_first_and_expires_by_age_then_count() {
        let mut index = RunIndex::default();
        for id in 1..=10 {
            let job = if id % 2 == 0 { "even" } else { "odd" };
            let head = Head {
                job: job.into(),
                fired_at: 0,
                ended_at: Some(id as Millis * 10),
                outcome: Some(Outcome::Failed),
            };
            index.insert(id, &head);
        }
        assert_eq!(index.of_job("even", 9).collect::<Vec<_>>(), [8, 6, 4, 2]);
        assert_eq!(index.last_of("odd"), Some(9));
        assert_eq!(index.expired(35, 8), [1, 2, 3], "two by count, one by age");
        for id in index.expired(35, 8) {
            index.remove(id);
        }
        assert_eq!(index.len(), 7);
        assert_eq!(
            index.of_job("odd", RunId::MAX).collect::<Vec<_>>(),
            [9, 7, 5]
        );
        assert_eq!(run_key(42), "00000000000000000042");
        let key = index.key(9).unwrap();
        assert_eq!(key, "00000000000000000009@90@0@failed@odd");
        let (id, head) = parse_archive_key(&key).unwrap();
        assert_eq!((id, head.job.as_str(), head.ended_at), (9, "odd", Some(90)));
        let odd = parse_archive_key("00000000000000000001@5@4@killed@a@b").unwrap();
        assert_eq!(odd.1.job, "a@b", "the job is the rest of the key");
        assert_eq!(parse_archive_key("1@x@4@killed@a"), None);
    }

    #[test]
    fn a_stored_run_reads_back_the_same() {
        let mut run = Run::new(7, "j", "a", Trigger::Cron, 3);
        run.head.launched_at = Some(4);
        run.item_mut(0)
            .tasks
            .push(task("t", Some((TaskState::TaskFinished, 5))));
        let bytes = encode_archived(&run);
        assert_eq!(decode_archived(&bytes).unwrap(), run);
        // The reused compressor starts each run afresh: a wide run (whose output outgrows the
        // first buffer), then the small one again, byte for byte as the first time.
        let mut wide = Run::new(8, "w", "a", Trigger::Rest, 3);
        for item in 0..2_000 {
            let name = format!("w-{item}-{}", item * 7919 % 1_000_003);
            wide.item_mut(item)
                .tasks
                .push(task(&name, Some((TaskState::TaskFailed, 9))));
        }
        let wide_bytes = encode_archived(&wide);
        assert_eq!(decode_archived(&wide_bytes).unwrap(), wide);
        assert_eq!(encode_archived(&run), bytes);
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&bytes[..]), &mut json)
            .unwrap();
        assert_eq!(
            json,
            serde_json::to_vec(&run).unwrap(),
            "the stored format is the run's JSON as one zlib stream"
        );
        assert!(
            decode_archived(b"{}")
                .unwrap_err()
                .starts_with("not zlib data")
        );
    }

    #[test]
    fn a_long_lived_task_keeps_its_first_and_latest_states() {
        let mut states = Vec::new();
        for at in 0..200 {
            push_state(
                &mut states,
                StateEntry {
                    state: TaskState::TaskRunning,
                    at,
                    source: None,
                    reason: None,
                    message: None,
                },
            );
        }
        assert_eq!(states.len(), MAX_STATES);
        assert_eq!(states[0].at, 0);
        assert_eq!(states[MAX_STATES / 2 - 1].at, MAX_STATES as Millis / 2 - 1);
        assert_eq!(states.last().unwrap().at, 199);
    }
}
