//! Offers → tasks: one Mesos task per sharding item.
//!
//! Order: due failover entries first (each may launch alone), then ready runs (all items of a run
//! in this round, or none). A ready run waits while any task of its job runs or any of its items
//! waits for failover, so runs of one job never overlap and no item runs twice. The executor's
//! own cpu/mem are charged on an agent where the offer does not list that executor and no task
//! of this round starts it. Task resources are copied from the offer's `Resource`s (role,
//! reservation and allocation fields kept) with only the scalar changed.
//!
//! `ExecutorInfo` is a pure function of the app record, the agent and the framework id, so it is
//! byte-identical for every task of one executor id, as Mesos requires.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use shardex_common::payload::{
    self, ExecutionType, Isolation, JobKind, JobSpec, ShardingContext, TaskPayload,
};
use shardex_mesos::duration::MesosDuration;
use shardex_mesos::proto::v1::{
    self, AgentId, CommandInfo, DurationInfo, Environment, ExecutorInfo, FrameworkId, Offer,
    Resource, TaskInfo, TaskState, command_info, environment, executor_info, value,
};

use super::config::{AppConfig, ExecutorConfig, JobConfig, JobKindConfig, UriConfig, is_archive};
use super::ids::{ExecutionKind, ExecutorId, TaskId};
use super::registry::AppRecord;
use super::state::{Millis, RunningTask, State};

/// Resource amounts in thousandths, the precision Mesos keeps (not to be confused with
/// [`Millis`], the scheduler's clock).
type Thousandths = i64;

fn to_thousandths(value: f64) -> Thousandths {
    (value * 1000.0).round() as Thousandths
}

fn from_thousandths(value: Thousandths) -> f64 {
    value as f64 / 1000.0
}

/// One offer's resources still free in this round.
#[derive(Debug, Clone)]
struct Pool {
    resources: Vec<Resource>,
    /// Remaining scalar per entry of `resources`.
    left: Vec<Thousandths>,
    executor_ids: BTreeSet<String>,
}

impl Pool {
    fn new(offer: &Offer) -> Pool {
        let resources: Vec<Resource> = offer
            .resources
            .iter()
            .filter(|r| r.r#type == v1::value::Type::Scalar as i32 && r.scalar.is_some())
            .filter(|r| r.revocable.is_none() && r.disk.is_none() && r.shared.is_none())
            .cloned()
            .collect();
        let left = resources
            .iter()
            .map(|r| {
                r.scalar
                    .as_ref()
                    .map(|s| to_thousandths(s.value))
                    .unwrap_or(0)
            })
            .collect();
        Pool {
            resources,
            left,
            executor_ids: offer.executor_ids.iter().map(|e| e.value.clone()).collect(),
        }
    }

    fn available(&self, name: &str) -> Thousandths {
        self.resources
            .iter()
            .zip(&self.left)
            .filter(|(r, _)| r.name == name)
            .map(|(_, left)| *left)
            .sum()
    }

    /// Takes `amount` of `name`, appending to `out` the copies of the offer's resources it
    /// came from (none when `out` is `None`: the executor's share is described elsewhere).
    fn take(&mut self, name: &str, mut amount: Thousandths, mut out: Option<&mut Vec<Resource>>) {
        for (resource, left) in self.resources.iter().zip(self.left.iter_mut()) {
            if amount <= 0 {
                break;
            }
            if resource.name != name || *left <= 0 {
                continue;
            }
            let used = amount.min(*left);
            *left -= used;
            amount -= used;
            if let Some(out) = out.as_deref_mut() {
                let mut piece = resource.clone();
                piece.scalar = Some(value::Scalar {
                    value: from_thousandths(used),
                });
                out.push(piece);
            }
        }
    }
}

/// What one job needs per task, with the executor it runs in.
struct Need {
    cpus: Thousandths,
    mem: Thousandths,
    exec_cpus: Thousandths,
    exec_mem: Thousandths,
}

/// A task the plan launches.
#[derive(Debug, Clone)]
pub struct PlannedTask {
    pub offer_index: usize,
    pub record: RunningTask,
    pub info: TaskInfo,
}

/// The outcome of one placement round.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub tasks: Vec<PlannedTask>,
    /// Failover entries consumed, as `(job, item)`.
    pub failover_used: Vec<(String, u32)>,
    /// Jobs whose ready count one run consumed.
    pub ready_used: Vec<String>,
    /// Runs launched without some of their items, which are parked: `(job, parked items)`.
    pub partial_runs: Vec<(String, Vec<u32>)>,
    /// Launchable work that did not fit the offers.
    pub unplaced: Vec<String>,
    /// Work that was skipped because its payload or executor could not be built.
    pub errors: Vec<String>,
}

