//! The ZooKeeper store against a real ZooKeeper server: the same state as the redb file, in the
//! documented znode layout (`docs/ha.md`), moved there and back with `shardex-scheduler store
//! migrate`, every write fenced by the writer's epoch.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use shardex::scheduler::{
    Config, FailoverEntry, Run, RunOutcome, RunningTask, Scheduler, State, Store, StoreAddress,
    StoreError, TerminalRecord, Trigger, ZkOptions, ZkStore, ZkTarget,
};
use support::zk_proxy::{Cut, ZkProxy};
use support::zookeeper::ZooKeeper;
use zookeeper_client as zk;

const CONFIG: &str = r#"
[[apps]]
name = "batch"
executor_uri = "/opt/shardex/shardex-executor"

[[apps]]
name = "streams"
executor_uri = "/opt/shardex/shardex-executor"
isolation = "thread"

[[jobs]]
name = "crunch"
app = "batch"
cron = "0 0 * * * ?"
sharding_total_count = 3
sharding_item_parameters = "0=a,1=b,2=c"
plugin = "libhello_shards.so"

[[jobs]]
name = "tick"
app = "streams"
cron = "0/5 * * * * ?"
execution_type = "daemon"
sharding_total_count = 1
plugin = "libheartbeat.so"

[[jobs]]
name = "report"
app = "batch"
sharding_total_count = 2
kind = "script"
command_line = "/bin/echo report"
"#;

/// Running tasks in the seeded store, ids with characters a znode name cannot hold as they are.
const RUNNING: usize = 300;

fn running_task(id: &str, item: u32) -> RunningTask {
    serde_json::from_value(json!({
        "task_id": id, "job": "crunch", "item": item, "kind": "READY", "agent_id": "S0",
        "executor_id": "batch@-@S0", "state": "TASK_RUNNING", "launched_at": 5, "attempt": 0,
        "original_task_id": null, "suspect_since": null, "kill": null, "abandoned": false,
        "idle": null, "seen_uuids": ["0b2f"]
    }))
    .expect("a running task")
}

/// A redb store holding every kind of row: the config's apps and jobs (registered by a real
/// scheduler start), a framework id, a ready count, a failover entry, history and many running
/// tasks.
async fn seeded_redb(path: &Path) -> State {
    let config = Config::from_toml(CONFIG, "ha.toml").expect("config");
    drop(
        Scheduler::prepare(&config, path, "127.0.0.1:0")
            .await
            .expect("prepare"),
    );
    let mut store = Store::open(&StoreAddress::Redb(path.into()), &ZkOptions::default())
        .await
        .expect("open");
    let mut state = store.load().await.expect("load");
    state.set_framework_id(Some("fw-ha-1".into()));
    state.set_ready("report", 2, shardex::scheduler::Trigger::Rest, 1);
    state.put_failover(FailoverEntry {
        job: "crunch".into(),
        item: 2,
        original_task_id: "crunch@-@2@-@READY@-@S0@-@old".into(),
        attempts: 1,
        not_before: 0,
        recorded_at: 1,
        cause: "TASK_FAILED".into(),
    });
    for i in 0..RUNNING {
        let id = format!("crunch@-@{}@-@READY@-@S0@-@{i} odd/..%", i % 2);
        state.put_running(running_task(&id, (i % 2) as u32));
    }
    state.put_history(
        "crunch@-@1@-@READY@-@S0@-@done",
        TerminalRecord {
            job: "crunch".into(),
            item: 1,
            state: shardex::mesos::proto::v1::TaskState::TaskFinished,
            at: 3,
            run: None,
        },
    );
    // Settled runs live in the store only; a migration copies them too.
    for id in 100..103 {
        let mut run = Run::new(id, "crunch", "batch", Trigger::Cron, 1_000 + id as i64);
        run.head.launched_at = Some(1_001 + id as i64);
        run.head.ended_at = Some(2_000 + id as i64);
        run.head.outcome = Some(RunOutcome::Succeeded);
        state.put_archived(&run);
    }
    store.commit(&mut state).await.expect("commit");
    drop(store);
    let mut store = Store::open(&StoreAddress::Redb(path.into()), &ZkOptions::default())
        .await
        .expect("reopen");
    store.load().await.expect("load")
}

fn migrate(from: &str, to: &str) -> std::process::Output {
    Command::new(support::package_binary("shardex-scheduler"))
        .args(["store", "migrate", "--from", from, "--to", to])
        .output()
        .expect("run shardex-scheduler store migrate")
}

async fn raw_client(zookeeper: &ZooKeeper) -> zk::Client {
    zk::Client::connect(&zookeeper.connect_string())
        .await
        .expect("a raw ZooKeeper client")
}

