//! Executor footprint and throughput, Shardex against the pymesos peer, measured in the same run
//! on the same embedded cluster.
//!
//! Each executor gets the same batch of trivial tasks in one ACCEPT: `shardex-executor` runs the
//! `faulty` plugin in mode `ok` (load, instantiate, execute, report), pymesos' minimal executor
//! only reports RUNNING and FINISHED. Measured per round: time from ACCEPT to the first
//! TASK_RUNNING (fetch, process start, subscription, first task), time to the last
//! TASK_FINISHED, and the executor process's peak resident memory (VmHWM).
//!
//! Run: `cargo build --release --workspace && cargo bench --bench executor_peer`
//! (`SHARDEX_BENCH_TASKS` and `SHARDEX_BENCH_ROUNDS` change the batch size and rounds).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use shardex::mesos::Encoding;
use shardex::mesos::proto::v1::{self, TaskState};
use shardex::payload::ErrorPolicy;
use support::*;

#[derive(Debug, Clone, Copy)]
struct Round {
    first_running: Duration,
    all_finished: Duration,
    peak_rss_kib: u64,
}

/// Peak RSS of the largest process in the tree under `pid` (the executor, not its `sh -c`).
fn peak_rss_kib(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .map(|pid| proc_kib(pid, "status", "VmHWM:"))
        .max()
        .unwrap_or(0)
}

