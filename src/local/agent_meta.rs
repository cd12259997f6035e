//! The agent's checkpointed id, where a real agent keeps it: `<work_dir>/meta/slaves/latest`
//! is a symlink to `meta/slaves/<agent id>` (Mesos' `paths::getLatestSlavePath`,
//! `src/slave/paths.cpp`). An agent started on a work dir that has one recovers that id.

use std::io;
use std::path::{Path, PathBuf};

fn slaves_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("meta").join("slaves")
}

/// The id checkpointed in `work_dir`, if any.
pub fn recover_id(work_dir: &Path) -> Option<String> {
    let target = std::fs::read_link(slaves_dir(work_dir).join("latest")).ok()?;
    let id = target.file_name()?.to_str()?.to_owned();
    // Only a plain name can be an agent id (no separators, not empty).
    (!id.is_empty() && !id.contains('/') && slaves_dir(work_dir).join(&id).is_dir()).then_some(id)
}

/// Checkpoints `id` as the agent's in `work_dir`.
pub fn checkpoint_id(work_dir: &Path, id: &str) -> io::Result<()> {
    let dir = slaves_dir(work_dir);
    std::fs::create_dir_all(dir.join(id))?;
    let latest = dir.join("latest");
    match std::fs::remove_file(&latest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(id, latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_checkpointed_is_recovered_and_nothing_else_is() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(recover_id(dir.path()), None);
        checkpoint_id(dir.path(), "abc-S0").unwrap();
        assert_eq!(recover_id(dir.path()).as_deref(), Some("abc-S0"));
        checkpoint_id(dir.path(), "def-S0").unwrap();
        assert_eq!(recover_id(dir.path()).as_deref(), Some("def-S0"));
        // A dangling link is no checkpoint.
        std::fs::remove_dir(dir.path().join("meta/slaves/def-S0")).unwrap();
        assert_eq!(recover_id(dir.path()), None);
    }
}
