//! The scheduler against a scripted master over real loopback HTTP: what it sends, in which
//! order, and what it persists, for every rule the issue names: subscription fields, the framework
//! id kept across restarts, one task per item, acknowledgements, exactly-once failover,
//! reconciliation before launching after a restart, suspects, redirects, the heartbeat watchdog,
//! fencing, a removed framework, executor retirement, and the REST API's errors.

mod fake_master;
mod support;

use std::time::Duration;

use fake_master::{DEADLINE, FakeMaster, all_launched, launched, reconciled};
use serde_json::{Value, json};
use shardex::mesos::proto::v1::scheduler::call;
use shardex::mesos::proto::v1::{TaskState, task_status};
use shardex::payload::TaskPayload;
use shardex::scheduler::metric_sample as sample;
use shardex::scheduler::{Config, DriverError, Options, Scheduler, SchedulerError};

const CONFIG: &str = r#"
[failover]
backoff_initial = "200ms"
backoff_max = "1secs"
max_attempts = 3
[tasks]
suspect_timeout = "1500ms"
kill_retry_interval = "300ms"
reconcile_retry_initial = "300ms"
reconcile_retry_max = "1secs"
[queues]
ready_runs_per_job = 2
[mesos]
resubscribe_backoff_initial = "100ms"
resubscribe_backoff_max = "500ms"
[[apps]]
name = "demo"
executor_uri = "/opt/shardex/shardex-executor"
uris = ["/opt/shardex/libhello_shards.so"]
[[jobs]]
name = "hello"
app = "demo"
# Never fires by itself: runs come from the trigger endpoint, so tests decide when.
cron = "0 0 0 1 1 ? 2099"
sharding_total_count = 3
sharding_item_parameters = "0=a,1=b,2=c"
plugin = "libhello_shards.so"
failover = true
"#;

struct Harness {
    master: FakeMaster,
    dir: tempfile::TempDir,
    config: Config,
    scheduler: Option<Scheduler>,
    http: reqwest::Client,
}

impl Harness {
    async fn new() -> Harness {
        Harness::with(FakeMaster::start().await, CONFIG).await
    }

    /// `demo` and `hello` registered through REST instead of the config file (which would
    /// manage them and refuse REST writes).
    async fn registered_through_rest() -> Harness {
        let tuning = &CONFIG[..CONFIG.find("[[apps]]").unwrap()];
        let h = Harness::with(FakeMaster::start().await, tuning).await;
        let app = json!({
            "name": "demo", "executor_uri": "/opt/shardex/shardex-executor",
            "uris": ["/opt/shardex/libhello_shards.so"]
        });
        assert_eq!(h.rest("POST", "/api/apps", Some(app)).await.0, 201);
        let job = json!({
            "name": "hello", "app": "demo", "cron": "0 0 0 1 1 ? 2099",
            "sharding_total_count": 3, "sharding_item_parameters": "0=a,1=b,2=c",
            "plugin": "libhello_shards.so", "failover": true
        });
        assert_eq!(h.rest("POST", "/api/jobs", Some(job)).await.0, 201);
        h
    }

    async fn with(master: FakeMaster, config: &str) -> Harness {
        let mut harness = Harness {
            master,
            dir: tempfile::tempdir().unwrap(),
            config: Config::from_toml(config, "test").unwrap(),
            scheduler: None,
            http: support::http(),
        };
        harness.start().await;
        harness
    }

    async fn start(&mut self) {
        let scheduler = Scheduler::start(Options {
            config: self.config.clone(),
            master: self.master.url.clone(),
            store: self.dir.path().join("store.redb"),
            listen: "127.0.0.1:0".into(),
        })
        .await
        .unwrap();
        self.scheduler = Some(scheduler);
    }

    async fn stop(&mut self) {
        if let Some(scheduler) = self.scheduler.take() {
            scheduler.shutdown().await;
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.scheduler.as_ref().unwrap().rest_addr())
    }

