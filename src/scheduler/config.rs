//! The scheduler's configuration: the TOML file (connection, tuning, and apps/jobs registered at
//! start) and the app and job definitions the REST API accepts as JSON, with their validation.
//!
//! Every accepted field is listed once in [`CONFIG_FIELDS`]; a unit test checks that list against
//! the structs, so the README reference can be checked against it in turn.
//!
//! Durations use Mesos' own notation (`500ms`, `5secs`, `15mins`, `1weeks`), the same the
//! executor's flags use.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ids;
use shardex_common::cron::Schedule;
use shardex_common::payload::{ErrorPolicy, Guards, Isolation};
use shardex_mesos::duration::MesosDuration;

/// Largest sharding total count a job may have.
pub const MAX_SHARDING_TOTAL_COUNT: u32 = 1000;
/// Most retries a job may ask for.
pub const MAX_RETRIES: u32 = 100;

/// Every field the TOML file accepts, as dotted paths (`[]` marks an array of tables).
pub const CONFIG_FIELDS: &[&str] = &[
    "master",
    "store",
    "listen",
    "framework.user",
    "framework.name",
    "framework.role",
    "framework.failover_timeout",
    "framework.hostname",
    "framework.webui_url",
    "framework.principal",
    "framework.secret_file",
    "rest.token_file",
    "rest.protect_reads",
    "mesos.encoding",
    "mesos.resubscribe_backoff_initial",
    "mesos.resubscribe_backoff_max",
    "mesos.missed_heartbeats",
    "mesos.tls.enabled",
    "mesos.tls.ca_file",
    "mesos.tls.ca_dir",
    "mesos.tls.verify",
    "mesos.tls.cert_file",
    "mesos.tls.key_file",
    "offers.refuse_busy",
    "offers.refuse_idle",
    "failover.max_attempts",
    "failover.backoff_initial",
    "failover.backoff_max",
    "queues.ready_runs_per_job",
    "queues.failover_entries",
    "tasks.suspect_timeout",
    "tasks.kill_retry_interval",
    "tasks.kill_retry_max",
    "tasks.reconcile_interval",
    "tasks.reconcile_retry_initial",
    "tasks.reconcile_retry_max",
    "tasks.history_retention",
    "tasks.history_max_entries",
    "tasks.launch_check_interval",
    "history.max_runs",
    "history.max_age",
    "ha.zookeeper",
    "ha.session_timeout",
    "ha.digest",
    "executor.uri",
    "executor.command",
    "executor.shutdown_grace_period",
    "executor.idle_timeout",
    "executor.environment",
    "apps[].name",
    "apps[].executor_uri",
    "apps[].executor_command",
    "apps[].uris",
    "apps[].cpus",
    "apps[].mem",
    "apps[].environment",
    "apps[].disabled",
    "apps[].isolation",
    "jobs[].name",
    "jobs[].app",
    "jobs[].cron",
    "jobs[].sharding_total_count",
    "jobs[].sharding_item_parameters",
    "jobs[].job_parameter",
    "jobs[].failover",
    "jobs[].retries",
    "jobs[].timeout",
    "jobs[].misfire",
    "jobs[].execution_type",
    "jobs[].kind",
    "jobs[].streaming",
    "jobs[].plugin",
    "jobs[].command_line",
    "jobs[].cpus",
    "jobs[].mem",
    "jobs[].error_policy",
    "jobs[].isolation",
    "jobs[].guards.address_space_mb",
    "jobs[].guards.cpu_time",
    "jobs[].guards.open_files",
    "jobs[].properties",
    "jobs[].description",
    "jobs[].disabled",
];

/// A configuration value that is wrong, naming where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {}{reason}", field_prefix(.field))]
pub struct ConfigError {
    /// What holds the field, e.g. `job 'orders'` or `config file /etc/shardex.toml`.
    pub what: String,
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    fn new(what: impl Into<String>, field: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            what: what.into(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// `field 'x' ` before the reason, or nothing when the error is not about one field (a TOML
/// syntax error).
fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("field '{field}' ")
    }
}

/// `master = "…"` or `master = ["…", "…"]`: the list kept as one comma-separated setting, as
/// `--master` takes it.
fn one_or_several_masters<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    struct Masters;
    impl<'de> serde::de::Visitor<'de> for Masters {
        type Value = String;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a master's host:port or URL, a list of them, or a zk:// address")
        }

        fn visit_str<E: serde::de::Error>(self, master: &str) -> Result<String, E> {
            Ok(master.to_owned())
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
            let mut masters = Vec::new();
            while let Some(master) = seq.next_element::<String>()? {
                if master.trim().is_empty() || master.contains(',') || master.starts_with("zk://") {
                    return Err(serde::de::Error::custom(format!(
                        "'{master}' in the list of masters: each entry is one master's \
                         host:port or URL (a zk:// address goes alone, as master = \"zk://…\")"
                    )));
                }
                masters.push(master);
            }
            if masters.is_empty() {
                return Err(serde::de::Error::custom(
                    "the list of masters is empty; name at least one master",
                ));
            }
            Ok(masters.join(","))
        }
    }
    deserializer.deserialize_any(Masters).map(Some)
}

/// The whole TOML file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The master's scheduler endpoint, `http://host:5050/api/v1/scheduler` or `host:port`;
    /// several of them (a list in the file, kept comma-separated here), tried in turn; or
    /// `zk://host:port,…/path` to find the leading master in ZooKeeper.
    #[serde(default, deserialize_with = "one_or_several_masters")]
    pub master: Option<String>,
    /// The store file.
    #[serde(default)]
    pub store: Option<PathBuf>,
    /// Address of the REST API, `/metrics` and `/health`.
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub framework: FrameworkConfig,
    #[serde(default)]
    pub rest: RestConfig,
    #[serde(default)]
    pub mesos: MesosConfig,
    #[serde(default)]
    pub offers: OfferConfig,
    #[serde(default)]
    pub failover: FailoverConfig,
    #[serde(default)]
    pub queues: QueueConfig,
    #[serde(default)]
    pub tasks: TaskConfig,
    #[serde(default)]
    pub history: HistoryConfig,
    #[serde(default)]
    pub ha: HaConfig,
    #[serde(default)]
    pub executor: ExecutorConfig,
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    #[serde(default)]
    pub jobs: Vec<JobConfig>,
    /// Where the file was read from (not a field of the file): what manages its apps and jobs.
    #[serde(skip)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrameworkConfig {
    /// Unix user tasks run as; defaults to the user running the scheduler.
    pub user: Option<String>,
    pub name: String,
    /// Role to receive offers for (`*` when unset).
    pub role: Option<String>,
    pub failover_timeout: MesosDuration,
    pub hostname: Option<String>,
    pub webui_url: Option<String>,
    /// The principal this framework authenticates as (`FrameworkInfo.principal`, and the user
    /// of HTTP Basic authentication when `secret_file` is set).
    pub principal: Option<String>,
    /// A file holding the principal's secret: every call to the master then carries HTTP Basic
    /// credentials (for masters run with `--authenticate_http_frameworks`).
    pub secret_file: Option<PathBuf>,
}

