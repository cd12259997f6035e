//! The records every backend holds, in one place: which rows a commit writes ([`changes`]) and
//! how rows read back become state ([`decode`]). Values are JSON (an operator can read them),
//! pending run counts plain numbers.
//!
//! | table | key | value |
//! |---|---|---|
//! | `apps` | app name | [`StoredApp`] |
//! | `jobs` | job name | [`StoredJob`] (its `disabled` flag and `source` included) |
//! | `ready` | job name | pending run count |
//! | `failover` | `{job}@-@{item}` | [`FailoverEntry`] |
//! | `running` | task id | [`RunningTask`] (transient tasks included) |
//! | `parked` | `{job}@-@{item}` | [`ParkedItem`] |
//! | `history` | task id | [`TerminalRecord`] |
//! | `runs` | run id, zero-padded to 20 digits | [`RunHeader`] of a run not settled yet |
//! | `run_items` | `{run:020}@{item:010}` | [`ItemRun`]: one item of a run not settled yet, its tasks and their states |
//! | `run_history` | `{id:020}@{ended_at}@{fired_at}@{outcome}@{job}` ([`runs::archive_key`]) | [`Run`], settled, as deflate-compressed JSON; a load reads the keys only (the run index) |
//!
//! Besides the tables: the schema version and the framework id.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use crate::open_runs::{self, OpenRuns};
use crate::registry::{AppRecord, Source};
use crate::runs::{self, Head, ItemRun, Run, RunHeader, RunId};
use crate::state::{FailoverEntry, Loaded, ParkedItem, RunningTask, State, TerminalRecord};
use crate::stored::{StoredApp, StoredJob};
use crate::tracked::Tracked;

/// One table of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Apps,
    Jobs,
    Ready,
    Failover,
    Running,
    Parked,
    History,
    Runs,
    RunItems,
    RunHistory,
}

impl Table {
    pub const ALL: [Table; 10] = [
        Table::Apps,
        Table::Jobs,
        Table::Ready,
        Table::Failover,
        Table::Running,
        Table::Parked,
        Table::History,
        Table::Runs,
        Table::RunItems,
        Table::RunHistory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Apps => "apps",
            Table::Jobs => "jobs",
            Table::Ready => "ready",
            Table::Failover => "failover",
            Table::Running => "running",
            Table::Parked => "parked",
            Table::History => "history",
            Table::Runs => "runs",
            Table::RunItems => "run_items",
            Table::RunHistory => "run_history",
        }
    }
}

/// One row's new value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Json(Vec<u8>),
    Count(u64),
}

/// One row a commit writes: `None` deletes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub table: Table,
    pub key: String,
    pub value: Option<Value>,
}

/// Everything one commit writes.
#[derive(Debug, Default)]
pub struct Changes {
    /// `Some(new)` when the framework id changed (`Some(None)`: forgotten).
    pub framework_id: Option<Option<String>>,
    pub rows: Vec<Change>,
}

fn json<T: Serialize>(value: &T) -> Value {
    // Our own plain structs always serialise.
    Value::Json(serde_json::to_vec(value).unwrap_or_default())
}

/// The rows `state` changed since its last commit.
pub fn changes(state: &State) -> Changes {
    fn tracked<T: Serialize>(rows: &mut Vec<Change>, table: Table, map: &Tracked<T>) {
        for key in map.changed() {
            rows.push(Change {
                table,
                key: key.clone(),
                value: map.get(key).map(json),
            });
        }
    }
    let registry = state.registry();
    let mut rows = Vec::new();
    for name in registry.apps.changed() {
        rows.push(Change {
            table: Table::Apps,
            key: name.clone(),
            value: registry.apps.get(name).map(|r| json(&StoredApp::from(r))),
        });
    }
    for name in registry.changed_jobs() {
        let value = registry
            .jobs
            .get(&name)
            .map(|config| json(&StoredJob::new(config, registry.job_source(&name))));
        rows.push(Change {
            table: Table::Jobs,
            key: name,
            value,
        });
    }
    for job in state.ready().changed() {
        rows.push(Change {
            table: Table::Ready,
            key: job.clone(),
            value: state.ready().get(job).map(|n| Value::Count(u64::from(*n))),
        });
    }
    tracked(&mut rows, Table::Failover, state.failover());
    tracked(&mut rows, Table::Running, state.running());
    tracked(&mut rows, Table::Parked, state.parked());
    tracked(&mut rows, Table::History, state.history());
    for (id, item) in state.open_runs().changed() {
        let run = state.open_runs().get(*id);
        rows.push(match item {
            None => Change {
                table: Table::Runs,
                key: runs::run_key(*id),
                value: run.map(|r| json(&r.header())),
            },
            Some(item) => Change {
                table: Table::RunItems,
                key: open_runs::item_key(*id, *item),
                value: run
                    .and_then(|r| r.items.iter().find(|i| i.item == *item))
                    .map(json),
            },
        });
    }
    for (key, bytes) in state.archive_changes() {
        rows.push(Change {
            table: Table::RunHistory,
            key: key.clone(),
            value: bytes.clone().map(Value::Json),
        });
    }
    Changes {
        framework_id: state
            .framework_id_changed()
            .then(|| state.framework_id().map(str::to_owned)),
        rows,
    }
}

