//! The REST shape of apps, jobs and tasks, and the way back from it.
//!
//! - Every time in REST output is RFC 3339 in UTC (`2026-12-05T02:00:00.123+00:00`); the store
//!   keeps epoch milliseconds, converted here.
//! - `GET` adds read-only fields ([`JOB_READ_ONLY`], [`APP_READ_ONLY`]); `POST`, `PUT` and
//!   `PATCH` accept them back and ignore them, so a `GET` body can be edited and sent back as is.
//! - `PATCH` bodies are JSON merge patches (RFC 7396): the fields given replace the current ones,
//!   `null` resets a field to its default, objects (`properties`, `environment`) merge key by
//!   key. The result is validated exactly as a `PUT` body.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::api::{ApiFailure, ENDPOINTS};
use super::config::{AppConfig, JobConfig};
use super::engine::Engine;
use super::state::RunningTask;

/// Fields `GET /api/jobs/{job}` adds to the configuration; ignored in request bodies (use the
/// enable/disable and trigger endpoints to change them).
pub const JOB_READ_ONLY: &[&str] = &["enabled", "ready_runs", "next_fire", "source", "last_run"];
/// Fields `GET /api/apps/{app}` adds to the configuration; ignored in request bodies.
pub const APP_READ_ONLY: &[&str] = &["revision", "source"];

/// Reads a job body (`POST`, `PUT`), accepting and ignoring [`JOB_READ_ONLY`] fields.
pub fn job_from_body(body: Value) -> Result<JobConfig, ApiFailure> {
    from_body("job", body, JOB_READ_ONLY)
}

/// Reads an app body (`POST`, `PUT`), accepting and ignoring [`APP_READ_ONLY`] fields.
pub fn app_from_body(body: Value) -> Result<AppConfig, ApiFailure> {
    from_body("app", body, APP_READ_ONLY)
}

fn from_body<T: DeserializeOwned>(
    what: &str,
    mut body: Value,
    read_only: &[&str],
) -> Result<T, ApiFailure> {
    let Some(map) = body.as_object_mut() else {
        let got = match &body {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(ApiFailure::new(
            400,
            format!("invalid {what} body: expected a JSON object, got {got}"),
        ));
    };
    for field in read_only {
        map.remove(*field);
    }
    serde_json::from_value(body)
        .map_err(|e| ApiFailure::new(400, format!("invalid {what} body: {e}")))
}

/// Applies a JSON merge patch (RFC 7396) to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// A PATCH body must be an object of the fields to change.
fn check_patch(what: &str, patch: &Value) -> Result<(), ApiFailure> {
    if patch.is_object() {
        Ok(())
    } else {
        Err(ApiFailure::new(
            400,
            format!(
                "invalid {what} body: a PATCH body is a JSON object of the fields to change \
                 (RFC 7396 merge patch), not {patch}"
            ),
        ))
    }
}

/// Keys holding a time: `*_at`, `*_since`, `not_before`, and `at` (a run's task states).
fn is_time_key(key: &str) -> bool {
    key.ends_with("_at") || key.ends_with("_since") || key == "not_before" || key == "at"
}

/// Rewrites every integer time (epoch milliseconds) in `value`, at any depth, as RFC 3339.
pub fn with_rfc3339_times(mut value: Value) -> Value {
    rewrite_times(&mut value);
    value
}

fn rewrite_times(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(rewrite_times),
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if is_time_key(key)
                    && let Some(millis) = field.as_i64()
                {
                    *field = rfc3339(millis);
                } else {
                    rewrite_times(field);
                }
            }
        }
        _ => {}
    }
}

/// Epoch milliseconds as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(millis: i64) -> Value {
    match chrono::DateTime::from_timestamp_millis(millis) {
        Some(at) => json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        None => json!(millis),
    }
}

