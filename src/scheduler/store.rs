//! The crash-safe store file (redb: ACID, copy-on-write B-trees, fsync on commit).
//!
//! Schema (version 2, see [`super::stored`]; a version 1 store is upgraded when opened), one
//! table per kind, values JSON so an operator can read them:
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `schema_version`, `framework_id` | text |
//! | `apps` | app name | [`StoredApp`] |
//! | `jobs` | job name | [`StoredJob`] (its `disabled` flag and `source` included) |
//! | `ready` | job name | pending run count (u64) |
//! | `failover` | `{job}@-@{item}` | [`FailoverEntry`] |
//! | `running` | task id | [`RunningTask`] (transient tasks included) |
//! | `parked` | `{job}@-@{item}` | [`ParkedItem`] |
//! | `history` | task id | [`TerminalRecord`] |
//!
//! [`Store::commit`] writes exactly the keys [`State`] recorded as changed, in one transaction: a launch
//! (running entries plus queue removals) or an update's effect lands whole or not at all.
//! redb locks the file, so two schedulers can never share one store.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::registry::{AppRecord, Source};
use super::state::{FailoverEntry, Loaded, ParkedItem, RunningTask, State, TerminalRecord};
use super::stored::{StoredApp, StoredJob};
use super::tracked::Tracked;

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const READY: TableDefinition<&str, u64> = TableDefinition::new("ready");
const FAILOVER: TableDefinition<&str, &[u8]> = TableDefinition::new("failover");
const RUNNING: TableDefinition<&str, &[u8]> = TableDefinition::new("running");
const PARKED: TableDefinition<&str, &[u8]> = TableDefinition::new("parked");
const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");

pub use super::stored::SCHEMA_VERSION;

/// A store failure. The owner treats any of these as fatal: state it cannot persist must not
/// reach Mesos.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("store {path}: table '{table}' key '{key}' holds an unreadable value: {reason}")]
    Corrupt {
        path: PathBuf,
        table: &'static str,
        key: String,
        reason: String,
    },
    #[error(
        "store {path} has schema version {found}; this scheduler reads versions 1 to \
         {SCHEMA_VERSION} (a newer scheduler wrote it: run that one, or start from a new store)"
    )]
    Schema { path: PathBuf, found: String },
    #[error(
        "store {path} is in use by another shardex-scheduler{}: stop it first, or give this one \
         another store (--store)",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked { path: PathBuf, holder: Option<u32> },
}

