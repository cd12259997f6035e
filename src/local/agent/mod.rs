//! The embedded agent: executors and their containers (a sandbox and a process group), the
//! task lifecycle as the agent sees it, the executor API's stateful checks, and the simulated
//! restart with checkpoint recovery (`src/slave/slave.cpp`, `src/slave/http.cpp`).
//!
//! Real-agent facts reproduced here (observed on a Mesos 1.12 agent, see the captures in
//! `tests/data/real-mesos/`, and read in `src/slave/slave.cpp`):
//! - executor updates are forwarded with `agent_id`, `timestamp` and a `container_status`
//!   added, without `executor_id`; agent-generated ones carry `executor_id` and no
//!   `container_status`;
//! - the executor gets ACKNOWLEDGED once the agent has recorded an update (before the
//!   scheduler acknowledges it); updates for a task whose terminal update is not yet
//!   acknowledged are acknowledged and dropped; updates for a task the agent has forgotten are
//!   forwarded and never acknowledged;
//! - on executor exit the scheduler first gets FAILURE (raw wait status), then a TASK_FAILED /
//!   REASON_EXECUTOR_TERMINATED (or the pending termination's state) per unfinished task;
//! - after a restart, STAGING tasks missing from `unacknowledged_tasks` are dropped, an executor
//!   that never got a task is shut down, executors that do not resubscribe within the
//!   re-registration timeout are SIGKILLed with their process tree, and every pending update
//!   is sent to the master twice when the agent re-registers.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::http::{AgentHttp, ServerHandle};
use super::jwt::Claims;
use super::resources::Resources;
use super::runtime::{AgentPhase, Ctx, EventStream, Reply, Timer, ToAgent, ToMaster, now_secs};
use super::status_updates::{AckOutcome, Forward, StatusUpdateManager, UpdateOutcome};
use super::validation::has_capability;
use shardex_mesos::Encoding;
use shardex_mesos::agent_info::AgentInfo;
use shardex_mesos::duration::MesosDuration;
use shardex_mesos::proto::v1::{
    self, TaskState, executor, framework_info::capability::Type as Capability, task_status,
};
use shardex_mesos::states::is_terminal;
use shardex_mesos::uuid::new_update_uuid;

mod containers;
pub(crate) mod files;
mod partition;
mod recovery;

/// How long each phase of a simulated restart lasts (measured on a real agent, see
/// testdata/real-mesos/recovery/README.md).
#[derive(Debug, Clone)]
pub struct RestartTimings {
    /// Listening but answering `404 Not Found.` (tens of ms on a real agent).
    pub not_ready: Duration,
    /// `503 Agent has not finished recovery` for every call.
    pub recovering_state: Duration,
    /// From "Finished recovery" to re-registration with the master (≈0.86 s).
    pub reregister_delay: Duration,
    /// A restarted agent is no longer its executors' parent and notices their exit by polling
    /// (≈1.2–1.5 s late).
    pub recovered_exit_delay: Duration,
}

impl Default for RestartTimings {
    fn default() -> Self {
        RestartTimings {
            not_ready: Duration::from_millis(30),
            recovering_state: Duration::from_millis(40),
            reregister_delay: Duration::from_millis(850),
            recovered_exit_delay: Duration::from_millis(1250),
        }
    }
}

/// Settings of the agent.
#[derive(Debug, Clone)]
pub(crate) struct AgentConfig {
    pub id: String,
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub work_dir: PathBuf,
    pub resources: Resources,
    pub registration_timeout: Duration,
    pub reregistration_timeout: Duration,
    pub shutdown_grace_period: Duration,
    pub recovery_timeout: Duration,
    pub status_update_retry: Duration,
    /// Agent → executor HEARTBEAT events (Mesos: every 30 minutes, first after 30 minutes).
    pub executor_heartbeat_interval: Duration,
    pub jwt_secret: Option<Vec<u8>>,
    pub restart: RestartTimings,
    /// The listener's TLS (kept to listen again after a restart).
    pub tls: Option<crate::tls::ServerTls>,
    /// What Mesos' `--executor_environment_variables` gives every executor (before the
    /// `MESOS_*` variables; `CommandInfo.environment` wins).
    pub executor_environment: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecutorState {
    Registering,
    Running,
    Terminating,
    Terminated,
}

#[derive(Debug, Clone)]
struct Termination {
    state: TaskState,
    reason: task_status::Reason,
    message: String,
}

#[derive(Debug)]
struct AgentTask {
    state: TaskState,
    /// The latest update recorded for the task (without `data`), and the latest
    /// `container_status` any of its updates carried: what a re-registering agent reports
    /// (`Executor::updateTaskState` keeps them in `Task.statuses`).
    latest: Option<v1::TaskStatus>,
    container_status: Option<v1::ContainerStatus>,
}

impl AgentTask {
    fn staging() -> AgentTask {
        AgentTask {
            state: TaskState::TaskStaging,
            latest: None,
            container_status: None,
        }
    }

