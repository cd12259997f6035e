//! [`Plugin`] (a loaded, validated plugin) and [`JobInstance`] (one task's job object inside it):
//! the only code that calls plugin functions.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use shardex_job::abi;

use super::context::CContext;
use super::host::HostState;
use super::{HostBindings, JobContext, JobControl, JobError, JobKind, JobKinds, PluginError};

/// The dataflow functions, present together or not at all.
#[derive(Clone, Copy)]
pub(crate) struct DataflowFns {
    pub(crate) fetch: abi::FetchDataFn,
    pub(crate) process: abi::ProcessDataFn,
    pub(crate) free: abi::FreeBatchFn,
}

/// A loaded plugin whose descriptor passed the handshake. Shared (`Arc`) by every task that
/// uses it and never unloaded.
pub struct Plugin {
    pub(crate) path: PathBuf,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) kinds: JobKinds,
    pub(crate) create: abi::CreateFn,
    pub(crate) destroy: abi::DestroyFn,
    pub(crate) execute: Option<abi::ExecuteFn>,
    pub(crate) dataflow: Option<DataflowFns>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin's name from its descriptor.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's version from its descriptor.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The job kinds it implements.
    pub fn kinds(&self) -> JobKinds {
        self.kinds
    }

    /// The canonical file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fails with [`PluginError::KindNotImplemented`] unless the plugin implements `kind`. The
    /// executor can call it right after loading, before creating anything.
    pub fn check_kind(&self, kind: JobKind) -> Result<(), PluginError> {
        if self.kinds.contains(kind) {
            Ok(())
        } else {
            Err(PluginError::KindNotImplemented {
                path: self.path.clone(),
                name: self.name.clone(),
                kind,
                available: self.kinds,
            })
        }
    }

    /// Creates the job object of one task. The instance keeps its own copy of `ctx` and the
    /// host bindings for its whole life; a daemon task keeps one instance for all its fires.
    ///
    /// Errors: [`JobError::Setup`] when the plugin lacks `kind`; [`JobError::Failed`] when the
    /// job's own constructor refuses (a bad property, say); [`JobError::Panicked`] when it
    /// panicked.
    pub fn instantiate(
        self: &Arc<Self>,
        kind: JobKind,
        ctx: &JobContext,
        host: HostBindings,
    ) -> Result<JobInstance, JobError> {
        self.check_kind(kind)
            .map_err(|e| JobError::Setup(e.to_string()))?;
        let c_ctx = Arc::new(CContext::new(ctx));
        let host = HostState::new(&ctx.task_id, &self.name, host);
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: `create` was validated non-NULL; the context and host table live in Arcs
        // owned by the instance until after `destroy` (or are dropped here when create fails,
        // in which case the plugin must not keep them).
        let status = unsafe { (self.create)(kind.bit(), c_ctx.as_ptr(), host.api(), &mut handle) };
        let mut instance = JobInstance {
            plugin: Arc::clone(self),
            kind,
            handle,
            ctx: c_ctx,
            host,
            poisoned: false,
            created: false,
        };
        instance.check(status, "create")?;
        instance.created = true;
        Ok(instance)
    }
}

/// What a dataflow run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataflowRun {
    /// Batches fetched and processed.
    pub batches: u64,
    /// Items in those batches.
    pub items: u64,
    /// Whether the run ended because the task was cancelled (rather than running out of data,
    /// or after its single round when not streaming).
    pub cancelled: bool,
}

/// One task's job object inside a plugin. Dropping it calls the plugin's `destroy`.
///
/// Calls take `&mut self`, so they never overlap; the instance may move between threads.
pub struct JobInstance {
    plugin: Arc<Plugin>,
    kind: JobKind,
    handle: *mut c_void,
    ctx: Arc<CContext>,
    host: Arc<HostState>,
    /// Set after a panic or an undefined status: the plugin is not called again.
    poisoned: bool,
    /// Whether `create` succeeded (so `destroy` is owed).
    created: bool,
}

// SAFETY: the ABI allows successive calls on one instance from different threads; `&mut self`
// methods keep them from overlapping, and the context and host state are Send + Sync.
unsafe impl Send for JobInstance {}

