//! Process isolation: each task whose job has `isolation = "process"` runs its plugin or script
//! code in a worker process of its own, so a job that segfaults, aborts, exits or is killed by
//! the OOM killer ends only its task, with the cause named.
//!
//! - The worker is this same executor binary started again as `shardex-executor --worker`
//!   (through `/proc/self/exe`, so nothing new is fetched and a replaced file on disk does not
//!   matter), in its own process group, with `PR_SET_PDEATHSIG = SIGKILL` so it never outlives
//!   the executor.
//! - One worker per task: a crash maps to exactly one task, and a daemon's instances live as
//!   long as its task. (A pool would save a fork per task but would have to charge one crash to
//!   every task it held.)
//! - They talk over a Unix socket pair on the worker's fd 3 (`protocol.rs`): length-prefixed
//!   bincode frames, `Start`/`Fire`/`Cancel` to the worker, `Ready`/`SetupFailed`/`FireDone`/
//!   `Done` back. Job logs, progress notes and `set_error` stay where they are in thread mode:
//!   logs and progress go to the shared stderr in the executor's log format, errors come back in
//!   the outcome.
//! - `process.rs` is the executor's side (start, cancel, fire, SIGTERM → SIGKILL of the group,
//!   reaping and naming how the worker died); `serve.rs` is the worker's side.

mod process;
pub mod protocol;
mod serve;

use std::ffi::OsString;
use std::path::PathBuf;

pub use process::WorkerProcess;
pub use serve::serve;

/// The hidden flag that starts the executor binary as a worker.
pub const WORKER_FLAG: &str = "--worker";
/// The environment variable naming the worker's end of the socket pair.
pub const WORKER_FD_ENV: &str = "SHARDEX_WORKER_FD";

/// How the executor starts a worker process.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl WorkerCommand {
    /// This very binary, with this process's flags (the log format among them) plus
    /// [`WORKER_FLAG`].
    pub fn this_executable() -> WorkerCommand {
        let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
        args.push(WORKER_FLAG.into());
        WorkerCommand {
            program: PathBuf::from("/proc/self/exe"),
            args,
        }
    }
}
