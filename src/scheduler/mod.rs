//! `shardex-scheduler`: a minimal Mesos framework (v1 scheduler HTTP API) that fires sharded
//! jobs by cron, places one task per sharding item, and fails crashed shards over exactly once.
//!
//! Reading order, following the data (files under `src/scheduler/`):
//! - `config` (TOML file and app/job definitions, validation), `ids` (Elastic-Job id formats),
//!   `registry` (apps and jobs), `tracked` and `state` (what is durable, recording its own
//!   changes), `stored` (the store's record types) and `store` (the redb file holding them);
//! - the rules, as plain functions over the state: `producer` (cron → ready queue),
//!   `placement` (offers → tasks), `status` (updates → failover table), `reconcile`;
//! - `engine` and `api` (`rest_view`: the REST shapes): every input as a method call returning
//!   the Mesos calls to make;
//! - `driver` (the SUBSCRIBE loop; `subscribed`: what it takes from SUBSCRIBED), `rest` (HTTP),
//!   `metrics`;
//! - `owner`: the **one owner** task holding the engine. The driver, the REST server and the
//!   clock talk to it by messages; it applies a batch of them, commits their changes to the
//!   store in one write, and only then sends Mesos calls or answers the REST requests;
//! - this file: the messages, the handle, and starting and stopping it all.

mod api;
mod config;
mod console;
mod crash_point;
pub mod ctl;
mod detector;
mod driver;
mod engine;
mod files_proxy;
pub mod ha;
mod ids;
pub mod malloc;
mod metrics;
mod open_runs;
mod owner;
mod placement;
mod producer;
mod reconcile;
mod registry;
mod rest;
mod rest_auth;
mod rest_view;
mod run_view;
mod runs;
mod secret;
mod state;
mod status;
mod store;
mod stored;
mod subscribed;
mod tracked;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use ha::Gate;

use shardex_mesos::proto::v1::scheduler::{Call, Event};
use shardex_mesos::{Client, ClientConfig, Credentials, Encoding};

pub use api::{ApiFailure, ApiReply, ApiRequest, ApiResult, ENDPOINTS};
pub use config::{CONFIG_FIELDS, Config, ConfigError};
pub use crash_point::{CrashPointError, arm as arm_crash_point};
pub use driver::DriverError;
pub use engine::Engine;
pub use metrics::{Counters, Gauges, names as metric_names, sample as metric_sample};
pub use registry::{AppRecord, Source};
pub use rest_auth::{RestAuth, RestAuthError, check_exposure, is_loopback};
pub use runs::{Outcome as RunOutcome, Run, RunId, StateEntry, TaskRun, Trigger};
pub use secret::{Secret, SecretError, read_secret};
pub use state::{FailoverEntry, Millis, ParkedItem, RunningTask, State, TerminalRecord};
pub use store::{
    HistoryReader, Migrated, RedbStore, Store, StoreAddress, StoreError, ZkOptions, ZkStore,
    ZkTarget, ZkTargetError, connect_session, migrate,
};

/// How often the owner checks cron fires, deadlines and retries.
pub const TICK: Duration = Duration::from_millis(100);

/// Messages to the owner.
#[derive(Debug)]
pub enum Msg {
    /// SUBSCRIBED: the framework id, and where to send calls for this subscription.
    Subscribed {
        framework_id: String,
        calls: mpsc::UnboundedSender<Call>,
    },
    Event(Box<Event>),
    Disconnected,
    /// ERROR "Framework has been removed".
    FrameworkRemoved,
    GetFrameworkId(oneshot::Sender<Option<String>>),
    Api(Box<ApiRequest>, oneshot::Sender<ApiResult>),
}

/// A way to ask the scheduler (the REST server holds one).
#[derive(Debug, Clone)]
pub struct Handle {
    answers: Answers,
    /// An HA leader's lease: while it is in doubt the owner decides nothing, so requests are
    /// answered at once instead of waiting.
    gate: Gate,
    /// The epoch an HA leader took (how many leaderships its store has seen); `None` without HA.
    epoch: Option<i32>,
    /// Reads archived runs named by history answers.
    history: Option<store::HistoryReader>,
}

