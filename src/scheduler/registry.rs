//! The registered apps and jobs, with their enabled flags and app configuration revisions.
//!
//! Plain data plus the rules of registration (a job needs its app, an app with jobs cannot go,
//! names are unique); the owner persists whatever changes here.

use serde::{Deserialize, Serialize};

use super::config::{AppConfig, ConfigError, JobConfig};
use super::tracked::Tracked;

/// A registered app. `revision` starts at 1 and grows whenever the app's effective
/// `ExecutorInfo` changes (its own fields, or the scheduler's `[executor]` defaults it uses):
/// each revision runs in executors with their own ids, because Mesos requires one identical
/// `ExecutorInfo` per executor id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    pub config: AppConfig,
    pub revision: u64,
    /// Fingerprint of the `ExecutorInfo` the current revision runs with (see
    /// `placement::executor_fingerprint`); empty until first computed.
    #[serde(default)]
    pub executor_fingerprint: String,
    /// Who manages the definition.
    #[serde(default)]
    pub source: Source,
}

/// Who manages an app's or job's definition.
///
/// Entries named in the config file are managed by the file: every start applies the file's
/// definition, REST writes to them (`PUT`, `PATCH`, `DELETE`) are refused with 409, and taking
/// one out of the file deregisters it at the next start. Entries registered through REST live
/// in the store only. Enabling, disabling and triggering are operations, allowed on both; the
/// enabled flag set through REST survives restarts (a file's `disabled` applies when the entry
/// is first registered).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    #[default]
    Rest,
    File {
        path: String,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Rest => write!(f, "rest"),
            Source::File { path } => write!(f, "file:{path}"),
        }
    }
}

/// Why a registry operation was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    #[error("app '{0}' is not registered")]
    UnknownApp(String),
    #[error("job '{0}' is not registered")]
    UnknownJob(String),
    #[error("app '{0}' is already registered; use PUT /api/apps/{0} to change it")]
    AppExists(String),
    #[error("job '{0}' is already registered; use PUT /api/jobs/{0} to change it")]
    JobExists(String),
    #[error("app '{app}' still has jobs ({jobs}); deregister them first")]
    AppInUse { app: String, jobs: String },
    #[error(
        "app '{0}': field 'executor_uri' is missing and the scheduler has no [executor].uri \
         default; say where agents fetch shardex-executor"
    )]
    NoExecutorUri(String),
    #[error("the body names '{body}' but the path names '{path}'")]
    NameMismatch { path: String, body: String },
    #[error(
        "{what} '{name}' is managed by the config file {path}: change it there and restart the \
         scheduler (or take it out of the file to manage it through REST)"
    )]
    ManagedByFile {
        what: &'static str,
        name: String,
        path: String,
    },
}

/// The registered apps and jobs. The maps record every change for the next commit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    pub apps: Tracked<AppRecord>,
    pub jobs: Tracked<JobConfig>,
    /// Jobs managed by the config file (absent: registered through REST). Stored with the job.
    pub job_sources: Tracked<Source>,
}

impl Registry {
    pub fn app(&self, name: &str) -> Result<&AppRecord, RegistryError> {
        self.apps
            .get(name)
            .ok_or_else(|| RegistryError::UnknownApp(name.to_owned()))
    }

    pub fn job(&self, name: &str) -> Result<&JobConfig, RegistryError> {
        self.jobs
            .get(name)
            .ok_or_else(|| RegistryError::UnknownJob(name.to_owned()))
    }

    /// Whether anything changed since the last commit.
    pub fn has_changes(&self) -> bool {
        !self.apps.changed().is_empty()
            || !self.jobs.changed().is_empty()
            || !self.job_sources.changed().is_empty()
    }

    /// Jobs whose record (definition or source) changed since the last commit.
    pub fn changed_jobs(&self) -> std::collections::BTreeSet<String> {
        self.jobs
            .changed()
            .union(self.job_sources.changed())
            .cloned()
            .collect()
    }

    /// Every record counts as changed.
    pub fn all_changed(&mut self) {
        self.apps.all_changed();
        self.jobs.all_changed();
        self.job_sources.all_changed();
    }

    pub fn committed(&mut self) {
        self.apps.committed();
        self.jobs.committed();
        self.job_sources.committed();
    }

