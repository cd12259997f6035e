//! The JSON REST API, `/metrics` and `/health` (axum). Thin: every handler turns the request into
//! an [`ApiRequest`] for the owner and the answer into HTTP. Errors are `{"error": "..."}` with
//! 400 (validation, naming the field), 404 (unknown app/job/endpoint), 409 (exists, in use,
//! conflicting state), 503 (queue full, scheduler stopping). The routes are the ones listed in
//! [`super::api::ENDPOINTS`].

use std::collections::HashMap;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::Handle;
use super::api::{ApiFailure, ApiReply, ApiRequest, ApiResult};
use super::rest_auth::{self, RestAuth};
use super::rest_view;
use super::runs::RunId;
use super::{console, files_proxy};

fn respond(result: ApiResult) -> Response {
    match result {
        Ok(ApiReply::Json(status, value)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            axum::Json(value),
        )
            .into_response(),
        Ok(ApiReply::Metrics(text)) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(ApiReply::History(_)) => failure_response(&ApiFailure::new(
            500,
            "a history answer reached the response unread (a bug; please report it)",
        )),
        Err(failure) => failure_response(&failure),
    }
}

fn failure_response(failure: &ApiFailure) -> Response {
    (
        StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({ "error": failure.message })),
    )
        .into_response()
}

fn body<T>(what: &str, body: Result<axum::Json<T>, JsonRejection>) -> Result<T, ApiFailure> {
    body.map(|axum::Json(value)| value).map_err(|rejection| {
        // A body past the size limit is 413; every other rejection is the client's input: 400.
        let status = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            413
        } else {
            400
        };
        ApiFailure::new(
            status,
            format!("invalid {what} body: {}", rejection.body_text()),
        )
    })
}

async fn ask(handle: &Handle, request: ApiRequest) -> Response {
    respond(handle.request(request).await)
}

async fn list_apps(State(h): State<Handle>) -> Response {
    ask(&h, ApiRequest::ListApps).await
}

async fn register_app(
    State(h): State<Handle>,
    payload: Result<axum::Json<Value>, JsonRejection>,
) -> Response {
    match body("app", payload).and_then(rest_view::app_from_body) {
        Ok(app) => ask(&h, ApiRequest::RegisterApp(app)).await,
        Err(failure) => failure_response(&failure),
    }
}

async fn get_app(State(h): State<Handle>, Path(app): Path<String>) -> Response {
    ask(&h, ApiRequest::GetApp(app)).await
}

async fn update_app(
    State(h): State<Handle>,
    Path(app): Path<String>,
    payload: Result<axum::Json<Value>, JsonRejection>,
) -> Response {
    match body("app", payload).and_then(rest_view::app_from_body) {
        Ok(config) => ask(&h, ApiRequest::UpdateApp(app, config)).await,
        Err(failure) => failure_response(&failure),
    }
}

async fn patch_app(
    State(h): State<Handle>,
    Path(app): Path<String>,
    payload: Result<axum::Json<Value>, JsonRejection>,
) -> Response {
    match body("app", payload) {
        Ok(patch) => ask(&h, ApiRequest::PatchApp(app, patch)).await,
        Err(failure) => failure_response(&failure),
    }
}

async fn deregister_app(State(h): State<Handle>, Path(app): Path<String>) -> Response {
    ask(&h, ApiRequest::DeregisterApp(app)).await
}

async fn disable_app(State(h): State<Handle>, Path(app): Path<String>) -> Response {
    ask(&h, ApiRequest::SetAppEnabled(app, false)).await
}

async fn enable_app(State(h): State<Handle>, Path(app): Path<String>) -> Response {
    ask(&h, ApiRequest::SetAppEnabled(app, true)).await
}

async fn list_jobs(State(h): State<Handle>) -> Response {
    ask(&h, ApiRequest::ListJobs).await
}

async fn register_job(
    State(h): State<Handle>,
    payload: Result<axum::Json<Value>, JsonRejection>,
) -> Response {
    match body("job", payload).and_then(rest_view::job_from_body) {
        Ok(job) => ask(&h, ApiRequest::RegisterJob(job)).await,
        Err(failure) => failure_response(&failure),
    }
}

async fn get_job(State(h): State<Handle>, Path(job): Path<String>) -> Response {
    ask(&h, ApiRequest::GetJob(job)).await
}

async fn update_job(
    State(h): State<Handle>,
    Path(job): Path<String>,
    payload: Result<axum::Json<Value>, JsonRejection>,
) -> Response {
    match body("job", payload).and_then(rest_view::job_from_body) {
        Ok(config) => ask(&h, ApiRequest::UpdateJob(job, config)).await,
        Err(failure) => failure_response(&failure),
    }
}

async fn patch_job(
    State(h): State<Handle>,
    Path(job): Path<String>,
    payload: Result<axum::Json<Value>, JsonRejection>,
) -> Response {
    match body("job", payload) {
        Ok(patch) => ask(&h, ApiRequest::PatchJob(job, patch)).await,
        Err(failure) => failure_response(&failure),
    }
}

async fn deregister_job(State(h): State<Handle>, Path(job): Path<String>) -> Response {
    ask(&h, ApiRequest::DeregisterJob(job)).await
}