    fn record(&mut self, status: &v1::TaskStatus) {
        self.state = state_of(status);
        if status.container_status.is_some() {
            self.container_status = status.container_status.clone();
        }
        let mut latest = status.clone();
        latest.data = None;
        self.latest = Some(latest);
    }
}

#[derive(Debug)]
struct Executor {
    id: String,
    info: v1::ExecutorInfo,
    container_id: String,
    state: ExecutorState,
    stream: Option<EventStream>,
    queued: Vec<v1::TaskInfo>,
    launched: BTreeMap<String, AgentTask>,
    /// Terminal tasks whose terminal update the scheduler has not acknowledged yet.
    terminated: BTreeMap<String, AgentTask>,
    pid: Option<u32>,
    /// The fetch in progress, aborted if the container is destroyed meanwhile.
    launch: Option<AbortHandle>,
    plan: Option<containers::LaunchPlan>,
    pending_termination: Option<Termination>,
    /// Whether any task of this executor ever got an update from the executor itself.
    sent_update: bool,
    /// Still running after a restart and not resubscribed yet.
    awaiting_reregistration: bool,
    /// Survived a restart: its exit is noticed late.
    recovered: bool,
    /// Counts subscriptions, so heartbeats of an earlier one stop.
    subscriptions: u64,
}

impl Executor {
    /// Sends a LAUNCH and tracks the task as delivered (`TASK_STAGING` until its first update).
    fn deliver(&mut self, task: v1::TaskInfo) {
        let task_id = task.task_id.value.clone();
        self.send(&executor::Event {
            r#type: Some(executor::event::Type::Launch as i32),
            launch: Some(executor::event::Launch { task }),
            ..Default::default()
        });
        self.launched.insert(task_id, AgentTask::staging());
    }

    fn send(&self, event: &executor::Event) {
        match &self.stream {
            Some(stream) => {
                stream.send(event);
            }
            None => tracing::warn!(
                executor = %self.id,
                "dropping an event for an executor without a subscription"
            ),
        }
    }

    fn incomplete(&self) -> bool {
        !self.launched.is_empty() || !self.terminated.is_empty() || !self.queued.is_empty()
    }

    fn ever_sent_task(&self) -> bool {
        !self.launched.is_empty() || self.sent_update
    }

    fn holds_task(&self, task_id: &str) -> bool {
        self.launched.contains_key(task_id)
            || self.terminated.contains_key(task_id)
            || self.queued.iter().any(|t| t.task_id.value == task_id)
    }
}

#[derive(Debug)]
struct Framework {
    info: v1::FrameworkInfo,
    terminating: bool,
    executors: BTreeMap<String, Executor>,
}

impl Framework {
    fn partition_aware(&self) -> bool {
        has_capability(&self.info, Capability::PartitionAware)
    }