    pub fn job_source(&self, name: &str) -> Source {
        self.job_sources.get(name).cloned().unwrap_or_default()
    }

    pub fn app_source(&self, name: &str) -> Source {
        self.apps
            .get(name)
            .map(|a| a.source.clone())
            .unwrap_or_default()
    }

    /// Refuses a REST write to a job the config file manages.
    pub fn check_job_writable(&self, name: &str) -> Result<(), RegistryError> {
        match self.job_source(name) {
            Source::File { path } => Err(RegistryError::ManagedByFile {
                what: "job",
                name: name.to_owned(),
                path,
            }),
            Source::Rest => Ok(()),
        }
    }

    /// Refuses a REST write to an app the config file manages.
    pub fn check_app_writable(&self, name: &str) -> Result<(), RegistryError> {
        match self.app_source(name) {
            Source::File { path } => Err(RegistryError::ManagedByFile {
                what: "app",
                name: name.to_owned(),
                path,
            }),
            Source::Rest => Ok(()),
        }
    }

    /// Whether the job exists and neither it nor its app is disabled.
    pub fn job_enabled(&self, name: &str) -> bool {
        self.jobs.get(name).is_some_and(|job| {
            !job.disabled && self.apps.get(&job.app).is_some_and(|a| !a.config.disabled)
        })
    }

    fn check_app(config: &AppConfig, has_default_uri: bool) -> Result<(), RegistryError> {
        config.validate()?;
        if config.executor_uri.is_none() && !has_default_uri {
            return Err(RegistryError::NoExecutorUri(config.name.clone()));
        }
        Ok(())
    }

    pub fn register_app(
        &mut self,
        config: AppConfig,
        has_default_uri: bool,
    ) -> Result<(), RegistryError> {
        Self::check_app(&config, has_default_uri)?;
        if self.apps.contains_key(&config.name) {
            return Err(RegistryError::AppExists(config.name));
        }
        self.apps.insert(
            config.name.clone(),
            AppRecord {
                config,
                revision: 1,
                executor_fingerprint: String::new(),
                source: Source::Rest,
            },
        );
        Ok(())
    }

    /// Replaces an app's configuration, keeping its enabled flag. Whether that starts a new
    /// revision is [`settle_revision`](Self::settle_revision)'s call.
    pub fn update_app(
        &mut self,
        mut config: AppConfig,
        has_default_uri: bool,
    ) -> Result<(), RegistryError> {
        Self::check_app(&config, has_default_uri)?;
        let record = self
            .apps
            .get_mut(&config.name)
            .ok_or_else(|| RegistryError::UnknownApp(config.name.clone()))?;
        config.disabled = record.config.disabled;
        record.config = config;
        Ok(())
    }

    /// Records the fingerprint of an app's effective `ExecutorInfo`; a different one than the
    /// current revision's starts a new revision. Returns whether it did.
    pub fn settle_revision(&mut self, name: &str, fingerprint: String) -> bool {
        if self
            .apps
            .get(name)
            .is_none_or(|record| record.executor_fingerprint == fingerprint)
        {
            return false;
        }
        let Some(record) = self.apps.get_mut(name) else {
            return false;
        };
        // A record from before fingerprints existed keeps its revision.
        let changed = !record.executor_fingerprint.is_empty();
        if changed {
            record.revision += 1;
        }
        record.executor_fingerprint = fingerprint;
        changed
    }

    pub fn remove_app(&mut self, name: &str) -> Result<AppRecord, RegistryError> {
        self.app(name)?;
        let jobs: Vec<&str> = self
            .jobs
            .values()
            .filter(|j| j.app == name)
            .map(|j| j.name.as_str())
            .collect();
        if !jobs.is_empty() {
            return Err(RegistryError::AppInUse {
                app: name.to_owned(),
                jobs: jobs.join(", "),
            });
        }
        self.apps
            .remove(name)
            .ok_or_else(|| RegistryError::UnknownApp(name.to_owned()))
    }

    pub fn register_job(&mut self, config: JobConfig) -> Result<(), RegistryError> {
        config.validate()?;
        self.app(&config.app)?;
        if self.jobs.contains_key(&config.name) {
            return Err(RegistryError::JobExists(config.name));
        }
        self.jobs.insert(config.name.clone(), config);
        Ok(())
    }

