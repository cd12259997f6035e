//! [`JobContext`]: the owned sharding context of one task, and its C view for plugins.

use std::collections::BTreeMap;
use std::path::PathBuf;

use shardex_job::abi;

/// Everything a job is told about its task (Elastic-Job's `ShardingContext` plus properties and
/// the work directory). The executor builds it from the task payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobContext {
    /// The job's name.
    pub job_name: String,
    /// The Mesos task id.
    pub task_id: String,
    /// Number of shards of the job.
    pub sharding_total_count: u32,
    /// This task's shard.
    pub sharding_item: u32,
    /// This shard's parameter; empty when none is configured.
    pub item_parameter: String,
    /// The job-wide parameter; empty when none is configured.
    pub job_parameter: String,
    /// The job's free-form properties.
    pub properties: BTreeMap<String, String>,
    /// The task's own work directory (`<sandbox>/tasks/<task id>` under the executor); jobs
    /// write their files here and scripts run in it.
    pub work_dir: PathBuf,
    /// The executor's sandbox, where the app's files were fetched: a script's program path
    /// containing `/` is relative to it. Empty means the same as `work_dir`.
    pub sandbox: PathBuf,
}

/// A [`JobContext`] laid out as `abi::JobContext` for a plugin.
///
/// The C struct points into the owned strings; it lives behind an `Arc` (a stable address that is
/// never re-borrowed uniquely) for as long as the plugin instance that received it.
pub(crate) struct CContext {
    raw: abi::JobContext,
    // Owners of the bytes `raw` points to. Their heap buffers do not move when this struct moves
    // and are never mutated, so the pointers stay valid until the struct is dropped.
    _owned: JobContext,
    _properties: Vec<abi::Property>,
}

// SAFETY: the raw pointers refer only to data owned by this struct, which is never mutated after
// construction; sharing or sending it is as safe as sharing the owned strings.
unsafe impl Send for CContext {}
// SAFETY: as above: read-only after construction.
unsafe impl Sync for CContext {}

impl CContext {
    pub(crate) fn new(ctx: &JobContext) -> Self {
        let owned = ctx.clone();
        let properties: Vec<abi::Property> = owned
            .properties
            .iter()
            .map(|(key, value)| abi::Property {
                key: abi::Str::from_bytes(key.as_bytes()),
                value: abi::Str::from_bytes(value.as_bytes()),
            })
            .collect();
        let raw = abi::JobContext {
            struct_size: size_of::<abi::JobContext>() as u32,
            sharding_total_count: owned.sharding_total_count,
            sharding_item: owned.sharding_item,
            reserved: 0,
            job_name: abi::Str::from_bytes(owned.job_name.as_bytes()),
            task_id: abi::Str::from_bytes(owned.task_id.as_bytes()),
            item_parameter: abi::Str::from_bytes(owned.item_parameter.as_bytes()),
            job_parameter: abi::Str::from_bytes(owned.job_parameter.as_bytes()),
            properties: if properties.is_empty() {
                std::ptr::null()
            } else {
                properties.as_ptr()
            },
            property_count: properties.len(),
            work_dir: abi::Str::from_bytes(path_bytes(&owned.work_dir)),
        };
        CContext {
            raw,
            _owned: owned,
            _properties: properties,
        }
    }

    pub(crate) fn as_ptr(&self) -> *const abi::JobContext {
        &self.raw
    }
}

#[cfg(unix)]
fn path_bytes(path: &std::path::Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

#[cfg(not(unix))]
fn path_bytes(path: &std::path::Path) -> &[u8] {
    path.to_str().map(str::as_bytes).unwrap_or_default()
}
