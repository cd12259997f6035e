//! [`ShardingContext`]: what a job knows about its task (the Elastic-Job sharding context plus the
//! job's properties and work directory) and the host services it may call: logging, progress and
//! the cancellation check.

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::abi;

/// Severity of a log line, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum Level {
    /// Something failed.
    Error = abi::LOG_ERROR,
    /// Something looks wrong but the job goes on.
    Warn = abi::LOG_WARN,
    /// Normal progress.
    Info = abi::LOG_INFO,
    /// Detail for debugging.
    Debug = abi::LOG_DEBUG,
    /// Even more detail.
    Trace = abi::LOG_TRACE,
}

/// The sharding context of one task, handed to every job call.
///
/// It is built once when the executor creates the job instance and stays the same for the
/// instance's life (a daemon task keeps its shard, parameters and task id across fires, as in
/// Elastic-Job). The accessors are plain field reads; [`is_cancelled`](Self::is_cancelled) is one
/// indirect call and an atomic load in the executor, cheap enough for a tight loop.
pub struct ShardingContext {
    job_name: String,
    task_id: String,
    sharding_total_count: u32,
    sharding_item: u32,
    item_parameter: String,
    job_parameter: String,
    properties: BTreeMap<String, String>,
    work_dir: PathBuf,
    host: Host,
}

/// Where logging, progress and cancellation go.
enum Host {
    /// Inside the executor: the host table it passed to `create`.
    Attached(HostHandle),
    /// Built by [`ShardingContextBuilder`] for a plugin's own unit tests.
    Detached { cancelled: Arc<AtomicBool> },
}

/// The host table, asserted shareable across threads.
#[derive(Clone, Copy)]
pub(crate) struct HostHandle(abi::HostApi);

// SAFETY: the ABI requires every host function to be callable from any thread while the instance
// lives, and the context (which holds the handle) never outlives the instance: the SDK drops it
// inside `destroy`.
unsafe impl Send for HostHandle {}
// SAFETY: as above; the handle is only read.
unsafe impl Sync for HostHandle {}

impl HostHandle {
    /// # Safety
    /// `api` must be a valid host table that stays valid until `destroy` returns.
    pub(crate) unsafe fn new(api: &abi::HostApi) -> Self {
        HostHandle(*api)
    }

    pub(crate) fn log(&self, level: Level, message: &str) {
        // SAFETY: the host copies the bytes before returning; the table is valid (see `new`).
        unsafe {
            (self.0.log)(
                self.0.host_ctx,
                level as u32,
                message.as_ptr().cast::<c_char>(),
                message.len(),
            )
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        // SAFETY: valid table (see `new`); the function takes only the host context.
        unsafe { (self.0.is_cancelled)(self.0.host_ctx) != 0 }
    }

    pub(crate) fn progress(&self, message: &str) {
        // SAFETY: the host copies the bytes before returning; the table is valid (see `new`).
        unsafe {
            (self.0.progress)(
                self.0.host_ctx,
                message.as_ptr().cast::<c_char>(),
                message.len(),
            )
        }
    }

    pub(crate) fn set_error(&self, message: &str) {
        // SAFETY: the host copies the bytes before returning; the table is valid (see `new`).
        unsafe {
            (self.0.set_error)(
                self.0.host_ctx,
                message.as_ptr().cast::<c_char>(),
                message.len(),
            )
        }
    }
}

impl ShardingContext {
    /// Copies the host's C context into owned Rust values.
    ///
    /// # Safety
    /// `raw` and everything it points to must be valid for reads; `host` must stay valid until
    /// the instance is destroyed.
    pub(crate) unsafe fn from_raw(raw: &abi::JobContext, host: HostHandle) -> Self {
        // SAFETY (all `text` calls): the host guarantees the strings are readable for the call.
        let text = |s: &abi::Str| unsafe { String::from_utf8_lossy(s.as_bytes()).into_owned() };
        let mut properties = BTreeMap::new();
        if !raw.properties.is_null() && raw.property_count > 0 {
            // SAFETY: the host passes `property_count` entries at `properties`.
            let entries = unsafe { std::slice::from_raw_parts(raw.properties, raw.property_count) };
            for entry in entries {
                properties.insert(text(&entry.key), text(&entry.value));
            }
        }
        // SAFETY: as for `text`.
        let work_dir = path_from_bytes(unsafe { raw.work_dir.as_bytes() });
        ShardingContext {
            job_name: text(&raw.job_name),
            task_id: text(&raw.task_id),
            sharding_total_count: raw.sharding_total_count,
            sharding_item: raw.sharding_item,
            item_parameter: text(&raw.item_parameter),
            job_parameter: text(&raw.job_parameter),
            properties,
            work_dir,
            host: Host::Attached(host),
        }
    }