    async fn rest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base());
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

    async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.base());
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Subscribed and settled: the first SUPPRESS (nothing queued) of subscription `n`.
    async fn settled(&self, n: usize) {
        self.master
            .wait_for("SUPPRESS after subscribing", |calls| {
                calls
                    .iter()
                    .find(|c| c.subscription == n && c.kind() == call::Type::Suppress)
                    .map(|_| ())
            })
            .await;
    }

    /// Triggers `hello`, offers room for it, and returns its three task ids (items 0, 1, 2).
    async fn run_hello(&self, accept_number: usize) -> Vec<String> {
        let (status, _) = self.rest("POST", "/api/jobs/hello/trigger", None).await;
        assert_eq!(status, 202);
        self.master.send_offers(vec![self.master.offer(
            &format!("o{accept_number}"),
            4.0,
            4096.0,
            &[],
        )]);
        let accept = self.master.nth(call::Type::Accept, accept_number).await;
        launched(&accept)
            .iter()
            .map(|t| t.task_id.value.clone())
            .collect()
    }

    async fn until_rest(&self, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let (_, value) = self.rest("GET", path, None).await;
            if pred(&value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; {path} = {value}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn item_of(task_id: &str) -> (u32, String) {
    let parts: Vec<&str> = task_id.split("@-@").collect();
    (parts[1].parse().unwrap(), parts[2].to_owned())
}

#[tokio::test]
async fn subscribes_with_checkpoint_and_capabilities_and_reuses_the_stored_framework_id() {
    let mut h = Harness::new().await;
    let first = h.master.nth(call::Type::Subscribe, 1).await;
    assert!(first.call.framework_id.is_none());
    assert!(
        first.stream_id.is_none(),
        "SUBSCRIBE never carries a stream id"
    );
    let info = &first.call.subscribe.as_ref().unwrap().framework_info;
    assert!(info.id.is_none());
    assert_eq!(info.checkpoint, Some(true));
    assert_eq!(info.failover_timeout, Some(604_800.0));
    assert_eq!(info.name, "shardex");
    assert_eq!(info.capabilities.len(), 2);
    h.settled(1).await;
    for seen in h.master.calls().iter().skip(1) {
        assert_eq!(seen.stream_id.as_deref(), Some("stream-1"));
        assert_eq!(seen.call.framework_id.as_ref().unwrap().value, "fw-test");
    }
    h.stop().await;
    h.start().await;
    let second = h.master.nth(call::Type::Subscribe, 2).await;
    assert_eq!(second.call.framework_id.as_ref().unwrap().value, "fw-test");
    let info = &second.call.subscribe.as_ref().unwrap().framework_info;
    assert_eq!(info.id.as_ref().unwrap().value, "fw-test");
    h.settled(2).await;
    let (status, health) = h.rest("GET", "/health", None).await;
    assert_eq!(
        (status, health["framework_id"].as_str()),
        (200, Some("fw-test"))
    );
}

#[tokio::test]
async fn one_task_per_item_every_update_acknowledged_and_duplicates_ignored() {
    let h = Harness::new().await;
    h.settled(1).await;
    let ids = h.run_hello(1).await;
    assert_eq!(ids.len(), 3);
    let accept = h.master.nth(call::Type::Accept, 1).await;
    let tasks = launched(&accept);
    for (item, task) in tasks.iter().enumerate() {
        assert_eq!(item_of(&task.task_id.value), (item as u32, "READY".into()));
        assert_eq!(task.name, format!("hello@-@{item}@-@READY@-@agent-S0"));
        assert!(task.command.is_none());
        let executor = task.executor.as_ref().unwrap();
        assert_eq!(executor.executor_id.value, "demo@-@agent-S0");
        assert_eq!(executor, tasks[0].executor.as_ref().unwrap());
        let payload = TaskPayload::decode(task.data.as_ref().unwrap()).unwrap();
        assert_eq!(payload.context.task_id, task.task_id.value);
        let param = ["a", "b", "c"][item];
        assert_eq!(payload.context.item_parameters[&(item as u32)], param);
    }
    // The REVIVE that asked for offers came before the ACCEPT, after the trigger.
    let kinds: Vec<call::Type> = h.master.calls().iter().map(|c| c.kind()).collect();
    let revive = kinds.iter().position(|k| *k == call::Type::Revive).unwrap();
    let accept_at = kinds.iter().position(|k| *k == call::Type::Accept).unwrap();
    assert!(revive < accept_at);

    let mut uuid = 0u8;
    for state in [TaskState::TaskRunning, TaskState::TaskFinished] {
        for id in &ids {
            uuid += 1;
            h.master.send_update(h.master.update(id, state, Some(uuid)));
        }
    }
    // A byte-identical re-send of item 0's TASK_FINISHED (agent restart), and a reconciliation
    // answer without uuid, which must not be acknowledged.
    h.master
        .send_update(h.master.update(&ids[0], TaskState::TaskFinished, Some(4)));
    let mut gone = h.master.update(&ids[1], TaskState::TaskGone, None);
    gone.reason = Some(task_status::Reason::Reconciliation as i32);
    gone.message = Some("Reconciliation: Task is unknown to the agent".into());
    h.master.send_update(gone);
    let acks = h.master.nth(call::Type::Acknowledge, 7).await;
    let ack = acks.call.acknowledge.unwrap();
    assert_eq!(ack.task_id.value, ids[0]);
    assert_eq!(ack.agent_id.value, "agent-S0");
    h.until_rest("/api/tasks/running", "no running task", |v| v == &json!([]))
        .await;
    let (_, failover) = h.rest("GET", "/api/tasks/failover", None).await;
    assert_eq!(
        failover,
        json!([]),
        "TASK_GONE for a finished task fails nothing over"
    );
    assert_eq!(h.master.calls_of(call::Type::Acknowledge).len(), 7);
    let metrics = h.metrics().await;
    assert_eq!(sample(&metrics, "shardex_tasks_finished_total"), Some(3));
    assert_eq!(
        sample(&metrics, "shardex_tasks_launched_total{type=\"ready\"}"),
        Some(3)
    );
    assert_eq!(
        sample(&metrics, "shardex_status_updates_duplicate_total"),
        Some(2)
    );
    assert_eq!(sample(&metrics, "shardex_offers_used_total"), Some(1));
    // Nothing queued: an offer is declined with the idle refuse filter.
    h.master
        .send_offers(vec![h.master.offer("o-idle", 4.0, 4096.0, &[])]);
    let decline = h.master.nth(call::Type::Decline, 1).await;
    let decline = decline.call.decline.unwrap();
    assert_eq!(decline.offer_ids[0].value, "o-idle");
    assert_eq!(decline.filters.unwrap().refuse_seconds, Some(120.0));
    assert_eq!(h.master.calls_of(call::Type::Accept).len(), 1);
}

#[tokio::test]
async fn a_failed_item_is_failed_over_exactly_once() {
    let h = Harness::new().await;
    h.settled(1).await;
    let ids = h.run_hello(1).await;
    h.master.send_update(h.master.crash(&ids[1], 1));
    h.master.send_update(h.master.crash(&ids[1], 1));
    let failover = h
        .until_rest("/api/tasks/failover", "one failover entry", |v| {
            v.as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    assert_eq!(failover[0]["job"], "hello");
    assert_eq!(failover[0]["item"], 1);
    assert_eq!(failover[0]["original_task_id"], ids[1].as_str());
    h.master.send_offers(vec![h.master.offer(
        "o2",
        4.0,
        4096.0,
        &["demo@-@agent-S0"],
    )]);
    let accept = h.master.nth(call::Type::Accept, 2).await;
    let relaunch = launched(&accept);
    assert_eq!(relaunch.len(), 1);
    assert_eq!(item_of(&relaunch[0].task_id.value), (1, "FAILOVER".into()));
    for (n, id) in [&ids[0], &ids[2], &relaunch[0].task_id.value]
        .into_iter()
        .enumerate()
    {
        h.master.send_update(
            h.master
                .update(id, TaskState::TaskFinished, Some(10 + n as u8)),
        );
    }
    h.until_rest("/api/tasks/running", "no running task", |v| v == &json!([]))
        .await;
    let (_, failover) = h.rest("GET", "/api/tasks/failover", None).await;
    assert_eq!(failover, json!([]));
    // More offers: nothing else runs.
    h.master
        .send_offers(vec![h.master.offer("o3", 4.0, 4096.0, &[])]);
    h.master.nth(call::Type::Decline, 1).await;
    let runs_of_item_1: Vec<String> = all_launched(&h.master.calls())
        .iter()
        .map(|t| item_of(&t.task_id.value))
        .filter(|(item, _)| *item == 1)
        .map(|(_, kind)| kind)
        .collect();
    assert_eq!(runs_of_item_1, vec!["READY", "FAILOVER"]);
    let metrics = h.metrics().await;
    assert_eq!(
        sample(&metrics, "shardex_tasks_launched_total{type=\"failover\"}"),
        Some(1)
    );
    assert_eq!(sample(&metrics, "shardex_tasks_failed_total"), Some(1));
    assert_eq!(sample(&metrics, "shardex_tasks_failed_over_total"), Some(1));
    assert_eq!(sample(&metrics, "shardex_tasks_finished_total"), Some(3));
    assert_eq!(sample(&metrics, "shardex_failover_queue_size"), Some(0));
}

#[tokio::test]
async fn failover_off_reruns_nothing() {
    let config = CONFIG.replace("failover = true", "failover = false");
    let h = Harness::with(FakeMaster::start().await, &config).await;
    h.settled(1).await;
    let ids = h.run_hello(1).await;
    h.master.send_update(h.master.crash(&ids[2], 1));
    h.master.nth(call::Type::Acknowledge, 1).await;
    h.until_rest("/api/tasks/running", "two running tasks", |v| {
        v.as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    let (_, failover) = h.rest("GET", "/api/tasks/failover", None).await;
    assert_eq!(failover, json!([]));
    h.master
        .send_offers(vec![h.master.offer("o2", 4.0, 4096.0, &[])]);
    h.master.nth(call::Type::Decline, 1).await;
    assert_eq!(h.master.calls_of(call::Type::Accept).len(), 1);
}

#[tokio::test]
async fn a_restart_reconciles_every_stored_task_before_launching_anything() {
    let mut h = Harness::new().await;
    h.settled(1).await;
    let ids = h.run_hello(1).await;
    h.master.send_update(h.master.crash(&ids[2], 1));
    h.until_rest("/api/tasks/failover", "failover of item 2", |v| {
        v.as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    h.stop().await;

    h.start().await;
    let reconcile = h.master.nth_in(call::Type::Reconcile, 2, 1).await;
    let mut asked = reconciled(&reconcile);
    asked.sort();
    assert_eq!(asked, vec![ids[0].clone(), ids[1].clone()]);
    // Offers while answers are missing are declined, never used.
    h.master
        .send_offers(vec![h.master.offer("o2", 4.0, 4096.0, &[])]);
    h.master.nth(call::Type::Decline, 1).await;
    let mut answer = h.master.update(&ids[0], TaskState::TaskRunning, None);
    answer.reason = Some(task_status::Reason::Reconciliation as i32);
    answer.source = Some(0);
    h.master.send_update(answer);
    // The unanswered task is asked about again.
    let retry = h.master.nth_in(call::Type::Reconcile, 2, 2).await;
    assert_eq!(reconciled(&retry), vec![ids[1].clone()]);
    h.master
        .send_offers(vec![h.master.offer("o3", 4.0, 4096.0, &[])]);
    h.master.nth(call::Type::Decline, 2).await;
    let mut answer = h.master.update(&ids[1], TaskState::TaskRunning, None);
    answer.reason = Some(task_status::Reason::Reconciliation as i32);
    h.master.send_update(answer);
    let implicit = h.master.nth_in(call::Type::Reconcile, 2, 3).await;
    assert!(reconciled(&implicit).is_empty(), "then implicit");
    h.master
        .send_offers(vec![h.master.offer("o4", 4.0, 4096.0, &[])]);
    let accept = h.master.nth(call::Type::Accept, 2).await;
    let relaunch = launched(&accept);
    assert_eq!(
        relaunch.len(),
        1,
        "only the failover; the run's other items still run"
    );
    assert_eq!(item_of(&relaunch[0].task_id.value), (2, "FAILOVER".into()));
    let calls = h.master.calls();
    let implicit_at = calls
        .iter()
        .position(|c| {
            c.subscription == 2 && c.kind() == call::Type::Reconcile && reconciled(c).is_empty()
        })
        .unwrap();
    let accept_at = calls
        .iter()
        .rposition(|c| c.kind() == call::Type::Accept)
        .unwrap();
    assert!(implicit_at < accept_at);
    assert_eq!(h.master.calls_of(call::Type::Accept).len(), 2);
}

#[tokio::test]
async fn an_unreachable_item_is_not_run_twice_until_its_deadline() {
    let h = Harness::new().await;
    h.settled(1).await;
    let ids = h.run_hello(1).await;
    for (n, id) in ids.iter().enumerate() {
        h.master.send_update(
            h.master
                .update(id, TaskState::TaskRunning, Some(n as u8 + 1)),
        );
    }
    let mut unreachable = h.master.update(&ids[0], TaskState::TaskUnreachable, None);
    unreachable.source = Some(0);
    h.master.send_update(unreachable);
    h.until_rest("/api/tasks/running", "a suspect task", |v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|t| !t["suspect_since"].is_null()))
    })
    .await;
    h.master
        .send_offers(vec![h.master.offer("o2", 4.0, 4096.0, &[])]);
    h.master.nth(call::Type::Decline, 1).await;
    assert_eq!(h.master.calls_of(call::Type::Accept).len(), 1);
    // Past the deadline: killed, and failed over.
    let kill = h.master.nth(call::Type::Kill, 1).await;
    assert_eq!(kill.call.kill.unwrap().task_id.value, ids[0]);
    h.master
        .send_offers(vec![h.master.offer("o3", 4.0, 4096.0, &[])]);
    let accept = h.master.nth(call::Type::Accept, 2).await;
    let relaunch = launched(&accept);
    assert_eq!(relaunch.len(), 1);
    assert_eq!(item_of(&relaunch[0].task_id.value), (0, "FAILOVER".into()));
    // The kill is retried until an end is reported; that end fails nothing over again.
    h.master.nth(call::Type::Kill, 2).await;
    h.master
        .send_update(h.master.update(&ids[0], TaskState::TaskKilled, Some(9)));
    h.until_rest("/api/tasks/running", "the old task gone", |v| {
        v.as_array()
            .is_some_and(|a| a.iter().all(|t| t["task_id"] != ids[0].as_str()))
    })
    .await;
    let (_, failover) = h.rest("GET", "/api/tasks/failover", None).await;
    assert_eq!(failover, json!([]));
    let metrics = h.metrics().await;
    assert_eq!(sample(&metrics, "shardex_tasks_failed_over_total"), Some(1));
}

#[tokio::test]
async fn repeated_failures_back_off_and_park_the_item() {
    let h = Harness::new().await;
    h.settled(1).await;
    let ids = h.run_hello(1).await;
    let mut current = ids[0].clone();
    for attempt in 1..=3u8 {
        h.master.send_update(h.master.crash(&current, attempt));
        // The relaunch waits for its backoff (0, 200, 400 ms); the REVIVE says it is due.
        h.master
            .nth(call::Type::Acknowledge, attempt as usize)
            .await;
        h.master
            .after_last(call::Type::Acknowledge, call::Type::Revive)
            .await;
        h.master.send_offers(vec![h.master.offer(
            &format!("f{attempt}"),
            4.0,
            4096.0,
            &["demo@-@agent-S0"],
        )]);
        let accept = h.master.nth(call::Type::Accept, 1 + attempt as usize).await;
        current = launched(&accept)[0].task_id.value.clone();
        assert_eq!(item_of(&current), (0, "FAILOVER".into()));
    }
    h.master.send_update(h.master.crash(&current, 99));
    let parked = h
        .until_rest("/api/tasks/parked", "item 0 parked", |v| {
            v.as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    assert_eq!(parked[0]["item"], 0);
    assert_eq!(parked[0]["attempts"], 3);
    let metrics = h.metrics().await;
    assert_eq!(sample(&metrics, "shardex_items_parked_total"), Some(1));
    assert_eq!(sample(&metrics, "shardex_parked_items"), Some(1));
    assert_eq!(sample(&metrics, "shardex_tasks_failed_over_total"), Some(3));
}

#[tokio::test]
async fn follows_a_redirect_to_the_leading_master() {
    let leader = FakeMaster::start().await;
    let follower = FakeMaster::start().await;
    follower.redirect_to(Some(&leader.url.replace("http:", "")));
    let h = Harness::with(follower, CONFIG).await;
    leader.nth(call::Type::Subscribe, 1).await;
    assert!(h.master.calls().is_empty());
}

#[tokio::test]
async fn a_silent_master_causes_a_resubscription() {
    // Heartbeats every 100 ms promised, none sent: 5 missed → resubscribe.
    let h = Harness::with(FakeMaster::start_with_heartbeat(0.1).await, CONFIG).await;
    h.master.nth(call::Type::Subscribe, 1).await;
    let again = h.master.nth(call::Type::Subscribe, 2).await;
    assert_eq!(again.call.framework_id.unwrap().value, "fw-test");
}

#[tokio::test]
async fn another_scheduler_taking_over_fences_this_one() {
    let mut h = Harness::new().await;
    h.settled(1).await;
    h.master.send_error("Framework failed over");
    let mut scheduler = h.scheduler.take().unwrap();
    let error = tokio::time::timeout(DEADLINE, scheduler.wait())
        .await
        .unwrap();
    assert!(
        matches!(error, SchedulerError::Driver(DriverError::FencedOut { .. })),
        "{error}"
    );
    // The driver has returned: nothing can subscribe again.
    assert_eq!(
        h.master.subscriptions(),
        1,
        "no resubscription after fencing"
    );
    scheduler.shutdown().await;
}

#[tokio::test]
async fn a_removed_framework_starts_over_and_fails_its_tasks_over() {
    let h = Harness::new().await;
    h.settled(1).await;
    let ids = h.run_hello(1).await;
    h.master.set_framework_id("fw-new");
    h.master.send_error("Framework has been removed");
    let again = h.master.nth(call::Type::Subscribe, 2).await;
    assert!(
        again.call.framework_id.is_none(),
        "a removed id is never reused"
    );
    h.master
        .send_offers(vec![h.master.offer("o2", 4.0, 4096.0, &[])]);
    let accept = h.master.nth(call::Type::Accept, 2).await;
    let mut relaunched: Vec<(u32, String)> = launched(&accept)
        .iter()
        .map(|t| item_of(&t.task_id.value))
        .collect();
    relaunched.sort();
    assert_eq!(
        relaunched,
        vec![
            (0, "FAILOVER".into()),
            (1, "FAILOVER".into()),
            (2, "FAILOVER".into())
        ]
    );
    assert_eq!(accept.call.framework_id.unwrap().value, "fw-new");
    let (_, health) = h.rest("GET", "/health", None).await;
    assert_eq!(health["framework_id"], "fw-new");
    assert!(ids.iter().all(|id| id.contains("@-@READY@-@")));
}

#[tokio::test]
async fn executors_of_an_old_app_revision_are_shut_down_once_idle() {
    let h = Harness::registered_through_rest().await;
    h.settled(1).await;
    let ids = h.run_hello(1).await;
    let mut app: Value = h.rest("GET", "/api/apps/demo", None).await.1;
    assert_eq!(app["revision"], 1);
    app["mem"] = json!(64.0);
    let (status, updated) = h.rest("PUT", "/api/apps/demo", Some(app)).await;
    assert_eq!((status, updated["revision"].clone()), (200, json!(2)));
    // Busy: the old executor still runs the tasks.
    h.master.send_offers(vec![h.master.offer(
        "o2",
        4.0,
        4096.0,
        &["demo@-@agent-S0"],
    )]);
    h.master.nth(call::Type::Decline, 1).await;
    assert!(h.master.calls_of(call::Type::Shutdown).is_empty());
    for (n, id) in ids.iter().enumerate() {
        h.master.send_update(
            h.master
                .update(id, TaskState::TaskFinished, Some(n as u8 + 1)),
        );
    }
    // Its last task ended: the old executor is shut down at once, with no offer needed.
    let shutdown = h.master.nth(call::Type::Shutdown, 1).await;
    let shutdown = shutdown.call.shutdown.unwrap();
    assert_eq!(shutdown.executor_id.value, "demo@-@agent-S0");
    assert_eq!(shutdown.agent_id.value, "agent-S0");
    h.until_rest("/api/tasks/running", "idle", |v| v == &json!([]))
        .await;
    // A new run uses the new revision's executor id.
    let (status, _) = h.rest("POST", "/api/jobs/hello/trigger", None).await;
    assert_eq!(status, 202);
    h.master.send_offers(vec![h.master.offer(
        "o3",
        4.0,
        4096.0,
        &["demo@-@agent-S0"],
    )]);
    let accept = h.master.nth(call::Type::Accept, 2).await;
    let executor = launched(&accept)[0].executor.clone().unwrap();
    assert_eq!(executor.executor_id.value, "demo@-@agent-S0@-@r2");
    assert_eq!(
        executor.resources[1].scalar.as_ref().unwrap().value,
        64.0,
        "the new revision's executor has the new configuration"
    );
    // The offer still listing the old executor, within the resend window, asks nothing twice.
    assert_eq!(h.master.calls_of(call::Type::Shutdown).len(), 1);
}

#[tokio::test]
async fn the_rest_api_refuses_bad_input_with_clear_errors() {
    let h = Harness::new().await;
    h.settled(1).await;
    let job = |name: &str| {
        json!({
            "name": name, "app": "demo", "cron": "0/5 * * * * ?", "sharding_total_count": 2,
            "plugin": "libhello_shards.so"
        })
    };
    let cases = [
        ("cron", json!({"cron": "every minute"}), 400, "field 'cron'"),
        (
            "count",
            json!({"sharding_total_count": 0}),
            400,
            "field 'sharding_total_count'",
        ),
        (
            "app",
            json!({"app": "nope"}),
            400,
            "field 'app' names app 'nope'",
        ),
        ("name", json!({"name": "a@-@b"}), 400, "delimiter"),
        (
            "params",
            json!({"sharding_item_parameters": "5=x"}),
            400,
            "outside 0..2",
        ),
        (
            "field",
            json!({"colour": "red"}),
            400,
            "unknown field `colour`",
        ),
        (
            "kind",
            json!({"kind": "batch"}),
            400,
            "unknown variant `batch`",
        ),
    ];
    for (what, patch, status, needle) in cases {
        let mut body = job("bad");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (code, answer) = h.rest("POST", "/api/jobs", Some(body)).await;
        let message = answer["error"].as_str().unwrap_or_default();
        assert_eq!(code, status, "{what}: {answer}");
        assert!(message.contains(needle), "{what}: {message}");
    }
    let (code, _) = h.rest("POST", "/api/jobs", Some(job("fresh"))).await;
    assert_eq!(code, 201);
    let (code, answer) = h.rest("POST", "/api/jobs", Some(job("fresh"))).await;
    assert_eq!(code, 409, "{answer}");
    let (code, answer) = h.rest("GET", "/api/jobs/nope", None).await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (404, Some("job 'nope' is not registered"))
    );
    let (code, _) = h.rest("POST", "/api/jobs/nope/trigger", None).await;
    assert_eq!(code, 404);
    let (code, answer) = h.rest("DELETE", "/api/apps/demo", None).await;
    assert_eq!(code, 409, "{answer}");
    let (code, answer) = h.rest("GET", "/api/nothing", None).await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (404, Some("no endpoint GET /api/nothing"))
    );
    let (code, answer) = h.rest("PUT", "/api/jobs/fresh", Some(job("other"))).await;
    assert_eq!(code, 400, "{answer}");
    // Queue limit: two pending runs allowed, the third is refused.
    assert_eq!(h.rest("POST", "/api/jobs/fresh/trigger", None).await.0, 202);
    assert_eq!(h.rest("POST", "/api/jobs/fresh/trigger", None).await.0, 202);
    let (code, answer) = h.rest("POST", "/api/jobs/fresh/trigger", None).await;
    assert_eq!(code, 503);
    assert!(
        answer["error"].as_str().unwrap().contains("is full"),
        "{answer}"
    );
    let (_, ready) = h.rest("GET", "/api/tasks/ready", None).await;
    assert_eq!(ready, json!([{"job": "fresh", "runs": 2}]));
    // Disabling clears the backlog; enabling does not bring it back.
    assert_eq!(h.rest("POST", "/api/jobs/fresh/disable", None).await.0, 200);
    let (code, answer) = h.rest("POST", "/api/jobs/fresh/trigger", None).await;
    assert_eq!(code, 409, "{answer}");
    assert_eq!(h.rest("POST", "/api/jobs/fresh/enable", None).await.0, 200);
    let (_, ready) = h.rest("GET", "/api/tasks/ready", None).await;
    assert_eq!(ready, json!([]));
    let (_, listed) = h.rest("GET", "/api/jobs", None).await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["fresh", "hello"]);
    let mut daemon = job("d");
    daemon["execution_type"] = json!("daemon");
    assert_eq!(h.rest("POST", "/api/jobs", Some(daemon)).await.0, 201);
    let (code, answer) = h.rest("POST", "/api/jobs/d/trigger", None).await;
    assert_eq!(code, 409);
    assert!(answer["error"].as_str().unwrap().contains("daemon"));
    let (code, answer) = h
        .rest("POST", "/api/apps", Some(json!({"name": "x", "cpus": -1})))
        .await;
    assert_eq!(code, 400, "{answer}");
}

#[tokio::test]
async fn every_listed_endpoint_is_served() {
    let h = Harness::new().await;
    h.settled(1).await;
    let mut endpoints: Vec<(&str, &str)> = shardex::scheduler::ENDPOINTS.to_vec();
    // Deregistrations last, so the other endpoints still find the app and job.
    endpoints.sort_by_key(|(method, _)| *method == "DELETE");
    for (method, path) in endpoints {
        let path = path.replace("{app}", "demo").replace("{job}", "hello");
        let (status, body) = h.rest(method, &path, None).await;
        assert!(
            status != 405
                && !(status == 404
                    && body["error"]
                        .as_str()
                        .is_some_and(|e| e.starts_with("no endpoint"))),
            "{method} {path} is not served: {status} {body}"
        );
    }
}

#[tokio::test]
async fn a_launch_lost_before_reaching_mesos_is_run_after_reconciliation_even_with_failover_off() {
    let config = CONFIG.replace("failover = true", "failover = false");
    let mut h = Harness::with(FakeMaster::start().await, &config).await;
    h.settled(1).await;
    // The master "loses" the ACCEPT (as if the scheduler died right after recording it).
    let ids = h.run_hello(1).await;
    h.stop().await;
    h.start().await;
    let reconcile = h.master.nth_in(call::Type::Reconcile, 2, 1).await;
    assert_eq!(reconciled(&reconcile).len(), 3);
    for id in &ids {
        let mut gone = h.master.update(id, TaskState::TaskGone, None);
        gone.source = Some(0);
        gone.reason = Some(task_status::Reason::Reconciliation as i32);
        gone.message = Some("Reconciliation: Task is unknown to the agent".into());
        h.master.send_update(gone);
    }
    h.master.nth_in(call::Type::Reconcile, 2, 2).await;
    h.master
        .send_offers(vec![h.master.offer("o2", 4.0, 4096.0, &[])]);
    let accept = h.master.nth(call::Type::Accept, 2).await;
    let mut items: Vec<(u32, String)> = launched(&accept)
        .iter()
        .map(|t| item_of(&t.task_id.value))
        .collect();
    items.sort();
    assert_eq!(
        items,
        vec![
            (0, "FAILOVER".into()),
            (1, "FAILOVER".into()),
            (2, "FAILOVER".into())
        ]
    );
}

#[tokio::test]
async fn a_lost_accept_is_noticed_without_a_restart() {
    let config = CONFIG.replace("[tasks]\n", "[tasks]\nlaunch_check_interval = \"300ms\"\n");
    let h = Harness::with(FakeMaster::start().await, &config).await;
    h.settled(1).await;
    // The master never acts on this ACCEPT: no update will ever come for its tasks.
    let ids = h.run_hello(1).await;
    let check = h
        .master
        .wait_for("an explicit RECONCILE of the silent launch", |calls| {
            calls
                .iter()
                .find(|c| c.kind() == call::Type::Reconcile && reconciled(c).len() == 3)
                .cloned()
        })
        .await;
    let mut asked = reconciled(&check);
    asked.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(asked, expected);
    for id in &ids {
        let mut gone = h.master.update(id, TaskState::TaskGone, None);
        gone.source = Some(0);
        gone.reason = Some(task_status::Reason::Reconciliation as i32);
        h.master.send_update(gone);
    }
    h.master
        .send_offers(vec![h.master.offer("o2", 4.0, 4096.0, &[])]);
    let accept = h.master.nth(call::Type::Accept, 2).await;
    assert_eq!(launched(&accept).len(), 3);
    assert!(
        launched(&accept)
            .iter()
            .all(|t| t.task_id.value.contains("@-@FAILOVER@-@"))
    );
}

#[tokio::test]
async fn updating_a_daemon_kills_its_shards_and_relaunches_them_once_with_the_new_config() {
    let h = Harness::new().await;
    h.settled(1).await;
    let daemon = json!({
        "name": "beat", "app": "demo", "cron": "* * * * * ?", "sharding_total_count": 2,
        "execution_type": "daemon", "plugin": "libheartbeat.so", "job_parameter": "v1"
    });
    assert_eq!(
        h.rest("POST", "/api/jobs", Some(daemon.clone())).await.0,
        201
    );
    h.master
        .send_offers(vec![h.master.offer("o1", 4.0, 4096.0, &[])]);
    let first = launched(&h.master.nth(call::Type::Accept, 1).await);
    assert_eq!(first.len(), 2);
    for (n, task) in first.iter().enumerate() {
        h.master.send_update(h.master.update(
            &task.task_id.value,
            TaskState::TaskRunning,
            Some(n as u8 + 1),
        ));
    }
    let mut updated = daemon;
    updated["job_parameter"] = json!("v2");
    let (status, answer) = h.rest("PUT", "/api/jobs/beat", Some(updated)).await;
    assert_eq!(status, 200, "{answer}");
    let kills = h
        .master
        .wait_for("two kills", |calls| {
            let kills: Vec<String> = calls
                .iter()
                .filter_map(|c| c.call.kill.as_ref().map(|k| k.task_id.value.clone()))
                .collect();
            (kills.len() == 2).then_some(kills)
        })
        .await;
    let mut expected: Vec<String> = first.iter().map(|t| t.task_id.value.clone()).collect();
    let mut kills = kills;
    kills.sort();
    expected.sort();
    assert_eq!(kills, expected);
    // Nothing new while the old shards run.
    h.master.send_offers(vec![h.master.offer(
        "o2",
        4.0,
        4096.0,
        &["demo@-@agent-S0"],
    )]);
    h.master.nth(call::Type::Decline, 1).await;
    for (n, id) in expected.iter().enumerate() {
        h.master.send_update(
            h.master
                .update(id, TaskState::TaskKilled, Some(10 + n as u8)),
        );
    }
    h.master.send_offers(vec![h.master.offer(
        "o3",
        4.0,
        4096.0,
        &["demo@-@agent-S0"],
    )]);
    let second = launched(&h.master.nth(call::Type::Accept, 2).await);
    assert_eq!(second.len(), 2);
    for task in &second {
        assert!(
            task.task_id.value.contains("@-@READY@-@"),
            "a relaunch, not a failover"
        );
        let payload = TaskPayload::decode(task.data.as_ref().unwrap()).unwrap();
        assert_eq!(payload.context.job_parameter, "v2");
    }
    let (_, failover) = h.rest("GET", "/api/tasks/failover", None).await;
    assert_eq!(failover, json!([]));
    let metrics = h.metrics().await;
    assert_eq!(sample(&metrics, "shardex_tasks_killed_total"), Some(2));
    assert_eq!(sample(&metrics, "shardex_tasks_failed_total"), Some(0));
}

/// `master = [..]` (here as `--master` takes it, comma-separated): a master that cannot be
/// reached is passed over at once for the next one, without the resubscription backoff (a
/// minute here); and when the master subscribed to goes away, the scheduler subscribes to the
/// next one in the list with the framework id it has.
#[tokio::test]
async fn several_masters_are_tried_in_turn() {
    let unreachable = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let one = FakeMaster::start().await;
    let slow_backoff = CONFIG.replace(
        "resubscribe_backoff_initial = \"100ms\"\nresubscribe_backoff_max = \"500ms\"",
        "resubscribe_backoff_initial = \"60secs\"\nresubscribe_backoff_max = \"60secs\"",
    );
    assert_ne!(slow_backoff, CONFIG);
    let dir = tempfile::tempdir().unwrap();
    let scheduler = Scheduler::start(Options {
        config: Config::from_toml(&slow_backoff, "test").unwrap(),
        master: format!("{unreachable},{}", one.url),
        store: dir.path().join("store.redb"),
        listen: "127.0.0.1:0".into(),
    })
    .await
    .unwrap();
    one.nth(call::Type::Subscribe, 1).await;
    scheduler.shutdown().await;
    drop(one);

    let (one, two) = (FakeMaster::start().await, FakeMaster::start().await);
    one.set_framework_id("fw-listed");
    let dir = tempfile::tempdir().unwrap();
    let scheduler = Scheduler::start(Options {
        config: Config::from_toml(CONFIG, "test").unwrap(),
        master: format!("{},{}", one.url, two.url),
        store: dir.path().join("store.redb"),
        listen: "127.0.0.1:0".into(),
    })
    .await
    .unwrap();
    let first = one.nth(call::Type::Subscribe, 1).await;
    assert!(first.call.framework_id.is_none());
    one.wait_for("SUPPRESS after subscribing", |calls| {
        calls
            .iter()
            .any(|c| c.kind() == call::Type::Suppress)
            .then_some(())
    })
    .await;
    assert_eq!(two.subscriptions(), 0);
    // The first master goes away: its stream ends and it accepts no connection.
    one.close_stream();
    drop(one);
    let moved = two.nth(call::Type::Subscribe, 1).await;
    assert_eq!(
        moved.call.framework_id.as_ref().map(|id| id.value.as_str()),
        Some("fw-listed"),
        "the next master is subscribed with the framework id the first one gave"
    );
    scheduler.shutdown().await;
}
