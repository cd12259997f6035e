//! What the store holds for apps and jobs: record types of their own, separate from the TOML and
//! REST input types ([`AppConfig`], [`JobConfig`]), so that renaming or reshaping an input field
//! never makes an existing store unreadable. Each schema version has its records here, and
//! [`upgrade_v1`] turns version 1 records into the current ones.
//!
//! | version | `apps` value | `jobs` value |
//! |---|---|---|
//! | 1 | `{"config": AppConfig, "revision", "executor_fingerprint"}` | a bare `JobConfig` (cron required, no `retries`, `timeout`, `source`) |
//! | 2 | [`StoredApp`] (flat, with `source`) | [`StoredJob`] (with `source`) |

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{
    AppConfig, ExecutionTypeConfig, GuardsConfig, JobConfig, JobKindConfig, UriConfig, UriDetails,
};
use super::registry::{AppRecord, Source};
use shardex_common::payload::Isolation;
use shardex_mesos::duration::MesosDuration;

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 2;

/// A URI of an app: a plain string, or the `CommandInfo.URI` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredUri {
    Plain(String),
    Detailed {
        value: String,
        #[serde(default)]
        extract: Option<bool>,
        #[serde(default)]
        executable: Option<bool>,
        #[serde(default)]
        cache: Option<bool>,
        #[serde(default)]
        output_file: Option<String>,
    },
}

impl From<&UriConfig> for StoredUri {
    fn from(uri: &UriConfig) -> Self {
        match uri {
            UriConfig::Plain(value) => StoredUri::Plain(value.clone()),
            UriConfig::Detailed(d) => StoredUri::Detailed {
                value: d.value.clone(),
                extract: d.extract,
                executable: d.executable,
                cache: d.cache,
                output_file: d.output_file.clone(),
            },
        }
    }
}

impl From<StoredUri> for UriConfig {
    fn from(uri: StoredUri) -> Self {
        match uri {
            StoredUri::Plain(value) => UriConfig::Plain(value),
            StoredUri::Detailed {
                value,
                extract,
                executable,
                cache,
                output_file,
            } => UriConfig::Detailed(UriDetails {
                value,
                extract,
                executable,
                cache,
                output_file,
            }),
        }
    }
}

/// An app as stored (schema 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredApp {
    pub name: String,
    pub executor_uri: Option<String>,
    pub executor_command: Option<String>,
    pub uris: Vec<StoredUri>,
    pub cpus: f64,
    pub mem: f64,
    pub environment: BTreeMap<String, String>,
    pub disabled: bool,
    pub revision: u64,
    pub executor_fingerprint: String,
    pub source: Source,
    /// `process` or `thread`; records written before isolation existed read as the default,
    /// `process`.
    #[serde(default = "default_isolation")]
    pub isolation: String,
}

fn default_isolation() -> String {
    Isolation::default().as_str().to_owned()
}

impl From<&AppRecord> for StoredApp {
    fn from(record: &AppRecord) -> Self {
        let c = &record.config;
        StoredApp {
            name: c.name.clone(),
            executor_uri: c.executor_uri.clone(),
            executor_command: c.executor_command.clone(),
            uris: c.uris.iter().map(StoredUri::from).collect(),
            cpus: c.cpus,
            mem: c.mem,
            environment: c.environment.clone(),
            disabled: c.disabled,
            revision: record.revision,
            executor_fingerprint: record.executor_fingerprint.clone(),
            source: record.source.clone(),
            isolation: c.isolation.as_str().to_owned(),
        }
    }
}

impl From<StoredApp> for AppRecord {
    fn from(s: StoredApp) -> Self {
        AppRecord {
            config: AppConfig {
                name: s.name,
                executor_uri: s.executor_uri,
                executor_command: s.executor_command,
                uris: s.uris.into_iter().map(UriConfig::from).collect(),
                cpus: s.cpus,
                mem: s.mem,
                environment: s.environment,
                disabled: s.disabled,
                // Written by this code from the enum; anything else reads as the default.
                isolation: s.isolation.parse().unwrap_or_default(),
            },
            revision: s.revision,
            executor_fingerprint: s.executor_fingerprint,
            source: s.source,
        }
    }
}