#[tokio::test]
async fn a_store_migrates_to_zookeeper_and_back_unchanged() {
    let Some(zookeeper) = ZooKeeper::standalone("a_store_migrates_to_zookeeper_and_back_unchanged")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.redb");
    let state = seeded_redb(&original).await;
    let url = zookeeper.url("/shardex/prod");

    let out = migrate(&format!("redb:{}", original.display()), &url);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "migrated redb:{} to {url}: 2 apps, 3 jobs, 2 ready, 1 failover, {RUNNING} running, \
             0 parked, 1 history, 6 runs; framework id fw-ha-1\n",
            original.display()
        )
    );

    // The documented layout, read with a plain client.
    let raw = raw_client(&zookeeper).await;
    let data = |path: &str| {
        let raw = raw.clone();
        let path = path.to_owned();
        async move { String::from_utf8(raw.get_data(&path).await.expect(&path).0).expect("text") }
    };
    assert_eq!(data("/shardex/prod/meta/schema_version").await, "2");
    assert_eq!(data("/shardex/prod/meta/framework_id").await, "fw-ha-1");
    assert_eq!(data("/shardex/prod/state/ready/report").await, "2");
    let mut archived = raw
        .list_children("/shardex/prod/state/run_history")
        .await
        .unwrap();
    archived.sort();
    assert_eq!(
        archived,
        [
            "00000000000000000100@2100@1100@succeeded@crunch",
            "00000000000000000101@2101@1101@succeeded@crunch",
            "00000000000000000102@2102@1102@succeeded@crunch"
        ]
    );
    let mut apps = raw.list_children("/shardex/prod/state/apps").await.unwrap();
    apps.sort();
    assert_eq!(apps, ["batch", "streams"]);
    let running = raw
        .list_children("/shardex/prod/state/running")
        .await
        .unwrap();
    assert_eq!(running.len(), RUNNING);
    assert!(
        running.contains(&"crunch@-@0@-@READY@-@S0@-@0%20odd%2F..%25".to_owned()),
        "keys are percent-encoded: {:?}",
        &running[..3]
    );
    let failover: serde_json::Value =
        serde_json::from_str(&data("/shardex/prod/state/failover/crunch@-@2").await)
            .expect("JSON rows");
    assert_eq!(
        failover["original_task_id"],
        "crunch@-@2@-@READY@-@S0@-@old"
    );

    // Back into a new file: the same state.
    // The settled runs read back from ZooKeeper, as the REST API reads them.
    let zk_store = Store::open(
        &StoreAddress::ZooKeeper(url.parse().unwrap()),
        &ZkOptions::default(),
    )
    .await
    .unwrap();
    let keys: Vec<String> = (100..103)
        .map(|id| state.run_index().key(id).unwrap())
        .collect();
    let runs = zk_store.reader().runs(&keys).await.expect("read runs");
    assert_eq!(
        runs.iter().map(|r| r.head.id).collect::<Vec<_>>(),
        [100, 101, 102]
    );
    assert_eq!(runs[2].head.ended_at, Some(2_102));
    drop(zk_store);

    let copy = dir.path().join("copy.redb");
    let out = migrate(&url, &copy.display().to_string());
    assert!(out.status.success(), "{out:?}");
    let mut store = Store::open(&StoreAddress::Redb(copy), &ZkOptions::default())
        .await
        .unwrap();
    assert_eq!(store.load().await.unwrap(), state);

    // Never over a store that holds something.
    let out = migrate(&format!("redb:{}", original.display()), &url);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "shardex-scheduler: store migrate: store {url} is not empty (2 apps, 3 jobs, \
             {RUNNING} running); migrate only into a new store, or remove its contents first\n"
        )
    );
}

#[tokio::test]
async fn a_writer_whose_epoch_was_taken_can_never_write_again() {
    let Some(zookeeper) =
        ZooKeeper::standalone("a_writer_whose_epoch_was_taken_can_never_write_again")
    else {
        return;
    };
    let target: ZkTarget = zookeeper.url("/fenced").parse().unwrap();
    let open = || ZkStore::connect(target.clone(), ZkOptions::default());
    let mut first = open().await.expect("first store");
    let mut second = open().await.expect("second store");

    let mut state = first.load().await.unwrap();
    state.set_framework_id(Some("fw-1".into()));
    let error = first.commit(&state).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "store {target}: this scheduler holds no epoch (it does not lead), so it may not write"
        )
    );

    let epoch = first.take_epoch("first").await.unwrap();
    first.commit(&state).await.unwrap();
    state.committed();
    let taken = second.take_epoch("second").await.unwrap();
    assert_eq!(taken, epoch + 1);
    assert_eq!(
        second.current_epoch().await.unwrap(),
        (taken, "second".into())
    );

    state.set_framework_id(Some("fw-2".into()));
    state.put_running(running_task("late", 0));
    let error = first.commit(&state).await.unwrap_err();
    assert!(matches!(error, StoreError::Fenced { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "store {target}: fenced out: another scheduler became leader (epoch {epoch} is no \
             longer current); this one stops writing and acting"
        )
    );
    assert_eq!(first.epoch(), None, "a fenced store stops writing for good");
    // Nothing of the fenced commit landed: the multi failed as a whole.
    let seen = second.load().await.unwrap();
    assert_eq!(seen.framework_id(), Some("fw-1"));
    assert!(seen.running().is_empty());
}

