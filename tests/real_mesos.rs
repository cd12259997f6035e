//! Conformance on a real Apache Mesos 1.12 master and agent (`SHARDEX_MESOS_HOME`, see
//! `tests/support/real_mesos.rs` and docs/running-on-mesos.md): the real `shardex-scheduler`
//! library and the real `shardex-executor`, fetched by the Mesos fetcher from a local path as an
//! operator ships it, run sharded transient and daemon jobs, and a `kill -9` of executors fails
//! over exactly the lost items of the job with failover on, each finishing once, with nothing
//! launched into an executor that is going away (no `TASK_DROPPED`); an agent restarted with
//! checkpointing keeps the daemon tasks and finishes the running shards once; a scheduler
//! killed with SIGKILL and restarted on its store launches nothing and no item ever has two
//! live tasks at the master.
//!
//! Needs `cargo build --workspace` first (the executor and the example plugins).

mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;
use shardex::scheduler::Scheduler;
use support::real_mesos::RealMesos;
use support::scheduler_rest::*;
use support::{EVENTUALLY, eventually, holds};

struct OnMesos {
    mesos: RealMesos,
    scheduler: Scheduler,
    rest: Rest,
    _store: tempfile::TempDir,
}

async fn start(test: &str, config: &str) -> Option<OnMesos> {
    let mesos = RealMesos::start(test, &[]).await?;
    let store = tempfile::tempdir().unwrap();
    let (scheduler, rest) = scheduler_on(config, &mesos.scheduler_url(), store.path()).await;
    Some(OnMesos {
        mesos,
        scheduler,
        rest,
        _store: store,
    })
}

/// States of every task of `job` the master knows, by task id.
async fn master_states(mesos: &RealMesos, job: &str) -> BTreeMap<String, String> {
    mesos
        .master_tasks()
        .await
        .iter()
        .filter_map(|t| {
            let id = t["id"].as_str()?;
            id.starts_with(&format!("{job}@-@"))
                .then(|| (id.to_owned(), t["state"].as_str().unwrap_or("").to_owned()))
        })
        .collect()
}

