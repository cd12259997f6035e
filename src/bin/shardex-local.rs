//! `shardex-local`: serves an embedded single-machine Mesos cluster (master + agent) on
//! loopback, prints its endpoints, and runs until Ctrl-C or SIGTERM, which kill every executor.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use shardex_local::credentials::Credentials;
use shardex_local::{LocalCluster, LocalClusterConfig, LocalTls};
use shardex_logging::{self as logging, LogFormat};
use shardex_mesos::duration;

/// An embedded Mesos master and agent speaking the real v1 scheduler and executor APIs.
#[derive(Debug, Parser)]
#[command(name = "shardex-local", version)]
struct Args {
    /// Address both endpoints listen on.
    #[arg(long, default_value = "127.0.0.1")]
    ip: Ipv4Addr,
    /// Master port (0 picks a free one).
    #[arg(long, default_value_t = 5050)]
    port: u16,
    /// Agent port (0 picks a free one).
    #[arg(long, default_value_t = 5051)]
    agent_port: u16,
    /// Agent work directory (sandboxes); a fresh temporary directory when absent.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Agent resources, Mesos syntax.
    #[arg(long, default_value = "cpus:4;mem:4096;disk:10240;ports:[31000-32000]")]
    resources: String,
    /// Hostname reported in MasterInfo, AgentInfo and offers.
    #[arg(long, default_value = "127.0.0.1")]
    hostname: String,
    /// Master → scheduler heartbeat interval (Mesos duration, e.g. 15secs).
    #[arg(long, default_value = "15secs", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// Allocation batch interval.
    #[arg(long, default_value = "1secs", value_parser = parse_duration)]
    allocation_interval: Duration,
    #[arg(long, default_value = "1mins", value_parser = parse_duration)]
    executor_registration_timeout: Duration,
    #[arg(long, default_value = "2secs", value_parser = parse_duration)]
    executor_reregistration_timeout: Duration,
    #[arg(long, default_value = "5secs", value_parser = parse_duration)]
    executor_shutdown_grace_period: Duration,
    #[arg(long, default_value = "15mins", value_parser = parse_duration)]
    recovery_timeout: Duration,
    /// Require executors to authenticate with the JWT passed in their environment.
    #[arg(long)]
    authenticate_executors: bool,
    /// Require frameworks to authenticate with HTTP Basic (`--authenticate_http_frameworks`):
    /// only the principals of `--credentials` may use the scheduler API.
    #[arg(long, requires = "credentials")]
    authenticate_frameworks: bool,
    /// Mesos' credentials file: JSON `{"credentials": [{"principal": …, "secret": …}]}` or
    /// lines of `principal secret`.
    #[arg(long, requires = "authenticate_frameworks")]
    credentials: Option<PathBuf>,
    /// Removed frameworks remembered, so that their ids cannot subscribe again
    /// (`--max_completed_frameworks`); the oldest is forgotten first.
    #[arg(long, default_value_t = 50)]
    max_completed_frameworks: usize,
    /// Serve both APIs over TLS (https://) with this certificate (PEM); it must name --ip (an
    /// IP subjectAltName). Executors get LIBPROCESS_SSL_ENABLED=true and connect with https.
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// A CA bundle (PEM): executors verify the agent with it (LIBPROCESS_SSL_CA_FILE and
    /// LIBPROCESS_SSL_VERIFY_SERVER_CERT=true), and client certificates are checked against it.
    #[arg(long, requires = "tls_cert_file")]
    tls_ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate signed by --tls-ca-file
    /// (LIBPROCESS_SSL_REQUIRE_CLIENT_CERT).
    #[arg(long, requires = "tls_ca_file")]
    tls_require_client_cert: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    // No colour codes when stderr is a file, as in the other binaries.
    logging::init(LogFormat::Text, "info");
    let args = Args::parse();
    let framework_credentials = match &args.credentials {
        Some(path) => match Credentials::read(path) {
            Ok(credentials) => Some(credentials),
            Err(error) => {
                eprintln!("shardex-local: {error}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let config = LocalClusterConfig {
        work_dir: args.work_dir,
        resources: args.resources,
        hostname: args.hostname,
        ip: args.ip,
        master_port: args.port,
        agent_port: args.agent_port,
        executor_registration_timeout: args.executor_registration_timeout,
        executor_reregistration_timeout: args.executor_reregistration_timeout,
        executor_shutdown_grace_period: args.executor_shutdown_grace_period,
        recovery_timeout: args.recovery_timeout,
        heartbeat_interval: args.heartbeat_interval,
        allocation_interval: args.allocation_interval,
        executor_authentication: args.authenticate_executors,
        framework_credentials,
        max_completed_frameworks: args.max_completed_frameworks,
        // Nothing in this process reads the observation log: keep none.
        call_log_limit: 0,
        tls: args
            .tls_cert_file
            .zip(args.tls_key_file)
            .map(|(cert_file, key_file)| LocalTls {
                cert_file,
                key_file,
                ca_file: args.tls_ca_file,
                require_client_cert: args.tls_require_client_cert,
            }),
        ..LocalClusterConfig::default()
    };
    let cluster = match LocalCluster::start(config).await {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("shardex-local: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("master: {}", cluster.master_url());
    println!("agent: {}", cluster.agent_url());
    println!("agent id: {}", cluster.agent_id());
    println!("work dir: {}", cluster.work_dir().display());

    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                eprintln!("shardex-local: cannot watch SIGTERM: {error}");
                cluster.shutdown().await;
                return ExitCode::FAILURE;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("shardex-local: shutting down; killing executors");
    cluster.shutdown().await;
    ExitCode::SUCCESS
}
