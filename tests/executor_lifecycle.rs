//! The real `shardex-executor` binary, launched by the embedded cluster's agent and driven by a
//! hand-rolled framework: every lifecycle the executor issue asks for, asserted on the states
//! the framework sees and on the exact calls the agent received.
//!
//! Every test runs twice (`in_both_modes!` at the end): with the jobs in worker processes
//! (`isolation = "process"`) and on threads of the executor (`"thread"`). Only where the two
//! differ on purpose — a job that ignores cancellation — does a test look at the mode.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use shardex::mesos::Encoding;
use shardex::mesos::proto::v1::{self, executor, task_status};
use shardex::payload::{ErrorPolicy, ExecutionType, Isolation, TaskPayload};
use shardex::status_contract::{job_crashed_of, stopped_for_of};
use support::executor_stack::{Stack, in_both_modes, stack, stack_with, states, task};
use support::{
    SOON, TestCluster, TestFramework, faulty, framework_info, payload, plugin_job, script,
    shardex_executor_info, state,
};
use tokio::time::Instant;

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + SOON;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn process_alive(pid: u32) -> bool {
    // kill(pid, 0) probes without signalling; a zombie counts as gone.
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !status.is_empty() && !status.contains(") Z ")
}

fn read_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

use v1::TaskState::{
    TaskError as ERROR, TaskFailed as FAILED, TaskFinished as FINISHED, TaskKilled as KILLED,
    TaskKilling as KILLING, TaskRunning as RUNNING, TaskStarting as STARTING,
};

async fn transient_job_on_two_shards_finishes() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("greet@-@S0", "", &["hello_shards"]);
    let tasks: Vec<_> = (0..2)
        .map(|item| {
            let id = format!("greet@-@{item}@-@READY@-@S0@-@{item}");
            let payload = payload(
                &id,
                "greet",
                item,
                2,
                plugin_job("hello_shards", "", ErrorPolicy::Fail),
            );
            task(&stack, &exec, &payload)
        })
        .collect();
    let ids: Vec<String> = tasks.iter().map(|t| t.task_id.value.clone()).collect();
    stack.launch(tasks).await;
    for id in &ids {
        let finished = stack.framework.await_state(id, FINISHED).await;
        assert_eq!(finished.message, None);
        assert_eq!(finished.source, Some(task_status::Source::Executor as i32));
    }

    // Each shard wrote its line in its own task's work directory.
    for (item, id) in ids.iter().enumerate() {
        assert_eq!(
            read_lines(&stack.task_dir("greet@-@S0", id).join("hello-shards.out")),
            vec![format!("greet {item}/2 p{item} {id}")]
        );
    }
    // Exactly: one SUBSCRIBE with nothing to replay, then STARTING, RUNNING, FINISHED per task.
    let subscribes = stack
        .calls_of("greet@-@S0", executor::call::Type::Subscribe)
        .await;
    assert_eq!(subscribes.len(), 1);
    assert_eq!(
        subscribes[0].subscribe,
        Some(executor::call::Subscribe::default())
    );
    for id in &ids {
        assert_eq!(
            states(&stack.sent_updates(id).await),
            [STARTING, RUNNING, FINISHED]
        );
    }
    stack.assert_protocol_hygiene().await;
}

async fn job_errors_follow_the_error_policy() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("policies@-@S0", "", &["faulty"]);
    let fail = faulty("fail-policy", "error", ErrorPolicy::Fail);
    let log = faulty("log-policy", "error", ErrorPolicy::Log);
    let tasks = vec![task(&stack, &exec, &fail), task(&stack, &exec, &log)];
    stack.launch(tasks).await;

    let failed = stack.framework.await_state("fail-policy", FAILED).await;
    assert_eq!(
        failed.message.as_deref(),
        Some("faulty job failed on purpose")
    );
    // Elastic-Job-Cloud parity: the error shows, the task counts as finished.
    let finished = stack.framework.await_state("log-policy", FINISHED).await;
    assert_eq!(
        finished.message.as_deref(),
        Some("faulty job failed on purpose")
    );

    // `stop`: TASK_ERROR, and the executor stops; a sibling is told why.
    let exec = shardex_executor_info("stopper@-@S0", "", &["faulty"]);
    let sibling = faulty("sibling", "sleep:60000", ErrorPolicy::Fail);
    stack.launch(vec![task(&stack, &exec, &sibling)]).await;
    stack.framework.await_state("sibling", RUNNING).await;
    let stop = faulty("stop-policy", "error", ErrorPolicy::Stop);
    stack.launch(vec![task(&stack, &exec, &stop)]).await;
    let error = stack.framework.await_state("stop-policy", ERROR).await;
    assert_eq!(
        error.message.as_deref(),
        Some("faulty job failed on purpose")
    );
    let sibling = stack.framework.await_state("sibling", FAILED).await;
    // Labelled with the culprit, so the scheduler does not charge the sibling an attempt.
    assert_eq!(stopped_for_of(&sibling), Some("stop-policy"));
    assert_eq!(
        sibling.message.as_deref(),
        Some(
            "stopped because the executor is stopping: task stop-policy failed: faulty job \
             failed on purpose"
        )
    );
    assert_eq!(
        stack.executor_exit("stopper@-@S0").await,
        1 << 8,
        "exit code 1"
    );
    assert_eq!(
        states(&stack.sent_updates("stop-policy").await),
        [STARTING, RUNNING, ERROR]
    );
    stack.assert_protocol_hygiene().await;
}

