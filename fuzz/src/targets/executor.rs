//! The executor's core driven by a program the input writes: agent events (well-formed ones
//! and arbitrary protobuf), answers to its calls, job reports, lost connections and time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use prost::Message;
use shardex_common::payload::{
    ErrorPolicy, ExecutionType, Guards, Isolation, JobKind, JobSpec, ShardingContext, TaskPayload,
};
use shardex_executor::{
    Action, CallError, Core, ExecutorConfig, ExecutorFlags, Input, JobReport, Now, Outcome,
};
use shardex_mesos::agent_info::AgentInfo;
use shardex_mesos::v1::{
    AgentId, ExecutorInfo, FrameworkInfo, TaskId, TaskInfo, executor, framework_info,
};
use tokio::time::Instant;

use crate::Reader;

fn config() -> ExecutorConfig {
    ExecutorConfig {
        agent_url: "http://127.0.0.1:5051/api/v1/executor".into(),
        tls: None,
        warnings: Vec::new(),
        framework_id: "fw".into(),
        executor_id: "ex".into(),
        sandbox: PathBuf::from("/nonexistent-fuzz-sandbox"),
        checkpoint: true,
        recovery_timeout: Duration::from_secs(15),
        subscription_backoff_max: Duration::from_secs(2),
        shutdown_grace_period: Duration::from_secs(5),
        authentication_token: None,
        flags: ExecutorFlags::default(),
    }
}

fn event(kind: executor::event::Type) -> executor::Event {
    executor::Event {
        r#type: Some(kind as i32),
        ..executor::Event::default()
    }
}

fn subscribed(killing_state: bool) -> executor::Event {
    let capabilities = if killing_state {
        vec![framework_info::Capability {
            r#type: Some(framework_info::capability::Type::TaskKillingState as i32),
        }]
    } else {
        Vec::new()
    };
    executor::Event {
        subscribed: Some(executor::event::Subscribed {
            executor_info: ExecutorInfo::default(),
            framework_info: FrameworkInfo {
                capabilities,
                ..FrameworkInfo::default()
            },
            agent_info: AgentInfo::default(),
            container_id: None,
        }),
        ..event(executor::event::Type::Subscribed)
    }
}

/// A LAUNCH of `id`: a valid script job (transient or daemon), or data the input writes.
fn launch(id: &str, input: &mut Reader) -> executor::Event {
    let data = match input.below(3) {
        0 => input.bytes(64).to_vec(),
        choice => {
            let execution = if choice == 1 {
                ExecutionType::Transient
            } else {
                ExecutionType::Daemon {
                    cron: "* * * * * ?".into(),
                    misfire: input.byte() & 1 == 1,
                }
            };
            TaskPayload {
                context: ShardingContext {
                    task_id: id.into(),
                    job_name: "job".into(),
                    sharding_total_count: 1,
                    job_parameter: String::new(),
                    item_parameters: BTreeMap::from([(0, String::new())]),
                },
                job: JobSpec {
                    kind: JobKind::Script {
                        command_line: "true".into(),
                    },
                    execution,
                    plugin: None,
                    error_policy: ErrorPolicy::Fail,
                    properties: BTreeMap::new(),
                    isolation: Isolation::Process,
                    guards: Guards::default(),
                },
            }
            .encode()
            .unwrap_or_default()
        }
    };
    executor::Event {
        launch: Some(executor::event::Launch {
            task: TaskInfo {
                name: id.into(),
                task_id: TaskId { value: id.into() },
                agent_id: AgentId { value: "S0".into() },
                data: Some(data),
                ..TaskInfo::default()
            },
        }),
        ..event(executor::event::Type::Launch)
    }
}

fn error(input: &mut Reader) -> CallError {
    CallError {
        retryable: input.byte() & 1 == 1,
        message: "fuzzed failure".into(),
    }
}

fn pick<T: Clone>(items: &[T], input: &mut Reader) -> Option<T> {
    (!items.is_empty()).then(|| items[input.below(items.len())].clone())
}

/// What the core said so far, and the rules it must keep.
#[derive(Default)]
struct Seen {
    /// Task ids of every LAUNCH the core was given.
    launched: HashSet<String>,
    /// Every UPDATE's uuid, with the task and state it carried.
    updates: HashMap<Vec<u8>, (String, i32)>,
    uuids: Vec<Vec<u8>>,
    started: Vec<String>,
    exited: bool,
}

