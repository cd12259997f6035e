//! The HTTP client both sides of the v1 API use.
//!
//! Mesos expects two kinds of connection (Mesos' `docs/scheduler-http-api.md` and
//! `docs/executor-http-api.md`, "persistent connection"): one long-lived response
//! per SUBSCRIBE that carries every event, and a separate persistent connection for all other
//! calls, which are answered `202 Accepted` with an empty body. [`Client`] keeps those apart
//! with two connection pools: subscriptions never reuse a connection; calls reuse persistent
//! ones (a caller that awaits each call uses exactly one).
//!
//! Every request carries exactly `Content-Type` and `Accept` set to the chosen encoding, plus
//! `Authorization` when configured and `Mesos-Stream-Id` on scheduler calls other than
//! SUBSCRIBE. Outcomes become [`ApiError`]s that say whether retrying can help.
//!
//! `https://` endpoints use TLS as [`ClientConfig::tls`] says ([`super::tls`]); the TLS
//! configuration is built when the client first needs it and kept for later reconnections. A
//! handshake that fails becomes [`ApiError::Tls`], naming the URL and what to do.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};

use super::codec::{DecodeError, Encoding};
use super::recordio::{self, RecordIoError};
use super::tls::{self, TlsConfig, TlsError};

/// The header naming a scheduler's subscription (scheduler API only).
pub const MESOS_STREAM_ID: &str = "Mesos-Stream-Id";

/// How a client authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Executor authentication: the agent's JWT from `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`.
    Bearer(String),
    /// Framework HTTP authentication: `principal:secret` as HTTP Basic.
    Basic { principal: String, secret: String },
}

impl std::fmt::Debug for Credentials {
    // Secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Basic { principal, .. } => write!(f, "Basic({principal}:<redacted>)"),
        }
    }
}

impl Credentials {
    fn header_value(&self) -> Result<HeaderValue, ApiError> {
        use base64::Engine as _;
        let text = match self {
            Credentials::Bearer(token) => format!("Bearer {token}"),
            Credentials::Basic { principal, secret } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{principal}:{secret}"))
            ),
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| ApiError::InvalidCredentials)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub encoding: Encoding,
    pub credentials: Option<Credentials>,
    pub connect_timeout: Duration,
    /// Bound on a non-streaming call, from sending to the end of the answer.
    pub call_timeout: Duration,
    /// Keepalive probes on the subscription socket, so a half-open connection is noticed.
    pub tcp_keepalive: Duration,
    pub max_record_size: usize,
    /// Trust and client certificate for `https://` endpoints.
    pub tls: TlsConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            encoding: Encoding::Protobuf,
            credentials: None,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(30),
            tcp_keepalive: Duration::from_secs(15),
            max_record_size: recordio::DEFAULT_MAX_RECORD_SIZE,
            tls: TlsConfig::default(),
        }
    }
}

/// The outcome of a request that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("request to {url} failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} is not the leading master; the leader is at {location}")]
    Redirect { url: String, location: String },
    #[error(
        "{url} answered the subscription with Content-Type '{content_type}', expected '{expected}'"
    )]
    UnexpectedContentType {
        url: String,
        content_type: String,
        expected: &'static str,
    },
    #[error("malformed event stream from {url}: {source}")]
    RecordIo {
        url: String,
        #[source]
        source: RecordIoError,
    },
    #[error("undecodable event from {url}: {source}")]
    Decode {
        url: String,
        #[source]
        source: DecodeError,
    },
    #[error("TLS with {url} failed: {problem}")]
    Tls { url: String, problem: String },
    #[error("cannot use {url}: {source}")]
    TlsSetup {
        url: String,
        #[source]
        source: Box<TlsError>,
    },
    #[error("the authentication credentials are not a valid HTTP header value")]
    InvalidCredentials,
    #[error("invalid endpoint URL '{0}'")]
    InvalidUrl(String),
}

