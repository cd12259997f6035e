//! Script jobs: run a configured command line as a child process, without a shell.
//!
//! The command line is split into words with POSIX shell quoting rules but no expansion of any
//! kind, and the sharding context is appended as **one** JSON argument, so no job or item
//! parameter can ever be interpreted by a shell (Elastic-Job-Cloud's transient scripts spliced
//! the JSON into `sh -c` and lost its quotes). The same JSON and its fields are also in the
//! environment. The child runs in its own process group in the work directory, so cancelling
//! reaches every process it started.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use serde::Serialize;

use super::host::JOB_LOG_TARGET;
use super::{JobContext, JobControl, JobError};

/// How often the wait loop looks at the child when nothing else wakes it (a cancel wakes it at
/// once).
const POLL: Duration = Duration::from_millis(20);
/// How long to wait for the output pipes to close once the script's process group is gone.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Longest output line logged as one event; longer lines are split.
const MAX_LINE: u64 = 16 * 1024;

/// The context JSON in the shape of Elastic-Job's `ShardingContext` (Gson field order), which
/// existing Elastic-Job scripts parse.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShardingContextJson<'a> {
    job_name: &'a str,
    task_id: &'a str,
    sharding_total_count: u32,
    job_parameter: &'a str,
    sharding_item: u32,
    sharding_parameter: &'a str,
}

/// The sharding context as the single JSON argument a script receives, e.g.
/// `{"jobName":"j","taskId":"t","shardingTotalCount":3,"jobParameter":"","shardingItem":1,"shardingParameter":"b"}`.
pub fn sharding_context_json(ctx: &JobContext) -> String {
    let json = ShardingContextJson {
        job_name: &ctx.job_name,
        task_id: &ctx.task_id,
        sharding_total_count: ctx.sharding_total_count,
        job_parameter: &ctx.job_parameter,
        sharding_item: ctx.sharding_item,
        sharding_parameter: &ctx.item_parameter,
    };
    // Serialising a struct of strings and integers cannot fail.
    serde_json::to_string(&json).unwrap_or_default()
}

/// The environment variables a script receives besides the executor's own.
pub fn script_environment(ctx: &JobContext) -> Vec<(&'static str, String)> {
    vec![
        ("SHARDEX_JOB_NAME", ctx.job_name.clone()),
        ("SHARDEX_TASK_ID", ctx.task_id.clone()),
        (
            "SHARDEX_SHARDING_TOTAL_COUNT",
            ctx.sharding_total_count.to_string(),
        ),
        ("SHARDEX_SHARDING_ITEM", ctx.sharding_item.to_string()),
        ("SHARDEX_SHARDING_PARAMETER", ctx.item_parameter.clone()),
        ("SHARDEX_JOB_PARAMETER", ctx.job_parameter.clone()),
        ("SHARDEX_SHARDING_CONTEXT", sharding_context_json(ctx)),
    ]
}

/// Runs a script job to completion, or until `control` stops it.
///
/// - `command_line` is split like a POSIX shell would split words (quotes and backslashes), with
///   no variable, command or glob expansion. A program containing `/` is resolved against the
///   work directory; a bare name is looked up on `PATH`.
/// - The child gets the sharding context JSON as its last argument and in
///   [`script_environment`], runs in `ctx.work_dir` with stdin closed, and its stdout and stderr
///   lines are logged under the `shardex::job` target with the task id.
/// - [`JobControl::cancel`] sends `SIGTERM` and [`JobControl::force_kill`] `SIGKILL` to the
///   script's process group. When the script itself exits, whatever it left running in its group
///   is killed too: a finished task leaves no processes behind.
/// - Exit status 0 is success; another status or death by signal is [`JobError::Failed`]. A
///   command line that cannot be split or started is [`JobError::Setup`].
pub fn run_script(
    command_line: &str,
    ctx: &JobContext,
    control: &JobControl,
) -> Result<(), JobError> {
    let words = shlex::split(command_line).ok_or_else(|| {
        JobError::Setup(format!(
            "script command line {command_line:?} has an unclosed quote or a trailing backslash"
        ))
    })?;
    let Some((program, args)) = words.split_first() else {
        return Err(JobError::Setup(format!(
            "script command line {command_line:?} names no program"
        )));
    };
    let program = resolve_program(program, &ctx.work_dir);
    if control.is_cancelled() {
        return Err(JobError::Failed(
            "script not started: the task was cancelled".to_owned(),
        ));
    }

    let mut command = Command::new(&program);
    command
        .args(args)
        .arg(sharding_context_json(ctx))
        .envs(script_environment(ctx))
        .current_dir(&ctx.work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().map_err(|e| {
        JobError::Setup(format!(
            "cannot start script {} in {}: {e}",
            program.display(),
            ctx.work_dir.display()
        ))
    })?;
    let pid = Pid::from_raw(child.id() as i32);
    tracing::debug!(
        target: JOB_LOG_TARGET,
        task_id = ctx.task_id.as_str(),
        pid = pid.as_raw(),
        program = %program.display(),
        "script started"
    );

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut pumps = 0;
    if let Some(stdout) = child.stdout.take() {
        spawn_pump(stdout, "stdout", &ctx.task_id, done_tx.clone());
        pumps += 1;
    }
    if let Some(stderr) = child.stderr.take() {
        spawn_pump(stderr, "stderr", &ctx.task_id, done_tx);
        pumps += 1;
    }

    wait_for_exit(pid, control, &ctx.task_id);
    // The leader has exited but is not reaped yet, so its pid (the group id) cannot be reused:
    // killing the group now reaches exactly the script's leftovers.
    signal_group(pid, Signal::SIGKILL, &ctx.task_id);
    let status = child.wait().map_err(|e| {
        JobError::Failed(format!("cannot collect the exit status of the script: {e}"))
    })?;

    let deadline = Instant::now() + DRAIN_GRACE;
    for _ in 0..pumps {
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            tracing::warn!(
                target: JOB_LOG_TARGET,
                task_id = ctx.task_id.as_str(),
                "a process outside the script's process group still holds its output open; \
                 not waiting for it"
            );
            break;
        }
    }
    exit_result(status)
}

