//! The ZooKeeper store: the same records as the redb file, one znode per row, shared by every
//! scheduler of an HA installation and written by the leader alone. The layout (also in
//! `docs/ha.md`), under the root of the `zk://` address:
//!
//! | znode | data |
//! |---|---|
//! | `meta/schema_version` | `2` |
//! | `meta/framework_id` | the framework id (absent until Mesos gave one) |
//! | `meta/epoch` | who last took the epoch (text); its **version** is the epoch |
//! | `meta/commit` | the token (`<epoch>:<n>`) of the leader's last `multi` (lost answers) |
//! | `election/candidate-<seq>` | one ephemeral sequential node per running scheduler |
//! | `state/<table>/<key>` | one row ([`Table`]); keys percent-encoded ([`encode_key`]) |
//!
//! **Fencing.** A scheduler that wins the election bumps `meta/epoch` ([`ZkStore::take_epoch`])
//! and every commit it makes is one `multi` that first checks the epoch's version is still the
//! one it set. A leader that was paused or lost its session while another took over can never
//! write again: its `multi` fails as a whole, and the owner stops ([`StoreError::Fenced`]).
//!
//! **Batching.** One commit is one `multi` (one round trip) for everything an owner-loop step
//! changed. A step larger than ZooKeeper's request limit is split into several `multi`s, each
//! fenced, applied in order before the step acts (logged: the split steps are not atomic).
//!
//! **Lost answers.** A `multi` whose connection breaks after it was sent (a server of the
//! ensemble dies, a network blip) may or may not have been applied: ZooKeeper only says the
//! connection was lost, and the client moves the session to another server by itself. Each
//! `multi` therefore also writes `meta/commit`, conditioned on the version the writer last left
//! it at, with a token of its own. Once the session is connected again, reading that node says
//! which it was: the token is there (applied: go on), or the node is as it was (not applied:
//! send the same `multi` again, under the same condition, so at most one of the two can ever
//! apply). The owner neither crashes nor acts before it knows; when the session does not come
//! back within its timeout, the store gives up and the leader stops with the outcome unknown
//! (the next leader loads whatever was written, and reconciles).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::Instant;

use zookeeper_client as zk;

use super::records::{self, Rows, Table, Value};
use super::{SCHEMA_VERSION, StoreError};
use crate::state::State;

/// ZooKeeper's default request limit (`jute.maxbuffer`, 0xfffff bytes), less room for the
/// request's own framing.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 0xfffff - 4096;

/// A `zk://host:port[,host:port…]/path` address: the ensemble and the root znode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkTarget {
    /// `host:port,host:port`, as the client takes it.
    pub servers: String,
    /// The root znode, `/` followed by at least one name, no trailing `/`.
    pub root: String,
}

/// A `zk://` address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{text}' is not a ZooKeeper address: {why} (expected zk://host:port[,host:port…]/path, \
     e.g. zk://127.0.0.1:2181/shardex)"
)]
pub struct ZkTargetError {
    pub text: String,
    pub why: String,
}

impl FromStr for ZkTarget {
    type Err = ZkTargetError;

    fn from_str(text: &str) -> Result<ZkTarget, ZkTargetError> {
        let fail = |why: &str| ZkTargetError {
            text: text.to_owned(),
            why: why.to_owned(),
        };
        let rest = text
            .strip_prefix("zk://")
            .ok_or_else(|| fail("it does not start with zk://"))?;
        let (servers, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => return Err(fail("it names no root path after the servers")),
        };
        if servers.is_empty() {
            return Err(fail("it names no server"));
        }
        let mut list = Vec::new();
        for server in servers.split(',') {
            let (host, port) = match server.rsplit_once(':') {
                Some((host, port)) => (host, port),
                None => (server, "2181"),
            };
            if host.is_empty() {
                return Err(fail(&format!("server '{server}' has no host")));
            }
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| fail(&format!("server '{server}' has no valid port")))?;
            list.push(format!("{host}:{port}"));
        }
        let root = path.trim_end_matches('/');
        if root.is_empty() {
            return Err(fail(
                "the root path is '/'; give Shardex a znode of its own",
            ));
        }
        if root
            .split('/')
            .skip(1)
            .any(|name| name.is_empty() || name == "." || name == "..")
        {
            return Err(fail(&format!(
                "the root path '{path}' has an empty, . or .. name"
            )));
        }
        Ok(ZkTarget {
            servers: list.join(","),
            root: root.to_owned(),
        })
    }
}

