//! Executors dying, schedulers going away, and the agent restarting: what a framework and an
//! executor see, against what real Mesos 1.12 did (tests/data/real-mesos/recovery).

mod support;

use std::time::Duration;

use shardex::mesos::Encoding;
use shardex::mesos::proto::v1::{self, TaskState, executor, scheduler, task_status};
use support::*;

fn is_failure_of(executor_id: &str) -> impl Fn(&scheduler::Event) -> bool + '_ {
    move |e| {
        e.failure
            .as_ref()
            .and_then(|f| f.executor_id.as_ref())
            .is_some_and(|id| id.value == executor_id)
    }
}

fn position(fw: &TestFramework, predicate: impl Fn(&scheduler::Event) -> bool) -> usize {
    fw.history
        .iter()
        .position(predicate)
        .expect("the event is in the history")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_crash_fails_its_tasks_after_a_failure_event() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("crash").await;
    let executor = test_executor_info("victim");
    let offer = fw.next_offer().await;
    fw.launch(&offer, vec![task_info("v1", &agent, &executor, "running")])
        .await
        .unwrap();
    fw.await_state("v1", TaskState::TaskRunning).await;

    // kill -9 of the executor's process.
    let pid = tc
        .cluster
        .executor_pid("victim")
        .await
        .unwrap()
        .expect("a pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    let failure = fw.wait_for("FAILURE", SOON, is_failure_of("victim")).await;
    let failure = failure.failure.unwrap();
    assert_eq!(failure.status, Some(9), "raw wait status of SIGKILL");
    assert_eq!(failure.agent_id.unwrap().value, agent);
    let failed = fw.next_update("v1").await;
    assert_eq!(state(&failed), TaskState::TaskFailed);
    assert_eq!(
        reason(&failed),
        Some(task_status::Reason::ExecutorTerminated)
    );
    assert_eq!(failed.message.as_deref(), Some("Executor terminated"));
    assert_eq!(failed.source, Some(task_status::Source::Agent as i32));
    assert_eq!(failed.executor_id.as_ref().unwrap().value, "victim");
    assert!(failed.container_status.is_none());
    assert!(failed.uuid.is_some());
    assert!(
        position(&fw, is_failure_of("victim"))
            < position(&fw, |e| e.update.as_ref().is_some_and(|u| u
                .status
                .task_id
                .value
                == "v1"
                && state(&u.status) == TaskState::TaskFailed)),
        "FAILURE comes before the agent's TASK_FAILED"
    );
    fw.acknowledge(&failed).await.unwrap();

    // The same executor id gets a new container; `crash` exits with status 137 → 137 << 8.
    let offer = fw.next_offer().await;
    assert!(
        offer.executor_ids.is_empty(),
        "the dead executor is gone from offers"
    );
    fw.launch(&offer, vec![task_info("v2", &agent, &executor, "crash")])
        .await
        .unwrap();
    let failure = fw.wait_for("FAILURE", SOON, is_failure_of("victim")).await;
    assert_eq!(failure.failure.unwrap().status, Some(137 << 8));
    let failed = fw.await_state("v2", TaskState::TaskFailed).await;
    assert_eq!(
        reason(&failed),
        Some(task_status::Reason::ExecutorTerminated)
    );
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_timeout_and_fetch_failure_fail_the_tasks() {
    let tc = TestCluster::start_with(|c| {
        c.executor_registration_timeout = Duration::from_millis(500);
    })
    .await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("timeouts").await;
    let offer = fw.next_offer().await;
    let silent = executor_info("silent", "sleep 30", Vec::new());
    let unfetchable = executor_info(
        "unfetchable",
        "true",
        vec![v1::command_info::Uri {
            value: "/no/such/file.tar.gz".into(),
            ..Default::default()
        }],
    );
    let https = executor_info(
        "tls",
        "true",
        vec![v1::command_info::Uri {
            // Nothing listens on port 1: the download is tried, over TLS, and fails.
            value: "https://127.0.0.1:1/x".into(),
            ..Default::default()
        }],
    );
    fw.launch(
        &offer,
        vec![
            task_info("r1", &agent, &silent, ""),
            task_info("f1", &agent, &unfetchable, ""),
            task_info("h1", &agent, &https, ""),
        ],
    )
    .await
    .unwrap();
    let failed = fw.await_state("f1", TaskState::TaskFailed).await;
    assert_eq!(
        reason(&failed),
        Some(task_status::Reason::ContainerLaunchFailed)
    );
    let message = failed.message.unwrap();
    assert!(
        message.starts_with("Failed to launch container: Failed to fetch '/no/such/file.tar.gz'"),
        "{message}"
    );
    let failed = fw.await_state("h1", TaskState::TaskFailed).await;
    let message = failed.message.unwrap();
    assert!(
        message
            .starts_with("Failed to launch container: Failed to fetch 'https://127.0.0.1:1/x': "),
        "{message}"
    );
    let failed = fw.await_state("r1", TaskState::TaskFailed).await;
    assert_eq!(
        reason(&failed),
        Some(task_status::Reason::ExecutorRegistrationTimeout)
    );
    assert_eq!(
        failed.message.as_deref(),
        Some("Executor did not register within 500ms")
    );
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_failover_within_and_after_the_timeout() {
    let tc = TestCluster::start().await;
    let url = tc.cluster.master_url();
    let agent = tc.cluster.agent_id().to_owned();
    let mut info = framework_info("failover");
    info.failover_timeout = Some(1.0);
    let mut fw = TestFramework::subscribe(&url, info, Encoding::Protobuf)
        .await
        .unwrap();
    let executor = test_executor_info("survivor");
    let offer = fw.next_offer().await;
    fw.launch(&offer, vec![task_info("s1", &agent, &executor, "running")])
        .await
        .unwrap();
    fw.await_state("s1", TaskState::TaskRunning).await;

    // The scheduler goes away: its calls are refused with 403 until it resubscribes.
    let info = fw.info.clone();
    let old_client = fw.client.clone();
    drop(fw);
    let mut reconcile = scheduler::Call {
        framework_id: info.id.clone(),
        r#type: Some(scheduler::call::Type::Reconcile as i32),
        reconcile: Some(Default::default()),
        ..Default::default()
    };
    // The master notices the closed stream asynchronously.
    let error = eventually(
        "the old stream's calls to be refused with 403",
        SOON,
        || async {
            old_client
                .call(&reconcile)
                .await
                .err()
                .filter(|error| error.status() == Some(403))
        },
    )
    .await;
    assert!(
        error.to_string().ends_with("Framework is not subscribed"),
        "{error}"
    );
    // Back within the timeout: same id, task still there.
    let mut fw = TestFramework::subscribe(&url, info.clone(), Encoding::Protobuf)
        .await
        .unwrap();
    fw.reconcile(&[]).await.unwrap();
    let latest = fw.next_update("s1").await;
    assert_eq!(state(&latest), TaskState::TaskRunning);
    assert_eq!(
        latest.message.as_deref(),
        Some("Reconciliation: Latest task state")
    );
    assert_eq!(reason(&latest), Some(task_status::Reason::Reconciliation));
    assert!(latest.uuid.is_none());
    assert_eq!(latest.executor_id.unwrap().value, "survivor");

    // Gone for longer than failover_timeout: the framework is removed, its executor shut down.
    drop(fw);
    executor_gone(&tc.cluster, "survivor").await;
    let calls = tc.cluster.executor_calls().await.unwrap();
    let last_update = calls
        .iter()
        .filter_map(|c| c.call.as_ref()?.update.as_ref())
        .last()
        .expect("updates");
    assert_eq!(
        state(&last_update.status),
        TaskState::TaskKilled,
        "SHUTDOWN killed the task"
    );
    let error = match TestFramework::subscribe(&url, info, Encoding::Protobuf).await {
        Err(error) => error,
        Ok(_) => panic!("a removed framework cannot come back"),
    };
    assert!(
        error.contains("ERROR") || error.contains("Framework has been removed"),
        "{error}"
    );
    reconcile.framework_id = None;
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_with_resubscription_keeps_tasks_and_resends_updates_twice() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("restart-a").await;
    let executor = test_executor_info("exec-a");
    let offer = fw.next_offer().await;
    fw.accept(
        vec![offer.id.clone()],
        vec![launch_operation(vec![
            task_info("r1", &agent, &executor, "running"),
            task_info("r1b", &agent, &executor, "running"),
        ])],
        Some(0.0),
    )
    .await
    .unwrap();
    fw.await_state("r1", TaskState::TaskRunning).await;
    // r1b's RUNNING is held: not acknowledged across the restart.
    let held = fw.next_update("r1b").await;
    assert_eq!(state(&held), TaskState::TaskRunning);
    // An offer held across the restart is rescinded.
    let offer = fw.next_offer().await;
    assert_eq!(
        offer.executor_ids,
        vec![v1::ExecutorId {
            value: "exec-a".into()
        }]
    );

    tc.cluster
        .restart_agent(Duration::from_millis(300))
        .await
        .unwrap();
    // A KILL while the agent is away is kept by the master and sent when it re-registers.
    fw.kill("r1", None).await.unwrap();
    let rescind = fw
        .wait_for("RESCIND", SOON, |e| {
            event_type(e) == scheduler::event::Type::Rescind
        })
        .await;
    assert_eq!(rescind.rescind.unwrap().offer_id, offer.id);
    // After re-registration: OFFERS, then the pending update twice, byte for byte.
    let offers_at = {
        fw.wait_for("OFFERS after re-registration", SOON, |e| {
            event_type(e) == scheduler::event::Type::Offers
        })
        .await;
        fw.history.len() - 1
    };
    let first = fw.next_update("r1b").await;
    let second = fw.next_update("r1b").await;
    assert_eq!(
        first, held,
        "re-sent byte for byte (same uuid, timestamp, container_status)"
    );
    assert_eq!(second, held);
    assert!(
        position(&fw, |e| e.update.as_ref().is_some_and(|u| u
            .status
            .task_id
            .value
            == "r1b"))
            < offers_at,
        "the first copy came before the restart"
    );
    fw.acknowledge(&first).await.unwrap();
    fw.acknowledge(&second).await.unwrap();

    // The executor is still the same process and still works: the held KILL arrives.
    fw.await_state("r1", TaskState::TaskKilled).await;
    let calls = tc.cluster.executor_calls().await.unwrap();
    let subscribes: Vec<u16> = calls
        .iter()
        .filter(|c| {
            c.call.as_ref().and_then(|c| c.r#type) == Some(executor::call::Type::Subscribe as i32)
        })
        .map(|c| c.status)
        .filter(|s| *s == 200)
        .collect();
    assert_eq!(subscribes, [200, 200], "subscribed, then resubscribed");
    let resubscribe = calls
        .iter()
        .rev()
        .find(|c| c.status == 200 && c.call.as_ref().is_some_and(|c| c.subscribe.is_some()))
        .and_then(|c| c.call.clone())
        .unwrap();
    assert!(
        resubscribe
            .subscribe
            .unwrap()
            .unacknowledged_tasks
            .is_empty(),
        "every task had an acknowledged update"
    );
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_kills_executors_that_do_not_resubscribe() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("restart-b").await;
    let executor = with_env(
        test_executor_info("exec-b"),
        "TEST_EXECUTOR_RESUBSCRIBE",
        "no",
    );
    let offer = fw.next_offer().await;
    fw.launch(&offer, vec![task_info("r2", &agent, &executor, "running")])
        .await
        .unwrap();
    fw.await_state("r2", TaskState::TaskRunning).await;
    let pid = tc
        .cluster
        .executor_pid("exec-b")
        .await
        .unwrap()
        .expect("pid");

    tc.cluster
        .restart_agent(Duration::from_millis(200))
        .await
        .unwrap();
    let failure = fw.wait_for("FAILURE", SOON, is_failure_of("exec-b")).await;
    assert_eq!(
        failure.failure.unwrap().status,
        Some(9),
        "SIGKILLed, no grace"
    );
    let gone = fw.next_update("r2").await;
    assert_eq!(state(&gone), TaskState::TaskGone);
    assert_eq!(
        reason(&gone),
        Some(task_status::Reason::ExecutorReregistrationTimeout)
    );
    assert_eq!(
        gone.message.as_deref(),
        Some("Executor did not reregister within 1500ms")
    );
    assert_eq!(gone.source, Some(task_status::Source::Agent as i32));
    assert_eq!(gone.executor_id.as_ref().unwrap().value, "exec-b");
    assert!(gone.container_status.is_none());
    fw.acknowledge(&gone).await.unwrap();
    // The process is really gone (SIGKILL of its group).
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
    let zombie_or_gone = !alive
        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
    assert!(zombie_or_gone, "executor {pid} still alive");
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_drops_launches_the_executor_never_saw() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("restart-c").await;
    let lonely = test_executor_info("exec-c");
    let busy = test_executor_info("exec-c2");
    let offer = fw.next_offer().await;
    fw.launch(
        &offer,
        vec![
            task_info("r3", &agent, &lonely, "ignore"),
            task_info("r4", &agent, &busy, "running"),
            task_info("r5", &agent, &busy, "ignore"),
        ],
    )
    .await
    .unwrap();
    fw.await_state("r4", TaskState::TaskRunning).await;
    // Both executors got their LAUNCHes (the agent logged them as answered SUBSCRIBEs).
    eventually("both executors' SUBSCRIBEs answered", SOON, || async {
        let answered = tc.cluster.executor_calls().await.unwrap();
        holds(answered.iter().filter(|c| c.status == 200).count() >= 2)
    })
    .await;

    tc.cluster
        .restart_agent(Duration::from_millis(200))
        .await
        .unwrap();
    // exec-c had only a dropped task and never sent an update: SHUTDOWN, exit 0.
    let failure = fw
        .wait_for("FAILURE of exec-c", SOON, is_failure_of("exec-c"))
        .await;
    assert_eq!(failure.failure.unwrap().status, Some(0));
    for task in ["r3", "r5"] {
        let dropped = fw.next_update(task).await;
        assert_eq!(state(&dropped), TaskState::TaskDropped, "{task}");
        assert_eq!(reason(&dropped), Some(task_status::Reason::AgentRestarted));
        assert_eq!(
            dropped.message.as_deref(),
            Some("Task launched during agent restart")
        );
        assert!(dropped.executor_id.is_some() && dropped.container_status.is_none());
        // Sent twice after re-registration, byte for byte.
        let again = fw.next_update(task).await;
        assert_eq!(again, dropped);
        fw.acknowledge(&dropped).await.unwrap();
    }
    // exec-c's only stream after the restart held a SHUTDOWN and no SUBSCRIBED; exec-c2 works.
    fw.kill("r4", None).await.unwrap();
    fw.await_state("r4", TaskState::TaskKilled).await;
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_after_a_terminal_update() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("after-terminal").await;
    let executor = test_executor_info("exec-e");
    let offer = fw.next_offer().await;
    fw.launch(
        &offer,
        vec![task_info("e1", &agent, &executor, "update-after-terminal")],
    )
    .await
    .unwrap();
    let running = fw.next_update("e1").await;
    fw.acknowledge(&running).await.unwrap();
    let finished = fw.next_update("e1").await;
    assert_eq!(state(&finished), TaskState::TaskFinished);
    // The RUNNING sent after FINISHED (before its acknowledgement) is ACKNOWLEDGED to the
    // executor and dropped: never forwarded.
    eventually("the executor's three UPDATEs", SOON, || async {
        let calls = tc.cluster.executor_calls().await.unwrap();
        holds(
            calls
                .iter()
                .filter(|c| c.call.as_ref().is_some_and(|c| c.update.is_some()))
                .count()
                == 3,
        )
    })
    .await;
    fw.acknowledge(&finished).await.unwrap();
    fw.reconcile(&[("e1", Some(&agent))]).await.unwrap();
    let gone = fw.next_update("e1").await;
    assert_eq!(
        state(&gone),
        TaskState::TaskGone,
        "no RUNNING was forwarded in between"
    );
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

/// Mesos remembers at most `--max_completed_frameworks` removed frameworks: the ids it still
/// remembers may not subscribe again, the oldest forgotten one may.
#[tokio::test]
async fn removed_frameworks_are_remembered_up_to_max_completed_frameworks() {
    let tc = TestCluster::start_with(|c| c.max_completed_frameworks = 1).await;
    let url = tc.cluster.master_url();
    let mut removed = Vec::new();
    for name in ["first", "second"] {
        let fw = TestFramework::subscribe(&url, framework_info(name), Encoding::Protobuf)
            .await
            .unwrap();
        fw.send(&fw.call(scheduler::call::Type::Teardown))
            .await
            .unwrap();
        removed.push(fw.info.clone());
    }
    let error = match TestFramework::subscribe(&url, removed[1].clone(), Encoding::Protobuf).await {
        Err(error) => error,
        Ok(_) => panic!("the last removed framework cannot come back"),
    };
    assert!(error.contains("Framework has been removed"), "{error}");
    // Forgotten: its id subscribes as a new framework's would.
    let again = TestFramework::subscribe(&url, removed[0].clone(), Encoding::Protobuf)
        .await
        .unwrap();
    assert_eq!(
        Some(again.framework_id.as_str()),
        removed[0].id.as_ref().map(|id| id.value.as_str())
    );
    tc.cluster.shutdown().await;
}