async fn daemon_fires_on_its_cron_then_is_killed() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("daemon@-@S0", "", &["heartbeat"]);
    let mut spec = plugin_job("heartbeat", "", ErrorPolicy::Fail);
    spec.execution = ExecutionType::Daemon {
        cron: "* * * * * ?".into(),
        misfire: false,
    };
    let daemon = payload("beat", "beat", 0, 1, spec);
    stack.launch(vec![task(&stack, &exec, &daemon)]).await;

    let mut completes = 0;
    while completes < 3 {
        let status = stack.framework.next_update("beat").await;
        stack.framework.acknowledge(&status).await.expect("ACK");
        if status.message.as_deref() == Some("COMPLETE") {
            completes += 1;
        }
    }
    stack
        .framework
        .kill("beat", Some(Duration::from_secs(5)))
        .await
        .expect("KILL");
    stack.framework.await_state("beat", KILLED).await;

    let sent = stack.sent_updates("beat").await;
    // STARTING, RUNNING, then BEGIN/COMPLETE pairs (a fire may have begun just before the
    // kill), KILLING, KILLED.
    assert_eq!(&states(&sent)[..2], [STARTING, RUNNING]);
    assert_eq!(&states(&sent)[sent.len() - 2..], [KILLING, KILLED]);
    let fires: Vec<&str> = sent[2..sent.len() - 2]
        .iter()
        .map(|(s, m)| {
            assert_eq!(*s, RUNNING);
            m.as_deref().unwrap_or("")
        })
        .collect();
    for pair in fires.chunks(2) {
        assert_eq!(pair[0], "BEGIN");
        if pair.len() == 2 {
            assert_eq!(pair[1], "COMPLETE");
        }
    }
    let begins = fires.iter().filter(|m| **m == "BEGIN").count();
    assert!(begins >= 3, "{fires:?}");
    // One line per fire that ran.
    let lines = read_lines(&stack.task_dir("daemon@-@S0", "beat").join("heartbeat.out"));
    assert_eq!(lines.len(), begins, "{lines:?}");
    stack.assert_protocol_hygiene().await;
}

async fn kill_reports_killed_only_after_the_job_stopped() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("killer@-@S0", "", &["faulty"]);
    // A script that needs a second to clean up after SIGTERM.
    let slow = script(
        "slow-stop",
        "/bin/sh -c 'trap \"sleep 1; echo stopped > stopped.txt; exit 0\" TERM; while :; do sleep 0.05; done'",
    );
    let cooperative = faulty("cooperative", "sleep:60000", ErrorPolicy::Fail);
    stack
        .launch(vec![
            task(&stack, &exec, &slow),
            task(&stack, &exec, &cooperative),
        ])
        .await;
    stack.framework.await_state("slow-stop", RUNNING).await;
    stack.framework.await_state("cooperative", RUNNING).await;

    stack
        .framework
        .kill("slow-stop", Some(Duration::from_secs(10)))
        .await
        .expect("KILL");
    stack.framework.await_state("slow-stop", KILLING).await;
    stack.framework.await_state("slow-stop", KILLED).await;
    // The script had finished cleaning up when KILLED was reported.
    let marker = stack
        .task_dir("killer@-@S0", "slow-stop")
        .join("stopped.txt");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default(),
        "stopped\n"
    );

    // A plugin honouring cancellation stops well inside its grace period.
    let started = Instant::now();
    stack
        .framework
        .kill("cooperative", Some(Duration::from_secs(10)))
        .await
        .expect("KILL");
    stack.framework.await_state("cooperative", KILLED).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        states(&stack.sent_updates("cooperative").await),
        [STARTING, RUNNING, KILLING, KILLED]
    );
    stack.assert_protocol_hygiene().await;
}

