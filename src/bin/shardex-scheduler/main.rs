//! `shardex-scheduler`: the Shardex Mesos framework. Thin: the work is in `shardex_scheduler`.
//!
//! `shardex-scheduler [flags]` runs the scheduler; `shardex-scheduler demo` runs the narrated
//! demo of the whole stack on the embedded cluster; `shardex-scheduler ctl …` talks to a running
//! scheduler's REST API.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shardex_local::{LocalCluster, LocalClusterConfig};
use shardex_logging::{self as logging, LogFormat};
use shardex_scheduler::{
    Config, DriverError, RestAuth, Scheduler, SchedulerError, Store, StoreAddress, ZkOptions,
    check_exposure,
};

/// Shardex's Mesos scheduler: fires sharded jobs by cron, places one task per sharding item and
/// fails over crashed shards.
#[derive(Debug, Parser)]
#[command(name = "shardex-scheduler", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file (connection, tuning, apps and jobs registered at start).
    #[arg(long, env = "SHARDEX_CONFIG")]
    config: Option<PathBuf>,
    /// The master's scheduler endpoint: `host:port` or `http://host:5050/api/v1/scheduler`;
    /// several, comma-separated, tried in turn; or `zk://host:port,…/mesos`. Overrides
    /// `master` of the config file.
    #[arg(long, env = "SHARDEX_MASTER")]
    master: Option<String>,
    /// The store file. Overrides `store` of the config file [default: shardex-scheduler.redb].
    #[arg(long, env = "SHARDEX_STORE")]
    store: Option<PathBuf>,
    /// Address of the REST API, /metrics and /health. Overrides `listen` of the config file
    /// [default: 127.0.0.1:8899].
    #[arg(long, env = "SHARDEX_LISTEN")]
    listen: Option<String>,
    /// A file holding the REST API's bearer token, required on every mutating request.
    /// Overrides `rest.token_file` of the config file.
    #[arg(long, env = "SHARDEX_REST_TOKEN_FILE")]
    rest_token_file: Option<PathBuf>,
    /// Serve the REST API beyond loopback without a token. Anyone who reaches it can then run
    /// commands on every agent (script jobs); without this flag the scheduler refuses to start.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Start the embedded single-machine Mesos cluster in-process and run against it. Apps
    /// without an executor URI then use the `shardex-executor` next to this binary.
    #[arg(long, conflicts_with = "master")]
    local: bool,
    /// For fault tests: kill this process with SIGKILL at a point of its conversation with the
    /// master, `before:<CALL>` (after the commit that decided it) or `after:<CALL>` (once the
    /// master accepted it), optionally `#n` for the n-th such call: `before:ACCEPT`,
    /// `before:ACKNOWLEDGE`, `after:RECONCILE`. Never in production.
    #[arg(long, env = "SHARDEX_CRASH_AT")]
    crash_at: Option<String>,
    /// `--local`: the embedded agent's resources.
    #[arg(long, default_value = "cpus:4;mem:4096;disk:10240;ports:[31000-32000]")]
    local_resources: String,
    /// `--local`: the embedded agent's work directory (sandboxes, and the agent id it keeps
    /// across restarts so that its tasks are reconciled at once) [default: beside the store,
    /// named after it: `shardex-scheduler.local` for `shardex-scheduler.redb`].
    #[arg(long)]
    local_work_dir: Option<PathBuf>,
    /// Log line format; filter with RUST_LOG (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo: the embedded cluster, this scheduler and the real executor on this machine,
    /// a sharded transient job, a daemon job, and an executor killed mid-run whose shards fail
    /// over. Needs `cargo build --workspace` (the executor and example plugins next to this
    /// binary).
    Demo {
        /// Where sandboxes, the store and the demo's config go [default: a fresh temporary
        /// directory]; kept afterwards.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// After the demo, keep everything running until Ctrl-C to explore the REST API.
        #[arg(long)]
        keep_running: bool,
        /// Start the stack and the demo's jobs and serve them until Ctrl-C, without the
        /// narrated phases: explore them with the web console or `ctl` (crunch runs when
        /// triggered).
        #[arg(long, conflicts_with = "keep_running")]
        serve: bool,
    },
    /// Store maintenance, with every scheduler of the store stopped.
    Store {
        #[command(subcommand)]
        action: StoreCommand,
    },
    /// High availability on ZooKeeper.
    Ha {
        #[command(subcommand)]
        action: HaCommand,
    },
    /// The REST API from a terminal: jobs, runs, tasks and their logs, queues; trigger,
    /// enable, disable, release. Reads print tables.
    Ctl(shardex_scheduler::ctl::CtlArgs),
}

