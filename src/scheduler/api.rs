//! REST requests as messages to the owner, and what each does to the state.
//!
//! `rest.rs` turns HTTP into an [`ApiRequest`]; the engine answers with JSON or an
//! [`ApiFailure`] carrying the HTTP status and a message naming what is wrong.
//!
//! Side effects, in Elastic-Job-Cloud's terms, improved:
//! - disable (job or app): kill its running tasks (not failures), clear its ready count, its
//!   failover entries and parked items, stop its cron; enable: cron from now (no backlog burst),
//!   daemons queued once.
//! - update job: the new configuration applies to the next launches; running daemon shards are
//!   killed and relaunched with it; running transient shards finish with the configuration they
//!   were launched with.
//! - update app: a change that affects the executor makes a new revision with new executor ids;
//!   daemons move to it, transient tasks finish where they run, idle old executors are shut down.
//! - deregister job: kill its tasks, drop its queues; deregister app: refused while jobs use it.

use serde::Serialize;
use serde_json::{Value, json};

use shardex_mesos::proto::v1::scheduler::Call;

use super::config::{AppConfig, JobConfig};
use super::engine::Engine;
use super::metrics;
use super::placement;
use super::registry::{RegistryError, Source};
use super::rest_view;
use super::run_view::{HistoryQuery, RunEntry};
use super::runs::{RunId, Trigger};
use super::state::{KillReason, Millis};

/// Every REST endpoint: method and path, as served (and as the README documents them).
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/api/apps"),
    ("POST", "/api/apps"),
    ("GET", "/api/apps/{app}"),
    ("PUT", "/api/apps/{app}"),
    ("PATCH", "/api/apps/{app}"),
    ("DELETE", "/api/apps/{app}"),
    ("POST", "/api/apps/{app}/disable"),
    ("POST", "/api/apps/{app}/enable"),
    ("GET", "/api/jobs"),
    ("POST", "/api/jobs"),
    ("GET", "/api/jobs/{job}"),
    ("PUT", "/api/jobs/{job}"),
    ("PATCH", "/api/jobs/{job}"),
    ("DELETE", "/api/jobs/{job}"),
    ("POST", "/api/jobs/{job}/disable"),
    ("POST", "/api/jobs/{job}/enable"),
    ("POST", "/api/jobs/{job}/trigger"),
    ("GET", "/api/jobs/{job}/runs"),
    ("GET", "/api/runs/{run}"),
    ("GET", "/api/tasks/{task}"),
    ("GET", "/api/tasks/{task}/files/{name}"),
    ("GET", "/api/tasks/running"),
    ("GET", "/api/tasks/ready"),
    ("GET", "/api/tasks/failover"),
    ("GET", "/api/tasks/parked"),
    ("POST", "/api/tasks/parked/{job}/{item}/release"),
    ("GET", "/metrics"),
    ("GET", "/health"),
    // The web console's assets (`console/`).
    ("GET", "/console/{file}"),
];

#[derive(Debug, Clone)]
pub enum ApiRequest {
    ListApps,
    GetApp(String),
    RegisterApp(AppConfig),
    UpdateApp(String, AppConfig),
    /// A JSON merge patch of the app's configuration; then as `UpdateApp`.
    PatchApp(String, Value),
    DeregisterApp(String),
    SetAppEnabled(String, bool),
    ListJobs,
    GetJob(String),
    RegisterJob(JobConfig),
    UpdateJob(String, JobConfig),
    /// A JSON merge patch of the job's configuration; then as `UpdateJob`.
    PatchJob(String, Value),
    DeregisterJob(String),
    SetJobEnabled(String, bool),
    TriggerJob(String),
    /// A job's runs, newest first: at most `limit`, with ids below `before`.
    JobRuns {
        job: String,
        limit: usize,
        before: Option<RunId>,
    },
    GetRun(RunId),
    GetTask(String),
    Running,
    Ready,
    Failover,
    Parked,
    ReleaseParked(String, u32),
    Metrics,
    Health,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApiReply {
    Json(u16, Value),
    /// Prometheus exposition text.
    Metrics(String),
    /// Run history: what the engine knows; the archived runs it names are read by the caller
    /// ([`run_view::resolve`]).
    History(HistoryQuery),
}

/// A refused request: HTTP status and a message saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiFailure {
    pub status: u16,
    pub message: String,
}

