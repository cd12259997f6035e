//! Job workers: each task's plugin or script code runs off the event loop, so the loop never
//! blocks on a job. With `isolation = "process"` (the default) the worker is a process of its
//! own (`worker/`), so a crashing job ends only its task; with `"thread"` it is a thread of the
//! executor (least overhead, but a crash takes the executor down). Both run [`work`].
//!
//! A worker sets the job up (loads the plugin, creates one job instance per sharding item),
//! reports [`JobReport::Ready`], then runs: once for a transient task, or once per fire the
//! event loop sends for a daemon task (so fires of one task never overlap). Cancellation goes
//! through the task's [`JobControl`]: plugins see it through the SDK's `is_cancelled()`,
//! scripts get SIGTERM, then SIGKILL on `force_kill`.
//!
//! Each task gets a work directory of its own, [`task_work_dir`] (`<sandbox>/tasks/<task id>`),
//! created before its job is set up: the plugin's `work_dir`, a script's current directory and
//! the home of a script's `stdout` and `stderr` files, so tasks sharing an executor never write
//! into each other's files.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::plugin::{
    self, HostBindings, JobContext, JobControl, JobError, JobInstance, PluginLoader,
};
use shardex_common::payload::{ExecutionType, Isolation, JobKind as PayloadKind, TaskPayload};
use shardex_common::status_contract::SetupScope;

use super::job_threads::JobThreads;
use super::runtime::Message;
use super::worker::{Pool, WorkerCommand, WorkerProcess};

/// What a worker tells the event loop.
#[derive(Debug)]
pub enum JobReport {
    /// Set up (plugin loaded, instances created): the task is running in `work_dir`.
    Ready { task_id: String, work_dir: PathBuf },
    /// The job could not be set up. `scope` is `Some(Job)` when loading the plugin or creating
    /// its instances failed: the same job fails the same way on every launch, so the scheduler
    /// parks it. `None` when the agent's disk refused the task's work directory: that may pass.
    SetupFailed {
        task_id: String,
        message: String,
        scope: Option<SetupScope>,
    },
    /// One daemon fire ended.
    FireDone { task_id: String, outcome: Outcome },
    /// The worker is done: a transient run ended, or a daemon stopped taking fires.
    Done { task_id: String, outcome: Outcome },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// The job reported an error: the job's error policy decides.
    Failed(String),
    /// The job is broken (panicked, broke the ABI, cannot be spawned): `TASK_ERROR`.
    Broken(String),
    /// The job's worker process died without an outcome (a signal, an exit, a broken
    /// protocol stream): `TASK_FAILED` for this task only, labelled with `cause` as a crash.
    Crashed {
        cause: String,
        message: String,
    },
}

/// What every worker shares: where the sandbox is, the plugin loader, the way back.
#[derive(Debug)]
pub struct JobEnv {
    pub(crate) sandbox: PathBuf,
    loader: OnceLock<Result<Arc<PluginLoader>, String>>,
    pub(crate) mailbox: mpsc::UnboundedSender<Message>,
    /// How to start a worker process (process isolation).
    pub(crate) worker: WorkerCommand,
    /// The worker processes not serving a task (process isolation).
    pub(crate) pool: Pool,
    /// The threads that run jobs (thread isolation), kept between tasks.
    threads: JobThreads,
}

impl JobEnv {
    pub fn new(
        sandbox: PathBuf,
        mailbox: mpsc::UnboundedSender<Message>,
        worker: WorkerCommand,
    ) -> JobEnv {
        JobEnv {
            sandbox,
            loader: OnceLock::new(),
            mailbox,
            worker,
            pool: Pool::default(),
            threads: JobThreads::default(),
        }
    }

    /// The loader confined to the sandbox, created on first use.
    pub(crate) fn loader(&self) -> Result<Arc<PluginLoader>, String> {
        self.loader
            .get_or_init(|| open_loader(&self.sandbox))
            .clone()
    }

