//! How runs look in the REST API: `GET /api/jobs/{job}/runs`, `GET /api/runs/{run}`,
//! `GET /api/tasks/{task}`. Each task carries its Mesos sandbox and links to the agent's
//! `/files/read` and `/files/download` for the files a user wants to see: the executor's
//! `stdout`/`stderr` (the sandbox's) and the task's own (a script job writes its output into
//! its work directory, `<sandbox>/tasks/<task id>`).

use std::path::Path;

use serde_json::{Value, json};

use super::rest_view::with_rfc3339_times;
use super::runs::{Run, RunId, TaskRun};
use super::store::{HistoryReader, StoreError};
use super::{ApiFailure, ApiReply, ApiResult};

/// A run as the engine answers it: in memory while open, otherwise read from the store by
/// the REST handler.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEntry {
    Open(Box<Run>),
    /// Its id and store key.
    Archived(RunId, String),
}

/// A history query the engine answered with what it knows; [`resolve`] reads archived runs
/// and renders it.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryQuery {
    JobRuns {
        job: String,
        entries: Vec<RunEntry>,
        next_before: Option<RunId>,
    },
    Run(RunEntry),
    Task {
        task_id: String,
        entry: RunEntry,
    },
}

/// The JSON answer of a history query, reading archived runs with `reader`.
pub async fn resolve(query: HistoryQuery, reader: Option<&HistoryReader>) -> ApiResult {
    let archived: Vec<String> = match &query {
        HistoryQuery::JobRuns { entries, .. } => entries.iter().filter_map(archived_key).collect(),
        HistoryQuery::Run(entry) | HistoryQuery::Task { entry, .. } => {
            archived_key(entry).into_iter().collect()
        }
    };
    let mut read = if archived.is_empty() {
        Vec::new()
    } else {
        let Some(reader) = reader else {
            return Err(ApiFailure::new(
                503,
                "this scheduler cannot read its run history store",
            ));
        };
        reader.runs(&archived).await.map_err(read_failure)?
    };
    let mut take = |entry: RunEntry| -> Option<Run> {
        match entry {
            RunEntry::Open(run) => Some(*run),
            RunEntry::Archived(id, _) => read
                .iter()
                .position(|r| r.id == id)
                .map(|at| read.swap_remove(at)),
        }
    };
    let value = match query {
        HistoryQuery::JobRuns {
            job,
            entries,
            next_before,
        } => {
            let runs: Vec<Value> = entries
                .into_iter()
                .filter_map(&mut take)
                .map(|run| run_json(&run))
                .collect();
            json!({ "job": job, "runs": runs, "next_before": next_before })
        }
        HistoryQuery::Run(entry) => {
            let id = entry_id(&entry);
            let run = take(entry).ok_or_else(|| forgotten_run(id))?;
            run_json(&run)
        }
        HistoryQuery::Task { task_id, entry } => {
            let id = entry_id(&entry);
            let run = take(entry).ok_or_else(|| forgotten_run(id))?;
            let (item, task) = run
                .task(&task_id)
                .ok_or_else(|| ApiFailure::new(404, format!("no task '{task_id}' in run {id}")))?;
            json!({
                "run": run.id,
                "job": run.job,
                "item": item,
                "task": task_json(task),
            })
        }
    };
    Ok(ApiReply::Json(200, with_rfc3339_times(value)))
}

fn archived_key(entry: &RunEntry) -> Option<String> {
    match entry {
        RunEntry::Archived(_, key) => Some(key.clone()),
        RunEntry::Open(_) => None,
    }
}

fn entry_id(entry: &RunEntry) -> RunId {
    match entry {
        RunEntry::Archived(id, _) => *id,
        RunEntry::Open(run) => run.id,
    }
}

fn forgotten_run(id: RunId) -> ApiFailure {
    ApiFailure::new(
        404,
        format!("run {id} is no longer in the history (history.max_runs / history.max_age)"),
    )
}

fn read_failure(error: StoreError) -> ApiFailure {
    ApiFailure::new(503, format!("cannot read the run history: {error}"))
}

