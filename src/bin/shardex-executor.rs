//! `shardex-executor`: the Mesos custom executor a Mesos agent fetches and starts. Thin: the
//! work is in `shardex::executor`.

use clap::Parser;

/// Shardex's Mesos executor. A Mesos agent starts it in the executor's sandbox with the
/// MESOS_* environment of the v1 executor HTTP API; it runs the sharded jobs the Shardex
/// scheduler launches on it.
#[derive(Debug, Parser)]
#[command(name = "shardex-executor", version)]
struct Args {}

fn main() -> std::process::ExitCode {
    let _args = Args::parse();
    eprintln!("shardex-executor: the executor runtime is not part of this build yet");
    std::process::ExitCode::FAILURE
}
