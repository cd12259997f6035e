//! Three executors, one after the other, on one real Apache Mesos agent (`SHARDEX_MESOS_HOME`)
//! under a hand-rolled v1 scheduler: `shardex-executor` (run by path, a plugin job that
//! succeeds), Mesos' own command executor (`true`) and the pymesos executor (pure Python, JSON
//! on the wire, the same script tests/pymesos_executor.rs runs on the embedded cluster). Each
//! task's state sequence is asserted exactly, and the agent's log gives one timing line for the
//! three (`SHARDEX-TIMING:`, stderr): container start → SUBSCRIBE (registration, for the
//! driver-based command executor), LAUNCH → TASK_RUNNING and LAUNCH → TASK_FINISHED.
//!
//! Skipped, with one `SHARDEX-SKIP:` line, without `SHARDEX_MESOS_HOME`, without a Python 3.10
//! or when pip cannot install pymesos (a failure under `SHARDEX_REQUIRE_REAL=1`). Needs `cargo
//! build --workspace` first.

mod support;

use std::io::Write as _;

use shardex::mesos::Encoding;
use shardex::mesos::proto::v1::{self, TaskState};
use shardex::payload::ErrorPolicy;
use support::real_mesos::{Flags, RealMesos, logged_at, ms};
use support::*;

const TEST: &str = "real_mesos_executor_peers";

/// Launches `task` on the next offer and returns its states up to a terminal one,
/// acknowledging each update.
async fn run(fw: &mut TestFramework, task: v1::TaskInfo) -> Vec<TaskState> {
    let task_id = task.task_id.value.clone();
    let offer = fw.next_offer().await;
    fw.accept(
        vec![offer.id.clone()],
        vec![launch_operation(vec![task])],
        Some(0.0),
    )
    .await
    .expect("ACCEPT is taken");
    let mut states = Vec::new();
    loop {
        let status = fw.next_update(&task_id).await;
        if status.uuid.is_some() {
            fw.acknowledge(&status).await.expect("ACKNOWLEDGE");
        }
        states.push(state(&status));
        if shardex::mesos::states::is_terminal(state(&status)) {
            return states;
        }
    }
}

/// The agent log's times for one executor and its task, in ms: container start → SUBSCRIBE (or
/// registration), LAUNCH → TASK_RUNNING, LAUNCH → TASK_FINISHED.
fn agent_timing(log: &str, executor_id: &str, task_id: &str) -> [f64; 3] {
    let executor = format!("for executor '{executor_id}'");
    let container = log
        .lines()
        .find(|l| l.contains("Launching container ") && l.contains(&executor))
        .and_then(|l| l.split("Launching container ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("the agent log names no container {executor}"))
        .to_owned();
    let started = logged_at(log, &["Starting container ", &container]);
    let quoted = format!("executor '{executor_id}'");
    let subscribed = log
        .lines()
        .find(|l| {
            l.contains(&quoted)
                && (l.contains("Received Subscribe request for HTTP")
                    || l.contains("Got registration for"))
        })
        .and_then(support::real_mesos::glog_time)
        .unwrap_or_else(|| panic!("the agent log has no subscription of {quoted}"));
    let launched = logged_at(log, &[&format!("Launching task '{task_id}'")]);
    let update = |state: &str| {
        logged_at(
            log,
            &[
                &format!("Handling status update {state} "),
                &format!("for task {task_id} of"),
            ],
        )
    };
    [
        ms(started, subscribed),
        ms(launched, update("TASK_RUNNING")),
        ms(launched, update("TASK_FINISHED")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shardex_executor_the_command_executor_and_pymesos_on_one_real_agent() {
    let Some(python) = pymesos::python310() else {
        skip(TEST, "no Python 3.10 interpreter found");
        return;
    };
    // The virtualenv is made while the daemons start.
    let venv = tempfile::tempdir().expect("a tempdir");
    let flags = Flags {
        master: vec!["--allocation_interval=100ms".into()],
        agent: Vec::new(),
    };
    let starting = tokio::task::spawn_blocking(move || RealMesos::start(TEST, flags));
    let installed = pymesos::install(&python, venv.path()).await;
    let mesos = match starting.await {
        Ok(mesos) => mesos,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let Some(mesos) = mesos else {
        return;
    };
    let python = match installed {
        Ok(python) => python,
        Err(reason) => {
            skip(TEST, &reason);
            return;
        }
    };
    let script = venv.path().join("pymesos_executor.py");
    std::fs::write(&script, pymesos::MINIMAL_EXECUTOR).expect("write the executor script");

    let agent = mesos.agent_id.clone();
    let mut fw = TestFramework::subscribe(
        &mesos.master_url(),
        framework_info("executor-peers"),
        Encoding::Protobuf,
    )
    .await
    .expect("SUBSCRIBE");

    let mut shardex = task_info(
        "shardex-ok",
        &agent,
        &shardex_executor_info("shardex", "", &["faulty"]),
        "",
    );
    shardex.data = Some(
        faulty("shardex-ok", "ok", ErrorPolicy::Fail)
            .encode()
            .expect("a valid payload"),
    );
    let command = v1::TaskInfo {
        name: "true".into(),
        task_id: v1::TaskId {
            value: "command-true".into(),
        },
        agent_id: v1::AgentId {
            value: agent.clone(),
        },
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        command: Some(v1::CommandInfo {
            value: Some("true".into()),
            shell: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pymesos = task_info(
        "pymesos-ok",
        &agent,
        &executor_info(
            "pymesos",
            &format!("{} {}", python.display(), script.display()),
            Vec::new(),
        ),
        "",
    );

    use TaskState::{TaskFinished, TaskRunning, TaskStarting};
    assert_eq!(
        run(&mut fw, shardex).await,
        [TaskStarting, TaskRunning, TaskFinished],
        "shardex-executor"
    );
    assert_eq!(
        run(&mut fw, command).await,
        [TaskStarting, TaskRunning, TaskFinished],
        "the command executor"
    );
    // pymesos' minimal executor sends no TASK_STARTING.
    assert_eq!(
        run(&mut fw, pymesos).await,
        [TaskRunning, TaskFinished],
        "pymesos"
    );
    fw.teardown().await.expect("TEARDOWN");

    let log = mesos.agent_log();
    let rows = [
        (
            "shardex-executor",
            agent_timing(&log, "shardex", "shardex-ok"),
        ),
        (
            "command executor (`true`)",
            agent_timing(&log, "command-true", "command-true"),
        ),
        ("pymesos", agent_timing(&log, "pymesos", "pymesos-ok")),
    ];
    let line: Vec<String> = rows
        .iter()
        .map(|(name, [subscribe, running, finished])| {
            format!(
                "{name}: container start -> SUBSCRIBE {subscribe:.0} ms, LAUNCH -> TASK_RUNNING \
                 {running:.0} ms, -> TASK_FINISHED {finished:.0} ms"
            )
        })
        .collect();
    let _ = writeln!(
        std::io::stderr(),
        "SHARDEX-TIMING: real mesos agent log, one run, one executor at a time: {}",
        line.join(" | ")
    );
}
