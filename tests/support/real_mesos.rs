//! A real Apache Mesos master and agent for the conformance suites, from the installation
//! `SHARDEX_MESOS_HOME` points at (`sbin/mesos-master`, `sbin/mesos-agent`, `libexec/mesos/`,
//! `lib/`; `.ci/run` installs the build from `../shared/mesos/`).
//!
//! [`RealMesos::start`] runs both on free loopback ports, each with its own work and log
//! directories in a temporary folder, and returns once the agent has registered. Dropping it
//! kills every process the agent started (executors and their jobs: with the posix launcher they
//! would outlive the agent; they are found by the `MESOS_AGENT_ENDPOINT` they inherit), then the
//! agent and the master. When the test failed, the tails of both daemons' logs are printed.
//!
//! Without `SHARDEX_MESOS_HOME`, [`RealMesos::start`] prints one line saying the suite is
//! skipped and returns `None`; with `SHARDEX_REQUIRE_REAL=1` (CI) a missing installation fails
//! the test instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{SOON, eventually};

pub struct RealMesos {
    home: PathBuf,
    dir: tempfile::TempDir,
    master: Child,
    agent: Option<Child>,
    agent_flags: Vec<String>,
    pub master_port: u16,
    pub agent_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `SHARDEX_MESOS_HOME`, or why there is none (the caller skips, or fails in CI).
pub fn mesos_home(test: &str) -> Option<PathBuf> {
    let home = std::env::var_os("SHARDEX_MESOS_HOME").map(PathBuf::from);
    let reason = match &home {
        None => "SHARDEX_MESOS_HOME is not set".to_owned(),
        Some(home) if !home.join("sbin/mesos-master").is_file() => {
            format!("{} has no sbin/mesos-master", home.display())
        }
        Some(_) => return home,
    };
    super::skip(
        test,
        &format!("{reason} (point it at a Mesos 1.12 installation to run it)"),
    );
    None
}

impl RealMesos {
    /// A master and an agent (`extra_agent_flags` appended), the agent registered.
    pub async fn start(test: &str, extra_agent_flags: &[&str]) -> Option<RealMesos> {
        let home = mesos_home(test)?;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let master_port = free_port();
        let agent_port = free_port();
        let master = daemon(
            &home,
            dir.path(),
            "master",
            &[
                "--ip=127.0.0.1".into(),
                format!("--port={master_port}"),
                "--hostname=127.0.0.1".into(),
                "--registry=in_memory".into(),
                format!("--work_dir={}", dir.path().join("master").display()),
                format!("--log_dir={}", dir.path().join("log/master").display()),
            ],
        );
        let mut mesos = RealMesos {
            home,
            dir,
            master,
            agent: None,
            agent_flags: extra_agent_flags.iter().map(|f| (*f).to_owned()).collect(),
            master_port,
            agent_port,
        };
        mesos.start_agent();
        let slaves = format!("{}/master/slaves", mesos.master_http());
        eventually(
            "the agent to register with the master",
            SOON * 2,
            || async {
                let answer = get_json(&slaves).await?;
                answer["slaves"]
                    .as_array()
                    .is_some_and(|s| s.len() == 1 && s[0]["active"] == true)
                    .then_some(())
            },
        )
        .await;
        Some(mesos)
    }

    fn start_agent(&mut self) {
        let dir = self.dir.path();
        let mut flags = vec![
            format!("--master=127.0.0.1:{}", self.master_port),
            "--ip=127.0.0.1".into(),
            format!("--port={}", self.agent_port),
            "--hostname=127.0.0.1".into(),
            format!("--work_dir={}", dir.join("agent").display()),
            format!("--runtime_dir={}", dir.join("agent-runtime").display()),
            format!("--fetcher_cache_dir={}", dir.join("fetch-cache").display()),
            format!("--log_dir={}", dir.join("log/agent").display()),
            "--launcher=posix".into(),
            "--isolation=posix/cpu,posix/mem".into(),
            "--no-systemd_enable_support".into(),
            format!(
                "--launcher_dir={}",
                self.home.join("libexec/mesos").display()
            ),
            "--resources=cpus:4;mem:4096;disk:10240;ports:[31000-32000]".into(),
        ];
        flags.extend(self.agent_flags.iter().cloned());
        // A restarted agent appends to its log.
        self.agent = Some(daemon(&self.home, dir, "agent", &flags));
    }

