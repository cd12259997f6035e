//! What a job author hit in first real use, each as a scenario on the embedded cluster with the
//! real `shardex-executor`: a broken job next to healthy ones, an item that keeps crashing, a
//! job that fails or runs too long, a restart of `--local` with daemons, REST changes across a
//! restart of a scheduler whose config file manages other jobs, and starts that fail.
//!
//! Needs `cargo build --workspace` first (the example plugins are separate crates).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::scheduler_rest::*;
use support::{EVENTUALLY, eventually, holds, package_binary};

/// Launches per item of `job`, as READY/FAILOVER kinds in launch order.
async fn kinds_of(s: &InProcess, job: &str) -> Vec<(u32, Vec<String>)> {
    runs_per_item(&launches(&s.tc.cluster).await, job)
        .into_iter()
        .collect()
}

fn items_of(value: &Value, job: &str) -> Vec<u64> {
    let mut items: Vec<u64> = value
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["job"] == job)
                .filter_map(|e| e["item"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    items
}

#[tokio::test]
async fn a_broken_job_is_parked_and_its_innocent_siblings_run_again_once_in_a_fresh_executor() {
    let config = format!(
        "{TUNING}\n{}\n\
         [[jobs]]\nname = \"beat\"\napp = \"a\"\ncron = \"* * * * * ?\"\n\
         execution_type = \"daemon\"\nsharding_total_count = 1\nplugin = \"libheartbeat.so\"\n\
         [[jobs]]\nname = \"scripted\"\napp = \"a\"\nkind = \"script\"\nsharding_total_count = 1\n\
         failover = true\ncommand_line = \"/bin/sh -c 'sleep 1.5'\"\n\
         [[jobs]]\nname = \"missing\"\napp = \"a\"\nsharding_total_count = 2\nfailover = true\n\
         plugin = \"plugins/libnothere.so\"\n",
        app("a", &["heartbeat"])
    );
    let s = start(&config).await;
    s.rest
        .until("/api/tasks/running", "the daemon running", |v| {
            running_in_state(v, 1, "TASK_RUNNING")
        })
        .await;
    assert_eq!(s.rest.post("/api/jobs/scripted/trigger").await, 202);
    s.rest
        .until("/api/tasks/running", "daemon and script running", |v| {
            running_in_state(v, 2, "TASK_RUNNING")
        })
        .await;
    // The broken job stops the shared executor (its setup error is the executor's contract).
    assert_eq!(s.rest.post("/api/jobs/missing/trigger").await, 202);
    let parked = s
        .rest
        .until("/api/tasks/parked", "the broken job's items parked", |v| {
            items_of(v, "missing") == [0, 1]
        })
        .await;
    let cause = parked[0]["cause"].as_str().unwrap();
    assert!(
        cause.contains("setup error (job scope") && cause.contains("libnothere.so not found"),
        "{cause}"
    );
    // The innocent ones run again, once each, and the script finishes.
    s.rest.until_metric("shardex_tasks_finished_total", 1).await;
    s.rest
        .until("/api/tasks/running", "the daemon running again", |v| {
            running_in_state(v, 1, "TASK_RUNNING") && v[0]["job"] == "beat"
        })
        .await;
    assert_eq!(
        kinds_of(&s, "beat").await,
        vec![(0, vec!["READY".into(), "FAILOVER".into()])]
    );
    assert_eq!(
        kinds_of(&s, "scripted").await,
        vec![(0, vec!["READY".into(), "FAILOVER".into()])]
    );
    // Only the broken job's two tasks were launched for it (it is a job-scope error: both
    // items were parked by the first one to fail, whichever it was).
    let missing = kinds_of(&s, "missing").await;
    assert!(
        missing.iter().all(|(_, kinds)| kinds == &["READY"]),
        "{missing:?}"
    );
    // Three failures: the broken task and the two it stopped; no relaunch was dropped by an
    // executor that was going away.
    // One or both of its tasks report the setup error, depending on which the executor set
    // up before it began stopping.
    let setup_errors = s.rest.metric("shardex_setup_errors_total").await;
    assert!((1..=2).contains(&setup_errors), "{setup_errors}");
    assert_eq!(s.rest.metric("shardex_parked_items").await, 2);
    let failed = s.rest.metric("shardex_tasks_failed_total").await;
    assert!(
        (3..=4).contains(&failed),
        "the broken task(s) and the two innocent ones: {failed}"
    );
    assert_eq!(
        s.rest.get("/api/tasks/failover").await,
        serde_json::json!([])
    );

    // Its runs launch nothing until released; a release runs it again.
    assert_eq!(s.rest.post("/api/jobs/missing/trigger").await, 202);
    s.rest.until_metric("shardex_runs_skipped_total", 1).await;
    assert_eq!(kinds_of(&s, "missing").await, missing);
    assert_eq!(
        s.rest.post("/api/tasks/parked/missing/5/release").await,
        404
    );
    assert_eq!(
        s.rest.post("/api/tasks/parked/missing/0/release").await,
        200
    );
    s.scheduler.shutdown().await;
    s.tc.cluster.shutdown().await;
}

#[tokio::test]
async fn an_item_that_keeps_crashing_is_parked_and_no_later_run_touches_it_until_released() {
    let config = format!(
        "{TUNING}\n[failover]\nmax_attempts = 2\nbackoff_initial = \"100ms\"\n{}\n\
         [[jobs]]\nname = \"crash\"\napp = \"a\"\nsharding_total_count = 1\nfailover = true\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"abort\"\n",
        app("a", &["faulty"])
    );
    let s = start(&config).await;
    assert_eq!(s.rest.post("/api/jobs/crash/trigger").await, 202);
    // Sample both queues until it is parked: never in both at once.
    eventually("the crashing item parked", EVENTUALLY, || async {
        let parked = items_of(&s.rest.get("/api/tasks/parked").await, "crash");
        let queued = items_of(&s.rest.get("/api/tasks/failover").await, "crash");
        assert!(
            parked.is_empty() || queued.is_empty(),
            "parked {parked:?} and queued {queued:?} at once"
        );
        holds(parked == [0])
    })
    .await;
    // One run and two failovers (max_attempts = 2), then parked.
    assert_eq!(
        kinds_of(&s, "crash").await,
        vec![(
            0,
            vec!["READY".into(), "FAILOVER".into(), "FAILOVER".into()]
        )]
    );
    // Later runs skip it; the failover queue stays empty.
    assert_eq!(s.rest.post("/api/jobs/crash/trigger").await, 202);
    s.rest.until_metric("shardex_runs_skipped_total", 1).await;
    assert_eq!(
        s.rest.get("/api/tasks/failover").await,
        serde_json::json!([])
    );
    assert_eq!(kinds_of(&s, "crash").await[0].1.len(), 3);
    assert_eq!(s.rest.metric("shardex_ready_runs").await, 0);
    // Released, the next run runs it.
    assert_eq!(s.rest.post("/api/tasks/parked/crash/0/release").await, 200);
    assert_eq!(s.rest.get("/api/tasks/parked").await, serde_json::json!([]));
    assert_eq!(s.rest.post("/api/jobs/crash/trigger").await, 202);
    s.rest
        .until(
            "/api/tasks/parked",
            "parked again after its crash loop",
            |v| items_of(v, "crash") == [0],
        )
        .await;
    assert_eq!(kinds_of(&s, "crash").await[0].1.len(), 6);
    s.scheduler.shutdown().await;
    s.tc.cluster.shutdown().await;
}

#[tokio::test]
async fn failed_runs_are_retried_and_runs_past_their_timeout_are_killed_and_fail() {
    let config = format!(
        "{TUNING}\n[failover]\nbackoff_initial = \"100ms\"\n{}\n\
         [[jobs]]\nname = \"failing\"\napp = \"a\"\nsharding_total_count = 2\nretries = 2\n\
         failover = true\nplugin = \"libfaulty.so\"\njob_parameter = \"error\"\n\
         [[jobs]]\nname = \"slow\"\napp = \"a\"\nsharding_total_count = 1\ntimeout = \"1secs\"\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"sleep:60000\"\n",
        app("a", &["faulty"])
    );
    let s = start(&config).await;
    assert_eq!(s.rest.post("/api/jobs/failing/trigger").await, 202);
    assert_eq!(s.rest.post("/api/jobs/slow/trigger").await, 202);
    // failing: 2 items × (1 run + 2 retries) = 6 failures; slow: 1 timeout, no retry.
    s.rest.until_metric("shardex_tasks_failed_total", 7).await;
    s.rest
        .until("/api/tasks/running", "nothing running", |v| {
            v == &serde_json::json!([])
        })
        .await;
    assert_eq!(
        kinds_of(&s, "failing").await,
        vec![
            (
                0,
                vec!["READY".into(), "FAILOVER".into(), "FAILOVER".into()]
            ),
            (
                1,
                vec!["READY".into(), "FAILOVER".into(), "FAILOVER".into()]
            ),
        ]
    );
    assert_eq!(kinds_of(&s, "slow").await, vec![(0, vec!["READY".into()])]);
    assert_eq!(s.rest.metric("shardex_task_retries_total").await, 4);
    assert_eq!(s.rest.metric("shardex_tasks_timed_out_total").await, 1);
    // A failing job is not a crash loop: nothing is parked or queued.
    assert_eq!(s.rest.get("/api/tasks/parked").await, serde_json::json!([]));
    assert_eq!(
        s.rest.get("/api/tasks/failover").await,
        serde_json::json!([])
    );
    // Manual jobs have no next fire.
    assert_eq!(s.rest.get("/api/jobs/slow").await["next_fire"], Value::Null);
    s.scheduler.shutdown().await;
    s.tc.cluster.shutdown().await;
}

#[tokio::test]
async fn rest_changes_survive_a_restart_and_file_managed_jobs_refuse_them() {
    let config = format!(
        "{TUNING}\n{}\n[[jobs]]\nname = \"filed\"\napp = \"a\"\nsharding_total_count = 3\n\
         plugin = \"libhello_shards.so\"\n",
        app("a", &["hello_shards"])
    );
    let s = start(&config).await;
    use reqwest::Method;
    let body = serde_json::json!({
        "name": "rested", "app": "a", "sharding_total_count": 3,
        "plugin": "libhello_shards.so"
    });
    let (status, _) = s.rest.call(Method::POST, "/api/jobs", Some(&body)).await;
    assert_eq!(status, 201);
    let mut changed = body.clone();
    changed["sharding_total_count"] = 5.into();
    let (status, _) = s
        .rest
        .call(Method::PUT, "/api/jobs/rested", Some(&changed))
        .await;
    assert_eq!(status, 200);
    let mut filed = body.clone();
    filed["name"] = "filed".into();
    let (status, error) = s
        .rest
        .call(Method::PUT, "/api/jobs/filed", Some(&filed))
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        error["error"],
        "job 'filed' is managed by the config file e2e: change it there and restart the \
         scheduler (or take it out of the file to manage it through REST)"
    );
    let (status, _) = s.rest.call(Method::DELETE, "/api/jobs/filed", None).await;
    assert_eq!(status, 409);

    // Restart on the same store with the same file.
    let InProcess {
        tc,
        scheduler,
        store,
        ..
    } = s;
    scheduler.shutdown().await;
    let (scheduler, rest) = scheduler_on(&config, &tc.cluster.master_url(), store.path()).await;
    let rested = rest.get("/api/jobs/rested").await;
    assert_eq!(rested["sharding_total_count"], 5);
    assert_eq!(rested["source"], "rest");
    let filed = rest.get("/api/jobs/filed").await;
    assert_eq!(filed["sharding_total_count"], 3);
    assert_eq!(filed["source"], "file:e2e");
    assert_eq!(rest.get("/api/apps/a").await["source"], "file:e2e");
    scheduler.shutdown().await;
    tc.cluster.shutdown().await;
}

