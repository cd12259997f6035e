//! End to end on the embedded cluster with the real `shardex-executor` and the example plugins:
//! a transient job runs on cron and finishes, a daemon job keeps running, `kill -9` of an
//! executor fails over exactly the items it ran (and they finish once), failover off re-runs
//! nothing, `kill -9` of the scheduler between recording a failover and relaunching it loses
//! nothing and launches nothing twice, `--local` runs a job by itself, and a network partition
//! of the agent makes its shards suspect without running them twice (and, past the suspect
//! timeout, kills and fails them over so the item completes once). The REST API and
//! `/metrics` are checked against what the cluster saw. A job process that segfaults (process
//! isolation) fails over exactly its own item, up to `failover.max_attempts`, and nothing else.
//!
//! Needs `cargo build --workspace` first (the example plugins are separate crates).

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use shardex::mesos::proto::v1::scheduler::{self as sched, call};
use support::scheduler_rest::*;
use support::{
    EVENTUALLY, SOON, TestCluster, eventually, eventually_blocking, example_plugin, holds,
};
use tokio::time::Instant;

#[tokio::test]
async fn a_transient_job_with_three_shards_runs_on_cron_and_finishes() {
    let config = format!(
        "{TUNING}\n{}\n[[jobs]]\nname = \"hello\"\napp = \"demo\"\ncron = \"{}\"\n\
         sharding_total_count = 3\nsharding_item_parameters = \"0=zero,1=one,2=two\"\n\
         plugin = \"libhello_shards.so\"\n",
        app("demo", &["hello_shards"]),
        once_in(5)
    );
    let s = start(&config).await;
    s.rest.until_metric("shardex_tasks_finished_total", 3).await;
    s.rest
        .until("/api/tasks/running", "nothing running", |v| {
            v == &serde_json::json!([])
        })
        .await;
    let mut lines = lines_of(s.tc.cluster.work_dir(), "hello-shards.out");
    lines.sort();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (item, (line, param)) in lines.iter().zip(["zero", "one", "two"]).enumerate() {
        assert!(
            line.starts_with(&format!("hello {item}/3 {param} hello@-@{item}@-@READY@-@")),
            "{line}"
        );
    }
    assert_eq!(
        s.rest
            .metric("shardex_tasks_launched_total{type=\"ready\"}")
            .await,
        3
    );
    assert_eq!(s.rest.metric("shardex_tasks_failed_total").await, 0);
    assert_eq!(s.rest.metric("shardex_ready_runs").await, 0);
    let launched = launches(&s.tc.cluster).await;
    assert_eq!(launched.len(), 3);
    // One ACCEPT for the run: all items or none.
    let accepts =
        s.tc.cluster
            .scheduler_calls()
            .await
            .unwrap()
            .iter()
            .filter(|c| {
                c.call
                    .as_ref()
                    .is_some_and(|c| c.r#type == Some(call::Type::Accept as i32))
            })
            .count();
    assert_eq!(
        accepts as u64,
        s.rest.metric("shardex_offers_used_total").await
    );
    s.scheduler.shutdown().await;
    s.tc.cluster.shutdown().await;
}

#[tokio::test]
async fn a_daemon_job_runs_and_survives() {
    let config = format!(
        "{TUNING}\n{}\n[[jobs]]\nname = \"beat\"\napp = \"demo\"\ncron = \"* * * * * ?\"\n\
         execution_type = \"daemon\"\nsharding_total_count = 2\nplugin = \"libheartbeat.so\"\n",
        app("demo", &["heartbeat"])
    );
    let s = start(&config).await;
    let running = s
        .rest
        .until("/api/tasks/running", "two daemon tasks running", |v| {
            running_in_state(v, 2, "TASK_RUNNING")
        })
        .await;
    let ids: Vec<String> = running
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap().to_owned())
        .collect();
    // Three fires per item, each by the same long-lived task.
    let lines = eventually("three fires of each daemon item", SOON, || async {
        let lines = lines_of(s.tc.cluster.work_dir(), "heartbeat.out");
        let thirds = (0..2)
            .filter(|item| {
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("beat item {item} fire 3 ")))
            })
            .count();
        (thirds == 2).then_some(lines)
    })
    .await;
    for line in &lines {
        assert!(ids.iter().any(|id| line.ends_with(id.as_str())), "{line}");
    }
    let running = s.rest.get("/api/tasks/running").await;
    let now_ids: Vec<&str> = running
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(now_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        s.rest
            .metric("shardex_tasks_launched_total{type=\"ready\"}")
            .await,
        2
    );
    assert_eq!(
        s.rest
            .metric("shardex_tasks_launched_total{type=\"failover\"}")
            .await,
        0
    );
    assert_eq!(s.rest.metric("shardex_tasks_failed_total").await, 0);
    assert_eq!(s.rest.metric("shardex_running_tasks").await, 2);
    // Disabling kills the daemon; it is not relaunched and not counted as a failure.
    assert_eq!(s.rest.post("/api/jobs/beat/disable").await, 200);
    s.rest
        .until("/api/tasks/running", "daemon stopped", |v| {
            v == &serde_json::json!([])
        })
        .await;
    assert_eq!(s.rest.metric("shardex_tasks_killed_total").await, 2);
    assert_eq!(s.rest.metric("shardex_tasks_failed_total").await, 0);
    assert_eq!(
        s.rest.get("/api/tasks/failover").await,
        serde_json::json!([])
    );
    s.scheduler.shutdown().await;
    s.tc.cluster.shutdown().await;
}

