//! A network partition between the embedded master and its agent
//! (`LocalCluster::partition_agent` / `heal_agent`), against what Mesos 1.12's master does when
//! an agent fails its health checks and later re-registers (`markUnreachable`,
//! `__removeSlave`, `reconcile`, `kill`, `__reregisterSlave` in src/master/master.cpp).
//!
//! Needs the example `test_executor` (`cargo test` builds it).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use shardex::mesos::Encoding;
use shardex::mesos::proto::v1::{
    self, TaskState, executor,
    framework_info::capability::Type as Capability,
    scheduler,
    task_status::{Reason, Source},
};
use support::*;

fn update_of(event: &scheduler::Event) -> Option<&v1::TaskStatus> {
    event.update.as_ref().map(|u| &u.status)
}

fn is_update(task_id: &str, reason: Reason) -> impl Fn(&scheduler::Event) -> bool + '_ {
    move |e| {
        update_of(e).is_some_and(|s| s.task_id.value == task_id && s.reason == Some(reason as i32))
    }
}

fn position(
    fw: &TestFramework,
    from: usize,
    predicate: impl Fn(&scheduler::Event) -> bool,
) -> usize {
    from + fw.history[from..]
        .iter()
        .position(predicate)
        .expect("the event is in the history")
}

/// Updates for `task_id` received at or after `from`.
fn updates_since<'a>(fw: &'a TestFramework, from: usize, task_id: &str) -> Vec<&'a v1::TaskStatus> {
    fw.history[from..]
        .iter()
        .filter_map(update_of)
        .filter(|s| s.task_id.value == task_id)
        .collect()
}

