//! An embedded single-machine Mesos cluster: a master and one agent in this process, serving
//! the real v1 scheduler and executor HTTP APIs on loopback and launching real executor
//! processes — what `mesos-local` is to Mesos, made to behave like Mesos 1.12 wherever a
//! framework or an executor can tell the difference.
//!
//! It knows nothing of Shardex: any v1 executor runs on it (ours, pymesos', …), in protobuf or
//! JSON. Start it with [`LocalCluster::start`]; point a scheduler at
//! [`LocalCluster::master_url`]. Tests get controls real Mesos only offers through process
//! signals or a broken network: [`LocalCluster::restart_agent`],
//! [`LocalCluster::partition_agent`] / [`LocalCluster::heal_agent`],
//! [`LocalCluster::drop_executor_stream`], and logs of every call each side received.
//!
//! Reading order: [`resources`] (what is offered), [`validation`] (stateless checks), `http`
//! (the two endpoints), `runtime` (the single owner task and its messages), `master` (with
//! `master/allocator.rs` and `master/launch.rs`), `agent` (with `agent/containers.rs`,
//! `agent/recovery.rs`, [`status_updates`], [`fetcher`] and [`launcher`]; `agent/files.rs`
//! serves the sandboxes at `/files/*`). [`tls`] serves both APIs over `https://` when
//! [`LocalClusterConfig::tls`] is set.

mod agent;
mod agent_meta;
pub mod credentials;
pub mod fetcher;
mod http;
pub mod jwt;
pub mod launcher;
mod master;
pub mod resources;
mod runtime;
pub mod status_updates;
pub mod tls;
pub mod validation;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

pub use agent::RestartTimings;
/// The agent's `/files` endpoints, as `(method, path)` (any method is answered).
pub use agent::files::ENDPOINTS as AGENT_FILES_ENDPOINTS;
pub use resources::{ResourceError, Resources};
pub use tls::LocalTls;

use runtime::{AgentPhase, Control, Msg, Owner};
use shardex_mesos::proto::v1::{self, executor, scheduler};

/// A call one of the endpoints received, as a test sees it.
#[derive(Debug, Clone)]
pub struct ObservedCall<C> {
    /// The request path (`/api/v1/executor`, `/slave(1)/api/v1/executor`, …).
    pub path: String,
    pub content_type: Option<String>,
    /// The `Mesos-Stream-Id` header: which subscription sent it (none on SUBSCRIBE).
    pub stream_id: Option<String>,
    /// The body exactly as received.
    pub raw: Bytes,
    /// The decoded call, when the body could be decoded.
    pub call: Option<C>,
    /// The HTTP status answered.
    pub status: u16,
}

/// A task the master holds as not yet ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTask {
    pub framework_id: String,
    pub task_id: String,
    /// The latest state the master knows (`TASK_STAGING` until the first update).
    pub state: v1::TaskState,
    /// Its agent is unreachable (partitioned): the task may still run there.
    pub unreachable: bool,
}

