//! The REST API as a client script uses it, against a scheduler subscribed to a scripted master:
//! a `GET` body goes back through `PUT`, `PATCH` changes only the fields it names, times are
//! RFC 3339, the values shown are the ones the scheduler acts on, and the framework's web UI
//! URL answers.

mod fake_master;
mod support;

use fake_master::{DEADLINE, FakeMaster, launched};
use serde_json::{Value, json};
use shardex::mesos::proto::v1::scheduler::call;
use shardex::scheduler::{Config, Options, Scheduler};

/// Registered through REST: entries of the config file are the file's to change.
fn app() -> Value {
    json!({"name": "demo", "executor_uri": "/opt/shardex/shardex-executor"})
}

fn job() -> Value {
    json!({
        "name": "hello", "app": "demo", "cron": "0 0 0 1 1 ? 2099", "sharding_total_count": 2,
        "sharding_item_parameters": "0=a,1=b", "plugin": "libhello_shards.so",
        "properties": {"greeting": "hi", "output": "hello.out"}
    })
}

struct Harness {
    master: FakeMaster,
    _dir: tempfile::TempDir,
    scheduler: Scheduler,
    http: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        Harness::start_with(Config::default()).await
    }

    /// A scheduler with `config` (its file-managed apps and jobs), plus `demo` and `hello`
    /// registered through REST.
    async fn start_with(config: Config) -> Harness {
        let master = FakeMaster::start().await;
        let dir = tempfile::tempdir().unwrap();
        let scheduler = Scheduler::start(Options {
            config,
            master: master.url.clone(),
            store: dir.path().join("store.redb"),
            listen: "127.0.0.1:0".into(),
        })
        .await
        .unwrap();
        master
            .wait_for("SUPPRESS after subscribing", |calls| {
                calls
                    .iter()
                    .find(|c| c.kind() == call::Type::Suppress)
                    .map(|_| ())
            })
            .await;
        let h = Harness {
            master,
            _dir: dir,
            scheduler,
            http: support::http(),
        };
        let (status, answer) = h.rest("POST", "/api/apps", Some(app())).await;
        assert_eq!(status, 201, "{answer}");
        let (status, answer) = h.rest("POST", "/api/jobs", Some(job())).await;
        assert_eq!(status, 201, "{answer}");
        h
    }

    async fn rest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://{}{path}", self.scheduler.rest_addr());
        self.request(method, &url, body).await
    }

    async fn request(&self, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

#[tokio::test]
async fn a_job_read_with_get_is_accepted_back_by_put_and_patch_changes_only_what_it_names() {
    let h = Harness::start().await;
    let (status, job) = h.rest("GET", "/api/jobs/hello", None).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["enabled"], json!(true));

    // The GET body, unchanged, is a valid PUT body (read-only fields are ignored).
    let (status, answer) = h.rest("PUT", "/api/jobs/hello", Some(job.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, job);

    // Edited: read-only fields still ride along.
    let mut edited = job.clone();
    edited["job_parameter"] = json!("v2");
    let (status, answer) = h.rest("PUT", "/api/jobs/hello", Some(edited)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["job_parameter"], json!("v2"));

    // PATCH: a merge patch; objects merge key by key, null removes a key.
    let patch = json!({"sharding_total_count": 3, "properties": {"output": null, "extra": "x"}});
    let (status, patched) = h.rest("PATCH", "/api/jobs/hello", Some(patch)).await;
    assert_eq!(status, 200, "{patched}");
    let mut expected = job.clone();
    expected["job_parameter"] = json!("v2");
    expected["sharding_total_count"] = json!(3);
    expected["properties"] = json!({"greeting": "hi", "extra": "x"});
    assert_eq!(patched, expected);
    assert_eq!(h.rest("GET", "/api/jobs/hello", None).await.1, expected);

    // Validated as a PUT body, and nothing changes when it is refused.
    let (status, answer) = h
        .rest(
            "PATCH",
            "/api/jobs/hello",
            Some(json!({"cron": "0 0 25 * * ?"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"],
        json!(
            "job 'hello': field 'cron' invalid cron expression '0 0 25 * * ?': hour 25 is out of \
             range 0-23; expected Quartz format 'second minute hour day-of-month month \
             day-of-week [year]', e.g. '0/30 * * * * ?'"
        )
    );
    let (status, answer) = h
        .rest("PATCH", "/api/jobs/hello", Some(json!({"colour": "red"})))
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid job body: unknown field `colour`"),
        "{answer}"
    );
    let (status, answer) = h
        .rest("PATCH", "/api/jobs/hello", Some(json!({"name": "other"})))
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = h
        .rest("PATCH", "/api/jobs/hello", Some(json!([1, 2])))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (
            400,
            Some(
                "invalid job body: a PATCH body is a JSON object of the fields to change \
                 (RFC 7396 merge patch), not [1,2]"
            )
        )
    );
    let (status, answer) = h
        .rest(
            "PATCH",
            "/api/jobs/nope",
            Some(json!({"job_parameter": "x"})),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("job 'nope' is not registered"))
    );
    assert_eq!(h.rest("GET", "/api/jobs/hello", None).await.1, expected);
}

#[tokio::test]
async fn an_app_read_with_get_is_accepted_back_by_put_and_patch() {
    let h = Harness::start().await;
    let (status, app) = h.rest("GET", "/api/apps/demo", None).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["revision"], json!(1));
    let (status, answer) = h.rest("PUT", "/api/apps/demo", Some(app.clone())).await;
    assert_eq!((status, &answer), (200, &app));
    let (status, answer) = h
        .rest("PATCH", "/api/apps/demo", Some(json!({"mem": 64})))
        .await;
    assert_eq!(status, 200, "{answer}");
    let mut expected = app.clone();
    expected["mem"] = json!(64.0);
    expected["revision"] = json!(2);
    assert_eq!(answer, expected);
}

