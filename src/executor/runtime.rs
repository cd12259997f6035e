//! The executor's event loop: the one owner of its state.
//!
//! Everything reaches it as a [`Message`] on one channel — the agent's events, the end of the
//! subscription stream, answers to UPDATE calls, reports from job threads — or as a timer it
//! computed itself (kill deadlines, daemon fires, reconnect attempts, exit deadlines). Each is
//! handled to completion before the next, so a KILL and a finishing job can never race.
//!
//! Connection life (Mesos' `docs/executor-http-api.md`, "Disconnections", and the v1 executor
//! library `src/executor/executor.cpp`): subscribe (retrying while the agent
//! starts or recovers) → subscribed → on stream end, with checkpointing, resubscribe within
//! `MESOS_RECOVERY_TIMEOUT` after random delays up to `MESOS_SUBSCRIPTION_BACKOFF_MAX`,
//! re-sending every unacknowledged update and task; without checkpointing, stop the tasks and
//! exit.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use shardex_common::cron::{self, Schedule};
use shardex_common::payload::{ErrorPolicy, ExecutionType, TaskPayload};
use shardex_common::status_contract::{self, FIRE_BEGIN, FIRE_COMPLETE, SetupScope};
use shardex_mesos::proto::v1::{
    self, ExecutorId, FrameworkId, TaskId, TaskInfo, TaskState, TaskStatus, executor,
    framework_info, task_status,
};
use shardex_mesos::{ApiError, Client, ClientConfig, Credentials, Subscription};

use super::config::{ExecutorConfig, OnSetupError};
use super::jobs::{self, JobEnv, JobReport, Outcome};
use super::ledger::Ledger;
use super::link::{self, GiveUp, Link};
use super::stopping::{FORCED_KILL_REAP, Stopping, idle_expired, task_grace};
use super::task::{DaemonClock, Fire, Kill, Phase, StopCause, Task, kill_grace};

/// Framework message that stops an executor (Elastic-Job-Cloud sends it when an app is
/// deregistered).
const STOP_MESSAGE: &[u8] = b"STOP";
/// UPDATEs of different tasks POSTed at once (each task's own stay strictly sequential).
const MAX_UPDATES_IN_FLIGHT: usize = 8;
/// Pause before re-sending an UPDATE the agent could not take yet (503 while it recovers).
const UPDATE_RETRY: Duration = Duration::from_millis(250);

/// Everything the event loop receives.
#[derive(Debug)]
pub enum Message {
    Subscribed(Box<Subscription<executor::Event>>),
    SubscribeFailed(ApiError),
    Event(Box<executor::Event>),
    StreamEnded(Option<ApiError>),
    UpdateAnswered {
        uuid: Vec<u8>,
        result: Result<(), ApiError>,
    },
    Job(JobReport),
}

struct Executor {
    config: ExecutorConfig,
    client: Client,
    mailbox: mpsc::UnboundedSender<Message>,
    inbox: mpsc::UnboundedReceiver<Message>,
    jobs: Arc<JobEnv>,
    ledger: Ledger,
    tasks: BTreeMap<String, Task>,
    /// The connection's state and deadlines (no I/O: see `link.rs`).
    link: Link,
    /// Reads the event stream while subscribed.
    reader: Option<JoinHandle<()>>,
    /// The framework declared TASK_KILLING_STATE.
    killing_state: bool,
    send_not_before: Option<Instant>,
    stopping: Option<Stopping>,
    idle_since: Option<Instant>,
}

/// Runs the executor until it exits; returns the process exit code.
pub async fn run(config: ExecutorConfig) -> ExitCode {
    let client_config = ClientConfig {
        credentials: config.authentication_token.clone().map(Credentials::Bearer),
        ..ClientConfig::default()
    };
    let client = match Client::new(config.agent_url.clone(), client_config) {
        Ok(client) => client,
        Err(error) => {
            error!(%error, "cannot create the agent client");
            return ExitCode::FAILURE;
        }
    };
    let (mailbox, inbox) = mpsc::unbounded_channel();
    let jobs = Arc::new(JobEnv::new(config.sandbox.clone(), mailbox.clone()));
    // The first subscription is bounded like a recovery: a missing agent is not waited for
    // forever (a real one destroys us after --executor_registration_timeout anyway).
    let link = Link::new(
        Instant::now(),
        config.recovery_timeout,
        config.subscription_backoff_max,
    );
    let mut executor = Executor {
        config,
        client,
        mailbox,
        inbox,
        jobs,
        ledger: Ledger::default(),
        tasks: BTreeMap::new(),
        link,
        reader: None,
        killing_state: false,
        send_not_before: None,
        stopping: None,
        idle_since: Some(Instant::now()),
    };
    let code = executor.event_loop().await;
    if let Some(reader) = &executor.reader {
        reader.abort();
    }
    ExitCode::from(code)
}