/// Who answers a [`Handle`]'s requests.
#[derive(Debug, Clone)]
enum Answers {
    /// The owner task of the scheduler that leads (or runs alone).
    Owner(mpsc::Sender<Msg>),
    /// A standby: reads from the shared store, refuses writes naming the leader.
    Standby(std::sync::Arc<ha::standby::Standby>),
}

impl Handle {
    /// A standby's handle.
    pub(crate) fn standby(standby: ha::standby::Standby) -> Handle {
        Handle {
            history: Some(standby.history_reader()),
            answers: Answers::Standby(std::sync::Arc::new(standby)),
            gate: Gate::always_open(),
            epoch: None,
        }
    }

    /// Answers a REST request; history answers get their archived runs read from the store.
    pub async fn request(&self, request: ApiRequest) -> ApiResult {
        match self.ask(request).await? {
            ApiReply::History(query) => run_view::resolve(query, self.history.as_ref()).await,
            answer => Ok(answer),
        }
    }

    async fn ask(&self, request: ApiRequest) -> ApiResult {
        let tx = match &self.answers {
            Answers::Standby(standby) => return standby.answer(request).await,
            Answers::Owner(tx) => tx,
        };
        let is_health = matches!(request, ApiRequest::Health);
        let is_metrics = matches!(request, ApiRequest::Metrics);
        if !self.gate.is_open() {
            let why = self.gate.lost().map_or_else(
                || "its ZooKeeper session is unconfirmed (no quorum reachable?)".to_owned(),
                |lost| format!("it lost the leadership: {lost}"),
            );
            if is_health {
                return Ok(ApiReply::Json(
                    503,
                    serde_json::json!({
                        "status": "no-quorum", "role": "leader", "acting": false, "why": why
                    }),
                ));
            }
            return Err(ApiFailure::new(
                503,
                format!("this leader is not acting: {why}; retry shortly"),
            ));
        }
        let (reply, answer) = oneshot::channel();
        let gone = || ApiFailure::new(503, "the scheduler is shutting down");
        tx.send(Msg::Api(Box::new(request), reply))
            .await
            .map_err(|_| gone())?;
        let mut answer = answer.await.map_err(|_| gone())??;
        match &mut answer {
            ApiReply::Json(_, serde_json::Value::Object(body)) if is_health => {
                let role = if self.epoch.is_some() {
                    "leader"
                } else {
                    "single"
                };
                body.insert("role".into(), role.into());
            }
            ApiReply::Metrics(text) if is_metrics => {
                let elections = self.epoch.map(|e| u64::try_from(e).unwrap_or(0));
                metrics::render_leadership(text, true, elections);
            }
            _ => {}
        }
        Ok(answer)
    }
}

