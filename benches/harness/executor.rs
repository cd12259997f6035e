//! The executor: `shardex-executor` (both isolation modes) against the pymesos executor on the
//! bench agent (`agent.rs`), and against Mesos' own command executor on a real agent
//! (`SHARDEX_MESOS_HOME`), all in the same run.
//!
//! On the bench agent each executor is a process this harness starts with an agent's `MESOS_*`
//! environment, its stderr going to a file in its sandbox as under Mesos:
//! - process start (just before `spawn`) → its SUBSCRIBE reaching the agent, and its resident
//!   memory once subscribed and idle;
//! - one no-op task at a time on a warm executor: LAUNCH written → `TASK_RUNNING` and →
//!   `TASK_FINISHED` arriving (the agent's view), and for `shardex-executor` the same from its
//!   own log lines (`launching task` → `status update … TASK_RUNNING`, microsecond timestamps);
//! - a burst of no-op tasks in one write: tasks per second to the last `TASK_FINISHED`, each
//!   task's LAUNCH → `TASK_RUNNING`, CPU time (user + system of the executor and every process
//!   under it, including reaped ones) per task, and the bench agent's own CPU in that time;
//! - resident memory with 1, 100, 1,000 live tasks (the `faulty` plugin sleeping; pymesos
//!   holds the task after `TASK_RUNNING`);
//! - the binary and its gzipped tarball.
//!
//! On the real agent, from the agent's log (glog, microseconds): container start →
//! SUBSCRIBE (registration for the command executor, which uses the driver), LAUNCH →
//! `TASK_RUNNING` and → `TASK_FINISHED`, each executor started for its task (cold), as a
//! command executor always is; and the command executor's memory and CPU with one live task.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardex::mesos::proto::v1::{self, TaskState};
use shardex::payload::{ErrorPolicy, Isolation};

use super::agent::{AGENT_ID, BenchAgent};
use super::{
    Report, Samples, Scale, Table, auto, median_p99, mib, num, rss_kib, times_better_cost,
    times_better_rate, tree_cpu_micros, tree_pss_kib, tree_rss_kib,
};
use crate::support::{self, pymesos};

const WAIT: Duration = Duration::from_secs(300);

/// A pymesos executor: `TASK_RUNNING` then `TASK_FINISHED` for every task (a thread per task,
/// as pymesos' own example does), except a task named `hold`, which stays running until
/// killed.
pub const PYMESOS_EXECUTOR: &str = r#"
import threading, time
from addict import Dict
from pymesos import Executor, MesosExecutorDriver

def update(driver, task_id, state):
    status = Dict()
    status.task_id.value = task_id
    status.state = state
    status.timestamp = time.time()
    driver.sendStatusUpdate(status)

class Bench(Executor):
    def launchTask(self, driver, task):
        def run():
            update(driver, task.task_id.value, 'TASK_RUNNING')
            if task.name != 'hold':
                update(driver, task.task_id.value, 'TASK_FINISHED')
        threading.Thread(target=run).start()

    def killTask(self, driver, task_id):
        update(driver, task_id.value, 'TASK_KILLED')

    def shutdown(self, driver):
        driver.stop()

if __name__ == '__main__':
    MesosExecutorDriver(Bench(), use_addict=True).run()
"#;

/// Which executor a row is about.
#[derive(Clone)]
enum Kind {
    Shardex(Isolation),
    Pymesos { python: PathBuf, script: PathBuf },
}

#[derive(Clone)]
struct Subject {
    name: String,
    kind: Kind,
}

/// One executor process on the bench agent.
struct Running {
    id: String,
    child: Child,
    pid: u32,
    spawned: Instant,
    subscribed: Instant,
    log: PathBuf,
}

/// Where the executor binaries and plugins are.
struct Paths {
    executor: PathBuf,
    faulty: PathBuf,
    dir: PathBuf,
}

impl Subject {
    fn shardex(isolation: Isolation) -> Subject {
        Subject {
            name: format!("shardex-executor ({})", isolation.as_str()),
            kind: Kind::Shardex(isolation),
        }
    }

    fn is_shardex(&self) -> bool {
        matches!(self.kind, Kind::Shardex(_))
    }

