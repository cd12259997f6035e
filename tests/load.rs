//! Load: one executor running many tasks at once, and a scheduler holding many jobs and a
//! long queue, on the embedded cluster with the real scheduler and executor processes. Each
//! prints a table (`SHARDEX-LOAD:` lines) of memory and latency percentiles, and asserts that
//! nothing was lost: every item of every run finished exactly once.
//!
//! CI scale by default; `SHARDEX_LOAD_SCALE=large` runs the figures of docs/reliability.md
//! (1,000 concurrent tasks; 10,000 jobs and 100,000 queued items), best with the release
//! build: `cargo build --release --workspace && SHARDEX_LOAD_SCALE=large cargo test --release
//! --test load -- --nocapture --test-threads 1`. Needs `cargo build --workspace` first.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use shardex::mesos::proto::v1::TaskState;
use support::scheduler_rest::*;
use support::{EVENTUALLY, TestCluster, eventually, proc_kib, process_tree};

fn large() -> bool {
    std::env::var("SHARDEX_LOAD_SCALE").is_ok_and(|s| s == "large")
}

/// `p` (0–100) percentile of `sorted`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn row(what: &str, mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    format!(
        "| {what} | {} | {} | {} | {} | {} |",
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 95.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    )
}

/// What the long-queue test reads, timed, with everything queued.
const READS: [&str; 3] = ["/api/jobs", "/api/tasks/ready", "/metrics"];

const LATENCY_HEADER: &str = "| what | count | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) |";

/// Each (job, item) the agent saw finish, with how many tasks finished it.
async fn finished_items(tc: &TestCluster) -> BTreeMap<(String, u32), usize> {
    let mut items = BTreeMap::new();
    for call in tc.cluster.executor_calls().await.unwrap() {
        let Some(update) = call.call.as_ref().and_then(|c| c.update.as_ref()) else {
            continue;
        };
        if call.status != 202 || update.status.state != TaskState::TaskFinished as i32 {
            continue;
        }
        let mut parts = update.status.task_id.value.split("@-@");
        let job = parts.next().unwrap().to_owned();
        let item = parts.next().unwrap().parse().unwrap();
        *items.entry((job, item)).or_default() += 1;
    }
    items
}

fn cluster_for(tasks: usize) -> impl FnOnce(&mut shardex::local::LocalClusterConfig) {
    move |c| {
        c.resources = "cpus:64;mem:65536;disk:10240;ports:[31000-32000]".into();
        c.allocation_interval = Duration::from_millis(100);
        // Every executor call of the run stays observable.
        c.call_log_limit = tasks * 8 + 10_000;
    }
}

/// What one wave of the wide job showed.
#[derive(Default)]
struct Wave {
    accepted: Option<Duration>,
    starting: Vec<Duration>,
    running: Vec<Duration>,
    finished: Vec<Duration>,
    peak_live: usize,
    peak_kib: u64,
}

