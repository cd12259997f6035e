//! The executor's decisions, without I/O: [`Core::handle`] takes one [`Input`] and the current
//! time ([`Now`]) and returns the [`Action`]s to perform, in order. `runtime.rs` is the thin
//! loop that turns the agent's HTTP answers, the event stream and the job workers' reports into
//! inputs, performs the actions, and sleeps until [`Core::next_wakeup`].
//!
//! What it decides:
//! - the connection (`link.rs`): when to SUBSCRIBE, what the SUBSCRIBE carries, when to give
//!   up (Mesos' `docs/executor-http-api.md`, "Disconnections"; the v1 executor library
//!   `src/executor/executor.cpp`);
//! - status updates (`ledger.rs`): each task's updates POSTed one at a time and in order,
//!   several tasks' at once, kept until ACKNOWLEDGED and re-sent byte for byte on
//!   resubscription;
//! - tasks (`task.rs`): LAUNCH → `TASK_STARTING` → the job starts → `TASK_RUNNING` → its
//!   outcome under the job's error policy; KILL with its grace period (`TASK_KILLING` when the
//!   framework declared it), then force, then leaving the process; daemon fires on the task's
//!   cron;
//! - leaving (`stopping.rs`): SHUTDOWN, the framework message `STOP`, a setup error, a lost
//!   agent, the idle timeout; the exit waits for acknowledgements up to a deadline.
//!
//! Time comes only from [`Now`]: the monotonic clock for deadlines and the wall clock for
//! daemon cron and status timestamps, so tests drive every timing rule by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use shardex_common::cron::Schedule;
use shardex_common::payload::{ErrorPolicy, ExecutionType, TaskPayload};
use shardex_common::status_contract::{self, FIRE_BEGIN, FIRE_COMPLETE, SetupScope};
use shardex_mesos::proto::v1::{
    self, ExecutorId, FrameworkId, TaskId, TaskInfo, TaskState, TaskStatus, executor,
    framework_info, task_status,
};

use super::config::{ExecutorConfig, OnSetupError};
use super::jobs::{JobReport, Outcome};
use super::ledger::Ledger;
use super::link::{self, GiveUp, Link};
use super::stopping::{FORCED_KILL_REAP, Stopping, idle_expired, task_grace};
use super::task::{DaemonClock, Fire, Kill, Phase, StopCause, Task, kill_grace};

/// Framework message that stops an executor (Elastic-Job-Cloud sends it when an app is
/// deregistered).
pub const STOP_MESSAGE: &[u8] = b"STOP";
/// UPDATEs of different tasks POSTed at once (each task's own stay strictly sequential).
pub const MAX_UPDATES_IN_FLIGHT: usize = 8;
/// Pause before re-sending an UPDATE the agent could not take yet (503 while it recovers).
pub const UPDATE_RETRY: Duration = Duration::from_millis(250);

/// The current time, both clocks.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// For deadlines.
    pub at: Instant,
    /// For daemon cron and status timestamps.
    pub wall: DateTime<Utc>,
}

impl Now {
    pub fn current() -> Now {
        Now {
            at: Instant::now(),
            wall: Utc::now(),
        }
    }
}

/// A call the agent did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// 503 while the agent recovers, a broken connection: trying again may work.
    pub retryable: bool,
    pub message: String,
}

impl From<&shardex_mesos::ApiError> for CallError {
    fn from(error: &shardex_mesos::ApiError) -> CallError {
        CallError {
            retryable: error.is_retryable(),
            message: error.to_string(),
        }
    }
}

/// What happens to the executor.
#[derive(Debug)]
pub enum Input {
    /// The SUBSCRIBE call was answered with a stream.
    Subscribed,
    SubscribeFailed(CallError),
    Event(Box<executor::Event>),
    /// The event stream ended; `None` when the agent closed it cleanly.
    StreamEnded(Option<CallError>),
    /// The agent answered an UPDATE.
    UpdateAnswered {
        uuid: Vec<u8>,
        result: Result<(), CallError>,
    },
    /// A job worker reported.
    Job(JobReport),
    /// Time passed (a deadline from [`Core::next_wakeup`] may be due).
    Tick,
}

