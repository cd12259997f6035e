//! Starting executor processes the way the Mesos containerizer's POSIX launcher does, and
//! killing them.
//!
//! The environment is exactly what `executorEnvironment()` (`src/slave/slave.cpp`) produces —
//! the agent's own environment is not inherited, there is no `HOME`, `USER` or `LANG`, and
//! `PATH` gets the host default unless the `CommandInfo` sets one — followed by
//! `CommandInfo.environment`, which wins. Variables the agent is configured to give every
//! executor (`--executor_environment_variables`) come right after `LIBPROCESS_IP`, as there. The process runs in the sandbox with `stdout` and
//! `stderr` redirected to files there, in a process group of its own so that it and every
//! child it forks can be SIGKILLed together.

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use shardex_mesos::duration::MesosDuration;
use shardex_mesos::proto::v1::CommandInfo;

/// The `PATH` Mesos uses when the command does not bring one (`os::host_default_path()`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the executor's environment is made of.
#[derive(Debug, Clone)]
pub struct ExecutorEnvironment<'a> {
    pub framework_id: &'a str,
    pub executor_id: &'a str,
    pub agent_id: &'a str,
    /// `IP:PORT` of the agent's executor endpoint.
    pub agent_endpoint: &'a str,
    pub agent_ip: &'a str,
    pub sandbox: &'a Path,
    pub checkpoint: bool,
    pub shutdown_grace_period: Duration,
    pub recovery_timeout: Duration,
    pub reregistration_timeout: Duration,
    pub authentication_token: Option<&'a str>,
    /// `--executor_environment_variables`: set after `LIBPROCESS_IP`, before everything else.
    pub agent_variables: &'a [(String, String)],
    pub command: &'a CommandInfo,
}

