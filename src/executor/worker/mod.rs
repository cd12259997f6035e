//! Process isolation: each task whose job has `isolation = "process"` runs its plugin or script
//! code in a worker process, one task at a time, so a job that segfaults, aborts, exits or is killed by
//! the OOM killer ends only its task, with the cause named.
//!
//! - The worker is this same executor binary started again as `shardex-executor --worker`
//!   (through `/proc/self/exe`, so nothing new is fetched and a replaced file on disk does not
//!   matter), in its own process group, spawned with `posix_spawn` (no pre-exec code: forking
//!   the executor's page tables was most of a worker's start-up cost); the worker arms
//!   `PR_SET_PDEATHSIG = SIGKILL` first thing, then checks its parent is still the executor, so
//!   it never outlives it.
//! - One task at a time per worker, so a crash maps to exactly one task. A worker whose run
//!   ended cleanly waits in a pool for the next task of the same job and plugin: the process
//!   start-up and the plugin load are paid once per worker, not once per task. What that
//!   trades: plugin globals and threads a job leaves behind carry over to its next task in the
//!   same worker (as they do for every task in thread mode), never to another job's. Workers
//!   that were force-killed, broke the protocol or ran with resource guards are never reused;
//!   idle ones are capped per job and in all, and retired after a minute unused. One spare
//!   worker, started after the last new one, serves the first task of a job off its path.
//! - They talk over a Unix socket pair, the worker's stdin (`protocol.rs`): length-prefixed
//!   bincode frames, `Start`/`Fire`/`Cancel` (each naming its run) to the worker,
//!   `Ready`/`SetupFailed`/`FireDone`/`Done` back. Job logs, progress notes and `set_error` stay where they are in thread mode:
//!   logs and progress go to the shared stderr in the executor's log format, errors come back in
//!   the outcome.
//! - `process.rs` is the executor's side (start, cancel, fire, SIGTERM → SIGKILL of the group,
//!   reaping and naming how the worker died); `serve.rs` is the worker's side.

mod process;
pub mod protocol;
mod serve;

use std::ffi::OsString;
use std::path::PathBuf;

pub use process::{Pool, WorkerProcess};
pub use serve::serve;

/// The hidden flag that starts the executor binary as a worker.
pub const WORKER_FLAG: &str = "--worker";
/// The environment variable holding the executor's pid: a worker whose parent is not (or no
/// longer) that process exits at once.
pub const WORKER_PARENT_ENV: &str = "SHARDEX_WORKER_PARENT";

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