/// Launches `tasks` on a fresh executor `executor_id` and waits for all of them to finish.
async fn round(
    cluster: &TestCluster,
    framework: &mut TestFramework,
    executor: &v1::ExecutorInfo,
    tasks: Vec<v1::TaskInfo>,
) -> Round {
    let ids: BTreeSet<String> = tasks.iter().map(|t| t.task_id.value.clone()).collect();
    let offer = framework.next_offer().await;
    let start = Instant::now();
    framework.launch(&offer, tasks).await.expect("ACCEPT");
    let mut first_running = None;
    let mut finished = BTreeSet::new();
    while finished.len() < ids.len() {
        let event = framework
            .wait_for("an update", Duration::from_secs(120), |e| {
                e.update.is_some()
            })
            .await;
        let status = event.update.expect("UPDATE").status;
        if status.uuid.is_some() {
            framework.acknowledge(&status).await.expect("ACKNOWLEDGE");
        }
        match state(&status) {
            TaskState::TaskStarting => {}
            TaskState::TaskRunning => {
                first_running.get_or_insert(start.elapsed());
            }
            TaskState::TaskFinished => {
                finished.insert(status.task_id.value);
            }
            other => panic!("unexpected {other:?} for {}", status.task_id.value),
        }
    }
    let all_finished = start.elapsed();
    let pid = cluster
        .cluster
        .executor_pid(&executor.executor_id.value)
        .await
        .expect("control")
        .expect("the executor still runs");
    let peak_rss_kib = peak_rss_kib(pid);
    framework
        .shutdown_executor(&executor.executor_id.value, cluster.cluster.agent_id())
        .await
        .expect("SHUTDOWN");
    Round {
        first_running: first_running.unwrap_or(all_finished),
        all_finished,
        peak_rss_kib,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct Summary {
    name: String,
    first_running_ms: f64,
    all_finished_ms: f64,
    tasks_per_second: f64,
    peak_rss_mib: f64,
}

fn summarize(name: &str, tasks: usize, rounds: &[Round]) -> Summary {
    let finished = median(
        rounds
            .iter()
            .map(|r| r.all_finished.as_secs_f64() * 1e3)
            .collect(),
    );
    Summary {
        name: name.to_owned(),
        first_running_ms: median(
            rounds
                .iter()
                .map(|r| r.first_running.as_secs_f64() * 1e3)
                .collect(),
        ),
        all_finished_ms: finished,
        tasks_per_second: tasks as f64 / (finished / 1e3),
        peak_rss_mib: median(
            rounds
                .iter()
                .map(|r| r.peak_rss_kib as f64 / 1024.0)
                .collect(),
        ),
    }
}

fn main() {
    // Only problems: the cluster logs every launch at info.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .try_init();
    let tasks = env_number("SHARDEX_BENCH_TASKS", 200);
    let rounds = env_number("SHARDEX_BENCH_ROUNDS", 3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let cluster = TestCluster::start_with(|config| {
            // Room for a whole batch in one offer.
            config.resources = "cpus:1000;mem:1000000;disk:10240;ports:[31000-32000]".into();
        })
        .await;
        let mut framework = TestFramework::subscribe(
            &cluster.cluster.master_url(),
            framework_info("bench"),
            Encoding::Protobuf,
        )
        .await
        .expect("subscribe");
        let agent = cluster.cluster.agent_id().to_owned();

        let mut results = Vec::new();
        let mut shardex_rounds = Vec::new();
        for r in 0..rounds {
            let executor = shardex_executor_info(&format!("shardex-{r}"), "", &["faulty"]);
            let batch = (0..tasks)
                .map(|i| {
                    let payload = faulty(&format!("s{r}-{i}"), "ok", ErrorPolicy::Fail);
                    let mut task = task_info(&payload.context.task_id, &agent, &executor, "");
                    task.data = Some(payload.encode().expect("payload"));
                    task
                })
                .collect();
            shardex_rounds.push(round(&cluster, &mut framework, &executor, batch).await);
        }
        results.push(summarize("shardex-executor", tasks, &shardex_rounds));

        let peer = match pymesos::python310() {
            None => Err("no Python 3.10 interpreter".to_owned()),
            Some(python) => pymesos::install(&python, cluster.dir.path()).await,
        };
        match peer {
            Err(reason) => println!("pymesos peer skipped: {reason}"),
            Ok(python) => {
                let script = cluster.dir.path().join("pymesos_executor.py");
                std::fs::write(&script, pymesos::MINIMAL_EXECUTOR).expect("write script");
                let mut peer_rounds = Vec::new();
                for r in 0..rounds {
                    let executor = executor_info(
                        &format!("pymesos-{r}"),
                        &format!("{} {}", python.display(), script.display()),
                        Vec::new(),
                    );
                    let batch = (0..tasks)
                        .map(|i| task_info(&format!("p{r}-{i}"), &agent, &executor, ""))
                        .collect();
                    peer_rounds.push(round(&cluster, &mut framework, &executor, batch).await);
                }
                results.push(summarize("pymesos 0.3 (peer)", tasks, &peer_rounds));
            }
        }
        print_table(tasks, rounds, &results, &package_binary("shardex-executor"));
    });
}

fn print_table(tasks: usize, rounds: usize, results: &[Summary], binary: &Path) {
    println!();
    println!("executor_peer: {tasks} trivial tasks per executor, median of {rounds} rounds");
    println!(
        "{:<22} {:>16} {:>16} {:>10} {:>14}",
        "executor", "first RUNNING ms", "all FINISHED ms", "tasks/s", "peak RSS MiB"
    );
    for s in results {
        println!(
            "{:<22} {:>16.1} {:>16.1} {:>10.0} {:>14.1}",
            s.name, s.first_running_ms, s.all_finished_ms, s.tasks_per_second, s.peak_rss_mib
        );
    }
    if let [ours, peer] = results {
        println!(
            "{:<22} {:>15.2}x {:>15.2}x {:>9.2}x {:>13.2}x",
            "peer / shardex",
            peer.first_running_ms / ours.first_running_ms,
            peer.all_finished_ms / ours.all_finished_ms,
            peer.tasks_per_second / ours.tasks_per_second,
            peer.peak_rss_mib / ours.peak_rss_mib
        );
    }
    if let Ok(meta) = std::fs::metadata(binary) {
        println!(
            "shardex-executor binary: {:.1} MiB ({})",
            meta.len() as f64 / (1024.0 * 1024.0),
            binary.display()
        );
    }
}