async fn a_job_ignoring_cancellation_makes_the_executor_exit_instead_of_lying() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("stuck@-@S0", "", &["faulty"]);
    let hang = faulty("hang", "hang", ErrorPolicy::Fail);
    let other = faulty("other", "sleep:60000", ErrorPolicy::Fail);
    stack
        .launch(vec![
            task(&stack, &exec, &hang),
            task(&stack, &exec, &other),
        ])
        .await;
    stack.framework.await_state("hang", RUNNING).await;
    stack.framework.await_state("other", RUNNING).await;

    stack
        .framework
        .kill("hang", Some(Duration::from_millis(500)))
        .await
        .expect("KILL");
    stack.framework.await_state("hang", KILLING).await;
    if support::isolation() == Isolation::Process {
        // Its worker process is SIGTERMed, then SIGKILLed: the task ends KILLED once the
        // process is gone, and nothing else notices.
        let killed = stack.framework.await_state("hang", KILLED).await;
        assert_eq!(killed.source, Some(task_status::Source::Executor as i32));
        assert_eq!(
            states(&stack.sent_updates("hang").await),
            [STARTING, RUNNING, KILLING, KILLED]
        );
        assert_eq!(
            states(&stack.sent_updates("other").await),
            [STARTING, RUNNING]
        );
        stack
            .framework
            .kill("other", Some(Duration::from_secs(5)))
            .await
            .expect("KILL");
        stack.framework.await_state("other", KILLED).await;
        stack.assert_protocol_hygiene().await;
        return;
    }
    // The other task is told honestly why it ends.
    let other = stack.framework.await_state("other", FAILED).await;
    assert_eq!(stopped_for_of(&other), Some("hang"));
    assert_eq!(
        other.message.as_deref(),
        Some(
            "stopped because the executor is stopping: task hang did not stop within its kill \
             grace period; the executor exits to stop it"
        )
    );
    assert_eq!(stack.executor_exit("stuck@-@S0").await, 1 << 8);
    // The hung task's end comes from the agent, once the process is gone.
    let failed = stack.framework.await_state("hang", FAILED).await;
    assert_eq!(failed.source, Some(task_status::Source::Agent as i32));
    assert_eq!(
        failed.reason,
        Some(task_status::Reason::ExecutorTerminated as i32)
    );
    // The executor never claimed the job was killed.
    assert_eq!(
        states(&stack.sent_updates("hang").await),
        [STARTING, RUNNING, KILLING]
    );
    stack.assert_protocol_hygiene().await;
}

async fn shutdown_kills_every_task_and_exits_cleanly() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("three@-@S0", "", &["faulty"]);
    let ids = ["one", "two", "three"];
    let tasks = ids
        .iter()
        .map(|id| task(&stack, &exec, &faulty(id, "sleep:60000", ErrorPolicy::Fail)))
        .collect();
    stack.launch(tasks).await;
    for id in ids {
        stack.framework.await_state(id, RUNNING).await;
    }
    let agent_id = stack.agent_id.clone();
    stack
        .framework
        .shutdown_executor("three@-@S0", &agent_id)
        .await
        .expect("SHUTDOWN");
    for id in ids {
        let killed = stack.framework.await_state(id, KILLED).await;
        assert_eq!(killed.source, Some(task_status::Source::Executor as i32));
        assert_eq!(
            states(&stack.sent_updates(id).await),
            [STARTING, RUNNING, KILLING, KILLED]
        );
    }
    assert_eq!(stack.executor_exit("three@-@S0").await, 0, "clean exit");
    stack.assert_protocol_hygiene().await;
}