/// Which jobs and items running tasks occupy. Asking each waiting job instead scanned every
/// running task per job, so placement and the REVIVE/SUPPRESS decision after every update were
/// O(jobs × tasks), and stalled a scheduler with 100,000 jobs. The engine keeps one up to date
/// ([`BusyIndex::refresh`] for each task an input touched); placement builds its own.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BusyIndex {
    /// Each task that occupies its item, with its job and item.
    tasks: HashMap<String, (String, u32)>,
    /// How many such tasks each job has on each item.
    jobs: HashMap<String, HashMap<u32, usize>>,
}

impl BusyIndex {
    pub fn of(state: &State) -> BusyIndex {
        let mut busy = BusyIndex::default();
        for task in state.running().values().filter(|t| t.blocks_item()) {
            busy.add(&task.task_id, &task.job, task.item);
        }
        busy
    }

    /// Room for `tasks` more tasks (a launch of that many), so the index is not rehashed
    /// while they are added one by one.
    pub fn reserve(&mut self, tasks: usize) {
        self.tasks.reserve(tasks);
    }

    fn add(&mut self, task_id: &str, job: &str, item: u32) {
        self.tasks
            .insert(task_id.to_owned(), (job.to_owned(), item));
        // The job's name is copied only for its first task.
        let items = match self.jobs.get_mut(job) {
            Some(items) => items,
            None => self.jobs.entry(job.to_owned()).or_default(),
        };
        *items.entry(item).or_default() += 1;
    }

    /// Takes `task_id` out of the index.
    fn forget(&mut self, task_id: &str) {
        let Some((job, item)) = self.tasks.remove(task_id) else {
            return;
        };
        if let Some(items) = self.jobs.get_mut(&job) {
            if let Some(count) = items.get_mut(&item) {
                *count -= 1;
                if *count == 0 {
                    items.remove(&item);
                }
            }
            if items.is_empty() {
                self.jobs.remove(&job);
            }
        }
    }

    /// Reads `task_id` again from the running tasks (after anything that may have launched,
    /// ended or abandoned it).
    pub fn refresh(&mut self, state: &State, task_id: &str) {
        self.forget(task_id);
        if let Some(task) = state.running().get(task_id)
            && task.blocks_item()
        {
            self.add(task_id, &task.job, task.item);
        }
    }

    pub fn job_busy(&self, job: &str) -> bool {
        self.jobs.contains_key(job)
    }

    pub fn item_busy(&self, job: &str, item: u32) -> bool {
        self.jobs
            .get(job)
            .is_some_and(|items| items.contains_key(&item))
    }

    /// Whether a failover entry may launch now.
    pub fn failover_launchable(
        &self,
        state: &State,
        job: &str,
        item: u32,
        not_before: Millis,
        now: Millis,
    ) -> bool {
        not_before <= now && state.registry().job_enabled(job) && !self.item_busy(job, item)
    }

    /// Whether a ready run of `job` may launch now; `failover_jobs`: the jobs with a failover
    /// entry (which go first).
    pub fn ready_launchable(
        &self,
        state: &State,
        job: &str,
        failover_jobs: &HashSet<&str>,
    ) -> bool {
        // Cheapest first: the scheduler asks this of every ready job after each update while
        // none can launch, and with most of them running their one hash lookup here answers;
        // the registry's lookups compare names along a tree (at 100,000 jobs, checked first,
        // they were 89 % of the saturated scheduler's CPU).
        !self.job_busy(job)
            && !failover_jobs.contains(job)
            && state.ready_count(job) > 0
            && state.registry().job_enabled(job)
            && !all_items_parked(state, job)
    }
}

/// The jobs with a failover entry.
fn failover_jobs(state: &State) -> HashSet<&str> {
    state.failover().values().map(|f| f.job.as_str()).collect()
}

/// Whether every item of `job` is parked (its runs have nothing to launch).
pub fn all_items_parked(state: &State, job: &str) -> bool {
    state
        .registry()
        .jobs
        .get(job)
        .is_some_and(|j| (0..j.sharding_total_count).all(|item| state.is_parked(job, item)))
}

/// Whether anything could launch now (the scheduler wants offers), with `busy` the index of
/// the running tasks. `hint` is the ready job found launchable last time: the search starts
/// there and wraps around, since the jobs before it in name order tend to be the ones just
/// launched and still running (starting from the first name, a scheduler with thousands of
/// them walked past all of them after every status update).
pub fn has_launchable_work(
    state: &State,
    busy: &BusyIndex,
    now: Millis,
    hint: &mut Option<String>,
) -> bool {
    if state.failover().is_empty() && state.ready().is_empty() {
        return false;
    }
    if state
        .failover()
        .values()
        .any(|f| busy.failover_launchable(state, &f.job, f.item, f.not_before, now))
    {
        return true;
    }
    let failover_jobs = failover_jobs(state);
    let ready = state.ready();
    let from = hint.as_deref().unwrap_or_default();
    let found = ready
        .range::<str, _>((Bound::Included(from), Bound::Unbounded))
        .chain(ready.range::<str, _>((Bound::Unbounded, Bound::Excluded(from))))
        .map(|(job, _)| job)
        .find(|job| busy.ready_launchable(state, job, &failover_jobs));
    if found.map(String::as_str) != hint.as_deref() {
        *hint = found.cloned();
    }
    found.is_some()
}

