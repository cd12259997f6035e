//! The scheduler's decision core: every input (Mesos event, subscription change, timer tick,
//! REST request) goes in as a method call with the current time, and the Mesos calls to send come
//! out. No I/O happens here; the owner task (`mod.rs`) persists the state's dirty keys and only
//! then sends the calls, so nothing reaches Mesos that the store does not already hold (a launch
//! is recorded before its ACCEPT, an update's effect before its ACKNOWLEDGE).
//!
//! Launching waits until the scheduler is subscribed and the reconciliation that follows every
//! (re)subscription has an answer for every stored task.

use std::collections::BTreeMap;

use shardex_common::status_contract::work_dir_of;
use shardex_mesos::proto::v1::scheduler::{Call, Event, call, event};
use shardex_mesos::proto::v1::{
    self, AgentId, Filters, FrameworkId, Offer, TaskId, TaskState, TaskStatus, offer,
};
use shardex_mesos::{states, uuid as update_uuid};

use super::config::Config;
use super::ids::{ExecutionKind, ExecutorId};
use super::metrics::{Counters, Gauges};
use super::placement;
use super::producer::{self, FireOutcome, Producer};
use super::reconcile::{Reconciler, Step};
use super::runs::{self, RunId, StateEntry, TaskRun, Trigger};
use super::state::{KillReason, KillRequest, Millis, RunningTask, State};
use super::status::{self, FailoverOutcome, Outcome, Policy};

/// How often an idle executor of an old app revision may be asked to shut down.
const SHUTDOWN_RESEND_MS: Millis = 30_000;
/// How often terminal records are pruned.
const HISTORY_PRUNE_MS: Millis = 60_000;
/// Longest an executor stays blocked as stopping when Mesos never says it is gone (no FAILURE
/// event, no offer from its agent without it).
const STOPPING_EXECUTOR_MAX_MS: Millis = 300_000;
/// How long an executor Mesos reports terminated stays blocked when nothing says it is gone. A
/// terminated executor never comes back, but its agent keeps it (dropping launches into it)
/// until the updates of its tasks are acknowledged; it resends unacknowledged ones after
/// `STATUS_UPDATE_RETRY_INTERVAL_MIN` (10 s) and this scheduler acknowledges them. That is how
/// a scheduler that took over finds it: the FAILURE event went to the one before. After this,
/// a launch starts a fresh executor of the same id (or is dropped, and blocks it again).
const TERMINATED_EXECUTOR_BLOCK_MS: Millis = 15_000;

fn ms(d: shardex_mesos::duration::MesosDuration) -> u64 {
    u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX)
}

/// An agent's HTTP base address from an offer's URL (`http://ip:port`; the hostname when the
/// agent gave no ip).
fn agent_base_url(url: &v1::Url) -> String {
    let host = url
        .address
        .ip
        .as_deref()
        .or(url.address.hostname.as_deref())
        .unwrap_or("localhost");
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!("{}://{host}:{}", url.scheme, url.address.port)
}

fn task_state_is_unknown(state: i32) -> bool {
    state == TaskState::TaskUnknown as i32
}

/// The scheduler's state and the rules that change it.
#[derive(Debug)]
pub struct Engine {
    pub state: State,
    pub(super) config: Config,
    /// Names the config file in each managed entry's source.
    pub(super) config_source: String,
    pub(super) policy: Policy,
    pub(super) producer: Producer,
    reconciler: Reconciler,
    subscribed: bool,
    suppressed: bool,
    pub(super) counters: Counters,
    /// When KILL was last sent and how many times, by task id (in memory: after a restart
    /// kills go out at once). Retries back off from `tasks.kill_retry_interval` to
    /// `tasks.kill_retry_max`.
    kill_sent: BTreeMap<String, (Millis, u32)>,
    /// Executors seen stopping (one of their tasks broke them, or Mesos reported them
    /// terminated), by executor id, with when: nothing is launched into them until Mesos
    /// reports them gone (a FAILURE event, or an offer of their agent not listing them).
    stopping_executors: BTreeMap<String, Millis>,
    /// Tasks Mesos reported that the store does not know, to kill: task id → agent id.
    strays: BTreeMap<String, Option<String>>,
    shutdown_sent: BTreeMap<String, Millis>,
    /// When a still-staging task was last reconciled on its own.
    staging_checked: BTreeMap<String, Millis>,
    /// Which jobs and items the running tasks occupy, refreshed for every task an input
    /// touches (launch, update, expiry): the REVIVE/SUPPRESS decision after each input would
    /// otherwise walk every running task.
    busy: placement::BusyIndex,
    /// Where the next look for a launchable ready job starts ([`placement::has_launchable_work`]).
    launchable_hint: Option<String>,
    last_periodic_reconcile: Millis,
    last_history_prune: Millis,
}

