//! The agent's `/files` endpoints — `read`, `browse`, `download`, `debug` — over the sandboxes
//! it has attached, answering as the `files` libprocess process of a Mesos 1.12 agent does
//! (`src/files/files.cpp`; probed against a real agent, see `tests/agent_files.rs`).
//!
//! **What is attached.** At launch, each executor run's sandbox under three names, as
//! `Framework::addExecutor` in `src/slave/slave.cpp` does: its own path
//! (`<work_dir>/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>`), the `latest`
//! path beside it (`…/runs/latest`) and the virtual `/frameworks/<fw>/executors/<ex>/runs/latest`.
//! A later run of the same executor takes over the two `latest` names; the older run keeps its
//! own. A real agent detaches a sandbox when its garbage collector deletes it (`--gc_delay`, a
//! week by default), long after the executor ended; the embedded agent never deletes
//! sandboxes, so nothing is detached while it runs. A restarted agent starts with an empty
//! table and re-attaches what checkpoint recovery finds: the latest run of every executor of a
//! checkpointing framework ([`SandboxFiles::agent_restarted`]).
//!
//! **Resolving a path.** The longest attached prefix of the requested path names a directory;
//! the rest is appended and the result canonicalised (symlinks followed). A result that
//! leaves that directory is refused (`400 '…' is inaccessible.`), one that does not exist is
//! `404`. Mesos compares the canonical path with a string prefix; this compares whole path
//! components, so a sibling directory whose name merely starts with the sandbox's is refused
//! too. `browse` lists a symlink leading out of the sandbox with the link's own metadata
//! where Mesos `stat`s its target: no size, owner or time of a file outside a sandbox is
//! served.
//!
//! The blocking file work runs on tokio's blocking pool, never on the owner task. Like a real
//! agent without `--authenticate_http_readonly`, the endpoints ask for no credentials.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use tokio::sync::watch;

/// The endpoints, as the README lists them (`tests/readme_reference.rs`). Like libprocess
/// routes, each answers any method and any path below it (`/files/read/x` is `read`).
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/files/browse"),
    ("GET", "/files/read"),
    ("GET", "/files/download"),
    ("GET", "/files/debug"),
];

/// `files.cpp` caps a read at 16 pages.
const PAGES_PER_READ: u64 = 16;

/// A request path's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Browse,
    Read,
    Download,
    Debug,
}

/// The endpoint a request path names, as libprocess routes it: the process id `files` first,
/// then the longest route that is a prefix of the rest (leading and trailing `/` ignored).
/// `/slave(1)/files/…` and the removed `read.json` forms are not routes (404 on a real agent).
pub(crate) fn route(path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/files")?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    let name = rest.trim_start_matches('/').trim_end_matches('/');
    match name.split('/').next()? {
        "browse" => Some(Endpoint::Browse),
        "read" => Some(Endpoint::Read),
        "download" => Some(Endpoint::Download),
        "debug" => Some(Endpoint::Debug),
        _ => None,
    }
}

/// A query string libprocess cannot decode (a malformed `%` escape): it closes the connection
/// without answering.
#[derive(Debug, thiserror::Error)]
#[error(
    "malformed %-escape in the query string of a /files request; the connection is closed unanswered, as libprocess does"
)]
pub(crate) struct MalformedQuery;

/// An answer: the status, the headers after `Date` in libprocess' order, and the body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Content,
}

#[derive(Debug)]
pub(crate) enum Content {
    Bytes(Bytes),
    /// A file to stream, exactly `length` bytes (its size when opened).
    File {
        file: File,
        length: u64,
    },
}

/// Which executor run an attachment belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    framework_id: String,
    executor_id: String,
    container_id: String,
    checkpoint: bool,
}

#[derive(Debug, Clone)]
struct Attachment {
    /// The directory, canonical.
    directory: PathBuf,
    run: Run,
}

/// Attached name (bytes, without a trailing `/`) → directory; ordered as `std::map` orders
/// the strings `/files/debug` lists.
type Table = BTreeMap<Vec<u8>, Attachment>;