    /// Starts executor `id` and waits for its SUBSCRIBE.
    async fn start(&self, agent: &BenchAgent, paths: &Paths, id: &str) -> Running {
        let sandbox = paths.dir.join(id);
        std::fs::create_dir_all(sandbox.join("plugins")).expect("a sandbox");
        let mut command = match &self.kind {
            Kind::Shardex(_) => {
                std::fs::copy(&paths.faulty, sandbox.join("plugins/libfaulty.so"))
                    .expect("the faulty plugin in the sandbox");
                Command::new(&paths.executor)
            }
            Kind::Pymesos { python, script } => {
                let mut command = Command::new(python);
                command.arg(script);
                command
            }
        };
        let log = sandbox.join("stderr");
        let stderr = std::fs::File::create(&log).expect("the sandbox's stderr file");
        let stdout = std::fs::File::create(sandbox.join("stdout")).expect("stdout file");
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(agent.environment(id, &sandbox))
            .current_dir(&sandbox)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let spawned = Instant::now();
        let child = command.spawn().expect("the executor starts");
        let pid = child.id();
        let subscribed = agent
            .subscribed(id, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}; its log: {}", self.name, log.display()));
        Running {
            id: id.to_owned(),
            child,
            pid,
            spawned,
            subscribed,
            log,
        }
    }

    /// A task for this executor: a no-op, or one that stays running until killed.
    fn task(&self, id: &str, hold: bool) -> v1::TaskInfo {
        let executor = support::executor_info("bench", "bench", Vec::new());
        let mut task = support::task_info(id, AGENT_ID, &executor, "");
        match &self.kind {
            Kind::Shardex(isolation) => {
                let mode = if hold { "sleep:3600000" } else { "ok" };
                let mut payload = support::faulty(id, mode, ErrorPolicy::Fail);
                payload.job.isolation = *isolation;
                task.data = Some(payload.encode().expect("a payload"));
            }
            Kind::Pymesos { .. } => {
                task.data = None;
                task.name = if hold { "hold" } else { "noop" }.into();
            }
        }
        task
    }
}

