//! The executor's timing rules, driven by an injected clock: nothing here sleeps or opens a
//! socket. Each test feeds [`Core`] what the agent and the job workers would say and checks the
//! exact actions and status updates that come back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::time::Instant;

use shardex_common::payload::{
    ErrorPolicy, ExecutionType, Guards, Isolation, JobKind, JobSpec, ShardingContext, TaskPayload,
};
use shardex_common::status_contract;
use shardex_mesos::agent_info::AgentInfo;
use shardex_mesos::proto::v1::{
    AgentId, DurationInfo, ExecutorInfo, FrameworkInfo, KillPolicy, TaskId, TaskInfo, TaskState,
    TaskStatus, executor, framework_info,
};

use super::*;
use crate::config::ExecutorFlags;
use crate::stopping::FORCED_KILL_REAP;

const RECOVERY: Duration = Duration::from_secs(15);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);
const MS: Duration = Duration::from_millis(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn config(flags: ExecutorFlags) -> ExecutorConfig {
    ExecutorConfig {
        agent_url: "http://127.0.0.1:5051/api/v1/executor".into(),
        tls: None,
        warnings: Vec::new(),
        framework_id: "fw".into(),
        executor_id: "ex".into(),
        sandbox: PathBuf::from("/sandbox"),
        checkpoint: true,
        recovery_timeout: RECOVERY,
        subscription_backoff_max: BACKOFF_MAX,
        shutdown_grace_period: SHUTDOWN_GRACE,
        authentication_token: None,
        flags,
    }
}

fn flags() -> ExecutorFlags {
    ExecutorFlags {
        default_kill_grace: DEFAULT_KILL_GRACE,
        ack_timeout: ACK_TIMEOUT,
        ..ExecutorFlags::default()
    }
}

fn wall_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 10, 0, 0).unwrap()
}

/// One executor core, its clock, and everything it asked to POST.
struct Harness {
    core: Core,
    now: Now,
    /// Every status update POSTed, in order.
    sent: Vec<TaskStatus>,
    /// Every action, in order.
    actions: Vec<Action>,
    /// Answer every UPDATE with 202 at once.
    auto_answer: bool,
}

impl Harness {
    /// A core that has subscribed and been confirmed by an agent whose framework declared
    /// TASK_KILLING_STATE.
    fn subscribed(flags: ExecutorFlags) -> Harness {
        let mut h = Harness::fresh(config(flags));
        h.subscribe_ok();
        h
    }

    fn fresh(config: ExecutorConfig) -> Harness {
        let now = Now {
            at: Instant::now(),
            wall: wall_start(),
        };
        let mut core = Core::new(config, now);
        let actions = core.start();
        assert!(matches!(actions.as_slice(), [Action::Subscribe(_)]));
        Harness {
            core,
            now,
            sent: Vec::new(),
            actions,
            auto_answer: true,
        }
    }

    fn subscribe_ok(&mut self) {
        let out = self.feed(Input::Subscribed);
        assert!(out.contains(&Action::ReadEvents), "{out:?}");
        self.feed(Input::Event(Box::new(subscribed_event())));
    }

    fn advance(&mut self, by: Duration) {
        self.now.at += by;
        self.now.wall += chrono::Duration::from_std(by).unwrap();
    }

    /// Moves the clock to the core's next wake-up and ticks.
    fn wake(&mut self) -> Vec<Action> {
        let at = self.core.next_wakeup(self.now).expect("a wake-up is due");
        assert!(at >= self.now.at);
        self.advance(at - self.now.at);
        self.feed(Input::Tick)
    }

    fn tick(&mut self) -> Vec<Action> {
        self.feed(Input::Tick)
    }

