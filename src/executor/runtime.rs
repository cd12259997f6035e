//! The executor's I/O loop: it feeds [`Core`] (`core.rs`, where every decision is made) and
//! performs what the core answers. Everything reaches it as a [`Message`] — the subscription's
//! answer, the agent's events, the end of the stream, answers to UPDATE calls, reports from job
//! workers — or as the wake-up time the core asked for. Each is handled to completion before
//! the next, so a KILL and a finishing job can never race.
//!
//! Messages come on two channels: what the agent sends, and what this process produced (job
//! reports, answers to its UPDATEs). The second is read first whenever it holds something: a
//! burst of a thousand LAUNCHes would otherwise be handled whole before the first worker's
//! report behind it, and every `TASK_RUNNING` would follow the last `TASK_STARTING`. Both
//! orders are ones the agent and the workers could produce anyway.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

use shardex_mesos::proto::v1::executor;
use shardex_mesos::{ApiError, Client, ClientConfig, Credentials, Subscription};

use super::config::ExecutorConfig;
use super::core::{Action, CallError, Core, Input, Now};
use super::jobs::{self, JobEnv, JobHandle, JobReport};
use super::worker::WorkerCommand;

/// Everything the loop receives.
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

/// The I/O side: the agent client, the stream reader, the job workers.
struct Shell {
    client: Client,
    /// The agent's side: the subscription, its events, its end.
    mailbox: mpsc::UnboundedSender<Message>,
    /// This process's side: UPDATE answers (job reports come through `jobs`).
    internal: mpsc::UnboundedSender<Message>,
    jobs: Arc<JobEnv>,
    /// Each running job worker, by task id.
    workers: HashMap<String, JobHandle>,
    /// A subscription just answered, until the core says to read it (or not).
    answered: Option<Subscription<executor::Event>>,
    /// Reads the event stream while subscribed.
    reader: Option<JoinHandle<()>>,
}

/// Runs the executor until it exits; returns the process exit code.
pub async fn run(config: ExecutorConfig) -> ExitCode {
    let client_config = ClientConfig {
        credentials: config.authentication_token.clone().map(Credentials::Bearer),
        tls: config.tls.clone().unwrap_or_default(),
        ..ClientConfig::default()
    };
    let client = match Client::new(config.agent_url.clone(), client_config) {
        Ok(client) => client,
        Err(error) => {
            error!(%error, "cannot create the agent client");
            return ExitCode::FAILURE;
        }
    };
    info!(
        executor_id = %config.executor_id,
        framework_id = %config.framework_id,
        agent = %config.agent_url,
        checkpoint = config.checkpoint,
        "executor starting"
    );
    let (mailbox, mut inbox) = mpsc::unbounded_channel();
    let (internal, mut reports) = mpsc::unbounded_channel();
    let mut shell = Shell {
        client,
        jobs: Arc::new(JobEnv::new(
            config.sandbox.clone(),
            internal.clone(),
            WorkerCommand::this_executable(),
        )),
        mailbox,
        internal,
        workers: HashMap::new(),
        answered: None,
        reader: None,
    };
    let mut core = Core::new(config, Now::current());
    let mut code = shell.perform(core.start());
    while code.is_none() {
        let wake = core.next_wakeup(Now::current());
        let input = match next(&mut reports, &mut inbox, wake).await {
            Next::Message(message) => shell.input(message),
            Next::Tick => Input::Tick,
            // Unreachable while `shell.mailbox` lives; be safe anyway.
            Next::Closed => break,
        };
        code = shell.perform(core.handle(input, Now::current()));
        // A subscription the core did not take is dropped here.
        shell.answered = None;
    }
    if let Some(reader) = shell.reader.take() {
        reader.abort();
    }
    // No worker process outlives its executor (they also carry a parent-death signal).
    for worker in shell.workers.values() {
        worker.kill_now();
    }
    shell.jobs.pool.kill_all();
    ExitCode::from(code.unwrap_or(1))
}

impl Shell {
    /// Turns a message into the core's input, keeping what only the shell can hold.
    fn input(&mut self, message: Message) -> Input {
        match message {
            Message::Subscribed(subscription) => {
                self.answered = Some(*subscription);
                Input::Subscribed
            }
            Message::SubscribeFailed(error) => Input::SubscribeFailed(CallError::from(&error)),
            Message::Event(event) => Input::Event(event),
            Message::StreamEnded(error) => {
                self.reader = None;
                Input::StreamEnded(error.as_ref().map(CallError::from))
            }
            Message::UpdateAnswered { uuid, result } => Input::UpdateAnswered {
                uuid,
                result: result.map_err(|error| CallError::from(&error)),
            },
            Message::Job(report) => {
                if let JobReport::Done { task_id, .. } | JobReport::SetupFailed { task_id, .. } =
                    &report
                {
                    self.workers.remove(task_id);
                }
                Input::Job(report)
            }
        }
    }