/// The executor id of `app` on `agent_id`.
pub fn executor_id(app: &AppRecord, agent_id: &str) -> String {
    ExecutorId {
        app: app.config.name.clone(),
        agent_id: agent_id.to_owned(),
        revision: app.revision,
    }
    .to_string()
}

fn uri(config: &UriConfig) -> command_info::Uri {
    match config {
        UriConfig::Plain(value) => command_info::Uri {
            value: value.clone(),
            executable: None,
            // Plugin files are copied as they are; archives (bundles) are unpacked.
            extract: Some(is_archive(value)),
            cache: None,
            output_file: None,
        },
        UriConfig::Detailed(d) => command_info::Uri {
            value: d.value.clone(),
            executable: d.executable,
            extract: d.extract,
            cache: d.cache,
            output_file: d.output_file.clone(),
        },
    }
}

/// Fingerprint of an app's effective `ExecutorInfo` apart from the per-agent ids: everything
/// Mesos compares between tasks of one executor id. When it changes, the app needs a new
/// revision (new executor ids).
pub fn executor_fingerprint(app: &AppRecord, defaults: &ExecutorConfig) -> String {
    use prost::Message as _;
    use sha2::Digest as _;
    let mut info = executor_info(app, defaults, "", "");
    // What only names the revision is not part of what defines it.
    info.executor_id.value.clear();
    info.framework_id = None;
    info.name = None;
    let digest = sha2::Sha256::digest(info.encode_to_vec());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The `ExecutorInfo` of one app revision on one agent.
pub fn executor_info(
    app: &AppRecord,
    defaults: &ExecutorConfig,
    agent_id: &str,
    framework_id: &str,
) -> ExecutorInfo {
    let config: &AppConfig = &app.config;
    let executor_uri = config
        .executor_uri
        .clone()
        .or_else(|| defaults.uri.clone())
        .unwrap_or_default();
    let mut uris = Vec::new();
    let mut command = config
        .executor_command
        .clone()
        .unwrap_or_else(|| defaults.command.clone());
    if is_archive(&executor_uri) {
        uris.push(command_info::Uri {
            value: executor_uri,
            executable: None,
            extract: Some(true),
            cache: None,
            output_file: None,
        });
    } else {
        // A bare binary lands under a fixed name, whatever the URI calls it.
        uris.push(command_info::Uri {
            value: executor_uri,
            executable: Some(true),
            extract: None,
            cache: None,
            output_file: Some("shardex-executor".into()),
        });
        if config.executor_command.is_none() {
            command = "./shardex-executor".into();
        }
    }
    uris.extend(config.uris.iter().map(uri));
    if let Some(idle) = defaults.idle_timeout {
        command.push_str(&format!(" --idle-timeout {}", MesosDuration(idle.0)));
    }
    let mut env: BTreeMap<&String, &String> = defaults.environment.iter().collect();
    env.extend(config.environment.iter());
    let scalar = |name: &str, amount: f64| Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: amount }),
        ..Resource::default()
    };
    ExecutorInfo {
        r#type: Some(executor_info::Type::Custom as i32),
        executor_id: v1::ExecutorId {
            value: executor_id(app, agent_id),
        },
        framework_id: Some(FrameworkId {
            value: framework_id.to_owned(),
        }),
        command: Some(CommandInfo {
            uris,
            environment: (!env.is_empty()).then(|| Environment {
                variables: env
                    .into_iter()
                    .map(|(name, value)| environment::Variable {
                        name: name.clone(),
                        r#type: Some(environment::variable::Type::Value as i32),
                        value: Some(value.clone()),
                        secret: None,
                    })
                    .collect(),
            }),
            shell: Some(true),
            value: Some(command),
            ..CommandInfo::default()
        }),
        resources: vec![
            scalar("cpus", from_thousandths(to_thousandths(config.cpus))),
            scalar("mem", from_thousandths(to_thousandths(config.mem))),
        ],
        name: Some(format!("shardex {} r{}", config.name, app.revision)),
        shutdown_grace_period: Some(DurationInfo {
            nanoseconds: i64::try_from(defaults.shutdown_grace_period.0.as_nanos())
                .unwrap_or(i64::MAX),
        }),
        ..ExecutorInfo::default()
    }
}

