//! Running job code: plugins loaded from `.so` files through the `shardex-job` C ABI, and script
//! jobs run as child processes.
//!
//! In the order the executor uses it:
//! - [`PluginLoader`] resolves a configured plugin path inside the
//!   allowed root (the sandbox), `dlopen`s it, checks the descriptor handshake and caches one
//!   [`Plugin`] per canonical file, never unloading it.
//! - [`Plugin::instantiate`] creates a task's [`JobInstance`] from a [`JobContext`] and
//!   [`HostBindings`] (the task's [`JobControl`] plus an optional progress sink); plugin log
//!   lines become `tracing` events under the [`JOB_LOG_TARGET`] target with a `task_id` field.
//! - [`JobInstance::run_simple`] / [`JobInstance::run_dataflow`] run it; [`JobError`] tells an
//!   ordinary job failure from a plugin panic and from a setup problem.
//! - [`run_script`] runs a script job's command line without a shell.
//!
//! A plugin runs inside the executor process: an `abort`, a segfault or a loop that ignores
//! cancellation cannot be contained here, and ends (or occupies) the executor. Mesos then reports
//! the task and the scheduler fails it over.

mod context;
mod control;
mod elf;
mod error;
mod host;
mod instance;
mod kind;
mod loader;
mod script;

pub use context::JobContext;
pub use control::JobControl;
pub use error::{JobError, PluginError};
pub use host::{HostBindings, JOB_LOG_TARGET, ProgressSink};
pub use instance::{DataflowRun, JobInstance, Plugin};
pub use kind::{JobKind, JobKinds};
pub use loader::PluginLoader;
pub use script::{run_script, script_environment, sharding_context_json};

/// The plugin ABI version this executor implements.
pub const ABI_VERSION: u32 = shardex_job::abi::ABI_VERSION;