fn two_apps(failover: bool) -> String {
    format!(
        "{TUNING}\n{}\n{}\n\
         [[jobs]]\nname = \"slow\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\nsharding_total_count = 3\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"sleep:2500\"\nfailover = {failover}\n\
         [[jobs]]\nname = \"steady\"\napp = \"b\"\ncron = \"0 0 0 1 1 ? 2099\"\nsharding_total_count = 2\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"sleep:2500\"\nfailover = true\n",
        app("a", &["faulty"]),
        app("b", &["faulty"])
    )
}

#[tokio::test]
async fn kill_9_of_an_executor_fails_over_exactly_its_items_and_they_finish_once() {
    let s = start(&two_apps(true)).await;
    assert_eq!(s.rest.post("/api/jobs/slow/trigger").await, 202);
    assert_eq!(s.rest.post("/api/jobs/steady/trigger").await, 202);
    s.rest
        .until("/api/tasks/running", "five tasks running", |v| {
            running_in_state(v, 5, "TASK_RUNNING")
        })
        .await;
    kill_executor(&s.tc.cluster, "a").await;
    s.rest.until_metric("shardex_tasks_finished_total", 5).await;
    s.rest
        .until("/api/tasks/running", "nothing running", |v| {
            v == &serde_json::json!([])
        })
        .await;
    let launched = launches(&s.tc.cluster).await;
    let slow = runs_per_item(&launched, "slow");
    for item in 0..3 {
        assert_eq!(slow[&item], vec!["READY", "FAILOVER"], "slow item {item}");
    }
    let steady = runs_per_item(&launched, "steady");
    for item in 0..2 {
        assert_eq!(steady[&item], vec!["READY"], "steady item {item}");
    }
    assert_eq!(s.rest.metric("shardex_tasks_failed_total").await, 3);
    assert_eq!(s.rest.metric("shardex_tasks_failed_over_total").await, 3);
    assert_eq!(
        s.rest
            .metric("shardex_tasks_launched_total{type=\"failover\"}")
            .await,
        3
    );
    assert_eq!(
        s.rest
            .metric("shardex_tasks_launched_total{type=\"ready\"}")
            .await,
        5
    );
    assert_eq!(
        launched.len(),
        8,
        "what the master saw is what /metrics says"
    );
    assert_eq!(s.rest.metric("shardex_failover_queue_size").await, 0);
    assert_eq!(
        s.rest.get("/api/tasks/failover").await,
        serde_json::json!([])
    );
    s.scheduler.shutdown().await;
    s.tc.cluster.shutdown().await;
}

