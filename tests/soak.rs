//! Soak: the stack under a steady task rate for minutes (CI) or an hour (on demand), asserting
//! that memory and the store stop growing once every bound is reached.
//!
//! `shardex-local` and `shardex-scheduler` run as their own processes (the binaries users run),
//! with cron jobs firing every 2 s; the test samples the resident memory (VmRSS) of the
//! cluster, the scheduler and the executor, and the store file's size. After a warm-up long
//! enough to fill the ended-task history to `tasks.history_max_entries` (and the run history to
//! as many tasks' runs, `history.max_runs`), the last third of the
//! run may not exceed the first third after warm-up by more than 10 % + 2 MiB (memory) or
//! 10 % (store). Then the jobs are disabled (which kills the tasks running then), and every
//! launched task must have ended, finished or killed: no failure, nothing queued, parked or
//! left running. The table is printed before anything is asserted.
//!
//! Scale: `SHARDEX_SOAK_SECONDS` (default 150), `SHARDEX_SOAK_JOBS` (default 10, 4 shards
//! each), `SHARDEX_SOAK_HISTORY` (the history bound; default 1,000). The large run in
//! docs/reliability.md: `SHARDEX_SOAK_SECONDS=3600 SHARDEX_SOAK_JOBS=100
//! SHARDEX_SOAK_HISTORY=100000 cargo test --release --test soak -- --nocapture`.
//! Needs `cargo build --workspace` (or `--release`) first.

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::scheduler_rest::*;
use support::{SOON, env_number, package_binary, proc_kib, process_tree};

const SHARDS: usize = 4;
const EVERY_SECONDS: usize = 2;

/// A child process stopped on drop: SIGINT (the cluster then kills its executors), SIGKILL
/// if it is still there after `SOON`.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = Instant::now() + SOON;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    local_kib: u64,
    scheduler_kib: u64,
    executor_kib: u64,
    store_bytes: u64,
    finished: u64,
}