/// Settings of an embedded cluster. [`Default`] gives Mesos' defaults on loopback.
#[derive(Debug, Clone)]
pub struct LocalClusterConfig {
    /// The agent's `--work_dir`; sandboxes go under `slaves/<agent>/frameworks/…`. `None`: a
    /// fresh directory under the system temp dir (kept afterwards for inspection).
    pub work_dir: Option<PathBuf>,
    /// The agent's `--resources`, e.g. `cpus:4;mem:4096;disk:10240;ports:[31000-32000]`.
    pub resources: String,
    /// Hostname in `MasterInfo`, `AgentInfo` and offers.
    pub hostname: String,
    /// Address both endpoints bind (loopback by default).
    pub ip: Ipv4Addr,
    /// Master port; 0 picks a free one.
    pub master_port: u16,
    /// Agent port; 0 picks a free one.
    pub agent_port: u16,
    /// `--executor_registration_timeout` (fetching counts against it).
    pub executor_registration_timeout: Duration,
    /// `--executor_reregistration_timeout` (also `MESOS_SUBSCRIPTION_BACKOFF_MAX`).
    pub executor_reregistration_timeout: Duration,
    /// `--executor_shutdown_grace_period`.
    pub executor_shutdown_grace_period: Duration,
    /// `--recovery_timeout` (only passed to checkpointing executors as `MESOS_RECOVERY_TIMEOUT`).
    pub recovery_timeout: Duration,
    /// Master → scheduler heartbeat interval (`heartbeat_interval_seconds`).
    pub heartbeat_interval: Duration,
    /// The allocator's batch interval (`--allocation_interval`): freed and declined resources
    /// are offered again on its ticks.
    pub allocation_interval: Duration,
    /// First retry of an unacknowledged status update (doubles up to 10 min).
    pub status_update_retry_interval: Duration,
    /// Agent → executor HEARTBEAT interval (30 min in Mesos, first one after an interval).
    pub executor_heartbeat_interval: Duration,
    /// Executor authentication (`--authenticate_http_executors` with a `--jwt_secret_key`).
    pub executor_authentication: bool,
    /// Framework authentication (`--authenticate_http_frameworks` with `--credentials`): only
    /// these principals may use the scheduler API, with HTTP Basic.
    pub framework_credentials: Option<credentials::Credentials>,
    /// Phase lengths of [`LocalCluster::restart_agent`].
    pub restart_timings: RestartTimings,
    /// How many calls per endpoint the observation log keeps (the most recent ones), so a
    /// long-running standalone cluster does not grow without bound.
    pub call_log_limit: usize,
    /// `--max_completed_frameworks`: removed frameworks the master remembers (their ids may
    /// not subscribe again), the oldest forgotten first. Mesos' default, 50.
    pub max_completed_frameworks: usize,
    /// Serve both APIs over TLS (`https://`), as Mesos with `LIBPROCESS_SSL_ENABLED`; executors
    /// then get the libprocess SSL environment ([`tls`]).
    pub tls: Option<LocalTls>,
}

impl Default for LocalClusterConfig {
    fn default() -> Self {
        LocalClusterConfig {
            work_dir: None,
            resources: "cpus:4;mem:4096;disk:10240;ports:[31000-32000]".to_owned(),
            hostname: "127.0.0.1".to_owned(),
            ip: Ipv4Addr::LOCALHOST,
            master_port: 0,
            agent_port: 0,
            executor_registration_timeout: Duration::from_secs(60),
            executor_reregistration_timeout: Duration::from_secs(2),
            executor_shutdown_grace_period: Duration::from_secs(5),
            recovery_timeout: Duration::from_secs(15 * 60),
            heartbeat_interval: Duration::from_secs(15),
            allocation_interval: Duration::from_secs(1),
            status_update_retry_interval: status_updates::RETRY_INTERVAL_MIN,
            executor_heartbeat_interval: Duration::from_secs(30 * 60),
            executor_authentication: false,
            framework_credentials: None,
            restart_timings: RestartTimings::default(),
            call_log_limit: 10_000,
            max_completed_frameworks: 50,
            tls: None,
        }
    }
}

