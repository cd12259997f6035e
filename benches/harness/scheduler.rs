//! The scheduler: its sans-I/O engine driven in-process with synthetic offers, fires and jobs,
//! and the whole scheduler (owner, driver, store, REST) against the scripted master of the
//! scheduler tests over loopback HTTP.
//!
//! - placement: one OFFERS event of 1,000 offers (one per agent) for 1k, 10k, 100k ready
//!   shards: the engine's decision (placement, run records, payloads, ACCEPT calls), then the
//!   redb commit that must precede the ACCEPTs;
//! - memory: heap bytes per registered job and per running task, from a counting allocator
//!   (the engine's state only, after its changes were committed);
//! - cron: with 1k, 10k, 100k jobs, a tick with nothing due, one with every job due, and ticks
//!   with none due while every run is pending (the owner ticks every 100 ms);
//! - the live scheduler, per size: trigger every shard, one offer: offer sent → ACCEPT received
//!   (placement and commit included); `GET /api/tasks/running` with that many tasks; then every
//!   task's `TASK_RUNNING` and `TASK_FINISHED` at once: updates applied, committed and
//!   acknowledged per second, on redb and, where ZooKeeper is installed, on ZooKeeper.

use std::time::{Duration, Instant};

use serde_json::Value;
use shardex::mesos::proto::v1::scheduler::{Call, Event, call, event};
use shardex::mesos::proto::v1::{
    self, AgentId, OfferId, Resource, TaskId, TaskState, TaskStatus, value,
};
use shardex::scheduler::{
    ApiRequest, Config, Engine, RedbStore, Scheduler, State, Store, ZkOptions, ZkStore, ZkTarget,
};

use super::{Curve, Report, Samples, Scale, Table, alloc, auto, median_p99, num};
use crate::fake_master::{FakeMaster, all_launched};
use crate::support;

const WAIT: Duration = Duration::from_secs(600);
/// Items per job (the most a job may have).
const PER_JOB: usize = 1000;

/// A config with one app, and the template of a manual job of `items` items (cpus 0.001,
/// mem 1) that `jobs` copies under new names.
pub fn config_with_jobs(jobs: usize, items: u32, cron: Option<&str>) -> Config {
    let cron = cron.map_or(String::new(), |c| format!("cron = \"{c}\"\n"));
    let text = format!(
        "[[apps]]\nname = \"bench\"\nexecutor_uri = \"/opt/shardex/shardex-executor\"\ncpus = 0.01\nmem = 1\n\
         [[jobs]]\nname = \"template\"\napp = \"bench\"\n{cron}sharding_total_count = {items}\n\
         plugin = \"libbench.so\"\ncpus = 0.001\nmem = 1\n"
    );
    let mut config = Config::from_toml(&text, "bench").expect("a valid bench config");
    let template = config.jobs[0].clone();
    config.jobs = (0..jobs)
        .map(|i| {
            let mut job = template.clone();
            job.name = format!("j{i}");
            job
        })
        .collect();
    config
}

/// A config whose jobs of up to 1,000 items make `shards` shards in all; their names.
pub fn config_with_shards(shards: usize) -> (Config, Vec<String>) {
    let jobs = shards.div_ceil(PER_JOB);
    let mut config = config_with_jobs(jobs, PER_JOB as u32, None);
    if let Some(last) = config.jobs.last_mut() {
        last.sharding_total_count = (shards - (jobs - 1) * PER_JOB) as u32;
    }
    let names = config.jobs.iter().map(|j| j.name.clone()).collect();
    (config, names)
}

fn scalar(name: &str, amount: f64) -> Resource {
    Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: amount }),
        ..Resource::default()
    }
}

/// `n` offers, one per agent, each room for `per_offer` shards and an executor.
pub fn offers(n: usize, per_offer: usize, round: usize) -> Vec<v1::Offer> {
    (0..n)
        .map(|i| v1::Offer {
            id: OfferId {
                value: format!("o{round}-{i}"),
            },
            framework_id: v1::FrameworkId { value: "fw".into() },
            agent_id: AgentId {
                value: format!("S{i}"),
            },
            hostname: format!("agent{i}"),
            resources: vec![
                scalar("cpus", 1.0 + 0.002 * per_offer as f64),
                scalar("mem", 64.0 + 2.0 * per_offer as f64),
            ],
            ..v1::Offer::default()
        })
        .collect()
}