/// The nodes of the layout, relative to the root.
pub const SCHEMA_NODE: &str = "meta/schema_version";
pub const FRAMEWORK_NODE: &str = "meta/framework_id";
pub const EPOCH_NODE: &str = "meta/epoch";
pub const COMMIT_NODE: &str = "meta/commit";
pub const ELECTION_NODE: &str = "election";

impl ZkTarget {
    /// The full path of `node` (one of the layout's) under the root.
    pub fn path(&self, node: &str) -> String {
        format!("{}/{node}", self.root)
    }

    /// The directory holding a table's rows.
    pub fn table_dir(&self, table: &str) -> String {
        format!("{}/state/{table}", self.root)
    }
}

impl fmt::Display for ZkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zk://{}{}", self.servers, self.root)
    }
}

/// How to reach the ensemble.
#[derive(Debug, Clone)]
pub struct ZkOptions {
    /// The session timeout asked of the servers (they bound it to 2–20 ticks).
    pub session_timeout: Duration,
    /// `user:password` for ZooKeeper's `digest` scheme: the nodes Shardex creates are then
    /// readable and writable by that identity only.
    pub digest: Option<String>,
    /// The largest `multi` request sent (ZooKeeper's `jute.maxbuffer`).
    pub max_request_bytes: usize,
    /// The version of `meta/commit` at which a `multi` recreates the node (back to version 0)
    /// instead of bumping it: a version is an `i32`, and every `multi` bumps it. Tests lower it.
    pub commit_record_reset: i32,
}

impl Default for ZkOptions {
    fn default() -> ZkOptions {
        ZkOptions {
            session_timeout: Duration::from_secs(10),
            digest: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            commit_record_reset: 1 << 30,
        }
    }
}

/// Connects a ZooKeeper session to `target`'s servers, authenticated when `options` say so.
pub async fn connect_session(
    target: &ZkTarget,
    options: &ZkOptions,
) -> Result<zk::Client, StoreError> {
    let mut connector = zk::Client::connector().with_session_timeout(options.session_timeout);
    if let Some(digest) = &options.digest {
        connector = connector.with_auth("digest", digest.as_bytes());
    }
    connector
        .connect(&target.servers)
        .await
        .map_err(|source| StoreError::ZooKeeper {
            store: target.to_string(),
            what: "connecting".into(),
            source,
        })
}

