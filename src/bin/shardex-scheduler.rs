//! `shardex-scheduler`: the Shardex Mesos framework. Thin: the work is in `shardex::scheduler`.

use clap::Parser;

/// Shardex's Mesos scheduler: fires sharded jobs by cron, places one task per sharding item and
/// fails over crashed shards.
#[derive(Debug, Parser)]
#[command(name = "shardex-scheduler", version)]
struct Args {}

fn main() -> std::process::ExitCode {
    let _args = Args::parse();
    eprintln!("shardex-scheduler: the scheduler is not part of this build yet");
    std::process::ExitCode::FAILURE
}
