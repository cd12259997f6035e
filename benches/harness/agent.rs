//! A bench agent: the v1 executor HTTP API (`POST /api/v1/executor`, protobuf or JSON) on
//! loopback, doing the least a Mesos agent does so that it is never what an executor waits for.
//! SUBSCRIBE gets `200` and a RecordIO stream opening with SUBSCRIBED; every UPDATE gets `202`
//! and, on the stream at once, its ACKNOWLEDGED (a real agent first checkpoints the update and
//! forwards it to the master). The harness pushes LAUNCH, KILL and SHUTDOWN events.
//!
//! It records when each executor subscribed and when each task's LAUNCH went out and each of
//! its updates arrived (the agent's view, as the agent log gives it on a real agent), and how
//! many updates it took.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shardex::mesos::agent_info::AgentInfo;
use shardex::mesos::proto::v1::{self, TaskState, executor};
use shardex::mesos::{Encoding, recordio};
use tokio::sync::{Notify, mpsc};

pub const FRAMEWORK_ID: &str = "bench-framework-0000";
pub const AGENT_ID: &str = "bench-agent-S0";

/// When things happened to one task, as the agent saw them.
#[derive(Debug, Clone, Default)]
pub struct TaskTimes {
    pub launched: Option<Instant>,
    /// Each update, in arrival order.
    pub updates: Vec<(TaskState, Instant)>,
}

impl TaskTimes {
    /// When the first update in `state` arrived.
    pub fn at(&self, state: TaskState) -> Option<Instant> {
        self.updates
            .iter()
            .find(|(s, _)| *s == state)
            .map(|(_, at)| *at)
    }

    /// The terminal update, if one arrived.
    pub fn terminal(&self) -> Option<(TaskState, Instant)> {
        self.updates
            .iter()
            .copied()
            .find(|(s, _)| shardex::mesos::states::is_terminal(*s))
    }

    /// From LAUNCH to the first update in `state`.
    pub fn latency(&self, state: TaskState) -> Option<Duration> {
        Some(self.at(state)?.duration_since(self.launched?))
    }
}

struct Stream {
    encoding: Encoding,
    events: mpsc::UnboundedSender<Bytes>,
}

#[derive(Default)]
struct Inner {
    streams: HashMap<String, Stream>,
    subscribed: HashMap<String, Instant>,
    tasks: HashMap<String, TaskTimes>,
    updates: u64,
    terminal: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    changed: Notify,
}