/// A running task as `/api/tasks/running` lists it: without its update bookkeeping, with its
/// executor's sandbox relative to the agent's work directory (`sandbox`, computed: the agent's
/// `--work_dir` is not known here) and its own work directory as the executor announced it
/// (`work_dir`, absolute on the agent, `null` until `TASK_RUNNING`).
pub fn running_task(task: &RunningTask, framework_id: Option<&str>) -> Value {
    let mut value = serde_json::to_value(task).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("seen_uuids");
        map.insert(
            "sandbox".into(),
            match framework_id {
                Some(framework) => json!(format!(
                    "slaves/{}/frameworks/{framework}/executors/{}/runs/latest",
                    task.agent_id, task.executor_id
                )),
                None => Value::Null,
            },
        );
    }
    value
}

/// What `GET /` answers: where the API is.
pub fn index() -> Value {
    let endpoints: Vec<String> = ENDPOINTS
        .iter()
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    json!({
        "name": "shardex-scheduler",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": endpoints,
    })
}

impl Engine {
    /// `job`'s stored configuration with `patch` merged in, not yet validated.
    pub(super) fn patched_job(&self, job: &str, patch: &Value) -> Result<JobConfig, ApiFailure> {
        check_patch("job", patch)?;
        let current = self.state.registry().job(job)?;
        let mut value = serde_json::to_value(current)
            .map_err(|e| ApiFailure::new(500, format!("cannot show job '{job}': {e}")))?;
        merge_patch(&mut value, patch);
        job_from_body(value)
    }

    /// `app`'s stored configuration with `patch` merged in, not yet validated.
    pub(super) fn patched_app(&self, app: &str, patch: &Value) -> Result<AppConfig, ApiFailure> {
        check_patch("app", patch)?;
        let current = &self.state.registry().app(app)?.config;
        let mut value = serde_json::to_value(current)
            .map_err(|e| ApiFailure::new(500, format!("cannot show app '{app}': {e}")))?;
        merge_patch(&mut value, patch);
        app_from_body(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_replaces_merges_and_removes() {
        let mut target = json!({"a": 1, "p": {"x": "1", "y": "2"}, "keep": true});
        merge_patch(
            &mut target,
            &json!({"a": 2, "p": {"y": null, "z": "3"}, "new": "n"}),
        );
        assert_eq!(
            target,
            json!({"a": 2, "p": {"x": "1", "z": "3"}, "keep": true, "new": "n"})
        );
    }

    #[test]
    fn times_become_rfc3339_at_any_depth() {
        let value = with_rfc3339_times(json!([{
            "launched_at": 1_764_900_000_123_i64,
            "suspect_since": null,
            "kill": {"reason": "disabled", "requested_at": 0},
            "not_before": 1_764_900_000_000_i64,
            "attempt": 3,
            "states": [{"state": "TASK_RUNNING", "at": 1_764_900_000_456_i64}],
        }]));
        assert_eq!(
            value,
            json!([{
                "launched_at": "2025-12-05T02:00:00.123Z",
                "suspect_since": null,
                "kill": {"reason": "disabled", "requested_at": "1970-01-01T00:00:00.000Z"},
                "not_before": "2025-12-05T02:00:00.000Z",
                "attempt": 3,
                "states": [{"state": "TASK_RUNNING", "at": "2025-12-05T02:00:00.456Z"}],
            }])
        );
    }

    #[test]
    fn read_only_fields_are_ignored_and_unknown_ones_refused() {
        let job = json!({
            "name": "j", "app": "a", "cron": "0 * * * * ?", "sharding_total_count": 1,
            "plugin": "p.so", "enabled": false, "ready_runs": 3, "next_fire": "x", "source": "rest"
        });
        assert_eq!(job_from_body(job).unwrap().name, "j");
        let error = job_from_body(json!({"name": "j", "colour": "red"})).unwrap_err();
        assert_eq!(error.status, 400);
        assert!(
            error
                .message
                .starts_with("invalid job body: unknown field `colour`"),
            "{error}"
        );
    }
}
