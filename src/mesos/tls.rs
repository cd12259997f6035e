//! TLS for `https://` masters and agents: which servers a client trusts, the client certificate
//! it may present, and what a failed handshake means in words an operator can act on.
//!
//! Trust follows libprocess (`3rdparty/libprocess/src/openssl.cpp`, `reinitialize()`): when a CA
//! file or directory is configured, exactly those CAs are trusted (`SSL_CTX_load_verify_locations`);
//! otherwise the system's trust store is (`SSL_CTX_set_default_verify_paths`). A CA directory is
//! read whole: every file in it with `-----BEGIN CERTIFICATE-----` blocks counts (OpenSSL's
//! `c_rehash` layout works, and so does a plain folder of `.pem` files).
//!
//! The server's certificate must name the host of the URL: a DNS subjectAltName for a host name,
//! an IP subjectAltName for an address (what libprocess' `openssl` hostname validation scheme
//! with `LIBPROCESS_SSL_VERIFY_IPADD` checks; its `legacy` reverse-DNS matching is not offered).
//!
//! Crypto is rustls with the `ring` provider, configured per client: nothing depends on a
//! process-wide default provider. Clients that are not the Mesos [`Client`](crate::Client)
//! (the fetcher, tools, tests) get theirs from [`http_client_builder`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The names under which an operator sets each TLS setting, so that messages can say which one to
/// change (`mesos.tls.ca_file` in the scheduler's file, `LIBPROCESS_SSL_CA_FILE` for the executor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingNames {
    pub ca_file: &'static str,
    pub ca_dir: &'static str,
    pub verify: &'static str,
    pub cert_file: &'static str,
    pub key_file: &'static str,
}

impl Default for SettingNames {
    fn default() -> Self {
        SettingNames {
            ca_file: "ca_file",
            ca_dir: "ca_dir",
            verify: "verify",
            cert_file: "cert_file",
            key_file: "key_file",
        }
    }
}

/// A certificate (chain) and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// How a client treats `https://` servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// A PEM bundle of the CAs to trust (instead of the system's).
    pub ca_file: Option<PathBuf>,
    /// A directory of PEM files of the CAs to trust (instead of the system's).
    pub ca_dir: Option<PathBuf>,
    /// Verify the server's certificate. Turning it off is logged as a warning when a client
    /// uses it: anyone on the path can then impersonate the server.
    pub verify: bool,
    /// Presented when the server asks for a client certificate (mutual TLS).
    pub client_certificate: Option<ClientCertificate>,
    pub names: SettingNames,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_file: None,
            ca_dir: None,
            verify: true,
            client_certificate: None,
            names: SettingNames::default(),
        }
    }
}

impl TlsConfig {
    /// Whom the client trusts, in words: the configured files, or the system's store.
    pub fn trust(&self) -> String {
        let mut sources: Vec<String> = Vec::new();
        if let Some(file) = &self.ca_file {
            sources.push(format!("{} {}", self.names.ca_file, file.display()));
        }
        if let Some(dir) = &self.ca_dir {
            sources.push(format!("{} {}", self.names.ca_dir, dir.display()));
        }
        if sources.is_empty() {
            "the system's trusted CAs".to_owned()
        } else {
            format!("the CAs of {}", sources.join(" and "))
        }
    }
}

