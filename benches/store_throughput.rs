//! Status updates applied, committed and acknowledged per second by one scheduler, on the redb
//! store and on the ZooKeeper store (a real standalone server on loopback), in the same run.
//!
//! The scheduler runs in this process with its real owner, driver and store, against the
//! scripted master of the scheduler tests (real loopback HTTP, protobuf, RecordIO). Each round
//! triggers `SHARDEX_BENCH_TASKS` shards (jobs of up to 1,000 items), lets one offer place them
//! all, then sends every task's `TASK_RUNNING` at once and every task's `TASK_FINISHED` at once.
//! Measured: from the first update sent to its batch's last ACKNOWLEDGE received; each update's
//! effect is committed to the store before its ACKNOWLEDGE leaves (the owner's rule), so this
//! is the end-to-end rate the store allows. Median of `SHARDEX_BENCH_ROUNDS` rounds.
//!
//! Run: `cargo bench --bench store_throughput` (needs ZooKeeper as the HA tests do:
//! `ZOOKEEPER_HOME` or Debian's `zookeeper` package).

#[path = "../tests/fake_master/mod.rs"]
mod fake_master;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use fake_master::{FakeMaster, all_launched};
use shardex::mesos::proto::v1::scheduler::call;
use shardex::mesos::proto::v1::{self, AgentId, TaskId, TaskState, TaskStatus};
use shardex::scheduler::{Config, RedbStore, Scheduler, Store, ZkOptions, ZkStore, ZkTarget};
use support::zookeeper::ZooKeeper;

/// The longest one batch of updates may take before the bench gives up.
const WAIT: Duration = Duration::from_secs(300);
/// Items per job (the most a job may have).
const PER_JOB: usize = 1000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A config with `jobs` jobs of `PER_JOB` items (the last one smaller) making `tasks` shards.
fn config(tasks: usize) -> (Config, Vec<String>) {
    let mut text = String::from(
        "[[apps]]\nname = \"bench\"\nexecutor_uri = \"/opt/shardex/shardex-executor\"\n",
    );
    let mut names = Vec::new();
    let mut left = tasks;
    while left > 0 {
        let items = left.min(PER_JOB);
        let name = format!("j{}", names.len());
        text.push_str(&format!(
            "[[jobs]]\nname = \"{name}\"\napp = \"bench\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
             sharding_total_count = {items}\nplugin = \"libbench.so\"\ncpus = 0.001\nmem = 1\n"
        ));
        names.push(name);
        left -= items;
    }
    (
        Config::from_toml(&text, "bench").expect("a valid bench config"),
        names,
    )
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

/// Updates per second of each round on `store`.
async fn measure(store: Store, tasks: usize, rounds: usize) -> Vec<f64> {
    let (config, jobs) = config(tasks);
    let master = FakeMaster::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let scheduler = Scheduler::prepare_with(&config, store, listener)
        .await
        .expect("the scheduler opens its store")
        .start(&config, &master.url)
        .await
        .expect("the scheduler starts");
    let rest = format!("http://{}", scheduler.rest_addr());
    let http = support::http();
    assert!(
        master.wait_count(call::Type::Suppress, 1, WAIT).await,
        "the scheduler never settled after subscribing"
    );
    let mut rates = Vec::new();
    let mut serial = 0u64;
    for round in 0..rounds {
        for job in &jobs {
            let response = http
                .post(format!("{rest}/api/jobs/{job}/trigger"))
                .send()
                .await
                .expect("the trigger request");
            assert_eq!(response.status().as_u16(), 202, "trigger {job}");
        }
        let accepts = master.count_of(call::Type::Accept);
        master.send_offers(vec![master.offer(
            &format!("offer-{round}"),
            tasks as f64,
            tasks as f64 * 2.0 + 1024.0,
            &[],
        )]);
        assert!(
            master
                .wait_count(call::Type::Accept, accepts + 1, WAIT)
                .await,
            "no ACCEPT for round {round}"
        );
        let launched: Vec<String> = all_launched(&master.calls_of(call::Type::Accept)[accepts..])
            .into_iter()
            .map(|t| t.task_id.value)
            .collect();
        assert_eq!(
            launched.len(),
            tasks,
            "round {round}: one offer places every shard"
        );

        let acks = master.count_of(call::Type::Acknowledge);
        let started = Instant::now();
        for state in [TaskState::TaskRunning, TaskState::TaskFinished] {
            for task in &launched {
                serial += 1;
                master.send_update(update(&master.agent_id, task, state, serial));
            }
        }
        assert!(
            master
                .wait_count(call::Type::Acknowledge, acks + 2 * tasks, WAIT)
                .await,
            "round {round}: not every update was acknowledged"
        );
        let elapsed = started.elapsed();
        rates.push((2 * tasks) as f64 / elapsed.as_secs_f64());
        // The next round starts from an empty running table.
        let deadline = Instant::now() + WAIT;
        loop {
            let body = http
                .get(format!("{rest}/api/tasks/running"))
                .send()
                .await
                .expect("the running request")
                .bytes()
                .await
                .expect("the running answer");
            let running: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer");
            if running.as_array().is_some_and(Vec::is_empty) {
                break;
            }
            assert!(Instant::now() < deadline, "tasks still running: {running}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    scheduler.shutdown().await;
    rates
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let tasks = env_or("SHARDEX_BENCH_TASKS", 2000);
    let rounds = env_or("SHARDEX_BENCH_ROUNDS", 5).max(1);
    let Some(zookeeper) = ZooKeeper::standalone("store_throughput") else {
        eprintln!("store_throughput: no ZooKeeper, nothing measured");
        return;
    };

    let dir = tempfile::tempdir().expect("a temp dir");
    let redb = Store::Redb(RedbStore::open(&dir.path().join("bench.redb")).expect("a redb store"));
    let redb_rates = measure(redb, tasks, rounds).await;

    let target: ZkTarget = zookeeper
        .url("/bench")
        .parse()
        .expect("the ZooKeeper address");
    let mut zk = ZkStore::connect(target, ZkOptions::default())
        .await
        .expect("a ZooKeeper store");
    zk.take_epoch("store_throughput bench")
        .await
        .expect("the epoch");
    let zk_rates = measure(Store::ZooKeeper(Box::new(zk)), tasks, rounds).await;

    let (redb_rate, zk_rate) = (median(redb_rates.clone()), median(zk_rates.clone()));
    println!(
        "status updates applied, committed and acknowledged per second \
         ({tasks} tasks × RUNNING + FINISHED per round, {rounds} rounds, median)"
    );
    println!();
    println!("| store | updates/s (median) | min | max | vs redb |");
    println!("|---|---:|---:|---:|---:|");
    for (name, rate, rates) in [
        ("redb (local file)", redb_rate, &redb_rates),
        ("ZooKeeper (standalone, loopback)", zk_rate, &zk_rates),
    ] {
        let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rates.iter().copied().fold(0.0, f64::max);
        println!(
            "| {name} | {rate:.0} | {min:.0} | {max:.0} | {:.2}× |",
            rate / redb_rate
        );
    }
}
