//! The libprocess SSL settings in the executor's environment (`LIBPROCESS_SSL_*`), read as
//! libprocess reads them, and what they make of the connection to the agent.
//!
//! What Mesos 1.12 does, read in `3rdparty/libprocess/src/openssl.cpp` (`Flags::Flags()`,
//! `reinitialize()`, `verify()`, `configure_socket()`), `3rdparty/stout/include/stout/flags/`
//! (`flags.hpp` `load()`, `parse.hpp`), `src/executor/executor.cpp` and `docs/ssl.md`:
//!
//! - The variables: `ENABLED`, `SUPPORT_DOWNGRADE`, `CERT_FILE`, `KEY_FILE`, `VERIFY_SERVER_CERT`
//!   and its legacy alias `VERIFY_CERT`, `REQUIRE_CLIENT_CERT` and its legacy alias
//!   `REQUIRE_CERT`, `VERIFY_IPADD`, `VERIFICATION_DEPTH` (`docs/ssl.md` calls it `VERIFY_DEPTH`;
//!   the code reads `VERIFICATION_DEPTH`), `CA_DIR`, `CA_FILE`, `CIPHERS`, `ECDH_CURVES`,
//!   `HOSTNAME_VALIDATION_SCHEME`, `ENABLE_SSL_V3`, `ENABLE_TLS_V1_0` … `ENABLE_TLS_V1_3`, each
//!   after the prefix `LIBPROCESS_SSL_`.
//! - A boolean is `true` or `1`, `false` or `0`, and an empty value means true; anything else
//!   makes the process exit naming the flag. Every boolean defaults to false except
//!   `ENABLE_TLS_V1_2`. A malformed value is fatal even with SSL disabled (all flags are loaded
//!   before `enabled` is looked at).
//! - `VERIFY_SERVER_CERT` defaults to **false**: a client then checks nothing about the server's
//!   certificate. `VERIFY_CERT`, `REQUIRE_CLIENT_CERT` and `REQUIRE_CERT` each turn it on.
//! - With `CA_FILE` and/or `CA_DIR` only those CAs are trusted, else the system's defaults.
//! - `HOSTNAME_VALIDATION_SCHEME` is `legacy` (the default: the peer's IP is reverse-resolved and
//!   matched against DNS names, its IP against IP subjectAltNames with `VERIFY_IPADD`) or
//!   `openssl`; anything else is fatal.
//! - `ENABLED` without `CERT_FILE` and `KEY_FILE` is fatal.
//! - The v1 executor library uses `https` for the agent exactly when `ENABLED` is true
//!   (`executor.cpp`, where it builds the agent URL).
//! - Deprecated `SSL_*` names are read too, the `LIBPROCESS_SSL_*` one winning (MESOS-5863).
//!
//! What this executor does with them, and where it chooses otherwise:
//!
//! - The same variables, the same boolean syntax and defaults, and an error naming the variable
//!   for a malformed value (exit status 2, before anything connects), SSL enabled or not.
//! - **Verification follows Mesos' default: off unless `VERIFY_SERVER_CERT` (or an alias, or
//!   `REQUIRE_CLIENT_CERT`) is true**, and a warning says so at start. Chosen deliberately: an
//!   agent hands its executors the SSL settings the operator configured for the cluster
//!   (`--executor_environment_variables`), and a cluster that does not verify has no CA in them
//!   and often certificates without IP subjectAltNames; verifying there would stop every executor
//!   from reaching its agent. The connection is still encrypted; the embedded cluster
//!   (`shardex-local --tls-ca-file`) turns verification on for its executors.
//! - `CERT_FILE` and `KEY_FILE` are optional (this executor needs them only for an agent that
//!   requires client certificates); one without the other is an error.
//! - The agent's certificate is matched against the address of `MESOS_AGENT_ENDPOINT` (an IP
//!   subjectAltName), what the `openssl` scheme with `VERIFY_IPADD` checks. Reverse-DNS matching
//!   (`legacy`) is not done; when verifying with `VERIFY_IPADD` off a warning says so.
//! - Ignored: `CIPHERS`, `ECDH_CURVES`, `VERIFICATION_DEPTH` and the protocol switches (rustls
//!   offers TLS 1.2 and 1.3 with its own cipher suites; the agent picks), and
//!   `SUPPORT_DOWNGRADE` (no fallback to plain HTTP; a warning says so).
//! - `SSL_*` names are not read: they collide with OpenSSL's own `SSL_CERT_FILE` and
//!   `SSL_CERT_DIR` (which name CA bundles, not this process' certificate), the very collision
//!   MESOS-5863 renamed them for. Lowercase suffixes (`LIBPROCESS_SSL_enabled`), which stout
//!   also accepts, are not read either.

