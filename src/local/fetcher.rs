//! The agent's fetcher: puts `CommandInfo.uris` into the sandbox before the executor starts
//! (`src/launcher/fetcher.cpp`).
//!
//! - `file://` URIs and absolute paths are copied; `http://` and `https://` are downloaded (must
//!   answer 200). `https://` trusts the system's CAs, as Mesos' curl-based fetcher does (the
//!   agent's libprocess SSL settings do not apply to it); other schemes fail with a message
//!   saying so.
//! - The destination is `<sandbox>/<output_file>` (relative subdirectories are created) or
//!   `<sandbox>/<basename>`.
//! - `executable: true` sets mode 0755 and skips extraction; otherwise, with `extract` (default
//!   true), `.tar .tar.gz .tgz .zip` are unpacked into the sandbox root (the archive stays next
//!   to its content, as without the fetcher cache), a bare `.gz` is gunzipped next to itself,
//!   and `.tar.bz2 .tbz2 .tar.xz .txz` are handed to the system `tar`.
//! - Archive entries that would land outside the sandbox are refused.
//! - `cache` is accepted and ignored: every fetch downloads.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use shardex_mesos::proto::v1::command_info::Uri;

/// A URI that could not be fetched; the message names the URI.
#[derive(Debug, thiserror::Error)]
#[error("Failed to fetch '{uri}': {reason}")]
pub struct FetchError {
    pub uri: String,
    pub reason: String,
}

fn fail(uri: &str, reason: impl std::fmt::Display) -> FetchError {
    FetchError {
        uri: uri.to_owned(),
        reason: reason.to_string(),
    }
}

/// Fetches every URI into `sandbox`, in order, stopping at the first failure.
pub async fn fetch_all(uris: &[Uri], sandbox: &Path) -> Result<(), FetchError> {
    for uri in uris {
        fetch_one(uri, sandbox).await?;
    }
    Ok(())
}

async fn fetch_one(uri: &Uri, sandbox: &Path) -> Result<(), FetchError> {
    let value = uri.value.as_str();
    let destination = destination(uri, sandbox)?;
    if let Some(parent) = destination.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| fail(value, format!("cannot create {}: {e}", parent.display())))?;
    }
    if value.starts_with("http://") || value.starts_with("https://") {
        download(value, &destination).await?;
    } else if let Some(path) = local_path(value) {
        let (from, to, uri_text) = (path, destination.clone(), value.to_owned());
        tokio::task::spawn_blocking(move || {
            fs::copy(&from, &to)
                .map(|_| ())
                .map_err(|e| fail(&uri_text, format!("cannot copy {}: {e}", from.display())))
        })
        .await
        .map_err(|e| fail(value, format!("copy task failed: {e}")))??;
    } else {
        return Err(fail(
            value,
            "unsupported URI scheme; the embedded agent fetches http://, https://, file:// and \
             absolute paths",
        ));
    }
    let (uri_owned, sandbox_owned) = (uri.clone(), sandbox.to_owned());
    tokio::task::spawn_blocking(move || post_process(&uri_owned, &destination, &sandbox_owned))
        .await
        .map_err(|e| fail(value, format!("extraction task failed: {e}")))?
}

fn local_path(value: &str) -> Option<PathBuf> {
    if let Some(path) = value.strip_prefix("file://") {
        return Some(PathBuf::from(path));
    }
    value.starts_with('/').then(|| PathBuf::from(value))
}

fn basename(value: &str) -> &str {
    let without_scheme = value.split_once("://").map_or(value, |(_, rest)| rest);
    without_scheme
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty())
        .unwrap_or(without_scheme)
}

fn destination(uri: &Uri, sandbox: &Path) -> Result<PathBuf, FetchError> {
    let relative = match uri.output_file.as_deref().filter(|s| !s.is_empty()) {
        Some(output) => {
            let path = Path::new(output);
            if path.is_absolute() {
                return Err(fail(
                    &uri.value,
                    format!("output_file '{output}' must be a relative path"),
                ));
            }
            path.to_owned()
        }
        None => PathBuf::from(basename(&uri.value)),
    };
    confined(sandbox, &relative).ok_or_else(|| {
        fail(
            &uri.value,
            format!("'{}' would be outside the sandbox", relative.display()),
        )
    })
}

/// `sandbox/relative` if `relative` stays inside the sandbox (no `..` escaping, no root).
fn confined(sandbox: &Path, relative: &Path) -> Option<PathBuf> {
    let mut depth = 0usize;
    for component in relative.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth = depth.checked_sub(1)?,
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (depth > 0).then(|| sandbox.join(relative))
}