impl Shared {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct BenchAgent {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for BenchAgent {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn frame(event: &executor::Event, encoding: Encoding) -> Vec<u8> {
    recordio::encode(&encoding.encode(event))
}

fn subscribed(executor_id: &str) -> executor::Event {
    executor::Event {
        r#type: Some(executor::event::Type::Subscribed as i32),
        subscribed: Some(executor::event::Subscribed {
            executor_info: v1::ExecutorInfo {
                executor_id: v1::ExecutorId {
                    value: executor_id.into(),
                },
                framework_id: Some(v1::FrameworkId {
                    value: FRAMEWORK_ID.into(),
                }),
                command: Some(v1::CommandInfo {
                    value: Some("bench".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            framework_info: v1::FrameworkInfo {
                user: "bench".into(),
                name: "bench".into(),
                id: Some(v1::FrameworkId {
                    value: FRAMEWORK_ID.into(),
                }),
                ..Default::default()
            },
            agent_info: AgentInfo {
                hostname: "127.0.0.1".into(),
                port: None,
                resources: Vec::new(),
                attributes: Vec::new(),
                id: Some(v1::AgentId {
                    value: AGENT_ID.into(),
                }),
                domain: None,
                checkpoint: Some(true),
            },
            container_id: Some(v1::ContainerId {
                value: format!("container-{executor_id}"),
                parent: None,
            }),
        }),
        ..Default::default()
    }
}

async fn handle(shared: Arc<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let encoding = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_content_type)
        .unwrap_or(Encoding::Protobuf);
    let Ok(call) = encoding.decode::<executor::Call>(body.as_ref()) else {
        return (StatusCode::BAD_REQUEST, "undecodable call").into_response();
    };
    let now = Instant::now();
    let executor_id = call.executor_id.value.clone();
    let kind = call
        .r#type
        .and_then(|t| executor::call::Type::try_from(t).ok());
    match kind {
        Some(executor::call::Type::Subscribe) => {
            let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
            let _ = tx.send(Bytes::from(frame(&subscribed(&executor_id), encoding)));
            {
                let mut inner = shared.inner();
                inner.subscribed.insert(executor_id.clone(), now);
                inner.streams.insert(
                    executor_id,
                    Stream {
                        encoding,
                        events: tx,
                    },
                );
            }
            shared.changed.notify_waiters();
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                let item = rx.recv().await?;
                Some((Ok::<Bytes, std::io::Error>(item), rx))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, encoding.media_type())
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Some(executor::call::Type::Update) => {
            let Some(update) = call.update else {
                return (StatusCode::BAD_REQUEST, "UPDATE without an update").into_response();
            };
            let status = update.status;
            let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
            {
                let mut inner = shared.inner();
                inner.updates += 1;
                if shardex::mesos::states::is_terminal(state) {
                    inner.terminal += 1;
                }
                inner
                    .tasks
                    .entry(status.task_id.value.clone())
                    .or_default()
                    .updates
                    .push((state, now));
                if let (Some(uuid), Some(stream)) =
                    (status.uuid.clone(), inner.streams.get(&executor_id))
                {
                    let ack = executor::Event {
                        r#type: Some(executor::event::Type::Acknowledged as i32),
                        acknowledged: Some(executor::event::Acknowledged {
                            task_id: status.task_id.clone(),
                            uuid,
                        }),
                        ..Default::default()
                    };
                    let _ = stream
                        .events
                        .send(Bytes::from(frame(&ack, stream.encoding)));
                }
            }
            shared.changed.notify_waiters();
            StatusCode::ACCEPTED.into_response()
        }
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

impl BenchAgent {
    pub async fn start() -> BenchAgent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the bench agent");
        let addr = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
        });
        let for_server = Arc::clone(&shared);
        let app = axum::Router::new()
            .route(
                "/api/v1/executor",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    handle(Arc::clone(&for_server), headers, body)
                }),
            )
            // An agent takes an UPDATE of any size (axum would refuse bodies above 2 MB).
            .layer(axum::extract::DefaultBodyLimit::disable());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        BenchAgent {
            addr,
            shared,
            server,
        }
    }

    /// The `MESOS_*` environment an agent gives executor `executor_id` in `sandbox` (no
    /// checkpointing: a lost stream ends the executor).
    pub fn environment(&self, executor_id: &str, sandbox: &Path) -> Vec<(String, String)> {
        let sandbox = sandbox.display().to_string();
        vec![
            ("MESOS_AGENT_ENDPOINT".into(), self.addr.to_string()),
            ("MESOS_CHECKPOINT".into(), "0".into()),
            ("MESOS_DIRECTORY".into(), sandbox.clone()),
            ("MESOS_EXECUTOR_ID".into(), executor_id.into()),
            (
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD".into(),
                "5secs".into(),
            ),
            ("MESOS_FRAMEWORK_ID".into(), FRAMEWORK_ID.into()),
            ("MESOS_HTTP_COMMAND_EXECUTOR".into(), "0".into()),
            ("MESOS_SANDBOX".into(), sandbox),
            ("MESOS_SLAVE_ID".into(), AGENT_ID.into()),
            ("MESOS_SLAVE_PID".into(), format!("slave(1)@{}", self.addr)),
        ]
    }

    /// Waits (up to `deadline`) until `check` answers from the agent's records.
    async fn until<T>(
        &self,
        what: &str,
        deadline: Duration,
        mut check: impl FnMut(&Inner) -> Option<T>,
    ) -> Result<T, String> {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let notified = self.shared.changed.notified();
            if let Some(value) = check(&self.shared.inner()) {
                return Ok(value);
            }
            if tokio::time::timeout_at(end, notified).await.is_err() {
                return Err(format!("timed out after {deadline:?} waiting for {what}"));
            }
        }
    }

