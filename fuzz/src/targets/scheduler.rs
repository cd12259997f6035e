//! The scheduler's engine driven by a program the input writes: status updates of every state,
//! source and reason (fresh, duplicated, stale, arbitrary protobuf), offers, triggers,
//! enabling and disabling, lost subscriptions and time.

use std::collections::{BTreeMap, HashSet};

use prost::Message;
use shardex_mesos::v1::scheduler::{Call, Event, call, event};
use shardex_mesos::v1::{
    self, AgentId, FrameworkId, Offer, OfferId, Resource, TaskId, TaskStatus, value,
};
use shardex_scheduler::{ApiRequest, Config, Engine, Millis, State};

use crate::Reader;

const CONFIG: &str = r#"
[failover]
max_attempts = 3
backoff_initial = "1secs"
backoff_max = "4secs"
[[apps]]
name = "a"
executor_uri = "/opt/shardex/shardex-executor"
[[jobs]]
name = "tr"
app = "a"
cron = "0 0 0 1 1 ? 2099"
sharding_total_count = 3
failover = true
retries = 1
kind = "script"
command_line = "true"
[[jobs]]
name = "dm"
app = "a"
cron = "* * * * * ?"
execution_type = "daemon"
sharding_total_count = 2
kind = "script"
command_line = "true"
"#;

const JOBS: [&str; 2] = ["tr", "dm"];

fn offer(id: u64) -> Offer {
    #[allow(deprecated)]
    let scalar = |name: &str, amount: f64| Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: amount }),
        role: Some("*".into()),
        ..Resource::default()
    };
    Offer {
        id: OfferId {
            value: format!("o{id}"),
        },
        framework_id: FrameworkId { value: "fw".into() },
        agent_id: AgentId { value: "S0".into() },
        hostname: "localhost".into(),
        resources: vec![scalar("cpus", 4.0), scalar("mem", 4096.0)],
        ..Offer::default()
    }
}

fn update_event(status: TaskStatus) -> Event {
    Event {
        r#type: Some(event::Type::Update as i32),
        update: Some(event::Update { status }),
        ..Event::default()
    }
}

/// What the engine did so far, and the rules it must keep.
#[derive(Default)]
struct Seen {
    /// Every task id launched, in order.
    launched: Vec<String>,
    /// Every uuid sent in an update.
    uuids: HashSet<Vec<u8>>,
    last_update: Option<TaskStatus>,
}

impl Seen {
    fn check(&mut self, engine: &Engine, calls: Vec<Call>) {
        for call in calls {
            let kind = call.r#type.and_then(|t| call::Type::try_from(t).ok());
            if kind == Some(call::Type::Acknowledge) {
                let ack = call.acknowledge.expect("an ACKNOWLEDGE body");
                assert!(
                    self.uuids.contains(&ack.uuid),
                    "ACKNOWLEDGE of a uuid never sent"
                );
            }
            for operation in call.accept.iter().flat_map(|a| &a.operations) {
                for task in operation.launch.iter().flat_map(|l| &l.task_infos) {
                    let id = &task.task_id.value;
                    assert!(!self.launched.contains(id), "{id} launched twice");
                    self.launched.push(id.clone());
                }
            }
        }
        check_state(&engine.state);
    }
}

/// Never two live tasks of one item; never an item both parked and queued for failover.
fn check_state(state: &State) {
    let mut live: BTreeMap<(String, u32), Vec<&str>> = BTreeMap::new();
    for task in state.running().values().filter(|t| t.blocks_item()) {
        live.entry((task.job.clone(), task.item))
            .or_default()
            .push(&task.task_id);
    }
    for (item, tasks) in &live {
        assert!(tasks.len() <= 1, "{item:?} has live tasks {tasks:?}");
    }
    let failover: HashSet<(&str, u32)> = state
        .failover()
        .values()
        .map(|f| (f.job.as_str(), f.item))
        .collect();
    for parked in state.parked().values() {
        assert!(
            !failover.contains(&(parked.job.as_str(), parked.item)),
            "{}/{} both parked and queued for failover",
            parked.job,
            parked.item
        );
    }
}

