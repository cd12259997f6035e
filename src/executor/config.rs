//! What the executor knows at start-up: the environment a Mesos agent sets for it
//! (`executorEnvironment()` in Mesos' `src/slave/slave.cpp`) and the operator's flags.
//!
//! Required variables that are missing or malformed stop the executor at once with a message
//! naming the variable, before anything connects. The authentication token is removed from the
//! process environment so jobs and scripts never inherit it (as Mesos' own library does).
//!
//! TLS to the agent comes from the `LIBPROCESS_SSL_*` variables, read as libprocess reads them
//! (`ssl_env.rs`, which notes what Mesos' `openssl.cpp` and `executor.cpp` do): with
//! `LIBPROCESS_SSL_ENABLED` the agent is reached at `https://`.

use std::path::PathBuf;
use std::time::Duration;

use shardex_mesos::TlsConfig;
use shardex_mesos::duration;

use super::ssl_env;

/// Which Mesos environment variable a value came from.
pub mod env {
    pub const AGENT_ENDPOINT: &str = "MESOS_AGENT_ENDPOINT";
    pub const FRAMEWORK_ID: &str = "MESOS_FRAMEWORK_ID";
    pub const EXECUTOR_ID: &str = "MESOS_EXECUTOR_ID";
    pub const SANDBOX: &str = "MESOS_SANDBOX";
    pub const DIRECTORY: &str = "MESOS_DIRECTORY";
    pub const CHECKPOINT: &str = "MESOS_CHECKPOINT";
    pub const RECOVERY_TIMEOUT: &str = "MESOS_RECOVERY_TIMEOUT";
    pub const SUBSCRIPTION_BACKOFF_MAX: &str = "MESOS_SUBSCRIPTION_BACKOFF_MAX";
    pub const SHUTDOWN_GRACE_PERIOD: &str = "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD";
    pub const AUTHENTICATION_TOKEN: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";
    pub const DOMAIN_SOCKET: &str = "MESOS_DOMAIN_SOCKET";
}

/// Agent defaults, used when a variable Mesos only sets in some modes is absent.
const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const DEFAULT_SUBSCRIPTION_BACKOFF_MAX: Duration = Duration::from_secs(2);
const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// What the executor does when one task cannot be set up (bad payload, missing or
/// incompatible plugin, invalid cron, plugin panic) or a job's error policy is `stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnSetupError {
    /// Stop the whole executor: every other task gets a terminal update naming the cause.
    #[default]
    StopExecutor,
    /// Fail only the broken task and keep serving the others.
    FailTask,
}

/// Settings an operator passes on the executor's command line (`ExecutorInfo.command`).
#[derive(Debug, Clone)]
pub struct ExecutorFlags {
    pub on_setup_error: OnSetupError,
    /// Exit cleanly after this long without tasks; `None` keeps the executor until SHUTDOWN.
    pub idle_timeout: Option<Duration>,
    /// Kill grace period when neither the KILL nor the TaskInfo has a kill policy.
    pub default_kill_grace: Duration,
    /// Upper bound on waiting for the agent to acknowledge terminal updates before exiting,
    /// like the 60 s fail-safe of Mesos' own executors.
    pub ack_timeout: Duration,
}

impl Default for ExecutorFlags {
    fn default() -> Self {
        ExecutorFlags {
            on_setup_error: OnSetupError::StopExecutor,
            idle_timeout: None,
            default_kill_grace: Duration::from_secs(3),
            ack_timeout: Duration::from_secs(60),
        }
    }
}

/// Everything the executor needs to run.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// `http://IP:PORT/api/v1/executor` (`https://` with `LIBPROCESS_SSL_ENABLED`)
    pub agent_url: String,
    /// TLS to the agent (`LIBPROCESS_SSL_ENABLED`).
    pub tls: Option<TlsConfig>,
    /// Legal settings worth a warning at start (verification off, deprecated names, …).
    pub warnings: Vec<String>,
    pub framework_id: String,
    pub executor_id: String,
    /// The sandbox (the executor's working directory); plugins must live under it.
    pub sandbox: PathBuf,
    pub checkpoint: bool,
    pub recovery_timeout: Duration,
    pub subscription_backoff_max: Duration,
    pub shutdown_grace_period: Duration,
    pub authentication_token: Option<String>,
    pub flags: ExecutorFlags,
}

