//! Script jobs: run a configured command line as a child process, without a shell.
//!
//! The command line is split into words with POSIX shell quoting rules but no expansion of any
//! kind, and the sharding context is appended as **one** JSON argument, so no job or item
//! parameter can ever be interpreted by a shell (Elastic-Job-Cloud's transient scripts spliced
//! the JSON into `sh -c` and lost its quotes). The same JSON and its fields are also in the
//! environment. The child runs in its own process group in the task's work directory, so
//! cancelling reaches every process it started. Its stdout and stderr are appended to the files
//! `stdout` and `stderr` of that directory, and a failure's message ends with the last lines the
//! run wrote to stderr (at most [`STDERR_TAIL_LINES`] lines and [`STDERR_TAIL_BYTES`] bytes).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

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
/// At most this many of the last lines of stderr go into a failure's message.
pub const STDERR_TAIL_LINES: usize = 20;
/// At most this many bytes of the end of stderr go into a failure's message.
pub const STDERR_TAIL_BYTES: u64 = 4096;
/// The file in the task's work directory receiving the script's standard output.
pub const STDOUT_FILE: &str = "stdout";
/// The file in the task's work directory receiving the script's standard error.
pub const STDERR_FILE: &str = "stderr";

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
    /// Not in Elastic-Job: the task's own work directory (the script's current directory).
    work_dir: &'a str,
}

/// The sharding context as the single JSON argument a script receives, e.g.
/// `{"jobName":"j","taskId":"t","shardingTotalCount":3,"jobParameter":"","shardingItem":1,"shardingParameter":"b","workDir":"/sandbox/tasks/t"}`.
pub fn sharding_context_json(ctx: &JobContext) -> String {
    let json = ShardingContextJson {
        job_name: &ctx.job_name,
        task_id: &ctx.task_id,
        sharding_total_count: ctx.sharding_total_count,
        job_parameter: &ctx.job_parameter,
        sharding_item: ctx.sharding_item,
        sharding_parameter: &ctx.item_parameter,
        work_dir: &ctx.work_dir.to_string_lossy(),
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
        (
            "SHARDEX_WORK_DIR",
            ctx.work_dir.to_string_lossy().into_owned(),
        ),
    ]
}

/// Runs a script job to completion, or until `control` stops it.
///
/// - `command_line` is split like a POSIX shell would split words (quotes and backslashes), with
///   no variable, command or glob expansion. A program containing `/` is resolved against the
///   sandbox (`ctx.sandbox`, where the app's files are); a bare name is looked up on `PATH`.
/// - The child gets the sharding context JSON as its last argument and in
///   [`script_environment`], runs in `ctx.work_dir` with stdin closed, and its stdout and stderr
///   are appended to the files [`STDOUT_FILE`] and [`STDERR_FILE`] there.
/// - [`JobControl::cancel`] sends `SIGTERM` and [`JobControl::force_kill`] `SIGKILL` to the
///   script's process group. When the script itself exits, whatever it left running in its group
///   is killed too: a finished task leaves no processes behind.
/// - Exit status 0 is success; another status or death by signal is [`JobError::Failed`], whose
///   message ends with the last lines this run wrote to stderr. A command line that cannot be
///   split or started, or output files that cannot be opened, are [`JobError::Setup`].
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
    let base = if ctx.sandbox.as_os_str().is_empty() {
        &ctx.work_dir
    } else {
        &ctx.sandbox
    };
    let program = resolve_program(program, base);
    if control.is_cancelled() {
        return Err(JobError::Failed(
            "script not started: the task was cancelled".to_owned(),
        ));
    }

    let stdout = open_output(&ctx.work_dir.join(STDOUT_FILE))?;
    let stderr_path = ctx.work_dir.join(STDERR_FILE);
    let stderr = open_output(&stderr_path)?;
    // Where this run's stderr begins (daemon fires append to the same file).
    let stderr_start = stderr.metadata().map(|m| m.len()).unwrap_or(0);
    let mut command = Command::new(&program);
    command
        .args(args)
        .arg(sharding_context_json(ctx))
        .envs(script_environment(ctx))
        .current_dir(&ctx.work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
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

    wait_for_exit(pid, control, &ctx.task_id);
    // The leader has exited but is not reaped yet, so its pid (the group id) cannot be reused:
    // killing the group now reaches exactly the script's leftovers.
    signal_group(pid, Signal::SIGKILL, &ctx.task_id);
    let status = child.wait().map_err(|e| {
        JobError::Failed(format!("cannot collect the exit status of the script: {e}"))
    })?;

    exit_result(status).map_err(|error| match error {
        JobError::Failed(message) => {
            JobError::Failed(with_stderr_tail(message, &stderr_path, stderr_start))
        }
        other => other,
    })
}

/// Opens a script output file for appending, creating it.
fn open_output(path: &Path) -> Result<File, JobError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            JobError::Setup(format!(
                "cannot open {} for the script's output: {e}",
                path.display()
            ))
        })
}

/// `message`, then the last lines the run wrote to `path` from byte `start` on, if any.
fn with_stderr_tail(message: String, path: &Path, start: u64) -> String {
    match stderr_tail(path, start) {
        Some(tail) => format!(
            "{message}; the end of its stderr ({}):\n{tail}",
            path.display()
        ),
        None => message,
    }
}

/// The last [`STDERR_TAIL_LINES`] lines (at most [`STDERR_TAIL_BYTES`]) written to `path` from
/// byte `start` on; `None` when the run wrote nothing (or only blank lines).
pub fn stderr_tail(path: &Path, start: u64) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let end = file.metadata().ok()?.len();
    let from = start.max(end.saturating_sub(STDERR_TAIL_BYTES));
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    file.take(end - from).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    // A cut in the middle of a line drops that partial line.
    let text = if from > start {
        text.split_once('\n').map_or(&*text, |(_, rest)| rest)
    } else {
        &text
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
    (!tail.trim().is_empty()).then_some(tail)
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
