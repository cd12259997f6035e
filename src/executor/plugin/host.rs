//! The host function table the executor hands to every plugin instance: logging into `tracing`
//! with the task id, the cancellation check, progress notes and the error slot.

use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use shardex_job::abi;

use super::JobControl;

/// `tracing` target of everything jobs log (plugin log calls, script output, progress), so an
/// operator can filter job output with `RUST_LOG=shardex::job=...`.
pub const JOB_LOG_TARGET: &str = "shardex::job";

/// Longest message accepted from a plugin; longer ones are cut (they end up in status updates
/// and log lines, which should stay bounded).
const MAX_MESSAGE: usize = 64 * 1024;

/// Receives progress notes from a job.
pub type ProgressSink = Arc<dyn Fn(&str) + Send + Sync>;

/// What the executor lends a job instance: its cancellation handle and, optionally, where
/// progress notes go (they are always logged as well).
#[derive(Clone)]
pub struct HostBindings {
    control: JobControl,
    progress: Option<ProgressSink>,
}

impl HostBindings {
    /// Bindings around a task's cancellation handle.
    pub fn new(control: JobControl) -> Self {
        HostBindings {
            control,
            progress: None,
        }
    }

    /// Also passes every progress note to `sink` (for instance to send a status update).
    pub fn with_progress(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(sink));
        self
    }

    /// The cancellation handle.
    pub fn control(&self) -> &JobControl {
        &self.control
    }
}

impl std::fmt::Debug for HostBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBindings")
            .field("control", &self.control)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Per-instance host state; `api.host_ctx` points at the struct itself.
pub(crate) struct HostState {
    api: abi::HostApi,
    task_id: String,
    plugin: String,
    bindings: HostBindings,
    error: Mutex<Option<String>>,
}

// SAFETY: `api.host_ctx` only points back at this (immutable after construction) struct; every
// other field is Send + Sync.
unsafe impl Send for HostState {}
// SAFETY: as above; the only mutable field is behind a Mutex.
unsafe impl Sync for HostState {}

impl HostState {
    /// Builds the state behind an `Arc`, whose address stays fixed, and points `host_ctx` at it.
    pub(crate) fn new(task_id: &str, plugin: &str, bindings: HostBindings) -> Arc<Self> {
        Arc::new_cyclic(|weak: &std::sync::Weak<HostState>| HostState {
            api: abi::HostApi {
                struct_size: size_of::<abi::HostApi>() as u32,
                abi_version: abi::ABI_VERSION,
                // The allocation's address is final already; the Arc outlives every call.
                host_ctx: weak.as_ptr().cast_mut().cast::<c_void>(),
                log: host_log,
                is_cancelled: host_is_cancelled,
                progress: host_progress,
                set_error: host_set_error,
            },
            task_id: task_id.to_owned(),
            plugin: plugin.to_owned(),
            bindings,
            error: Mutex::new(None),
        })
    }

    pub(crate) fn api(&self) -> *const abi::HostApi {
        &self.api
    }

    pub(crate) fn control(&self) -> &JobControl {
        &self.bindings.control
    }

    /// Takes the message the plugin set during the last call, clearing the slot.
    pub(crate) fn take_error(&self) -> Option<String> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Copies a message from the plugin, lossily decoding UTF-8 and cutting it at [`MAX_MESSAGE`].
///
/// # Safety
/// `msg` must point to `len` readable bytes, or be NULL.
unsafe fn copy_message(msg: *const c_char, len: usize) -> String {
    let cut = len.min(MAX_MESSAGE);
    // SAFETY: the caller's contract; `as_bytes` handles NULL and a shorter prefix is readable.
    let bytes = unsafe { abi::Str { ptr: msg, len: cut }.as_bytes() };
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if cut < len {
        text.push_str(" [truncated]");
    }
    text
}

/// Runs a callback body without letting a panic unwind into the plugin's frames (that would
/// abort the process).
fn shielded(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// # Safety
/// `host_ctx` must be the `host_ctx` of a live [`HostState`].
unsafe fn state<'a>(host_ctx: *mut c_void) -> &'a HostState {
    // SAFETY: the caller's contract; the instance holds an Arc to the state while plugins may call.
    unsafe { &*host_ctx.cast_const().cast::<HostState>() }
}

unsafe extern "C" fn host_log(host_ctx: *mut c_void, level: u32, msg: *const c_char, len: usize) {
    shielded(|| {
        // SAFETY: ABI contract: the plugin passes back our host_ctx and a readable message.
        let (state, text) = unsafe { (state(host_ctx), copy_message(msg, len)) };
        let (task_id, plugin) = (state.task_id.as_str(), state.plugin.as_str());
        match level {
            abi::LOG_ERROR => {
                tracing::error!(target: JOB_LOG_TARGET, task_id, plugin, "{text}")
            }
            abi::LOG_WARN => tracing::warn!(target: JOB_LOG_TARGET, task_id, plugin, "{text}"),
            abi::LOG_DEBUG => {
                tracing::debug!(target: JOB_LOG_TARGET, task_id, plugin, "{text}")
            }
            abi::LOG_TRACE => {
                tracing::trace!(target: JOB_LOG_TARGET, task_id, plugin, "{text}")
            }
            // Info, and any level a future plugin may invent.
            _ => tracing::info!(target: JOB_LOG_TARGET, task_id, plugin, "{text}"),
        }
    });
}

unsafe extern "C" fn host_is_cancelled(host_ctx: *mut c_void) -> i32 {
    // SAFETY: ABI contract: the plugin passes back our host_ctx. Nothing here can panic.
    i32::from(unsafe { state(host_ctx) }.bindings.control.is_cancelled())
}

unsafe extern "C" fn host_progress(host_ctx: *mut c_void, msg: *const c_char, len: usize) {
    shielded(|| {
        // SAFETY: ABI contract: the plugin passes back our host_ctx and a readable message.
        let (state, text) = unsafe { (state(host_ctx), copy_message(msg, len)) };
        tracing::info!(
            target: JOB_LOG_TARGET,
            task_id = state.task_id.as_str(),
            plugin = state.plugin.as_str(),
            progress = true,
            "progress: {text}"
        );
        if let Some(sink) = &state.bindings.progress {
            sink(&text);
        }
    });
}

unsafe extern "C" fn host_set_error(host_ctx: *mut c_void, msg: *const c_char, len: usize) {
    shielded(|| {
        // SAFETY: ABI contract: the plugin passes back our host_ctx and a readable message.
        let (state, text) = unsafe { (state(host_ctx), copy_message(msg, len)) };
        *state.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
    });
}
