//! Randomised faults on the embedded cluster with the real scheduler process and real
//! executors, checked against the cluster's own records (never the scheduler's view of itself).
//!
//! Each schedule fires a sharded script job (failover on) again and again; during every fire
//! it injects faults at random moments:
//!
//! - `kill -9` of the executor;
//! - `kill -9` of the scheduler and a restart on the same store;
//! - the scheduler restarted with `--crash-at` so that it kills itself at a chosen point: with
//!   a launch recorded but its ACCEPT not sent, with an update's effect recorded but its
//!   ACKNOWLEDGE not sent, or with a reconciliation asked for but not answered; then
//!   restarted on the same store;
//! - an agent restart with checkpoint recovery;
//! - an executor's subscription dropped;
//! - the scheduler's subscription silenced (half-open: heartbeats stop, events vanish);
//! - the last status updates delivered to the scheduler again, newest first (duplicates, out
//!   of order).
//!
//! After every fire:
//!
//! - every item reached `TASK_FINISHED` exactly once (distinct tasks, from the updates the
//!   master took from the agent: an executor's late `TASK_FINISHED` for a task the agent had
//!   already ended is ignored by the agent, as by a real one, and does not count);
//! - no item ever had two live tasks at once (the master's live tasks, sampled every 20 ms);
//! - nothing is left queued for failover or parked (no failover entry lost);
//!
//! and at the end: the agent holds no update the scheduler has not acknowledged, and no
//! executor or job process is left behind.
//!
//! The seed is printed (`SHARDEX-FAULTS:`); `SHARDEX_FAULT_SEED=<n>` replays a schedule.
//! `SHARDEX_FAULT_SCALE=large` runs 40 fires of 8 shards instead of 4 of 4 (see
//! docs/reliability.md). Needs `cargo build --workspace` first.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use shardex::mesos::proto::v1::scheduler::call;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use support::scheduler_rest::*;

use support::{EVENTUALLY, SOON, TestCluster, eventually, package_binary};

/// xorshift64*: small, seedable, and enough to pick faults and moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillExecutor,
    KillScheduler,
    CrashBeforeAccept,
    CrashBeforeAcknowledge,
    CrashAfterReconcile,
    RestartAgent,
    DropExecutorStream,
    SilenceSchedulerStream,
    RedeliverUpdates,
}

const FAULTS: [Fault; 9] = [
    Fault::KillExecutor,
    Fault::KillScheduler,
    Fault::CrashBeforeAccept,
    Fault::CrashBeforeAcknowledge,
    Fault::CrashAfterReconcile,
    Fault::RestartAgent,
    Fault::DropExecutorStream,
    Fault::SilenceSchedulerStream,
    Fault::RedeliverUpdates,
];

impl Fault {
    /// The `--crash-at` point of a crash fault.
    fn crash_point(self) -> Option<&'static str> {
        match self {
            Fault::CrashBeforeAccept => Some("before:ACCEPT"),
            Fault::CrashBeforeAcknowledge => Some("before:ACKNOWLEDGE"),
            Fault::CrashAfterReconcile => Some("after:RECONCILE"),
            _ => None,
        }
    }
}

/// The item of a Shardex task id (`job@-@item@-@…`).
fn item_of(task_id: &str) -> Option<u32> {
    task_id.split("@-@").nth(1)?.parse().ok()
}

