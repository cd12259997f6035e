//! Executor containers on the embedded agent: the sandbox, fetching and spawning (counted
//! against the registration timeout), the process's exit, and destroying a container by
//! SIGKILLing its process group (`Slave::launchExecutor`, `Slave::executorTerminated`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Agent, Executor, ExecutorState, Termination};
use crate::fetcher;
use crate::jwt::{self, Claims};
use crate::launcher::{self, ExecutorEnvironment};
use crate::runtime::{Ctx, Msg, Timer, ToMaster};
use shardex_mesos::proto::v1::{self, TaskState, task_status};

/// What to start once the fetch is done.
#[derive(Debug)]
pub(super) struct LaunchPlan {
    command: v1::CommandInfo,
    env: Vec<(String, String)>,
    sandbox: std::path::PathBuf,
}
use shardex_mesos::states::is_terminal;

impl Agent {
    pub(super) fn launch_executor(
        &mut self,
        ctx: &mut Ctx,
        framework_id: &str,
        info: v1::ExecutorInfo,
        task: v1::TaskInfo,
    ) {
        let executor_id = info.executor_id.value.clone();
        let container_id = uuid::Uuid::new_v4().to_string();
        let runs = self
            .config
            .work_dir
            .join("slaves")
            .join(&self.config.id)
            .join("frameworks")
            .join(framework_id)
            .join("executors")
            .join(&executor_id)
            .join("runs");
        let sandbox = runs.join(&container_id);
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let checkpoint = framework.checkpoint();
        self.http.files.attach_run(
            &self.config.work_dir,
            &self.config.id,
            framework_id,
            &executor_id,
            &container_id,
            checkpoint,
        );
        let command = info.command.clone().unwrap_or_default();
        if let Some(user) = &command.user {
            tracing::info!(
                executor = %executor_id,
                %user,
                "CommandInfo.user is set, but the embedded agent cannot switch users; the \
                 executor runs as the agent's own user"
            );
        }
        let grace = info
            .shutdown_grace_period
            .as_ref()
            .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
            .unwrap_or(self.config.shutdown_grace_period);
        let token = self.config.jwt_secret.as_ref().map(|secret| {
            jwt::mint(
                secret,
                &Claims {
                    framework_id: framework_id.to_owned(),
                    executor_id: executor_id.clone(),
                    container_id: container_id.clone(),
                },
            )
        });
        let endpoint = self.endpoint();
        let ip = self.config.ip.to_string();
        let env = ExecutorEnvironment {
            framework_id,
            executor_id: &executor_id,
            agent_id: &self.config.id,
            agent_endpoint: &endpoint,
            agent_ip: &ip,
            sandbox: &sandbox,
            checkpoint,
            shutdown_grace_period: grace,
            recovery_timeout: self.config.recovery_timeout,
            reregistration_timeout: self.config.reregistration_timeout,
            authentication_token: token.as_deref(),
            agent_variables: &self.config.executor_environment,
            command: &command,
        }
        .variables();
        tracing::info!(
            framework = %framework_id,
            executor = %executor_id,
            container = %container_id,
            sandbox = %sandbox.display(),
            "launching executor"
        );
        let tx = ctx.sender();
        let cid = container_id.clone();
        // Only the fetch runs outside the owner: the owner spawns the process itself when it
        // is done, so the pid is known before any call from the executor can arrive.
        let (fetch_command, fetch_sandbox) = (command.clone(), sandbox.clone());
        let fetch = tokio::spawn(async move {
            let result = match prepare_sandbox(&runs, &fetch_sandbox, &cid) {
                Ok(()) => fetcher::fetch_all(&fetch_command.uris, &fetch_sandbox)
                    .await
                    .map_err(|e| format!("Failed to launch container: {e}")),
                Err(e) => Err(e),
            };
            let _ = tx.send(Msg::FetchFinished {
                container_id: cid,
                result,
            });
        });
        let plan = LaunchPlan {
            command,
            env,
            sandbox,
        };
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        framework.executors.insert(
            executor_id.clone(),
            Executor {
                id: executor_id,
                info,
                container_id: container_id.clone(),
                state: ExecutorState::Registering,
                stream: None,
                queued: vec![task],
                launched: BTreeMap::new(),
                terminated: BTreeMap::new(),
                pid: None,
                launch: Some(fetch.abort_handle()),
                plan: Some(plan),
                pending_termination: None,
                sent_update: false,
                awaiting_reregistration: false,
                recovered: false,
                subscriptions: 0,
            },
        );
        // Fetching counts against the registration timeout.
        ctx.schedule(
            self.config.registration_timeout,
            Timer::RegistrationTimeout { container_id },
        );
    }