/// The table of attached sandboxes, shared between the agent (which attaches) and the HTTP
/// handlers (which read a snapshot).
#[derive(Debug, Clone)]
pub(crate) struct SandboxFiles {
    table: Arc<watch::Sender<Arc<Table>>>,
}

impl Default for SandboxFiles {
    fn default() -> Self {
        SandboxFiles {
            table: Arc::new(watch::Sender::new(Arc::new(Table::new()))),
        }
    }
}

/// The path of a sandbox and its `latest` sibling, as `src/slave/paths.cpp` builds them.
pub(super) fn run_paths(
    work_dir: &Path,
    agent_id: &str,
    framework_id: &str,
    executor_id: &str,
    container_id: &str,
) -> (PathBuf, PathBuf) {
    let runs = work_dir
        .join("slaves")
        .join(agent_id)
        .join("frameworks")
        .join(framework_id)
        .join("executors")
        .join(executor_id)
        .join("runs");
    (runs.join(container_id), runs.join("latest"))
}

impl SandboxFiles {
    /// Attaches a new executor run's sandbox under its three names. The directory need not
    /// exist yet (the fetch task creates it): its canonical form is the work dir's plus the
    /// components the agent itself creates.
    pub(super) fn attach_run(
        &self,
        work_dir: &Path,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
        checkpoint: bool,
    ) {
        let (sandbox, latest) =
            run_paths(work_dir, agent_id, framework_id, executor_id, container_id);
        let canonical_work_dir =
            std::fs::canonicalize(work_dir).unwrap_or_else(|_| work_dir.to_owned());
        let (directory, _) = run_paths(
            &canonical_work_dir,
            agent_id,
            framework_id,
            executor_id,
            container_id,
        );
        let run = Run {
            framework_id: framework_id.to_owned(),
            executor_id: executor_id.to_owned(),
            container_id: container_id.to_owned(),
            checkpoint,
        };
        let names = [
            sandbox.as_os_str().as_bytes().to_vec(),
            latest.as_os_str().as_bytes().to_vec(),
            virtual_latest(framework_id, executor_id),
        ];
        self.table.send_modify(|table| {
            let table = Arc::make_mut(table);
            for name in names {
                table.insert(
                    strip_one_suffix(&name).to_vec(),
                    Attachment {
                        directory: directory.clone(),
                        run: run.clone(),
                    },
                );
            }
        });
    }

    /// The agent process died and a new one recovered: only the latest run of each executor of
    /// a checkpointing framework is attached again (`Framework::recoverExecutor`; older runs
    /// and frameworks without checkpointing are not recovered).
    pub(super) fn agent_restarted(&self) {
        self.table.send_modify(|table| {
            // The virtual `latest` name always points at an executor's newest run.
            let newest: BTreeMap<(String, String), String> = table
                .iter()
                .filter(|(name, _)| name.starts_with(b"/frameworks/"))
                .map(|(_, a)| {
                    (
                        (a.run.framework_id.clone(), a.run.executor_id.clone()),
                        a.run.container_id.clone(),
                    )
                })
                .collect();
            Arc::make_mut(table).retain(|_, a| {
                a.run.checkpoint
                    && newest.get(&(a.run.framework_id.clone(), a.run.executor_id.clone()))
                        == Some(&a.run.container_id)
            });
        });
    }

    /// Answers one request; `Err` when the connection must be closed unanswered.
    pub(crate) async fn answer(
        &self,
        endpoint: Endpoint,
        query: Option<&str>,
    ) -> Result<Answer, MalformedQuery> {
        let query = decode_query(query.unwrap_or_default().as_bytes()).ok_or(MalformedQuery)?;
        let table = self.table.borrow().clone();
        let work = move || match endpoint {
            Endpoint::Read => read(&table, &query),
            Endpoint::Browse => browse(&table, &query),
            Endpoint::Download => download(&table, &query),
            Endpoint::Debug => debug(&table, &query),
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(answer) => Ok(answer),
            Err(error) => Ok(error_answer(
                500,
                format!("The /files request failed inside the embedded agent: {error}"),
            )),
        }
    }
}