    /// A context for unit-testing a job without an executor; see [`ShardingContextBuilder`].
    pub fn builder(job_name: impl Into<String>) -> ShardingContextBuilder {
        ShardingContextBuilder {
            job_name: job_name.into(),
            task_id: String::new(),
            sharding_total_count: 1,
            sharding_item: 0,
            item_parameter: String::new(),
            job_parameter: String::new(),
            properties: BTreeMap::new(),
            work_dir: PathBuf::from("."),
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The job's name.
    pub fn job_name(&self) -> &str {
        &self.job_name
    }

    /// The Mesos task id of this run.
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// Number of shards of the job.
    pub fn sharding_total_count(&self) -> u32 {
        self.sharding_total_count
    }

    /// The shard this task runs, `0..sharding_total_count()`.
    pub fn sharding_item(&self) -> u32 {
        self.sharding_item
    }

    /// This shard's parameter (Elastic-Job's `shardingParameter`); empty when none is set.
    pub fn item_parameter(&self) -> &str {
        &self.item_parameter
    }

    /// The job-wide parameter; empty when none is set.
    pub fn job_parameter(&self) -> &str {
        &self.job_parameter
    }

    /// All of the job's free-form properties.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// One property, if set.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// The task's own work directory, `<executor sandbox>/tasks/<task id>`, created by the
    /// executor before the job is set up. Write output files here: tasks sharing an executor
    /// never share it. The app's fetched files (plugins, data) are in the sandbox, two levels up.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// `relative` inside the work directory, refusing absolute paths and `..` so a property
    /// cannot make a job write outside its sandbox.
    pub fn work_path(&self, relative: &str) -> Result<PathBuf, crate::JobError> {
        let path = Path::new(relative);
        let inside = !relative.is_empty()
            && path.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            });
        if inside {
            Ok(self.work_dir.join(path))
        } else {
            Err(crate::JobError::new(format!(
                "{relative:?} is not a relative path inside the work directory {}",
                self.work_dir.display()
            )))
        }
    }

    /// True once the executor has been asked to stop this task (kill or shutdown). Long-running
    /// jobs should check it regularly and return soon after it turns true.
    pub fn is_cancelled(&self) -> bool {
        match &self.host {
            Host::Attached(host) => host.is_cancelled(),
            Host::Detached { cancelled } => cancelled.load(Ordering::Acquire),
        }
    }

    /// Writes one line to the executor's log, tagged with this task's id. Prefer the
    /// [`info!`](crate::info) family of macros, which format.
    pub fn log(&self, level: Level, message: &str) {
        match &self.host {
            Host::Attached(host) => host.log(level, message),
            Host::Detached { .. } => eprintln!("[{level:?}] {}: {message}", self.task_id),
        }
    }

    /// Records a short progress note ("processed 3000 of 10000 rows").
    pub fn progress(&self, message: &str) {
        match &self.host {
            Host::Attached(host) => host.progress(message),
            Host::Detached { .. } => eprintln!("[progress] {}: {message}", self.task_id),
        }
    }