    fn checkpoint(&self) -> bool {
        self.info.checkpoint.unwrap_or(false)
    }
}

pub(crate) struct Agent {
    config: AgentConfig,
    frameworks: BTreeMap<String, Framework>,
    sum: StatusUpdateManager,
    http: AgentHttp,
    server: Option<ServerHandle>,
    /// The process is "dead" (between SIGTERM and the restart).
    down: bool,
    /// UPDATE and MESSAGE get 503 (the re-registration window after a restart).
    recovering: bool,
    /// From a simulated SIGTERM until the restarted agent has re-registered with the master.
    restarting: bool,
    /// Cut off from the master by a network partition (see `partition.rs`).
    partitioned: bool,
    restart_generation: u64,
    /// Executor exits that happened while the agent was down.
    buffered_exits: Vec<(String, Option<i32>)>,
    /// ACKNOWLEDGED events to send after SUBSCRIBED while a subscription is being handled.
    deferred_acks: Option<Vec<executor::Event>>,
}

fn event(kind: executor::event::Type) -> executor::Event {
    executor::Event {
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

fn state_of(status: &v1::TaskStatus) -> TaskState {
    TaskState::try_from(status.state).unwrap_or(TaskState::TaskStaging)
}

impl Agent {
    pub fn new(config: AgentConfig, http: AgentHttp, server: ServerHandle) -> Agent {
        Agent {
            sum: StatusUpdateManager::new(config.status_update_retry),
            config,
            frameworks: BTreeMap::new(),
            http,
            server: Some(server),
            down: false,
            recovering: false,
            restarting: false,
            partitioned: false,
            restart_generation: 0,
            buffered_exits: Vec::new(),
            deferred_acks: None,
        }
    }

    fn endpoint(&self) -> String {
        format!("{}:{}", self.config.ip, self.config.port)
    }

    /// `AgentInfo` as the agent sends it in SUBSCRIBED (resources without role, and the v0
    /// `checkpoint` field a real agent carries).
    pub fn agent_info(&self) -> AgentInfo {
        AgentInfo {
            hostname: self.config.hostname.clone(),
            port: Some(i32::from(self.config.port)),
            resources: self.config.resources.to_agent_protos(),
            attributes: Vec::new(),
            id: Some(v1::AgentId {
                value: self.config.id.clone(),
            }),
            domain: None,
            checkpoint: Some(true),
        }
    }

    fn executor_mut(&mut self, framework_id: &str, executor_id: &str) -> Option<&mut Executor> {
        self.frameworks
            .get_mut(framework_id)?
            .executors
            .get_mut(executor_id)
    }

    fn find_container(&self, container_id: &str) -> Option<(String, String)> {
        self.frameworks.iter().find_map(|(fw, framework)| {
            framework
                .executors
                .values()
                .find(|e| e.container_id == container_id)
                .map(|e| (fw.clone(), e.id.clone()))
        })
    }

    // -----------------------------------------------------------------------------------------
    // Executor calls

    /// A validated executor call (HEARTBEAT and the stateless checks are done by the HTTP layer).
    pub fn call(
        &mut self,
        ctx: &mut Ctx,
        call: executor::Call,
        accept: Encoding,
        claims: Option<Claims>,
    ) -> Reply {
        use executor::call::Type;
        let kind = call
            .r#type
            .and_then(|t| Type::try_from(t).ok())
            .unwrap_or(Type::Unknown);
        if self.down {
            return Reply::error(503, "Agent has not finished recovery");
        }
        // `Http::executor`: while recovering only SUBSCRIBE and HEARTBEAT get through, and this
        // comes before the framework lookup.
        if self.recovering && kind != Type::Subscribe && kind != Type::Heartbeat {
            return Reply::error(503, "Agent has not finished recovery");
        }
        let framework_id = call.framework_id.value.clone();
        let executor_id = call.executor_id.value.clone();
        let Some(framework) = self.frameworks.get(&framework_id) else {
            return Reply::error(400, "Framework cannot be found");
        };
        let Some(executor) = framework.executors.get(&executor_id) else {
            return Reply::error(400, "Executor cannot be found");
        };
        if let Some(claims) = &claims
            && (claims.framework_id != framework_id
                || claims.executor_id != executor_id
                || claims.container_id != executor.container_id)
        {
            return Reply::error(
                403,
                format!(
                    "The claims of the authenticated executor (fid '{}', eid '{}', cid '{}') \
                     do not match the call's framework '{framework_id}', executor \
                     '{executor_id}' and container '{}'",
                    claims.framework_id,
                    claims.executor_id,
                    claims.container_id,
                    executor.container_id
                ),
            );
        }
        if executor.state == ExecutorState::Registering && kind != Type::Subscribe {
            return Reply::error(403, "Executor is not subscribed");
        }
        match kind {
            Type::Subscribe => {
                let subscribe = call.subscribe.unwrap_or_default();
                self.subscribe(ctx, &framework_id, &executor_id, subscribe, accept)
            }
            Type::Update => {
                if let Some(update) = call.update {
                    self.status_update(ctx, &framework_id, update.status);
                }
                Reply::Accepted
            }
            Type::Message => {
                if let Some(message) = call.message {
                    ctx.send_to_master(ToMaster::ExecutorMessage {
                        framework_id,
                        executor_id,
                        data: message.data,
                    });
                }
                Reply::Accepted
            }
            Type::Heartbeat => Reply::Accepted,
            Type::Unknown => Reply::error(501, "501 Not Implemented."),
        }
    }

    fn subscribe(
        &mut self,
        ctx: &mut Ctx,
        framework_id: &str,
        executor_id: &str,
        subscribe: executor::call::Subscribe,
        accept: Encoding,
    ) -> Reply {
        let (stream, rx) = EventStream::new(accept);
        let reply = Reply::Stream {
            stream_id: None,
            encoding: accept,
            rx,
        };
        let agent_info = self.agent_info();
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return Reply::error(400, "Framework cannot be found");
        };
        let terminating = framework.terminating;
        let partition_aware = framework.partition_aware();
        let framework_info = framework.info.clone();
        let Some(executor) = framework.executors.get_mut(executor_id) else {
            return Reply::error(400, "Executor cannot be found");
        };
        if terminating
            || matches!(
                executor.state,
                ExecutorState::Terminating | ExecutorState::Terminated
            )
        {
            tracing::warn!(executor = %executor_id, "shutting down a subscribing executor");
            stream.send(&event(executor::event::Type::Shutdown));
            stream.end();
            return reply;
        }
        if let Some(old) = executor.stream.take() {
            tracing::warn!(executor = %executor_id, "closing the executor's earlier subscription");
            old.end();
        }
        executor.state = ExecutorState::Running;
        executor.awaiting_reregistration = false;
        executor.stream = Some(stream.clone());
        executor.subscriptions += 1;
        ctx.schedule(
            self.config.executor_heartbeat_interval,
            Timer::ExecutorHeartbeat {
                container_id: executor.container_id.clone(),
                subscription: executor.subscriptions,
            },
        );
        let unacked_tasks: Vec<String> = subscribe
            .unacknowledged_tasks
            .iter()
            .map(|t| t.task_id.value.clone())
            .collect();
        let dropped: Vec<String> = executor
            .launched
            .iter()
            .filter(|(id, task)| {
                task.state == TaskState::TaskStaging && !unacked_tasks.contains(id)
            })
            .map(|(id, _)| id.clone())
            .collect();

        // Replayed updates go through the normal path; their ACKNOWLEDGED events follow
        // SUBSCRIBED, as a real agent's do (it checkpoints them first).
        self.deferred_acks = Some(Vec::new());
        for update in subscribe.unacknowledged_updates {
            self.status_update(ctx, framework_id, update.status);
        }
        let state = if partition_aware {
            TaskState::TaskDropped
        } else {
            TaskState::TaskLost
        };
        for task_id in dropped {
            tracing::info!(task = %task_id, "transitioning a STAGED task unknown to its executor");
            let status = self.agent_status(
                &task_id,
                state,
                "Task launched during agent restart",
                task_status::Reason::AgentRestarted,
                Some(executor_id),
            );
            self.status_update(ctx, framework_id, status);
        }
        let acks = self.deferred_acks.take().unwrap_or_default();
        let grace = self.grace_period_of(framework_id, executor_id);
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            return reply;
        };
        if !executor.ever_sent_task() && executor.queued.is_empty() {
            tracing::warn!(
                executor = %executor_id,
                "shutting down an executor that was never sent a task and whose queued tasks \
                 were all killed before delivery"
            );
            let container_id = executor.container_id.clone();
            executor.state = ExecutorState::Terminating;
            executor.send(&event(executor::event::Type::Shutdown));
            for ack in &acks {
                executor.send(ack);
            }
            ctx.schedule(grace, Timer::ShutdownGrace { container_id });
            return reply;
        }
        let subscribed = executor::Event {
            r#type: Some(executor::event::Type::Subscribed as i32),
            subscribed: Some(executor::event::Subscribed {
                executor_info: executor.info.clone(),
                framework_info,
                agent_info,
                container_id: Some(v1::ContainerId {
                    value: executor.container_id.clone(),
                    parent: None,
                }),
            }),
            ..Default::default()
        };
        executor.send(&subscribed);
        for task in std::mem::take(&mut executor.queued) {
            executor.deliver(task);
        }
        for ack in &acks {
            executor.send(ack);
        }
        reply
    }

    fn agent_status(
        &self,
        task_id: &str,
        state: TaskState,
        message: &str,
        reason: task_status::Reason,
        executor_id: Option<&str>,
    ) -> v1::TaskStatus {
        v1::TaskStatus {
            task_id: v1::TaskId {
                value: task_id.to_owned(),
            },
            state: state as i32,
            message: Some(message.to_owned()),
            source: Some(task_status::Source::Agent as i32),
            reason: Some(reason as i32),
            agent_id: Some(v1::AgentId {
                value: self.config.id.clone(),
            }),
            executor_id: executor_id.map(|value| v1::ExecutorId {
                value: value.to_owned(),
            }),
            timestamp: Some(now_secs()),
            uuid: Some(new_update_uuid()),
            ..Default::default()
        }
    }

    fn grace_period_of(&self, framework_id: &str, executor_id: &str) -> Duration {
        self.frameworks
            .get(framework_id)
            .and_then(|f| f.executors.get(executor_id))
            .and_then(|e| e.info.shutdown_grace_period.as_ref())
            .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
            .unwrap_or(self.config.shutdown_grace_period)
    }

    /// `Slave::statusUpdate`: every update, from an executor or made by the agent.
    fn status_update(&mut self, ctx: &mut Ctx, framework_id: &str, mut status: v1::TaskStatus) {
        let from_executor = status.source == Some(task_status::Source::Executor as i32);
        status.agent_id = Some(v1::AgentId {
            value: self.config.id.clone(),
        });
        if status.timestamp.is_none() {
            status.timestamp = Some(now_secs());
        }
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            tracing::warn!(framework = %framework_id, "dropping an update for an unknown framework");
            return;
        };
        if framework.terminating {
            tracing::warn!(framework = %framework_id, "dropping an update for a terminating framework");
            return;
        }
        let task_id = status.task_id.value.clone();
        let owner = framework
            .executors
            .values_mut()
            .find(|executor| executor.holds_task(&task_id));
        let Some(executor) = owner else {
            // The agent no longer maps the task to an executor: forwarded, never acknowledged
            // (`Slave::statusUpdate` in Mesos' `src/slave/slave.cpp`: "Could not find the
            // executor for status update").
            tracing::warn!(task = %task_id, "could not find the executor for a status update");
            self.record(ctx, framework_id, status);
            return;
        };
        if executor.terminated.contains_key(&task_id) {
            tracing::warn!(
                task = %task_id,
                "ignoring an update for a task that is already terminated"
            );
            if from_executor && let Some(uuid) = status.uuid.clone() {
                let ack = ack_event(&task_id, uuid);
                match &mut self.deferred_acks {
                    Some(acks) => acks.push(ack),
                    None => executor.send(&ack),
                }
            }
            return;
        }
        if from_executor && executor.launched.contains_key(&task_id) {
            executor.sent_update = true;
            status.container_status = Some(v1::ContainerStatus {
                container_id: Some(v1::ContainerId {
                    value: executor.container_id.clone(),
                    parent: None,
                }),
                network_infos: vec![v1::NetworkInfo {
                    ip_addresses: vec![v1::network_info::IpAddress {
                        protocol: None,
                        ip_address: Some(self.config.ip.to_string()),
                    }],
                    ..Default::default()
                }],
                cgroup_info: None,
                executor_pid: executor.pid,
            });
        }
        let state = state_of(&status);
        let uuid = status.uuid.clone();
        let outcome = self.sum.update(framework_id, status.clone());
        if let UpdateOutcome::Queued(forward) = outcome {
            if let Some(executor) = self
                .frameworks
                .get_mut(framework_id)
                .and_then(|f| f.executors.values_mut().find(|e| e.holds_task(&task_id)))
            {
                if let Some(position) = executor
                    .queued
                    .iter()
                    .position(|t| t.task_id.value == task_id)
                {
                    executor.queued.remove(position);
                    let mut task = AgentTask::staging();
                    task.record(&status);
                    executor.terminated.insert(task_id.clone(), task);
                } else if let Some(task) = executor.launched.get_mut(&task_id) {
                    task.record(&status);
                    if is_terminal(state)
                        && let Some(task) = executor.launched.remove(&task_id)
                    {
                        executor.terminated.insert(task_id.clone(), task);
                    }
                }
            }
            if let Some(forward) = forward {
                self.forward(ctx, framework_id, forward);
            }
        }
        if from_executor && let Some(uuid) = uuid {
            let ack = ack_event(&task_id, uuid);
            match &mut self.deferred_acks {
                Some(acks) => acks.push(ack),
                None => {
                    if let Some(executor) = self
                        .frameworks
                        .get(framework_id)
                        .and_then(|f| f.executors.values().find(|e| e.holds_task(&task_id)))
                    {
                        executor.send(&ack);
                    }
                }
            }
        }
    }

