//! A small, scriptable v1 executor for testing agents (the embedded one, or a real Mesos agent).
//!
//! Each task's `TaskInfo.data` names what to do with it:
//! - `finish` / `fail`: TASK_RUNNING, then TASK_FINISHED / TASK_FAILED;
//! - `running`: TASK_RUNNING, then nothing until killed;
//! - `ignore`: no update at all (and the task is not remembered: a "dropped" LAUNCH);
//! - `crash`: the process exits at once with status 137;
//! - `exit-after-ack`: TASK_RUNNING, TASK_FINISHED, exit 0 once the latter is ACKNOWLEDGED;
//! - `update-after-terminal`: TASK_RUNNING, TASK_FINISHED, then TASK_RUNNING again;
//! - `send-message`: a MESSAGE call `hello-from-executor`, then TASK_RUNNING;
//! - `finish-on-file:<path>`: TASK_RUNNING, then TASK_FINISHED once `<path>` exists (polled
//!   every 50 ms), so a test decides when an update is sent.
//!
//! KILL answers TASK_KILLING (when the framework has TASK_KILLING_STATE) and TASK_KILLED;
//! MESSAGE events are echoed back as `echo:<data>`; SHUTDOWN kills every task and exits 0 once
//! the updates are acknowledged (bounded wait).
//!
//! Environment knobs: `TEST_EXECUTOR_ENCODING=json` speaks JSON; `TEST_EXECUTOR_RESUBSCRIBE`
//! is `yes` (default; only when `MESOS_CHECKPOINT=1`), `no` (stay silent after a disconnect,
//! keep running) or `without-tasks` (resubscribe with an empty `unacknowledged_tasks`).
//! At start it writes its environment to `env.txt` and its pid to `pid.txt` in its working
//! directory (the sandbox); each ACKNOWLEDGED it receives appends `<task id> <state>` (the
//! acknowledged update's) to `acks.txt` there.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shardex::mesos::proto::v1::{self, executor, framework_info::capability::Type as Capability};
use shardex::mesos::{ApiError, Client, ClientConfig, Credentials, Encoding, Subscription, uuid};

struct Executor {
    client: Client,
    framework_id: v1::FrameworkId,
    executor_id: v1::ExecutorId,
    /// uuid → update, in send order.
    unacked_updates: Vec<(Vec<u8>, executor::call::Update)>,
    unacked_tasks: BTreeMap<String, v1::TaskInfo>,
    /// task id → behaviour, for tasks not yet terminal.
    live: BTreeMap<String, String>,
    /// task id → the file whose appearance finishes it (`finish-on-file:`).
    finish_on_file: BTreeMap<String, std::path::PathBuf>,
    killing_state: bool,
    exit_on_ack: Option<Vec<u8>>,
    shutting_down: bool,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn log(message: &str) {
    eprintln!("[test_executor] {message}");
}

impl Executor {
    fn call(&self, kind: executor::call::Type) -> executor::Call {
        executor::Call {
            executor_id: self.executor_id.clone(),
            framework_id: self.framework_id.clone(),
            r#type: Some(kind as i32),
            ..Default::default()
        }
    }

    fn subscribe_call(&self, with_tasks: bool) -> executor::Call {
        let mut call = self.call(executor::call::Type::Subscribe);
        call.subscribe = Some(executor::call::Subscribe {
            unacknowledged_tasks: if with_tasks {
                self.unacked_tasks.values().cloned().collect()
            } else {
                Vec::new()
            },
            unacknowledged_updates: self
                .unacked_updates
                .iter()
                .map(|(_, u)| u.clone())
                .collect(),
        });
        call
    }

    /// Sends an update; it stays unacknowledged until ACKNOWLEDGED arrives. A 503 (agent
    /// recovering) is retried; a broken connection leaves it for the next SUBSCRIBE.
    async fn update(&mut self, task_id: &str, state: v1::TaskState, message: Option<&str>) {
        let id = uuid::new_update_uuid();
        let update = executor::call::Update {
            status: v1::TaskStatus {
                task_id: v1::TaskId {
                    value: task_id.to_owned(),
                },
                state: state as i32,
                message: message.map(str::to_owned),
                source: Some(v1::task_status::Source::Executor as i32),
                uuid: Some(id.clone()),
                ..Default::default()
            },
        };
        self.unacked_updates.push((id, update.clone()));
        let mut call = self.call(executor::call::Type::Update);
        call.update = Some(update);
        self.send(&call).await;
    }

