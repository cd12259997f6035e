//! Process isolation against thread isolation, measured in the same run on the same embedded
//! cluster through the real `shardex-executor` and the `faulty` plugin:
//!
//! - latency of one task on a warm executor, LAUNCH (the ACCEPT) → `TASK_RUNNING` and →
//!   `TASK_FINISHED` (median and p90 of `SHARDEX_BENCH_SAMPLES` tasks, one at a time);
//! - throughput: a batch of `SHARDEX_BENCH_TASKS` trivial tasks in one ACCEPT through one warm
//!   executor, tasks per second from the ACCEPT to the last `TASK_FINISHED`;
//! - both for tasks of one job (in process mode a worker that finished a task serves the next)
//!   and for tasks each of a job never seen before (each needs a worker process of its own);
//! - memory with 1, 100 and 1,000 live tasks (`SHARDEX_BENCH_LIVE`, comma-separated): the
//!   proportional set size (PSS, shared pages divided among the processes that map them) of
//!   the executor and every process under it, once all tasks are `TASK_RUNNING`.
//!
//! Run: `cargo build --release --workspace && cargo bench --bench isolation`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use shardex::mesos::Encoding;
use shardex::mesos::proto::v1::{self, TaskState};
use shardex::payload::{ErrorPolicy, Isolation};
use support::*;

const WAIT: Duration = Duration::from_secs(300);

/// PSS of `pid` and every process under it, KiB.
fn tree_pss_kib(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .map(|pid| proc_kib(pid, "smaps_rollup", "Pss:"))
        .sum()
}

struct Bench {
    cluster: TestCluster,
    framework: TestFramework,
    agent: String,
}

/// Whether the tasks of a batch belong to one job (process mode: a worker that finished one
/// serves the next), or each to a job never seen before (each needs a worker process of its
/// own: the spare, or a new one).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Jobs {
    One,
    EachNew,
}

/// When each task of a batch reached RUNNING and its final state, from the ACCEPT.
struct Times {
    running: Vec<Duration>,
    done: Vec<Duration>,
}

impl Bench {
    fn tasks(
        &self,
        executor: &v1::ExecutorInfo,
        prefix: &str,
        mode: &str,
        n: usize,
        jobs: Jobs,
    ) -> Vec<v1::TaskInfo> {
        (0..n)
            .map(|i| {
                let mut payload = faulty(&format!("{prefix}-{i}"), mode, ErrorPolicy::Fail);
                if jobs == Jobs::EachNew {
                    payload.context.job_name = format!("{prefix}-{i}");
                }
                let mut task = task_info(&payload.context.task_id, &self.agent, executor, "");
                task.data = Some(payload.encode().expect("payload"));
                task
            })
            .collect()
    }

    /// Launches `tasks` in one ACCEPT and waits until each is RUNNING (`until_running`) or
    /// FINISHED.
    async fn run(&mut self, tasks: Vec<v1::TaskInfo>, until_running: bool) -> Times {
        let ids: BTreeSet<String> = tasks.iter().map(|t| t.task_id.value.clone()).collect();
        let offer = self.framework.next_offer().await;
        let start = Instant::now();
        self.framework.launch(&offer, tasks).await.expect("ACCEPT");
        let mut times = Times {
            running: Vec::new(),
            done: Vec::new(),
        };
        loop {
            let enough = if until_running {
                times.running.len() == ids.len()
            } else {
                times.done.len() == ids.len()
            };
            if enough {
                return times;
            }
            let event = self
                .framework
                .wait_for("an update", WAIT, |e| e.update.is_some())
                .await;
            let status = event.update.expect("UPDATE").status;
            if status.uuid.is_some() {
                self.framework
                    .acknowledge(&status)
                    .await
                    .expect("ACKNOWLEDGE");
            }
            if !ids.contains(&status.task_id.value) {
                continue;
            }
            match state(&status) {
                TaskState::TaskStarting => {}
                TaskState::TaskRunning => times.running.push(start.elapsed()),
                TaskState::TaskFinished => times.done.push(start.elapsed()),
                other => panic!(
                    "unexpected {other:?} for {}: {:?}",
                    status.task_id.value, status.message
                ),
            }
        }
    }

