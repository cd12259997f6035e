//! Secrets read from files: the REST token and the framework's secret. Never from the config
//! file itself (configs get copied, pasted into tickets and checked in), never logged.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read {what} from {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} file {path} is empty: write the secret into it")]
    Empty { what: &'static str, path: PathBuf },
    #[error(
        "{what} file {path} is readable by every user (mode {mode:o}): `chmod o-rwx {path}` \
         and keep it for the scheduler's user"
    )]
    WorldReadable {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
}

/// A secret: compared and sent, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    pub(crate) fn from_test(secret: &str) -> Secret {
        Secret(secret.to_owned())
    }
}

/// Reads `what` from `path`: the file's text without the surrounding whitespace (a trailing
/// newline, as editors write it). Refused when empty or readable by every user.
pub fn read_secret(what: &'static str, path: &Path) -> Result<Secret, SecretError> {
    let read = |source| SecretError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(SecretError::WorldReadable {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(SecretError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(Secret(secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(format!("secret-{mode:o}-{}", text.len()));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_secret_is_the_file_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let secret =
            read_secret("the REST token", &file(dir.path(), "s3cret-t0ken\n", 0o600)).unwrap();
        assert_eq!(secret.expose(), "s3cret-t0ken");
        assert_eq!(format!("{secret:?}"), "Secret(…)");
    }

    #[test]
    fn empty_missing_and_world_readable_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = file(dir.path(), " \n", 0o600);
        assert_eq!(
            read_secret("the REST token", &empty)
                .unwrap_err()
                .to_string(),
            format!(
                "the REST token file {} is empty: write the secret into it",
                empty.display()
            )
        );
        let open = file(dir.path(), "token", 0o644);
        assert_eq!(
            read_secret("the REST token", &open)
                .unwrap_err()
                .to_string(),
            format!(
                "the REST token file {0} is readable by every user (mode 644): `chmod o-rwx \
                 {0}` and keep it for the scheduler's user",
                open.display()
            )
        );
        let missing = dir.path().join("nope");
        let error = read_secret("the framework secret", &missing)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!(
                "cannot read the framework secret from {}: ",
                missing.display()
            )),
            "{error}"
        );
    }
}