use std::path::PathBuf;

use shardex_mesos::tls::{ClientCertificate, SettingNames, TlsConfig};

use super::config::ConfigError;

const PREFIX: &str = "LIBPROCESS_SSL_";

pub const ENABLED: &str = "LIBPROCESS_SSL_ENABLED";
pub const SUPPORT_DOWNGRADE: &str = "LIBPROCESS_SSL_SUPPORT_DOWNGRADE";
pub const CERT_FILE: &str = "LIBPROCESS_SSL_CERT_FILE";
pub const KEY_FILE: &str = "LIBPROCESS_SSL_KEY_FILE";
pub const VERIFY_CERT: &str = "LIBPROCESS_SSL_VERIFY_CERT";
pub const VERIFY_SERVER_CERT: &str = "LIBPROCESS_SSL_VERIFY_SERVER_CERT";
pub const REQUIRE_CERT: &str = "LIBPROCESS_SSL_REQUIRE_CERT";
pub const REQUIRE_CLIENT_CERT: &str = "LIBPROCESS_SSL_REQUIRE_CLIENT_CERT";
pub const VERIFY_IPADD: &str = "LIBPROCESS_SSL_VERIFY_IPADD";
pub const VERIFICATION_DEPTH: &str = "LIBPROCESS_SSL_VERIFICATION_DEPTH";
pub const CA_DIR: &str = "LIBPROCESS_SSL_CA_DIR";
pub const CA_FILE: &str = "LIBPROCESS_SSL_CA_FILE";
pub const CIPHERS: &str = "LIBPROCESS_SSL_CIPHERS";
pub const ECDH_CURVES: &str = "LIBPROCESS_SSL_ECDH_CURVES";
pub const HOSTNAME_VALIDATION_SCHEME: &str = "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME";
pub const ENABLE_SSL_V3: &str = "LIBPROCESS_SSL_ENABLE_SSL_V3";
pub const ENABLE_TLS_V1_0: &str = "LIBPROCESS_SSL_ENABLE_TLS_V1_0";
pub const ENABLE_TLS_V1_1: &str = "LIBPROCESS_SSL_ENABLE_TLS_V1_1";
pub const ENABLE_TLS_V1_2: &str = "LIBPROCESS_SSL_ENABLE_TLS_V1_2";
pub const ENABLE_TLS_V1_3: &str = "LIBPROCESS_SSL_ENABLE_TLS_V1_3";

/// Every variable libprocess 1.12 reads (with the prefix).
pub const ALL: &[&str] = &[
    ENABLED,
    SUPPORT_DOWNGRADE,
    CERT_FILE,
    KEY_FILE,
    VERIFY_CERT,
    VERIFY_SERVER_CERT,
    REQUIRE_CERT,
    REQUIRE_CLIENT_CERT,
    VERIFY_IPADD,
    VERIFICATION_DEPTH,
    CA_DIR,
    CA_FILE,
    CIPHERS,
    ECDH_CURVES,
    HOSTNAME_VALIDATION_SCHEME,
    ENABLE_SSL_V3,
    ENABLE_TLS_V1_0,
    ENABLE_TLS_V1_1,
    ENABLE_TLS_V1_2,
    ENABLE_TLS_V1_3,
];

