//! pymesos, the peer implementation (pure Python, JSON on the wire): finding a Python it runs
//! on, installing it into a virtualenv, and a minimal executor script. Its `http-parser`
//! dependency does not build on Python 3.11+, so it needs 3.10.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A minimal pymesos executor: TASK_RUNNING then TASK_FINISHED for every task.
pub const MINIMAL_EXECUTOR: &str = r#"
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
pub fn python310() -> Option<PathBuf> {
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

pub async fn install(python: &Path, dir: &Path) -> Result<PathBuf, String> {
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