fn virtual_latest(framework_id: &str, executor_id: &str) -> Vec<u8> {
    format!("/frameworks/{framework_id}/executors/{executor_id}/runs/latest").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Endpoints

type Query = BTreeMap<Vec<u8>, Vec<u8>>;

fn jsonp(query: &Query) -> Option<&[u8]> {
    query.get(&b"jsonp"[..]).map(Vec::as_slice)
}

/// The `path` parameter with an optional `file://` removed (`path::from_uri`), or the 400.
fn requested_path(query: &Query) -> Result<Vec<u8>, Answer> {
    match query.get(&b"path"[..]) {
        Some(path) if !path.is_empty() => Ok(path
            .strip_prefix(b"file://")
            .unwrap_or(path.as_slice())
            .to_vec()),
        _ => Err(error_answer(400, "Expecting 'path=value' in query.\n")),
    }
}

fn read(table: &Table, query: &Query) -> Answer {
    let path = match requested_path(query) {
        Ok(path) => path,
        Err(answer) => return answer,
    };
    let mut offset: i64 = -1;
    if let Some(text) = query.get(&b"offset"[..]) {
        let Some(value) = numify(text) else {
            return number_error("offset", text);
        };
        if value < -1 {
            // `strings::format("%d", off_t)`: the low 32 bits.
            return error_answer(
                400,
                format!("Negative offset provided: {}.\n", value as i32),
            );
        }
        offset = value;
    }
    let mut length: Option<u64> = None;
    if let Some(text) = query.get(&b"length"[..]) {
        let Some(value) = numify(text) else {
            return number_error("length", text);
        };
        if value < -1 {
            return error_answer(
                400,
                format!("Negative length provided: {}.\n", value as i32),
            );
        }
        length = u64::try_from(value).ok();
    }
    // The pailer's first request (`offset=-1`) asks for the size only.
    let start = if offset == -1 {
        length = Some(0);
        0
    } else {
        offset as u64
    };
    match read_file(table, &path, start, length) {
        Ok((size, data)) => {
            let answered = if offset == -1 { size } else { offset as u64 };
            let mut json = Vec::with_capacity(data.len() + 32);
            json.extend_from_slice(b"{\"data\":");
            json_string(&mut json, &data);
            json.extend_from_slice(format!(",\"offset\":{answered}}}").as_bytes());
            json_answer(json, jsonp(query))
        }
        Err(answer) => answer,
    }
}

/// `FilesProcess::_read`: the file's size and the bytes read.
fn read_file(
    table: &Table,
    path: &[u8],
    offset: u64,
    length: Option<u64>,
) -> Result<(u64, Vec<u8>), Answer> {
    let resolved = match resolve(table, path) {
        Resolved::Found { path, .. } => path,
        Resolved::NotFound => return Err(error_answer(404, "")),
        Resolved::Refused(message) => return Err(error_answer(400, with_period(message))),
    };
    if resolved.is_dir() {
        return Err(error_answer(400, "Cannot read a directory.\n"));
    }
    let shown = resolved.display();
    // Non-blocking: opening a FIFO must not wait for a writer (a real agent's `files` process
    // blocks there for good); its seek then fails below.
    let mut file = open_nonblocking(&resolved).map_err(|error| {
        error_answer(
            500,
            format!("Failed to open file at '{shown}': {}.\n", strerror(&error)),
        )
    })?;
    let size = file.seek(SeekFrom::End(0)).map_err(|error| {
        error_answer(
            500,
            format!("Failed to open file at '{shown}': {}.\n", strerror(&error)),
        )
    })?;
    if offset >= size {
        return Ok((size, Vec::new()));
    }
    let length = length.unwrap_or(size - offset);
    if length == 0 {
        return Ok((size, Vec::new()));
    }
    let length = length.min(page_size() * PAGES_PER_READ);
    file.seek(SeekFrom::Start(offset)).map_err(|error| {
        error_answer(
            500,
            format!("Failed to seek file at '{shown}': {}", strerror(&error)),
        )
    })?;
    let mut data = Vec::new();
    file.take(length).read_to_end(&mut data).map_err(|error| {
        error_answer(
            500,
            format!("Failed to read file at '{shown}': {}", strerror(&error)),
        )
    })?;
    Ok((size, data))
}

fn browse(table: &Table, query: &Query) -> Answer {
    let path = match requested_path(query) {
        Ok(path) => path,
        Err(answer) => return answer,
    };
    let (root, resolved) = match resolve(table, &path) {
        Resolved::Found { root, path } => (root, path),
        Resolved::NotFound => return error_answer(404, ""),
        Resolved::Refused(message) => return error_answer(400, with_period(message)),
    };
    // `os::ls` of a file fails: an empty listing.
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(&resolved)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().as_bytes().to_vec())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut json = b"[".to_vec();
    let mut first = true;
    for name in names {
        let full = resolved.join(OsStr::from_bytes(&name));
        // `stat`, as Mesos: a dangling link is left out.
        let Ok(mut metadata) = std::fs::metadata(&full) else {
            continue;
        };
        if let Ok(link) = std::fs::symlink_metadata(&full)
            && link.file_type().is_symlink()
            && !std::fs::canonicalize(&full).is_ok_and(|target| target.starts_with(&root))
        {
            metadata = link;
        }
        if !first {
            json.push(b',');
        }
        first = false;
        file_info(&mut json, &join(&path, &name), &metadata);
    }
    json.push(b']');
    json_answer(json, jsonp(query))
}