    /// Handles `input`; answers UPDATEs with 202 when `auto_answer`. Returns every action that
    /// followed.
    fn feed(&mut self, input: Input) -> Vec<Action> {
        let mut all = Vec::new();
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            let out = self.core.handle(input, self.now);
            for action in &out {
                if let Action::PostUpdate { uuid, call } = action {
                    self.sent.push(call.update.as_ref().unwrap().status.clone());
                    if self.auto_answer {
                        queue.insert(
                            0,
                            Input::UpdateAnswered {
                                uuid: uuid.clone(),
                                result: Ok(()),
                            },
                        );
                    }
                }
            }
            all.extend(out);
        }
        self.actions.extend(all.iter().cloned());
        all
    }

    fn event(&mut self, event: executor::Event) -> Vec<Action> {
        self.feed(Input::Event(Box::new(event)))
    }

    fn job(&mut self, report: JobReport) -> Vec<Action> {
        self.feed(Input::Job(report))
    }

    /// LAUNCH of a task whose job reports ready at once.
    fn launch_running(&mut self, task: TaskInfo) {
        let id = task.task_id.value.clone();
        let out = self.event(launch(task));
        assert!(
            out.iter()
                .any(|a| matches!(a, Action::StartJob { task_id, .. } if *task_id == id)),
            "{out:?}"
        );
        self.job(JobReport::Ready {
            task_id: id,
            work_dir: PathBuf::from("/sandbox/tasks/x"),
        });
    }

    /// Acknowledges every update sent so far.
    fn ack_all(&mut self) -> Vec<Action> {
        let sent = self.sent.clone();
        let mut out = Vec::new();
        for status in sent {
            out.extend(self.event(acknowledged(&status)));
        }
        out
    }

    /// The (task, state, message) of the updates sent since `from`.
    fn states_since(&self, from: usize) -> Vec<(String, TaskState, Option<String>)> {
        self.sent[from..]
            .iter()
            .map(|s| {
                (
                    s.task_id.value.clone(),
                    TaskState::try_from(s.state).unwrap(),
                    s.message.clone(),
                )
            })
            .collect()
    }
}

fn payload(task_id: &str, execution: ExecutionType) -> TaskPayload {
    TaskPayload {
        context: ShardingContext {
            task_id: task_id.into(),
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
}

fn task(id: &str) -> TaskInfo {
    task_with(id, ExecutionType::Transient)
}

fn task_with(id: &str, execution: ExecutionType) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        agent_id: AgentId { value: "S0".into() },
        data: Some(payload(id, execution).encode().unwrap()),
        ..Default::default()
    }
}

fn kill_policy(grace: Duration) -> KillPolicy {
    KillPolicy {
        grace_period: Some(DurationInfo {
            nanoseconds: grace.as_nanos() as i64,
        }),
    }
}