async fn setup_errors_stop_the_executor_after_their_updates_are_acknowledged() {
    let mut stack = stack(true).await;

    // An undecodable payload.
    let exec = shardex_executor_info("badpayload@-@S0", "", &["faulty"]);
    let running = faulty("innocent", "sleep:60000", ErrorPolicy::Fail);
    stack.launch(vec![task(&stack, &exec, &running)]).await;
    stack.framework.await_state("innocent", RUNNING).await;
    let mut garbage = support::task_info("garbage", &stack.agent_id, &exec, "payload-t1");
    garbage.name = "garbage".into();
    stack.launch(vec![garbage]).await;
    let error = stack.framework.await_state("garbage", ERROR).await;
    let expected = "task payload does not start with the Shardex magic 'SHXP' (found [70, 61, \
                    79, 6c]): the task was not launched by a Shardex scheduler";
    assert_eq!(error.message.as_deref(), Some(expected));
    let innocent = stack.framework.await_state("innocent", FAILED).await;
    assert_eq!(stopped_for_of(&innocent), Some("garbage"));
    assert_eq!(
        innocent.message,
        Some(format!(
            "stopped because the executor is stopping: task garbage failed: {expected}"
        ))
    );
    assert_eq!(stack.executor_exit("badpayload@-@S0").await, 1 << 8);
    // It waited for the agent to acknowledge everything before leaving.
    let log = std::fs::read_to_string(stack.sandbox("badpayload@-@S0").join("stderr")).unwrap();
    assert!(log.contains("executor exiting"), "{log}");
    assert!(!log.contains("has not acknowledged"), "{log}");

    // A missing plugin.
    let exec = shardex_executor_info("noplugin@-@S0", "", &[]);
    let missing = payload(
        "missing",
        "missing",
        0,
        1,
        plugin_job("does_not_exist", "", ErrorPolicy::Fail),
    );
    stack.launch(vec![task(&stack, &exec, &missing)]).await;
    let error = stack.framework.await_state("missing", ERROR).await;
    let message = error.message.unwrap_or_default();
    assert!(
        message.contains("plugins/libdoes_not_exist.so") && message.contains("not found"),
        "{message}"
    );
    assert_eq!(stack.executor_exit("noplugin@-@S0").await, 1 << 8);
    assert_eq!(
        states(&stack.sent_updates("missing").await),
        [STARTING, ERROR]
    );
    stack.assert_protocol_hygiene().await;
}

async fn fail_task_mode_keeps_serving_the_other_tasks() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("tolerant@-@S0", "--on-setup-error fail-task", &["faulty"]);
    let survivor = faulty("survivor", "sleep:1500", ErrorPolicy::Fail);
    stack.launch(vec![task(&stack, &exec, &survivor)]).await;
    stack.framework.await_state("survivor", RUNNING).await;
    let garbage = support::task_info("garbage", &stack.agent_id, &exec, "not a payload");
    stack.launch(vec![garbage]).await;
    stack.framework.await_state("garbage", ERROR).await;
    stack.framework.await_state("survivor", FINISHED).await;
    // The executor is still there: it runs a new task.
    let next = faulty("next", "ok", ErrorPolicy::Fail);
    stack.launch(vec![task(&stack, &exec, &next)]).await;
    stack.framework.await_state("next", FINISHED).await;
    assert_eq!(
        stack
            .calls_of("tolerant@-@S0", executor::call::Type::Subscribe)
            .await
            .len(),
        1
    );
    stack.assert_protocol_hygiene().await;
}