    /// Replaces a job's configuration, keeping its enabled flag; returns the old one.
    pub fn update_job(&mut self, mut config: JobConfig) -> Result<JobConfig, RegistryError> {
        config.validate()?;
        self.app(&config.app)?;
        let slot = self
            .jobs
            .get_mut(&config.name)
            .ok_or_else(|| RegistryError::UnknownJob(config.name.clone()))?;
        config.disabled = slot.disabled;
        Ok(std::mem::replace(slot, config))
    }

    pub fn remove_job(&mut self, name: &str) -> Result<JobConfig, RegistryError> {
        self.job_sources.remove(name);
        self.jobs
            .remove(name)
            .ok_or_else(|| RegistryError::UnknownJob(name.to_owned()))
    }

    /// Returns whether the flag changed.
    pub fn set_app_disabled(&mut self, name: &str, disabled: bool) -> Result<bool, RegistryError> {
        let record = self
            .apps
            .get_mut(name)
            .ok_or_else(|| RegistryError::UnknownApp(name.to_owned()))?;
        let changed = record.config.disabled != disabled;
        record.config.disabled = disabled;
        Ok(changed)
    }

    /// Returns whether the flag changed.
    pub fn set_job_disabled(&mut self, name: &str, disabled: bool) -> Result<bool, RegistryError> {
        let job = self
            .jobs
            .get_mut(name)
            .ok_or_else(|| RegistryError::UnknownJob(name.to_owned()))?;
        let changed = job.disabled != disabled;
        job.disabled = disabled;
        Ok(changed)
    }

    pub fn jobs_of_app<'a>(&'a self, app: &'a str) -> impl Iterator<Item = &'a JobConfig> + 'a {
        self.jobs.values().filter(move |j| j.app == app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests_support::{app, job};

    #[test]
    fn jobs_need_their_app_and_apps_with_jobs_stay() {
        let mut registry = Registry::default();
        assert_eq!(
            registry.register_job(job("j", "a")),
            Err(RegistryError::UnknownApp("a".into()))
        );
        registry.register_app(app("a"), false).unwrap();
        registry.register_job(job("j", "a")).unwrap();
        assert_eq!(
            registry.register_job(job("j", "a")),
            Err(RegistryError::JobExists("j".into()))
        );
        let e = registry.remove_app("a").unwrap_err();
        assert_eq!(
            e.to_string(),
            "app 'a' still has jobs (j); deregister them first"
        );
        registry.remove_job("j").unwrap();
        registry.remove_app("a").unwrap();
    }

    #[test]
    fn a_new_fingerprint_starts_a_new_revision() {
        let mut registry = Registry::default();
        registry.register_app(app("a"), false).unwrap();
        assert!(
            !registry.settle_revision("a", "f1".into()),
            "the first one is revision 1"
        );
        assert!(!registry.settle_revision("a", "f1".into()));
        registry.set_app_disabled("a", true).unwrap();
        registry.update_app(app("a"), false).unwrap();
        assert!(registry.apps["a"].config.disabled, "update keeps the flag");
        assert!(registry.settle_revision("a", "f2".into()));
        assert_eq!(registry.apps["a"].revision, 2);
        assert!(!registry.settle_revision("unknown", "f".into()));
    }

    #[test]
    fn apps_without_an_executor_need_the_default() {
        let mut registry = Registry::default();
        let mut bare = app("a");
        bare.executor_uri = None;
        assert_eq!(
            registry.register_app(bare.clone(), false),
            Err(RegistryError::NoExecutorUri("a".into()))
        );
        registry.register_app(bare, true).unwrap();
    }

    #[test]
    fn enabled_needs_job_and_app_enabled() {
        let mut registry = Registry::default();
        registry.register_app(app("a"), false).unwrap();
        registry.register_job(job("j", "a")).unwrap();
        assert!(registry.job_enabled("j"));
        registry.set_app_disabled("a", true).unwrap();
        assert!(!registry.job_enabled("j"));
        registry.set_app_disabled("a", false).unwrap();
        assert!(registry.set_job_disabled("j", true).unwrap());
        assert!(!registry.set_job_disabled("j", true).unwrap());
        assert!(!registry.job_enabled("j"));
        assert!(!registry.job_enabled("nope"));
    }
}
