//! The master losing the agent to a network partition and taking it back
//! (`src/master/master.cpp`: `markUnreachable` → `_markUnreachable` → `__removeSlave`, and
//! `_reregisterSlave` → `__reregisterSlave` for an agent that is not registered).
//!
//! Facts from the source this follows:
//! - The health check gives up with the message "health check timed out", which becomes every
//!   task update's message. One `unreachable_time` is taken for the whole transition.
//! - `__removeSlave` walks every task the master holds on the agent, terminal-but-unacknowledged
//!   ones included (`updateTask` leaves their state alone but the update is still sent):
//!   `TASK_UNREACHABLE` for PARTITION_AWARE frameworks, `TASK_LOST` otherwise, both with
//!   `REASON_SLAVE_REMOVED`, `SOURCE_MASTER`, no uuid, `executor_id` and `unreachable_time`;
//!   updates for disconnected frameworks are dropped, not queued. Then the agent's executors
//!   are forgotten, its offers rescinded, and every connected framework gets `LostSlaveMessage`
//!   (v1: FAILURE with only `agent_id`).
//! - The tasks move to `Framework::unreachableTasks`: implicit reconciliation and KILL no longer
//!   see them. A KILL is answered by explicit reconciliation (`Master::kill`: "Cannot kill
//!   task ... because it is unknown") and is not retried later: the kills a disconnected agent
//!   gets on re-registration live in its `Slave` entry, which removal deletes. ACKNOWLEDGE,
//!   SHUTDOWN and MESSAGE for an agent that is not registered are dropped.
//! - On re-registration every task the agent reports (except those of frameworks removed
//!   meanwhile) is re-added and its framework told its state as the agent knows it, with
//!   "Unreachable agent re-reregistered" (sic), `REASON_SLAVE_REREGISTERED`, no uuid. This is
//!   for every framework: since Mesos 1.5 (commit 9d0cadc, MESOS-7215) the master no longer
//!   shuts down the tasks of non-PARTITION_AWARE frameworks on a returning agent, whatever
//!   older docs say. Unreachable records the agent did not report are dropped. Frameworks
//!   removed meanwhile are shut down on the agent; the others' FrameworkInfo is sent to it
//!   (`updateSlaveFrameworks`). The allocator gets the agent back: offers resume.

use super::{Master, master_status, update_event};
use crate::resources::Resources;
use crate::runtime::{AgentReport, Ctx, ToAgent};
use shardex_mesos::proto::v1::{self, TaskState, scheduler, task_status};
use shardex_mesos::states::is_terminal;

/// `protobuf::getCurrentTime()`.
fn current_time() -> v1::TimeInfo {
    let nanoseconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    v1::TimeInfo { nanoseconds }
}

impl Master {
    /// The agent failed its health checks: it is removed and its tasks become unreachable.
    pub fn mark_unreachable(&mut self) {
        const MESSAGE: &str = "health check timed out";
        let unreachable_time = current_time();
        tracing::info!(agent = %self.agent.id, "marking agent unreachable: {MESSAGE}");
        self.agent.connected = false;
        self.agent.unreachable_time = Some(unreachable_time);
        let agent_id = self.agent.id.clone();
        for framework in self.frameworks.values_mut() {
            let state = if framework.partition_aware() {
                TaskState::TaskUnreachable
            } else {
                TaskState::TaskLost
            };
            let ids: Vec<String> = framework
                .tasks
                .iter()
                .filter(|(_, task)| task.agent_id == agent_id)
                .map(|(id, _)| id.clone())
                .collect();
            for task_id in ids {
                let Some(mut task) = framework.tasks.remove(&task_id) else {
                    continue;
                };
                let mut status = master_status(
                    &task_id,
                    state,
                    MESSAGE,
                    task_status::Reason::AgentRemoved,
                    Some(&task.agent_id),
                );
                status.executor_id = task.executor_id.as_ref().map(|value| v1::ExecutorId {
                    value: value.clone(),
                });
                status.unreachable_time = Some(unreachable_time);
                // `updateTask`: a terminal state stays (its update is sent all the same).
                if !TaskState::try_from(task.state).is_ok_and(is_terminal) {
                    task.state = state as i32;
                }
                framework.send(&update_event(status));
                framework.unreachable_tasks.insert(task_id, task);
            }
        }
        self.agent.executors.clear();
        self.agent.pending_kills.clear();
        self.rescind_agent_offers();
        let lost = scheduler::Event {
            r#type: Some(scheduler::event::Type::Failure as i32),
            failure: Some(scheduler::event::Failure {
                agent_id: Some(v1::AgentId { value: agent_id }),
                executor_id: None,
                status: None,
            }),
            ..Default::default()
        };
        for framework in self.frameworks.values() {
            framework.send(&lost);
        }
    }

    /// The unreachable agent re-registered with what it runs.
    pub(super) fn readmit(&mut self, ctx: &mut Ctx, report: AgentReport) {
        tracing::info!(agent = %self.agent.id, "unreachable agent re-registered");
        self.agent.unreachable_time = None;
        for reported in report.tasks {
            if self.is_removed(&reported.framework_id) {
                continue;
            }
            let Some(framework) = self.frameworks.get_mut(&reported.framework_id) else {
                tracing::warn!(
                    framework = %reported.framework_id,
                    "the agent reports a task of a framework the master does not know"
                );
                continue;
            };
            let mut status = master_status(
                &reported.task_id,
                reported.state,
                "Unreachable agent re-reregistered",
                task_status::Reason::AgentReregistered,
                Some(&self.agent.id),
            );
            status.executor_id = Some(v1::ExecutorId {
                value: reported.executor_id.clone(),
            });
            if let Some(latest) = &reported.latest {
                status.healthy = latest.healthy;
                status.check_status = latest.check_status;
            }
            status.container_status = reported.container_status.clone();
            match framework.unreachable_tasks.remove(&reported.task_id) {
                Some(mut task) => {
                    task.state = reported.state as i32;
                    if reported.latest.is_some() {
                        task.latest = reported.latest;
                    }
                    framework.tasks.insert(reported.task_id, task);
                }
                // The master placed every task the agent runs; with no master failover here
                // it cannot have forgotten one.
                None => tracing::warn!(
                    task = %reported.task_id,
                    "the agent reports a task the master has no record of; not tracking it"
                ),
            }
            framework.send(&update_event(status));
        }
        // What the agent did not report is gone from the master too.
        for framework in self.frameworks.values_mut() {
            framework.unreachable_tasks.clear();
        }
        self.agent.executors.clear();
        for (framework_id, info) in report.executors {
            if self.removed.contains(&framework_id) {
                continue;
            }
            let resources = Resources::from_protos(&info.resources).unwrap_or_default();
            self.agent
                .executors
                .entry(framework_id)
                .or_default()
                .insert(info.executor_id.value.clone(), (info, resources));
        }
        self.agent.connected = true;
        for info in report.frameworks {
            let framework_id = info.id.map(|id| id.value).unwrap_or_default();
            if self.removed.contains(&framework_id) {
                tracing::info!(
                    framework = %framework_id,
                    "shutting down a framework removed while its agent was unreachable"
                );
                ctx.send_to_agent(ToAgent::ShutdownFramework { framework_id });
            } else if let Some(framework) = self.frameworks.get(&framework_id) {
                ctx.send_to_agent(ToAgent::UpdateFramework {
                    framework: framework.info.clone(),
                });
            }
        }
        self.allocate(ctx);
    }
}