/// `model(FileInfo)` of `src/common/http.cpp`, keys in `std::map` order.
fn file_info(json: &mut Vec<u8>, path: &[u8], metadata: &std::fs::Metadata) {
    json.extend_from_slice(b"{\"gid\":");
    json_string(json, group_name(metadata.gid()).as_bytes());
    json.extend_from_slice(b",\"mode\":");
    json_string(json, mode_string(metadata.mode()).as_bytes());
    // Whole seconds (`createFileInfo` keeps `st_mtime`), written as rapidjson writes a double.
    json.extend_from_slice(format!(",\"mtime\":{}.0", metadata.mtime() as f64).as_bytes());
    json.extend_from_slice(format!(",\"nlink\":{}", metadata.nlink()).as_bytes());
    json.extend_from_slice(b",\"path\":");
    json_string(json, path);
    json.extend_from_slice(format!(",\"size\":{}", metadata.size()).as_bytes());
    json.extend_from_slice(b",\"uid\":");
    json_string(json, user_name(metadata.uid()).as_bytes());
    json.push(b'}');
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

fn group_name(gid: u32) -> String {
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        Ok(Some(group)) => group.name,
        _ => gid.to_string(),
    }
}

/// `ls -l`'s ten characters, without set-id or sticky bits (as Mesos).
fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o120000 => 'l',
        0o140000 => 's',
        _ => '-',
    };
    let mut text = String::with_capacity(10);
    text.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        text.push(if bits & 0o4 != 0 { 'r' } else { '-' });
        text.push(if bits & 0o2 != 0 { 'w' } else { '-' });
        text.push(if bits & 0o1 != 0 { 'x' } else { '-' });
    }
    text
}

fn download(table: &Table, query: &Query) -> Answer {
    let path = match requested_path(query) {
        Ok(path) => path,
        Err(answer) => return answer,
    };
    let resolved = match resolve(table, &path) {
        Resolved::Found { path, .. } => path,
        // `NotFound()` without a body: libprocess writes its reason phrase.
        Resolved::NotFound => return error_answer(404, "404 Not Found."),
        Resolved::Refused(message) => return error_answer(400, with_period(message)),
    };
    if resolved.is_dir() {
        return error_answer(400, "Cannot download a directory.\n");
    }
    let basename = resolved
        .file_name()
        .map(|name| name.as_bytes().to_vec())
        .unwrap_or_default();
    let content_type = extension(&basename)
        .and_then(mime_type)
        .unwrap_or("application/octet-stream");
    // libprocess opens the file non-blocking and sends `fstat`'s size.
    let opened = open_nonblocking(&resolved).and_then(|file| {
        let length = file.metadata()?.len();
        Ok((file, length))
    });
    let (file, length) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            return error_answer(
                500,
                format!(
                    "Failed to open '{}': {}",
                    resolved.display(),
                    strerror(&error)
                ),
            );
        }
    };
    let mut disposition = b"attachment; filename=".to_vec();
    // A header cannot carry control characters (libprocess would write them raw).
    disposition.extend(basename.iter().map(|&b| {
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            b'?'
        } else {
            b
        }
    }));
    let disposition = HeaderValue::from_bytes(&disposition)
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Answer {
        status: 200,
        headers: vec![
            (header::CONTENT_LENGTH, HeaderValue::from(length)),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        ],
        body: Content::File { file, length },
    }
}