pub fn offers_event(offers: Vec<v1::Offer>) -> Event {
    Event {
        r#type: Some(event::Type::Offers as i32),
        offers: Some(event::Offers { offers }),
        ..Event::default()
    }
}

/// Task infos launched by a list of calls.
pub fn launched_count(calls: &[Call]) -> usize {
    calls
        .iter()
        .filter_map(|c| c.accept.as_ref())
        .flat_map(|a| a.operations.iter())
        .filter_map(|o| o.launch.as_ref())
        .map(|l| l.task_infos.len())
        .sum()
}

/// A subscribed engine with every job of `config` registered (and committed).
pub fn subscribed_engine(config: Config, now: i64) -> Engine {
    let mut engine = Engine::new(State::default(), config, now);
    engine
        .apply_config_registrations(now)
        .expect("the bench config registers");
    engine.on_subscribed("fw", now);
    engine.state.committed();
    engine
}

struct Placement {
    decide_ms: Samples,
    commit_ms: Samples,
    bytes_per_task: Samples,
}

/// One OFFERS event of `agents` offers for `shards` ready shards, `rounds` times.
async fn placement(shards: usize, agents: usize, rounds: usize) -> Placement {
    let mut result = Placement {
        decide_ms: Samples::default(),
        commit_ms: Samples::default(),
        bytes_per_task: Samples::default(),
    };
    for round in 0..rounds {
        let now = shardex::scheduler::now_millis();
        let (config, jobs) = config_with_shards(shards);
        let mut engine = subscribed_engine(config, now);
        for job in &jobs {
            let (_, answer) = engine.on_api(ApiRequest::TriggerJob(job.clone()), now);
            answer.expect("the trigger is taken");
        }
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut store =
            Store::Redb(RedbStore::open(&dir.path().join("bench.redb")).expect("a redb store"));
        engine.state.all_changed();
        store
            .commit(&mut engine.state)
            .await
            .expect("the first commit");
        let event = offers_event(offers(agents, shards.div_ceil(agents) * 2, round));
        let before = alloc::live_bytes();
        let started = Instant::now();
        let calls = engine.on_event(event, now);
        result.decide_ms.push_duration_ms(started.elapsed());
        assert_eq!(
            launched_count(&calls),
            shards,
            "one OFFERS event places every shard"
        );
        drop(calls);
        let started = Instant::now();
        store
            .commit(&mut engine.state)
            .await
            .expect("the launch commit");
        result.commit_ms.push_duration_ms(started.elapsed());
        if alloc::installed() {
            result
                .bytes_per_task
                .push((alloc::live_bytes() - before) as f64 / shards as f64);
        }
    }
    result
}

struct Cron {
    /// Nothing due and nothing pending: the cost of having the jobs.
    idle_ms: Samples,
    all_due_ms: Samples,
    /// Nothing due, every job's run pending (not subscribed: nothing launches).
    none_due_ms: Samples,
    bytes_per_job: f64,
}