async fn download(url: &str, destination: &Path) -> Result<(), FetchError> {
    let client = shardex_mesos::tls::http_client_builder()
        .map_err(|e| fail(url, e))?
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| fail(url, e))?;
    let response =
        client
            .get(url)
            .send()
            .await
            .map_err(|e| match shardex_mesos::tls::rustls_error(&e) {
                Some(tls) => fail(
                    url,
                    shardex_mesos::tls::explain(tls, &shardex_mesos::TlsConfig::default()),
                ),
                None => fail(url, e),
            })?;
    let status = response.status();
    if status.as_u16() != 200 {
        return Err(fail(
            url,
            format!("HTTP answered {status}, expected 200 OK"),
        ));
    }
    let body = response.bytes().await.map_err(|e| fail(url, e))?;
    tokio::fs::write(destination, &body)
        .await
        .map_err(|e| fail(url, format!("cannot write {}: {e}", destination.display())))
}

fn post_process(uri: &Uri, path: &Path, sandbox: &Path) -> Result<(), FetchError> {
    let value = uri.value.as_str();
    if uri.executable.unwrap_or(false) {
        return fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .map_err(|e| fail(value, format!("cannot chmod {}: {e}", path.display())));
    }
    if !uri.extract.unwrap_or(true) {
        return Ok(());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let result = if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        fs::File::open(path)
            .and_then(|file| extract_tar(flate2::read::GzDecoder::new(file), sandbox))
    } else if name.ends_with(".tar") {
        fs::File::open(path).and_then(|file| extract_tar(file, sandbox))
    } else if name.ends_with(".zip") {
        extract_zip(path, sandbox)
    } else if [".tar.bz2", ".tbz2", ".tar.xz", ".txz"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
    {
        extract_with_system_tar(path, sandbox)
    } else if let Some(stem) = name.strip_suffix(".gz") {
        gunzip(path, &path.with_file_name(stem))
    } else {
        Ok(())
    };
    result.map_err(|e| fail(value, format!("cannot extract {name}: {e}")))
}

fn escape_error(entry: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "archive entry '{}' would be outside the sandbox",
            entry.display()
        ),
    )
}

fn extract_tar(reader: impl Read, sandbox: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if confined(sandbox, &path).is_none() {
            // A bare "./" entry is harmless; anything else escaping is refused.
            if path.components().all(|c| matches!(c, Component::CurDir)) {
                continue;
            }
            return Err(escape_error(&path));
        }
        if let Some(target) = entry.link_name()?
            && (target.is_absolute()
                || confined(
                    sandbox,
                    &path.parent().unwrap_or(Path::new("")).join(&target),
                )
                .is_none())
        {
            return Err(escape_error(&path));
        }
        // `unpack_in` refuses paths escaping the directory too.
        if !entry.unpack_in(sandbox)? {
            return Err(escape_error(&path));
        }
    }
    Ok(())
}

fn extract_zip(path: &Path, sandbox: &Path) -> io::Result<()> {
    let file = fs::File::open(path)?;
    let mut archive = zip::ZipArchive::new(file).map_err(io::Error::other)?;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(io::Error::other)?;
        let name = PathBuf::from(entry.name().map(|n| n.into_owned()).unwrap_or_default());
        let Some(relative) = entry.enclosed_name() else {
            return Err(escape_error(&name));
        };
        let Some(target) = confined(sandbox, &relative) else {
            continue;
        };
        if entry.is_dir() {
            fs::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = fs::File::create(&target)?;
        io::copy(&mut entry, &mut out)?;
        if let Some(mode) = entry.unix_mode() {
            fs::set_permissions(&target, fs::Permissions::from_mode(mode & 0o7777))?;
        }
    }
    Ok(())
}

fn gunzip(path: &Path, target: &Path) -> io::Result<()> {
    let mut decoder = flate2::read::GzDecoder::new(fs::File::open(path)?);
    let mut out = fs::File::create(target)?;
    io::copy(&mut decoder, &mut out)?;
    Ok(())
}