impl Running {
    /// SHUTDOWN, then waits for the process to end (killing it after the deadline).
    async fn stop(mut self, agent: &BenchAgent) {
        agent.shutdown(&self.id);
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            tokio::time::sleep(support::POLL).await;
        }
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

/// Resident memory of `pid` once it stops changing (polled, up to a second).
async fn settled_rss_kib(pid: u32) -> u64 {
    let mut last = rss_kib(pid);
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        tokio::time::sleep(support::POLL).await;
        let now = rss_kib(pid);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Times from the executor's own log: for each task whose id starts with `prefix`,
/// `launching task` → the first `status update` line in `state`, in ms.
fn traced(log: &Path, prefix: &str, state: &str) -> Samples {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut launched: HashMap<String, chrono::DateTime<chrono::FixedOffset>> = HashMap::new();
    let mut samples = Samples::default();
    for line in text.lines() {
        let Some((stamp, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(at) = chrono::DateTime::parse_from_rfc3339(stamp.trim()) else {
            continue;
        };
        let Some(task) = rest
            .split_once("task_id=")
            .map(|(_, t)| t.split_whitespace().next().unwrap_or("").trim_matches('"'))
        else {
            continue;
        };
        if !task.starts_with(prefix) {
            continue;
        }
        if rest.contains("launching task") {
            launched.insert(task.to_owned(), at);
        } else if rest.contains("status update")
            && (rest.contains(&format!("state={state} "))
                || rest.contains(&format!("state=\"{state}\"")))
            && let Some(start) = launched.remove(task)
        {
            let micros = (at - start).num_microseconds().unwrap_or(0);
            samples.push(micros as f64 / 1e3);
        }
    }
    samples
}

/// What one executor measured on the bench agent.
#[derive(Default)]
struct Measured {
    start_to_subscribe_ms: Samples,
    idle_rss_mib: Samples,
    idle_tree_pss_mib: Samples,
    running_ms: Samples,
    finished_ms: Samples,
    traced_running_ms: Samples,
    traced_finished_ms: Samples,
    burst_tasks_per_s: Samples,
    burst_running_ms: Samples,
    traced_burst_running_ms: Samples,
    cpu_per_task_us: Samples,
    agent_cpu_share: Samples,
    /// (live tasks, executor RSS MiB, tree RSS MiB, tree PSS MiB)
    live: Vec<(usize, f64, f64, f64)>,
}

#[derive(Clone)]
struct Plan {
    starts: usize,
    samples: usize,
    burst: usize,
    rounds: usize,
    live: Vec<usize>,
}

async fn measure(agent: &BenchAgent, paths: &Paths, subject: &Subject, plan: &Plan) -> Measured {
    let mut m = Measured::default();
    let tag = subject.name.replace([' ', '(', ')'], "");
    for i in 0..plan.starts {
        let running = subject
            .start(agent, paths, &format!("{tag}-start{i}"))
            .await;
        m.start_to_subscribe_ms
            .push_duration_ms(running.subscribed.duration_since(running.spawned));
        m.idle_rss_mib.push(mib(settled_rss_kib(running.pid).await));
        m.idle_tree_pss_mib.push(mib(tree_pss_kib(running.pid)));
        running.stop(agent).await;
    }

    // One warm executor: single tasks, then bursts.
    let running = subject.start(agent, paths, &format!("{tag}-warm")).await;
    let warmup = subject.task(&format!("{tag}-warmup"), false);
    agent.launch(&running.id, vec![warmup.clone()]);
    agent
        .until_all(
            std::slice::from_ref(&warmup.task_id.value),
            TaskState::TaskFinished,
            WAIT,
        )
        .await
        .expect("the warm-up task ends");
    for i in 0..plan.samples {
        let task = subject.task(&format!("{tag}-single{i}"), false);
        let id = task.task_id.value.clone();
        agent.launch(&running.id, vec![task]);
        let times = agent
            .until_all(std::slice::from_ref(&id), TaskState::TaskFinished, WAIT)
            .await
            .expect("a single task ends");
        let times = &times[0];
        let terminal = times.terminal().expect("a terminal update");
        assert_eq!(
            terminal.0,
            TaskState::TaskFinished,
            "{}: task {id} ended {:?}",
            subject.name,
            terminal.0
        );
        if let Some(d) = times.latency(TaskState::TaskRunning) {
            m.running_ms.push_duration_ms(d);
        }
        if let Some(d) = times.latency(TaskState::TaskFinished) {
            m.finished_ms.push_duration_ms(d);
        }
    }
    if subject.is_shardex() {
        m.traced_running_ms = traced(&running.log, &format!("{tag}-single"), "TASK_RUNNING");
        m.traced_finished_ms = traced(&running.log, &format!("{tag}-single"), "TASK_FINISHED");
    }
    for round in 0..plan.rounds {
        let tasks: Vec<v1::TaskInfo> = (0..plan.burst)
            .map(|i| subject.task(&format!("{tag}-burst{round}-{i}"), false))
            .collect();
        let ids: Vec<String> = tasks.iter().map(|t| t.task_id.value.clone()).collect();
        let cpu = tree_cpu_micros(running.pid);
        let own = super::own_cpu_micros();
        let started = Instant::now();
        agent.launch(&running.id, tasks);
        let times = agent
            .until_all(&ids, TaskState::TaskFinished, WAIT)
            .await
            .expect("a burst ends");
        let elapsed = started.elapsed();
        let cpu = tree_cpu_micros(running.pid).saturating_sub(cpu);
        let own = super::own_cpu_micros().saturating_sub(own);
        let last = times
            .iter()
            .filter_map(|t| t.latency(TaskState::TaskFinished))
            .max()
            .unwrap_or(elapsed);
        m.burst_tasks_per_s
            .push(plan.burst as f64 / last.as_secs_f64());
        for t in &times {
            if let Some(d) = t.latency(TaskState::TaskRunning) {
                m.burst_running_ms.push_duration_ms(d);
            }
        }
        m.cpu_per_task_us.push(cpu as f64 / plan.burst as f64);
        m.agent_cpu_share
            .push(own as f64 / elapsed.as_micros().max(1) as f64);
    }
    if subject.is_shardex() {
        m.traced_burst_running_ms = traced(&running.log, &format!("{tag}-burst"), "TASK_RUNNING");
    }
    running.stop(agent).await;
    agent.forget_tasks();

    for &n in &plan.live {
        let running = subject.start(agent, paths, &format!("{tag}-live{n}")).await;
        let tasks: Vec<v1::TaskInfo> = (0..n)
            .map(|i| subject.task(&format!("{tag}-live{n}-{i}"), true))
            .collect();
        let ids: Vec<String> = tasks.iter().map(|t| t.task_id.value.clone()).collect();
        agent.launch(&running.id, tasks);
        agent
            .until_all(&ids, TaskState::TaskRunning, WAIT)
            .await
            .expect("every live task runs");
        m.live.push((
            n,
            mib(settled_rss_kib(running.pid).await),
            mib(tree_rss_kib(running.pid)),
            mib(tree_pss_kib(running.pid)),
        ));
        running.stop(agent).await;
        agent.forget_tasks();
    }
    m
}

/// Size in bytes of a gzipped (level 9) tar holding only `binary`, as the release tarball
/// does.
fn tarball_bytes(binary: &Path) -> u64 {
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::best(),
    ));
    let mut header = tar::Header::new_gnu();
    let Ok(bytes) = std::fs::read(binary) else {
        return 0;
    };
    header.set_size(bytes.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_cksum();
    if archive
        .append_data(&mut header, "shardex-executor", bytes.as_slice())
        .is_err()
    {
        return 0;
    }
    archive
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_or(0, |v| v.len() as u64)
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += dir_bytes(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

/// pymesos and its dependencies in a virtualenv (pip and setuptools left out).
fn pymesos_bytes(python: &Path) -> u64 {
    let Some(venv) = python.parent().and_then(Path::parent) else {
        return 0;
    };
    let mut total = 0;
    for lib in std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let site = lib.path().join("site-packages");
        for entry in std::fs::read_dir(&site).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_lowercase();
            let tooling = [
                "pip",
                "setuptools",
                "_distutils_hack",
                "pkg_resources",
                "distutils-precedence",
            ]
            .iter()
            .any(|t| name.starts_with(t));
            if !tooling {
                total += if entry.path().is_dir() {
                    dir_bytes(&entry.path())
                } else {
                    entry.metadata().map_or(0, |m| m.len())
                };
            }
        }
    }
    total
}

/// A Python with pymesos, or why not.
async fn pymesos_peer(dir: &Path) -> Result<Subject, String> {
    let python = pymesos::python310().ok_or("no Python 3.10 interpreter")?;
    let python = pymesos::install(&python, dir).await?;
    let script = dir.join("bench_executor.py");
    std::fs::write(&script, PYMESOS_EXECUTOR).map_err(|e| e.to_string())?;
    Ok(Subject {
        name: "pymesos 0.3".into(),
        kind: Kind::Pymesos { python, script },
    })
}

/// What the real agent's log says of one executor and its task (ms), and, for a command
/// executor, its memory and CPU with one live task.
#[derive(Default)]
struct OnReal {
    subscribe_ms: Samples,
    running_ms: Samples,
    finished_ms: Samples,
    live_rss_mib: Samples,
    live_cpu_ms: Samples,
}

/// The three executors on one real Mesos agent, each task in a fresh executor.
async fn on_real_mesos(
    rounds: usize,
    pymesos: Option<&Subject>,
) -> Result<Vec<(String, OnReal)>, String> {
    use crate::support::real_mesos::{Flags, RealMesos, glog_time, logged_at, ms};
    use crate::support::{TestFramework, framework_info, launch_operation, scalar};
    if support::real_mesos::mesos_home().is_err() {
        return Err("SHARDEX_MESOS_HOME is not set".into());
    }
    let flags = Flags {
        master: vec!["--allocation_interval=50ms".into()],
        agent: Vec::new(),
    };
    let mesos = tokio::task::spawn_blocking(move || RealMesos::start("bench executor", flags))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the real Mesos did not start")?;
    let agent = mesos.agent_id.clone();
    let mut fw = TestFramework::subscribe(
        &mesos.master_url(),
        framework_info("bench-executor"),
        shardex::mesos::Encoding::Protobuf,
    )
    .await
    .map_err(|e| e.to_string())?;

    /// Launches `task`; its terminal state with the status's message (`None` once live).
    async fn run(
        fw: &mut TestFramework,
        task: v1::TaskInfo,
        live: bool,
    ) -> Option<(TaskState, String)> {
        let task_id = task.task_id.value.clone();
        // The previous executor's resources come back after its shutdown, in an offer of
        // their own: wait for an offer that holds the task and its executor.
        fn total(resources: &[v1::Resource], name: &str) -> f64 {
            resources
                .iter()
                .filter(|r| r.name == name)
                .filter_map(|r| r.scalar.as_ref().map(|s| s.value))
                .sum()
        }
        let needs = |name: &str| {
            // A command task's executor takes Mesos' defaults on top (0.1 cpus, 32 MB).
            let default = if name == "cpus" { 0.1 } else { 32.0 };
            total(&task.resources, name)
                + task
                    .executor
                    .as_ref()
                    .map_or(default, |e| total(&e.resources, name))
        };
        let (cpus, mem) = (needs("cpus"), needs("mem"));
        let offer = loop {
            let offer = fw.next_offer().await;
            if total(&offer.resources, "cpus") + 1e-9 >= cpus
                && total(&offer.resources, "mem") + 1e-9 >= mem
            {
                break offer;
            }
            fw.decline(&offer, Some(0.0)).await.expect("DECLINE");
        };
        fw.accept(
            vec![offer.id.clone()],
            vec![launch_operation(vec![task])],
            Some(0.0),
        )
        .await
        .expect("ACCEPT");
        loop {
            let status = fw.next_update(&task_id).await;
            if status.uuid.is_some() {
                fw.acknowledge(&status).await.expect("ACKNOWLEDGE");
            }
            let state = support::state(&status);
            if live && state == TaskState::TaskRunning {
                return None;
            }
            if shardex::mesos::states::is_terminal(state) {
                return Some((state, status.message.clone().unwrap_or_default()));
            }
        }
    }
    /// What is wrong with a task's end, unless it finished.
    fn not_finished(ended: Option<(TaskState, String)>) -> Option<String> {
        match ended {
            Some((TaskState::TaskFinished, _)) => None,
            Some((state, message)) => Some(format!("{} ({message})", state.as_str_name())),
            None => Some("still running".into()),
        }
    }
    let command_task = |id: &str, command: &str| v1::TaskInfo {
        name: id.into(),
        task_id: v1::TaskId { value: id.into() },
        agent_id: v1::AgentId {
            value: agent.clone(),
        },
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        command: Some(v1::CommandInfo {
            value: Some(command.into()),
            shell: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut ids: Vec<(String, String, String)> = Vec::new();
    for round in 0..rounds {
        let executor = support::shardex_executor_info(&format!("shardex-{round}"), "", &["faulty"]);
        let id = format!("shardex-ok-{round}");
        let mut task = support::task_info(&id, &agent, &executor, "");
        task.data = Some(
            support::faulty(&id, "ok", ErrorPolicy::Fail)
                .encode()
                .expect("a payload"),
        );
        let ended = run(&mut fw, task, false).await;
        if let Some(why) = not_finished(ended) {
            return Err(format!("shardex-executor's task ended {why}"));
        }
        // An idle executor keeps its resources: it goes before the next round.
        let executor_id = format!("shardex-{round}");
        fw.shutdown_executor(&executor_id, &agent)
            .await
            .map_err(|e| e.to_string())?;
        ids.push(("shardex-executor (process)".into(), executor_id, id));
        let id = format!("command-true-{round}");
        let ended = run(&mut fw, command_task(&id, "true"), false).await;
        if let Some(why) = not_finished(ended) {
            return Err(format!("the command executor's task ended {why}"));
        }
        ids.push(("Mesos command executor".into(), id.clone(), id));
        if let Some(Subject {
            kind: Kind::Pymesos { python, script },
            ..
        }) = pymesos
        {
            let executor_id = format!("pymesos-{round}");
            let executor = support::executor_info(
                &executor_id,
                &format!("{} {}", python.display(), script.display()),
                Vec::new(),
            );
            let id = format!("pymesos-ok-{round}");
            let task = support::task_info(&id, &agent, &executor, "");
            let ended = run(&mut fw, task, false).await;
            if let Some(why) = not_finished(ended) {
                return Err(format!("pymesos' task ended {why}"));
            }
            fw.shutdown_executor(&executor_id, &agent)
                .await
                .map_err(|e| e.to_string())?;
            ids.push(("pymesos 0.3".into(), executor_id, id));
        }
    }
    // One live task in a command executor: its memory and the CPU it took to get there.
    let mut live = OnReal::default();
    for round in 0..rounds.min(3) {
        let id = format!("command-live-{round}");
        run(&mut fw, command_task(&id, "sleep 600"), true).await;
        if let Some(pid) = mesos.process_of_executor(&id, "mesos-executor") {
            live.live_rss_mib.push(mib(rss_kib(pid as u32)));
            if let Some((own, _)) = super::cpu_micros(pid as u32) {
                live.live_cpu_ms.push(own as f64 / 1e3);
            }
        }
        fw.kill(&id, None).await.map_err(|e| e.to_string())?;
        loop {
            let status = fw.next_update(&id).await;
            if status.uuid.is_some() {
                fw.acknowledge(&status).await.map_err(|e| e.to_string())?;
            }
            if shardex::mesos::states::is_terminal(support::state(&status)) {
                break;
            }
        }
    }
    let _ = fw.teardown().await;
    let log = mesos.agent_log();
    let mut rows: Vec<(String, OnReal)> = Vec::new();
    for (name, executor_id, task_id) in ids {
        let container = log
            .lines()
            .find(|l| {
                l.contains("Launching container ")
                    && l.contains(&format!("for executor '{executor_id}'"))
            })
            .and_then(|l| l.split("Launching container ").nth(1))
            .and_then(|rest| rest.split(' ').next())
            .ok_or_else(|| format!("no container for {executor_id} in the agent log"))?
            .to_owned();
        let started = logged_at(&log, &["Starting container ", &container]);
        let quoted = format!("executor '{executor_id}'");
        let subscribed = log
            .lines()
            .find(|l| {
                l.contains(&quoted)
                    && (l.contains("Received Subscribe request for HTTP")
                        || l.contains("Got registration for"))
            })
            .and_then(glog_time)
            .ok_or_else(|| format!("no subscription of {executor_id} in the agent log"))?;
        let launched = logged_at(&log, &[&format!("Launching task '{task_id}'")]);
        let update = |state: &str| {
            logged_at(
                &log,
                &[
                    &format!("Handling status update {state} "),
                    &format!("for task {task_id} of"),
                ],
            )
        };
        let entry = match rows.iter_mut().position(|(n, _)| *n == name) {
            Some(i) => &mut rows[i].1,
            None => {
                rows.push((name.clone(), OnReal::default()));
                &mut rows.last_mut().expect("just pushed").1
            }
        };
        entry.subscribe_ms.push(ms(started, subscribed));
        entry.running_ms.push(ms(launched, update("TASK_RUNNING")));
        entry
            .finished_ms
            .push(ms(launched, update("TASK_FINISHED")));
    }
    if let Some((_, command)) = rows.iter_mut().find(|(n, _)| n == "Mesos command executor") {
        command.live_rss_mib = live.live_rss_mib;
        command.live_cpu_ms = live.live_cpu_ms;
    }
    drop(mesos);
    Ok(rows)
}

pub async fn run(scale: Scale) -> Report {
    let mut report = Report::new("Executor");
    let dir = tempfile::tempdir().expect("a temp dir");
    let paths = Paths {
        executor: support::package_binary("shardex-executor"),
        faulty: support::example_plugin("faulty"),
        dir: dir.path().join("sandboxes"),
    };
    let plan = Plan {
        starts: scale.pick(2, 20),
        samples: scale.pick(5, 200),
        burst: crate::support::env_number("SHARDEX_BENCH_BURST", scale.pick(50, 10_000)),
        rounds: scale.pick(1, 3),
        live: scale.pick(vec![1, 5], vec![1, 100, 1000]),
    };
    let agent = BenchAgent::start().await;
    // `SHARDEX_BENCH_SUBJECTS=thread,process,pymesos` (all by default) narrows a profiling run.
    let wanted = |name: &str| {
        std::env::var("SHARDEX_BENCH_SUBJECTS")
            .map_or(true, |s| s.split(',').any(|w| w.trim() == name))
    };
    let mut subjects: Vec<Subject> = [Isolation::Thread, Isolation::Process]
        .into_iter()
        .filter(|i| wanted(i.as_str()))
        .map(Subject::shardex)
        .collect();
    let mut peer_note = None;
    let mut pymesos_subject = None;
    if scale == Scale::Full && wanted("pymesos") {
        match pymesos_peer(dir.path()).await {
            Ok(subject) => {
                pymesos_subject = Some(subject.clone());
                subjects.push(subject);
            }
            Err(why) => peer_note = Some(format!("pymesos not measured: {why}.")),
        }
    } else {
        peer_note = Some("Smoke scale: no peers.".into());
    }
    let mut results = Vec::new();
    for subject in &subjects {
        // pymesos is slow: a smaller burst gives the same rate.
        let plan = if subject.is_shardex() {
            plan.clone()
        } else {
            Plan {
                burst: plan.burst.min(2_000),
                ..plan.clone()
            }
        };
        results.push((
            subject.clone(),
            measure(&agent, &paths, subject, &plan).await,
        ));
    }
    let real = if scale == Scale::Full && wanted("real") {
        on_real_mesos(5, pymesos_subject.as_ref()).await
    } else {
        Err("smoke scale".into())
    };

    // The headline table: each measure, every executor side by side, ratios to pymesos.
    let mut head = vec!["measure (bench agent)".to_owned()];
    head.extend(results.iter().map(|(s, _)| s.name.clone()));
    let peer = results.iter().position(|(s, _)| !s.is_shardex());
    if peer.is_some() {
        head.push("pymesos / shardex (process)".into());
        head.push("target".into());
    }
    let mut table = Table::new(
        "Executor on the bench agent (median / p99)",
        &head.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    type Pick = fn(&Measured) -> String;
    type Value = fn(&Measured) -> f64;
    let rows: Vec<(&str, Pick, Value, bool, &str)> = vec![
        (
            "process start → SUBSCRIBE, ms",
            |m| median_p99(&m.start_to_subscribe_ms),
            |m| m.start_to_subscribe_ms.median(),
            false,
            "≤ 5",
        ),
        (
            "LAUNCH → TASK_RUNNING (agent), ms",
            |m| median_p99(&m.running_ms),
            |m| m.running_ms.median(),
            false,
            "≤ 0.5",
        ),
        (
            "LAUNCH → TASK_RUNNING (own log), ms",
            |m| {
                if m.traced_running_ms.is_empty() {
                    "–".into()
                } else {
                    median_p99(&m.traced_running_ms)
                }
            },
            |m| m.traced_running_ms.median(),
            false,
            "≤ 0.5",
        ),
        (
            "LAUNCH → TASK_FINISHED (agent), ms",
            |m| median_p99(&m.finished_ms),
            |m| m.finished_ms.median(),
            false,
            "",
        ),
        (
            "no-op tasks/s, one executor (burst)",
            |m| num(m.burst_tasks_per_s.median(), 0),
            |m| m.burst_tasks_per_s.median(),
            true,
            "≥ 10,000",
        ),
        (
            "burst: LAUNCH → TASK_RUNNING, ms",
            |m| median_p99(&m.burst_running_ms),
            |m| m.burst_running_ms.median(),
            false,
            "",
        ),
        (
            "burst: LAUNCH → TASK_RUNNING (own log), ms",
            |m| {
                if m.traced_burst_running_ms.is_empty() {
                    "–".into()
                } else {
                    median_p99(&m.traced_burst_running_ms)
                }
            },
            |m| m.traced_burst_running_ms.median(),
            false,
            "",
        ),
        (
            "CPU per task (executor + workers), µs",
            |m| num(m.cpu_per_task_us.median(), 0),
            |m| m.cpu_per_task_us.median(),
            false,
            "≤ 50",
        ),
        (
            "bench agent's CPU during the burst",
            |m| format!("{} %", num(m.agent_cpu_share.median() * 100.0, 0)),
            |_| f64::NAN,
            false,
            "",
        ),
        (
            "idle RSS, MiB",
            |m| auto(m.idle_rss_mib.median()),
            |m| m.idle_rss_mib.median(),
            false,
            "≤ 8",
        ),
        (
            "idle PSS, executor + spare worker, MiB",
            |m| auto(m.idle_tree_pss_mib.median()),
            |m| m.idle_tree_pss_mib.median(),
            false,
            "",
        ),
    ];
    let ours = results
        .iter()
        .position(|(s, _)| matches!(s.kind, Kind::Shardex(Isolation::Process)));
    for (name, pick, value, rate, target) in rows {
        let mut row = vec![name.to_owned()];
        row.extend(results.iter().map(|(_, m)| pick(m)));
        if let (Some(p), Some(o)) = (peer, ours) {
            let (peer_value, our_value) = (value(&results[p].1), value(&results[o].1));
            row.push(if rate {
                times_better_rate(our_value, peer_value)
            } else {
                times_better_cost(our_value, peer_value)
            });
            row.push(target.to_owned());
        }
        table.row(row);
    }
    let live_rows = results.first().map_or(0, |(_, m)| m.live.len());
    for i in 0..live_rows {
        let n = results[0].1.live[i].0;
        let mut row = vec![format!(
            "{n} live tasks: RSS of the executor / PSS of it and its workers, MiB"
        )];
        row.extend(
            results
                .iter()
                .map(|(_, m)| format!("{} / {}", auto(m.live[i].1), auto(m.live[i].3))),
        );
        if let (Some(p), Some(o)) = (peer, ours) {
            row.push(times_better_cost(
                results[o].1.live[i].3,
                results[p].1.live[i].3,
            ));
            row.push(String::new());
        }
        table.row(row);
    }
    let binary = std::fs::metadata(&paths.executor).map_or(0, |m| m.len());
    // Compressing a debug build at level 9 takes long and says nothing.
    let tarball = match scale {
        Scale::Full => tarball_bytes(&paths.executor),
        Scale::Smoke => 0,
    };
    let mut row = vec!["binary / gzipped tarball, MiB".to_owned()];
    for (subject, _) in &results {
        row.push(match &subject.kind {
            Kind::Shardex(_) if tarball == 0 => auto(binary as f64 / 1048576.0),
            Kind::Shardex(_) => format!(
                "{} / {}",
                auto(binary as f64 / 1048576.0),
                auto(tarball as f64 / 1048576.0)
            ),
            Kind::Pymesos { python, .. } => format!(
                "{} (site-packages; Python not counted)",
                auto(pymesos_bytes(python) as f64 / 1048576.0)
            ),
        });
    }
    if peer.is_some() {
        row.push(String::new());
        row.push(String::new());
    }
    table.row(row);
    table.note(format!(
        "{} starts, {} single tasks one at a time on a warm executor, {} round(s) of a burst of \
         {} no-op tasks in one write (pymesos: at most 2,000), live tasks {:?}. The bench agent \
         acknowledges every update at once. \"own log\": the executor's `launching task` and \
         `status update` lines (microsecond timestamps). CPU: user + system time of the \
         executor and every process under it over the burst, from /proc (10 ms ticks), per \
         task. PSS (proportional set size) divides shared pages among the processes mapping them; \
         the summed RSS of 1,000 worker processes would count the executor binary's pages \
         1,000 times.",
        plan.starts,
        plan.samples,
        plan.rounds,
        num(plan.burst as f64, 0),
        plan.live
    ));
    if let Some(note) = &peer_note {
        table.note(note.clone());
    }
    report.table(table);

    let mut real_table = Table::new(
        "Three executors on one real Mesos 1.12 agent (agent log; median / p99)",
        &[
            "executor (a fresh one per task)",
            "container start → SUBSCRIBE / registration, ms",
            "LAUNCH → TASK_RUNNING, ms",
            "LAUNCH → TASK_FINISHED, ms",
            "RSS with 1 live task, MiB",
            "CPU to TASK_RUNNING, ms",
        ],
    );
    match real {
        Ok(rows) => {
            for (name, r) in &rows {
                real_table.row(vec![
                    name.clone(),
                    median_p99(&r.subscribe_ms),
                    median_p99(&r.running_ms),
                    median_p99(&r.finished_ms),
                    if r.live_rss_mib.is_empty() {
                        "see above".into()
                    } else {
                        auto(r.live_rss_mib.median())
                    },
                    if r.live_cpu_ms.is_empty() {
                        "see above".into()
                    } else {
                        auto(r.live_cpu_ms.median())
                    },
                ]);
            }
            real_table.note(
                "5 rounds, one task per executor (the command executor runs one task, so every \
                 launch starts one). Times from the agent's glog lines: `Starting container`, \
                 `Received Subscribe request for HTTP executor` (the command executor: `Got \
                 registration for executor`), `Launching task`, `Handling status update`. \
                 The command executor's memory and CPU: the `mesos-executor` process of a \
                 `sleep 600` task once it is TASK_RUNNING (3 rounds).",
            );
        }
        Err(why) => real_table.note(format!("Not measured: {why}.")),
    }
    report.table(real_table);
    report
}
