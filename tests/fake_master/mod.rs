//! A scripted Mesos master for scheduler tests: it serves `POST /api/v1/scheduler` on loopback
//! (protobuf, or JSON for a scheduler that speaks it), answers SUBSCRIBE with a RecordIO event
//! stream the test feeds, records every call with its `Mesos-Stream-Id`, and can redirect (307)
//! or refuse. The test decides every event, so the scheduler's answers (calls) can be asserted
//! exactly and in order. A hostile master answers SUBSCRIBE with raw bytes instead
//! ([`RawAnswer`]): any content type, any stream, ended or left stalled.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shardex::mesos::proto::v1::scheduler::{Call, Event, call, event};
use shardex::mesos::proto::v1::{
    self, AgentId, FrameworkId, Offer, OfferId, Resource, TaskId, TaskState, TaskStatus, value,
};
use shardex::mesos::{Encoding, recordio};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// The suites' shared bound for what should happen soon.
pub const DEADLINE: Duration = crate::support::SOON;

/// A call as the master received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub call: Call,
    pub stream_id: Option<String>,
    /// Which subscription (1-based) was current when it arrived.
    pub subscription: usize,
    /// When it arrived.
    pub at: Instant,
}

impl Seen {
    pub fn kind(&self) -> call::Type {
        self.call
            .r#type
            .and_then(|t| call::Type::try_from(t).ok())
            .unwrap_or(call::Type::Unknown)
    }
}

#[derive(Default)]
struct Inner {
    calls: Vec<Seen>,
    /// How many calls of each type arrived (a benchmark waits on these without copying
    /// `calls`).
    counts: std::collections::HashMap<call::Type, usize>,
    stream: Option<mpsc::UnboundedSender<Bytes>>,
    subscriptions: usize,
    stream_id: String,
    framework_id: String,
    redirect_to: Option<String>,
    heartbeat_seconds: f64,
    /// When set, SUBSCRIBE gets this ERROR instead of SUBSCRIBED.
    subscribe_error: Option<String>,
    /// When set, SUBSCRIBE gets these bytes instead of an event stream.
    raw_answer: Option<RawAnswer>,
    /// The encoding of the current subscription (the SUBSCRIBE call's).
    encoding: Encoding,
}

/// What a hostile master answers SUBSCRIBE with: `200 OK`, this `Content-Type` and this body,
/// byte for byte, whatever the scheduler asked for.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub content_type: String,
    pub body: Vec<u8>,
    pub then: AfterBody,
}

/// What the hostile stream does once its body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterBody {
    /// The response ends.
    End,
    /// The connection stays open and nothing more comes.
    Stall,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

