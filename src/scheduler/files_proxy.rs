//! `GET /api/tasks/{task}/files/{name}?offset=O&length=L`: one file of a task's sandbox, read
//! through the scheduler from the agent that ran it.
//!
//! The agent serves sandbox files on its own origin (`/files/read`), which a browser page served
//! by the scheduler may not read (no CORS on Mesos agents), and which a REST token does not
//! guard. So the console and `ctl logs` ask here: the task is looked up like `GET
//! /api/tasks/{task}`, the file by the `name` its `sandbox.files` lists, and the agent's
//! `/files/read` is asked with the request's `offset` and `length` passed on as given. The
//! agent's answer comes back as it is: `{"data": "...", "offset": O}` as Mesos answers it
//! (no `offset`: the size and no data; reads capped at 16 pages), and its refusals with their
//! status. An agent that cannot be reached is a 502 naming it.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Handle;
use super::api::{ApiFailure, ApiReply, ApiRequest};

/// How long the agent may take to answer one read.
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The query parameters passed on to the agent, as Mesos names them.
const PASSED_ON: [&str; 2] = ["offset", "length"];

/// Why a file cannot be read.
#[derive(Debug, thiserror::Error)]
enum ProxyError {
    #[error("{0}")]
    Api(#[from] ApiFailure),
    #[error("task '{task}' has no file '{name}': it has {listed}")]
    NoSuchFile {
        task: String,
        name: String,
        listed: String,
    },
    #[error(
        "the sandbox of task '{0}' is not known (its agent never said where it is): there is no \
         file to read"
    )]
    NoSandbox(String),
    #[error("file '{name}' of task '{task}' has no read URL '{url}' that can be used: {reason}")]
    BadUrl {
        task: String,
        name: String,
        url: String,
        reason: String,
    },
    #[error("cannot make the HTTP client that reads agents' files: {0}")]
    Client(String),
    #[error(
        "cannot reach the agent at {url} to read '{name}' of task '{task}': {reason} (the agent \
         may be down, or its sandbox gone with it)"
    )]
    Unreachable {
        task: String,
        name: String,
        url: String,
        reason: String,
    },
    #[error("the agent at {url} answered {status} for '{name}' of task '{task}': {body}")]
    Refused {
        task: String,
        name: String,
        url: String,
        status: StatusCode,
        body: String,
    },
}

impl ProxyError {
    fn status(&self) -> StatusCode {
        match self {
            ProxyError::Api(failure) => {
                StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ProxyError::NoSuchFile { .. } | ProxyError::NoSandbox(_) => StatusCode::NOT_FOUND,
            ProxyError::BadUrl { .. } | ProxyError::Client(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Refused { status, .. } => *status,
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        (
            self.status(),
            axum::Json(json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// One client for every read (connections to an agent are reused).
fn client() -> Result<&'static reqwest::Client, ProxyError> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            shardex_mesos::tls::http_client_builder()
                .map_err(|e| e.to_string())?
                .no_proxy()
                .timeout(AGENT_TIMEOUT)
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| ProxyError::Client(e.clone()))
}

/// The agent's `/files/read` URL of file `name` in the task answer `task` (`GET
/// /api/tasks/{task}`), with the query's `offset` and `length` put in.
fn read_url(
    task_id: &str,
    answer: &Value,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<reqwest::Url, ProxyError> {
    let sandbox = &answer["task"]["sandbox"];
    let files = sandbox["files"].as_array().cloned().unwrap_or_default();
    if files.is_empty() && sandbox["agent_url"].is_null() {
        return Err(ProxyError::NoSandbox(task_id.to_owned()));
    }
    let Some(file) = files.iter().find(|f| f["name"] == name) else {
        let names: Vec<String> = files
            .iter()
            .filter_map(|f| f["name"].as_str())
            .map(|n| format!("'{n}'"))
            .collect();
        return Err(ProxyError::NoSuchFile {
            task: task_id.to_owned(),
            name: name.to_owned(),
            listed: if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            },
        });
    };
    let raw = file["read"].as_str().unwrap_or_default();
    let bad = |reason: String| ProxyError::BadUrl {
        task: task_id.to_owned(),
        name: name.to_owned(),
        url: raw.to_owned(),
        reason,
    };
    let mut url = reqwest::Url::parse(raw).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("not an http(s) URL".to_owned()));
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| !PASSED_ON.contains(&key.as_ref()))
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    {
        let mut pairs = url.query_pairs_mut();
        pairs.clear();
        for (key, value) in &kept {
            pairs.append_pair(key, value);
        }
        for key in PASSED_ON {
            if let Some(value) = query.get(key) {
                pairs.append_pair(key, value);
            }
        }
    }
    Ok(url)
}

async fn read_file(
    handle: &Handle,
    task: String,
    name: String,
    query: HashMap<String, String>,
) -> Result<Response, ProxyError> {
    let answer = match handle.request(ApiRequest::GetTask(task.clone())).await? {
        ApiReply::Json(_, value) => value,
        _ => Value::Null,
    };
    let url = read_url(&task, &answer, &name, &query)?;
    let unreachable = |reason: String| ProxyError::Unreachable {
        task: task.clone(),
        name: name.clone(),
        url: url.to_string(),
        reason,
    };
    let response = client()?
        .get(url.clone())
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let is_json = serde_json::from_slice::<Value>(&body).is_ok_and(|v| v.is_object());
    if status.is_success() && is_json {
        let mut answer = (StatusCode::OK, body).into_response();
        answer.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(answer);
    }
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    Err(ProxyError::Refused {
        task: task.clone(),
        name: name.clone(),
        url: url.to_string(),
        status: if status.is_success() {
            StatusCode::BAD_GATEWAY
        } else {
            status
        },
        body: if text.is_empty() {
            "(no body)".to_owned()
        } else {
            text
        },
    })
}

/// The handler.
pub async fn read(
    State(handle): State<Handle>,
    Path((task, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match read_file(&handle, task, name, query).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Value {
        json!({"run": 3, "job": "crunch", "item": 0, "task": {"sandbox": {
            "agent_url": "http://127.0.0.1:5051",
            "files": [
                {"name": "stdout", "read": "http://127.0.0.1:5051/files/read?path=%2Fw%2Fstdout"},
                {"name": "stderr", "read": "http://127.0.0.1:5051/files/read?path=%2Fw%2Fstderr&offset=9"},
            ],
        }}})
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn offset_and_length_are_passed_on_as_given() {
        let url = read_url(
            "t",
            &answer(),
            "stderr",
            &query(&[("offset", "-1"), ("length", "x"), ("path", "/etc/passwd")]),
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:5051/files/read?path=%2Fw%2Fstderr&offset=-1&length=x"
        );
        let url = read_url("t", &answer(), "stdout", &query(&[])).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:5051/files/read?path=%2Fw%2Fstdout"
        );
    }

    #[test]
    fn an_unknown_file_names_the_ones_there_are() {
        let error = read_url("t", &answer(), "secrets", &query(&[])).unwrap_err();
        assert_eq!(error.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            error.to_string(),
            "task 't' has no file 'secrets': it has 'stdout', 'stderr'"
        );
        let none = json!({"task": {"sandbox": {"agent_url": null, "files": []}}});
        let error = read_url("t", &none, "stdout", &query(&[])).unwrap_err();
        assert!(matches!(error, ProxyError::NoSandbox(_)), "{error}");
    }
}
