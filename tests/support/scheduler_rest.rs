//! The scheduler under test, seen through its REST API: a REST client with polling helpers,
//! config snippets for apps and jobs of the example plugins, what the embedded master was asked
//! to launch, and the scheduler in-process or as a child process.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{Datelike, Timelike};
use serde_json::Value;
use shardex::mesos::proto::v1::scheduler::call;
use shardex::scheduler::metric_sample as sample;
use shardex::scheduler::{Config, Options, Scheduler};
use tokio::time::Instant;

use super::{
    EVENTUALLY, SchedulerProcess, TestCluster, eventually, example_plugin, holds, package_binary,
};

/// A cron expression firing once, `seconds` from now (UTC).
pub fn once_in(seconds: i64) -> String {
    let at = chrono::Utc::now() + chrono::Duration::seconds(seconds);
    format!(
        "{} {} {} {} {} ? {}",
        at.second(),
        at.minute(),
        at.hour(),
        at.day(),
        at.month(),
        at.year()
    )
}

pub fn app(name: &str, plugins: &[&str]) -> String {
    let uris: Vec<String> = plugins
        .iter()
        .map(|p| format!("{:?}", example_plugin(p).display().to_string()))
        .collect();
    format!(
        "[[apps]]\nname = \"{name}\"\nexecutor_uri = {:?}\nuris = [{}]\n",
        package_binary("shardex-executor").display().to_string(),
        uris.join(", ")
    )
}

pub const TUNING: &str = r#"
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

pub struct Rest {
    pub base: String,
    pub http: reqwest::Client,
}

impl Rest {
    pub fn new(base: String) -> Rest {
        Rest {
            base,
            http: super::http(),
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null)
    }

    /// `get`, or `None` when the scheduler does not answer (it is down).
    pub async fn try_get(&self, path: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()?;
        Some(serde_json::from_slice(&response.bytes().await.ok()?).unwrap_or(Value::Null))
    }

    /// `post`, or `None` when the scheduler does not answer (it is down).
    pub async fn try_post(&self, path: &str) -> Option<u16> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    }

    /// Sends `method path` with an optional JSON body; the status and the JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
        (status, value)
    }

    pub async fn post(&self, path: &str) -> u16 {
        self.http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn metric(&self, name: &str) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        sample(&text, name).unwrap_or_else(|| panic!("no metric {name}"))
    }

    /// Polls `path` until `pred` holds; the answer that satisfied it.
    pub async fn until(&self, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        eventually(&format!("{what} (GET {path})"), EVENTUALLY, || async {
            let value = self.get(path).await;
            pred(&value).then_some(value)
        })
        .await
    }

    /// Polls a counter or gauge until it reads `wanted`; fails at once if it goes past it.
    /// Waits until `/api/tasks/running` lists `n` tasks, all `TASK_RUNNING`.
    pub async fn until_all_running(&self, n: usize) {
        self.until("/api/tasks/running", "every shard running", |v| {
            running_in_state(v, n, "TASK_RUNNING")
        })
        .await;
    }

    pub async fn until_metric(&self, name: &str, wanted: u64) {
        eventually(&format!("{name} = {wanted}"), EVENTUALLY, || async {
            let value = self.metric(name).await;
            assert!(value <= wanted, "{name} went past {wanted}: {value}");
            holds(value == wanted)
        })
        .await
    }
}

pub fn running_in_state(value: &Value, n: usize, state: &str) -> bool {
    value
        .as_array()
        .is_some_and(|a| a.len() == n && a.iter().all(|t| t["state"] == state))
}