fn event(kind: executor::event::Type) -> executor::Event {
    executor::Event {
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

fn subscribed_event() -> executor::Event {
    executor::Event {
        subscribed: Some(executor::event::Subscribed {
            executor_info: ExecutorInfo::default(),
            framework_info: FrameworkInfo {
                capabilities: vec![framework_info::Capability {
                    r#type: Some(framework_info::capability::Type::TaskKillingState as i32),
                }],
                ..Default::default()
            },
            agent_info: AgentInfo::default(),
            container_id: None,
        }),
        ..event(executor::event::Type::Subscribed)
    }
}

fn launch(task: TaskInfo) -> executor::Event {
    executor::Event {
        launch: Some(executor::event::Launch { task }),
        ..event(executor::event::Type::Launch)
    }
}

fn kill(id: &str, policy: Option<KillPolicy>) -> executor::Event {
    executor::Event {
        kill: Some(executor::event::Kill {
            task_id: TaskId { value: id.into() },
            kill_policy: policy,
        }),
        ..event(executor::event::Type::Kill)
    }
}

fn acknowledged(status: &TaskStatus) -> executor::Event {
    executor::Event {
        acknowledged: Some(executor::event::Acknowledged {
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone().unwrap(),
        }),
        ..event(executor::event::Type::Acknowledged)
    }
}

fn retryable() -> CallError {
    CallError {
        retryable: true,
        message: "503 Service Unavailable".into(),
    }
}

fn exit_code(actions: &[Action]) -> Option<u8> {
    actions.iter().find_map(|a| match a {
        Action::Exit(code) => Some(*code),
        _ => None,
    })
}

fn has(actions: &[Action], wanted: &Action) -> bool {
    actions.contains(wanted)
}

// -------------------------------------------------------------------------------------------
// Kill grace

/// KILL → `TASK_KILLING` and a cooperative cancel at once; force exactly at the end of the
/// grace; `TASK_KILLED` only once the job reports it has stopped.
fn assert_kill_escalates_after(h: &mut Harness, id: &str, grace: Duration) {
    let from = h.sent.len();
    let out = h.event(kill(id, None));
    assert!(has(&out, &Action::CancelJob(id.into())), "{out:?}");
    assert_eq!(
        h.states_since(from),
        vec![(id.into(), TaskState::TaskKilling, None)]
    );
    h.advance(grace - MS);
    let out = h.tick();
    assert!(!has(&out, &Action::ForceKill(id.into())), "forced early");
    h.advance(MS);
    let out = h.tick();
    assert!(has(&out, &Action::ForceKill(id.into())), "{out:?}");
    assert_eq!(
        h.sent.len(),
        from + 1,
        "nothing terminal before the job stops"
    );
    h.job(JobReport::Done {
        task_id: id.into(),
        outcome: Outcome::Succeeded,
    });
    assert_eq!(
        h.states_since(from + 1),
        vec![(id.into(), TaskState::TaskKilled, None)]
    );
}

#[test]
fn kill_grace_without_any_policy_is_the_flag() {
    let mut h = Harness::subscribed(flags());
    h.launch_running(task("t"));
    assert_kill_escalates_after(&mut h, "t", DEFAULT_KILL_GRACE);
}

#[test]
fn kill_grace_comes_from_the_task_when_the_kill_has_none() {
    let mut h = Harness::subscribed(flags());
    let mut info = task("t");
    info.kill_policy = Some(kill_policy(secs(7)));
    h.launch_running(info);
    assert_kill_escalates_after(&mut h, "t", secs(7));
}

#[test]
fn kill_grace_of_the_kill_wins_and_a_repeated_kill_only_shortens_it() {
    let mut h = Harness::subscribed(flags());
    let mut info = task("t");
    info.kill_policy = Some(kill_policy(secs(7)));
    h.launch_running(info);
    let killed_at = h.now.at;
    h.event(kill("t", Some(kill_policy(secs(4)))));
    // A later KILL asking for more time does not get it; one asking for less does.
    h.advance(secs(1));
    h.event(kill("t", Some(kill_policy(secs(9)))));
    assert_eq!(h.core.next_wakeup(h.now), Some(killed_at + secs(4)));
    h.event(kill("t", Some(kill_policy(secs(2)))));
    let out = h.wake();
    assert_eq!(h.now.at, killed_at + secs(2));
    assert!(has(&out, &Action::ForceKill("t".into())), "{out:?}");
}

#[test]
fn shutdown_gives_tasks_the_shutdown_grace_less_the_update_budget() {
    let mut h = Harness::subscribed(flags());
    h.launch_running(task("a"));
    h.launch_running(task("b"));
    let from = h.sent.len();
    let out = h.event(event(executor::event::Type::Shutdown));
    assert!(has(&out, &Action::CancelJob("a".into())));
    assert!(has(&out, &Action::CancelJob("b".into())));
    assert_eq!(
        h.states_since(from),
        vec![
            ("a".into(), TaskState::TaskKilling, None),
            ("b".into(), TaskState::TaskKilling, None),
        ]
    );
    // 5 s shutdown grace less the 2 s kept for the terminal updates.
    h.advance(secs(3) - MS);
    assert!(!h.tick().iter().any(|a| matches!(a, Action::ForceKill(_))));
    h.advance(MS);
    let out = h.tick();
    assert!(has(&out, &Action::ForceKill("a".into())));
    assert!(has(&out, &Action::ForceKill("b".into())));
}

#[test]
fn a_job_that_ignores_the_forced_kill_makes_the_executor_leave_and_blames_it() {
    let mut h = Harness::subscribed(flags());
    h.launch_running(task("stuck"));
    h.launch_running(task("other"));
    h.event(kill("stuck", None));
    h.advance(DEFAULT_KILL_GRACE);
    h.tick();
    h.advance(FORCED_KILL_REAP - MS);
    assert!(h.tick().is_empty(), "the forced kill gets its reap time");
    h.advance(MS);
    let from = h.sent.len();
    let out = h.tick();
    assert!(has(&out, &Action::CancelJob("other".into())), "{out:?}");
    h.job(JobReport::Done {
        task_id: "other".into(),
        outcome: Outcome::Succeeded,
    });
    let sent = &h.sent[from..];
    assert_eq!(sent.len(), 1, "nothing for the abandoned task: {sent:?}");
    assert_eq!(sent[0].task_id.value, "other");
    assert_eq!(sent[0].state, TaskState::TaskFailed as i32);
    assert_eq!(status_contract::stopped_for_of(&sent[0]), Some("stuck"));
    let out = h.ack_all();
    assert_eq!(exit_code(&out), Some(1));
}

// -------------------------------------------------------------------------------------------
// Connection

#[test]
fn a_lost_agent_is_resubscribed_at_once_then_within_the_backoff_until_the_recovery_timeout() {
    let mut h = Harness::subscribed(flags());
    h.launch_running(task("t"));
    let lost = h.now.at;
    let out = h.feed(Input::StreamEnded(None));
    assert!(has(&out, &Action::ResetConnections));
    assert_eq!(
        h.core.next_wakeup(h.now),
        Some(lost),
        "first attempt at once"
    );
    let mut attempts = 0;
    loop {
        let out = h.wake();
        assert!(
            matches!(out.as_slice(), [Action::Subscribe(_)]),
            "{out:?} at {:?}",
            h.now.at - lost
        );
        attempts += 1;
        let attempt_at = h.now.at;
        let out = h.feed(Input::SubscribeFailed(retryable()));
        if h.now.at >= lost + RECOVERY {
            // The attempt that fails past the recovery timeout ends the link.
            assert!(has(&out, &Action::CloseConnection), "{out:?}");
            assert!(has(&out, &Action::CancelJob("t".into())), "{out:?}");
            break;
        }
        let next = h.core.next_wakeup(h.now).unwrap();
        assert!(next - attempt_at <= BACKOFF_MAX, "{:?}", next - attempt_at);
    }
    assert!(attempts >= (RECOVERY.as_secs() / BACKOFF_MAX.as_secs()) as usize);
    assert!(h.now.at < lost + RECOVERY + BACKOFF_MAX);
    // Nothing can be reported any more: the executor leaves once its job stopped.
    let out = h.job(JobReport::Done {
        task_id: "t".into(),
        outcome: Outcome::Succeeded,
    });
    assert_eq!(exit_code(&out), Some(1));
}

#[test]
fn a_resubscription_in_time_keeps_the_tasks() {
    let mut h = Harness::subscribed(flags());
    h.launch_running(task("t"));
    h.feed(Input::StreamEnded(None));
    h.wake();
    h.advance(RECOVERY - secs(1));
    h.feed(Input::SubscribeFailed(retryable()));
    h.wake();
    let out = h.feed(Input::Subscribed);
    assert!(has(&out, &Action::ReadEvents));
    assert!(!out.iter().any(|a| matches!(a, Action::CancelJob(_))));
}

#[test]
fn an_error_the_agent_repeats_stops_the_executor_at_once() {
    let mut h = Harness::fresh(config(flags()));
    let out = h.feed(Input::SubscribeFailed(CallError {
        retryable: false,
        message: "401 Unauthorized".into(),
    }));
    assert!(has(&out, &Action::CloseConnection));
    assert_eq!(exit_code(&out), Some(1));
}

#[test]
fn without_checkpointing_a_lost_stream_stops_the_executor() {
    let mut h = Harness::fresh(ExecutorConfig {
        checkpoint: false,
        ..config(flags())
    });
    h.subscribe_ok();
    let out = h.feed(Input::StreamEnded(None));
    assert!(has(&out, &Action::CloseConnection));
    assert_eq!(exit_code(&out), Some(1));
}

// -------------------------------------------------------------------------------------------
// Updates

#[test]
fn unacknowledged_updates_are_replayed_in_creation_order_and_never_posted_twice() {
    let mut h = Harness::subscribed(flags());
    h.launch_running(task("a"));
    h.launch_running(task("b"));
    h.job(JobReport::Done {
        task_id: "a".into(),
        outcome: Outcome::Succeeded,
    });
    let created: Vec<Vec<u8>> = h.sent.iter().map(|s| s.uuid.clone().unwrap()).collect();
    // a: STARTING RUNNING FINISHED, b: STARTING RUNNING, interleaved as created.
    assert_eq!(created.len(), 5);
    // b's RUNNING is acknowledged; the rest are not.
    let b_running = h.sent[3].clone();
    assert_eq!(b_running.task_id.value, "b");
    h.event(acknowledged(&b_running));
    h.feed(Input::StreamEnded(None));
    let posted_before = h.sent.len();
    let out = h.wake();
    let [Action::Subscribe(call)] = out.as_slice() else {
        panic!("{out:?}")
    };
    let subscribe = call.subscribe.as_ref().unwrap();
    let replayed: Vec<Vec<u8>> = subscribe
        .unacknowledged_updates
        .iter()
        .map(|u| u.status.uuid.clone().unwrap())
        .collect();
    let expected: Vec<Vec<u8>> = created
        .iter()
        .filter(|uuid| **uuid != b_running.uuid.clone().unwrap())
        .cloned()
        .collect();
    assert_eq!(
        replayed, expected,
        "creation order, acknowledged one left out"
    );
    // Byte for byte: the same timestamps as first sent.
    assert_eq!(
        subscribe.unacknowledged_updates[0].status, h.sent[0],
        "replayed unchanged"
    );
    let tasks: Vec<&str> = subscribe
        .unacknowledged_tasks
        .iter()
        .map(|t| t.task_id.value.as_str())
        .collect();
    // Only tasks none of whose updates the agent acknowledged: it knows b already.
    assert_eq!(tasks, ["a"]);
    // The resubscription delivered them: none is POSTed again.
    h.feed(Input::Subscribed);
    assert_eq!(h.sent.len(), posted_before);
    // A new update after the resubscription is POSTed.
    h.job(JobReport::Done {
        task_id: "b".into(),
        outcome: Outcome::Succeeded,
    });
    assert_eq!(
        h.states_since(posted_before),
        vec![("b".into(), TaskState::TaskFinished, None)]
    );
}

#[test]
fn one_task_posts_one_update_at_a_time_and_a_503_waits_before_retrying() {
    let mut h = Harness::subscribed(flags());
    h.auto_answer = false;
    h.event(launch(task("t")));
    assert_eq!(h.sent.len(), 1, "STARTING in flight");
    h.job(JobReport::Ready {
        task_id: "t".into(),
        work_dir: PathBuf::from("/w"),
    });
    assert_eq!(h.sent.len(), 1, "RUNNING waits for STARTING's answer");
    let starting = h.sent[0].uuid.clone().unwrap();
    h.feed(Input::UpdateAnswered {
        uuid: starting.clone(),
        result: Err(retryable()),
    });
    assert_eq!(h.sent.len(), 1, "not re-sent at once");
    h.advance(UPDATE_RETRY - MS);
    h.tick();
    assert_eq!(h.sent.len(), 1);
    h.advance(MS);
    h.tick();
    assert_eq!(h.sent.len(), 2);
    assert_eq!(
        h.sent[1].uuid.as_ref(),
        Some(&starting),
        "the same update again"
    );
    h.feed(Input::UpdateAnswered {
        uuid: starting,
        result: Ok(()),
    });
    assert_eq!(
        h.states_since(2),
        vec![("t".into(), TaskState::TaskRunning, None)]
    );
}

// -------------------------------------------------------------------------------------------
// Leaving

#[test]
fn a_stopping_executor_waits_for_acknowledgements_until_the_ack_deadline() {
    let mut h = Harness::subscribed(flags());
    h.launch_running(task("t"));
    let stopped_at = h.now.at;
    h.event(event(executor::event::Type::Shutdown));
    let out = h.job(JobReport::Done {
        task_id: "t".into(),
        outcome: Outcome::Succeeded,
    });
    assert_eq!(exit_code(&out), None, "TASK_KILLED is not acknowledged yet");
    // Task grace (3 s) + forced-kill reap (2 s) + ack timeout (10 s).
    let deadline = stopped_at + secs(3) + FORCED_KILL_REAP + ACK_TIMEOUT;
    assert_eq!(h.core.next_wakeup(h.now), Some(deadline));
    h.advance(deadline - h.now.at - MS);
    assert_eq!(exit_code(&h.tick()), None);
    h.advance(MS);
    assert_eq!(exit_code(&h.tick()), Some(0));
}

#[test]
fn a_stopping_executor_leaves_as_soon_as_everything_is_acknowledged() {
    let mut h = Harness::subscribed(flags());
    h.launch_running(task("t"));
    h.event(event(executor::event::Type::Shutdown));
    h.job(JobReport::Done {
        task_id: "t".into(),
        outcome: Outcome::Succeeded,
    });
    let out = h.ack_all();
    assert_eq!(exit_code(&out), Some(0));
    assert!(h.core.handle(Input::Tick, h.now).is_empty(), "exits once");
}

#[test]
fn the_idle_timeout_counts_from_the_last_acknowledged_task() {
    let mut h = Harness::subscribed(ExecutorFlags {
        idle_timeout: Some(secs(30)),
        ..flags()
    });
    h.advance(secs(20));
    h.launch_running(task("t"));
    h.advance(secs(20));
    assert!(exit_code(&h.tick()).is_none(), "busy");
    h.job(JobReport::Done {
        task_id: "t".into(),
        outcome: Outcome::Succeeded,
    });
    h.advance(secs(5));
    assert!(exit_code(&h.tick()).is_none(), "not acknowledged yet");
    h.ack_all();
    let idle_from = h.now.at;
    assert_eq!(h.core.next_wakeup(h.now), Some(idle_from + secs(30)));
    h.advance(secs(30) - MS);
    assert_eq!(exit_code(&h.tick()), None);
    h.advance(MS);
    assert_eq!(exit_code(&h.tick()), Some(0));
}

#[test]
fn a_setup_error_stops_the_executor_and_labels_who_broke_it() {
    let mut h = Harness::subscribed(flags());
    h.launch_running(task("ok"));
    let from = h.sent.len();
    let mut broken = task("bad");
    broken.data = Some(b"not a payload".to_vec());
    h.event(launch(broken));
    let sent = &h.sent[from..];
    assert_eq!(sent[0].task_id.value, "bad");
    assert_eq!(sent[0].state, TaskState::TaskError as i32);
    assert_eq!(
        status_contract::setup_error_of(&sent[0]),
        Some(status_contract::SetupScope::Item)
    );
    assert!(status_contract::executor_stopping(&sent[0]));
    // A LAUNCH that arrives while stopping is refused, blamed on the broken task.
    h.event(launch(task("late")));
    let late = h.sent.last().unwrap();
    assert_eq!(late.task_id.value, "late");
    assert_eq!(late.state, TaskState::TaskFailed as i32);
    assert_eq!(status_contract::stopped_for_of(late), Some("bad"));
}

// -------------------------------------------------------------------------------------------
// Daemon fires

#[test]
fn a_daemon_fires_on_its_cron_and_never_overlaps() {
    let mut h = Harness::subscribed(flags());
    h.launch_running(task_with(
        "d",
        ExecutionType::Daemon {
            cron: "0/10 * * * * ?".into(),
            misfire: false,
        },
    ));
    // The wall clock starts at 10:00:00, so the first fire is at 10:00:10.
    let fire_at = h.now.at + secs(10);
    assert_eq!(h.core.next_wakeup(h.now), Some(fire_at));
    let from = h.sent.len();
    let out = h.wake();
    assert!(has(&out, &Action::Fire("d".into())), "{out:?}");
    // The fire still runs at the next time: skipped (misfire off).
    let out = h.wake();
    assert!(!has(&out, &Action::Fire("d".into())), "{out:?}");
    h.job(JobReport::FireDone {
        task_id: "d".into(),
        outcome: Outcome::Succeeded,
    });
    let out = h.wake();
    assert!(has(&out, &Action::Fire("d".into())), "{out:?}");
    let begin = Some(status_contract::FIRE_BEGIN.to_owned());
    let complete = Some(status_contract::FIRE_COMPLETE.to_owned());
    assert_eq!(
        h.states_since(from),
        vec![
            ("d".into(), TaskState::TaskRunning, begin.clone()),
            ("d".into(), TaskState::TaskRunning, complete),
            ("d".into(), TaskState::TaskRunning, begin),
        ]
    );
}

#[test]
fn status_timestamps_come_from_the_injected_wall_clock() {
    let mut h = Harness::subscribed(flags());
    h.advance(secs(90));
    h.event(launch(task("t")));
    let expected = (wall_start() + chrono::Duration::seconds(90)).timestamp() as f64;
    assert_eq!(h.sent[0].timestamp, Some(expected));
}
