//! Run history retention at scale, on the redb store: 110,000 runs of 3 shards go through the
//! state's run bookkeeping (fire, launch, updates, settle, archive, prune) with commits of
//! 1,000 runs, `history.max_runs` = 100,000. The store must stop growing once the bound is
//! reached, a restart must load only the run index, and a page of runs must read fast.
//! Prints a table of the figures before asserting. `SHARDEX_HISTORY_RUNS` changes the count.

use std::time::Instant;

use serde_json::json;
use shardex::mesos::proto::v1::TaskState;
use shardex::scheduler::{State, StateEntry, Store, StoreAddress, TaskRun, Trigger, ZkOptions};

const MAX_RUNS: usize = 100_000;
const ITEMS: u32 = 3;
const JOBS: usize = 10;
const BATCH: u64 = 1_000;

fn task(id: &str, now: i64) -> TaskRun {
    serde_json::from_value(json!({
        "task_id": id, "kind": "READY", "attempt": 0, "agent_id": "S0-agent",
        "executor_id": "app@-@S0-agent", "agent_url": "http://127.0.0.1:5051",
        "launched_at": now,
        "states": [{"state": "TASK_STAGING", "at": now}],
    }))
    .expect("a task run")
}

fn entry(state: TaskState, at: i64, source: &str) -> StateEntry {
    StateEntry {
        state,
        at,
        source: Some(source.to_owned()),
        reason: None,
        message: None,
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The key run `id` had: every run of this test ends 6 ms after it fired, successfully.
fn state_key_of_pruned(_state: &State, id: u64) -> String {
    let fired = 1_700_000_000_000 + (id as i64 - 1) * 10;
    format!(
        "{id:020}@{}@{fired}@succeeded@job-{}",
        fired + 6,
        (id as usize - 1) % JOBS
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_holds_at_100_000_runs() {
    let total: u64 = std::env::var("SHARDEX_HISTORY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(110_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let address = StoreAddress::Redb(path.clone());
    let mut store = Store::open(&address, &ZkOptions::default())
        .await
        .expect("open");
    let mut state = State::default();
    let started = Instant::now();
    let mut sizes = Vec::new();
    for n in 0..total {
        let now = 1_700_000_000_000 + n as i64 * 10;
        let job = format!("job-{}", n as usize % JOBS);
        state.set_ready(&job, 1, Trigger::Cron, now);
        let run = state.take_ready_run(&job, now);
        for item in 0..ITEMS {
            let id =
                format!("{job}@-@{item}@-@READY@-@S0-agent@-@{n:08x}-0000-4000-8000-{item:012}");
            state.add_run_task(run, item, task(&id, now));
            let dir =
                format!("/var/lib/mesos/slaves/S0/frameworks/F/executors/e/runs/c/tasks/{id}");
            state.note_run_state(
                &id,
                entry(TaskState::TaskStarting, now + 1, "SOURCE_EXECUTOR"),
                None,
                false,
            );
            state.note_run_state(
                &id,
                entry(TaskState::TaskRunning, now + 2, "SOURCE_EXECUTOR"),
                Some(&dir),
                false,
            );
            state.note_run_state(
                &id,
                entry(TaskState::TaskFinished, now + 5, "SOURCE_EXECUTOR"),
                None,
                true,
            );
        }
        assert!(state.settle_run(run, now + 6), "run {run} settles");
        if (n + 1) % BATCH == 0 {
            state.prune_runs(0, MAX_RUNS);
            store.commit(&mut state).await.expect("commit");
            if (n + 1) % (total / 10).max(BATCH) == 0 || n + 1 == total {
                sizes.push((n + 1, std::fs::metadata(&path).unwrap().len()));
            }
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(state.run_index().len(), MAX_RUNS.min(total as usize));
    drop(store);

    // A restart reads only the index.
    let before = rss_kib();
    let load_started = Instant::now();
    let mut store = Store::open(&address, &ZkOptions::default())
        .await
        .expect("reopen");
    let loaded = store.load().await.expect("load");
    let load = load_started.elapsed();
    let index_kib = rss_kib().saturating_sub(before);
    assert_eq!(loaded.run_index(), state.run_index());
    assert!(loaded.open_runs().is_empty());

    // A page of a job's newest 20 runs, read from the store.
    let reader = store.reader();
    let newest: Vec<u64> = loaded
        .run_index()
        .ids()
        .rev()
        .step_by(JOBS)
        .take(20)
        .collect();
    let keys: Vec<String> = newest
        .iter()
        .map(|id| loaded.run_index().key(*id).unwrap())
        .collect();
    let mut reads = Vec::new();
    for _ in 0..50 {
        let at = Instant::now();
        let runs = reader.runs(&keys).await.expect("read");
        reads.push(at.elapsed());
        assert_eq!(runs.len(), 20);
        assert_eq!(runs[0].id, newest[0]);
        assert_eq!(runs[0].items.len(), ITEMS as usize);
    }
    reads.sort();
    let oldest = total.saturating_sub(MAX_RUNS as u64) + 1;
    assert_eq!(loaded.run_index().ids().next(), Some(oldest));
    if oldest > 1 {
        let pruned = state_key_of_pruned(&state, oldest - 1);
        assert!(
            reader.runs(&[pruned]).await.expect("read").is_empty(),
            "a pruned run is gone from the store"
        );
    }

    println!("| runs recorded | store file | ");
    println!("|---:|---:|");
    for (runs, bytes) in &sizes {
        println!("| {runs} | {:.1} MiB |", *bytes as f64 / 1_048_576.0);
    }
    println!(
        "\n{total} runs of {ITEMS} tasks recorded, archived and pruned in {:.1} s \
         ({:.0} runs/s, commits of {BATCH}); restart: index of {} runs loaded in {} ms \
         (+{} KiB RSS); a page of 20 runs read in {} µs median, {} µs max (50 reads)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        loaded.run_index().len(),
        load.as_millis(),
        index_kib,
        reads[reads.len() / 2].as_micros(),
        reads[reads.len() - 1].as_micros(),
    );

    // Bounded: once the bound is reached the file stops growing (redb reuses freed pages).
    if total as usize > MAX_RUNS {
        let at_bound = sizes
            .iter()
            .find(|(runs, _)| *runs as usize >= MAX_RUNS)
            .map(|(_, bytes)| *bytes)
            .unwrap();
        let last = sizes.last().unwrap().1;
        assert!(
            last <= at_bound + at_bound / 10,
            "the store grew past the bound: {at_bound} → {last} bytes"
        );
    }
}