/// The scheduler process, logging at `info` into `log` (kept with the test's files, so a
/// failed schedule can be read back), killed when dropped.
struct Scheduler {
    process: Option<Child>,
    args: Vec<String>,
    log: PathBuf,
    rest: Rest,
    /// Armed `--crash-at` points this process reached (it killed itself there).
    crashes: u32,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Scheduler {
    fn start(args: Vec<String>, log: PathBuf) -> Scheduler {
        let mut scheduler = Scheduler {
            process: None,
            args,
            log,
            rest: Rest::new(String::new()),
            crashes: 0,
        };
        scheduler.spawn(None);
        scheduler
    }

    /// Starts the scheduler; with `crash_at`, armed to kill itself there.
    fn spawn(&mut self, crash_at: Option<&str>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let before = std::fs::read_to_string(&self.log).unwrap_or_default().len();
        let child = Command::new(package_binary("shardex-scheduler"))
            .args(&self.args)
            .args(["--listen", "127.0.0.1:0"])
            .args(crash_at.map(|point| format!("--crash-at={point}")))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start shardex-scheduler");
        self.process = Some(child);
        let deadline = std::time::Instant::now() + SOON;
        let url = loop {
            if let Some(url) = support::rest_url_in_log(&self.log, before) {
                break url;
            }
            // Armed, it may reach its crash point before it prints its address: `revive`
            // starts it again.
            if crash_at.is_some()
                && let Some(child) = self.process.as_mut()
                && child.try_wait().ok().flatten().is_some()
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the scheduler printed no REST address; its log since the start:\n{}",
                std::fs::read_to_string(&self.log)
                    .unwrap_or_default()
                    .get(before..)
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.rest = Rest::new(url);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `kill -9`, then the same command again on the same store (armed with `crash_at`).
    fn restart(&mut self, crash_at: Option<&str>) {
        self.note_crashes();
        self.kill();
        self.spawn(crash_at);
    }

    /// Counts the crash points reached so far (from the log); how many are new.
    fn note_crashes(&mut self) -> u32 {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let reached = log
            .matches("--crash-at reached: killing this process")
            .count() as u32;
        let new = reached - self.crashes;
        self.crashes = reached;
        new
    }

    /// Starts the scheduler again, unarmed, if it killed itself at its crash point.
    fn revive(&mut self) {
        let exited = self
            .process
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_some());
        if exited {
            let new = self.note_crashes();
            assert!(
                new == 1,
                "the scheduler died, but not at its crash point:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            self.spawn(None);
        }
    }

    async fn trigger(&mut self) {
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            self.revive();
            if self.rest.try_post("/api/jobs/work/trigger").await == Some(202) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the trigger was not accepted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_lose_nothing_and_run_nothing_twice() {
    let large = std::env::var("SHARDEX_FAULT_SCALE").is_ok_and(|s| s == "large");
    let (fires, shards) = if large { (40, 8) } else { (4, 4) };
    let seed = std::env::var("SHARDEX_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("SHARDEX-FAULTS: seed {seed} (replay with SHARDEX_FAULT_SEED={seed})");
    let mut rng = Rng(seed);

    // Short heartbeats, so that a silenced subscription is noticed within a second.
    let tc = TestCluster::start_with(|c| {
        c.call_log_limit = 1_000_000;
        c.heartbeat_interval = Duration::from_millis(200);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("done.log");
    let marker = format!("shardex-fault-job-{seed}");
    let config = format!(
        "{}\n{}\n[[jobs]]\nname = \"work\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         kind = \"script\"\nsharding_total_count = {shards}\nfailover = true\n\
         command_line = \"/bin/sh -c 'sleep 0.4; echo $SHARDEX_SHARDING_ITEM $SHARDEX_TASK_ID \
         >> {}' {marker}\"\n",
        TUNING
            .replace(
                "[tasks]\n",
                "[failover]\nmax_attempts = 100\nbackoff_initial = \"100ms\"\nbackoff_max = \
                 \"500ms\"\n[tasks]\n"
            )
            .replace("[mesos]\n", "[mesos]\nmissed_heartbeats = 4\n"),
        app("a", &[]),
        out.display()
    );
    let config_path = dir.path().join("scheduler.toml");
    std::fs::write(&config_path, config).unwrap();
    let args = vec![
        "--config".to_owned(),
        config_path.display().to_string(),
        "--master".to_owned(),
        tc.cluster.master_url(),
        "--store".to_owned(),
        dir.path().join("store.redb").display().to_string(),
    ];
    let mut scheduler = Scheduler::start(args, dir.path().join("scheduler.log"));

    // The sampler, beside the schedule: never two live tasks of one item in the master.
    let violations: Mutex<Vec<String>> = Mutex::default();
    let schedule_done = std::sync::atomic::AtomicBool::new(false);
    let sampler = async {
        let mut samples = 0u64;
        while !schedule_done.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(tasks) = tc.cluster.live_tasks().await {
                let mut per_item: BTreeMap<u32, Vec<String>> = BTreeMap::new();
                for task in tasks {
                    if let Some(item) = item_of(&task.task_id) {
                        per_item.entry(item).or_default().push(task.task_id);
                    }
                }
                for (item, ids) in per_item.into_iter().filter(|(_, ids)| ids.len() > 1) {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("item {item} live twice: {ids:?}"));
                }
                samples += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        samples
    };
    let schedule = async {
        let mut injected: BTreeMap<Fault, u32> = BTreeMap::new();
        let mut finished_per_fire = Vec::new();
        for fire in 0..fires {
            let accepts_before = launched_tasks(&tc).await.len();
            scheduler.trigger().await;
            for _ in 0..rng.below(3) {
                tokio::time::sleep(Duration::from_millis(rng.below(800))).await;
                let fault = FAULTS[rng.below(FAULTS.len() as u64) as usize];
                let executor_id = format!("a@-@{}", tc.cluster.agent_id());
                let done = match fault {
                    // The executor may exit on its own between the lookup and the kill.
                    Fault::KillExecutor => match tc.cluster.executor_pid(&executor_id).await {
                        Ok(Some(pid)) => nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        )
                        .is_ok(),
                        _ => false,
                    },
                    Fault::KillScheduler => {
                        scheduler.restart(None);
                        true
                    }
                    Fault::CrashBeforeAccept
                    | Fault::CrashBeforeAcknowledge
                    | Fault::CrashAfterReconcile => {
                        scheduler.restart(fault.crash_point());
                        true
                    }
                    Fault::SilenceSchedulerStream => {
                        let before = count_calls(&tc.cluster, call::Type::Subscribe).await;
                        let silenced = tc.cluster.silence_schedulers().await.unwrap_or(0) > 0;
                        if silenced {
                            // Noticed by the heartbeat watchdog: the scheduler subscribes again
                            // (or, armed, dies at its crash point first and is revived).
                            let deadline = tokio::time::Instant::now() + SOON;
                            while count_calls(&tc.cluster, call::Type::Subscribe).await <= before {
                                scheduler.revive();
                                assert!(
                                    tokio::time::Instant::now() < deadline,
                                    "no new subscription after the silence (seed {seed})"
                                );
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                        silenced
                    }
                    Fault::RedeliverUpdates => {
                        let count = 1 + rng.below(8) as usize;
                        tc.cluster
                            .redeliver_updates(count)
                            .await
                            .is_ok_and(|sent| !sent.is_empty())
                    }
                    Fault::RestartAgent => {
                        let down = Duration::from_millis(100 + rng.below(1_000));
                        tc.cluster.restart_agent(down).await.is_ok()
                    }
                    Fault::DropExecutorStream => tc
                        .cluster
                        .drop_executor_stream(&executor_id)
                        .await
                        .unwrap_or(false),
                };
                if done {
                    *injected.entry(fault).or_default() += 1;
                }
            }
            // The fire is over when every item of it finished and nothing is queued or running.
            let deadline = tokio::time::Instant::now() + EVENTUALLY * 3;
            let (finished, parked) = loop {
                scheduler.revive();
                let launched: BTreeSet<String> = launched_tasks(&tc).await[accepts_before..]
                    .iter()
                    .cloned()
                    .collect();
                let finished = finished_tasks(&tc.cluster).await;
                let mine: Vec<String> = finished.intersection(&launched).cloned().collect();
                let items: BTreeSet<u32> = mine.iter().filter_map(|t| item_of(t)).collect();
                let live = tc.cluster.live_tasks().await.unwrap_or_default();
                let failover = scheduler.rest.try_get("/api/tasks/failover").await;
                let running = scheduler.rest.try_get("/api/tasks/running").await;
                let parked = scheduler.rest.try_get("/api/tasks/parked").await;
                let quiet = live.is_empty()
                    && failover == Some(serde_json::json!([]))
                    && running == Some(serde_json::json!([]));
                // (A scheduler that reached its crash point between two reads answers none.)
                if items.len() == shards as usize && quiet && parked.is_some() {
                    break (mine, parked);
                }
                if tokio::time::Instant::now() >= deadline {
                    let log = std::fs::read_to_string(&scheduler.log).unwrap_or_default();
                    eprintln!("scheduler log:\n{log}");
                    let updates: Vec<(String, i32, u16)> = tc
                        .cluster
                        .executor_calls()
                        .await
                        .unwrap()
                        .iter()
                        .filter_map(|c| {
                            let u = c.call.as_ref()?.update.as_ref()?;
                            launched
                                .contains(&u.status.task_id.value)
                                .then(|| (u.status.task_id.value.clone(), u.status.state, c.status))
                        })
                        .collect();
                    let metrics = match support::http()
                        .get(format!("{}/metrics", scheduler.rest.base))
                        .send()
                        .await
                    {
                        Ok(response) => response.text().await.unwrap_or_default(),
                        Err(error) => format!("(no metrics: {error})"),
                    };
                    let metrics: Vec<&str> = metrics
                        .lines()
                        .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
                        .collect();
                    eprintln!("updates of this fire's tasks: {updates:?}\nmetrics: {metrics:?}");
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "fire {fire} did not finish (seed {seed}): launched {launched:?}, finished \
                 {mine:?}, live in the master {live:?}, the scheduler's running {running:?}, \
                 failover {failover:?}, parked {parked:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let mut per_item: BTreeMap<u32, Vec<String>> = BTreeMap::new();
            for task in &finished {
                per_item
                    .entry(item_of(task).unwrap())
                    .or_default()
                    .push(task.clone());
            }
            for (item, tasks) in &per_item {
                assert_eq!(
                    tasks.len(),
                    1,
                    "fire {fire} item {item} finished more than once (seed {seed}): {tasks:?}"
                );
            }
            assert_eq!(
                parked,
                Some(serde_json::json!([])),
                "fire {fire}: nothing parked (seed {seed})"
            );
            finished_per_fire.push(finished.len());
        }
        schedule_done.store(true, std::sync::atomic::Ordering::Relaxed);
        (injected, finished_per_fire)
    };
    let (samples, (injected, finished_per_fire)) = tokio::join!(sampler, schedule);
    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "seed {seed}: {violations:?}");
    assert!(samples > 10, "the sampler ran ({samples} samples)");

    // No update left unacknowledged: the agent's status update streams are empty. (An UPDATE
    // that reaches the agent after its executor was killed is answered 202 and ignored, as a
    // real agent does: the agent's own terminal update for the task stands.)
    // A scheduler still armed may reach its crash point on the way: it is revived.
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        scheduler.revive();
        let pending = tc.cluster.pending_updates().await.unwrap();
        if pending.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "updates left unacknowledged (seed {seed}): {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let items_run = finished_per_fire.iter().sum::<usize>();
    let runs_written = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .count();
    eprintln!(
        "SHARDEX-FAULTS: seed {seed}: {fires} fires of {shards} shards, faults {injected:?} \
         (crash points reached {}), items finished {items_run} (each exactly once per fire), items lost 0, duplicates 0, \
         job runs {runs_written} (a run killed after its work is re-run: at least once), \
         {samples} samples of the master's live tasks",
        scheduler.crashes
    );

    drop(scheduler);
    let work_dir = tc.cluster.work_dir().to_owned();
    tc.cluster.shutdown().await;
    // No executor or job process left behind.
    let left = eventually("every process of the cluster to be gone", SOON, || async {
        let left = processes_in(&work_dir, &marker);
        left.is_empty().then_some(left)
    })
    .await;
    assert!(left.is_empty());
}

/// Task ids in the order the scheduler launched them (the master's record of ACCEPTs).
async fn launched_tasks(tc: &TestCluster) -> Vec<String> {
    tc.cluster
        .scheduler_calls()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.status == 202)
        .filter_map(|c| c.call.as_ref())
        .filter(|c| c.r#type == Some(call::Type::Accept as i32))
        .flat_map(|c| c.accept.iter().flat_map(|a| a.operations.iter()))
        .flat_map(|o| o.launch.iter().flat_map(|l| l.task_infos.iter()))
        .map(|t| t.task_id.value.clone())
        .collect()
}

/// Processes working under `work_dir` (executors, in their sandboxes) or running the job
/// (`marker` in their command line).
fn processes_in(work_dir: &std::path::Path, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let path = entry.path();
        let cwd = std::fs::read_link(path.join("cwd")).unwrap_or_default();
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cwd.starts_with(work_dir) || cmdline.contains(marker) {
            found.push(format!("{}: {cmdline}", path.display()));
        }
    }
    found
}
