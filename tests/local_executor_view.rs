//! The executor API seen from a hand-rolled executor: the test itself subscribes for an
//! executor whose process (`sleep`) never does, and checks every event the agent sends.

mod support;

use std::time::Duration;

use shardex::mesos::proto::v1::{self, TaskState, executor, task_status};
use shardex::mesos::{Client, ClientConfig, Subscription, uuid};
use support::*;

struct HandExecutor {
    client: Client,
    framework_id: String,
    executor_id: String,
}

impl HandExecutor {
    fn new(url: String, framework_id: &str, executor_id: &str) -> HandExecutor {
        HandExecutor {
            client: Client::new(url, ClientConfig::default()).unwrap(),
            framework_id: framework_id.into(),
            executor_id: executor_id.into(),
        }
    }

    fn call(&self, kind: executor::call::Type) -> executor::Call {
        executor::Call {
            executor_id: v1::ExecutorId {
                value: self.executor_id.clone(),
            },
            framework_id: v1::FrameworkId {
                value: self.framework_id.clone(),
            },
            r#type: Some(kind as i32),
            ..Default::default()
        }
    }

    async fn subscribe(&self) -> Subscription<executor::Event> {
        let mut call = self.call(executor::call::Type::Subscribe);
        call.subscribe = Some(Default::default());
        self.client.subscribe(&call).await.expect("SUBSCRIBE")
    }

    fn update(&self, task: &str, state: TaskState, id: &[u8]) -> executor::Call {
        let mut call = self.call(executor::call::Type::Update);
        call.update = Some(executor::call::Update {
            status: v1::TaskStatus {
                task_id: v1::TaskId { value: task.into() },
                state: state as i32,
                source: Some(task_status::Source::Executor as i32),
                uuid: Some(id.to_vec()),
                ..Default::default()
            },
        });
        call
    }
}

async fn next(subscription: &mut Subscription<executor::Event>) -> executor::Event {
    tokio::time::timeout(SOON, subscription.next_event())
        .await
        .expect("an executor event in time")
        .expect("a healthy stream")
        .expect("the stream is open")
}

