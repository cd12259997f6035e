//! `shardex-scheduler demo`: the whole stack on one machine, narrated for a first run.
//!
//! It starts the embedded cluster and the scheduler in this process, registers three jobs from
//! a configuration file it writes (so the reader can run the same jobs with `--local --config`),
//! and follows them through the scheduler's REST API, as a user would:
//! 1. `greeting`: a transient job with three shards, fired by cron; each shard writes a line.
//! 2. `heartbeat`: a daemon job with two shards; the executor fires it every second.
//! 3. `crunch`: a transient script job with failover on. While its two shards run, the demo
//!    kills their executor with SIGKILL; the scheduler fails both shards over and they run
//!    again to completion.
//!
//! Then it prints where to look (REST endpoints, sandbox files, logs) and shuts everything down.
//! With `--serve` it starts the same stack and jobs and serves them until Ctrl-C instead, for
//! the web console and `ctl`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use shardex_local::{LocalCluster, LocalClusterConfig};
use shardex_scheduler::{Config, Options, Scheduler};

/// Settings of a demo run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the cluster's sandboxes, the store and the config go; a fresh temporary directory
    /// when `None`. It is kept afterwards for inspection.
    pub work_dir: Option<PathBuf>,
    /// Where `shardex-executor` and the example plugins were built (next to the binary).
    pub bin_dir: PathBuf,
    /// Give up when the demo takes longer than this.
    pub deadline: Duration,
    /// Keep the stack running after the narration until Ctrl-C, to explore the REST API.
    pub keep_running: bool,
    /// Start the stack and its jobs, then serve them until Ctrl-C without the narrated
    /// phases: crunch waits for a trigger (from the console or `ctl`).
    pub serve: bool,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{path} is missing: build everything first with `cargo build --workspace`")]
    MissingArtifact { path: PathBuf },
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Start(String),
    #[error("REST call {path} failed: {reason}")]
    Rest { path: String, reason: String },
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

/// Runs the demo; `Ok` once every phase has been seen to complete.
pub async fn run(options: DemoOptions) -> Result<(), DemoError> {
    let started = Instant::now();
    let say = |line: String| println!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());

    let artifacts = Artifacts::find(&options.bin_dir)?;
    let work = match &options.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("shardex-demo-{}", std::process::id())),
    };
    // A fresh store each run: the demo's jobs start from nothing.
    let store = work.join("scheduler.redb");
    if store.exists() {
        std::fs::remove_file(&store).map_err(|source| DemoError::Io {
            path: store.clone(),
            source,
        })?;
    }
    std::fs::create_dir_all(&work).map_err(|source| DemoError::Io {
        path: work.clone(),
        source,
    })?;
    let config_path = work.join("demo.toml");
    let config_text = artifacts.config();
    std::fs::write(&config_path, &config_text).map_err(|source| DemoError::Io {
        path: config_path.clone(),
        source,
    })?;
    let config = Config::from_toml(&config_text, &config_path.display().to_string())
        .map_err(|e| DemoError::Start(format!("the demo configuration is invalid: {e}")))?;

    let cluster = LocalCluster::start(LocalClusterConfig {
        work_dir: Some(work.join("cluster")),
        // Nothing in this process reads the observation log: keep none.
        call_log_limit: 0,
        ..LocalClusterConfig::default()
    })
    .await
    .map_err(|e| DemoError::Start(format!("cannot start the embedded cluster: {e}")))?;
    say(format!(
        "embedded Mesos cluster up: master {}, agent {}",
        cluster.master_url(),
        cluster.agent_url()
    ));
    let scheduler = Scheduler::start(Options {
        config,
        master: cluster.master_url(),
        store,
        listen: "127.0.0.1:0".into(),
    })
    .await
    .map_err(|e| DemoError::Start(format!("cannot start the scheduler: {e}")))?;
    let rest = Rest::new(scheduler.rest_addr())?;
    say(format!(
        "scheduler up: REST API on {} (configuration: {})",
        rest.base,
        config_path.display()
    ));
    say("registered app demo-app (plugins hello_shards, heartbeat) and app batch-app; jobs \
         greeting (3 shards, every 5 s), heartbeat (daemon, 2 shards, every 1 s), crunch (script, 2 \
         shards, failover on)"
        .into());

    if options.serve {
        say(format!(
            "serving the demo's jobs until Ctrl-C: open {base}/ in a browser for the console, \
             or run `shardex-scheduler ctl --url {base} jobs`; trigger crunch from either",
            base = rest.base
        ));
        crate::terminated().await;
        scheduler.shutdown().await;
        cluster.shutdown().await;
        say("demo stopped".into());
        return Ok(());
    }

    let demo = Demo {
        cluster: &cluster,
        rest: &rest,
        deadline: started + options.deadline,
        say: &say,
    };
    let outcome = demo.phases(&work, &config_path).await;
    if outcome.is_ok() && options.keep_running {
        say(format!(
            "still running: try curl {}/api/tasks/running; Ctrl-C to stop",
            rest.base
        ));
        let _ = tokio::signal::ctrl_c().await;
    }
    scheduler.shutdown().await;
    cluster.shutdown().await;
    say(match &outcome {
        Ok(()) => "demo complete: every job ran, and the killed shards ran again".into(),
        Err(error) => format!("demo failed: {error}"),
    });
    outcome
}