/// Waits until the agent's port refuses connections.
async fn until_agent_is_down(stack: &Stack) {
    let address = stack.test.cluster.agent_endpoint();
    let deadline = Instant::now() + SOON;
    while tokio::net::TcpStream::connect(address).await.is_ok() {
        assert!(Instant::now() < deadline, "the agent never went down");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn agent_restart_mid_task_replays_unacknowledged_updates_byte_for_byte() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("survive@-@S0", "", &[]);
    // Runs until the test drops a file in the sandbox.
    let gated = script(
        "gated",
        "/bin/sh -c 'while [ ! -f go ]; do sleep 0.02; done'",
    );
    stack.launch(vec![task(&stack, &exec, &gated)]).await;
    stack.framework.await_state("gated", RUNNING).await;

    // The agent dies; while it is away the task finishes, so its FINISHED cannot be sent.
    let cluster = &stack.test.cluster;
    let restart = cluster.restart_agent(Duration::from_secs(2));
    let finish_while_down = async {
        until_agent_is_down(&stack).await;
        std::fs::write(stack.task_dir("survive@-@S0", "gated").join("go"), b"").unwrap();
    };
    let (restarted, ()) = tokio::join!(restart, finish_while_down);
    restarted.expect("agent restarts");

    let finished = stack.framework.await_state("gated", FINISHED).await;
    // The resubscription carried exactly that update, with the uuid the framework got.
    let subscribes = stack
        .calls_of("survive@-@S0", executor::call::Type::Subscribe)
        .await;
    let replay = subscribes
        .iter()
        .filter_map(|call| call.subscribe.as_ref())
        .find(|s| !s.unacknowledged_updates.is_empty())
        .expect("a resubscription replayed the FINISHED update");
    assert_eq!(replay.unacknowledged_updates.len(), 1);
    let replayed = &replay.unacknowledged_updates[0].status;
    assert_eq!(state(replayed), FINISHED);
    assert_eq!(replayed.uuid, finished.uuid);
    // The task was known to the agent (its earlier updates were acknowledged).
    assert!(replay.unacknowledged_tasks.is_empty());
    // Real Mesos forwards pending updates more than once after a restart: every copy the
    // framework sees is the same update.
    for event in &stack.framework.history {
        if let Some(update) = &event.update
            && update.status.task_id.value == "gated"
            && state(&update.status) == FINISHED
        {
            assert_eq!(update.status.uuid, finished.uuid);
        }
    }
    assert_eq!(
        states(&stack.sent_updates("gated").await),
        [STARTING, RUNNING, FINISHED]
    );
    stack.assert_protocol_hygiene().await;
}

async fn a_dropped_stream_is_resubscribed_and_the_task_finishes() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("reconnect@-@S0", "", &["faulty"]);
    let task1 = faulty("steady", "sleep:1500", ErrorPolicy::Fail);
    stack.launch(vec![task(&stack, &exec, &task1)]).await;
    stack.framework.await_state("steady", RUNNING).await;
    assert!(
        stack
            .test
            .cluster
            .drop_executor_stream("reconnect@-@S0")
            .await
            .expect("control")
    );
    stack.framework.await_state("steady", FINISHED).await;
    let subscribes = stack
        .calls_of("reconnect@-@S0", executor::call::Type::Subscribe)
        .await;
    assert_eq!(subscribes.len(), 2, "one resubscription");
    assert_eq!(
        states(&stack.sent_updates("steady").await),
        [STARTING, RUNNING, FINISHED]
    );
    stack.assert_protocol_hygiene().await;
}

async fn an_agent_away_past_the_recovery_timeout_ends_the_executor_and_its_jobs() {
    let mut stack = stack_with(true, |config| {
        config.recovery_timeout = Duration::from_secs(2);
    })
    .await;
    let exec = shardex_executor_info("orphan@-@S0", "", &[]);
    // A long job whose process id the test can watch.
    let long = script("long", "/bin/sh -c 'echo $$ > job.pid; exec sleep 1000'");
    stack.launch(vec![task(&stack, &exec, &long)]).await;
    stack.framework.await_state("long", RUNNING).await;
    let pid_file = stack.task_dir("orphan@-@S0", "long").join("job.pid");
    wait_until("the job to write its pid", || pid_file.exists()).await;
    let job_pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let executor_pid = stack
        .test
        .cluster
        .executor_pid("orphan@-@S0")
        .await
        .expect("control")
        .expect("the executor runs");

    // Down for longer than the recovery timeout: the executor gives up, stops its job, exits.
    let cluster = &stack.test.cluster;
    let restart = cluster.restart_agent(Duration::from_secs(6));
    let gone = async {
        until_agent_is_down(&stack).await;
        let down_at = Instant::now();
        wait_until("the executor to exit", || !process_alive(executor_pid)).await;
        wait_until("the job to be stopped", || !process_alive(job_pid)).await;
        down_at.elapsed()
    };
    let (restarted, waited) = tokio::join!(restart, gone);
    restarted.expect("agent restarts");
    assert!(
        waited < Duration::from_secs(6),
        "gone while the agent was still away ({waited:?})"
    );
    // When the agent is back, the task is reported ended.
    let status = stack.framework.next_update("long").await;
    assert!(
        shardex::mesos::states::is_terminal(state(&status)),
        "{status:?}"
    );
    stack.assert_protocol_hygiene().await;
}

