//! Errors of the plugin layer: [`PluginError`] for finding and loading a plugin, [`JobError`] for
//! running a job. Every message names the file or the plugin it is about.

use std::io;
use std::path::PathBuf;

/// Why a plugin could not be loaded or used. These are setup errors: the executor reports them
/// as `TASK_ERROR` with the message.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The allowed root directory itself cannot be used.
    #[error("plugin root {} is unusable: {source}", root.display())]
    Root {
        /// The root as given.
        root: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The configured path is empty.
    #[error("plugin path is empty")]
    EmptyPath,
    /// The path has a `..` component.
    #[error(
        "plugin path {} contains '..'; plugin paths must name a file inside {} directly",
        path.display(), root.display()
    )]
    ParentComponent {
        /// The path as configured.
        path: PathBuf,
        /// The allowed root.
        root: PathBuf,
    },
    /// An absolute path that is not under the allowed root.
    #[error(
        "plugin path {} is outside the allowed plugin root {}",
        path.display(), root.display()
    )]
    OutsideRoot {
        /// The path as configured.
        path: PathBuf,
        /// The allowed root.
        root: PathBuf,
    },
    /// The path is under the root, but a symbolic link takes it outside.
    #[error(
        "plugin path {} resolves through a symbolic link to {}, outside the allowed plugin root {}",
        path.display(), resolved.display(), root.display()
    )]
    SymlinkEscape {
        /// The path, joined to the root.
        path: PathBuf,
        /// Where it really points.
        resolved: PathBuf,
        /// The allowed root.
        root: PathBuf,
    },
    /// Nothing exists at the path.
    #[error("plugin file {} not found", path.display())]
    NotFound {
        /// The path, joined to the root.
        path: PathBuf,
    },
    /// The path names a directory or another non-file.
    #[error("plugin path {} is not a regular file", path.display())]
    NotAFile {
        /// The resolved path.
        path: PathBuf,
    },
    /// The path could not be inspected.
    #[error("cannot inspect plugin path {}: {source}", path.display())]
    Io {
        /// The path, joined to the root.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a shared library (checked before `dlopen`).
    #[error("plugin {} is not a shared library: {reason}", path.display())]
    NotSharedLibrary {
        /// The resolved path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file is cut short: some part its headers describe lies past its end. Loading it
    /// would crash the executor with `SIGBUS`.
    #[error(
        "plugin {} is truncated: {what} ends at byte {needed} but the file has only {size} bytes",
        path.display()
    )]
    Truncated {
        /// The resolved path.
        path: PathBuf,
        /// Which part is missing.
        what: String,
        /// Where that part ends.
        needed: u64,
        /// The file's length.
        size: u64,
    },
    /// `dlopen` refused the file: not a shared library, truncated, wrong architecture, or an
    /// unresolved dependency.
    #[error("cannot load plugin {}: {reason}", path.display())]
    Open {
        /// The resolved path.
        path: PathBuf,
        /// The dynamic loader's message.
        reason: String,
    },
    /// The library does not export `shardex_job_plugin_entry`.
    #[error(
        "plugin {} does not export the entry symbol `shardex_job_plugin_entry` ({reason}); \
         build it with shardex_job::export_plugin! or define the symbol as shardex_job.h describes",
        path.display()
    )]
    MissingEntry {
        /// The resolved path.
        path: PathBuf,
        /// The dynamic loader's message.
        reason: String,
    },
    /// The entry symbol returned NULL.
    #[error("plugin {} returned a NULL descriptor from shardex_job_plugin_entry", path.display())]
    NullDescriptor {
        /// The resolved path.
        path: PathBuf,
    },
    /// The descriptor does not start with the Shardex magic.
    #[error(
        "{} is not a Shardex job plugin: its descriptor magic is {found:#010x}, expected {expected:#010x}",
        path.display()
    )]
    BadMagic {
        /// The resolved path.
        path: PathBuf,
        /// The magic the plugin has.
        found: u32,
        /// [`shardex_job::abi::MAGIC`].
        expected: u32,
    },
    /// The plugin was built for another ABI version.
    #[error(
        "plugin {} was built for Shardex plugin ABI {found}, this executor supports {supported}; \
         rebuild it against the matching shardex-job SDK",
        path.display()
    )]
    AbiMismatch {
        /// The resolved path.
        path: PathBuf,
        /// The plugin's ABI version.
        found: u32,
        /// The executor's ABI version.
        supported: u32,
    },
    /// The descriptor is smaller than this ABI version's.
    #[error(
        "plugin {} has a {found}-byte descriptor, but Shardex plugin ABI {abi} needs at least {needed} bytes",
        path.display()
    )]
    DescriptorTooSmall {
        /// The resolved path.
        path: PathBuf,
        /// The size the plugin declares.
        found: u32,
        /// The size the executor reads.
        needed: usize,
        /// The ABI version both agree on.
        abi: u32,
    },
    /// The descriptor breaks a rule of the ABI (NULL name, missing function, no kinds, ...).
    #[error("plugin {} has an invalid descriptor: {reason}", path.display())]
    BadDescriptor {
        /// The resolved path.
        path: PathBuf,
        /// The broken rule.
        reason: String,
    },
    /// The job configuration asks for a kind the plugin does not implement.
    #[error(
        "plugin {name} ({}) does not implement {kind} jobs; it implements: {available}",
        path.display()
    )]
    KindNotImplemented {
        /// The resolved path.
        path: PathBuf,
        /// The plugin's name.
        name: String,
        /// The kind asked for.
        kind: super::JobKind,
        /// What the plugin offers.
        available: super::JobKinds,
    },
}

/// Why a job run did not succeed.
///
/// The executor maps the variants to task states: `Failed` follows the job's error policy,
/// `Panicked` and `Setup` are `TASK_ERROR` (a broken plugin or configuration). A plugin that
/// aborts or crashes takes the executor process with it; that cannot be reported here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The job ran and reported an error (an exception in Elastic-Job terms), or a script exited
    /// unsuccessfully.
    #[error("{0}")]
    Failed(String),
    /// The plugin panicked (caught inside the plugin by the SDK) or otherwise broke the ABI. The
    /// instance is not called again.
    #[error("job panicked: {0}")]
    Panicked(String),
    /// The job could not be started: kind not implemented, unusable script command line,
    /// program that cannot be spawned.
    #[error("{0}")]
    Setup(String),
}

impl JobError {
    /// The message without the variant's prefix.
    pub fn message(&self) -> &str {
        match self {
            JobError::Failed(m) | JobError::Panicked(m) | JobError::Setup(m) => m,
        }
    }
}