/// A row key as a znode name: bytes outside `[A-Za-z0-9@_.,:=+~-]` as `%XX`, and the names
/// ZooKeeper refuses (`.`, `..`) with their dots escaped; the empty key is `%`.
pub fn encode_key(key: &str) -> String {
    if key.is_empty() {
        return "%".into();
    }
    let all_dots = key.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        let plain = byte.is_ascii_alphanumeric() || b"@_.,:=+~-".contains(&byte);
        if plain && !(all_dots && byte == b'.') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The key a znode name stands for; `None` for a name [`encode_key`] cannot have made.
pub fn decode_key(name: &str) -> Option<String> {
    if name == "%" {
        return Some(String::new());
    }
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The ZooKeeper store of one scheduler.
pub struct ZkStore {
    client: zk::Client,
    target: ZkTarget,
    options: ZkOptions,
    /// The epoch this scheduler set when it won; `None` while it does not lead (it may read,
    /// not write).
    epoch: Option<i32>,
    /// The rows that exist in ZooKeeper (only the leader writes, so its view is exact):
    /// whether a write is a create or a set.
    existing: HashSet<(Table, String)>,
    framework_id_exists: bool,
    /// The version this writer last left `meta/commit` at (read when it takes the epoch).
    commit_version: i32,
    /// How many `multi`s this writer sent: with the epoch, each one's token.
    multis: u64,
}

/// Whether a request may have failed without a definite answer: the connection broke after it
/// was sent (the client fails every request in flight with the error that broke it: an end of
/// stream, an I/O error, no response in time, an unexpected frame), so it may or may not have
/// been applied, and the session may well be alive (the client reconnects to another server on
/// its own). `UnexpectedError` also covers a few answers the client could not make sense of;
/// every caller reads back or repeats, so taking those for lost costs one more round trip.
pub(crate) fn answer_lost(error: &zk::Error) -> bool {
    matches!(
        error,
        zk::Error::ConnectionLoss | zk::Error::Custom(_) | zk::Error::UnexpectedError(_)
    )
}

/// Waits until `client`'s session is connected again; `Err` with why once it never will be
/// (expired, closed), or `ConnectionLoss` at `until`.
async fn reconnected(client: &zk::Client, until: Instant) -> Result<(), zk::Error> {
    let mut states = client.state_watcher();
    loop {
        match states.state() {
            zk::SessionState::SyncConnected => return Ok(()),
            zk::SessionState::Expired => return Err(zk::Error::SessionExpired),
            zk::SessionState::Closed => return Err(zk::Error::ClientClosed),
            zk::SessionState::AuthFailed => return Err(zk::Error::AuthFailed),
            _ => {}
        }
        if tokio::time::timeout_at(until, states.changed())
            .await
            .is_err()
        {
            return Err(zk::Error::ConnectionLoss);
        }
    }
}

/// Sends `request` (`what`, for the log) until it is answered (a lost answer is asked again
/// once the session is connected), for requests that may be repeated. Gives up at `until`
/// with the last error (`ConnectionLoss` when a request is still unanswered then).
pub(crate) async fn until_answered<T, F, Fut>(
    client: &zk::Client,
    what: &str,
    until: Instant,
    mut request: F,
) -> Result<T, zk::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, zk::Error>>,
{
    let mut pause = Duration::from_millis(10);
    loop {
        // A request made while disconnected waits for the reconnection, which the client
        // itself bounds only by its own expiry (later than `until`).
        let answer = tokio::time::timeout_at(until, request())
            .await
            .unwrap_or(Err(zk::Error::ConnectionLoss));
        match answer {
            Err(error) if answer_lost(&error) && Instant::now() < until => {
                tracing::warn!(%error, what, "no answer from ZooKeeper; asking again once connected");
                reconnected(client, until).await.map_err(|why| {
                    if why == zk::Error::ConnectionLoss {
                        error
                    } else {
                        why
                    }
                })?;
                // Not a hot loop when the session says connected but requests still fail.
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

impl fmt::Debug for ZkStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZkStore({}, epoch {:?})", self.target, self.epoch)
    }
}

/// One write of a commit.
enum Op {
    Create(String, Vec<u8>),
    Set(String, Vec<u8>),
    Delete(String),
}

impl Op {
    /// About what it adds to a request: its path, its data and the per-op framing.
    fn size(&self) -> usize {
        match self {
            Op::Create(path, data) | Op::Set(path, data) => path.len() + data.len() + 48,
            Op::Delete(path) => path.len() + 24,
        }
    }
}

impl ZkStore {
    /// Connects a session of its own and opens the store on it.
    pub async fn connect(target: ZkTarget, options: ZkOptions) -> Result<ZkStore, StoreError> {
        let client = connect_session(&target, &options).await?;
        ZkStore::open(client, target, options).await
    }

    /// Opens the store at `target` on an existing session: creates the layout when it is new,
    /// and checks the schema version. The store reads at once; it writes once it holds the
    /// epoch ([`ZkStore::take_epoch`]).
    pub async fn open(
        client: zk::Client,
        target: ZkTarget,
        options: ZkOptions,
    ) -> Result<ZkStore, StoreError> {
        let store = ZkStore {
            client,
            target,
            options,
            epoch: None,
            existing: HashSet::new(),
            framework_id_exists: false,
            commit_version: 0,
            multis: 0,
        };
        let create = store.create_options();
        let mut dirs = vec![
            store.path("meta"),
            store.path(ELECTION_NODE),
            store.path("state"),
        ];
        dirs.extend(Table::ALL.iter().map(|t| store.table_path(*t)));
        for dir in dirs {
            match store.client.mkdir(&dir, &create).await {
                Ok(()) | Err(zk::Error::NodeExists) => {}
                Err(source) => return Err(store.error(format!("creating {dir}"), source)),
            }
        }
        for (node, data) in [
            (SCHEMA_NODE, SCHEMA_VERSION.to_string()),
            (EPOCH_NODE, String::new()),
            (COMMIT_NODE, String::new()),
        ] {
            let path = store.path(node);
            match store.client.create(&path, data.as_bytes(), &create).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(source) => return Err(store.error(format!("creating {path}"), source)),
            }
        }
        let path = store.path(SCHEMA_NODE);
        let (found, _) = store
            .client
            .get_data(&path)
            .await
            .map_err(|source| store.error(format!("reading {path}"), source))?;
        let found = String::from_utf8_lossy(&found).into_owned();
        if found != SCHEMA_VERSION.to_string() {
            return Err(StoreError::Schema {
                store: store.target.to_string(),
                found,
            });
        }
        Ok(store)
    }

    pub fn target(&self) -> &ZkTarget {
        &self.target
    }

    /// The epoch this store writes under, once it took one.
    pub fn epoch(&self) -> Option<i32> {
        self.epoch
    }

    /// Makes this scheduler the only writer: bumps `meta/epoch` (recording `holder`) and fences
    /// every later commit on the version it set. Call it only after winning the election.
    pub async fn take_epoch(&mut self, holder: &str) -> Result<i32, StoreError> {
        let path = self.path(EPOCH_NODE);
        let until = Instant::now() + self.client.session_timeout();
        // Taking it twice (a lost answer asked again) only fences out this writer's own
        // first take: the epoch is the version the last answer gave.
        let stat = until_answered(&self.client, "taking the epoch", until, || {
            self.client.set_data(&path, holder.as_bytes(), None)
        })
        .await
        .map_err(|source| self.error(format!("taking the epoch at {path}"), source))?;
        // Every commit from now on bumps meta/commit from here (fenced by the epoch, so no
        // former leader moves it any more); `open` made the node.
        let commit_path = self.path(COMMIT_NODE);
        let (_, commit_stat) =
            until_answered(&self.client, "reading the commit record", until, || {
                self.client.get_data(&commit_path)
            })
            .await
            .map_err(|source| self.error(format!("reading {commit_path}"), source))?;
        self.commit_version = commit_stat.version;
        self.epoch = Some(stat.version);
        Ok(stat.version)
    }

    /// How many schedulers are registered under the election path (running, or whose session
    /// has not expired yet).
    pub async fn candidates(&self) -> Result<usize, StoreError> {
        let path = self.path(ELECTION_NODE);
        match self.client.list_children(&path).await {
            Ok(children) => Ok(children.len()),
            Err(zk::Error::NoNode) => Ok(0),
            Err(source) => Err(self.error(format!("listing {path}"), source)),
        }
    }

    /// The current epoch and who set it, as ZooKeeper has them.
    pub async fn current_epoch(&self) -> Result<(i32, String), StoreError> {
        let path = self.path(EPOCH_NODE);
        let (data, stat) = self
            .client
            .get_data(&path)
            .await
            .map_err(|source| self.error(format!("reading {path}"), source))?;
        Ok((stat.version, String::from_utf8_lossy(&data).into_owned()))
    }

    /// Reads everything into memory (and learns which rows exist).
    pub async fn load(&mut self) -> Result<State, StoreError> {
        let mut rows = Rows::default();
        let framework_path = self.path(FRAMEWORK_NODE);
        match self.client.get_data(&framework_path).await {
            Ok((data, _)) => rows.framework_id = Some(String::from_utf8_lossy(&data).into()),
            Err(zk::Error::NoNode) => {}
            Err(source) => return Err(self.error(format!("reading {framework_path}"), source)),
        }
        let mut existing = HashSet::new();
        for table in Table::ALL {
            let dir = self.table_path(table);
            let names = self
                .client
                .list_children(&dir)
                .await
                .map_err(|source| self.error(format!("listing {dir}"), source))?;
            if table == Table::RunHistory {
                // Archived runs: their names hold what the run index needs; no data is read.
                for name in &names {
                    let key = decode_key(name).ok_or_else(|| StoreError::Corrupt {
                        store: self.target.to_string(),
                        table: table.name(),
                        key: name.clone(),
                        reason: "the znode name is not an encoded key".into(),
                    })?;
                    rows.archived
                        .push(records::archived_entry(&self.target.to_string(), &key)?);
                    existing.insert((table, key));
                }
                continue;
            }
            // Pipelined: every read is sent before the first answer is awaited.
            for chunk in names.chunks(512) {
                let reads = chunk.iter().map(|name| {
                    let path = format!("{dir}/{name}");
                    let read = self.client.get_data(&path);
                    async move { (path, read.await) }
                });
                for (path, read) in futures::future::join_all(reads).await {
                    let name = path.rsplit('/').next().unwrap_or_default();
                    let data = match read {
                        Ok((data, _)) => data,
                        // Deleted since the listing: only a writer that is not us could.
                        Err(zk::Error::NoNode) => continue,
                        Err(source) => return Err(self.error(format!("reading {path}"), source)),
                    };
                    let key = decode_key(name).ok_or_else(|| StoreError::Corrupt {
                        store: self.target.to_string(),
                        table: table.name(),
                        key: name.to_owned(),
                        reason: "the znode name is not an encoded key".into(),
                    })?;
                    if table == Table::Ready {
                        let count = std::str::from_utf8(&data)
                            .ok()
                            .and_then(|text| text.parse().ok())
                            .ok_or_else(|| StoreError::Corrupt {
                                store: self.target.to_string(),
                                table: table.name(),
                                key: key.clone(),
                                reason: "the count is not a number".into(),
                            })?;
                        rows.ready.push((key.clone(), count));
                    } else {
                        rows.json.push((table, key.clone(), data));
                    }
                    existing.insert((table, key));
                }
            }
        }
        let state = records::decode(&self.target.to_string(), rows)?;
        self.framework_id_exists = state.framework_id().is_some();
        self.existing = existing;
        Ok(state)
    }

    /// Writes everything `state` changed since its last commit: one fenced `multi` (several
    /// in order when it is larger than one request may be).
    pub async fn commit(&mut self, state: &State) -> Result<(), StoreError> {
        let Some(epoch) = self.epoch else {
            return Err(StoreError::NotWriter {
                store: self.target.to_string(),
            });
        };
        let changes = records::changes(state);
        let mut ops = Vec::new();
        // What the store will hold once the ops are applied.
        let mut framework_id_exists = self.framework_id_exists;
        if let Some(framework_id) = &changes.framework_id {
            let path = self.path(FRAMEWORK_NODE);
            match (framework_id, self.framework_id_exists) {
                (Some(id), true) => ops.push(Op::Set(path, id.as_bytes().to_vec())),
                (Some(id), false) => ops.push(Op::Create(path, id.as_bytes().to_vec())),
                (None, true) => ops.push(Op::Delete(path)),
                (None, false) => {}
            }
            framework_id_exists = framework_id.is_some();
        }
        let mut created = Vec::new();
        let mut deleted = Vec::new();
        for change in changes.rows {
            let path = format!(
                "{}/{}",
                self.table_path(change.table),
                encode_key(&change.key)
            );
            let row = (change.table, change.key);
            let exists = self.existing.contains(&row);
            let data = match change.value {
                Some(Value::Json(bytes)) => Some(bytes),
                Some(Value::Count(count)) => Some(count.to_string().into_bytes()),
                None => None,
            };
            match (data, exists) {
                (Some(data), true) => ops.push(Op::Set(path, data)),
                (Some(data), false) => {
                    ops.push(Op::Create(path, data));
                    created.push(row);
                }
                (None, true) => {
                    ops.push(Op::Delete(path));
                    deleted.push(row);
                }
                (None, false) => {}
            }
        }
        let budget = self.options.max_request_bytes;
        // What every multi carries besides the rows: the epoch check and the commit record
        // (a delete and a create, when it is recreated).
        let fixed = self.path(EPOCH_NODE).len() + 32 + 2 * (self.path(COMMIT_NODE).len() + 96);
        let mut chunks: Vec<Vec<Op>> = vec![Vec::new()];
        let mut size = fixed;
        for op in ops {
            let op_size = op.size();
            if op_size + fixed > budget {
                return Err(StoreError::TooLarge {
                    store: self.target.to_string(),
                    bytes: op_size,
                    limit: budget,
                });
            }
            if size + op_size > budget {
                chunks.push(Vec::new());
                size = fixed;
            }
            size += op_size;
            if let Some(chunk) = chunks.last_mut() {
                chunk.push(op);
            }
        }
        if chunks.len() > 1 {
            tracing::warn!(
                store = %self.target,
                multis = chunks.len(),
                "one step's changes exceed ZooKeeper's request limit; written as several \
                 fenced multis, not atomically"
            );
        }
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            self.write(chunk, epoch).await?;
        }
        self.framework_id_exists = framework_id_exists;
        self.existing.extend(created);
        for row in &deleted {
            self.existing.remove(row);
        }
        Ok(())
    }

    /// Writes one fenced `multi`, exactly once: when its answer is lost, finds out from
    /// `meta/commit` whether it was applied, and sends it again only if it was not.
    async fn write(&mut self, ops: &[Op], epoch: i32) -> Result<(), StoreError> {
        self.multis += 1;
        let token = format!("{epoch}:{}", self.multis).into_bytes();
        let version = self.commit_version;
        // Recreated at version ≥ 1 only: the new node is at 0, so a version check tells the
        // two apart (at 0 a late first attempt could apply after the second).
        let recreate = version >= self.options.commit_record_reset.max(1);
        // Since the first lost answer: how long the session may take to come back.
        let mut in_doubt_until: Option<Instant> = None;
        loop {
            let sent = self.send(ops, epoch, &token, version, recreate);
            let answer = match in_doubt_until {
                Some(until) => tokio::time::timeout_at(until, sent)
                    .await
                    .unwrap_or(Err(zk::Error::ConnectionLoss.into())),
                None => sent.await,
            };
            let error = match answer {
                Ok(()) => break,
                Err(zk::MultiWriteError::OperationFailed {
                    index: 0,
                    source: zk::Error::BadVersion | zk::Error::NoNode,
                }) => return Err(self.fenced(epoch)),
                // The commit record moved while this multi was in doubt: that may be its first
                // attempt, applied late (read again); out of doubt, nobody else may move it.
                Err(zk::MultiWriteError::OperationFailed {
                    index: 1,
                    source: source @ (zk::Error::BadVersion | zk::Error::NoNode),
                }) if in_doubt_until.is_some() => {
                    tracing::info!(
                        store = %self.target,
                        "the commit record moved while a commit was in doubt; reading it again"
                    );
                    source
                }
                Err(zk::MultiWriteError::OperationFailed {
                    index: 1,
                    source: zk::Error::BadVersion | zk::Error::NoNode,
                }) => return Err(self.fenced(epoch)),
                Err(zk::MultiWriteError::RequestFailed { source }) if answer_lost(&source) => {
                    tracing::warn!(
                        store = %self.target,
                        error = %source,
                        "the answer to a commit was lost; finding out whether it was applied"
                    );
                    source
                }
                Err(error) => {
                    let what = match &error {
                        zk::MultiWriteError::OperationFailed { index, .. } => {
                            format!("committing (operation {index} of the multi)")
                        }
                        zk::MultiWriteError::RequestFailed { .. } => "committing".into(),
                    };
                    return Err(self.error(what, error.into()));
                }
            };
            let until = *in_doubt_until
                .get_or_insert_with(|| Instant::now() + self.client.session_timeout());
            if Instant::now() >= until {
                // A whole session timeout without knowing: the session is as good as gone.
                return Err(self.error(
                    "committing (no definite answer within the session timeout)".into(),
                    error,
                ));
            }
            if self.was_applied(&token, version, epoch, until).await? {
                tracing::info!(store = %self.target, "the commit was applied");
                break;
            }
            tracing::info!(store = %self.target, "the commit was not applied; sending it again");
        }
        self.commit_version = if recreate { 0 } else { version + 1 };
        Ok(())
    }

    /// One attempt at a `multi`: the epoch check, the commit record, then `ops`.
    async fn send(
        &self,
        ops: &[Op],
        epoch: i32,
        token: &[u8],
        version: i32,
        recreate: bool,
    ) -> Result<(), zk::MultiWriteError> {
        let epoch_path = self.path(EPOCH_NODE);
        let commit_path = self.path(COMMIT_NODE);
        let create = self.create_options();
        let mut multi = self.client.new_multi_writer();
        multi.add_check_version(&epoch_path, epoch)?;
        if recreate {
            multi.add_delete(&commit_path, Some(version))?;
            multi.add_create(&commit_path, token, &create)?;
        } else {
            multi.add_set_data(&commit_path, token, Some(version))?;
        }
        for op in ops {
            match op {
                Op::Create(path, data) => multi.add_create(path, data, &create)?,
                Op::Set(path, data) => multi.add_set_data(path, data, None)?,
                Op::Delete(path) => multi.add_delete(path, None)?,
            }
        }
        multi.commit().await.map(drop)
    }

    /// After a lost answer: whether the `multi` carrying `token` was applied (`meta/commit`
    /// holds it) or not (the node is still at `version`: an applied one always moves it).
    /// Anything else means another writer. The read is synced first, so the server the session
    /// reconnected to has caught up with everything the ensemble committed before it.
    async fn was_applied(
        &mut self,
        token: &[u8],
        version: i32,
        epoch: i32,
        until: Instant,
    ) -> Result<bool, StoreError> {
        let path = self.path(COMMIT_NODE);
        let read = until_answered(&self.client, "reading the commit record", until, || async {
            self.client.sync(&path).await?;
            self.client.get_data(&path).await
        })
        .await;
        match read {
            Ok((_, stat)) if stat.version == version => Ok(false),
            Ok((data, _)) if data == token => Ok(true),
            Ok(_) | Err(zk::Error::NoNode) => Err(self.fenced(epoch)),
            Err(source) => Err(self.error(
                format!(
                    "reading {path} to find out whether a commit whose answer was lost was applied"
                ),
                source,
            )),
        }
    }

    /// This writer was fenced out: it never writes again.
    fn fenced(&mut self, epoch: i32) -> StoreError {
        self.epoch = None;
        StoreError::Fenced {
            store: self.target.to_string(),
            epoch,
        }
    }

    fn path(&self, node: &str) -> String {
        self.target.path(node)
    }

    /// A reader of the run history on this store's session.
    pub fn reader(&self) -> ZkReader {
        ZkReader {
            client: self.client.clone(),
            target: self.target.clone(),
        }
    }

    fn table_path(&self, table: Table) -> String {
        self.target.table_dir(table.name())
    }

    /// Nodes readable and writable by anyone, or with digest auth by this identity only.
    fn create_options(&self) -> zk::CreateOptions<'static> {
        let acls = if self.options.digest.is_some() {
            zk::Acls::creator_all()
        } else {
            zk::Acls::anyone_all()
        };
        zk::CreateMode::Persistent.with_acls(acls)
    }

    fn error(&self, what: String, source: zk::Error) -> StoreError {
        StoreError::ZooKeeper {
            store: self.target.to_string(),
            what,
            source,
        }
    }
}

/// Reads archived runs from ZooKeeper.
#[derive(Clone)]
pub struct ZkReader {
    client: zk::Client,
    target: ZkTarget,
}

impl fmt::Debug for ZkReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZkReader({})", self.target)
    }
}