impl Engine {
    pub fn new(state: State, config: Config, now: Millis) -> Engine {
        let policy = Policy {
            max_attempts: config.failover.max_attempts,
            backoff_initial_ms: ms(config.failover.backoff_initial),
            backoff_max_ms: ms(config.failover.backoff_max),
            failover_limit: config.queues.failover_entries as usize,
        };
        let reconciler = Reconciler::new(
            ms(config.tasks.reconcile_retry_initial),
            ms(config.tasks.reconcile_retry_max),
        );
        let mut producer = Producer::default();
        producer.schedule_all(&state, now);
        let config_source = config
            .source
            .clone()
            .unwrap_or_else(|| "(config given in code)".to_owned());
        Engine {
            busy: placement::BusyIndex::of(&state),
            launchable_hint: None,
            state,
            config_source,
            config,
            policy,
            producer,
            reconciler,
            subscribed: false,
            suppressed: false,
            counters: Counters::default(),
            kill_sent: BTreeMap::new(),
            stopping_executors: BTreeMap::new(),
            strays: BTreeMap::new(),
            shutdown_sent: BTreeMap::new(),
            staging_checked: BTreeMap::new(),
            last_periodic_reconcile: now,
            last_history_prune: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn framework_id(&self) -> Option<&str> {
        self.state.framework_id()
    }

    pub fn is_subscribed(&self) -> bool {
        self.subscribed
    }

    /// Whether launching is allowed now.
    pub fn can_launch(&self) -> bool {
        self.subscribed && !self.reconciler.gating()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn gauges(&self) -> Gauges {
        Gauges {
            running_tasks: self.state.running().len() as u64,
            suspect_tasks: self
                .state
                .running()
                .values()
                .filter(|t| t.suspect_since.is_some())
                .count() as u64,
            ready_runs: self.state.ready_total(),
            failover_entries: self.state.failover().len() as u64,
            parked_items: self.state.parked().len() as u64,
            stopping_executors: self.stopping_executors.len() as u64,
            connected: self.subscribed,
            reconciling: self.reconciler.gating(),
        }
    }

    // ----- calls ---------------------------------------------------------------------------

    fn call(&self, kind: call::Type) -> Call {
        Call {
            framework_id: self.state.framework_id().map(|value| FrameworkId {
                value: value.to_owned(),
            }),
            r#type: Some(kind as i32),
            ..Call::default()
        }
    }

    fn filters(seconds: shardex_mesos::duration::MesosDuration) -> Option<Filters> {
        Some(Filters {
            refuse_seconds: Some(seconds.0.as_secs_f64()),
        })
    }

    fn reconcile_call(&self, tasks: &[(String, String)]) -> Call {
        Call {
            reconcile: Some(call::Reconcile {
                tasks: tasks
                    .iter()
                    .map(|(task, agent)| call::reconcile::Task {
                        task_id: TaskId {
                            value: task.clone(),
                        },
                        agent_id: Some(AgentId {
                            value: agent.clone(),
                        }),
                    })
                    .collect(),
            }),
            ..self.call(call::Type::Reconcile)
        }
    }

    fn step_calls(&self, step: Step, calls: &mut Vec<Call>) {
        match step {
            Step::Nothing => {}
            Step::Explicit(tasks) => {
                tracing::info!(tasks = tasks.len(), "explicit reconciliation");
                calls.push(self.reconcile_call(&tasks));
            }
            Step::Implicit => {
                tracing::info!("every stored task answered; implicit reconciliation");
                calls.push(self.reconcile_call(&[]));
            }
        }
    }

    fn kill_call(&self, task_id: &str, agent_id: Option<&str>) -> Call {
        Call {
            kill: Some(call::Kill {
                task_id: TaskId {
                    value: task_id.to_owned(),
                },
                agent_id: agent_id.map(|value| AgentId {
                    value: value.to_owned(),
                }),
                kill_policy: None,
            }),
            ..self.call(call::Type::Kill)
        }
    }

    /// Marks a task to be killed (retried until it ends) and sends the first KILL.
    pub(super) fn request_kill(
        &mut self,
        task_id: &str,
        reason: KillReason,
        now: Millis,
        calls: &mut Vec<Call>,
    ) {
        let Some(task) = self.state.running_mut(task_id) else {
            return;
        };
        if task.kill.is_none() {
            task.kill = Some(KillRequest {
                reason,
                requested_at: now,
            });
        }
        let agent = task.agent_id.clone();
        self.state.note_run_kill(task_id, reason);
        tracing::info!(task_id, ?reason, "killing task");
        if self.subscribed {
            calls.push(self.kill_call(task_id, Some(&agent)));
            self.note_kill_sent(task_id, now);
        }
    }

    /// Records a KILL sent for `task_id`.
    fn note_kill_sent(&mut self, task_id: &str, now: Millis) {
        let sent = self.kill_sent.entry(task_id.to_owned()).or_insert((now, 0));
        *sent = (now, sent.1.saturating_add(1));
    }

    /// Whether the next KILL of `task_id` is due: the interval doubles per retry up to
    /// `tasks.kill_retry_max`.
    fn kill_due(&self, task_id: &str, now: Millis) -> bool {
        let Some((at, count)) = self.kill_sent.get(task_id) else {
            return true;
        };
        let first = ms(self.config.tasks.kill_retry_interval);
        let max = ms(self.config.tasks.kill_retry_max).max(first);
        let shift = count.saturating_sub(1).min(32);
        let interval = first.saturating_mul(1u64 << shift).min(max);
        now - at >= i64::try_from(interval).unwrap_or(i64::MAX)
    }

    /// Marks an executor as stopping: nothing is launched into it until Mesos reports it gone,
    /// or for `for_ms` at most.
    fn block_executor(&mut self, executor_id: &str, why: &str, now: Millis, for_ms: Millis) {
        let until = now.saturating_add(for_ms);
        let previous = self.stopping_executors.get(executor_id).copied();
        self.stopping_executors
            .insert(executor_id.to_owned(), previous.unwrap_or(until).max(until));
        if previous.is_none() {
            tracing::info!(
                executor_id,
                why,
                "executor is stopping; no launches into it until Mesos reports it gone"
            );
        }
    }

    fn unblock_executor(&mut self, executor_id: &str, why: &str) {
        if self.stopping_executors.remove(executor_id).is_some() {
            tracing::info!(
                executor_id,
                why,
                "stopping executor is gone; its agent is usable again"
            );
        }
    }

    // ----- subscription --------------------------------------------------------------------

    /// SUBSCRIBED arrived: the framework id is stored (before anything else is sent), offers
    /// from before are gone, and a gating reconciliation starts.
    pub fn on_subscribed(&mut self, framework_id: &str, now: Millis) -> Vec<Call> {
        if self.state.framework_id() != Some(framework_id) {
            tracing::info!(framework_id, "framework id assigned");
        }
        self.state.set_framework_id(Some(framework_id.to_owned()));
        self.subscribed = true;
        self.suppressed = false;
        self.counters.subscriptions += 1;
        self.kill_sent.clear();
        let mut calls = Vec::new();
        let tasks: Vec<(String, String)> = self
            .state
            .running()
            .values()
            .map(|t| (t.task_id.clone(), t.agent_id.clone()))
            .collect();
        tracing::info!(
            tasks = tasks.len(),
            "subscribed; reconciling every stored task before launching anything"
        );
        let step = self.reconciler.start(tasks, true, now);
        self.step_calls(step, &mut calls);
        self.last_periodic_reconcile = now;
        // Kills still owed go out again on the new subscription.
        let owed: Vec<(String, String)> = self
            .state
            .running()
            .values()
            .filter(|t| t.kill.is_some())
            .map(|t| (t.task_id.clone(), t.agent_id.clone()))
            .collect();
        for (task_id, agent) in owed {
            calls.push(self.kill_call(&task_id, Some(&agent)));
            self.note_kill_sent(&task_id, now);
        }
        self.interest(now, &mut calls);
        calls
    }

    pub fn on_disconnected(&mut self) {
        if self.subscribed {
            tracing::warn!("disconnected from the master; launching stops until resubscribed");
        }
        self.subscribed = false;
        self.reconciler.cancel();
    }

    /// The master removed the framework (its failover timeout passed): Mesos killed every task
    /// of the old framework, so each one ends here as lost, failing over per policy; the next
    /// subscription starts without an id.
    pub fn on_framework_removed(&mut self, now: Millis) -> Vec<Call> {
        tracing::error!(
            old_framework_id = self.state.framework_id().unwrap_or(""),
            "framework has been removed by the master; starting over with a new framework id"
        );
        self.on_disconnected();
        self.state.set_framework_id(None);
        let ids: Vec<String> = self.state.running().keys().cloned().collect();
        let mut calls = Vec::new();
        for task_id in ids {
            let status = TaskStatus {
                task_id: TaskId { value: task_id },
                state: TaskState::TaskLost as i32,
                message: Some("framework removed by the master".into()),
                ..TaskStatus::default()
            };
            calls.extend(self.on_update(status, now));
        }
        // Nothing can be sent without a subscription.
        calls.clear();
        self.strays.clear();
        calls
    }

    // ----- events --------------------------------------------------------------------------

    pub fn on_event(&mut self, event: Event, now: Millis) -> Vec<Call> {
        let kind = event
            .r#type
            .and_then(|t| event::Type::try_from(t).ok())
            .unwrap_or(event::Type::Unknown);
        match kind {
            event::Type::Offers => {
                let offers = event.offers.map(|o| o.offers).unwrap_or_default();
                self.on_offers(offers, now)
            }
            event::Type::Update => match event.update {
                Some(update) => self.on_update(update.status, now),
                None => Vec::new(),
            },
            event::Type::Rescind => {
                // Offers are answered as soon as they arrive; none is ever held.
                Vec::new()
            }
            event::Type::Failure => {
                if let Some(failure) = event.failure {
                    let executor_id = failure.executor_id.map(|e| e.value).unwrap_or_default();
                    tracing::info!(
                        agent_id = failure.agent_id.map(|a| a.value).unwrap_or_default(),
                        executor_id,
                        status = failure.status.unwrap_or_default(),
                        "executor or agent failure reported; its tasks' own updates decide"
                    );
                    // The executor has terminated: a launch with its id starts a new one.
                    self.unblock_executor(&executor_id, "FAILURE event");
                }
                Vec::new()
            }
            event::Type::Message => {
                if let Some(message) = event.message {
                    tracing::info!(
                        executor_id = message.executor_id.value,
                        bytes = message.data.len(),
                        "message from executor"
                    );
                }
                Vec::new()
            }
            event::Type::InverseOffers => {
                let ids: Vec<v1::OfferId> = event
                    .inverse_offers
                    .map(|o| o.inverse_offers.into_iter().map(|i| i.id).collect())
                    .unwrap_or_default();
                if ids.is_empty() || !self.subscribed {
                    return Vec::new();
                }
                vec![Call {
                    decline_inverse_offers: Some(call::DeclineInverseOffers {
                        inverse_offer_ids: ids,
                        filters: None,
                    }),
                    ..self.call(call::Type::DeclineInverseOffers)
                }]
            }
            // SUBSCRIBED, ERROR and HEARTBEAT belong to the driver.
            _ => Vec::new(),
        }
    }

    fn on_offers(&mut self, offers: Vec<Offer>, now: Millis) -> Vec<Call> {
        self.counters.offers_received += offers.len() as u64;
        // An offer lists the framework's executors running on its agent: a stopping executor
        // it no longer lists has terminated.
        let gone: Vec<String> = self
            .stopping_executors
            .keys()
            .filter(|id| {
                ExecutorId::parse(id).is_ok_and(|parsed| {
                    offers.iter().any(|o| {
                        o.agent_id.value == parsed.agent_id
                            && !o.executor_ids.iter().any(|e| &e.value == *id)
                    })
                })
            })
            .cloned()
            .collect();
        for id in gone {
            self.unblock_executor(&id, "an offer of its agent no longer lists it");
        }
        let mut calls = self.retire_executors(&offers, now);
        if !self.subscribed || offers.is_empty() {
            return calls;
        }
        let Some(framework_id) = self.state.framework_id().map(str::to_owned) else {
            return calls;
        };
        let plan = if self.can_launch() {
            let blocked = self.stopping_executors.keys().cloned().collect();
            let ctx = placement::Context {
                executor: &self.config.executor,
                framework_id: &framework_id,
                now,
                blocked_executors: &blocked,
            };
            placement::plan(&self.state, &offers, &ctx)
        } else {
            placement::Plan::default()
        };
        for (job, parked) in &plan.partial_runs {
            self.counters.runs_partial += 1;
            tracing::warn!(
                %job,
                ?parked,
                "run launched without its parked items (partial run); release them with \
                 POST /api/tasks/parked/{{job}}/{{item}}/release or by updating the job"
            );
        }
        for error in &plan.errors {
            tracing::error!(error = %error, "cannot build a task; skipped");
        }
        for (job, item) in &plan.failover_used {
            self.state.remove_failover(job, *item);
        }
        // A job launches at most one run per plan: its ready tasks are that run's.
        let mut run_of_job: BTreeMap<String, RunId> = BTreeMap::new();
        for job in &plan.ready_used {
            run_of_job.insert(job.clone(), self.state.take_ready_run(job, now));
        }
        // Each offer's tasks, by offer index.
        let mut per_offer: Vec<Vec<v1::TaskInfo>> = {
            let mut counts = vec![0usize; offers.len()];
            for task in &plan.tasks {
                if let Some(count) = counts.get_mut(task.offer_index) {
                    *count += 1;
                }
            }
            counts.into_iter().map(Vec::with_capacity).collect()
        };
        self.busy.reserve(plan.tasks.len());
        self.state.reserve_launches(plan.tasks.len());
        for task in plan.tasks {
            let run = match (&task.record.kind, &task.record.original_task_id) {
                (ExecutionKind::Failover, Some(original)) => {
                    Some(self.state.failover_run(&task.record.job, original, now))
                }
                _ => run_of_job.get(&task.record.job).copied(),
            };
            if let Some(run) = run {
                let agent_url = offers
                    .get(task.offer_index)
                    .and_then(|offer| offer.url.as_ref())
                    .map(agent_base_url);
                self.state.add_run_task(
                    run,
                    task.record.item,
                    TaskRun {
                        task_id: task.record.task_id.clone(),
                        kind: task.record.kind,
                        attempt: task.record.attempt,
                        agent_id: task.record.agent_id.clone(),
                        executor_id: task.record.executor_id.clone(),
                        agent_url,
                        work_dir: None,
                        launched_at: now,
                        ended_at: None,
                        kill: None,
                        states: vec![StateEntry {
                            state: TaskState::TaskStaging,
                            at: now,
                            source: None,
                            reason: None,
                            message: None,
                        }],
                    },
                );
            }
            match task.record.kind {
                ExecutionKind::Ready => self.counters.tasks_launched_ready += 1,
                ExecutionKind::Failover => self.counters.tasks_launched_failover += 1,
            }
            tracing::info!(
                task_id = %task.record.task_id,
                job = %task.record.job,
                item = task.record.item,
                kind = task.record.kind.as_str(),
                attempt = task.record.attempt,
                original_task_id = task.record.original_task_id.as_deref().unwrap_or(""),
                executor_id = %task.record.executor_id,
                "launching task"
            );
            let task_id = task.record.task_id.clone();
            self.state.put_running(task.record);
            self.busy.refresh(&self.state, &task_id);
            if let Some(tasks) = per_offer.get_mut(task.offer_index) {
                tasks.push(task.info);
            }
        }
        let busy = !plan.unplaced.is_empty()
            || placement::has_launchable_work(
                &self.state,
                &self.busy,
                now,
                &mut self.launchable_hint,
            )
            || !self.can_launch();
        let mut declined = Vec::new();
        for (offer, task_infos) in offers.into_iter().zip(per_offer) {
            if task_infos.is_empty() {
                declined.push(offer.id);
            } else {
                self.counters.offers_used += 1;
                calls.push(Call {
                    accept: Some(call::Accept {
                        offer_ids: vec![offer.id],
                        operations: vec![offer::Operation {
                            r#type: Some(offer::operation::Type::Launch as i32),
                            launch: Some(offer::operation::Launch { task_infos }),
                            ..offer::Operation::default()
                        }],
                        filters: Self::filters(self.config.offers.refuse_busy),
                    }),
                    ..self.call(call::Type::Accept)
                });
            }
        }
        if !declined.is_empty() {
            self.counters.offers_declined += declined.len() as u64;
            let refuse = if busy {
                self.config.offers.refuse_busy
            } else {
                self.config.offers.refuse_idle
            };
            tracing::debug!(offers = declined.len(), %refuse, "declining unused offers");
            calls.push(Call {
                decline: Some(call::Decline {
                    offer_ids: declined,
                    filters: Self::filters(refuse),
                }),
                ..self.call(call::Type::Decline)
            });
        }
        for unplaced in &plan.unplaced {
            tracing::debug!(work = %unplaced, "waiting for bigger offers");
        }
        self.interest(now, &mut calls);
        calls
    }

    /// Whether `executor_id` belongs to no current app revision (the app changed, was disabled
    /// or deregistered) and runs none of our tasks.
    fn retirable(&self, executor_id: &str) -> bool {
        let Ok(id) = ExecutorId::parse(executor_id) else {
            return false;
        };
        let current = self
            .state
            .registry()
            .apps
            .get(&id.app)
            .is_some_and(|a| a.revision == id.revision && !a.config.disabled);
        !current
            && !self
                .state
                .running()
                .values()
                .any(|t| t.executor_id == executor_id)
    }

    fn shutdown_call(&mut self, agent_id: &str, executor_id: &str, now: Millis) -> Option<Call> {
        let key = format!("{agent_id}/{executor_id}");
        if self
            .shutdown_sent
            .get(&key)
            .is_some_and(|at| now - at < SHUTDOWN_RESEND_MS)
        {
            return None;
        }
        tracing::info!(
            executor_id,
            agent_id,
            "shutting down an idle executor of an old or removed app configuration"
        );
        self.shutdown_sent.insert(key, now);
        Some(Call {
            shutdown: Some(call::Shutdown {
                executor_id: v1::ExecutorId {
                    value: executor_id.to_owned(),
                },
                agent_id: AgentId {
                    value: agent_id.to_owned(),
                },
            }),
            ..self.call(call::Type::Shutdown)
        })
    }

    /// Shuts down idle executors that belong to no current app revision (an app changed,
    /// was disabled or deregistered).
    fn retire_executors(&mut self, offers: &[Offer], now: Millis) -> Vec<Call> {
        let mut calls = Vec::new();
        if !self.subscribed {
            return calls;
        }
        for offer in offers {
            for executor in &offer.executor_ids {
                if self.retirable(&executor.value)
                    && let Some(call) =
                        self.shutdown_call(&offer.agent_id.value, &executor.value, now)
                {
                    calls.push(call);
                }
            }
        }
        calls
    }

    /// Records an applied update in its task's run, and settles the run when it ended.
    fn note_run_update(&mut self, status: &TaskStatus, outcome: &Outcome, now: Millis) {
        if matches!(
            outcome,
            Outcome::Duplicate
                | Outcome::AlreadyTerminal { .. }
                | Outcome::Unknown { .. }
                | Outcome::UnknownState
        ) {
            return;
        }
        let task_id = status.task_id.value.as_str();
        let Some(run) = self.state.run_of_task(task_id) else {
            return;
        };
        let state = match outcome {
            // Mesos answered it unknown while being killed: it is over for the run too.
            Outcome::Vanished => status::VANISHED,
            _ => TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown),
        };
        let mut entry = runs::state_entry(status, state, now);
        if matches!(outcome, Outcome::Vanished) {
            entry.message =
                Some("unknown to Mesos while being killed: it left the running set".to_owned());
        }
        let ended = runs::is_terminal(state) || matches!(outcome, Outcome::Vanished);
        self.state
            .note_run_state(task_id, entry, work_dir_of(status), ended);
        if ended {
            self.state.settle_run(run, now);
        }
    }

    /// Applies one status update and acknowledges it (the owner persists before sending).
    pub fn on_update(&mut self, status: TaskStatus, now: Millis) -> Vec<Call> {
        self.counters.updates_received += 1;
        let task_id = status.task_id.value.clone();
        let state_name = states::name(status.state);
        let known = self.state.running().get(&task_id).cloned();
        self.note_executor_state(&status, known.as_ref(), now);
        let outcome = status::apply_update(&mut self.state, &self.policy, &status, now);
        self.busy.refresh(&self.state, &task_id);
        self.note_run_update(&status, &outcome, now);
        let mut calls = Vec::new();
        let step = self.reconciler.answered(&task_id);
        self.step_calls(step, &mut calls);
        let message = status.message.as_deref().unwrap_or("");
        let (job, item) = known
            .as_ref()
            .map(|t| (t.job.clone(), t.item))
            .unwrap_or_default();
        match &outcome {
            Outcome::Duplicate | Outcome::AlreadyTerminal { .. } => {
                self.counters.updates_duplicate += 1;
                tracing::debug!(%task_id, state = %state_name, ?outcome, "ignoring stale or duplicate update");
            }
            Outcome::UnknownState => {
                tracing::warn!(%task_id, state = status.state, "update with an unknown state ignored");
            }
            Outcome::Unknown { terminal: false } => {
                let agent = status.agent_id.as_ref().map(|a| a.value.clone());
                if task_state_is_unknown(status.state) {
                    // Mesos knows no such task either: nothing to kill.
                    self.strays.remove(&task_id);
                    self.kill_sent.remove(&task_id);
                    tracing::debug!(%task_id, "stray task unknown to Mesos too; forgotten");
                } else {
                    tracing::warn!(%task_id, state = %state_name, "task unknown to the store is running; killing it");
                    if self.subscribed {
                        calls.push(self.kill_call(&task_id, agent.as_deref()));
                        self.note_kill_sent(&task_id, now);
                    }
                    self.strays.insert(task_id.clone(), agent);
                }
            }
            Outcome::Vanished => {
                self.kill_sent.remove(&task_id);
                tracing::warn!(
                    %task_id, %job, item, message,
                    "task being killed is unknown to Mesos; it leaves the running set (killed as a stray should it surface)"
                );
            }
            Outcome::SetupError { scope, parked } => {
                self.counters.tasks_failed += 1;
                self.counters.setup_errors += 1;
                self.counters.items_parked += u64::from(*parked);
                self.kill_sent.remove(&task_id);
                tracing::error!(
                    %task_id, %job, item, scope = scope.as_str(), parked, message,
                    "SETUP ERROR: parked ({} scope) until the job or its app is updated; not retried",
                    scope.as_str()
                );
            }
            Outcome::Unknown { terminal: true } => {
                self.strays.remove(&task_id);
                self.kill_sent.remove(&task_id);
                tracing::info!(%task_id, state = %state_name, "update for a task unknown to the store ended it");
            }
            Outcome::Progress { resolved_suspect } => {
                if *resolved_suspect {
                    tracing::info!(%task_id, state = %state_name, "suspect task is back");
                } else {
                    tracing::debug!(%task_id, state = %state_name, message, "task progress");
                }
                let orphaned = !self.state.registry().jobs.contains_key(&job)
                    && known.as_ref().is_some_and(|t| t.kill.is_none());
                if orphaned {
                    self.request_kill(&task_id, KillReason::Deregistered, now, &mut calls);
                }
            }
            // Loud once when a task becomes suspect; reconciliation repeats the answer every
            // round while the partition lasts.
            Outcome::Suspect { since } if *since == now => {
                tracing::warn!(
                    %task_id, state = %state_name, message,
                    "task unreachable or unknown; its item stays blocked as suspect"
                );
            }
            Outcome::Suspect { since } => {
                tracing::debug!(%task_id, state = %state_name, suspect_since = since, "still suspect");
            }
            Outcome::Finished => {
                self.counters.tasks_finished += 1;
                self.kill_sent.remove(&task_id);
                tracing::info!(%task_id, %job, item, "task finished");
            }
            Outcome::EndedByScheduler { state } => {
                self.counters.tasks_killed += 1;
                self.kill_sent.remove(&task_id);
                tracing::info!(%task_id, %job, item, state = state.as_str_name(), "task ended after the scheduler's kill; no failover");
            }
            Outcome::KilledOutside { failover } => {
                self.counters.tasks_killed += 1;
                self.kill_sent.remove(&task_id);
                tracing::warn!(%task_id, %job, item, message, "task killed outside Shardex");
                self.note_failover(&task_id, &job, item, failover, false);
            }
            Outcome::Failed {
                failover,
                job_failure,
            } => {
                self.counters.tasks_failed += 1;
                self.kill_sent.remove(&task_id);
                let timed_out = known
                    .as_ref()
                    .and_then(|t| t.kill.as_ref())
                    .is_some_and(|k| k.reason == KillReason::Timeout);
                if timed_out {
                    tracing::warn!(%task_id, %job, item, "task failed: timed out");
                } else {
                    tracing::warn!(%task_id, %job, item, state = %state_name, message, job_failure, "task failed");
                }
                self.note_failover(&task_id, &job, item, failover, *job_failure);
            }
        }
        // The last task of an executor of an old app revision ended: retire it now rather than
        // when an offer shows it (a suppressed scheduler sees no offers).
        if let Some(task) = &known
            && !self.state.running().contains_key(&task_id)
            && self.subscribed
            && self.retirable(&task.executor_id)
            && let Some(call) = self.shutdown_call(&task.agent_id, &task.executor_id, now)
        {
            calls.push(call);
        }
        if let Some(uuid) = status.uuid.as_ref() {
            // Agents always fill agent_id; else our task id names the agent it was launched on.
            let agent = status
                .agent_id
                .clone()
                .or_else(|| {
                    known.as_ref().map(|t| AgentId {
                        value: t.agent_id.clone(),
                    })
                })
                .or_else(|| {
                    super::ids::TaskId::parse(&task_id)
                        .ok()
                        .map(|id| AgentId { value: id.agent_id })
                });
            match agent {
                Some(agent_id) if self.subscribed && update_uuid::is_valid_update_uuid(uuid) => {
                    calls.push(Call {
                        acknowledge: Some(call::Acknowledge {
                            agent_id,
                            task_id: status.task_id.clone(),
                            uuid: uuid.clone(),
                        }),
                        ..self.call(call::Type::Acknowledge)
                    });
                }
                _ => tracing::warn!(%task_id, "update carries a uuid but cannot be acknowledged"),
            }
        }
        self.interest(now, &mut calls);
        calls
    }

    /// Notes from an update whether its executor is stopping: the executor said so (it stops
    /// because of this task or of another), or Mesos reports it terminated (a relaunch into it
    /// before it is gone ends `TASK_DROPPED`).
    fn note_executor_state(
        &mut self,
        status: &TaskStatus,
        known: Option<&RunningTask>,
        now: Millis,
    ) {
        let Ok(state) = TaskState::try_from(status.state) else {
            return;
        };
        if !states::is_terminal(state) {
            return;
        }
        let Some(executor_id) = status
            .executor_id
            .as_ref()
            .map(|e| e.value.clone())
            .or_else(|| known.map(|t| t.executor_id.clone()))
        else {
            return;
        };
        let terminated = status.reason == Some(v1::task_status::Reason::ExecutorTerminated as i32);
        if shardex_common::status_contract::executor_stopping(status) {
            self.block_executor(
                &executor_id,
                "it is stopping itself",
                now,
                STOPPING_EXECUTOR_MAX_MS,
            );
        } else if terminated {
            self.block_executor(
                &executor_id,
                "Mesos reports it terminated",
                now,
                TERMINATED_EXECUTOR_BLOCK_MS,
            );
        }
    }

    fn note_failover(
        &mut self,
        task_id: &str,
        job: &str,
        item: u32,
        outcome: &FailoverOutcome,
        retry: bool,
    ) {
        match outcome {
            FailoverOutcome::Recorded { attempts, delay_ms } => {
                self.counters.tasks_failed_over += 1;
                if retry {
                    self.counters.tasks_retried += 1;
                }
                tracing::info!(
                    task_id,
                    job,
                    item,
                    attempts,
                    delay_ms,
                    "item queued for failover"
                );
            }
            FailoverOutcome::Parked { attempts } => {
                self.counters.items_parked += 1;
                tracing::error!(
                    task_id,
                    job,
                    item,
                    attempts,
                    "ITEM PARKED: it failed {attempts} times in a row; no more failover until the job is updated or re-enabled"
                );
            }
            FailoverOutcome::RetriesExhausted { retries } => {
                tracing::warn!(
                    task_id,
                    job,
                    item,
                    retries,
                    "the item's run failed after {retries} retries; the next run starts afresh"
                );
            }
            FailoverOutcome::QueueFull => {
                self.counters.failovers_dropped += 1;
                tracing::error!(
                    task_id,
                    job,
                    item,
                    limit = self.policy.failover_limit,
                    "FAILOVER QUEUE FULL: the item is NOT queued for failover (queues.failover_entries)"
                );
            }
            other => tracing::info!(task_id, job, item, outcome = ?other, "no failover"),
        }
    }

    // ----- timers --------------------------------------------------------------------------

    /// Cron fires, suspect deadlines, kill and reconciliation retries, periodic reconciliation,
    /// history pruning, and offer interest.
    pub fn on_tick(&mut self, now: Millis) -> Vec<Call> {
        let mut calls = Vec::new();
        for job in self.producer.due(now) {
            let Some(config) = self.state.registry().jobs.get(&job) else {
                continue;
            };
            if config.is_daemon() || !self.state.registry().job_enabled(&job) {
                continue;
            }
            let misfire = config.misfire;
            let limit = self.config.queues.ready_runs_per_job;
            match producer::enqueue_fire(&mut self.state, &job, misfire, limit, now) {
                FireOutcome::Queued { pending } => tracing::info!(%job, pending, "cron fired"),
                FireOutcome::Coalesced => {
                    tracing::debug!(%job, "cron fired; a run is already pending (misfire off)")
                }
                FireOutcome::Full { limit } => {
                    self.counters.ready_fires_dropped += 1;
                    tracing::warn!(%job, limit, "cron fire dropped: the job's ready queue is full");
                }
            }
        }

        let suspect_timeout = ms(self.config.tasks.suspect_timeout);
        for (task, outcome) in
            status::expire_suspects(&mut self.state, &self.policy, suspect_timeout, now)
        {
            self.busy.refresh(&self.state, &task.task_id);
            self.counters.tasks_failed += 1;
            tracing::error!(
                task_id = %task.task_id, job = %task.job, item = task.item,
                "suspect task passed its deadline: treating it as lost (killing it, failing it over)"
            );
            self.note_failover(&task.task_id, &task.job, task.item, &outcome, false);
            self.kill_sent.remove(&task.task_id);
            self.request_kill(&task.task_id, KillReason::SuspectTimeout, now, &mut calls);
        }

        // Transient tasks running past their job's timeout are killed; the run fails.
        let overdue: Vec<String> = self
            .state
            .running()
            .values()
            .filter(|t| t.kill.is_none() && !t.abandoned)
            .filter(|t| {
                let timeout = self
                    .state
                    .registry()
                    .jobs
                    .get(&t.job)
                    .and_then(|j| j.timeout)
                    .map(|d| i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX));
                matches!((t.started_at, timeout), (Some(start), Some(limit)) if now.saturating_sub(start) >= limit)
            })
            .map(|t| t.task_id.clone())
            .collect();
        for task_id in overdue {
            self.counters.tasks_timed_out += 1;
            tracing::warn!(%task_id, "task ran past its job's timeout; killing it");
            self.request_kill(&task_id, KillReason::Timeout, now, &mut calls);
        }

        // Runs of jobs whose items are all parked have nothing to launch (and with nothing
        // parked there is no such job: a job has at least one item).
        let hopeless: Vec<String> = if self.state.parked().is_empty() {
            Vec::new()
        } else {
            self.state
                .ready()
                .keys()
                .filter(|job| placement::all_items_parked(&self.state, job))
                .cloned()
                .collect()
        };
        for job in hopeless {
            let runs = self.state.ready_count(&job);
            self.counters.runs_skipped += u64::from(runs);
            tracing::warn!(%job, runs, "runs skipped: every item of the job is parked");
            self.state.set_ready(&job, 0, Trigger::Cron, now);
        }

        // Executors that never were reported gone are not blocked for ever.
        self.stopping_executors.retain(|_, until| now < *until);

        if self.subscribed {
            let due: Vec<(String, String)> = self
                .state
                .running()
                .values()
                .filter(|t| t.kill.is_some())
                .filter(|t| self.kill_due(&t.task_id, now))
                .map(|t| (t.task_id.clone(), t.agent_id.clone()))
                .collect();
            for (task_id, agent) in due {
                tracing::info!(%task_id, "re-sending KILL: no terminal update yet");
                calls.push(self.kill_call(&task_id, Some(&agent)));
                self.note_kill_sent(&task_id, now);
            }
            let strays: Vec<(String, Option<String>)> = self
                .strays
                .iter()
                .filter(|(t, _)| self.kill_due(t, now))
                .map(|(t, a)| (t.clone(), a.clone()))
                .collect();
            for (task_id, agent) in strays {
                calls.push(self.kill_call(&task_id, agent.as_deref()));
                self.note_kill_sent(&task_id, now);
            }

            let step = self.reconciler.tick(now);
            self.step_calls(step, &mut calls);

            // Launches nobody has heard of since: ask the master (an ACCEPT may have been lost).
            let check =
                i64::try_from(ms(self.config.tasks.launch_check_interval)).unwrap_or(i64::MAX);
            self.staging_checked.retain(|task_id, _| {
                self.state
                    .running()
                    .get(task_id)
                    .is_some_and(|t| t.state == TaskState::TaskStaging)
            });
            let stale: Vec<(String, String)> = self
                .state
                .running()
                .values()
                .filter(|t| t.state == TaskState::TaskStaging && now - t.launched_at >= check)
                .filter(|t| {
                    self.staging_checked
                        .get(&t.task_id)
                        .is_none_or(|at| now - at >= check)
                })
                .map(|t| (t.task_id.clone(), t.agent_id.clone()))
                .collect();
            if !stale.is_empty() {
                for (task_id, _) in &stale {
                    tracing::info!(%task_id, "no update since launch; reconciling it");
                    self.staging_checked.insert(task_id.clone(), now);
                }
                calls.push(self.reconcile_call(&stale));
            }
            let interval =
                i64::try_from(ms(self.config.tasks.reconcile_interval)).unwrap_or(i64::MAX);
            if self.reconciler.pending() == 0 && now - self.last_periodic_reconcile >= interval {
                self.last_periodic_reconcile = now;
                let tasks: Vec<(String, String)> = self
                    .state
                    .running()
                    .values()
                    .map(|t| (t.task_id.clone(), t.agent_id.clone()))
                    .collect();
                tracing::info!(tasks = tasks.len(), "periodic reconciliation");
                let step = self.reconciler.start(tasks, false, now);
                self.step_calls(step, &mut calls);
            }
        }

        // Every minute, or at once when a burst took the history a tenth past its bound.
        let max = self.config.tasks.history_max_entries as usize;
        if now - self.last_history_prune >= HISTORY_PRUNE_MS
            || self.state.history().len() > max + max / 10
        {
            self.last_history_prune = now;
            let retention =
                i64::try_from(ms(self.config.tasks.history_retention)).unwrap_or(i64::MAX);
            self.state.prune_history(now.saturating_sub(retention), max);
        }

        // Runs whose last item ended outside an update (its failover dropped, its item
        // parked), then the history's bounds.
        self.state.settle_runs(now);
        let max_age = i64::try_from(ms(self.config.history.max_age)).unwrap_or(i64::MAX);
        self.state.prune_runs(
            now.saturating_sub(max_age),
            self.config.history.max_runs as usize,
        );

        if cfg!(debug_assertions) {
            self.check_busy_index();
        }
        self.interest(now, &mut calls);
        calls
    }

    /// Panics when the busy index drifted from the running tasks it is kept from.
    fn check_busy_index(&self) {
        assert_eq!(
            self.busy,
            placement::BusyIndex::of(&self.state),
            "the busy index drifted from the running tasks"
        );
    }

    /// SUPPRESS when nothing could launch, REVIVE when something can.
    pub(super) fn interest(&mut self, now: Millis, calls: &mut Vec<Call>) {
        if !self.subscribed {
            return;
        }
        // Rebuilding the index walks every running task: per update only in unit tests
        // (small states); debug builds of the scheduler check it once per tick instead, or a
        // queue of thousands drains quadratically (the load suite's 2,000 items took 300 s).
        #[cfg(test)]
        self.check_busy_index();
        let wants = self.can_launch()
            && placement::has_launchable_work(
                &self.state,
                &self.busy,
                now,
                &mut self.launchable_hint,
            );
        if wants && self.suppressed {
            tracing::debug!("work is waiting: REVIVE");
            self.suppressed = false;
            calls.push(Call {
                revive: Some(call::Revive { roles: Vec::new() }),
                ..self.call(call::Type::Revive)
            });
        } else if !wants && !self.suppressed {
            tracing::debug!("nothing to launch: SUPPRESS");
            self.suppressed = true;
            calls.push(Call {
                suppress: Some(call::Suppress { roles: Vec::new() }),
                ..self.call(call::Type::Suppress)
            });
        }
    }

    /// Kills every task of `job` that is not being killed yet.
    pub(super) fn kill_job_tasks(
        &mut self,
        job: &str,
        reason: KillReason,
        now: Millis,
        calls: &mut Vec<Call>,
    ) {
        let ids: Vec<String> = self
            .state
            .running()
            .values()
            .filter(|t| t.job == job && t.kill.is_none())
            .map(|t| t.task_id.clone())
            .collect();
        for task_id in ids {
            self.request_kill(&task_id, reason, now, calls);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests_support::{app, app_record, job, running_task};
    use crate::state::KillReason;
    use shardex_mesos::proto::v1::{self, OfferId, Resource, value};

    use crate::state::RunningTask;

    fn kinds(calls: &[Call]) -> Vec<call::Type> {
        calls
            .iter()
            .filter_map(|c| c.r#type.and_then(|t| call::Type::try_from(t).ok()))
            .collect()
    }

    fn offer(id: &str) -> Offer {
        let scalar = |name: &str, amount: f64| Resource {
            name: name.into(),
            r#type: v1::value::Type::Scalar as i32,
            scalar: Some(value::Scalar { value: amount }),
            ..Resource::default()
        };
        Offer {
            id: OfferId { value: id.into() },
            agent_id: AgentId { value: "S0".into() },
            resources: vec![scalar("cpus", 4.0), scalar("mem", 4096.0)],
            ..Offer::default()
        }
    }

    fn offers_event(id: &str) -> Event {
        Event {
            r#type: Some(event::Type::Offers as i32),
            offers: Some(event::Offers {
                offers: vec![offer(id)],
            }),
            ..Event::default()
        }
    }

    /// Job `old` has a stored running task; job `new` has a pending run.
    fn engine() -> Engine {
        let mut state = State::default();
        state
            .registry_mut()
            .apps
            .insert("app", app_record("app", 1));
        for name in ["old", "new"] {
            let mut j = job(name, "app");
            j.cron = Some("0 0 0 1 1 ? 2099".into());
            state.registry_mut().jobs.insert(name, j);
        }
        state.put_running(RunningTask {
            state: TaskState::TaskRunning,
            ..running_task("old@-@0@-@READY@-@S0@-@u", "old", 0)
        });
        state.set_ready("new", 1, Trigger::Rest, 0);
        Engine::new(state, Config::default(), 0)
    }

    #[test]
    fn nothing_launches_until_every_stored_task_is_answered() {
        let mut e = engine();
        let calls = e.on_subscribed("fw", 1000);
        assert_eq!(
            kinds(&calls),
            vec![call::Type::Reconcile, call::Type::Suppress]
        );
        assert!(!e.can_launch());
        let calls = e.on_event(offers_event("o1"), 1001);
        assert_eq!(kinds(&calls), vec![call::Type::Decline]);
        let answer = TaskStatus {
            task_id: TaskId {
                value: "old@-@0@-@READY@-@S0@-@u".into(),
            },
            state: TaskState::TaskRunning as i32,
            ..TaskStatus::default()
        };
        let calls = e.on_update(answer, 1002);
        // No uuid: no ACKNOWLEDGE; the implicit round follows, then offers are wanted.
        assert_eq!(
            kinds(&calls),
            vec![call::Type::Reconcile, call::Type::Revive]
        );
        assert!(calls[0].reconcile.as_ref().unwrap().tasks.is_empty());
        let calls = e.on_event(offers_event("o2"), 1003);
        assert_eq!(
            kinds(&calls),
            vec![call::Type::Accept, call::Type::Suppress]
        );
        assert_eq!(
            e.state.running().len(),
            4,
            "the launch is in the state before ACCEPT leaves"
        );
        for task in launched_tasks(&calls) {
            assert!(
                e.state.running().changed().contains(&task.task_id.value),
                "and recorded for the commit that precedes it"
            );
        }
    }

    #[test]
    fn updates_with_a_uuid_are_acknowledged_with_their_agent_and_task() {
        let mut e = engine();
        e.on_subscribed("fw", 0);
        let mut uuid = vec![7u8; 16];
        uuid[6] = 0x47;
        let status = TaskStatus {
            task_id: TaskId {
                value: "old@-@0@-@READY@-@S0@-@u".into(),
            },
            state: TaskState::TaskFinished as i32,
            uuid: Some(uuid.clone()),
            ..TaskStatus::default()
        };
        let calls = e.on_update(status.clone(), 1);
        let ack = calls
            .iter()
            .find_map(|c| c.acknowledge.clone())
            .expect("acknowledged");
        assert_eq!(ack.uuid, uuid);
        assert_eq!(
            ack.agent_id.value, "S0",
            "taken from the stored task when missing"
        );
        assert_eq!(ack.task_id.value, "old@-@0@-@READY@-@S0@-@u");
        // A duplicate is acknowledged again and changes nothing.
        let calls = e.on_update(status, 2);
        assert_eq!(calls.iter().filter(|c| c.acknowledge.is_some()).count(), 1);
        assert_eq!(e.counters().tasks_finished, 1);
        assert_eq!(e.counters().updates_duplicate, 1);
    }

    #[test]
    fn disconnected_engines_send_nothing_and_launch_nothing() {
        let mut e = engine();
        assert!(e.on_tick(10).is_empty());
        assert!(e.on_event(offers_event("o1"), 11).is_empty());
        assert_eq!(e.state.running().len(), 1);
    }

    #[test]
    fn new_executor_defaults_give_the_apps_using_them_new_executors() {
        use crate::placement;
        let mut config = Config::default();
        config.executor.uri = Some("http://repo/shardex-executor-1.0.tar.gz".into());
        let mut own = app("own");
        own.executor_uri = Some("http://repo/pinned.tar.gz".into());
        let mut uses_default = app("default");
        uses_default.executor_uri = None;
        config.apps = vec![own, uses_default];
        let mut e = Engine::new(State::default(), config.clone(), 0);
        e.apply_config_registrations(0).unwrap();
        let revision = |e: &Engine, app: &str| e.state.registry().apps[app].revision;
        assert_eq!((revision(&e, "own"), revision(&e, "default")), (1, 1));

        // Restarted with the same configuration: nothing changes.
        let mut e = Engine::new(e.state.clone(), config.clone(), 0);
        e.apply_config_registrations(0).unwrap();
        assert_eq!((revision(&e, "own"), revision(&e, "default")), (1, 1));

        // Restarted with a new executor URI: only the app that uses the default moves, and its
        // ExecutorInfo (which Mesos compares per executor id) gets a new id.
        config.executor.uri = Some("http://repo/shardex-executor-1.1.tar.gz".into());
        let mut e = Engine::new(e.state.clone(), config.clone(), 0);
        e.apply_config_registrations(0).unwrap();
        assert_eq!((revision(&e, "own"), revision(&e, "default")), (1, 2));
        let info = placement::executor_info(
            &e.state.registry().apps["default"],
            &config.executor,
            "S0",
            "fw",
        );
        assert_eq!(info.executor_id.value, "default@-@S0@-@r2");
        let uri = &info.command.as_ref().unwrap().uris[0].value;
        assert_eq!(uri, "http://repo/shardex-executor-1.1.tar.gz");
    }

    fn offers_with(id: &str, executors: &[&str]) -> Event {
        let mut event = offers_event(id);
        if let Some(offers) = event.offers.as_mut() {
            offers.offers[0].executor_ids = executors
                .iter()
                .map(|e| v1::ExecutorId { value: (*e).into() })
                .collect();
        }
        event
    }

    fn launched_tasks(calls: &[Call]) -> Vec<v1::TaskInfo> {
        calls
            .iter()
            .filter_map(|c| c.accept.as_ref())
            .flat_map(|a| a.operations.iter())
            .filter_map(|o| o.launch.as_ref())
            .flat_map(|l| l.task_infos.clone())
            .collect()
    }

    fn trigger(e: &mut Engine, now: Millis) {
        let (_, result) = e.on_api(super::super::api::ApiRequest::TriggerJob("j".into()), now);
        assert!(result.is_ok(), "{result:?}");
    }

    /// Subscribed, reconciled, nothing running; job `j` (3 items, failover on) in app `app`.
    fn idle_engine() -> Engine {
        let mut state = State::default();
        state
            .registry_mut()
            .apps
            .insert("app", app_record("app", 1));
        let mut j = job("j", "app");
        j.cron = None;
        state.registry_mut().jobs.insert("j", j);
        let mut e = Engine::new(state, Config::default(), 0);
        e.on_subscribed("fw", 0);
        assert!(e.can_launch());
        e
    }

    fn executor_status(task_id: &str, state: TaskState, labels: &[(&str, &str)]) -> TaskStatus {
        let mut uuid = vec![9u8; 16];
        uuid[6] = 0x41;
        TaskStatus {
            task_id: TaskId {
                value: task_id.into(),
            },
            state: state as i32,
            source: Some(v1::task_status::Source::Executor as i32),
            executor_id: Some(v1::ExecutorId {
                value: "app@-@S0".into(),
            }),
            agent_id: Some(AgentId { value: "S0".into() }),
            uuid: Some(uuid),
            labels: (!labels.is_empty()).then(|| v1::Labels {
                labels: labels
                    .iter()
                    .map(|(k, v)| shardex_common::status_contract::label(k, v))
                    .collect(),
            }),
            ..TaskStatus::default()
        }
    }

    #[test]
    fn nothing_is_launched_into_a_stopping_executor_until_mesos_reports_it_gone() {
        let mut e = idle_engine();
        trigger(&mut e, 1);
        let calls = e.on_event(offers_event("o1"), 2);
        let tasks = launched_tasks(&calls);
        assert_eq!(tasks.len(), 3);
        let ids: Vec<String> = tasks.iter().map(|t| t.task_id.value.clone()).collect();
        // Item 0 breaks the executor; items 1 and 2 are stopped because of it.
        e.on_update(
            executor_status(
                &ids[0],
                TaskState::TaskFailed,
                &[(shardex_common::status_contract::EXECUTOR_STOPPING, "true")],
            ),
            3,
        );
        for id in &ids[1..] {
            e.on_update(
                executor_status(
                    id,
                    TaskState::TaskFailed,
                    &[(shardex_common::status_contract::STOPPED_FOR, &ids[0])],
                ),
                3,
            );
        }
        assert_eq!(e.gauges().stopping_executors, 1);
        assert_eq!(e.state.failover().len(), 2, "the innocent items are queued");
        // Offers still listing the executor: declined, nothing launched.
        let calls = e.on_event(offers_with("o2", &["app@-@S0"]), 4);
        assert!(launched_tasks(&calls).is_empty());
        assert_eq!(e.state.failover().len(), 2);
        // The executor is gone: the next offer launches both into a fresh one.
        let calls = e.on_event(offers_with("o3", &[]), 5);
        let relaunched = launched_tasks(&calls);
        assert_eq!(relaunched.len(), 2);
        assert!(
            relaunched
                .iter()
                .all(|t| t.executor.as_ref().unwrap().executor_id.value == "app@-@S0")
        );
        assert_eq!(e.gauges().stopping_executors, 0);

        // A FAILURE event unblocks it too.
        let mut e = idle_engine();
        e.block_executor("app@-@S0", "test", 0, STOPPING_EXECUTOR_MAX_MS);
        e.on_event(
            Event {
                r#type: Some(event::Type::Failure as i32),
                failure: Some(event::Failure {
                    agent_id: Some(AgentId { value: "S0".into() }),
                    executor_id: Some(v1::ExecutorId {
                        value: "app@-@S0".into(),
                    }),
                    status: Some(9),
                }),
                ..Event::default()
            },
            1,
        );
        assert_eq!(e.gauges().stopping_executors, 0);
    }

    #[test]
    fn an_agent_reported_executor_termination_blocks_the_executor_too() {
        let mut e = idle_engine();
        trigger(&mut e, 1);
        let tasks = launched_tasks(&e.on_event(offers_event("o1"), 2));
        let mut status = executor_status(&tasks[0].task_id.value, TaskState::TaskFailed, &[]);
        status.source = Some(v1::task_status::Source::Agent as i32);
        status.reason = Some(v1::task_status::Reason::ExecutorTerminated as i32);
        e.on_update(status, 3);
        assert_eq!(e.gauges().stopping_executors, 1);
        // A terminated executor never comes back: blocked only until its agent has forgotten
        // it (its task updates acknowledged), not for as long as a stopping one.
        e.on_tick(3 + TERMINATED_EXECUTOR_BLOCK_MS - 1);
        assert_eq!(e.gauges().stopping_executors, 1);
        e.on_tick(3 + TERMINATED_EXECUTOR_BLOCK_MS);
        assert_eq!(e.gauges().stopping_executors, 0);
    }

    #[test]
    fn kill_retries_back_off_to_the_maximum() {
        let mut config = Config::default();
        config.tasks.kill_retry_interval = shardex_mesos::duration::MesosDuration::secs(5);
        config.tasks.kill_retry_max = shardex_mesos::duration::MesosDuration::secs(20);
        let mut e = Engine::new(engine().state, config, 0);
        e.on_subscribed("fw", 0);
        let mut calls = Vec::new();
        e.request_kill(
            "old@-@0@-@READY@-@S0@-@u",
            KillReason::Disabled,
            0,
            &mut calls,
        );
        assert_eq!(kinds(&calls), vec![call::Type::Kill]);
        let mut sent_at = Vec::new();
        for now in (100..=120_000).step_by(100) {
            let calls = e.on_tick(now);
            if calls.iter().any(|c| c.kill.is_some()) {
                sent_at.push(now);
            }
        }
        // 5 s, then 10 s, then 20 s at most.
        assert_eq!(
            sent_at,
            vec![5_000, 15_000, 35_000, 55_000, 75_000, 95_000, 115_000]
        );
    }

    #[test]
    fn runs_skip_parked_items_and_runs_with_every_item_parked_are_dropped() {
        use super::super::state::ParkedItem;
        let park = |e: &mut Engine, item: u32| {
            e.state.put_parked(ParkedItem {
                job: "j".into(),
                item,
                attempts: 5,
                last_task_id: "t".into(),
                cause: "c".into(),
                parked_at: 0,
            })
        };
        let mut e = idle_engine();
        park(&mut e, 1);
        trigger(&mut e, 1);
        let tasks = launched_tasks(&e.on_event(offers_event("o1"), 2));
        let items: Vec<u32> = tasks
            .iter()
            .map(|t| crate::ids::TaskId::parse(&t.task_id.value).unwrap().item)
            .collect();
        assert_eq!(items, vec![0, 2]);
        assert_eq!(e.counters().runs_partial, 1);

        let mut e = idle_engine();
        for item in 0..3 {
            park(&mut e, item);
        }
        trigger(&mut e, 1);
        assert_eq!(e.state.ready_count("j"), 1);
        e.on_tick(2);
        assert_eq!(e.state.ready_count("j"), 0);
        assert_eq!(e.counters().runs_skipped, 1);
        assert!(launched_tasks(&e.on_event(offers_event("o1"), 3)).is_empty());
        // Released: the next run runs it.
        let (_, released) = e.on_api(
            super::super::api::ApiRequest::ReleaseParked("j".into(), 2),
            4,
        );
        assert!(released.is_ok());
        let (_, again) = e.on_api(
            super::super::api::ApiRequest::ReleaseParked("j".into(), 2),
            4,
        );
        assert_eq!(again.unwrap_err().status, 404);
        trigger(&mut e, 5);
        assert_eq!(launched_tasks(&e.on_event(offers_event("o2"), 6)).len(), 1);
    }

    #[test]
    fn a_task_past_its_timeout_is_killed_once() {
        let mut e = idle_engine();
        e.state.registry_mut().jobs.get_mut("j").unwrap().timeout =
            Some(shardex_mesos::duration::MesosDuration::secs(10));
        trigger(&mut e, 1);
        let tasks = launched_tasks(&e.on_event(offers_event("o1"), 2));
        let id = tasks[0].task_id.value.clone();
        e.on_update(executor_status(&id, TaskState::TaskRunning, &[]), 1_000);
        assert!(e.on_tick(10_999).iter().all(|c| c.kill.is_none()));
        let calls = e.on_tick(11_000);
        let kills: Vec<_> = calls.iter().filter_map(|c| c.kill.as_ref()).collect();
        assert_eq!(kills.len(), 1);
        assert_eq!(kills[0].task_id.value, id);
        assert_eq!(
            e.state.running()[&id].kill.as_ref().unwrap().reason,
            KillReason::Timeout
        );
        assert!(e.on_tick(11_100).iter().all(|c| c.kill.is_none()));
        assert_eq!(e.counters().tasks_timed_out, 1);
    }

    #[test]
    fn manual_jobs_never_fire_on_their_own() {
        let mut e = idle_engine();
        for now in (0..600_000).step_by(1_000) {
            e.on_tick(now);
        }
        assert_eq!(e.state.ready_count("j"), 0);
        assert_eq!(e.producer.next_fire("j"), None);
    }

    #[test]
    fn the_config_file_manages_its_entries_and_rest_the_others() {
        use super::super::api::{ApiReply, ApiRequest};
        let mut config = Config {
            apps: vec![app("app")],
            jobs: vec![job("filed", "app")],
            source: Some("/etc/shardex.toml".into()),
            ..Config::default()
        };
        let mut e = Engine::new(State::default(), config.clone(), 0);
        e.apply_config_registrations(0).unwrap();
        let (_, created) = e.on_api(ApiRequest::RegisterJob(job("rested", "app")), 1);
        assert!(created.is_ok());
        let view = |e: &mut Engine, name: &str| match e.on_api(ApiRequest::GetJob(name.into()), 2).1
        {
            Ok(ApiReply::Json(_, v)) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(view(&mut e, "filed")["source"], "file:/etc/shardex.toml");
        assert_eq!(view(&mut e, "rested")["source"], "rest");
        let mut changed = job("filed", "app");
        changed.sharding_total_count = 5;
        let (_, refused) = e.on_api(ApiRequest::UpdateJob("filed".into(), changed), 3);
        let refused = refused.unwrap_err();
        assert_eq!(refused.status, 409);
        assert_eq!(
            refused.message,
            "job 'filed' is managed by the config file /etc/shardex.toml: change it there and \
             restart the scheduler (or take it out of the file to manage it through REST)"
        );
        assert_eq!(
            e.on_api(ApiRequest::DeregisterJob("filed".into()), 3)
                .1
                .unwrap_err()
                .status,
            409
        );
        assert_eq!(
            e.on_api(ApiRequest::DeregisterApp("app".into()), 3)
                .1
                .unwrap_err()
                .status,
            409
        );
        // Operations are allowed, and the flag set through REST survives a restart.
        assert!(
            e.on_api(ApiRequest::SetJobEnabled("filed".into(), false), 4)
                .1
                .is_ok()
        );
        let mut rested = job("rested", "app");
        rested.sharding_total_count = 5;
        assert!(
            e.on_api(ApiRequest::UpdateJob("rested".into(), rested), 4)
                .1
                .is_ok()
        );

        // Restart with the same file: nothing changes, REST's changes to its own job stay.
        let mut e = Engine::new(e.state.clone(), config.clone(), 10);
        e.apply_config_registrations(10).unwrap();
        assert_eq!(e.state.registry().jobs["rested"].sharding_total_count, 5);
        assert!(e.state.registry().jobs["filed"].disabled);
        // Restart with the job taken out of the file: it is deregistered; REST's stays.
        config.jobs.clear();
        let mut e = Engine::new(e.state.clone(), config, 20);
        e.apply_config_registrations(20).unwrap();
        assert_eq!(
            e.state.registry().jobs.keys().collect::<Vec<_>>(),
            vec!["rested"]
        );
    }
}