async fn without_checkpointing_a_lost_connection_ends_the_executor() {
    let mut stack = stack(false).await;
    let exec = shardex_executor_info("ephemeral@-@S0", "", &[]);
    let long = script("short-lived", "/bin/sh -c 'exec sleep 1000'");
    stack.launch(vec![task(&stack, &exec, &long)]).await;
    stack.framework.await_state("short-lived", RUNNING).await;
    let log =
        std::fs::read_to_string(stack.sandbox("ephemeral@-@S0").join("stderr")).unwrap_or_default();
    assert!(log.contains("checkpoint=false"), "{log}");

    assert!(
        stack
            .test
            .cluster
            .drop_executor_stream("ephemeral@-@S0")
            .await
            .expect("control")
    );
    // No reconnection: the executor exits and the agent reports its task.
    let status = stack.framework.await_state("short-lived", FAILED).await;
    assert_eq!(
        status.reason,
        Some(task_status::Reason::ExecutorTerminated as i32)
    );
    assert_eq!(
        stack
            .calls_of("ephemeral@-@S0", executor::call::Type::Subscribe)
            .await
            .len(),
        1
    );
    stack.assert_protocol_hygiene().await;
}

async fn without_the_killing_capability_no_task_killing_is_sent() {
    let test = TestCluster::start().await;
    let mut info = framework_info("no-killing-state");
    info.capabilities.retain(|c| {
        c.r#type != Some(v1::framework_info::capability::Type::TaskKillingState as i32)
    });
    let framework = TestFramework::subscribe(&test.cluster.master_url(), info, Encoding::Protobuf)
        .await
        .expect("framework subscribes");
    let agent_id = test.cluster.agent_id().to_owned();
    let mut stack = Stack {
        test,
        framework,
        agent_id,
    };
    let exec = shardex_executor_info("plain@-@S0", "", &["faulty"]);
    let job = faulty("plain-kill", "sleep:60000", ErrorPolicy::Fail);
    stack.launch(vec![task(&stack, &exec, &job)]).await;
    stack.framework.await_state("plain-kill", RUNNING).await;
    stack
        .framework
        .kill("plain-kill", Some(Duration::from_secs(5)))
        .await
        .expect("KILL");
    stack.framework.await_state("plain-kill", KILLED).await;
    assert_eq!(
        states(&stack.sent_updates("plain-kill").await),
        [STARTING, RUNNING, KILLED]
    );
    stack.assert_protocol_hygiene().await;
}

async fn the_framework_message_stop_shuts_the_executor_down() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("stoppable@-@S0", "", &["faulty"]);
    let job = faulty("stopped", "sleep:60000", ErrorPolicy::Fail);
    stack.launch(vec![task(&stack, &exec, &job)]).await;
    stack.framework.await_state("stopped", RUNNING).await;
    let agent_id = stack.agent_id.clone();
    stack
        .framework
        .message("stoppable@-@S0", &agent_id, b"STOP")
        .await
        .expect("MESSAGE");
    stack.framework.await_state("stopped", KILLED).await;
    assert_eq!(stack.executor_exit("stoppable@-@S0").await, 0, "clean exit");
    assert_eq!(
        states(&stack.sent_updates("stopped").await),
        [STARTING, RUNNING, KILLING, KILLED]
    );
    stack.assert_protocol_hygiene().await;
}

async fn an_idle_executor_exits_after_its_idle_timeout() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("idler@-@S0", "--idle-timeout 1secs", &["faulty"]);
    let job = faulty("quick", "ok", ErrorPolicy::Fail);
    stack.launch(vec![task(&stack, &exec, &job)]).await;
    let finished = Instant::now();
    stack.framework.await_state("quick", FINISHED).await;
    // Once its last update is acknowledged and a second has passed without tasks, it leaves.
    assert_eq!(stack.executor_exit("idler@-@S0").await, 0, "clean exit");
    assert!(finished.elapsed() >= Duration::from_secs(1));
    let log = std::fs::read_to_string(stack.sandbox("idler@-@S0").join("stderr")).unwrap();
    assert!(log.contains("idle timeout"), "{log}");
}