/// The job's part of the payload; `app_isolation` applies when the job names none.
pub fn job_spec(job: &JobConfig, app_isolation: Isolation) -> JobSpec {
    JobSpec {
        kind: match job.kind {
            JobKindConfig::Simple => JobKind::Simple,
            JobKindConfig::Dataflow => JobKind::Dataflow {
                streaming: job.streaming,
            },
            JobKindConfig::Script => JobKind::Script {
                command_line: job.command_line.clone().unwrap_or_default(),
            },
        },
        execution: if job.is_daemon() {
            ExecutionType::Daemon {
                cron: job.cron.clone().unwrap_or_default(),
                misfire: job.misfire,
            }
        } else {
            ExecutionType::Transient
        },
        plugin: match job.kind {
            JobKindConfig::Script => None,
            _ => job.plugin.clone(),
        },
        error_policy: job.error_policy,
        properties: job.properties.clone(),
        isolation: job.isolation.unwrap_or(app_isolation),
        guards: job.guards.to_guards(),
    }
}

/// Everything placement needs besides the state.
pub struct Context<'a> {
    pub executor: &'a ExecutorConfig,
    pub framework_id: &'a str,
    pub now: Millis,
    /// Executor ids nothing may be launched into: they are stopping (a task sent there would
    /// end `TASK_DROPPED`); their agents get the app's tasks once Mesos reports them gone.
    pub blocked_executors: &'a BTreeSet<String>,
}

/// One offer as it was before a run touched it: its index, what was left, the executors started.
type Noted = (usize, Vec<Thousandths>, BTreeSet<String>);

struct Round<'a> {
    ctx: &'a Context<'a>,
    offers: &'a [Offer],
    pools: Vec<Pool>,
    /// Executors this round starts, by offer index.
    started: Vec<BTreeSet<String>>,
    /// The first offer the next item of the job being placed may fit: the items of one job
    /// need the same, and offers only shrink, so an offer that refused one item refuses the
    /// next (and a job's items never start an executor on an offer before it).
    cursor: usize,
    /// While a ready run is placed, each offer it touched as it was before: a run that does
    /// not fit whole is undone from this, not from a copy of every offer.
    journal: Option<Vec<Noted>>,
    /// Which run last noted each offer in the journal (runs are numbered from 1).
    noted: Vec<u64>,
    run: u64,
    /// The ExecutorInfo of each executor id this round launches into, built once: it is the
    /// same for every task of the executor, and building it is most of a task's cost.
    executors: BTreeMap<String, ExecutorInfo>,
    /// The executor id last asked for on each offer, with its app and revision.
    executor_ids: Vec<Option<(String, u64, String)>>,
}

struct Candidate<'a> {
    job: &'a JobConfig,
    app: &'a AppRecord,
    /// The job's part of the payload (the same for every item).
    spec: &'a JobSpec,
    item: u32,
    /// The item's parameter (the job's parameters are parsed once per job, not per item).
    parameter: String,
    kind: ExecutionKind,
    attempt: u32,
    original_task_id: Option<String>,
}