/// A program with a `/` is a path relative to the work directory; a bare name is left for the
/// `PATH` search, as a shell would.
fn resolve_program(program: &str, work_dir: &Path) -> PathBuf {
    let path = Path::new(program);
    if path.is_relative() && program.contains('/') {
        // Drop "./" parts so messages show "/sandbox/run.sh", not "/sandbox/./run.sh".
        let relative: PathBuf = path
            .components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect();
        work_dir.join(relative)
    } else {
        path.to_path_buf()
    }
}

/// Waits until the script's process exits (without reaping it), forwarding cancellation as
/// signals to its process group.
fn wait_for_exit(pid: Pid, control: &JobControl, task_id: &str) {
    let mut term_sent = false;
    let mut kill_sent = false;
    let mut seen = control.generation();
    loop {
        // WNOWAIT leaves the child a zombie so its group id stays reserved until `wait`.
        match waitid(
            Id::Pid(pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        ) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(_) => return,
            Err(error) => {
                // Only possible if something else reaped our child; `wait` will report it.
                tracing::warn!(target: JOB_LOG_TARGET, task_id, %error, "waitid on the script failed");
                return;
            }
        }
        if control.is_force_killed() && !kill_sent {
            signal_group(pid, Signal::SIGKILL, task_id);
            kill_sent = true;
        } else if control.is_cancelled() && !term_sent {
            signal_group(pid, Signal::SIGTERM, task_id);
            term_sent = true;
        }
        seen = control.wait_change(seen, POLL);
    }
}

fn signal_group(pgid: Pid, signal: Signal, task_id: &str) {
    match killpg(pgid, signal) {
        // ESRCH: nobody left in the group, which is the goal.
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => tracing::warn!(
            target: JOB_LOG_TARGET,
            task_id,
            %error,
            "cannot send {signal} to the script's process group {pgid}"
        ),
    }
}

/// Logs each line of a child's output stream on its own thread, under the caller's `tracing`
/// dispatcher, then reports completion.
fn spawn_pump(
    stream: impl Read + Send + 'static,
    name: &'static str,
    task_id: &str,
    done: mpsc::Sender<()>,
) {
    let task_id = task_id.to_owned();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    std::thread::Builder::new()
        .name(format!("script-{name}"))
        .spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut line) {
                        Ok(0) => break,
                        Ok(_) => {
                            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                                line.pop();
                            }
                            let text = String::from_utf8_lossy(&line);
                            tracing::info!(
                                target: JOB_LOG_TARGET,
                                task_id = task_id.as_str(),
                                stream = name,
                                "{text}"
                            );
                        }
                        Err(error) => {
                            tracing::warn!(
                                target: JOB_LOG_TARGET,
                                task_id = task_id.as_str(),
                                stream = name,
                                %error,
                                "cannot read script output"
                            );
                            break;
                        }
                    }
                }
            });
            let _ = done.send(());
        })
        // Without a thread the pipe would fill and block the script; better to fail loudly.
        .map(drop)
        .unwrap_or_else(|e| tracing::error!(%e, "cannot start the script output reader"));
}

fn exit_result(status: ExitStatus) -> Result<(), JobError> {
    if status.success() {
        return Ok(());
    }
    if let Some(code) = status.code() {
        return Err(JobError::Failed(format!(
            "script exited with status {code}"
        )));
    }
    match status.signal() {
        Some(number) => {
            let name = Signal::try_from(number)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|_| "an unknown signal".to_owned());
            Err(JobError::Failed(format!(
                "script was killed by signal {number} ({name})"
            )))
        }
        None => Err(JobError::Failed(format!("script ended with {status}"))),
    }
}