/// One run, with each item's outcome and tasks.
pub fn run_json(run: &Run) -> Value {
    let items: Vec<Value> = run
        .items
        .iter()
        .map(|item| {
            json!({
                "item": item.item,
                "outcome": item.outcome(),
                "tasks": item.tasks.iter().map(task_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "id": run.id,
        "job": run.job,
        "app": run.app,
        "trigger": run.trigger,
        "fired_at": run.fired_at,
        "launched_at": run.launched_at,
        "ended_at": run.ended_at,
        "outcome": run.outcome(),
        "items": items,
    })
}

/// One task, with its states and its sandbox.
pub fn task_json(task: &TaskRun) -> Value {
    json!({
        "task_id": task.task_id,
        "kind": task.kind.as_str(),
        "attempt": task.attempt,
        "agent_id": task.agent_id,
        "executor_id": task.executor_id,
        "launched_at": task.launched_at,
        "ended_at": task.ended_at,
        "duration_ms": task.ended_at.map(|end| end - task.launched_at),
        "state": task.state().as_str_name(),
        "outcome": task.outcome(),
        "kill": task.kill,
        "states": task.states,
        "sandbox": sandbox_json(task),
    })
}

/// Where the task's files are on its agent, and links to read them.
fn sandbox_json(task: &TaskRun) -> Value {
    // The work directory is `<sandbox>/tasks/<task id>` (executor `jobs::task_work_dir`).
    let directory = task.work_dir.as_deref().and_then(|dir| {
        let tasks = Path::new(dir).parent()?;
        (tasks.file_name()? == "tasks")
            .then(|| tasks.parent())
            .flatten()
            .and_then(Path::to_str)
            .map(str::to_owned)
    });
    let mut files = Vec::new();
    let mut add = |name: &str, dir: &Option<String>, file: &str| {
        if let Some(dir) = dir {
            let path = format!("{dir}/{file}");
            let link = |endpoint: &str| {
                task.agent_url
                    .as_ref()
                    .map(|url| format!("{url}/files/{endpoint}?path={}", query_encode(&path)))
            };
            files.push(json!({
                "name": name,
                "path": path,
                "read": link("read"),
                "download": link("download"),
            }));
        }
    };
    add("stdout", &task.work_dir, "stdout");
    add("stderr", &task.work_dir, "stderr");
    add("executor stdout", &directory, "stdout");
    add("executor stderr", &directory, "stderr");
    json!({
        "agent_url": task.agent_url,
        "directory": directory,
        "work_dir": task.work_dir,
        "files": files,
    })
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters and `/` stay).
pub fn query_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ExecutionKind;

    #[test]
    fn a_tasks_files_are_linked_on_its_agent() {
        let task = TaskRun {
            task_id: "j@-@0@-@READY@-@S0@-@u".into(),
            kind: ExecutionKind::Ready,
            attempt: 0,
            agent_id: "S0".into(),
            executor_id: "e".into(),
            agent_url: Some("http://127.0.0.1:5051".into()),
            work_dir: Some("/w/runs/c1/tasks/j@-@0@-@READY@-@S0@-@u".into()),
            launched_at: 10,
            ended_at: Some(25),
            kill: None,
            states: Vec::new(),
        };
        let value = task_json(&task);
        assert_eq!(value["duration_ms"], 15);
        assert_eq!(value["sandbox"]["directory"], "/w/runs/c1");
        let files = value["sandbox"]["files"].as_array().unwrap();
        assert_eq!(files.len(), 4);
        assert_eq!(
            files[0]["read"],
            "http://127.0.0.1:5051/files/read?path=/w/runs/c1/tasks/j%40-%400%40-%40READY%40-%40S0%40-%40u/stdout"
        );
        assert_eq!(files[2]["name"], "executor stdout");
        assert_eq!(
            files[3]["download"],
            "http://127.0.0.1:5051/files/download?path=/w/runs/c1/stderr"
        );
    }
}