fn count(states: &BTreeMap<String, String>, state: &str, kind: &str) -> usize {
    states
        .iter()
        .filter(|(id, s)| *s == state && id.contains(&format!("@-@{kind}@-@")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_transient_and_daemon_jobs_run_on_real_mesos() {
    let config = format!(
        "{TUNING}\n{}\n[[jobs]]\nname = \"hello\"\napp = \"demo\"\nsharding_total_count = 3\n\
         sharding_item_parameters = \"0=zero,1=one,2=two\"\nplugin = \"libhello_shards.so\"\n\
         [[jobs]]\nname = \"beat\"\napp = \"demo\"\ncron = \"* * * * * ?\"\n\
         execution_type = \"daemon\"\nsharding_total_count = 2\nplugin = \"libheartbeat.so\"\n",
        app("demo", &["hello_shards", "heartbeat"])
    );
    let Some(s) = start(
        "sharded_transient_and_daemon_jobs_run_on_real_mesos",
        &config,
    )
    .await
    else {
        return;
    };
    s.rest
        .until("/api/tasks/running", "both daemon shards running", |v| {
            running_in_state(v, 2, "TASK_RUNNING")
        })
        .await;
    let triggered = Instant::now();
    assert_eq!(s.rest.post("/api/jobs/hello/trigger").await, 202);
    s.rest.until_metric("shardex_tasks_finished_total", 3).await;
    eprintln!(
        "real Mesos: trigger → 3 shards TASK_FINISHED in {:?}",
        triggered.elapsed()
    );
    let hello = master_states(&s.mesos, "hello").await;
    assert_eq!(count(&hello, "TASK_FINISHED", "READY"), 3, "{hello:?}");
    assert_eq!(hello.len(), 3, "{hello:?}");
    let mut lines = lines_of(&s.mesos.agent_work_dir(), "hello-shards.out");
    lines.sort();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (item, (line, param)) in lines.iter().zip(["zero", "one", "two"]).enumerate() {
        assert!(
            line.starts_with(&format!("hello {item}/3 {param} hello@-@{item}@-@READY@-@")),
            "{line}"
        );
    }
    let beat = master_states(&s.mesos, "beat").await;
    assert_eq!(count(&beat, "TASK_RUNNING", "READY"), 2, "{beat:?}");
    assert_eq!(s.rest.metric("shardex_tasks_failed_total").await, 0);
    s.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executor_fails_over_exactly_its_items_once_and_nothing_is_dropped() {
    let config = format!(
        "{TUNING}\n{}\n{}\n\
         [[jobs]]\nname = \"slow\"\napp = \"a\"\nsharding_total_count = 3\nfailover = true\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"sleep:3000\"\n\
         [[jobs]]\nname = \"once\"\napp = \"b\"\nsharding_total_count = 2\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"sleep:3000\"\n",
        app("a", &["faulty"]),
        app("b", &["faulty"])
    );
    let test = "a_killed_executor_fails_over_exactly_its_items_once_and_nothing_is_dropped";
    let Some(s) = start(test, &config).await else {
        return;
    };
    assert_eq!(s.rest.post("/api/jobs/slow/trigger").await, 202);
    assert_eq!(s.rest.post("/api/jobs/once/trigger").await, 202);
    s.rest
        .until("/api/tasks/running", "five shards running", |v| {
            running_in_state(v, 5, "TASK_RUNNING")
        })
        .await;
    let slaves: Value = reqwest::get(format!("{}/master/slaves", s.mesos.master_http()))
        .await
        .unwrap()
        .json_value()
        .await;
    let agent = slaves["slaves"][0]["id"].as_str().unwrap().to_owned();
    for app in ["a", "b"] {
        let executor = format!("{app}@-@{agent}");
        let pid = s
            .mesos
            .executor_pid(&executor)
            .unwrap_or_else(|| panic!("executor {executor} is not running"));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let killed = Instant::now();
    // The three shards of `slow` run again (failover) and finish; `once` has failover off.
    let slow = eventually("slow's three failovers to finish", EVENTUALLY, || async {
        let slow = master_states(&s.mesos, "slow").await;
        (count(&slow, "TASK_FINISHED", "FAILOVER") == 3).then_some(slow)
    })
    .await;
    eprintln!(
        "real Mesos: executor kill -9 → 3 failed-over shards TASK_FINISHED in {:?}",
        killed.elapsed()
    );
    assert_eq!(count(&slow, "TASK_FAILED", "READY"), 3, "{slow:?}");
    assert_eq!(
        slow.len(),
        6,
        "each item failed over exactly once: {slow:?}"
    );
    let once = master_states(&s.mesos, "once").await;
    assert_eq!(count(&once, "TASK_FAILED", "READY"), 2, "{once:?}");
    assert_eq!(once.len(), 2, "failover off: nothing re-run: {once:?}");
    eventually("nothing left running", EVENTUALLY, || async {
        holds(s.rest.get("/api/tasks/running").await == serde_json::json!([]))
    })
    .await;
    assert_eq!(
        s.rest
            .metric("shardex_tasks_launched_total{type=\"failover\"}")
            .await,
        3
    );
    s.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restart_keeps_daemons_and_running_shards_and_loses_no_update() {
    let config = format!(
        "{TUNING}\n{}\n\
         [[jobs]]\nname = \"beat\"\napp = \"a\"\ncron = \"* * * * * ?\"\n\
         execution_type = \"daemon\"\nsharding_total_count = 2\nplugin = \"libheartbeat.so\"\n\
         [[jobs]]\nname = \"slow\"\napp = \"a\"\nsharding_total_count = 2\nfailover = true\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"sleep:4000\"\n",
        app("a", &["heartbeat", "faulty"])
    );
    let test = "an_agent_restart_keeps_daemons_and_running_shards_and_loses_no_update";
    let Some(mut s) = start(test, &config).await else {
        return;
    };
    s.rest
        .until("/api/tasks/running", "both daemon shards running", |v| {
            running_in_state(v, 2, "TASK_RUNNING")
        })
        .await;
    assert_eq!(s.rest.post("/api/jobs/slow/trigger").await, 202);
    let running = s
        .rest
        .until(
            "/api/tasks/running",
            "daemon and slow shards running",
            |v| running_in_state(v, 4, "TASK_RUNNING"),
        )
        .await;
    let daemons: Vec<String> = running
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["job"] == "beat")
        .map(|t| t["task_id"].as_str().unwrap().to_owned())
        .collect();
    // SIGTERM and start again on the same work dir: checkpoint recovery; the executors
    // resubscribe within the agent's executor re-registration timeout.
    let restarted = Instant::now();
    s.mesos.restart_agent().await;
    eprintln!(
        "real Mesos: agent SIGTERM → restarted agent answering in {:?}",
        restarted.elapsed()
    );
    // The slow shards finish once, in the executor that survived the restart.
    let slow = eventually("the slow shards to finish", EVENTUALLY, || async {
        let slow = master_states(&s.mesos, "slow").await;
        (count(&slow, "TASK_FINISHED", "READY") == 2).then_some(slow)
    })
    .await;
    assert_eq!(slow.len(), 2, "nothing failed over: {slow:?}");
    let beat = master_states(&s.mesos, "beat").await;
    assert_eq!(
        beat.keys().cloned().collect::<Vec<_>>(),
        {
            let mut d = daemons.clone();
            d.sort();
            d
        },
        "the daemon shards kept their tasks"
    );
    assert!(
        beat.values().all(|state| state == "TASK_RUNNING"),
        "{beat:?}"
    );
    assert_eq!(s.rest.metric("shardex_tasks_failed_total").await, 0);
    assert_eq!(
        s.rest
            .metric("shardex_tasks_launched_total{type=\"failover\"}")
            .await,
        0
    );
    // Every update the framework got was applied once: two finishes, no duplicates counted
    // as new.
    assert_eq!(s.rest.metric("shardex_tasks_finished_total").await, 2);
    s.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_killed_and_restarted_reconciles_first_and_runs_no_item_twice() {
    let test = "a_scheduler_killed_and_restarted_reconciles_first_and_runs_no_item_twice";
    let Some(mesos) = RealMesos::start(test, &[]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{TUNING}\n{}\n[[jobs]]\nname = \"slow\"\napp = \"a\"\nsharding_total_count = 3\n\
         failover = true\nplugin = \"libfaulty.so\"\njob_parameter = \"sleep:4000\"\n",
        app("a", &["faulty"])
    );
    let args = scheduler_args(dir.path(), &config, &mesos.scheduler_url());
    let first = start_scheduler(&args);
    assert_eq!(first.rest.post("/api/jobs/slow/trigger").await, 202);
    first
        .rest
        .until("/api/tasks/running", "three shards running", |v| {
            running_in_state(v, 3, "TASK_RUNNING")
        })
        .await;
    // kill -9: no chance to react.
    drop(first);
    let second = start_scheduler(&args);
    // Until every item finished, the master never holds two live tasks of one item.
    let finished = eventually("the three shards to finish", EVENTUALLY, || async {
        let slow = master_states(&mesos, "slow").await;
        let mut live: BTreeMap<String, usize> = BTreeMap::new();
        for (id, state) in &slow {
            if !matches!(
                state.as_str(),
                "TASK_FINISHED" | "TASK_FAILED" | "TASK_KILLED" | "TASK_LOST" | "TASK_ERROR"
            ) {
                let item = id.split("@-@").nth(1).unwrap_or("").to_owned();
                *live.entry(item).or_default() += 1;
            }
        }
        assert!(
            live.values().all(|n| *n <= 1),
            "two live tasks of one item: {slow:?}"
        );
        (count(&slow, "TASK_FINISHED", "READY") == 3).then_some(slow)
    })
    .await;
    assert_eq!(finished.len(), 3, "nothing ran twice: {finished:?}");
    assert_eq!(
        second
            .rest
            .metric("shardex_tasks_launched_total{type=\"ready\"}")
            .await
            + second
                .rest
                .metric("shardex_tasks_launched_total{type=\"failover\"}")
                .await,
        0,
        "the restarted scheduler launched nothing"
    );
    assert_eq!(second.rest.metric("shardex_tasks_finished_total").await, 3);
    drop(second);
}

/// `reqwest` without its `json` feature: the body as JSON.
trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}