    pub(crate) fn report(&self, report: JobReport) {
        // The loop outlives every worker; if it is gone the process is exiting anyway.
        let _ = self.mailbox.send(Message::Job(report));
    }
}

/// The event loop's handle on one worker: a thread of the executor, or a process of its own.
#[derive(Debug)]
pub enum JobHandle {
    Thread {
        control: JobControl,
        /// Daemon tasks: one message per fire. Dropping it lets the worker finish.
        fires: Option<std_mpsc::Sender<()>>,
    },
    Process(WorkerProcess),
}

impl JobHandle {
    /// Asks the job to stop: the plugin sees `is_cancelled()`, a script gets SIGTERM, a daemon
    /// takes no more fires.
    pub fn cancel(&mut self) {
        match self {
            JobHandle::Thread { control, fires } => {
                control.cancel();
                *fires = None;
            }
            JobHandle::Process(process) => process.cancel(),
        }
    }

    /// Escalates a cancellation: SIGKILL to a script's process group, SIGTERM then SIGKILL to
    /// a worker process's group. Plugin threads cannot be killed; this does nothing for them.
    pub fn force_kill(&self) {
        match self {
            JobHandle::Thread { control, .. } => control.force_kill(),
            JobHandle::Process(process) => process.force_kill(),
        }
    }

    /// Starts one daemon fire (a worker that is gone reports `Done` instead).
    pub fn fire(&self) {
        match self {
            JobHandle::Thread { fires, .. } => {
                if let Some(fires) = fires {
                    // A worker that is gone reports `Done`, which ends the task.
                    let _ = fires.send(());
                }
            }
            JobHandle::Process(process) => process.fire(),
        }
    }

    /// Ends the worker at once (the executor is exiting).
    pub fn kill_now(&self) {
        if let JobHandle::Process(process) = self {
            process.kill_now();
        }
    }
}

/// Starts the worker of one task, in the isolation its job asks for.
pub fn start(env: &Arc<JobEnv>, payload: TaskPayload) -> std::io::Result<JobHandle> {
    match payload.job.isolation {
        Isolation::Process => WorkerProcess::start(env, &payload).map(JobHandle::Process),
        Isolation::Thread => start_thread(env, payload),
    }
}

/// Starts the worker thread of one task.
fn start_thread(env: &Arc<JobEnv>, payload: TaskPayload) -> std::io::Result<JobHandle> {
    let control = JobControl::new();
    let (fires, fire_rx) = fire_channel(&payload.job.execution);
    let env = Arc::clone(env);
    let worker_control = control.clone();
    let name = format!("job {}", payload.context.job_name);
    let threads = env.threads.clone();
    threads.run(name, move || {
        let loader = || env.loader();
        work(
            &env.sandbox,
            &loader,
            payload,
            &worker_control,
            fire_rx,
            &|report| env.report(report),
        )
    })?;
    Ok(JobHandle::Thread { control, fires })
}

/// A plugin loader confined to `sandbox`.
pub(crate) fn open_loader(sandbox: &Path) -> Result<Arc<PluginLoader>, String> {
    PluginLoader::new(sandbox)
        .map(Arc::new)
        .map_err(|e| format!("cannot use the sandbox as the plugin root: {e}"))
}

/// The channel a daemon's fires go through (`None`s for a transient job).
pub(crate) fn fire_channel(
    execution: &ExecutionType,
) -> (Option<std_mpsc::Sender<()>>, Option<std_mpsc::Receiver<()>>) {
    match execution {
        ExecutionType::Daemon { .. } => {
            let (tx, rx) = std_mpsc::channel();
            (Some(tx), Some(rx))
        }
        ExecutionType::Transient => (None, None),
    }
}

