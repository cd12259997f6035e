//! Where the scheduler's state lives between runs: one [`Store`], two backends.
//!
//! - [`RedbStore`] (`redb.rs`): one local file, crash-safe, locked to one scheduler. The default,
//!   and what `--local`, the demo and small installs use.
//! - [`ZkStore`] (`zookeeper.rs`): ZooKeeper, shared by several schedulers of which one leads;
//!   every write is fenced by the leader's epoch (see `docs/ha.md`).
//!
//! Both hold the same records (`records.rs`: which keys a commit writes, and how a loaded row
//! becomes state), so the engine cannot tell them apart. [`Store::commit`] writes exactly what
//! the state recorded as changed, as one atomic unit, or fails; the owner treats a failure as
//! fatal, because state it cannot persist must not reach Mesos.

mod records;
mod redb;
mod zookeeper;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use self::redb::{RedbReader, RedbStore};
pub use self::zookeeper::{
    ELECTION_NODE, EPOCH_NODE, FRAMEWORK_NODE, SCHEMA_NODE, ZkOptions, ZkReader, ZkStore, ZkTarget,
    ZkTargetError, connect_session,
};
pub(crate) use self::zookeeper::{answer_lost, until_answered};
use super::state::State;
pub use super::stored::SCHEMA_VERSION;

/// The names of the tables every backend holds, in order.
pub fn table_names() -> [&'static str; 10] {
    records::Table::ALL.map(records::Table::name)
}

/// What to do about a store file that cannot be written or read.
fn io_hint(error: &::redb::Error) -> &'static str {
    match error {
        ::redb::Error::Io(_) | ::redb::Error::PreviousIo => {
            " (the store's file system must be writable and have room: free space or move the \
             store, then start the scheduler again; it resumes from its last commit)"
        }
        _ => "",
    }
}

/// A store failure: which store, what failed, what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the read of the run history was cancelled: the scheduler is stopping")]
    ReadCancelled,
    #[error("store {path}: {source}{}", io_hint(source))]
    Db {
        path: PathBuf,
        #[source]
        source: ::redb::Error,
    },
    #[error("store {store}: table '{table}' key '{key}' holds an unreadable value: {reason}")]
    Corrupt {
        store: String,
        table: &'static str,
        key: String,
        reason: String,
    },
    #[error(
        "store {store} has schema version {found}; this scheduler reads versions 1 to \
         {SCHEMA_VERSION} (a newer scheduler wrote it: run that one, or start from a new store)"
    )]
    Schema { store: String, found: String },
    #[error(
        "store {path} is in use by another shardex-scheduler{}: stop it first, or give this one \
         another store (--store)",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked { path: PathBuf, holder: Option<u32> },
    #[error("store {store}: {what} failed: {source}")]
    ZooKeeper {
        store: String,
        what: String,
        #[source]
        source: ::zookeeper_client::Error,
    },
    #[error(
        "store {store}: fenced out: another scheduler became leader (epoch {epoch} is no \
         longer current); this one stops writing and acting"
    )]
    Fenced { store: String, epoch: i32 },
    #[error("store {store}: this scheduler holds no epoch (it does not lead), so it may not write")]
    NotWriter { store: String },
    #[error(
        "store {store} is not empty ({what}); migrate only into a new store, or remove its \
         contents first"
    )]
    NotEmpty { store: String, what: String },
    #[error(
        "store {store} is in use: {candidates} scheduler(s) registered under its election \
         path; stop them before migrating"
    )]
    InUse { store: String, candidates: usize },
    #[error(
        "store {store}: one commit of {bytes} bytes is larger than ZooKeeper's {limit}-byte \
         request limit (jute.maxbuffer); raise it on the servers and here \
         ([ha] max_request_bytes), or launch fewer tasks per offer"
    )]
    TooLarge {
        store: String,
        bytes: usize,
        limit: usize,
    },
}

/// Where a store is: `redb:PATH` (or a plain path) for a file, `zk://servers/root` for
/// ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreAddress {
    Redb(PathBuf),
    ZooKeeper(ZkTarget),
}

impl FromStr for StoreAddress {
    type Err = ZkTargetError;

    fn from_str(text: &str) -> Result<StoreAddress, ZkTargetError> {
        if text.starts_with("zk://") {
            return text.parse().map(StoreAddress::ZooKeeper);
        }
        let path = text.strip_prefix("redb:").unwrap_or(text);
        Ok(StoreAddress::Redb(PathBuf::from(path)))
    }
}

impl fmt::Display for StoreAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreAddress::Redb(path) => write!(f, "redb:{}", path.display()),
            StoreAddress::ZooKeeper(target) => target.fmt(f),
        }
    }
}

/// What a migration copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrated {
    pub apps: usize,
    pub jobs: usize,
    pub ready: usize,
    pub failover: usize,
    pub running: usize,
    pub parked: usize,
    pub history: usize,
    /// Runs: open ones and archived ones.
    pub runs: usize,
    pub framework_id: Option<String>,
}