#[tokio::test]
async fn a_segfaulting_job_process_fails_over_only_its_item_and_is_parked_after_max_attempts() {
    let config = format!(
        "{TUNING}\n[failover]\nmax_attempts = 2\nbackoff_initial = \"100ms\"\n{}\n\
         [[jobs]]\nname = \"crashy\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         sharding_total_count = 3\nsharding_item_parameters = \"0=faulty:segfault\"\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"sleep:1500\"\nfailover = true\n\
         [[jobs]]\nname = \"steady\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         sharding_total_count = 2\nplugin = \"libfaulty.so\"\njob_parameter = \"sleep:1500\"\n\
         failover = true\n",
        app("a", &["faulty"])
    );
    let s = start(&config).await;
    assert_eq!(s.rest.post("/api/jobs/crashy/trigger").await, 202);
    assert_eq!(s.rest.post("/api/jobs/steady/trigger").await, 202);
    s.rest
        .until("/api/tasks/parked", "item 0 parked", |v| {
            v.as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    s.rest.until_metric("shardex_tasks_finished_total", 4).await;
    let parked = s.rest.get("/api/tasks/parked").await;
    assert_eq!(parked[0]["job"], "crashy");
    assert_eq!(parked[0]["item"], 0);
    assert_eq!(parked[0]["attempts"], 2);
    let cause = parked[0]["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("job process killed by SIGSEGV"), "{cause}");
    let launched = launches(&s.tc.cluster).await;
    let crashy = runs_per_item(&launched, "crashy");
    // The first run and max_attempts failovers, then parked; only the crashed item.
    assert_eq!(crashy[&0], vec!["READY", "FAILOVER", "FAILOVER"]);
    assert_eq!(crashy[&1], vec!["READY"]);
    assert_eq!(crashy[&2], vec!["READY"]);
    let steady = runs_per_item(&launched, "steady");
    assert_eq!(steady[&0], vec!["READY"]);
    assert_eq!(steady[&1], vec!["READY"]);
    assert_eq!(s.rest.metric("shardex_tasks_failed_total").await, 3);
    assert_eq!(
        s.rest.metric("shardex_task_retries_total").await,
        0,
        "a crash, not a job failure"
    );
    // One executor served all of it, subscribed once: the crashes never reached it.
    let subscribes =
        s.tc.cluster
            .executor_calls()
            .await
            .expect("call log")
            .into_iter()
            .filter_map(|observed| observed.call)
            .filter(|call| call.subscribe.is_some())
            .count();
    assert_eq!(subscribes, 1, "the shared executor never died");
    s.scheduler.shutdown().await;
    s.tc.cluster.shutdown().await;
}

#[tokio::test]
async fn with_failover_off_a_crashed_executor_reruns_nothing() {
    let s = start(&two_apps(false)).await;
    assert_eq!(s.rest.post("/api/jobs/slow/trigger").await, 202);
    s.rest
        .until("/api/tasks/running", "three tasks running", |v| {
            running_in_state(v, 3, "TASK_RUNNING")
        })
        .await;
    kill_executor(&s.tc.cluster, "a").await;
    s.rest.until_metric("shardex_tasks_failed_total", 3).await;
    s.rest
        .until("/api/tasks/running", "nothing running", |v| {
            v == &serde_json::json!([])
        })
        .await;
    // Nothing is queued, so nothing can launch.
    assert_eq!(
        s.rest.get("/api/tasks/failover").await,
        serde_json::json!([])
    );
    assert_eq!(s.rest.get("/api/tasks/ready").await, serde_json::json!([]));
    assert_eq!(s.rest.metric("shardex_tasks_failed_over_total").await, 0);
    let launched = launches(&s.tc.cluster).await;
    assert_eq!(launched.len(), 3);
    assert!(launched.iter().all(|(_, _, kind)| kind == "READY"));
    s.scheduler.shutdown().await;
    s.tc.cluster.shutdown().await;
}

/// A scheduler process, SIGKILLed when dropped.
/// A scheduler process and a client of its REST API.
#[tokio::test]
async fn kill_9_of_the_scheduler_between_recording_a_failover_and_relaunching_it() {
    let tc = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[failover]\nbackoff_initial = \"3secs\"\n{}\n\
         [[jobs]]\nname = \"slow\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\nsharding_total_count = 2\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"sleep:2000\"\nfailover = true\n",
        TUNING,
        app("a", &["faulty"])
    );
    let args = scheduler_args(dir.path(), &config, &tc.cluster.master_url());
    let first = start_scheduler(&args);
    assert_eq!(first.rest.post("/api/jobs/slow/trigger").await, 202);
    first
        .rest
        .until("/api/tasks/running", "two tasks running", |v| {
            running_in_state(v, 2, "TASK_RUNNING")
        })
        .await;
    // First crash: relaunched at once.
    kill_executor(&tc.cluster, "a").await;
    first
        .rest
        .until("/api/tasks/running", "two failover tasks running", |v| {
            running_in_state(v, 2, "TASK_RUNNING")
                && v.as_array()
                    .unwrap()
                    .iter()
                    .all(|t| t["kind"] == "FAILOVER")
        })
        .await;
    // Second crash: the relaunch now waits for its backoff (3 s) ...
    kill_executor(&tc.cluster, "a").await;
    first
        .rest
        .until("/api/tasks/failover", "two failover entries", |v| {
            v.as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|f| f["attempts"] == 2))
        })
        .await;
    // ... and the scheduler dies inside that window.
    drop(first);
    let launched_before = launches(&tc.cluster).await.len();
    assert_eq!(launched_before, 4);

    let second = start_scheduler(&args);
    second
        .rest
        .until_metric("shardex_tasks_finished_total", 2)
        .await;
    second
        .rest
        .until("/api/tasks/running", "nothing running", |v| {
            v == &serde_json::json!([])
        })
        .await;
    let slow = runs_per_item(&launches(&tc.cluster).await, "slow");
    for item in 0..2 {
        assert_eq!(
            slow[&item],
            vec!["READY", "FAILOVER", "FAILOVER"],
            "item {item}"
        );
    }
    assert_eq!(
        second.rest.get("/api/tasks/failover").await,
        serde_json::json!([])
    );
    // The second scheduler reused the framework id, and reconciled before its first launch.
    let (calls, subscribes) = calls_and_subscribes(&tc.cluster).await;
    let resubscribe = *subscribes.last().unwrap();
    assert!(calls[resubscribe].framework_id.is_some());
    assert_reconciled_before_launching(&calls[resubscribe..]);
    drop(second);
    tc.cluster.shutdown().await;
}