impl Default for FrameworkConfig {
    fn default() -> Self {
        FrameworkConfig {
            user: None,
            name: "shardex".into(),
            role: None,
            failover_timeout: MesosDuration::secs(7 * 24 * 3600),
            hostname: None,
            webui_url: None,
            principal: None,
            secret_file: None,
        }
    }
}

/// Who may use the REST API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestConfig {
    /// A file holding the bearer token every mutating request must carry
    /// (`Authorization: Bearer <token>`).
    pub token_file: Option<PathBuf>,
    /// Reads need the token too (`/health` never does).
    pub protect_reads: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EncodingConfig {
    #[default]
    Protobuf,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MesosConfig {
    pub encoding: EncodingConfig,
    pub resubscribe_backoff_initial: MesosDuration,
    pub resubscribe_backoff_max: MesosDuration,
    /// Resubscribe after this many heartbeat intervals without any event.
    pub missed_heartbeats: u32,
    pub tls: MesosTlsConfig,
}

impl Default for MesosConfig {
    fn default() -> Self {
        MesosConfig {
            encoding: EncodingConfig::Protobuf,
            resubscribe_backoff_initial: MesosDuration::millis(500),
            resubscribe_backoff_max: MesosDuration::secs(15),
            missed_heartbeats: 5,
            tls: MesosTlsConfig::default(),
        }
    }
}

/// TLS to the masters (`[mesos.tls]`). An `https://` master URL always uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MesosTlsConfig {
    /// Reach masters given as `host:port`, and masters found in ZooKeeper, with `https`. Mesos'
    /// `MasterInfo` carries no scheme: its own scheduler library picks `https` for every master
    /// it detects when its process has `LIBPROCESS_SSL_ENABLED` (`src/scheduler/scheduler.cpp`).
    pub enabled: bool,
    /// The CAs (a PEM bundle) to trust for masters' certificates, instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// A directory of PEM files of CAs to trust, instead of the system's.
    pub ca_dir: Option<PathBuf>,
    /// Verify the masters' certificates; `false` is logged as a warning at every start.
    pub verify: bool,
    /// A client certificate (PEM) for masters that require one (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// The private key (PEM) of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl Default for MesosTlsConfig {
    fn default() -> Self {
        MesosTlsConfig {
            enabled: false,
            ca_file: None,
            ca_dir: None,
            verify: true,
            cert_file: None,
            key_file: None,
        }
    }
}

