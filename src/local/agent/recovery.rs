//! The agent's simulated restart: SIGTERM (listener and connections die, updates pause, the
//! master rescinds offers), then a new process that answers 404, then `503 Agent has not
//! finished recovery`, then lets executors resubscribe while UPDATE/MESSAGE stay 503 for
//! `--executor_reregistration_timeout`, SIGKILLs those that did not come back, and finally
//! re-registers with the master, re-sending every pending update twice (testdata recovery/).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;

use super::{Agent, ExecutorState, Termination};
use crate::launcher;
use crate::runtime::{AgentPhase, Ctx, RestartStep, Timer, ToMaster};
use shardex_mesos::duration::MesosDuration;
use shardex_mesos::proto::v1::{TaskState, task_status};

impl Agent {
    /// Simulates SIGTERM of the agent process followed, after `down_for`, by a restart with the
    /// same flags and checkpoint recovery.
    pub fn restart(
        &mut self,
        ctx: &mut Ctx,
        down_for: Duration,
        phase: &watch::Sender<AgentPhase>,
    ) -> Result<(), String> {
        if self.down || self.recovering {
            return Err("the agent is already restarting".to_owned());
        }
        if self.partitioned {
            // The restarted agent would have to re-register across the partition; the two
            // controls are not combined.
            return Err("the agent is partitioned; heal it before restarting it".to_owned());
        }
        tracing::info!("agent stopping (simulated SIGTERM)");
        self.restart_generation += 1;
        self.down = true;
        self.restarting = true;
        // The listener and every connection die with the process: streams end without a
        // terminating chunk, in-flight calls are reset.
        if let Some(server) = self.server.take() {
            server.stop();
        }
        let _ = phase.send(AgentPhase::NotReady);
        // The new process attaches only what checkpoint recovery finds.
        self.http.files.agent_restarted();
        for framework in self.frameworks.values_mut() {
            for executor in framework.executors.values_mut() {
                if let Some(stream) = executor.stream.take() {
                    stream.abort();
                }
            }
        }
        self.sum.pause();
        ctx.send_to_master(ToMaster::AgentDisconnected);
        ctx.schedule(
            down_for,
            Timer::Restart {
                step: RestartStep::Listening,
                generation: self.restart_generation,
            },
        );
        Ok(())
    }

    pub(super) fn restart_step(
        &mut self,
        ctx: &mut Ctx,
        step: RestartStep,
        phase: &watch::Sender<AgentPhase>,
    ) {
        let generation = self.restart_generation;
        let next = |ctx: &mut Ctx, after: Duration, step: RestartStep| {
            ctx.schedule(after, Timer::Restart { step, generation });
        };
        match step {
            RestartStep::Listening => {
                let address = SocketAddr::from((self.config.ip, self.config.port));
                match std::net::TcpListener::bind(address).and_then(|listener| {
                    listener.set_nonblocking(true)?;
                    tokio::net::TcpListener::from_std(listener)
                }) {
                    Ok(listener) => {
                        tracing::info!(%address, "agent restarted; listening");
                        let _ = phase.send(AgentPhase::NotReady);
                        self.server = Some(crate::http::serve_agent(
                            listener,
                            self.config.tls.clone(),
                            self.http.clone(),
                        ));
                        next(
                            ctx,
                            self.config.restart.not_ready,
                            RestartStep::RecoveringState,
                        );
                    }
                    Err(error) => {
                        tracing::warn!(%address, %error, "cannot listen again yet; retrying");
                        next(ctx, Duration::from_millis(50), RestartStep::Listening);
                    }
                }
            }
            RestartStep::RecoveringState => {
                let _ = phase.send(AgentPhase::RecoveringState);
                next(
                    ctx,
                    self.config.restart.recovering_state,
                    RestartStep::RecoveringExecutors,
                );
            }
            RestartStep::RecoveringExecutors => {
                tracing::info!("recovering executors");
                self.down = false;
                self.recovering = true;
                let _ = phase.send(AgentPhase::Serving);
                // Frameworks that do not checkpoint are not recovered: their containers are
                // orphans and get destroyed.
                let lost: Vec<String> = self
                    .frameworks
                    .iter()
                    .filter(|(_, f)| !f.checkpoint())
                    .map(|(id, _)| id.clone())
                    .collect();
                for framework_id in lost {
                    if let Some(framework) = self.frameworks.remove(&framework_id) {
                        for executor in framework.executors.values() {
                            if let Some(pid) = executor.pid {
                                launcher::kill_group(pid);
                            }
                            if let Some(launch) = &executor.launch {
                                launch.abort();
                            }
                        }
                    }
                    self.sum.remove_framework(&framework_id);
                }
                for framework in self.frameworks.values_mut() {
                    for executor in framework.executors.values_mut() {
                        executor.recovered = true;
                        if matches!(
                            executor.state,
                            ExecutorState::Running | ExecutorState::Registering
                        ) {
                            executor.awaiting_reregistration = true;
                        }
                    }
                }
                for (container_id, status) in std::mem::take(&mut self.buffered_exits) {
                    self.executor_exited(ctx, &container_id, status, false);
                }
                next(
                    ctx,
                    self.config.reregistration_timeout,
                    RestartStep::ReregistrationTimeout,
                );
            }
            RestartStep::ReregistrationTimeout => {
                tracing::info!("cleaning up un-reregistered executors; finished recovery");
                let timeout = MesosDuration(self.config.reregistration_timeout);
                let mut silent = Vec::new();
                for (framework_id, framework) in &mut self.frameworks {
                    let state = if framework.partition_aware() {
                        TaskState::TaskGone
                    } else {
                        TaskState::TaskLost
                    };
                    for executor in framework.executors.values_mut() {
                        if executor.awaiting_reregistration {
                            executor.awaiting_reregistration = false;
                            executor.state = ExecutorState::Terminating;
                            executor.pending_termination = Some(Termination {
                                state,
                                reason: task_status::Reason::ExecutorReregistrationTimeout,
                                message: format!("Executor did not reregister within {timeout}"),
                            });
                            silent.push((framework_id.clone(), executor.id.clone()));
                        }
                    }
                }
                // SIGKILL of the process tree: no SHUTDOWN event, no SIGTERM, no grace.
                for (framework_id, executor_id) in silent {
                    self.destroy(ctx, &framework_id, &executor_id);
                }
                self.recovering = false;
                next(
                    ctx,
                    self.config.restart.reregister_delay,
                    RestartStep::Reregistered,
                );
            }
            RestartStep::Reregistered => {
                self.restarting = false;
                self.reregister(ctx);
            }
        }
    }
}