/// TLS material that cannot be used. Each message names the setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {setting} {}: {source}; point {setting} at a readable PEM file", path.display())]
    Read {
        setting: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{setting} {} is not valid PEM ({source}); it must hold {expected} blocks",
        path.display()
    )]
    Pem {
        setting: &'static str,
        path: PathBuf,
        expected: &'static str,
        #[source]
        source: pem::Error,
    },
    #[error("{setting} {} holds no {expected} block", path.display())]
    Missing {
        setting: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{setting} {}: a certificate in it cannot be a trust anchor: {reason}", path.display())]
    BadCa {
        setting: &'static str,
        path: PathBuf,
        reason: Box<rustls::Error>,
    },
    #[error(
        "the certificate {} ({cert_setting}) and key {} ({key_setting}) cannot be used together: \
         {reason}; the key must be the one the certificate was issued for",
        cert_file.display(),
        key_file.display()
    )]
    Identity {
        cert_setting: &'static str,
        key_setting: &'static str,
        cert_file: PathBuf,
        key_file: PathBuf,
        reason: Box<rustls::Error>,
    },
    #[error(
        "no CA to verify servers with ({reason}): set {ca_file} or {ca_dir}, or install the \
         system's CA certificates"
    )]
    SystemTrust {
        ca_file: &'static str,
        ca_dir: &'static str,
        reason: Box<rustls::Error>,
    },
    #[error("the TLS settings cannot be combined: {0}")]
    Protocol(Box<rustls::Error>),
}

/// The crypto provider every Shardex TLS connection uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

const CERTIFICATE: &str = "`-----BEGIN CERTIFICATE-----`";
const PRIVATE_KEY: &str = "`-----BEGIN PRIVATE KEY-----` (or RSA/EC PRIVATE KEY)";

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        setting,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of the PEM file at `path`, in order (at least one).
pub fn load_certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = certificates_in(setting, path, &read(setting, path)?)?;
    if certificates.is_empty() {
        return Err(TlsError::Missing {
            setting,
            path: path.to_owned(),
            expected: CERTIFICATE,
        });
    }
    Ok(certificates)
}

fn certificates_in(
    setting: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            setting,
            path: path.to_owned(),
            expected: CERTIFICATE,
            source,
        })
}

/// The first private key of the PEM file at `path` (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn load_private_key(
    setting: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(setting, path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::Missing {
            setting,
            path: path.to_owned(),
            expected: PRIVATE_KEY,
        }),
        Err(source) => Err(TlsError::Pem {
            setting,
            path: path.to_owned(),
            expected: PRIVATE_KEY,
            source,
        }),
    }
}

/// The CAs of a bundle file and/or a directory of PEM files. Files of the directory without a
/// certificate (a README, CRLs) are skipped; a directory without any certificate is an error.
pub fn trust_anchors(
    ca_file: Option<&Path>,
    ca_dir: Option<&Path>,
    names: &SettingNames,
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let mut add = |setting: &'static str, path: &Path, certificates| {
        for certificate in certificates {
            roots.add(certificate).map_err(|reason| TlsError::BadCa {
                setting,
                path: path.to_owned(),
                reason: Box::new(reason),
            })?;
        }
        Ok::<(), TlsError>(())
    };
    if let Some(file) = ca_file {
        add(names.ca_file, file, load_certificates(names.ca_file, file)?)?;
    }
    if let Some(dir) = ca_dir {
        let setting = names.ca_dir;
        let unreadable = |source| TlsError::Read {
            setting,
            path: dir.to_owned(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(unreadable)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(unreadable)?;
        files.sort();
        let mut found = 0;
        for file in files.iter().filter(|f| f.is_file()) {
            let certificates = certificates_in(setting, file, &read(setting, file)?)?;
            found += certificates.len();
            add(setting, file, certificates)?;
        }
        if found == 0 {
            return Err(TlsError::Missing {
                setting,
                path: dir.to_owned(),
                expected: CERTIFICATE,
            });
        }
    }
    Ok(roots)
}

/// The rustls configuration of a client with `config`'s trust and certificate.
pub fn client_config(config: &TlsConfig) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Protocol(Box::new(e)))?;
    let verifier: Arc<dyn ServerCertVerifier> = if !config.verify {
        tracing::warn!(
            setting = config.names.verify,
            "TLS server certificates are NOT verified ({} is off): anyone on the network path can \
             impersonate the master or agent and read the calls, credentials included",
            config.names.verify
        );
        Arc::new(AnyServerCertificate(provider.clone()))
    } else if config.ca_file.is_some() || config.ca_dir.is_some() {
        let roots = trust_anchors(
            config.ca_file.as_deref(),
            config.ca_dir.as_deref(),
            &config.names,
        )?;
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Protocol(Box::new(rustls::Error::General(e.to_string()))))?
    } else {
        Arc::new(
            rustls_platform_verifier::Verifier::new(provider).map_err(|reason| {
                TlsError::SystemTrust {
                    ca_file: config.names.ca_file,
                    ca_dir: config.names.ca_dir,
                    reason: Box::new(reason),
                }
            })?,
        )
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match &config.client_certificate {
        None => Ok(builder.with_no_client_auth()),
        Some(ClientCertificate {
            cert_file,
            key_file,
        }) => {
            let chain = load_certificates(config.names.cert_file, cert_file)?;
            let key = load_private_key(config.names.key_file, key_file)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|reason| TlsError::Identity {
                    cert_setting: config.names.cert_file,
                    key_setting: config.names.key_file,
                    cert_file: cert_file.clone(),
                    key_file: key_file.clone(),
                    reason: Box::new(reason),
                })
        }
    }
}