/// Runs one task's job to its end, on a thread of the executor or in a worker process:
/// sets it up, reports [`JobReport::Ready`], runs once (transient) or once per fire (daemon),
/// reports the outcome through `report`.
pub(crate) fn work(
    sandbox: &Path,
    loader: &dyn Fn() -> Result<Arc<PluginLoader>, String>,
    payload: TaskPayload,
    control: &JobControl,
    fires: Option<std_mpsc::Receiver<()>>,
    report: &dyn Fn(JobReport),
) {
    let task_id = payload.context.task_id.clone();
    let span = tracing::info_span!("job", task_id = %task_id);
    let _entered = span.enter();
    let work_dir = task_work_dir(sandbox, &task_id);
    if let Err(e) = std::fs::create_dir_all(&work_dir) {
        report(JobReport::SetupFailed {
            task_id,
            message: format!(
                "cannot create the task's work directory {}: {e}",
                work_dir.display()
            ),
            scope: None,
        });
        return;
    }
    let mut job = match Job::prepare(sandbox, loader, &payload, control, &work_dir) {
        Ok(job) => job,
        Err(message) => {
            report(JobReport::SetupFailed {
                task_id,
                message,
                scope: Some(SetupScope::Job),
            });
            return;
        }
    };
    if control.is_cancelled() {
        // Killed while being set up: nothing ran.
        report(JobReport::Done {
            task_id,
            outcome: Outcome::Succeeded,
        });
        return;
    }
    report(JobReport::Ready {
        task_id: task_id.clone(),
        work_dir,
    });
    match fires {
        None => {
            let outcome = job.run(control);
            report(JobReport::Done { task_id, outcome });
        }
        Some(fires) => {
            while fires.recv().is_ok() {
                if control.is_cancelled() {
                    break;
                }
                let outcome = job.run(control);
                let broken = matches!(outcome, Outcome::Broken(_));
                report(JobReport::FireDone {
                    task_id: task_id.clone(),
                    outcome,
                });
                if broken {
                    break;
                }
            }
            debug!("daemon takes no more fires");
            report(JobReport::Done {
                task_id,
                outcome: Outcome::Succeeded,
            });
        }
    }
}

/// A task's job, ready to run.
enum Job {
    Plugin {
        streaming: Option<bool>,
        /// One instance per sharding item of the task.
        instances: Vec<(u32, JobInstance)>,
    },
    Script {
        command_line: String,
        contexts: Vec<JobContext>,
    },
}

impl Job {
    fn prepare(
        sandbox: &Path,
        loader: &dyn Fn() -> Result<Arc<PluginLoader>, String>,
        payload: &TaskPayload,
        control: &JobControl,
        work_dir: &Path,
    ) -> Result<Job, String> {
        let contexts = contexts(payload, sandbox, work_dir);
        let (kind, streaming) = match &payload.job.kind {
            PayloadKind::Script { command_line } => {
                return Ok(Job::Script {
                    command_line: command_line.clone(),
                    contexts,
                });
            }
            PayloadKind::Simple => (plugin::JobKind::Simple, None),
            PayloadKind::Dataflow { streaming } => (plugin::JobKind::Dataflow, Some(*streaming)),
        };
        let path = payload
            .job
            .plugin
            .as_deref()
            .ok_or_else(|| "the job names no plugin file".to_owned())?;
        let plugin = loader()?.load(path).map_err(|e| e.to_string())?;
        info!(
            plugin = plugin.name(),
            version = plugin.version(),
            path = %plugin.path().display(),
            "plugin loaded"
        );
        let mut instances = Vec::with_capacity(contexts.len());
        for context in contexts {
            let item = context.sharding_item;
            let host = HostBindings::new(control.clone());
            let instance = plugin
                .instantiate(kind, &context, host)
                .map_err(|e| broken_message(&e))?;
            instances.push((item, instance));
        }
        Ok(Job::Plugin {
            streaming,
            instances,
        })
    }

