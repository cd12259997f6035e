//! Who may use the REST API.
//!
//! A script job is arbitrary command execution on every agent, so whoever can register or
//! trigger a job owns the cluster. With `rest.token_file` set, every mutating request (anything
//! but `GET`/`HEAD`) must carry `Authorization: Bearer <token>`; with `rest.protect_reads`,
//! reads too. `/health` is always open (load balancers and supervisors probe it).
//!
//! - no or malformed `Authorization` → 401, `WWW-Authenticate: Bearer realm="shardex"`;
//! - a token that does not match → 403;
//!
//! both with the `{"error": …}` body of every other error. The token is compared in constant
//! time (`subtle`), so the answer's timing says nothing about how much of a guess was right.
//! The web console's page and assets hold no data and are always served
//! ([`console::is_public`]); the page sends the token on the API requests it makes.
//!
//! [`check_exposure`]: a scheduler refuses to listen beyond loopback without a token, unless
//! the operator says `--insecure-no-auth`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::config::RestConfig;
use super::console;
use super::secret::{Secret, SecretError, read_secret};

/// The REST API's access rule.
#[derive(Debug, Clone, Default)]
pub struct RestAuth {
    token: Option<Secret>,
    protect_reads: bool,
}

/// Why a scheduler will not serve its REST API.
#[derive(Debug, thiserror::Error)]
pub enum RestAuthError {
    #[error(transparent)]
    Token(#[from] SecretError),
    #[error(
        "refusing to serve the REST API on {listen} without a token: anyone who reaches it can \
         run commands on every agent (script jobs). Set rest.token_file (or --rest-token-file), \
         listen on 127.0.0.1, or pass --insecure-no-auth to accept the risk"
    )]
    Exposed { listen: String },
}

impl RestAuth {
    /// No token: every request allowed (loopback, or `--insecure-no-auth`).
    pub fn open() -> RestAuth {
        RestAuth::default()
    }

    /// The rule `rest` configures, its token read from its file.
    pub fn from_config(rest: &RestConfig) -> Result<RestAuth, RestAuthError> {
        let token = match &rest.token_file {
            Some(path) => Some(read_secret("the REST token", path)?),
            None => None,
        };
        Ok(RestAuth {
            token,
            protect_reads: rest.protect_reads,
        })
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `method path` needs the token.
    fn guards(&self, method: &Method, path: &str) -> bool {
        if self.token.is_none() || path == "/health" {
            return false;
        }
        let reads = method == Method::GET || method == Method::HEAD;
        !reads || self.protect_reads
    }

    /// The refusal of a request that may not pass, `None` when it may.
    fn refuse(&self, request: &Request) -> Option<Response> {
        if !self.guards(request.method(), request.uri().path())
            || console::is_public(request.method(), request.uri().path(), request.headers())
        {
            return None;
        }
        let token = self.token.as_ref()?;
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, rest) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        let Some(presented) = presented else {
            let error = "this endpoint needs the REST token: send `Authorization: Bearer <token>` \
                         (the token is in the scheduler's rest.token_file)";
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer realm=\"shardex\"")],
                    axum::Json(serde_json::json!({ "error": error })),
                )
                    .into_response(),
            );
        };
        if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
            return None;
        }
        Some(
            (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({
                    "error": "the bearer token is not the scheduler's REST token"
                })),
            )
                .into_response(),
        )
    }
}

/// The middleware: refuses what [`RestAuth`] does not allow, passes the rest on.
pub async fn guard(State(auth): State<RestAuth>, request: Request, next: Next) -> Response {
    match auth.refuse(&request) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    }
}

/// Whether `listen` (`host:port`) is reachable from loopback only.
pub fn is_loopback(listen: &str) -> bool {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return addr.ip().is_loopback();
    }
    let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Refuses a REST API that would listen beyond loopback without a token, unless
/// `insecure_no_auth`.
pub fn check_exposure(
    listen: &str,
    auth: &RestAuth,
    insecure_no_auth: bool,
) -> Result<(), RestAuthError> {
    if auth.has_token() || insecure_no_auth || is_loopback(listen) {
        return Ok(());
    }
    Err(RestAuthError::Exposed {
        listen: listen.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(protect_reads: bool) -> RestAuth {
        RestAuth {
            token: Some(Secret::from_test("t0ken-of-the-test")),
            protect_reads,
        }
    }

    fn request(method: Method, path: &str, authorization: Option<&str>) -> Request {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    fn status(auth: &RestAuth, method: Method, path: &str, authorization: Option<&str>) -> u16 {
        auth.refuse(&request(method, path, authorization))
            .map_or(200, |r| r.status().as_u16())
    }

    #[test]
    fn writes_need_the_token_reads_only_when_protected_health_never() {
        let (writes, reads, open) = (with_token(false), with_token(true), RestAuth::open());
        let trigger = "/api/jobs/x/trigger";
        let cases: [(&RestAuth, Method, &str, Option<&str>, u16); 11] = [
            (&writes, Method::POST, trigger, None, 401),
            (&writes, Method::POST, trigger, Some("Basic dTpw"), 401),
            (&writes, Method::POST, trigger, Some("Bearer nope"), 403),
            (
                &writes,
                Method::POST,
                trigger,
                Some("Bearer t0ken-of-the-tes"),
                403,
            ),
            (
                &writes,
                Method::POST,
                trigger,
                Some("Bearer t0ken-of-the-test"),
                200,
            ),
            (
                &writes,
                Method::DELETE,
                "/api/jobs/x",
                Some("bearer t0ken-of-the-test"),
                200,
            ),
            (&writes, Method::GET, "/api/jobs", None, 200),
            (&reads, Method::GET, "/api/jobs", None, 401),
            (&reads, Method::GET, "/metrics", Some("Bearer x"), 403),
            (&reads, Method::GET, "/health", None, 200),
            (&open, Method::POST, trigger, None, 200),
        ];
        for (auth, method, path, authorization, wanted) in cases {
            assert_eq!(
                status(auth, method.clone(), path, authorization),
                wanted,
                "{method} {path} {authorization:?}"
            );
        }
    }

    #[test]
    fn only_loopback_listens_without_a_token() {
        for listen in [
            "127.0.0.1:8899",
            "127.0.0.2:1",
            "[::1]:8899",
            "localhost:8899",
        ] {
            assert!(is_loopback(listen), "{listen}");
            check_exposure(listen, &RestAuth::open(), false).unwrap();
        }
        for listen in [
            "0.0.0.0:8899",
            "[::]:8899",
            "10.0.0.5:8899",
            "scheduler.example.com:8899",
        ] {
            assert!(!is_loopback(listen), "{listen}");
            let error = check_exposure(listen, &RestAuth::open(), false).unwrap_err();
            assert!(
                error.to_string().starts_with(&format!(
                    "refusing to serve the REST API on {listen} without a token"
                )),
                "{error}"
            );
            check_exposure(listen, &RestAuth::open(), true).unwrap();
            check_exposure(listen, &with_token(false), false).unwrap();
        }
    }
}