/// Why the cluster could not start or a control failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("invalid agent resources '{resources}': {source}")]
    Resources {
        resources: String,
        #[source]
        source: ResourceError,
    },
    #[error("cannot listen on {address} for the {what}: {source}")]
    Bind {
        what: &'static str,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the work directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serve TLS: {0}")]
    Tls(#[from] shardex_mesos::TlsError),
    #[error("{0}")]
    Config(String),
    #[error("the embedded cluster has stopped")]
    Stopped,
    #[error("{0}")]
    Control(String),
}

/// A running embedded cluster. Dropping it kills every executor process group.
#[derive(Debug)]
pub struct LocalCluster {
    tx: mpsc::UnboundedSender<Msg>,
    master_address: SocketAddr,
    agent_address: SocketAddr,
    master_id: String,
    agent_id: String,
    work_dir: PathBuf,
    /// `https` when serving TLS, else `http`.
    scheme: &'static str,
    /// A temporary work dir this cluster created: removed when it stops.
    owns_work_dir: bool,
    owner: Option<tokio::task::JoinHandle<()>>,
}

impl LocalCluster {
    /// Binds both endpoints and starts serving. Must be called inside a tokio runtime.
    pub async fn start(config: LocalClusterConfig) -> Result<LocalCluster, LocalError> {
        let resources =
            Resources::parse(&config.resources).map_err(|source| LocalError::Resources {
                resources: config.resources.clone(),
                source,
            })?;
        let server_tls = match &config.tls {
            Some(settings) => {
                if settings.require_client_cert && settings.ca_file.is_none() {
                    return Err(LocalError::Config(
                        "requiring client certificates needs the CA that signs them: set \
                         --tls-ca-file"
                            .into(),
                    ));
                }
                Some(tls::ServerTls::new(settings)?)
            }
            None => None,
        };
        let executor_environment = config
            .tls
            .as_ref()
            .map(LocalTls::executor_environment)
            .unwrap_or_default();
        let bind = |what: &'static str, port: u16| {
            let address = SocketAddr::from((config.ip, port));
            async move {
                tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|source| LocalError::Bind {
                        what,
                        address,
                        source,
                    })
            }
        };
        let master_listener = bind("master", config.master_port).await?;
        let agent_listener = bind("agent", config.agent_port).await?;
        let local = |listener: &tokio::net::TcpListener, what: &'static str, port: u16| {
            listener.local_addr().map_err(|source| LocalError::Bind {
                what,
                address: SocketAddr::from((config.ip, port)),
                source,
            })
        };
        let master_address = local(&master_listener, "master", config.master_port)?;
        let agent_address = local(&agent_listener, "agent", config.agent_port)?;

        let master_id = uuid::Uuid::new_v4().to_string();
        let (work_dir, owns_work_dir) = match &config.work_dir {
            Some(dir) => (dir.clone(), false),
            None => (
                std::env::temp_dir().join(format!("shardex-local-{}", uuid::Uuid::new_v4())),
                true,
            ),
        };
        std::fs::create_dir_all(&work_dir).map_err(|source| LocalError::WorkDir {
            path: work_dir.clone(),
            source,
        })?;
        // Like a real agent restarted on the same --work_dir, the agent keeps the id it
        // checkpointed: a new master then answers reconciliation for the tasks it ran with
        // TASK_GONE ("unknown to the agent") instead of TASK_UNKNOWN ("agent unknown"), which
        // would block their items for the scheduler's suspect timeout.
        let agent_id = match agent_meta::recover_id(&work_dir) {
            Some(id) => {
                tracing::info!(agent_id = %id, "embedded agent recovered its id from the work dir");
                id
            }
            None => {
                let id = format!("{master_id}-S0");
                agent_meta::checkpoint_id(&work_dir, &id).map_err(|source| {
                    LocalError::WorkDir {
                        path: work_dir.clone(),
                        source,
                    }
                })?;
                id
            }
        };

        let (tx, rx) = mpsc::unbounded_channel();
        let (phase_tx, phase_rx) = watch::channel(AgentPhase::Serving);
        let jwt_secret = config.executor_authentication.then(|| {
            let secret: [u8; 32] = rand::random();
            Arc::new(secret.to_vec())
        });
        let master_server = http::serve_master(
            master_listener,
            server_tls.clone(),
            http::MasterHttp {
                tx: tx.clone(),
                credentials: config.framework_credentials.clone().map(Arc::new),
            },
        );
        let agent_http = http::AgentHttp {
            tx: tx.clone(),
            phase: phase_rx,
            jwt_secret: jwt_secret.clone(),
            files: Default::default(),
        };
        let agent_server =
            http::serve_agent(agent_listener, server_tls.clone(), agent_http.clone());
        let master = master::Master::new(
            master_id.clone(),
            master::MasterConfig {
                heartbeat_interval: config.heartbeat_interval,
                allocation_interval: config.allocation_interval,
                hostname: config.hostname.clone(),
                ip: config.ip,
                port: master_address.port(),
                update_log_limit: config.call_log_limit,
                max_completed_frameworks: config.max_completed_frameworks,
            },
            master::AgentViewConfig {
                id: agent_id.clone(),
                hostname: config.hostname.clone(),
                ip: config.ip,
                port: agent_address.port(),
                total: resources.clone(),
            },
        );
        let agent = agent::Agent::new(
            agent::AgentConfig {
                id: agent_id.clone(),
                hostname: config.hostname.clone(),
                ip: config.ip,
                port: agent_address.port(),
                work_dir: work_dir.clone(),
                resources,
                registration_timeout: config.executor_registration_timeout,
                reregistration_timeout: config.executor_reregistration_timeout,
                shutdown_grace_period: config.executor_shutdown_grace_period,
                recovery_timeout: config.recovery_timeout,
                status_update_retry: config.status_update_retry_interval,
                executor_heartbeat_interval: config.executor_heartbeat_interval,
                jwt_secret: jwt_secret.map(|s| s.as_ref().clone()),
                restart: config.restart_timings.clone(),
                tls: server_tls,
                executor_environment,
            },
            agent_http,
            agent_server,
        );
        let owner = Owner {
            master,
            agent,
            scheduler_calls: VecDeque::new(),
            executor_calls: VecDeque::new(),
            call_log_limit: config.call_log_limit,
            phase: phase_tx,
            master_server,
        };
        let owner = tokio::spawn(owner.run(tx.clone(), rx));
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(
            master = %master_address,
            agent = %agent_address,
            scheme,
            work_dir = %work_dir.display(),
            "embedded Mesos cluster started"
        );
        Ok(LocalCluster {
            tx,
            master_address,
            agent_address,
            master_id,
            agent_id,
            work_dir,
            scheme,
            owns_work_dir,
            owner: Some(owner),
        })
    }

    /// `http://IP:PORT/api/v1/scheduler` (`https://` when serving TLS).
    pub fn master_url(&self) -> String {
        format!("{}://{}/api/v1/scheduler", self.scheme, self.master_address)
    }

    /// The master's `IP:PORT`.
    pub fn master_endpoint(&self) -> SocketAddr {
        self.master_address
    }

    /// The agent's `IP:PORT` (what executors get in `MESOS_AGENT_ENDPOINT`).
    pub fn agent_endpoint(&self) -> SocketAddr {
        self.agent_address
    }

    /// `http://IP:PORT/api/v1/executor` (`https://` when serving TLS).
    pub fn agent_url(&self) -> String {
        format!("{}://{}/api/v1/executor", self.scheme, self.agent_address)
    }

    pub fn master_id(&self) -> &str {
        &self.master_id
    }

    /// `<master id>-S0`.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    async fn control<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> Result<T, LocalError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Control(make(reply)))
            .map_err(|_| LocalError::Stopped)?;
        answer.await.map_err(|_| LocalError::Stopped)
    }

    /// Simulates SIGTERM of the agent process and, after `down_for`, a restart with the same
    /// flags and checkpoint recovery. Returns once the agent is down; the restart then runs on
    /// its own: 404, then `503 Agent has not finished recovery`, then the re-registration
    /// window (SUBSCRIBE accepted, UPDATE/MESSAGE 503), then un-reregistered executors are
    /// SIGKILLed and the agent re-registers with the master (OFFERS, pending updates twice).
    pub async fn restart_agent(&self, down_for: Duration) -> Result<(), LocalError> {
        self.control(|reply| Control::RestartAgent { down_for, reply })
            .await?
            .map_err(LocalError::Control)
    }

    /// Cuts the network between master and agent, as a partition that outlasts the master's
    /// agent health checks does (`Master::markUnreachable`, "health check timed out"), without
    /// the ≈75 s wait. Returns once the master has marked the agent unreachable:
    ///
    /// - every framework gets, for each task the master holds on the agent (terminal ones
    ///   awaiting acknowledgement included), an UPDATE `TASK_UNREACHABLE` (PARTITION_AWARE) or
    ///   `TASK_LOST`, `SOURCE_MASTER`, `REASON_AGENT_REMOVED`, message "health check timed out",
    ///   with `unreachable_time` and without uuid; then RESCIND of the agent's offers; then a
    ///   FAILURE naming only the agent;
    /// - no offers for the agent; explicit reconciliation of its tasks (with the agent id)
    ///   answers `TASK_UNREACHABLE` / `TASK_LOST` "Reconciliation: Task is unreachable" with the
    ///   same `unreachable_time`; implicit reconciliation leaves them out; KILL, SHUTDOWN,
    ///   MESSAGE and ACKNOWLEDGE for them are not held but dropped (a KILL is answered by
    ///   reconciliation), as the master no longer knows the agent;
    /// - executors keep running and see nothing: their updates are ACKNOWLEDGED and kept
    ///   pending by the agent, which cannot forward them; executor exits and messages are lost.
    ///
    /// Refused while the agent restarts (see [`LocalCluster::restart_agent`]) or is already
    /// partitioned.
    pub async fn partition_agent(&self) -> Result<(), LocalError> {
        self.control(Control::PartitionAgent)
            .await?
            .map_err(LocalError::Control)
    }

    /// Ends a [`LocalCluster::partition_agent`]: the agent re-registers (`__reregisterSlave`).
    /// For each task it reports, every framework (PARTITION_AWARE or not: since Mesos 1.5 the
    /// master no longer kills them) gets an UPDATE with the task's current state as the agent
    /// knows it, `SOURCE_MASTER`, `REASON_AGENT_REREGISTERED`, message "Unreachable agent
    /// re-reregistered", without uuid; offers resume; then the agent re-sends every pending
    /// update, twice, as after a restart. Frameworks removed meanwhile are shut down on the
    /// agent.
    pub async fn heal_agent(&self) -> Result<(), LocalError> {
        self.control(Control::HealAgent)
            .await?
            .map_err(LocalError::Control)
    }

    /// Breaks one executor's subscription as a broken connection would, without telling the
    /// agent. Returns whether the executor had one.
    pub async fn drop_executor_stream(&self, executor_id: &str) -> Result<bool, LocalError> {
        self.control(|reply| Control::DropExecutorStream {
            executor_id: executor_id.to_owned(),
            reply,
        })
        .await
    }

    /// The pid of a live executor's process (its process group leader).
    pub async fn executor_pid(&self, executor_id: &str) -> Result<Option<u32>, LocalError> {
        self.control(|reply| Control::ExecutorPid {
            executor_id: executor_id.to_owned(),
            reply,
        })
        .await
    }

    /// The executor calls the agent received (the last `call_log_limit`), in arrival order.
    pub async fn executor_calls(&self) -> Result<Vec<ObservedCall<executor::Call>>, LocalError> {
        self.control(Control::ExecutorCalls).await
    }

    /// The tasks the master holds as not yet ended (`TASK_STAGING` to `TASK_KILLING`, and
    /// those of an unreachable agent), by framework: what `/master/tasks` lists as active on a
    /// real master. Fault suites sample it to check that no item ever has two at once.
    pub async fn live_tasks(&self) -> Result<Vec<LiveTask>, LocalError> {
        self.control(Control::LiveTasks).await
    }

    /// The status updates the agent took and the scheduler has not acknowledged yet (its status
    /// update manager's streams): empty once everything is acknowledged.
    pub async fn pending_updates(&self) -> Result<Vec<v1::TaskStatus>, LocalError> {
        self.control(Control::PendingUpdates).await
    }

    /// Every scheduler subscription goes half-open: the master keeps writing heartbeats and
    /// events into it, and none arrives. A scheduler must notice the missing heartbeats and
    /// subscribe again (the new subscription is sound). Returns how many went silent.
    pub async fn silence_schedulers(&self) -> Result<usize, LocalError> {
        self.control(Control::SilenceSchedulers).await
    }

    /// Delivers again, newest first, the last `count` status updates the master forwarded to
    /// schedulers: duplicates, each after updates that followed it. Acknowledging one again is
    /// answered 202 and ignored by the agent, as by a real one. Returns the updates re-sent.
    pub async fn redeliver_updates(&self, count: usize) -> Result<Vec<v1::TaskStatus>, LocalError> {
        self.control(|reply| Control::RedeliverUpdates { count, reply })
            .await
    }

    /// The status updates the master took from the agent and forwarded to schedulers (the last
    /// `call_log_limit`), in order: what a real master records in each task's `statuses`. An
    /// update the agent ignored (one for a task it already ended) is not among them.
    pub async fn forwarded_updates(&self) -> Result<Vec<v1::TaskStatus>, LocalError> {
        self.control(Control::ForwardedUpdates).await
    }

    /// The scheduler calls the master received (the last `call_log_limit`), in arrival order.
    pub async fn scheduler_calls(&self) -> Result<Vec<ObservedCall<scheduler::Call>>, LocalError> {
        self.control(Control::SchedulerCalls).await
    }

    /// Stops serving and SIGKILLs every executor process group. Always terminates.
    pub async fn shutdown(mut self) {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Msg::Control(Control::Shutdown(reply))).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), answer).await;
        }
        if let Some(owner) = self.owner.take() {
            owner.abort();
            let _ = owner.await;
        }
        self.remove_own_work_dir();
    }

    fn remove_own_work_dir(&mut self) {
        if self.owns_work_dir {
            self.owns_work_dir = false;
            if let Err(error) = std::fs::remove_dir_all(&self.work_dir) {
                tracing::warn!(work_dir = %self.work_dir.display(), %error, "cannot remove the temporary work dir");
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // Aborting the owner drops the agent, whose Drop kills every executor process group.
        if let Some(owner) = self.owner.take() {
            owner.abort();
        }
        self.remove_own_work_dir();
    }
}