/// A start-up setting that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{0} is not set; shardex-executor must be started by a Mesos agent (or with the \
         environment a Mesos agent sets)"
    )]
    Missing(&'static str),
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

impl ExecutorConfig {
    /// Reads the configuration from `lookup` (normally `std::env::var`).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        flags: ExecutorFlags,
    ) -> Result<ExecutorConfig, ConfigError> {
        let required = |name: &'static str| match lookup(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(ConfigError::Missing(name)),
        };
        let invalid = |name: &'static str, value: &str, reason: String| ConfigError::Invalid {
            name,
            value: value.to_owned(),
            reason,
        };

        let ssl = ssl_env::read(&lookup)?;
        let endpoint = required(env::AGENT_ENDPOINT)?;
        let scheme = if ssl.tls.is_some() { "https" } else { "http" };
        let agent_url = agent_url(scheme, &endpoint)
            .map_err(|reason| invalid(env::AGENT_ENDPOINT, &endpoint, reason))?;
        let framework_id = required(env::FRAMEWORK_ID)?;
        let executor_id = required(env::EXECUTOR_ID)?;
        // MESOS_SANDBOX is the path inside the container; MESOS_DIRECTORY the host path. They
        // are equal without a container image; prefer the one the process can see.
        let sandbox = lookup(env::SANDBOX)
            .filter(|value| !value.is_empty())
            .or_else(|| lookup(env::DIRECTORY).filter(|value| !value.is_empty()))
            .ok_or(ConfigError::Missing(env::SANDBOX))?;
        let checkpoint_text = required(env::CHECKPOINT)?;
        let checkpoint = match checkpoint_text.as_str() {
            "1" => true,
            "0" => false,
            _ => {
                return Err(invalid(
                    env::CHECKPOINT,
                    &checkpoint_text,
                    "expected \"1\" or \"0\"".into(),
                ));
            }
        };
        let duration_or = |name: &'static str, default: Duration| match lookup(name) {
            None => Ok(default),
            Some(value) => {
                duration::parse(&value).map_err(|e| invalid(name, &value, e.to_string()))
            }
        };
        let recovery_timeout = duration_or(env::RECOVERY_TIMEOUT, DEFAULT_RECOVERY_TIMEOUT)?;
        let subscription_backoff_max = duration_or(
            env::SUBSCRIPTION_BACKOFF_MAX,
            DEFAULT_SUBSCRIPTION_BACKOFF_MAX,
        )?;
        let shutdown_grace_period =
            duration_or(env::SHUTDOWN_GRACE_PERIOD, DEFAULT_SHUTDOWN_GRACE_PERIOD)?;
        let authentication_token =
            lookup(env::AUTHENTICATION_TOKEN).filter(|token| !token.is_empty());

        Ok(ExecutorConfig {
            agent_url,
            tls: ssl.tls,
            warnings: ssl.warnings,
            framework_id,
            executor_id,
            sandbox: PathBuf::from(sandbox),
            checkpoint,
            recovery_timeout,
            subscription_backoff_max,
            shutdown_grace_period,
            authentication_token,
            flags,
        })
    }

    /// Reads the configuration from the process environment, then removes the authentication
    /// token from it so that no job or script inherits it.
    ///
    /// Call this before any other thread starts: changing the environment is only sound while
    /// the process is single-threaded.
    pub fn from_process_env(flags: ExecutorFlags) -> Result<ExecutorConfig, ConfigError> {
        let config = Self::from_lookup(|name| std::env::var(name).ok(), flags)?;
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        if std::env::var_os(env::DOMAIN_SOCKET).is_some() {
            tracing::warn!(
                "{} is set but domain sockets are not supported; using {}",
                env::DOMAIN_SOCKET,
                config.agent_url
            );
        }
        // SAFETY: the caller guarantees no other thread exists yet, so nothing reads the
        // environment concurrently.
        unsafe { std::env::remove_var(env::AUTHENTICATION_TOKEN) };
        Ok(config)
    }
}