async fn disable_job(State(h): State<Handle>, Path(job): Path<String>) -> Response {
    ask(&h, ApiRequest::SetJobEnabled(job, false)).await
}

async fn enable_job(State(h): State<Handle>, Path(job): Path<String>) -> Response {
    ask(&h, ApiRequest::SetJobEnabled(job, true)).await
}

async fn trigger_job(State(h): State<Handle>, Path(job): Path<String>) -> Response {
    ask(&h, ApiRequest::TriggerJob(job)).await
}

/// `limit` (1–200, default 20) and `before` (a run id) of `GET /api/jobs/{job}/runs`.
fn runs_query(query: &HashMap<String, String>) -> Result<(usize, Option<RunId>), ApiFailure> {
    for name in query.keys() {
        if name != "limit" && name != "before" {
            return Err(ApiFailure::new(
                400,
                format!("unknown query parameter '{name}'; use limit and before"),
            ));
        }
    }
    let limit = match query.get("limit") {
        None => DEFAULT_RUNS,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_RUNS).contains(&n) => n,
            _ => {
                return Err(ApiFailure::new(
                    400,
                    format!("limit '{text}' must be a number from 1 to {MAX_RUNS}"),
                ));
            }
        },
    };
    let before = match query.get("before") {
        None => None,
        Some(text) => Some(text.parse::<RunId>().map_err(|_| {
            ApiFailure::new(400, format!("before '{text}' is not a run id (a number)"))
        })?),
    };
    Ok((limit, before))
}

/// Runs per page by default, and at most.
const DEFAULT_RUNS: usize = 20;
const MAX_RUNS: usize = 200;

async fn job_runs(
    State(h): State<Handle>,
    Path(job): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match runs_query(&query) {
        Ok((limit, before)) => ask(&h, ApiRequest::JobRuns { job, limit, before }).await,
        Err(failure) => failure_response(&failure),
    }
}

async fn get_run(State(h): State<Handle>, Path(run): Path<String>) -> Response {
    match run.parse::<RunId>() {
        Ok(id) => ask(&h, ApiRequest::GetRun(id)).await,
        Err(_) => failure_response(&ApiFailure::new(
            400,
            format!("run '{run}' is not a run id (a number)"),
        )),
    }
}

async fn get_task(State(h): State<Handle>, Path(task): Path<String>) -> Response {
    ask(&h, ApiRequest::GetTask(task)).await
}

async fn running(State(h): State<Handle>) -> Response {
    ask(&h, ApiRequest::Running).await
}

async fn ready(State(h): State<Handle>) -> Response {
    ask(&h, ApiRequest::Ready).await
}

async fn failover(State(h): State<Handle>) -> Response {
    ask(&h, ApiRequest::Failover).await
}

async fn parked(State(h): State<Handle>) -> Response {
    ask(&h, ApiRequest::Parked).await
}

async fn release_parked(
    State(h): State<Handle>,
    Path((job, item)): Path<(String, String)>,
) -> Response {
    match item.parse::<u32>() {
        Ok(item) => ask(&h, ApiRequest::ReleaseParked(job, item)).await,
        Err(_) => failure_response(&ApiFailure::new(
            400,
            format!("sharding item '{item}' is not a number"),
        )),
    }
}

async fn metrics(State(h): State<Handle>) -> Response {
    ask(&h, ApiRequest::Metrics).await
}

async fn health(State(h): State<Handle>) -> Response {
    ask(&h, ApiRequest::Health).await
}

async fn not_found(method: Method, uri: Uri) -> Response {
    failure_response(&ApiFailure::new(
        404,
        format!("no endpoint {method} {}", uri.path()),
    ))
}

/// The router of every endpoint in [`super::api::ENDPOINTS`], behind `auth`.
pub fn router(handle: Handle, auth: RestAuth) -> Router {
    Router::new()
        .route("/", get(console::root))
        .route("/console/{file}", get(console::asset))
        .route("/api/apps", get(list_apps).post(register_app))
        .route(
            "/api/apps/{app}",
            get(get_app)
                .put(update_app)
                .patch(patch_app)
                .delete(deregister_app),
        )
        .route("/api/apps/{app}/disable", post(disable_app))
        .route("/api/apps/{app}/enable", post(enable_app))
        .route("/api/jobs", get(list_jobs).post(register_job))
        .route(
            "/api/jobs/{job}",
            get(get_job)
                .put(update_job)
                .patch(patch_job)
                .delete(deregister_job),
        )
        .route("/api/jobs/{job}/disable", post(disable_job))
        .route("/api/jobs/{job}/enable", post(enable_job))
        .route("/api/jobs/{job}/trigger", post(trigger_job))
        .route("/api/jobs/{job}/runs", get(job_runs))
        .route("/api/runs/{run}", get(get_run))
        .route("/api/tasks/{task}", get(get_task))
        .route("/api/tasks/{task}/files/{name}", get(files_proxy::read))
        .route("/api/tasks/running", get(running))
        .route("/api/tasks/ready", get(ready))
        .route("/api/tasks/failover", get(failover))
        .route("/api/tasks/parked", get(parked))
        .route(
            "/api/tasks/parked/{job}/{item}/release",
            post(release_parked),
        )
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .fallback(not_found)
        .with_state(handle)
        .layer(axum::middleware::from_fn_with_state(auth, rest_auth::guard))
}