fn debug(table: &Table, query: &Query) -> Answer {
    let mut json = b"{".to_vec();
    for (index, (name, attachment)) in table.iter().enumerate() {
        if index > 0 {
            json.push(b',');
        }
        json_string(&mut json, name);
        json.push(b':');
        json_string(&mut json, attachment.directory.as_os_str().as_bytes());
    }
    json.push(b'}');
    json_answer(json, jsonp(query))
}

// ---------------------------------------------------------------------------------------------
// Paths

#[derive(Debug)]
enum Resolved {
    /// `path` (canonical) lies in the attached directory `root`.
    Found {
        root: PathBuf,
        path: PathBuf,
    },
    NotFound,
    /// Outside its attached directory, or not canonicalisable: the message, without the
    /// period Mesos appends.
    Refused(String),
}

/// `FilesProcess::resolve`: the longest attached prefix, then the rest appended to its
/// directory and canonicalised.
fn resolve(table: &Table, path: &[u8]) -> Resolved {
    let mut tokens: Vec<&[u8]> = strip_one_suffix(path).split(|b| *b == b'/').collect();
    let mut suffix: Vec<u8> = Vec::new();
    while let Some(last) = tokens.last().copied() {
        let prefix = tokens
            .iter()
            .skip(1)
            .fold(tokens[0].to_vec(), |joined, token| join(&joined, token));
        let Some(attachment) = table.get(&prefix) else {
            suffix = if suffix.is_empty() {
                last.to_vec()
            } else {
                join(last, &suffix)
            };
            tokens.pop();
            continue;
        };
        let root = &attachment.directory;
        if !root.is_dir() {
            // A file attached: only its own name reaches it.
            return if suffix.is_empty() {
                Resolved::Found {
                    root: root.clone(),
                    path: root.clone(),
                }
            } else {
                Resolved::NotFound
            };
        }
        let joined = join(root.as_os_str().as_bytes(), &suffix);
        let joined = PathBuf::from(OsStr::from_bytes(&joined));
        return match std::fs::canonicalize(&joined) {
            Ok(real) if real.starts_with(root) => Resolved::Found {
                root: root.clone(),
                path: real,
            },
            Ok(_) => Resolved::Refused(format!("'{}' is inaccessible", joined.display())),
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Resolved::NotFound
            }
            Err(error) => Resolved::Refused(format!(
                "Failed to determine canonical path of '{}': {}",
                joined.display(),
                strerror(&error)
            )),
        };
    }
    Resolved::NotFound
}

/// stout's `path::join`: one separator between the two, whatever they end and start with.
fn join(first: &[u8], second: &[u8]) -> Vec<u8> {
    let first = strip_one_suffix(first);
    let second = second.strip_prefix(b"/").unwrap_or(second);
    let mut joined = Vec::with_capacity(first.len() + second.len() + 1);
    joined.extend_from_slice(first);
    joined.push(b'/');
    joined.extend_from_slice(second);
    joined
}

/// `strings::remove(s, "/", SUFFIX)`: one trailing `/` off.
fn strip_one_suffix(path: &[u8]) -> &[u8] {
    path.strip_suffix(b"/").unwrap_or(path)
}

/// stout's `Path::extension`: from the basename's last `.`, none for `.` and `..`.
fn extension(basename: &[u8]) -> Option<&[u8]> {
    if basename == b"." || basename == b".." {
        return None;
    }
    let dot = basename.iter().rposition(|b| *b == b'.')?;
    Some(&basename[dot..])
}

fn open_nonblocking(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
}

/// `os::strerror`: the C library's text, without Rust's ` (os error N)`.
fn strerror(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => {
            let text = io::Error::from_raw_os_error(code).to_string();
            match text.strip_suffix(&format!(" (os error {code})")) {
                Some(message) => message.to_owned(),
                None => text,
            }
        }
        None => error.to_string(),
    }
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok())
        .unwrap_or(4096)
}