/// `jobs` jobs firing every second: a tick where all are due (first fires: a run queued for
/// each; later: coalesced), and ticks where none is due.
fn cron(jobs: usize, rounds: usize) -> Cron {
    // A whole second, so that every job is due at the same tick.
    let now = (shardex::scheduler::now_millis() / 1000 + 1) * 1000;
    let config = config_with_jobs(1, 1, Some("* * * * * ?"));
    let template = config.jobs[0].clone();
    let mut empty = config.clone();
    empty.jobs.clear();
    let mut engine = Engine::new(State::default(), empty, now);
    engine
        .apply_config_registrations(now)
        .expect("the app registers");
    engine.state.committed();
    let before = alloc::live_bytes();
    for i in 0..jobs {
        let mut job = template.clone();
        job.name = format!("j{i}");
        let (_, answer) = engine.on_api(ApiRequest::RegisterJob(job), now - 500);
        answer.expect("the job registers");
    }
    engine.state.committed();
    let bytes_per_job = if alloc::installed() {
        (alloc::live_bytes() - before) as f64 / jobs as f64
    } else {
        f64::NAN
    };
    let mut result = Cron {
        idle_ms: Samples::default(),
        all_due_ms: Samples::default(),
        none_due_ms: Samples::default(),
        bytes_per_job,
    };
    // Registered at `now - 500`: their first fire is `now`, nothing is due before.
    for tick in 1..=4 {
        let started = Instant::now();
        engine.on_tick(now - 500 + 100 * tick);
        result.idle_ms.push_duration_ms(started.elapsed());
    }
    for round in 0..rounds {
        let second = now + 1000 * round as i64;
        let started = Instant::now();
        engine.on_tick(second);
        result.all_due_ms.push_duration_ms(started.elapsed());
        engine.state.committed();
        for tick in 1..10 {
            let started = Instant::now();
            engine.on_tick(second + 100 * tick);
            result.none_due_ms.push_duration_ms(started.elapsed());
        }
    }
    assert_eq!(
        engine.state.ready_total(),
        jobs as u64,
        "every job has its run pending"
    );
    result
}

/// An executor-sourced update with a uuid of its own.
fn update(agent: &str, task: &str, state: TaskState, serial: u64) -> TaskStatus {
    let mut uuid = [0u8; 16];
    uuid[..8].copy_from_slice(&serial.to_be_bytes());
    uuid[6] = 0x40 | (uuid[6] & 0x0f);
    uuid[8] = 0x80 | (uuid[8] & 0x3f);
    TaskStatus {
        task_id: TaskId { value: task.into() },
        state: state as i32,
        source: Some(v1::task_status::Source::Executor as i32),
        agent_id: Some(AgentId {
            value: agent.into(),
        }),
        uuid: Some(uuid.to_vec()),
        ..TaskStatus::default()
    }
}

/// What the live scheduler measured.
#[derive(Default)]
pub struct Live {
    pub offer_to_accept_ms: Samples,
    pub get_running_ms: Samples,
    pub get_running_bytes: f64,
    pub updates_per_s: Samples,
}

/// The whole scheduler on `store` against the scripted master: `rounds` rounds of `tasks`
/// shards, `gets` requests of `GET /api/tasks/running` each; what went wrong if a step did
/// not happen (with the scheduler's own error when it stopped).
pub async fn live(store: Store, tasks: usize, rounds: usize, gets: usize) -> Result<Live, String> {
    let (config, jobs) = config_with_shards(tasks);
    let master = FakeMaster::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("a loopback port: {e}"))?;
    let mut scheduler = Scheduler::prepare_with(&config, store, listener)
        .await
        .map_err(|e| format!("the scheduler cannot open its store: {e}"))?
        .start(&config, &master.url)
        .await
        .map_err(|e| format!("the scheduler does not start: {e}"))?;
    let rest = format!("http://{}", scheduler.rest_addr());
    let outcome = live_rounds(&master, &rest, &jobs, tasks, rounds, gets).await;
    let outcome = match outcome {
        Ok(live) => Ok(live),
        Err(what) => {
            let why = tokio::time::timeout(Duration::from_secs(2), scheduler.wait())
                .await
                .map_or("it still runs".to_owned(), |e| format!("it stopped: {e}"));
            Err(format!("{what}; {why}"))
        }
    };
    scheduler.shutdown().await;
    outcome
}