async fn each_task_works_in_its_own_directory_and_a_failed_script_quotes_its_stderr() {
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("files@-@S0", "", &[]);
    let good = script(
        "good",
        "/bin/sh -c 'echo \"out of $SHARDEX_TASK_ID\"; pwd -P > cwd.txt'",
    );
    let bad = script(
        "bad",
        "/bin/sh -c 'echo \"out of $SHARDEX_TASK_ID\"; echo \"no such table: orders\" >&2; exit 3'",
    );
    stack
        .launch(vec![task(&stack, &exec, &good), task(&stack, &exec, &bad)])
        .await;
    // TASK_RUNNING names the task's directory (the sandbox as the executor sees it:
    // `runs/<container id>`, which `runs/latest` links to).
    let mut announced = Vec::new();
    for id in ["good", "bad"] {
        let running = stack.framework.await_state(id, RUNNING).await;
        let dir = PathBuf::from(shardex::status_contract::work_dir_of(&running).unwrap());
        assert_eq!(
            dir.canonicalize().unwrap(),
            stack.task_dir("files@-@S0", id).canonicalize().unwrap()
        );
        announced.push(dir);
    }
    let (good_dir, bad_dir) = (&announced[0], &announced[1]);
    stack.framework.await_state("good", FINISHED).await;
    let failed = stack.framework.await_state("bad", FAILED).await;
    assert_eq!(
        failed.message.as_deref(),
        Some(
            format!(
                "script exited with status 3; the end of its stderr ({}/stderr):\n\
                 no such table: orders",
                bad_dir.display()
            )
            .as_str()
        )
    );
    // Each task's output is in its own files; nothing of it in the other's.
    for (dir, id) in [(good_dir, "good"), (bad_dir, "bad")] {
        assert_eq!(
            std::fs::read_to_string(dir.join("stdout")).unwrap(),
            format!("out of {id}\n")
        );
    }
    assert_eq!(
        std::fs::read_to_string(good_dir.join("stderr")).unwrap(),
        ""
    );
    assert_eq!(
        std::fs::read_to_string(bad_dir.join("stderr")).unwrap(),
        "no such table: orders\n"
    );
    assert_eq!(
        std::fs::read_to_string(good_dir.join("cwd.txt"))
            .unwrap()
            .trim_end(),
        good_dir.canonicalize().unwrap().to_str().unwrap()
    );
    stack.assert_protocol_hygiene().await;
}

/// Process isolation's promise: one executor runs tasks of several jobs; the jobs that
/// segfault, abort, exit or run into their address-space guard end alone, each `TASK_FAILED`
/// naming how its process died, and every other task finishes in the same, still-subscribed
/// executor.
#[tokio::test]
async fn a_crashing_job_takes_down_only_its_own_task() {
    support::set_isolation(Isolation::Process);
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("mixed@-@S0", "", &["faulty", "hello_shards"]);
    let mut guarded = faulty("allocate", "allocate", ErrorPolicy::Fail);
    guarded.job.guards.address_space = Some(512 << 20);
    let crashing = [
        (faulty("segfault", "segfault", ErrorPolicy::Fail), "SIGSEGV"),
        (faulty("abort", "abort", ErrorPolicy::Fail), "SIGABRT"),
        (faulty("exit", "exit:3", ErrorPolicy::Fail), "exit 3"),
        (guarded, "SIGABRT"),
    ];
    let greet: Vec<TaskPayload> = (0..2)
        .map(|item| {
            let id = format!("greet-{item}");
            payload(
                &id,
                "greet",
                item,
                2,
                plugin_job("hello_shards", "", ErrorPolicy::Fail),
            )
        })
        .collect();
    // Runs through the crashes and finishes after them.
    let slow = faulty("slow", "sleep:1500", ErrorPolicy::Fail);
    let mut tasks: Vec<_> = crashing
        .iter()
        .map(|(p, _)| task(&stack, &exec, p))
        .collect();
    tasks.extend(greet.iter().map(|p| task(&stack, &exec, p)));
    tasks.push(task(&stack, &exec, &slow));
    stack.launch(tasks).await;

    for (payload, cause) in &crashing {
        let id = &payload.context.task_id;
        let failed = stack.framework.await_state(id, FAILED).await;
        assert_eq!(failed.source, Some(task_status::Source::Executor as i32));
        assert_eq!(job_crashed_of(&failed), Some(*cause), "{id}: {failed:?}");
        assert_eq!(stopped_for_of(&failed), None);
        let message = failed.message.unwrap_or_default();
        match *cause {
            "exit 3" => assert_eq!(
                message,
                "job process exited with status 3 without reporting an outcome"
            ),
            signal => assert!(
                message.starts_with(&format!("job process killed by {signal}")),
                "{id}: {message}"
            ),
        }
        if id == "allocate" {
            assert!(
                message.contains("address-space guard is 536870912 bytes"),
                "{message}"
            );
        }
    }
    for id in ["greet-0", "greet-1", "slow"] {
        let finished = stack.framework.await_state(id, FINISHED).await;
        assert_eq!(finished.message, None, "{id}");
        assert_eq!(
            states(&stack.sent_updates(id).await),
            [STARTING, RUNNING, FINISHED]
        );
    }
    // Still the same executor, still subscribed: a new task runs in it.
    let later = faulty("later", "ok", ErrorPolicy::Fail);
    stack.launch(vec![task(&stack, &exec, &later)]).await;
    stack.framework.await_state("later", FINISHED).await;
    let subscribes = stack
        .calls_of("mixed@-@S0", executor::call::Type::Subscribe)
        .await;
    assert_eq!(subscribes.len(), 1, "the executor never restarted");
    stack.assert_protocol_hygiene().await;
}