/// Rows as a backend read them.
#[derive(Debug, Default)]
pub struct Rows {
    pub framework_id: Option<String>,
    /// JSON rows of every table but `ready` and `run_history`.
    pub json: Vec<(Table, String, Vec<u8>)>,
    pub ready: Vec<(String, u64)>,
    /// What the run index keeps of each archived run ([`archived_entry`]).
    pub archived: Vec<(RunId, Head)>,
}

/// What an archived run's key gives the run index ([`runs::parse_archive_key`]): no value
/// is read.
pub fn archived_entry(store: &str, key: &str) -> Result<(RunId, Head), StoreError> {
    runs::parse_archive_key(key).ok_or_else(|| StoreError::Corrupt {
        store: store.to_owned(),
        table: Table::RunHistory.name(),
        key: key.to_owned(),
        reason: "the key is not {id}@{ended_at}@{fired_at}@{outcome}@{job}".into(),
    })
}

/// An archived run as read back.
pub fn archived_run(store: &str, key: &str, bytes: &[u8]) -> Result<Run, StoreError> {
    runs::decode_archived(bytes).map_err(|reason| StoreError::Corrupt {
        store: store.to_owned(),
        table: Table::RunHistory.name(),
        key: key.to_owned(),
        reason,
    })
}

/// The state `rows` hold; `store` names the store in errors.
pub fn decode(store: &str, rows: Rows) -> Result<State, StoreError> {
    fn parse<T: DeserializeOwned>(
        store: &str,
        table: Table,
        key: &str,
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            store: store.to_owned(),
            table: table.name(),
            key: key.to_owned(),
            reason: e.to_string(),
        })
    }
    let mut loaded = Loaded {
        framework_id: rows.framework_id,
        ..Loaded::default()
    };
    let (mut apps, mut jobs, mut sources) = (Vec::new(), Vec::new(), Vec::new());
    let (mut failover, mut running, mut parked, mut history) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut headers: Vec<RunHeader> = Vec::new();
    let mut items: std::collections::BTreeMap<RunId, Vec<ItemRun>> = Default::default();
    for (table, key, bytes) in rows.json {
        match table {
            Table::Apps => {
                let app: StoredApp = parse(store, table, &key, &bytes)?;
                apps.push((key, AppRecord::from(app)));
            }
            Table::Jobs => {
                let job: StoredJob = parse(store, table, &key, &bytes)?;
                let (config, source) = job.into_job().map_err(|reason| StoreError::Corrupt {
                    store: store.to_owned(),
                    table: table.name(),
                    key: key.clone(),
                    reason,
                })?;
                if source != Source::Rest {
                    sources.push((key.clone(), source));
                }
                jobs.push((key, config));
            }
            Table::Failover => failover.push((
                key.clone(),
                parse::<FailoverEntry>(store, table, &key, &bytes)?,
            )),
            Table::Running => running.push((
                key.clone(),
                parse::<RunningTask>(store, table, &key, &bytes)?,
            )),
            Table::Parked => parked.push((
                key.clone(),
                parse::<ParkedItem>(store, table, &key, &bytes)?,
            )),
            Table::History => history.push((
                key.clone(),
                parse::<TerminalRecord>(store, table, &key, &bytes)?,
            )),
            Table::Runs => headers.push(parse::<RunHeader>(store, table, &key, &bytes)?),
            Table::RunItems => {
                let (id, _) =
                    open_runs::parse_item_key(&key).ok_or_else(|| StoreError::Corrupt {
                        store: store.to_owned(),
                        table: table.name(),
                        key: key.clone(),
                        reason: "the key is not {run}@{item}".into(),
                    })?;
                let item = parse::<ItemRun>(store, table, &key, &bytes)?;
                items.entry(id).or_default().push(item);
            }
            Table::RunHistory => {
                let (id, head) = archived_entry(store, &key)?;
                loaded.run_index.insert(id, &head);
            }
            Table::Ready => {
                return Err(StoreError::Corrupt {
                    store: store.to_owned(),
                    table: table.name(),
                    key,
                    reason: "a count was read as JSON".into(),
                });
            }
        }
    }
    loaded.registry.apps = apps.into_iter().collect();
    loaded.registry.jobs = jobs.into_iter().collect();
    loaded.registry.job_sources = sources.into_iter().collect();
    loaded.ready = rows
        .ready
        .into_iter()
        .map(|(job, count)| (job, u32::try_from(count).unwrap_or(u32::MAX)))
        .collect();
    loaded.failover = failover.into_iter().collect();
    loaded.running = running.into_iter().collect();
    loaded.parked = parked.into_iter().collect();
    loaded.history = history.into_iter().collect();
    // Items whose header is missing belong to no run: a commit writes both or neither.
    loaded.runs = OpenRuns::loaded(headers.into_iter().map(|header| {
        let its = items.remove(&header.id).unwrap_or_default();
        Run::from_parts(header, its)
    }));
    for (id, head) in rows.archived {
        loaded.run_index.insert(id, &head);
    }
    Ok(State::from_loaded(loaded))
}