fn ensure(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

async fn live_rounds(
    master: &FakeMaster,
    rest: &str,
    jobs: &[String],
    tasks: usize,
    rounds: usize,
    gets: usize,
) -> Result<Live, String> {
    let http = support::http();
    ensure(
        master.wait_count(call::Type::Suppress, 1, WAIT).await,
        || "the scheduler never settled after subscribing".into(),
    )?;
    let mut result = Live::default();
    let mut serial = 0u64;
    for round in 0..rounds {
        for job in jobs {
            let response = http
                .post(format!("{rest}/api/jobs/{job}/trigger"))
                .send()
                .await
                .map_err(|e| format!("trigger {job}: {e}"))?;
            ensure(response.status().as_u16() == 202, || {
                format!("trigger {job}: {}", response.status())
            })?;
        }
        let accepts = master.count_of(call::Type::Accept);
        let sent = tokio::time::Instant::now();
        master.send_offers(vec![master.offer(
            &format!("offer-{round}"),
            tasks as f64,
            tasks as f64 * 2.0 + 1024.0,
            &[],
        )]);
        ensure(
            master
                .wait_count(call::Type::Accept, accepts + 1, WAIT)
                .await,
            || format!("no ACCEPT for round {round}"),
        )?;
        let accept = master.calls_of(call::Type::Accept)[accepts..].to_vec();
        result
            .offer_to_accept_ms
            .push_duration_ms(accept[0].at.duration_since(sent));
        let launched: Vec<String> = all_launched(&accept)
            .into_iter()
            .map(|t| t.task_id.value)
            .collect();
        drop(accept);
        ensure(launched.len() == tasks, || {
            format!("one offer placed {} of {tasks} shards", launched.len())
        })?;

        for _ in 0..gets {
            let started = Instant::now();
            let response = http
                .get(format!("{rest}/api/tasks/running"))
                .send()
                .await
                .map_err(|e| format!("GET /api/tasks/running: {e}"))?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("GET /api/tasks/running: {e}"))?;
            result.get_running_ms.push_duration_ms(started.elapsed());
            result.get_running_bytes = body.len() as f64;
            let listed = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.as_array().map(Vec::len));
            ensure(listed == Some(tasks), || {
                format!(
                    "GET /api/tasks/running answered {status} listing {listed:?} of {tasks} tasks"
                )
            })?;
        }

        let acks = master.count_of(call::Type::Acknowledge);
        let started = Instant::now();
        for state in [TaskState::TaskRunning, TaskState::TaskFinished] {
            for task in &launched {
                serial += 1;
                master.send_update(update(&master.agent_id, task, state, serial));
            }
        }
        ensure(
            master
                .wait_count(call::Type::Acknowledge, acks + 2 * tasks, WAIT)
                .await,
            || format!("round {round}: not every update was acknowledged"),
        )?;
        result
            .updates_per_s
            .push((2 * tasks) as f64 / started.elapsed().as_secs_f64());
        // The next round starts from an empty running table.
        let end = Instant::now() + WAIT;
        loop {
            let text = http
                .get(format!("{rest}/metrics"))
                .send()
                .await
                .map_err(|e| format!("GET /metrics: {e}"))?
                .text()
                .await
                .map_err(|e| format!("GET /metrics: {e}"))?;
            if shardex::scheduler::metric_sample(&text, "shardex_running_tasks") == Some(0) {
                break;
            }
            ensure(Instant::now() < end, || {
                format!("round {round}: the running table never emptied")
            })?;
            tokio::time::sleep(support::POLL).await;
        }
    }
    Ok(result)
}

