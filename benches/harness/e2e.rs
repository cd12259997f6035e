//! End to end on the embedded cluster: the real scheduler in-process, the embedded master and
//! agent, real `shardex-executor` processes running the `faulty` plugin.
//!
//! - trigger → every shard `TASK_FINISHED`, for 1, 10 and 100 shards on a warm executor: from
//!   just before `POST /api/jobs/{job}/trigger` to the run's `ended_at`, split at its
//!   `launched_at` (the scheduler's clock, milliseconds);
//! - failover: `kill -9` of an executor running two shards of a `failover = true` job → each
//!   item's FAILOVER task `TASK_RUNNING`, split into kill → the agent's `TASK_FAILED` recorded,
//!   → the relaunch (queue, REVIVE, the offer), → `TASK_RUNNING` (a fresh executor: fetch,
//!   start, subscribe, worker);
//! - both with the master's allocation interval at Mesos' default (1 s) and at 50 ms, so the
//!   allocation interval shows apart from the rest. The refuse filters of declined offers are
//!   cleared by the REVIVE a suppressed scheduler sends when work arrives (the scheduler
//!   suppresses whenever it has nothing to launch), so they do not show here; `scale.rs`
//!   measures a scheduler with offers declined while busy.

use std::time::Duration;

use serde_json::Value;

use super::{Curve, Report, Samples, Scale, Table, median_p99, num};
use crate::support::scheduler_rest::{Rest, app};
use crate::support::{self, TestCluster};

const WAIT: Duration = Duration::from_secs(120);

/// Milliseconds since the epoch of a time in a REST answer (RFC 3339, or a number).
fn millis(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    }
}

fn now_ms() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e3
}

/// SIGKILL to the `shardex-executor` process of `app`'s executor (under the `sh -c` the agent
/// started); its workers die with it (parent-death signal).
async fn kill_executor(tc: &TestCluster, app: &str) {
    let executor_id = format!("{app}@-@{}", tc.cluster.agent_id());
    let shell = tc
        .cluster
        .executor_pid(&executor_id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("executor {executor_id} is not running"));
    let pid = support::process_tree(shell)
        .into_iter()
        .find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
                exe.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("shardex-executor"))
            })
        })
        .unwrap_or(shell);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL reaches the executor");
}

/// The config: one app and job per shard count, and a failover app and job.
fn config(sizes: &[usize]) -> String {
    let mut text = format!(
        "[offers]\nrefuse_busy = \"5secs\"\n[executor]\nshutdown_grace_period = \"1secs\"\n\
         {}\n{}\n",
        app("e2e", &["faulty"]),
        app("fo", &["faulty"])
    );
    for n in sizes {
        text.push_str(&format!(
            "[[jobs]]\nname = \"n{n}\"\napp = \"e2e\"\nsharding_total_count = {n}\n\
             plugin = \"libfaulty.so\"\njob_parameter = \"ok\"\ncpus = 0.01\nmem = 1\n"
        ));
    }
    text.push_str(
        "[[jobs]]\nname = \"fo\"\napp = \"fo\"\nsharding_total_count = 2\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"sleep:600000\"\nfailover = true\n\
         cpus = 0.01\nmem = 1\n",
    );
    text
}

/// The newest run of `job`, once its id is past `after` and `ready` holds for it.
async fn newest_run(rest: &Rest, job: &str, after: i64, ready: impl Fn(&Value) -> bool) -> Value {
    support::eventually(&format!("a new run of {job}"), WAIT, || async {
        let answer = rest.get(&format!("/api/jobs/{job}/runs?limit=1")).await;
        let run = answer["runs"].get(0)?.clone();
        (run["id"].as_i64().unwrap_or(i64::MIN) > after && ready(&run)).then_some(run)
    })
    .await
}

fn run_id(run: &Value) -> i64 {
    run["id"].as_i64().unwrap_or(i64::MIN)
}

/// Trigger → finished for one job.
struct Finished {
    to_launch_ms: Samples,
    launch_to_end_ms: Samples,
    total_ms: Samples,
}

async fn trigger_to_finished(rest: &Rest, job: &str, rounds: usize) -> Finished {
    let mut result = Finished {
        to_launch_ms: Samples::default(),
        launch_to_end_ms: Samples::default(),
        total_ms: Samples::default(),
    };
    let mut last = newest_id(rest, job).await;
    for _ in 0..rounds {
        let triggered = now_ms();
        assert_eq!(
            rest.post(&format!("/api/jobs/{job}/trigger")).await,
            202,
            "trigger {job}"
        );
        let run = newest_run(rest, job, last, |run| {
            run["ended_at"].is_number() || run["ended_at"].is_string()
        })
        .await;
        last = run_id(&run);
        assert_eq!(run["outcome"], "succeeded", "{job}: {run}");
        let (Some(launched), Some(ended)) = (millis(&run["launched_at"]), millis(&run["ended_at"]))
        else {
            panic!("{job}: a settled run without its times: {run}");
        };
        result.to_launch_ms.push(launched as f64 - triggered);
        result.launch_to_end_ms.push((ended - launched) as f64);
        result.total_ms.push(ended as f64 - triggered);
    }
    result
}

async fn newest_id(rest: &Rest, job: &str) -> i64 {
    rest.get(&format!("/api/jobs/{job}/runs?limit=1")).await["runs"]
        .get(0)
        .map_or(i64::MIN, run_id)
}

/// Kill → failed over and running, in parts.
#[derive(Default)]
struct Failover {
    to_failed_ms: Samples,
    to_relaunch_ms: Samples,
    to_running_ms: Samples,
    total_ms: Samples,
}