/// Every task the master was asked to launch, as `(job, item, READY|FAILOVER)`, in order.
pub async fn launches(cluster: &shardex::local::LocalCluster) -> Vec<(String, u32, String)> {
    cluster
        .scheduler_calls()
        .await
        .unwrap()
        .iter()
        .filter_map(|c| c.call.as_ref())
        .filter(|c| c.r#type == Some(call::Type::Accept as i32))
        .flat_map(|c| c.accept.clone().unwrap_or_default().operations)
        .flat_map(|o| o.launch.unwrap_or_default().task_infos)
        .map(|t| {
            let parts: Vec<&str> = t.task_id.value.split("@-@").collect();
            (
                parts[0].to_owned(),
                parts[1].parse().unwrap(),
                parts[2].to_owned(),
            )
        })
        .collect()
}

/// Waits until the agent holds no status update the scheduler has not acknowledged.
pub async fn until_every_update_acknowledged(cluster: &shardex::local::LocalCluster) {
    super::eventually("every update acknowledged", super::SOON, || async {
        cluster
            .pending_updates()
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
}

/// How many calls of `kind` the master decoded.
pub async fn count_calls(cluster: &shardex::local::LocalCluster, kind: call::Type) -> usize {
    calls_and_subscribes(cluster)
        .await
        .0
        .iter()
        .filter(|c| c.r#type == Some(kind as i32))
        .count()
}

/// The tasks the master recorded as `TASK_FINISHED` (the updates it took from the agent). An
/// executor's late `TASK_FINISHED` for a task the agent had already ended (its executor was
/// killed) is ignored by the agent, as by a real one, and is not among them.
pub async fn finished_tasks(cluster: &shardex::local::LocalCluster) -> BTreeSet<String> {
    cluster
        .forwarded_updates()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.state == shardex::mesos::proto::v1::TaskState::TaskFinished as i32)
        .map(|s| s.task_id.value)
        .collect()
}

/// A never-firing script job `work` of app `a` with `shards` shards, failover on, running
/// `command` (already quoted for TOML's basic strings), after `TUNING` and the app.
pub fn script_job_config(shards: u32, command: &str) -> String {
    format!(
        "{TUNING}\n{}\n[[jobs]]\nname = \"work\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         kind = \"script\"\nsharding_total_count = {shards}\nfailover = true\n\
         command_line = \"{command}\"\n",
        app("a", &[])
    )
}

/// Every call the master decoded, in arrival order, and where its SUBSCRIBEs stand.
pub async fn calls_and_subscribes(
    cluster: &shardex::local::LocalCluster,
) -> (Vec<shardex::mesos::proto::v1::scheduler::Call>, Vec<usize>) {
    let calls: Vec<_> = cluster
        .scheduler_calls()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.call)
        .collect();
    let subscribes = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.r#type == Some(call::Type::Subscribe as i32))
        .map(|(i, _)| i)
        .collect();
    (calls, subscribes)
}

/// The calls from a SUBSCRIBE on reconcile before they launch: a RECONCILE comes before the
/// first ACCEPT.
pub fn assert_reconciled_before_launching(after: &[shardex::mesos::proto::v1::scheduler::Call]) {
    let position = |kind: call::Type| {
        after
            .iter()
            .position(|c| c.r#type == Some(kind as i32))
            .unwrap_or_else(|| panic!("no {kind:?} after the SUBSCRIBE"))
    };
    assert!(position(call::Type::Reconcile) < position(call::Type::Accept));
}

pub fn runs_per_item(launches: &[(String, u32, String)], job: &str) -> BTreeMap<u32, Vec<String>> {
    let mut map: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (j, item, kind) in launches {
        if j == job {
            map.entry(*item).or_default().push(kind.clone());
        }
    }
    map
}

/// Lines of every file called `name` under `dir`.
pub fn lines_of(dir: &Path, name: &str) -> Vec<String> {
    pub fn walk(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_symlink() {
                continue;
            }
            if path.is_dir() {
                walk(&path, name, out);
            } else if path.file_name().is_some_and(|n| n == name) {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, name, &mut files);
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

pub async fn kill_executor(cluster: &shardex::local::LocalCluster, app: &str) {
    let executor_id = format!("{app}@-@{}", cluster.agent_id());
    let pid = cluster
        .executor_pid(&executor_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("executor {executor_id} is not running"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

pub struct InProcess {
    pub tc: TestCluster,
    pub scheduler: Scheduler,
    pub rest: Rest,
    pub store: tempfile::TempDir,
}

/// The scheduler in-process on `master` with the TOML `config` (its source named `e2e`) and
/// the store `store.redb` in `store_dir`, and a REST client for it.
pub async fn scheduler_on(config: &str, master: &str, store_dir: &Path) -> (Scheduler, Rest) {
    let scheduler = Scheduler::start(Options {
        config: Config::from_toml(config, "e2e").unwrap(),
        master: master.to_owned(),
        store: store_dir.join("store.redb"),
        listen: "127.0.0.1:0".into(),
    })
    .await
    .unwrap();
    let rest = Rest::new(format!("http://{}", scheduler.rest_addr()));
    (scheduler, rest)
}

pub async fn start(config: &str) -> InProcess {
    let tc = TestCluster::start().await;
    let store = tempfile::tempdir().unwrap();
    let (scheduler, rest) = scheduler_on(config, &tc.cluster.master_url(), store.path()).await;
    InProcess {
        tc,
        scheduler,
        rest,
        store,
    }
}

pub struct Process {
    pub scheduler: SchedulerProcess,
    pub rest: Rest,
}

/// Writes `config` to `dir/scheduler.toml`; the binary's arguments for it, the store
/// `dir/store.redb` and `master`.
pub fn scheduler_args(dir: &Path, config: &str, master: &str) -> Vec<String> {
    let config_path = dir.join("scheduler.toml");
    std::fs::write(&config_path, config).unwrap();
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    vec![
        "--config".into(),
        path(config_path),
        "--store".into(),
        path(dir.join("store.redb")),
        "--master".into(),
        master.to_owned(),
    ]
}

impl Process {
    /// SIGINT, as Ctrl-C: the scheduler stops (with `--local`, its embedded cluster kills
    /// every executor it started); waits for a clean exit. Dropping a `Process` instead is a
    /// `kill -9`.
    pub fn interrupt(&mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.scheduler.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let status =
            super::eventually_blocking("the scheduler to exit after SIGINT", super::SOON, || {
                self.scheduler.child.try_wait().unwrap()
            });
        assert!(status.success(), "SIGINT exits cleanly: {status}");
    }
}

pub fn start_scheduler<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Process {
    let scheduler = super::spawn_scheduler(args);
    let rest = Rest::new(scheduler.rest_url.clone());
    Process { scheduler, rest }
}
