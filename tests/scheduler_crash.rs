//! The `shardex-scheduler` binary killed with SIGKILL between recording a failover and
//! relaunching it: after a restart on the same store nothing is lost (the failover runs, once)
//! and nothing runs twice (every stored task is reconciled before anything launches).

mod fake_master;
mod support;

use fake_master::{FakeMaster, launched, reconciled};
use serde_json::Value;
use shardex::mesos::proto::v1::TaskState;
use shardex::mesos::proto::v1::scheduler::call;
use support::{SchedulerProcess, spawn_scheduler};

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
[tasks]
reconcile_retry_initial = "300ms"
[mesos]
resubscribe_backoff_initial = "100ms"
[[apps]]
name = "demo"
executor_uri = "/opt/shardex/shardex-executor"
uris = ["/opt/shardex/libhello_shards.so"]
[[jobs]]
name = "hello"
app = "demo"
cron = "0 0 0 1 1 ? 2099"
sharding_total_count = 3
plugin = "libhello_shards.so"
failover = true
"#;

fn spawn(dir: &std::path::Path, master: &str) -> SchedulerProcess {
    let (config, store) = (dir.join("scheduler.toml"), dir.join("store.redb"));
    let args: [&std::ffi::OsStr; 6] = [
        "--config".as_ref(),
        config.as_os_str(),
        "--master".as_ref(),
        master.as_ref(),
        "--store".as_ref(),
        store.as_os_str(),
    ];
    spawn_scheduler(args)
}

async fn get(url: &str) -> Value {
    let body = support::http()
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn kill_9_between_recording_a_failover_and_relaunching_it_loses_nothing_and_runs_nothing_twice()
 {
    let master = FakeMaster::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scheduler.toml"), CONFIG).unwrap();

    let first = spawn(dir.path(), &master.url);
    master.nth(call::Type::Suppress, 1).await;
    let trigger = support::http()
        .post(format!("{}/api/jobs/hello/trigger", first.rest_url))
        .send()
        .await
        .unwrap();
    assert_eq!(trigger.status().as_u16(), 202);
    master.send_offers(vec![master.offer("o1", 4.0, 4096.0, &[])]);
    let tasks: Vec<String> = launched(&master.nth(call::Type::Accept, 1).await)
        .iter()
        .map(|t| t.task_id.value.clone())
        .collect();
    assert_eq!(tasks.len(), 3);
    // Lost (a crash, not the job's own failure, which `retries` would govern): failover.
    let mut lost = master.update(&tasks[1], TaskState::TaskLost, Some(1));
    lost.source = Some(shardex::mesos::proto::v1::task_status::Source::Master as i32);
    master.send_update(lost);
    // The failover is recorded (visible, hence committed) ...
    support::eventually("the failover to be recorded", support::SOON, || async {
        let failover = get(&format!("{}/api/tasks/failover", first.rest_url)).await;
        support::holds(failover.as_array().is_some_and(|a| a.len() == 1))
    })
    .await;
    // ... and before any offer could relaunch it, the process dies without a chance to react.
    drop(first);
    master.close_stream();

    let second = spawn(dir.path(), &master.url);
    let reconcile = master.nth_in(call::Type::Reconcile, 2, 1).await;
    let mut asked = reconciled(&reconcile);
    asked.sort();
    assert_eq!(asked, vec![tasks[0].clone(), tasks[2].clone()]);
    master.send_offers(vec![master.offer("o2", 4.0, 4096.0, &[])]);
    master.nth_in(call::Type::Decline, 2, 1).await;
    for id in [&tasks[0], &tasks[2]] {
        master.send_update(master.update(id, TaskState::TaskRunning, None));
    }
    master.nth_in(call::Type::Reconcile, 2, 2).await;
    master.send_offers(vec![master.offer("o3", 4.0, 4096.0, &["demo@-@agent-S0"])]);
    let relaunch = launched(&master.nth(call::Type::Accept, 2).await);
    assert_eq!(relaunch.len(), 1);
    assert!(
        relaunch[0]
            .task_id
            .value
            .starts_with("hello@-@1@-@FAILOVER@-@"),
        "{}",
        relaunch[0].task_id.value
    );
    let failover = get(&format!("{}/api/tasks/failover", second.rest_url)).await;
    assert_eq!(failover, serde_json::json!([]));
    let running = get(&format!("{}/api/tasks/running", second.rest_url)).await;
    assert_eq!(running.as_array().unwrap().len(), 3);
    assert_eq!(master.calls_of(call::Type::Accept).len(), 2);
}
