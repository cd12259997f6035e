//! HTTP for both APIs: `/api/v1/scheduler` (also `/master/api/v1/scheduler`) on the master's
//! port and `/api/v1/executor` (also `/slave(1)/api/v1/executor`) on the agent's.
//!
//! This layer does what needs no state, in the order `Master::Http::scheduler` and
//! `Http::executor` do it: method (405 with `Allow: POST`), `Content-Type` (400 when absent, 415
//! unless exactly one of the two media types), body parsing (400), call validation (400),
//! `Accept` negotiation for SUBSCRIBE (JSON first; 406), then hands the call to the owner task
//! and turns its [`Reply`] into a response. Responses imitate libprocess byte for byte where a
//! client could notice: `Date` first, title-case header names, `202` with only `Date` and
//! `Content-Length: 0`, error bodies as `text/plain; charset=utf-8`, and subscriptions as
//! chunked RecordIO with one record per chunk.
//!
//! Every call is reported to the owner for the observation log, with the status answered.
//! The agent's `/files/*` endpoints (`agent/files.rs`) are answered beside the executor API,
//! outside that log.
//!
//! With TLS ([`ServerTls`]) each connection is a TLS handshake first; a client speaking plain
//! HTTP to the port is answered `400` naming the `https://` URL to use.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::ObservedCall;
use super::agent::files::{self, Content, SandboxFiles};
use super::jwt;
use super::runtime::{AgentPhase, Msg, Reply, StreamItem};
use super::tls::{Accepted, ServerTls};
use super::validation::{validate_executor_call, validate_scheduler_call};
use shardex_mesos::codec::{APPLICATION_JSON, APPLICATION_PROTOBUF};
use shardex_mesos::json::{self, JsonError};
use shardex_mesos::proto::v1::{executor, scheduler};
use shardex_mesos::{Encoding, required};