pub struct FakeMaster {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
    pub url: String,
    pub agent_id: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMaster {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn frame(event: &Event, encoding: Encoding) -> Bytes {
    Bytes::from(recordio::encode(&encoding.encode(event)))
}

/// A SUBSCRIBED event naming `framework_id`, with `heartbeat_seconds`.
pub fn subscribed(framework_id: &str, heartbeat_seconds: f64) -> Event {
    Event {
        r#type: Some(event::Type::Subscribed as i32),
        subscribed: Some(event::Subscribed {
            framework_id: FrameworkId {
                value: framework_id.into(),
            },
            heartbeat_interval_seconds: Some(heartbeat_seconds),
            master_info: None,
        }),
        ..Event::default()
    }
}

/// `event` in `encoding`, framed as one RecordIO record.
pub fn record(event: &Event, encoding: Encoding) -> Vec<u8> {
    recordio::encode(&encoding.encode(event))
}

async fn handle(master: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let encoding = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_content_type)
        .unwrap_or(Encoding::Protobuf);
    let Ok(call) = encoding.decode::<Call>(body.as_ref()) else {
        return (StatusCode::BAD_REQUEST, "undecodable call").into_response();
    };
    let stream_id = headers
        .get("Mesos-Stream-Id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut inner = master.inner.lock().unwrap();
    if let Some(leader) = &inner.redirect_to {
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, leader.clone())],
            "",
        )
            .into_response();
    }
    let kind = call.r#type.and_then(|t| call::Type::try_from(t).ok());
    let subscription = inner.subscriptions + usize::from(kind == Some(call::Type::Subscribe));
    *inner
        .counts
        .entry(kind.unwrap_or(call::Type::Unknown))
        .or_default() += 1;
    inner.calls.push(Seen {
        call: call.clone(),
        stream_id: stream_id.clone(),
        subscription,
        at: Instant::now(),
    });
    master.changed.notify_waiters();
    if kind != Some(call::Type::Subscribe) {
        if stream_id.as_deref() != Some(inner.stream_id.as_str()) {
            return (StatusCode::BAD_REQUEST, "stale Mesos-Stream-Id").into_response();
        }
        return StatusCode::ACCEPTED.into_response();
    }
    inner.subscriptions += 1;
    inner.stream_id = format!("stream-{}", inner.subscriptions);
    inner.encoding = encoding;
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let mut content_type = encoding.media_type().to_owned();
    if let Some(raw) = inner.raw_answer.clone() {
        content_type = raw.content_type;
        let _ = tx.send(Bytes::from(raw.body));
        // A stalled stream keeps its sender (until the next subscription replaces it).
        inner.stream = (raw.then == AfterBody::Stall).then_some(tx);
    } else if let Some(message) = inner.subscribe_error.clone() {
        let _ = tx.send(frame(
            &Event {
                r#type: Some(event::Type::Error as i32),
                error: Some(event::Error { message }),
                ..Event::default()
            },
            encoding,
        ));
        drop(tx);
    } else {
        let framework_id = call
            .framework_id
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_else(|| inner.framework_id.clone());
        let _ = tx.send(frame(
            &subscribed(&framework_id, inner.heartbeat_seconds),
            encoding,
        ));
        inner.stream = Some(tx);
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((Ok::<Bytes, std::io::Error>(item), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header("Mesos-Stream-Id", inner.stream_id.clone())
        .body(Body::from_stream(stream))
        .unwrap()
}

impl FakeMaster {
    pub async fn start() -> FakeMaster {
        FakeMaster::start_with_heartbeat(15.0).await
    }

    pub async fn start_with_heartbeat(heartbeat_seconds: f64) -> FakeMaster {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1/scheduler", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            framework_id: "fw-test".into(),
            heartbeat_seconds,
            ..Inner::default()
        }));
        let changed = Arc::new(Notify::new());
        let shared = Shared {
            inner: inner.clone(),
            changed: changed.clone(),
        };
        let app = axum::Router::new()
            .route(
                "/api/v1/scheduler",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    handle(shared.clone(), headers, body)
                }),
            )
            // A master takes an ACCEPT of any size (axum would refuse bodies above 2 MB).
            .layer(axum::extract::DefaultBodyLimit::disable());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeMaster {
            inner,
            changed,
            url,
            agent_id: "agent-S0".into(),
            server,
        }
    }

    pub fn set_framework_id(&self, id: &str) {
        self.inner.lock().unwrap().framework_id = id.into();
    }

    pub fn redirect_to(&self, leader: Option<&str>) {
        self.inner.lock().unwrap().redirect_to = leader.map(str::to_owned);
    }

    pub fn refuse_subscriptions_with(&self, message: Option<&str>) {
        self.inner.lock().unwrap().subscribe_error = message.map(str::to_owned);
    }

    /// From now on, answers every SUBSCRIBE with `raw` (a hostile master); `None` turns it
    /// honest again.
    pub fn answer_subscriptions_with(&self, raw: Option<RawAnswer>) {
        self.inner.lock().unwrap().raw_answer = raw;
    }

    pub fn subscriptions(&self) -> usize {
        self.inner.lock().unwrap().subscriptions
    }

    /// Sends an event on the current subscription.
    pub fn send(&self, event: Event) {
        let inner = self.inner.lock().unwrap();
        if let Some(stream) = &inner.stream {
            let _ = stream.send(frame(&event, inner.encoding));
        }
    }

    /// Ends the current event stream (as a master does on failover).
    pub fn close_stream(&self) {
        self.inner.lock().unwrap().stream = None;
    }

    pub fn calls(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn calls_of(&self, kind: call::Type) -> Vec<Seen> {
        self.calls()
            .into_iter()
            .filter(|c| c.kind() == kind)
            .collect()
    }

    /// How many calls of `kind` arrived so far.
    pub fn count_of(&self, kind: call::Type) -> usize {
        let inner = self.inner.lock().unwrap();
        inner.counts.get(&kind).copied().unwrap_or(0)
    }

    /// Waits until `n` calls of `kind` arrived, at most `deadline`; false if they did not.
    pub async fn wait_count(&self, kind: call::Type, n: usize, deadline: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + deadline;
        loop {
            let notified = self.changed.notified();
            if self.count_of(kind) >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Waits until `pred` holds for the calls seen so far, or panics after the deadline.
    pub async fn wait_for<T>(&self, what: &str, mut pred: impl FnMut(&[Seen]) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let notified = self.changed.notified();
            if let Some(value) = pred(&self.calls()) {
                return value;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen: Vec<String> = self
                    .calls()
                    .iter()
                    .map(|c| format!("{:?}", c.kind()))
                    .collect();
                panic!("timed out waiting for {what}; calls seen: {seen:?}");
            }
        }
    }

    /// Waits for the `n`-th call of `kind` (1-based) and returns it.
    pub async fn nth(&self, kind: call::Type, n: usize) -> Seen {
        self.wait_for(&format!("call #{n} of {kind:?}"), |calls| {
            calls
                .iter()
                .filter(|c| c.kind() == kind)
                .nth(n - 1)
                .cloned()
        })
        .await
    }

    /// Waits for the `n`-th call of `kind` (1-based) made on subscription `subscription`.
    pub async fn nth_in(&self, kind: call::Type, subscription: usize, n: usize) -> Seen {
        self.wait_for(
            &format!("call #{n} of {kind:?} on subscription {subscription}"),
            |calls| {
                calls
                    .iter()
                    .filter(|c| c.kind() == kind && c.subscription == subscription)
                    .nth(n - 1)
                    .cloned()
            },
        )
        .await
    }

    /// Waits for a call of `kind` after the last call of `after` (as a master would answer a
    /// REVIVE with offers).
    pub async fn after_last(&self, after: call::Type, kind: call::Type) {
        self.wait_for(&format!("{kind:?} after the last {after:?}"), |calls| {
            let last = calls.iter().rposition(|c| c.kind() == after)?;
            calls[last..].iter().find(|c| c.kind() == kind).map(|_| ())
        })
        .await
    }

    pub fn offer(&self, id: &str, cpus: f64, mem: f64, executors: &[&str]) -> Offer {
        #[allow(deprecated)]
        let scalar = |name: &str, amount: f64| Resource {
            name: name.into(),
            r#type: v1::value::Type::Scalar as i32,
            scalar: Some(value::Scalar { value: amount }),
            role: Some("*".into()),
            ..Resource::default()
        };
        Offer {
            id: OfferId { value: id.into() },
            framework_id: FrameworkId {
                value: "fw-test".into(),
            },
            agent_id: AgentId {
                value: self.agent_id.clone(),
            },
            hostname: "localhost".into(),
            resources: vec![scalar("cpus", cpus), scalar("mem", mem)],
            executor_ids: executors
                .iter()
                .map(|e| v1::ExecutorId { value: (*e).into() })
                .collect(),
            ..Offer::default()
        }
    }

    pub fn send_offers(&self, offers: Vec<Offer>) {
        self.send(Event {
            r#type: Some(event::Type::Offers as i32),
            offers: Some(event::Offers { offers }),
            ..Event::default()
        });
    }

    /// A crash of one task that the agent reports while its executor lives on: `TASK_FAILED`,
    /// source agent, its container over its memory limit. A crash is failed over (a job's own
    /// `TASK_FAILED` is governed by its `retries`).
    pub fn crash(&self, task_id: &str, uuid_byte: u8) -> TaskStatus {
        TaskStatus {
            source: Some(v1::task_status::Source::Agent as i32),
            reason: Some(v1::task_status::Reason::ContainerLimitationMemory as i32),
            message: Some("Memory limit exceeded".into()),
            ..self.update(task_id, TaskState::TaskFailed, Some(uuid_byte))
        }
    }

    /// An executor-sourced update (with a uuid, like every update the agent forwards).
    pub fn update(&self, task_id: &str, state: TaskState, uuid_byte: Option<u8>) -> TaskStatus {
        TaskStatus {
            task_id: TaskId {
                value: task_id.into(),
            },
            state: state as i32,
            source: Some(v1::task_status::Source::Executor as i32),
            agent_id: Some(AgentId {
                value: self.agent_id.clone(),
            }),
            uuid: uuid_byte.map(|b| {
                let mut bytes = [b; 16];
                bytes[6] = 0x40 | (b & 0x0f);
                bytes.to_vec()
            }),
            ..TaskStatus::default()
        }
    }

    pub fn send_update(&self, status: TaskStatus) {
        self.send(Event {
            r#type: Some(event::Type::Update as i32),
            update: Some(event::Update { status }),
            ..Event::default()
        });
    }

    pub fn send_error(&self, message: &str) {
        self.send(Event {
            r#type: Some(event::Type::Error as i32),
            error: Some(event::Error {
                message: message.into(),
            }),
            ..Event::default()
        });
    }
}

/// Task infos launched by an ACCEPT call.
pub fn launched(seen: &Seen) -> Vec<v1::TaskInfo> {
    seen.call
        .accept
        .as_ref()
        .map(|a| {
            a.operations
                .iter()
                .filter_map(|o| o.launch.as_ref())
                .flat_map(|l| l.task_infos.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Every task launched so far, in order.
pub fn all_launched(calls: &[Seen]) -> Vec<v1::TaskInfo> {
    calls
        .iter()
        .filter(|c| c.kind() == call::Type::Accept)
        .flat_map(launched)
        .collect()
}

/// Task ids of the explicit RECONCILE calls' tasks.
pub fn reconciled(seen: &Seen) -> Vec<String> {
    seen.call
        .reconcile
        .as_ref()
        .map(|r| r.tasks.iter().map(|t| t.task_id.value.clone()).collect())
        .unwrap_or_default()
}
