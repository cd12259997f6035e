//! Test helpers shared by the integration suites. Tests never run cargo themselves (a nested
//! build would wait on the lock of the build that runs them): they find what `cargo build
//! --workspace` and `cargo test` built next to their own executable.
//!
//! - [`cluster`]: a hand-rolled v1 scheduler, an embedded cluster tuned for tests, builders.
//! - [`demo_stack`]: `shardex-scheduler demo --serve` as a child process, its executors by pid.
//! - [`executor_stack`]: the real executor on the embedded cluster under a hand-rolled framework.
//! - [`plugins`]: example plugins in a sandbox, C test plugins, captured logs.
//! - [`pymesos`]: the pymesos peer: a Python for it, a virtualenv, a minimal executor.
//! - [`scheduler_process`]: the scheduler binary as a child process.
//! - [`real_mesos`]: a real Apache Mesos master and agent (`SHARDEX_MESOS_HOME`).
//! - [`payloads`]: task payloads and ExecutorInfos for the real `shardex-executor`.
//! - [`peer`]: a real or an embedded cluster, for scenarios run on both.
//! - [`executor_stream`]: an executor subscription spoken by hand over raw HTTP.
//! - [`scheduler_rest`]: the scheduler seen through its REST API, in-process or as a process.
//! - [`task_updates`]: a real agent's checkpointed status update streams (`task.updates`).
//! - [`tls`]: a test CA and certificates for `127.0.0.1`, made at test time.
//! - [`wait`]: [`eventually`], the one polling primitive, and the shared time bounds.
//! - [`zookeeper`]: real ZooKeeper servers, standalone or an ensemble.
//! - [`zk_proxy`]: a proxy that breaks a ZooKeeper connection around a `multi`.
//!
//! Everything waits for events with deadlines; nothing sleeps a fixed time.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod demo_stack;
pub mod executor_stack;
pub mod executor_stream;
pub mod payloads;
pub mod peer;
pub mod plugins;
pub mod pymesos;
pub mod real_mesos;
pub mod scheduler_process;
pub mod scheduler_rest;
pub mod task_updates;
pub mod tls;
pub mod wait;
pub mod zk_proxy;
pub mod zookeeper;

pub use cluster::*;
pub use payloads::*;
pub use plugins::*;
pub use scheduler_process::*;
pub use wait::*;

use std::io::Write;
use std::path::{Path, PathBuf};

/// Printed (stderr) by a test that skips; one line per skipped test.
pub const SKIP_MARKER: &str = "SHARDEX-SKIP:";

/// Prints the one skip line for a test that needs something the machine lacks, or panics when
/// `SHARDEX_REQUIRE_REAL=1` (CI: a skip there is a failure).
pub fn skip(test: &str, why: &str) {
    if std::env::var("SHARDEX_REQUIRE_REAL").is_ok_and(|v| v == "1") {
        panic!("{test}: SHARDEX_REQUIRE_REAL=1 but it would skip: {why}");
    }
    // Straight to the stderr handle: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "{SKIP_MARKER} {test}: {why}");
}

/// A plain HTTP client for the scheduler's REST API and other test probes. reqwest has no TLS
/// provider of its own in this build: every client comes from `shardex::mesos::tls`.
pub fn http() -> reqwest::Client {
    shardex::mesos::tls::http_client_builder()
        .expect("a TLS configuration")
        .build()
        .expect("an HTTP client")
}

/// The cargo target profile directory (`…/target/debug`), found from this test executable
/// (`…/target/debug/deps/<test>-<hash>`).
/// A benchmark knob: the number in environment variable `name`, else `default`.
#[allow(dead_code)]
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `pid` and every process under it (from `/proc/<pid>/task/*/children`), parents first.
#[allow(dead_code)]
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut stack = vec![pid];
    while let Some(pid) = stack.pop() {
        all.push(pid);
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            stack.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    all
}

/// A FIFO at `path`, opened read-write (which never blocks): a gate that shell jobs wait at
/// with `read x < path` (a builtin: waiting costs no process). Write one line per job to let
/// it through; keep the file open until every job is through, or a late one would wait
/// forever.
#[allow(dead_code)]
pub fn gate(path: &Path) -> std::fs::File {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open the FIFO")
}

/// A `kB` field of a `/proc/<pid>/…` status-like file, e.g. `VmHWM:` of `status`.
#[allow(dead_code)]
pub fn proc_kib(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps")
        .to_path_buf()
}

/// A binary of this package (`target/<profile>/<name>`).
pub fn package_binary(name: &str) -> PathBuf {
    target_dir().join(name)
}

/// `target/<profile>/examples/test_executor`.
pub fn test_executor_binary() -> PathBuf {
    example_binary("test_executor")
}

/// An example binary. A plain `cargo test` builds examples; with `cargo test --test <name>` it
/// does not, so run `cargo build --examples` first.
pub fn example_binary(name: &str) -> PathBuf {
    let path = target_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "{} does not exist; `cargo test` builds examples, run it through cargo",
        path.display()
    );
    path
}

/// Path of an example plugin library, e.g. `example_plugin("hello_shards")`.
pub fn example_plugin(lib_name: &str) -> PathBuf {
    let path = target_dir().join(format!("lib{lib_name}.so"));
    assert!(
        path.is_file(),
        "example plugin {} is missing: run `cargo build --workspace` before `cargo test --workspace`",
        path.display()
    );
    path
}