    async fn send(&self, call: &executor::Call) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.client.call(call).await {
                Ok(_) => return,
                Err(error) if error.status() == Some(503) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    log(&format!("call failed: {error}"));
                    return;
                }
            }
        }
    }

    async fn launch(&mut self, task: v1::TaskInfo) {
        let id = task.task_id.value.clone();
        let behaviour =
            String::from_utf8_lossy(task.data.as_deref().unwrap_or_default()).into_owned();
        log(&format!("LAUNCH {id}: {behaviour}"));
        if behaviour == "ignore" {
            return;
        }
        self.unacked_tasks.insert(id.clone(), task);
        use v1::TaskState::*;
        match behaviour.as_str() {
            "crash" => std::process::exit(137),
            "finish" => {
                self.update(&id, TaskRunning, None).await;
                self.update(&id, TaskFinished, None).await;
            }
            "fail" => {
                self.update(&id, TaskRunning, None).await;
                self.update(&id, TaskFailed, Some("failed on purpose"))
                    .await;
            }
            "exit-after-ack" => {
                self.update(&id, TaskRunning, None).await;
                self.update(&id, TaskFinished, None).await;
                self.exit_on_ack = self.unacked_updates.last().map(|(u, _)| u.clone());
            }
            "update-after-terminal" => {
                self.update(&id, TaskRunning, None).await;
                self.update(&id, TaskFinished, None).await;
                self.update(
                    &id,
                    TaskRunning,
                    Some("update after the terminal TASK_FINISHED"),
                )
                .await;
            }
            "send-message" => {
                let mut call = self.call(executor::call::Type::Message);
                call.message = Some(executor::call::Message {
                    data: b"hello-from-executor".to_vec(),
                });
                self.send(&call).await;
                self.update(&id, TaskRunning, None).await;
                self.live.insert(id, behaviour);
            }
            _ => {
                self.update(&id, TaskRunning, None).await;
                if let Some(path) = behaviour.strip_prefix("finish-on-file:") {
                    self.finish_on_file.insert(id.clone(), path.into());
                }
                self.live.insert(id, behaviour);
            }
        }
    }

    /// Finishes the `finish-on-file:` tasks whose file has appeared.
    async fn check_files(&mut self) {
        let due: Vec<String> = self
            .finish_on_file
            .iter()
            .filter(|(_, path)| path.exists())
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            log(&format!("{id}: its file appeared; finishing"));
            self.finish_on_file.remove(&id);
            self.live.remove(&id);
            self.update(&id, v1::TaskState::TaskFinished, None).await;
        }
    }

    async fn kill(&mut self, task_id: &str) {
        self.finish_on_file.remove(task_id);
        if self.live.remove(task_id).is_none() {
            return;
        }
        if self.killing_state {
            self.update(task_id, v1::TaskState::TaskKilling, None).await;
        }
        self.update(task_id, v1::TaskState::TaskKilled, None).await;
    }

    /// Handles one event; `true` means exit now.
    async fn handle(&mut self, event: executor::Event) -> bool {
        use executor::event::Type;
        match event.r#type.and_then(|t| Type::try_from(t).ok()) {
            Some(Type::Subscribed) => {
                if let Some(subscribed) = event.subscribed {
                    self.killing_state = subscribed
                        .framework_info
                        .capabilities
                        .iter()
                        .any(|c| c.r#type == Some(Capability::TaskKillingState as i32));
                }
                log("SUBSCRIBED");
            }
            Some(Type::Launch) => {
                if let Some(launch) = event.launch {
                    self.launch(launch.task).await;
                }
            }
            Some(Type::Kill) => {
                if let Some(kill) = event.kill {
                    self.kill(&kill.task_id.value).await;
                }
            }
            Some(Type::Acknowledged) => {
                if let Some(ack) = event.acknowledged {
                    let state = self
                        .unacked_updates
                        .iter()
                        .find(|(u, _)| *u == ack.uuid)
                        .and_then(|(_, update)| v1::TaskState::try_from(update.status.state).ok())
                        .map_or("unknown", |s| s.as_str_name());
                    let line = format!("{} {state}\n", ack.task_id.value);
                    let appended = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open("acks.txt")
                        .and_then(|mut file| std::io::Write::write_all(&mut file, line.as_bytes()));
                    if let Err(error) = appended {
                        log(&format!("cannot record the acknowledgement: {error}"));
                    }
                    self.unacked_updates.retain(|(u, _)| *u != ack.uuid);
                    self.unacked_tasks.remove(&ack.task_id.value);
                    if self.exit_on_ack.as_deref() == Some(ack.uuid.as_slice()) {
                        log("terminal update acknowledged; exiting");
                        return true;
                    }
                    if self.shutting_down && self.unacked_updates.is_empty() {
                        return true;
                    }
                }
            }
            Some(Type::Message) => {
                if let Some(message) = event.message {
                    let mut call = self.call(executor::call::Type::Message);
                    let mut data = b"echo:".to_vec();
                    data.extend_from_slice(&message.data);
                    call.message = Some(executor::call::Message { data });
                    self.send(&call).await;
                }
            }
            Some(Type::Shutdown) => {
                log("SHUTDOWN");
                let ids: Vec<String> = self.live.keys().cloned().collect();
                for id in ids {
                    self.kill(&id).await;
                }
                // Leave once the agent has our terminal updates, or after a bounded wait.
                self.exit_on_ack = None;
                self.shutting_down = true;
                tokio::spawn(async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    std::process::exit(0);
                });
                return self.unacked_updates.is_empty();
            }
            _ => {}
        }
        false
    }
}