fn with_period(message: String) -> String {
    message + ".\n"
}

// ---------------------------------------------------------------------------------------------
// Query and numbers

/// libprocess' `http::query::decode`: pairs split at `&` or `;`, the first `=` separating key
/// and value, `+` a space, `%XX` a byte; a later key wins. `None` for a malformed escape.
fn decode_query(query: &[u8]) -> Option<Query> {
    let mut decoded = Query::new();
    for token in query
        .split(|b| *b == b'&' || *b == b';')
        .filter(|token| !token.is_empty())
    {
        let (key, value) = match token.iter().position(|b| *b == b'=') {
            Some(at) => (&token[..at], &token[at + 1..]),
            None => (token, &token[token.len()..]),
        };
        decoded.insert(percent_decode(key)?, percent_decode(value)?);
    }
    Some(decoded)
}

fn percent_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut decoded = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            other => decoded.push(other),
        }
        i += 1;
    }
    Some(decoded)
}

/// stout's `numify<off_t>`: a decimal integer with an optional sign, or `0x…` / `-0x…` hex.
fn numify(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    if let Ok(value) = text.parse::<i64>() {
        return Some(value);
    }
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let digits = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let value = i64::from_str_radix(digits, 16).ok()?;
    Some(if negative { -value } else { value })
}

fn number_error(name: &str, text: &[u8]) -> Answer {
    let mut body = format!("Failed to parse {name}: Failed to convert '").into_bytes();
    body.extend_from_slice(text);
    body.extend_from_slice(b"' to number.\n");
    error_answer(400, body)
}

// ---------------------------------------------------------------------------------------------
// Answers

/// libprocess' error responses (`BadRequest(…)`, `NotFound(…)`, …): plain text.
fn error_answer(status: u16, body: impl Into<Bytes>) -> Answer {
    let body = body.into();
    Answer {
        status,
        headers: vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(body.len())),
        ],
        body: Content::Bytes(body),
    }
}

/// libprocess' `OK(json, jsonp)`: with `jsonp`, `<jsonp>(<json>)` as `text/javascript`.
fn json_answer(json: Vec<u8>, jsonp: Option<&[u8]>) -> Answer {
    let (body, content_type) = match jsonp {
        Some(callback) => {
            let mut wrapped = Vec::with_capacity(callback.len() + json.len() + 2);
            wrapped.extend_from_slice(callback);
            wrapped.push(b'(');
            wrapped.extend_from_slice(&json);
            wrapped.push(b')');
            (wrapped, "text/javascript")
        }
        None => (json, "application/json"),
    };
    Answer {
        status: 200,
        headers: vec![
            (header::CONTENT_LENGTH, HeaderValue::from(body.len())),
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        ],
        body: Content::Bytes(Bytes::from(body)),
    }
}

/// A JSON string as rapidjson's writer makes it: `"`, `\` and control characters escaped
/// (`\b \t \n \f \r`, else `\u00XX`), every other byte as it is, valid UTF-8 or not.
fn json_string(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(b'"');
    for &byte in text {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x00..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
            other => out.push(other),
        }
    }
    out.push(b'"');
}

/// libprocess' MIME table (`3rdparty/libprocess/src/mime.cpp`, Python's `mimetypes` map of
/// its day), looked up by the extension with its dot, case-sensitively.
fn mime_type(extension: &[u8]) -> Option<&'static str> {
    MIME_TYPES
        .binary_search_by(|(known, _)| known.as_bytes().cmp(extension))
        .ok()
        .map(|at| MIME_TYPES[at].1)
}

