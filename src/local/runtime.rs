//! The single owner of the embedded cluster's mutable state, and the messages it receives.
//!
//! One tokio task owns the [`Master`] and the [`Agent`]. HTTP handlers, executor processes
//! (launch results and exits), timers and the test controls of `LocalCluster` all talk to it by
//! sending a [`Msg`] and, where they need an answer, awaiting a oneshot reply. Master and agent
//! talk to each other the way libprocess actors do — by message — through the [`Ctx`] outbox,
//! which the owner drains after every step, so neither ever holds a reference to the other.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::ObservedCall;
use super::agent::Agent;
use super::http::ServerHandle;
use super::jwt::Claims;
use super::master::Master;
use super::status_updates::StreamKey;
use shardex_mesos::Encoding;
use shardex_mesos::proto::v1::{self, executor, scheduler};
use shardex_mesos::recordio;

/// One chunk of a streaming (SUBSCRIBE) response.
#[derive(Debug)]
pub(crate) enum StreamItem {
    /// A RecordIO-framed event, sent as its own HTTP chunk.
    Record(Bytes),
    /// Ends the response cleanly (terminating zero-length chunk).
    End,
    /// Breaks the connection without a terminating chunk, as a dying process would.
    Abort,
}

/// The server side of a subscription: events are encoded in the negotiated encoding.
#[derive(Debug, Clone)]
pub(crate) struct EventStream {
    tx: mpsc::UnboundedSender<StreamItem>,
    encoding: Encoding,
}

impl EventStream {
    pub fn new(encoding: Encoding) -> (EventStream, mpsc::UnboundedReceiver<StreamItem>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventStream { tx, encoding }, rx)
    }

    /// Sends one event; false if the client is gone.
    pub fn send<E: prost::Message + prost::Name>(&self, event: &E) -> bool {
        let record = recordio::encode(&self.encoding.encode(event));
        self.tx
            .send(StreamItem::Record(Bytes::from(record)))
            .is_ok()
    }

    pub fn end(&self) {
        let _ = self.tx.send(StreamItem::End);
    }

    pub fn abort(&self) {
        let _ = self.tx.send(StreamItem::Abort);
    }

    /// Resolves when the client side of the stream is gone.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let tx = self.tx.clone();
        async move { tx.closed().await }
    }
}

/// What the owner answers an HTTP call with.
#[derive(Debug)]
pub(crate) enum Reply {
    /// `202 Accepted`, empty body.
    Accepted,
    /// `200 OK`, empty body (UPDATE_FRAMEWORK).
    Ok,
    /// An error status with a plain-text body.
    Error { status: u16, body: String },
    /// `200 OK` with a RecordIO stream.
    Stream {
        stream_id: Option<String>,
        encoding: Encoding,
        rx: mpsc::UnboundedReceiver<StreamItem>,
    },
}

impl Reply {
    pub fn error(status: u16, body: impl Into<String>) -> Reply {
        Reply::Error {
            status,
            body: body.into(),
        }
    }
}

/// Timers; each names what it is for, so a stale one is recognised and ignored.
#[derive(Debug, Clone)]
pub(crate) enum Timer {
    Heartbeat {
        framework_id: String,
        stream_id: String,
    },
    FailoverTimeout {
        framework_id: String,
        generation: u64,
    },
    AllocationTick,
    RegistrationTimeout {
        container_id: String,
    },
    ShutdownGrace {
        container_id: String,
    },
    StatusUpdateRetry {
        key: StreamKey,
        generation: u64,
    },
    Restart {
        step: RestartStep,
        generation: u64,
    },
    /// The agent's keep-alive on an executor's subscription.
    ExecutorHeartbeat {
        container_id: String,
        subscription: u64,
    },
    /// An executor exit, noticed late because the (restarted) agent is not its parent.
    DelayedExit {
        container_id: String,
        status: Option<i32>,
    },
}

