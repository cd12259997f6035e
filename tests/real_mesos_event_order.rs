//! Differential of what a scheduler sees: the same call sequence, made by a hand-rolled v1
//! scheduler, to a real Apache Mesos master and agent (`SHARDEX_MESOS_HOME`) and to the
//! embedded cluster, and the events each sends back compared in order after normalising ids.
//!
//! The sequence: SUBSCRIBE; a `shardex-executor` task that finishes; a daemon task that keeps
//! running; explicit RECONCILE of it, of a finished task and of tasks nobody knows; an ACCEPT
//! of invalid tasks and one of a spent offer; KILL of the daemon; `kill -9` of another executor
//! while its task runs; KILL of an unknown task; SHUTDOWN of the idle daemon executor. Every step waits for its last event before the next, so the order across
//! steps is fixed; within a step it is what the cluster chose.
//!
//! Without `SHARDEX_MESOS_HOME` the test prints one `SHARDEX-SKIP:` line and passes (fails under
//! `SHARDEX_REQUIRE_REAL=1`). Needs `cargo build --workspace` first.

mod support;

use shardex::mesos::Encoding;
use shardex::mesos::proto::v1::{self, TaskState, scheduler, task_status};
use shardex::payload::{ErrorPolicy, ExecutionType, TaskPayload};
use support::peer::Peer;
use support::real_mesos::{Flags, RealMesos};
use support::*;

/// The real executor, run by path, the faulty plugin fetched into its sandbox.
fn executor(id: &str) -> v1::ExecutorInfo {
    shardex_executor_info(id, "", &["faulty"])
}

fn task(id: &str, agent_id: &str, executor_id: &str, payload: &TaskPayload) -> v1::TaskInfo {
    let mut info = task_info(id, agent_id, &executor(executor_id), "");
    info.data = Some(payload.encode().expect("a valid payload"));
    info
}

/// A daemon job whose cron does not fire while the test runs: it stays TASK_RUNNING with no
/// BEGIN / COMPLETE updates.
fn daemon(task_id: &str) -> TaskPayload {
    let mut payload = faulty(task_id, "ok", ErrorPolicy::Fail);
    payload.job.execution = ExecutionType::Daemon {
        cron: "0 0 0 1 1 ? 2099".into(),
        misfire: false,
    };
    payload
}

/// Takes the next offer and launches `tasks` on it; unused resources come back at once.
async fn launch(fw: &mut TestFramework, tasks: Vec<v1::TaskInfo>) -> v1::OfferId {
    let offer = fw.next_offer().await;
    fw.accept(
        vec![offer.id.clone()],
        vec![launch_operation(tasks)],
        Some(0.0),
    )
    .await
    .expect("ACCEPT is taken");
    offer.id
}

/// Waits for `task_id`'s update in `state`, acknowledging every update of it on the way.
async fn until(fw: &mut TestFramework, task_id: &str, state: TaskState) {
    fw.await_state(task_id, state).await;
}

/// Waits for the next update of `task_id` without a uuid (the master's: nothing to
/// acknowledge).
async fn master_update(fw: &mut TestFramework, task_id: &str) {
    let status = fw.next_update(task_id).await;
    assert!(status.uuid.is_none(), "{status:?}");
}