/// Sorted by extension (bytewise) for the binary search.
const MIME_TYPES: &[(&str, &str)] = &[
    (".a", "application/octet-stream"),
    (".ai", "application/postscript"),
    (".aif", "audio/x-aiff"),
    (".aifc", "audio/x-aiff"),
    (".aiff", "audio/x-aiff"),
    (".au", "audio/basic"),
    (".avi", "video/x-msvideo"),
    (".bat", "text/plain"),
    (".bcpio", "application/x-bcpio"),
    (".bin", "application/octet-stream"),
    (".bmp", "image/x-ms-bmp"),
    (".c", "text/plain"),
    (".cdf", "application/x-netcdf"),
    (".cpio", "application/x-cpio"),
    (".csh", "application/x-csh"),
    (".css", "text/css"),
    (".dll", "application/octet-stream"),
    (".doc", "application/msword"),
    (".dot", "application/msword"),
    (".dvi", "application/x-dvi"),
    (".eml", "message/rfc822"),
    (".eps", "application/postscript"),
    (".etx", "text/x-setext"),
    (".exe", "application/octet-stream"),
    (".gif", "image/gif"),
    (".gtar", "application/x-gtar"),
    (".h", "text/plain"),
    (".hdf", "application/x-hdf"),
    (".htm", "text/html"),
    (".html", "text/html"),
    (".ief", "image/ief"),
    (".jpe", "image/jpeg"),
    (".jpeg", "image/jpeg"),
    (".jpg", "image/jpeg"),
    (".js", "application/x-javascript"),
    (".ksh", "text/plain"),
    (".latex", "application/x-latex"),
    (".m1v", "video/mpeg"),
    (".man", "application/x-troff-man"),
    (".me", "application/x-troff-me"),
    (".mht", "message/rfc822"),
    (".mhtml", "message/rfc822"),
    (".mif", "application/x-mif"),
    (".mov", "video/quicktime"),
    (".movie", "video/x-sgi-movie"),
    (".mp2", "audio/mpeg"),
    (".mp3", "audio/mpeg"),
    (".mp4", "video/mp4"),
    (".mpa", "video/mpeg"),
    (".mpe", "video/mpeg"),
    (".mpeg", "video/mpeg"),
    (".mpg", "video/mpeg"),
    (".ms", "application/x-troff-ms"),
    (".nc", "application/x-netcdf"),
    (".nws", "message/rfc822"),
    (".o", "application/octet-stream"),
    (".obj", "application/octet-stream"),
    (".oda", "application/oda"),
    (".p12", "application/x-pkcs12"),
    (".p7c", "application/pkcs7-mime"),
    (".pbm", "image/x-portable-bitmap"),
    (".pdf", "application/pdf"),
    (".pfx", "application/x-pkcs12"),
    (".pgm", "image/x-portable-graymap"),
    (".pl", "text/plain"),
    (".png", "image/png"),
    (".pnm", "image/x-portable-anymap"),
    (".pot", "application/vnd.ms-powerpoint"),
    (".ppa", "application/vnd.ms-powerpoint"),
    (".ppm", "image/x-portable-pixmap"),
    (".pps", "application/vnd.ms-powerpoint"),
    (".ppt", "application/vnd.ms-powerpoint"),
    (".ps", "application/postscript"),
    (".pwz", "application/vnd.ms-powerpoint"),
    (".py", "text/x-python"),
    (".pyc", "application/x-python-code"),
    (".pyo", "application/x-python-code"),
    (".qt", "video/quicktime"),
    (".ra", "audio/x-pn-realaudio"),
    (".ram", "application/x-pn-realaudio"),
    (".ras", "image/x-cmu-raster"),
    (".rdf", "application/xml"),
    (".rgb", "image/x-rgb"),
    (".roff", "application/x-troff"),
    (".rtx", "text/richtext"),
    (".sgm", "text/x-sgml"),
    (".sgml", "text/x-sgml"),
    (".sh", "application/x-sh"),
    (".shar", "application/x-shar"),
    (".snd", "audio/basic"),
    (".so", "application/octet-stream"),
    (".src", "application/x-wais-source"),
    (".sv4cpio", "application/x-sv4cpio"),
    (".sv4crc", "application/x-sv4crc"),
    (".swf", "application/x-shockwave-flash"),
    (".t", "application/x-troff"),
    (".tar", "application/x-tar"),
    (".tcl", "application/x-tcl"),
    (".tex", "application/x-tex"),
    (".texi", "application/x-texinfo"),
    (".texinfo", "application/x-texinfo"),
    (".tif", "image/tiff"),
    (".tiff", "image/tiff"),
    (".tr", "application/x-troff"),
    (".tsv", "text/tab-separated-values"),
    (".txt", "text/plain"),
    (".ustar", "application/x-ustar"),
    (".vcf", "text/x-vcard"),
    (".wav", "audio/x-wav"),
    (".wiz", "application/msword"),
    (".wsdl", "application/xml"),
    (".xbm", "image/x-xbitmap"),
    (".xlb", "application/vnd.ms-excel"),
    (".xls", "application/vnd.ms-excel"),
    (".xml", "text/xml"),
    (".xpdl", "application/xml"),
    (".xpm", "image/x-xpixmap"),
    (".xsl", "application/xml"),
    (".xwd", "image/x-xwindowdump"),
    (".zip", "application/zip"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_libprocess() {
        assert_eq!(route("/files/read"), Some(Endpoint::Read));
        assert_eq!(route("/files/read/"), Some(Endpoint::Read));
        assert_eq!(route("/files/read/extra"), Some(Endpoint::Read));
        assert_eq!(route("/files//debug"), Some(Endpoint::Debug));
        assert_eq!(route("/files/read.json"), None);
        assert_eq!(route("/files"), None);
        assert_eq!(route("/files/"), None);
        assert_eq!(route("/filesx/read"), None);
        assert_eq!(route("/slave(1)/files/read"), None);
    }

    #[test]
    fn numbers_parse_as_stout_numify() {
        assert_eq!(numify(b"7"), Some(7));
        assert_eq!(numify(b"007"), Some(7));
        assert_eq!(numify(b"+3"), Some(3));
        assert_eq!(numify(b"-1"), Some(-1));
        assert_eq!(numify(b"0x3"), Some(3));
        assert_eq!(numify(b"-0x10"), Some(-16));
        assert_eq!(numify(b"0X1f"), Some(31));
        for bad in [
            &b""[..],
            b"-",
            b" 3",
            b"3.0",
            b"abc",
            b"0x",
            b"0xZ",
            b"0x1.5",
            b"99999999999999999999",
        ] {
            assert_eq!(numify(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn queries_decode_as_libprocess() {
        let query = decode_query(b"path=%2Fa+b&offset=1;offset=2&flag&=x").unwrap();
        assert_eq!(query[&b"path"[..]], b"/a b");
        assert_eq!(query[&b"offset"[..]], b"2");
        assert_eq!(query[&b"flag"[..]], b"");
        assert_eq!(query[&b""[..]], b"x");
        assert!(decode_query(b"offset=%zz").is_none());
        assert!(decode_query(b"offset=%4").is_none());
    }

    #[test]
    fn json_strings_escape_as_rapidjson() {
        let mut out = Vec::new();
        json_string(&mut out, b"a\"\\/\x00\x1b\x7f\xff\t\n");
        assert_eq!(out, b"\"a\\\"\\\\/\\u0000\\u001B\x7f\xff\\t\\n\"");
    }

    #[test]
    fn paths_join_as_stout() {
        assert_eq!(join(b"", b"frameworks"), b"/frameworks");
        assert_eq!(join(b"/a/", b"/b"), b"/a/b");
        assert_eq!(join(b"/a//", b"b"), b"/a//b");
        assert_eq!(extension(b"a.tar.gz"), Some(&b".gz"[..]));
        assert_eq!(extension(b".bashrc"), Some(&b".bashrc"[..]));
        assert_eq!(extension(b"a."), Some(&b"."[..]));
        assert_eq!(extension(b"a"), None);
        assert_eq!(extension(b".."), None);
    }

    #[test]
    fn the_mime_table_is_sorted_and_knows_the_usual_types() {
        assert!(MIME_TYPES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(mime_type(b".txt"), Some("text/plain"));
        assert_eq!(mime_type(b".html"), Some("text/html"));
        assert_eq!(mime_type(b".json"), None);
        assert_eq!(mime_type(b".TXT"), None);
    }

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(0o100644), "-rw-r--r--");
        assert_eq!(mode_string(0o104755), "-rwxr-xr-x");
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o010644), "prw-r--r--");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
    }
}