/// Everything the master sends because of what happened before this call has been received
/// once this returns: the explicit reconciliation of a task nobody knows is answered in order
/// behind it, on the same stream.
async fn barrier(fw: &mut TestFramework, name: &str) {
    fw.reconcile(&[(name, None)]).await.unwrap();
    let answer = fw.next_update(name).await;
    assert_eq!(state(&answer), TaskState::TaskUnknown);
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_symlink() {
            continue;
        }
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

/// Waits until the test executor has recorded the acknowledgement of `task_id`'s `state`.
async fn wait_acknowledged(work_dir: &Path, task_id: &str, state: &str) {
    let line = format!("{task_id} {state}");
    eventually(
        &format!("the executor's ACKNOWLEDGED for {line} in acks.txt"),
        SOON,
        || async {
            let acks = find_file(work_dir, "acks.txt")
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            holds(acks.lines().any(|l| l == line))
        },
    )
    .await;
}

fn kill_call(fw: &TestFramework, task_id: &str, agent_id: &str) -> scheduler::Call {
    let mut call = fw.call(scheduler::call::Type::Kill);
    call.kill = Some(scheduler::call::Kill {
        task_id: v1::TaskId {
            value: task_id.into(),
        },
        agent_id: Some(v1::AgentId {
            value: agent_id.into(),
        }),
        kill_policy: None,
    });
    call
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The master-generated update a partition causes, field by field.
fn assert_removed(status: &v1::TaskStatus, wanted: TaskState, agent: &str, executor: &str) {
    assert_eq!(state(status), wanted, "{status:?}");
    assert_eq!(status.source, Some(Source::Master as i32));
    assert_eq!(reason(status), Some(Reason::AgentRemoved));
    assert_eq!(status.message.as_deref(), Some("health check timed out"));
    assert_eq!(status.uuid, None, "master-generated: never acknowledged");
    assert_eq!(status.agent_id.as_ref().unwrap().value, agent);
    assert_eq!(status.executor_id.as_ref().unwrap().value, executor);
    assert!(status.timestamp.is_some());
    let since = status
        .unreachable_time
        .expect("unreachable_time")
        .nanoseconds;
    assert!(
        (now_nanos() - since) < SOON.as_nanos() as i64 && since <= now_nanos(),
        "unreachable_time {since} is not just now"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_makes_tasks_unreachable_and_healing_brings_them_back_with_pending_updates() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let work_dir = tc.cluster.work_dir().to_owned();
    let go_run = tc.dir.path().join("p-run.go");
    let go_fin = tc.dir.path().join("p-fin.go");
    let mut fw = tc.framework("partition-pa").await;
    let executor = test_executor_info("exec-p");
    let offer = fw.next_offer().await;
    fw.accept(
        vec![offer.id.clone()],
        vec![launch_operation(vec![
            task_info(
                "p-run",
                &agent,
                &executor,
                &format!("finish-on-file:{}", go_run.display()),
            ),
            task_info(
                "p-fin",
                &agent,
                &executor,
                &format!("finish-on-file:{}", go_fin.display()),
            ),
        ])],
        Some(0.0),
    )
    .await
    .unwrap();
    fw.await_state("p-run", TaskState::TaskRunning).await;
    fw.await_state("p-fin", TaskState::TaskRunning).await;
    // The rest of the agent is offered again at once (refuse 0 s) and held across the partition.
    let held = fw.next_offer().await;
    let pid = tc.cluster.executor_pid("exec-p").await.unwrap().unwrap();

    let before = fw.history.len();
    tc.cluster.partition_agent().await.unwrap();
    // In `__removeSlave`'s order: the tasks' updates, RESCIND of the agent's offers, then the
    // agent-only FAILURE (`LostSlaveMessage`).
    let run = fw
        .wait_for(
            "p-run UNREACHABLE",
            SOON,
            is_update("p-run", Reason::AgentRemoved),
        )
        .await;
    let fin = fw
        .wait_for(
            "p-fin UNREACHABLE",
            SOON,
            is_update("p-fin", Reason::AgentRemoved),
        )
        .await;
    let (run, fin) = (update_of(&run).unwrap(), update_of(&fin).unwrap());
    assert_removed(run, TaskState::TaskUnreachable, &agent, "exec-p");
    assert_removed(fin, TaskState::TaskUnreachable, &agent, "exec-p");
    let since = run.unreachable_time.unwrap();
    assert_eq!(
        fin.unreachable_time,
        Some(since),
        "one time for the whole transition"
    );
    let rescind = fw
        .wait_for("RESCIND", SOON, |e| {
            event_type(e) == scheduler::event::Type::Rescind
        })
        .await;
    assert_eq!(rescind.rescind.unwrap().offer_id, held.id);
    let lost = fw
        .wait_for("FAILURE of the agent", SOON, |e| e.failure.is_some())
        .await
        .failure
        .unwrap();
    assert_eq!(lost.agent_id.unwrap().value, agent);
    assert_eq!((lost.executor_id, lost.status), (None, None));
    let rescinded_at = position(&fw, before, |e| e.rescind.is_some());
    assert!(position(&fw, before, is_update("p-fin", Reason::AgentRemoved)) < rescinded_at);
    assert!(rescinded_at < position(&fw, before, |e| e.failure.is_some()));
    assert!(
        tc.cluster.partition_agent().await.is_err(),
        "already partitioned"
    );

    // Explicit reconciliation (with the agent id) answers UNREACHABLE since the same time.
    fw.reconcile(&[("p-run", Some(&agent))]).await.unwrap();
    let answer = fw
        .wait_for(
            "reconciliation of p-run",
            SOON,
            is_update("p-run", Reason::Reconciliation),
        )
        .await;
    let answer = update_of(&answer).unwrap();
    assert_eq!(state(answer), TaskState::TaskUnreachable);
    assert_eq!(
        answer.message.as_deref(),
        Some("Reconciliation: Task is unreachable")
    );
    assert_eq!(answer.source, Some(Source::Master as i32));
    assert_eq!(
        (answer.uuid.as_ref(), answer.unreachable_time),
        (None, Some(since))
    );
    // Implicit reconciliation leaves unreachable tasks out.
    let implicit_at = fw.history.len();
    fw.reconcile(&[]).await.unwrap();
    barrier(&mut fw, "barrier-1").await;
    assert!(updates_since(&fw, implicit_at, "p-run").is_empty());
    assert!(updates_since(&fw, implicit_at, "p-fin").is_empty());
    // A KILL is not held for later: the master no longer knows the task and answers with
    // reconciliation (p-run keeps running and finishes normally after the heal).
    fw.send(&kill_call(&fw, "p-run", &agent)).await.unwrap();
    let answer = fw.next_update("p-run").await;
    assert_eq!(state(&answer), TaskState::TaskUnreachable);
    assert_eq!(reason(&answer), Some(Reason::Reconciliation));

    // The executor sees nothing wrong: its update is accepted and ACKNOWLEDGED ...
    let executor_calls_before = tc.cluster.executor_calls().await.unwrap().len();
    std::fs::write(&go_fin, "").unwrap();
    wait_acknowledged(&work_dir, "p-fin", "TASK_FINISHED").await;
    let calls = tc.cluster.executor_calls().await.unwrap();
    let sent: Vec<u16> = calls[executor_calls_before..]
        .iter()
        .filter(|c| {
            c.call.as_ref().and_then(|c| c.r#type) == Some(executor::call::Type::Update as i32)
        })
        .map(|c| c.status)
        .collect();
    assert_eq!(sent, [202], "one UPDATE, accepted");
    // ... but it does not reach the framework.
    let finished_at = fw.history.len();
    barrier(&mut fw, "barrier-2").await;
    assert!(updates_since(&fw, finished_at, "p-fin").is_empty());
    assert_eq!(
        tc.cluster.executor_pid("exec-p").await.unwrap(),
        Some(pid),
        "the executor kept running"
    );

    let healed_at = fw.history.len();
    tc.cluster.heal_agent().await.unwrap();
    // Each task's state as the agent knows it, from the master, without uuid ...
    let back_run = fw
        .wait_for(
            "p-run back",
            SOON,
            is_update("p-run", Reason::AgentReregistered),
        )
        .await;
    let back_fin = fw
        .wait_for(
            "p-fin back",
            SOON,
            is_update("p-fin", Reason::AgentReregistered),
        )
        .await;
    for (status, wanted) in [
        (update_of(&back_run).unwrap(), TaskState::TaskRunning),
        (update_of(&back_fin).unwrap(), TaskState::TaskFinished),
    ] {
        assert_eq!(state(status), wanted, "{status:?}");
        assert_eq!(status.source, Some(Source::Master as i32));
        assert_eq!(
            status.message.as_deref(),
            Some("Unreachable agent re-reregistered")
        );
        assert_eq!(status.uuid, None);
        assert_eq!(status.unreachable_time, None);
        assert_eq!(status.agent_id.as_ref().unwrap().value, agent);
        assert_eq!(status.executor_id.as_ref().unwrap().value, "exec-p");
        assert!(
            status.container_status.is_some(),
            "the latest container status the agent has"
        );
    }
    // ... then offers again ...
    fw.wait_for("OFFERS after the heal", SOON, |e| {
        event_type(e) == scheduler::event::Type::Offers
    })
    .await;
    // ... then the update the agent kept, twice, byte for byte.
    let first = fw.next_update("p-fin").await;
    let second = fw.next_update("p-fin").await;
    assert_eq!(state(&first), TaskState::TaskFinished);
    assert_eq!(first.source, Some(Source::Executor as i32));
    assert!(first.uuid.is_some());
    assert_eq!(first, second);
    let reregistered_at = position(
        &fw,
        healed_at,
        is_update("p-fin", Reason::AgentReregistered),
    );
    let offers_at = position(&fw, healed_at, |e| e.offers.is_some());
    let pending_at = position(&fw, healed_at, |e| {
        update_of(e).is_some_and(|s| s.task_id.value == "p-fin" && s.uuid.is_some())
    });
    assert!(reregistered_at < offers_at && offers_at < pending_at);
    fw.acknowledge(&first).await.unwrap();
    fw.acknowledge(&second).await.unwrap();
    assert!(tc.cluster.heal_agent().await.is_err(), "not partitioned");

    // The task that ran through the partition was never killed, and finishes normally.
    std::fs::write(&go_run, "").unwrap();
    let finished = fw.await_state("p-run", TaskState::TaskFinished).await;
    assert_eq!(finished.source, Some(Source::Executor as i32));
    assert!(
        fw.history
            .iter()
            .filter_map(update_of)
            .all(|s| state(s) != TaskState::TaskKilled && state(s) != TaskState::TaskKilling),
        "no KILL ever reached the executor"
    );
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_without_partition_awareness_gets_task_lost_and_keeps_its_task() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut info = framework_info("partition-lost");
    info.capabilities
        .retain(|c| c.r#type != Some(Capability::PartitionAware as i32));
    let mut fw = TestFramework::subscribe(&tc.cluster.master_url(), info, Encoding::Protobuf)
        .await
        .unwrap();
    let executor = test_executor_info("exec-l");
    let offer = fw.next_offer().await;
    fw.launch(&offer, vec![task_info("l1", &agent, &executor, "running")])
        .await
        .unwrap();
    fw.await_state("l1", TaskState::TaskRunning).await;
    let pid = tc.cluster.executor_pid("exec-l").await.unwrap().unwrap();

    tc.cluster.partition_agent().await.unwrap();
    let lost = fw
        .wait_for("l1 LOST", SOON, is_update("l1", Reason::AgentRemoved))
        .await;
    let lost = update_of(&lost).unwrap();
    assert_removed(lost, TaskState::TaskLost, &agent, "exec-l");
    fw.reconcile(&[("l1", Some(&agent))]).await.unwrap();
    let answer = fw
        .wait_for(
            "reconciliation of l1",
            SOON,
            is_update("l1", Reason::Reconciliation),
        )
        .await;
    let answer = update_of(&answer).unwrap();
    assert_eq!(state(answer), TaskState::TaskLost);
    assert_eq!(
        answer.message.as_deref(),
        Some("Reconciliation: Task is unreachable")
    );
    assert_eq!(answer.unreachable_time, lost.unreachable_time);

    // Since Mesos 1.5 the master no longer kills such tasks when their agent comes back: the
    // framework hears the task is running after all.
    tc.cluster.heal_agent().await.unwrap();
    let back = fw
        .wait_for("l1 back", SOON, is_update("l1", Reason::AgentReregistered))
        .await;
    let back = update_of(&back).unwrap();
    assert_eq!(state(back), TaskState::TaskRunning);
    assert_eq!(back.uuid, None);
    assert_eq!(tc.cluster.executor_pid("exec-l").await.unwrap(), Some(pid));
    // And it is the framework's to kill again.
    fw.kill("l1", None).await.unwrap();
    fw.await_state("l1", TaskState::TaskKilled).await;
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_removed_during_a_partition_is_shut_down_when_the_agent_returns() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("partition-gone").await;
    let executor = test_executor_info("exec-g");
    let offer = fw.next_offer().await;
    fw.launch(&offer, vec![task_info("g1", &agent, &executor, "running")])
        .await
        .unwrap();
    fw.await_state("g1", TaskState::TaskRunning).await;
    tc.cluster.partition_agent().await.unwrap();
    fw.wait_for(
        "g1 UNREACHABLE",
        SOON,
        is_update("g1", Reason::AgentRemoved),
    )
    .await;
    // TEARDOWN cannot reach the agent: its executor keeps running. (A SHUTDOWN takes ≈6 ms to
    // reach an executor on real Mesos; 300 ms without one is an observation window, not a wait.)
    fw.teardown().await.unwrap();
    fw.wait_closed(SOON).await.unwrap();
    let stderr = find_file(tc.cluster.work_dir(), "stderr").expect("the executor's stderr");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !std::fs::read_to_string(&stderr)
            .unwrap()
            .contains("SHUTDOWN")
    );
    assert!(tc.cluster.executor_pid("exec-g").await.unwrap().is_some());
    // Once the agent re-registers, the master shuts the framework down there.
    tc.cluster.heal_agent().await.unwrap();
    executor_gone(&tc.cluster, "exec-g").await;
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(log.contains("SHUTDOWN"), "{log}");
    tc.cluster.shutdown().await;
}
