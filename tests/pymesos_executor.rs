//! An executor written by someone else runs on the embedded cluster: pymesos (pure Python, JSON
//! on the wire) is installed into a temporary virtualenv and its executor driver runs a task to
//! TASK_FINISHED. Skipped, with a message saying why, when no Python 3.10 is available (its
//! `http-parser` dependency does not build on 3.11+) or pip cannot reach the package index.

mod support;

use shardex::mesos::proto::v1::{TaskState, task_status};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymesos_executor_reaches_task_finished() {
    let Some(python) = pymesos::python310() else {
        support::skip(
            "pymesos_executor_reaches_task_finished",
            "no Python 3.10 interpreter found",
        );
        return;
    };
    let tc = TestCluster::start().await;
    let python = match pymesos::install(&python, tc.dir.path()).await {
        Ok(python) => python,
        Err(reason) => {
            support::skip("pymesos_executor_reaches_task_finished", &reason);
            return;
        }
    };
    let script = tc.dir.path().join("pymesos_executor.py");
    std::fs::write(&script, pymesos::MINIMAL_EXECUTOR).unwrap();
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("pymesos").await;
    let executor = executor_info(
        "pymesos",
        &format!("{} {}", python.display(), script.display()),
        Vec::new(),
    );
    let offer = fw.next_offer().await;
    fw.launch(&offer, vec![task_info("p1", &agent, &executor, "")])
        .await
        .unwrap();
    let running = fw.next_update("p1").await;
    assert_eq!(state(&running), TaskState::TaskRunning, "{running:?}");
    assert_eq!(running.source, Some(task_status::Source::Executor as i32));
    fw.acknowledge(&running).await.unwrap();
    let finished = fw.await_state("p1", TaskState::TaskFinished).await;
    assert!(finished.container_status.is_some());
    // pymesos spoke JSON to the agent.
    let calls = tc.cluster.executor_calls().await.unwrap();
    assert!(!calls.is_empty());
    assert!(
        calls
            .iter()
            .all(|c| c.content_type.as_deref() == Some("application/json") && c.status < 300),
        "{calls:#?}"
    );
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}