/// The names messages give the settings.
const NAMES: SettingNames = SettingNames {
    ca_file: CA_FILE,
    ca_dir: CA_DIR,
    verify: VERIFY_SERVER_CERT,
    cert_file: CERT_FILE,
    key_file: KEY_FILE,
};

/// What the environment says about TLS to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslEnv {
    /// `LIBPROCESS_SSL_ENABLED`: connect to the agent with `https`, configured so.
    pub tls: Option<TlsConfig>,
    /// Said once at start (the setting is legal but weakens or differs from Mesos).
    pub warnings: Vec<String>,
}

fn invalid(name: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Reads the `LIBPROCESS_SSL_*` variables from `lookup`.
pub fn read(lookup: &impl Fn(&str) -> Option<String>) -> Result<SslEnv, ConfigError> {
    debug_assert!(ALL.iter().all(|name| name.starts_with(PREFIX)));
    let flag = |name: &'static str, default: bool| match lookup(name) {
        None => Ok(default),
        Some(value) => match value.as_str() {
            "true" | "1" | "" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(invalid(
                name,
                &value,
                "expected a boolean: true or 1, false or 0 (as libprocess reads it)",
            )),
        },
    };
    let path = |name: &'static str| match lookup(name) {
        None => Ok(None),
        Some(value) if value.is_empty() => Err(invalid(name, &value, "is empty; give a path")),
        Some(value) => Ok(Some(PathBuf::from(value))),
    };

    let enabled = flag(ENABLED, false)?;
    let support_downgrade = flag(SUPPORT_DOWNGRADE, false)?;
    let cert_file = path(CERT_FILE)?;
    let key_file = path(KEY_FILE)?;
    let verify_cert = flag(VERIFY_CERT, false)?;
    let verify_server_cert = flag(VERIFY_SERVER_CERT, false)?;
    let require_cert = flag(REQUIRE_CERT, false)?;
    let require_client_cert = flag(REQUIRE_CLIENT_CERT, false)?;
    let verify_ipadd = flag(VERIFY_IPADD, false)?;
    if let Some(value) = lookup(VERIFICATION_DEPTH) {
        value
            .parse::<i32>()
            .map_err(|_| invalid(VERIFICATION_DEPTH, &value, "expected a whole number"))?;
    }
    let ca_dir = path(CA_DIR)?;
    let ca_file = path(CA_FILE)?;
    let scheme = lookup(HOSTNAME_VALIDATION_SCHEME).unwrap_or_else(|| "legacy".to_owned());
    if scheme != "legacy" && scheme != "openssl" {
        return Err(invalid(
            HOSTNAME_VALIDATION_SCHEME,
            &scheme,
            "expected 'legacy' or 'openssl'",
        ));
    }
    for name in [
        ENABLE_SSL_V3,
        ENABLE_TLS_V1_0,
        ENABLE_TLS_V1_1,
        ENABLE_TLS_V1_3,
    ] {
        flag(name, false)?;
    }
    flag(ENABLE_TLS_V1_2, true)?;

    if !enabled {
        return Ok(SslEnv {
            tls: None,
            warnings: Vec::new(),
        });
    }
    let client_certificate = match (cert_file, key_file) {
        (Some(cert_file), Some(key_file)) => Some(ClientCertificate {
            cert_file,
            key_file,
        }),
        (None, None) => None,
        (Some(cert), None) => {
            return Err(invalid(
                CERT_FILE,
                &cert.display().to_string(),
                format!("{KEY_FILE} is not set; a certificate needs its private key"),
            ));
        }
        (None, Some(key)) => {
            return Err(invalid(
                KEY_FILE,
                &key.display().to_string(),
                format!("{CERT_FILE} is not set; a private key needs its certificate"),
            ));
        }
    };
    let verify = verify_server_cert || verify_cert || require_client_cert || require_cert;
    let mut warnings = Vec::new();
    for (legacy, name) in [(verify_cert, VERIFY_CERT), (require_cert, REQUIRE_CERT)] {
        if legacy {
            warnings.push(format!(
                "{name} is deprecated (libprocess renamed it); it is honoured"
            ));
        }
    }
    if !verify {
        warnings.push(format!(
            "{VERIFY_SERVER_CERT} is not true, so the agent's TLS certificate is NOT verified \
             (Mesos' default): the connection is encrypted but anyone on the path could pose as \
             the agent. Set {VERIFY_SERVER_CERT}=true and {CA_FILE} (or {CA_DIR}) in the \
             executor's environment to verify it"
        ));
    } else if !verify_ipadd {
        warnings.push(format!(
            "the agent's certificate must name its address in MESOS_AGENT_ENDPOINT as an IP \
             subjectAltName: this executor checks it as libprocess' 'openssl' scheme with \
             {VERIFY_IPADD}=true does, not by reverse DNS ('legacy')"
        ));
    }
    if support_downgrade {
        warnings.push(format!(
            "{SUPPORT_DOWNGRADE} is set, but this executor never falls back to plain HTTP: it \
             reaches the agent over TLS only"
        ));
    }
    Ok(SslEnv {
        tls: Some(TlsConfig {
            ca_file: if verify { ca_file } else { None },
            ca_dir: if verify { ca_dir } else { None },
            verify,
            client_certificate,
            names: NAMES,
        }),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read_env(vars: &[(&str, &str)]) -> Result<SslEnv, ConfigError> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        read(&|name: &str| env.get(name).cloned())
    }

    #[test]
    fn disabled_by_default_and_when_false() {
        assert_eq!(read_env(&[]).unwrap().tls, None);
        for value in ["false", "0"] {
            assert_eq!(read_env(&[(ENABLED, value)]).unwrap().tls, None, "{value}");
        }
        // The other settings do not matter while SSL is off.
        assert_eq!(
            read_env(&[(CA_FILE, "/ca.pem"), (VERIFY_SERVER_CERT, "true")])
                .unwrap()
                .tls,
            None
        );
    }

    #[test]
    fn true_1_and_empty_enable_and_mesos_default_does_not_verify() {
        for value in ["true", "1", ""] {
            let env = read_env(&[(ENABLED, value)]).unwrap();
            let tls = env.tls.unwrap();
            assert!(!tls.verify, "{value}");
            assert_eq!(tls.client_certificate, None);
            assert_eq!(env.warnings.len(), 1);
            assert!(
                env.warnings[0].starts_with(
                    "LIBPROCESS_SSL_VERIFY_SERVER_CERT is not true, so the agent's TLS \
                     certificate is NOT verified (Mesos' default)"
                ),
                "{}",
                env.warnings[0]
            );
        }
    }

    #[test]
    fn each_verifying_flag_turns_verification_on_with_the_cas() {
        for name in [
            VERIFY_SERVER_CERT,
            VERIFY_CERT,
            REQUIRE_CLIENT_CERT,
            REQUIRE_CERT,
        ] {
            let env = read_env(&[
                (ENABLED, "true"),
                (name, "1"),
                (CA_FILE, "/etc/ca.pem"),
                (CA_DIR, "/etc/cas"),
                (VERIFY_IPADD, "true"),
            ])
            .unwrap();
            let tls = env.tls.unwrap();
            assert!(tls.verify, "{name}");
            assert_eq!(tls.ca_file, Some(PathBuf::from("/etc/ca.pem")));
            assert_eq!(tls.ca_dir, Some(PathBuf::from("/etc/cas")));
            assert_eq!(tls.names.ca_file, CA_FILE);
            let deprecated = name == VERIFY_CERT || name == REQUIRE_CERT;
            assert_eq!(env.warnings.len(), usize::from(deprecated), "{name}");
        }
        // Verifying by IP without VERIFY_IPADD: said once.
        let env = read_env(&[(ENABLED, "true"), (VERIFY_SERVER_CERT, "true")]).unwrap();
        assert_eq!(env.warnings.len(), 1);
        assert!(
            env.warnings[0].contains("IP subjectAltName"),
            "{:?}",
            env.warnings
        );
        // Explicitly off stays off.
        let env = read_env(&[(ENABLED, "true"), (VERIFY_SERVER_CERT, "false")]).unwrap();
        assert!(!env.tls.unwrap().verify);
    }

    #[test]
    fn certificate_and_key_go_together() {
        let env = read_env(&[
            (ENABLED, "true"),
            (CERT_FILE, "/etc/agent.pem"),
            (KEY_FILE, "/etc/agent-key.pem"),
        ])
        .unwrap();
        assert_eq!(
            env.tls.unwrap().client_certificate,
            Some(ClientCertificate {
                cert_file: "/etc/agent.pem".into(),
                key_file: "/etc/agent-key.pem".into(),
            })
        );
        assert_eq!(
            read_env(&[(ENABLED, "true"), (CERT_FILE, "/etc/agent.pem")])
                .unwrap_err()
                .to_string(),
            "LIBPROCESS_SSL_CERT_FILE=\"/etc/agent.pem\" is invalid: LIBPROCESS_SSL_KEY_FILE is \
             not set; a certificate needs its private key"
        );
        assert_eq!(
            read_env(&[(ENABLED, "true"), (KEY_FILE, "/k.pem")])
                .unwrap_err()
                .to_string(),
            "LIBPROCESS_SSL_KEY_FILE=\"/k.pem\" is invalid: LIBPROCESS_SSL_CERT_FILE is not \
             set; a private key needs its certificate"
        );
    }

    #[test]
    fn every_malformed_variable_is_named_even_with_ssl_off() {
        let booleans = ALL.iter().copied().filter(|name| {
            ![
                CERT_FILE,
                KEY_FILE,
                VERIFICATION_DEPTH,
                CA_DIR,
                CA_FILE,
                CIPHERS,
                ECDH_CURVES,
                HOSTNAME_VALIDATION_SCHEME,
            ]
            .contains(name)
        });
        let mut checked = 0;
        for name in booleans {
            for enabled in ["true", "false"] {
                let vars = [(ENABLED, enabled), (name, "yes")];
                let error = read_env(&vars).unwrap_err();
                assert_eq!(
                    error.to_string(),
                    format!(
                        "{name}=\"yes\" is invalid: expected a boolean: true or 1, false or 0 \
                         (as libprocess reads it)"
                    )
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 12);
        assert_eq!(
            read_env(&[(VERIFICATION_DEPTH, "four")])
                .unwrap_err()
                .to_string(),
            "LIBPROCESS_SSL_VERIFICATION_DEPTH=\"four\" is invalid: expected a whole number"
        );
        assert_eq!(
            read_env(&[(HOSTNAME_VALIDATION_SCHEME, "dns")])
                .unwrap_err()
                .to_string(),
            "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME=\"dns\" is invalid: expected 'legacy' or \
             'openssl'"
        );
        for name in [CERT_FILE, KEY_FILE, CA_FILE, CA_DIR] {
            assert_eq!(
                read_env(&[(name, "")]).unwrap_err().to_string(),
                format!("{name}=\"\" is invalid: is empty; give a path")
            );
        }
    }

    #[test]
    fn ignored_settings_are_accepted_and_downgrade_is_refused_aloud() {
        let env = read_env(&[
            (ENABLED, "1"),
            (VERIFY_SERVER_CERT, "1"),
            (VERIFY_IPADD, "1"),
            (CIPHERS, "AES128-SHA"),
            (ECDH_CURVES, "auto"),
            (VERIFICATION_DEPTH, "4"),
            (HOSTNAME_VALIDATION_SCHEME, "openssl"),
            (ENABLE_TLS_V1_3, "true"),
            (ENABLE_TLS_V1_2, "false"),
            (SUPPORT_DOWNGRADE, "true"),
        ])
        .unwrap();
        assert!(env.tls.unwrap().verify);
        assert_eq!(env.warnings.len(), 1);
        assert!(env.warnings[0].starts_with("LIBPROCESS_SSL_SUPPORT_DOWNGRADE is set"));
    }
}
