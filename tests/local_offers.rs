//! Offers and launches: validation answers (TASK_ERROR, TASK_DROPPED), refuse filters, REVIVE
//! and SUPPRESS, several frameworks, and JSON on both APIs.

mod support;

use std::time::Duration;

use shardex::mesos::Encoding;
use shardex::mesos::proto::v1::{self, TaskState, scheduler, task_status};
use support::*;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_launches_get_mesos_answers() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("invalid").await;
    let executor = test_executor_info("exec-v");
    let offer = fw.next_offer().await;

    let mut both = task_info("both", &agent, &executor, "running");
    both.command = Some(v1::CommandInfo {
        value: Some("true".into()),
        ..Default::default()
    });
    let mut greedy = task_info("greedy", &agent, &executor, "running");
    greedy.resources = vec![scalar("cpus", 100.0)];
    let slash = task_info("a/b", &agent, &executor, "running");
    let mut other = executor.clone();
    other.command.as_mut().unwrap().value = Some("/bin/false".into());
    let incompatible = task_info("incompatible", &agent, &other, "running");
    let good = task_info("good", &agent, &executor, "running");
    let duplicate = task_info("good", &agent, &executor, "running");
    fw.launch(
        &offer,
        vec![both, greedy, slash, good, incompatible, duplicate],
    )
    .await
    .unwrap();
    let expect_error = |status: &v1::TaskStatus| {
        assert_eq!(state(status), TaskState::TaskError);
        assert_eq!(reason(status), Some(task_status::Reason::TaskInvalid));
        assert_eq!(status.source, Some(task_status::Source::Master as i32));
        assert!(
            status.uuid.is_none(),
            "master updates are never acknowledged"
        );
        status.message.clone().unwrap_or_default()
    };
    assert_eq!(
        expect_error(&fw.next_update("both").await),
        "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
    );
    let message = expect_error(&fw.next_update("greedy").await);
    assert!(
        message.starts_with(
            "Total resources cpus(allocated: *):100.1; mem(allocated: *):32 required by task and \
             its executor is more than available ports(allocated: *):[31000-32000]"
        ) || message.starts_with(
            "Total resources cpus(allocated: *):100.1; mem(allocated: *):32 required by task and \
             its executor is more than available cpus(allocated: *):4;"
        ),
        "{message}"
    );
    assert_eq!(
        expect_error(&fw.next_update("a/b").await),
        "'a/b' contains invalid characters"
    );
    let message = expect_error(&fw.next_update("incompatible").await);
    assert!(
        message.starts_with(
            "ExecutorInfo is not compatible with existing ExecutorInfo with same ExecutorID."
        ),
        "{message}"
    );
    // The valid task ran; its duplicate was refused.
    let first_good = fw.next_update("good").await;
    let second_good = fw.next_update("good").await;
    let (error, running) = if state(&first_good) == TaskState::TaskError {
        (first_good, second_good)
    } else {
        (second_good, first_good)
    };
    assert_eq!(expect_error(&error), "Task has duplicate ID: good");
    assert_eq!(state(&running), TaskState::TaskRunning);
    fw.acknowledge(&running).await.unwrap();

    // The accepted offer is used up: launching on it again drops the tasks.
    fw.launch(
        &offer,
        vec![task_info("late", &agent, &executor, "running")],
    )
    .await
    .unwrap();
    let dropped = fw.next_update("late").await;
    assert_eq!(state(&dropped), TaskState::TaskDropped);
    assert_eq!(reason(&dropped), Some(task_status::Reason::InvalidOffers));
    assert_eq!(
        dropped.message.as_deref(),
        Some(
            format!(
                "Task launched with invalid offers: Offer {} is no longer valid",
                offer.id.value
            )
            .as_str()
        )
    );
    fw.accept(
        Vec::new(),
        vec![launch_operation(vec![task_info(
            "none", &agent, &executor, "",
        )])],
        None,
    )
    .await
    .unwrap();
    let dropped = fw.next_update("none").await;
    assert_eq!(
        dropped.message.as_deref(),
        Some("Task launched with invalid offers: No offers specified")
    );

    // The next offer lists the executor, and executor resources are not charged again.
    fw.revive().await.unwrap();
    let offer = fw.next_offer().await;
    assert_eq!(
        offer.executor_ids,
        vec![v1::ExecutorId {
            value: "exec-v".into()
        }]
    );
    let cpus = offer
        .resources
        .iter()
        .find(|r| r.name == "cpus")
        .and_then(|r| r.scalar.as_ref())
        .map(|s| s.value);
    assert_eq!(cpus, Some(3.8), "4 - 0.1 (executor) - 0.1 (task)");
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_filters_revive_suppress_and_two_frameworks() {
    let tc = TestCluster::start().await;
    let url = tc.cluster.master_url();
    let mut first = TestFramework::subscribe(&url, framework_info("first"), Encoding::Protobuf)
        .await
        .unwrap();
    let offer = first.next_offer().await;
    // A second framework gets nothing while the first holds the whole agent.
    let mut second = TestFramework::subscribe(&url, framework_info("second"), Encoding::Json)
        .await
        .unwrap();
    // Declining with a long filter hands the agent to the other framework.
    first.decline(&offer, Some(3600.0)).await.unwrap();
    let offer = second.next_offer().await;
    assert_eq!(offer.framework_id.value, second.framework_id);
    // A short filter: the same framework gets it back once the filter expires.
    let declined = Instant::now();
    second.decline(&offer, Some(0.5)).await.unwrap();
    let again = second.next_offer().await;
    assert!(
        declined.elapsed() >= Duration::from_millis(500),
        "{:?}",
        declined.elapsed()
    );
    assert_ne!(again.id, offer.id);
    // SUPPRESS: no offers, even without a filter; REVIVE brings them back.
    second.suppress().await.unwrap();
    second.decline(&again, Some(0.0)).await.unwrap();
    // Several allocation ticks (100 ms each) pass without an offer.
    let quiet = second.next_event(Duration::from_millis(500)).await;
    assert!(
        quiet.as_ref().is_err()
            || quiet
                .as_ref()
                .is_ok_and(|e| event_type(e) != scheduler::event::Type::Offers),
        "an offer despite SUPPRESS: {quiet:?}"
    );
    second.revive().await.unwrap();
    second.next_offer().await;
    // REVIVE clears the first framework's filter too once the agent is free again.
    first.revive().await.unwrap();
    second.teardown().await.unwrap();
    let offer = first.next_offer().await;
    assert_eq!(offer.framework_id.value, first.framework_id);
    first.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_framework_and_json_executor() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = TestFramework::subscribe(
        &tc.cluster.master_url(),
        framework_info("json"),
        Encoding::Json,
    )
    .await
    .unwrap();
    let executor = with_env(
        test_executor_info("exec-json"),
        "TEST_EXECUTOR_ENCODING",
        "json",
    );
    let offer = fw.next_offer().await;
    fw.launch(
        &offer,
        vec![
            task_info("j1", &agent, &executor, "finish"),
            task_info("j2", &agent, &executor, "send-message"),
        ],
    )
    .await
    .unwrap();
    let finished = fw.await_state("j1", TaskState::TaskFinished).await;
    assert!(finished.container_status.is_some());
    let message = fw
        .wait_for("MESSAGE", SOON, |e| {
            event_type(e) == scheduler::event::Type::Message
        })
        .await;
    assert_eq!(message.message.unwrap().data, b"hello-from-executor");
    fw.await_state("j2", TaskState::TaskRunning).await;
    let calls = tc.cluster.executor_calls().await.unwrap();
    assert!(
        calls
            .iter()
            .all(|c| c.content_type.as_deref() == Some("application/json"))
    );
    let subscribe = String::from_utf8_lossy(&calls[0].raw).into_owned();
    assert!(subscribe.contains("\"type\":\"SUBSCRIBE\""), "{subscribe}");
    // SHUTDOWN of the executor: it kills j2 and exits; the scheduler sees FAILURE status 0.
    fw.shutdown_executor("exec-json", &agent).await.unwrap();
    fw.await_state("j2", TaskState::TaskKilled).await;
    let failure = fw
        .wait_for("FAILURE", SOON, |e| {
            event_type(e) == scheduler::event::Type::Failure
        })
        .await;
    assert_eq!(failure.failure.unwrap().status, Some(0));
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}