    /// Runs every sharding item once.
    fn run(&mut self, control: &JobControl) -> Outcome {
        let mut failures = Vec::new();
        let items = self.items();
        for index in 0..items {
            if control.is_cancelled() {
                break;
            }
            let (item, result) = match self {
                Job::Plugin {
                    streaming,
                    instances,
                } => {
                    let (item, instance) = &mut instances[index];
                    let result = match streaming {
                        None => instance.run_simple(),
                        Some(streaming) => instance.run_dataflow(*streaming).map(|run| {
                            debug!(
                                item,
                                batches = run.batches,
                                items = run.items,
                                "dataflow run"
                            );
                        }),
                    };
                    (*item, result)
                }
                Job::Script {
                    command_line,
                    contexts,
                } => {
                    let context = &contexts[index];
                    (
                        context.sharding_item,
                        plugin::run_script(command_line, context, control),
                    )
                }
            };
            match result {
                Ok(()) => {}
                Err(JobError::Failed(message)) => failures.push((item, message)),
                Err(error) => return Outcome::Broken(broken_message(&error)),
            }
        }
        match failures.len() {
            0 => Outcome::Succeeded,
            1 => Outcome::Failed(failures.remove(0).1),
            _ => Outcome::Failed(
                failures
                    .iter()
                    .map(|(item, message)| format!("item {item}: {message}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }

    fn items(&self) -> usize {
        match self {
            Job::Plugin { instances, .. } => instances.len(),
            Job::Script { contexts, .. } => contexts.len(),
        }
    }
}

fn broken_message(error: &JobError) -> String {
    match error {
        JobError::Panicked(message) => format!("job panicked: {message}"),
        JobError::Failed(message) | JobError::Setup(message) => message.clone(),
    }
}

/// Where the task's own files go: `<sandbox>/tasks/<task id>`. Task ids Shardex makes are used
/// as they are; for others, a `/` becomes `_`, `.`/`..` get a `_` prefix (the directory is
/// always one level below `tasks`), and an id longer than a file name may be is cut, with a
/// hash of the whole id appended so different ids keep different directories.
pub fn task_work_dir(sandbox: &Path, task_id: &str) -> PathBuf {
    const MAX_NAME: usize = 200;
    let mut name: String = task_id
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    if name.is_empty() || name == "." || name == ".." {
        name.insert(0, '_');
    }
    if name.len() > MAX_NAME {
        let mut cut = MAX_NAME - 17;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name = format!("{}-{:016x}", &name[..cut], fnv1a(task_id.as_bytes()));
    }
    sandbox.join(TASKS_DIR).join(name)
}

/// FNV-1a, 64 bits: a stable hash (the same in every build) for directory names.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The directory of the sandbox holding one work directory per task.
pub const TASKS_DIR: &str = "tasks";

/// One job context per sharding item of the task.
fn contexts(payload: &TaskPayload, sandbox: &Path, work_dir: &Path) -> Vec<JobContext> {
    let context = &payload.context;
    context
        .item_parameters
        .iter()
        .map(|(item, parameter)| JobContext {
            job_name: context.job_name.clone(),
            task_id: context.task_id.clone(),
            sharding_total_count: context.sharding_total_count,
            sharding_item: *item,
            item_parameter: parameter.clone(),
            job_parameter: context.job_parameter.clone(),
            properties: payload.job.properties.clone(),
            work_dir: work_dir.to_path_buf(),
            sandbox: sandbox.to_path_buf(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_gets_a_directory_one_level_below_tasks() {
        let sandbox = Path::new("/sb");
        assert_eq!(
            task_work_dir(sandbox, "job@-@0@-@READY@-@S0@-@u"),
            Path::new("/sb/tasks/job@-@0@-@READY@-@S0@-@u")
        );
        assert_eq!(
            task_work_dir(sandbox, "a/../b"),
            Path::new("/sb/tasks/a_.._b")
        );
        assert_eq!(task_work_dir(sandbox, ".."), Path::new("/sb/tasks/_.."));
        assert_eq!(task_work_dir(sandbox, ""), Path::new("/sb/tasks/_"));
        let long = "x".repeat(300);
        let dir = task_work_dir(sandbox, &long);
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 200);
        assert_eq!(
            name,
            format!("{}-{:016x}", "x".repeat(183), fnv1a(long.as_bytes()))
        );
        assert_ne!(dir, task_work_dir(sandbox, &"x".repeat(301)));
    }
}