fn since_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Triggers the wide job and follows its `tasks` items until all finished (each exactly once,
/// all live at once).
async fn wave(tc: &TestCluster, rest: &Rest, tasks: usize, gate: &std::path::Path) -> Wave {
    for entry in std::fs::read_dir(gate).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let mut go = support::gate(&gate.join("go"));
    let mut opened = false;
    let launched_before = launches(&tc.cluster).await.len();
    let mut seen = tc.cluster.executor_calls().await.unwrap().len();
    let (triggered, triggered_wall) = (Instant::now(), since_epoch());
    assert_eq!(rest.post("/api/jobs/wide/trigger").await, 202);

    let mut wave = Wave::default();
    let mut starting: BTreeMap<String, Duration> = BTreeMap::new();
    let mut running: BTreeMap<String, Duration> = BTreeMap::new();
    let mut finished: BTreeMap<String, Duration> = BTreeMap::new();
    let executor_id = format!("a@-@{}", tc.cluster.agent_id());
    let deadline = Instant::now() + EVENTUALLY * 3;
    while finished.len() < tasks {
        assert!(
            Instant::now() < deadline,
            "only {} of {tasks} finished",
            finished.len()
        );
        if let Ok(Some(leader)) = tc.cluster.executor_pid(&executor_id).await {
            // The executor itself, not the shells of its tasks.
            for pid in process_tree(leader) {
                if std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "shardex-executo")
                {
                    wave.peak_kib = wave.peak_kib.max(proc_kib(pid, "status", "VmRSS:"));
                }
            }
        }
        wave.peak_live = wave
            .peak_live
            .max(tc.cluster.live_tasks().await.unwrap().len());
        // Every task is live and at the gate: one line for each lets them all through.
        if !opened && std::fs::read_dir(gate).unwrap().count() == tasks + 1 {
            go.write_all("go\n".repeat(tasks).as_bytes()).unwrap();
            opened = true;
        }
        if wave.accepted.is_none() && launches(&tc.cluster).await.len() > launched_before {
            wave.accepted = Some(triggered.elapsed());
        }
        let calls = tc.cluster.executor_calls().await.unwrap();
        for call in &calls[seen..] {
            let Some(update) = call.call.as_ref().and_then(|c| c.update.as_ref()) else {
                continue;
            };
            // When the executor sent it, by its own clock (the same machine's).
            let sent = Duration::from_secs_f64(
                (update.status.timestamp.unwrap_or(0.0) - triggered_wall).max(0.0),
            );
            let id = update.status.task_id.value.clone();
            if update.status.state == TaskState::TaskStarting as i32 {
                starting.entry(id).or_insert(sent);
            } else if update.status.state == TaskState::TaskRunning as i32 {
                running.entry(id).or_insert(sent);
            } else if update.status.state == TaskState::TaskFinished as i32 {
                finished.entry(id).or_insert(sent);
            }
        }
        seen = calls.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let launched = &launches(&tc.cluster).await[launched_before..];
    assert_eq!(launched.len(), tasks, "one task per item");
    let mut items: Vec<u32> = finished
        .keys()
        .map(|id| id.split("@-@").nth(1).unwrap().parse().unwrap())
        .collect();
    items.sort();
    assert_eq!(
        items,
        (0..tasks as u32).collect::<Vec<_>>(),
        "each item once"
    );
    assert_eq!(wave.peak_live, tasks, "all tasks were live at once");
    wave.starting = starting.into_values().collect();
    wave.running = running.into_values().collect();
    wave.finished = finished.into_values().collect();
    wave
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_executor_runs_many_tasks_at_once_and_loses_none() {
    let tasks = if large() { 1_000 } else { 200 };
    let tc = TestCluster::start_with(cluster_for(tasks * 2)).await;
    let dir = tempfile::tempdir().unwrap();
    // Every shard marks itself (a file per shard) and waits at a FIFO the test writes to once
    // all are there, so all of them are alive at once; waiting on a FIFO costs no CPU.
    let gate = dir.path().join("gate");
    std::fs::create_dir(&gate).unwrap();
    let config = format!(
        "{TUNING}\n{}\n[[jobs]]\nname = \"wide\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         kind = \"script\"\nsharding_total_count = {tasks}\ncpus = 0.01\nmem = 1\n\
         command_line = \"/bin/sh -c 'touch {g}/$SHARDEX_SHARDING_ITEM; read x < {g}/go; \
         true'\"\n",
        app("a", &[]),
        g = gate.display()
    );
    let process = start_scheduler(&scheduler_args(
        dir.path(),
        &config,
        &tc.cluster.master_url(),
    ));
    // Cold: the wave starts the executor. Warm: the executor is already running.
    let cold = wave(&tc, &process.rest, tasks, &gate).await;
    let warm = wave(&tc, &process.rest, tasks, &gate).await;

    eprintln!(
        "SHARDEX-LOAD: one executor, {tasks} concurrent script tasks, twice: {tasks} live at \
         once, executor peak RSS {:.1} MiB, {} finished exactly once, 0 lost",
        cold.peak_kib.max(warm.peak_kib) as f64 / 1024.0,
        tasks * 2
    );
    eprintln!("SHARDEX-LOAD: {LATENCY_HEADER}");
    eprintln!("SHARDEX-LOAD: |---|---:|---:|---:|---:|---:|");
    for (name, wave) in [("cold", cold), ("warm", warm)] {
        let rows = [
            (
                "ACCEPT of all tasks (sampled every 100 ms)",
                wave.accepted.into_iter().collect(),
            ),
            ("TASK_STARTING (the executor's timestamp)", wave.starting),
            ("TASK_RUNNING (the executor's timestamp)", wave.running),
            ("TASK_FINISHED (the executor's timestamp)", wave.finished),
        ];
        for (what, latencies) in rows {
            eprintln!(
                "SHARDEX-LOAD: {}",
                row(&format!("{name}: trigger to {what}"), latencies)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_with_many_jobs_and_a_long_queue_runs_every_item_once() {
    let (jobs, shards) = if large() { (10_000, 10) } else { (500, 4) };
    let items = jobs * shards;
    let tc = TestCluster::start_with(cluster_for(items)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{TUNING}\n{}\n", app("a", &[]));
    // The queue fills while the scheduler has no master (a port nobody listens on): no offer
    // drains it meanwhile. Then it restarts on the same store with the cluster's master.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let no_master = nobody.local_addr().unwrap().to_string();
    drop(nobody);
    let mut process = start_scheduler(&scheduler_args(dir.path(), &config, &no_master));
    let rest = &process.rest;
    let register = |j: usize| {
        let body = serde_json::json!({
            "name": format!("load{j}"), "app": "a", "kind": "script",
            "sharding_total_count": shards, "cpus": 0.01, "mem": 1,
            "command_line": "true",
        });
        let rest = Rest::new(rest.base.clone());
        async move {
            let started = Instant::now();
            let (status, answer) = rest
                .call(reqwest::Method::POST, "/api/jobs", Some(&body))
                .await;
            assert_eq!(status, 201, "{answer}");
            started.elapsed()
        }
    };
    let mut registrations = Vec::with_capacity(jobs);
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(16) {
        registrations.extend(futures::future::join_all(chunk.iter().map(|j| register(*j))).await);
    }
    let mut triggers = Vec::with_capacity(jobs);
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(16) {
        let timed = chunk.iter().map(|j| {
            let rest = Rest::new(rest.base.clone());
            async move {
                let started = Instant::now();
                assert_eq!(rest.post(&format!("/api/jobs/load{j}/trigger")).await, 202);
                started.elapsed()
            }
        });
        triggers.extend(futures::future::join_all(timed).await);
    }
    let mut reads = Vec::new();
    for path in READS {
        for _ in 0..20 {
            let started = Instant::now();
            let response = rest
                .http
                .get(format!("{}{path}", rest.base))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.bytes().await.unwrap();
            reads.push((path, started.elapsed()));
        }
    }
    let queued = rest.metric("shardex_ready_runs").await;
    assert_eq!(queued, jobs as u64, "every run queued");
    let queued_kib = proc_kib(process.scheduler.child.id(), "status", "VmRSS:");
    let queued_store = std::fs::metadata(dir.path().join("store.redb"))
        .unwrap()
        .len();

    // Release the queue: the scheduler restarts with a master.
    process.interrupt();
    drop(process);
    let started = Instant::now();
    let process = start_scheduler(&scheduler_args(
        dir.path(),
        &config,
        &tc.cluster.master_url(),
    ));
    let rest = &process.rest;
    let scheduler_pid = process.scheduler.child.id();
    eventually("every item to finish", EVENTUALLY * 20, || async {
        (rest.metric("shardex_tasks_finished_total").await == items as u64).then_some(())
    })
    .await;
    let drained = started.elapsed();
    let finished = finished_items(&tc).await;
    assert_eq!(finished.len(), items, "every (job, item) finished");
    assert!(finished.values().all(|n| *n == 1), "an item finished twice");
    assert_eq!(rest.metric("shardex_tasks_failed_total").await, 0);
    assert_eq!(rest.get("/api/tasks/failover").await, serde_json::json!([]));
    assert_eq!(rest.get("/api/tasks/parked").await, serde_json::json!([]));
    let peak_kib = proc_kib(scheduler_pid, "status", "VmHWM:");

    eprintln!(
        "SHARDEX-LOAD: scheduler with {jobs} jobs and {items} queued items: RSS {:.1} MiB and \
         store {:.1} MiB with everything queued, peak RSS {:.1} MiB; drained in {:.1} s \
         ({:.0} items/s), {items} finished exactly once, 0 lost",
        queued_kib as f64 / 1024.0,
        queued_store as f64 / 1_048_576.0,
        peak_kib as f64 / 1024.0,
        drained.as_secs_f64(),
        items as f64 / drained.as_secs_f64()
    );
    eprintln!("SHARDEX-LOAD: {LATENCY_HEADER}");
    eprintln!("SHARDEX-LOAD: |---|---:|---:|---:|---:|---:|");
    eprintln!(
        "SHARDEX-LOAD: {}",
        row("POST /api/jobs (16 at once)", registrations)
    );
    eprintln!(
        "SHARDEX-LOAD: {}",
        row("POST /api/jobs/{job}/trigger (16 at once)", triggers)
    );
    for path in READS {
        let of_path = reads
            .iter()
            .filter(|(p, _)| *p == path)
            .map(|(_, d)| *d)
            .collect();
        eprintln!(
            "SHARDEX-LOAD: {}",
            row(&format!("GET {path} (full queue)"), of_path)
        );
    }
}