impl Round<'_> {
    fn need(&self, job: &JobConfig, app: &AppRecord) -> Need {
        Need {
            cpus: to_thousandths(job.cpus),
            mem: to_thousandths(job.mem),
            exec_cpus: to_thousandths(app.config.cpus),
            exec_mem: to_thousandths(app.config.mem),
        }
    }

    /// Starts placing a new job (or failover entry): its search starts at the first offer.
    fn next_job(&mut self) {
        self.cursor = 0;
    }

    /// Starts placing a run that is kept only if it fits whole.
    fn begin(&mut self) {
        self.run += 1;
        self.journal = Some(Vec::new());
    }

    /// Keeps what was placed since [`Round::begin`].
    fn commit(&mut self) {
        self.journal = None;
    }

    /// Gives back what was placed since [`Round::begin`].
    fn rollback(&mut self) {
        for (index, left, started) in self.journal.take().unwrap_or_default().into_iter().rev() {
            self.pools[index].left = left;
            self.started[index] = started;
        }
    }

    /// Notes offer `index` as it is, before its first change under [`Round::begin`].
    fn touch(&mut self, index: usize) {
        if let Some(journal) = &mut self.journal
            && self.noted[index] != self.run
        {
            self.noted[index] = self.run;
            journal.push((
                index,
                self.pools[index].left.clone(),
                self.started[index].clone(),
            ));
        }
    }

    /// [`executor_id`] of `app` on offer `index`'s agent, formatted once per offer and app.
    fn executor_id(&mut self, index: usize, app: &AppRecord) -> String {
        let cached = &mut self.executor_ids[index];
        match cached {
            Some((name, revision, id)) if *name == app.config.name && *revision == app.revision => {
                id.clone()
            }
            _ => {
                let id = executor_id(app, &self.offers[index].agent_id.value);
                *cached = Some((app.config.name.clone(), app.revision, id.clone()));
                id
            }
        }
    }

    /// Finds an offer for one task, takes its resources and builds the task.
    fn place(&mut self, c: &Candidate<'_>) -> Result<Option<PlannedTask>, String> {
        let need = self.need(c.job, c.app);
        for index in self.cursor..self.pools.len() {
            // Too small for the task alone: no need to ask about its executor.
            let pool = &self.pools[index];
            if pool.available("cpus") < need.cpus || pool.available("mem") < need.mem {
                continue;
            }
            let agent = self.offers[index].agent_id.value.clone();
            let exec_id = self.executor_id(index, c.app);
            if self.ctx.blocked_executors.contains(&exec_id) {
                continue;
            }
            let new_executor = !self.pools[index].executor_ids.contains(&exec_id)
                && !self.started[index].contains(&exec_id);
            let (cpus, mem) = if new_executor {
                (need.cpus + need.exec_cpus, need.mem + need.exec_mem)
            } else {
                (need.cpus, need.mem)
            };
            let pool = &self.pools[index];
            if pool.available("cpus") < cpus || pool.available("mem") < mem {
                continue;
            }
            let task_id = TaskId::new(&c.job.name, c.item, c.kind, &agent);
            let (name, id) = task_id.name_and_id();
            let payload = TaskPayload {
                context: ShardingContext {
                    task_id: id.clone(),
                    job_name: c.job.name.clone(),
                    sharding_total_count: c.job.sharding_total_count,
                    job_parameter: c.job.job_parameter.clone(),
                    item_parameters: BTreeMap::from([(c.item, c.parameter.clone())]),
                },
                job: c.spec.clone(),
            };
            let data = payload
                .encode()
                .map_err(|e: payload::PayloadError| format!("job '{}': {e}", c.job.name))?;
            self.touch(index);
            self.cursor = index;
            let pool = &mut self.pools[index];
            if new_executor {
                // The executor's share comes out of the offer but is described in ExecutorInfo.
                pool.take("cpus", need.exec_cpus, None);
                pool.take("mem", need.exec_mem, None);
                self.started[index].insert(exec_id.clone());
            }
            // Usually one piece each of cpus and mem.
            let mut resources = Vec::with_capacity(2);
            pool.take("cpus", need.cpus, Some(&mut resources));
            pool.take("mem", need.mem, Some(&mut resources));
            let executor = self
                .executors
                .entry(exec_id.clone())
                .or_insert_with(|| {
                    executor_info(c.app, self.ctx.executor, &agent, self.ctx.framework_id)
                })
                .clone();
            let info = TaskInfo {
                name,
                task_id: v1::TaskId { value: id.clone() },
                agent_id: AgentId {
                    value: agent.clone(),
                },
                resources,
                executor: Some(executor),
                data: Some(data),
                ..TaskInfo::default()
            };
            let record = RunningTask {
                task_id: id,
                job: c.job.name.clone(),
                item: c.item,
                kind: c.kind,
                agent_id: agent,
                executor_id: exec_id,
                work_dir: None,
                state: TaskState::TaskStaging,
                launched_at: self.ctx.now,
                started_at: None,
                attempt: c.attempt,
                original_task_id: c.original_task_id.clone(),
                suspect_since: None,
                kill: None,
                abandoned: false,
                idle: None,
                seen_uuids: Vec::new(),
            };
            return Ok(Some(PlannedTask {
                offer_index: index,
                record,
                info,
            }));
        }
        Ok(None)
    }
}