pub struct Store {
    db: redb::Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
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

impl Drop for Store {
    fn drop(&mut self) {
        let file = pid_file(&self.path);
        if std::fs::read_to_string(&file)
            .is_ok_and(|pid| pid.trim() == std::process::id().to_string())
        {
            let _ = std::fs::remove_file(file);
        }
    }
}

impl Store {
    /// Opens the store, creating the file and its tables when new.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
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
        let store = Store {
            db,
            path: path.to_owned(),
        };
        store.init().map_err(db_error)?;
        let found = store.meta("schema_version")?.unwrap_or_default();
        match found.parse::<u32>() {
            Ok(SCHEMA_VERSION) => {}
            Ok(1) => store.upgrade_v1()?,
            _ => {
                return Err(StoreError::Schema {
                    path: path.to_owned(),
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
        }
        txn.commit()?;
        Ok(())
    }

    /// Rewrites a schema 1 store's apps and jobs as schema 2 records, in one transaction.
    fn upgrade_v1(&self) -> Result<(), StoreError> {
        use super::stored::{upgrade_app_v1, upgrade_job_v1, v1};
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
                    path: self.path.clone(),
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
        let mut loaded = Loaded {
            framework_id: self.meta("framework_id")?,
            ..Loaded::default()
        };
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        loaded.registry.apps = self
            .read_json::<StoredApp>(&txn, APPS, "apps")?
            .into_iter()
            .map(|(name, app)| (name, AppRecord::from(app)))
            .collect();
        let mut jobs = Vec::new();
        let mut sources = Vec::new();
        for (name, job) in self.read_json::<StoredJob>(&txn, JOBS, "jobs")? {
            let (config, source) = job.into_job().map_err(|reason| StoreError::Corrupt {
                path: self.path.clone(),
                table: "jobs",
                key: name.clone(),
                reason,
            })?;
            if source != Source::Rest {
                sources.push((name.clone(), source));
            }
            jobs.push((name, config));
        }
        loaded.registry.jobs = jobs.into_iter().collect();
        loaded.registry.job_sources = sources.into_iter().collect();
        {
            let table = txn.open_table(READY).map_err(|e| self.db_error(e))?;
            let mut ready = Vec::new();
            for row in table.iter().map_err(|e| self.db_error(e))? {
                let (key, value) = row.map_err(|e| self.db_error(e))?;
                let count = u32::try_from(value.value()).unwrap_or(u32::MAX);
                ready.push((key.value().to_owned(), count));
            }
            loaded.ready = ready.into_iter().collect();
        }
        loaded.failover = self
            .read_json::<FailoverEntry>(&txn, FAILOVER, "failover")?
            .into_iter()
            .collect();
        loaded.running = self
            .read_json::<RunningTask>(&txn, RUNNING, "running")?
            .into_iter()
            .collect();
        loaded.parked = self
            .read_json::<ParkedItem>(&txn, PARKED, "parked")?
            .into_iter()
            .collect();
        loaded.history = self
            .read_json::<TerminalRecord>(&txn, HISTORY, "history")?
            .into_iter()
            .collect();
        Ok(State::from_loaded(loaded))
    }

    /// Writes everything `state` changed since its last commit, in one transaction, then marks
    /// it committed.
    pub fn commit(&self, state: &mut State) -> Result<(), StoreError> {
        if !state.has_changes() {
            return Ok(());
        }
        self.write(state).map_err(|e| self.db_error(e))?;
        state.committed();
        Ok(())
    }

    fn write(&self, state: &State) -> Result<(), redb::Error> {
        fn put<T: Serialize>(
            table: &mut redb::Table<&str, &[u8]>,
            key: &str,
            value: Option<&T>,
        ) -> Result<(), redb::Error> {
            match value {
                Some(value) => {
                    // Our own plain structs always serialise.
                    let bytes = serde_json::to_vec(value).unwrap_or_default();
                    table.insert(key, bytes.as_slice())?;
                }
                None => {
                    table.remove(key)?;
                }
            }
            Ok(())
        }
        /// Writes the changed keys of one tracked map.
        fn put_changed<T: Serialize>(
            table: &mut redb::Table<&str, &[u8]>,
            map: &Tracked<T>,
        ) -> Result<(), redb::Error> {
            for key in map.changed() {
                put(table, key, map.get(key))?;
            }
            Ok(())
        }
        let registry = state.registry();
        let txn = self.db.begin_write()?;
        {
            if state.framework_id_changed() {
                let mut meta = txn.open_table(META)?;
                match state.framework_id() {
                    Some(id) => {
                        meta.insert("framework_id", id)?;
                    }
                    None => {
                        meta.remove("framework_id")?;
                    }
                }
            }
            let mut apps = txn.open_table(APPS)?;
            for name in registry.apps.changed() {
                let record = registry.apps.get(name).map(StoredApp::from);
                put(&mut apps, name, record.as_ref())?;
            }
            let mut jobs = txn.open_table(JOBS)?;
            for name in registry.changed_jobs() {
                let record = registry
                    .jobs
                    .get(&name)
                    .map(|config| StoredJob::new(config, registry.job_source(&name)));
                put(&mut jobs, &name, record.as_ref())?;
            }
            let mut ready = txn.open_table(READY)?;
            for job in state.ready().changed() {
                match state.ready().get(job) {
                    Some(count) => {
                        ready.insert(job.as_str(), u64::from(*count))?;
                    }
                    None => {
                        ready.remove(job.as_str())?;
                    }
                }
            }
            put_changed(&mut txn.open_table(FAILOVER)?, state.failover())?;
            put_changed(&mut txn.open_table(RUNNING)?, state.running())?;
            put_changed(&mut txn.open_table(PARKED)?, state.parked())?;
            put_changed(&mut txn.open_table(HISTORY)?, state.history())?;
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests_support::{app_record, job, running_task};

    fn task(id: &str) -> RunningTask {
        RunningTask {
            executor_id: "a@-@S0".into(),
            work_dir: None,
            launched_at: 5,
            ..running_task(id, "j", 1)
        }
    }

    #[test]
    fn everything_survives_a_reopen_and_deletes_stick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/store.redb");
        {
            let store = Store::open(&path).unwrap();
            let mut state = store.load().unwrap();
            assert_eq!(state, State::default());
            state.set_framework_id(Some("fw-1".into()));
            state.registry_mut().apps.insert("a", app_record("a", 2));
            state.registry_mut().jobs.insert("j", job("j", "a"));
            state.set_ready("j", 3);
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
                },
            );
            store.commit(&mut state).unwrap();
            assert!(!state.has_changes());
            state.remove_running("t2");
            state.set_ready("j", 0);
            store.commit(&mut state).unwrap();
        }
        let store = Store::open(&path).unwrap();
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
        let first = Store::open(&path).unwrap();
        let error = Store::open(&path).unwrap_err();
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
        Store::open(&path).unwrap();
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
        let store = Store::open(&path).unwrap();
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
        let store = Store::open(&path).unwrap();
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
        let error = Store::open(&path).unwrap_err();
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
