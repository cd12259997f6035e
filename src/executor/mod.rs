//! `shardex-executor`: a Mesos custom executor speaking the v1 executor HTTP API.
//!
//! Follow one LAUNCH through the files in this order: `config` (what the agent's environment
//! says, with `ssl_env` for its `LIBPROCESS_SSL_*` part), `core` (every decision, without I/O: connection, tasks, updates, timers), `runtime`
//! (the thin loop that performs the core's actions), `ledger`
//! (updates and tasks the agent has not acknowledged), `task` (one task's state, kill grace,
//! daemon cron), `jobs` (where plugin and script code runs), `worker` (the worker processes of
//! process isolation).

mod config;
mod core;
mod job_threads;
mod jobs;
mod ledger;
mod link;
pub mod plugin;
mod runtime;
mod ssl_env;
mod stopping;
mod task;
pub mod worker;

pub use config::{ConfigError, ExecutorConfig, ExecutorFlags, OnSetupError};
/// The sans-I/O core, for drivers other than [`run`] (the fuzz targets in `fuzz/`).
pub use core::{Action, CallError, Core, Input, Now};
pub use jobs::{JobReport, Outcome};
pub use runtime::run;
