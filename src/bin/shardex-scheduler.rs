//! `shardex-scheduler`: the Shardex Mesos framework. Thin: the work is in `shardex::scheduler`.
//!
//! Flags only, no positional arguments, so that subcommands (`demo`) can be added later.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use shardex::scheduler::{Config, Options, Scheduler};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Shardex's Mesos scheduler: fires sharded jobs by cron, places one task per sharding item and
/// fails over crashed shards.
#[derive(Debug, Parser)]
#[command(name = "shardex-scheduler", version)]
struct Args {
    /// TOML configuration file (connection, tuning, apps and jobs registered at start).
    #[arg(long, env = "SHARDEX_CONFIG")]
    config: Option<PathBuf>,
    /// The leading master's scheduler endpoint: `host:port` or
    /// `http://host:5050/api/v1/scheduler`. Overrides `master` of the config file.
    #[arg(long, env = "SHARDEX_MASTER")]
    master: Option<String>,
    /// The store file. Overrides `store` of the config file [default: shardex-scheduler.redb].
    #[arg(long, env = "SHARDEX_STORE")]
    store: Option<PathBuf>,
    /// Address of the REST API, /metrics and /health. Overrides `listen` of the config file
    /// [default: 127.0.0.1:8899].
    #[arg(long, env = "SHARDEX_LISTEN")]
    listen: Option<String>,
    /// Start the embedded single-machine Mesos cluster in-process and run against it.
    #[arg(long, conflicts_with = "master")]
    local: bool,
    /// Log line format; filter with RUST_LOG (default `info`).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, String> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    Config::from_toml(&text, &path.display().to_string()).map_err(|e| e.to_string())
}

async fn terminated() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(args: Args) -> Result<(), String> {
    let config = load_config(args.config.as_ref())?;
    if args.local {
        return Err(
            "--local needs the embedded cluster (shardex::local), which is not part of this build"
                .into(),
        );
    }
    let master = args
        .master
        .or_else(|| config.master.clone())
        .ok_or("no master: give --master host:port (or `master` in the config file), or --local")?;
    let store = args
        .store
        .or_else(|| config.store.clone())
        .unwrap_or_else(|| PathBuf::from("shardex-scheduler.redb"));
    let listen = args
        .listen
        .or_else(|| config.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8899".into());
    let mut scheduler = Scheduler::start(Options {
        config,
        master,
        store,
        listen,
    })
    .await
    .map_err(|e| e.to_string())?;
    // Tests and scripts read the bound address from here (the port may be 0 in the config).
    eprintln!(
        "shardex-scheduler: REST API on http://{}",
        scheduler.rest_addr()
    );
    tokio::select! {
        _ = terminated() => {
            tracing::info!("terminating");
            scheduler.shutdown().await;
            Ok(())
        }
        error = scheduler.wait() => Err(error.to_string()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shardex-scheduler: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shardex-scheduler: {error}");
            ExitCode::FAILURE
        }
    }
}