fn daemon_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = format!(
        "{TUNING}\n{}\n[[jobs]]\nname = \"beat\"\napp = \"a\"\ncron = \"* * * * * ?\"\n\
         execution_type = \"daemon\"\nsharding_total_count = 2\nplugin = \"libheartbeat.so\"\n",
        app("a", &["heartbeat"])
    );
    let path = dir.join("scheduler.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn task_ids(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["task_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn restarting_local_brings_daemons_back_at_once_and_leaves_no_dead_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path());
    let store = dir.path().join("store.redb");
    let args = [
        "--local",
        "--config",
        config.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ];
    let mut first = start_scheduler(&args);
    let running = first
        .rest
        .until("/api/tasks/running", "two daemon shards running", |v| {
            running_in_state(v, 2, "TASK_RUNNING")
        })
        .await;
    let mut before = task_ids(&running);
    first.interrupt();
    // The embedded cluster lives beside the store and keeps its agent's id.
    assert!(dir.path().join("store.local/meta/slaves/latest").exists());

    for round in 0..2 {
        let second = start_scheduler(&args);
        let started = std::time::Instant::now();
        let running = second
            .rest
            .until("/api/tasks/running", "two new daemon shards running", |v| {
                running_in_state(v, 2, "TASK_RUNNING")
                    && task_ids(v).iter().all(|id| !before.contains(id))
            })
            .await;
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(10),
            "round {round}: daemons back after {waited:?}"
        );
        assert_eq!(second.rest.metric("shardex_running_tasks").await, 2);
        assert_eq!(second.rest.metric("shardex_suspect_tasks").await, 0);
        let mut second = second;
        second.interrupt();
        // The next round waits for tasks newer than these (the store still lists them when
        // the scheduler starts, until reconciliation answers them gone).
        before = task_ids(&running);
    }
}

/// `shardex-scheduler --local` on `store` and `listen` that must fail with status 1; its stderr.
fn failed_start(store: &std::path::Path, listen: &str, tmp: &std::path::Path) -> String {
    let output = std::process::Command::new(package_binary("shardex-scheduler"))
        .args(["--local", "--listen", listen, "--store"])
        .arg(store)
        .env("TMPDIR", tmp)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_start_that_fails_starts_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb");
    let held = shardex::scheduler::RedbStore::open(&store).unwrap();
    let stderr = failed_start(&store, "127.0.0.1:0", tmp.path());
    assert!(
        stderr.contains(&format!(
            "store {} is in use by another shardex-scheduler (pid {}): stop it first",
            store.display(),
            std::process::id()
        )),
        "{stderr}"
    );
    drop(held);

    // A REST address in use: refused before the embedded cluster starts.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let stderr = failed_start(&store, &address, tmp.path());
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    // Nothing was left behind: no embedded cluster dir, nothing in TMPDIR, no pid file.
    assert!(!dir.path().join("store.local").exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    assert!(!dir.path().join("store.redb.pid").exists());
}
