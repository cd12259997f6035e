//! The scheduler's store on a full disk: the scheduler must stop acting rather than act
//! without recording.
//!
//! The store lives on a small tmpfs mounted in a private mount namespace of the scheduler's
//! own (`unshare --mount`, root only: CI runs as root); the test fills that tmpfs through
//! `/proc/<pid>/root`, so nothing on the machine is mounted or filled but the scheduler's
//! view. Needs `cargo build --workspace` first.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use shardex::mesos::proto::v1::TaskState;
use shardex::mesos::proto::v1::scheduler::call;
use support::scheduler_rest::*;
use support::{SOON, TestCluster, eventually, eventually_blocking, package_binary};

const SHARDS: u32 = 3;

/// A private mount namespace with an 8 MiB tmpfs at `dir`, held open by a sleeping process
/// (killed on drop, taking the tmpfs with it). Only processes started in it see the tmpfs.
struct Namespace {
    holder: Child,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

impl Namespace {
    fn with_tmpfs(dir: &Path) -> Namespace {
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o size=8m shardex-store \"$0\" && exec sleep infinity")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("start unshare");
        let namespace = Namespace { holder };
        let mountinfo = format!("/proc/{}/mountinfo", namespace.holder.id());
        let wanted = format!(" {} ", dir.display());
        eventually_blocking("the tmpfs to be mounted", SOON, || {
            let text = std::fs::read_to_string(&mountinfo).unwrap_or_default();
            text.lines()
                .any(|l| l.contains(&wanted) && l.contains(" - tmpfs shardex-store "))
                .then_some(())
        });
        namespace
    }

    /// `path` as processes of the namespace see it.
    fn inside(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.holder.id()))
            .join(path.strip_prefix("/").unwrap())
    }
}

/// The scheduler started in `namespace` (`nsenter` execs it: same pid), logging into `log`.
struct Confined {
    child: Child,
    rest: Rest,
}