#[tokio::test]
async fn local_mode_runs_a_job_on_the_embedded_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = example_plugin("hello_shards").display().to_string();
    let config = format!(
        "{TUNING}\n[[apps]]\nname = \"demo\"\nuris = [{plugin:?}]\n\
         [[jobs]]\nname = \"hello\"\napp = \"demo\"\ncron = \"0/1 * * * * ?\"\n\
         sharding_total_count = 2\nplugin = \"libhello_shards.so\"\n"
    );
    let config_path = dir.path().join("scheduler.toml");
    std::fs::write(&config_path, config).unwrap();
    let store = dir.path().join("store.redb");
    let work = dir.path().join("work");
    let process = start_scheduler(&[
        "--local",
        "--local-work-dir",
        work.to_str().unwrap(),
        "--config",
        config_path.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    eventually("two tasks finished in local mode", EVENTUALLY, || async {
        holds(process.rest.metric("shardex_tasks_finished_total").await >= 2)
    })
    .await;
    assert!(lines_of(&work, "hello-shards.out").len() >= 2);
    assert_eq!(process.rest.metric("shardex_tasks_failed_total").await, 0);
    // Stopped like an operator stops it: its executors go with it (a kill -9 would leave them
    // running until their recovery timeout).
    let mut process = process;
    process.interrupt();
}

#[tokio::test]
async fn an_agent_restart_mid_run_changes_nothing_and_every_item_finishes_once() {
    let config = format!(
        "{TUNING}\n{}\n[[jobs]]\nname = \"slow\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         sharding_total_count = 3\nplugin = \"libfaulty.so\"\njob_parameter = \"sleep:1500\"\n\
         failover = true\n",
        app("a", &["faulty"])
    );
    let s = start(&config).await;
    assert_eq!(s.rest.post("/api/jobs/slow/trigger").await, 202);
    s.rest
        .until("/api/tasks/running", "three tasks running", |v| {
            running_in_state(v, 3, "TASK_RUNNING")
        })
        .await;
    // The shards finish while the agent is down; their updates are replayed (twice) after it
    // re-registers.
    s.tc.cluster
        .restart_agent(Duration::from_secs(2))
        .await
        .unwrap();
    s.rest.until_metric("shardex_tasks_finished_total", 3).await;
    s.rest
        .until("/api/tasks/running", "nothing running", |v| {
            v == &serde_json::json!([])
        })
        .await;
    let launched = launches(&s.tc.cluster).await;
    assert_eq!(launched.len(), 3, "{launched:?}");
    assert_eq!(s.rest.metric("shardex_tasks_failed_total").await, 0);
    assert_eq!(s.rest.metric("shardex_tasks_failed_over_total").await, 0);
    assert_eq!(
        s.rest.get("/api/tasks/failover").await,
        serde_json::json!([])
    );
    // The agent did re-send updates, and they were recognised as such.
    assert!(
        s.rest
            .metric("shardex_status_updates_duplicate_total")
            .await
            >= 1
    );
    s.scheduler.shutdown().await;
    s.tc.cluster.shutdown().await;
}

#[tokio::test]
async fn a_scheduler_fenced_out_by_another_exits_with_status_3() {
    let tc = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb");
    let master = tc.cluster.master_url();
    let process = start_scheduler(&[
        "--store",
        store.to_str().unwrap(),
        "--master",
        master.as_str(),
    ]);
    let health = process
        .rest
        .until("/health", "the scheduler to subscribe", |v| {
            v["subscribed"] == true
        })
        .await;
    let framework_id = health["framework_id"].as_str().unwrap().to_owned();

    // Another framework instance subscribes with the same id: Mesos fences the first one.
    let mut info = support::framework_info("intruder");
    info.id = Some(shardex::mesos::proto::v1::FrameworkId {
        value: framework_id,
    });
    let _intruder =
        support::TestFramework::subscribe(&master, info, shardex::mesos::Encoding::Protobuf)
            .await
            .unwrap();
    let mut process = process;
    let status = eventually_blocking("the fenced scheduler to exit", SOON, || {
        process.scheduler.child.try_wait().unwrap()
    });
    // 3, which the systemd unit's RestartPreventExitStatus names: it must not come back and
    // take the framework back.
    assert_eq!(status.code(), Some(3));
}

/// A transient script job whose every shard appends `start <task id>` to `runs`, waits for the
/// file `go` and appends `end <task id>`: the test decides when shards finish, and `runs`
/// says which ran and which completed.
fn held_job(items: u32, runs: &Path, go: &Path, tasks: &str) -> String {
    let script = format!(
        "echo start $SHARDEX_TASK_ID >> {runs}; \
         while [ ! -e {go} ]; do sleep 0.05; done; \
         echo end $SHARDEX_TASK_ID >> {runs}",
        runs = runs.display(),
        go = go.display()
    );
    format!(
        "{}\n{}\n[[jobs]]\nname = \"held\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         kind = \"script\"\nsharding_total_count = {items}\nfailover = true\n\
         command_line = \"/bin/sh -c '{script}'\"\n",
        TUNING.replace("[tasks]\n", &format!("[tasks]\n{tasks}\n")),
        app("a", &[])
    )
}

/// `(start|end, task id)` lines the held job's shards wrote.
fn runs_of(runs: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(runs)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(what, id)| (what.to_owned(), id.to_owned()))
        .collect()
}

