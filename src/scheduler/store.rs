//! The crash-safe store file (redb: ACID, copy-on-write B-trees, fsync on commit).
//!
//! Schema (version 1), one table per kind, values JSON so an operator can read them:
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `schema_version`, `framework_id` | text |
//! | `apps` | app name | [`AppRecord`] |
//! | `jobs` | job name | [`JobConfig`] (its `disabled` flag included) |
//! | `ready` | job name | pending run count (u64) |
//! | `failover` | `{job}@-@{item}` | [`FailoverEntry`] |
//! | `running` | task id | [`RunningTask`] (transient tasks included) |
//! | `parked` | `{job}@-@{item}` | [`ParkedItem`] |
//! | `history` | task id | [`TerminalRecord`] |
//!
//! [`Store::commit`] writes exactly the keys [`State`] marked dirty, in one transaction: a launch
//! (running entries plus queue removals) or an update's effect lands whole or not at all.
//! redb locks the file, so two schedulers can never share one store.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::config::JobConfig;
use super::registry::AppRecord;
use super::state::{FailoverEntry, Key, ParkedItem, RunningTask, State, TerminalRecord};

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const READY: TableDefinition<&str, u64> = TableDefinition::new("ready");
const FAILOVER: TableDefinition<&str, &[u8]> = TableDefinition::new("failover");
const RUNNING: TableDefinition<&str, &[u8]> = TableDefinition::new("running");
const PARKED: TableDefinition<&str, &[u8]> = TableDefinition::new("parked");
const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: &str = "1";

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
        "store {path} has schema version {found}; this scheduler reads version {SCHEMA_VERSION}"
    )]
    Schema { path: PathBuf, found: String },
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
        let db = redb::Database::create(path).map_err(|e| db_error(e.into()))?;
        let store = Store {
            db,
            path: path.to_owned(),
        };
        store.init().map_err(db_error)?;
        let found = store.meta("schema_version")?;
        if found.as_deref() != Some(SCHEMA_VERSION) {
            return Err(StoreError::Schema {
                path: path.to_owned(),
                found: found.unwrap_or_default(),
            });
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
                meta.insert("schema_version", SCHEMA_VERSION)?;
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
        let mut state = State {
            framework_id: self.meta("framework_id")?,
            ..State::default()
        };
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        for (name, record) in self.read_json::<AppRecord>(&txn, APPS, "apps")? {
            state.registry.apps.insert(name, record);
        }
        for (name, job) in self.read_json::<JobConfig>(&txn, JOBS, "jobs")? {
            state.registry.jobs.insert(name, job);
        }
        {
            let table = txn.open_table(READY).map_err(|e| self.db_error(e))?;
            for row in table.iter().map_err(|e| self.db_error(e))? {
                let (key, value) = row.map_err(|e| self.db_error(e))?;
                let count = u32::try_from(value.value()).unwrap_or(u32::MAX);
                state.ready.insert(key.value().to_owned(), count);
            }
        }
        state.failover = self
            .read_json::<FailoverEntry>(&txn, FAILOVER, "failover")?
            .into_iter()
            .collect();
        state.running = self
            .read_json::<RunningTask>(&txn, RUNNING, "running")?
            .into_iter()
            .collect();
        state.parked = self
            .read_json::<ParkedItem>(&txn, PARKED, "parked")?
            .into_iter()
            .collect();
        state.history = self
            .read_json::<TerminalRecord>(&txn, HISTORY, "history")?
            .into_iter()
            .collect();
        Ok(state)
    }

    /// Writes every dirty key of `state` in one transaction, then clears the dirty set.
    pub fn commit(&self, state: &mut State) -> Result<(), StoreError> {
        if state.dirty.is_empty() {
            return Ok(());
        }
        self.write(state).map_err(|e| self.db_error(e))?;
        state.dirty.clear();
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
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let mut apps = txn.open_table(APPS)?;
            let mut jobs = txn.open_table(JOBS)?;
            let mut ready = txn.open_table(READY)?;
            let mut failover = txn.open_table(FAILOVER)?;
            let mut running = txn.open_table(RUNNING)?;
            let mut parked = txn.open_table(PARKED)?;
            let mut history = txn.open_table(HISTORY)?;
            for key in &state.dirty {
                match key {
                    Key::FrameworkId => match &state.framework_id {
                        Some(id) => {
                            meta.insert("framework_id", id.as_str())?;
                        }
                        None => {
                            meta.remove("framework_id")?;
                        }
                    },
                    Key::App(k) => put(&mut apps, k, state.registry.apps.get(k))?,
                    Key::Job(k) => put(&mut jobs, k, state.registry.jobs.get(k))?,
                    Key::Ready(k) => match state.ready.get(k) {
                        Some(count) => {
                            ready.insert(k.as_str(), u64::from(*count))?;
                        }
                        None => {
                            ready.remove(k.as_str())?;
                        }
                    },
                    Key::Failover(k) => put(&mut failover, k, state.failover.get(k))?,
                    Key::Running(k) => put(&mut running, k, state.running.get(k))?,
                    Key::Parked(k) => put(&mut parked, k, state.parked.get(k))?,
                    Key::History(k) => put(&mut history, k, state.history.get(k))?,
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::config::tests_support::{app_record, job, running_task};

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
            state.registry.apps.insert("a".into(), app_record("a", 2));
            state.touch_app("a");
            state.registry.jobs.insert("j".into(), job("j", "a"));
            state.touch_job("j");
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
                    state: "TASK_FAILED".into(),
                    at: 3,
                },
            );
            store.commit(&mut state).unwrap();
            assert!(state.dirty.is_empty());
            state.remove_running("t2");
            state.set_ready("j", 0);
            store.commit(&mut state).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let state = store.load().unwrap();
        assert_eq!(state.framework_id.as_deref(), Some("fw-1"));
        assert_eq!(state.registry.apps["a"].revision, 2);
        assert_eq!(state.registry.jobs["j"], job("j", "a"));
        assert!(state.ready.is_empty());
        assert_eq!(state.failover["j@-@2"].attempts, 1);
        assert_eq!(state.running.keys().collect::<Vec<_>>(), vec!["t1"]);
        assert_eq!(state.history["t0"].state, "TASK_FAILED");
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let _first = Store::open(&path).unwrap();
        let error = Store::open(&path).unwrap_err();
        assert!(error.to_string().contains("store.redb"), "{error}");
    }
}
