//! Status updates applied, committed and acknowledged per second by one scheduler, on the redb
//! store and on the ZooKeeper store (a real standalone server on loopback), in the same run.
//!
//! The scheduler runs in this process with its real owner, driver and store, against the
//! scripted master of the scheduler tests (real loopback HTTP, protobuf, RecordIO). Each round
//! triggers `SHARDEX_BENCH_TASKS` shards (jobs of up to 1,000 items), lets one offer place them
//! all, then sends every task's `TASK_RUNNING` at once and every task's `TASK_FINISHED` at once.
//! Measured: from the first update sent to its batch's last ACKNOWLEDGE received; each update's
//! effect is committed to the store before its ACKNOWLEDGE leaves (the owner's rule), so this
//! is the end-to-end rate the store allows. Median of `SHARDEX_BENCH_ROUNDS` rounds.
//!
//! The measuring is `harness::scheduler::live` (shared with the suite, `benches/suite.rs`).
//!
//! Run: `cargo bench --bench store_throughput` (needs ZooKeeper as the HA tests do:
//! `ZOOKEEPER_HOME` or Debian's `zookeeper` package).

#[path = "../tests/fake_master/mod.rs"]
mod fake_master;
mod harness;
#[path = "../tests/support/mod.rs"]
mod support;

use harness::Samples;
use harness::scheduler::{live, zookeeper_store};
use shardex::scheduler::{RedbStore, Store};
use support::zookeeper::ZooKeeper;

#[global_allocator]
static ALLOCATOR: harness::alloc::Counting = harness::alloc::Counting;

#[tokio::main]
async fn main() {
    let tasks = support::env_number("SHARDEX_BENCH_TASKS", 2000);
    let rounds = support::env_number("SHARDEX_BENCH_ROUNDS", 5).max(1);
    let Some(zookeeper) = ZooKeeper::standalone("store_throughput") else {
        eprintln!("store_throughput: no ZooKeeper, nothing measured");
        return;
    };

    let dir = tempfile::tempdir().expect("a temp dir");
    let redb = Store::Redb(RedbStore::open(&dir.path().join("bench.redb")).expect("a redb store"));
    let redb_rates = live(redb, tasks, rounds, 0)
        .await
        .expect("the redb rounds")
        .updates_per_s;
    let zk = zookeeper_store(&zookeeper, "/bench")
        .await
        .expect("a ZooKeeper store");
    let zk_rates = live(zk, tasks, rounds, 0)
        .await
        .expect("the ZooKeeper rounds")
        .updates_per_s;

    let redb_rate = redb_rates.median();
    println!(
        "status updates applied, committed and acknowledged per second \
         ({tasks} tasks × RUNNING + FINISHED per round, {rounds} rounds, median)"
    );
    println!();
    println!("| store | updates/s (median) | min | max | vs redb |");
    println!("|---|---:|---:|---:|---:|");
    let rows: [(&str, &Samples); 2] = [
        ("redb (local file)", &redb_rates),
        ("ZooKeeper (standalone, loopback)", &zk_rates),
    ];
    for (name, rates) in rows {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.2}× |",
            rates.median(),
            rates.min(),
            rates.max(),
            rates.median() / redb_rate
        );
    }
}
