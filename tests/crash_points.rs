//! The scheduler killed (`--crash-at`, SIGKILL) exactly where exactly-once is decided, on the
//! embedded cluster with real executors, then restarted on the same store:
//!
//! - with a launch recorded but its ACCEPT never sent: the recorded tasks are reconciled as
//!   unknown and each item runs once;
//! - with an update's effect recorded but its ACKNOWLEDGE never sent: the agent sends the
//!   update again, the new process acknowledges it, nothing is launched twice;
//! - right after the master accepted a RECONCILE (its answers may or may not have been taken):
//!   the next process reconciles again, nothing is launched twice.
//!
//! Needs `cargo build --workspace` first.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use shardex::mesos::proto::v1::scheduler::call;
use support::scheduler_rest::*;
use support::{SOON, TestCluster, eventually, eventually_blocking};

const SHARDS: u32 = 3;

fn config(out: &Path) -> String {
    script_job_config(
        SHARDS,
        &format!(
            "/bin/sh -c 'sleep 1; echo $SHARDEX_SHARDING_ITEM >> {}'",
            out.display()
        ),
    )
}

/// The scheduler on `dir`'s config and store, armed with `crash_at` if given.
fn scheduler(dir: &Path, master: &str, crash_at: Option<&str>) -> Process {
    let mut args = scheduler_args(dir, &config(&dir.join("out.log")), master);
    args.extend(crash_at.map(|point| format!("--crash-at={point}")));
    start_scheduler(&args)
}

/// Waits for the process to kill itself at its crash point.
fn crashed(process: &mut Process) {
    let status = eventually_blocking("the scheduler to reach its crash point", SOON, || {
        process.scheduler.child.try_wait().unwrap()
    });
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");
}

/// Waits until every item finished and the scheduler holds nothing running or queued; then
/// checks that each item finished once, through one task, and nothing awaits acknowledgement.
async fn every_item_finished_once(tc: &TestCluster, rest: &Rest) -> Vec<(String, u32, String)> {
    eventually("every item to finish", SOON, || async {
        let running = rest.get("/api/tasks/running").await;
        let failover = rest.get("/api/tasks/failover").await;
        (finished_tasks(&tc.cluster).await.len() == SHARDS as usize
            && running == serde_json::json!([])
            && failover == serde_json::json!([]))
        .then_some(())
    })
    .await;
    // One finished task per item.
    let finished = finished_tasks(&tc.cluster).await;
    let mut items: Vec<u32> = finished
        .iter()
        .map(|id| id.split("@-@").nth(1).unwrap().parse().unwrap())
        .collect();
    items.sort();
    assert_eq!(items, (0..SHARDS).collect::<Vec<_>>());
    until_every_update_acknowledged(&tc.cluster).await;
    assert_eq!(rest.get("/api/tasks/parked").await, serde_json::json!([]));
    launches(&tc.cluster).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_a_launch_recorded_but_not_sent_each_item_runs_once() {
    let tc = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let master = tc.cluster.master_url();

    let mut first = scheduler(dir.path(), &master, Some("before:ACCEPT"));
    assert_eq!(first.rest.post("/api/jobs/work/trigger").await, 202);
    crashed(&mut first);
    // The launch was committed (the store says so) but Mesos never heard of it.
    assert_eq!(count_calls(&tc.cluster, call::Type::Accept).await, 0);

    let second = scheduler(dir.path(), &master, None);
    let launched = every_item_finished_once(&tc, &second.rest).await;
    // The recorded tasks were reconciled as unknown to Mesos, and each item was launched once,
    // as the failover of its lost task (so the launch had been recorded before the crash).
    let per_item = runs_per_item(&launched, "work");
    assert_eq!(
        per_item,
        (0..SHARDS)
            .map(|i| (i, vec!["FAILOVER".to_owned()]))
            .collect()
    );
    let reconciles = calls_and_subscribes(&tc.cluster).await;
    assert_reconciled_before_launching(&reconciles.0[reconciles.1[1]..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_an_update_recorded_but_not_acknowledged_nothing_runs_twice() {
    let tc = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let master = tc.cluster.master_url();

    let mut first = scheduler(dir.path(), &master, Some("before:ACKNOWLEDGE"));
    assert_eq!(first.rest.post("/api/jobs/work/trigger").await, 202);
    crashed(&mut first);
    assert_eq!(count_calls(&tc.cluster, call::Type::Accept).await, 1);
    assert_eq!(count_calls(&tc.cluster, call::Type::Acknowledge).await, 0);
    // The agent still holds the update: it is the next process's to acknowledge.
    assert!(!tc.cluster.pending_updates().await.unwrap().is_empty());

    let second = scheduler(dir.path(), &master, None);
    let launched = every_item_finished_once(&tc, &second.rest).await;
    let per_item = runs_per_item(&launched, "work");
    assert_eq!(
        per_item,
        (0..SHARDS).map(|i| (i, vec!["READY".to_owned()])).collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_in_the_middle_of_reconciliation_nothing_runs_twice() {
    let tc = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let master = tc.cluster.master_url();

    let first = scheduler(dir.path(), &master, None);
    assert_eq!(first.rest.post("/api/jobs/work/trigger").await, 202);
    first.rest.until_all_running(SHARDS as usize).await;
    drop(first); // kill -9

    // The next process asks about its three tasks and dies as soon as the master accepted
    // the RECONCILE (the answers are on the stream by then; it may have taken some).
    let reconciles_before = count_calls(&tc.cluster, call::Type::Reconcile).await;
    let mut second = scheduler(dir.path(), &master, Some("after:RECONCILE"));
    crashed(&mut second);
    let (calls, subscribes) = calls_and_subscribes(&tc.cluster).await;
    let asked: Vec<&call::Reconcile> = calls[subscribes[1]..]
        .iter()
        .filter_map(|c| c.reconcile.as_ref())
        .collect();
    assert_eq!(
        count_calls(&tc.cluster, call::Type::Reconcile).await,
        reconciles_before + 1
    );
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].tasks.len(), SHARDS as usize);

    let third = scheduler(dir.path(), &master, None);
    let launched = every_item_finished_once(&tc, &third.rest).await;
    let per_item = runs_per_item(&launched, "work");
    assert_eq!(
        per_item,
        (0..SHARDS).map(|i| (i, vec!["READY".to_owned()])).collect()
    );
}