#[tokio::test]
async fn times_are_rfc3339_and_a_daemon_shows_that_it_fails_over() {
    let h = Harness::start().await;
    let before = chrono::Utc::now();
    assert_eq!(h.rest("POST", "/api/jobs/hello/trigger", None).await.0, 202);
    h.master
        .send_offers(vec![h.master.offer("o1", 4.0, 4096.0, &[])]);
    let accept = h.master.nth(call::Type::Accept, 1).await;
    assert_eq!(launched(&accept).len(), 2);
    let (_, running) = h.rest("GET", "/api/tasks/running", None).await;
    let launched_at = running[0]["launched_at"]
        .as_str()
        .unwrap_or_else(|| panic!("launched_at is not a string: {running}"));
    let at = chrono::DateTime::parse_from_rfc3339(launched_at).unwrap();
    assert!(launched_at.ends_with('Z'), "{launched_at}");
    assert!(at >= before - chrono::Duration::seconds(1), "{launched_at}");
    assert!(at <= chrono::Utc::now(), "{launched_at}");

    let (_, job) = h.rest("GET", "/api/jobs/hello", None).await;
    assert_eq!(job["failover"], json!(false));
    let daemon = json!({
        "name": "beat", "app": "demo", "cron": "* * * * * ?", "sharding_total_count": 1,
        "execution_type": "daemon", "plugin": "libheartbeat.so"
    });
    let (status, answer) = h.rest("POST", "/api/jobs", Some(daemon)).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["failover"], json!(true));
    let next_fire = h.rest("GET", "/api/jobs/hello", None).await.1["next_fire"].clone();
    assert_eq!(next_fire, json!("2099-01-01T00:00:00.000Z"));
}

#[tokio::test]
async fn the_web_ui_url_given_to_mesos_answers_and_the_metric_help_matches_its_labels() {
    let h = Harness::start().await;
    let subscribe = h.master.nth(call::Type::Subscribe, 1).await;
    let info = &subscribe.call.subscribe.as_ref().unwrap().framework_info;
    let url = info.webui_url.clone().expect("a webui_url");
    assert_eq!(url, format!("http://{}/", h.scheduler.rest_addr()));
    let (status, index) = h.request("GET", &url, None).await;
    assert_eq!(status, 200, "{index}");
    assert_eq!(index["name"], json!("shardex-scheduler"));
    let endpoints = index["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), shardex::scheduler::ENDPOINTS.len());
    assert!(endpoints.contains(&json!("GET /api/jobs")), "{index}");

    let metrics = h
        .http
        .get(format!("http://{}/metrics", h.scheduler.rest_addr()))
        .timeout(DEADLINE)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "# HELP shardex_tasks_launched_total Tasks launched, by why: type ready for a run \
             (cron fire, trigger, daemon start), failover for a relaunch of a failed item.\n"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_running_task_shows_its_sandbox_and_the_work_dir_its_executor_announced() {
    let h = Harness::start().await;
    assert_eq!(h.rest("POST", "/api/jobs/hello/trigger", None).await.0, 202);
    h.master
        .send_offers(vec![h.master.offer("o1", 4.0, 4096.0, &[])]);
    let tasks = launched(&h.master.nth(call::Type::Accept, 1).await);
    let id = tasks[0].task_id.value.clone();
    let task_of = |running: &Value| {
        running
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task_id"] == json!(id))
            .cloned()
            .unwrap()
    };
    let (_, running) = h.rest("GET", "/api/tasks/running", None).await;
    let task = task_of(&running);
    assert_eq!(
        task["sandbox"],
        json!("slaves/agent-S0/frameworks/fw-test/executors/demo@-@agent-S0/runs/latest")
    );
    assert_eq!(task["work_dir"], Value::Null);

    let dir = format!(
        "/var/lib/mesos/slaves/agent-S0/frameworks/fw-test/executors/demo@-@agent-S0/runs/c1/tasks/{id}"
    );
    let mut update = h.master.update(
        &id,
        shardex::mesos::proto::v1::TaskState::TaskRunning,
        Some(1),
    );
    update.labels = Some(shardex::status_contract::work_dir(&dir));
    h.master.send_update(update);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_, running) = h.rest("GET", "/api/tasks/running", None).await;
        let task = task_of(&running);
        if task["work_dir"] == json!(dir) {
            assert_eq!(task["state"], json!("TASK_RUNNING"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{task}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn patch_like_put_leaves_what_the_config_file_manages_to_the_file() {
    let config = Config::from_toml(
        r#"
[[apps]]
name = "filed-app"
executor_uri = "/opt/shardex/shardex-executor"
[[jobs]]
name = "filed"
app = "filed-app"
sharding_total_count = 1
plugin = "libhello_shards.so"
"#,
        "test.toml",
    )
    .unwrap();
    let h = Harness::start_with(config).await;
    for (path, what, patch) in [
        (
            "/api/jobs/filed",
            "job 'filed'",
            json!({"description": "x"}),
        ),
        ("/api/apps/filed-app", "app 'filed-app'", json!({"mem": 64})),
    ] {
        let (status, answer) = h.rest("PATCH", path, Some(patch)).await;
        assert_eq!(status, 409, "{answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{what} is managed by the config file test.toml")),
            "{message}"
        );
    }
    let (_, job) = h.rest("GET", "/api/jobs/filed", None).await;
    assert_eq!(job["description"], json!(""));
}
