//! [`PluginLoader`]: resolves a configured plugin path inside the allowed root, checks the file's
//! ELF headers, `dlopen`s it, checks the descriptor handshake and caches one [`Plugin`] per
//! canonical path.
//!
//! Libraries are never unloaded: code, statics or threads of a plugin may still be in use after
//! its last call, and `dlclose` would turn that into a crash. Upgrading a plugin means restarting
//! the executor.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use shardex_job::abi;

use super::{JobKinds, Plugin, PluginError};

/// Loads plugins from below one allowed root directory.
#[derive(Debug)]
pub struct PluginLoader {
    /// Canonical root.
    root: PathBuf,
    /// The root as given, for the lexical check of absolute paths (it may be a symlink).
    root_as_given: PathBuf,
    cache: Mutex<HashMap<PathBuf, Arc<Plugin>>>,
}

impl PluginLoader {
    /// A loader that accepts only files inside `root` (which must exist).
    pub fn new(root: impl AsRef<Path>) -> Result<Self, PluginError> {
        let root_as_given = root.as_ref().to_path_buf();
        let root = std::fs::canonicalize(&root_as_given).map_err(|source| PluginError::Root {
            root: root_as_given.clone(),
            source,
        })?;
        if !root.is_dir() {
            return Err(PluginError::Root {
                root: root_as_given,
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        Ok(PluginLoader {
            root,
            root_as_given,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// A loader rooted at the executor's sandbox: `$MESOS_SANDBOX`, or the current directory
    /// (where the Mesos agent starts executors) when that is not set.
    pub fn for_sandbox() -> Result<Self, PluginError> {
        match std::env::var_os("MESOS_SANDBOX") {
            Some(dir) if !dir.is_empty() => Self::new(PathBuf::from(dir)),
            _ => {
                let cwd = std::env::current_dir().map_err(|source| PluginError::Root {
                    root: PathBuf::from("."),
                    source,
                })?;
                Self::new(cwd)
            }
        }
    }

    /// The canonical allowed root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Checks a configured plugin path and returns the canonical file it names.
    ///
    /// The path is relative to the root, or absolute and under it. Refused: an empty path, any
    /// `..` component, an absolute path outside the root, a path whose symbolic links lead
    /// outside the root, and anything that is not a regular file.
    pub fn resolve(&self, path: impl AsRef<Path>) -> Result<PathBuf, PluginError> {
        let path = path.as_ref();
        if path.as_os_str().is_empty() {
            return Err(PluginError::EmptyPath);
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(PluginError::ParentComponent {
                path: path.to_path_buf(),
                root: self.root.clone(),
            });
        }
        let candidate = if path.is_absolute() {
            if !path.starts_with(&self.root) && !path.starts_with(&self.root_as_given) {
                return Err(PluginError::OutsideRoot {
                    path: path.to_path_buf(),
                    root: self.root.clone(),
                });
            }
            path.to_path_buf()
        } else {
            self.root.join(path)
        };
        let resolved = std::fs::canonicalize(&candidate).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                PluginError::NotFound {
                    path: candidate.clone(),
                }
            } else {
                PluginError::Io {
                    path: candidate.clone(),
                    source,
                }
            }
        })?;
        if !resolved.starts_with(&self.root) {
            return Err(PluginError::SymlinkEscape {
                path: candidate,
                resolved,
                root: self.root.clone(),
            });
        }
        let metadata = std::fs::metadata(&resolved).map_err(|source| PluginError::Io {
            path: resolved.clone(),
            source,
        })?;
        if !metadata.is_file() {
            return Err(PluginError::NotAFile { path: resolved });
        }
        Ok(resolved)
    }

    /// Loads the plugin at `path` (see [`resolve`](Self::resolve)), or returns the one already
    /// loaded from the same canonical file.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Arc<Plugin>, PluginError> {
        let resolved = self.resolve(path)?;
        // Held across dlopen so two tasks asking for the same new plugin load it once.
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(plugin) = cache.get(&resolved) {
            return Ok(Arc::clone(plugin));
        }
        let plugin = Arc::new(open_plugin(&resolved)?);
        tracing::info!(
            path = %resolved.display(),
            name = plugin.name(),
            version = plugin.version(),
            kinds = %plugin.kinds(),
            "loaded job plugin"
        );
        cache.insert(resolved, Arc::clone(&plugin));
        Ok(plugin)
    }
}

/// `dlopen`s `path`, finds the entry symbol and validates the descriptor.
fn open_plugin(path: &Path) -> Result<Plugin, PluginError> {
    super::elf::check(path)?;
    // SAFETY: loading runs the library's initialisers. The path was checked to lie inside the
    // root the operator allowed, which is the trust decision this executor can make. RTLD_NOW
    // makes unresolved symbols fail here instead of in the middle of a job.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
        PluginError::Open {
            path: path.to_path_buf(),
            reason: error_chain(&e),
        }
    })?;
    // SAFETY: the symbol's type is fixed by the ABI; a library that exports the name with
    // another type breaks the ABI and cannot be detected before the call.
    let entry = unsafe { library.get::<abi::EntryFn>(abi::ENTRY_SYMBOL_NUL) }
        .map(|symbol| *symbol)
        .map_err(|e| PluginError::MissingEntry {
            path: path.to_path_buf(),
            reason: error_chain(&e),
        });
    // Never unloaded (see the module docs), whether or not the handshake succeeds: the
    // library's initialisers have run and may have left threads or handlers behind.
    let _leaked = library.into_raw();
    let entry = entry?;
    // SAFETY: the entry function takes no arguments and returns a pointer (ABI contract).
    let descriptor = unsafe { entry() };
    validate(path, descriptor)
}