#[derive(Debug, Subcommand)]
enum HaCommand {
    /// Who leads and since when, the standbys and their ZooKeeper sessions, the epoch, and the
    /// rows of each table, read from ZooKeeper.
    Status {
        /// The store's address, `zk://host:port[,host:port…]/root` [default: `ha.zookeeper` of
        /// `--config`].
        #[arg(long)]
        zookeeper: Option<String>,
        /// ZooKeeper `digest` credentials, `user:password`.
        #[arg(long, env = "SHARDEX_ZK_DIGEST", hide_env_values = true)]
        zk_digest: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy a whole store into a new, empty one: redb file to ZooKeeper or back. Stores are
    /// `redb:PATH` (or a plain path) and `zk://host:port[,host:port…]/path`.
    Migrate {
        /// The store to copy.
        #[arg(long)]
        from: StoreAddress,
        /// The new store; refused unless it is empty.
        #[arg(long)]
        to: StoreAddress,
        /// ZooKeeper `digest` credentials, `user:password`, for a `zk://` store created with
        /// them.
        #[arg(long, env = "SHARDEX_ZK_DIGEST", hide_env_values = true)]
        zk_digest: Option<String>,
    },
}

/// The `shardex-executor` built next to this binary.
fn sibling_executor() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let executor = exe.parent()?.join("shardex-executor");
    executor
        .is_file()
        .then(|| executor.to_string_lossy().into_owned())
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

/// `--local`'s default work dir: beside the store, named after it.
fn default_local_work_dir(store: &std::path::Path) -> PathBuf {
    let stem = store
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "shardex-scheduler".into());
    store.with_file_name(format!("{stem}.local"))
}