    async fn shutdown(&mut self, executor: &v1::ExecutorInfo) {
        self.framework
            .shutdown_executor(&executor.executor_id.value, &self.agent)
            .await
            .expect("SHUTDOWN");
        // Its FAILURE event: the executor and its workers are gone before the next part.
        let id = executor.executor_id.value.clone();
        self.framework
            .wait_for("the executor's end", WAIT, move |e| {
                e.failure
                    .as_ref()
                    .is_some_and(|f| f.executor_id.as_ref().is_some_and(|x| x.value == id))
            })
            .await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Latency {
    running_ms: (f64, f64),
    finished_ms: (f64, f64),
}

struct ModeResult {
    /// One job's next task, then a new job's first task.
    latency: Vec<Latency>,
    /// The same two cases.
    tasks_per_second: Vec<f64>,
    pss_mib: Vec<(usize, f64)>,
}

async fn measure(
    bench: &mut Bench,
    mode: Isolation,
    samples: usize,
    batch: usize,
    live: &[usize],
) -> ModeResult {
    set_isolation(mode);
    let name = mode.as_str();
    let executor = shardex_executor_info(&format!("{name}-warm"), "", &["faulty"]);
    // Warm: the executor is running and subscribed, the plugin is in the page cache.
    let warm = bench.tasks(&executor, &format!("{name}-w"), "ok", 1, Jobs::One);
    bench.run(warm, false).await;
    let mut latency = Vec::new();
    for jobs in [Jobs::One, Jobs::EachNew] {
        let (mut running, mut finished) = (Vec::new(), Vec::new());
        for i in 0..samples {
            let prefix = format!("{name}-l{}-{i}", jobs as u8);
            let one = bench.tasks(&executor, &prefix, "ok", 1, jobs);
            let times = bench.run(one, false).await;
            running.push(ms(times.running[0]));
            finished.push(ms(times.done[0]));
        }
        latency.push(Latency {
            running_ms: (percentile(&running, 0.5), percentile(&running, 0.9)),
            finished_ms: (percentile(&finished, 0.5), percentile(&finished, 0.9)),
        });
    }
    let mut tasks_per_second = Vec::new();
    for jobs in [Jobs::One, Jobs::EachNew] {
        let prefix = format!("{name}-t{}", jobs as u8);
        let many = bench.tasks(&executor, &prefix, "ok", batch, jobs);
        let times = bench.run(many, false).await;
        let last = times.done.iter().max().copied().unwrap_or_default();
        tasks_per_second.push(batch as f64 / last.as_secs_f64());
    }
    bench.shutdown(&executor).await;

    let mut pss_mib = Vec::new();
    for &n in live {
        let executor = shardex_executor_info(&format!("{name}-live{n}"), "", &["faulty"]);
        let tasks = bench.tasks(
            &executor,
            &format!("{name}-{n}"),
            "sleep:3600000",
            n,
            Jobs::One,
        );
        bench.run(tasks, true).await;
        let pid = bench
            .cluster
            .cluster
            .executor_pid(&executor.executor_id.value)
            .await
            .expect("control")
            .expect("the executor runs");
        pss_mib.push((n, tree_pss_kib(pid) as f64 / 1024.0));
        bench.shutdown(&executor).await;
    }
    ModeResult {
        latency,
        tasks_per_second,
        pss_mib,
    }
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .try_init();
    let samples = env_number("SHARDEX_BENCH_SAMPLES", 30);
    let batch = env_number("SHARDEX_BENCH_TASKS", 200);
    let live: Vec<usize> = std::env::var("SHARDEX_BENCH_LIVE")
        .unwrap_or_else(|_| "1,100,1000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let cluster = TestCluster::start_with(|config| {
            config.resources = "cpus:10000;mem:10000000;disk:10240;ports:[31000-32000]".into();
        })
        .await;
        let framework = TestFramework::subscribe(
            &cluster.cluster.master_url(),
            framework_info("isolation-bench"),
            Encoding::Protobuf,
        )
        .await
        .expect("subscribe");
        let agent = cluster.cluster.agent_id().to_owned();
        let mut bench = Bench {
            cluster,
            framework,
            agent,
        };
        let thread = measure(&mut bench, Isolation::Thread, samples, batch, &live).await;
        let process = measure(&mut bench, Isolation::Process, samples, batch, &live).await;
        println!();
        println!(
            "isolation: one warm shardex-executor, faulty plugin; latency over {samples} single \
             tasks, throughput over {batch} tasks in one ACCEPT"
        );
        println!(
            "{:<36} {:>10} {:>10} {:>10}",
            "", "thread", "process", "process/thread"
        );
        let row = |what: &str, t: f64, p: f64| {
            println!("{what:<36} {t:>10.2} {p:>10.2} {:>9.2}x", p / t);
        };
        for (i, case) in ["one job", "new job"].iter().enumerate() {
            let (t, p) = (&thread.latency[i], &process.latency[i]);
            row(
                &format!("{case}: LAUNCH→RUNNING p50 ms"),
                t.running_ms.0,
                p.running_ms.0,
            );
            row(
                &format!("{case}: LAUNCH→RUNNING p90 ms"),
                t.running_ms.1,
                p.running_ms.1,
            );
            row(
                &format!("{case}: LAUNCH→FINISHED p50 ms"),
                t.finished_ms.0,
                p.finished_ms.0,
            );
            row(
                &format!("{case}: LAUNCH→FINISHED p90 ms"),
                t.finished_ms.1,
                p.finished_ms.1,
            );
        }
        for (i, case) in ["one job", "each a new job"].iter().enumerate() {
            let (t, p) = (thread.tasks_per_second[i], process.tasks_per_second[i]);
            row(&format!("{case}: tasks/s"), t, p);
        }
        for ((n, t), (_, p)) in thread.pss_mib.iter().zip(&process.pss_mib) {
            row(&format!("PSS MiB, {n} live tasks"), *t, *p);
        }
        for (i, case) in ["a job's next task", "a new job's first task"]
            .iter()
            .enumerate()
        {
            println!(
                "{case}: process adds {:.2} ms to LAUNCH→FINISHED (p50) and keeps {:.0} % of \
                 thread mode's tasks/s",
                process.latency[i].finished_ms.0 - thread.latency[i].finished_ms.0,
                100.0 * process.tasks_per_second[i] / thread.tasks_per_second[i]
            );
        }
    });
}