impl ApiError {
    /// Whether the same request may succeed later: the peer is starting, recovering, not
    /// reachable yet, not the leader, or the connection broke. 4xx answers are final, and so
    /// are TLS failures: a certificate that is not trusted stays so until someone changes it.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Connect { .. }
            | ApiError::Transport { .. }
            | ApiError::Redirect { .. }
            | ApiError::RecordIo { .. }
            | ApiError::Decode { .. } => true,
            ApiError::Status { status, .. } => matches!(status, 404 | 500 | 502 | 503 | 504),
            ApiError::UnexpectedContentType { .. }
            | ApiError::Tls { .. }
            | ApiError::TlsSetup { .. }
            | ApiError::InvalidCredentials
            | ApiError::InvalidUrl(_) => false,
        }
    }

    /// The HTTP status of an answered request.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A v1 API client bound to one endpoint URL (`http://host:port/api/v1/executor` or
/// `/api/v1/scheduler`).
#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    config: ClientConfig,
    /// The TLS configuration, built for the first `https://` URL and kept.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// No idle connections are kept: every subscription gets a fresh connection.
    stream_http: reqwest::Client,
    /// Persistent connections reused by calls (one per call in flight, kept idle for reuse).
    call_http: reqwest::Client,
    stream_id: Option<HeaderValue>,
}

