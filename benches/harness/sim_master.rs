//! A simulated Mesos master with many agents, speaking the real v1 scheduler API (protobuf over
//! HTTP, the RecordIO event stream) to a real scheduler process, for scale runs.
//!
//! It keeps what a master's allocator keeps, per agent: total and used resources, at most one
//! outstanding offer, and the refuse filter of the last DECLINE (or of an ACCEPT's unused part)
//! which, as in Mesos' allocator, covers the agent only while its free resources fit inside the
//! filtered ones. Every `allocation_interval`, and at once on REVIVE, each agent that is free,
//! unfiltered and not offered goes out in one OFFERS event; SUPPRESS stops that. Tasks are
//! simulated: an ACCEPT's tasks report `TASK_RUNNING` and `TASK_FINISHED` at once (their
//! resources come back immediately; an executor's are charged once per agent and kept).
//! Explicit reconciliation answers `TASK_GONE` for tasks that ended, the state for live ones.
//!
//! It counts what a scale run reports: offers sent and answered (and how long each waited for
//! its ACCEPT or DECLINE), tasks launched, updates sent and acknowledged.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shardex::mesos::proto::v1::scheduler::{Call, Event, call, event};
use shardex::mesos::proto::v1::{
    self, AgentId, ExecutorId, FrameworkId, Offer, OfferId, Resource, TaskId, TaskState,
    TaskStatus, value,
};
use shardex::mesos::{Encoding, recordio};
use tokio::sync::mpsc;

use super::Samples;

pub const FRAMEWORK_ID: &str = "sim-framework-0000";

#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    pub agents: usize,
    pub cpus_per_agent: f64,
    pub mem_per_agent: f64,
    pub allocation_interval: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Amount {
    cpus: f64,
    mem: f64,
}

impl Amount {
    fn of(resources: &[Resource]) -> Amount {
        let mut amount = Amount::default();
        for r in resources {
            let v = r.scalar.as_ref().map_or(0.0, |s| s.value);
            match r.name.as_str() {
                "cpus" => amount.cpus += v,
                "mem" => amount.mem += v,
                _ => {}
            }
        }
        amount
    }

    fn fits_in(&self, other: &Amount) -> bool {
        self.cpus <= other.cpus + 1e-9 && self.mem <= other.mem + 1e-9
    }
}

struct Filter {
    until: Instant,
    amount: Amount,
}

struct Agent {
    id: String,
    total: Amount,
    used: Amount,
    offered: bool,
    filter: Option<Filter>,
    executors: HashSet<String>,
}

/// Counters a scale run reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub offers_sent: u64,
    pub offers_answered: u64,
    pub offer_events: u64,
    pub tasks_launched: u64,
    pub updates_sent: u64,
    pub acknowledged: u64,
    pub revives: u64,
    pub suppresses: u64,
    pub declines: u64,
    pub accepts: u64,
    pub calls: u64,
}

struct Sim {
    config: SimConfig,
    agents: Vec<Agent>,
    agent_index: HashMap<String, usize>,
    /// Outstanding offers: id → (agent, amount, when sent).
    offers: HashMap<String, (usize, Amount, Instant)>,
    next_offer: u64,
    stream: Option<mpsc::UnboundedSender<Bytes>>,
    stream_id: String,
    suppressed: bool,
    /// Live tasks (simulated tasks end at once, so this stays small).
    live: HashMap<String, TaskState>,
    counts: Counts,
    offer_wait_ms: Samples,
    serial: u64,
}

struct Shared {
    sim: Mutex<Sim>,
}

impl Shared {
    fn sim(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn scalar(name: &str, amount: f64) -> Resource {
    Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: amount }),
        ..Resource::default()
    }
}

fn frame(event: &Event) -> Bytes {
    Bytes::from(recordio::encode(&Encoding::Protobuf.encode(event)))
}

impl Sim {
    fn send(&mut self, event: &Event) {
        if let Some(stream) = &self.stream {
            let _ = stream.send(frame(event));
        }
    }

    fn update(&mut self, agent: &str, executor: Option<&str>, task: &str, state: TaskState) {
        self.serial += 1;
        let mut uuid = [0u8; 16];
        uuid[..8].copy_from_slice(&self.serial.to_be_bytes());
        uuid[6] = 0x40 | (uuid[6] & 0x0f);
        uuid[8] = 0x80 | (uuid[8] & 0x3f);
        let status = TaskStatus {
            task_id: TaskId { value: task.into() },
            state: state as i32,
            source: Some(v1::task_status::Source::Executor as i32),
            agent_id: Some(AgentId {
                value: agent.into(),
            }),
            executor_id: executor.map(|e| ExecutorId { value: e.into() }),
            uuid: Some(uuid.to_vec()),
            timestamp: Some(self.serial as f64),
            ..TaskStatus::default()
        };
        self.counts.updates_sent += 1;
        self.send(&Event {
            r#type: Some(event::Type::Update as i32),
            update: Some(event::Update { status }),
            ..Event::default()
        });
    }

