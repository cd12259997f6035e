//! The embedded master: frameworks and their subscriptions, the allocator and its offers,
//! launches and their validation, task state as the master sees it, reconciliation and
//! failover timers (`src/master/master.cpp`, `src/master/http.cpp`).
//!
//! There is exactly one agent. The master keeps its own view of it (total resources, the
//! executors and tasks it placed there, whether it is connected), as a real master does, and
//! talks to the agent only by message.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::resources::Resources;
use super::runtime::{Ctx, EventStream, Reply, Timer, ToAgent, ToMaster, now_secs, push_bounded};
use super::validation::{has_capability, validate_framework_info};
use shardex_mesos::Encoding;
use shardex_mesos::proto::v1::{
    self, TaskState, framework_info::capability::Type as Capability, scheduler, task_status,
};
use shardex_mesos::states::is_terminal;

mod allocator;
mod faults;
mod launch;
mod partition;

/// `DEFAULT_REFUSE_SECONDS` and the cap on `refuse_seconds` (one year).
const DEFAULT_REFUSE: Duration = Duration::from_secs(5);
const MAX_REFUSE_SECONDS: f64 = 31_536_000.0;

/// Settings of the master.
#[derive(Debug, Clone)]
pub(crate) struct MasterConfig {
    pub heartbeat_interval: Duration,
    pub allocation_interval: Duration,
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    /// How many forwarded status updates the master keeps observable (see
    /// [`Master::forwarded_updates`]).
    pub update_log_limit: usize,
    /// `--max_completed_frameworks`: how many removed frameworks are remembered.
    pub max_completed_frameworks: usize,
}

/// The agent as the master sees it.
#[derive(Debug)]
pub(crate) struct AgentView {
    pub id: String,
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub total: Resources,
    /// Registered and connected: the master talks to it and offers its resources.
    pub connected: bool,
    /// Set while the agent is marked unreachable (removed from the master's registered
    /// agents after a partition, see `partition.rs`): when that happened.
    unreachable_time: Option<v1::TimeInfo>,
    /// framework id → executor id → (ExecutorInfo as launched, its resources).
    executors: HashMap<String, BTreeMap<String, (v1::ExecutorInfo, Resources)>>,
    /// KILLs that arrived while the agent was away, re-sent when it comes back.
    pending_kills: Vec<ToAgent>,
}

#[derive(Debug)]
struct Connection {
    stream_id: String,
    stream: EventStream,
    /// Set by [`Master::silence_schedulers`]: the connection is half-open, what is written to
    /// it never arrives.
    silent: bool,
}

impl Connection {
    fn send(&self, event: &scheduler::Event) {
        if !self.silent {
            self.stream.send(event);
        }
    }
}

#[derive(Debug)]
struct Filter {
    resources: Resources,
    until: Instant,
}

#[derive(Debug)]
struct MasterTask {
    resources: Resources,
    executor_id: Option<String>,
    agent_id: String,
    state: i32,
    /// State and uuid of the latest update forwarded with a uuid (awaiting acknowledgement).
    status_update_state: Option<i32>,
    status_update_uuid: Option<Vec<u8>>,
    latest: Option<v1::TaskStatus>,
}

impl MasterTask {
    fn holds_resources(&self) -> bool {
        TaskState::try_from(self.state).is_ok_and(|s| !is_terminal(s))
    }
}

#[derive(Debug)]
struct Framework {
    id: String,
    info: v1::FrameworkInfo,
    connection: Option<Connection>,
    failover_generation: u64,
    suppressed: bool,
    filters: Vec<Filter>,
    tasks: BTreeMap<String, MasterTask>,
    /// Tasks of an unreachable agent (`Framework::unreachableTasks`): not in `tasks`, so
    /// implicit reconciliation and KILL do not see them; their ids cannot be reused.
    unreachable_tasks: BTreeMap<String, MasterTask>,
}

impl Framework {
    fn partition_aware(&self) -> bool {
        has_capability(&self.info, Capability::PartitionAware)
    }