/// Plans one round over `offers`. Pure: the caller records the plan, persists it, then sends
/// ACCEPTs.
pub fn plan(state: &State, offers: &[Offer], ctx: &Context<'_>) -> Plan {
    let mut round = Round {
        ctx,
        offers,
        pools: offers.iter().map(Pool::new).collect(),
        started: vec![BTreeSet::new(); offers.len()],
        cursor: 0,
        journal: None,
        noted: vec![0; offers.len()],
        run: 0,
        executors: BTreeMap::new(),
        executor_ids: vec![None; offers.len()],
    };
    let mut plan = Plan::default();
    let busy = BusyIndex::of(state);
    let failover_jobs = failover_jobs(state);

    let mut failovers: Vec<_> = state
        .failover()
        .values()
        .filter(|f| busy.failover_launchable(state, &f.job, f.item, f.not_before, ctx.now))
        .collect();
    failovers.sort_by_key(|f| (f.recorded_at, f.job.clone(), f.item));
    for entry in failovers {
        let (Some(job), Some(app)) = (
            state.registry().jobs.get(&entry.job),
            state
                .registry()
                .jobs
                .get(&entry.job)
                .and_then(|j| state.registry().apps.get(&j.app)),
        ) else {
            continue;
        };
        if entry.item >= job.sharding_total_count {
            continue;
        }
        let parameter = match job.item_parameters() {
            Ok(mut params) => params.remove(&entry.item).unwrap_or_default(),
            Err(e) => {
                plan.errors.push(e.to_string());
                continue;
            }
        };
        round.next_job();
        let spec = job_spec(job, app.config.isolation);
        let candidate = Candidate {
            job,
            app,
            spec: &spec,
            item: entry.item,
            parameter,
            kind: ExecutionKind::Failover,
            attempt: entry.attempts,
            original_task_id: Some(entry.original_task_id.clone()),
        };
        match round.place(&candidate) {
            Ok(Some(task)) => {
                plan.failover_used.push((entry.job.clone(), entry.item));
                plan.tasks.push(task);
            }
            Ok(None) => plan
                .unplaced
                .push(format!("failover {}#{}", entry.job, entry.item)),
            Err(e) => plan.errors.push(e),
        }
    }

    for job_name in state.ready().keys() {
        if !busy.ready_launchable(state, job_name, &failover_jobs) {
            continue;
        }
        let Some(job) = state.registry().jobs.get(job_name) else {
            continue;
        };
        let Some(app) = state.registry().apps.get(&job.app) else {
            continue;
        };
        // Parked items are not run again until released; the rest of the run goes ahead.
        let (parked, items): (Vec<u32>, Vec<u32>) =
            (0..job.sharding_total_count).partition(|item| state.is_parked(job_name, *item));
        if items.is_empty() {
            // The engine drops runs with every item parked; nothing to place.
            continue;
        }
        let mut params = match job.item_parameters() {
            Ok(params) => params,
            Err(e) => {
                plan.errors.push(e.to_string());
                continue;
            }
        };
        let spec = job_spec(job, app.config.isolation);
        // All (unparked) items or none: keep them only if every item fits. They go straight
        // into the plan (copying each run's tasks over cost as much as building them) and are
        // cut off again when the run does not fit.
        round.next_job();
        round.begin();
        let placed_before = plan.tasks.len();
        plan.tasks.reserve(items.len());
        let mut complete = true;
        for item in items {
            let candidate = Candidate {
                job,
                app,
                spec: &spec,
                item,
                parameter: params.remove(&item).unwrap_or_default(),
                kind: ExecutionKind::Ready,
                attempt: 0,
                original_task_id: None,
            };
            match round.place(&candidate) {
                Ok(Some(task)) => plan.tasks.push(task),
                Ok(None) => {
                    complete = false;
                    plan.unplaced.push(format!(
                        "ready {job_name}: not enough resources for all {} items",
                        job.sharding_total_count
                    ));
                    break;
                }
                Err(e) => {
                    complete = false;
                    plan.errors.push(e);
                    break;
                }
            }
        }
        if complete {
            round.commit();
            plan.ready_used.push(job_name.clone());
            if !parked.is_empty() {
                plan.partial_runs.push((job_name.clone(), parked));
            }
        } else {
            plan.tasks.truncate(placed_before);
            round.rollback();
        }
    }
    plan
}

#[cfg(test)]
#[allow(deprecated)] // Resource.role: offers still carry it.
mod tests {
    use super::*;
    use crate::config::tests_support::{app_record, job};
    use crate::state::FailoverEntry;

    fn offer(id: &str, agent: &str, cpus: f64, mem: f64, executors: &[&str]) -> Offer {
        let scalar = |name: &str, amount: f64| Resource {
            name: name.into(),
            r#type: v1::value::Type::Scalar as i32,
            scalar: Some(value::Scalar { value: amount }),
            role: Some("*".into()),
            ..Resource::default()
        };
        Offer {
            id: v1::OfferId { value: id.into() },
            framework_id: FrameworkId { value: "fw".into() },
            agent_id: AgentId {
                value: agent.into(),
            },
            hostname: "localhost".into(),
            resources: vec![scalar("cpus", cpus), scalar("mem", mem)],
            executor_ids: executors
                .iter()
                .map(|e| v1::ExecutorId { value: (*e).into() })
                .collect(),
            ..Offer::default()
        }
    }

    #[test]
    fn the_look_for_a_launchable_ready_job_starts_where_the_last_one_found_it() {
        let mut s = State::default();
        s.registry_mut().apps.insert("app", app_record("app", 1));
        for name in ["a", "b", "c"] {
            s.registry_mut().jobs.insert(name, job(name, "app"));
            s.set_ready(name, 1, crate::runs::Trigger::Rest, 0);
        }
        let mut busy = BusyIndex::default();
        busy.add("ta", "a", 0);
        let mut hint = None;
        assert!(has_launchable_work(&s, &busy, 0, &mut hint));
        assert_eq!(hint.as_deref(), Some("b"));
        busy.add("tb", "b", 0);
        assert!(has_launchable_work(&s, &busy, 0, &mut hint));
        assert_eq!(hint.as_deref(), Some("c"));
        busy.forget("ta");
        busy.add("tc", "c", 0);
        assert!(has_launchable_work(&s, &busy, 0, &mut hint));
        assert_eq!(hint.as_deref(), Some("a"), "the look wraps around");
        busy.add("ta2", "a", 0);
        assert!(!has_launchable_work(&s, &busy, 0, &mut hint));
        assert_eq!(hint, None, "every ready job runs");
        busy.forget("tb");
        assert!(has_launchable_work(&s, &busy, 0, &mut hint));
        assert_eq!(hint.as_deref(), Some("b"));
    }

