//! Serving both APIs over TLS (`https://`), as a master and an agent run with
//! `LIBPROCESS_SSL_ENABLED` do, and the libprocess SSL environment the agent then hands its
//! executors.
//!
//! One certificate serves the master and the agent (they are one process here). With
//! `require_client_cert` every client must present a certificate signed by `ca_file`
//! (`LIBPROCESS_SSL_REQUIRE_CLIENT_CERT`); client host names are not checked, as libprocess'
//! `openssl` validation scheme does not check them either (`openssl.cpp`, `configure_socket`).
//!
//! Executors: a real agent passes no SSL setting to its executors by itself (`executorEnvironment()`
//! in `src/slave/slave.cpp` has none); Mesos' `docs/ssl.md` has operators give executors "the SSL
//! environment variables and the files referred to by those variables" through the agent's
//! `--executor_environment_variables`. The embedded agent does that for them: every executor gets
//! `LIBPROCESS_SSL_ENABLED=true` (so a v1 executor library connects with `https`, as
//! `src/executor/executor.cpp` decides from it), the certificate and key (libprocess refuses to
//! start with SSL enabled and either missing), and with a `ca_file` that file and
//! `LIBPROCESS_SSL_VERIFY_SERVER_CERT=true`, so executors verify the agent they talk to.
//! `CommandInfo.environment` still wins, as on a real agent.
//!
//! A plain HTTP request on a TLS port is answered `400` with a body saying to use `https://`
//! (libprocess would close the connection without a word, leaving the client to guess).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use shardex_mesos::tls::{self, SettingNames, TlsError};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS handshake record (`ContentType::handshake`).
const TLS_HANDSHAKE: u8 = 0x16;

/// The flags of `shardex-local` these settings come from, for messages. (There is no CA
/// directory flag and nothing to verify as a client; those two names are never shown.)
const NAMES: SettingNames = SettingNames {
    ca_file: "--tls-ca-file",
    ca_dir: "--tls-ca-file",
    verify: "--tls-require-client-cert",
    cert_file: "--tls-cert-file",
    key_file: "--tls-key-file",
};

/// Serve both APIs over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTls {
    /// The certificate chain (PEM) both endpoints present; it must name the address they bind
    /// (an IP subjectAltName for an IP address).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
    /// The CA bundle (PEM) executors verify the agent with, and client certificates are
    /// checked against.
    pub ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate signed by `ca_file`.
    pub require_client_cert: bool,
}

/// The TLS side of a listener.
#[derive(Clone)]
pub(crate) struct ServerTls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

/// A connection as accepted: TLS, or a client that spoke plain HTTP to the TLS port.
pub(crate) enum Accepted {
    Tls(Box<TlsStream<TcpStream>>),
    PlainOnTlsPort(TcpStream),
}

impl ServerTls {
    pub fn new(settings: &LocalTls) -> Result<ServerTls, TlsError> {
        let provider = tls::provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Protocol(Box::new(e)))?;
        let builder = match (&settings.ca_file, settings.require_client_cert) {
            (Some(ca_file), true) => {
                let roots = tls::trust_anchors(Some(ca_file), None, &NAMES)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| {
                            TlsError::Protocol(Box::new(rustls::Error::General(e.to_string())))
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let chain = tls::load_certificates(NAMES.cert_file, &settings.cert_file)?;
        let key = tls::load_private_key(NAMES.key_file, &settings.key_file)?;
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|reason| TlsError::Identity {
                cert_setting: NAMES.cert_file,
                key_setting: NAMES.key_file,
                cert_file: settings.cert_file.clone(),
                key_file: settings.key_file.clone(),
                reason: Box::new(reason),
            })?;
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Completes the handshake of a new connection, or recognises a plain HTTP client.
    pub async fn accept(&self, socket: TcpStream) -> std::io::Result<Accepted> {
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, socket.peek(&mut first)).await;
        match peeked {
            Ok(Ok(1)) if first[0] != TLS_HANDSHAKE => return Ok(Accepted::PlainOnTlsPort(socket)),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        }
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(socket)).await {
            Ok(Ok(stream)) => Ok(Accepted::Tls(Box::new(stream))),
            Ok(Err(error)) => {
                tracing::warn!(%error, "TLS handshake with a client failed");
                Err(error)
            }
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

impl LocalTls {
    /// The libprocess SSL environment executors get (see the module's documentation). Paths
    /// are made absolute: executors run in their sandbox.
    pub fn executor_environment(&self) -> Vec<(String, String)> {
        let path = |p: &Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_owned())
                .display()
                .to_string()
        };
        let mut vars = vec![
            ("LIBPROCESS_SSL_ENABLED".to_owned(), "true".to_owned()),
            ("LIBPROCESS_SSL_CERT_FILE".to_owned(), path(&self.cert_file)),
            ("LIBPROCESS_SSL_KEY_FILE".to_owned(), path(&self.key_file)),
        ];
        if let Some(ca_file) = &self.ca_file {
            vars.push(("LIBPROCESS_SSL_CA_FILE".to_owned(), path(ca_file)));
            vars.push((
                "LIBPROCESS_SSL_VERIFY_SERVER_CERT".to_owned(),
                "true".to_owned(),
            ));
        }
        if self.require_client_cert {
            vars.push((
                "LIBPROCESS_SSL_REQUIRE_CLIENT_CERT".to_owned(),
                "true".to_owned(),
            ));
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executors_get_the_agents_libprocess_ssl_environment() {
        let settings = LocalTls {
            cert_file: "/etc/mesos/agent.pem".into(),
            key_file: "/etc/mesos/agent-key.pem".into(),
            ca_file: None,
            require_client_cert: false,
        };
        assert_eq!(
            settings.executor_environment(),
            [
                ("LIBPROCESS_SSL_ENABLED", "true"),
                ("LIBPROCESS_SSL_CERT_FILE", "/etc/mesos/agent.pem"),
                ("LIBPROCESS_SSL_KEY_FILE", "/etc/mesos/agent-key.pem"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let verifying = LocalTls {
            ca_file: Some("/etc/mesos/ca.pem".into()),
            require_client_cert: true,
            ..settings
        };
        let env = verifying.executor_environment();
        assert_eq!(
            env[3..],
            [
                ("LIBPROCESS_SSL_CA_FILE", "/etc/mesos/ca.pem"),
                ("LIBPROCESS_SSL_VERIFY_SERVER_CERT", "true"),
                ("LIBPROCESS_SSL_REQUIRE_CLIENT_CERT", "true"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn unusable_files_are_named_by_flag() {
        let error = ServerTls::new(&LocalTls {
            cert_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
            ca_file: None,
            require_client_cert: false,
        })
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("cannot read --tls-cert-file /nonexistent/cert.pem: "),
            "{error}"
        );
    }
}
