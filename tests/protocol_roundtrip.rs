//! Calls and events of both v1 APIs survive encode → decode in protobuf and in JSON, and proto2
//! keeps zero-valued required fields on the wire.

use shardex::mesos::proto::v1::{self, executor, scheduler};
use shardex::mesos::{Encoding, required};

#[allow(deprecated)] // `role` is deprecated upstream, but offers still carry it.
fn scalar(name: &str, value: f64) -> v1::Resource {
    v1::Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        role: Some("*".into()),
        allocation_info: Some(v1::resource::AllocationInfo {
            role: Some("*".into()),
        }),
        ..Default::default()
    }
}

fn task_info() -> v1::TaskInfo {
    v1::TaskInfo {
        name: "job@-@0@-@READY@-@agent-S0".into(),
        task_id: v1::TaskId {
            value: "job@-@0@-@READY@-@agent-S0@-@4b2a".into(),
        },
        agent_id: v1::AgentId {
            value: "agent-S0".into(),
        },
        resources: vec![scalar("cpus", 0.5), scalar("mem", 128.0)],
        executor: Some(v1::ExecutorInfo {
            r#type: Some(v1::executor_info::Type::Custom as i32),
            executor_id: v1::ExecutorId {
                value: "app@-@agent-S0".into(),
            },
            command: Some(v1::CommandInfo {
                uris: vec![v1::command_info::Uri {
                    value: "http://repo/shardex-executor.tar.gz".into(),
                    cache: Some(true),
                    ..Default::default()
                }],
                value: Some("./shardex-executor".into()),
                ..Default::default()
            }),
            resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
            ..Default::default()
        }),
        data: Some(b"\x00payload\n\x01".to_vec()),
        kill_policy: Some(v1::KillPolicy {
            grace_period: Some(v1::DurationInfo {
                nanoseconds: 3_000_000_000,
            }),
        }),
        ..Default::default()
    }
}

fn status(state: v1::TaskState) -> v1::TaskStatus {
    v1::TaskStatus {
        task_id: v1::TaskId { value: "t1".into() },
        state: state as i32,
        source: Some(v1::task_status::Source::Executor as i32),
        uuid: Some(shardex::mesos::uuid::new_update_uuid()),
        timestamp: Some(1_763_927_537.25),
        message: Some("BEGIN".into()),
        ..Default::default()
    }
}

fn ids() -> (v1::ExecutorId, v1::FrameworkId) {
    (
        v1::ExecutorId {
            value: "app@-@agent-S0".into(),
        },
        v1::FrameworkId {
            value: "fw-0000".into(),
        },
    )
}

fn executor_calls() -> Vec<executor::Call> {
    let (executor_id, framework_id) = ids();
    let call = |kind: executor::call::Type| executor::Call {
        executor_id: executor_id.clone(),
        framework_id: framework_id.clone(),
        r#type: Some(kind as i32),
        ..Default::default()
    };
    vec![
        executor::Call {
            subscribe: Some(executor::call::Subscribe {
                unacknowledged_tasks: vec![task_info()],
                unacknowledged_updates: vec![executor::call::Update {
                    status: status(v1::TaskState::TaskRunning),
                }],
            }),
            ..call(executor::call::Type::Subscribe)
        },
        executor::Call {
            update: Some(executor::call::Update {
                status: status(v1::TaskState::TaskStarting),
            }),
            ..call(executor::call::Type::Update)
        },
        executor::Call {
            message: Some(executor::call::Message {
                data: b"hello".to_vec(),
            }),
            ..call(executor::call::Type::Message)
        },
        call(executor::call::Type::Heartbeat),
    ]
}

fn executor_events() -> Vec<executor::Event> {
    let event = |kind: executor::event::Type| executor::Event {
        r#type: Some(kind as i32),
        ..Default::default()
    };
    vec![
        executor::Event {
            launch: Some(executor::event::Launch { task: task_info() }),
            ..event(executor::event::Type::Launch)
        },
        executor::Event {
            kill: Some(executor::event::Kill {
                task_id: v1::TaskId { value: "t1".into() },
                kill_policy: Some(v1::KillPolicy {
                    grace_period: Some(v1::DurationInfo {
                        nanoseconds: 1_000_000_000,
                    }),
                }),
            }),
            ..event(executor::event::Type::Kill)
        },
        executor::Event {
            acknowledged: Some(executor::event::Acknowledged {
                task_id: v1::TaskId { value: "t1".into() },
                uuid: shardex::mesos::uuid::new_update_uuid(),
            }),
            ..event(executor::event::Type::Acknowledged)
        },
        event(executor::event::Type::Shutdown),
        event(executor::event::Type::Heartbeat),
    ]
}