impl fmt::Display for Migrated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} apps, {} jobs, {} ready, {} failover, {} running, {} parked, {} history, {} runs; \
             framework id {}",
            self.apps,
            self.jobs,
            self.ready,
            self.failover,
            self.running,
            self.parked,
            self.history,
            self.runs,
            self.framework_id.as_deref().unwrap_or("(none)")
        )
    }
}

/// Copies everything in `from` into `to`, which must be empty, in one commit (fenced, for
/// ZooKeeper: taking the target's epoch fences out any scheduler that still led there). A
/// ZooKeeper source with schedulers registered is refused: stop them first.
pub async fn migrate(
    from: &mut Store,
    to: &mut Store,
    holder: &str,
) -> Result<Migrated, StoreError> {
    for store in [&*from, &*to] {
        if let Store::ZooKeeper(zk) = store {
            let candidates = zk.candidates().await?;
            if candidates > 0 {
                return Err(StoreError::InUse {
                    store: zk.target().to_string(),
                    candidates,
                });
            }
        }
    }
    let mut state = from.load().await?;
    let target = to.load().await?;
    if target != State::default() {
        let what = format!(
            "{} apps, {} jobs, {} running",
            target.registry().apps.len(),
            target.registry().jobs.len(),
            target.running().len()
        );
        return Err(StoreError::NotEmpty {
            store: to.describe(),
            what,
        });
    }
    if let Store::ZooKeeper(zk) = to {
        zk.take_epoch(holder).await?;
    }
    let migrated = Migrated {
        apps: state.registry().apps.len(),
        jobs: state.registry().jobs.len(),
        ready: state.ready().len(),
        failover: state.failover().len(),
        running: state.running().len(),
        parked: state.parked().len(),
        history: state.history().len(),
        runs: state.open_runs().len() + state.run_index().len(),
        framework_id: state.framework_id().map(str::to_owned),
    };
    state.all_changed();
    to.commit(&mut state).await?;
    // Archived runs are not in memory: copied in chunks, each its own commit.
    let reader = from.reader();
    let keys: Vec<String> = state
        .run_index()
        .ids()
        .filter_map(|id| state.run_index().key(id))
        .collect();
    for chunk in keys.chunks(256) {
        for run in reader.runs(chunk).await? {
            state.put_archived(&run);
        }
        to.commit(&mut state).await?;
    }
    Ok(migrated)
}

/// Reads archived runs ([`crate::runs`]) without going through the owner: REST queries of
/// history never wait behind a commit, and the owner never waits behind them.
#[derive(Debug, Clone)]
pub enum HistoryReader {
    Redb(RedbReader),
    ZooKeeper(ZkReader),
}

impl HistoryReader {
    /// The archived runs under `keys` ([`crate::runs::RunIndex::key`]), in the order asked;
    /// keys no longer stored are left out.
    pub async fn runs(&self, keys: &[String]) -> Result<Vec<crate::runs::Run>, StoreError> {
        match self {
            HistoryReader::Redb(reader) => {
                let reader = reader.clone();
                let keys = keys.to_vec();
                match tokio::task::spawn_blocking(move || reader.runs(&keys)).await {
                    Ok(read) => read,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => Err(StoreError::ReadCancelled),
                }
            }
            HistoryReader::ZooKeeper(reader) => reader.runs(keys).await,
        }
    }
}

/// The scheduler's store: a local redb file or ZooKeeper.
#[derive(Debug)]
pub enum Store {
    Redb(RedbStore),
    ZooKeeper(Box<ZkStore>),
}

impl Store {
    /// Opens the store at `address` (connecting to ZooKeeper with `zk`).
    pub async fn open(address: &StoreAddress, zk: &ZkOptions) -> Result<Store, StoreError> {
        Ok(match address {
            StoreAddress::Redb(path) => Store::Redb(RedbStore::open(path)?),
            StoreAddress::ZooKeeper(target) => Store::ZooKeeper(Box::new(
                ZkStore::connect(target.clone(), zk.clone()).await?,
            )),
        })
    }

    /// Reads everything into memory.
    pub async fn load(&mut self) -> Result<State, StoreError> {
        match self {
            Store::Redb(store) => store.load(),
            Store::ZooKeeper(store) => store.load().await,
        }
    }

    /// Writes everything `state` changed since its last commit as one atomic unit, then marks
    /// it committed.
    pub async fn commit(&mut self, state: &mut State) -> Result<(), StoreError> {
        if !state.has_changes() {
            return Ok(());
        }
        match self {
            Store::Redb(store) => store.commit(state)?,
            Store::ZooKeeper(store) => store.commit(state).await?,
        }
        state.committed();
        Ok(())
    }

    /// A reader of the archived run history, for use beside the owner.
    pub fn reader(&self) -> HistoryReader {
        match self {
            Store::Redb(store) => HistoryReader::Redb(store.reader()),
            Store::ZooKeeper(store) => HistoryReader::ZooKeeper(store.reader()),
        }
    }

    /// What the logs call it: a file path or a `zk://` address.
    pub fn describe(&self) -> String {
        match self {
            Store::Redb(store) => store.path().display().to_string(),
            Store::ZooKeeper(store) => store.target().to_string(),
        }
    }
}