/// A configuration for clients that only speak plain `http://`: it trusts nobody, so an
/// `https://` URL reaching it by mistake fails instead of connecting unverified.
pub fn no_trust_config() -> Result<rustls::ClientConfig, TlsError> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Protocol(Box::new(e)))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoServerCertificate))
        .with_no_client_auth())
}

/// A reqwest builder for clients other than the Mesos client (the agent's fetcher, tools,
/// tests): `https://` trusts the system's CAs (nobody, when the system has none). Build every
/// reqwest client from this: reqwest has no TLS provider of its own in this build, and one
/// built without a configuration panics.
#[allow(clippy::disallowed_methods)] // The one place a bare builder is configured.
pub fn http_client_builder() -> Result<reqwest::ClientBuilder, TlsError> {
    let tls = match client_config(&TlsConfig::default()) {
        Ok(tls) => tls,
        Err(error) => {
            tracing::debug!(%error, "no system trust store; https:// will trust nobody");
            no_trust_config()?
        }
    };
    Ok(reqwest::ClientBuilder::new().tls_backend_preconfigured(tls))
}

/// Accepts any server certificate but still checks that the server holds its key (the
/// handshake signatures): `verify = false`.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Refuses every server: [`no_trust_config`].
#[derive(Debug)]
struct NoServerCertificate;