/// A ZooKeeper store under a fresh root, or why not.
pub async fn zookeeper_store(
    zookeeper: &support::zookeeper::ZooKeeper,
    root: &str,
) -> Result<Store, String> {
    let target: ZkTarget = zookeeper
        .url(root)
        .parse()
        .map_err(|e| format!("the ZooKeeper address: {e}"))?;
    let mut zk = ZkStore::connect(target, ZkOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    zk.take_epoch("bench").await.map_err(|e| e.to_string())?;
    Ok(Store::ZooKeeper(Box::new(zk)))
}

/// Whether `SHARDEX_BENCH_PARTS` (comma-separated: placement, cron, live) selects `part`;
/// every part when unset.
fn part(part: &str) -> bool {
    std::env::var("SHARDEX_BENCH_PARTS")
        .map_or(true, |parts| parts.split(',').any(|p| p.trim() == part))
}

pub async fn run(scale: Scale) -> Report {
    let mut report = Report::new("Scheduler");
    let sizes: Vec<usize> = scale.pick(vec![100, 1_000], vec![1_000, 10_000, 100_000]);
    if part("placement") {
        placement_part(scale, &sizes, &mut report).await;
    }
    if part("cron") {
        cron_part(scale, &sizes, &mut report);
    }
    if part("live") {
        live_part(scale, &sizes, &mut report).await;
    }
    report
}

async fn placement_part(scale: Scale, sizes: &[usize], report: &mut Report) {
    let agents = scale.pick(10, 1_000);
    let mut placement_curve = Curve::new(
        "scheduler-placement",
        &format!("Placement over {} offers", num(agents as f64, 0)),
        "ready shards",
        "ms",
    );
    let mut table = Table::new(
        &format!(
            "Placement of ready shards over {} offers, one per agent (median / p99)",
            num(agents as f64, 0)
        ),
        &[
            "shards",
            "engine decision, ms",
            "redb commit before the ACCEPTs, ms",
            "heap per running task, bytes",
            "target",
        ],
    );
    let (mut decide, mut commit) = (Vec::new(), Vec::new());
    let mut bytes_per_task = Samples::default();
    for &shards in sizes {
        let rounds = scale.pick(1, if shards >= 100_000 { 3 } else { 7 });
        let p = placement(shards, agents, rounds).await;
        decide.push((shards as f64, p.decide_ms.median()));
        commit.push((shards as f64, p.commit_ms.median()));
        bytes_per_task.0.extend(p.bytes_per_task.0.iter().copied());
        table.row(vec![
            num(shards as f64, 0),
            median_p99(&p.decide_ms),
            median_p99(&p.commit_ms),
            num(p.bytes_per_task.median(), 0),
            if shards == 10_000 {
                "≤ 20 ms".into()
            } else {
                String::new()
            },
        ]);
    }
    table.note(
        "The engine's `on_event(OFFERS)` for one event holding every offer: placement, the run \
         and running-task records, each task's payload and TaskInfo, one ACCEPT per used offer. \
         Jobs of 1,000 items (cpus 0.001, mem 1). Heap: live bytes after the commit minus \
         before the event, per task (counting allocator).",
    );
    report.table(table);
    placement_curve.series("engine decision", decide);
    placement_curve.series("redb commit", commit);
    report.curve(placement_curve);
}

fn cron_part(scale: Scale, sizes: &[usize], report: &mut Report) {
    let mut cron_curve = Curve::new(
        "scheduler-cron",
        "Cron producer: one tick",
        "registered jobs",
        "ms",
    );
    let mut table = Table::new(
        "Cron producer and memory per registered job (median / p99)",
        &[
            "jobs (cron every second)",
            "tick, none due, none pending, ms",
            "tick with every job due, ms",
            "tick, none due, every run pending, ms",
            "heap per registered job, bytes",
        ],
    );
    let (mut idle, mut all_due, mut none_due) = (Vec::new(), Vec::new(), Vec::new());
    for &jobs in sizes {
        let c = cron(jobs, scale.pick(2, 5));
        idle.push((jobs as f64, c.idle_ms.median()));
        all_due.push((jobs as f64, c.all_due_ms.median()));
        none_due.push((jobs as f64, c.none_due_ms.median()));
        table.row(vec![
            num(jobs as f64, 0),
            median_p99(&c.idle_ms),
            median_p99(&c.all_due_ms),
            median_p99(&c.none_due_ms),
            num(c.bytes_per_job, 0),
        ]);
    }
    table.note(
        "`Engine::on_tick` (the owner calls it every 100 ms) with every job firing each \
         second, not subscribed (no launches): before the first fire nothing is due or \
         pending; a due tick queues (first) or coalesces (later) one run per job; the other \
         nine ticks of the second have nothing due and every run pending. Jobs registered \
         through the API path (`RegisterJob`); heap per job: live bytes after registering \
         them, per job.",
    );
    report.table(table);
    cron_curve.series("every job due", all_due);
    cron_curve.series("none due, none pending", idle);
    cron_curve.series("none due, every run pending", none_due);
    report.curve(cron_curve);
}

async fn live_part(scale: Scale, sizes: &[usize], report: &mut Report) {
    let mut updates_curve = Curve::new(
        "scheduler-updates",
        "Status updates applied, committed, acknowledged",
        "tasks per round",
        "updates/s",
    );
    let mut running_curve = Curve::new(
        "scheduler-get-running",
        "GET /api/tasks/running",
        "running tasks",
        "ms",
    );
    let mut table = Table::new(
        "The whole scheduler against a scripted master over loopback HTTP (median / p99)",
        &[
            "store, tasks",
            "offer → ACCEPT, ms",
            "GET /api/tasks/running, ms",
            "its body, MiB",
            "updates/s",
            "target",
        ],
    );
    let rounds = scale.pick(1, 3);
    let gets = scale.pick(3, 20);
    let (mut redb_rates, mut get_ms) = (Vec::new(), Vec::new());
    for &tasks in sizes {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store =
            Store::Redb(RedbStore::open(&dir.path().join("bench.redb")).expect("a redb store"));
        let l = match live(store, tasks, rounds, gets).await {
            Ok(l) => l,
            Err(why) => {
                table.note(format!("redb at {tasks} tasks failed: {why}."));
                continue;
            }
        };
        redb_rates.push((tasks as f64, l.updates_per_s.median()));
        get_ms.push((tasks as f64, l.get_running_ms.median()));
        table.row(vec![
            format!("redb, {}", num(tasks as f64, 0)),
            median_p99(&l.offer_to_accept_ms),
            median_p99(&l.get_running_ms),
            auto(l.get_running_bytes / 1048576.0),
            num(l.updates_per_s.median(), 0),
            "≥ 10,000 updates/s".into(),
        ]);
    }
    updates_curve.series("redb", redb_rates);
    running_curve.series("redb", get_ms);
    let zookeeper = if scale == Scale::Full {
        support::zookeeper::ZooKeeper::standalone("bench")
    } else {
        None
    };
    match zookeeper {
        Some(zookeeper) => {
            let mut zk_rates = Vec::new();
            for (i, &tasks) in sizes.iter().filter(|&&t| t <= 10_000).enumerate() {
                let store = match zookeeper_store(&zookeeper, &format!("/bench{i}")).await {
                    Ok(store) => store,
                    Err(why) => {
                        table.note(format!("ZooKeeper at {tasks} tasks not measured: {why}"));
                        continue;
                    }
                };
                let l = match live(store, tasks, rounds, gets).await {
                    Ok(l) => l,
                    Err(why) => {
                        table.note(format!("ZooKeeper at {tasks} tasks failed: {why}."));
                        continue;
                    }
                };
                zk_rates.push((tasks as f64, l.updates_per_s.median()));
                table.row(vec![
                    format!("ZooKeeper, {}", num(tasks as f64, 0)),
                    median_p99(&l.offer_to_accept_ms),
                    median_p99(&l.get_running_ms),
                    auto(l.get_running_bytes / 1048576.0),
                    num(l.updates_per_s.median(), 0),
                    String::new(),
                ]);
            }
            updates_curve.series("ZooKeeper", zk_rates);
        }
        None => table.note(
            "ZooKeeper not measured (smoke scale, or no ZooKeeper installed: ZOOKEEPER_HOME or \
             Debian's zookeeper package).",
        ),
    }
    table.note(format!(
        "{rounds} round(s) per size; each triggers every shard (jobs of 1,000 items), one offer \
         places them all; {gets} sequential GETs while they are staging; then every task's \
         TASK_RUNNING and TASK_FINISHED at once, timed from the first update sent to the last \
         ACKNOWLEDGE received (each update's effect is committed before its ACKNOWLEDGE \
         leaves). ZooKeeper: a standalone server on loopback, up to 10,000 tasks."
    ));
    report.table(table);
    report.curve(updates_curve);
    report.curve(running_curve);
}