    /// An update for a task no executor holds: recorded and forwarded, nothing else.
    fn record(&mut self, ctx: &mut Ctx, framework_id: &str, status: v1::TaskStatus) {
        if let UpdateOutcome::Queued(Some(forward)) = self.sum.update(framework_id, status) {
            self.forward(ctx, framework_id, forward);
        }
    }

    fn forward(&mut self, ctx: &mut Ctx, framework_id: &str, forward: Forward) {
        ctx.send_to_master(ToMaster::StatusUpdate {
            framework_id: framework_id.to_owned(),
            status: forward.status,
        });
        ctx.schedule(
            forward.retry_after,
            Timer::StatusUpdateRetry {
                key: forward.key,
                generation: forward.generation,
            },
        );
    }

    // -----------------------------------------------------------------------------------------
    // Messages from the master

    pub fn handle_master_message(&mut self, ctx: &mut Ctx, message: ToAgent) {
        match message {
            ToAgent::RunTask { framework, task } => self.run_task(ctx, framework, task),
            ToAgent::KillTask {
                framework_id,
                task_id,
                kill_policy,
            } => self.kill_task(ctx, &framework_id, &task_id, kill_policy),
            ToAgent::ShutdownExecutor {
                framework_id,
                executor_id,
            } => self.shutdown_executor(ctx, &framework_id, &executor_id),
            ToAgent::ShutdownFramework { framework_id } => {
                self.shutdown_framework(ctx, &framework_id)
            }
            ToAgent::Acknowledge {
                framework_id,
                task_id,
                uuid,
            } => self.acknowledge(ctx, &framework_id, &task_id, &uuid),
            ToAgent::FrameworkMessage {
                framework_id,
                executor_id,
                data,
            } => match self.executor_mut(&framework_id, &executor_id) {
                Some(executor) => executor.send(&executor::Event {
                    r#type: Some(executor::event::Type::Message as i32),
                    message: Some(executor::event::Message { data }),
                    ..Default::default()
                }),
                None => {
                    tracing::warn!(executor = %executor_id, "dropping a MESSAGE for an unknown executor")
                }
            },
            ToAgent::UpdateFramework { framework } => {
                let id = framework
                    .id
                    .as_ref()
                    .map(|id| id.value.clone())
                    .unwrap_or_default();
                if let Some(existing) = self.frameworks.get_mut(&id) {
                    existing.info = framework;
                }
            }
        }
    }

