//! The README's first command: `shardex-scheduler demo` runs the whole stack unattended, shows
//! each job's shards finishing and the killed shards running again, and exits 0.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn demo_runs_every_phase_and_exits_zero() {
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(support::package_binary("shardex-scheduler"))
        .arg("demo")
        .arg("--work-dir")
        .arg(work.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the demo");
    // The demo bounds itself (110 s); this only guards against a hang in the test.
    let limit = Duration::from_secs(150).saturating_sub(started.elapsed());
    let status =
        support::eventually_blocking("the demo to finish", limit, || child.try_wait().unwrap());
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the demo must finish within two minutes"
    );

    for expected in [
        "greeting: the cron fired; its 3 shards ran and finished",
        "heartbeat: daemon shards 0 and 1 keep running (TASK_RUNNING)",
        "killing its process group",
        "the scheduler failed over 2 shards",
        "crunch: item 0 running again as crunch@-@0@-@FAILOVER@-@",
        "crunch: item 1 running again as crunch@-@1@-@FAILOVER@-@",
        "crunch: 2/2 shards finished after failover, each exactly once",
        "where to look:",
        "demo complete",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Each shard's output line, as printed: three greeting lines of one run, two crunch lines
    // written by the failed-over tasks.
    let greeting: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains("    greeting "))
        .collect();
    assert_eq!(greeting.len(), 3, "{stdout}");
    for (item, line) in greeting.iter().enumerate() {
        assert!(line.contains(&format!("greeting {item}/3 ")), "{line}");
    }
    let crunch: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains("    crunch item "))
        .collect();
    assert_eq!(crunch.len(), 2, "{stdout}");
    assert!(crunch.iter().all(|line| line.contains("@-@FAILOVER@-@")));
    // The configuration it printed is what a user can run again.
    let config = std::fs::read_to_string(work.path().join("demo.toml")).unwrap();
    shardex::scheduler::Config::from_toml(&config, "demo.toml").expect("valid config");
}