/// The handshake: magic, version and size first, nothing else until they match.
fn validate(path: &Path, ptr: *const abi::PluginDescriptor) -> Result<Plugin, PluginError> {
    let path_buf = || path.to_path_buf();
    if ptr.is_null() {
        return Err(PluginError::NullDescriptor { path: path_buf() });
    }
    // SAFETY: every ABI version starts the descriptor with these three u32s; reading them
    // unaligned tolerates whatever a foreign library returns.
    let [magic, abi_version, size] = unsafe { ptr.cast::<[u32; 3]>().read_unaligned() };
    if magic != abi::MAGIC {
        return Err(PluginError::BadMagic {
            path: path_buf(),
            found: magic,
            expected: abi::MAGIC,
        });
    }
    if abi_version != abi::ABI_VERSION {
        return Err(PluginError::AbiMismatch {
            path: path_buf(),
            found: abi_version,
            supported: abi::ABI_VERSION,
        });
    }
    let needed = size_of::<abi::PluginDescriptor>();
    if (size as usize) < needed {
        return Err(PluginError::DescriptorTooSmall {
            path: path_buf(),
            found: size,
            needed,
            abi: abi_version,
        });
    }
    let bad = |reason: &str| PluginError::BadDescriptor {
        path: path_buf(),
        reason: reason.to_owned(),
    };
    if !ptr.is_aligned() {
        return Err(bad("the descriptor is not aligned for its pointer fields"));
    }
    // SAFETY: non-NULL, aligned, at least as large as the struct we read, and static for the
    // process lifetime because the library is never unloaded.
    let descriptor: &'static abi::PluginDescriptor = unsafe { &*ptr };

    if descriptor.kinds == 0 {
        return Err(bad("it declares no job kinds"));
    }
    if descriptor.kinds & !abi::KIND_ALL != 0 {
        return Err(bad(&format!(
            "it declares unknown job kind bits {:#x}",
            descriptor.kinds & !abi::KIND_ALL
        )));
    }
    // SAFETY (both): the ABI requires static NUL-terminated strings; NULL is refused inside.
    let name = unsafe { static_str(descriptor.name) }.map_err(|e| bad(&format!("name {e}")))?;
    let version =
        unsafe { static_str(descriptor.version) }.map_err(|e| bad(&format!("version {e}")))?;
    let (Some(create), Some(destroy)) = (descriptor.create, descriptor.destroy) else {
        return Err(bad("create or destroy is NULL"));
    };
    let kinds = JobKinds::from_bits(descriptor.kinds);
    let execute = descriptor.execute;
    if kinds.contains(super::JobKind::Simple) && execute.is_none() {
        return Err(bad("it declares simple jobs but execute is NULL"));
    }
    let dataflow = match (
        descriptor.fetch_data,
        descriptor.process_data,
        descriptor.free_batch,
    ) {
        (Some(fetch), Some(process), Some(free)) => Some(super::instance::DataflowFns {
            fetch,
            process,
            free,
        }),
        _ if kinds.contains(super::JobKind::Dataflow) => {
            return Err(bad(
                "it declares dataflow jobs but fetch_data, process_data or free_batch is NULL",
            ));
        }
        _ => None,
    };
    Ok(Plugin {
        path: path.to_path_buf(),
        name,
        version,
        kinds,
        create,
        destroy,
        execute,
        dataflow,
    })
}

/// Copies a static NUL-terminated UTF-8 string from the descriptor.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string.
unsafe fn static_str(ptr: *const std::ffi::c_char) -> Result<String, &'static str> {
    if ptr.is_null() {
        return Err("is NULL");
    }
    // SAFETY: the caller's contract.
    let text = unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| "is not UTF-8")?;
    if text.is_empty() {
        return Err("is empty");
    }
    Ok(text.to_owned())
}

/// An error and its sources as one line ("dlopen failed: <loader message>").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