    fn run_task(&mut self, ctx: &mut Ctx, framework_info: v1::FrameworkInfo, task: v1::TaskInfo) {
        let framework_id = framework_info
            .id
            .as_ref()
            .map(|id| id.value.clone())
            .unwrap_or_default();
        let framework = self
            .frameworks
            .entry(framework_id.clone())
            .or_insert_with(|| Framework {
                info: framework_info.clone(),
                terminating: false,
                executors: BTreeMap::new(),
            });
        framework.info = framework_info.clone();
        let partition_aware = framework.partition_aware();
        let Some(executor_info) = task.executor.clone() else {
            let status = self.agent_status(
                &task.task_id.value,
                TaskState::TaskFailed,
                "Failed to launch container: command tasks need Mesos' built-in command \
                 executor, which the embedded agent does not provide; use a custom executor",
                task_status::Reason::ContainerLaunchFailed,
                None,
            );
            self.record(ctx, &framework_id, status);
            return;
        };
        let executor_id = executor_info.executor_id.value.clone();
        match framework.executors.get_mut(&executor_id) {
            Some(executor)
                if matches!(
                    executor.state,
                    ExecutorState::Terminating | ExecutorState::Terminated
                ) =>
            {
                let which = if executor.state == ExecutorState::Terminating {
                    "terminating"
                } else {
                    "terminated"
                };
                let state = if partition_aware {
                    TaskState::TaskDropped
                } else {
                    TaskState::TaskLost
                };
                let status = self.agent_status(
                    &task.task_id.value,
                    state,
                    &format!("Executor {which}"),
                    task_status::Reason::ExecutorTerminated,
                    None,
                );
                self.record(ctx, &framework_id, status);
            }
            Some(executor) if executor.state == ExecutorState::Registering => {
                executor.queued.push(task);
            }
            Some(executor) => executor.deliver(task),
            None => self.launch_executor(ctx, &framework_id, executor_info, task),
        }
    }