impl MesosTlsConfig {
    /// The scheme of masters given without one, and of masters found in ZooKeeper.
    pub fn scheme(&self) -> &'static str {
        if self.enabled { "https" } else { "http" }
    }

    /// The Mesos client's TLS settings, named as in the config file.
    pub fn client(&self) -> shardex_mesos::TlsConfig {
        shardex_mesos::TlsConfig {
            ca_file: self.ca_file.clone(),
            ca_dir: self.ca_dir.clone(),
            verify: self.verify,
            client_certificate: self.cert_file.clone().zip(self.key_file.clone()).map(
                |(cert_file, key_file)| shardex_mesos::ClientCertificate {
                    cert_file,
                    key_file,
                },
            ),
            names: shardex_mesos::tls::SettingNames {
                ca_file: "mesos.tls.ca_file",
                ca_dir: "mesos.tls.ca_dir",
                verify: "mesos.tls.verify",
                cert_file: "mesos.tls.cert_file",
                key_file: "mesos.tls.key_file",
            },
        }
    }

    /// Whether any TLS setting is given.
    pub fn is_configured(&self) -> bool {
        self.enabled || self.first_setting().is_some()
    }

    /// The first TLS setting given, which only matters when some master is reached over https.
    fn first_setting(&self) -> Option<&'static str> {
        [
            (self.ca_file.is_some(), "mesos.tls.ca_file"),
            (self.ca_dir.is_some(), "mesos.tls.ca_dir"),
            (!self.verify, "mesos.tls.verify"),
            (self.cert_file.is_some(), "mesos.tls.cert_file"),
            (self.key_file.is_some(), "mesos.tls.key_file"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }

    /// Checks the settings on their own.
    fn validate(&self, what: &str) -> Result<(), ConfigError> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    what,
                    "mesos.tls.cert_file",
                    "is set without mesos.tls.key_file: give the certificate's private key too",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    what,
                    "mesos.tls.key_file",
                    "is set without mesos.tls.cert_file: give the key's certificate too",
                ));
            }
            _ => {}
        }
        if !self.verify
            && let Some(field) = [
                (self.ca_file.is_some(), "mesos.tls.ca_file"),
                (self.ca_dir.is_some(), "mesos.tls.ca_dir"),
            ]
            .into_iter()
            .find_map(|(set, name)| set.then_some(name))
        {
            return Err(ConfigError::new(
                what,
                "mesos.tls.verify",
                format!(
                    "is false, so {field} would never be used: remove one of them (verifying \
                     with the CA is what you want)"
                ),
            ));
        }
        for (field, path) in [
            ("mesos.tls.ca_file", &self.ca_file),
            ("mesos.tls.ca_dir", &self.ca_dir),
            ("mesos.tls.cert_file", &self.cert_file),
            ("mesos.tls.key_file", &self.key_file),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(ConfigError::new(what, field, "is empty; give a path"));
            }
        }
        Ok(())
    }

    /// Checks these settings against the masters (`master` or `--master`): an explicit
    /// `http://` master contradicts `enabled`, and TLS settings with no master reached over
    /// https would silently do nothing.
    pub fn check_masters(&self, what: &str, master: &str) -> Result<(), ConfigError> {
        let master = master.trim();
        let mut uses_tls = self.enabled;
        if !master.starts_with("zk://") {
            for entry in master.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                if entry.starts_with("https://") {
                    uses_tls = true;
                } else if self.enabled
                    && let Some(rest) = entry.strip_prefix("http://")
                {
                    return Err(ConfigError::new(
                        what,
                        "master",
                        format!(
                            "'{entry}' is plain http while mesos.tls.enabled is true: write \
                             https://{rest}, or leave out the scheme"
                        ),
                    ));
                }
            }
        }
        if !uses_tls && let Some(field) = self.first_setting() {
            return Err(ConfigError::new(
                what,
                field,
                format!(
                    "is set, but no master is reached over https (master is '{master}'): set \
                     mesos.tls.enabled = true (masters given as host:port and masters found in \
                     ZooKeeper then use https) or give https:// master URLs"
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfferConfig {
    /// Refuse filter of a declined offer while work is waiting for resources.
    pub refuse_busy: MesosDuration,
    /// Refuse filter of a declined offer when nothing is queued.
    pub refuse_idle: MesosDuration,
}

impl Default for OfferConfig {
    fn default() -> Self {
        OfferConfig {
            refuse_busy: MesosDuration::secs(5),
            refuse_idle: MesosDuration::secs(120),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverConfig {
    /// Consecutive failures of one sharding item before it is parked.
    pub max_attempts: u32,
    /// Delay before the second relaunch; the first is immediate, later ones double.
    pub backoff_initial: MesosDuration,
    pub backoff_max: MesosDuration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            max_attempts: 5,
            backoff_initial: MesosDuration::secs(1),
            backoff_max: MesosDuration::secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Pending runs one transient job may accumulate (misfire on).
    pub ready_runs_per_job: u32,
    /// Entries the failover queue may hold.
    pub failover_entries: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            ready_runs_per_job: 100,
            failover_entries: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskConfig {
    /// How long an unreachable/unknown task blocks its item before it is treated as lost.
    pub suspect_timeout: MesosDuration,
    /// First interval between KILLs of a task that has not ended; it doubles per retry.
    pub kill_retry_interval: MesosDuration,
    /// Longest interval between KILL retries.
    pub kill_retry_max: MesosDuration,
    /// Period of the background reconciliation (explicit, then implicit).
    pub reconcile_interval: MesosDuration,
    pub reconcile_retry_initial: MesosDuration,
    pub reconcile_retry_max: MesosDuration,
    /// How long terminal tasks are remembered, to ignore late duplicates of their updates.
    pub history_retention: MesosDuration,
    /// The most terminal tasks remembered (the oldest are forgotten first): bounds the store
    /// whatever the task rate.
    pub history_max_entries: u32,
    /// A launched task with no update for this long is reconciled explicitly (a lost ACCEPT
    /// then comes back as TASK_GONE/UNKNOWN instead of waiting for the periodic round).
    pub launch_check_interval: MesosDuration,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            suspect_timeout: MesosDuration::secs(600),
            kill_retry_interval: MesosDuration::secs(5),
            kill_retry_max: MesosDuration::secs(300),
            reconcile_interval: MesosDuration::secs(900),
            reconcile_retry_initial: MesosDuration::secs(1),
            reconcile_retry_max: MesosDuration::secs(30),
            history_retention: MesosDuration::secs(24 * 3600),
            history_max_entries: 100_000,
            launch_check_interval: MesosDuration::secs(30),
        }
    }
}

/// Run history (`GET /api/jobs/{job}/runs`): how much of it the store keeps. Settled runs
/// beyond either bound are forgotten, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// The most settled runs kept, over all jobs.
    pub max_runs: u32,
    /// Settled runs that ended longer ago than this are forgotten.
    pub max_age: MesosDuration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            max_runs: 10_000,
            max_age: MesosDuration::secs(30 * 24 * 3600),
        }
    }
}

/// High availability: several schedulers on one ZooKeeper store, one leading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaConfig {
    /// `zk://host:port[,host:port…]/root`: keep the state there and elect a leader. Unset: one
    /// scheduler on its redb file.
    pub zookeeper: Option<String>,
    /// The ZooKeeper session timeout asked for; a leader stops acting after half of it without
    /// a confirmed round trip, and is replaced after it.
    pub session_timeout: MesosDuration,
    /// `user:password` for ZooKeeper's `digest` scheme.
    pub digest: Option<String>,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            zookeeper: None,
            session_timeout: MesosDuration::secs(10),
            digest: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// Where agents fetch the executor (a bare binary or an archive) for apps that name none.
    pub uri: Option<String>,
    /// Command run in the sandbox to start the executor of an archive URI.
    pub command: String,
    pub shutdown_grace_period: MesosDuration,
    /// Passed as `--idle-timeout`: the executor exits when it has had no task this long.
    pub idle_timeout: Option<MesosDuration>,
    pub environment: BTreeMap<String, String>,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            uri: None,
            command: "./shardex-executor".into(),
            shutdown_grace_period: MesosDuration::secs(5),
            idle_timeout: None,
            environment: BTreeMap::new(),
        }
    }
}

/// One URI the agent fetches into the executor's sandbox: a plain string, or a table with the
/// Mesos `CommandInfo.URI` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UriConfig {
    Plain(String),
    Detailed(UriDetails),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UriDetails {
    pub value: String,
    #[serde(default)]
    pub extract: Option<bool>,
    #[serde(default)]
    pub executable: Option<bool>,
    #[serde(default)]
    pub cache: Option<bool>,
    #[serde(default)]
    pub output_file: Option<String>,
}

impl UriConfig {
    pub fn value(&self) -> &str {
        match self {
            UriConfig::Plain(value) => value,
            UriConfig::Detailed(details) => &details.value,
        }
    }
}

/// Whether a URI names an archive the Mesos fetcher extracts.
pub fn is_archive(uri: &str) -> bool {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    [
        ".tar", ".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip",
    ]
    .iter()
    .any(|ext| path.ends_with(ext))
}

fn default_app_cpus() -> f64 {
    0.1
}
fn default_app_mem() -> f64 {
    32.0
}
fn default_job_cpus() -> f64 {
    0.1
}
fn default_job_mem() -> f64 {
    32.0
}

/// An application: the executor and the plugin files its jobs need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub name: String,
    /// The executor binary or archive; defaults to `[executor].uri`.
    #[serde(default)]
    pub executor_uri: Option<String>,
    /// The command starting the executor; defaults to `[executor].command`.
    #[serde(default)]
    pub executor_command: Option<String>,
    /// Plugin files and bundles fetched into the executor's sandbox.
    #[serde(default)]
    pub uris: Vec<UriConfig>,
    /// cpus of the executor itself.
    #[serde(default = "default_app_cpus")]
    pub cpus: f64,
    /// mem (MB) of the executor itself.
    #[serde(default = "default_app_mem")]
    pub mem: f64,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Start disabled (TOML only; REST uses the disable/enable endpoints).
    #[serde(default)]
    pub disabled: bool,
    /// Where the app's jobs run inside the executor unless a job says otherwise.
    #[serde(default, with = "isolation_serde")]
    pub isolation: Isolation,
}

