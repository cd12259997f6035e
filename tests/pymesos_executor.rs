//! An executor written by someone else runs on the embedded cluster: pymesos (pure Python, JSON
//! on the wire) is installed into a temporary virtualenv and its executor driver runs a task to
//! TASK_FINISHED. Skipped, with a message saying why, when no Python 3.10 is available (its
//! `http-parser` dependency does not build on 3.11+) or pip cannot reach the package index.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use shardex::mesos::Encoding;
use shardex::mesos::proto::v1::{TaskState, task_status};
use support::*;

const EXECUTOR: &str = r#"
import threading, time
from addict import Dict
from pymesos import Executor, MesosExecutorDriver

class Minimal(Executor):
    def launchTask(self, driver, task):
        def run():
            for state in ('TASK_RUNNING', 'TASK_FINISHED'):
                update = Dict()
                update.task_id.value = task.task_id.value
                update.state = state
                update.timestamp = time.time()
                driver.sendStatusUpdate(update)
        threading.Thread(target=run).start()

    def shutdown(self, driver):
        driver.stop()

if __name__ == '__main__':
    MesosExecutorDriver(Minimal(), use_addict=True).run()
"#;

/// A Python 3.10 interpreter, if the machine has one.
fn python310() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/root/.pyenv/versions")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("3.10"))
        .map(|e| e.path().join("bin/python3"))
        .collect();
    candidates.push(PathBuf::from("python3.10"));
    candidates.into_iter().find(|python| {
        Command::new(python)
            .arg("-c")
            .arg("import sys, venv; assert sys.version_info[:2] == (3, 10)")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Runs a command with a time bound; `Err` carries a short reason.
async fn run(mut command: tokio::process::Command, limit: Duration) -> Result<(), String> {
    command.kill_on_drop(true);
    let output = tokio::time::timeout(limit, command.output())
        .await
        .map_err(|_| format!("timed out after {limit:?}"))?
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | "))
    }
}

async fn install_pymesos(python: &Path, dir: &Path) -> Result<PathBuf, String> {
    let venv = dir.join("venv");
    let mut create = tokio::process::Command::new(python);
    create.arg("-m").arg("venv").arg(&venv);
    run(create, Duration::from_secs(60))
        .await
        .map_err(|e| format!("cannot create a virtualenv: {e}"))?;
    let mut pip = tokio::process::Command::new(venv.join("bin/pip"));
    pip.args([
        "install",
        "--disable-pip-version-check",
        "--quiet",
        "--timeout",
        "20",
        "pymesos",
    ]);
    run(pip, Duration::from_secs(240))
        .await
        .map_err(|e| format!("pip cannot install pymesos (no network?): {e}"))?;
    Ok(venv.join("bin/python"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymesos_executor_reaches_task_finished() {
    let Some(python) = python310() else {
        eprintln!(
            "SKIPPED pymesos_executor_reaches_task_finished: no Python 3.10 interpreter found"
        );
        return;
    };
    let tc = TestCluster::start().await;
    let python = match install_pymesos(&python, tc.dir.path()).await {
        Ok(python) => python,
        Err(reason) => {
            eprintln!("SKIPPED pymesos_executor_reaches_task_finished: {reason}");
            return;
        }
    };
    let script = tc.dir.path().join("pymesos_executor.py");
    std::fs::write(&script, EXECUTOR).unwrap();
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = TestFramework::subscribe(
        &tc.cluster.master_url(),
        framework_info("pymesos"),
        Encoding::Protobuf,
    )
    .await
    .unwrap();
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