impl ExecutorEnvironment<'_> {
    /// The variables, in the order they are set (later ones win).
    pub fn variables(&self) -> Vec<(String, String)> {
        let sandbox = self.sandbox.display().to_string();
        let mut vars: Vec<(String, String)> = vec![("LIBPROCESS_IP".into(), self.agent_ip.into())];
        vars.extend(self.agent_variables.iter().cloned());
        vars.extend([
            ("LIBPROCESS_PORT".into(), "0".into()),
            ("MESOS_AGENT_ENDPOINT".into(), self.agent_endpoint.into()),
            (
                "MESOS_CHECKPOINT".into(),
                if self.checkpoint { "1" } else { "0" }.into(),
            ),
            ("MESOS_DIRECTORY".into(), sandbox.clone()),
            ("MESOS_EXECUTOR_ID".into(), self.executor_id.into()),
            (
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD".into(),
                MesosDuration(self.shutdown_grace_period).to_string(),
            ),
            ("MESOS_FRAMEWORK_ID".into(), self.framework_id.into()),
            ("MESOS_HTTP_COMMAND_EXECUTOR".into(), "0".into()),
            ("MESOS_SANDBOX".into(), sandbox),
            ("MESOS_SLAVE_ID".into(), self.agent_id.into()),
            (
                "MESOS_SLAVE_PID".into(),
                format!("slave(1)@{}", self.agent_endpoint),
            ),
        ]);
        if self.checkpoint {
            vars.push((
                "MESOS_RECOVERY_TIMEOUT".into(),
                MesosDuration(self.recovery_timeout).to_string(),
            ));
            vars.push((
                "MESOS_SUBSCRIPTION_BACKOFF_MAX".into(),
                MesosDuration(self.reregistration_timeout).to_string(),
            ));
        }
        if let Some(token) = self.authentication_token {
            vars.push(("MESOS_EXECUTOR_AUTHENTICATION_TOKEN".into(), token.into()));
        }
        let user_vars: Vec<(String, String)> = self
            .command
            .environment
            .iter()
            .flat_map(|env| env.variables.iter())
            // Secret variables need a secret resolver Mesos has and we do not; only VALUE
            // variables (the default type) are passed.
            .filter(|v| v.r#type.unwrap_or(1) == 1)
            .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
            .collect();
        if !user_vars.iter().any(|(name, _)| name == "PATH") {
            vars.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        vars.extend(user_vars);
        vars
    }
}

/// Why an executor process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("'CommandInfo.value' is not set")]
    NoCommand,
    #[error("cannot create {path}: {source}")]
    OutputFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start '{program}': {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Starts the executor command in `sandbox` with exactly `env`.
pub fn spawn(
    command: &CommandInfo,
    env: &[(String, String)],
    sandbox: &Path,
) -> Result<tokio::process::Child, LaunchError> {
    let value = command.value.clone().ok_or(LaunchError::NoCommand)?;
    let mut process = if command.shell.unwrap_or(true) {
        let mut process = tokio::process::Command::new("/bin/sh");
        process.arg("-c").arg(&value);
        process
    } else {
        // shell=false: `value` is the program, `arguments` the whole argv including argv[0].
        let mut process = tokio::process::Command::new(&value);
        if let Some((first, rest)) = command.arguments.split_first() {
            process.arg0(first);
            process.args(rest);
        }
        process
    };
    let output = |name: &str| {
        let path = sandbox.join(name);
        File::create(&path).map_err(|source| LaunchError::OutputFile {
            path: path.display().to_string(),
            source,
        })
    };
    process
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(sandbox)
        .stdin(Stdio::null())
        .stdout(output("stdout")?)
        .stderr(output("stderr")?)
        // Its own process group, so killpg reaches everything it forks.
        .process_group(0)
        .kill_on_drop(false);
    process.spawn().map_err(|source| LaunchError::Spawn {
        program: value,
        source,
    })
}

/// SIGKILLs the process group led by `pid` (the executor and everything it forked).
pub fn kill_group(pid: u32) {
    signal_group(pid, Signal::SIGKILL);
}

/// Sends `signal` to the process group led by `pid`; a group that is already gone is fine.
pub fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// The raw `waitpid` status Mesos reports in `FAILURE` (`137 << 8`, or `9` for SIGKILL).
pub fn raw_wait_status(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status.into_raw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardex_mesos::proto::v1::{Environment, environment::Variable};

    #[test]
    fn environment_matches_a_real_agent() {
        let command = CommandInfo {
            environment: Some(Environment {
                variables: vec![Variable {
                    name: "CAPTURE_OUT".into(),
                    value: Some("/tmp/out".into()),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let env = ExecutorEnvironment {
            framework_id: "F-0000",
            executor_id: "e",
            agent_id: "F-S0",
            agent_endpoint: "127.0.0.1:5051",
            agent_ip: "127.0.0.1",
            sandbox: Path::new("/w/s"),
            checkpoint: true,
            shutdown_grace_period: Duration::from_secs(5),
            recovery_timeout: Duration::from_secs(900),
            reregistration_timeout: Duration::from_secs(2),
            authentication_token: None,
            agent_variables: &[],
            command: &command,
        };
        let mut lines: Vec<String> = env
            .variables()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "CAPTURE_OUT=/tmp/out",
                "LIBPROCESS_IP=127.0.0.1",
                "LIBPROCESS_PORT=0",
                "MESOS_AGENT_ENDPOINT=127.0.0.1:5051",
                "MESOS_CHECKPOINT=1",
                "MESOS_DIRECTORY=/w/s",
                "MESOS_EXECUTOR_ID=e",
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=5secs",
                "MESOS_FRAMEWORK_ID=F-0000",
                "MESOS_HTTP_COMMAND_EXECUTOR=0",
                "MESOS_RECOVERY_TIMEOUT=15mins",
                "MESOS_SANDBOX=/w/s",
                "MESOS_SLAVE_ID=F-S0",
                "MESOS_SLAVE_PID=slave(1)@127.0.0.1:5051",
                "MESOS_SUBSCRIPTION_BACKOFF_MAX=2secs",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ]
        );
        let no_checkpoint = ExecutorEnvironment {
            checkpoint: false,
            ..env
        };
        let vars = no_checkpoint.variables();
        assert!(vars.contains(&("MESOS_CHECKPOINT".into(), "0".into())));
        assert!(!vars.iter().any(|(k, _)| k == "MESOS_RECOVERY_TIMEOUT"));

        // --executor_environment_variables come right after LIBPROCESS_IP and may replace it;
        // the command's own variables still win.
        let agent_variables = [
            ("LIBPROCESS_SSL_ENABLED".to_owned(), "true".to_owned()),
            ("CAPTURE_OUT".to_owned(), "/agent".to_owned()),
        ];
        let vars = ExecutorEnvironment {
            agent_variables: &agent_variables,
            ..no_checkpoint
        }
        .variables();
        let names: Vec<&str> = vars.iter().take(4).map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "LIBPROCESS_IP",
                "LIBPROCESS_SSL_ENABLED",
                "CAPTURE_OUT",
                "LIBPROCESS_PORT"
            ]
        );
        assert_eq!(
            vars.last(),
            Some(&("CAPTURE_OUT".to_owned(), "/tmp/out".to_owned()))
        );
    }
}