    fn state() -> State {
        let mut state = State::default();
        state
            .registry_mut()
            .apps
            .insert("app", app_record("app", 1));
        state.registry_mut().jobs.insert("j", job("j", "app"));
        state
    }

    static NONE_BLOCKED: BTreeSet<String> = BTreeSet::new();

    fn ctx(executor: &ExecutorConfig) -> Context<'_> {
        Context {
            executor,
            framework_id: "fw",
            now: 100,
            blocked_executors: &NONE_BLOCKED,
        }
    }

    #[test]
    fn a_ready_run_places_one_task_per_item_with_the_executor_charged_once() {
        let mut s = state();
        s.set_ready("j", 1, crate::runs::Trigger::Rest, 0);
        let exec = ExecutorConfig::default();
        // 3 tasks × (0.1 cpus, 32 mem) + executor (0.1, 32) = 0.4 cpus, 128 mem.
        let offers = [offer("o1", "S0", 0.4, 128.0, &[])];
        let p = plan(&s, &offers, &ctx(&exec));
        assert_eq!(p.tasks.len(), 3);
        assert_eq!(p.ready_used, vec!["j".to_string()]);
        let ids: Vec<_> = p.tasks.iter().map(|t| t.record.item).collect();
        assert_eq!(ids, vec![0, 1, 2]);
        let t = &p.tasks[1].info;
        assert!(t.task_id.value.starts_with("j@-@1@-@READY@-@S0@-@"));
        assert_eq!(t.name, "j@-@1@-@READY@-@S0");
        assert!(t.command.is_none());
        let executor = t.executor.as_ref().unwrap();
        assert_eq!(executor.executor_id.value, "app@-@S0");
        assert_eq!(executor, p.tasks[0].info.executor.as_ref().unwrap());
        // Task resources keep the offer's role; only the value changes.
        assert_eq!(t.resources[0].role.as_deref(), Some("*"));
        assert_eq!(t.resources[0].scalar.as_ref().unwrap().value, 0.1);
        let payload = TaskPayload::decode(t.data.as_ref().unwrap()).unwrap();
        assert_eq!(payload.context.task_id, t.task_id.value);
        assert_eq!(
            payload.context.item_parameters.keys().collect::<Vec<_>>(),
            vec![&1]
        );
    }

    #[test]
    fn a_ready_run_launches_all_items_or_none() {
        let mut s = state();
        s.set_ready("j", 1, crate::runs::Trigger::Rest, 0);
        let exec = ExecutorConfig::default();
        let offers = [offer("o1", "S0", 0.3, 128.0, &[])];
        let p = plan(&s, &offers, &ctx(&exec));
        assert!(p.tasks.is_empty());
        assert!(p.ready_used.is_empty());
        assert_eq!(p.unplaced.len(), 1);
        // With the executor already running there, 0.3 cpus suffice.
        let offers = [offer("o1", "S0", 0.3, 96.0, &["app@-@S0"])];
        assert_eq!(plan(&s, &offers, &ctx(&exec)).tasks.len(), 3);
    }

    #[test]
    fn failover_entries_go_first_and_may_launch_alone() {
        let mut s = state();
        s.set_ready("k", 1, crate::runs::Trigger::Rest, 0);
        s.registry_mut().jobs.insert("k", job("k", "app"));
        s.put_failover(FailoverEntry {
            job: "j".into(),
            item: 2,
            original_task_id: "old".into(),
            attempts: 1,
            not_before: 0,
            recorded_at: 0,
            cause: "TASK_FAILED".into(),
        });
        let exec = ExecutorConfig::default();
        let offers = [offer("o1", "S0", 0.3, 96.0, &[])];
        let p = plan(&s, &offers, &ctx(&exec));
        assert_eq!(p.tasks.len(), 1);
        let task = &p.tasks[0];
        assert_eq!(task.record.kind, ExecutionKind::Failover);
        assert_eq!(task.record.attempt, 1);
        assert_eq!(task.record.original_task_id.as_deref(), Some("old"));
        assert!(
            task.info
                .task_id
                .value
                .starts_with("j@-@2@-@FAILOVER@-@S0@-@")
        );
        assert_eq!(p.failover_used, vec![("j".to_string(), 2)]);
        assert!(p.ready_used.is_empty(), "k did not fit after the failover");
    }

    #[test]
    fn nothing_launches_over_a_running_item_or_before_its_backoff() {
        let mut s = state();
        s.put_failover(FailoverEntry {
            job: "j".into(),
            item: 0,
            original_task_id: "old".into(),
            attempts: 2,
            not_before: 200,
            recorded_at: 0,
            cause: "x".into(),
        });
        s.set_ready("j", 1, crate::runs::Trigger::Rest, 0);
        let exec = ExecutorConfig::default();
        let offers = [offer("o1", "S0", 10.0, 10000.0, &[])];
        let p = plan(&s, &offers, &ctx(&exec));
        assert!(
            p.tasks.is_empty(),
            "not due yet, and the ready run waits for it"
        );
        assert!(!has_launchable_work(&s, &BusyIndex::of(&s), 100, &mut None));
        assert!(has_launchable_work(&s, &BusyIndex::of(&s), 200, &mut None));
    }

    #[test]
    fn disabled_jobs_launch_nothing() {
        let mut s = state();
        s.set_ready("j", 1, crate::runs::Trigger::Rest, 0);
        s.registry_mut().jobs.get_mut("j").unwrap().disabled = true;
        let exec = ExecutorConfig::default();
        let offers = [offer("o1", "S0", 10.0, 10000.0, &[])];
        assert!(plan(&s, &offers, &ctx(&exec)).tasks.is_empty());
    }

    #[test]
    fn a_run_that_does_not_fit_gives_back_what_it_took_on_every_offer() {
        let mut s = state();
        s.registry_mut().jobs.insert("big", job("big", "app"));
        let mut small = job("small", "app");
        small.sharding_total_count = 2;
        small.sharding_item_parameters = "0=left,1=right".into();
        s.registry_mut().jobs.insert("small", small);
        s.set_ready("big", 1, crate::runs::Trigger::Rest, 0);
        s.set_ready("small", 1, crate::runs::Trigger::Rest, 0);
        let exec = ExecutorConfig::default();
        // Each offer holds an executor and one task: two of big's three items fit.
        let offers = [
            offer("o1", "S0", 0.2, 64.0, &[]),
            offer("o2", "S1", 0.2, 64.0, &[]),
        ];
        let p = plan(&s, &offers, &ctx(&exec));
        assert_eq!(p.ready_used, vec!["small".to_owned()]);
        // Had big's executors stayed started, both of small's items would fit on o1; had its
        // resources stayed taken, neither would fit.
        let per_offer: Vec<usize> = p.tasks.iter().map(|t| t.offer_index).collect();
        assert_eq!(per_offer, vec![0, 1]);
        let parameters: Vec<String> = p
            .tasks
            .iter()
            .map(|t| {
                let payload = TaskPayload::decode(t.info.data.as_deref().unwrap()).unwrap();
                payload.context.item_parameters.into_values().collect()
            })
            .collect();
        assert_eq!(parameters, ["left", "right"]);
    }

    #[test]
    fn items_spread_over_offers_when_one_is_too_small() {
        let mut s = state();
        s.set_ready("j", 1, crate::runs::Trigger::Rest, 0);
        let exec = ExecutorConfig::default();
        let offers = [
            offer("o1", "S0", 0.2, 64.0, &[]),
            offer("o2", "S1", 0.3, 96.0, &[]),
        ];
        let p = plan(&s, &offers, &ctx(&exec));
        let per_offer: Vec<usize> = p.tasks.iter().map(|t| t.offer_index).collect();
        assert_eq!(per_offer, vec![0, 1, 1]);
        assert_eq!(
            p.tasks[2].info.executor.as_ref().unwrap().executor_id.value,
            "app@-@S1"
        );
    }

    #[test]
    fn executor_info_of_later_revisions_uses_a_new_id_and_fixed_fields() {
        let mut record = app_record("app", 3);
        record
            .config
            .environment
            .insert("RUST_LOG".into(), "debug".into());
        let exec = ExecutorConfig {
            idle_timeout: Some(shardex_mesos::duration::MesosDuration::secs(60)),
            ..ExecutorConfig::default()
        };
        let info = executor_info(&record, &exec, "S0", "fw");
        assert_eq!(info.executor_id.value, "app@-@S0@-@r3");
        assert_eq!(info.r#type, Some(executor_info::Type::Custom as i32));
        let command = info.command.as_ref().unwrap();
        assert_eq!(
            command.value.as_deref(),
            Some("./shardex-executor --idle-timeout 1mins")
        );
        assert_eq!(command.uris[0].executable, Some(true));
        assert_eq!(
            command.uris[0].output_file.as_deref(),
            Some("shardex-executor")
        );
        assert_eq!(command.uris[1].extract, Some(false));
        assert_eq!(
            info.shutdown_grace_period.unwrap().nanoseconds,
            5_000_000_000
        );
        assert_eq!(info, executor_info(&record, &exec, "S0", "fw"));
    }
}