#[tokio::test]
async fn a_step_larger_than_one_request_is_written_in_fenced_parts() {
    let Some(zookeeper) =
        ZooKeeper::standalone("a_step_larger_than_one_request_is_written_in_fenced_parts")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let original: PathBuf = dir.path().join("original.redb");
    let state = seeded_redb(&original).await;
    let target: ZkTarget = zookeeper.url("/small").parse().unwrap();
    let options = ZkOptions {
        max_request_bytes: 16 * 1024,
        ..ZkOptions::default()
    };
    let mut from = Store::open(&StoreAddress::Redb(original), &options)
        .await
        .unwrap();
    let mut to = Store::ZooKeeper(Box::new(
        ZkStore::connect(target.clone(), options.clone())
            .await
            .unwrap(),
    ));
    shardex::scheduler::migrate(&mut from, &mut to, "test")
        .await
        .unwrap();
    let mut reread = ZkStore::connect(target, options).await.unwrap();
    assert_eq!(reread.load().await.unwrap(), state);
}

/// A commit whose connection breaks, before the server saw its `multi` or after the server
/// applied it and before the answer came back, is written exactly once: once the session is
/// connected again (the same session, through the proxy), `meta/commit` says whether it was
/// applied, and only a commit that was not is sent again. Blindly sending the second kind again
/// would fail (its rows exist already); giving up on either would stop a leader. The commit
/// record is recreated at its (lowered) reset version, also with its answer lost.
#[tokio::test]
async fn a_commit_whose_answer_is_lost_is_written_exactly_once() {
    let Some(zookeeper) =
        ZooKeeper::standalone("a_commit_whose_answer_is_lost_is_written_exactly_once")
    else {
        return;
    };
    let proxy = ZkProxy::start(zookeeper.client_addr(0));
    let target: ZkTarget = format!("zk://{}/lost", proxy.addr()).parse().unwrap();
    let options = ZkOptions {
        commit_record_reset: 2,
        ..ZkOptions::default()
    };
    let mut store = ZkStore::connect(target, options).await.unwrap();
    let mut state = store.load().await.unwrap();
    let epoch = store.take_epoch("writer").await.unwrap();
    let raw = raw_client(&zookeeper).await;
    let record = || async { raw.get_data("/lost/meta/commit").await.unwrap() };
    assert_eq!(
        record().await.1.version,
        0,
        "made when the store was opened"
    );

    // (the cut, then meta/commit's version): 0 → 1 → 2, recreated at 2 → 0, then 1 → 2.
    let steps = [
        (None, 1),
        (Some(Cut::BeforeTheServer), 2),
        (Some(Cut::AfterTheAnswer), 0),
        (None, 1),
        (Some(Cut::AfterTheAnswer), 2),
    ];
    let mut cuts = 0;
    for (n, (cut, version)) in steps.into_iter().enumerate() {
        if let Some(cut) = cut {
            proxy.arm(cut);
            cuts += 1;
        }
        state.put_running(running_task(&format!("task {n}"), n as u32));
        store
            .commit(&state)
            .await
            .unwrap_or_else(|e| panic!("commit {n} ({cut:?}): {e}"));
        state.committed();
        assert_eq!(
            proxy.cuts(),
            cuts,
            "commit {n} broke its connection as armed"
        );
        let (token, stat) = record().await;
        assert_eq!(
            (String::from_utf8(token).unwrap(), stat.version),
            (format!("{epoch}:{}", n + 1), version),
            "meta/commit after commit {n}"
        );
    }
    assert_eq!(store.epoch(), Some(epoch), "still the writer");
    let mut reread = ZkStore::connect(
        zookeeper.url("/lost").parse().unwrap(),
        ZkOptions::default(),
    )
    .await
    .unwrap();
    let stored = reread.load().await.unwrap();
    assert_eq!(stored, state, "every commit's rows, each written once");
    assert_eq!(stored.running().len(), steps.len());
}