impl Drop for Confined {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_confined(namespace: &Namespace, args: &[String], log: &Path) -> Confined {
    let before = std::fs::read_to_string(log).unwrap_or_default().len();
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new("nsenter")
        .arg(format!("--mount=/proc/{}/ns/mnt", namespace.holder.id()))
        .arg(package_binary("shardex-scheduler"))
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start nsenter");
    let url = eventually_blocking("the scheduler's REST address", SOON, || {
        support::rest_url_in_log(log, before)
    });
    Confined {
        child,
        rest: Rest::new(url),
    }
}

/// Whether this machine lets the test make a mount namespace (root).
fn can_unshare() -> Result<(), String> {
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "unshare --mount failed (needs root): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The scheduler's arguments for `config`, with its store alone in `dir/store` (where the
/// namespace's tmpfs goes): the store directory, the store, the arguments.
fn store_on_its_own_dir(
    dir: &Path,
    config: &str,
    tc: &TestCluster,
) -> (PathBuf, PathBuf, Vec<String>) {
    let store_dir = dir.join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let store = store_dir.join("store.redb");
    let mut args = scheduler_args(dir, config, &tc.cluster.master_url());
    let at = args.iter().position(|a| a == "--store").unwrap() + 1;
    args[at] = store.display().to_string();
    (store_dir, store, args)
}

/// Fills the filesystem of `dir` to the last byte; returns the filler.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", filler.display()),
        }
    }
    filler
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_disk_the_scheduler_stops_before_acting_and_a_restart_loses_nothing() {
    const TEST: &str = "store_faults::on_a_full_disk";
    if let Err(why) = can_unshare() {
        support::skip(TEST, &why);
        return;
    }
    let tc = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    // The shards wait at a gate until the store has failed, so none finishes before.
    let gate_path = dir.path().join("gate");
    let mut gate = support::gate(&gate_path);
    let config = script_job_config(
        SHARDS,
        &format!(
            "/bin/sh -c 'read x < {}; echo $SHARDEX_SHARDING_ITEM >> {}'",
            gate_path.display(),
            out.display()
        ),
    );
    let (store_dir, store, args) = store_on_its_own_dir(dir.path(), &config, &tc);
    let log = dir.path().join("scheduler.log");

    let namespace = Namespace::with_tmpfs(&store_dir);
    let mut scheduler = start_confined(&namespace, &args, &log);
    assert_eq!(scheduler.rest.post("/api/jobs/work/trigger").await, 202);
    scheduler.rest.until_all_running(SHARDS as usize).await;
    // Every update so far acknowledged, so no ACKNOWLEDGE is still on its way.
    until_every_update_acknowledged(&tc.cluster).await;
    let acks_before = count_calls(&tc.cluster, call::Type::Acknowledge).await;

    // The disk fills up; the next change that needs a new page cannot be recorded.
    let filler = fill(&namespace.inside(&store_dir));
    let big = serde_json::json!({
        "name": "big", "app": "a", "cron": "0 0 0 1 1 ? 2099", "kind": "script",
        "sharding_total_count": 1, "command_line": "true",
        "job_parameter": "x".repeat(512 * 1024),
    });
    let (status, answer) = scheduler
        .rest
        .call(reqwest::Method::POST, "/api/jobs", Some(&big))
        .await;
    assert_eq!(
        status, 503,
        "a registration the store could not record: {answer}"
    );
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.starts_with(
            "nothing of this request took effect: the scheduler cannot write its store and is \
             stopping: store "
        ) && message.ends_with(
            "No space left on device (os error 28) (the store's file system must be writable \
             and have room: free space or move the store, then start the scheduler again; it \
             resumes from its last commit)"
        ),
        "{message}"
    );
    let exit = eventually_blocking("the scheduler to stop", SOON, || {
        scheduler.child.try_wait().unwrap()
    });
    assert_eq!(exit.code(), Some(1), "{exit}");
    let text = std::fs::read_to_string(&log).unwrap();
    let failure = text
        .lines()
        .find(|l| l.contains("cannot persist the scheduler state; stopping"))
        .unwrap_or_else(|| panic!("no store failure logged:\n{text}"));
    assert!(failure.contains("No space left on device"), "{failure}");
    assert!(failure.contains(&store.display().to_string()), "{failure}");

    // Stopped acting: the shards, let through now, finish on their own, and their updates wait
    // at the agent, unacknowledged, for a scheduler that can record them.
    gate.write_all("go\n".repeat(SHARDS as usize).as_bytes())
        .unwrap();
    eventually(
        "every shard's TASK_FINISHED held by the agent",
        SOON,
        || async {
            let pending = tc.cluster.pending_updates().await.unwrap();
            (pending
                .iter()
                .filter(|s| s.state == TaskState::TaskFinished as i32)
                .count()
                == SHARDS as usize)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        count_calls(&tc.cluster, call::Type::Acknowledge).await,
        acks_before
    );

    // Space again: the operator frees the disk and restarts the scheduler on the same store.
    std::fs::remove_file(filler).unwrap();
    drop(scheduler);
    let scheduler = start_confined(&namespace, &args, &log);
    scheduler
        .rest
        .until("/api/tasks/running", "nothing running", |v| {
            v == &serde_json::json!([])
        })
        .await;
    until_every_update_acknowledged(&tc.cluster).await;
    // Nothing the store did not record happened: no job `big`; each item ran once.
    let (status, _) = scheduler
        .rest
        .call(reqwest::Method::GET, "/api/jobs/big", None)
        .await;
    assert_eq!(status, 404);
    let per_item = runs_per_item(&launches(&tc.cluster).await, "work");
    assert_eq!(
        per_item,
        (0..SHARDS).map(|i| (i, vec!["READY".to_owned()])).collect()
    );
    let mut lines = lines_of(dir.path(), "out.log");
    lines.sort();
    assert_eq!(lines, vec!["0", "1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_on_a_read_only_disk_is_refused_at_start_by_name() {
    const TEST: &str = "store_faults::a_store_on_a_read_only_disk";
    if let Err(why) = can_unshare() {
        support::skip(TEST, &why);
        return;
    }
    let tc = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (store_dir, store, args) = store_on_its_own_dir(dir.path(), TUNING, &tc);
    let log = dir.path().join("scheduler.log");
    let namespace = Namespace::with_tmpfs(&store_dir);
    drop(start_confined(&namespace, &args, &log));

    // The disk goes read-only (as after a filesystem error) while no scheduler runs.
    let remount = Command::new("nsenter")
        .arg(format!("--mount=/proc/{}/ns/mnt", namespace.holder.id()))
        .args(["mount", "-o", "remount,ro"])
        .arg(&store_dir)
        .output()
        .unwrap();
    assert!(remount.status.success(), "{remount:?}");

    let before = std::fs::read_to_string(&log).unwrap().len();
    let output = Command::new("nsenter")
        .arg(format!("--mount=/proc/{}/ns/mnt", namespace.holder.id()))
        .arg(package_binary("shardex-scheduler"))
        .args(&args)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(std::fs::read_to_string(&log).unwrap().len() == before);
    assert!(
        stderr.contains(&format!(
            "shardex-scheduler: store {}: I/O error: Read-only file system (os error 30) (the \
             store's file system must be writable and have room: free space or move the store, \
             then start the scheduler again; it resumes from its last commit)",
            store.display()
        )),
        "{stderr}"
    );
}