    /// One allocation run: every free, unfiltered, unoffered agent in one OFFERS event.
    fn allocate(&mut self) {
        if self.stream.is_none() || self.suppressed {
            return;
        }
        let now = Instant::now();
        let mut offers = Vec::new();
        for i in 0..self.agents.len() {
            let agent = &mut self.agents[i];
            if agent.offered {
                continue;
            }
            let free = Amount {
                cpus: agent.total.cpus - agent.used.cpus,
                mem: agent.total.mem - agent.used.mem,
            };
            if free.cpus < 0.01 || free.mem < 1.0 {
                continue;
            }
            if let Some(filter) = &agent.filter {
                if now < filter.until && free.fits_in(&filter.amount) {
                    continue;
                }
                agent.filter = None;
            }
            agent.offered = true;
            self.next_offer += 1;
            let id = format!("offer-{}", self.next_offer);
            offers.push(Offer {
                id: OfferId { value: id.clone() },
                framework_id: FrameworkId {
                    value: FRAMEWORK_ID.into(),
                },
                agent_id: AgentId {
                    value: agent.id.clone(),
                },
                hostname: format!("host-{i}"),
                resources: vec![scalar("cpus", free.cpus), scalar("mem", free.mem)],
                executor_ids: agent
                    .executors
                    .iter()
                    .map(|e| ExecutorId { value: e.clone() })
                    .collect(),
                ..Offer::default()
            });
            self.offers.insert(id, (i, free, now));
        }
        if offers.is_empty() {
            return;
        }
        self.counts.offers_sent += offers.len() as u64;
        self.counts.offer_events += 1;
        self.send(&Event {
            r#type: Some(event::Type::Offers as i32),
            offers: Some(event::Offers { offers }),
            ..Event::default()
        });
    }

    /// An offer answered: its agent can be offered again; the unused part filtered.
    fn answered(&mut self, offer: &OfferId, used: Amount, filters: Option<&v1::Filters>) {
        let Some((agent, amount, sent)) = self.offers.remove(&offer.value) else {
            return;
        };
        self.counts.offers_answered += 1;
        self.offer_wait_ms.push_duration_ms(sent.elapsed());
        let refuse = filters.and_then(|f| f.refuse_seconds).unwrap_or(5.0);
        let agent = &mut self.agents[agent];
        agent.offered = false;
        if refuse > 0.0 {
            agent.filter = Some(Filter {
                until: Instant::now() + Duration::from_secs_f64(refuse.min(31_536_000.0)),
                amount: Amount {
                    cpus: (amount.cpus - used.cpus).max(0.0),
                    mem: (amount.mem - used.mem).max(0.0),
                },
            });
        }
    }

    fn accept(&mut self, accept: call::Accept) {
        self.counts.accepts += 1;
        let mut used = Amount::default();
        let mut finished = Vec::new();
        for operation in &accept.operations {
            let Some(launch) = &operation.launch else {
                continue;
            };
            for task in &launch.task_infos {
                let Some(&agent) = self.agent_index.get(&task.agent_id.value) else {
                    continue;
                };
                let amount = Amount::of(&task.resources);
                used.cpus += amount.cpus;
                used.mem += amount.mem;
                let executor = task.executor.as_ref().map(|e| e.executor_id.value.clone());
                if let Some(executor_info) = &task.executor
                    && self.agents[agent]
                        .executors
                        .insert(executor_info.executor_id.value.clone())
                {
                    let cost = Amount::of(&executor_info.resources);
                    self.agents[agent].used.cpus += cost.cpus;
                    self.agents[agent].used.mem += cost.mem;
                    used.cpus += cost.cpus;
                    used.mem += cost.mem;
                }
                self.counts.tasks_launched += 1;
                finished.push((
                    self.agents[agent].id.clone(),
                    executor,
                    task.task_id.value.clone(),
                ));
            }
        }
        for offer in &accept.offer_ids {
            self.answered(offer, used, accept.filters.as_ref());
        }
        for (agent, executor, task) in finished {
            self.update(&agent, executor.as_deref(), &task, TaskState::TaskRunning);
            self.update(&agent, executor.as_deref(), &task, TaskState::TaskFinished);
        }
    }
}