/// The phases of a simulated agent restart, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartStep {
    /// The new process listens but has no routes yet: 404.
    Listening,
    /// Routes are installed, checkpoints not yet recovered: 503 for every call.
    RecoveringState,
    /// "Recovering executors": SUBSCRIBE accepted, UPDATE/MESSAGE 503.
    RecoveringExecutors,
    /// `--executor_reregistration_timeout` passed: kill the executors that did not come back.
    ReregistrationTimeout,
    /// The agent re-registers with the master.
    Reregistered,
}

/// What the agent's executor endpoint answers before it has looked at a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentPhase {
    /// Routes not installed: `404 Not Found.`.
    NotReady,
    /// `503 Agent has not finished recovery` for every call.
    RecoveringState,
    /// Calls are processed (UPDATE/MESSAGE may still get 503 while executors recover).
    Serving,
}

/// Messages from the master to the agent.
// Each message is moved once from sender to receiver; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum ToAgent {
    RunTask {
        framework: v1::FrameworkInfo,
        task: v1::TaskInfo,
    },
    KillTask {
        framework_id: String,
        task_id: String,
        kill_policy: Option<v1::KillPolicy>,
    },
    ShutdownExecutor {
        framework_id: String,
        executor_id: String,
    },
    ShutdownFramework {
        framework_id: String,
    },
    Acknowledge {
        framework_id: String,
        task_id: String,
        uuid: Vec<u8>,
    },
    FrameworkMessage {
        framework_id: String,
        executor_id: String,
        data: Vec<u8>,
    },
    UpdateFramework {
        framework: v1::FrameworkInfo,
    },
}

/// Messages from the agent to the master.
// Each message is moved once from sender to receiver; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum ToMaster {
    StatusUpdate {
        framework_id: String,
        status: v1::TaskStatus,
    },
    ExitedExecutor {
        framework_id: String,
        executor_id: String,
        status: i32,
    },
    ExecutorMessage {
        framework_id: String,
        executor_id: String,
        data: Vec<u8>,
    },
    AgentDisconnected,
    /// The agent (re-)registered, telling the master what it runs (`ReregisterSlaveMessage`).
    AgentReregistered(AgentReport),
}

/// What a re-registering agent tells the master: its frameworks, its tasks (launched,
/// terminated but unacknowledged, and queued as STAGING) and its executors that have not
/// terminated (`Slave::doReliableRegistration`).
#[derive(Debug, Default)]
pub(crate) struct AgentReport {
    pub frameworks: Vec<v1::FrameworkInfo>,
    pub tasks: Vec<ReportedTask>,
    /// (framework id, ExecutorInfo as launched).
    pub executors: Vec<(String, v1::ExecutorInfo)>,
}

/// One task as the agent knows it: its latest state (which may be newer than anything the
/// master has seen) and the latest status the executor sent for it.
#[derive(Debug)]
pub(crate) struct ReportedTask {
    pub framework_id: String,
    pub task_id: String,
    pub executor_id: String,
    pub state: v1::TaskState,
    pub latest: Option<v1::TaskStatus>,
    /// The most recent `container_status` any of its updates carried.
    pub container_status: Option<v1::ContainerStatus>,
}

// Each message is moved once from sender to receiver; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Internal {
    ToAgent(ToAgent),
    ToMaster(ToMaster),
}