/// Runs the call sequence on `peer`; returns every event received, in order.
async fn scenario(peer: Peer<'_>) -> Vec<scheduler::Event> {
    let agent = peer.agent_id();
    let mut fw = TestFramework::subscribe(
        &peer.master_url(),
        framework_info("event-order"),
        Encoding::Protobuf,
    )
    .await
    .expect("SUBSCRIBE");

    // A transient job that succeeds.
    launch(
        &mut fw,
        vec![task(
            "finish",
            &agent,
            "e-finish",
            &faulty("finish", "ok", ErrorPolicy::Fail),
        )],
    )
    .await;
    until(&mut fw, "finish", TaskState::TaskFinished).await;

    // A daemon that stays running, then explicit reconciliation: a running task, a finished
    // (and acknowledged) one, one unknown on this agent, one unknown without an agent.
    launch(
        &mut fw,
        vec![task("daemon", &agent, "e-daemon", &daemon("daemon"))],
    )
    .await;
    until(&mut fw, "daemon", TaskState::TaskRunning).await;
    fw.reconcile(&[
        ("daemon", Some(&agent)),
        ("finish", Some(&agent)),
        ("ghost", Some(&agent)),
        ("nowhere", None),
    ])
    .await
    .expect("RECONCILE");
    for task_id in ["daemon", "finish", "ghost", "nowhere"] {
        master_update(&mut fw, task_id).await;
    }

    // Invalid tasks in one ACCEPT (the last reuses the running daemon's id), then an ACCEPT of
    // the offer already used.
    let mut no_resources = task("no-resources", &agent, "e-bad", &daemon("no-resources"));
    no_resources.resources.clear();
    let mut too_big = task("too-big", &agent, "e-bad", &daemon("too-big"));
    too_big.resources = vec![scalar("cpus", 100.0), scalar("mem", 32.0)];
    let mut other_agent = task("other-agent", &agent, "e-bad", &daemon("other-agent"));
    other_agent.agent_id.value = "no-such-agent-S9".into();
    let mut both = task("both", &agent, "e-bad", &daemon("both"));
    both.command = Some(v1::CommandInfo {
        value: Some("true".into()),
        ..Default::default()
    });
    let mut unknown_resource = task("gpu", &agent, "e-bad", &daemon("gpu"));
    unknown_resource.resources.push(scalar("gpus", 1.0));
    let bad_id = task("bad/id", &agent, "e-bad", &daemon("bad/id"));
    let reused = task("daemon", &agent, "e-bad", &daemon("daemon"));
    let used = launch(
        &mut fw,
        vec![
            no_resources,
            too_big,
            unknown_resource,
            bad_id,
            other_agent,
            both,
            reused,
        ],
    )
    .await;
    for task_id in [
        "no-resources",
        "too-big",
        "gpu",
        "bad/id",
        "other-agent",
        "both",
        "daemon",
    ] {
        master_update(&mut fw, task_id).await;
    }
    let late = task("late", &agent, "e-bad", &daemon("late"));
    fw.accept(vec![used], vec![launch_operation(vec![late])], Some(0.0))
        .await
        .expect("ACCEPT is taken");
    master_update(&mut fw, "late").await;

    // KILL of the running daemon.
    fw.kill("daemon", None).await.expect("KILL");
    until(&mut fw, "daemon", TaskState::TaskKilled).await;

    // kill -9 of an executor while its task runs.
    launch(
        &mut fw,
        vec![task("crash", &agent, "e-crash", &daemon("crash"))],
    )
    .await;
    until(&mut fw, "crash", TaskState::TaskRunning).await;
    let pid = peer
        .executor_process("e-crash", "shardex-executor")
        .await
        .expect("the e-crash executor runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the executor");
    until(&mut fw, "crash", TaskState::TaskFailed).await;
    fw.wait_for("FAILURE of e-crash", SOON, |e| e.failure.is_some())
        .await;

    // KILL of a task nobody knows; SHUTDOWN of the daemon's executor, idle since its task
    // was killed.
    fw.kill("ghost", None).await.expect("KILL");
    master_update(&mut fw, "ghost").await;
    fw.shutdown_executor("e-daemon", &agent)
        .await
        .expect("SHUTDOWN");
    fw.wait_for("FAILURE of e-daemon", SOON, |e| {
        e.failure.as_ref().is_some_and(|f| {
            f.executor_id
                .as_ref()
                .is_some_and(|x| x.value == "e-daemon")
        })
    })
    .await;

    fw.teardown().await.expect("TEARDOWN");
    fw.history.clone()
}