/// A job as stored (schema 2). Enumerations are stored by their names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredJob {
    pub name: String,
    pub app: String,
    pub cron: Option<String>,
    pub sharding_total_count: u32,
    pub sharding_item_parameters: String,
    pub job_parameter: String,
    pub failover: bool,
    pub retries: u32,
    pub timeout_ms: Option<u64>,
    pub misfire: bool,
    /// `transient` or `daemon`.
    pub execution_type: String,
    /// `simple`, `dataflow` or `script`.
    pub kind: String,
    pub streaming: bool,
    pub plugin: Option<String>,
    pub command_line: Option<String>,
    pub cpus: f64,
    pub mem: f64,
    /// `fail`, `log` or `stop`.
    pub error_policy: String,
    pub properties: BTreeMap<String, String>,
    pub description: String,
    pub disabled: bool,
    pub source: Source,
    /// `process`, `thread`, or absent for the app's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    #[serde(default, skip_serializing_if = "GuardsConfig::is_empty")]
    pub guards: GuardsConfig,
}

fn execution_type_name(t: ExecutionTypeConfig) -> &'static str {
    match t {
        ExecutionTypeConfig::Transient => "transient",
        ExecutionTypeConfig::Daemon => "daemon",
    }
}

fn kind_name(k: JobKindConfig) -> &'static str {
    match k {
        JobKindConfig::Simple => "simple",
        JobKindConfig::Dataflow => "dataflow",
        JobKindConfig::Script => "script",
    }
}

impl StoredJob {
    pub fn new(job: &JobConfig, source: Source) -> StoredJob {
        StoredJob {
            name: job.name.clone(),
            app: job.app.clone(),
            cron: job.cron.clone(),
            sharding_total_count: job.sharding_total_count,
            sharding_item_parameters: job.sharding_item_parameters.clone(),
            job_parameter: job.job_parameter.clone(),
            failover: job.failover,
            retries: job.retries,
            timeout_ms: job
                .timeout
                .map(|t| u64::try_from(t.0.as_millis()).unwrap_or(u64::MAX)),
            misfire: job.misfire,
            execution_type: execution_type_name(job.execution_type).to_owned(),
            kind: kind_name(job.kind).to_owned(),
            streaming: job.streaming,
            plugin: job.plugin.clone(),
            command_line: job.command_line.clone(),
            cpus: job.cpus,
            mem: job.mem,
            error_policy: job.error_policy.as_str().to_owned(),
            properties: job.properties.clone(),
            description: job.description.clone(),
            disabled: job.disabled,
            source,
            isolation: job.isolation.map(|i| i.as_str().to_owned()),
            guards: job.guards,
        }
    }

    /// The job and who manages it; `Err` names the field that does not read.
    pub fn into_job(self) -> Result<(JobConfig, Source), String> {
        let execution_type = match self.execution_type.as_str() {
            "transient" => ExecutionTypeConfig::Transient,
            "daemon" => ExecutionTypeConfig::Daemon,
            other => return Err(format!("execution_type '{other}' is unknown")),
        };
        let kind = match self.kind.as_str() {
            "simple" => JobKindConfig::Simple,
            "dataflow" => JobKindConfig::Dataflow,
            "script" => JobKindConfig::Script,
            other => return Err(format!("kind '{other}' is unknown")),
        };
        let error_policy = self
            .error_policy
            .parse()
            .map_err(|e| format!("error_policy: {e}"))?;
        let isolation = self
            .isolation
            .map(|text| text.parse().map_err(|e| format!("isolation: {e}")))
            .transpose()?;
        let job = JobConfig {
            name: self.name,
            app: self.app,
            cron: self.cron,
            sharding_total_count: self.sharding_total_count,
            sharding_item_parameters: self.sharding_item_parameters,
            job_parameter: self.job_parameter,
            failover: self.failover,
            retries: self.retries,
            timeout: self
                .timeout_ms
                .map(|ms| MesosDuration(Duration::from_millis(ms))),
            misfire: self.misfire,
            execution_type,
            kind,
            streaming: self.streaming,
            plugin: self.plugin,
            command_line: self.command_line,
            cpus: self.cpus,
            mem: self.mem,
            error_policy,
            properties: self.properties,
            description: self.description,
            disabled: self.disabled,
            isolation,
            guards: self.guards,
        };
        Ok((job, self.source))
    }
}

/// Schema 1 records, frozen as they were written.
pub mod v1 {
    use super::*;

    #[derive(Debug, Deserialize)]
    pub struct App {
        pub name: String,
        #[serde(default)]
        pub executor_uri: Option<String>,
        #[serde(default)]
        pub executor_command: Option<String>,
        #[serde(default)]
        pub uris: Vec<StoredUri>,
        pub cpus: f64,
        pub mem: f64,
        #[serde(default)]
        pub environment: BTreeMap<String, String>,
        #[serde(default)]
        pub disabled: bool,
    }

