//! The plugin ABI: the `#[repr(C)]` types and constants shared by the executor (host) and job
//! plugins, mirrored one to one by `include/shardex_job.h`.
//!
//! Only C types cross the boundary. Strings are pointer + length pairs ([`Str`]) except the
//! plugin's static name and version, which are NUL-terminated. Every pointer's owner and lifetime
//! is written next to its field; the short rule is "the side that allocated it frees it, and
//! nothing is retained past the documented lifetime".
//!
//! Rust plugin authors never touch this module directly: [`export_plugin!`](crate::export_plugin)
//! builds the descriptor and the SDK wraps the host table. It is public so that the executor and
//! hand-written plugins can share one definition.

use std::ffi::{c_char, c_void};

/// Descriptor magic: the ASCII bytes `SHXJ` read as a big-endian number (`0x5348584A`).
///
/// A wrong magic means the file is not a Shardex plugin at all, or the entry symbol returned
/// something else, so the host looks at nothing beyond the first three fields.
pub const MAGIC: u32 = 0x5348_584A;

/// The ABI version this crate describes. Any change to a struct layout or to the meaning of a
/// field bumps it; the host refuses plugins built for another version.
pub const ABI_VERSION: u32 = 1;

/// Name of the one symbol every plugin exports.
pub const ENTRY_SYMBOL: &str = "shardex_job_plugin_entry";
/// [`ENTRY_SYMBOL`] with a terminating NUL, ready for `dlsym`.
pub const ENTRY_SYMBOL_NUL: &[u8] = b"shardex_job_plugin_entry\0";

/// Bit in [`PluginDescriptor::kinds`]: the plugin implements simple jobs (`execute`).
pub const KIND_SIMPLE: u32 = 1;
/// Bit in [`PluginDescriptor::kinds`]: the plugin implements dataflow jobs (`fetch_data`,
/// `process_data`, `free_batch`).
pub const KIND_DATAFLOW: u32 = 2;
/// Every kind bit this ABI version defines.
pub const KIND_ALL: u32 = KIND_SIMPLE | KIND_DATAFLOW;

/// Return code: the call succeeded.
pub const STATUS_OK: i32 = 0;
/// Return code: the job reported an error. Its message, if any, was passed to
/// [`HostApi::set_error`] during the call.
pub const STATUS_ERROR: i32 = 1;
/// Return code: the job panicked (or, in C, hit an equivalent internal failure). The panic
/// message was passed to [`HostApi::set_error`]. The host must not call the instance again
/// except `destroy`.
pub const STATUS_PANIC: i32 = 2;

/// Log levels for [`HostApi::log`], most severe first (the same order as `tracing`).
pub const LOG_ERROR: u32 = 1;
/// Warning level.
pub const LOG_WARN: u32 = 2;
/// Info level.
pub const LOG_INFO: u32 = 3;
/// Debug level.
pub const LOG_DEBUG: u32 = 4;
/// Trace level.
pub const LOG_TRACE: u32 = 5;

/// A borrowed byte string: `len` bytes at `ptr`, **not** necessarily NUL-terminated and possibly
/// containing NUL bytes. `ptr` may be NULL only when `len` is 0. Text is UTF-8, except
/// [`JobContext::work_dir`], which holds the raw bytes of a path.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Str {
    /// First byte; owned by whoever passed the string.
    pub ptr: *const c_char,
    /// Number of bytes.
    pub len: usize,
}

impl Str {
    /// The empty string (NULL pointer, length 0).
    pub const EMPTY: Str = Str {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// Borrows `bytes` for as long as the caller keeps them alive.
    pub fn from_bytes(bytes: &[u8]) -> Str {
        Str {
            ptr: bytes.as_ptr().cast(),
            len: bytes.len(),
        }
    }

    /// The bytes, or an empty slice for a NULL pointer.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that stay valid and unchanged for `'a`.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 || self.len > isize::MAX as usize {
            return &[];
        }
        // SAFETY: non-NULL, length in range, and the caller vouches for validity for 'a.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

/// One job property (`key = value`), both borrowed [`Str`]s.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Property {
    /// Property name.
    pub key: Str,
    /// Property value.
    pub value: Str,
}

