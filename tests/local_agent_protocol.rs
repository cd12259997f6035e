//! Agent-side protocol details: what the executor endpoint answers through a restart, status
//! update retries, heartbeats, broken executor streams, and non-checkpointing frameworks.

mod support;

use std::time::Duration;

use shardex::mesos::proto::v1::{self, TaskState, executor, scheduler, task_status};
use shardex::mesos::{Encoding, uuid};
use support::*;
use tokio::time::Instant;

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Refused,
    Status(u16, String),
}

async fn probe(client: &shardex::mesos::Client, call: &executor::Call) -> Seen {
    match client.call(call).await {
        Ok(_) => Seen::Status(202, String::new()),
        Err(error) => match error.status() {
            Some(status) => Seen::Status(
                status,
                match &error {
                    shardex::mesos::ApiError::Status { body, .. } => body.clone(),
                    _ => String::new(),
                },
            ),
            None => Seen::Refused,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_endpoint_through_an_agent_restart() {
    // Real agents show the 404 and early-503 windows for tens of ms; they are widened here so
    // probes on a loaded machine cannot miss them.
    let tc = TestCluster::start_with(|c| {
        c.restart_timings.not_ready = Duration::from_millis(250);
        c.restart_timings.recovering_state = Duration::from_millis(250);
    })
    .await;
    let heartbeat = executor::Call {
        executor_id: v1::ExecutorId {
            value: "unused".into(),
        },
        framework_id: v1::FrameworkId {
            value: "unused".into(),
        },
        r#type: Some(executor::call::Type::Heartbeat as i32),
        ..Default::default()
    };
    let mut update = heartbeat.clone();
    update.framework_id.value = "no-such-framework".into();
    update.r#type = Some(executor::call::Type::Update as i32);
    update.update = Some(executor::call::Update {
        status: v1::TaskStatus {
            task_id: v1::TaskId { value: "t".into() },
            state: TaskState::TaskRunning as i32,
            source: Some(task_status::Source::Executor as i32),
            uuid: Some(uuid::new_update_uuid()),
            ..Default::default()
        },
    });
    tc.cluster
        .restart_agent(Duration::from_millis(200))
        .await
        .unwrap();
    // Fresh connections, as the real probes used.
    let config = shardex::mesos::ClientConfig {
        connect_timeout: Duration::from_secs(1),
        call_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let mut phases: Vec<Seen> = Vec::new();
    let deadline = Instant::now() + SOON;
    loop {
        let client = shardex::mesos::Client::new(tc.cluster.agent_url(), config.clone()).unwrap();
        let seen = probe(&client, &heartbeat).await;
        if phases.last() != Some(&seen) {
            phases.push(seen.clone());
        }
        if seen == Seen::Status(202, String::new()) {
            break;
        }
        assert!(Instant::now() < deadline, "{phases:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        phases,
        [
            Seen::Refused,
            Seen::Status(404, "404 Not Found.".into()),
            Seen::Status(503, "Agent has not finished recovery".into()),
            Seen::Status(202, String::new()),
        ]
    );
    // While executors may reregister, UPDATE still gets 503; afterwards the normal answer.
    let client = shardex::mesos::Client::new(tc.cluster.agent_url(), config.clone()).unwrap();
    assert_eq!(
        probe(&client, &update).await,
        Seen::Status(503, "Agent has not finished recovery".into())
    );
    let seen = eventually("the agent to finish recovery", SOON, || async {
        let seen = probe(&client, &update).await;
        (seen != Seen::Status(503, "Agent has not finished recovery".into())).then_some(seen)
    })
    .await;
    assert_eq!(seen, Seen::Status(400, "Framework cannot be found".into()));
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_updates_are_retried_and_heartbeats_flow() {
    let tc = TestCluster::start_with(|c| {
        c.heartbeat_interval = Duration::from_millis(300);
        c.status_update_retry_interval = Duration::from_millis(300);
    })
    .await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("retry").await;
    assert_eq!(
        fw.history[0]
            .subscribed
            .as_ref()
            .unwrap()
            .heartbeat_interval_seconds,
        Some(0.3)
    );
    let offer = fw.next_offer().await;
    fw.launch(
        &offer,
        vec![task_info(
            "u1",
            &agent,
            &test_executor_info("exec-r"),
            "finish",
        )],
    )
    .await
    .unwrap();
    // RUNNING is not acknowledged: the agent re-sends it (byte for byte), and FINISHED waits.
    let first = fw.next_update("u1").await;
    assert_eq!(state(&first), TaskState::TaskRunning);
    let again = fw.next_update("u1").await;
    assert_eq!(
        again, first,
        "the in-flight update is retried, not the next one"
    );
    fw.acknowledge(&again).await.unwrap();
    fw.await_state("u1", TaskState::TaskFinished).await;
    // Heartbeats keep coming at the configured interval.
    let mut beats = 0;
    while beats < 3 {
        let event = fw
            .wait_for("HEARTBEAT", SOON, |e| {
                event_type(e) == scheduler::event::Type::Heartbeat
            })
            .await;
        assert_eq!(event_type(&event), scheduler::event::Type::Heartbeat);
        beats += 1;
    }
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_executor_stream_leaves_the_agent_unmoved() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("drop").await;
    let offer = fw.next_offer().await;
    fw.launch(
        &offer,
        vec![task_info(
            "d1",
            &agent,
            &test_executor_info("exec-d"),
            "running",
        )],
    )
    .await
    .unwrap();
    fw.await_state("d1", TaskState::TaskRunning).await;
    assert!(tc.cluster.drop_executor_stream("exec-d").await.unwrap());
    // The executor (checkpointing) resubscribes on its own; the agent keeps its task.
    eventually("the executor's resubscription", SOON, || async {
        let calls = tc.cluster.executor_calls().await.unwrap();
        holds(calls.iter().filter(|c| c.status == 200).count() == 2)
    })
    .await;
    fw.kill("d1", None).await.unwrap();
    fw.await_state("d1", TaskState::TaskKilled).await;
    assert!(
        !tc.cluster
            .drop_executor_stream("no-such-executor")
            .await
            .unwrap()
    );
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_loses_the_tasks_of_frameworks_that_do_not_checkpoint() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut info = framework_info("no-checkpoint");
    info.checkpoint = Some(false);
    let mut fw = TestFramework::subscribe(&tc.cluster.master_url(), info, Encoding::Protobuf)
        .await
        .unwrap();
    let offer = fw.next_offer().await;
    fw.launch(
        &offer,
        vec![task_info(
            "n1",
            &agent,
            &test_executor_info("exec-n"),
            "running",
        )],
    )
    .await
    .unwrap();
    fw.await_state("n1", TaskState::TaskRunning).await;
    let sandbox_env = tc
        .cluster
        .work_dir()
        .join("slaves")
        .join(&agent)
        .join("frameworks")
        .join(&fw.framework_id)
        .join("executors/exec-n/runs/latest/env.txt");
    let env = std::fs::read_to_string(sandbox_env).unwrap();
    assert!(env.contains("MESOS_CHECKPOINT=0\n"));
    assert!(
        !env.contains("MESOS_RECOVERY_TIMEOUT") && !env.contains("MESOS_SUBSCRIPTION_BACKOFF_MAX")
    );

    tc.cluster
        .restart_agent(Duration::from_millis(200))
        .await
        .unwrap();
    // Even for a PARTITION_AWARE framework: TASK_LOST from the master, at once.
    let lost = fw.next_update("n1").await;
    assert_eq!(state(&lost), TaskState::TaskLost);
    assert_eq!(reason(&lost), Some(task_status::Reason::AgentDisconnected));
    assert_eq!(
        lost.message.as_deref(),
        Some("Agent 127.0.0.1 disconnected")
    );
    assert_eq!(lost.source, Some(task_status::Source::Master as i32));
    assert!(lost.uuid.is_none());
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}