    #[derive(Debug, Deserialize)]
    pub struct AppRecord {
        pub config: App,
        pub revision: u64,
        #[serde(default)]
        pub executor_fingerprint: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct Job {
        pub name: String,
        pub app: String,
        pub cron: String,
        pub sharding_total_count: u32,
        #[serde(default)]
        pub sharding_item_parameters: String,
        #[serde(default)]
        pub job_parameter: String,
        #[serde(default)]
        pub failover: bool,
        #[serde(default)]
        pub misfire: bool,
        #[serde(default = "transient")]
        pub execution_type: String,
        #[serde(default = "simple")]
        pub kind: String,
        #[serde(default)]
        pub streaming: bool,
        #[serde(default)]
        pub plugin: Option<String>,
        #[serde(default)]
        pub command_line: Option<String>,
        pub cpus: f64,
        pub mem: f64,
        #[serde(default = "fail")]
        pub error_policy: String,
        #[serde(default)]
        pub properties: BTreeMap<String, String>,
        #[serde(default)]
        pub description: String,
        #[serde(default)]
        pub disabled: bool,
    }

    fn transient() -> String {
        "transient".into()
    }
    fn simple() -> String {
        "simple".into()
    }
    fn fail() -> String {
        "fail".into()
    }
}

/// A schema 1 app record as a schema 2 one (registered through REST: version 1 did not say).
pub fn upgrade_app_v1(old: v1::AppRecord) -> StoredApp {
    let c = old.config;
    StoredApp {
        name: c.name,
        executor_uri: c.executor_uri,
        executor_command: c.executor_command,
        uris: c.uris,
        cpus: c.cpus,
        mem: c.mem,
        environment: c.environment,
        disabled: c.disabled,
        revision: old.revision,
        executor_fingerprint: old.executor_fingerprint,
        source: Source::Rest,
        // Schema-1 records predate isolation: the default.
        isolation: default_isolation(),
    }
}

/// A schema 1 job as a schema 2 one: a cron it always had, no retries or timeout, managed
/// through REST (version 1 did not say; the config file claims its own at the next start).
pub fn upgrade_job_v1(old: v1::Job) -> StoredJob {
    StoredJob {
        name: old.name,
        app: old.app,
        cron: Some(old.cron),
        sharding_total_count: old.sharding_total_count,
        sharding_item_parameters: old.sharding_item_parameters,
        job_parameter: old.job_parameter,
        failover: old.failover,
        retries: 0,
        timeout_ms: None,
        misfire: old.misfire,
        execution_type: old.execution_type,
        kind: old.kind,
        streaming: old.streaming,
        plugin: old.plugin,
        command_line: old.command_line,
        cpus: old.cpus,
        mem: old.mem,
        error_policy: old.error_policy,
        properties: old.properties,
        description: old.description,
        disabled: old.disabled,
        source: Source::Rest,
        isolation: None,
        guards: GuardsConfig::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests_support::{app_record, job};

    #[test]
    fn records_round_trip_through_their_stored_form() {
        let mut j = job("j", "a");
        j.cron = None;
        j.retries = 3;
        j.timeout = Some(MesosDuration::secs(90));
        j.kind = JobKindConfig::Dataflow;
        j.streaming = true;
        j.properties.insert("k".into(), "v".into());
        let source = Source::File {
            path: "/etc/shardex.toml".into(),
        };
        let stored = StoredJob::new(&j, source.clone());
        let text = serde_json::to_string(&stored).unwrap();
        let back: StoredJob = serde_json::from_str(&text).unwrap();
        assert_eq!(back.into_job().unwrap(), (j, source));

        let mut app = app_record("a", 3);
        app.config.uris.push(UriConfig::Detailed(UriDetails {
            value: "http://repo/p.so".into(),
            extract: Some(false),
            executable: None,
            cache: Some(true),
            output_file: Some("plugins/p.so".into()),
        }));
        let text = serde_json::to_string(&StoredApp::from(&app)).unwrap();
        let back: StoredApp = serde_json::from_str(&text).unwrap();
        assert_eq!(AppRecord::from(back), app);
    }

    #[test]
    fn an_unknown_stored_name_is_reported_by_field() {
        let mut stored = StoredJob::new(&job("j", "a"), Source::Rest);
        stored.kind = "quantum".into();
        assert_eq!(stored.into_job().unwrap_err(), "kind 'quantum' is unknown");
    }
}