/// The sharding context of one task, owned by the host.
///
/// Lifetime: the host passes the same pointer to `create` and to every later call on that
/// instance, and keeps it and everything it points to valid and unchanged until `destroy` has
/// returned. A plugin may therefore keep pointers into it inside its instance, but not after
/// `destroy`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct JobContext {
    /// `size_of::<JobContext>()` as the host built it; later ABI minor additions append fields
    /// and plugins check this before reading them.
    pub struct_size: u32,
    /// Number of shards of the job (Elastic-Job `shardingTotalCount`).
    pub sharding_total_count: u32,
    /// This task's shard, `0 <= sharding_item < sharding_total_count`.
    pub sharding_item: u32,
    /// Always 0; keeps the layout free of implicit padding.
    pub reserved: u32,
    /// The job's name.
    pub job_name: Str,
    /// The full Mesos task id (`{job}@-@{item}@-@{type}@-@{agent}@-@{uuid}`).
    pub task_id: Str,
    /// This shard's parameter (Elastic-Job `shardingParameter`), empty when none is configured.
    pub item_parameter: Str,
    /// The job-wide parameter, empty when none is configured.
    pub job_parameter: Str,
    /// `property_count` properties; may be NULL when the count is 0. Keys are unique and sorted.
    pub properties: *const Property,
    /// Number of entries at `properties`.
    pub property_count: usize,
    /// The task's own work directory (`<sandbox>/tasks/<task id>`): raw path bytes. Jobs write
    /// their files here.
    pub work_dir: Str,
}

/// Host services, passed to `create`. Owned by the host; valid from `create` until `destroy` has
/// returned. Every function may be called from any thread while the instance lives, and each
/// receives [`HostApi::host_ctx`] as its first argument.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostApi {
    /// `size_of::<HostApi>()` as the host built it.
    pub struct_size: u32,
    /// The host's [`ABI_VERSION`].
    pub abi_version: u32,
    /// Opaque host state for this instance; pass it back unchanged.
    pub host_ctx: *mut c_void,
    /// Writes `len` bytes of UTF-8 at `msg` to the executor's log at `level` (one of the `LOG_*`
    /// constants), tagged with the task id. The host copies the bytes before returning.
    pub log:
        unsafe extern "C" fn(host_ctx: *mut c_void, level: u32, msg: *const c_char, len: usize),
    /// Returns non-zero once the task has been asked to stop. Cheap (an atomic load): call it
    /// as often as you like. Jobs should return soon after it turns non-zero.
    pub is_cancelled: unsafe extern "C" fn(host_ctx: *mut c_void) -> i32,
    /// Records a short human-readable progress note (`len` bytes of UTF-8, copied by the host).
    pub progress: unsafe extern "C" fn(host_ctx: *mut c_void, msg: *const c_char, len: usize),
    /// Sets the error message of the call in progress (`len` bytes of UTF-8, copied by the
    /// host). Call it before returning [`STATUS_ERROR`] or [`STATUS_PANIC`]; a later call
    /// replaces the earlier message.
    pub set_error: unsafe extern "C" fn(host_ctx: *mut c_void, msg: *const c_char, len: usize),
}

/// Creates an instance of one job kind for one task.
///
/// `kind` is exactly one `KIND_*` bit the plugin declared. On [`STATUS_OK`] the plugin stores its
/// instance pointer (owned by the plugin, freed by `destroy`; may be NULL if the plugin needs no
/// state) in `*instance_out`. On any other status `*instance_out` is ignored and `destroy` is
/// not called.
pub type CreateFn = unsafe extern "C" fn(
    kind: u32,
    ctx: *const JobContext,
    host: *const HostApi,
    instance_out: *mut *mut c_void,
) -> i32;

/// Frees an instance created by `create`. Called exactly once per instance, after the last call.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// Runs one fire of a simple job. A daemon task calls it once per cron fire on the same instance.
pub type ExecuteFn = unsafe extern "C" fn(instance: *mut c_void, ctx: *const JobContext) -> i32;