    pub(crate) fn host(&self) -> Option<HostHandle> {
        match &self.host {
            Host::Attached(host) => Some(*host),
            Host::Detached { .. } => None,
        }
    }
}

impl fmt::Debug for ShardingContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardingContext")
            .field("job_name", &self.job_name)
            .field("task_id", &self.task_id)
            .field("sharding_total_count", &self.sharding_total_count)
            .field("sharding_item", &self.sharding_item)
            .field("item_parameter", &self.item_parameter)
            .field("job_parameter", &self.job_parameter)
            .field("properties", &self.properties)
            .field("work_dir", &self.work_dir)
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Builds a [`ShardingContext`] outside the executor, so a plugin's own unit tests can call its
/// jobs directly. Logging and progress go to stderr; cancellation is driven by the flag from
/// [`cancel_flag`](Self::cancel_flag).
///
/// ```
/// use shardex_job::ShardingContext;
/// let ctx = ShardingContext::builder("orders")
///     .sharding(1, 3)
///     .item_parameter("eu")
///     .property("batch", "50")
///     .build();
/// assert_eq!((ctx.sharding_item(), ctx.sharding_total_count()), (1, 3));
/// assert_eq!(ctx.property("batch"), Some("50"));
/// assert!(!ctx.is_cancelled());
/// ```
#[derive(Debug, Clone)]
pub struct ShardingContextBuilder {
    job_name: String,
    task_id: String,
    sharding_total_count: u32,
    sharding_item: u32,
    item_parameter: String,
    job_parameter: String,
    properties: BTreeMap<String, String>,
    work_dir: PathBuf,
    cancelled: Arc<AtomicBool>,
}

impl ShardingContextBuilder {
    /// Sets the task id (empty by default).
    pub fn task_id(mut self, task_id: impl Into<String>) -> Self {
        self.task_id = task_id.into();
        self
    }

    /// Sets the shard and the shard count (0 of 1 by default).
    pub fn sharding(mut self, item: u32, total_count: u32) -> Self {
        self.sharding_item = item;
        self.sharding_total_count = total_count;
        self
    }

    /// Sets the shard's parameter.
    pub fn item_parameter(mut self, parameter: impl Into<String>) -> Self {
        self.item_parameter = parameter.into();
        self
    }

    /// Sets the job parameter.
    pub fn job_parameter(mut self, parameter: impl Into<String>) -> Self {
        self.job_parameter = parameter.into();
        self
    }

    /// Adds a property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Sets the work directory (`.` by default).
    pub fn work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = dir.into();
        self
    }

    /// The flag [`ShardingContext::is_cancelled`] reads; store `true` to cancel.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancelled)
    }

    /// The context.
    pub fn build(self) -> ShardingContext {
        ShardingContext {
            job_name: self.job_name,
            task_id: self.task_id,
            sharding_total_count: self.sharding_total_count,
            sharding_item: self.sharding_item,
            item_parameter: self.item_parameter,
            job_parameter: self.job_parameter,
            properties: self.properties,
            work_dir: self.work_dir,
            host: Host::Detached {
                cancelled: self.cancelled,
            },
        }
    }
}

/// Logs a formatted line at a given [`Level`] through the executor:
/// `shardex_job::log!(ctx, Level::Warn, "retrying {}", n)`.
#[macro_export]
macro_rules! log {
    ($ctx:expr, $level:expr, $($arg:tt)+) => {
        $crate::ShardingContext::log($ctx, $level, &::std::format!($($arg)+))
    };
}

/// Logs a formatted line at error level: `shardex_job::error!(ctx, "bad row {}", id)`.
#[macro_export]
macro_rules! error {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::Level::Error, $($arg)+) };
}

/// Logs a formatted line at warn level.
#[macro_export]
macro_rules! warn {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::Level::Warn, $($arg)+) };
}

/// Logs a formatted line at info level: `shardex_job::info!(ctx, "wrote {} rows", n)`.
#[macro_export]
macro_rules! info {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::Level::Info, $($arg)+) };
}

/// Logs a formatted line at debug level.
#[macro_export]
macro_rules! debug {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::Level::Debug, $($arg)+) };
}

/// Logs a formatted line at trace level.
#[macro_export]
macro_rules! trace {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::Level::Trace, $($arg)+) };
}