/// Drives the scheduler's engine with the program `data` writes.
pub fn scheduler(data: &[u8]) {
    let mut input = Reader::new(data);
    let config = Config::from_toml(CONFIG, "fuzz").expect("the fuzz config is valid");
    let mut now: Millis = 1_800_000_000_000;
    let mut engine = Engine::new(State::default(), config, now);
    let mut seen = Seen::default();
    let calls = engine
        .apply_config_registrations(now)
        .expect("the fuzz config registers");
    seen.check(&engine, calls);
    let calls = engine.on_subscribed("fw", now);
    seen.check(&engine, calls);
    let mut offers = 0u64;
    let mut serial = 0u64;
    while !input.is_empty() {
        let calls = match input.below(10) {
            0 => {
                offers += 1;
                engine.on_event(
                    Event {
                        r#type: Some(event::Type::Offers as i32),
                        offers: Some(event::Offers {
                            offers: vec![offer(offers)],
                        }),
                        ..Event::default()
                    },
                    now,
                )
            }
            1 => {
                let job = JOBS[input.below(JOBS.len())].to_owned();
                engine.on_api(ApiRequest::TriggerJob(job), now).0
            }
            2 | 3 => {
                // An update of a task launched (running or long gone) or of a stranger.
                let task = if seen.launched.is_empty() || input.byte().is_multiple_of(8) {
                    format!("stranger-{}", input.below(3))
                } else {
                    seen.launched[input.below(seen.launched.len())].clone()
                };
                let uuid = (!input.byte().is_multiple_of(4)).then(|| {
                    serial += 1;
                    let mut uuid = [0u8; 16];
                    uuid[..8].copy_from_slice(&serial.to_be_bytes());
                    uuid.to_vec()
                });
                if let Some(uuid) = &uuid {
                    seen.uuids.insert(uuid.clone());
                }
                let status = TaskStatus {
                    task_id: TaskId { value: task },
                    state: i32::from(input.byte() % 15),
                    source: Some(i32::from(input.byte() % 3)),
                    reason: (input.byte() & 1 == 1).then(|| i32::from(input.byte() % 40)),
                    message: Some("fuzzed".into()),
                    agent_id: Some(AgentId { value: "S0".into() }),
                    uuid,
                    data: (input.byte() & 1 == 1).then(|| input.bytes(16).to_vec()),
                    ..TaskStatus::default()
                };
                seen.last_update = Some(status.clone());
                engine.on_event(update_event(status), now)
            }
            4 => match seen.last_update.clone() {
                // The same update again (Mesos re-sends until acknowledged).
                Some(status) => engine.on_event(update_event(status), now),
                None => continue,
            },
            5 => {
                let Ok(event) = Event::decode(input.bytes(128)) else {
                    continue;
                };
                if let Some(uuid) = event.update.as_ref().and_then(|u| u.status.uuid.clone()) {
                    seen.uuids.insert(uuid);
                }
                engine.on_event(event, now)
            }
            6 => {
                engine.on_disconnected();
                engine.on_subscribed("fw", now)
            }
            7 => {
                let job = JOBS[input.below(JOBS.len())].to_owned();
                let enabled = input.byte() & 1 == 1;
                engine
                    .on_api(ApiRequest::SetJobEnabled(job, enabled), now)
                    .0
            }
            8 => {
                let job = JOBS[input.below(JOBS.len())].to_owned();
                let item = u32::from(input.byte() % 4);
                engine.on_api(ApiRequest::ReleaseParked(job, item), now).0
            }
            _ => {
                now += 250 * Millis::from(input.byte());
                engine.on_tick(now)
            }
        };
        seen.check(&engine, calls);
    }
}