async fn run(args: Args) -> Result<(), Failure> {
    if let Some(spec) = &args.crash_at {
        shardex_scheduler::arm_crash_point(spec).map_err(|e| e.to_string())?;
    }
    let mut config = load_config(args.config.as_ref())?;
    if args.local && config.executor.uri.is_none() {
        config.executor.uri = sibling_executor();
    }
    let store = args
        .store
        .or_else(|| config.store.clone())
        .unwrap_or_else(|| PathBuf::from("shardex-scheduler.redb"));
    let listen = args
        .listen
        .or_else(|| config.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8899".into());
    if let Some(token_file) = &args.rest_token_file {
        config.rest.token_file = Some(token_file.clone());
    }
    let auth = RestAuth::from_config(&config.rest).map_err(|e| e.to_string())?;
    check_exposure(&listen, &auth, args.insecure_no_auth).map_err(|e| e.to_string())?;
    if args.insecure_no_auth && !auth.has_token() && !shardex_scheduler::is_loopback(&listen) {
        tracing::warn!(
            %listen,
            "--insecure-no-auth: the REST API is open to anyone who reaches {listen}"
        );
    }
    if !args.local && args.master.is_none() && config.master.is_none() {
        return Err(
            "no master: give --master host:port (or `master` in the config file), or --local"
                .into(),
        );
    }
    // TLS settings against the masters, before anything starts.
    if args.local {
        if config.mesos.tls.is_configured() {
            return Err(
                "--local runs the embedded cluster over plain http: remove [mesos.tls] from the \
                 config, or serve the cluster with `shardex-local --tls-cert-file …` and give \
                 its https:// URL as --master"
                    .into(),
            );
        }
    } else if let Some(master) = args.master.as_deref().or(config.master.as_deref()) {
        let what = if args.master.is_some() {
            "--master"
        } else {
            "the config file"
        };
        config
            .mesos
            .tls
            .check_masters(what, master)
            .map_err(|e| e.to_string())?;
    }
    if config.ha.zookeeper.is_some() {
        if args.local {
            return Err(
                "--local runs one scheduler on the embedded cluster; a config with \
                        ha.zookeeper needs --master (or `master` in the config file)"
                    .into(),
            );
        }
        let master = args
            .master
            .or_else(|| config.master.clone())
            .unwrap_or_default();
        let stop = tokio_util::sync::CancellationToken::new();
        let ha = shardex_scheduler::ha::run::run(&config, &listen, &master, stop.clone(), |addr| {
            eprintln!("shardex-scheduler: REST API on http://{addr}");
        });
        tokio::pin!(ha);
        // Fenced out by Mesos too means another instance leads now: this one may stand by.
        let ha_failure = |error: SchedulerError| {
            let mut failure = Failure::from(error);
            if failure.status == EXIT_FENCED_OUT {
                failure.status = EXIT_LEADERSHIP_LOST;
            }
            failure
        };
        return tokio::select! {
            _ = terminated() => {
                tracing::info!("terminating");
                stop.cancel();
                ha.await.map_err(ha_failure)
            }
            result = &mut ha => result.map_err(ha_failure),
        };
    }
    // Everything that can fail on its own (the store's lock, the REST address, the config's
    // registrations) is settled before anything else starts: a failed start leaves nothing
    // behind.
    let prepared = Scheduler::prepare(&config, &store, &listen)
        .await
        .map_err(Failure::from)?;
    let mut local = None;
    if args.local {
        let work_dir = args
            .local_work_dir
            .clone()
            .unwrap_or_else(|| default_local_work_dir(&store));
        let cluster = LocalCluster::start(LocalClusterConfig {
            resources: args.local_resources.clone(),
            work_dir: Some(work_dir),
            // Nothing in this process reads the observation log: keep none.
            call_log_limit: 0,
            ..LocalClusterConfig::default()
        })
        .await
        .map_err(|e| format!("cannot start the embedded cluster: {e}"))?;
        eprintln!(
            "shardex-scheduler: embedded Mesos master on {}, sandboxes under {}",
            cluster.master_url(),
            cluster.work_dir().display()
        );
        local = Some(cluster);
    }
    let master = match &local {
        Some(cluster) => cluster.master_url(),
        None => args
            .master
            .or_else(|| config.master.clone())
            .unwrap_or_default(),
    };
    let mut scheduler = prepared
        .start(&config, &master)
        .await
        .map_err(Failure::from)?;
    // Tests and scripts read the bound address from here (the port may be 0 in the config).
    eprintln!(
        "shardex-scheduler: REST API on http://{}",
        scheduler.rest_addr()
    );
    let stopped = tokio::select! {
        _ = terminated() => None,
        error = scheduler.wait() => Some(error),
    };
    if stopped.is_none() {
        tracing::info!("terminating");
    }
    // Either way the REST API finishes what it is answering (a request the store could not
    // record hears so) before the process exits.
    scheduler.shutdown().await;
    match stopped {
        None => Ok(()),
        Some(error) => Err(Failure::from(error)),
    }
}

/// Exit status when another scheduler took the framework over: a supervisor must not restart
/// this one (it would take the framework back, and the two would fence each other in turn).
/// The systemd unit lists it in `RestartPreventExitStatus`.
const EXIT_FENCED_OUT: u8 = 3;

/// Exit status of an HA leader that lost its lease (its ZooKeeper session expired or another
/// scheduler took the epoch): restarted, it joins the election again as a standby.
const EXIT_LEADERSHIP_LOST: u8 = 4;

/// Why the scheduler stopped, and the exit status that says so.
struct Failure {
    message: String,
    status: u8,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure { message, status: 1 }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::from(message.to_owned())
    }
}

impl From<SchedulerError> for Failure {
    fn from(error: SchedulerError) -> Failure {
        let status = match &error {
            SchedulerError::Driver(DriverError::FencedOut { .. }) => EXIT_FENCED_OUT,
            SchedulerError::LeadershipLost(_) => EXIT_LEADERSHIP_LOST,
            SchedulerError::Store(shardex_scheduler::StoreError::Fenced { .. }) => {
                EXIT_LEADERSHIP_LOST
            }
            _ => 1,
        };
        Failure {
            message: error.to_string(),
            status,
        }
    }
}