/// The first line of `child`'s stdout starting with `prefix`, without it.
fn stdout_line(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(&prefix) {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    rx.recv_timeout(SOON)
        .expect("the cluster prints its master")
}

fn executor_pid(local: u32) -> Option<u32> {
    process_tree(local).into_iter().skip(1).find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() == "shardex-executo")
    })
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The largest of `values`.
fn peak(values: impl Iterator<Item = u64>) -> u64 {
    values.max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_store_plateau_under_a_steady_task_rate() {
    let seconds = env_number("SHARDEX_SOAK_SECONDS", 150) as u64;
    let jobs = env_number("SHARDEX_SOAK_JOBS", 10);
    let history = env_number("SHARDEX_SOAK_HISTORY", 1_000);
    let rate = (jobs * SHARDS) as f64 / EVERY_SECONDS as f64;
    // Long enough to fill the history bound, plus a margin for everything else to settle.
    let warm_up = Duration::from_secs_f64(history as f64 / rate + 30.0);
    let total = Duration::from_secs(seconds);
    assert!(
        total > warm_up + Duration::from_secs(30),
        "SHARDEX_SOAK_SECONDS={seconds} is too short to fill a history of {history} at {rate} \
         tasks/s and then measure"
    );
    let dir = tempfile::tempdir().unwrap();

    let mut local = Command::new(package_binary("shardex-local"))
        .args(["--port", "0", "--agent-port", "0"])
        .args([
            "--resources",
            "cpus:64;mem:65536;disk:10240;ports:[31000-32000]",
        ])
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start shardex-local");
    let master = stdout_line(&mut local, "master: ");
    let local = Running(local);

    // The run history is bounded alike: a run is one fire of a job's SHARDS tasks.
    let mut config = format!(
        "{}\n[history]\nmax_runs = {}\n{}\n",
        TUNING.replace(
            "[tasks]\n",
            &format!("[tasks]\nhistory_max_entries = {history}\n")
        ),
        history / SHARDS,
        app("a", &[])
    );
    for j in 0..jobs {
        config.push_str(&format!(
            "[[jobs]]\nname = \"soak{j}\"\napp = \"a\"\ncron = \"*/{EVERY_SECONDS} * * * * ?\"\n\
             kind = \"script\"\nsharding_total_count = {SHARDS}\ncpus = 0.01\nmem = 1\n\
             command_line = \"true\"\n"
        ));
    }
    let args = scheduler_args(dir.path(), &config, &master);
    let scheduler = start_scheduler(&args);
    let store = dir.path().join("store.redb");
    let scheduler_pid = scheduler.scheduler.child.id();

    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_secs(2)).await;
        samples.push(Sample {
            at: started.elapsed(),
            local_kib: proc_kib(local.0.id(), "status", "VmRSS:"),
            scheduler_kib: proc_kib(scheduler_pid, "status", "VmRSS:"),
            executor_kib: executor_pid(local.0.id())
                .map(|pid| proc_kib(pid, "status", "VmRSS:"))
                .unwrap_or(0),
            store_bytes: file_size(&store),
            finished: scheduler.rest.metric("shardex_tasks_finished_total").await,
        });
    }

    // Stop firing (disabling kills what runs); everything launched must end.
    for j in 0..jobs {
        let path = format!("/api/jobs/soak{j}/disable");
        assert_eq!(scheduler.rest.post(&path).await, 200, "{path}");
    }
    scheduler
        .rest
        .until("/api/tasks/running", "nothing running", |v| {
            v == &serde_json::json!([])
        })
        .await;
    // The table, then the plateau.
    eprintln!(
        "SHARDEX-SOAK: {jobs} jobs x {SHARDS} shards every {EVERY_SECONDS} s ({rate} tasks/s), \
         history bound {history}, {seconds} s, warm-up {} s",
        warm_up.as_secs()
    );
    eprintln!(
        "SHARDEX-SOAK: | t (s) | finished | shardex-local RSS (MiB) | scheduler RSS (MiB) | \
         executor RSS (MiB) | store (MiB) |"
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    let step = (samples.len() / 12).max(1);
    for s in samples
        .iter()
        .step_by(step)
        .chain(samples.last().into_iter())
    {
        eprintln!(
            "SHARDEX-SOAK: | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} |",
            s.at.as_secs(),
            s.finished,
            mib(s.local_kib),
            mib(s.scheduler_kib),
            mib(s.executor_kib),
            s.store_bytes as f64 / 1_048_576.0
        );
    }
    let measured: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.at >= warm_up)
        .collect();
    let third = (measured.len() / 3).max(1);
    let (early, late) = (&measured[..third], &measured[measured.len() - third..]);
    for (what, of) in [
        (
            "shardex-local",
            (|s: &Sample| s.local_kib) as fn(&Sample) -> u64,
        ),
        ("shardex-scheduler", |s: &Sample| s.scheduler_kib),
        ("shardex-executor", |s: &Sample| s.executor_kib),
    ] {
        let (before, after) = (peak(early.iter().map(of)), peak(late.iter().map(of)));
        eprintln!(
            "SHARDEX-SOAK: {what} RSS peak {:.1} MiB early, {:.1} MiB late",
            mib(before),
            mib(after)
        );
        assert!(
            after <= before + before / 10 + 2048,
            "{what}'s memory keeps growing: peak {before} KiB after warm-up, {after} KiB at the \
             end"
        );
    }
    let (before, after) = (
        peak(early.iter().map(|s| s.store_bytes)),
        peak(late.iter().map(|s| s.store_bytes)),
    );
    eprintln!("SHARDEX-SOAK: store {before} B early, {after} B late");
    assert!(
        after <= before + before / 10,
        "the store keeps growing: {before} B after warm-up, {after} B at the end"
    );
    // Nothing lost: every launched task ended, finished, or killed by the disabling above
    // (those still running then); none failed, failed over, or waits.
    let rest = &scheduler.rest;
    let launched = rest
        .metric("shardex_tasks_launched_total{type=\"ready\"}")
        .await;
    let finished = rest.metric("shardex_tasks_finished_total").await;
    let killed = rest.metric("shardex_tasks_killed_total").await;
    eprintln!(
        "SHARDEX-SOAK: {launched} tasks launched, {finished} finished, {killed} killed by the \
         final disable, 0 failed, 0 lost; {:.0} finished/s over the run",
        finished as f64 / seconds as f64
    );
    assert_eq!(rest.metric("shardex_tasks_failed_total").await, 0);
    assert_eq!(
        rest.metric("shardex_tasks_launched_total{type=\"failover\"}")
            .await,
        0
    );
    assert_eq!(finished + killed, launched, "every launched task ended");
    assert!(
        killed <= (jobs * SHARDS) as u64,
        "only the tasks running at the disable were killed"
    );
    assert_eq!(rest.get("/api/tasks/failover").await, serde_json::json!([]));
    assert_eq!(rest.get("/api/tasks/parked").await, serde_json::json!([]));
    drop(scheduler);
    drop(local);
}