    /// SIGTERM to the agent, then the agent again on the same work dir (checkpoint recovery,
    /// as `restart-agent.sh` does); returns once it answers HTTP again. Its executors live on
    /// (posix launcher) and resubscribe.
    pub async fn restart_agent(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(agent.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = agent.wait();
        }
        self.start_agent();
        let version = format!("http://127.0.0.1:{}/version", self.agent_port);
        eventually("the restarted agent to answer", SOON, || async {
            get_json(&version).await.map(|_| ())
        })
        .await;
    }

    /// `http://127.0.0.1:<port>` of the master.
    pub fn master_http(&self) -> String {
        format!("http://127.0.0.1:{}", self.master_port)
    }

    /// The master's scheduler endpoint.
    pub fn scheduler_url(&self) -> String {
        format!("{}/api/v1/scheduler", self.master_http())
    }

    /// The agent's work dir (sandboxes under `slaves/<id>/frameworks/…`).
    pub fn agent_work_dir(&self) -> PathBuf {
        self.dir.path().join("agent")
    }

    /// Every task of every framework the master knows, completed ones included.
    pub async fn master_tasks(&self) -> Vec<Value> {
        let url = format!("{}/master/tasks?limit=10000", self.master_http());
        get_json(&url)
            .await
            .and_then(|v| v["tasks"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Pids of the processes the agent started (executors, their jobs).
    pub fn agent_processes(&self) -> Vec<i32> {
        let marker = format!("MESOS_AGENT_ENDPOINT=127.0.0.1:{}", self.agent_port);
        processes_with_env(&marker)
    }

    /// The pid of the executor whose `MESOS_EXECUTOR_ID` is `executor_id`.
    pub fn executor_pid(&self, executor_id: &str) -> Option<i32> {
        let marker = format!("MESOS_EXECUTOR_ID={executor_id}");
        let agent = format!("MESOS_AGENT_ENDPOINT=127.0.0.1:{}", self.agent_port);
        processes_with_env(&marker)
            .into_iter()
            .filter(|pid| environ(*pid).iter().any(|e| e == &agent))
            .find(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|exe| exe.ends_with("shardex-executor"))
            })
    }

    fn log_tail(&self, which: &str) -> String {
        let path = self.dir.path().join(format!("{which}.stderr"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

async fn get_json(url: &str) -> Option<Value> {
    let response = reqwest::get(url).await.ok()?;
    serde_json::from_slice(&response.bytes().await.ok()?).ok()
}

/// Starts `sbin/mesos-<which>` with `flags`, stderr to `<dir>/<which>.stderr`, without the
/// caller's `MESOS_*` / `LIBPROCESS_*` variables.
fn daemon(home: &Path, dir: &Path, which: &str, flags: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{which}.stderr")))
        .expect("a log file");
    let mut command = Command::new(home.join(format!("sbin/mesos-{which}")));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("MESOS_") || name.starts_with("LIBPROCESS_") {
            command.env_remove(name.as_ref());
        }
    }
    command
        .args(flags)
        .env("GLOG_drop_log_memory", "false")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start mesos-{which}: {e}"))
}

fn environ(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn processes_with_env(entry: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| environ(*pid).iter().any(|e| e == entry))
        .collect()
}

fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

impl Drop for RealMesos {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- mesos-master log (last lines) ---\n{}\n--- mesos-agent log (last lines) ---\n{}",
                self.log_tail("master"),
                self.log_tail("agent")
            );
        }
        // The agent's containers first: with the posix launcher they outlive the agent.
        for _ in 0..3 {
            let pids = self.agent_processes();
            if pids.is_empty() {
                break;
            }
            pids.into_iter().for_each(kill);
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(agent) = &mut self.agent {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}