fn extract_with_system_tar(path: &Path, sandbox: &Path) -> io::Result<()> {
    // bzip2 and xz would need C libraries; the system tar handles them. GNU tar strips leading
    // '/' and refuses '..' members unless told otherwise.
    let output = std::process::Command::new("tar")
        .arg("-C")
        .arg(sandbox)
        .arg("-xf")
        .arg(path)
        .output()
        .map_err(|e| io::Error::other(format!("cannot run the system tar: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "the system tar failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_stay_in_the_sandbox() {
        let sandbox = Path::new("/sb");
        let uri = |value: &str, output: Option<&str>| Uri {
            value: value.into(),
            output_file: output.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(
            destination(&uri("http://h/x/exec.tar.gz", None), sandbox).unwrap(),
            Path::new("/sb/exec.tar.gz")
        );
        assert_eq!(
            destination(&uri("/tmp/a", Some("plugins/a.so")), sandbox).unwrap(),
            Path::new("/sb/plugins/a.so")
        );
        assert!(destination(&uri("/tmp/a", Some("../a")), sandbox).is_err());
        assert!(destination(&uri("/tmp/a", Some("/etc/a")), sandbox).is_err());
        assert_eq!(basename("http://h/p/q?x=1"), "q?x=1");
    }

    fn uri(value: String) -> Uri {
        Uri {
            value,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn copies_extracts_and_marks_executable() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        let sandbox = dir.path().join("sandbox");
        fs::create_dir_all(&source).unwrap();
        fs::create_dir_all(&sandbox).unwrap();

        // tar.gz with a nested executable file.
        let tarball = source.join("bundle.tar.gz");
        {
            let encoder = flate2::write::GzEncoder::new(
                fs::File::create(&tarball).unwrap(),
                flate2::Compression::fast(),
            );
            let mut builder = tar::Builder::new(encoder);
            let mut header = tar::Header::new_gnu();
            header.set_size(3);
            header.set_mode(0o755);
            header.set_cksum();
            builder
                .append_data(&mut header, "bin/run", &b"hi\n"[..])
                .unwrap();
            builder.into_inner().unwrap().finish().unwrap();
        }
        // zip with one file.
        let archive = source.join("more.zip");
        {
            let mut zip = zip::ZipWriter::new(fs::File::create(&archive).unwrap());
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .unix_permissions(0o644);
            zip.start_file("conf/app.toml", options).unwrap();
            std::io::Write::write_all(&mut zip, b"x = 1").unwrap();
            zip.finish().unwrap();
        }
        // A bare .gz and a plain script.
        let gz = source.join("notes.txt.gz");
        {
            let mut encoder = flate2::write::GzEncoder::new(
                fs::File::create(&gz).unwrap(),
                flate2::Compression::fast(),
            );
            std::io::Write::write_all(&mut encoder, b"notes").unwrap();
            encoder.finish().unwrap();
        }
        let script = source.join("helper.sh");
        fs::write(&script, "#!/bin/sh\n").unwrap();

        let uris = vec![
            uri(tarball.display().to_string()),
            uri(format!("file://{}", archive.display())),
            uri(gz.display().to_string()),
            Uri {
                executable: Some(true),
                ..uri(script.display().to_string())
            },
            Uri {
                extract: Some(false),
                output_file: Some("plugins/copy.tar.gz".into()),
                ..uri(tarball.display().to_string())
            },
        ];
        fetch_all(&uris, &sandbox).await.unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(fs::read(sandbox.join("bin/run")).unwrap(), b"hi\n");
        assert_eq!(mode(&sandbox.join("bin/run")) & 0o100, 0o100, "modes kept");
        assert!(sandbox.join("bundle.tar.gz").exists(), "the archive stays");
        assert_eq!(fs::read(sandbox.join("conf/app.toml")).unwrap(), b"x = 1");
        assert_eq!(fs::read(sandbox.join("notes.txt")).unwrap(), b"notes");
        assert_eq!(mode(&sandbox.join("helper.sh")), 0o755);
        assert!(sandbox.join("plugins/copy.tar.gz").exists());

        let error = fetch_all(&[uri("/no/such/file".into())], &sandbox)
            .await
            .unwrap_err();
        assert_eq!(error.uri, "/no/such/file");
        assert!(
            error
                .to_string()
                .starts_with("Failed to fetch '/no/such/file': cannot copy")
        );
        let error = fetch_all(&[uri("ftp://host/x".into())], &sandbox)
            .await
            .unwrap_err();
        assert!(error.reason.contains("unsupported URI scheme"), "{error}");
    }

    #[tokio::test]
    async fn refuses_archive_entries_outside_the_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = dir.path().join("sandbox");
        fs::create_dir_all(&sandbox).unwrap();
        let tarball = dir.path().join("evil.tar");
        {
            // tar::Builder refuses '..' itself, so write the header by hand.
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..12].copy_from_slice(b"../escape.sh");
            header.set_size(1);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            let mut bytes = header.as_bytes().to_vec();
            bytes.extend_from_slice(b"x");
            bytes.resize(512 * 2, 0);
            bytes.extend_from_slice(&[0u8; 1024]);
            fs::write(&tarball, bytes).unwrap();
        }
        let error = fetch_all(&[uri(tarball.display().to_string())], &sandbox)
            .await
            .unwrap_err();
        assert!(error.reason.contains("outside the sandbox"), "{error}");
        assert!(!dir.path().join("escape.sh").exists());
    }
}