/// When the task's first state `state` was recorded.
fn state_at(task: &Value, state: &str) -> Option<i64> {
    task["states"]
        .as_array()?
        .iter()
        .find(|s| s["state"] == state)
        .and_then(|s| millis(&s["at"]))
}

async fn failover(tc: &TestCluster, rest: &Rest, rounds: usize) -> Failover {
    let mut result = Failover::default();
    let mut last = newest_id(rest, "fo").await;
    for _ in 0..rounds {
        assert_eq!(rest.post("/api/jobs/fo/trigger").await, 202);
        let run = newest_run(rest, "fo", last, |run| {
            run["items"].as_array().is_some_and(|items| {
                items.len() == 2
                    && items
                        .iter()
                        .all(|i| i["tasks"][0]["state"] == "TASK_RUNNING")
            })
        })
        .await;
        last = run_id(&run);
        let killed = now_ms();
        kill_executor(tc, "fo").await;
        let run = newest_run(rest, "fo", last - 1, |run| {
            run_id(run) == last
                && run["items"].as_array().is_some_and(|items| {
                    items.iter().all(|i| {
                        i["tasks"].as_array().is_some_and(|t| {
                            t.len() >= 2 && state_at(&t[1], "TASK_RUNNING").is_some()
                        })
                    })
                })
        })
        .await;
        for item in run["items"].as_array().into_iter().flatten() {
            let (original, relaunch) = (&item["tasks"][0], &item["tasks"][1]);
            let failed =
                state_at(original, "TASK_FAILED").expect("the original task failed") as f64;
            let launched = millis(&relaunch["launched_at"]).expect("a launch time") as f64;
            let running = state_at(relaunch, "TASK_RUNNING").expect("running again") as f64;
            result.to_failed_ms.push(failed - killed);
            result.to_relaunch_ms.push(launched - failed);
            result.to_running_ms.push(running - launched);
            result.total_ms.push(running - killed);
        }
        // Stop the relaunched shards before the next round.
        assert_eq!(rest.post("/api/jobs/fo/disable").await, 200);
        support::eventually("the failover shards to stop", WAIT, || async {
            support::holds(rest.metric("shardex_running_tasks").await == 0)
        })
        .await;
        assert_eq!(rest.post("/api/jobs/fo/enable").await, 200);
    }
    result
}

pub async fn run(scale: Scale) -> Report {
    let mut report = Report::new("End to end on the embedded cluster");
    let sizes: Vec<usize> = scale.pick(vec![1, 3], vec![1, 10, 100]);
    let rounds = scale.pick(1, 10);
    let intervals = scale.pick(
        vec![Duration::from_millis(50)],
        vec![Duration::from_secs(1), Duration::from_millis(50)],
    );
    let mut finished_table = Table::new(
        "Trigger → every shard TASK_FINISHED, warm executor (median / p99)",
        &[
            "allocation interval, shards",
            "trigger → launched, ms",
            "launched → all finished, ms",
            "trigger → all finished, ms",
        ],
    );
    let mut failover_table = Table::new(
        "Failover: executor `kill -9` → the item's relaunch TASK_RUNNING (median / p99)",
        &[
            "allocation interval",
            "kill → TASK_FAILED recorded, ms",
            "→ relaunched, ms",
            "→ TASK_RUNNING (fresh executor), ms",
            "kill → TASK_RUNNING, ms",
            "target",
        ],
    );
    let mut curve = Curve::new(
        "e2e-trigger-to-finished",
        "Trigger → every shard finished",
        "shards",
        "ms",
    );
    for interval in intervals {
        let tc = TestCluster::start_with(|c| {
            c.allocation_interval = interval;
            c.resources = "cpus:64;mem:65536;disk:10240;ports:[31000-32000]".into();
        })
        .await;
        let store = tempfile::tempdir().expect("a temp dir");
        let (scheduler, rest) = support::scheduler_rest::scheduler_on(
            &config(&sizes),
            &tc.cluster.master_url(),
            store.path(),
        )
        .await;
        let label = format!("{} ms", num(interval.as_secs_f64() * 1e3, 0));
        // Warm the e2e executor up: its first run starts it.
        trigger_to_finished(&rest, &format!("n{}", sizes[0]), 1).await;
        let mut points = Vec::new();
        for &n in &sizes {
            let f = trigger_to_finished(&rest, &format!("n{n}"), rounds).await;
            points.push((n as f64, f.total_ms.median()));
            finished_table.row(vec![
                format!("{label}, {n}"),
                median_p99(&f.to_launch_ms),
                median_p99(&f.launch_to_end_ms),
                median_p99(&f.total_ms),
            ]);
        }
        curve.series(&format!("allocation interval {label}"), points);
        let f = failover(&tc, &rest, rounds).await;
        failover_table.row(vec![
            label,
            median_p99(&f.to_failed_ms),
            median_p99(&f.to_relaunch_ms),
            median_p99(&f.to_running_ms),
            median_p99(&f.total_ms),
            "≤ 100 ms".into(),
        ]);
        scheduler.shutdown().await;
        tc.cluster.shutdown().await;
    }
    finished_table.note(format!(
        "{rounds} runs per row, one at a time, after a first run that started the executor. \
         Process isolation (the default), the `faulty` plugin in mode `ok`. Trigger: just \
         before the POST (the bench's clock); launched and ended: the run's `launched_at` and \
         `ended_at` (the scheduler's clock, ms)."
    ));
    failover_table.note(format!(
        "{rounds} kills, two shards each (each shard one sample). Kill: just before `kill -9` of \
         the `shardex-executor` process; TASK_FAILED, relaunch and TASK_RUNNING: the run \
         history's state times and `launched_at` (ms). The relaunch goes to a fresh executor."
    ));
    report.table(finished_table);
    report.table(failover_table);
    report.curve(curve);
    report
}
