//! Framework authentication on the embedded master, as `mesos-master
//! --authenticate_http_frameworks --http_framework_authenticators=basic --credentials=FILE`.
//!
//! What a real Mesos 1.12 answers (captured in `tests/data/real-mesos/`):
//! - any request on the scheduler endpoint without valid HTTP Basic credentials (no
//!   `Authorization`, a wrong secret, an unknown principal, another scheme, an undecodable
//!   value), whatever its method or body: 401 `401 Unauthorized.` with
//!   `WWW-Authenticate: Basic realm="mesos-master-scheduler"`; authentication comes first;
//! - `SUBSCRIBE` whose `FrameworkInfo.principal` is not the authenticated one: 400
//!   `Failed to validate scheduler::Call: Authenticated principal 'A' does not match principal
//!   'B' set in `FrameworkInfo``; none set is accepted.
//!
//! The credentials file is Mesos' own: JSON `{"credentials": [{"principal": …, "secret": …}]}`,
//! or text, one `principal secret` pair per line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use subtle::ConstantTimeEq;

/// The realm a real master names in its challenge.
pub const REALM: &str = "mesos-master-scheduler";

/// Why a credentials file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the framework credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the framework credentials file {path} is neither Mesos' JSON \
         ({{\"credentials\": [{{\"principal\": …, \"secret\": …}}]}}) nor lines of \
         'principal secret': {reason}"
    )]
    Format { path: PathBuf, reason: String },
}

/// Principals and their secrets.
#[derive(Clone, Default)]
pub struct Credentials {
    secrets: HashMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut principals: Vec<&String> = self.secrets.keys().collect();
        principals.sort();
        f.debug_struct("Credentials")
            .field("principals", &principals)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct JsonFile {
    credentials: Vec<JsonCredential>,
}

#[derive(serde::Deserialize)]
struct JsonCredential {
    principal: String,
    #[serde(default)]
    secret: String,
}

impl Credentials {
    /// Reads a credentials file in either of Mesos' formats.
    pub fn read(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Credentials::parse(&text).map_err(|reason| CredentialsError::Format {
            path: path.to_owned(),
            reason,
        })
    }

    fn parse(text: &str) -> Result<Credentials, String> {
        let mut secrets = HashMap::new();
        if text.trim_start().starts_with('{') {
            let file: JsonFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
            for credential in file.credentials {
                secrets.insert(credential.principal, credential.secret);
            }
        } else {
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let mut words = line.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some(principal), Some(secret), None) => {
                        secrets.insert(principal.to_owned(), secret.to_owned());
                    }
                    _ => {
                        return Err(format!("line {} is not 'principal secret'", number + 1));
                    }
                }
            }
        }
        if secrets.is_empty() {
            return Err("it names no principal".into());
        }
        Ok(Credentials { secrets })
    }

    /// The principal an `Authorization` header authenticates, if it does.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<String> {
        let (scheme, encoded) = authorization?.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (principal, secret) = decoded.split_once(':')?;
        let known = self.secrets.get(principal)?;
        bool::from(known.as_bytes().ct_eq(secret.as_bytes())).then(|| principal.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_and_secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_and_secret)
        )
    }

    #[test]
    fn both_of_mesos_formats_are_read_and_basic_credentials_checked() {
        for text in [
            r#"{"credentials": [{"principal": "shardex", "secret": "s3cret"}]}"#,
            "shardex s3cret\n\nother x\n",
        ] {
            let credentials = Credentials::parse(text).unwrap();
            let ok = basic("shardex:s3cret");
            assert_eq!(
                credentials.authenticate(Some(&ok)).as_deref(),
                Some("shardex")
            );
            for refused in [
                None,
                Some(basic("shardex:wrong")),
                Some(basic("nobody:s3cret")),
                Some("Bearer s3cret".to_owned()),
                Some("Basic !!!".to_owned()),
                Some(basic("shardex")),
            ] {
                assert_eq!(credentials.authenticate(refused.as_deref()), None);
            }
        }
        assert_eq!(
            Credentials::parse("one two three").unwrap_err(),
            "line 1 is not 'principal secret'"
        );
        assert_eq!(
            Credentials::parse(r#"{"credentials": []}"#).unwrap_err(),
            "it names no principal"
        );
    }
}