impl Executor {
    async fn event_loop(&mut self) -> u8 {
        info!(
            executor_id = %self.config.executor_id,
            framework_id = %self.config.framework_id,
            agent = %self.config.agent_url,
            checkpoint = self.config.checkpoint,
            "executor starting"
        );
        self.subscribe();
        loop {
            if let Some(code) = self.exit_code() {
                return code;
            }
            self.pump_updates();
            let wake = self.next_wakeup();
            tokio::select! {
                message = self.inbox.recv() => match message {
                    Some(message) => self.handle(message),
                    // Unreachable while `self.mailbox` lives; be safe anyway.
                    None => return 1,
                },
                () = sleep_until(wake) => self.on_timers(Instant::now()),
            }
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Subscribed(subscription) => self.on_subscribed(*subscription),
            Message::SubscribeFailed(error) => self.on_subscribe_failed(error),
            Message::Event(event) => self.on_event(*event),
            Message::StreamEnded(error) => self.on_disconnected(error),
            Message::UpdateAnswered { uuid, result } => self.on_update_answered(uuid, result),
            Message::Job(report) => self.on_job_report(report),
        }
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

    /// Starts one SUBSCRIBE attempt carrying everything still unacknowledged.
    fn subscribe(&mut self) {
        let call = executor::Call {
            subscribe: Some(self.ledger.subscribe_message()),
            ..self.call(executor::call::Type::Subscribe)
        };
        debug!(
            unacknowledged_updates = call
                .subscribe
                .as_ref()
                .map_or(0, |s| s.unacknowledged_updates.len()),
            unacknowledged_tasks = call
                .subscribe
                .as_ref()
                .map_or(0, |s| s.unacknowledged_tasks.len()),
            "subscribing"
        );
        let client = self.client.clone();
        let mailbox = self.mailbox.clone();
        tokio::spawn(async move {
            let message = match client.subscribe::<_, executor::Event>(&call).await {
                Ok(subscription) => Message::Subscribed(Box::new(subscription)),
                Err(error) => Message::SubscribeFailed(error),
            };
            let _ = mailbox.send(message);
        });
    }

    fn on_subscribed(&mut self, mut subscription: Subscription<executor::Event>) {
        let resubscribed = self.link.ever_subscribed();
        if !self.link.on_subscribed() {
            return;
        }
        info!(resubscribed, "subscribed to the agent");
        self.send_not_before = None;
        let mailbox = self.mailbox.clone();
        let reader = tokio::spawn(async move {
            loop {
                match subscription.next_event().await {
                    Ok(Some(event)) => {
                        if mailbox.send(Message::Event(Box::new(event))).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = mailbox.send(Message::StreamEnded(None));
                        return;
                    }
                    Err(error) => {
                        let _ = mailbox.send(Message::StreamEnded(Some(error)));
                        return;
                    }
                }
            }
        });
        self.reader = Some(reader);
    }

    fn on_subscribe_failed(&mut self, error: ApiError) {
        match self
            .link
            .on_subscribe_failed(error.is_retryable(), Instant::now())
        {
            link::Step::GiveUp(reason) => self.give_up(&reason, Some(&error)),
            _ => debug!(%error, retry_at = ?self.link.wakeup(), "subscription failed; retrying"),
        }
    }

    fn on_disconnected(&mut self, error: Option<ApiError>) {
        if !self.link.is_subscribed() {
            return;
        }
        match &error {
            Some(error) => warn!(%error, "lost the agent's event stream"),
            None => warn!("the agent ended the event stream"),
        }
        self.reader = None;
        // Open fresh connections: a kept-alive call connection to a restarted agent fails on
        // its first write.
        if let Err(error) = self.client.reset_connections() {
            warn!(%error, "cannot reset the agent connections");
        }
        self.ledger.abandon_in_flight();
        if let link::Step::GiveUp(reason) = self
            .link
            .on_stream_ended(self.config.checkpoint, Instant::now())
        {
            self.give_up(&reason, error.as_ref());
        }
    }

    /// The link ended for good: the executor stops (its tasks cannot be reported any more).
    fn give_up(&mut self, reason: &GiveUp, error: Option<&ApiError>) {
        self.close_connection();
        let (message, task_reason) = match reason {
            GiveUp::Refused => {
                let refused = format!(
                    "the agent refused the subscription: {}",
                    error.map(ToString::to_string).unwrap_or_default()
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
        self.begin_stop(
            message,
            1,
            StopCause::ExecutorStopping {
                reason: task_reason,
                culprit: None,
            },
        );
    }

    fn close_connection(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
        self.link.close();
    }

    // ---------------------------------------------------------------------------------------
    // Status updates

    fn send_status(&mut self, task_id: &str, state: TaskState, message: Option<String>) {
        self.send_labelled_status(task_id, state, message, None);
    }

    fn send_labelled_status(
        &mut self,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
        labels: Option<v1::Labels>,
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
            timestamp: Some(now_seconds()),
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
    fn pump_updates(&mut self) {
        if !self.link.is_subscribed() {
            return;
        }
        if self
            .send_not_before
            .is_some_and(|not_before| Instant::now() < not_before)
        {
            return;
        }
        while let Some(pending) = self.ledger.start_next_send(MAX_UPDATES_IN_FLIGHT) {
            let uuid = pending.uuid;
            let call = executor::Call {
                update: Some(pending.update),
                ..self.call(executor::call::Type::Update)
            };
            let client = self.client.clone();
            let mailbox = self.mailbox.clone();
            tokio::spawn(async move {
                let result = client.call(&call).await.map(|_| ());
                let _ = mailbox.send(Message::UpdateAnswered { uuid, result });
            });
        }
    }

    fn on_update_answered(&mut self, uuid: Vec<u8>, result: Result<(), ApiError>) {
        if !self.ledger.is_in_flight(&uuid) {
            // Answer from before a resubscription, which re-delivered the update anyway.
            return;
        }
        match result {
            Ok(()) => self.ledger.mark_sent(&uuid),
            Err(error) if error.is_retryable() => {
                // 503 while the agent finishes recovery, or a broken connection: keep the
                // update and try again (a resubscription would carry it too).
                debug!(%error, uuid = %shardex_mesos::uuid::display(&uuid), "update not taken yet");
                self.ledger.mark_unsent(&uuid);
                self.send_not_before = Some(Instant::now() + UPDATE_RETRY);
            }
            Err(error) => {
                // Kept as unacknowledged: the next SUBSCRIBE carries it again.
                error!(%error, uuid = %shardex_mesos::uuid::display(&uuid), "the agent refused a status update");
                self.ledger.mark_sent(&uuid);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Events

    fn on_event(&mut self, event: executor::Event) {
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
                Some(launch) => self.on_launch(launch.task),
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
                    );
                }
            }
            Some(Type::Kill) => match event.kill {
                Some(kill) => self.on_kill(&kill.task_id.value, kill.kill_policy.as_ref()),
                None => warn!("KILL event without a task id"),
            },
            Some(Type::Acknowledged) => {
                if let Some(ack) = event.acknowledged {
                    self.on_acknowledged(&ack.task_id.value, &ack.uuid);
                }
            }
            Some(Type::Message) => {
                let data = event.message.map(|m| m.data).unwrap_or_default();
                if data == STOP_MESSAGE {
                    info!("framework message STOP: shutting down");
                    self.shutdown("the framework sent STOP");
                } else {
                    info!(bytes = data.len(), "framework message ignored");
                }
            }
            Some(Type::Shutdown) => {
                info!("SHUTDOWN from the agent");
                self.shutdown("the agent sent SHUTDOWN");
            }
            Some(Type::Error) => {
                let message = event.error.map(|e| e.message).unwrap_or_default();
                error!(%message, "ERROR event from the agent");
            }
            Some(Type::Heartbeat) | Some(Type::Unknown) | None => {}
        }
    }

    fn on_launch(&mut self, info: TaskInfo) {
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
            handle: None,
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
            self.finish_labelled(&task_id, TaskState::TaskFailed, Some(message), Some(labels));
            return;
        }
        let payload = match TaskPayload::decode(task.info.data.as_deref().unwrap_or_default()) {
            Ok(payload) => payload,
            Err(error) => {
                self.tasks.insert(task_id.clone(), task);
                self.setup_failed(&task_id, error.to_string(), Some(SetupScope::Item));
                return;
            }
        };
        task.error_policy = payload.job.error_policy;
        if let ExecutionType::Daemon { cron, misfire } = &payload.job.execution {
            match Schedule::parse(cron) {
                Ok(schedule) => {
                    task.daemon = Some(DaemonClock::new(schedule, *misfire, Utc::now()))
                }
                Err(error) => {
                    self.tasks.insert(task_id.clone(), task);
                    self.setup_failed(
                        &task_id,
                        format!("daemon job has an {error}"),
                        Some(SetupScope::Job),
                    );
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
        self.send_status(&task_id, TaskState::TaskStarting, None);
        match jobs::start(&self.jobs, payload) {
            Ok(handle) => {
                task.handle = Some(handle);
                self.tasks.insert(task_id, task);
            }
            Err(error) => {
                self.tasks.insert(task_id.clone(), task);
                self.setup_failed(
                    &task_id,
                    format!("cannot start the job thread: {error}"),
                    None,
                );
            }
        }
    }

    fn on_kill(&mut self, task_id: &str, policy: Option<&v1::KillPolicy>) {
        let now = Instant::now();
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
                task.stop = Some((StopCause::Killed, Kill::new(now, grace)));
                if let Some(handle) = &mut task.handle {
                    handle.cancel();
                }
                let killing = self.killing_state;
                if killing {
                    self.send_status(task_id, TaskState::TaskKilling, None);
                }
                self.settle_if_idle(task_id);
            }
        }
    }

    fn on_acknowledged(&mut self, task_id: &str, uuid: &[u8]) {
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
        }
        if self.tasks.is_empty() && self.ledger.all_acknowledged() && self.idle_since.is_none() {
            self.idle_since = Some(Instant::now());
        }
    }

    // ---------------------------------------------------------------------------------------
    // Job reports

    fn on_job_report(&mut self, report: JobReport) {
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
                self.send_labelled_status(&task_id, TaskState::TaskRunning, None, labels);
            }
            JobReport::SetupFailed {
                task_id,
                message,
                scope,
            } => {
                if self.tasks.get(&task_id).is_some_and(Task::is_live) {
                    self.setup_failed(&task_id, message, scope);
                }
            }
            JobReport::FireDone { task_id, outcome } => self.on_fire_done(&task_id, outcome),
            JobReport::Done { task_id, outcome } => self.on_job_done(&task_id, outcome),
        }
    }

    fn on_fire_done(&mut self, task_id: &str, outcome: Outcome) {
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
                    self.send_status(task_id, TaskState::TaskRunning, Some(FIRE_COMPLETE.into()));
                }
            }
            Outcome::Failed(message) if stopping => {
                debug!(task_id, %message, "daemon fire ended while stopping");
            }
            Outcome::Failed(message) => match policy {
                ErrorPolicy::Log => {
                    warn!(task_id, %message, "daemon fire failed (error policy: log)");
                    self.send_status(task_id, TaskState::TaskRunning, Some(FIRE_COMPLETE.into()));
                }
                ErrorPolicy::Fail => {
                    self.end_job(task_id);
                    self.finish(task_id, TaskState::TaskFailed, Some(message));
                    return;
                }
                ErrorPolicy::Stop => {
                    self.end_job(task_id);
                    self.fail_and_maybe_stop(task_id, message);
                    return;
                }
            },
            Outcome::Broken(message) => {
                self.end_job(task_id);
                self.setup_failed(task_id, message, None);
                return;
            }
        }
        if fire_again && !stopping {
            self.fire(task_id);
        }
    }

    fn on_job_done(&mut self, task_id: &str, outcome: Outcome) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        task.handle = None;
        if !task.is_live() {
            return;
        }
        if let Some((cause, _)) = task.stop.clone() {
            // Reported only now: the work has stopped.
            let (state, message) = match cause {
                StopCause::Killed | StopCause::Shutdown => (TaskState::TaskKilled, None),
                StopCause::ExecutorStopping { reason, culprit } => {
                    let message = format!("stopped because the executor is stopping: {reason}");
                    let labels = culprit.as_deref().map(status_contract::stopped_for);
                    self.finish_labelled(task_id, TaskState::TaskFailed, Some(message), labels);
                    return;
                }
            };
            self.finish(task_id, state, message);
            return;
        }
        let policy = task.error_policy;
        match outcome {
            Outcome::Succeeded => self.finish(task_id, TaskState::TaskFinished, None),
            Outcome::Failed(message) => match policy {
                ErrorPolicy::Fail => self.finish(task_id, TaskState::TaskFailed, Some(message)),
                // Elastic-Job-Cloud's behaviour: the error shows, the task counts as done.
                ErrorPolicy::Log => self.finish(task_id, TaskState::TaskFinished, Some(message)),
                ErrorPolicy::Stop => self.fail_and_maybe_stop(task_id, message),
            },
            Outcome::Broken(message) => self.setup_failed(task_id, message, None),
        }
    }

    /// Lets the job thread of `task_id` go (a daemon stops taking fires).
    fn end_job(&mut self, task_id: &str) {
        if let Some(handle) = self.tasks.get_mut(task_id).and_then(|t| t.handle.as_mut()) {
            handle.cancel();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Ending tasks and the executor

    /// Sends the terminal update of a task.
    fn finish(&mut self, task_id: &str, state: TaskState, message: Option<String>) {
        self.finish_labelled(task_id, state, message, None);
    }

    fn finish_labelled(
        &mut self,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
        labels: Option<v1::Labels>,
    ) {
        if let Some(task) = self.tasks.get_mut(task_id) {
            task.phase = Phase::Terminal;
        }
        self.send_labelled_status(task_id, state, message, labels);
    }

    /// A task could not be set up, or its plugin panicked: `TASK_ERROR`, then (by default) the
    /// executor stops itself. `scope`: the error recurs on every launch of the job (or item).
    fn setup_failed(&mut self, task_id: &str, message: String, scope: Option<SetupScope>) {
        error!(task_id, %message, "task setup failed");
        self.end_job(task_id);
        self.fail_with_error(task_id, message, scope);
    }

    fn fail_and_maybe_stop(&mut self, task_id: &str, message: String) {
        self.fail_with_error(task_id, message, None);
    }

    /// `TASK_ERROR` for `task_id`, labelled for the scheduler, then (by default) the executor
    /// stops itself.
    fn fail_with_error(&mut self, task_id: &str, message: String, scope: Option<SetupScope>) {
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
        self.finish_labelled(task_id, TaskState::TaskError, Some(message.clone()), labels);
        if stop {
            let reason = format!("task {task_id} failed: {message}");
            let cause = StopCause::ExecutorStopping {
                reason: reason.clone(),
                culprit: Some(task_id.to_owned()),
            };
            self.begin_stop(reason, 1, cause);
        }
    }

    /// SHUTDOWN or STOP: kill everything within the shutdown grace period, exit cleanly.
    fn shutdown(&mut self, reason: &str) {
        self.begin_stop(reason.to_owned(), 0, StopCause::Shutdown);
    }

    /// Stops every live task with `cause` and arranges for the executor to exit once their
    /// terminal updates are acknowledged (bounded).
    fn begin_stop(&mut self, reason: String, exit_code: u8, cause: StopCause) {
        let now = Instant::now();
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
            now,
            self.config.shutdown_grace_period,
            self.config.flags.ack_timeout,
        ));
        let live: Vec<String> = self
            .tasks
            .values()
            .filter(|task| task.is_live())
            .map(|task| task.id().to_owned())
            .collect();
        for task_id in live {
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            match &mut task.stop {
                // Already being killed: keep the cause, never extend the grace.
                Some((_, kill)) => kill.shorten(grace),
                None => {
                    task.stop = Some((cause.clone(), Kill::new(now, grace)));
                    if let Some(handle) = &mut task.handle {
                        handle.cancel();
                    }
                    if matches!(cause, StopCause::Shutdown | StopCause::Killed)
                        && self.killing_state
                    {
                        self.send_status(&task_id, TaskState::TaskKilling, None);
                    }
                }
            }
            self.settle_if_idle(&task_id);
        }
    }

    /// A task being stopped whose job already ended (or never started) is settled at once.
    fn settle_if_idle(&mut self, task_id: &str) {
        let idle = self
            .tasks
            .get(task_id)
            .is_some_and(|task| task.is_live() && task.stop.is_some() && task.handle.is_none());
        if idle {
            self.on_job_done(task_id, Outcome::Succeeded);
        }
    }

    /// The exit code, once the executor may exit.
    fn exit_code(&self) -> Option<u8> {
        let stopping = self.stopping.as_ref()?;
        let acknowledged = self.ledger.all_acknowledged();
        let code = stopping.exit_code(
            self.tasks.values().any(Task::is_live),
            acknowledged,
            self.link.is_closed(),
            Instant::now(),
        );
        if code.is_some() {
            if !acknowledged {
                warn!(
                    unacknowledged = self.ledger.unacknowledged_updates(),
                    "exiting with status updates the agent has not acknowledged"
                );
            }
            info!(reason = %stopping.reason, code = stopping.exit_code, "executor exiting");
            return Some(stopping.exit_code);
        }
        None
    }

    // ---------------------------------------------------------------------------------------
    // Timers

    fn next_wakeup(&self) -> Option<Instant> {
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
        for task in self.tasks.values().filter(|task| task.is_live()) {
            if let Some((_, kill)) = &task.stop {
                consider(kill.deadline);
            } else if let Some(next) = task.daemon.as_ref().and_then(DaemonClock::next_fire) {
                consider(Instant::now() + cron::delay_until(next));
            }
        }
        wake
    }

    fn on_timers(&mut self, now: Instant) {
        if self.link.on_time(now) == link::Step::Subscribe {
            self.subscribe();
        }
        if self.send_not_before.is_some_and(|at| now >= at) {
            self.send_not_before = None;
        }
        if idle_expired(self.idle_since, self.config.flags.idle_timeout, now)
            && self.stopping.is_none()
            && self.tasks.is_empty()
            && self.ledger.all_acknowledged()
        {
            info!(idle = ?self.config.flags.idle_timeout, "idle timeout: no task for the configured time");
            self.begin_stop("idle timeout".into(), 0, StopCause::Shutdown);
        }
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        for task_id in ids {
            self.task_timers(&task_id, now);
        }
    }

    fn task_timers(&mut self, task_id: &str, now: Instant) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if !task.is_live() {
            return;
        }
        if let Some((_, kill)) = &mut task.stop {
            if now < kill.deadline {
                return;
            }
            if !kill.forced {
                // Cooperative cancellation did not stop it in time: SIGKILL a script's process
                // group. A plugin thread cannot be killed; it gets one more short wait.
                warn!(task_id, "kill grace period over; forcing");
                kill.forced = true;
                kill.deadline = now + FORCED_KILL_REAP;
                if let Some(handle) = &task.handle {
                    handle.force_kill();
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
            self.begin_stop(reason, 1, cause);
            return;
        }
        let due = task
            .daemon
            .as_ref()
            .and_then(DaemonClock::next_fire)
            .is_some_and(|next| next <= Utc::now());
        if due {
            let fire = task.daemon.as_mut().map(|clock| clock.on_due(Utc::now()));
            match fire {
                Some(Fire::Now) => self.fire(task_id),
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
    fn fire(&mut self, task_id: &str) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        let started = task.phase == Phase::Running
            && task.stop.is_none()
            && task.handle.as_ref().is_some_and(|handle| handle.fire());
        if started {
            self.send_status(task_id, TaskState::TaskRunning, Some(FIRE_BEGIN.into()));
        } else if let Some(clock) = task.daemon.as_mut() {
            // Not set up yet (or stopping): this fire is dropped, the next comes on time.
            clock.reset();
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