/// `IP:PORT` → the executor API URL with `scheme`. IPv6 addresses come bracketed or bare.
fn agent_url(scheme: &str, endpoint: &str) -> Result<String, String> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| "expected IP:PORT".to_owned())?;
    port.parse::<u16>()
        .map_err(|_| format!("port '{port}' is not a number between 0 and 65535"))?;
    if host.is_empty() {
        return Err("expected IP:PORT, the host is empty".into());
    }
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Ok(format!("{scheme}://{host}:{port}/api/v1/executor"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The environment a real Mesos 1.12 agent gave an executor (tests/data/real-mesos).
    fn captured_env() -> HashMap<String, String> {
        let text = include_str!("../../tests/data/real-mesos/executor-env-from-agent.txt");
        text.lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn load(env: &HashMap<String, String>) -> Result<ExecutorConfig, ConfigError> {
        ExecutorConfig::from_lookup(|name| env.get(name).cloned(), ExecutorFlags::default())
    }

    #[test]
    fn reads_what_a_real_agent_sets() {
        let config = load(&captured_env()).unwrap();
        assert_eq!(config.agent_url, "http://127.0.0.1:5051/api/v1/executor");
        assert_eq!(config.executor_id, "capture-exec");
        assert_eq!(
            config.framework_id,
            "e14960a5-0fa2-4e89-9ec2-ffdc9657ab0e-0000"
        );
        assert!(config.checkpoint);
        assert_eq!(config.recovery_timeout, Duration::from_secs(900));
        assert_eq!(config.subscription_backoff_max, Duration::from_secs(2));
        assert_eq!(config.shutdown_grace_period, Duration::from_secs(5));
        assert!(
            config
                .sandbox
                .ends_with("runs/d3dcd48a-4fb0-4dac-9104-4c2c1a79daba")
        );
        assert_eq!(config.authentication_token, None);
        assert_eq!(config.tls, None);
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn libprocess_ssl_makes_the_agent_https() {
        let mut env = captured_env();
        env.insert("LIBPROCESS_SSL_ENABLED".into(), "true".into());
        env.insert("LIBPROCESS_SSL_VERIFY_SERVER_CERT".into(), "true".into());
        env.insert("LIBPROCESS_SSL_CA_FILE".into(), "/etc/mesos/ca.pem".into());
        let config = load(&env).unwrap();
        assert_eq!(config.agent_url, "https://127.0.0.1:5051/api/v1/executor");
        let tls = config.tls.unwrap();
        assert!(tls.verify);
        assert_eq!(tls.ca_file, Some(PathBuf::from("/etc/mesos/ca.pem")));

        env.insert("LIBPROCESS_SSL_ENABLED".into(), "on".into());
        assert_eq!(
            load(&env).unwrap_err().to_string(),
            "LIBPROCESS_SSL_ENABLED=\"on\" is invalid: expected a boolean: true or 1, false or 0 \
             (as libprocess reads it)"
        );
    }

    #[test]
    fn names_the_missing_or_malformed_variable() {
        let mut env = captured_env();
        env.remove("MESOS_AGENT_ENDPOINT");
        let error = load(&env).unwrap_err();
        assert_eq!(error, ConfigError::Missing("MESOS_AGENT_ENDPOINT"));
        assert!(
            error
                .to_string()
                .starts_with("MESOS_AGENT_ENDPOINT is not set")
        );

        let mut env = captured_env();
        env.insert("MESOS_CHECKPOINT".into(), "true".into());
        assert_eq!(
            load(&env).unwrap_err().to_string(),
            "MESOS_CHECKPOINT=\"true\" is invalid: expected \"1\" or \"0\""
        );

        let mut env = captured_env();
        env.insert("MESOS_RECOVERY_TIMEOUT".into(), "15minutes".into());
        let message = load(&env).unwrap_err().to_string();
        assert!(
            message.starts_with("MESOS_RECOVERY_TIMEOUT=\"15minutes\" is invalid: "),
            "{message}"
        );

        let mut env = captured_env();
        env.insert("MESOS_AGENT_ENDPOINT".into(), "127.0.0.1".into());
        assert!(matches!(
            load(&env),
            Err(ConfigError::Invalid {
                name: "MESOS_AGENT_ENDPOINT",
                ..
            })
        ));
    }

    #[test]
    fn without_checkpointing_the_recovery_variables_are_optional() {
        let mut env = captured_env();
        env.insert("MESOS_CHECKPOINT".into(), "0".into());
        env.remove("MESOS_RECOVERY_TIMEOUT");
        env.remove("MESOS_SUBSCRIPTION_BACKOFF_MAX");
        let config = load(&env).unwrap();
        assert!(!config.checkpoint);
    }

    #[test]
    fn falls_back_to_mesos_directory() {
        let mut env = captured_env();
        env.remove("MESOS_SANDBOX");
        assert!(load(&env).is_ok());
        env.remove("MESOS_DIRECTORY");
        assert_eq!(
            load(&env).unwrap_err(),
            ConfigError::Missing("MESOS_SANDBOX")
        );
    }

    #[test]
    fn formats_ipv6_endpoints() {
        assert_eq!(
            agent_url("http", "::1:5051").unwrap(),
            "http://[::1]:5051/api/v1/executor"
        );
        assert_eq!(
            agent_url("http", "[::1]:5051").unwrap(),
            "http://[::1]:5051/api/v1/executor"
        );
    }
}