    /// Performs the core's actions in order; the exit code once it says to exit.
    fn perform(&mut self, actions: Vec<Action>) -> Option<u8> {
        for action in actions {
            match action {
                Action::Subscribe(call) => {
                    let client = self.client.clone();
                    let mailbox = self.mailbox.clone();
                    tokio::spawn(async move {
                        let message = match client.subscribe::<_, executor::Event>(&*call).await {
                            Ok(subscription) => Message::Subscribed(Box::new(subscription)),
                            Err(error) => Message::SubscribeFailed(error),
                        };
                        let _ = mailbox.send(message);
                    });
                }
                Action::ReadEvents => {
                    if let Some(subscription) = self.answered.take() {
                        self.reader = Some(tokio::spawn(read_events(
                            subscription,
                            self.mailbox.clone(),
                        )));
                    }
                }
                Action::CloseConnection => {
                    if let Some(reader) = self.reader.take() {
                        reader.abort();
                    }
                }
                Action::ResetConnections => {
                    if let Err(error) = self.client.reset_connections() {
                        warn!(%error, "cannot reset the agent connections");
                    }
                }
                Action::PostUpdate { uuid, call } => {
                    let client = self.client.clone();
                    let mailbox = self.internal.clone();
                    tokio::spawn(async move {
                        let result = client.call(&*call).await.map(|_| ());
                        let _ = mailbox.send(Message::UpdateAnswered { uuid, result });
                    });
                }
                Action::StartJob { task_id, payload } => {
                    match jobs::start(&self.jobs, *payload) {
                        Ok(handle) => {
                            self.workers.insert(task_id, handle);
                        }
                        // Reported like any failed set-up, through the mailbox.
                        Err(error) => {
                            let _ = self.internal.send(Message::Job(JobReport::SetupFailed {
                                task_id,
                                message: format!("cannot start the job worker: {error}"),
                                scope: None,
                            }));
                        }
                    }
                }
                Action::CancelJob(task_id) => {
                    if let Some(worker) = self.workers.get_mut(&task_id) {
                        worker.cancel();
                    }
                }
                Action::ForceKill(task_id) => {
                    if let Some(worker) = self.workers.get(&task_id) {
                        worker.force_kill();
                    }
                }
                Action::Fire(task_id) => {
                    if let Some(worker) = self.workers.get(&task_id) {
                        worker.fire();
                    }
                }
                Action::Exit(code) => return Some(code),
            }
        }
        None
    }
}

/// What the loop takes next.
#[derive(Debug)]
enum Next {
    Message(Message),
    Tick,
    Closed,
}

/// The next message, this process's own (`reports`) before the agent's (`inbox`), or the
/// wake-up at `wake`.
async fn next(
    reports: &mut mpsc::UnboundedReceiver<Message>,
    inbox: &mut mpsc::UnboundedReceiver<Message>,
    wake: Option<Instant>,
) -> Next {
    tokio::select! {
        biased;
        Some(message) = reports.recv() => Next::Message(message),
        message = inbox.recv() => message.map_or(Next::Closed, Next::Message),
        () = sleep_until(wake) => Next::Tick,
    }
}

async fn read_events(
    mut subscription: Subscription<executor::Event>,
    mailbox: mpsc::UnboundedSender<Message>,
) {
    loop {
        let message = match subscription.next_event().await {
            Ok(Some(event)) => Message::Event(Box::new(event)),
            Ok(None) => Message::StreamEnded(None),
            Err(error) => Message::StreamEnded(Some(error)),
        };
        let ended = matches!(message, Message::StreamEnded(_));
        if mailbox.send(message).is_err() || ended {
            return;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn job_reports_and_update_answers_go_before_queued_agent_events() {
        let (agent, mut inbox) = mpsc::unbounded_channel();
        let (internal, mut reports) = mpsc::unbounded_channel();
        for _ in 0..3 {
            agent.send(Message::StreamEnded(None)).unwrap();
        }
        internal
            .send(Message::Job(JobReport::Ready {
                task_id: "t".into(),
                work_dir: "/w".into(),
            }))
            .unwrap();
        internal
            .send(Message::UpdateAnswered {
                uuid: vec![1],
                result: Ok(()),
            })
            .unwrap();
        let mut order = Vec::new();
        for _ in 0..5 {
            match next(&mut reports, &mut inbox, None).await {
                Next::Message(Message::Job(_)) => order.push("report"),
                Next::Message(Message::UpdateAnswered { .. }) => order.push("answer"),
                Next::Message(Message::StreamEnded(_)) => order.push("agent"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(order, ["report", "answer", "agent", "agent", "agent"]);
        // Nothing queued: the wake-up comes.
        let soon = Instant::now() + std::time::Duration::from_millis(1);
        assert!(matches!(
            next(&mut reports, &mut inbox, Some(soon)).await,
            Next::Tick
        ));
    }
}