fn kind(event: &executor::Event) -> executor::event::Type {
    event
        .r#type
        .and_then(|t| executor::event::Type::try_from(t).ok())
        .unwrap_or(executor::event::Type::Unknown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_launch_acknowledged_and_updates_after_terminal() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("hand").await;
    let info = executor_info("hand", "sleep 60", Vec::new());
    let offer = fw.next_offer().await;
    fw.launch(&offer, vec![task_info("h1", &agent, &info, "payload-h1")])
        .await
        .unwrap();
    // Wait for the container's process, then subscribe in its place.
    let pid = executor_started(&tc.cluster, "hand").await;
    let hand = HandExecutor::new(tc.cluster.agent_url(), &fw.framework_id, "hand");
    let mut events = hand.subscribe().await;
    assert!(
        events.stream_id().is_none(),
        "executor streams carry no Mesos-Stream-Id"
    );

    let subscribed = next(&mut events).await;
    assert_eq!(kind(&subscribed), executor::event::Type::Subscribed);
    let subscribed = subscribed.subscribed.unwrap();
    let executor_info = &subscribed.executor_info;
    assert_eq!(
        executor_info.framework_id.as_ref().unwrap().value,
        fw.framework_id
    );
    assert!(
        executor_info
            .resources
            .iter()
            .all(|r| { r.allocation_info.as_ref().and_then(|a| a.role.as_deref()) == Some("*") })
    );
    assert_eq!(
        subscribed.framework_info.id.as_ref().unwrap().value,
        fw.framework_id
    );
    assert_eq!(subscribed.framework_info.name, "hand");
    let agent_info = &subscribed.agent_info;
    assert_eq!(agent_info.id.as_ref().unwrap().value, agent);
    assert_eq!(agent_info.checkpoint, Some(true));
    assert_eq!(
        agent_info.port,
        Some(i32::from(tc.cluster.agent_endpoint().port()))
    );
    let names: Vec<&str> = agent_info
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["cpus", "mem", "disk", "ports"],
        "configuration order, no role"
    );
    #[allow(deprecated)]
    let no_role = agent_info.resources.iter().all(|r| r.role.is_none());
    assert!(no_role);
    let container_id = subscribed.container_id.unwrap().value;
    let runs = tc
        .cluster
        .work_dir()
        .join("slaves")
        .join(&agent)
        .join("frameworks")
        .join(&fw.framework_id)
        .join("executors/hand/runs");
    assert_eq!(
        std::fs::read_link(runs.join("latest"))
            .unwrap()
            .to_string_lossy(),
        container_id
    );

    let launch = next(&mut events).await;
    assert_eq!(kind(&launch), executor::event::Type::Launch);
    let task = launch.launch.unwrap().task;
    assert_eq!(task.task_id.value, "h1");
    assert_eq!(task.data.as_deref(), Some(&b"payload-h1"[..]));
    assert!(task.resources.iter().all(|r| r.allocation_info.is_some()));
    assert_eq!(
        task.executor
            .as_ref()
            .unwrap()
            .framework_id
            .as_ref()
            .unwrap()
            .value,
        fw.framework_id
    );

    // UPDATE → 202, ACKNOWLEDGED with the same uuid, and the scheduler gets it with
    // container_status (executor_pid = the container's process).
    let running_uuid = uuid::new_update_uuid();
    hand.client
        .call(&hand.update("h1", TaskState::TaskRunning, &running_uuid))
        .await
        .expect("202");
    let ack = next(&mut events).await;
    assert_eq!(kind(&ack), executor::event::Type::Acknowledged);
    let ack = ack.acknowledged.unwrap();
    assert_eq!(
        (ack.task_id.value.as_str(), ack.uuid.as_slice()),
        ("h1", running_uuid.as_slice())
    );
    let running = fw.next_update("h1").await;
    assert_eq!(running.uuid.as_deref(), Some(running_uuid.as_slice()));
    let container = running.container_status.clone().unwrap();
    assert_eq!(container.executor_pid, Some(pid));
    assert_eq!(container.container_id.unwrap().value, container_id);
    // The same update again: acknowledged again, not forwarded again.
    hand.client
        .call(&hand.update("h1", TaskState::TaskRunning, &running_uuid))
        .await
        .expect("202");
    assert_eq!(
        kind(&next(&mut events).await),
        executor::event::Type::Acknowledged
    );
    fw.acknowledge(&running).await.unwrap();

    let finished_uuid = uuid::new_update_uuid();
    hand.client
        .call(&hand.update("h1", TaskState::TaskFinished, &finished_uuid))
        .await
        .expect("202");
    assert_eq!(
        kind(&next(&mut events).await),
        executor::event::Type::Acknowledged
    );
    let finished = fw.next_update("h1").await;
    assert_eq!(
        state(&finished),
        TaskState::TaskFinished,
        "no duplicate RUNNING in between"
    );
    fw.acknowledge(&finished).await.unwrap();

    // After the terminal update was acknowledged the agent has forgotten the task: an update
    // is forwarded (without container_status) and never ACKNOWLEDGED.
    let late_uuid = uuid::new_update_uuid();
    hand.client
        .call(&hand.update("h1", TaskState::TaskRunning, &late_uuid))
        .await
        .expect("202");
    let late = fw.next_update("h1").await;
    assert_eq!(state(&late), TaskState::TaskRunning);
    assert!(late.container_status.is_none());
    assert_eq!(late.uuid.as_deref(), Some(late_uuid.as_slice()));
    fw.acknowledge(&late).await.unwrap();
    // The next event the executor gets is the SHUTDOWN we ask for now, not an ACKNOWLEDGED.
    fw.shutdown_executor("hand", &agent).await.unwrap();
    assert_eq!(
        kind(&next(&mut events).await),
        executor::event::Type::Shutdown
    );
    // Ignoring SHUTDOWN: after the grace period the process group is SIGKILLed.
    let failure = fw
        .wait_for("FAILURE", SOON, |e| e.failure.is_some())
        .await
        .failure
        .unwrap();
    assert_eq!(failure.status, Some(9));
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_get_heartbeats_on_their_subscription() {
    let tc =
        TestCluster::start_with(|c| c.executor_heartbeat_interval = Duration::from_millis(100))
            .await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("beat").await;
    let offer = fw.next_offer().await;
    fw.launch(
        &offer,
        vec![task_info(
            "b1",
            &agent,
            &executor_info("beat", "sleep 60", Vec::new()),
            "",
        )],
    )
    .await
    .unwrap();
    executor_started(&tc.cluster, "beat").await;
    let hand = HandExecutor::new(tc.cluster.agent_url(), &fw.framework_id, "beat");
    let mut events = hand.subscribe().await;
    let kinds = [
        kind(&next(&mut events).await),
        kind(&next(&mut events).await),
        kind(&next(&mut events).await),
        kind(&next(&mut events).await),
    ];
    assert_eq!(
        kinds,
        [
            executor::event::Type::Subscribed,
            executor::event::Type::Launch,
            executor::event::Type::Heartbeat,
            executor::event::Type::Heartbeat,
        ]
    );
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_queued_task_and_the_executor_that_never_got_one() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("queued").await;
    let info = executor_info("late", "sleep 60", Vec::new());
    let offer = fw.next_offer().await;
    fw.launch(&offer, vec![task_info("q1", &agent, &info, "")])
        .await
        .unwrap();
    fw.kill("q1", None).await.unwrap();
    let killed = fw.await_state("q1", TaskState::TaskKilled).await;
    assert_eq!(
        reason(&killed),
        Some(task_status::Reason::TaskKilledDuringLaunch)
    );
    assert_eq!(
        killed.message.as_deref(),
        Some("Killed before delivery to the executor")
    );
    assert_eq!(killed.source, Some(task_status::Source::Agent as i32));
    assert_eq!(killed.executor_id.unwrap().value, "late");
    // The executor finally subscribes: it never got a task and has none queued, so its stream
    // holds only SHUTDOWN (MESOS-8411 workaround), no SUBSCRIBED.
    executor_started(&tc.cluster, "late").await;
    let hand = HandExecutor::new(tc.cluster.agent_url(), &fw.framework_id, "late");
    let mut events = hand.subscribe().await;
    assert_eq!(
        kind(&next(&mut events).await),
        executor::event::Type::Shutdown
    );
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}