mod isolation_serde {
    use super::Isolation;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(isolation: &Isolation, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(isolation.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Isolation, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::Isolation;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            value: &Option<Isolation>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(isolation) => s.serialize_str(isolation.as_str()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Isolation>, D::Error> {
            let text = Option::<String>::deserialize(d)?;
            text.map(|t| t.parse().map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// Limits on a job's worker process (`setrlimit`), with process isolation only. Guards
/// against a runaway job, not container isolation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardsConfig {
    /// Address space of the worker, MiB: an allocation past it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_space_mb: Option<u64>,
    /// CPU time of the worker: SIGXCPU at the guard, SIGKILL a second later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time: Option<MesosDuration>,
    /// Most file descriptors the worker may hold open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
}

impl GuardsConfig {
    pub fn is_empty(&self) -> bool {
        *self == GuardsConfig::default()
    }

    /// The payload's form.
    pub fn to_guards(self) -> Guards {
        Guards {
            address_space: self.address_space_mb.map(|mb| mb.saturating_mul(1 << 20)),
            cpu_time: self.cpu_time.map(|t| t.0.as_secs().max(1)),
            open_files: self.open_files,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionTypeConfig {
    #[default]
    Transient,
    Daemon,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum JobKindConfig {
    #[default]
    Simple,
    Dataflow,
    Script,
}

/// A job: the Elastic-Job-Cloud job fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    pub name: String,
    pub app: String,
    /// Quartz cron: fires transient runs; daemon jobs run it inside the executor. Omitted: a
    /// manual job (transient only), run only by `POST /api/jobs/{job}/trigger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    pub sharding_total_count: u32,
    /// `0=a,1=b`: the parameter of each sharding item (Elastic-Job's format).
    #[serde(default)]
    pub sharding_item_parameters: String,
    #[serde(default)]
    pub job_parameter: String,
    /// Re-run items whose task was lost to a crash: executor or agent died, task lost, gone or
    /// dropped, executor stopped by another task (daemon jobs always are).
    #[serde(default)]
    pub failover: bool,
    /// Transient jobs: re-run an item whose job itself reported failure (or timed out) up to
    /// this many times within the run.
    #[serde(default)]
    pub retries: u32,
    /// Transient jobs: a task running longer than this (from `TASK_RUNNING`) is killed and fails
    /// with "timed out after …".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<MesosDuration>,
    /// Transient: count fires missed while a run is pending (on) or coalesce them (off).
    /// Daemon: passed to the executor's cron.
    #[serde(default)]
    pub misfire: bool,
    #[serde(default)]
    pub execution_type: ExecutionTypeConfig,
    #[serde(default)]
    pub kind: JobKindConfig,
    /// Dataflow jobs: keep fetching while data comes.
    #[serde(default)]
    pub streaming: bool,
    /// Plugin file relative to the executor's sandbox (simple and dataflow jobs).
    #[serde(default)]
    pub plugin: Option<String>,
    /// Script jobs: the command line.
    #[serde(default)]
    pub command_line: Option<String>,
    /// cpus of each shard's task.
    #[serde(default = "default_job_cpus")]
    pub cpus: f64,
    /// mem (MB) of each shard's task.
    #[serde(default = "default_job_mem")]
    pub mem: f64,
    /// `fail` (TASK_FAILED), `log` (TASK_FINISHED with the error) or `stop` (TASK_ERROR and the
    /// executor stops).
    #[serde(default, with = "error_policy_serde")]
    pub error_policy: ErrorPolicy,
    /// `process` or `thread`; unset takes the app's.
    #[serde(
        default,
        with = "isolation_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub isolation: Option<Isolation>,
    #[serde(default, skip_serializing_if = "GuardsConfig::is_empty")]
    pub guards: GuardsConfig,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
    /// Start disabled (TOML only; REST uses the disable/enable endpoints).
    #[serde(default)]
    pub disabled: bool,
}

mod error_policy_serde {
    use super::*;

    pub fn serialize<S: Serializer>(policy: &ErrorPolicy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(policy.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ErrorPolicy, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn check_resource(what: &str, field: &str, value: f64, min: f64) -> Result<(), ConfigError> {
    if !value.is_finite() || value < min {
        return Err(ConfigError::new(
            what,
            field,
            format!("is {value}; it must be a number of at least {min}"),
        ));
    }
    if value > 1_000_000.0 {
        return Err(ConfigError::new(
            what,
            field,
            format!("is {value}, more than any agent offers"),
        ));
    }
    Ok(())
}

fn check_uri(what: &str, field: &str, uri: &str) -> Result<(), ConfigError> {
    if uri.trim().is_empty() {
        return Err(ConfigError::new(what, field, "is empty"));
    }
    Ok(())
}

impl AppConfig {
    /// Checks the app on its own (the executor URI fallback is checked by the registry).
    pub fn validate(&self) -> Result<(), ConfigError> {
        ids::validate_name(&self.name)
            .map_err(|e| ConfigError::new("app", "name", format!("'{}' {e}", self.name)))?;
        let what = format!("app '{}'", self.name);
        check_resource(&what, "cpus", self.cpus, 0.001)?;
        check_resource(&what, "mem", self.mem, 1.0)?;
        if let Some(uri) = &self.executor_uri {
            check_uri(&what, "executor_uri", uri)?;
        }
        if let Some(command) = &self.executor_command
            && command.trim().is_empty()
        {
            return Err(ConfigError::new(&what, "executor_command", "is empty"));
        }
        for uri in &self.uris {
            check_uri(&what, "uris", uri.value())?;
        }
        Ok(())
    }
}

impl JobConfig {
    fn what(&self) -> String {
        format!("job '{}'", self.name)
    }

    /// Checks the job on its own (that its app exists is checked by the registry).
    pub fn validate(&self) -> Result<(), ConfigError> {
        ids::validate_name(&self.name)
            .map_err(|e| ConfigError::new("job", "name", format!("'{}' {e}", self.name)))?;
        if self.isolation == Some(Isolation::Thread) && !self.guards.is_empty() {
            return Err(ConfigError::new(
                self.what(),
                "guards",
                "needs isolation = \"process\": a thread of the executor cannot be limited alone",
            ));
        }
        if self.guards.address_space_mb == Some(0) || self.guards.open_files == Some(0) {
            return Err(ConfigError::new(
                self.what(),
                "guards",
                "has a limit of 0, which no job can run under; leave it out for no limit",
            ));
        }
        let what = self.what();
        ids::validate_name(&self.app)
            .map_err(|e| ConfigError::new(&what, "app", format!("'{}' {e}", self.app)))?;
        match &self.cron {
            Some(cron) => {
                let schedule = Schedule::parse(cron)
                    .map_err(|e| ConfigError::new(&what, "cron", e.to_string()))?;
                if schedule.next_after(chrono::Utc::now()).is_none() {
                    return Err(ConfigError::new(
                        &what,
                        "cron",
                        format!("'{cron}' never fires again"),
                    ));
                }
            }
            None if self.is_daemon() => {
                return Err(ConfigError::new(
                    &what,
                    "cron",
                    "is missing; a daemon job fires on its cron inside the executor",
                ));
            }
            None => {}
        }
        if self.is_daemon() {
            if self.timeout.is_some() {
                return Err(ConfigError::new(
                    &what,
                    "timeout",
                    "is only for transient jobs; a daemon job runs until it is killed",
                ));
            }
            if self.retries > 0 {
                return Err(ConfigError::new(
                    &what,
                    "retries",
                    "is only for transient jobs; a daemon job is always relaunched \
                     (failover.max_attempts bounds it)",
                ));
            }
        }
        if self.timeout.is_some_and(|t| t.0.is_zero()) {
            return Err(ConfigError::new(&what, "timeout", "must be longer than 0"));
        }
        if self.retries > MAX_RETRIES {
            return Err(ConfigError::new(
                &what,
                "retries",
                format!("is {}; at most {MAX_RETRIES}", self.retries),
            ));
        }
        if self.sharding_total_count == 0 || self.sharding_total_count > MAX_SHARDING_TOTAL_COUNT {
            return Err(ConfigError::new(
                &what,
                "sharding_total_count",
                format!(
                    "is {}; it must be between 1 and {MAX_SHARDING_TOTAL_COUNT}",
                    self.sharding_total_count
                ),
            ));
        }
        self.item_parameters()?;
        check_resource(&what, "cpus", self.cpus, 0.001)?;
        check_resource(&what, "mem", self.mem, 1.0)?;
        match self.kind {
            JobKindConfig::Simple | JobKindConfig::Dataflow => {
                match self.plugin.as_deref().map(str::trim) {
                    None | Some("") => {
                        return Err(ConfigError::new(
                            &what,
                            "plugin",
                            "is missing; simple and dataflow jobs name their plugin file",
                        ));
                    }
                    Some(path) if path.starts_with('/') || path.split('/').any(|p| p == "..") => {
                        return Err(ConfigError::new(
                            &what,
                            "plugin",
                            format!(
                                "'{path}' must be a path relative to the executor's sandbox, \
                                 without '..'"
                            ),
                        ));
                    }
                    Some(_) => {}
                }
                if self.command_line.is_some() {
                    return Err(ConfigError::new(
                        &what,
                        "command_line",
                        "is only for script jobs",
                    ));
                }
            }
            JobKindConfig::Script => {
                if self.plugin.is_some() {
                    return Err(ConfigError::new(
                        &what,
                        "plugin",
                        "is only for simple and dataflow jobs; a script job runs its command_line",
                    ));
                }
                if self
                    .command_line
                    .as_deref()
                    .is_none_or(|c| c.trim().is_empty())
                {
                    return Err(ConfigError::new(
                        &what,
                        "command_line",
                        "is missing; script jobs need a command line",
                    ));
                }
            }
        }
        if self.streaming && self.kind != JobKindConfig::Dataflow {
            return Err(ConfigError::new(
                &what,
                "streaming",
                "is only for dataflow jobs",
            ));
        }
        Ok(())
    }

    /// The parameter of every item (`""` for items `sharding_item_parameters` does not name).
    pub fn item_parameters(&self) -> Result<BTreeMap<u32, String>, ConfigError> {
        let what = self.what();
        let field = "sharding_item_parameters";
        let mut map: BTreeMap<u32, String> = (0..self.sharding_total_count)
            .map(|item| (item, String::new()))
            .collect();
        let mut named = std::collections::BTreeSet::new();
        for pair in self
            .sharding_item_parameters
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (item, value) = pair.split_once('=').ok_or_else(|| {
                ConfigError::new(
                    &what,
                    field,
                    format!("has '{pair}', expected 'item=parameter' as in '0=a,1=b'"),
                )
            })?;
            let item: u32 = item.trim().parse().map_err(|_| {
                ConfigError::new(
                    &what,
                    field,
                    format!("has item '{}', which is not a number", item.trim()),
                )
            })?;
            if item >= self.sharding_total_count {
                return Err(ConfigError::new(
                    &what,
                    field,
                    format!(
                        "names item {item}, outside 0..{} (sharding_total_count)",
                        self.sharding_total_count
                    ),
                ));
            }
            if !named.insert(item) {
                return Err(ConfigError::new(
                    &what,
                    field,
                    format!("names item {item} twice"),
                ));
            }
            map.insert(item, value.trim().to_owned());
        }
        Ok(map)
    }

    pub fn is_daemon(&self) -> bool {
        self.execution_type == ExecutionTypeConfig::Daemon
    }
}

impl Config {
    /// Reads and checks a TOML file's text.
    pub fn from_toml(text: &str, source: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| toml_error(text, source, &e))?;
        config.validate(source)?;
        Ok(Config {
            source: Some(source.to_owned()),
            ..config
        })
    }

    /// Checks the tuning values.
    pub fn validate(&self, source: &str) -> Result<(), ConfigError> {
        let what = format!("config file {source}");
        let positive = |field: &str, d: MesosDuration| {
            if d.0.is_zero() {
                Err(ConfigError::new(&what, field, "must be longer than 0"))
            } else {
                Ok(())
            }
        };
        positive(
            "framework.failover_timeout",
            self.framework.failover_timeout,
        )?;
        positive(
            "mesos.resubscribe_backoff_initial",
            self.mesos.resubscribe_backoff_initial,
        )?;
        positive(
            "mesos.resubscribe_backoff_max",
            self.mesos.resubscribe_backoff_max,
        )?;
        positive("tasks.kill_retry_interval", self.tasks.kill_retry_interval)?;
        positive("tasks.reconcile_interval", self.tasks.reconcile_interval)?;
        positive(
            "tasks.launch_check_interval",
            self.tasks.launch_check_interval,
        )?;
        positive(
            "tasks.reconcile_retry_initial",
            self.tasks.reconcile_retry_initial,
        )?;
        if self.tasks.history_max_entries == 0 {
            return Err(ConfigError::new(
                &what,
                "tasks.history_max_entries",
                "is 0; at least 1 (ended tasks are remembered to ignore late duplicate updates)",
            ));
        }
        if self.framework.secret_file.is_some() && self.framework.principal.is_none() {
            return Err(ConfigError::new(
                &what,
                "framework.secret_file",
                "is set without framework.principal: name the principal the secret belongs to",
            ));
        }
        if self.rest.protect_reads && self.rest.token_file.is_none() {
            return Err(ConfigError::new(
                &what,
                "rest.protect_reads",
                "is true without rest.token_file: set the file holding the REST token",
            ));
        }
        if let Some(zookeeper) = &self.ha.zookeeper {
            zookeeper
                .parse::<crate::ZkTarget>()
                .map_err(|e| ConfigError::new(&what, "ha.zookeeper", e.to_string()))?;
            if self.store.is_some() {
                return Err(ConfigError::new(
                    &what,
                    "store",
                    "is set together with ha.zookeeper: the highly available scheduler keeps \
                     its state in ZooKeeper; remove one of them",
                ));
            }
        }
        let session = self.ha.session_timeout.0;
        if session < std::time::Duration::from_secs(1)
            || session > std::time::Duration::from_secs(60)
        {
            return Err(ConfigError::new(
                &what,
                "ha.session_timeout",
                "must be between 1secs and 60secs (ZooKeeper bounds it to 2 to 20 ticks)",
            ));
        }
        if self.ha.digest.as_deref().is_some_and(|d| !d.contains(':')) {
            return Err(ConfigError::new(
                &what,
                "ha.digest",
                "must be user:password",
            ));
        }
        self.mesos.tls.validate(&what)?;
        if let Some(master) = &self.master {
            self.mesos.tls.check_masters(&what, master)?;
        }
        if self.mesos.missed_heartbeats == 0 {
            return Err(ConfigError::new(
                &what,
                "mesos.missed_heartbeats",
                "must be at least 1",
            ));
        }
        if self.failover.max_attempts == 0 {
            return Err(ConfigError::new(
                &what,
                "failover.max_attempts",
                "must be at least 1",
            ));
        }
        if self.queues.ready_runs_per_job == 0 || self.queues.failover_entries == 0 {
            return Err(ConfigError::new(
                &what,
                "queues",
                "limits must be at least 1",
            ));
        }
        if self.framework.name.trim().is_empty() {
            return Err(ConfigError::new(&what, "framework.name", "is empty"));
        }
        for app in &self.apps {
            app.validate()?;
        }
        for job in &self.jobs {
            job.validate()?;
        }
        Ok(())
    }
}

/// A TOML error located by line and column (1-based, as editors count) instead of bytes.
fn toml_error(text: &str, source: &str, error: &toml::de::Error) -> ConfigError {
    let what = match error.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("config file {source}, line {line}, column {column}")
        }
        None => format!("config file {source}"),
    };
    ConfigError {
        what,
        field: String::new(),
        reason: error.message().trim_end().to_owned(),
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::ids::ExecutionKind;
    use crate::registry::AppRecord;
    use crate::state::RunningTask;

    /// A registered app `name` at `revision`.
    pub fn app_record(name: &str, revision: u64) -> AppRecord {
        AppRecord {
            config: app(name),
            revision,
            executor_fingerprint: String::new(),
            source: Default::default(),
        }
    }

    /// A task of `job`'s `item`, just launched (`TASK_STAGING`) on agent `S0` in executor
    /// `app@-@S0`.
    pub fn running_task(task_id: &str, job: &str, item: u32) -> RunningTask {
        RunningTask {
            task_id: task_id.into(),
            job: job.into(),
            item,
            kind: ExecutionKind::Ready,
            agent_id: "S0".into(),
            executor_id: "app@-@S0".into(),
            work_dir: None,
            state: shardex_mesos::proto::v1::TaskState::TaskStaging,
            launched_at: 0,
            started_at: None,
            attempt: 0,
            original_task_id: None,
            suspect_since: None,
            kill: None,
            abandoned: false,
            idle: None,
            seen_uuids: vec![],
        }
    }

    pub fn app(name: &str) -> AppConfig {
        AppConfig {
            name: name.into(),
            executor_uri: Some("/opt/shardex-executor".into()),
            executor_command: None,
            uris: vec![UriConfig::Plain("/opt/libhello_shards.so".into())],
            cpus: 0.1,
            mem: 32.0,
            environment: BTreeMap::new(),
            disabled: false,
            isolation: Isolation::Process,
        }
    }

    pub fn job(name: &str, app: &str) -> JobConfig {
        JobConfig {
            name: name.into(),
            app: app.into(),
            cron: Some("0/5 * * * * ?".into()),
            sharding_total_count: 3,
            sharding_item_parameters: String::new(),
            job_parameter: String::new(),
            failover: true,
            retries: 0,
            timeout: None,
            misfire: false,
            execution_type: ExecutionTypeConfig::Transient,
            kind: JobKindConfig::Simple,
            streaming: false,
            plugin: Some("libhello_shards.so".into()),
            command_line: None,
            cpus: 0.1,
            mem: 32.0,
            error_policy: ErrorPolicy::Fail,
            isolation: None,
            guards: GuardsConfig::default(),
            properties: BTreeMap::new(),
            description: String::new(),
            disabled: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::job as job2;
    use super::*;

    fn job(name: &str) -> JobConfig {
        job2(name, "app")
    }

    fn collect_paths(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(table) = value {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match value {
                    toml::Value::Table(inner)
                        if !matches!(key.as_str(), "environment" | "properties") =>
                    {
                        let _ = inner;
                        collect_paths(&path, value, out)
                    }
                    toml::Value::Array(items)
                        if items.first().is_some_and(|i| i.is_table())
                            && matches!(key.as_str(), "apps" | "jobs") =>
                    {
                        collect_paths(&format!("{path}[]"), &items[0], out)
                    }
                    _ => out.push(path),
                }
            }
        }
    }

    #[test]
    fn config_fields_list_matches_the_structs() {
        let mut config = Config {
            master: Some("m".into()),
            store: Some("s".into()),
            listen: Some("l".into()),
            ..Config::default()
        };
        config.framework.user = Some("u".into());
        config.framework.role = Some("r".into());
        config.framework.hostname = Some("h".into());
        config.framework.webui_url = Some("w".into());
        config.framework.principal = Some("p".into());
        config.framework.secret_file = Some("f".into());
        config.rest.token_file = Some("t".into());
        config.executor.uri = Some("x".into());
        config.executor.idle_timeout = Some(MesosDuration::secs(1));
        config.ha.zookeeper = Some("zk://z:2181/s".into());
        config.ha.digest = Some("u:p".into());
        config.mesos.tls.ca_file = Some("c".into());
        config.mesos.tls.ca_dir = Some("d".into());
        config.mesos.tls.cert_file = Some("c".into());
        config.mesos.tls.key_file = Some("k".into());
        config.apps.push(AppConfig {
            name: "app".into(),
            executor_uri: Some("e".into()),
            executor_command: Some("c".into()),
            uris: vec![UriConfig::Plain("p".into())],
            cpus: 0.1,
            mem: 32.0,
            environment: BTreeMap::new(),
            disabled: false,
            isolation: Isolation::Thread,
        });
        let mut job = job("j");
        job.command_line = Some("c".into());
        job.timeout = Some(MesosDuration::secs(1));
        job.isolation = Some(Isolation::Process);
        job.guards = GuardsConfig {
            address_space_mb: Some(1),
            cpu_time: Some(MesosDuration::secs(1)),
            open_files: Some(1),
        };
        config.jobs.push(job);
        let value = toml::Value::try_from(&config).unwrap();
        let mut paths = Vec::new();
        collect_paths("", &value, &mut paths);
        paths.sort();
        let mut listed: Vec<String> = CONFIG_FIELDS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(paths, listed);
    }

    #[test]
    fn isolation_and_guards_read_check_and_reach_the_payload() {
        let text = r#"
            [[apps]]
            name = "demo"
            executor_uri = "/opt/shardex-executor"
            isolation = "thread"
            [[jobs]]
            name = "guarded"
            app = "demo"
            sharding_total_count = 1
            plugin = "libx.so"
            isolation = "process"
            guards = { address_space_mb = 256, cpu_time = "90secs", open_files = 64 }
            [[jobs]]
            name = "plain"
            app = "demo"
            sharding_total_count = 1
            plugin = "libx.so"
        "#;
        let config = Config::from_toml(text, "test").unwrap();
        assert_eq!(config.apps[0].isolation, Isolation::Thread);
        let guarded = &config.jobs[0];
        assert_eq!(guarded.isolation, Some(Isolation::Process));
        assert_eq!(
            guarded.guards.to_guards(),
            Guards {
                address_space: Some(256 << 20),
                cpu_time: Some(90),
                open_files: Some(64),
            }
        );
        assert_eq!(config.jobs[1].isolation, None, "the app's applies");
        let mut wrong = guarded.clone();
        wrong.isolation = Some(Isolation::Thread);
        let error = wrong.validate().unwrap_err().to_string();
        assert!(error.contains("needs isolation = \"process\""), "{error}");
        let error = Config::from_toml(&text.replace("\"process\"", "\"fork\""), "test")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unknown isolation 'fork'; expected 'process' or 'thread'"),
            "{error}"
        );
    }

    #[test]
    fn master_is_one_endpoint_or_a_list_of_them() {
        let read = |text: &str| Config::from_toml(text, "t.toml").map(|c| c.master);
        assert_eq!(
            read("master = \"m1:5050\"").unwrap().as_deref(),
            Some("m1:5050")
        );
        assert_eq!(
            read("master = [\"http://m1:5050\", \"m2:5050\"]")
                .unwrap()
                .as_deref(),
            Some("http://m1:5050,m2:5050")
        );
        assert_eq!(read("").unwrap(), None);
        let error = |text: &str| read(text).unwrap_err().to_string();
        assert!(
            error("master = []").contains("the list of masters is empty; name at least one master"),
            "{}",
            error("master = []")
        );
        assert!(
            error("master = [\"zk://z:2181/mesos\"]")
                .contains("'zk://z:2181/mesos' in the list of masters: each entry is one master's"),
            "{}",
            error("master = [\"zk://z:2181/mesos\"]")
        );
        assert!(
            error("master = 5050").contains(
                "expected a master's host:port or URL, a list of them, or a zk:// address"
            ),
            "{}",
            error("master = 5050")
        );
    }

    #[test]
    fn reads_a_toml_file_with_defaults() {
        let text = r#"
            master = "127.0.0.1:5050"
            [failover]
            max_attempts = 3
            [tasks]
            suspect_timeout = "2secs"
            [[apps]]
            name = "demo"
            executor_uri = "/opt/shardex-executor"
            uris = ["/opt/libhello_shards.so", { value = "/opt/bundle.tar.gz", cache = true }]
            [[jobs]]
            name = "hello"
            app = "demo"
            cron = "0/2 * * * * ?"
            sharding_total_count = 3
            sharding_item_parameters = "0=a, 1=b"
            plugin = "libhello_shards.so"
            error_policy = "log"
        "#;
        let config = Config::from_toml(text, "test.toml").unwrap();
        assert_eq!(config.failover.max_attempts, 3);
        assert_eq!(config.tasks.suspect_timeout, MesosDuration::secs(2));
        assert_eq!(config.tasks.kill_retry_interval, MesosDuration::secs(5));
        assert_eq!(
            config.framework.failover_timeout,
            MesosDuration::secs(604_800)
        );
        assert_eq!(config.apps[0].cpus, 0.1);
        assert_eq!(config.apps[0].uris.len(), 2);
        let job = &config.jobs[0];
        assert_eq!(job.error_policy, ErrorPolicy::Log);
        assert_eq!(
            job.item_parameters().unwrap(),
            BTreeMap::from([(0, "a".into()), (1, "b".into()), (2, String::new())])
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let e = Config::from_toml("[tasks]\nsuspect = \"1secs\"", "x.toml").unwrap_err();
        assert!(e.to_string().contains("unknown field `suspect`"), "{e}");
        let e = Config::from_toml("[tasks]\nsuspect_timeout = \"1 sec\"", "x.toml").unwrap_err();
        assert!(e.to_string().contains("unknown unit"), "{e}");
    }

    #[test]
    fn ha_settings_are_checked_by_name() {
        let error = |text: &str| Config::from_toml(text, "ha.toml").unwrap_err().to_string();
        let ok = Config::from_toml(
            "[ha]\nzookeeper = \"zk://z1:2181,z2:2181/shardex\"\nsession_timeout = \"4secs\"\n",
            "ha.toml",
        )
        .unwrap();
        assert_eq!(ok.ha.session_timeout, MesosDuration::secs(4));
        let bad_url = error("[ha]\nzookeeper = \"http://z1/x\"\n");
        assert!(bad_url.contains("ha.zookeeper"), "{bad_url}");
        assert!(bad_url.contains("does not start with zk://"), "{bad_url}");
        let both = error("store = \"s.redb\"\n[ha]\nzookeeper = \"zk://z:1/x\"\n");
        assert!(
            both.contains("store") && both.contains("remove one of them"),
            "{both}"
        );
        let short = error("[ha]\nsession_timeout = \"500ms\"\n");
        assert!(short.contains("between 1secs and 60secs"), "{short}");
        let digest = error("[ha]\ndigest = \"nopassword\"\n");
        assert!(digest.contains("user:password"), "{digest}");
    }

    #[test]
    fn tls_settings_are_checked_by_name() {
        let read = |text: &str| Config::from_toml(text, "tls.toml");
        let error = |text: &str| read(text).unwrap_err().to_string();
        let ok = read(
            "master = \"zk://z:2181/mesos\"\n[mesos.tls]\nenabled = true\nca_file = \
             \"/etc/shardex/ca.pem\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n",
        )
        .unwrap();
        assert_eq!(ok.mesos.tls.scheme(), "https");
        let client = ok.mesos.tls.client();
        assert!(client.verify);
        assert_eq!(client.names.ca_file, "mesos.tls.ca_file");
        assert_eq!(
            client.client_certificate.unwrap().key_file,
            PathBuf::from("k.pem")
        );
        assert_eq!(Config::default().mesos.tls.scheme(), "http");
        // An https:// master uses TLS without `enabled`.
        read("master = [\"https://m1:5050\"]\n[mesos.tls]\nca_dir = \"/etc/cas\"\n").unwrap();

        assert_eq!(
            error("[mesos.tls]\ncert_file = \"c.pem\"\n"),
            "config file tls.toml: field 'mesos.tls.cert_file' is set without \
             mesos.tls.key_file: give the certificate's private key too"
        );
        assert_eq!(
            error("[mesos.tls]\nkey_file = \"k.pem\"\n"),
            "config file tls.toml: field 'mesos.tls.key_file' is set without \
             mesos.tls.cert_file: give the key's certificate too"
        );
        assert_eq!(
            error("[mesos.tls]\nverify = false\nca_file = \"ca.pem\"\n"),
            "config file tls.toml: field 'mesos.tls.verify' is false, so mesos.tls.ca_file \
             would never be used: remove one of them (verifying with the CA is what you want)"
        );
        assert_eq!(
            error("[mesos.tls]\nca_file = \"\"\n"),
            "config file tls.toml: field 'mesos.tls.ca_file' is empty; give a path"
        );
        assert_eq!(
            error("master = [\"http://m1:5050\", \"m2:5050\"]\n[mesos.tls]\nenabled = true\n"),
            "config file tls.toml: field 'master' 'http://m1:5050' is plain http while \
             mesos.tls.enabled is true: write https://m1:5050, or leave out the scheme"
        );
        assert_eq!(
            error("master = \"zk://z:2181/mesos\"\n[mesos.tls]\nca_file = \"ca.pem\"\n"),
            "config file tls.toml: field 'mesos.tls.ca_file' is set, but no master is reached \
             over https (master is 'zk://z:2181/mesos'): set mesos.tls.enabled = true (masters \
             given as host:port and masters found in ZooKeeper then use https) or give https:// \
             master URLs"
        );
        let unknown = error("[mesos.tls]\nca = \"ca.pem\"\n");
        assert!(unknown.contains("unknown field `ca`"), "{unknown}");
        let typed = error("[mesos.tls]\nenabled = \"yes\"\n");
        assert!(typed.contains("invalid type"), "{typed}");
        // Without a master in the file the check waits for --master (Prepared::start).
        read("[mesos.tls]\nca_file = \"ca.pem\"\n").unwrap();
    }

    #[test]
    fn toml_errors_name_line_and_column() {
        let text = "[framework]\nname = \"x\"\n\n[[jobs]]\nname = \"j\"\n  crn = \"0 * * * * ?\"\n";
        let e = Config::from_toml(text, "x.toml").unwrap_err();
        assert_eq!(e.what, "config file x.toml, line 6, column 3");
        assert!(
            e.to_string()
                .starts_with("config file x.toml, line 6, column 3: unknown field `crn`"),
            "{e}"
        );
        let e = Config::from_toml("listen = \"é\"\nstore = \"unclosed\n", "y.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config file y.toml, line 2, column "),
            "{e}"
        );
        assert_eq!(line_column("ab\ncdé f", 8), (2, 5));
    }

    #[test]
    fn job_validation_names_the_field() {
        let check = |mutate: &dyn Fn(&mut JobConfig), field: &str, needle: &str| {
            let mut j = job("j");
            mutate(&mut j);
            let e = j.validate().unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        };
        check(&|j| j.cron = Some("* * * *".into()), "cron", "4 fields");
        check(
            &|j| j.cron = Some("0 0 0 1 1 ? 2001".into()),
            "cron",
            "never fires",
        );
        check(
            &|j| j.sharding_total_count = 0,
            "sharding_total_count",
            "between 1 and 1000",
        );
        check(
            &|j| j.sharding_item_parameters = "0=a,3=d".into(),
            "sharding_item_parameters",
            "outside 0..3",
        );
        check(
            &|j| j.sharding_item_parameters = "0=a,0=b".into(),
            "sharding_item_parameters",
            "twice",
        );
        check(
            &|j| j.sharding_item_parameters = "x".into(),
            "sharding_item_parameters",
            "expected 'item=parameter'",
        );
        check(&|j| j.cpus = 0.0, "cpus", "at least 0.001");
        check(&|j| j.mem = f64::NAN, "mem", "at least 1");
        check(&|j| j.plugin = None, "plugin", "is missing");
        check(&|j| j.plugin = Some("/abs.so".into()), "plugin", "relative");
        check(&|j| j.name = "a@-@b".into(), "name", "delimiter");
        check(
            &|j| {
                j.kind = JobKindConfig::Script;
                j.plugin = None;
            },
            "command_line",
            "script jobs need",
        );
        check(&|j| j.streaming = true, "streaming", "only for dataflow");
        check(
            &|j| {
                j.kind = JobKindConfig::Script;
                j.command_line = Some("./run.sh".into());
            },
            "plugin",
            "is only for simple and dataflow jobs",
        );
        check(
            &|j| j.cron = Some("0 0 25 * * ?".into()),
            "cron",
            "hour 25 is out of range 0-23",
        );
        check(
            &|j| j.cron = Some("0 * * * * *".into()),
            "cron",
            "Quartz needs '?'",
        );
        assert!(job("ok").validate().is_ok());
    }

    #[test]
    fn archives_are_recognised() {
        assert!(is_archive("http://x/exec-1.0.tar.gz?v=1"));
        assert!(is_archive("/opt/a.zip"));
        assert!(!is_archive("/opt/shardex-executor"));
        assert!(!is_archive("/opt/libfoo.so"));
    }
}
