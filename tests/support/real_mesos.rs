//! A real Apache Mesos master and agent for the conformance suites (`tests/real_mesos_*.rs`).
//!
//! `SHARDEX_MESOS_HOME` names an installation (`sbin/mesos-master`, `sbin/mesos-agent`,
//! `libexec/mesos/`, `lib/`). Without it [`RealMesos::start`] prints one `SHARDEX-SKIP:` line
//! and returns `None`, unless `SHARDEX_REQUIRE_REAL=1` (what `.ci/run` sets), which turns the
//! skip into a failure.
//!
//! Each cluster gets free loopback ports and its own work, runtime and log dirs in a tempdir.
//! The daemons log to stderr into `master.log` / `agent.log` there. Dropping the cluster kills,
//! whatever happened, the process trees of the agent's executors (found by their sandbox cwd or
//! their `MESOS_AGENT_ENDPOINT`), then the agent, then the master; when the test is panicking
//! it prints the tail of both logs and keeps the dir.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::skip;

/// How long the daemons get to come up and the agent to register.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The installation named by `SHARDEX_MESOS_HOME`, checked.
pub fn mesos_home() -> Result<PathBuf, String> {
    let home = std::env::var_os("SHARDEX_MESOS_HOME")
        .ok_or("SHARDEX_MESOS_HOME is not set (a Mesos installation: sbin/, libexec/mesos/)")?;
    let home = PathBuf::from(home);
    for needed in [
        "sbin/mesos-master",
        "sbin/mesos-agent",
        "libexec/mesos/mesos-containerizer",
    ] {
        if !home.join(needed).is_file() {
            return Err(format!(
                "SHARDEX_MESOS_HOME={}: {needed} is missing",
                home.display()
            ));
        }
    }
    Ok(home)
}

/// Extra flags for one cluster.
#[derive(Default, Clone)]
pub struct Flags {
    pub master: Vec<String>,
    pub agent: Vec<String>,
}

/// A running master and agent.
pub struct RealMesos {
    pub home: PathBuf,
    /// Holds work dirs and logs; kept (not deleted) when a test fails.
    pub dir: Option<tempfile::TempDir>,
    root: PathBuf,
    pub master_addr: SocketAddr,
    pub agent_addr: SocketAddr,
    master: Option<Child>,
    agent: Option<Child>,
    agent_flags: Vec<String>,
    /// The agent id the master gave the agent (changes only if the agent registers anew).
    pub agent_id: String,
}

/// Two distinct free loopback ports (both held while choosing, so they differ).
fn free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().expect("a bound address").port();
    (port(&a), port(&b))
}