impl Client {
    pub fn new(url: impl Into<String>, config: ClientConfig) -> Result<Client, ApiError> {
        let url = url.into();
        if reqwest::Url::parse(&url).is_err() {
            return Err(ApiError::InvalidUrl(url));
        }
        let tls = tls_for(&config.tls, &url, None)?;
        let (stream_http, call_http) = build_http(&config, &url, tls.as_deref())?;
        Ok(Client {
            url,
            config,
            tls,
            stream_http,
            call_http,
            stream_id: None,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn encoding(&self) -> Encoding {
        self.config.encoding
    }

    /// Sets (or clears) the `Mesos-Stream-Id` sent on calls. SUBSCRIBE never carries it.
    pub fn set_stream_id(&mut self, stream_id: Option<&str>) {
        self.stream_id = stream_id.and_then(|id| HeaderValue::from_str(id).ok());
    }

    /// Points the client at another URL (e.g. the leading master after a 307) with fresh
    /// connections.
    pub fn set_url(&mut self, url: impl Into<String>) -> Result<(), ApiError> {
        let url = url.into();
        if reqwest::Url::parse(&url).is_err() {
            return Err(ApiError::InvalidUrl(url));
        }
        self.tls = tls_for(&self.config.tls, &url, self.tls.take())?;
        self.url = url;
        self.reset_connections()
    }

    /// Drops every pooled connection. Use after a disconnect: a kept-alive call connection
    /// to a restarted agent only fails on its first write (EPIPE).
    pub fn reset_connections(&mut self) -> Result<(), ApiError> {
        let (stream_http, call_http) = build_http(&self.config, &self.url, self.tls.as_deref())?;
        self.stream_http = stream_http;
        self.call_http = call_http;
        Ok(())
    }

    /// Sends a SUBSCRIBE call and returns its event stream once the answer is `200 OK`.
    pub async fn subscribe<C, E>(&self, call: &C) -> Result<Subscription<E>, ApiError>
    where
        C: prost::Message + prost::Name,
        E: prost::Message + prost::Name + Default,
    {
        let request = self
            .stream_http
            .post(&self.url)
            .headers(self.headers(false)?)
            .body(self.config.encoding.encode(call));
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let response = self.check_status(response, &[200]).await?;
        let content_type = header_text(response.headers(), CONTENT_TYPE.as_str());
        let expected = self.config.encoding.media_type();
        if content_type != expected {
            return Err(ApiError::UnexpectedContentType {
                url: self.url.clone(),
                content_type,
                expected,
            });
        }
        let stream_id = response
            .headers()
            .get(MESOS_STREAM_ID)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok(Subscription {
            url: self.url.clone(),
            encoding: self.config.encoding,
            response,
            decoder: recordio::Decoder::new(self.config.max_record_size),
            stream_id,
            finished: false,
            _event: PhantomData,
        })
    }

    /// Sends a call other than SUBSCRIBE. Succeeds on `202 Accepted` (and on `200 OK`, which
    /// synchronous calls such as UPDATE_FRAMEWORK use), returning the body.
    pub async fn call<C>(&self, call: &C) -> Result<Bytes, ApiError>
    where
        C: prost::Message + prost::Name,
    {
        self.call_bytes(self.config.encoding.encode(call)).await
    }

    /// Sends an already encoded call body (e.g. an UPDATE re-sent byte for byte).
    pub async fn call_bytes(&self, body: Vec<u8>) -> Result<Bytes, ApiError> {
        let request = self
            .call_http
            .post(&self.url)
            .headers(self.headers(true)?)
            .timeout(self.config.call_timeout)
            .body(body);
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let response = self.check_status(response, &[200, 202]).await?;
        response.bytes().await.map_err(|e| self.transport(e))
    }

    fn headers(&self, with_stream_id: bool) -> Result<HeaderMap, ApiError> {
        let media_type = HeaderValue::from_static(self.config.encoding.media_type());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, media_type.clone());
        headers.insert(ACCEPT, media_type);
        if let Some(credentials) = &self.config.credentials {
            headers.insert(AUTHORIZATION, credentials.header_value()?);
        }
        if with_stream_id && let Some(stream_id) = &self.stream_id {
            headers.insert(MESOS_STREAM_ID, stream_id.clone());
        }
        Ok(headers)
    }

    fn transport(&self, source: reqwest::Error) -> ApiError {
        if let Some(error) = tls::rustls_error(&source) {
            return ApiError::Tls {
                url: self.url.clone(),
                problem: tls::explain(error, &self.config.tls),
            };
        }
        if source.is_connect() {
            ApiError::Connect {
                url: self.url.clone(),
                source,
            }
        } else {
            ApiError::Transport {
                url: self.url.clone(),
                source,
            }
        }
    }

    async fn check_status(
        &self,
        response: reqwest::Response,
        accepted: &[u16],
    ) -> Result<reqwest::Response, ApiError> {
        let status = response.status().as_u16();
        if accepted.contains(&status) {
            return Ok(response);
        }
        if status == 307 {
            let location = header_text(response.headers(), LOCATION.as_str());
            return Err(ApiError::Redirect {
                url: self.url.clone(),
                location: resolve_location(&self.url, &location),
            });
        }
        // Error bodies are short plain text; bound what we keep of a misbehaving peer's.
        let body = response.bytes().await.unwrap_or_default();
        let body = String::from_utf8_lossy(&body[..body.len().min(4096)])
            .trim_end()
            .to_owned();
        Err(ApiError::Status {
            url: self.url.clone(),
            status,
            body,
        })
    }
}

/// The TLS configuration for `url`: `kept` if there is one, built from `config` for an
/// `https://` URL, none for plain `http://`.
fn tls_for(
    config: &TlsConfig,
    url: &str,
    kept: Option<Arc<rustls::ClientConfig>>,
) -> Result<Option<Arc<rustls::ClientConfig>>, ApiError> {
    let https = reqwest::Url::parse(url).is_ok_and(|url| url.scheme() == "https");
    if kept.is_some() || !https {
        return Ok(kept);
    }
    tls::client_config(config)
        .map(|tls| Some(Arc::new(tls)))
        .map_err(|source| ApiError::TlsSetup {
            url: url.to_owned(),
            source: Box::new(source),
        })
}

fn build_http(
    config: &ClientConfig,
    url: &str,
    tls: Option<&rustls::ClientConfig>,
) -> Result<(reqwest::Client, reqwest::Client), ApiError> {
    // Plain http:// needs no trust; an https:// URL that reached here without a configuration
    // (it cannot) would then fail instead of connecting unverified.
    let tls = match tls {
        Some(tls) => tls.clone(),
        None => tls::no_trust_config().map_err(|source| ApiError::TlsSetup {
            url: url.to_owned(),
            source: Box::new(source),
        })?,
    };
    #[allow(clippy::disallowed_methods)] // Configured with `tls` below.
    let base = || {
        reqwest::ClientBuilder::new()
            .tls_backend_preconfigured(tls.clone())
            // Mesos speaks HTTP/1.1; agent and master are reached directly, never via a proxy
            // taken from the environment.
            .http1_only()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
    };
    let stream = base()
        .pool_max_idle_per_host(0)
        .tcp_keepalive(config.tcp_keepalive)
        .build()
        .map_err(|source| ApiError::Transport {
            url: url.to_owned(),
            source,
        })?;
    let calls = base()
        .pool_max_idle_per_host(8)
        .build()
        .map_err(|source| ApiError::Transport {
            url: url.to_owned(),
            source,
        })?;
    Ok((stream, calls))
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Mesos answers 307 with a protocol-relative `Location: //host:port/api/v1/scheduler`.
fn resolve_location(current: &str, location: &str) -> String {
    match reqwest::Url::parse(current).and_then(|base| base.join(location)) {
        Ok(url) => url.to_string(),
        Err(_) => location.to_owned(),
    }
}

/// The events of one subscription, decoded as they arrive.
#[derive(Debug)]
pub struct Subscription<E> {
    url: String,
    encoding: Encoding,
    response: reqwest::Response,
    decoder: recordio::Decoder,
    stream_id: Option<String>,
    finished: bool,
    _event: PhantomData<fn() -> E>,
}

impl<E: prost::Message + prost::Name + Default> Subscription<E> {
    /// The `Mesos-Stream-Id` of this subscription (scheduler API).
    pub fn stream_id(&self) -> Option<&str> {
        self.stream_id.as_deref()
    }

    /// The next event; `Ok(None)` when the server ended the stream cleanly. A stream that
    /// breaks, ends inside a record, or carries an undecodable record is an error: the
    /// subscription is over either way.
    pub async fn next_event(&mut self) -> Result<Option<E>, ApiError> {
        loop {
            if let Some(record) =
                self.decoder
                    .next_record()
                    .map_err(|source| ApiError::RecordIo {
                        url: self.url.clone(),
                        source,
                    })?
            {
                return self.encoding.decode(&record).map(Some).map_err(|source| {
                    ApiError::Decode {
                        url: self.url.clone(),
                        source,
                    }
                });
            }
            if self.finished {
                return Ok(None);
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.decoder.feed(&chunk),
                Ok(None) => {
                    self.finished = true;
                    self.decoder.finish().map_err(|source| ApiError::RecordIo {
                        url: self.url.clone(),
                        source,
                    })?;
                }
                Err(source) => {
                    return Err(ApiError::Transport {
                        url: self.url.clone(),
                        source,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_outcomes() {
        let status = |status| ApiError::Status {
            url: "u".into(),
            status,
            body: String::new(),
        };
        for code in [404, 503] {
            assert!(status(code).is_retryable(), "{code}");
        }
        for code in [400, 401, 403, 405, 406, 415, 501] {
            assert!(!status(code).is_retryable(), "{code}");
        }
    }

    #[test]
    fn resolves_protocol_relative_redirects() {
        assert_eq!(
            resolve_location(
                "http://10.0.0.1:5050/api/v1/scheduler",
                "//10.0.0.2:5050/api/v1/scheduler"
            ),
            "http://10.0.0.2:5050/api/v1/scheduler"
        );
    }

    #[test]
    fn credentials_never_print_their_secret() {
        let basic = Credentials::Basic {
            principal: "ops".into(),
            secret: "hunter2".into(),
        };
        assert_eq!(format!("{basic:?}"), "Basic(ops:<redacted>)");
        assert_eq!(
            format!("{:?}", Credentials::Bearer("jwt".into())),
            "Bearer(<redacted>)"
        );
        assert_eq!(
            basic.header_value().unwrap().to_str().unwrap(),
            "Basic b3BzOmh1bnRlcjI="
        );
    }
}