/// What the I/O loop does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// POST this SUBSCRIBE; answer with [`Input::Subscribed`] or [`Input::SubscribeFailed`].
    Subscribe(Box<executor::Call>),
    /// Read the stream of the subscription just answered, feeding [`Input::Event`]s and one
    /// [`Input::StreamEnded`]. (After [`Input::Subscribed`] without this action, drop it.)
    ReadEvents,
    /// Stop reading the stream: no further connection will be made.
    CloseConnection,
    /// Open fresh HTTP connections for the next calls (the agent restarted).
    ResetConnections,
    /// POST this UPDATE; answer with [`Input::UpdateAnswered`].
    PostUpdate {
        uuid: Vec<u8>,
        call: Box<executor::Call>,
    },
    /// Start the job of a task; it reports with [`Input::Job`].
    StartJob {
        task_id: String,
        payload: Box<TaskPayload>,
    },
    /// Ask a task's job to stop (cooperative cancel; a daemon takes no more fires).
    CancelJob(String),
    /// The kill grace is over: stop a task's job by force.
    ForceKill(String),
    /// Run one daemon fire.
    Fire(String),
    /// Leave the process with this code.
    Exit(u8),
}

/// The executor's whole state.
#[derive(Debug)]
pub struct Core {
    config: ExecutorConfig,
    ledger: Ledger,
    tasks: BTreeMap<String, Task>,
    /// The tasks that may have a deadline (a kill grace or a daemon's next fire): the only ones
    /// [`Core::next_wakeup`] and the timers look at, so that thousands of plain tasks cost
    /// nothing per event.
    timed: BTreeSet<String>,
    /// The connection's state and deadlines.
    link: Link,
    /// The framework declared TASK_KILLING_STATE.
    killing_state: bool,
    /// UPDATEs wait until then after the agent could not take one.
    send_not_before: Option<Instant>,
    stopping: Option<Stopping>,
    idle_since: Option<Instant>,
    exited: bool,
}

impl Core {
    /// A core whose first SUBSCRIBE is among the actions [`Core::start`] returns.
    pub fn new(config: ExecutorConfig, now: Now) -> Core {
        // The first subscription is bounded like a recovery: a missing agent is not waited for
        // forever (a real one destroys us after --executor_registration_timeout anyway).
        let link = Link::new(
            now.at,
            config.recovery_timeout,
            config.subscription_backoff_max,
        );
        Core {
            config,
            ledger: Ledger::default(),
            tasks: BTreeMap::new(),
            timed: BTreeSet::new(),
            link,
            killing_state: false,
            send_not_before: None,
            stopping: None,
            idle_since: Some(now.at),
            exited: false,
        }
    }

    /// The first actions: SUBSCRIBE.
    pub fn start(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.subscribe(&mut out);
        out
    }