/// The executor and plugins the demo ships to the embedded agent.
struct Artifacts {
    executor: PathBuf,
    hello_shards: PathBuf,
    heartbeat: PathBuf,
}

impl Artifacts {
    fn find(bin_dir: &Path) -> Result<Artifacts, DemoError> {
        let need = |name: &str| {
            let path = bin_dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(DemoError::MissingArtifact { path })
            }
        };
        Ok(Artifacts {
            executor: need("shardex-executor")?,
            hello_shards: need("libhello_shards.so")?,
            heartbeat: need("libheartbeat.so")?,
        })
    }

    /// The scheduler configuration of the demo, in the format users write.
    fn config(&self) -> String {
        let path = |p: &Path| p.display().to_string();
        format!(
            r#"# The Shardex demo's jobs. Run them yourself on the embedded cluster with
#   shardex-scheduler --local --config <this file>
# See README.md, "Configuration file", for every field.

[executor]
uri = "{executor}"

[[apps]]
name = "demo-app"
uris = [
  {{ value = "{hello}", output_file = "plugins/libhello_shards.so" }},
  {{ value = "{heartbeat}", output_file = "plugins/libheartbeat.so" }},
]

[[apps]]
name = "batch-app"

[[jobs]]
name = "greeting"
app = "demo-app"
cron = "0/5 * * * * ?"
sharding_total_count = 3
sharding_item_parameters = "0=alpha,1=beta,2=gamma"
kind = "simple"
plugin = "plugins/libhello_shards.so"

[[jobs]]
name = "heartbeat"
app = "demo-app"
cron = "* * * * * ?"
execution_type = "daemon"
sharding_total_count = 2
kind = "simple"
plugin = "plugins/libheartbeat.so"

[[jobs]]
name = "crunch"
app = "batch-app"
# No cron: a manual job, run when the demo triggers it through the REST API.
sharding_total_count = 2
kind = "script"
# Its output goes to the task's stdout (in its work directory) and to crunch.out.
command_line = "/bin/sh -c 'echo \"crunch item $SHARDEX_SHARDING_ITEM starting as $SHARDEX_TASK_ID\"; sleep 4; echo \"crunch item $SHARDEX_SHARDING_ITEM done by $SHARDEX_TASK_ID\" | tee -a crunch.out'"
failover = true
"#,
            executor = path(&self.executor),
            hello = path(&self.hello_shards),
            heartbeat = path(&self.heartbeat),
        )
    }
}

/// A running task as `GET /api/tasks/running` lists it.
#[derive(Debug, Clone)]
struct Running {
    task_id: String,
    item: u64,
    kind: String,
    executor_id: String,
    state: String,
}

struct Rest {
    client: reqwest::Client,
    base: String,
}