fn scheduler_calls() -> Vec<scheduler::Call> {
    let (_, framework_id) = ids();
    let call = |kind: scheduler::call::Type| scheduler::Call {
        framework_id: Some(framework_id.clone()),
        r#type: Some(kind as i32),
        ..Default::default()
    };
    vec![
        scheduler::Call {
            framework_id: None,
            subscribe: Some(scheduler::call::Subscribe {
                framework_info: v1::FrameworkInfo {
                    user: "root".into(),
                    name: "shardex".into(),
                    failover_timeout: Some(604_800.0),
                    checkpoint: Some(true),
                    capabilities: vec![v1::framework_info::Capability {
                        r#type: Some(v1::framework_info::capability::Type::PartitionAware as i32),
                    }],
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..call(scheduler::call::Type::Subscribe)
        },
        scheduler::Call {
            accept: Some(scheduler::call::Accept {
                offer_ids: vec![v1::OfferId { value: "O1".into() }],
                operations: vec![v1::offer::Operation {
                    r#type: Some(v1::offer::operation::Type::Launch as i32),
                    launch: Some(v1::offer::operation::Launch {
                        task_infos: vec![task_info()],
                    }),
                    ..Default::default()
                }],
                filters: Some(v1::Filters {
                    refuse_seconds: Some(1.0),
                }),
            }),
            ..call(scheduler::call::Type::Accept)
        },
        scheduler::Call {
            acknowledge: Some(scheduler::call::Acknowledge {
                agent_id: v1::AgentId {
                    value: "agent-S0".into(),
                },
                task_id: v1::TaskId { value: "t1".into() },
                uuid: shardex::mesos::uuid::new_update_uuid(),
            }),
            ..call(scheduler::call::Type::Acknowledge)
        },
        scheduler::Call {
            reconcile: Some(scheduler::call::Reconcile { tasks: vec![] }),
            ..call(scheduler::call::Type::Reconcile)
        },
    ]
}

fn scheduler_events() -> Vec<scheduler::Event> {
    let event = |kind: scheduler::event::Type| scheduler::Event {
        r#type: Some(kind as i32),
        ..Default::default()
    };
    vec![
        scheduler::Event {
            update: Some(scheduler::event::Update {
                status: status(v1::TaskState::TaskFailed),
            }),
            ..event(scheduler::event::Type::Update)
        },
        scheduler::Event {
            failure: Some(scheduler::event::Failure {
                agent_id: Some(v1::AgentId {
                    value: "agent-S0".into(),
                }),
                executor_id: Some(ids().0),
                status: Some(137 << 8),
            }),
            ..event(scheduler::event::Type::Failure)
        },
        scheduler::Event {
            error: Some(scheduler::event::Error {
                message: "Framework has been removed".into(),
            }),
            ..event(scheduler::event::Type::Error)
        },
        event(scheduler::event::Type::Heartbeat),
    ]
}

fn assert_round_trips<M>(messages: Vec<M>)
where
    M: prost::Message + prost::Name + Default + PartialEq + std::fmt::Debug,
{
    for message in messages {
        let bytes = Encoding::Protobuf.encode(&message);
        let back: M = Encoding::Protobuf.decode(&bytes).expect("protobuf decodes");
        assert_eq!(back, message, "protobuf round trip");

        // Mesos' JSON writes unset fields that have a default ("shell":true), so parsing it back
        // sets them explicitly: equal in meaning, not in presence. The JSON text is a fixed
        // point, and nothing else changes.
        let text = Encoding::Json.encode(&message);
        let back: M = Encoding::Json.decode(&text).expect("JSON decodes");
        assert_eq!(
            String::from_utf8(Encoding::Json.encode(&back)).unwrap(),
            String::from_utf8(text).unwrap(),
            "JSON round trip"
        );
        let missing = required::missing_in::<M>(&message.encode_to_vec()).unwrap();
        assert!(missing.is_empty(), "{missing:?}");
    }
}

#[test]
fn executor_calls_and_events_round_trip() {
    assert_round_trips(executor_calls());
    assert_round_trips(executor_events());
}

#[test]
fn scheduler_calls_and_events_round_trip() {
    assert_round_trips(scheduler_calls());
    assert_round_trips(scheduler_events());
}

#[test]
fn zero_valued_required_fields_stay_on_the_wire() {
    use prost::Message;
    // TaskStatus.state = TASK_STARTING (0): field 2, varint 0.
    let status = v1::TaskStatus {
        task_id: v1::TaskId { value: "t".into() },
        state: v1::TaskState::TaskStarting as i32,
        ..Default::default()
    };
    assert_eq!(
        status.encode_to_vec(),
        [0x0a, 0x03, 0x0a, 0x01, b't', 0x10, 0x00]
    );
    // Resource.type = SCALAR (0): field 2, varint 0.
    let resource = v1::Resource {
        name: "cpus".into(),
        r#type: v1::value::Type::Scalar as i32,
        ..Default::default()
    };
    assert_eq!(
        resource.encode_to_vec(),
        [0x0a, 0x04, b'c', b'p', b'u', b's', 0x10, 0x00]
    );
    // SOURCE_MASTER (0) on an optional field is kept when set.
    let status = v1::TaskStatus {
        source: Some(v1::task_status::Source::Master as i32),
        ..status
    };
    assert!(status.encode_to_vec().ends_with(&[0x48, 0x00]));
    // The JSON form names them.
    assert_eq!(
        shardex::mesos::json::to_json(&resource),
        r#"{"name":"cpus","type":"SCALAR"}"#
    );
}

#[test]
fn subscribe_carries_an_empty_subscribe_message() {
    use prost::Message;
    let (executor_id, framework_id) = ids();
    let call = executor::Call {
        executor_id,
        framework_id,
        r#type: Some(executor::call::Type::Subscribe as i32),
        subscribe: Some(executor::call::Subscribe::default()),
        ..Default::default()
    };
    // Field 4, length 0: Mesos refuses a SUBSCRIBE without it.
    assert!(call.encode_to_vec().ends_with(&[0x22, 0x00]));
    assert!(shardex::mesos::json::to_json(&call).ends_with(r#""subscribe":{}}"#));
}