/// The worker process of a job that ended cleanly serves the job's next task (no start-up,
/// no plugin load), one task at a time, even in a burst; another job never gets it, and a
/// guarded job's worker serves one task and exits. Each script prints its parent, the worker.
#[tokio::test]
async fn a_finished_worker_serves_the_next_task_of_its_job_only() {
    support::set_isolation(Isolation::Process);
    let mut stack = stack(true).await;
    let exec = shardex_executor_info("pooled@-@S0", "", &[]);
    let report_worker = "/bin/sh -c 'echo $PPID > worker.pid'";
    let worker_of = |stack: &Stack, id: &str| -> u32 {
        let file = stack.task_dir("pooled@-@S0", id).join("worker.pid");
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .trim()
            .parse()
            .expect("a pid")
    };
    let mut pids = Vec::new();
    for i in 0..5 {
        let id = format!("one-by-one-{i}");
        let job = script(&id, report_worker);
        stack.launch(vec![task(&stack, &exec, &job)]).await;
        stack.framework.await_state(&id, FINISHED).await;
        pids.push(worker_of(&stack, &id));
    }
    assert!(
        pids.iter().all(|pid| *pid == pids[0]),
        "one worker served the job's tasks one after another: {pids:?}"
    );
    let pooled = pids[0];

    // A burst in one ACCEPT: more tasks than idle workers, each ends FINISHED.
    let burst: Vec<TaskPayload> = (0..30)
        .map(|i| script(&format!("burst-{i}"), report_worker))
        .collect();
    stack
        .launch(burst.iter().map(|p| task(&stack, &exec, p)).collect())
        .await;
    for job in &burst {
        let id = &job.context.task_id;
        stack.framework.await_state(id, FINISHED).await;
        assert_eq!(
            states(&stack.sent_updates(id).await),
            [STARTING, RUNNING, FINISHED]
        );
    }

    // Another job gets a worker of its own.
    let mut other = script("other-job", report_worker);
    other.context.job_name = "other".into();
    stack.launch(vec![task(&stack, &exec, &other)]).await;
    stack.framework.await_state("other-job", FINISHED).await;
    assert_ne!(worker_of(&stack, "other-job"), pooled);

    // A guarded task runs in a fresh worker that exits after it.
    let mut guarded = script("guarded", report_worker);
    guarded.job.guards.open_files = Some(512);
    stack.launch(vec![task(&stack, &exec, &guarded)]).await;
    stack.framework.await_state("guarded", FINISHED).await;
    let guarded_worker = worker_of(&stack, "guarded");
    assert_ne!(guarded_worker, pooled);
    wait_until("the guarded task's worker to exit", || {
        !process_alive(guarded_worker)
    })
    .await;
    stack.assert_protocol_hygiene().await;
}

in_both_modes!(
    transient_job_on_two_shards_finishes,
    job_errors_follow_the_error_policy,
    daemon_fires_on_its_cron_then_is_killed,
    kill_reports_killed_only_after_the_job_stopped,
    a_job_ignoring_cancellation_makes_the_executor_exit_instead_of_lying,
    shutdown_kills_every_task_and_exits_cleanly,
    setup_errors_stop_the_executor_after_their_updates_are_acknowledged,
    fail_task_mode_keeps_serving_the_other_tasks,
    agent_restart_mid_task_replays_unacknowledged_updates_byte_for_byte,
    a_dropped_stream_is_resubscribed_and_the_task_finishes,
    an_agent_away_past_the_recovery_timeout_ends_the_executor_and_its_jobs,
    without_checkpointing_a_lost_connection_ends_the_executor,
    without_the_killing_capability_no_task_killing_is_sent,
    the_framework_message_stop_shuts_the_executor_down,
    an_idle_executor_exits_after_its_idle_timeout,
    each_task_works_in_its_own_directory_and_a_failed_script_quotes_its_stderr,
);