/// Why the scheduler stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("invalid registration in the config file: {0}")]
    Registration(ApiFailure),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no master endpoint in '{0}': give host:port, an endpoint URL, several of them \
         (comma-separated, or a list in the config file), or zk://host:port/path"
    )]
    NoMaster(String),
    #[error("invalid master endpoint: {0}")]
    Master(#[source] shardex_mesos::ApiError),
    #[error(transparent)]
    MasterTls(shardex_mesos::ApiError),
    #[error("task {0} ended unexpectedly")]
    TaskEnded(&'static str),
    #[error("high availability: {0}")]
    Ha(String),
    #[error(transparent)]
    Election(#[from] ha::ElectionError),
    #[error(transparent)]
    RestAuth(#[from] RestAuthError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("lost the leadership: {0}; stopped acting at once")]
    LeadershipLost(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: Config,
    /// `host:port` or the full scheduler endpoint URL.
    pub master: String,
    pub store: PathBuf,
    /// REST/metrics address, e.g. `127.0.0.1:0`.
    pub listen: String,
}

/// A running scheduler.
#[derive(Debug)]
pub struct Scheduler {
    rest_addr: SocketAddr,
    handle: Handle,
    cancel: CancellationToken,
    owner: Option<JoinHandle<Result<(), SchedulerError>>>,
    driver: Option<JoinHandle<Result<(), DriverError>>>,
    rest: JoinHandle<()>,
}

/// How long stopping waits for the REST API's requests in progress.
pub const REST_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The scheduler's clock.
pub fn now_millis() -> state::Millis {
    chrono::Utc::now().timestamp_millis()
}

impl Scheduler {
    /// Opens the store, registers the config file's apps and jobs, binds the REST address and
    /// starts subscribing.
    pub async fn start(options: Options) -> Result<Scheduler, SchedulerError> {
        let prepared = Scheduler::prepare(&options.config, &options.store, &options.listen).await?;
        prepared.start(&options.config, &options.master).await
    }

    /// Everything that can fail before the scheduler talks to anyone: the store is opened (and
    /// locked), the REST address bound, the config file's registrations applied and committed.
    /// A caller that starts other things (the embedded cluster) does so only after this.
    pub async fn prepare(
        config: &Config,
        store_path: &std::path::Path,
        listen: &str,
    ) -> Result<Prepared, SchedulerError> {
        let store = Store::Redb(RedbStore::open(store_path)?);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| SchedulerError::Listen {
                addr: listen.to_owned(),
                source,
            })?;
        Scheduler::prepare_with(config, store, listener).await
    }

    /// [`Scheduler::prepare`] on a store already open (the HA leader's ZooKeeper store, its
    /// epoch taken) and a REST socket already bound.
    pub async fn prepare_with(
        config: &Config,
        mut store: Store,
        listener: tokio::net::TcpListener,
    ) -> Result<Prepared, SchedulerError> {
        let state = store.load().await?;
        tracing::info!(
            store = %store.describe(),
            framework_id = state.framework_id().unwrap_or("(none yet)"),
            running = state.running().len(),
            failover = state.failover().len(),
            ready = state.ready_total(),
            "store loaded"
        );
        let rest_addr = listener
            .local_addr()
            .map_err(|source| SchedulerError::Listen {
                addr: "the REST socket".into(),
                source,
            })?;
        let auth = RestAuth::from_config(&config.rest)?;
        let framework_secret = match &config.framework.secret_file {
            Some(path) => Some(read_secret("the framework secret", path)?),
            None => None,
        };
        let now = now_millis();
        let mut engine = Engine::new(state, config.clone(), now);
        engine
            .apply_config_registrations(now)
            .map_err(SchedulerError::Registration)?;
        store.commit(&mut engine.state).await?;
        Ok(Prepared {
            store,
            engine,
            listener,
            rest_addr,
            gate: Gate::always_open(),
            epoch: None,
            auth,
            framework_secret,
        })
    }
}

/// A scheduler whose store is open and whose REST address is bound, not yet subscribing.
#[derive(Debug)]
pub struct Prepared {
    store: Store,
    engine: Engine,
    listener: tokio::net::TcpListener,
    rest_addr: SocketAddr,
    gate: Gate,
    epoch: Option<i32>,
    auth: RestAuth,
    /// `framework.secret_file`'s secret, sent as HTTP Basic with the principal.
    framework_secret: Option<Secret>,
}

impl Prepared {
    /// Where the REST API will listen.
    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    /// An HA leader's: acts on Mesos only while `gate` (its lease) is open; `epoch` is the
    /// one it took.
    pub fn leading(mut self, gate: Gate, epoch: i32) -> Prepared {
        self.gate = gate;
        self.epoch = Some(epoch);
        self
    }

    /// Starts subscribing to `master` and serving REST.
    pub async fn start(self, config: &Config, master: &str) -> Result<Scheduler, SchedulerError> {
        let Prepared {
            store,
            engine,
            listener,
            rest_addr,
            gate,
            epoch,
            auth,
            framework_secret,
        } = self;
        config
            .mesos
            .tls
            .check_masters("the masters' TLS settings", master)?;
        let client_config = ClientConfig {
            encoding: match config.mesos.encoding {
                config::EncodingConfig::Protobuf => Encoding::Protobuf,
                config::EncodingConfig::Json => Encoding::Json,
            },
            credentials: framework_secret.map(|secret| Credentials::Basic {
                principal: config.framework.principal.clone().unwrap_or_default(),
                secret: secret.expose().to_owned(),
            }),
            tls: config.mesos.tls.client(),
            ..ClientConfig::default()
        };
        let cancel = CancellationToken::new();
        let mut driver_config =
            driver::DriverConfig::from_config(config, Some(format!("http://{rest_addr}/")));
        driver_config.gate = gate.clone();
        let endpoint = if master.starts_with("zk://") {
            // The leading master comes from ZooKeeper, as Mesos' own detector finds it.
            let target: ZkTarget = master
                .parse()
                .map_err(|e: ZkTargetError| SchedulerError::Ha(e.to_string()))?;
            let session = connect_session(&target, &ZkOptions::default()).await?;
            let (leader_tx, leader_rx) = tokio::sync::watch::channel(None);
            tokio::spawn(detector::watch_leader(
                session,
                target.root.clone(),
                config.mesos.tls.scheme(),
                leader_tx,
                cancel.clone(),
            ));
            driver_config.leader = Some(leader_rx);
            // Replaced by the detected leader before the first SUBSCRIBE.
            format!(
                "{}://mesos-master.invalid/api/v1/scheduler",
                config.mesos.tls.scheme()
            )
        } else {
            driver_config.masters = driver::Masters::parse(master, config.mesos.tls.scheme());
            driver_config
                .masters
                .first()
                .map(str::to_owned)
                .ok_or_else(|| SchedulerError::NoMaster(master.to_owned()))?
        };
        let client = Client::new(endpoint, client_config).map_err(|error| match error {
            shardex_mesos::ApiError::TlsSetup { .. } => SchedulerError::MasterTls(error),
            error => SchedulerError::Master(error),
        })?;

        let (tx, rx) = mpsc::channel(1024);
        let handle = Handle {
            answers: Answers::Owner(tx.clone()),
            gate: gate.clone(),
            epoch,
            history: Some(store.reader()),
        };
        let owner = tokio::spawn(owner::run_owner(engine, store, rx, cancel.clone(), gate));
        let driver = tokio::spawn(driver::run(client, driver_config, tx, cancel.clone()));
        let app = rest::router(handle.clone(), auth);
        let rest_cancel = cancel.clone();
        let rest = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { rest_cancel.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "REST server failed");
            }
        });
        tracing::info!(rest = %rest_addr, master, "scheduler started");
        Ok(Scheduler {
            rest_addr,
            handle,
            cancel,
            owner: Some(owner),
            driver: Some(driver),
            rest,
        })
    }
}