fn task_ids(running: &Value) -> Vec<String> {
    running
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| t["task_id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// RECONCILE and KILL calls the master received from `from` on: `(reconciles, kills of id)`.
async fn calls_since(
    cluster: &shardex::local::LocalCluster,
    from: usize,
    task_id: &str,
) -> (usize, usize) {
    let calls = cluster.scheduler_calls().await.unwrap();
    let calls: Vec<&sched::Call> = calls[from..]
        .iter()
        .filter_map(|c| c.call.as_ref())
        .collect();
    let reconciles = calls
        .iter()
        .filter(|c| c.r#type == Some(call::Type::Reconcile as i32))
        .count();
    let kills = calls
        .iter()
        .filter(|c| c.kill.as_ref().is_some_and(|k| k.task_id.value == task_id))
        .count();
    (reconciles, kills)
}

// Periodic reconciliation and the launch check every 250 ms: a partition lasting several of
// them must not make the scheduler relaunch anything.
const SHORT_CHECKS: &str = "reconcile_interval = \"250ms\"\nlaunch_check_interval = \"250ms\"";

#[tokio::test]
async fn a_partitioned_shard_is_suspect_not_rerun_and_finishes_once_after_the_heal() {
    let dir = tempfile::tempdir().unwrap();
    let (runs, go) = (dir.path().join("runs.txt"), dir.path().join("go"));
    let s = start(&held_job(2, &runs, &go, SHORT_CHECKS)).await;
    assert_eq!(s.rest.post("/api/jobs/held/trigger").await, 202);
    let running = s
        .rest
        .until("/api/tasks/running", "two shards running", |v| {
            running_in_state(v, 2, "TASK_RUNNING")
        })
        .await;
    let originals = task_ids(&running);

    let calls_before = s.tc.cluster.scheduler_calls().await.unwrap().len();
    s.tc.cluster.partition_agent().await.unwrap();
    s.rest
        .until("/api/tasks/running", "both shards suspect", |v| {
            running_in_state(v, 2, "TASK_UNREACHABLE")
                && v.as_array()
                    .unwrap()
                    .iter()
                    .all(|t| t["suspect_since"].is_string())
        })
        .await;
    s.rest.until_metric("shardex_suspect_tasks", 2).await;
    // Observation window (the only fixed wait): six rounds of periodic reconciliation and of
    // the launch check. The items stay blocked by their suspect tasks: nothing is failed over
    // or relaunched, whatever reconciliation answers.
    let window = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < window {
        let running = s.rest.get("/api/tasks/running").await;
        assert_eq!(task_ids(&running), originals, "{running}");
        assert_eq!(
            s.rest.get("/api/tasks/failover").await,
            serde_json::json!([])
        );
        assert_eq!(
            s.rest
                .metric("shardex_tasks_launched_total{type=\"failover\"}")
                .await,
            0
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (reconciles, _) = calls_since(&s.tc.cluster, calls_before, "").await;
    assert!(
        reconciles >= 3,
        "the scheduler kept reconciling during the partition ({reconciles} RECONCILEs)"
    );
    assert_eq!(s.rest.metric("shardex_tasks_failed_total").await, 0);

    // The agent comes back: the master reports the shards running, the suspicion clears.
    s.tc.cluster.heal_agent().await.unwrap();
    s.rest
        .until("/api/tasks/running", "both shards running again", |v| {
            running_in_state(v, 2, "TASK_RUNNING")
                && v.as_array()
                    .unwrap()
                    .iter()
                    .all(|t| t["suspect_since"].is_null())
        })
        .await;
    s.rest.until_metric("shardex_suspect_tasks", 0).await;
    std::fs::write(&go, "").unwrap();
    s.rest.until_metric("shardex_tasks_finished_total", 2).await;
    s.rest
        .until("/api/tasks/running", "nothing running", |v| {
            v == &serde_json::json!([])
        })
        .await;

    // Each item ran exactly once, by its original task.
    let launched = launches(&s.tc.cluster).await;
    let held = runs_per_item(&launched, "held");
    for item in 0..2 {
        assert_eq!(held[&item], vec!["READY"], "item {item}");
    }
    let mut lines = runs_of(&runs);
    lines.sort();
    let mut wanted: Vec<(String, String)> = originals
        .iter()
        .flat_map(|id| [("end".into(), id.clone()), ("start".into(), id.clone())])
        .collect();
    wanted.sort();
    assert_eq!(lines, wanted);
    assert_eq!(
        s.rest
            .metric("shardex_tasks_launched_total{type=\"failover\"}")
            .await,
        0
    );
    assert_eq!(s.rest.metric("shardex_tasks_failed_total").await, 0);
    assert_eq!(s.rest.metric("shardex_tasks_failed_over_total").await, 0);
    s.scheduler.shutdown().await;
    s.tc.cluster.shutdown().await;
}

/// With a suspect timeout shorter than the partition, "not run twice" means: the item
/// completes once. The scheduler gives up on the unreachable task after the timeout (counted
/// as a failure, failed over) and keeps sending KILL; while the partition lasts the master
/// answers each with reconciliation and nothing can launch (no offers). After the heal the
/// failover run is launched at once and the KILL reaches the old task, so the two may overlap
/// briefly: the old run is killed before completing, the failover run completes.
#[tokio::test]
async fn a_shard_suspect_past_its_timeout_is_killed_and_failed_over_and_completes_once() {
    let dir = tempfile::tempdir().unwrap();
    let (runs, go) = (dir.path().join("runs.txt"), dir.path().join("go"));
    let tasks = format!("{SHORT_CHECKS}\nsuspect_timeout = \"1secs\"");
    let s = start(&held_job(1, &runs, &go, &tasks)).await;
    assert_eq!(s.rest.post("/api/jobs/held/trigger").await, 202);
    let running = s
        .rest
        .until("/api/tasks/running", "the shard running", |v| {
            running_in_state(v, 1, "TASK_RUNNING")
        })
        .await;
    let old = task_ids(&running).remove(0);

    let calls_before = s.tc.cluster.scheduler_calls().await.unwrap().len();
    s.tc.cluster.partition_agent().await.unwrap();
    // Suspect, then past the timeout: abandoned and failed over, its KILL re-sent.
    s.rest.until_metric("shardex_tasks_failed_total", 1).await;
    s.rest
        .until("/api/tasks/running", "the old task abandoned", |v| {
            v.as_array().is_some_and(|a| {
                a.len() == 1 && a[0]["task_id"] == old.as_str() && a[0]["abandoned"] == true
            })
        })
        .await;
    eventually("a KILL retried during the partition", SOON, || async {
        holds(calls_since(&s.tc.cluster, calls_before, &old).await.1 >= 2)
    })
    .await;
    assert_eq!(
        launches(&s.tc.cluster).await.len(),
        1,
        "nothing can launch during the partition"
    );
    assert_eq!(runs_of(&runs), [("start".to_owned(), old.clone())]);

    s.tc.cluster.heal_agent().await.unwrap();
    // The KILL now reaches the old task, and the item runs again.
    s.rest.until_metric("shardex_tasks_killed_total", 1).await;
    let running = s
        .rest
        .until("/api/tasks/running", "the failover run alone", |v| {
            running_in_state(v, 1, "TASK_RUNNING") && v.as_array().unwrap()[0]["kind"] == "FAILOVER"
        })
        .await;
    let new = task_ids(&running).remove(0);
    std::fs::write(&go, "").unwrap();
    s.rest.until_metric("shardex_tasks_finished_total", 1).await;
    s.rest
        .until("/api/tasks/running", "nothing running", |v| {
            v == &serde_json::json!([])
        })
        .await;

    let launched = launches(&s.tc.cluster).await;
    assert_eq!(
        runs_per_item(&launched, "held")[&0],
        vec!["READY", "FAILOVER"]
    );
    // Both runs started; only the failover run completed (the old one was killed first).
    let mut lines = runs_of(&runs);
    lines.sort();
    let mut wanted = vec![
        ("start".to_owned(), old.clone()),
        ("start".to_owned(), new.clone()),
        ("end".to_owned(), new.clone()),
    ];
    wanted.sort();
    assert_eq!(lines, wanted);
    assert_eq!(s.rest.metric("shardex_tasks_failed_total").await, 1);
    assert_eq!(
        s.rest
            .metric("shardex_tasks_launched_total{type=\"failover\"}")
            .await,
        1
    );
    s.scheduler.shutdown().await;
    s.tc.cluster.shutdown().await;
}