/// A bare HTTP/1.1 GET (no client library: the harness must work from `Drop`).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET` returning JSON, `Value::Null` when anything fails.
pub fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    http_get(addr, path)
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Seconds of the day of a glog line (`I20261205 03:29:09.585295  8943 file.cpp:1] ...`).
pub fn glog_time(line: &str) -> Option<f64> {
    let clock = line.get(10..25)?;
    let mut parts = clock.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The time of the first line of a glog `log` containing every one of `needles`.
pub fn logged_at(log: &str, needles: &[&str]) -> f64 {
    log.lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .and_then(glog_time)
        .unwrap_or_else(|| panic!("no log line with {needles:?}"))
}

/// Milliseconds between two log times.
pub fn ms(from: f64, to: f64) -> f64 {
    (to - from) * 1000.0
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl RealMesos {
    /// Starts a master and an agent, or prints why not and returns `None`.
    pub fn start(test: &str, flags: Flags) -> Option<RealMesos> {
        let home = match mesos_home() {
            Ok(home) => home,
            Err(why) => {
                skip(test, &why);
                return None;
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("shardex-real-mesos-")
            .tempdir()
            .expect("a tempdir");
        let root = dir.path().to_path_buf();
        let (master_port, agent_port) = free_ports();
        let master_addr = SocketAddr::from(([127, 0, 0, 1], master_port));
        let agent_addr = SocketAddr::from(([127, 0, 0, 1], agent_port));
        let mut master_flags = vec![
            "--ip=127.0.0.1".to_owned(),
            format!("--port={}", master_addr.port()),
            "--hostname=127.0.0.1".to_owned(),
            "--registry=in_memory".to_owned(),
            format!("--work_dir={}", root.join("master").display()),
        ];
        master_flags.extend(flags.master);
        let mut agent_flags = vec![
            format!("--master=127.0.0.1:{}", master_addr.port()),
            "--ip=127.0.0.1".to_owned(),
            format!("--port={}", agent_addr.port()),
            "--hostname=127.0.0.1".to_owned(),
            format!("--work_dir={}", root.join("agent").display()),
            format!("--runtime_dir={}", root.join("agent-runtime").display()),
            format!("--fetcher_cache_dir={}", root.join("fetch-cache").display()),
            "--launcher=posix".to_owned(),
            "--isolation=posix/cpu,posix/mem".to_owned(),
            "--no-systemd_enable_support".to_owned(),
            "--no-switch_user".to_owned(),
            format!("--launcher_dir={}", home.join("libexec/mesos").display()),
            "--resources=cpus:4;mem:4096;disk:10240;ports:[31000-32000]".to_owned(),
        ];
        agent_flags.extend(flags.agent);
        let mut mesos = RealMesos {
            home,
            dir: Some(dir),
            root,
            master_addr,
            agent_addr,
            master: None,
            agent: None,
            agent_flags,
            agent_id: String::new(),
        };
        mesos.master = Some(mesos.spawn("mesos-master", &master_flags, "master.log"));
        mesos.spawn_agent();
        mesos.agent_id = mesos.wait_agent_registered(None);
        Some(mesos)
    }

    fn spawn(&self, binary: &str, flags: &[String], log: &str) -> Child {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(log))
            .expect("open a log file");
        let mut command = Command::new(self.home.join("sbin").join(binary));
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with("MESOS_") || name.starts_with("LIBPROCESS_") {
                command.env_remove(name);
            }
        }
        command
            .args(flags)
            .env("GLOG_drop_log_memory", "false")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup the log file"))
            .stderr(log_file);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"))
    }

    fn spawn_agent(&mut self) {
        self.agent = Some(self.spawn("mesos-agent", &self.agent_flags, "agent.log"));
    }

    /// Waits until the master lists one active agent (other than `not`), returns its id.
    fn wait_agent_registered(&mut self, not: Option<&str>) -> String {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            for (name, child) in [("master", &mut self.master), ("agent", &mut self.agent)] {
                if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    panic!("mesos-{name} exited: {status}");
                }
            }
            let slaves = get_json(self.master_addr, "/master/slaves");
            let active: Vec<String> = slaves["slaves"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["active"] == true)
                .filter_map(|s| s["id"].as_str().map(str::to_owned))
                .collect();
            if let [id] = active.as_slice()
                && Some(id.as_str()) != not
            {
                return id.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not register within {START_DEADLINE:?}; /master/slaves = {slaves}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The master's v1 scheduler endpoint, for `shardex-scheduler --master`.
    pub fn master_url(&self) -> String {
        format!("http://{}/api/v1/scheduler", self.master_addr)
    }

    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Child::id)
    }

    /// restart-agent.sh: SIGTERM the agent, wait for it to exit, start it again on the same work
    /// dir (checkpoint recovery, `--recover=reconnect`, the default), wait until the master lists
    /// it active again with the same id.
    pub fn restart_agent(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = kill(Pid::from_raw(agent.id() as i32), Signal::SIGTERM);
            let _ = agent.wait();
        }
        // The master must see the agent gone before "active again" means anything.
        let deadline = Instant::now() + START_DEADLINE;
        while self.agent_active() {
            assert!(
                Instant::now() < deadline,
                "the master still lists the agent active"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.spawn_agent();
        let id = self.wait_agent_registered(None);
        assert_eq!(id, self.agent_id, "the agent recovered under a new id");
    }

    fn agent_active(&self) -> bool {
        get_json(self.master_addr, "/master/slaves")["slaves"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["active"] == true)
    }

    /// Pids of processes launched for this agent: their environment names its endpoint, or
    /// their cwd is inside this cluster's dir.
    pub fn executor_processes(&self) -> Vec<i32> {
        let endpoint = format!("MESOS_AGENT_ENDPOINT={}", self.agent_addr);
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() as i32 || Some(pid as u32) == self.agent_pid() {
                continue;
            }
            let in_dir = std::fs::read_link(entry.path().join("cwd"))
                .is_ok_and(|cwd| cwd.starts_with(&self.root));
            let named = std::fs::read(entry.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == endpoint.as_bytes()));
            if in_dir || named {
                pids.push(pid);
            }
        }
        pids
    }

    /// The pid of the executor `executor_id` (its `MESOS_EXECUTOR_ID`).
    pub fn executor_pid(&self, executor_id: &str) -> Option<i32> {
        self.process_of_executor(executor_id, "shardex-executor")
    }

    /// The pid of a process of the executor `executor_id`'s container whose program's name
    /// starts with `program`.
    pub fn process_of_executor(&self, executor_id: &str, program: &str) -> Option<i32> {
        let wanted = format!("MESOS_EXECUTOR_ID={executor_id}");
        self.executor_processes().into_iter().find(|pid| {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            let named = std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == wanted.as_bytes()));
            named
                && exe
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(program))
        })
    }

    fn kill_executors(&self) {
        // Whole sessions: the posix launcher puts each container in its own.
        let own_sid = nix::unistd::getsid(None).ok();
        for pid in self.executor_processes() {
            let pid = Pid::from_raw(pid);
            if let Ok(sid) = nix::unistd::getsid(Some(pid))
                && Some(sid) != own_sid
            {
                let _ = kill(Pid::from_raw(-sid.as_raw()), Signal::SIGKILL);
            }
            let _ = kill(pid, Signal::SIGKILL);
        }
    }

    /// The agent's log so far.
    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.root.join("agent.log")).unwrap_or_default()
    }

    /// The master's log so far.
    pub fn master_log(&self) -> String {
        std::fs::read_to_string(self.root.join("master.log")).unwrap_or_default()
    }

    /// The agent's `--work_dir` (its checkpoints are under `meta/`).
    pub fn agent_work_dir(&self) -> PathBuf {
        self.root.join("agent")
    }

    /// Tails of both logs, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        format!(
            "--- master log ({}), last {lines} lines:\n{}\n--- agent log ({}), last {lines} lines:\n{}",
            self.root.join("master.log").display(),
            tail(&self.root.join("master.log"), lines),
            self.root.join("agent.log").display(),
            tail(&self.root.join("agent.log"), lines),
        )
    }
}

impl Drop for RealMesos {
    fn drop(&mut self) {
        // Twice: an executor may be forking while the first sweep runs.
        self.kill_executors();
        for child in [self.agent.take(), self.master.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
        self.kill_executors();
        let keep = std::env::var("SHARDEX_KEEP_MESOS_DIRS").is_ok_and(|v| v == "1");
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(40));
        }
        if (std::thread::panicking() || keep)
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("real Mesos dirs kept in {}", kept.display());
        }
    }
}
