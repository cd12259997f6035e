//! The local store file (redb: ACID, copy-on-write B-trees, fsync on commit), one table per
//! [`Table`] plus `meta` (`schema_version`, `framework_id`). Schema version 2 (a version 1 file
//! is upgraded when opened). redb locks the file, so two schedulers can never share one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;

use super::StoreError;
use super::records::{self, Rows, Table, Value};
use crate::state::State;

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const READY: TableDefinition<&str, u64> = TableDefinition::new("ready");
const FAILOVER: TableDefinition<&str, &[u8]> = TableDefinition::new("failover");
const RUNNING: TableDefinition<&str, &[u8]> = TableDefinition::new("running");
const PARKED: TableDefinition<&str, &[u8]> = TableDefinition::new("parked");
const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");
const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
const RUN_ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("run_items");
const RUN_HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("run_history");

/// The redb table holding `table`'s JSON rows (`ready` has a table of its own type).
fn json_table(table: Table) -> Option<TableDefinition<'static, &'static str, &'static [u8]>> {
    match table {
        Table::Apps => Some(APPS),
        Table::Jobs => Some(JOBS),
        Table::Failover => Some(FAILOVER),
        Table::Running => Some(RUNNING),
        Table::Parked => Some(PARKED),
        Table::History => Some(HISTORY),
        Table::Runs => Some(RUNS),
        Table::RunItems => Some(RUN_ITEMS),
        Table::RunHistory => Some(RUN_HISTORY),
        Table::Ready => None,
    }
}

use super::SCHEMA_VERSION;

pub struct RedbStore {
    /// Shared with the [`RedbReader`]s that read the run history beside the owner.
    db: Arc<redb::Database>,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

/// `<store>.pid`: the pid of the scheduler holding the store.
fn pid_file(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pid");
    PathBuf::from(name)
}

/// The pid in the store's pid file, when that process still exists.
fn holder_pid(path: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(path))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        let file = pid_file(&self.path);
        if std::fs::read_to_string(&file)
            .is_ok_and(|pid| pid.trim() == std::process::id().to_string())
        {
            let _ = std::fs::remove_file(file);
        }
    }
}