    fn kill_task(
        &mut self,
        ctx: &mut Ctx,
        framework_id: &str,
        task_id: &str,
        kill_policy: Option<v1::KillPolicy>,
    ) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            tracing::warn!(task = %task_id, "ignoring KILL for an unknown framework");
            return;
        };
        let Some(executor) = framework
            .executors
            .values_mut()
            .find(|e| e.holds_task(task_id))
        else {
            tracing::warn!(task = %task_id, "ignoring KILL for a task the agent does not know");
            return;
        };
        let executor_id = executor.id.clone();
        if executor.queued.iter().any(|t| t.task_id.value == task_id) {
            let status = self.agent_status(
                task_id,
                TaskState::TaskKilled,
                "Killed before delivery to the executor",
                task_status::Reason::TaskKilledDuringLaunch,
                Some(&executor_id),
            );
            self.status_update(ctx, framework_id, status);
            return;
        }
        if executor.launched.contains_key(task_id) {
            executor.send(&executor::Event {
                r#type: Some(executor::event::Type::Kill as i32),
                kill: Some(executor::event::Kill {
                    task_id: v1::TaskId {
                        value: task_id.to_owned(),
                    },
                    kill_policy,
                }),
                ..Default::default()
            });
        }
    }

    fn shutdown_executor(&mut self, ctx: &mut Ctx, framework_id: &str, executor_id: &str) {
        let grace = self.grace_period_of(framework_id, executor_id);
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            tracing::warn!(executor = %executor_id, "ignoring SHUTDOWN of an unknown executor");
            return;
        };
        if !matches!(
            executor.state,
            ExecutorState::Registering | ExecutorState::Running
        ) {
            return;
        }
        tracing::info!(executor = %executor_id, "shutting down executor");
        executor.state = ExecutorState::Terminating;
        // Dropped to the floor if the executor has not subscribed yet, as in Mesos.
        if executor.stream.is_some() {
            executor.send(&event(executor::event::Type::Shutdown));
        }
        let container_id = executor.container_id.clone();
        ctx.schedule(grace, Timer::ShutdownGrace { container_id });
    }

    fn shutdown_framework(&mut self, ctx: &mut Ctx, framework_id: &str) {
        self.sum.remove_framework(framework_id);
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        framework.terminating = true;
        let ids: Vec<String> = framework.executors.keys().cloned().collect();
        for executor_id in ids {
            self.shutdown_executor(ctx, framework_id, &executor_id);
        }
        self.remove_framework_if_idle(framework_id);
    }

    fn acknowledge(&mut self, ctx: &mut Ctx, framework_id: &str, task_id: &str, uuid: &[u8]) {
        match self.sum.acknowledge(framework_id, task_id, uuid) {
            AckOutcome::Matched { terminal, next } => {
                if let Some(next) = next {
                    self.forward(ctx, framework_id, next);
                }
                if terminal {
                    self.complete_task(framework_id, task_id);
                }
            }
            AckOutcome::Duplicate => {
                tracing::info!(task = %task_id, "duplicate status update acknowledgement")
            }
            AckOutcome::Unexpected => {
                tracing::info!(task = %task_id, "unexpected status update acknowledgement")
            }
        }
    }

    /// The scheduler acknowledged a task's terminal update: the agent forgets the task.
    fn complete_task(&mut self, framework_id: &str, task_id: &str) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let mut finished_executor = None;
        for executor in framework.executors.values_mut() {
            if executor.terminated.remove(task_id).is_some() {
                if executor.state == ExecutorState::Terminated && !executor.incomplete() {
                    finished_executor = Some(executor.id.clone());
                }
                break;
            }
        }
        if let Some(executor_id) = finished_executor {
            framework.executors.remove(&executor_id);
        }
        self.remove_framework_if_idle(framework_id);
    }

    fn remove_framework_if_idle(&mut self, framework_id: &str) {
        if self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.executors.is_empty())
        {
            self.frameworks.remove(framework_id);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Executor exits

    // -----------------------------------------------------------------------------------------
    // Timers

    pub fn timer(&mut self, ctx: &mut Ctx, timer: Timer, phase: &watch::Sender<AgentPhase>) {
        match timer {
            Timer::RegistrationTimeout { container_id } => {
                let Some((framework_id, executor_id)) = self.find_container(&container_id) else {
                    return;
                };
                let timeout = self.config.registration_timeout;
                let Some(executor) = self.executor_mut(&framework_id, &executor_id) else {
                    return;
                };
                if executor.state != ExecutorState::Registering || executor.awaiting_reregistration
                {
                    return;
                }
                tracing::info!(
                    executor = %executor_id,
                    "terminating an executor that did not register in time"
                );
                executor.state = ExecutorState::Terminating;
                executor.pending_termination = Some(Termination {
                    state: TaskState::TaskFailed,
                    reason: task_status::Reason::ExecutorRegistrationTimeout,
                    message: format!(
                        "Executor did not register within {}",
                        MesosDuration(timeout)
                    ),
                });
                self.destroy(ctx, &framework_id, &executor_id);
            }
            Timer::ShutdownGrace { container_id } => {
                let Some((framework_id, executor_id)) = self.find_container(&container_id) else {
                    return;
                };
                if self
                    .executor_mut(&framework_id, &executor_id)
                    .is_some_and(|e| e.state == ExecutorState::Terminating)
                {
                    tracing::info!(executor = %executor_id, "shutdown grace period over; killing");
                    self.destroy(ctx, &framework_id, &executor_id);
                }
            }
            Timer::StatusUpdateRetry { key, generation } => {
                if let Some(forward) = self.sum.retry(&key, generation) {
                    let framework_id = key.0.clone();
                    self.forward(ctx, &framework_id, forward);
                }
            }
            Timer::ExecutorHeartbeat {
                container_id,
                subscription,
            } => {
                let interval = self.config.executor_heartbeat_interval;
                let Some((framework_id, executor_id)) = self.find_container(&container_id) else {
                    return;
                };
                if let Some(executor) = self.executor_mut(&framework_id, &executor_id)
                    && executor.subscriptions == subscription
                    && let Some(stream) = &executor.stream
                {
                    stream.send(&event(executor::event::Type::Heartbeat));
                    ctx.schedule(
                        interval,
                        Timer::ExecutorHeartbeat {
                            container_id,
                            subscription,
                        },
                    );
                }
            }
            Timer::DelayedExit {
                container_id,
                status,
            } => self.executor_exited(ctx, &container_id, status, true),
            Timer::Restart { step, generation } if generation == self.restart_generation => {
                self.restart_step(ctx, step, phase);
            }
            _ => {}
        }
    }

    /// The status updates taken and not yet acknowledged by the scheduler.
    pub fn pending_updates(&self) -> Vec<v1::TaskStatus> {
        self.sum.pending()
    }

    pub fn drop_stream(&mut self, executor_id: &str) -> bool {
        for framework in self.frameworks.values_mut() {
            if let Some(executor) = framework.executors.get_mut(executor_id)
                && let Some(stream) = executor.stream.take()
            {
                stream.abort();
                return true;
            }
        }
        false
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Also when the runtime drops the owner task without a shutdown: never leave executor
        // processes behind.
        self.kill_all();
    }
}

fn ack_event(task_id: &str, uuid: Vec<u8>) -> executor::Event {
    executor::Event {
        r#type: Some(executor::event::Type::Acknowledged as i32),
        acknowledged: Some(executor::event::Acknowledged {
            task_id: v1::TaskId {
                value: task_id.to_owned(),
            },
            uuid,
        }),
        ..Default::default()
    }
}