impl Rest {
    fn new(address: std::net::SocketAddr) -> Result<Rest, DemoError> {
        let client = shardex_mesos::tls::http_client_builder()
            .map_err(|e| e.to_string())
            .and_then(|builder| builder.no_proxy().build().map_err(|e| e.to_string()))
            .map_err(|e| DemoError::Start(format!("cannot make the REST client: {e}")))?;
        Ok(Rest {
            client,
            base: format!("http://{address}"),
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> Result<String, DemoError> {
        let error = |reason: String| DemoError::Rest {
            path: path.to_owned(),
            reason,
        };
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| error(e.to_string()))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| error(e.to_string()))?;
        if !status.is_success() {
            return Err(error(format!("{status}: {body}")));
        }
        Ok(body)
    }

    async fn json(&self, path: &str) -> Result<Value, DemoError> {
        let body = self.call(reqwest::Method::GET, path).await?;
        serde_json::from_str(&body).map_err(|e| DemoError::Rest {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    async fn running(&self, job: &str) -> Result<Vec<Running>, DemoError> {
        let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
        Ok(self
            .json("/api/tasks/running")
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|task| task["job"] == job)
            .map(|task| Running {
                task_id: text(task, "task_id"),
                item: task["item"].as_u64().unwrap_or_default(),
                kind: text(task, "kind"),
                executor_id: text(task, "executor_id"),
                state: text(task, "state"),
            })
            .collect())
    }

    /// One sample of a Prometheus metric (first line whose name and labels start with `name`).
    async fn metric(&self, name: &str) -> Result<f64, DemoError> {
        let body = self.call(reqwest::Method::GET, "/metrics").await?;
        Ok(body
            .lines()
            .filter(|line| !line.starts_with('#'))
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0))
    }
}

struct Demo<'a, F: Fn(String)> {
    cluster: &'a LocalCluster,
    rest: &'a Rest,
    deadline: Instant,
    say: &'a F,
}

impl<F: Fn(String)> Demo<'_, F> {
    /// Polls `check` until it yields a value or the demo's deadline passes.
    async fn wait_for<T, Fut>(
        &self,
        what: &str,
        mut check: impl FnMut() -> Fut,
    ) -> Result<T, DemoError>
    where
        Fut: std::future::Future<Output = Result<Option<T>, DemoError>>,
    {
        loop {
            if let Some(value) = check().await? {
                return Ok(value);
            }
            if Instant::now() >= self.deadline {
                return Err(DemoError::Timeout(what.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The sandbox of the executor's latest run.
    fn sandbox(&self, framework_id: &str, executor_id: &str) -> PathBuf {
        self.cluster
            .work_dir()
            .join("slaves")
            .join(self.cluster.agent_id())
            .join("frameworks")
            .join(framework_id)
            .join("executors")
            .join(executor_id)
            .join("runs/latest")
    }

    /// The work directory of one task: `tasks/<task id>` in its executor's sandbox.
    fn task_dir(&self, framework_id: &str, executor_id: &str, task_id: &str) -> PathBuf {
        self.sandbox(framework_id, executor_id)
            .join("tasks")
            .join(task_id)
    }

    async fn phases(&self, work: &Path, config_path: &Path) -> Result<(), DemoError> {
        let say = self.say;
        let rest = self.rest;
        let framework_id = self
            .wait_for("the scheduler to subscribe", || async {
                // 503 until subscribed.
                let health = rest.json("/health").await.unwrap_or(Value::Null);
                Ok(health["framework_id"].as_str().map(str::to_owned))
            })
            .await?;
        say(format!("scheduler subscribed as framework {framework_id}"));

        // 1. greeting: the first cron fire, its three shards, their output. Its shards finish
        // in milliseconds, so the proof is their output, one line in each task's own work
        // directory: runs of one job never overlap, so the three oldest files are the first run.
        // Executor ids keep Elastic-Job's format.
        say("greeting: waiting for its cron to fire (every 5 s)".into());
        let demo_executor = format!("demo-app@-@{}", self.cluster.agent_id());
        let tasks_dir = self.sandbox(&framework_id, &demo_executor).join("tasks");
        let lines = self
            .wait_for("greeting's first run", || async {
                let mut outputs = first_lines(&tasks_dir, "greeting@-@", "hello-shards.out");
                outputs.truncate(3);
                let mut lines: Vec<String> = outputs.into_iter().map(|(_, line)| line).collect();
                // Shards finish in any order; show them by item.
                lines.sort();
                Ok((lines.len() == 3).then_some(lines))
            })
            .await?;
        say(format!(
            "greeting: the cron fired; its 3 shards ran and finished, each writing one line \
             to hello-shards.out in its own work directory, {}/<task id>/:",
            tasks_dir.display()
        ));
        for line in lines {
            say(format!("    {line}"));
        }

        // 2. heartbeat: a daemon whose shards stay running and fire every second.
        let daemons = self
            .wait_for("heartbeat's two shards to run", || async {
                let tasks = rest.running("heartbeat").await?;
                let running = tasks.iter().filter(|t| t.state == "TASK_RUNNING").count();
                Ok((running == 2).then_some(tasks))
            })
            .await?;
        let heartbeat_outs: Vec<PathBuf> = daemons
            .iter()
            .map(|t| {
                self.task_dir(&framework_id, &t.executor_id, &t.task_id)
                    .join("heartbeat.out")
            })
            .collect();
        let fires = self
            .wait_for("heartbeat's fires", || async {
                let per_task: Vec<usize> = heartbeat_outs
                    .iter()
                    .map(|out| {
                        std::fs::read_to_string(out)
                            .unwrap_or_default()
                            .lines()
                            .count()
                    })
                    .collect();
                Ok(per_task
                    .iter()
                    .all(|fires| *fires >= 2)
                    .then(|| per_task.iter().sum::<usize>()))
            })
            .await?;
        say(format!(
            "heartbeat: daemon shards 0 and 1 keep running (TASK_RUNNING); {fires} fires so far, \
             one line each in their task's heartbeat.out, e.g. {}",
            heartbeat_outs[0].display()
        ));

        // 3. crunch: kill its executor mid-run; the shards fail over and run again.
        rest.call(reqwest::Method::POST, "/api/jobs/crunch/trigger")
            .await?;
        say("crunch: triggered through POST /api/jobs/crunch/trigger".into());
        let crunching = self
            .wait_for("crunch's two shards to run", || async {
                let tasks = rest.running("crunch").await?;
                let running = tasks.iter().filter(|t| t.state == "TASK_RUNNING").count();
                Ok((running == 2).then_some(tasks))
            })
            .await?;
        let executor_id = crunching[0].executor_id.clone();
        let failed_over_before = rest.metric("shardex_tasks_failed_over_total").await?;
        let failed_before = rest.metric("shardex_tasks_failed_total").await?;
        let pid = self
            .cluster
            .executor_pid(&executor_id)
            .await
            .map_err(|e| DemoError::Start(e.to_string()))?
            .ok_or_else(|| DemoError::Timeout(format!("the process of executor {executor_id}")))?;
        say(format!(
            "crunch: items 0 and 1 are running in executor {executor_id}; killing its process \
             group (pid {pid}) with SIGKILL"
        ));
        kill_process_group(pid);
        let reruns = self
            .wait_for("crunch's shards to be failed over", || async {
                let tasks = rest.running("crunch").await?;
                let reruns: Vec<Running> =
                    tasks.into_iter().filter(|t| t.kind == "FAILOVER").collect();
                Ok((reruns.len() == 2).then_some(reruns))
            })
            .await?;
        let failed = rest.metric("shardex_tasks_failed_total").await? - failed_before;
        let failed_over =
            rest.metric("shardex_tasks_failed_over_total").await? - failed_over_before;
        say(format!(
            "crunch: {failed} tasks ended with their executor (the agent reports them \
             TASK_FAILED); the scheduler failed over {failed_over} shards"
        ));
        for task in &reruns {
            say(format!(
                "crunch: item {} running again as {} (FAILOVER)",
                task.item, task.task_id
            ));
        }
        let crunch_outs: Vec<PathBuf> = reruns
            .iter()
            .map(|t| {
                self.task_dir(&framework_id, &t.executor_id, &t.task_id)
                    .join("crunch.out")
            })
            .collect();
        let lines = self
            .wait_for("crunch's re-runs to finish", || async {
                let mut lines: Vec<String> = crunch_outs
                    .iter()
                    .flat_map(|out| {
                        std::fs::read_to_string(out)
                            .unwrap_or_default()
                            .lines()
                            .map(str::to_owned)
                            .collect::<Vec<_>>()
                    })
                    .filter(|line| reruns.iter().any(|t| line.ends_with(&t.task_id)))
                    .collect();
                lines.sort();
                Ok((lines.len() == 2).then_some(lines))
            })
            .await?;
        say(format!(
            "crunch: 2/2 shards finished after failover, each exactly once; their crunch.out \
             files, e.g. {}:",
            crunch_outs[0].display()
        ));
        for line in lines {
            say(format!("    {line}"));
        }

        // Where to look.
        let mut counters = Vec::new();
        for name in [
            "shardex_tasks_launched_total{type=\"ready\"}",
            "shardex_tasks_launched_total{type=\"failover\"}",
            "shardex_tasks_finished_total",
            "shardex_tasks_failed_total",
            "shardex_tasks_failed_over_total",
        ] {
            counters.push(format!("{name} {}", rest.metric(name).await?));
        }
        say("GET /metrics (excerpt):".into());
        for counter in counters {
            say(format!("    {counter}"));
        }
        say("where to look:".into());
        say(format!(
            "    REST API   {base}/api/jobs, {base}/api/tasks/running, /api/tasks/ready, \
             /api/tasks/failover, /metrics, /health (while it runs; see --keep-running)",
            base = rest.base
        ));
        say(format!(
            "    sandboxes  {}/slaves/{}/frameworks/{framework_id}/executors/*/runs/latest",
            self.cluster.work_dir().display(),
            self.cluster.agent_id()
        ));
        say(
            "               each task's files in tasks/<task id>/ (job output *.out, a script's \
             stdout and stderr); the executor's log in stderr"
                .into(),
        );
        say(format!(
            "    config     {}: `shardex-scheduler --local --config` runs these jobs again",
            config_path.display()
        ));
        say(format!("    everything {}", work.display()));
        Ok(())
    }
}

/// The first line of `file` in every task directory under `tasks_dir` whose name starts with
/// `prefix`, oldest file first.
fn first_lines(tasks_dir: &Path, prefix: &str, file: &str) -> Vec<(std::time::SystemTime, String)> {
    let Ok(entries) = std::fs::read_dir(tasks_dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, String)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| {
            let path = e.path().join(file);
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
            let text = std::fs::read_to_string(&path).ok()?;
            Some((modified, text.lines().next()?.to_owned()))
        })
        .collect();
    found.sort();
    found
}

fn kill_process_group(pid: u32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(pid) {
        // The agent runs each executor in its own process group, like Mesos' POSIX launcher.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}