impl RedbStore {
    /// Opens the store, creating the file and its tables when new.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db_error = |source: redb::Error| StoreError::Db {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| db_error(redb::Error::Io(e)))?;
        }
        let db = match redb::Database::create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::Locked {
                    path: path.to_owned(),
                    holder: holder_pid(path),
                });
            }
            Err(e) => return Err(db_error(e.into())),
        };
        // Says who holds the lock, for the error above in another process.
        let _ = std::fs::write(pid_file(path), std::process::id().to_string());
        let store = RedbStore {
            db: Arc::new(db),
            path: path.to_owned(),
        };
        store.init().map_err(db_error)?;
        let found = store.meta("schema_version")?.unwrap_or_default();
        match found.parse::<u32>() {
            Ok(SCHEMA_VERSION) => {}
            Ok(1) => store.upgrade_v1()?,
            _ => {
                return Err(StoreError::Schema {
                    store: path.display().to_string(),
                    found,
                });
            }
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init(&self) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            if meta.get("schema_version")?.is_none() {
                meta.insert("schema_version", SCHEMA_VERSION.to_string().as_str())?;
            }
            txn.open_table(APPS)?;
            txn.open_table(JOBS)?;
            txn.open_table(READY)?;
            txn.open_table(FAILOVER)?;
            txn.open_table(RUNNING)?;
            txn.open_table(PARKED)?;
            txn.open_table(HISTORY)?;
            txn.open_table(RUNS)?;
            txn.open_table(RUN_ITEMS)?;
            txn.open_table(RUN_HISTORY)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Rewrites a schema 1 store's apps and jobs as schema 2 records, in one transaction.
    fn upgrade_v1(&self) -> Result<(), StoreError> {
        use crate::stored::{upgrade_app_v1, upgrade_job_v1, v1};
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        let apps = self.read_json::<v1::AppRecord>(&txn, APPS, "apps")?;
        let jobs = self.read_json::<v1::Job>(&txn, JOBS, "jobs")?;
        drop(txn);
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            {
                let mut table = txn.open_table(APPS)?;
                for (name, app) in apps {
                    let bytes = serde_json::to_vec(&upgrade_app_v1(app)).unwrap_or_default();
                    table.insert(name.as_str(), bytes.as_slice())?;
                }
                let mut table = txn.open_table(JOBS)?;
                for (name, job) in jobs {
                    let bytes = serde_json::to_vec(&upgrade_job_v1(job)).unwrap_or_default();
                    table.insert(name.as_str(), bytes.as_slice())?;
                }
                let mut meta = txn.open_table(META)?;
                meta.insert("schema_version", SCHEMA_VERSION.to_string().as_str())?;
            }
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| self.db_error(e))?;
        tracing::info!(store = %self.path.display(), "store upgraded from schema 1 to {SCHEMA_VERSION}");
        Ok(())
    }

    fn db_error(&self, source: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source: source.into(),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        let table = txn.open_table(META).map_err(|e| self.db_error(e))?;
        let value = table.get(key).map_err(|e| self.db_error(e))?;
        Ok(value.map(|v| v.value().to_owned()))
    }

    fn read_json<T: DeserializeOwned>(
        &self,
        txn: &redb::ReadTransaction,
        def: TableDefinition<&str, &[u8]>,
        name: &'static str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let table = txn.open_table(def).map_err(|e| self.db_error(e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.db_error(e))? {
            let (key, value) = row.map_err(|e| self.db_error(e))?;
            let key = key.value().to_owned();
            let parsed =
                serde_json::from_slice(value.value()).map_err(|e| StoreError::Corrupt {
                    store: self.path.display().to_string(),
                    table: name,
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
            out.push((key, parsed));
        }
        Ok(out)
    }

    /// Reads everything into memory.
    pub fn load(&self) -> Result<State, StoreError> {
        let mut rows = Rows {
            framework_id: self.meta("framework_id")?,
            ..Rows::default()
        };
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        for table in Table::ALL {
            let Some(def) = json_table(table) else {
                continue;
            };
            let opened = txn.open_table(def).map_err(|e| self.db_error(e))?;
            if table == Table::RunHistory {
                // Archived runs stay on disk: their keys hold what the run index needs.
                let store = self.path.display().to_string();
                for row in opened.iter().map_err(|e| self.db_error(e))? {
                    let (key, _) = row.map_err(|e| self.db_error(e))?;
                    rows.archived
                        .push(records::archived_entry(&store, key.value())?);
                }
                continue;
            }
            for row in opened.iter().map_err(|e| self.db_error(e))? {
                let (key, value) = row.map_err(|e| self.db_error(e))?;
                rows.json
                    .push((table, key.value().to_owned(), value.value().to_vec()));
            }
        }
        let ready = txn.open_table(READY).map_err(|e| self.db_error(e))?;
        for row in ready.iter().map_err(|e| self.db_error(e))? {
            let (key, value) = row.map_err(|e| self.db_error(e))?;
            rows.ready.push((key.value().to_owned(), value.value()));
        }
        records::decode(&self.path.display().to_string(), rows)
    }

    /// A reader of the run history that works beside the owner (redb readers never block the
    /// writer).
    pub fn reader(&self) -> RedbReader {
        RedbReader {
            db: self.db.clone(),
            path: self.path.clone(),
        }
    }

    /// Writes everything `state` changed since its last commit, in one transaction.
    pub fn commit(&self, state: &State) -> Result<(), StoreError> {
        self.write(state).map_err(|e| self.db_error(e))
    }

    fn write(&self, state: &State) -> Result<(), redb::Error> {
        let changes = records::changes(state);
        let txn = self.db.begin_write()?;
        {
            if let Some(framework_id) = &changes.framework_id {
                let mut meta = txn.open_table(META)?;
                match framework_id {
                    Some(id) => {
                        meta.insert("framework_id", id.as_str())?;
                    }
                    None => {
                        meta.remove("framework_id")?;
                    }
                }
            }
            for change in &changes.rows {
                let key = change.key.as_str();
                match (json_table(change.table), &change.value) {
                    (Some(def), Some(Value::Json(bytes))) => {
                        txn.open_table(def)?.insert(key, bytes.as_slice())?;
                    }
                    (Some(def), None) => {
                        txn.open_table(def)?.remove(key)?;
                    }
                    (None, Some(Value::Count(count))) => {
                        txn.open_table(READY)?.insert(key, *count)?;
                    }
                    (None, None) => {
                        txn.open_table(READY)?.remove(key)?;
                    }
                    // `changes` makes counts for `ready` only and JSON for the rest.
                    (Some(_), Some(Value::Count(_))) | (None, Some(Value::Json(_))) => {}
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// Reads archived runs from a store file.
#[derive(Clone)]
pub struct RedbReader {
    db: Arc<redb::Database>,
    path: PathBuf,
}

impl std::fmt::Debug for RedbReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedbReader({})", self.path.display())
    }
}

impl RedbReader {
    /// The archived runs under `keys`, in the order asked; keys not stored are left out.
    pub fn runs(&self, keys: &[String]) -> Result<Vec<crate::runs::Run>, StoreError> {
        let db_error = |source: redb::Error| StoreError::Db {
            path: self.path.clone(),
            source,
        };
        let txn = self.db.begin_read().map_err(|e| db_error(e.into()))?;
        let table = txn
            .open_table(RUN_HISTORY)
            .map_err(|e| db_error(e.into()))?;
        let store = self.path.display().to_string();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(value) = table.get(key.as_str()).map_err(|e| db_error(e.into()))? {
                out.push(records::archived_run(&store, key, value.value())?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests_support::{app_record, job, running_task};
    use crate::registry::Source;
    use crate::state::{FailoverEntry, RunningTask, TerminalRecord};

    fn task(id: &str) -> RunningTask {
        RunningTask {
            executor_id: "a@-@S0".into(),
            work_dir: None,
            launched_at: 5,
            ..running_task(id, "j", 1)
        }
    }

    #[test]
    fn open_runs_survive_a_reopen_item_by_item_and_settle_into_the_archive() {
        use crate::runs::{StateEntry, TaskRun, Trigger};
        use shardex_mesos::proto::v1::TaskState;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let task = |id: &str| TaskRun {
            task_id: id.into(),
            kind: crate::ids::ExecutionKind::Ready,
            attempt: 0,
            agent_id: "S0".into(),
            executor_id: "e".into(),
            agent_url: None,
            work_dir: None,
            launched_at: 1,
            ended_at: None,
            kill: None,
            states: Vec::new(),
        };
        let finished = |at| StateEntry {
            state: TaskState::TaskFinished,
            at,
            source: None,
            reason: None,
            message: None,
        };
        let run = {
            let store = RedbStore::open(&path).unwrap();
            let mut state = State::default();
            state.set_ready("j", 1, Trigger::Cron, 0);
            let run = state.take_ready_run("j", 1);
            state.add_run_task(run, 0, task("t0"));
            state.add_run_task(run, 1, task("t1"));
            store.commit(&state).unwrap();
            state.committed();
            state.note_run_state("t1", finished(2), None, true);
            let changes = records::changes(&state);
            assert_eq!(
                changes
                    .rows
                    .iter()
                    .map(|c| (c.table, c.key.as_str()))
                    .collect::<Vec<_>>(),
                [(Table::RunItems, "00000000000000000001@0000000001")],
                "an update rewrites its item only"
            );
            store.commit(&state).unwrap();
            run
        };
        let store = RedbStore::open(&path).unwrap();
        let mut state = store.load().unwrap();
        let open = state.open_run(run).unwrap();
        assert_eq!(open.items.len(), 2);
        assert_eq!(open.items[1].tasks[0].ended_at, Some(2));
        assert_eq!(state.run_of_task("t0"), Some(run));
        state.note_run_state("t0", finished(3), None, true);
        assert!(state.settle_run(run, 4));
        store.commit(&state).unwrap();
        state.committed();
        drop(store);
        let reloaded = RedbStore::open(&path).unwrap().load().unwrap();
        assert!(reloaded.open_runs().is_empty(), "header and items deleted");
        assert_eq!(reloaded.run_index(), state.run_index());
        assert_eq!(reloaded.run_index().len(), 1);
    }

    #[test]
    fn everything_survives_a_reopen_and_deletes_stick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/store.redb");
        {
            let store = RedbStore::open(&path).unwrap();
            let mut state = store.load().unwrap();
            assert_eq!(state, State::default());
            state.set_framework_id(Some("fw-1".into()));
            state.registry_mut().apps.insert("a", app_record("a", 2));
            state.registry_mut().jobs.insert("j", job("j", "a"));
            state.set_ready("j", 3, crate::runs::Trigger::Rest, 0);
            state.put_failover(FailoverEntry {
                job: "j".into(),
                item: 2,
                original_task_id: "t0".into(),
                attempts: 1,
                not_before: 0,
                recorded_at: 1,
                cause: "TASK_FAILED".into(),
            });
            state.put_running(task("t1"));
            state.put_running(task("t2"));
            state.put_history(
                "t0",
                TerminalRecord {
                    job: "j".into(),
                    item: 2,
                    state: shardex_mesos::proto::v1::TaskState::TaskFailed,
                    at: 3,
                    run: None,
                },
            );
            store.commit(&state).unwrap();
            state.committed();
            assert!(!state.has_changes());
            state.remove_running("t2");
            state.set_ready("j", 0, crate::runs::Trigger::Rest, 0);
            store.commit(&state).unwrap();
            state.committed();
        }
        let store = RedbStore::open(&path).unwrap();
        let state = store.load().unwrap();
        assert_eq!(state.framework_id(), Some("fw-1"));
        assert_eq!(state.registry().apps["a"].revision, 2);
        assert_eq!(state.registry().jobs["j"], job("j", "a"));
        assert!(state.ready().is_empty());
        assert_eq!(state.failover()["j@-@2"].attempts, 1);
        assert_eq!(state.running().keys().collect::<Vec<_>>(), vec!["t1"]);
        assert_eq!(
            state.history()["t0"].state,
            shardex_mesos::proto::v1::TaskState::TaskFailed
        );
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let first = RedbStore::open(&path).unwrap();
        let error = RedbStore::open(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "store {} is in use by another shardex-scheduler (pid {}): stop it first, or \
                 give this one another store (--store)",
                path.display(),
                std::process::id()
            )
        );
        drop(first);
        assert!(
            !dir.path().join("store.redb.pid").exists(),
            "the pid file goes with the store"
        );
        RedbStore::open(&path).unwrap();
    }

    #[test]
    fn a_schema_1_store_is_upgraded_and_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.redb");
        // Exactly what version 1 wrote.
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                meta.insert("schema_version", "1").unwrap();
                meta.insert("framework_id", "fw-1").unwrap();
                let mut apps = txn.open_table(APPS).unwrap();
                apps.insert(
                    "a",
                    br#"{"config":{"name":"a","executor_uri":"/opt/shardex-executor","executor_command":null,"uris":["/opt/libhello_shards.so",{"value":"http://repo/x.tgz","extract":true,"executable":null,"cache":null,"output_file":null}],"cpus":0.1,"mem":32.0,"environment":{"K":"V"},"disabled":true},"revision":2,"executor_fingerprint":"f00"}"#.as_slice(),
                )
                .unwrap();
                let mut jobs = txn.open_table(JOBS).unwrap();
                jobs.insert(
                    "j",
                    br#"{"name":"j","app":"a","cron":"0/5 * * * * ?","sharding_total_count":3,"sharding_item_parameters":"0=x","job_parameter":"p","failover":true,"misfire":false,"execution_type":"daemon","kind":"script","streaming":false,"plugin":null,"command_line":"run.sh","cpus":0.5,"mem":64.0,"error_policy":"log","properties":{"k":"v"},"description":"d","disabled":false}"#.as_slice(),
                )
                .unwrap();
                let mut running = txn.open_table(RUNNING).unwrap();
                running
                    .insert(
                        "t1",
                        br#"{"task_id":"t1","job":"j","item":1,"kind":"READY","agent_id":"S0","executor_id":"a@-@S0","state":"TASK_RUNNING","launched_at":5,"attempt":0,"original_task_id":null,"suspect_since":null,"kill":null,"abandoned":false,"idle":true,"seen_uuids":[]}"#.as_slice(),
                    )
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let state = store.load().unwrap();
        assert_eq!(state.framework_id(), Some("fw-1"));
        let app = &state.registry().apps["a"];
        assert_eq!(
            (app.revision, app.executor_fingerprint.as_str()),
            (2, "f00")
        );
        assert!(app.config.disabled);
        assert_eq!(app.config.environment["K"], "V");
        assert_eq!(app.config.uris.len(), 2);
        assert_eq!(app.source, Source::Rest);
        let job = &state.registry().jobs["j"];
        assert_eq!(job.cron.as_deref(), Some("0/5 * * * * ?"));
        assert!(job.is_daemon());
        assert_eq!(job.kind, crate::config::JobKindConfig::Script);
        assert_eq!(job.error_policy, shardex_common::payload::ErrorPolicy::Log);
        assert_eq!((job.retries, job.timeout), (0, None));
        assert_eq!(job.properties["k"], "v");
        assert_eq!(state.running()["t1"].started_at, None);
        assert_eq!(
            state.running()["t1"].state,
            shardex_mesos::proto::v1::TaskState::TaskRunning
        );
        drop(store);
        // Upgraded on disk: it opens as version 2 and reads the same.
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.meta("schema_version").unwrap().as_deref(), Some("2"));
        assert_eq!(store.load().unwrap(), state);
    }

    #[test]
    fn a_store_from_a_newer_scheduler_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v9.redb");
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema_version", "9")
                .unwrap();
            txn.commit().unwrap();
        }
        let error = RedbStore::open(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "store {} has schema version 9; this scheduler reads versions 1 to 2 (a newer \
                 scheduler wrote it: run that one, or start from a new store)",
                path.display()
            )
        );
    }
}
