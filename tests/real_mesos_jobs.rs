//! Conformance on a real Apache Mesos master and agent (`SHARDEX_MESOS_HOME`, see
//! docs/running-on-mesos.md): the real `shardex-scheduler` process and the real
//! `shardex-executor`, fetched by the Mesos fetcher from a `file://` URI. A sharded transient
//! job and a daemon job; `kill -9` of an executor fails over exactly its shards, which finish
//! once; failover off re-runs nothing; an agent restart with checkpointing keeps the daemon's
//! tasks and loses no update, then a scheduler `kill -9` relaunches nothing; a partitioned
//! (SIGSTOPped) agent makes shards suspect, not re-run. Timing figures are printed
//! (`SHARDEX-TIMING:`, stderr); tests/real_mesos_executor_peers.rs times `shardex-executor`
//! beside the command executor and pymesos.
//!
//! Without `SHARDEX_MESOS_HOME` each test prints one `SHARDEX-SKIP:` line and passes (fails
//! under `SHARDEX_REQUIRE_REAL=1`). Needs `cargo build --workspace` first.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use shardex::mesos::proto::v1;
use shardex::scheduler::metric_sample as sample;
use support::real_mesos::{Flags, RealMesos, get_json, logged_at, ms};
use support::{SchedulerProcess, example_plugin, package_binary, spawn_scheduler, task_updates};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(60);

const TUNING: &str = r#"
[offers]
refuse_busy = "1secs"
[tasks]
reconcile_retry_initial = "300ms"
kill_retry_interval = "1secs"
[mesos]
resubscribe_backoff_initial = "100ms"
resubscribe_backoff_max = "1secs"
[executor]
shutdown_grace_period = "2secs"
[executor.environment]
RUST_LOG = "info"
"#;

/// An app whose executor and plugins the agent fetches by `file://` URI.
fn app(name: &str, plugin: &str) -> String {
    format!(
        "[[apps]]\nname = \"{name}\"\nexecutor_uri = \"file://{}\"\nuris = [\"file://{}\"]\n",
        package_binary("shardex-executor").display(),
        example_plugin(plugin).display()
    )
}

/// The executor as an operator ships it: `packaging/make-executor-tarball.sh` over a stripped
/// copy of the built binary, in `dir`; returns the tarball's path.
fn executor_tarball(dir: &std::path::Path) -> std::path::PathBuf {
    let stripped = dir.join("shardex-executor");
    let status = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(package_binary("shardex-executor"))
        .status()
        .expect("run strip");
    assert!(status.success(), "strip failed");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/make-executor-tarball.sh");
    let out = dir.join("dist");
    let status = std::process::Command::new(script)
        .arg(&stripped)
        .args(["0.0.0-test", "x86_64-unknown-linux-gnu"])
        .arg(&out)
        .status()
        .expect("run make-executor-tarball.sh");
    assert!(status.success(), "make-executor-tarball.sh failed");
    out.join("shardex-executor-0.0.0-test-x86_64-unknown-linux-gnu.tar.gz")
}

/// An app running the packaged executor tarball (fetched by `file://` URI and extracted).
fn packaged_app(name: &str, plugin: &str, tarball: &std::path::Path) -> String {
    format!(
        "[[apps]]\nname = \"{name}\"\nexecutor_uri = \"file://{}\"\nuris = [\"file://{}\"]\n",
        tarball.display(),
        example_plugin(plugin).display()
    )
}

struct Stack {
    mesos: RealMesos,
    scheduler: Option<SchedulerProcess>,
    args: Vec<String>,
    rest: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Stack {
    fn start(test: &str, config: &str, flags: Flags) -> Option<Stack> {
        let mesos = RealMesos::start(test, flags)?;
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("scheduler.toml");
        std::fs::write(&config_path, config).unwrap();
        let args = vec![
            "--config".to_owned(),
            config_path.display().to_string(),
            "--store".to_owned(),
            dir.path().join("store.redb").display().to_string(),
            "--master".to_owned(),
            mesos.master_url(),
        ];
        let scheduler = spawn_scheduler(&args);
        let rest = scheduler.rest_url.clone();
        Some(Stack {
            mesos,
            scheduler: Some(scheduler),
            args,
            rest,
            http: support::http(),
            _dir: dir,
        })
    }

    fn restart_scheduler(&mut self) {
        self.scheduler = None; // SIGKILL (SchedulerProcess::drop)
        let scheduler = spawn_scheduler(&self.args);
        self.rest = scheduler.rest_url.clone();
        self.scheduler = Some(scheduler);
    }

    async fn get(&self, path: &str) -> Value {
        let Ok(response) = self.http.get(format!("{}{path}", self.rest)).send().await else {
            return Value::Null;
        };
        serde_json::from_slice(&response.bytes().await.unwrap_or_default()).unwrap_or(Value::Null)
    }

    async fn trigger(&self, job: &str) {
        let status = self
            .http
            .post(format!("{}/api/jobs/{job}/trigger", self.rest))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 202, "trigger {job}");
    }