    /// When `executor_id` subscribed, waiting for it.
    pub async fn subscribed(
        &self,
        executor_id: &str,
        deadline: Duration,
    ) -> Result<Instant, String> {
        self.until(&format!("{executor_id} to subscribe"), deadline, |inner| {
            inner.subscribed.get(executor_id).copied()
        })
        .await
    }

    /// Sends LAUNCH for every task, in one write, to `executor_id`; records when.
    pub fn launch(&self, executor_id: &str, tasks: Vec<v1::TaskInfo>) {
        let mut inner = self.shared.inner();
        let Some(encoding) = inner.streams.get(executor_id).map(|s| s.encoding) else {
            panic!("launch into {executor_id}, which has not subscribed");
        };
        let mut bytes = Vec::new();
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.task_id.value.clone());
            let event = executor::Event {
                r#type: Some(executor::event::Type::Launch as i32),
                launch: Some(executor::event::Launch { task }),
                ..Default::default()
            };
            recordio::encode_into(&encoding.encode(&event), &mut bytes);
        }
        let now = Instant::now();
        for id in ids {
            inner.tasks.entry(id).or_default().launched = Some(now);
        }
        if let Some(stream) = inner.streams.get(executor_id) {
            let _ = stream.events.send(Bytes::from(bytes));
        }
    }

    /// Sends one event (KILL, SHUTDOWN) to `executor_id`.
    pub fn send(&self, executor_id: &str, event: &executor::Event) {
        let inner = self.shared.inner();
        if let Some(stream) = inner.streams.get(executor_id) {
            let _ = stream
                .events
                .send(Bytes::from(frame(event, stream.encoding)));
        }
    }

    /// Kills `task_id` on `executor_id`.
    pub fn kill(&self, executor_id: &str, task_id: &str) {
        self.send(
            executor_id,
            &executor::Event {
                r#type: Some(executor::event::Type::Kill as i32),
                kill: Some(executor::event::Kill {
                    task_id: v1::TaskId {
                        value: task_id.into(),
                    },
                    kill_policy: None,
                }),
                ..Default::default()
            },
        );
    }

    /// Tells `executor_id` to shut down and forgets its stream.
    pub fn shutdown(&self, executor_id: &str) {
        self.send(
            executor_id,
            &executor::Event {
                r#type: Some(executor::event::Type::Shutdown as i32),
                ..Default::default()
            },
        );
    }

    /// Waits until every task in `ids` has sent an update in `state` (or a terminal one when
    /// `state` is terminal); their times.
    pub async fn until_all(
        &self,
        ids: &[String],
        state: TaskState,
        deadline: Duration,
    ) -> Result<Vec<TaskTimes>, String> {
        let terminal = shardex::mesos::states::is_terminal(state);
        let what = format!("{} tasks to reach {}", ids.len(), state.as_str_name());
        let mut done = 0;
        self.until(&what, deadline, |inner| {
            while done < ids.len() {
                let reached = inner.tasks.get(&ids[done]).is_some_and(|t| {
                    if terminal {
                        t.terminal().is_some()
                    } else {
                        t.at(state).is_some()
                    }
                });
                if !reached {
                    return None;
                }
                done += 1;
            }
            Some(ids.iter().map(|id| inner.tasks[id].clone()).collect())
        })
        .await
    }

    /// Updates received so far.
    pub fn updates(&self) -> u64 {
        self.shared.inner().updates
    }

    /// The times of `task_id`.
    pub fn times(&self, task_id: &str) -> Option<TaskTimes> {
        self.shared.inner().tasks.get(task_id).cloned()
    }

    /// Forgets every task's times (between rounds).
    pub fn forget_tasks(&self) {
        self.shared.inner().tasks.clear();
    }
}