fn main() -> ExitCode {
    shardex_scheduler::malloc::tune();
    let args = Args::parse();
    if let Some(Command::Demo {
        work_dir,
        keep_running,
        serve,
    }) = args.command
    {
        return demo(work_dir, keep_running, serve, args.log_format);
    }
    if let Some(Command::Store { action }) = args.command {
        logging::init(args.log_format, "warn");
        return store_command(action);
    }
    if let Some(Command::Ha { action }) = args.command {
        logging::init(args.log_format, "warn");
        return ha_command(action, args.config.as_ref());
    }
    if let Some(Command::Ctl(ctl)) = args.command {
        logging::init(args.log_format, "warn");
        return ctl_command(&ctl, args.config.as_ref());
    }
    logging::init(args.log_format, "info");
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("shardex-scheduler: {}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}

/// The async runtime every subcommand runs on; `None` (said on stderr) when it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .inspect_err(|error| {
            eprintln!("shardex-scheduler: cannot start the async runtime: {error}");
        })
        .ok()
}

/// `shardex-scheduler ha …`.
fn ha_command(action: HaCommand, config: Option<&PathBuf>) -> ExitCode {
    let HaCommand::Status {
        zookeeper,
        zk_digest,
    } = action;
    let config = match load_config(config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("shardex-scheduler: {error}");
            return ExitCode::FAILURE;
        }
    };
    let Some(address) = zookeeper.or(config.ha.zookeeper.clone()) else {
        eprintln!(
            "shardex-scheduler: ha status: no ZooKeeper address: give --zookeeper zk://… or a \
             --config with ha.zookeeper"
        );
        return ExitCode::FAILURE;
    };
    let target: shardex_scheduler::ZkTarget = match address.parse() {
        Ok(target) => target,
        Err(error) => {
            eprintln!("shardex-scheduler: ha status: {error}");
            return ExitCode::FAILURE;
        }
    };
    let options = ZkOptions {
        digest: zk_digest.or(config.ha.digest.clone()),
        ..ZkOptions::default()
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(shardex_scheduler::ha::status::read(&target, &options)) {
        Ok(status) => {
            println!("{status}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("shardex-scheduler: ha status: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `shardex-scheduler ctl …`.
fn ctl_command(ctl: &shardex_scheduler::ctl::CtlArgs, config: Option<&PathBuf>) -> ExitCode {
    let config = match config.map(|path| load_config(Some(path))).transpose() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("shardex-scheduler ctl: {error}");
            return ExitCode::FAILURE;
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(shardex_scheduler::ctl::run(
        ctl,
        config.as_ref(),
        &mut stdout,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shardex-scheduler ctl: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `shardex-scheduler store …`.
fn store_command(action: StoreCommand) -> ExitCode {
    let StoreCommand::Migrate {
        from,
        to,
        zk_digest,
    } = action;
    let options = ZkOptions {
        digest: zk_digest,
        ..ZkOptions::default()
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let holder = format!("store migrate (pid {}) from {from}", std::process::id());
    let result = runtime.block_on(async {
        let mut source = Store::open(&from, &options).await?;
        let mut target = Store::open(&to, &options).await?;
        shardex_scheduler::migrate(&mut source, &mut target, &holder).await
    });
    match result {
        Ok(migrated) => {
            println!("migrated {from} to {to}: {migrated}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("shardex-scheduler: store migrate: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `shardex-scheduler demo`: logs only errors (the narration says what the warnings would), so
/// the output stays readable; RUST_LOG shows more.
fn demo(
    work_dir: Option<PathBuf>,
    keep_running: bool,
    serve: bool,
    log_format: LogFormat,
) -> ExitCode {
    logging::init(log_format, "error");
    let Some(bin_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
    else {
        eprintln!("shardex-scheduler: cannot tell where this binary is");
        return ExitCode::FAILURE;
    };
    let options = crate::demo::DemoOptions {
        work_dir,
        bin_dir,
        deadline: std::time::Duration::from_secs(110),
        keep_running,
        serve,
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(crate::demo::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shardex-scheduler demo: {error}");
            ExitCode::FAILURE
        }
    }
}