    async fn metric(&self, name: &str) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.rest))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        sample(&text, name).unwrap_or_else(|| panic!("no metric {name}"))
    }

    async fn until_metric(&self, name: &str, wanted: u64) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let value = self.metric(name).await;
            if value == wanted {
                return;
            }
            assert!(value < wanted, "{name} went past {wanted}: {value}");
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {name} = {wanted} (is {value})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the master's `/master/tasks` until `pred` holds on its task list.
    async fn until_master_tasks(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let tasks = master_tasks(&self.mesos);
            if pred(&tasks) {
                return tasks;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; master tasks: {}",
                summary(&tasks)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every task the master knows (active and completed).
fn master_tasks(mesos: &RealMesos) -> Vec<Value> {
    let tasks = get_json(mesos.master_addr, "/master/tasks?limit=1000");
    tasks["tasks"].as_array().cloned().unwrap_or_default()
}

fn summary(tasks: &[Value]) -> String {
    tasks
        .iter()
        .map(|t| format!("{}={}", t["id"], t["state"]))
        .collect::<Vec<_>>()
        .join(", ")
}

fn part(task: &Value, n: usize) -> String {
    task["id"]
        .as_str()
        .unwrap_or_default()
        .split("@-@")
        .nth(n)
        .unwrap_or_default()
        .to_owned()
}

/// `item -> [READY|FAILOVER, ...]` for `job`, from the master's task list (launch order is the
/// order of the first status timestamp).
fn runs_per_item(tasks: &[Value], job: &str) -> BTreeMap<u32, Vec<String>> {
    let mut mine: Vec<&Value> = tasks.iter().filter(|t| part(t, 0) == job).collect();
    mine.sort_by(|a, b| first_timestamp(a).total_cmp(&first_timestamp(b)));
    let mut map: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for t in mine {
        map.entry(part(t, 1).parse().unwrap())
            .or_default()
            .push(part(t, 2));
    }
    map
}

fn first_timestamp(task: &Value) -> f64 {
    task["statuses"][0]["timestamp"]
        .as_f64()
        .unwrap_or(f64::MAX)
}

/// The state sequence the master recorded for a task.
fn states(task: &Value) -> Vec<String> {
    task["statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn timestamp_of(task: &Value, state: &str) -> Option<f64> {
    task["statuses"]
        .as_array()?
        .iter()
        .find(|s| s["state"] == state)?["timestamp"]
        .as_f64()
}

fn in_state(tasks: &[Value], job: &str, state: &str) -> usize {
    tasks
        .iter()
        .filter(|t| part(t, 0) == job && t["state"] == state)
        .count()
}

/// Every `task.updates` of `executor_id`, decoded, by task id.
fn checkpointed_streams(
    mesos: &RealMesos,
    framework_id: &str,
    executor_id: &str,
) -> Vec<(String, Vec<task_updates::Record>)> {
    task_updates::files_of_executor(
        &mesos.agent_work_dir(),
        &mesos.agent_id,
        framework_id,
        executor_id,
    )
    .into_iter()
    .map(|(task, file)| {
        let records = task_updates::read(&file).unwrap_or_else(|e| panic!("{e}"));
        (task, records)
    })
    .collect()
}

/// Polls the streams until, at one moment, every update recorded in each is acknowledged (the
/// daemon fires every second, so there is usually one in flight).
async fn until_streams_acknowledged(
    mesos: &RealMesos,
    framework_id: &str,
    executor_id: &str,
) -> Vec<(String, Vec<task_updates::Record>)> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let streams = checkpointed_streams(mesos, framework_id, executor_id);
        let pending: Vec<usize> = streams
            .iter()
            .map(|(task, records)| {
                task_updates::check_stream(records)
                    .unwrap_or_else(|e| panic!("{task}: {e}"))
                    .unacknowledged
            })
            .collect();
        if !streams.is_empty() && pending.iter().all(|n| *n == 0) {
            return streams;
        }
        assert!(
            Instant::now() < deadline,
            "the checkpointed streams never had every update acknowledged: {streams:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A daemon task's updates: STARTING, RUNNING, then one RUNNING `BEGIN` and one RUNNING
/// `COMPLETE` per fire (the last fire may not be complete yet). An update taken twice under a
/// new uuid would show as the same (state, message) twice in a row.
fn assert_daemon_sequence(task: &str, sequence: &[(v1::TaskState, Option<String>)]) {
    use v1::TaskState::{TaskRunning, TaskStarting};
    let mut expected = vec![(TaskStarting, None), (TaskRunning, None)];
    for i in 0..sequence.len().saturating_sub(2) {
        let message = if i % 2 == 0 { "BEGIN" } else { "COMPLETE" };
        expected.push((TaskRunning, Some(message.to_owned())));
    }
    assert_eq!(
        sequence,
        expected.as_slice(),
        "{task}: the checkpointed updates"
    );
    assert!(
        sequence.len() >= 4,
        "{task}: the daemon fired at least once: {sequence:?}"
    );
}

/// The master's log says how often it forwarded each update to the scheduler ("Forwarding
/// status update … (Status UUID: u)") and how many ACKNOWLEDGE calls it took for each uuid
/// ("Processing ACKNOWLEDGE call for status u", or "Cannot send status update acknowledgement
/// for status u" while the agent is away). The scheduler acknowledges each delivery once: never
/// more ACKNOWLEDGEs than deliveries, and every update in the streams delivered and
/// acknowledged. A uuid is acknowledged more than once only when Mesos delivered it more than
/// once (an agent re-sends its pending updates when it re-registers).
fn assert_acknowledged_once_per_delivery(
    mesos: &RealMesos,
    streams: &[(String, Vec<task_updates::Record>)],
) {
    let log = mesos.master_log();
    let count_after = |marker: &str| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for line in log.lines() {
            if let Some((_, rest)) = line.split_once(marker) {
                let uuid: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
                    .collect();
                *counts.entry(uuid).or_default() += 1;
            }
        }
        counts
    };
    let forwarded: BTreeMap<String, usize> = log
        .lines()
        .filter(|l| l.contains("Forwarding status update "))
        .filter_map(|l| l.split_once("(Status UUID: "))
        .map(|(_, rest)| rest.chars().take(36).collect::<String>())
        .fold(BTreeMap::new(), |mut counts, uuid| {
            *counts.entry(uuid).or_default() += 1;
            counts
        });
    let mut acknowledged = count_after("Processing ACKNOWLEDGE call for status ");
    for (uuid, n) in count_after("Cannot send status update acknowledgement for status ") {
        *acknowledged.entry(uuid).or_default() += n;
    }
    let mut redelivered = Vec::new();
    for (task, records) in streams {
        for record in records {
            let task_updates::Record::Update { uuid, .. } = record else {
                continue;
            };
            let uuid = uuid::Uuid::from_slice(uuid)
                .expect("16-byte uuid")
                .to_string();
            let delivered = forwarded.get(&uuid).copied().unwrap_or(0);
            let acks = acknowledged.get(&uuid).copied().unwrap_or(0);
            assert!(
                delivered >= 1 && (1..=delivered).contains(&acks),
                "{task}: update {uuid} delivered {delivered} times, acknowledged {acks} times"
            );
            if delivered > 1 {
                redelivered.push(format!(
                    "{uuid}: {delivered} deliveries, {acks} ACKNOWLEDGEs"
                ));
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "SHARDEX-ACKS: real mesos agent restart: updates delivered more than once: {redelivered:?}"
    );
}

fn kill_executor(mesos: &RealMesos, app: &str) {
    let executor_id = format!("{app}@-@{}", mesos.agent_id);
    let pid = mesos
        .executor_pid(&executor_id)
        .unwrap_or_else(|| panic!("no process for executor {executor_id}"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_transient_job_and_a_daemon_job_on_real_mesos() {
    let dist = tempfile::tempdir().unwrap();
    let tarball = executor_tarball(dist.path());
    let config = format!(
        "{TUNING}\n{}\n{}\n\
         [[jobs]]\nname = \"hello\"\napp = \"demo\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         sharding_total_count = 3\nsharding_item_parameters = \"0=zero,1=one,2=two\"\n\
         plugin = \"libhello_shards.so\"\n\
         [[jobs]]\nname = \"beat\"\napp = \"daemons\"\ncron = \"* * * * * ?\"\n\
         execution_type = \"daemon\"\nsharding_total_count = 2\nplugin = \"libheartbeat.so\"\n",
        packaged_app("demo", "hello_shards", &tarball),
        packaged_app("daemons", "heartbeat", &tarball),
    );
    let Some(s) = Stack::start(
        "real_mesos_jobs::transient_and_daemon",
        &config,
        Flags::default(),
    ) else {
        return;
    };
    // The daemon's two tasks come up by themselves.
    s.until_master_tasks("two daemon tasks running", |t| {
        in_state(t, "beat", "TASK_RUNNING") == 2
    })
    .await;
    let triggered = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let clock = Instant::now();
    s.trigger("hello").await;
    s.until_metric("shardex_tasks_finished_total", 3).await;
    let trigger_to_finished = clock.elapsed();
    let tasks = s
        .until_master_tasks("three hello tasks finished", |t| {
            in_state(t, "hello", "TASK_FINISHED") == 3
        })
        .await;
    let hello: Vec<&Value> = tasks.iter().filter(|t| part(t, 0) == "hello").collect();
    assert_eq!(hello.len(), 3, "{}", summary(&tasks));
    for t in &hello {
        assert_eq!(part(t, 2), "READY");
        assert_eq!(
            states(t),
            ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
            "{}",
            t["id"]
        );
    }
    let last_finished = hello
        .iter()
        .filter_map(|t| timestamp_of(t, "TASK_FINISHED"))
        .fold(0.0, f64::max);
    let first_running = hello
        .iter()
        .filter_map(|t| timestamp_of(t, "TASK_RUNNING"))
        .fold(f64::MAX, f64::min);
    // Straight to stderr (not captured): CI logs keep the figures.
    let _ = writeln!(
        std::io::stderr(),
        "SHARDEX-TIMING: real mesos, shardex-executor, 3 shards: trigger -> all TASK_FINISHED \
         (scheduler metric) {:.0} ms; trigger -> last TASK_FINISHED (TaskStatus timestamps in /master/tasks) {:.0} ms; \
         trigger -> first TASK_RUNNING {:.0} ms",
        trigger_to_finished.as_secs_f64() * 1000.0,
        (last_finished - triggered) * 1000.0,
        (first_running - triggered) * 1000.0,
    );
    // The agent's own clock: executor container start -> SUBSCRIBE, LAUNCH -> TASK_RUNNING.
    let log = s.mesos.agent_log();
    let executor = format!("'demo@-@{}'", s.mesos.agent_id);
    let container_line = log
        .lines()
        .find(|l| l.contains("Launching container") && l.contains(&executor))
        .expect("the agent launched the demo executor's container");
    let container = container_line
        .split("Launching container ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_owned();
    let started = logged_at(&log, &["Starting container", &container]);
    let subscribed = logged_at(&log, &["Received Subscribe request", &executor]);
    let task0 = hello
        .iter()
        .find(|t| part(t, 1) == "0")
        .and_then(|t| t["id"].as_str())
        .unwrap()
        .to_owned();
    let launched = logged_at(&log, &["Launching task", &task0]);
    let running = logged_at(
        &log,
        &[
            "Handling status update TASK_RUNNING",
            &format!("for task {task0}"),
        ],
    );
    let finished = logged_at(
        &log,
        &[
            "Handling status update TASK_FINISHED",
            &format!("for task {task0}"),
        ],
    );
    let _ = writeln!(
        std::io::stderr(),
        "SHARDEX-TIMING: real mesos agent log: shardex-executor (tarball, real scheduler): \
         container start -> SUBSCRIBE {:.0} ms; item 0 LAUNCH -> TASK_RUNNING {:.0} ms, -> \
         TASK_FINISHED {:.0} ms",
        ms(started, subscribed),
        ms(launched, running),
        ms(launched, finished),
    );
    // Daemons still running, same tasks, only TASK_STARTING/TASK_RUNNING recorded.
    let tasks = master_tasks(&s.mesos);
    let beat: Vec<&Value> = tasks.iter().filter(|t| part(t, 0) == "beat").collect();
    assert_eq!(beat.len(), 2, "{}", summary(&tasks));
    for t in beat {
        assert_eq!(t["state"], "TASK_RUNNING");
        assert_eq!(states(t), ["TASK_STARTING", "TASK_RUNNING"], "{}", t["id"]);
    }
    assert_eq!(s.metric("shardex_tasks_failed_total").await, 0);
}

fn two_apps(failover: bool) -> String {
    format!(
        "{TUNING}\n{}\n{}\n\
         [[jobs]]\nname = \"slow\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\nsharding_total_count = 3\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"sleep:4000\"\nfailover = {failover}\n\
         [[jobs]]\nname = \"steady\"\napp = \"b\"\ncron = \"0 0 0 1 1 ? 2099\"\nsharding_total_count = 2\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"sleep:4000\"\nfailover = true\n",
        app("a", "faulty"),
        app("b", "faulty")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_an_executor_on_real_mesos_fails_over_exactly_its_shards() {
    let Some(s) = Stack::start(
        "real_mesos_jobs::kill_9_executor",
        &two_apps(true),
        Flags::default(),
    ) else {
        return;
    };
    s.trigger("slow").await;
    s.trigger("steady").await;
    s.until_master_tasks("five tasks running", |t| {
        in_state(t, "slow", "TASK_RUNNING") == 3 && in_state(t, "steady", "TASK_RUNNING") == 2
    })
    .await;
    kill_executor(&s.mesos, "a");
    s.until_metric("shardex_tasks_finished_total", 5).await;
    let tasks = s
        .until_master_tasks("every task terminal", |t| {
            t.len() == 8
                && t.iter()
                    .all(|t| t["state"] == "TASK_FINISHED" || t["state"] == "TASK_FAILED")
        })
        .await;
    let slow = runs_per_item(&tasks, "slow");
    for item in 0..3 {
        assert_eq!(slow[&item], ["READY", "FAILOVER"], "slow item {item}");
    }
    let steady = runs_per_item(&tasks, "steady");
    for item in 0..2 {
        assert_eq!(steady[&item], ["READY"], "steady item {item}");
    }
    for t in &tasks {
        let expected: &[&str] = if part(t, 0) == "slow" && part(t, 2) == "READY" {
            &["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"]
        } else {
            &["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        };
        assert_eq!(states(t), expected, "{}", t["id"]);
    }
    assert_eq!(s.metric("shardex_tasks_failed_over_total").await, 3);
    assert_eq!(s.get("/api/tasks/failover").await, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_failover_off_real_mesos_reruns_nothing() {
    let Some(s) = Stack::start(
        "real_mesos_jobs::failover_off",
        &two_apps(false),
        Flags::default(),
    ) else {
        return;
    };
    s.trigger("slow").await;
    s.until_master_tasks("three tasks running", |t| {
        in_state(t, "slow", "TASK_RUNNING") == 3
    })
    .await;
    kill_executor(&s.mesos, "a");
    s.until_metric("shardex_tasks_failed_total", 3).await;
    let tasks = s
        .until_master_tasks("three tasks failed", |t| {
            in_state(t, "slow", "TASK_FAILED") == 3
        })
        .await;
    assert_eq!(tasks.len(), 3, "{}", summary(&tasks));
    assert_eq!(s.get("/api/tasks/failover").await, serde_json::json!([]));
    assert_eq!(s.get("/api/tasks/ready").await, serde_json::json!([]));
    assert_eq!(s.metric("shardex_tasks_failed_over_total").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restart_on_real_mesos_keeps_daemon_tasks_and_loses_no_update() {
    let config = format!(
        "{TUNING}\n{}\n[[jobs]]\nname = \"beat\"\napp = \"daemons\"\ncron = \"* * * * * ?\"\n\
         execution_type = \"daemon\"\nsharding_total_count = 2\nplugin = \"libheartbeat.so\"\n",
        app("daemons", "heartbeat"),
    );
    let Some(mut s) = Stack::start("real_mesos_jobs::agent_restart", &config, Flags::default())
    else {
        return;
    };
    let before = s
        .until_master_tasks("two daemon tasks running", |t| {
            in_state(t, "beat", "TASK_RUNNING") == 2
        })
        .await;
    let executor_pid = s
        .mesos
        .executor_pid(&format!("daemons@-@{}", s.mesos.agent_id))
        .expect("the daemon executor runs");
    let mut ids: Vec<String> = before.iter().map(|t| t["id"].to_string()).collect();
    ids.sort();
    let executor_id = format!("daemons@-@{}", s.mesos.agent_id);
    let framework_id = get_json(s.mesos.master_addr, "/master/frameworks")["frameworks"][0]["id"]
        .as_str()
        .expect("the scheduler's framework")
        .to_owned();
    let streams_before = checkpointed_streams(&s.mesos, &framework_id, &executor_id);
    assert_eq!(streams_before.len(), 2, "{streams_before:?}");
    s.mesos.restart_agent();
    // The executor survives and resubscribes; the master still has the same two tasks running,
    // each with the state history it had (no update re-sent under a new uuid).
    let after = s
        .until_master_tasks("the same two daemon tasks running", |t| {
            in_state(t, "beat", "TASK_RUNNING") == 2
        })
        .await;
    let mut after_ids: Vec<String> = after.iter().map(|t| t["id"].to_string()).collect();
    after_ids.sort();
    assert_eq!(after_ids, ids);
    for t in &after {
        assert_eq!(states(t), ["TASK_STARTING", "TASK_RUNNING"], "{}", t["id"]);
    }
    assert_eq!(
        s.mesos
            .executor_pid(&format!("daemons@-@{}", s.mesos.agent_id)),
        Some(executor_pid),
        "the executor process is the one from before the restart"
    );
    // The agent's own view: the executor is registered again with both tasks.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let state = get_json(s.mesos.agent_addr, "/state");
        let running: usize = state["frameworks"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| f["executors"].as_array().cloned().unwrap_or_default())
            .map(|e| e["tasks"].as_array().map_or(0, Vec::len))
            .sum();
        if running == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent does not list two tasks after recovery: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.metric("shardex_tasks_failed_total").await, 0);
    // The agent's checkpointed update streams, across the restart: what was recorded before is
    // kept as it was, and the whole stream is one uuid per update, each acknowledged once and
    // in order, with no update taken twice under a new uuid.
    let streams = until_streams_acknowledged(&s.mesos, &framework_id, &executor_id).await;
    for ((task, before), (same_task, after)) in streams_before.iter().zip(&streams) {
        assert_eq!(task, same_task);
        assert!(
            after.len() > before.len() && after.starts_with(before),
            "{task}: the records before the restart are not a prefix of those after it:\n\
             before: {before:?}\nafter: {after:?}"
        );
        let stream = task_updates::check_stream(after).unwrap();
        assert_daemon_sequence(task, &stream.sequence);
    }
    assert_acknowledged_once_per_delivery(&s.mesos, &streams);
    // Scheduler kill -9 and restart: it resubscribes and reconciles; the master's tasks are
    // sampled throughout: the same two, running, never a second task for an item.
    s.restart_scheduler();
    let check = |tasks: &[Value]| {
        let mut now: Vec<String> = tasks.iter().map(|t| t["id"].to_string()).collect();
        now.sort();
        assert_eq!(now, ids, "{}", summary(tasks));
        assert_eq!(in_state(tasks, "beat", "TASK_RUNNING"), 2);
    };
    let deadline = Instant::now() + DEADLINE;
    loop {
        check(&master_tasks(&s.mesos));
        let text = s
            .http
            .get(format!("{}/metrics", s.rest))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if sample(&text, "shardex_subscriptions_total") == Some(1)
            && sample(&text, "shardex_reconciling") == Some(0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted scheduler did not reconcile"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past reconciliation launching is allowed again: it must find nothing to launch.
    for _ in 0..10 {
        check(&master_tasks(&s.mesos));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        s.metric("shardex_tasks_launched_total{type=\"ready\"}")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_agent_on_real_mesos_makes_shards_suspect_not_rerun() {
    let config = format!(
        "{TUNING}\n{}\n[[jobs]]\nname = \"held\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         sharding_total_count = 2\nplugin = \"libfaulty.so\"\njob_parameter = \"sleep:8000\"\n\
         failover = true\n",
        app("a", "faulty")
    );
    let flags = Flags {
        master: vec![
            "--agent_ping_timeout=1secs".into(),
            "--max_agent_ping_timeouts=2".into(),
        ],
        agent: Vec::new(),
    };
    let Some(s) = Stack::start("real_mesos_jobs::partition", &config, flags) else {
        return;
    };
    s.trigger("held").await;
    let running = s
        .until_master_tasks("two tasks running", |t| {
            in_state(t, "held", "TASK_RUNNING") == 2
        })
        .await;
    let mut originals: Vec<String> = running.iter().map(|t| t["id"].to_string()).collect();
    originals.sort();
    let agent = nix::unistd::Pid::from_raw(s.mesos.agent_pid().unwrap() as i32);
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let stopped = Instant::now();
    s.until_master_tasks("both tasks unreachable", |t| {
        in_state(t, "held", "TASK_UNREACHABLE") == 2
    })
    .await;
    let to_unreachable = stopped.elapsed();
    s.until_metric("shardex_suspect_tasks", 2).await;
    assert_eq!(s.get("/api/tasks/failover").await, serde_json::json!([]));
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGCONT).unwrap();
    let resumed = Instant::now();
    s.until_metric("shardex_tasks_finished_total", 2).await;
    let heal_to_finished = resumed.elapsed();
    let tasks = s
        .until_master_tasks("both tasks finished", |t| {
            in_state(t, "held", "TASK_FINISHED") == 2
        })
        .await;
    let mut ids: Vec<String> = tasks.iter().map(|t| t["id"].to_string()).collect();
    ids.sort();
    assert_eq!(
        ids, originals,
        "nothing launched besides the two READY tasks"
    );
    assert_eq!(s.metric("shardex_tasks_failed_total").await, 0);
    assert_eq!(
        s.metric("shardex_tasks_launched_total{type=\"failover\"}")
            .await,
        0
    );
    let _ = writeln!(
        std::io::stderr(),
        "SHARDEX-TIMING: real mesos partition (ping 1 s x 2): SIGSTOP -> TASK_UNREACHABLE {} ms; \
         SIGCONT -> both finished {} ms; master histories: {:?}",
        to_unreachable.as_millis(),
        heal_to_finished.as_millis(),
        tasks.iter().map(states).collect::<Vec<_>>()
    );
}

/// A master that authenticates frameworks (`--authenticate_http_frameworks`, basic, a
/// credentials file): the scheduler with `framework.principal` and `framework.secret_file`
/// subscribes as that principal and runs a sharded job to the end; every call it makes passes
/// the master's authentication, or the job could not have launched and finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_authenticates_to_a_real_master() {
    let secrets = tempfile::tempdir().unwrap();
    let credentials = secrets.path().join("credentials.json");
    std::fs::write(
        &credentials,
        r#"{"credentials": [{"principal": "shardex", "secret": "real-s3cret"}]}"#,
    )
    .unwrap();
    let secret = secrets.path().join("framework.secret");
    std::fs::write(&secret, "real-s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = format!(
        "{TUNING}\n[framework]\nprincipal = \"shardex\"\nsecret_file = {:?}\n{}\n[[jobs]]\n\
         name = \"once\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\nsharding_total_count = 2\n\
         plugin = \"libfaulty.so\"\njob_parameter = \"ok\"\n",
        secret.display().to_string(),
        app("a", "faulty"),
    );
    let flags = Flags {
        master: vec![
            "--authenticate_http_frameworks".into(),
            "--http_framework_authenticators=basic".into(),
            format!("--credentials={}", credentials.display()),
        ],
        ..Flags::default()
    };
    let Some(s) = Stack::start("real_mesos_jobs::framework_auth", &config, flags) else {
        return;
    };
    s.trigger("once").await;
    s.until_metric("shardex_tasks_finished_total", 2).await;
    let frameworks = get_json(s.mesos.master_addr, "/master/frameworks");
    let principals: Vec<&Value> = frameworks["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["principal"])
        .collect();
    assert_eq!(principals, [&Value::from("shardex")], "{frameworks}");
}