    /// The sandbox is ready and every URI fetched (or not): start the executor process.
    pub fn fetch_finished(
        &mut self,
        ctx: &mut Ctx,
        container_id: &str,
        result: Result<(), String>,
    ) {
        let Some((framework_id, executor_id)) = self.find_container(container_id) else {
            return;
        };
        let tx = ctx.sender();
        let Some(executor) = self.executor_mut(&framework_id, &executor_id) else {
            return;
        };
        executor.launch = None;
        if matches!(
            executor.state,
            ExecutorState::Terminating | ExecutorState::Terminated
        ) {
            // Shut down or timed out while fetching: nothing to start.
            self.executor_terminated(ctx, &framework_id, &executor_id, None);
            return;
        }
        let spawned = match (result, executor.plan.take()) {
            (Ok(()), Some(plan)) => launcher::spawn(&plan.command, &plan.env, &plan.sandbox)
                .map_err(|e| format!("Failed to launch container: {e}")),
            (Ok(()), None) => Err("Failed to launch container: launched twice".to_owned()),
            (Err(message), _) => Err(message),
        };
        match spawned {
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                executor.pid = Some(pid);
                let cid = container_id.to_owned();
                tokio::spawn(async move {
                    let status = child.wait().await.ok().map(launcher::raw_wait_status);
                    let _ = tx.send(Msg::ExecutorExited {
                        container_id: cid,
                        status,
                    });
                });
            }
            Err(message) => {
                tracing::warn!(executor = %executor_id, %message, "executor launch failed");
                executor.pending_termination = Some(Termination {
                    state: TaskState::TaskFailed,
                    reason: task_status::Reason::ContainerLaunchFailed,
                    message,
                });
                self.executor_terminated(ctx, &framework_id, &executor_id, None);
            }
        }
    }

    /// The executor process ended (or never started: `status` None).
    pub fn executor_exited(
        &mut self,
        ctx: &mut Ctx,
        container_id: &str,
        status: Option<i32>,
        delayed: bool,
    ) {
        if self.down {
            self.buffered_exits.push((container_id.to_owned(), status));
            return;
        }
        let Some((framework_id, executor_id)) = self.find_container(container_id) else {
            return;
        };
        let recovered = self
            .executor_mut(&framework_id, &executor_id)
            .is_some_and(|e| e.recovered);
        if recovered && !delayed {
            ctx.schedule(
                self.config.restart.recovered_exit_delay,
                Timer::DelayedExit {
                    container_id: container_id.to_owned(),
                    status,
                },
            );
            return;
        }
        self.executor_terminated(ctx, &framework_id, &executor_id, status);
    }

    /// `Slave::executorTerminated`.
    pub(super) fn executor_terminated(
        &mut self,
        ctx: &mut Ctx,
        framework_id: &str,
        executor_id: &str,
        status: Option<i32>,
    ) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let terminating_framework = framework.terminating;
        let Some(executor) = framework.executors.get_mut(executor_id) else {
            return;
        };
        if executor.state == ExecutorState::Terminated {
            return;
        }
        tracing::info!(
            executor = %executor_id,
            status = ?status,
            "executor terminated"
        );
        executor.state = ExecutorState::Terminated;
        executor.awaiting_reregistration = false;
        if let Some(stream) = executor.stream.take() {
            stream.end();
        }
        // Destroying the container kills whatever the executor left behind.
        if let Some(pid) = executor.pid {
            launcher::kill_group(pid);
        }
        if let Some(launch) = executor.launch.take() {
            launch.abort();
        }
        let termination = executor.pending_termination.clone();
        let unfinished: Vec<String> = executor
            .launched
            .iter()
            .filter(|(_, task)| !is_terminal(task.state))
            .map(|(id, _)| id.clone())
            .chain(executor.queued.iter().map(|t| t.task_id.value.clone()))
            .collect();
        // FAILURE reaches the scheduler before the agent's task updates (as captured).
        ctx.send_to_master(ToMaster::ExitedExecutor {
            framework_id: framework_id.to_owned(),
            executor_id: executor_id.to_owned(),
            status: status.unwrap_or(-1),
        });
        if !terminating_framework {
            for task_id in unfinished {
                let (state, reason, message) = match &termination {
                    Some(t) => (t.state, t.reason, t.message.clone()),
                    None => (
                        TaskState::TaskFailed,
                        task_status::Reason::ExecutorTerminated,
                        "Executor terminated".to_owned(),
                    ),
                };
                let status =
                    self.agent_status(&task_id, state, &message, reason, Some(executor_id));
                self.status_update(ctx, framework_id, status);
            }
        }
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let remove = framework.terminating
            || framework
                .executors
                .get(executor_id)
                .is_some_and(|e| !e.incomplete());
        if remove {
            framework.executors.remove(executor_id);
        }
        self.remove_framework_if_idle(framework_id);
    }

    /// Kills an executor's container (SIGKILL to its process group); its exit then runs the
    /// usual termination path. Without a process, it terminates at once.
    pub(super) fn destroy(&mut self, ctx: &mut Ctx, framework_id: &str, executor_id: &str) {
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            return;
        };
        match executor.pid {
            Some(pid) => launcher::kill_group(pid),
            None => {
                if let Some(launch) = executor.launch.take() {
                    launch.abort();
                }
                self.executor_terminated(ctx, framework_id, executor_id, None);
            }
        }
    }

    pub fn executor_pid(&self, executor_id: &str) -> Option<u32> {
        self.frameworks
            .values()
            .filter_map(|f| f.executors.get(executor_id))
            .find(|e| e.state != ExecutorState::Terminated)
            .and_then(|e| e.pid)
    }

    /// SIGKILLs every executor process group (shutdown of the whole cluster).
    pub fn kill_all(&mut self) {
        for framework in self.frameworks.values_mut() {
            for executor in framework.executors.values_mut() {
                if let Some(pid) = executor.pid.take() {
                    launcher::kill_group(pid);
                }
                if let Some(launch) = executor.launch.take() {
                    launch.abort();
                }
            }
        }
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

/// Creates the run directory and points `runs/latest` at it.
fn prepare_sandbox(
    runs: &std::path::Path,
    sandbox: &std::path::Path,
    container_id: &str,
) -> Result<(), String> {
    std::fs::create_dir_all(sandbox).map_err(|e| {
        format!(
            "Failed to launch container: cannot create sandbox {}: {e}",
            sandbox.display()
        )
    })?;
    let latest = runs.join("latest");
    let _ = std::fs::remove_file(&latest);
    std::os::unix::fs::symlink(container_id, &latest).map_err(|e| {
        format!(
            "Failed to launch container: cannot create {}: {e}",
            latest.display()
        )
    })
}
