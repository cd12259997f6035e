//! `shardex-executor`: the Mesos custom executor a Mesos agent fetches and starts. Thin: the
//! work is in `shardex_executor`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use shardex_executor::{ExecutorConfig, ExecutorFlags, OnSetupError};
use shardex_logging::{self as logging, LogFormat};
use shardex_mesos::duration;

/// Shardex's Mesos executor. A Mesos agent starts it in the executor's sandbox with the
/// MESOS_* environment of the v1 executor HTTP API; it runs the sharded jobs the Shardex
/// scheduler launches on it. Durations use Mesos' format: 500ms, 5secs, 10mins, 1hrs.
#[derive(Debug, Parser)]
#[command(name = "shardex-executor", version)]
struct Args {
    /// What a task that cannot be set up (bad payload, missing or incompatible plugin, invalid
    /// cron, plugin panic) does to the executor: stop it (every other task gets a terminal
    /// update naming the cause), or fail only that task.
    #[arg(long, value_enum, default_value_t = OnSetupError::StopExecutor)]
    on_setup_error: OnSetupError,

    /// Exit cleanly after this long without any task. Default: stay until SHUTDOWN.
    #[arg(long, value_parser = mesos_duration)]
    idle_timeout: Option<Duration>,

    /// Kill grace period when neither the KILL nor the task has a kill policy.
    #[arg(long, value_parser = mesos_duration, default_value = "3secs")]
    kill_grace: Duration,

    /// How long to wait for the agent to acknowledge terminal updates before exiting.
    #[arg(long, value_parser = mesos_duration, default_value = "60secs")]
    ack_timeout: Duration,

    /// Log line format. Filter with RUST_LOG (default: info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Internal: run as the worker process of one task (process isolation). The executor
    /// starts these itself.
    #[arg(long, hide = true)]
    worker: bool,
}

fn mesos_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(args.log_format, "info");
    if args.worker {
        return shardex_executor::worker::serve();
    }
    let flags = ExecutorFlags {
        on_setup_error: args.on_setup_error,
        idle_timeout: args.idle_timeout,
        default_kill_grace: args.kill_grace,
        ack_timeout: args.ack_timeout,
    };
    // Before any thread exists: this also scrubs the auth token from the environment.
    let config = match ExecutorConfig::from_process_env(flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("shardex-executor: {error}");
            return ExitCode::from(2);
        }
    };
    // One thread: the loop owns every decision and only waits on sockets, timers and
    // channels (job code runs on threads or processes of its own). Worker threads added a
    // wake-up of another thread to every UPDATE (spawned on one, answered to the loop on
    // another); see the commit that made this change for the figures.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shardex-executor: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(shardex_executor::run(config))
}