impl Seen {
    fn check(&mut self, actions: Vec<Action>) {
        if self.exited {
            assert!(actions.is_empty(), "actions after EXIT: {actions:?}");
        }
        for action in actions {
            match action {
                Action::PostUpdate { uuid, call } => {
                    assert_eq!(uuid.len(), 16, "an UPDATE's uuid");
                    let status = &call.update.as_ref().expect("an UPDATE call").status;
                    assert_eq!(status.uuid.as_ref(), Some(&uuid));
                    let task = status.task_id.value.clone();
                    assert!(
                        self.launched.contains(&task),
                        "an UPDATE for {task}, never launched"
                    );
                    let carried = (task, status.state);
                    match self.updates.get(&uuid) {
                        Some(before) => assert_eq!(before, &carried, "a uuid reused"),
                        None => {
                            self.updates.insert(uuid.clone(), carried);
                            self.uuids.push(uuid);
                        }
                    }
                }
                Action::StartJob { task_id, .. } => {
                    assert!(self.launched.contains(&task_id), "started {task_id}");
                    self.started.push(task_id);
                }
                Action::Exit(_) => {
                    assert!(!self.exited, "EXIT twice");
                    self.exited = true;
                }
                _ => {}
            }
        }
    }
}

/// Drives the executor's core with the program `data` writes.
pub fn executor(data: &[u8]) {
    let mut input = Reader::new(data);
    let mut now = Now {
        at: Instant::now(),
        wall: Utc
            .timestamp_opt(1_800_000_000, 0)
            .single()
            .unwrap_or_default(),
    };
    let mut core = Core::new(config(), now);
    let mut seen = Seen::default();
    seen.check(core.start());
    while !input.is_empty() {
        let input_event = match input.below(12) {
            0 => Input::Subscribed,
            1 => Input::SubscribeFailed(error(&mut input)),
            2 => Input::Event(Box::new(subscribed(input.byte() & 1 == 1))),
            3 => {
                let id = format!("t{}", input.below(4));
                seen.launched.insert(id.clone());
                Input::Event(Box::new(launch(&id, &mut input)))
            }
            4 => {
                let id = format!("t{}", input.below(5));
                Input::Event(Box::new(executor::Event {
                    kill: Some(executor::event::Kill {
                        task_id: TaskId { value: id },
                        kill_policy: None,
                    }),
                    ..event(executor::event::Type::Kill)
                }))
            }
            5 => {
                let Some(uuid) = pick(&seen.uuids, &mut input) else {
                    continue;
                };
                let task = seen.updates[&uuid].0.clone();
                Input::Event(Box::new(executor::Event {
                    acknowledged: Some(executor::event::Acknowledged {
                        task_id: TaskId { value: task },
                        uuid,
                    }),
                    ..event(executor::event::Type::Acknowledged)
                }))
            }
            6 => {
                let Ok(event) = executor::Event::decode(input.bytes(128)) else {
                    continue;
                };
                if let Some(launch) = &event.launch {
                    seen.launched.insert(launch.task.task_id.value.clone());
                }
                if let Some(group) = &event.launch_group {
                    for task in &group.task_group.tasks {
                        seen.launched.insert(task.task_id.value.clone());
                    }
                }
                Input::Event(Box::new(event))
            }
            7 => Input::StreamEnded((input.byte() & 1 == 1).then(|| error(&mut input))),
            8 => {
                let Some(uuid) = pick(&seen.uuids, &mut input) else {
                    continue;
                };
                let result = if input.byte() & 1 == 1 {
                    Ok(())
                } else {
                    Err(error(&mut input))
                };
                Input::UpdateAnswered { uuid, result }
            }
            9 => {
                let Some(task_id) = pick(&seen.started, &mut input) else {
                    continue;
                };
                let outcome = match input.below(4) {
                    0 => Outcome::Succeeded,
                    1 => Outcome::Failed("fuzzed".into()),
                    2 => Outcome::Broken("fuzzed".into()),
                    _ => Outcome::Crashed {
                        cause: "signal".into(),
                        message: "fuzzed".into(),
                    },
                };
                Input::Job(match input.below(4) {
                    0 => JobReport::Ready {
                        task_id,
                        work_dir: PathBuf::from("/nonexistent-fuzz-sandbox/t"),
                    },
                    1 => JobReport::FireDone { task_id, outcome },
                    2 => JobReport::SetupFailed {
                        task_id,
                        message: "fuzzed".into(),
                        scope: None,
                    },
                    _ => JobReport::Done { task_id, outcome },
                })
            }
            _ => {
                let by = Duration::from_millis(100 * u64::from(input.byte()));
                now.at += by;
                now.wall += chrono::Duration::from_std(by).unwrap_or_default();
                Input::Tick
            }
        };
        seen.check(core.handle(input_event, now));
    }
}