    fn send(&self, event: &scheduler::Event) {
        if let Some(connection) = &self.connection {
            connection.send(event);
        }
    }
}

#[derive(Debug)]
struct Offer {
    framework_id: String,
    resources: Resources,
}

pub(crate) struct Master {
    id: String,
    config: MasterConfig,
    next_framework: u64,
    next_offer: u64,
    frameworks: BTreeMap<String, Framework>,
    /// Removed frameworks, oldest first, at most `max_completed_frameworks` (Mesos'
    /// `frameworks.completed`): their ids may not subscribe again.
    removed: VecDeque<String>,
    offers: BTreeMap<String, Offer>,
    agent: AgentView,
    /// The status updates forwarded, with their framework, the last `update_log_limit`.
    forwarded: VecDeque<(String, v1::TaskStatus)>,
}

fn event(kind: scheduler::event::Type) -> scheduler::Event {
    scheduler::Event {
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

fn update_event(status: v1::TaskStatus) -> scheduler::Event {
    scheduler::Event {
        r#type: Some(scheduler::event::Type::Update as i32),
        update: Some(scheduler::event::Update { status }),
        ..Default::default()
    }
}

fn error_event(message: &str) -> scheduler::Event {
    scheduler::Event {
        r#type: Some(scheduler::event::Type::Error as i32),
        error: Some(scheduler::event::Error {
            message: message.to_owned(),
        }),
        ..Default::default()
    }
}

/// A master-generated update (`SOURCE_MASTER`, no uuid: never acknowledged).
fn master_status(
    task_id: &str,
    state: TaskState,
    message: &str,
    reason: task_status::Reason,
    agent_id: Option<&str>,
) -> v1::TaskStatus {
    v1::TaskStatus {
        task_id: v1::TaskId {
            value: task_id.to_owned(),
        },
        state: state as i32,
        message: Some(message.to_owned()),
        source: Some(task_status::Source::Master as i32),
        reason: Some(reason as i32),
        agent_id: agent_id.map(|value| v1::AgentId {
            value: value.to_owned(),
        }),
        timestamp: Some(now_secs()),
        ..Default::default()
    }
}

impl Master {
    pub fn new(id: String, config: MasterConfig, agent: AgentViewConfig) -> Master {
        Master {
            id,
            config,
            next_framework: 0,
            next_offer: 0,
            frameworks: BTreeMap::new(),
            removed: VecDeque::new(),
            offers: BTreeMap::new(),
            forwarded: VecDeque::new(),
            agent: AgentView {
                id: agent.id,
                hostname: agent.hostname,
                ip: agent.ip,
                port: agent.port,
                total: agent.total,
                connected: true,
                unreachable_time: None,
                executors: HashMap::new(),
                pending_kills: Vec::new(),
            },
        }
    }

    /// Whether the agent is among the registered agents (connected or not), i.e. not marked
    /// unreachable.
    fn agent_registered(&self) -> bool {
        self.agent.unreachable_time.is_none()
    }

    pub fn start(&mut self, ctx: &mut Ctx) {
        ctx.schedule(self.config.allocation_interval, Timer::AllocationTick);
    }

    /// Whether `framework_id` is among the removed frameworks the master remembers. Like a
    /// real master, it forgets the oldest past `--max_completed_frameworks`; such an id is
    /// then taken as a new framework's.
    fn is_removed(&self, framework_id: &str) -> bool {
        self.removed.iter().any(|id| id == framework_id)
    }

    /// The status updates taken from the agent and forwarded, oldest first.
    pub fn forwarded_updates(&self) -> Vec<v1::TaskStatus> {
        self.forwarded.iter().map(|(_, s)| s.clone()).collect()
    }

    /// Every task not yet ended, of every framework.
    pub fn live_tasks(&self) -> Vec<crate::LiveTask> {
        let mut live = Vec::new();
        for framework in self.frameworks.values() {
            let held = framework
                .tasks
                .iter()
                .map(|t| (t, false))
                .chain(framework.unreachable_tasks.iter().map(|t| (t, true)));
            for ((task_id, task), unreachable) in held {
                let state = TaskState::try_from(task.state).unwrap_or(TaskState::TaskStaging);
                if !is_terminal(state) {
                    live.push(crate::LiveTask {
                        framework_id: framework.id.clone(),
                        task_id: task_id.clone(),
                        state,
                        unreachable,
                    });
                }
            }
        }
        live
    }

    pub fn master_info(&self) -> v1::MasterInfo {
        let ip = self.config.ip.to_string();
        let port = u32::from(self.config.port);
        v1::MasterInfo {
            id: self.id.clone(),
            // Network byte order read as a little-endian integer: 127.0.0.1 → 16777343.
            ip: u32::from_le_bytes(self.config.ip.octets()),
            port,
            pid: Some(format!("master@{ip}:{port}")),
            hostname: Some(self.config.hostname.clone()),
            version: Some("1.12.0".to_owned()),
            address: Some(v1::Address {
                hostname: Some(self.config.hostname.clone()),
                ip: Some(ip),
                port: port as i32,
            }),
            domain: None,
            capabilities: [
                v1::master_info::capability::Type::AgentUpdate,
                v1::master_info::capability::Type::AgentDraining,
                v1::master_info::capability::Type::QuotaV2,
            ]
            .into_iter()
            .map(|t| v1::master_info::Capability {
                r#type: Some(t as i32),
            })
            .collect(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Scheduler calls

    /// A validated scheduler call; the HTTP layer has checked everything stateless.
    pub fn call(
        &mut self,
        ctx: &mut Ctx,
        call: scheduler::Call,
        stream_id: Option<String>,
        accept: Encoding,
    ) -> Reply {
        use scheduler::call::Type;
        let kind = call
            .r#type
            .and_then(|t| Type::try_from(t).ok())
            .unwrap_or(Type::Unknown);
        if kind == Type::Subscribe {
            return self.subscribe(ctx, call, accept);
        }
        let framework_id = call
            .framework_id
            .as_ref()
            .map(|id| id.value.clone())
            .unwrap_or_default();
        // Precedence as in `Master::Http::scheduler`: framework lookup, subscription, then the
        // stream id.
        let Some(framework) = self.frameworks.get(&framework_id) else {
            return Reply::error(400, "Framework cannot be found");
        };
        let Some(connection) = &framework.connection else {
            return Reply::error(403, "Framework is not subscribed");
        };
        let Some(stream_id) = stream_id else {
            return Reply::error(
                400,
                "All non-subscribe calls should include the 'Mesos-Stream-Id' header",
            );
        };
        if stream_id != connection.stream_id {
            return Reply::error(
                400,
                format!(
                    "The stream ID '{stream_id}' included in this request didn't match the \
                     stream ID currently associated with framework ID {framework_id}"
                ),
            );
        }
        match kind {
            Type::Teardown => {
                tracing::info!(framework = %framework_id, "TEARDOWN");
                self.remove_framework(ctx, &framework_id);
                Reply::Accepted
            }
            Type::Accept => {
                if let Some(accept) = call.accept {
                    self.accept(ctx, &framework_id, accept);
                }
                Reply::Accepted
            }
            Type::Decline => {
                if let Some(decline) = call.decline {
                    self.decline(&framework_id, &decline.offer_ids, decline.filters);
                }
                Reply::Accepted
            }
            Type::Revive => {
                if let Some(framework) = self.frameworks.get_mut(&framework_id) {
                    framework.suppressed = false;
                    framework.filters.clear();
                }
                self.allocate(ctx);
                Reply::Accepted
            }
            Type::Suppress => {
                if let Some(framework) = self.frameworks.get_mut(&framework_id) {
                    framework.suppressed = true;
                }
                Reply::Accepted
            }
            Type::Kill => {
                if let Some(kill) = call.kill {
                    self.kill(ctx, &framework_id, kill);
                }
                Reply::Accepted
            }
            Type::Shutdown => {
                if let Some(shutdown) = call.shutdown {
                    if shutdown.agent_id.value == self.agent.id && self.agent.connected {
                        ctx.send_to_agent(ToAgent::ShutdownExecutor {
                            framework_id,
                            executor_id: shutdown.executor_id.value,
                        });
                    } else {
                        tracing::warn!("ignoring SHUTDOWN for unknown or disconnected agent");
                    }
                }
                Reply::Accepted
            }
            Type::Acknowledge => {
                if let Some(ack) = call.acknowledge {
                    self.acknowledge(ctx, &framework_id, ack);
                }
                Reply::Accepted
            }
            Type::Reconcile => {
                if let Some(reconcile) = call.reconcile {
                    self.reconcile(&framework_id, reconcile);
                }
                Reply::Accepted
            }
            Type::Message => {
                if let Some(message) = call.message {
                    if message.agent_id.value == self.agent.id && self.agent.connected {
                        ctx.send_to_agent(ToAgent::FrameworkMessage {
                            framework_id,
                            executor_id: message.executor_id.value,
                            data: message.data,
                        });
                    } else {
                        tracing::warn!("dropping MESSAGE for unknown or disconnected agent");
                    }
                }
                Reply::Accepted
            }
            Type::UpdateFramework => match call.update_framework {
                Some(update) => self.update_framework(ctx, &framework_id, update),
                None => Reply::Accepted,
            },
            // Inverse offers, operation feedback and resource requests have nothing to act on
            // in a single-agent cluster without maintenance or resource providers.
            Type::AcceptInverseOffers
            | Type::DeclineInverseOffers
            | Type::AcknowledgeOperationStatus
            | Type::Request => Reply::Accepted,
            // Needs `scheduler::Response`, which our proto subset does not carry.
            Type::ReconcileOperations | Type::Unknown | Type::Subscribe => {
                Reply::error(501, "501 Not Implemented.")
            }
        }
    }

    fn subscribe(&mut self, ctx: &mut Ctx, call: scheduler::Call, accept: Encoding) -> Reply {
        let Some(subscribe) = call.subscribe else {
            return Reply::error(400, "Expecting 'subscribe' to be present");
        };
        let mut info = subscribe.framework_info;
        let (stream, rx) = EventStream::new(accept);
        let stream_id = uuid::Uuid::new_v4().to_string();
        let reply = Reply::Stream {
            stream_id: Some(stream_id.clone()),
            encoding: accept,
            rx,
        };
        // FrameworkInfo problems are 200 + ERROR + close, not 4xx.
        let fail = |message: &str| {
            stream.send(&error_event(message));
            stream.end();
        };
        if let Err(message) = validate_framework_info(&info) {
            fail(&message);
            return reply;
        }
        let requested_id = info
            .id
            .as_ref()
            .map(|id| id.value.clone())
            .filter(|id| !id.is_empty());
        if let Some(id) = &requested_id
            && self.is_removed(id)
        {
            fail("Framework has been removed");
            return reply;
        }
        let framework_id = match requested_id {
            Some(id) => id,
            None => {
                let id = format!("{}-{:04}", self.id, self.next_framework);
                self.next_framework += 1;
                id
            }
        };
        info.id = Some(v1::FrameworkId {
            value: framework_id.clone(),
        });

        if let Some(existing) = self.frameworks.get_mut(&framework_id) {
            // Immutable fields keep their first value (`preserveImmutableFields`).
            info.user = existing.info.user.clone();
            info.checkpoint = existing.info.checkpoint;
            if let Some(old) = existing.connection.take() {
                // Only one subscription per framework id: the old one is fenced off.
                old.stream.send(&error_event("Framework failed over"));
                old.stream.end();
            }
            existing.info = info.clone();
            existing.failover_generation += 1;
            existing.suppressed = !subscribe.suppressed_roles.is_empty();
            tracing::info!(framework = %framework_id, "framework re-subscribed");
        } else {
            tracing::info!(framework = %framework_id, name = %info.name, "framework subscribed");
            self.frameworks.insert(
                framework_id.clone(),
                Framework {
                    id: framework_id.clone(),
                    info: info.clone(),
                    connection: None,
                    failover_generation: 0,
                    suppressed: !subscribe.suppressed_roles.is_empty(),
                    filters: Vec::new(),
                    tasks: BTreeMap::new(),
                    unreachable_tasks: BTreeMap::new(),
                },
            );
        }
        // Offers made to an earlier connection are gone.
        self.remove_offers_of(&framework_id, false);
        // Only registered agents hear of it; an unreachable one gets it when it re-registers.
        if self.agent_registered() {
            ctx.send_to_agent(ToAgent::UpdateFramework {
                framework: info.clone(),
            });
        }

        let subscribed = scheduler::Event {
            r#type: Some(scheduler::event::Type::Subscribed as i32),
            subscribed: Some(scheduler::event::Subscribed {
                framework_id: v1::FrameworkId {
                    value: framework_id.clone(),
                },
                heartbeat_interval_seconds: Some(self.config.heartbeat_interval.as_secs_f64()),
                master_info: Some(self.master_info()),
            }),
            ..Default::default()
        };
        stream.send(&subscribed);
        stream.send(&event(scheduler::event::Type::Heartbeat));
        ctx.schedule(
            self.config.heartbeat_interval,
            Timer::Heartbeat {
                framework_id: framework_id.clone(),
                stream_id: stream_id.clone(),
            },
        );
        // The master notices a scheduler disconnect only when this stream closes.
        let watcher_tx = ctx.sender();
        let closed = stream.closed();
        let (watch_fw, watch_stream) = (framework_id.clone(), stream_id.clone());
        tokio::spawn(async move {
            closed.await;
            let _ = watcher_tx.send(super::runtime::Msg::SchedulerStreamClosed {
                framework_id: watch_fw,
                stream_id: watch_stream,
            });
        });
        if let Some(framework) = self.frameworks.get_mut(&framework_id) {
            framework.connection = Some(Connection {
                stream_id,
                stream,
                silent: false,
            });
        }
        self.allocate(ctx);
        reply
    }

    fn update_framework(
        &mut self,
        ctx: &mut Ctx,
        framework_id: &str,
        update: scheduler::call::UpdateFramework,
    ) -> Reply {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return Reply::error(400, "Framework cannot be found");
        };
        let info = update.framework_info;
        if let Err(message) = validate_framework_info(&info) {
            return Reply::error(400, message);
        }
        let old = &framework.info;
        if old.principal != info.principal {
            return Reply::error(400, "Changing framework's principal is not allowed.");
        }
        if old.user != info.user {
            return Reply::error(
                400,
                format!(
                    "Updating 'FrameworkInfo.user' is unsupported; attempted to update from \
                     '{}' to '{}'",
                    old.user, info.user
                ),
            );
        }
        if old.checkpoint.unwrap_or(false) != info.checkpoint.unwrap_or(false) {
            return Reply::error(
                400,
                format!(
                    "Updating 'FrameworkInfo.checkpoint' is unsupported; attempted to update \
                     from '{}' to '{}'",
                    old.checkpoint.unwrap_or(false),
                    info.checkpoint.unwrap_or(false)
                ),
            );
        }
        framework.info = info.clone();
        framework.suppressed = !update.suppressed_roles.is_empty();
        if self.agent_registered() {
            ctx.send_to_agent(ToAgent::UpdateFramework { framework: info });
        }
        Reply::Ok
    }

    /// The subscription stream of a framework closed (the scheduler went away).
    pub fn stream_closed(&mut self, ctx: &mut Ctx, framework_id: &str, stream_id: &str) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        if framework
            .connection
            .as_ref()
            .is_none_or(|c| c.stream_id != stream_id)
        {
            return;
        }
        framework.connection = None;
        framework.failover_generation += 1;
        let generation = framework.failover_generation;
        let timeout = framework.info.failover_timeout.unwrap_or(0.0).max(0.0);
        tracing::info!(
            framework = %framework_id,
            failover_timeout_secs = timeout,
            "scheduler disconnected; failover timeout started"
        );
        self.remove_offers_of(framework_id, false);
        ctx.schedule(
            Duration::from_secs_f64(timeout.min(MAX_REFUSE_SECONDS * 100.0)),
            Timer::FailoverTimeout {
                framework_id: framework_id.to_owned(),
                generation,
            },
        );
    }

    pub fn timer(&mut self, ctx: &mut Ctx, timer: Timer) {
        match timer {
            Timer::Heartbeat {
                framework_id,
                stream_id,
            } => {
                let Some(framework) = self.frameworks.get(&framework_id) else {
                    return;
                };
                let Some(connection) = &framework.connection else {
                    return;
                };
                if connection.stream_id != stream_id {
                    return;
                }
                connection.send(&event(scheduler::event::Type::Heartbeat));
                ctx.schedule(
                    self.config.heartbeat_interval,
                    Timer::Heartbeat {
                        framework_id,
                        stream_id,
                    },
                );
            }
            Timer::FailoverTimeout {
                framework_id,
                generation,
            } => {
                let expired = self
                    .frameworks
                    .get(&framework_id)
                    .is_some_and(|f| f.connection.is_none() && f.failover_generation == generation);
                if expired {
                    tracing::info!(framework = %framework_id, "failover timeout expired");
                    self.remove_framework(ctx, &framework_id);
                }
            }
            Timer::AllocationTick => {
                self.allocate(ctx);
                ctx.schedule(self.config.allocation_interval, Timer::AllocationTick);
            }
            _ => {}
        }
    }

    /// TEARDOWN or failover timeout: the framework is gone for good.
    fn remove_framework(&mut self, ctx: &mut Ctx, framework_id: &str) {
        self.remove_offers_of(framework_id, false);
        if let Some(framework) = self.frameworks.remove(framework_id)
            && let Some(connection) = framework.connection
        {
            connection.stream.end();
        }
        // Its tasks become TASK_KILLED (REASON_FRAMEWORK_REMOVED), delivered to no one.
        self.agent.executors.remove(framework_id);
        self.agent.pending_kills.retain(
            |kill| !matches!(kill, ToAgent::KillTask { framework_id: f, .. } if f == framework_id),
        );
        if self.config.max_completed_frameworks > 0 {
            if self.removed.len() == self.config.max_completed_frameworks {
                self.removed.pop_front();
            }
            self.removed.push_back(framework_id.to_owned());
        }
        // An unreachable agent is told when it re-registers (`__reregisterSlave`).
        if self.agent_registered() {
            ctx.send_to_agent(ToAgent::ShutdownFramework {
                framework_id: framework_id.to_owned(),
            });
        }
    }

    // -----------------------------------------------------------------------------------------
    // Tasks

    fn kill(&mut self, ctx: &mut Ctx, framework_id: &str, kill: scheduler::call::Kill) {
        let known = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.tasks.contains_key(&kill.task_id.value));
        if !known {
            // "Cannot kill task ... because it is unknown; performing reconciliation".
            self.reconcile(
                framework_id,
                scheduler::call::Reconcile {
                    tasks: vec![scheduler::call::reconcile::Task {
                        task_id: kill.task_id,
                        agent_id: kill.agent_id,
                    }],
                },
            );
            return;
        }
        let message = ToAgent::KillTask {
            framework_id: framework_id.to_owned(),
            task_id: kill.task_id.value,
            kill_policy: kill.kill_policy,
        };
        if self.agent.connected {
            ctx.send_to_agent(message);
        } else {
            self.agent.pending_kills.push(message);
        }
    }

    fn acknowledge(
        &mut self,
        ctx: &mut Ctx,
        framework_id: &str,
        ack: scheduler::call::Acknowledge,
    ) {
        if ack.agent_id.value != self.agent.id {
            tracing::warn!(agent = %ack.agent_id.value, "ignoring ACKNOWLEDGE for an unknown agent");
            return;
        }
        if !self.agent_registered() {
            // The agent re-sends the update after it has re-registered.
            tracing::warn!("ignoring ACKNOWLEDGE for an unreachable agent");
            return;
        }
        if !self.agent.connected {
            // The agent re-sends the update when it is back.
            tracing::warn!("ignoring ACKNOWLEDGE while the agent is disconnected");
            return;
        }
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            let forget = framework.tasks.get(&ack.task_id.value).is_some_and(|task| {
                task.status_update_uuid.as_deref() == Some(ack.uuid.as_slice())
                    && task
                        .status_update_state
                        .and_then(|s| TaskState::try_from(s).ok())
                        .is_some_and(is_terminal)
            });
            if forget {
                // Acknowledged terminal tasks are forgotten: reconciling them says TASK_GONE.
                framework.tasks.remove(&ack.task_id.value);
            }
        }
        ctx.send_to_agent(ToAgent::Acknowledge {
            framework_id: framework_id.to_owned(),
            task_id: ack.task_id.value,
            uuid: ack.uuid,
        });
    }

    fn reconcile(&self, framework_id: &str, reconcile: scheduler::call::Reconcile) {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let latest = |task_id: &str, task: &MasterTask| {
            let state = task.status_update_state.unwrap_or(task.state);
            let mut status = master_status(
                task_id,
                TaskState::try_from(state).unwrap_or(TaskState::TaskStaging),
                "Reconciliation: Latest task state",
                task_status::Reason::Reconciliation,
                Some(&task.agent_id),
            );
            status.state = state;
            status.executor_id = task
                .executor_id
                .as_ref()
                .map(|id| v1::ExecutorId { value: id.clone() });
            if let Some(latest) = &task.latest {
                status.healthy = latest.healthy;
                status.check_status = latest.check_status;
                status.container_status = latest.container_status.clone();
            }
            status
        };
        if reconcile.tasks.is_empty() {
            for (task_id, task) in &framework.tasks {
                framework.send(&update_event(latest(task_id, task)));
            }
            return;
        }
        let partition_aware = framework.partition_aware();
        let pick = |pa: TaskState| {
            if partition_aware {
                pa
            } else {
                TaskState::TaskLost
            }
        };
        for entry in reconcile.tasks {
            let task_id = entry.task_id.value;
            let agent_id = entry.agent_id.map(|id| id.value);
            let on_our_agent = agent_id.as_deref() == Some(self.agent.id.as_str());
            let status = match framework.tasks.get(&task_id) {
                Some(task) => latest(&task_id, task),
                // `Master::reconcile` case (4): any task named with an unreachable agent's id
                // (known to the master or not) is unreachable since the agent was marked so.
                None if on_our_agent && !self.agent_registered() => {
                    let mut status = master_status(
                        &task_id,
                        pick(TaskState::TaskUnreachable),
                        "Reconciliation: Task is unreachable",
                        task_status::Reason::Reconciliation,
                        agent_id.as_deref(),
                    );
                    status.unreachable_time = self.agent.unreachable_time;
                    status
                }
                None if on_our_agent => master_status(
                    &task_id,
                    pick(TaskState::TaskGone),
                    "Reconciliation: Task is unknown to the agent",
                    task_status::Reason::Reconciliation,
                    agent_id.as_deref(),
                ),
                None => master_status(
                    &task_id,
                    pick(TaskState::TaskUnknown),
                    "Reconciliation: Task is unknown",
                    task_status::Reason::Reconciliation,
                    agent_id.as_deref(),
                ),
            };
            framework.send(&update_event(status));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Messages from the agent

    pub fn handle_agent_message(&mut self, ctx: &mut Ctx, message: ToMaster) {
        match message {
            ToMaster::StatusUpdate {
                framework_id,
                status,
            } => self.status_update(&framework_id, status),
            ToMaster::ExitedExecutor {
                framework_id,
                executor_id,
                status,
            } => {
                if let Some(executors) = self.agent.executors.get_mut(&framework_id) {
                    executors.remove(&executor_id);
                }
                if let Some(framework) = self.frameworks.get(&framework_id) {
                    framework.send(&scheduler::Event {
                        r#type: Some(scheduler::event::Type::Failure as i32),
                        failure: Some(scheduler::event::Failure {
                            agent_id: Some(v1::AgentId {
                                value: self.agent.id.clone(),
                            }),
                            executor_id: Some(v1::ExecutorId { value: executor_id }),
                            status: Some(status),
                        }),
                        ..Default::default()
                    });
                }
            }
            ToMaster::ExecutorMessage {
                framework_id,
                executor_id,
                data,
            } => {
                if let Some(framework) = self.frameworks.get(&framework_id) {
                    framework.send(&scheduler::Event {
                        r#type: Some(scheduler::event::Type::Message as i32),
                        message: Some(scheduler::event::Message {
                            agent_id: v1::AgentId {
                                value: self.agent.id.clone(),
                            },
                            executor_id: v1::ExecutorId { value: executor_id },
                            data,
                        }),
                        ..Default::default()
                    });
                }
            }
            ToMaster::AgentDisconnected => self.agent_disconnected(),
            ToMaster::AgentReregistered(report) => {
                if self.agent.unreachable_time.is_some() {
                    self.readmit(ctx, report);
                    return;
                }
                // A known agent (after a restart). Its report would only matter for tasks the
                // two disagree on (`reconcileKnownSlave`), which a restart here never creates.
                tracing::info!(agent = %self.agent.id, "agent re-registered");
                self.agent.connected = true;
                for kill in std::mem::take(&mut self.agent.pending_kills) {
                    ctx.send_to_agent(kill);
                }
                self.allocate(ctx);
            }
        }
    }

    fn status_update(&mut self, framework_id: &str, status: v1::TaskStatus) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            tracing::warn!(framework = %framework_id, "dropping an update for an unknown framework");
            return;
        };
        if let Some(task) = framework.tasks.get_mut(&status.task_id.value) {
            task.state = status.state;
            task.latest = Some(status.clone());
            if status.uuid.is_some() {
                task.status_update_state = Some(status.state);
                task.status_update_uuid = status.uuid.clone();
            }
        }
        // Dropped when the scheduler is disconnected: the agent retries.
        framework.send(&update_event(status.clone()));
        push_bounded(
            &mut self.forwarded,
            (framework_id.to_owned(), status),
            self.config.update_log_limit,
        );
    }

    fn agent_disconnected(&mut self) {
        tracing::info!(agent = %self.agent.id, "agent disconnected");
        self.agent.connected = false;
        self.rescind_agent_offers();
        // Frameworks that do not checkpoint lose their tasks on this agent at once.
        let hostname = self.agent.hostname.clone();
        for framework in self.frameworks.values_mut() {
            if framework.info.checkpoint.unwrap_or(false) {
                continue;
            }
            self.agent.executors.remove(&framework.id);
            let tasks = std::mem::take(&mut framework.tasks);
            for (task_id, task) in tasks {
                let mut status = master_status(
                    &task_id,
                    TaskState::TaskLost,
                    &format!("Agent {hostname} disconnected"),
                    task_status::Reason::AgentDisconnected,
                    Some(&task.agent_id),
                );
                status.executor_id = task.executor_id.map(|value| v1::ExecutorId { value });
                framework.send(&update_event(status));
            }
        }
    }
}

/// What the master needs to know about the agent at start.
#[derive(Debug, Clone)]
pub(crate) struct AgentViewConfig {
    pub id: String,
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub total: Resources,
}