impl ApiFailure {
    pub fn new(status: u16, message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status,
            message: message.into(),
        }
    }
}

impl From<RegistryError> for ApiFailure {
    fn from(error: RegistryError) -> Self {
        let status = match &error {
            RegistryError::Invalid(_)
            | RegistryError::NoExecutorUri(_)
            | RegistryError::NameMismatch { .. } => 400,
            RegistryError::UnknownApp(_) | RegistryError::UnknownJob(_) => 404,
            RegistryError::AppExists(_)
            | RegistryError::JobExists(_)
            | RegistryError::AppInUse { .. }
            | RegistryError::ManagedByFile { .. } => 409,
        };
        ApiFailure::new(status, error.to_string())
    }
}

pub type ApiResult = Result<ApiReply, ApiFailure>;

fn ok(value: Value) -> ApiResult {
    Ok(ApiReply::Json(200, value))
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A job's app named in a request body must exist: a 400 naming the field, not a 404.
fn body_app_error(job: &JobConfig, error: RegistryError) -> ApiFailure {
    match error {
        RegistryError::UnknownApp(app) => ApiFailure::new(
            400,
            format!(
                "job '{}': field 'app' names app '{app}', which is not registered",
                job.name
            ),
        ),
        other => other.into(),
    }
}

impl Engine {
    fn has_default_uri(&self) -> bool {
        self.config.executor.uri.is_some()
    }

    fn app_view(&self, name: &str) -> Result<Value, ApiFailure> {
        let record = self.state.registry().app(name)?;
        let mut value = to_json(&record.config);
        value["revision"] = json!(record.revision);
        value["source"] = json!(record.source.to_string());
        Ok(value)
    }

    fn job_view(&self, name: &str) -> Result<Value, ApiFailure> {
        let job = self.state.registry().job(name)?;
        let mut value = to_json(job);
        value["source"] = json!(self.state.registry().job_source(name).to_string());
        // Daemon jobs always fail over: show what the job does, not the unused flag.
        value["failover"] = json!(job.failover || job.is_daemon());
        value["enabled"] = json!(self.state.registry().job_enabled(name));
        value["ready_runs"] = json!(self.state.ready_count(name));
        value["next_fire"] = match self.producer.next_fire(name) {
            Some(at) => rest_view::rfc3339(at),
            None => Value::Null,
        };
        value["last_run"] = self.last_run(name);
        Ok(value)
    }

    /// The newest run of `job` that launched: id, outcome, fire and end times.
    fn last_run(&self, job: &str) -> Value {
        let open = self
            .state
            .open_runs()
            .values()
            .filter(|r| r.head.job == job && r.head.launched_at.is_some())
            .max_by_key(|r| r.head.id);
        let archived = self.state.run_index().last_of(job);
        let open = open.filter(|run| archived.is_none_or(|id| run.head.id > id));
        match (open, archived) {
            (Some(run), _) => rest_view::with_rfc3339_times(json!({
                "id": run.head.id,
                "outcome": run.outcome(),
                "fired_at": run.head.fired_at,
                "ended_at": run.head.ended_at,
            })),
            (None, Some(id)) => match self.state.run_index().get(id) {
                Some(archived) => rest_view::with_rfc3339_times(json!({
                    "id": id,
                    "outcome": archived.outcome,
                    "fired_at": archived.fired_at,
                    "ended_at": archived.ended_at,
                })),
                None => Value::Null,
            },
            (None, None) => Value::Null,
        }
    }

    /// The runs of `job` below `before`, newest first, open and archived together.
    fn job_runs(&self, job: &str, limit: usize, before: Option<RunId>) -> ApiResult {
        let before = before.unwrap_or(RunId::MAX);
        let mut open: Vec<&crate::runs::Run> = self
            .state
            .open_runs()
            .values()
            .filter(|r| r.head.job == job && r.head.id < before)
            .collect();
        open.sort_by_key(|r| std::cmp::Reverse(r.head.id));
        let known = self.state.registry().jobs.contains_key(job)
            || !open.is_empty()
            || self.state.run_index().last_of(job).is_some();
        if !known {
            return Err(ApiFailure::new(
                404,
                format!("no job '{job}' is registered and no runs of it are kept"),
            ));
        }
        let mut archived = self.state.run_index().of_job(job, before).peekable();
        let mut open = open.into_iter().peekable();
        let mut entries = Vec::new();
        let mut next_before = None;
        loop {
            let next = match (open.peek(), archived.peek()) {
                (Some(o), Some(a)) if o.head.id > *a => {
                    open.next().map(|r| RunEntry::Open(Box::new(r.clone())))
                }
                (Some(_), None) => open.next().map(|r| RunEntry::Open(Box::new(r.clone()))),
                (_, Some(_)) => archived.next().and_then(|id| self.archived_entry(id)),
                (None, None) => None,
            };
            let Some(entry) = next else { break };
            if entries.len() == limit {
                next_before = entries.last().map(|e| match e {
                    RunEntry::Open(run) => run.head.id,
                    RunEntry::Archived(id, _) => *id,
                });
                break;
            }
            entries.push(entry);
        }
        Ok(ApiReply::History(HistoryQuery::JobRuns {
            job: job.to_owned(),
            entries,
            next_before,
        }))
    }

    /// A run by id: open, or archived.
    fn run_entry(&self, id: RunId) -> Option<RunEntry> {
        if let Some(run) = self.state.open_run(id) {
            return Some(RunEntry::Open(Box::new(run.clone())));
        }
        self.archived_entry(id)
    }

    fn archived_entry(&self, id: RunId) -> Option<RunEntry> {
        self.state
            .run_index()
            .key(id)
            .map(|key| RunEntry::Archived(id, key))
    }

    fn get_task(&self, task_id: &str) -> ApiResult {
        let run = self
            .state
            .run_of_task(task_id)
            .or_else(|| self.state.history().get(task_id).and_then(|r| r.run));
        match run.and_then(|id| self.run_entry(id)) {
            Some(entry) => Ok(ApiReply::History(HistoryQuery::Task {
                task_id: task_id.to_owned(),
                entry,
            })),
            None if self.state.running().contains_key(task_id) => Err(ApiFailure::new(
                404,
                format!(
                    "task '{task_id}' runs, but was launched before this scheduler kept run \
                     history; GET /api/tasks/running shows it"
                ),
            )),
            None => Err(ApiFailure::new(
                404,
                format!(
                    "no task '{task_id}' is running or in the recent task history; find older \
                     tasks through GET /api/jobs/{{job}}/runs"
                ),
            )),
        }
    }

    /// Disabling: no more work for the job, and its running tasks are killed.
    fn stop_job(&mut self, job: &str, reason: KillReason, now: Millis, calls: &mut Vec<Call>) {
        self.producer.unschedule(job);
        self.state.set_ready(job, 0, Trigger::Cron, now);
        self.state.remove_failover_of_job(job);
        self.state.remove_parked_of_job(job);
        self.kill_job_tasks(job, reason, now, calls);
    }

    /// Enabling: cron from now, daemons queued once.
    fn start_job(&mut self, job: &str, now: Millis) {
        if !self.state.registry().job_enabled(job) {
            return;
        }
        let daemon = self
            .state
            .registry()
            .jobs
            .get(job)
            .is_some_and(|j| j.is_daemon());
        if daemon {
            self.state.set_ready(job, 1, Trigger::Daemon, now);
        } else {
            self.producer.schedule(&self.state, job, now);
        }
    }

    /// Records the fingerprint of `app`'s effective ExecutorInfo; whether a new revision began.
    fn settle_revision(&mut self, app: &str) -> bool {
        let Some(record) = self.state.registry().apps.get(app) else {
            return false;
        };
        let fingerprint = placement::executor_fingerprint(record, &self.config.executor);
        self.state.registry_mut().settle_revision(app, fingerprint)
    }

    /// `app` got a new revision: new executors from now on. Its daemon shards move there;
    /// transient tasks finish where they run; old executors retire once idle.
    fn move_to_new_revision(&mut self, app: &str, now: Millis, calls: &mut Vec<Call>) {
        let revision = self
            .state
            .registry()
            .apps
            .get(app)
            .map_or(0, |a| a.revision);
        tracing::info!(
            app,
            revision,
            "executor configuration changed: new executors from now on"
        );
        let daemons: Vec<String> = self
            .state
            .registry()
            .jobs_of_app(app)
            .filter(|j| j.is_daemon())
            .map(|j| j.name.clone())
            .collect();
        for job in daemons {
            self.restart_daemon(&job, now, calls);
        }
    }

    /// A daemon's configuration changed: kill its shards and relaunch them all once they end.
    fn restart_daemon(&mut self, job: &str, now: Millis, calls: &mut Vec<Call>) {
        self.state.remove_failover_of_job(job);
        self.kill_job_tasks(job, KillReason::Updated, now, calls);
        if self.state.registry().job_enabled(job) {
            self.state.set_ready(job, 1, Trigger::Daemon, now);
        }
    }

    /// Answers one REST request; returns the Mesos calls it causes.
    pub fn on_api(&mut self, request: ApiRequest, now: Millis) -> (Vec<Call>, ApiResult) {
        let mut calls = Vec::new();
        let result = self
            .check_writable(&request)
            .and_then(|()| self.api(request, now, &mut calls));
        self.interest(now, &mut calls);
        (calls, result)
    }

    /// REST may not change what the config file manages.
    fn check_writable(&self, request: &ApiRequest) -> Result<(), ApiFailure> {
        let registry = self.state.registry();
        match request {
            ApiRequest::UpdateApp(name, _)
            | ApiRequest::PatchApp(name, _)
            | ApiRequest::DeregisterApp(name)
                if registry.apps.contains_key(name) =>
            {
                registry.check_app_writable(name)?
            }
            ApiRequest::UpdateJob(name, _)
            | ApiRequest::PatchJob(name, _)
            | ApiRequest::DeregisterJob(name)
                if registry.jobs.contains_key(name) =>
            {
                registry.check_job_writable(name)?
            }
            _ => {}
        }
        Ok(())
    }

    /// Releases the parked items of `app`'s jobs (an app update may bring fixed plugin files).
    fn release_parked_of_app(&mut self, app: &str) {
        let jobs: Vec<String> = self
            .state
            .registry()
            .jobs_of_app(app)
            .map(|j| j.name.clone())
            .collect();
        for job in jobs {
            self.state.remove_parked_of_job(&job);
        }
    }

    fn api(&mut self, request: ApiRequest, now: Millis, calls: &mut Vec<Call>) -> ApiResult {
        match request {
            ApiRequest::ListApps => {
                let names: Vec<String> = self.state.registry().apps.keys().cloned().collect();
                let apps: Result<Vec<Value>, _> = names.iter().map(|n| self.app_view(n)).collect();
                ok(Value::Array(apps?))
            }
            ApiRequest::GetApp(name) => ok(self.app_view(&name)?),
            ApiRequest::RegisterApp(config) => {
                let name = config.name.clone();
                let has_default = self.has_default_uri();
                self.state
                    .registry_mut()
                    .register_app(config, has_default)?;
                self.settle_revision(&name);
                tracing::info!(app = %name, "app registered");
                Ok(ApiReply::Json(201, self.app_view(&name)?))
            }
            ApiRequest::UpdateApp(path, config) => {
                if config.name != path {
                    return Err(RegistryError::NameMismatch {
                        path,
                        body: config.name,
                    }
                    .into());
                }
                let has_default = self.has_default_uri();
                self.state.registry_mut().update_app(config, has_default)?;
                self.release_parked_of_app(&path);
                if self.settle_revision(&path) {
                    self.move_to_new_revision(&path, now, calls);
                }
                ok(self.app_view(&path)?)
            }
            ApiRequest::PatchApp(name, patch) => {
                let config = self.patched_app(&name, &patch)?;
                self.api(ApiRequest::UpdateApp(name, config), now, calls)
            }
            ApiRequest::DeregisterApp(name) => {
                self.state.registry_mut().remove_app(&name)?;
                tracing::info!(app = %name, "app deregistered; its idle executors will be shut down");
                ok(json!({ "deregistered": name }))
            }
            ApiRequest::SetAppEnabled(name, enabled) => {
                let changed = self
                    .state
                    .registry_mut()
                    .set_app_disabled(&name, !enabled)?;
                if changed {
                    let jobs: Vec<String> = self
                        .state
                        .registry()
                        .jobs_of_app(&name)
                        .map(|j| j.name.clone())
                        .collect();
                    for job in jobs {
                        if enabled {
                            self.start_job(&job, now);
                        } else {
                            self.stop_job(&job, KillReason::Disabled, now, calls);
                        }
                    }
                    tracing::info!(app = %name, enabled, "app enabled flag changed");
                }
                ok(self.app_view(&name)?)
            }
            ApiRequest::ListJobs => {
                let names: Vec<String> = self.state.registry().jobs.keys().cloned().collect();
                let jobs: Result<Vec<Value>, _> = names.iter().map(|n| self.job_view(n)).collect();
                ok(Value::Array(jobs?))
            }
            ApiRequest::GetJob(name) => ok(self.job_view(&name)?),
            ApiRequest::RegisterJob(config) => {
                let name = config.name.clone();
                self.state
                    .registry_mut()
                    .register_job(config.clone())
                    .map_err(|e| body_app_error(&config, e))?;
                self.start_job(&name, now);
                tracing::info!(job = %name, "job registered");
                Ok(ApiReply::Json(201, self.job_view(&name)?))
            }
            ApiRequest::UpdateJob(path, config) => {
                if config.name != path {
                    return Err(RegistryError::NameMismatch {
                        path,
                        body: config.name,
                    }
                    .into());
                }
                let old = self
                    .state
                    .registry_mut()
                    .update_job(config.clone())
                    .map_err(|e| body_app_error(&config, e))?;
                self.state.remove_parked_of_job(&path);
                // Items beyond a smaller sharding total count are gone.
                let stale: Vec<u32> = self
                    .state
                    .failover()
                    .values()
                    .filter(|f| f.job == path && f.item >= config.sharding_total_count)
                    .map(|f| f.item)
                    .collect();
                for item in stale {
                    self.state.remove_failover(&path, item);
                }
                if old.is_daemon() || config.is_daemon() {
                    if !config.is_daemon() {
                        self.state.set_ready(&path, 0, Trigger::Cron, now);
                    }
                    if config.is_daemon() {
                        self.restart_daemon(&path, now, calls);
                    } else {
                        self.kill_job_tasks(&path, KillReason::Updated, now, calls);
                    }
                }
                self.producer.schedule(&self.state, &path, now);
                tracing::info!(job = %path, "job updated");
                ok(self.job_view(&path)?)
            }
            ApiRequest::PatchJob(name, patch) => {
                let config = self.patched_job(&name, &patch)?;
                self.api(ApiRequest::UpdateJob(name, config), now, calls)
            }
            ApiRequest::DeregisterJob(name) => {
                self.state.registry().job(&name)?;
                self.stop_job(&name, KillReason::Deregistered, now, calls);
                self.state.registry_mut().remove_job(&name)?;
                tracing::info!(job = %name, "job deregistered");
                ok(json!({ "deregistered": name }))
            }
            ApiRequest::SetJobEnabled(name, enabled) => {
                let changed = self
                    .state
                    .registry_mut()
                    .set_job_disabled(&name, !enabled)?;
                if changed {
                    if enabled {
                        self.start_job(&name, now);
                    } else {
                        self.stop_job(&name, KillReason::Disabled, now, calls);
                    }
                    tracing::info!(job = %name, enabled, "job enabled flag changed");
                }
                ok(self.job_view(&name)?)
            }
            ApiRequest::TriggerJob(name) => {
                let job = self.state.registry().job(&name)?;
                if job.is_daemon() {
                    return Err(ApiFailure::new(
                        409,
                        format!(
                            "job '{name}' is a daemon job: it fires on its own cron inside the \
                             executor and cannot be triggered"
                        ),
                    ));
                }
                if !self.state.registry().job_enabled(&name) {
                    return Err(ApiFailure::new(
                        409,
                        format!("job '{name}' is disabled (or its app is); enable it first"),
                    ));
                }
                let limit = self.config.queues.ready_runs_per_job;
                let pending = self.state.ready_count(&name);
                if pending >= limit {
                    return Err(ApiFailure::new(
                        503,
                        format!(
                            "the ready queue of job '{name}' is full: {pending} pending runs \
                             (queues.ready_runs_per_job = {limit})"
                        ),
                    ));
                }
                self.state.set_ready(&name, pending + 1, Trigger::Rest, now);
                tracing::info!(job = %name, pending = pending + 1, "job triggered");
                Ok(ApiReply::Json(
                    202,
                    json!({ "job": name, "ready_runs": pending + 1 }),
                ))
            }
            ApiRequest::JobRuns { job, limit, before } => self.job_runs(&job, limit, before),
            ApiRequest::GetRun(id) => self
                .run_entry(id)
                .map(|entry| ApiReply::History(HistoryQuery::Run(entry)))
                .ok_or_else(|| {
                    ApiFailure::new(
                        404,
                        format!(
                            "no run {id}: not recorded, or no longer in the history \
                             (history.max_runs / history.max_age)"
                        ),
                    )
                }),
            ApiRequest::GetTask(task_id) => self.get_task(&task_id),
            ApiRequest::Running => {
                let framework_id = self.framework_id();
                let tasks: Vec<Value> = self
                    .state
                    .running()
                    .values()
                    .map(|t| rest_view::running_task(t, framework_id))
                    .collect();
                ok(rest_view::with_rfc3339_times(Value::Array(tasks)))
            }
            ApiRequest::Ready => ok(Value::Array(
                self.state
                    .ready()
                    .iter()
                    .map(|(job, runs)| json!({ "job": job, "runs": runs }))
                    .collect(),
            )),
            ApiRequest::Failover => ok(rest_view::with_rfc3339_times(to_json(
                &self.state.failover().values().collect::<Vec<_>>(),
            ))),
            ApiRequest::Parked => ok(rest_view::with_rfc3339_times(to_json(
                &self.state.parked().values().collect::<Vec<_>>(),
            ))),
            ApiRequest::ReleaseParked(job, item) => {
                self.state.registry().job(&job)?;
                let Some(parked) = self.state.remove_parked(&job, item) else {
                    return Err(ApiFailure::new(
                        404,
                        format!("item {item} of job '{job}' is not parked"),
                    ));
                };
                tracing::info!(%job, item, "parked item released; it runs with the job's next run");
                ok(json!({ "released": rest_view::with_rfc3339_times(to_json(&parked)) }))
            }
            ApiRequest::Metrics => Ok(ApiReply::Metrics(metrics::render(
                &self.counters,
                &self.gauges(),
            ))),
            ApiRequest::Health => {
                let connected = self.is_subscribed();
                Ok(ApiReply::Json(
                    if connected { 200 } else { 503 },
                    json!({
                        "status": if connected { "ok" } else { "disconnected" },
                        "subscribed": connected,
                        "reconciling": self.gauges().reconciling,
                        "framework_id": self.framework_id(),
                    }),
                ))
            }
        }
    }

    /// Applies the config file's apps and jobs, which the file manages: new ones are
    /// registered (with their `disabled` flag), known ones updated to the file's definition (the
    /// enabled flags set through REST are kept), and entries the file managed before but no
    /// longer names are deregistered. Entries registered through REST are left alone.
    pub fn apply_config_registrations(&mut self, now: Millis) -> Result<Vec<Call>, ApiFailure> {
        let mut calls = Vec::new();
        // The `[executor]` defaults may have changed since the store was written (a new
        // executor URI, say): apps using them then need new executors too.
        let apps: Vec<String> = self.state.registry().apps.keys().cloned().collect();
        for app in apps {
            if self.settle_revision(&app) {
                self.move_to_new_revision(&app, now, &mut calls);
            }
        }
        let source = Source::File {
            path: self.config_source.clone(),
        };
        let apps = self.config.apps.clone();
        let jobs = self.config.jobs.clone();
        for app in apps {
            let name = app.name.clone();
            let disabled = app.disabled;
            let request = if self.state.registry().apps.contains_key(&name) {
                ApiRequest::UpdateApp(name.clone(), app)
            } else {
                ApiRequest::RegisterApp(app)
            };
            let fresh = matches!(request, ApiRequest::RegisterApp(_));
            self.api(request, now, &mut calls)?;
            if let Some(record) = self.state.registry_mut().apps.get_mut(&name)
                && record.source != source
            {
                record.source = source.clone();
            }
            if fresh && disabled {
                self.api(ApiRequest::SetAppEnabled(name, false), now, &mut calls)?;
            }
        }
        for job in jobs {
            let name = job.name.clone();
            let disabled = job.disabled;
            let request = match self.state.registry().jobs.get(&name) {
                Some(existing)
                    if *existing
                        == JobConfig {
                            disabled: existing.disabled,
                            ..job.clone()
                        } =>
                {
                    None
                }
                Some(_) => Some(ApiRequest::UpdateJob(name.clone(), job)),
                None => Some(ApiRequest::RegisterJob(job)),
            };
            let fresh = matches!(request, Some(ApiRequest::RegisterJob(_)));
            if let Some(request) = request {
                self.api(request, now, &mut calls)?;
            }
            if self.state.registry().job_source(&name) != source {
                self.state
                    .registry_mut()
                    .job_sources
                    .insert(name.clone(), source.clone());
            }
            if fresh && disabled {
                self.api(ApiRequest::SetJobEnabled(name, false), now, &mut calls)?;
            }
        }
        // What the file managed and no longer names is gone from the file: deregister it.
        let named_jobs: Vec<&str> = self.config.jobs.iter().map(|j| j.name.as_str()).collect();
        let dropped_jobs: Vec<String> = self
            .state
            .registry()
            .job_sources
            .iter()
            .filter(|(name, source)| {
                matches!(source, Source::File { .. }) && !named_jobs.contains(&name.as_str())
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in dropped_jobs {
            tracing::warn!(job = %name, "job no longer in the config file that managed it; deregistering it");
            self.api(ApiRequest::DeregisterJob(name), now, &mut calls)?;
        }
        let named_apps: Vec<String> = self.config.apps.iter().map(|a| a.name.clone()).collect();
        let dropped_apps: Vec<String> = self
            .state
            .registry()
            .apps
            .iter()
            .filter(|(name, record)| {
                matches!(record.source, Source::File { .. }) && !named_apps.contains(name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in dropped_apps {
            if self.state.registry().jobs_of_app(&name).next().is_some() {
                tracing::warn!(
                    app = %name,
                    "app no longer in the config file but jobs registered through REST use it; \
                     it is managed through REST from now on"
                );
                if let Some(record) = self.state.registry_mut().apps.get_mut(&name) {
                    record.source = Source::Rest;
                }
            } else {
                tracing::warn!(app = %name, "app no longer in the config file that managed it; deregistering it");
                self.api(ApiRequest::DeregisterApp(name), now, &mut calls)?;
            }
        }
        Ok(calls)
    }
}