/// Fetches the next batch of a dataflow job.
///
/// On [`STATUS_OK`] the plugin stores an opaque batch handle it owns in `*batch_out` and the
/// number of items in `*count_out`. A count of 0 means "no more data"; its handle may be NULL.
/// Every non-NULL handle is later passed exactly once to `process_data` or `free_batch`.
pub type FetchDataFn = unsafe extern "C" fn(
    instance: *mut c_void,
    ctx: *const JobContext,
    batch_out: *mut *mut c_void,
    count_out: *mut usize,
) -> i32;

/// Processes a batch from `fetch_data`. Takes ownership of `batch` whatever it returns.
pub type ProcessDataFn =
    unsafe extern "C" fn(instance: *mut c_void, ctx: *const JobContext, batch: *mut c_void) -> i32;

/// Frees a batch the host decided not to process (the task was cancelled between fetch and
/// process). Takes ownership of `batch`. Must not fail.
pub type FreeBatchFn = unsafe extern "C" fn(instance: *mut c_void, batch: *mut c_void);

/// What [`ENTRY_SYMBOL`] returns: a pointer to a descriptor with static storage duration.
///
/// The host reads `magic`, `abi_version` and `descriptor_size` first and looks at nothing else
/// unless they match, so these three fields never move in any ABI version.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginDescriptor {
    /// [`MAGIC`].
    pub magic: u32,
    /// [`ABI_VERSION`] the plugin was built for.
    pub abi_version: u32,
    /// `size_of::<PluginDescriptor>()` in the plugin's build.
    pub descriptor_size: u32,
    /// Bitmask of `KIND_*` the plugin implements.
    pub kinds: u32,
    /// Plugin name: static, NUL-terminated UTF-8.
    pub name: *const c_char,
    /// Plugin version: static, NUL-terminated UTF-8.
    pub version: *const c_char,
    /// Required.
    pub create: Option<CreateFn>,
    /// Required.
    pub destroy: Option<DestroyFn>,
    /// Required when `kinds` has [`KIND_SIMPLE`], otherwise may be NULL.
    pub execute: Option<ExecuteFn>,
    /// Required when `kinds` has [`KIND_DATAFLOW`], otherwise may be NULL.
    pub fetch_data: Option<FetchDataFn>,
    /// Required when `kinds` has [`KIND_DATAFLOW`], otherwise may be NULL.
    pub process_data: Option<ProcessDataFn>,
    /// Required when `kinds` has [`KIND_DATAFLOW`], otherwise may be NULL.
    pub free_batch: Option<FreeBatchFn>,
}

// SAFETY: a descriptor is immutable static data; its raw pointers refer to static NUL-terminated
// strings that are never written, so sharing references across threads is sound.
unsafe impl Sync for PluginDescriptor {}

/// Signature of [`ENTRY_SYMBOL`]. Takes no arguments and must be callable any number of times.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDescriptor;

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    // The C header states these numbers for LP64 targets; the host test suite also compiles the
    // header and compares, this only guards against accidental edits here.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn layout_is_the_documented_one() {
        assert_eq!(size_of::<Str>(), 16);
        assert_eq!(size_of::<Property>(), 32);
        assert_eq!(size_of::<JobContext>(), 112);
        assert_eq!(offset_of!(JobContext, job_name), 16);
        assert_eq!(offset_of!(JobContext, work_dir), 96);
        assert_eq!(size_of::<HostApi>(), 48);
        assert_eq!(size_of::<PluginDescriptor>(), 80);
        assert_eq!(offset_of!(PluginDescriptor, name), 16);
        assert_eq!(offset_of!(PluginDescriptor, free_batch), 72);
    }

    #[test]
    fn magic_spells_shxj() {
        assert_eq!(&MAGIC.to_be_bytes(), b"SHXJ");
        assert_eq!(ENTRY_SYMBOL_NUL, format!("{ENTRY_SYMBOL}\0").as_bytes());
    }
}
