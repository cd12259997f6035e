//! Run history through the REST API, on the embedded cluster with real executors:
//!
//! - a run whose executor is killed: each item shows its READY task ended by the agent
//!   (`TASK_FAILED`, `SOURCE_AGENT`, `REASON_EXECUTOR_TERMINATED`), then its FAILOVER task
//!   finished, in that order, in one run; `GET /api/runs/{run}` and `GET /api/tasks/{task}`
//!   answer the same records, with the sandbox and the agent's file links;
//! - paging (`limit`, `before`), retention (`history.max_runs`), and what bad queries get.
//!
//! Needs `cargo build --workspace` first.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::scheduler_rest::*;
use support::{SOON, TestCluster, eventually, gate};

const SHARDS: u32 = 3;

/// The states of a task, as names.
fn state_names(task: &Value) -> Vec<&str> {
    task["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect()
}

/// Waits until the job's newest run has settled; returns the runs page.
async fn settled_runs(rest: &Rest, job: &str) -> Value {
    eventually("the run to settle", SOON, || async {
        let page = rest.get(&format!("/api/jobs/{job}/runs")).await;
        let outcome = page["runs"][0]["outcome"].as_str().unwrap_or("").to_owned();
        (!["", "pending", "running"].contains(&outcome.as_str())).then_some(page)
    })
    .await
}

/// A first attempt that writes its item to stdout and waits at the gate; a second that
/// finishes at once.
fn crash_once_config(dir: &Path) -> String {
    let marker = dir.join("marker");
    let gate = dir.join("gate");
    script_job_config(
        SHARDS,
        &format!(
            "/bin/sh -c 'echo shard $SHARDEX_SHARDING_ITEM; \
             if [ ! -e {m}.$SHARDEX_SHARDING_ITEM ]; then touch {m}.$SHARDEX_SHARDING_ITEM; \
             read line < {g}; fi'",
            m = marker.display(),
            g = gate.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_over_run_shows_both_tasks_of_each_item_in_order_with_the_agents_reasons() {
    let tc = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _gate = gate(&dir.path().join("gate"));
    let master = tc.cluster.master_url();
    let scheduler = start_scheduler(&scheduler_args(
        dir.path(),
        &crash_once_config(dir.path()),
        &master,
    ));
    let rest = &scheduler.rest;
    assert_eq!(rest.post("/api/jobs/work/trigger").await, 202);
    rest.until_all_running(SHARDS as usize).await;

    // While it runs: one open run, every item on its READY task.
    let page = rest.get("/api/jobs/work/runs").await;
    let run = &page["runs"][0];
    assert_eq!(run["outcome"], "running");
    assert_eq!(run["trigger"], "rest");
    assert_eq!(page["next_before"], Value::Null);
    kill_executor(&tc.cluster, "a").await;

    let page = settled_runs(rest, "work").await;
    let runs = page["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{page:#}");
    let run = &runs[0];
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
    let items = run["items"].as_array().unwrap();
    assert_eq!(
        items
            .iter()
            .map(|i| i["item"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    for item in items {
        assert_eq!(item["outcome"], "succeeded");
        let tasks = item["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 2, "{item:#}");
        let (first, second) = (&tasks[0], &tasks[1]);
        assert_eq!(first["kind"], "READY");
        assert_eq!(
            state_names(first),
            [
                "TASK_STAGING",
                "TASK_STARTING",
                "TASK_RUNNING",
                "TASK_FAILED"
            ]
        );
        let failed = first["states"].as_array().unwrap().last().unwrap();
        assert_eq!(failed["source"], "SOURCE_AGENT");
        assert_eq!(failed["reason"], "REASON_EXECUTOR_TERMINATED");
        assert_eq!(first["outcome"], "failed");
        assert_eq!(second["kind"], "FAILOVER");
        assert_eq!(second["attempt"], 1);
        assert_eq!(
            state_names(second),
            [
                "TASK_STAGING",
                "TASK_STARTING",
                "TASK_RUNNING",
                "TASK_FINISHED"
            ]
        );
        let finished = second["states"].as_array().unwrap().last().unwrap();
        assert_eq!(finished["source"], "SOURCE_EXECUTOR");
        assert!(first["launched_at"].as_str().unwrap() <= second["launched_at"].as_str().unwrap());
    }

    // The same records by run and by task, the task's with its sandbox.
    let id = run["id"].as_u64().unwrap();
    assert_eq!(&rest.get(&format!("/api/runs/{id}")).await, run);
    let failover = &items[1]["tasks"][1];
    let task_id = failover["task_id"].as_str().unwrap();
    let answer = rest.get(&format!("/api/tasks/{task_id}")).await;
    assert_eq!(answer["run"], id);
    assert_eq!(answer["job"], "work");
    assert_eq!(answer["item"], 1);
    assert_eq!(&answer["task"], failover);
    let sandbox = &failover["sandbox"];
    let work_dir = sandbox["work_dir"].as_str().unwrap();
    assert!(
        work_dir.ends_with(&format!("/tasks/{task_id}")),
        "{work_dir}"
    );
    let stdout = &sandbox["files"][0];
    assert_eq!(stdout["name"], "stdout");
    assert_eq!(stdout["path"], format!("{work_dir}/stdout"));
    assert_eq!(
        std::fs::read_to_string(stdout["path"].as_str().unwrap()).unwrap(),
        "shard 1\n"
    );
    let agent = sandbox["agent_url"].as_str().unwrap();
    assert!(agent.starts_with("http://127.0.0.1:"), "{agent}");
    assert!(
        stdout["read"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{agent}/files/read?path=/")),
        "{stdout:#}"
    );

    // The link reads the file from the agent, as Mesos' /files/read answers.
    let read = support::http()
        .get(format!("{}&offset=0", stdout["read"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&read.bytes().await.unwrap()).unwrap(),
        json!({"data": "shard 1\n", "offset": 0})
    );
    let download = support::http()
        .get(stdout["download"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.text().await.unwrap(), "shard 1\n");

    // The job's summary names it.
    let jobs = rest.get("/api/jobs").await;
    let job = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "work")
        .unwrap();
    assert_eq!(job["last_run"]["id"], id);
    assert_eq!(job["last_run"]["outcome"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_page_newest_first_and_the_oldest_are_forgotten_beyond_max_runs() {
    let tc = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[history]\nmax_runs = 4\n",
        script_job_config(1, "/bin/true")
    );
    let scheduler = start_scheduler(&scheduler_args(
        dir.path(),
        &config,
        &tc.cluster.master_url(),
    ));
    let rest = &scheduler.rest;
    let mut ids = Vec::new();
    for _ in 0..6 {
        assert_eq!(rest.post("/api/jobs/work/trigger").await, 202);
        let page = eventually("the run to settle", SOON, || async {
            let page = rest.get("/api/jobs/work/runs").await;
            let newest = page["runs"][0]["id"].as_u64();
            (page["runs"][0]["outcome"] == "succeeded" && newest != ids.last().copied())
                .then_some(page)
        })
        .await;
        ids.push(page["runs"][0]["id"].as_u64().unwrap());
    }
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);

    let ids_of = |page: &Value| -> Vec<u64> {
        page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect()
    };
    // The oldest two are pruned on the scheduler's next tick.
    let page = eventually("the history to hold 4 runs", SOON, || async {
        let page = rest.get("/api/jobs/work/runs").await;
        (ids_of(&page).len() == 4).then_some(page)
    })
    .await;
    assert_eq!(ids_of(&page), [6, 5, 4, 3]);
    let first = rest.get("/api/jobs/work/runs?limit=3").await;
    assert_eq!(ids_of(&first), [6, 5, 4]);
    assert_eq!(first["next_before"], 4);
    let second = rest.get("/api/jobs/work/runs?limit=3&before=4").await;
    assert_eq!(ids_of(&second), [3]);
    assert_eq!(second["next_before"], Value::Null);

    let gone = rest.call(reqwest::Method::GET, "/api/runs/1", None).await;
    assert_eq!(
        gone,
        (
            404,
            json!({"error": "no run 1: not recorded, or no longer in the history \
                             (history.max_runs / history.max_age)"})
        )
    );
    for (path, error) in [
        (
            "/api/jobs/work/runs?limit=0",
            "limit '0' must be a number from 1 to 200",
        ),
        (
            "/api/jobs/work/runs?before=x",
            "before 'x' is not a run id (a number)",
        ),
        (
            "/api/jobs/work/runs?page=2",
            "unknown query parameter 'page'; use limit and before",
        ),
        ("/api/runs/abc", "run 'abc' is not a run id (a number)"),
    ] {
        assert_eq!(
            rest.call(reqwest::Method::GET, path, None).await,
            (400, json!({ "error": error })),
            "{path}"
        );
    }
    assert_eq!(
        rest.call(reqwest::Method::GET, "/api/jobs/nope/runs", None)
            .await,
        (
            404,
            json!({"error": "no job 'nope' is registered and no runs of it are kept"})
        )
    );
    assert_eq!(
        rest.call(reqwest::Method::GET, "/api/tasks/nope", None)
            .await
            .0,
        404,
        "an unknown task"
    );
}