/// Test and operator controls.
#[derive(Debug)]
pub(crate) enum Control {
    RestartAgent {
        down_for: Duration,
        reply: oneshot::Sender<Result<(), String>>,
    },
    DropExecutorStream {
        executor_id: String,
        reply: oneshot::Sender<bool>,
    },
    ExecutorPid {
        executor_id: String,
        reply: oneshot::Sender<Option<u32>>,
    },
    PartitionAgent(oneshot::Sender<Result<(), String>>),
    HealAgent(oneshot::Sender<Result<(), String>>),
    ExecutorCalls(oneshot::Sender<Vec<ObservedCall<executor::Call>>>),
    SchedulerCalls(oneshot::Sender<Vec<ObservedCall<scheduler::Call>>>),
    LiveTasks(oneshot::Sender<Vec<crate::LiveTask>>),
    PendingUpdates(oneshot::Sender<Vec<v1::TaskStatus>>),
    SilenceSchedulers(oneshot::Sender<usize>),
    ForwardedUpdates(oneshot::Sender<Vec<v1::TaskStatus>>),
    RedeliverUpdates {
        count: usize,
        reply: oneshot::Sender<Vec<v1::TaskStatus>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// Everything the owner task receives.
#[derive(Debug)]
pub(crate) enum Msg {
    SchedulerCall {
        call: scheduler::Call,
        stream_id: Option<String>,
        accept: Encoding,
        reply: oneshot::Sender<Reply>,
    },
    ExecutorCall {
        call: executor::Call,
        accept: Encoding,
        claims: Option<Claims>,
        reply: oneshot::Sender<Reply>,
    },
    SchedulerStreamClosed {
        framework_id: String,
        stream_id: String,
    },
    FetchFinished {
        container_id: String,
        result: Result<(), String>,
    },
    ExecutorExited {
        container_id: String,
        status: Option<i32>,
    },
    Timer(Timer),
    ObservedScheduler(ObservedCall<scheduler::Call>),
    ObservedExecutor(ObservedCall<executor::Call>),
    Control(Control),
}

/// What a master or agent step may do besides changing its own state.
pub(crate) struct Ctx {
    tx: mpsc::UnboundedSender<Msg>,
    outbox: VecDeque<Internal>,
}

impl Ctx {
    pub fn new(tx: mpsc::UnboundedSender<Msg>) -> Ctx {
        Ctx {
            tx,
            outbox: VecDeque::new(),
        }
    }

    /// Delivers `timer` to the owner after `after`.
    pub fn schedule(&self, after: Duration, timer: Timer) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(Msg::Timer(timer));
        });
    }

    /// A sender for tasks that report back later (launches, process exits, stream watchers).
    pub fn sender(&self) -> mpsc::UnboundedSender<Msg> {
        self.tx.clone()
    }

    pub fn send_to_agent(&mut self, message: ToAgent) {
        self.outbox.push_back(Internal::ToAgent(message));
    }

    pub fn send_to_master(&mut self, message: ToMaster) {
        self.outbox.push_back(Internal::ToMaster(message));
    }

    fn next(&mut self) -> Option<Internal> {
        self.outbox.pop_front()
    }
}

/// The owner: master, agent and the observation log.
pub(crate) struct Owner {
    pub master: Master,
    pub agent: Agent,
    pub scheduler_calls: VecDeque<ObservedCall<scheduler::Call>>,
    pub executor_calls: VecDeque<ObservedCall<executor::Call>>,
    pub call_log_limit: usize,
    pub phase: watch::Sender<AgentPhase>,
    /// Kept alive for as long as the owner runs; dropping it closes the master's port.
    pub master_server: ServerHandle,
}

impl Owner {
    /// Runs until shut down or until every `LocalCluster` handle is gone. Executor process
    /// groups are killed on the way out, including when the runtime drops this task.
    pub async fn run(
        mut self,
        tx: mpsc::UnboundedSender<Msg>,
        mut rx: mpsc::UnboundedReceiver<Msg>,
    ) {
        let mut ctx = Ctx::new(tx);
        self.master.start(&mut ctx);
        while let Some(msg) = rx.recv().await {
            if let Msg::Control(Control::Shutdown(reply)) = msg {
                self.master_server.stop();
                self.agent.kill_all();
                let _ = reply.send(());
                return;
            }
            self.handle(&mut ctx, msg);
            self.drain(&mut ctx);
        }
        self.agent.kill_all();
    }

    fn drain(&mut self, ctx: &mut Ctx) {
        while let Some(message) = ctx.next() {
            if self.agent.partitioned() {
                // The wire between them is cut. The master knows the agent is gone and sends
                // nothing; what the agent still sends without retrying (an executor's exit,
                // its messages) is lost, as on a real network. Status updates never get here:
                // the agent's update manager is paused and keeps them.
                tracing::info!(?message, "lost in the network partition");
                continue;
            }
            match message {
                Internal::ToAgent(m) => self.agent.handle_master_message(ctx, m),
                Internal::ToMaster(m) => self.master.handle_agent_message(ctx, m),
            }
        }
    }