impl ServerCertVerifier for NoServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("no server is trusted".into()))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("no server is trusted".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS error somewhere in `error`'s chain. rustls' errors travel inside `io::Error`s (an
/// `io::Error` of the connector around the `io::Error` of tokio-rustls), and an `io::Error`'s
/// `source()` skips what it wraps: look inside each one instead.
pub fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// What a failed TLS handshake means and what to do about it, for a client configured with
/// `config`.
pub fn explain(error: &rustls::Error, config: &TlsConfig) -> String {
    use rustls::{AlertDescription, CertificateError, Error, InvalidMessage};
    let names = &config.names;
    match error {
        Error::InvalidCertificate(problem) => match problem {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the server's certificate is not signed by a trusted CA ({error}); this client \
                 trusts {}: give the CA that signed the server's certificate in {} or {}",
                config.trust(),
                names.ca_file,
                names.ca_dir
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the server's certificate is not issued for the address connected to \
                     ({error}); connect with a name the certificate lists, or reissue it with \
                     that name (an IP address needs an IP subjectAltName)"
                )
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => format!(
                "the server's certificate is outside its validity period ({error}); renew it \
                 (or check this machine's clock)"
            ),
            _ => format!("the server's certificate was refused: {error}"),
        },
        Error::InvalidMessage(InvalidMessage::InvalidContentType)
        | Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion) => format!(
            "the server did not answer in TLS ({error}); it seems to serve plain HTTP: use an \
             http:// URL for it"
        ),
        Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown,
        ) => {
            let presented = match &config.client_certificate {
                Some(c) => format!(
                    "this client presented {} ({})",
                    c.cert_file.display(),
                    names.cert_file
                ),
                None => format!(
                    "this client has no certificate ({} and {} are unset)",
                    names.cert_file, names.key_file
                ),
            };
            format!(
                "the server refused this client's certificate ({error}); {presented}: give a \
                 certificate signed by a CA the server trusts"
            )
        }
        _ => format!("{error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> SettingNames {
        SettingNames {
            ca_file: "mesos.tls.ca_file",
            ..SettingNames::default()
        }
    }

    #[test]
    fn missing_and_malformed_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent.pem");
        let error = trust_anchors(Some(&absent), None, &names()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot read mesos.tls.ca_file {}: No such file or directory",
                absent.display()
            )) && text.ends_with("point mesos.tls.ca_file at a readable PEM file"),
            "{text}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert_eq!(
            trust_anchors(Some(&empty), None, &names())
                .unwrap_err()
                .to_string(),
            format!(
                "mesos.tls.ca_file {} holds no `-----BEGIN CERTIFICATE-----` block",
                empty.display()
            )
        );

        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let text = trust_anchors(Some(&broken), None, &names())
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with(&format!(
                "mesos.tls.ca_file {} is not valid PEM (",
                broken.display()
            )) && text.ends_with("it must hold `-----BEGIN CERTIFICATE-----` blocks"),
            "{text}"
        );

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let text = trust_anchors(Some(&garbage), None, &names())
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with(&format!(
                "mesos.tls.ca_file {}: a certificate in it cannot be a trust anchor: ",
                garbage.display()
            )),
            "{text}"
        );

        let no_key = load_private_key("key_file", &empty)
            .unwrap_err()
            .to_string();
        assert_eq!(
            no_key,
            format!(
                "key_file {} holds no `-----BEGIN PRIVATE KEY-----` (or RSA/EC PRIVATE KEY) block",
                empty.display()
            )
        );
    }

    #[test]
    fn a_ca_directory_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("README"), "CAs go here\n").unwrap();
        assert_eq!(
            trust_anchors(None, Some(dir.path()), &SettingNames::default())
                .unwrap_err()
                .to_string(),
            format!(
                "ca_dir {} holds no `-----BEGIN CERTIFICATE-----` block",
                dir.path().display()
            )
        );
    }

    #[test]
    fn trust_is_described() {
        let mut config = TlsConfig::default();
        assert_eq!(config.trust(), "the system's trusted CAs");
        config.ca_file = Some("/etc/ca.pem".into());
        config.ca_dir = Some("/etc/cas".into());
        assert_eq!(
            config.trust(),
            "the CAs of ca_file /etc/ca.pem and ca_dir /etc/cas"
        );
    }

    #[test]
    fn handshake_failures_say_what_to_do() {
        let config = TlsConfig {
            ca_file: Some("/etc/ca.pem".into()),
            names: names(),
            ..TlsConfig::default()
        };
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert_eq!(
            explain(&unknown, &config),
            "the server's certificate is not signed by a trusted CA (invalid peer certificate: \
             UnknownIssuer); this client trusts the CAs of mesos.tls.ca_file /etc/ca.pem: give \
             the CA that signed the server's certificate in mesos.tls.ca_file or ca_dir"
        );
        let plain = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(explain(&plain, &config).contains("use an http:// URL"));
        let refused = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert!(
            explain(&refused, &config)
                .contains("this client has no certificate (cert_file and key_file are unset)")
        );
        // Found inside the io::Errors that carry it (as reqwest hands it over).
        let wrapped = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            unknown.clone(),
        ));
        assert_eq!(rustls_error(&wrapped), Some(&unknown));
    }
}