/// Bound on a request body; Mesos calls are small (a large ACCEPT is tens of KiB).
const MAX_BODY: usize = 16 * 1024 * 1024;

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// A running listener; stopping it (or dropping it) closes the socket and every connection
/// abruptly, as the death of the process would.
#[derive(Debug)]
pub(crate) struct ServerHandle {
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the master's HTTP handlers need.
#[derive(Debug, Clone)]
pub(crate) struct MasterHttp {
    pub tx: mpsc::UnboundedSender<Msg>,
    /// `--authenticate_http_frameworks`: the principals that may call (`credentials.rs`).
    pub credentials: Option<std::sync::Arc<crate::credentials::Credentials>>,
}

/// What the agent's HTTP handlers need.
#[derive(Debug, Clone)]
pub(crate) struct AgentHttp {
    pub tx: mpsc::UnboundedSender<Msg>,
    pub phase: watch::Receiver<AgentPhase>,
    pub jwt_secret: Option<Arc<Vec<u8>>>,
    /// The sandboxes `/files/*` serves (the agent attaches them).
    pub files: SandboxFiles,
}

pub(crate) fn serve_master(
    listener: TcpListener,
    tls: Option<ServerTls>,
    http: MasterHttp,
) -> ServerHandle {
    serve(listener, tls, move |request| {
        let http = http.clone();
        async move { Ok::<_, Infallible>(master(http, request).await) }
    })
}

pub(crate) fn serve_agent(
    listener: TcpListener,
    tls: Option<ServerTls>,
    http: AgentHttp,
) -> ServerHandle {
    serve(listener, tls, move |request| {
        let http = http.clone();
        async move { agent(http, request).await }
    })
}

/// A handler's `Err` closes the connection without an answer.
fn serve<F, Fut, E>(listener: TcpListener, tls: Option<ServerTls>, handler: F) -> ServerHandle
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let task = tokio::spawn(async move {
        // Connections live in this set: aborting the accept loop drops them all.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((socket, _)) = accepted else { continue };
                    let _ = socket.set_nodelay(true);
                    let handler = handler.clone();
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let Some(tls) = tls else {
                            return serve_connection(socket, handler).await;
                        };
                        match tls.accept(socket).await {
                            Ok(Accepted::Tls(stream)) => serve_connection(*stream, handler).await,
                            Ok(Accepted::PlainOnTlsPort(socket)) => {
                                serve_connection(socket, |request| async move {
                                    Ok::<_, Infallible>(use_https(&request))
                                })
                                .await
                            }
                            // Logged by the handshake; the client sees the connection end.
                            Err(_) => {}
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    ServerHandle { task }
}

async fn serve_connection<I, F, Fut, E>(io: I, handler: F)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<Body>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = hyper::service::service_fn(handler);
    let _ = hyper::server::conn::http1::Builder::new()
        .title_case_headers(true)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// The answer to plain HTTP on a TLS port: where to go instead.
fn use_https(request: &Request<Incoming>) -> Response<Body> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("<host:port>");
    let mut answer = text(
        400,
        format!(
            "400 Bad Request: this port serves TLS; use https://{host}{}",
            request.uri().path()
        ),
    );
    answer
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    answer
}

// ---------------------------------------------------------------------------------------------
// Responses

fn date() -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

fn response(
    status: u16,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    body: Body,
) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    // libprocess writes Date first; hyper keeps insertion order and adds Content-Length last.
    map.insert(header::DATE, date());
    for (name, value) in headers {
        map.append(name, value);
    }
    response
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn text(status: u16, body: impl Into<String>) -> Response<Body> {
    response(
        status,
        vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        full(body.into()),
    )
}

/// A real master's answer to a scheduler request without valid credentials.
fn unauthenticated() -> Response<Body> {
    let challenge = format!("Basic realm=\"{}\"", crate::credentials::REALM);
    response(
        401,
        vec![
            (
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Basic")),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        full("401 Unauthorized."),
    )
}

fn method_not_allowed(method: &Method) -> Response<Body> {
    response(
        405,
        vec![
            (header::ALLOW, HeaderValue::from_static("POST")),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        full(format!(
            "405 Method Not Allowed. Expecting one of {{ 'POST' }}, but received '{method}'."
        )),
    )
}

fn unauthorized(challenge: &'static str) -> Response<Body> {
    response(
        401,
        vec![(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        )],
        full(Bytes::new()),
    )
}

fn reply_to_response(reply: Reply) -> (u16, Response<Body>) {
    match reply {
        Reply::Accepted => (202, response(202, Vec::new(), full(Bytes::new()))),
        Reply::Ok => (200, response(200, Vec::new(), full(Bytes::new()))),
        Reply::Error { status, body } => (status, text(status, body)),
        Reply::Stream {
            stream_id,
            encoding,
            rx,
        } => {
            let mut headers = vec![(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            )];
            if let Some(id) = stream_id
                && let Ok(value) = HeaderValue::from_str(&id)
            {
                headers.push((header::HeaderName::from_static("mesos-stream-id"), value));
            }
            headers.push((
                header::CONTENT_TYPE,
                HeaderValue::from_static(encoding.media_type()),
            ));
            (200, response(200, headers, stream_body(rx)))
        }
    }
}

/// Each record becomes one data frame, which hyper writes as one chunk.
fn stream_body(rx: mpsc::UnboundedReceiver<StreamItem>) -> Body {
    let frames = futures::stream::unfold(Some(rx), |state| async move {
        let mut rx = state?;
        match rx.recv().await {
            Some(StreamItem::Record(bytes)) => Some((Ok(Frame::data(bytes)), Some(rx))),
            Some(StreamItem::Abort) => Some((
                Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "subscription broken on purpose",
                )),
                None,
            )),
            Some(StreamItem::End) | None => None,
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

// ---------------------------------------------------------------------------------------------
// Requests

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// libprocess' `Request::acceptsMediaType`: no `Accept` accepts everything; otherwise the most
/// specific matching range decides, and `q=0` refuses.
pub(crate) fn accepts(accept: Option<&str>, media_type: &str) -> bool {
    let Some(accept) = accept else {
        return true;
    };
    let (wanted_type, wanted_subtype) = media_type.split_once('/').unwrap_or((media_type, ""));
    let mut best: Option<(u8, f64)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let Some(name) = parts.next().map(str::trim) else {
            continue;
        };
        let (kind, subtype) = name.split_once('/').unwrap_or((name, ""));
        let specificity = if kind == wanted_type && subtype == wanted_subtype {
            3
        } else if kind == wanted_type && subtype == "*" {
            2
        } else if kind == "*" && subtype == "*" {
            1
        } else {
            continue;
        };
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f64>().ok())
            .unwrap_or(1.0);
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.is_some_and(|(_, q)| q > 0.0)
}

/// JSON is tried first, as Mesos does: a missing Accept or `*/*` means JSON.
fn negotiate(headers: &HeaderMap) -> Option<Encoding> {
    let accept = header_text(headers, "accept");
    if accepts(accept.as_deref(), APPLICATION_JSON) {
        Some(Encoding::Json)
    } else if accepts(accept.as_deref(), APPLICATION_PROTOBUF) {
        Some(Encoding::Protobuf)
    } else {
        None
    }
}

fn not_acceptable() -> Response<Body> {
    text(
        406,
        format!("Expecting 'Accept' to allow '{APPLICATION_PROTOBUF}' or '{APPLICATION_JSON}'"),
    )
}

/// Parses a call as `ParseFromString` / stout's JSON parser do; the error is the 400 body.
fn parse_call<C>(encoding: Encoding, body: &[u8]) -> Result<C, String>
where
    C: prost::Message + prost::Name + Default,
{
    match encoding {
        Encoding::Protobuf => {
            // C++ `ParseFromString` also fails when a required field is missing.
            let parsed = C::decode(body).ok();
            let complete = required::missing_in::<C>(body).is_ok_and(|m| m.is_empty());
            match parsed {
                Some(call) if complete => Ok(call),
                _ => Err("Failed to parse body into Call protobuf".to_owned()),
            }
        }
        Encoding::Json => json::from_json::<C>(body).map_err(|error| match error {
            JsonError::Syntax(message) => format!("Failed to parse body into JSON: {message}"),
            other => format!("Failed to convert JSON into Call protobuf: {other}"),
        }),
    }
}

/// Content-Type checks, body reading and parsing; `Err` is the response to send.
async fn read_call<C>(
    request: Request<Incoming>,
) -> Result<(C, Bytes, HeaderMap), (Response<Body>, Bytes, Option<C>)>
where
    C: prost::Message + prost::Name + Default,
{
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err((
                text(400, "Failed to read the request body (too large or broken)"),
                Bytes::new(),
                None,
            ));
        }
    };
    let Some(content_type) = header_text(&parts.headers, "content-type") else {
        return Err((
            text(400, "Expecting 'Content-Type' to be present"),
            body,
            None,
        ));
    };
    let Some(encoding) = Encoding::from_content_type(&content_type) else {
        return Err((
            text(
                415,
                format!("Expecting 'Content-Type' of {APPLICATION_JSON} or {APPLICATION_PROTOBUF}"),
            ),
            body.clone(),
            encoding_guess::<C>(&body),
        ));
    };
    match parse_call::<C>(encoding, &body) {
        Ok(call) => Ok((call, body, parts.headers)),
        Err(message) => Err((text(400, message), body, None)),
    }
}

/// Best-effort decoding of a refused body, for the observation log only.
fn encoding_guess<C: prost::Message + prost::Name + Default>(body: &[u8]) -> Option<C> {
    C::decode(body)
        .ok()
        .or_else(|| json::from_json::<C>(body).ok())
}

async fn ask(
    tx: &mpsc::UnboundedSender<Msg>,
    make: impl FnOnce(oneshot::Sender<Reply>) -> Msg,
) -> Reply {
    let (reply_tx, reply_rx) = oneshot::channel();
    if tx.send(make(reply_tx)).is_err() {
        return Reply::error(503, "The embedded cluster is shutting down");
    }
    reply_rx
        .await
        .unwrap_or_else(|_| Reply::error(503, "The embedded cluster is shutting down"))
}

fn observed<C>(
    path: &str,
    headers: &HeaderMap,
    raw: Bytes,
    call: Option<C>,
    status: u16,
) -> ObservedCall<C> {
    ObservedCall {
        path: path.to_owned(),
        content_type: header_text(headers, "content-type"),
        stream_id: header_text(headers, "mesos-stream-id"),
        raw,
        call,
        status,
    }
}

// ---------------------------------------------------------------------------------------------
// Master

async fn master(http: MasterHttp, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    // The master's `/health` (src/master/master.cpp routes it to `Http::health`, which answers
    // `OK()`: 200 with only `Date` and `Content-Length: 0`, whatever the method). Not a scheduler
    // call, so not in the observation log.
    if path == "/health" || path == "/master/health" {
        return response(200, Vec::new(), full(Bytes::new()));
    }
    let headers = request.headers().clone();
    let (status, call, raw, response) = master_inner(&http, request, &path).await;
    let _ = http.tx.send(Msg::ObservedScheduler(observed(
        &path, &headers, raw, call, status,
    )));
    response
}

async fn master_inner(
    http: &MasterHttp,
    request: Request<Incoming>,
    path: &str,
) -> (u16, Option<scheduler::Call>, Bytes, Response<Body>) {
    if path != "/api/v1/scheduler" && path != "/master/api/v1/scheduler" {
        return (404, None, Bytes::new(), text(404, "404 Not Found."));
    }
    // Authentication comes before the method, the body and the call are looked at.
    let mut principal = None;
    if let Some(credentials) = &http.credentials {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match credentials.authenticate(authorization) {
            Some(authenticated) => principal = Some(authenticated),
            None => return (401, None, Bytes::new(), unauthenticated()),
        }
    }
    if request.method() != Method::POST {
        return (
            405,
            None,
            Bytes::new(),
            method_not_allowed(request.method()),
        );
    }
    let (call, raw, headers) = match read_call::<scheduler::Call>(request).await {
        Ok(parsed) => parsed,
        Err((response, raw, call)) => return (response.status().as_u16(), call, raw, response),
    };
    if let Err(message) = validate_scheduler_call(&call) {
        let response = text(
            400,
            format!("Failed to validate scheduler::Call: {message}"),
        );
        return (400, Some(call), raw, response);
    }
    let kind = call
        .r#type
        .and_then(|t| scheduler::call::Type::try_from(t).ok());
    if let (Some(authenticated), Some(claimed)) = (
        &principal,
        call.subscribe
            .as_ref()
            .and_then(|s| s.framework_info.principal.as_ref()),
    ) && kind == Some(scheduler::call::Type::Subscribe)
        && authenticated != claimed
    {
        let response = text(
            400,
            format!(
                "Failed to validate scheduler::Call: Authenticated principal '{authenticated}' \
                 does not match principal '{claimed}' set in `FrameworkInfo`"
            ),
        );
        return (400, Some(call), raw, response);
    }
    let mut accept = Encoding::Json;
    if matches!(
        kind,
        Some(scheduler::call::Type::Subscribe | scheduler::call::Type::ReconcileOperations)
    ) {
        match negotiate(&headers) {
            Some(encoding) => accept = encoding,
            None => return (406, Some(call), raw, not_acceptable()),
        }
    }
    let stream_id = header_text(&headers, "mesos-stream-id");
    if kind == Some(scheduler::call::Type::Subscribe) && stream_id.is_some() {
        let response = text(
            400,
            "Subscribe calls should not include the 'Mesos-Stream-Id' header",
        );
        return (400, Some(call), raw, response);
    }
    let reply = ask(&http.tx, |reply| Msg::SchedulerCall {
        call: call.clone(),
        stream_id,
        accept,
        reply,
    })
    .await;
    let (status, response) = reply_to_response(reply);
    (status, Some(call), raw, response)
}

// ---------------------------------------------------------------------------------------------
// Agent

async fn agent(
    http: AgentHttp,
    request: Request<Incoming>,
) -> Result<Response<Body>, files::MalformedQuery> {
    let path = request.uri().path().to_owned();
    // The `files` process answers whatever the method, once the restarted agent listens.
    if let Some(endpoint) = files::route(&path)
        && *http.phase.borrow() != AgentPhase::NotReady
    {
        let answer = http.files.answer(endpoint, request.uri().query()).await?;
        let body = match answer.body {
            Content::Bytes(bytes) => full(bytes),
            Content::File { file, length } => file_body(file, length),
        };
        return Ok(response(answer.status, answer.headers, body));
    }
    let headers = request.headers().clone();
    let (status, call, raw, response) = agent_inner(&http, request, &path).await;
    let _ = http.tx.send(Msg::ObservedExecutor(observed(
        &path, &headers, raw, call, status,
    )));
    Ok(response)
}

/// Exactly `length` bytes of `file`, read as the client takes them.
fn file_body(file: std::fs::File, length: u64) -> Body {
    use tokio::io::AsyncReadExt as _;
    const CHUNK: usize = 64 * 1024;
    let reader = tokio::fs::File::from_std(file).take(length);
    let frames = futures::stream::try_unfold(reader, |mut reader| async move {
        let mut buffer = vec![0; CHUNK];
        let read = reader.read(&mut buffer).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.truncate(read);
        Ok(Some((Frame::data(Bytes::from(buffer)), reader)))
    });
    StreamBody::new(frames).boxed_unsync()
}

async fn agent_inner(
    http: &AgentHttp,
    request: Request<Incoming>,
    path: &str,
) -> (u16, Option<executor::Call>, Bytes, Response<Body>) {
    let phase = *http.phase.borrow();
    // A restarting agent answers 404 before its routes exist.
    if phase == AgentPhase::NotReady
        || (path != "/api/v1/executor" && path != "/slave(1)/api/v1/executor")
    {
        return (404, None, Bytes::new(), text(404, "404 Not Found."));
    }
    // libprocess authenticates before the handler runs.
    let mut claims = None;
    if let Some(secret) = &http.jwt_secret {
        let bearer = header_text(request.headers(), "authorization")
            .and_then(|value| value.strip_prefix("Bearer ").map(str::to_owned));
        let Some(token) = bearer else {
            return (
                401,
                None,
                Bytes::new(),
                unauthorized("Bearer realm=\"mesos-agent-executor\""),
            );
        };
        match jwt::verify(secret, token.trim()) {
            Ok(verified) => claims = Some(verified),
            Err(_) => {
                return (
                    401,
                    None,
                    Bytes::new(),
                    unauthorized("Bearer realm=\"mesos-agent-executor\", error=\"invalid_token\""),
                );
            }
        }
    }
    if phase == AgentPhase::RecoveringState {
        return (
            503,
            None,
            Bytes::new(),
            text(503, "Agent has not finished recovery"),
        );
    }
    if request.method() != Method::POST {
        return (
            405,
            None,
            Bytes::new(),
            method_not_allowed(request.method()),
        );
    }
    let (call, raw, headers) = match read_call::<executor::Call>(request).await {
        Ok(parsed) => parsed,
        Err((response, raw, call)) => return (response.status().as_u16(), call, raw, response),
    };
    if let Err(message) = validate_executor_call(&call) {
        let response = text(400, format!("Failed to validate Executor::Call: {message}"));
        return (400, Some(call), raw, response);
    }
    let kind = call
        .r#type
        .and_then(|t| executor::call::Type::try_from(t).ok());
    let mut accept = Encoding::Json;
    match kind {
        Some(executor::call::Type::Subscribe) => match negotiate(&headers) {
            Some(encoding) => accept = encoding,
            None => return (406, Some(call), raw, not_acceptable()),
        },
        // Answered before any lookup: executors may send dummy ids.
        Some(executor::call::Type::Heartbeat) => {
            let (status, response) = reply_to_response(Reply::Accepted);
            return (status, Some(call), raw, response);
        }
        _ => {}
    }
    let reply = ask(&http.tx, |reply| Msg::ExecutorCall {
        call: call.clone(),
        accept,
        claims,
        reply,
    })
    .await;
    let (status, response) = reply_to_response(reply);
    (status, Some(call), raw, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation_follows_libprocess() {
        assert!(accepts(None, APPLICATION_JSON));
        assert!(accepts(Some("*/*"), APPLICATION_JSON));
        assert!(!accepts(Some(APPLICATION_PROTOBUF), APPLICATION_JSON));
        assert!(accepts(Some(APPLICATION_PROTOBUF), APPLICATION_PROTOBUF));
        assert!(accepts(Some("application/*"), APPLICATION_JSON));
        assert!(!accepts(
            Some("application/json;q=0, */*"),
            APPLICATION_JSON
        ));
        assert!(accepts(
            Some("application/json;q=0, */*"),
            APPLICATION_PROTOBUF
        ));
        assert!(!accepts(Some("application/recordio"), APPLICATION_JSON));
    }
}