    /// Handles one input to completion.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        if self.exited {
            return out;
        }
        match input {
            Input::Subscribed => self.on_subscribed(&mut out),
            Input::SubscribeFailed(error) => self.on_subscribe_failed(&error, now, &mut out),
            Input::Event(event) => self.on_event(*event, now, &mut out),
            Input::StreamEnded(error) => self.on_disconnected(error.as_ref(), now, &mut out),
            Input::UpdateAnswered { uuid, result } => self.on_update_answered(&uuid, result, now),
            Input::Job(report) => self.on_job_report(report, now, &mut out),
            Input::Tick => self.on_timers(now, &mut out),
        }
        self.pump_updates(now, &mut out);
        if let Some(code) = self.exit_code(now) {
            self.exited = true;
            out.push(Action::Exit(code));
        }
        out
    }

    /// When [`Input::Tick`] next has something to do.
    pub fn next_wakeup(&self, now: Now) -> Option<Instant> {
        if self.exited {
            return None;
        }
        let mut wake: Option<Instant> = None;
        let mut consider = |at: Instant| {
            wake = Some(wake.map_or(at, |current| current.min(at)));
        };
        if let Some(at) = self.link.wakeup() {
            consider(at);
        }
        if let Some(at) = self.send_not_before {
            consider(at);
        }
        if let Some(stopping) = &self.stopping {
            consider(stopping.ack_deadline);
        }
        if let (Some(since), Some(idle)) = (self.idle_since, self.config.flags.idle_timeout) {
            consider(since + idle);
        }
        let timed = self.timed.iter().filter_map(|id| self.tasks.get(id));
        for task in timed.filter(|task| task.is_live()) {
            if let Some((_, kill)) = &task.stop {
                consider(kill.deadline);
            } else if let Some(next) = task.daemon.as_ref().and_then(DaemonClock::next_fire) {
                let delay = (next - now.wall).to_std().unwrap_or(Duration::ZERO);
                consider(now.at + delay);
            }
        }
        wake
    }

    // ---------------------------------------------------------------------------------------
    // Connection

    fn call(&self, kind: executor::call::Type) -> executor::Call {
        executor::Call {
            executor_id: ExecutorId {
                value: self.config.executor_id.clone(),
            },
            framework_id: FrameworkId {
                value: self.config.framework_id.clone(),
            },
            r#type: Some(kind as i32),
            ..Default::default()
        }
    }

    /// One SUBSCRIBE attempt carrying everything still unacknowledged.
    fn subscribe(&mut self, out: &mut Vec<Action>) {
        let subscribe = self.ledger.subscribe_message();
        debug!(
            unacknowledged_updates = subscribe.unacknowledged_updates.len(),
            unacknowledged_tasks = subscribe.unacknowledged_tasks.len(),
            "subscribing"
        );
        out.push(Action::Subscribe(Box::new(executor::Call {
            subscribe: Some(subscribe),
            ..self.call(executor::call::Type::Subscribe)
        })));
    }

    fn on_subscribed(&mut self, out: &mut Vec<Action>) {
        let resubscribed = self.link.ever_subscribed();
        if !self.link.on_subscribed() {
            return;
        }
        info!(resubscribed, "subscribed to the agent");
        self.send_not_before = None;
        out.push(Action::ReadEvents);
    }

    fn on_subscribe_failed(&mut self, error: &CallError, now: Now, out: &mut Vec<Action>) {
        match self.link.on_subscribe_failed(error.retryable, now.at) {
            link::Step::GiveUp(reason) => self.give_up(&reason, Some(error), now, out),
            _ => {
                debug!(error = %error.message, retry_at = ?self.link.wakeup(), "subscription failed; retrying")
            }
        }
    }

    fn on_disconnected(&mut self, error: Option<&CallError>, now: Now, out: &mut Vec<Action>) {
        if !self.link.is_subscribed() {
            return;
        }
        match error {
            Some(error) => warn!(error = %error.message, "lost the agent's event stream"),
            None => warn!("the agent ended the event stream"),
        }
        // Fresh connections: a kept-alive call connection to a restarted agent fails on its
        // first write.
        out.push(Action::ResetConnections);
        self.ledger.abandon_in_flight();
        if let link::Step::GiveUp(reason) =
            self.link.on_stream_ended(self.config.checkpoint, now.at)
        {
            self.give_up(&reason, error, now, out);
        }
    }

    /// The link ended for good: the executor stops (its tasks cannot be reported any more).
    fn give_up(
        &mut self,
        reason: &GiveUp,
        error: Option<&CallError>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        self.link.close();
        out.push(Action::CloseConnection);
        let (message, task_reason) = match reason {
            GiveUp::Refused => {
                // A 4xx answer, or TLS with the agent that cannot work (certificate not
                // trusted, plain HTTP on the other side): retrying would not change it.
                let refused = format!(
                    "cannot subscribe to the agent: {}",
                    error.map(|e| e.message.as_str()).unwrap_or_default()
                );
                error!("{refused}");
                (refused.clone(), refused)
            }
            GiveUp::RecoveryTimeout(timeout) => {
                error!("the agent did not come back within MESOS_RECOVERY_TIMEOUT");
                (
                    format!("could not reach the agent within the recovery timeout of {timeout:?}"),
                    "the executor lost its agent".to_owned(),
                )
            }
            // Without checkpointing the agent cannot recover this executor: stop, do not
            // reconnect (Mesos' `docs/executor-http-api.md`, "Disconnections").
            GiveUp::NotCheckpointing => (
                "lost the agent connection and the framework does not checkpoint".to_owned(),
                "the executor lost its agent".to_owned(),
            ),
        };
        let cause = StopCause::ExecutorStopping {
            reason: task_reason,
            culprit: None,
        };
        self.begin_stop(message, 1, cause, now, out);
    }

    // ---------------------------------------------------------------------------------------
    // Status updates

    fn send_status(&mut self, task_id: &str, state: TaskState, message: Option<String>, now: Now) {
        self.send_labelled_status(task_id, state, message, None, now);
    }

    fn send_labelled_status(
        &mut self,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
        labels: Option<v1::Labels>,
        now: Now,
    ) {
        let status = TaskStatus {
            task_id: TaskId {
                value: task_id.to_owned(),
            },
            state: state as i32,
            message: message.clone(),
            source: Some(task_status::Source::Executor as i32),
            // The agent does not fill executor_id in; schedulers may want it.
            executor_id: Some(ExecutorId {
                value: self.config.executor_id.clone(),
            }),
            // Set here so that a replay after an agent restart keeps the original time.
            timestamp: Some(now.wall.timestamp_micros() as f64 / 1e6),
            uuid: Some(shardex_mesos::uuid::new_update_uuid()),
            labels,
            ..Default::default()
        };
        info!(
            task_id,
            state = state.as_str_name(),
            message = message.as_deref().unwrap_or(""),
            "status update"
        );
        self.ledger.record_update(executor::call::Update { status });
    }

    /// POSTs queued updates: each task's one at a time, several tasks' at once.
    fn pump_updates(&mut self, now: Now, out: &mut Vec<Action>) {
        if !self.link.is_subscribed() {
            return;
        }
        if self.send_not_before.is_some_and(|at| now.at < at) {
            return;
        }
        while let Some(pending) = self.ledger.start_next_send(MAX_UPDATES_IN_FLIGHT) {
            let call = executor::Call {
                update: Some(pending.update),
                ..self.call(executor::call::Type::Update)
            };
            out.push(Action::PostUpdate {
                uuid: pending.uuid,
                call: Box::new(call),
            });
        }
    }

    fn on_update_answered(&mut self, uuid: &[u8], result: Result<(), CallError>, now: Now) {
        if !self.ledger.is_in_flight(uuid) {
            // Answer from before a resubscription, which re-delivered the update anyway.
            return;
        }
        match result {
            Ok(()) => self.ledger.mark_sent(uuid),
            Err(error) if error.retryable => {
                // 503 while the agent finishes recovery, or a broken connection: keep the
                // update and try again (a resubscription would carry it too).
                debug!(error = %error.message, uuid = %shardex_mesos::uuid::display(uuid), "update not taken yet");
                self.ledger.mark_unsent(uuid);
                self.send_not_before = Some(now.at + UPDATE_RETRY);
            }
            Err(error) => {
                // Kept as unacknowledged: the next SUBSCRIBE carries it again.
                error!(error = %error.message, uuid = %shardex_mesos::uuid::display(uuid), "the agent refused a status update");
                self.ledger.mark_sent(uuid);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Events

    fn on_event(&mut self, event: executor::Event, now: Now, out: &mut Vec<Action>) {
        use executor::event::Type;
        let kind = event.r#type.and_then(|t| Type::try_from(t).ok());
        match kind {
            Some(Type::Subscribed) => {
                if let Some(subscribed) = event.subscribed {
                    self.killing_state = subscribed.framework_info.capabilities.iter().any(|c| {
                        c.r#type == Some(framework_info::capability::Type::TaskKillingState as i32)
                    });
                    info!(
                        agent_id = subscribed
                            .agent_info
                            .id
                            .as_ref()
                            .map(|id| id.value.as_str())
                            .unwrap_or(""),
                        task_killing_state = self.killing_state,
                        "agent confirmed the subscription"
                    );
                }
            }
            Some(Type::Launch) => match event.launch {
                Some(launch) => self.on_launch(launch.task, now, out),
                None => warn!("LAUNCH event without a task"),
            },
            Some(Type::LaunchGroup) => {
                for task in event
                    .launch_group
                    .map(|g| g.task_group.tasks)
                    .unwrap_or_default()
                {
                    let id = task.task_id.value.clone();
                    self.ledger.record_task(task);
                    self.send_status(
                        &id,
                        TaskState::TaskFailed,
                        Some("shardex-executor does not run task groups (LAUNCH_GROUP)".into()),
                        now,
                    );
                }
            }
            Some(Type::Kill) => match event.kill {
                Some(kill) => {
                    self.on_kill(&kill.task_id.value, kill.kill_policy.as_ref(), now, out)
                }
                None => warn!("KILL event without a task id"),
            },
            Some(Type::Acknowledged) => {
                if let Some(ack) = event.acknowledged {
                    self.on_acknowledged(&ack.task_id.value, &ack.uuid, now);
                }
            }
            Some(Type::Message) => {
                let data = event.message.map(|m| m.data).unwrap_or_default();
                if data == STOP_MESSAGE {
                    info!("framework message STOP: shutting down");
                    self.shutdown("the framework sent STOP", now, out);
                } else {
                    info!(bytes = data.len(), "framework message ignored");
                }
            }
            Some(Type::Shutdown) => {
                info!("SHUTDOWN from the agent");
                self.shutdown("the agent sent SHUTDOWN", now, out);
            }
            Some(Type::Error) => {
                let message = event.error.map(|e| e.message).unwrap_or_default();
                error!(%message, "ERROR event from the agent");
            }
            Some(Type::Heartbeat) | Some(Type::Unknown) | None => {}
        }
    }

    fn on_launch(&mut self, info: TaskInfo, now: Now, out: &mut Vec<Action>) {
        let task_id = info.task_id.value.clone();
        if self.tasks.contains_key(&task_id) {
            warn!(task_id, "LAUNCH for a task already running here; ignored");
            return;
        }
        self.idle_since = None;
        self.ledger.record_task(info.clone());
        let mut task = Task {
            info,
            phase: Phase::Starting,
            error_policy: ErrorPolicy::default(),
            job: false,
            daemon: None,
            stop: None,
            abandoned: false,
        };
        if let Some(stopping) = &self.stopping {
            let message = format!("the executor is stopping: {}", stopping.reason);
            // Not this task's fault: the scheduler fails it over without charging an attempt.
            let labels = status_contract::stopped_for(
                stopping
                    .culprit
                    .as_deref()
                    .unwrap_or("the executor's shutdown"),
            );
            self.tasks.insert(task_id.clone(), task);
            self.finish(
                &task_id,
                TaskState::TaskFailed,
                Some(message),
                Some(labels),
                now,
            );
            return;
        }
        let payload = match TaskPayload::decode(task.info.data.as_deref().unwrap_or_default()) {
            Ok(payload) => payload,
            Err(error) => {
                self.tasks.insert(task_id.clone(), task);
                let scope = Some(SetupScope::Item);
                self.setup_failed(&task_id, error.to_string(), scope, now, out);
                return;
            }
        };
        task.error_policy = payload.job.error_policy;
        if let ExecutionType::Daemon { cron, misfire } = &payload.job.execution {
            match Schedule::parse(cron) {
                Ok(schedule) => task.daemon = Some(DaemonClock::new(schedule, *misfire, now.wall)),
                Err(error) => {
                    self.tasks.insert(task_id.clone(), task);
                    let message = format!("daemon job has an {error}");
                    self.setup_failed(&task_id, message, Some(SetupScope::Job), now, out);
                    return;
                }
            }
        }
        info!(
            task_id,
            job = %payload.context.job_name,
            items = ?payload.context.item_parameters.keys().collect::<Vec<_>>(),
            daemon = task.daemon.is_some(),
            "launching task"
        );
        task.job = true;
        if task.daemon.is_some() {
            self.timed.insert(task_id.clone());
        }
        self.tasks.insert(task_id.clone(), task);
        self.send_status(&task_id, TaskState::TaskStarting, None, now);
        out.push(Action::StartJob {
            task_id,
            payload: Box::new(payload),
        });
    }

    fn on_kill(
        &mut self,
        task_id: &str,
        policy: Option<&v1::KillPolicy>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let default_grace = self.config.flags.default_kill_grace;
        let Some(task) = self.tasks.get_mut(task_id) else {
            info!(task_id, "KILL for an unknown task; ignored");
            return;
        };
        if !task.is_live() {
            debug!(task_id, "KILL for a task that already ended; ignored");
            return;
        }
        let grace = kill_grace(policy, &task.info, default_grace);
        match &mut task.stop {
            Some((_, kill)) => {
                kill.shorten(grace);
                debug!(task_id, ?grace, "repeated KILL");
            }
            None => {
                info!(task_id, ?grace, "killing task");
                task.stop = Some((StopCause::Killed, Kill::new(now.at, grace)));
                self.timed.insert(task_id.to_owned());
                if task.job {
                    out.push(Action::CancelJob(task_id.to_owned()));
                }
                if self.killing_state {
                    self.send_status(task_id, TaskState::TaskKilling, None, now);
                }
                self.settle_if_idle(task_id, now, out);
            }
        }
    }

    fn on_acknowledged(&mut self, task_id: &str, uuid: &[u8], now: Now) {
        let Some(ack) = self.ledger.acknowledge(task_id, uuid) else {
            debug!(task_id, "acknowledgement of nothing pending");
            return;
        };
        debug!(
            task_id,
            state = ack.state.as_str_name(),
            "update acknowledged"
        );
        if ack.terminal
            && self
                .tasks
                .get(task_id)
                .is_some_and(|task| task.phase == Phase::Terminal)
        {
            self.tasks.remove(task_id);
            self.timed.remove(task_id);
        }
        if self.tasks.is_empty() && self.ledger.all_acknowledged() && self.idle_since.is_none() {
            self.idle_since = Some(now.at);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Job reports

    fn on_job_report(&mut self, report: JobReport, now: Now, out: &mut Vec<Action>) {
        match report {
            JobReport::Ready { task_id, work_dir } => {
                let Some(task) = self.tasks.get_mut(&task_id) else {
                    return;
                };
                if task.phase != Phase::Starting || task.stop.is_some() {
                    return;
                }
                task.phase = Phase::Running;
                // The scheduler shows where the task's files are.
                let labels = work_dir.to_str().map(status_contract::work_dir);
                self.send_labelled_status(&task_id, TaskState::TaskRunning, None, labels, now);
            }
            JobReport::SetupFailed {
                task_id,
                message,
                scope,
            } => {
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    // A worker that reports a failed set-up has ended.
                    task.job = false;
                    if task.is_live() {
                        self.setup_failed(&task_id, message, scope, now, out);
                    }
                }
            }
            JobReport::FireDone { task_id, outcome } => {
                self.on_fire_done(&task_id, outcome, now, out)
            }
            JobReport::Done { task_id, outcome } => self.on_job_done(&task_id, outcome, now, out),
        }
    }

    fn on_fire_done(&mut self, task_id: &str, outcome: Outcome, now: Now, out: &mut Vec<Action>) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if !task.is_live() {
            return;
        }
        let fire_again = task.daemon.as_mut().is_some_and(DaemonClock::on_fire_done);
        let stopping = task.stop.is_some();
        let policy = task.error_policy;
        match outcome {
            Outcome::Succeeded => {
                if !stopping {
                    let message = Some(FIRE_COMPLETE.into());
                    self.send_status(task_id, TaskState::TaskRunning, message, now);
                }
            }
            Outcome::Failed(message) if stopping => {
                debug!(task_id, %message, "daemon fire ended while stopping");
            }
            Outcome::Failed(message) => match policy {
                ErrorPolicy::Log => {
                    warn!(task_id, %message, "daemon fire failed (error policy: log)");
                    let message = Some(FIRE_COMPLETE.into());
                    self.send_status(task_id, TaskState::TaskRunning, message, now);
                }
                ErrorPolicy::Fail => {
                    self.end_job(task_id, out);
                    self.finish(task_id, TaskState::TaskFailed, Some(message), None, now);
                    return;
                }
                ErrorPolicy::Stop => {
                    self.end_job(task_id, out);
                    self.fail_with_error(task_id, message, None, now, out);
                    return;
                }
            },
            Outcome::Broken(message) => {
                self.setup_failed(task_id, message, None, now, out);
                return;
            }
            Outcome::Crashed { cause, message } => {
                self.crashed(task_id, &cause, message, now);
                return;
            }
        }
        if fire_again && !stopping {
            self.fire(task_id, now, out);
        }
    }

    fn on_job_done(&mut self, task_id: &str, outcome: Outcome, now: Now, out: &mut Vec<Action>) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        task.job = false;
        if !task.is_live() {
            return;
        }
        if let Some((cause, _)) = task.stop.clone() {
            // Reported only now: the work has stopped.
            match cause {
                StopCause::Killed | StopCause::Shutdown => {
                    self.finish(task_id, TaskState::TaskKilled, None, None, now)
                }
                StopCause::ExecutorStopping { reason, culprit } => {
                    let message = format!("stopped because the executor is stopping: {reason}");
                    let labels = culprit.as_deref().map(status_contract::stopped_for);
                    self.finish(task_id, TaskState::TaskFailed, Some(message), labels, now);
                }
            }
            return;
        }
        let policy = task.error_policy;
        match outcome {
            Outcome::Succeeded => self.finish(task_id, TaskState::TaskFinished, None, None, now),
            Outcome::Failed(message) => match policy {
                ErrorPolicy::Fail => {
                    self.finish(task_id, TaskState::TaskFailed, Some(message), None, now)
                }
                // Elastic-Job-Cloud's behaviour: the error shows, the task counts as done.
                ErrorPolicy::Log => {
                    self.finish(task_id, TaskState::TaskFinished, Some(message), None, now)
                }
                ErrorPolicy::Stop => self.fail_with_error(task_id, message, None, now, out),
            },
            Outcome::Broken(message) => self.setup_failed(task_id, message, None, now, out),
            Outcome::Crashed { cause, message } => self.crashed(task_id, &cause, message, now),
        }
    }

    /// The task's worker process died: this task fails, nothing else notices.
    fn crashed(&mut self, task_id: &str, cause: &str, message: String, now: Now) {
        error!(task_id, %message, "job process crashed");
        let labels = v1::Labels {
            labels: vec![status_contract::label(status_contract::JOB_CRASHED, cause)],
        };
        self.finish(
            task_id,
            TaskState::TaskFailed,
            Some(message),
            Some(labels),
            now,
        );
    }

    /// Lets the job of `task_id` go (a daemon stops taking fires).
    fn end_job(&mut self, task_id: &str, out: &mut Vec<Action>) {
        if self.tasks.get(task_id).is_some_and(|task| task.job) {
            out.push(Action::CancelJob(task_id.to_owned()));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Ending tasks and the executor

    /// Sends the terminal update of a task.
    fn finish(
        &mut self,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
        labels: Option<v1::Labels>,
        now: Now,
    ) {
        if let Some(task) = self.tasks.get_mut(task_id) {
            task.phase = Phase::Terminal;
        }
        self.send_labelled_status(task_id, state, message, labels, now);
    }

    /// A task could not be set up, or its job broke: `TASK_ERROR`, then (by default) the
    /// executor stops itself. `scope`: the error recurs on every launch of the job (or item).
    fn setup_failed(
        &mut self,
        task_id: &str,
        message: String,
        scope: Option<SetupScope>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        error!(task_id, %message, "task setup failed");
        self.end_job(task_id, out);
        self.fail_with_error(task_id, message, scope, now, out);
    }

    /// `TASK_ERROR` for `task_id`, labelled for the scheduler, then (by default) the executor
    /// stops itself.
    fn fail_with_error(
        &mut self,
        task_id: &str,
        message: String,
        scope: Option<SetupScope>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let stop = self.config.flags.on_setup_error == OnSetupError::StopExecutor;
        let mut labels = Vec::new();
        if let Some(scope) = scope {
            labels.push(status_contract::label(
                status_contract::SETUP_ERROR,
                scope.as_str(),
            ));
        }
        if stop {
            labels.push(status_contract::label(
                status_contract::EXECUTOR_STOPPING,
                "true",
            ));
        }
        let labels = (!labels.is_empty()).then_some(v1::Labels { labels });
        self.finish(
            task_id,
            TaskState::TaskError,
            Some(message.clone()),
            labels,
            now,
        );
        if stop {
            let reason = format!("task {task_id} failed: {message}");
            let cause = StopCause::ExecutorStopping {
                reason: reason.clone(),
                culprit: Some(task_id.to_owned()),
            };
            self.begin_stop(reason, 1, cause, now, out);
        }
    }

    /// SHUTDOWN or STOP: kill everything within the shutdown grace period, exit cleanly.
    fn shutdown(&mut self, reason: &str, now: Now, out: &mut Vec<Action>) {
        self.begin_stop(reason.to_owned(), 0, StopCause::Shutdown, now, out);
    }

    /// Stops every live task with `cause` and arranges for the executor to exit once their
    /// terminal updates are acknowledged (bounded).
    fn begin_stop(
        &mut self,
        reason: String,
        exit_code: u8,
        cause: StopCause,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if let Some(stopping) = &mut self.stopping {
            stopping.again(exit_code);
            return;
        }
        warn!(%reason, "executor stopping");
        let grace = task_grace(self.config.shutdown_grace_period);
        let culprit = match &cause {
            StopCause::ExecutorStopping { culprit, .. } => culprit.clone(),
            _ => None,
        };
        self.stopping = Some(Stopping::new(
            reason,
            culprit,
            exit_code,
            now.at,
            self.config.shutdown_grace_period,
            self.config.flags.ack_timeout,
        ));
        let live: Vec<String> = self
            .tasks
            .values()
            .filter(|task| task.is_live())
            .map(|task| task.id().to_owned())
            .collect();
        let killing = self.killing_state && matches!(cause, StopCause::Shutdown);
        for task_id in live {
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            match &mut task.stop {
                // Already being killed: keep the cause, never extend the grace.
                Some((_, kill)) => kill.shorten(grace),
                None => {
                    task.stop = Some((cause.clone(), Kill::new(now.at, grace)));
                    self.timed.insert(task_id.clone());
                    if task.job {
                        out.push(Action::CancelJob(task_id.clone()));
                    }
                    if killing {
                        self.send_status(&task_id, TaskState::TaskKilling, None, now);
                    }
                }
            }
            self.settle_if_idle(&task_id, now, out);
        }
    }

    /// A task being stopped whose job already ended (or never started) is settled at once.
    fn settle_if_idle(&mut self, task_id: &str, now: Now, out: &mut Vec<Action>) {
        let idle = self
            .tasks
            .get(task_id)
            .is_some_and(|task| task.is_live() && task.stop.is_some() && !task.job);
        if idle {
            self.on_job_done(task_id, Outcome::Succeeded, now, out);
        }
    }

    /// The exit code, once the executor may exit.
    fn exit_code(&self, now: Now) -> Option<u8> {
        let stopping = self.stopping.as_ref()?;
        let acknowledged = self.ledger.all_acknowledged();
        let code = stopping.exit_code(
            self.tasks.values().any(Task::is_live),
            acknowledged,
            self.link.is_closed(),
            now.at,
        )?;
        if !acknowledged {
            warn!(
                unacknowledged = self.ledger.unacknowledged_updates(),
                "exiting with status updates the agent has not acknowledged"
            );
        }
        info!(reason = %stopping.reason, code, "executor exiting");
        Some(code)
    }

    // ---------------------------------------------------------------------------------------
    // Timers

    fn on_timers(&mut self, now: Now, out: &mut Vec<Action>) {
        if self.link.on_time(now.at) == link::Step::Subscribe {
            self.subscribe(out);
        }
        if self.send_not_before.is_some_and(|at| now.at >= at) {
            self.send_not_before = None;
        }
        if idle_expired(self.idle_since, self.config.flags.idle_timeout, now.at)
            && self.stopping.is_none()
            && self.tasks.is_empty()
            && self.ledger.all_acknowledged()
        {
            info!(idle = ?self.config.flags.idle_timeout, "idle timeout: no task for the configured time");
            self.begin_stop("idle timeout".into(), 0, StopCause::Shutdown, now, out);
        }
        let ids: Vec<String> = self.timed.iter().cloned().collect();
        for task_id in ids {
            self.task_timers(&task_id, now, out);
        }
    }

    fn task_timers(&mut self, task_id: &str, now: Now, out: &mut Vec<Action>) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if !task.is_live() {
            return;
        }
        if let Some((_, kill)) = &mut task.stop {
            if now.at < kill.deadline {
                return;
            }
            if !kill.forced {
                // Cooperative cancellation did not stop it in time: force it. A plugin thread
                // cannot be killed; it gets one more short wait.
                warn!(task_id, "kill grace period over; forcing");
                kill.forced = true;
                kill.deadline = now.at + FORCED_KILL_REAP;
                if task.job {
                    out.push(Action::ForceKill(task_id.to_owned()));
                }
                return;
            }
            // The job ignores cancellation. The only way to stop a thread is to end the
            // process; the agent then reports this task. Report everything else honestly.
            error!(
                task_id,
                "job ignored cancellation past its grace period; the executor exits to stop it"
            );
            task.abandoned = true;
            let reason = format!(
                "task {task_id} did not stop within its kill grace period; the executor exits \
                 to stop it"
            );
            let cause = StopCause::ExecutorStopping {
                reason: reason.clone(),
                culprit: Some(task_id.to_owned()),
            };
            self.begin_stop(reason, 1, cause, now, out);
            return;
        }
        let due = task
            .daemon
            .as_ref()
            .and_then(DaemonClock::next_fire)
            .is_some_and(|next| next <= now.wall);
        if due {
            match task.daemon.as_mut().map(|clock| clock.on_due(now.wall)) {
                Some(Fire::Now) => self.fire(task_id, now, out),
                Some(Fire::Deferred) => {
                    debug!(task_id, "fire deferred: the previous one still runs")
                }
                Some(Fire::Skipped) => info!(
                    task_id,
                    "fire skipped: the previous one still runs (misfire off)"
                ),
                None => {}
            }
        }
    }

    /// Starts one daemon fire.
    fn fire(&mut self, task_id: &str, now: Now, out: &mut Vec<Action>) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if task.phase == Phase::Running && task.stop.is_none() && task.job {
            out.push(Action::Fire(task_id.to_owned()));
            self.send_status(
                task_id,
                TaskState::TaskRunning,
                Some(FIRE_BEGIN.into()),
                now,
            );
        } else if let Some(clock) = task.daemon.as_mut() {
            // Not set up yet (or stopping): this fire is dropped, the next comes on time.
            clock.reset();
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