/// One event as compared: ids replaced by what they stand for. HEARTBEAT, OFFERS and RESCIND
/// are left out: when they come depends on timers and on the allocator's batching (every
/// `--allocation_interval`), not on the calls; the first HEARTBEAT, sent with SUBSCRIBED, is
/// kept.
fn normalise(events: &[scheduler::Event], framework_id: &str, agent_id: &str) -> Vec<String> {
    let offer_ids: Vec<String> = events
        .iter()
        .filter_map(|e| e.offers.as_ref())
        .flat_map(|o| o.offers.iter().map(|offer| offer.id.value.clone()))
        .collect();
    let clean = |text: &str| {
        let mut text = text
            .replace(framework_id, "<framework>")
            .replace(agent_id, "<agent>");
        for offer in &offer_ids {
            text = text.replace(offer.as_str(), "<offer>");
        }
        // The rest of this message lists what the offer had left, which depends on which
        // executors still hold resources at that moment.
        if let Some((head, _)) = text.split_once(" is more than available ") {
            text = format!("{head} is more than available <offered>");
        }
        text
    };
    let mut out = Vec::new();
    for (i, event) in events.iter().enumerate() {
        use scheduler::event::Type;
        let line = match event_type(event) {
            Type::Heartbeat if i == 1 => "HEARTBEAT".to_owned(),
            Type::Heartbeat | Type::Offers | Type::Rescind => continue,
            Type::Subscribed => "SUBSCRIBED".to_owned(),
            Type::Update => {
                let status = &event.update.as_ref().expect("UPDATE").status;
                format!(
                    "UPDATE {} {} source={:?} reason={:?} message={:?} uuid={} agent_id={} \
                     executor_id={:?} container_status={}",
                    status.task_id.value,
                    shardex::mesos::states::name(status.state),
                    status
                        .source
                        .and_then(|s| task_status::Source::try_from(s).ok()),
                    reason(status),
                    status.message.as_deref().map(clean),
                    status.uuid.is_some(),
                    status.agent_id.is_some(),
                    status.executor_id.as_ref().map(|e| e.value.clone()),
                    status.container_status.is_some(),
                )
            }
            Type::Failure => {
                let failure = event.failure.as_ref().expect("FAILURE");
                format!(
                    "FAILURE executor_id={:?} agent_id={} status={:?}",
                    failure.executor_id.as_ref().map(|e| e.value.clone()),
                    failure.agent_id.is_some(),
                    failure.status
                )
            }
            other => format!("{other:?}"),
        };
        out.push(line);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_events_come_in_the_real_masters_order() {
    let flags = Flags {
        master: vec!["--allocation_interval=100ms".into()],
        agent: Vec::new(),
    };
    let Some(mesos) = RealMesos::start("real_mesos_event_order", flags) else {
        return;
    };
    let real_events = scenario(Peer::Real(&mesos)).await;
    let real_framework = real_events[0]
        .subscribed
        .as_ref()
        .expect("SUBSCRIBED first")
        .framework_id
        .value
        .clone();
    let real = normalise(&real_events, &real_framework, &mesos.agent_id);

    let tc = TestCluster::start().await;
    let local_events = scenario(Peer::Embedded(&tc.cluster)).await;
    let local_framework = local_events[0]
        .subscribed
        .as_ref()
        .expect("SUBSCRIBED first")
        .framework_id
        .value
        .clone();
    let local = normalise(&local_events, &local_framework, tc.cluster.agent_id());
    tc.cluster.shutdown().await;

    let width = real.len().max(local.len());
    let mut table = String::new();
    let mut differ = false;
    for i in 0..width {
        let r = real.get(i).map_or("-", String::as_str);
        let l = local.get(i).map_or("-", String::as_str);
        let mark = if r == l { " " } else { "≠" };
        differ |= r != l;
        table.push_str(&format!("{mark} {i:2} real:     {r}\n"));
        if r != l {
            table.push_str(&format!("{mark} {i:2} embedded: {l}\n"));
        }
    }
    assert!(!differ, "the event sequences differ:\n{table}");
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!(
            "SHARDEX-DIFFERENTIAL: scheduler events: {} compared, all identical\n",
            real.len()
        ),
    );
}
