//! Two `shardex-scheduler` processes on one ZooKeeper ensemble of three real servers, the
//! embedded cluster and the real executor: one leads, the other stands by naming it; `kill -9`
//! of the leader while a sharded run and its failovers are in flight hands over to the standby
//! (within the session timeout), which reconciles and finishes every item exactly once.
//!
//! Needs `cargo build --workspace` first, and ZooKeeper (see `tests/support/zookeeper.rs`).

mod support;

use std::path::Path;

use serde_json::Value;
use shardex::mesos::proto::v1::scheduler::{self as sched, call};
use support::scheduler_rest::*;
use support::zk_proxy::{Cut, ZkProxy};
use support::zookeeper::ZooKeeper;
use support::{EVENTUALLY, SOON, TestCluster, eventually, holds};

/// The arguments of one HA scheduler: its config file in `dir` and the master.
fn ha_args(dir: &Path, config: &str, master: &str) -> Vec<String> {
    let path = dir.join("scheduler.toml");
    std::fs::write(&path, config).unwrap();
    vec![
        "--config".into(),
        path.to_string_lossy().into_owned(),
        "--master".into(),
        master.to_owned(),
    ]
}

/// One scenario at a time: each runs JVMs of ZooKeeper, schedulers, executors and an embedded
/// cluster, and their timing (session timeouts, elections) is what is under test; five at once
/// on two cores measure the machine instead.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The task ids of a `/api/tasks/running` answer, sorted.
fn task_ids(running: &Value) -> Vec<String> {
    let mut ids: Vec<String> = running
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["task_id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// Two HA schedulers on `master` with `config`: the first leads (waited for), then the second
/// starts. Each comes with its dir, which lives as long as the returned pair.
async fn leader_then_standby(
    config: &str,
    master: &str,
) -> ((tempfile::TempDir, Process), (tempfile::TempDir, Process)) {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = start_scheduler(&ha_args(one.path(), config, master));
    eventually("the first scheduler to lead", SOON, || async {
        (health(&first.scheduler.rest_url).await.0 == 200).then_some(())
    })
    .await;
    let second = start_scheduler(&ha_args(two.path(), config, master));
    ((one, first), (two, second))
}

/// `/health` of a scheduler: (HTTP status, body); (0, null) when the request failed (a standby
/// closes its connections as it becomes the leader).
async fn health(rest_url: &str) -> (u16, Value) {
    let Ok(response) = support::http()
        .get(format!("{rest_url}/health"))
        .send()
        .await
    else {
        return (0, Value::Null);
    };
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn kill_9_of_the_leader_mid_run_hands_over_and_every_item_finishes_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(zookeeper) = ZooKeeper::ensemble(
        "kill_9_of_the_leader_mid_run_hands_over_and_every_item_finishes_once",
        3,
    ) else {
        return;
    };
    let tc = TestCluster::start().await;
    let config = format!(
        "{TUNING}\n[ha]\nzookeeper = \"{}\"\nsession_timeout = \"2secs\"\n{}\n\
         [[jobs]]\nname = \"slow\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         sharding_total_count = 3\nplugin = \"libfaulty.so\"\njob_parameter = \"sleep:2500\"\n\
         failover = true\n{}\n\
         [[jobs]]\nname = \"beat\"\napp = \"d\"\ncron = \"* * * * * ?\"\n\
         execution_type = \"daemon\"\nsharding_total_count = 2\nplugin = \"libheartbeat.so\"\n",
        zookeeper.url("/shardex"),
        app("a", &["faulty"]),
        app("d", &["heartbeat"])
    );
    let ((_one, first), (_two, second)) =
        leader_then_standby(&config, &tc.cluster.master_url()).await;
    let (status, standby) = health(&second.scheduler.rest_url).await;
    assert_eq!(status, 503);
    assert_eq!(standby["status"], "standby");
    assert_eq!(
        standby["leader"],
        format!("{}/", first.scheduler.rest_url),
        "the standby names the leader"
    );
    let refused = support::http()
        .post(format!(
            "{}/api/jobs/slow/trigger",
            second.scheduler.rest_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    let refused: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(
        refused["error"],
        format!(
            "this scheduler is a standby and only answers reads; send writes to the leader's \
             REST API at {}/",
            first.scheduler.rest_url
        )
    );
    assert_eq!(first.rest.metric("shardex_leader").await, 1);
    assert_eq!(first.rest.metric("shardex_leader_elections_total").await, 1);
    assert_eq!(second.rest.metric("shardex_leader").await, 0);
    assert_eq!(
        second.rest.metric("shardex_leader_elections_total").await,
        1
    );
    assert_eq!(health(&first.scheduler.rest_url).await.1["role"], "leader");

    let daemons = first
        .rest
        .until("/api/tasks/running", "two daemon tasks running", |v| {
            running_in_state(v, 2, "TASK_RUNNING")
        })
        .await;
    let daemon_ids = task_ids(&daemons);
    assert_eq!(first.rest.post("/api/jobs/slow/trigger").await, 202);
    let running = first
        .rest
        .until("/api/tasks/running", "five tasks running", |v| {
            running_in_state(v, 5, "TASK_RUNNING")
        })
        .await;
    // A standby answers reads from the shared state, as the leader does (within a second).
    assert_eq!(
        second.rest.get("/api/apps/a").await,
        first.rest.get("/api/apps/a").await
    );
    let names = |jobs: Value| -> Vec<Value> {
        jobs.as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].clone())
            .collect()
    };
    assert_eq!(names(second.rest.get("/api/jobs").await), ["beat", "slow"]);
    eventually(
        "the standby to list the five running tasks",
        SOON,
        || async {
            (task_ids(&second.rest.get("/api/tasks/running").await) == task_ids(&running))
                .then_some(())
        },
    )
    .await;
    // What an operator sees, straight from ZooKeeper.
    let status = std::process::Command::new(support::package_binary("shardex-scheduler"))
        .args(["ha", "status", "--zookeeper", &zookeeper.url("/shardex")])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let text = String::from_utf8_lossy(&status.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(
        lines[0],
        format!("store      {} (schema 2)", zookeeper.url("/shardex"))
    );
    assert!(lines[2].starts_with("epoch      1, taken by "), "{text}");
    assert!(
        lines[3].starts_with("leader ")
            && lines[3].contains(&format!("  {}/  since ", first.scheduler.rest_url)),
        "{text}"
    );
    assert!(
        lines[4].starts_with("standby")
            && lines[4].contains(&format!("  {}/  since ", second.scheduler.rest_url)),
        "{text}"
    );
    assert_eq!(
        lines[5],
        "rows       apps 2, jobs 2, ready 0, failover 0, running 5, parked 0, history 0, runs 2, \
         run_items 5, run_history 0"
    );

    // The executor dies, and the leader right behind it: the failovers are in flight.
    kill_executor(&tc.cluster, "a").await;
    drop(first);

    eventually("the standby to lead and subscribe", SOON, || async {
        (health(&second.scheduler.rest_url).await.0 == 200).then_some(())
    })
    .await;
    second
        .rest
        .until_metric("shardex_tasks_finished_total", 3)
        .await;
    // Only the daemon shards run on, as the same tasks: the new leader reconciled them and
    // launched nothing for them.
    let running = second.rest.get("/api/tasks/running").await;
    assert_eq!(task_ids(&running), daemon_ids, "{running}");
    assert!(running_in_state(&running, 2, "TASK_RUNNING"), "{running}");
    let beat = runs_per_item(&launches(&tc.cluster).await, "beat");
    assert_eq!(
        beat.values().collect::<Vec<_>>(),
        [&vec!["READY".to_owned()], &vec!["READY".to_owned()]],
        "each daemon item launched once, by the first leader"
    );
    assert_eq!(second.rest.metric("shardex_leader").await, 1);
    assert_eq!(
        second.rest.metric("shardex_leader_elections_total").await,
        2
    );
    assert_eq!(
        second.rest.get("/api/tasks/failover").await,
        serde_json::json!([])
    );
    // Each item: its first run, then failovers only (one the old leader may have launched
    // into the dead executor, one the new leader launched while the agent still held it),
    // and exactly one finish, seen by the new leader.
    let slow = runs_per_item(&launches(&tc.cluster).await, "slow");
    for item in 0..3 {
        let runs = &slow[&item];
        assert_eq!(runs[0], "READY", "item {item}: {runs:?}");
        assert!(
            runs.len() >= 2 && runs[1..].iter().all(|r| r == "FAILOVER"),
            "item {item}: {runs:?}"
        );
    }
    assert_eq!(
        second.rest.get("/api/tasks/parked").await,
        serde_json::json!([])
    );
    // The new leader subscribed with the stored framework id, and reconciled before launching.
    let (calls, subscribes) = calls_and_subscribes(&tc.cluster).await;
    let takeover = *subscribes.last().unwrap();
    let (_, leader) = health(&second.scheduler.rest_url).await;
    assert_eq!(
        calls[takeover]
            .framework_id
            .as_ref()
            .map(|id| id.value.as_str()),
        leader["framework_id"].as_str(),
        "the new leader subscribed with the stored framework id"
    );
    assert_eq!(subscribes.len(), 2, "one SUBSCRIBE per leader");
    assert_reconciled_before_launching(&calls[takeover..]);
    drop(second);
    tc.cluster.shutdown().await;
}

/// The leader is frozen (SIGSTOP) past its session timeout while the standby takes over, then
/// resumed with work due (a job fires every second): it sends Mesos nothing more (no call on its
/// stream, no new SUBSCRIBE), writes nothing to ZooKeeper (the epoch stays the new leader's),
/// and exits with status 4 to stand by again; the new leader finishes the run.
#[tokio::test]
async fn a_leader_frozen_past_its_session_never_acts_again() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(zookeeper) =
        ZooKeeper::standalone("a_leader_frozen_past_its_session_never_acts_again")
    else {
        return;
    };
    let tc = TestCluster::start().await;
    let config = format!(
        "{TUNING}\n[ha]\nzookeeper = \"{}\"\nsession_timeout = \"2secs\"\n{}\n\
         [[jobs]]\nname = \"slow\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         sharding_total_count = 2\nplugin = \"libfaulty.so\"\njob_parameter = \"sleep:3000\"\n\
         failover = true\n\
         [[jobs]]\nname = \"beat\"\napp = \"a\"\ncron = \"* * * * * ?\"\n\
         sharding_total_count = 1\nplugin = \"libfaulty.so\"\njob_parameter = \"ok\"\n",
        zookeeper.url("/frozen"),
        app("a", &["faulty"])
    );
    let ((_one, mut first), (_two, second)) =
        leader_then_standby(&config, &tc.cluster.master_url()).await;
    assert_eq!(first.rest.post("/api/jobs/slow/trigger").await, 202);
    first
        .rest
        .until("/api/tasks/running", "two tasks running", |v| {
            running_in_state(v, 2, "TASK_RUNNING")
        })
        .await;

    let pid = nix::unistd::Pid::from_raw(first.scheduler.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    eventually("the standby to take over", SOON, || async {
        (health(&second.scheduler.rest_url).await.0 == 200).then_some(())
    })
    .await;
    // The run the frozen leader started finishes under the new one (as do the beats).
    second
        .rest
        .until("/api/tasks/running", "the slow run to end", |v| {
            v.as_array()
                .is_some_and(|a| a.iter().all(|t| t["job"] != "slow"))
        })
        .await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let status = support::eventually_blocking("the resumed leader to exit", SOON, || {
        first.scheduler.child.try_wait().unwrap()
    });
    assert_eq!(
        status.code(),
        Some(4),
        "lost the lease: exits to stand by again"
    );

    let calls = tc.cluster.scheduler_calls().await.unwrap();
    let is_subscribe = |c: &shardex::local::ObservedCall<sched::Call>| {
        c.call
            .as_ref()
            .is_some_and(|c| c.r#type == Some(call::Type::Subscribe as i32))
    };
    let subscribes: Vec<usize> = (0..calls.len())
        .filter(|i| is_subscribe(&calls[*i]))
        .collect();
    assert_eq!(
        subscribes.len(),
        2,
        "the resumed leader never subscribed again"
    );
    let takeover = subscribes[1];
    let old_streams: std::collections::BTreeSet<&str> = calls[..takeover]
        .iter()
        .filter_map(|c| c.stream_id.as_deref())
        .collect();
    assert!(!old_streams.is_empty());
    let late: Vec<_> = calls[takeover..]
        .iter()
        .filter(|c| {
            c.stream_id
                .as_deref()
                .is_some_and(|s| old_streams.contains(s))
        })
        .map(|c| c.call.as_ref().and_then(|c| c.r#type))
        .collect();
    assert!(
        late.is_empty(),
        "calls on the old leader's stream after the takeover: {late:?}"
    );

    // ZooKeeper: the epoch is the new leader's, taken once more than the first's.
    let raw = zookeeper_client::Client::connect(&zookeeper.connect_string())
        .await
        .unwrap();
    let (holder, stat) = raw.get_data("/frozen/meta/epoch").await.unwrap();
    assert_eq!(stat.version, 2, "two leaders, two epochs");
    let second_pid = second.scheduler.child.id().to_string();
    assert!(
        String::from_utf8_lossy(&holder).ends_with(&format!(":{second_pid}")),
        "{}",
        String::from_utf8_lossy(&holder)
    );
    drop(second);
    tc.cluster.shutdown().await;
}

/// All three servers of the ensemble go away under a running leader whose Mesos connection is
/// fine: within its session timeout it stops acting (no call on its stream, `/health` 503 `no-quorum`, REST
/// requests answered 503 at once); ZooKeeper comes back before the session expires: it acts
/// again on the same session, and the job that fires every second runs on.
#[tokio::test]
async fn without_zookeeper_the_leader_stops_acting_and_resumes_when_it_returns() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut zookeeper) = ZooKeeper::ensemble(
        "without_zookeeper_the_leader_stops_acting_and_resumes_when_it_returns",
        3,
    ) else {
        return;
    };
    let tc = TestCluster::start().await;
    let session = std::time::Duration::from_secs(6);
    let config = beat_config(&zookeeper.url("/outage"), "6secs");
    let dir = tempfile::tempdir().unwrap();
    let leader = start_scheduler(&ha_args(dir.path(), &config, &tc.cluster.master_url()));
    eventually("the scheduler to lead", SOON, || async {
        (health(&leader.scheduler.rest_url).await.0 == 200).then_some(())
    })
    .await;
    eventually("two beats to finish", SOON, || async {
        holds(leader.rest.metric("shardex_tasks_finished_total").await >= 2)
    })
    .await;

    // All three servers stopped.
    for server in 0..3 {
        zookeeper.kill_server(server);
    }
    let (status, body) = eventually("/health to say no-quorum", session, || async {
        let (status, body) = health(&leader.scheduler.rest_url).await;
        (status == 503).then_some((status, body))
    })
    .await;
    assert_eq!((status, body["status"].as_str()), (503, Some("no-quorum")));
    assert_eq!(body["role"], "leader");
    let refused = support::http()
        .post(format!(
            "{}/api/jobs/beat/trigger",
            leader.scheduler.rest_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    // Not acting from the moment it says so. An absence can only be watched over a while: for
    // two beats' time the master hears nothing from this scheduler.
    let before = tc.cluster.scheduler_calls().await.unwrap().len();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let during = tc.cluster.scheduler_calls().await.unwrap();
    let late: Vec<_> = during[before..]
        .iter()
        .map(|c| c.call.as_ref().and_then(|c| c.r#type))
        .collect();
    assert!(late.is_empty(), "calls while not acting: {late:?}");

    // Back before the session expired on the servers (they restore it from their log and give
    // it a full timeout): same session, acting again, beating on.
    for server in 0..3 {
        zookeeper.start_server(server);
    }
    zookeeper.wait_serving(&[0, 1, 2]);
    eventually("the leader to act again", SOON, || async {
        (health(&leader.scheduler.rest_url).await.0 == 200).then_some(())
    })
    .await;
    let finished = leader.rest.metric("shardex_tasks_finished_total").await;
    eventually("beats to run again", SOON, || async {
        holds(leader.rest.metric("shardex_tasks_finished_total").await >= finished + 2)
    })
    .await;
    drop(leader);
    tc.cluster.shutdown().await;
}

/// The lease's wiring, without ZooKeeper: a scheduler whose lease is not confirmed neither
/// subscribes nor decides anything (`/health` answers 503 `no-quorum` at once); confirmed, it
/// subscribes; lost, it says why.
#[tokio::test]
async fn a_scheduler_whose_lease_is_unconfirmed_sends_mesos_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    use shardex::scheduler::ha::{Gate, Lease};
    let tc = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config =
        shardex::scheduler::Config::from_toml(&format!("{TUNING}\n{}", app("a", &[])), "t")
            .unwrap();
    let gate = Gate::new(Lease::new(std::time::Duration::from_secs(60)));
    let scheduler =
        shardex::scheduler::Scheduler::prepare(&config, &dir.path().join("s.redb"), "127.0.0.1:0")
            .await
            .unwrap()
            .leading(gate.clone(), 1)
            .start(&config, &tc.cluster.master_url())
            .await
            .unwrap();
    let rest = format!("http://{}", scheduler.rest_addr());
    let (status, body) = health(&rest).await;
    assert_eq!((status, body["status"].as_str()), (503, Some("no-quorum")));
    assert_eq!(body["role"], "leader");
    // An absence can only be watched over a while.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        tc.cluster.scheduler_calls().await.unwrap().is_empty(),
        "nothing reaches the master while the lease is unconfirmed"
    );

    gate.update(|lease| lease.confirmed(tokio::time::Instant::now()));
    eventually(
        "the SUBSCRIBE once the lease is confirmed",
        SOON,
        || async {
            let calls = tc.cluster.scheduler_calls().await.unwrap();
            holds(calls.iter().any(|c| {
                c.call
                    .as_ref()
                    .is_some_and(|c| c.r#type == Some(call::Type::Subscribe as i32))
            }))
        },
    )
    .await;
    eventually("the subscribed health", SOON, || async {
        holds(health(&rest).await.0 == 200)
    })
    .await;

    gate.update(|lease| lease.lose("a test took it"));
    let (status, body) = health(&rest).await;
    assert_eq!(status, 503);
    assert_eq!(body["why"], "it lost the leadership: a test took it");
    scheduler.shutdown().await;
    tc.cluster.shutdown().await;
}

/// `shardex_tasks_finished_total`, or `None` while the leader answers 503 (its lease in doubt
/// for the moment its session moves to another server).
async fn beats_finished(rest_url: &str) -> Option<u64> {
    let response = support::http()
        .get(format!("{rest_url}/metrics"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    shardex::scheduler::metric_sample(&text, "shardex_tasks_finished_total")
}

/// The HA config of the tests whose job `beat` runs its one item every second (on app `a`,
/// the faulty plugin answering ok), on `zookeeper` (`zk://…/root`).
fn beat_config(zookeeper: &str, session_timeout: &str) -> String {
    format!(
        "{TUNING}\n[ha]\nzookeeper = \"{zookeeper}\"\nsession_timeout = \"{session_timeout}\"\n{}\n\
         [[jobs]]\nname = \"beat\"\napp = \"a\"\ncron = \"* * * * * ?\"\n\
         sharding_total_count = 1\nplugin = \"libfaulty.so\"\njob_parameter = \"ok\"\n",
        app("a", &["faulty"])
    )
}

/// Every run of `beat` launched as a READY run (none as a failover), none queued for failover,
/// no task failed.
async fn assert_no_beat_failed_over(leader: &Process, tc: &TestCluster) {
    let beats = runs_per_item(&launches(&tc.cluster).await, "beat");
    assert!(
        beats[&0].iter().all(|kind| kind == "READY"),
        "nothing failed over: {:?}",
        beats[&0]
    );
    assert_eq!(
        leader.rest.get("/api/tasks/failover").await,
        serde_json::json!([])
    );
    assert_eq!(leader.rest.metric("shardex_tasks_failed_total").await, 0);
}

/// A leader on a three-server ensemble while each server in turn is killed and restarted (one
/// of them is the server its session is on): it keeps its session and its lease comes back
/// each time, the job that fires every second keeps running, nothing fails over, and it never
/// stops leading.
#[tokio::test]
async fn each_zookeeper_server_killed_in_turn_loses_nothing_and_the_leader_keeps_firing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut zookeeper) = ZooKeeper::ensemble(
        "each_zookeeper_server_killed_in_turn_loses_nothing_and_the_leader_keeps_firing",
        3,
    ) else {
        return;
    };
    let tc = TestCluster::start().await;
    let config = beat_config(&zookeeper.url("/ensemble"), "10secs");
    let dir = tempfile::tempdir().unwrap();
    let mut leader = start_scheduler(&ha_args(dir.path(), &config, &tc.cluster.master_url()));
    eventually("the scheduler to lead", SOON, || async {
        (health(&leader.scheduler.rest_url).await.0 == 200).then_some(())
    })
    .await;
    for server in 0..3 {
        let finished = beats_finished(&leader.scheduler.rest_url)
            .await
            .unwrap_or(0);
        zookeeper.kill_server(server);
        // A loss of the quorum's leader means an election and a session moving to another
        // server: allowed a multi-step bound.
        eventually("two more beats with a server down", EVENTUALLY, || async {
            let now = beats_finished(&leader.scheduler.rest_url).await;
            holds(now.is_some_and(|n| n >= finished + 2))
        })
        .await;
        zookeeper.start_server(server);
        zookeeper.wait_serving(&[server]);
    }
    let finished = beats_finished(&leader.scheduler.rest_url)
        .await
        .unwrap_or(0);
    eventually("two more beats with all servers back", SOON, || async {
        let now = beats_finished(&leader.scheduler.rest_url).await;
        holds(now.is_some_and(|n| n >= finished + 2))
    })
    .await;
    assert!(
        leader.scheduler.child.try_wait().unwrap().is_none(),
        "still the same leader process"
    );
    assert_no_beat_failed_over(&leader, &tc).await;
    drop(leader);
    tc.cluster.shutdown().await;
}

/// A leader whose ZooKeeper connection breaks around its commits, the `multi` lost before the
/// server or applied with its answer lost (what a server dying mid-request does), keeps
/// leading: it waits for the session to come back, learns from `meta/commit` whether the commit
/// was applied, writes each one exactly once, and the job that fires every second keeps
/// running, with nothing failed over.
#[tokio::test]
async fn a_leader_whose_commits_lose_their_answers_keeps_leading_and_writes_each_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(zookeeper) = ZooKeeper::standalone(
        "a_leader_whose_commits_lose_their_answers_keeps_leading_and_writes_each_once",
    ) else {
        return;
    };
    let proxy = ZkProxy::start(zookeeper.client_addr(0));
    let tc = TestCluster::start().await;
    let config = beat_config(&format!("zk://{}/cut", proxy.addr()), "10secs");
    let dir = tempfile::tempdir().unwrap();
    let mut leader = start_scheduler(&ha_args(dir.path(), &config, &tc.cluster.master_url()));
    eventually("the scheduler to lead", SOON, || async {
        (health(&leader.scheduler.rest_url).await.0 == 200).then_some(())
    })
    .await;
    let cuts = [
        Cut::BeforeTheServer,
        Cut::AfterTheAnswer,
        Cut::BeforeTheServer,
        Cut::AfterTheAnswer,
    ];
    for (n, cut) in cuts.into_iter().enumerate() {
        let finished = beats_finished(&leader.scheduler.rest_url)
            .await
            .unwrap_or(0);
        proxy.arm(cut);
        eventually(&format!("cut {n} ({cut:?})"), SOON, || async {
            holds(proxy.cuts() == n + 1)
        })
        .await;
        eventually(
            &format!("two more beats after cut {n}"),
            EVENTUALLY,
            || async {
                let now = beats_finished(&leader.scheduler.rest_url).await;
                holds(now.is_some_and(|n| n >= finished + 2))
            },
        )
        .await;
    }
    assert!(
        leader.scheduler.is_running(),
        "still the same leader process"
    );
    assert_eq!(
        leader
            .scheduler
            .lines_with("the answer to a commit was lost")
            .len(),
        cuts.len(),
        "each cut was a commit's lost answer: {:#?}",
        leader.scheduler.log()
    );
    assert_no_beat_failed_over(&leader, &tc).await;
    drop(leader);
    tc.cluster.shutdown().await;
}

/// A standby whose registration in the election lost its answer (the create applied, the
/// connection broken before the answer came back) adopts the node it made, found by its
/// session and data, instead of failing or making a second one (which would sit below its own
/// for as long as the session lives, so it would never lead): it stands by, there are exactly
/// two candidates, and it leads once the leader stops.
#[tokio::test]
async fn a_standby_whose_registration_lost_its_answer_adopts_its_node_and_leads_later() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(zookeeper) = ZooKeeper::standalone(
        "a_standby_whose_registration_lost_its_answer_adopts_its_node_and_leads_later",
    ) else {
        return;
    };
    let proxy = ZkProxy::start(zookeeper.client_addr(0));
    let tc = TestCluster::start().await;
    let config = |servers: String| beat_config(&format!("zk://{servers}/adopt"), "10secs");
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = tc.cluster.master_url();
    let mut first = start_scheduler(&ha_args(
        one.path(),
        &config(zookeeper.connect_string()),
        &master,
    ));
    eventually("the first scheduler to lead", SOON, || async {
        (health(&first.scheduler.rest_url).await.0 == 200).then_some(())
    })
    .await;
    proxy.arm_create("/adopt/election/", Cut::AfterTheAnswer);
    let mut second = start_scheduler(&ha_args(
        two.path(),
        &config(proxy.addr().to_string()),
        &master,
    ));
    eventually("the second to stand by", SOON, || async {
        (health(&second.scheduler.rest_url).await.1["status"] == "standby").then_some(())
    })
    .await;
    assert_eq!(proxy.cuts(), 1, "its registration lost its answer");
    let raw = zookeeper_client::Client::connect(&zookeeper.connect_string())
        .await
        .unwrap();
    let candidates = raw.list_children("/adopt/election").await.unwrap();
    assert_eq!(candidates.len(), 2, "one node each: {candidates:?}");
    assert_eq!(
        second
            .scheduler
            .lines_with("the answer to registering in the election was lost")
            .len(),
        1
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.scheduler.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = support::eventually_blocking("the leader to exit", SOON, || {
        first.scheduler.child.try_wait().unwrap()
    });
    assert!(status.success(), "a clean stop exits 0: {status:?}");
    eventually("the second to lead", SOON, || async {
        (health(&second.scheduler.rest_url).await.0 == 200).then_some(())
    })
    .await;
    assert!(second.scheduler.is_running());
    drop(second);
    tc.cluster.shutdown().await;
}

/// A leader stopped cleanly (SIGTERM) hands over at once: it deletes its election node, so the
/// standby leads long before the leader's 30 s session could have expired, and it exits 0.
#[tokio::test]
async fn a_leader_stopped_cleanly_hands_over_at_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(zookeeper) = ZooKeeper::standalone("a_leader_stopped_cleanly_hands_over_at_once")
    else {
        return;
    };
    let tc = TestCluster::start().await;
    let config = beat_config(&zookeeper.url("/handover"), "30secs");
    let ((_one, mut first), (_two, second)) =
        leader_then_standby(&config, &tc.cluster.master_url()).await;
    eventually("the second to stand by", SOON, || async {
        (health(&second.scheduler.rest_url).await.1["status"] == "standby").then_some(())
    })
    .await;

    let stopped = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.scheduler.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = support::eventually_blocking("the leader to exit", SOON, || {
        first.scheduler.child.try_wait().unwrap()
    });
    assert!(status.success(), "a clean stop exits 0: {status:?}");
    eventually("the standby to lead", SOON, || async {
        (health(&second.scheduler.rest_url).await.0 == 200).then_some(())
    })
    .await;
    assert!(
        stopped.elapsed() < std::time::Duration::from_secs(30),
        "the takeover waited for the session to expire"
    );
    assert_eq!(
        second.rest.metric("shardex_leader_elections_total").await,
        2
    );
    let finished = second.rest.metric("shardex_tasks_finished_total").await;
    eventually("the new leader's beats to finish", SOON, || async {
        holds(second.rest.metric("shardex_tasks_finished_total").await > finished)
    })
    .await;
    drop(second);
    tc.cluster.shutdown().await;
}