    fn handle(&mut self, ctx: &mut Ctx, msg: Msg) {
        match msg {
            Msg::SchedulerCall {
                call,
                stream_id,
                accept,
                reply,
            } => {
                let answer = self.master.call(ctx, call, stream_id, accept);
                let _ = reply.send(answer);
            }
            Msg::ExecutorCall {
                call,
                accept,
                claims,
                reply,
            } => {
                let answer = self.agent.call(ctx, call, accept, claims);
                let _ = reply.send(answer);
            }
            Msg::SchedulerStreamClosed {
                framework_id,
                stream_id,
            } => self.master.stream_closed(ctx, &framework_id, &stream_id),
            Msg::FetchFinished {
                container_id,
                result,
            } => self.agent.fetch_finished(ctx, &container_id, result),
            Msg::ExecutorExited {
                container_id,
                status,
            } => self
                .agent
                .executor_exited(ctx, &container_id, status, false),
            Msg::Timer(timer) => match timer {
                Timer::Heartbeat { .. } | Timer::FailoverTimeout { .. } | Timer::AllocationTick => {
                    self.master.timer(ctx, timer)
                }
                _ => self.agent.timer(ctx, timer, &self.phase),
            },
            Msg::ObservedScheduler(call) => {
                push_bounded(&mut self.scheduler_calls, call, self.call_log_limit)
            }
            Msg::ObservedExecutor(call) => {
                push_bounded(&mut self.executor_calls, call, self.call_log_limit)
            }
            Msg::Control(control) => self.control(ctx, control),
        }
    }

    fn control(&mut self, ctx: &mut Ctx, control: Control) {
        match control {
            Control::RestartAgent { down_for, reply } => {
                let result = self.agent.restart(ctx, down_for, &self.phase);
                let _ = reply.send(result);
            }
            Control::DropExecutorStream { executor_id, reply } => {
                let _ = reply.send(self.agent.drop_stream(&executor_id));
            }
            Control::ExecutorPid { executor_id, reply } => {
                let _ = reply.send(self.agent.executor_pid(&executor_id));
            }
            Control::PartitionAgent(reply) => {
                let result = self
                    .agent
                    .partition()
                    .map(|()| self.master.mark_unreachable());
                let _ = reply.send(result);
            }
            Control::HealAgent(reply) => {
                // The agent's re-registration is drained after this step, with the wire open.
                let _ = reply.send(self.agent.heal(ctx));
            }
            Control::ExecutorCalls(reply) => {
                let _ = reply.send(self.executor_calls.iter().cloned().collect());
            }
            Control::SchedulerCalls(reply) => {
                let _ = reply.send(self.scheduler_calls.iter().cloned().collect());
            }
            Control::LiveTasks(reply) => {
                let _ = reply.send(self.master.live_tasks());
            }
            Control::PendingUpdates(reply) => {
                let _ = reply.send(self.agent.pending_updates());
            }
            Control::ForwardedUpdates(reply) => {
                let _ = reply.send(self.master.forwarded_updates());
            }
            Control::SilenceSchedulers(reply) => {
                let _ = reply.send(self.master.silence_schedulers());
            }
            Control::RedeliverUpdates { count, reply } => {
                let _ = reply.send(self.master.redeliver_updates(count));
            }
            // Handled in `run`.
            Control::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }
}

pub(crate) fn push_bounded<T>(log: &mut VecDeque<T>, item: T, limit: usize) {
    if limit == 0 {
        return;
    }
    while log.len() >= limit {
        log.pop_front();
    }
    log.push_back(item);
}

/// Seconds since the Unix epoch, as Mesos writes `TaskStatus.timestamp`.
pub(crate) fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