impl ZkReader {
    /// The archived runs under `keys`, in the order asked (read in one pipelined round); keys
    /// not stored are left out.
    pub async fn runs(&self, keys: &[String]) -> Result<Vec<crate::runs::Run>, StoreError> {
        let dir = self.target.table_dir(Table::RunHistory.name());
        let reads = keys.iter().map(|key| {
            let key = key.clone();
            let path = format!("{dir}/{}", encode_key(&key));
            async move {
                let read = self.client.get_data(&path).await;
                (key, path, read)
            }
        });
        let store = self.target.to_string();
        let mut out = Vec::with_capacity(keys.len());
        for (key, path, read) in futures::future::join_all(reads).await {
            match read {
                Ok((data, _)) => out.push(records::archived_run(&store, &key, &data)?),
                Err(zk::Error::NoNode) => {}
                Err(source) => {
                    return Err(StoreError::ZooKeeper {
                        store,
                        what: format!("reading {path}"),
                        source,
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_what_is_wrong() {
        let target: ZkTarget = "zk://h1:2181,h2,10.0.0.3:2182/shardex/prod/"
            .parse()
            .unwrap();
        assert_eq!(target.servers, "h1:2181,h2:2181,10.0.0.3:2182");
        assert_eq!(target.root, "/shardex/prod");
        assert_eq!(
            target.to_string(),
            "zk://h1:2181,h2:2181,10.0.0.3:2182/shardex/prod"
        );
        for (text, why) in [
            ("http://h:2181/x", "it does not start with zk://"),
            ("zk://h:2181", "it names no root path after the servers"),
            ("zk:///x", "it names no server"),
            ("zk://h:port/x", "server 'h:port' has no valid port"),
            (
                "zk://h:2181/",
                "the root path is '/'; give Shardex a znode of its own",
            ),
            (
                "zk://h:2181/a//b",
                "the root path '/a//b' has an empty, . or .. name",
            ),
        ] {
            let error = text.parse::<ZkTarget>().unwrap_err();
            assert_eq!(error.why, why, "{text}");
        }
    }

    #[test]
    fn every_key_becomes_a_valid_znode_name_and_back() {
        for key in [
            "job@-@3",
            "j/../x",
            ".",
            "..",
            "",
            "100%",
            "naïve job",
            "a.b",
        ] {
            let name = encode_key(key);
            assert!(!name.contains('/'), "{name}");
            assert!(name != "." && name != ".." && !name.is_empty(), "{key:?}");
            assert_eq!(decode_key(&name).as_deref(), Some(key), "{name}");
        }
        assert_eq!(encode_key("job@-@3"), "job@-@3", "readable when it can be");
        assert_eq!(encode_key(".."), "%2E%2E");
        assert_eq!(decode_key("%G1"), None);
    }
}