async fn handle(shared: Arc<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(call) = Encoding::Protobuf.decode::<Call>(body.as_ref()) else {
        return (StatusCode::BAD_REQUEST, "undecodable call").into_response();
    };
    let kind = call
        .r#type
        .and_then(|t| call::Type::try_from(t).ok())
        .unwrap_or(call::Type::Unknown);
    let mut sim = shared.sim();
    sim.counts.calls += 1;
    if kind == call::Type::Subscribe {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        sim.stream_id = format!("sim-stream-{}", sim.counts.calls);
        let _ = tx.send(frame(&Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                framework_id: FrameworkId {
                    value: FRAMEWORK_ID.into(),
                },
                heartbeat_interval_seconds: Some(15.0),
                master_info: None,
            }),
            ..Event::default()
        }));
        sim.stream = Some(tx);
        sim.suppressed = false;
        // Outstanding offers die with the old stream.
        let offered: Vec<usize> = sim.offers.drain().map(|(_, (agent, _, _))| agent).collect();
        for agent in offered {
            sim.agents[agent].offered = false;
        }
        let stream_id = sim.stream_id.clone();
        drop(sim);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            Some((Ok::<Bytes, std::io::Error>(item), rx))
        });
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, Encoding::Protobuf.media_type())
            .header("Mesos-Stream-Id", stream_id)
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let stream_id = headers
        .get("Mesos-Stream-Id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if stream_id != sim.stream_id {
        return (StatusCode::BAD_REQUEST, "stale Mesos-Stream-Id").into_response();
    }
    match kind {
        call::Type::Accept => {
            if let Some(accept) = call.accept {
                sim.accept(accept);
            }
        }
        call::Type::Decline => {
            if let Some(decline) = call.decline {
                sim.counts.declines += 1;
                for offer in &decline.offer_ids {
                    sim.answered(offer, Amount::default(), decline.filters.as_ref());
                }
            }
        }
        call::Type::Revive => {
            sim.counts.revives += 1;
            sim.suppressed = false;
            for agent in &mut sim.agents {
                agent.filter = None;
            }
            sim.allocate();
        }
        call::Type::Suppress => {
            sim.counts.suppresses += 1;
            sim.suppressed = true;
        }
        call::Type::Acknowledge => sim.counts.acknowledged += 1,
        call::Type::Reconcile => {
            let tasks = call.reconcile.map(|r| r.tasks).unwrap_or_default();
            for task in tasks {
                let agent = task.agent_id.map(|a| a.value).unwrap_or_default();
                let state = sim
                    .live
                    .get(&task.task_id.value)
                    .copied()
                    .unwrap_or(TaskState::TaskGone);
                let status = TaskStatus {
                    task_id: task.task_id,
                    state: state as i32,
                    source: Some(v1::task_status::Source::Master as i32),
                    reason: Some(v1::task_status::Reason::Reconciliation as i32),
                    agent_id: Some(AgentId { value: agent }),
                    ..TaskStatus::default()
                };
                sim.send(&Event {
                    r#type: Some(event::Type::Update as i32),
                    update: Some(event::Update { status }),
                    ..Event::default()
                });
            }
        }
        call::Type::Kill => {
            if let Some(kill) = call.kill {
                let agent = kill.agent_id.map(|a| a.value).unwrap_or_default();
                sim.update(&agent, None, &kill.task_id.value, TaskState::TaskKilled);
            }
        }
        _ => {}
    }
    StatusCode::ACCEPTED.into_response()
}

pub struct SimMaster {
    pub url: String,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SimMaster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl SimMaster {
    pub async fn start(config: SimConfig) -> SimMaster {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the simulated master");
        let url = format!(
            "http://{}/api/v1/scheduler",
            listener.local_addr().expect("a bound address")
        );
        let agents: Vec<Agent> = (0..config.agents)
            .map(|i| Agent {
                id: format!("sim-agent-S{i}"),
                total: Amount {
                    cpus: config.cpus_per_agent,
                    mem: config.mem_per_agent,
                },
                used: Amount::default(),
                offered: false,
                filter: None,
                executors: HashSet::new(),
            })
            .collect();
        let agent_index = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.clone(), i))
            .collect();
        let shared = Arc::new(Shared {
            sim: Mutex::new(Sim {
                config,
                agents,
                agent_index,
                offers: HashMap::new(),
                next_offer: 0,
                stream: None,
                stream_id: String::new(),
                suppressed: false,
                live: HashMap::new(),
                counts: Counts::default(),
                offer_wait_ms: Samples::default(),
                serial: 0,
            }),
        });
        let for_server = Arc::clone(&shared);
        let app = axum::Router::new()
            .route(
                "/api/v1/scheduler",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    handle(Arc::clone(&for_server), headers, body)
                }),
            )
            // A master takes an ACCEPT of any size (axum would refuse bodies above 2 MB).
            .layer(axum::extract::DefaultBodyLimit::disable());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let for_allocator = Arc::clone(&shared);
        let allocator = tokio::spawn(async move {
            let mut tick = tokio::time::interval(config.allocation_interval);
            let mut heartbeat = Instant::now();
            loop {
                tick.tick().await;
                let mut sim = for_allocator.sim();
                sim.allocate();
                if heartbeat.elapsed() >= Duration::from_secs(15) {
                    heartbeat = Instant::now();
                    sim.send(&Event {
                        r#type: Some(event::Type::Heartbeat as i32),
                        ..Event::default()
                    });
                }
            }
        });
        SimMaster {
            url,
            shared,
            tasks: vec![server, allocator],
        }
    }

    pub fn counts(&self) -> Counts {
        self.shared.sim().counts
    }

    /// How long answered offers waited, taking the samples.
    pub fn take_offer_waits(&self) -> Samples {
        std::mem::take(&mut self.shared.sim().offer_wait_ms)
    }

    pub fn subscribed(&self) -> bool {
        self.shared.sim().stream.is_some()
    }

    pub fn config(&self) -> SimConfig {
        self.shared.sim().config
    }
}