impl std::fmt::Debug for JobInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobInstance")
            .field("plugin", &self.plugin.name)
            .field("kind", &self.kind)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl JobInstance {
    /// The kind this instance was created for.
    pub fn kind(&self) -> JobKind {
        self.kind
    }

    /// The plugin it belongs to.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The cancellation handle it was created with.
    pub fn control(&self) -> &JobControl {
        self.host.control()
    }

    /// Runs a simple job once.
    pub fn run_simple(&mut self) -> Result<(), JobError> {
        self.usable(JobKind::Simple)?;
        let Some(execute) = self.plugin.execute else {
            return Err(self.wrong_kind(JobKind::Simple));
        };
        // SAFETY: a live instance of a simple job; context and host table outlive the call.
        let status = unsafe { execute(self.handle, self.ctx.as_ptr()) };
        self.check(status, "execute")
    }

    /// Runs a dataflow job: one fetch and one process, or with `streaming` as many rounds as
    /// fetch returns items. Stops before the next fetch, and drops a fetched batch unprocessed,
    /// once the task is cancelled.
    pub fn run_dataflow(&mut self, streaming: bool) -> Result<DataflowRun, JobError> {
        self.usable(JobKind::Dataflow)?;
        let Some(fns) = self.plugin.dataflow else {
            return Err(self.wrong_kind(JobKind::Dataflow));
        };
        let mut run = DataflowRun::default();
        loop {
            if self.control().is_cancelled() {
                run.cancelled = true;
                return Ok(run);
            }
            let mut batch: *mut c_void = std::ptr::null_mut();
            let mut count: usize = 0;
            // SAFETY: a live dataflow instance; out-pointers are valid locals.
            let status =
                unsafe { (fns.fetch)(self.handle, self.ctx.as_ptr(), &mut batch, &mut count) };
            self.check(status, "fetch_data")?;
            if count == 0 {
                if !batch.is_null() {
                    // SAFETY: the plugin's handle, consumed exactly once.
                    unsafe { (fns.free)(self.handle, batch) };
                }
                return Ok(run);
            }
            if self.control().is_cancelled() {
                if !batch.is_null() {
                    // SAFETY: the plugin's handle, consumed exactly once.
                    unsafe { (fns.free)(self.handle, batch) };
                }
                run.cancelled = true;
                return Ok(run);
            }
            // SAFETY: the plugin's handle, consumed exactly once (process takes ownership).
            let status = unsafe { (fns.process)(self.handle, self.ctx.as_ptr(), batch) };
            self.check(status, "process_data")?;
            run.batches += 1;
            run.items += count as u64;
            if !streaming {
                return Ok(run);
            }
        }
    }

    fn usable(&self, kind: JobKind) -> Result<(), JobError> {
        if self.poisoned {
            return Err(JobError::Setup(format!(
                "job instance of plugin {} is unusable after an earlier panic",
                self.plugin.name
            )));
        }
        if self.kind != kind {
            return Err(self.wrong_kind(kind));
        }
        Ok(())
    }

    fn wrong_kind(&self, asked: JobKind) -> JobError {
        JobError::Setup(format!(
            "cannot run a {asked} job on an instance of plugin {} created as {}",
            self.plugin.name, self.kind
        ))
    }

    /// Turns a status code into a result, collecting the message the plugin set.
    fn check(&mut self, status: i32, call: &str) -> Result<(), JobError> {
        let message = self.host.take_error();
        let name = &self.plugin.name;
        match status {
            abi::STATUS_OK => Ok(()),
            abi::STATUS_ERROR => Err(JobError::Failed(message.unwrap_or_else(|| {
                format!("plugin {name} reported an error from {call} without a message")
            }))),
            abi::STATUS_PANIC => {
                self.poisoned = true;
                Err(JobError::Panicked(message.unwrap_or_else(|| {
                    format!("plugin {name} panicked in {call} without a message")
                })))
            }
            other => {
                self.poisoned = true;
                Err(JobError::Panicked(format!(
                    "plugin {name} returned status {other} from {call}, which Shardex plugin ABI {} \
                     does not define",
                    abi::ABI_VERSION
                )))
            }
        }
    }
}

impl Drop for JobInstance {
    fn drop(&mut self) {
        if self.created {
            // SAFETY: created successfully, destroyed exactly once, after the last call. The
            // context and host table are still alive (dropped after this body).
            unsafe { (self.plugin.destroy)(self.handle) };
        }
    }
}