impl Scheduler {
    /// Where the REST API, `/metrics` and `/health` listen.
    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Waits until the scheduler stops by itself: fenced out by another scheduler, or a store
    /// failure. Either way the process should exit non-zero.
    pub async fn wait(&mut self) -> SchedulerError {
        let (Some(owner), Some(driver)) = (self.owner.as_mut(), self.driver.as_mut()) else {
            return SchedulerError::TaskEnded("scheduler");
        };
        let error = tokio::select! {
            owner = owner => {
                self.owner = None;
                match owner {
                    Ok(Err(error)) => error,
                    _ => SchedulerError::TaskEnded("owner"),
                }
            }
            driver = driver => {
                self.driver = None;
                match driver {
                    Ok(Err(error)) => SchedulerError::Driver(error),
                    _ => SchedulerError::TaskEnded("driver"),
                }
            }
        };
        // Whatever stopped, stop the rest too.
        self.cancel.cancel();
        error
    }

    /// Stops subscribing and serving, and closes the store. Requests being answered get up to
    /// [`REST_DRAIN`] to finish; connections still busy then (a client stalled mid-request)
    /// are closed, so that stopping never waits on a client.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        if let Some(driver) = self.driver {
            let _ = driver.await;
        }
        let mut rest = self.rest;
        if tokio::time::timeout(REST_DRAIN, &mut rest).await.is_err() {
            tracing::warn!(
                seconds = REST_DRAIN.as_secs(),
                "REST connections still busy; closing them"
            );
            rest.abort();
        }
        drop(self.handle);
        if let Some(owner) = self.owner {
            let _ = owner.await;
        }
    }
}
