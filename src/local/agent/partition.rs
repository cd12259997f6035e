//! The agent's side of a network partition ([`crate::LocalCluster::partition_agent`])
//! and of every re-registration with the master, after a partition or a restart.
//!
//! A real agent cut off from its master keeps serving its executors: their updates are
//! recorded and ACKNOWLEDGED as usual (`Slave::statusUpdate` acknowledges once the update
//! manager has them), but none reaches the master. Once the agent notices (its own ping timeout,
//! `Slave::pingTimeout` → `Slave::detected`) it pauses the task status update manager and keeps
//! trying to re-register; what it sends without retrying meanwhile (`ExitedExecutorMessage`,
//! executor messages) is lost. Here the agent pauses at once: nothing it could have sent before
//! noticing would have crossed the partition anyway.
//!
//! Re-registering (`Slave::doReliableRegistration`) reports the agent's frameworks, its tasks
//! (launched and terminated-but-unacknowledged ones with their latest state, queued ones as
//! STAGING) and its executors that have not terminated. The agent resumes its update manager
//! on the master's `SlaveReregisteredMessage` (`Slave::reregistered`) and again on the
//! `UpdateFrameworkMessage` that follows (`Slave::updateFramework`), so every pending update
//! is re-sent twice.

use super::{Agent, ExecutorState};
use crate::runtime::{AgentReport, Ctx, ReportedTask, ToMaster};
use shardex_mesos::proto::v1::TaskState;

impl Agent {
    /// Whether a network partition separates the agent from the master.
    pub fn partitioned(&self) -> bool {
        self.partitioned
    }

    /// The network to the master is cut: updates stay pending until [`Agent::heal`].
    pub fn partition(&mut self) -> Result<(), String> {
        if self.partitioned {
            return Err("the agent is already partitioned".to_owned());
        }
        if self.restarting {
            return Err(
                "the agent is restarting; partition it once it has re-registered".to_owned(),
            );
        }
        tracing::info!("agent cut off from the master (network partition)");
        self.partitioned = true;
        self.sum.pause();
        Ok(())
    }

    /// The network is back: the agent re-registers and re-sends its pending updates.
    pub fn heal(&mut self, ctx: &mut Ctx) -> Result<(), String> {
        if !self.partitioned {
            return Err("the agent is not partitioned".to_owned());
        }
        tracing::info!("network partition healed; agent re-registering");
        self.partitioned = false;
        self.reregister(ctx);
        Ok(())
    }

    /// Re-registers with the master, then re-sends every pending update twice.
    pub(super) fn reregister(&mut self, ctx: &mut Ctx) {
        ctx.send_to_master(ToMaster::AgentReregistered(self.report()));
        let first = self.sum.resume();
        let second = self.sum.resume();
        for forward in first.into_iter().chain(second) {
            let framework_id = forward.key.0.clone();
            self.forward(ctx, &framework_id, forward);
        }
    }

    /// What `ReregisterSlaveMessage` carries.
    fn report(&self) -> AgentReport {
        let mut report = AgentReport::default();
        for (framework_id, framework) in &self.frameworks {
            report.frameworks.push(framework.info.clone());
            for executor in framework.executors.values() {
                let task = |task_id: &str, state: TaskState| ReportedTask {
                    framework_id: framework_id.clone(),
                    task_id: task_id.to_owned(),
                    executor_id: executor.id.clone(),
                    state,
                    latest: None,
                    container_status: None,
                };
                for (task_id, known) in executor.launched.iter().chain(&executor.terminated) {
                    report.tasks.push(ReportedTask {
                        latest: known.latest.clone(),
                        container_status: known.container_status.clone(),
                        ..task(task_id, known.state)
                    });
                }
                for queued in &executor.queued {
                    report
                        .tasks
                        .push(task(&queued.task_id.value, TaskState::TaskStaging));
                }
                // Terminated executors hold no resources and are not reported.
                if executor.state != ExecutorState::Terminated {
                    report
                        .executors
                        .push((framework_id.clone(), executor.info.clone()));
                }
            }
        }
        report
    }
}