async fn subscribe(
    executor: &Executor,
    with_tasks: bool,
) -> Result<Subscription<executor::Event>, ApiError> {
    executor
        .client
        .subscribe(&executor.subscribe_call(with_tasks))
        .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut vars: Vec<String> = std::env::vars()
        .filter(|(k, _)| !matches!(k.as_str(), "PWD" | "SHLVL" | "_" | "OLDPWD"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vars.sort();
    let _ = std::fs::write("env.txt", vars.join("\n") + "\n");
    let _ = std::fs::write("pid.txt", std::process::id().to_string());

    let encoding = if env("TEST_EXECUTOR_ENCODING") == "json" {
        Encoding::Json
    } else {
        Encoding::Protobuf
    };
    let token = std::env::var("MESOS_EXECUTOR_AUTHENTICATION_TOKEN").ok();
    let url = format!("http://{}/api/v1/executor", env("MESOS_AGENT_ENDPOINT"));
    let config = ClientConfig {
        encoding,
        credentials: token.map(Credentials::Bearer),
        call_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let client = match Client::new(url, config) {
        Ok(client) => client,
        Err(error) => {
            log(&format!("bad agent endpoint: {error}"));
            std::process::exit(2);
        }
    };
    let mut executor = Executor {
        client,
        framework_id: v1::FrameworkId {
            value: env("MESOS_FRAMEWORK_ID"),
        },
        executor_id: v1::ExecutorId {
            value: env("MESOS_EXECUTOR_ID"),
        },
        unacked_updates: Vec::new(),
        unacked_tasks: BTreeMap::new(),
        live: BTreeMap::new(),
        finish_on_file: BTreeMap::new(),
        killing_state: false,
        exit_on_ack: None,
        shutting_down: false,
    };
    let checkpoint = env("MESOS_CHECKPOINT") == "1";
    let resubscribe = match env("TEST_EXECUTOR_RESUBSCRIBE").as_str() {
        "no" => None,
        "without-tasks" => Some(false),
        _ => Some(true),
    };
    let recovery_timeout = shardex::mesos::duration::parse(&env("MESOS_RECOVERY_TIMEOUT"))
        .unwrap_or(Duration::from_secs(60));

    let mut subscription = match subscribe(&executor, true).await {
        Ok(subscription) => subscription,
        Err(error) => {
            log(&format!("SUBSCRIBE failed: {error}"));
            std::process::exit(1);
        }
    };
    loop {
        // Reading the stream is cancel-safe (a chunk is only taken once it is complete), so
        // a poll tick may interrupt it.
        let next = tokio::select! {
            event = subscription.next_event() => Some(event),
            _ = tokio::time::sleep(Duration::from_millis(50)),
                if !executor.finish_on_file.is_empty() => None,
        };
        let Some(next) = next else {
            executor.check_files().await;
            continue;
        };
        match next {
            Ok(Some(event)) => {
                if executor.handle(event).await {
                    std::process::exit(0);
                }
                continue;
            }
            Ok(None) => log("subscription ended"),
            Err(error) => log(&format!("subscription broken: {error}")),
        }
        // Disconnected.
        let Some(with_tasks) = resubscribe.filter(|_| checkpoint) else {
            if checkpoint {
                log("staying silent after the disconnect, as told");
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            }
            log("not checkpointing: exiting after the disconnect");
            std::process::exit(1);
        };
        let _ = executor.client.reset_connections();
        let deadline = Instant::now() + recovery_timeout;
        subscription = loop {
            match subscribe(&executor, with_tasks).await {
                Ok(subscription) => break subscription,
                Err(error) if Instant::now() < deadline => {
                    log(&format!("resubscribe: {error}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    log(&format!("recovery timeout: {error}"));
                    std::process::exit(1);
                }
            }
        };
        log("resubscribed");
    }
}
