//! End-to-end scenarios against the embedded cluster: a hand-rolled framework over HTTP and
//! real executor processes (`examples/test_executor.rs`), checked against what real Mesos 1.12
//! did in tests/data/real-mesos.

mod support;

use std::time::Duration;

use shardex::mesos::proto::v1::{self, TaskState, executor, scheduler, task_status};
use shardex::mesos::{Encoding, uuid};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarball_executor_runs_tasks_with_updates_acks_kill_and_messages() {
    let tc = TestCluster::start().await;
    let cluster = &tc.cluster;
    let mut fw = TestFramework::subscribe(
        &cluster.master_url(),
        framework_info("e2e"),
        Encoding::Protobuf,
    )
    .await
    .expect("subscribe");
    assert!(fw.framework_id.starts_with(cluster.master_id()));
    assert!(fw.framework_id.ends_with("-0000"), "{}", fw.framework_id);
    let subscribed = fw.history[0].subscribed.clone().expect("SUBSCRIBED");
    let master_info = subscribed.master_info.expect("master_info");
    assert_eq!(master_info.ip, 16777343, "127.0.0.1 in network order");
    assert_eq!(master_info.version.as_deref(), Some("1.12.0"));
    assert_eq!(master_info.capabilities.len(), 3);
    assert_eq!(subscribed.heartbeat_interval_seconds, Some(15.0));
    // HEARTBEAT right after SUBSCRIBED, then the first offer.
    let heartbeat = fw.next_event(SOON).await.expect("heartbeat");
    assert_eq!(event_type(&heartbeat), scheduler::event::Type::Heartbeat);
    let offer = fw.next_offer().await;
    assert_eq!(offer.agent_id.value, cluster.agent_id());
    assert!(
        offer
            .id
            .value
            .starts_with(&format!("{}-O", cluster.master_id()))
    );
    let names: Vec<&str> = offer.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["ports", "cpus", "mem", "disk"]);
    #[allow(deprecated)]
    let roles_ok = offer
        .resources
        .iter()
        .all(|r| r.role.as_deref() == Some("*") && r.allocation_info.is_none());
    assert!(roles_ok);
    let url = offer.url.clone().expect("offer url");
    assert_eq!(url.path.as_deref(), Some("/slave(1)"));
    assert_eq!(url.address.port, i32::from(cluster.agent_endpoint().port()));

    // The executor comes in a tarball served over HTTP and is extracted into the sandbox
    // (a launcher script keeps the archive small; file modes survive extraction).
    let files = tc.dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let script = files.join("run.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {} \"$@\"\n",
            test_executor_binary().display()
        ),
    )
    .unwrap();
    make_tarball(
        &files.join("executor.tar.gz"),
        &[("bin/test_executor", &script, 0o755)],
    );
    let server = FileServer::serve(files).await;
    let executor = executor_info(
        "exec-1",
        "./bin/test_executor",
        vec![v1::command_info::Uri {
            value: server.url("executor.tar.gz"),
            ..Default::default()
        }],
    );
    let agent = cluster.agent_id().to_owned();
    fw.launch(
        &offer,
        vec![
            task_info("t1", &agent, &executor, "finish"),
            task_info("t2", &agent, &executor, "running"),
        ],
    )
    .await
    .expect("ACCEPT");

    let running = fw.next_update("t1").await;
    assert_eq!(state(&running), TaskState::TaskRunning);
    assert_eq!(running.source, Some(task_status::Source::Executor as i32));
    assert_eq!(
        running.agent_id.as_ref().map(|a| a.value.as_str()),
        Some(agent.as_str())
    );
    assert!(running.timestamp.is_some());
    assert!(
        running.executor_id.is_none(),
        "the agent does not add executor_id"
    );
    let container = running.container_status.clone().expect("container_status");
    assert_eq!(
        container.network_infos[0].ip_addresses[0]
            .ip_address
            .as_deref(),
        Some("127.0.0.1")
    );
    assert!(container.executor_pid.is_some());
    let container_id = container.container_id.expect("container id").value;
    fw.acknowledge(&running).await.expect("ack");
    let finished = fw.await_state("t1", TaskState::TaskFinished).await;
    assert!(finished.uuid.is_some());
    fw.await_state("t2", TaskState::TaskRunning).await;

    // Sandbox layout and the environment the executor got.
    let runs = cluster
        .work_dir()
        .join("slaves")
        .join(&agent)
        .join("frameworks")
        .join(&fw.framework_id)
        .join("executors/exec-1/runs");
    let sandbox = runs.join(&container_id);
    assert_eq!(
        std::fs::read_link(runs.join("latest")).unwrap(),
        std::path::Path::new(&container_id)
    );
    assert!(
        sandbox.join("executor.tar.gz").exists(),
        "the archive stays next to its content"
    );
    assert!(sandbox.join("stdout").exists() && sandbox.join("stderr").exists());
    let env = std::fs::read_to_string(sandbox.join("env.txt")).expect("env.txt");
    let endpoint = cluster.agent_endpoint().to_string();
    let sandbox_text = sandbox.display().to_string();
    let expected = [
        "LIBPROCESS_IP=127.0.0.1".to_owned(),
        "LIBPROCESS_PORT=0".to_owned(),
        format!("MESOS_AGENT_ENDPOINT={endpoint}"),
        "MESOS_CHECKPOINT=1".to_owned(),
        format!("MESOS_DIRECTORY={sandbox_text}"),
        "MESOS_EXECUTOR_ID=exec-1".to_owned(),
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=2secs".to_owned(),
        format!("MESOS_FRAMEWORK_ID={}", fw.framework_id),
        "MESOS_HTTP_COMMAND_EXECUTOR=0".to_owned(),
        "MESOS_RECOVERY_TIMEOUT=15mins".to_owned(),
        format!("MESOS_SANDBOX={sandbox_text}"),
        format!("MESOS_SLAVE_ID={agent}"),
        format!("MESOS_SLAVE_PID=slave(1)@{endpoint}"),
        "MESOS_SUBSCRIPTION_BACKOFF_MAX=1500ms".to_owned(),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
    ];
    let lines: Vec<&str> = env.lines().collect();
    assert_eq!(lines, expected, "the executor's environment");

    // KILL: TASK_KILLING (the framework has the capability), then TASK_KILLED.
    fw.kill("t2", Some(Duration::from_secs(1)))
        .await
        .expect("KILL");
    let killing = fw.await_state("t2", TaskState::TaskKilling).await;
    assert_eq!(killing.source, Some(task_status::Source::Executor as i32));
    fw.await_state("t2", TaskState::TaskKilled).await;

    // MESSAGE both ways.
    fw.message("exec-1", &agent, b"ping")
        .await
        .expect("MESSAGE");
    let message = fw
        .wait_for("MESSAGE", SOON, |e| {
            event_type(e) == scheduler::event::Type::Message
        })
        .await
        .message
        .expect("message");
    assert_eq!(message.data, b"echo:ping");
    assert_eq!(message.executor_id.value, "exec-1");
    assert_eq!(message.agent_id.value, agent);

    // The executor saw exactly SUBSCRIBE, then UPDATEs, each answered 202, and the KILL went
    // through with its policy.
    let calls = cluster.executor_calls().await.unwrap();
    assert_eq!(
        calls[0].call.as_ref().and_then(|c| c.r#type),
        Some(executor::call::Type::Subscribe as i32)
    );
    assert_eq!(calls[0].status, 200);
    assert!(calls[1..].iter().all(|c| c.status == 202), "{calls:#?}");
    let updates: Vec<(String, String)> = calls
        .iter()
        .filter_map(|c| c.call.as_ref()?.update.as_ref())
        .map(|u| {
            (
                u.status.task_id.value.clone(),
                shardex::mesos::states::name(u.status.state),
            )
        })
        .collect();
    assert_eq!(
        updates,
        [
            ("t1".into(), "TASK_RUNNING".into()),
            ("t1".into(), "TASK_FINISHED".into()),
            ("t2".into(), "TASK_RUNNING".into()),
            ("t2".into(), "TASK_KILLING".into()),
            ("t2".into(), "TASK_KILLED".into()),
        ]
    );

    // Reconciliation: acknowledged terminal tasks are forgotten.
    fw.reconcile(&[("t1", Some(&agent))])
        .await
        .expect("RECONCILE");
    let gone = fw.next_update("t1").await;
    assert_eq!(state(&gone), TaskState::TaskGone);
    assert_eq!(
        gone.message.as_deref(),
        Some("Reconciliation: Task is unknown to the agent")
    );
    assert_eq!(reason(&gone), Some(task_status::Reason::Reconciliation));
    assert_eq!(gone.source, Some(task_status::Source::Master as i32));
    assert!(gone.uuid.is_none());
    fw.reconcile(&[("no-such-task", None)])
        .await
        .expect("RECONCILE");
    let unknown = fw.next_update("no-such-task").await;
    assert_eq!(state(&unknown), TaskState::TaskUnknown);
    assert_eq!(
        unknown.message.as_deref(),
        Some("Reconciliation: Task is unknown")
    );
    assert!(unknown.agent_id.is_none());

    // TEARDOWN: the executor gets SHUTDOWN and exits; the stream ends cleanly.
    fw.teardown().await.expect("TEARDOWN");
    fw.wait_closed(SOON)
        .await
        .expect("stream closed after TEARDOWN");
    let _ = uuid::new_update_uuid();
    executor_gone(cluster, "exec-1").await;
    tc.cluster.shutdown().await;
}
