//! Plugin-suite helpers: installing example plugins into a sandbox, compiling C test plugins
//! with gcc, capturing `tracing` events, and waiting for a condition with a deadline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardex::plugin::JobContext;

use super::example_plugin;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// The repository root (where `Cargo.toml` of the `shardex` crate is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary directory acting as the executor's sandbox / plugin root.
pub fn sandbox() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("shardex-plugin-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Copies an example plugin into `dir` under `file_name`, returning the copy's path.
///
/// Never over an existing file: `fs::copy` rewrites the destination in place, and rewriting a
/// library this process has mapped crashes it (the same is true of a running executor, which is
/// why plugins are replaced by restarting it, never by overwriting them).
pub fn install_example(dir: &Path, lib_name: &str, file_name: &str) -> PathBuf {
    let to = dir.join(file_name);
    assert!(
        !to.exists(),
        "{} exists already; load it once and reuse the plugin",
        to.display()
    );
    std::fs::copy(example_plugin(lib_name), &to).expect("copy the example plugin");
    to
}

/// Compiles C `sources` into the shared library `out` with gcc, the SDK header on the include
/// path and `defines` as `-D` flags. Panics with gcc's output on failure.
pub fn compile_c(sources: &[&Path], out: &Path, defines: &[&str]) {
    let include = repo_root().join("jobs/sdk/include");
    let mut gcc = Command::new("gcc");
    gcc.args([
        "-shared", "-fPIC", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I",
    ])
    .arg(&include)
    .arg("-o")
    .arg(out);
    for define in defines {
        gcc.arg(format!("-D{define}"));
    }
    gcc.args(sources);
    let output = gcc
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc (needed to build the C test plugins): {e}"));
    assert!(
        output.status.success(),
        "gcc failed for {}:\n{}",
        out.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Compiles a C program (not a library) with the SDK header on the include path.
pub fn compile_c_program(source: &Path, out: &Path) {
    let include = repo_root().join("jobs/sdk/include");
    let output = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(out)
        .arg(source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc: {e}"));
    assert!(
        output.status.success(),
        "gcc failed for {}:\n{}",
        out.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A C source under `tests/support/c/`.
pub fn c_source(name: &str) -> PathBuf {
    repo_root().join("tests/support/c").join(name)
}

/// A job context with the given names, work directory and no properties.
pub fn context(job_name: &str, task_id: &str, work_dir: &Path) -> JobContext {
    JobContext {
        job_name: job_name.to_owned(),
        task_id: task_id.to_owned(),
        sharding_total_count: 3,
        sharding_item: 1,
        item_parameter: "beta".to_owned(),
        job_parameter: String::new(),
        properties: BTreeMap::new(),
        work_dir: work_dir.to_path_buf(),
        sandbox: work_dir.to_path_buf(),
    }
}

/// Polls `condition` every few milliseconds until it holds or `timeout` passes; returns whether
/// it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(super::POLL);
    }
}

/// One captured `tracing` event.
#[derive(Debug, Clone)]
pub struct Event {
    pub level: tracing::Level,
    pub target: String,
    /// Every field as text; the message is under `"message"`.
    pub fields: BTreeMap<String, String>,
}

impl Event {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Collects events from the current thread's dispatcher (and threads that inherit it).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<Event>>>);

impl Captured {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    /// Events whose message equals `message`.
    pub fn with_message(&self, message: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.field("message") == Some(message))
            .collect()
    }
}

struct FieldText<'a>(&'a mut BTreeMap<String, String>);

impl Visit for FieldText<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut FieldText(&mut fields));
        self.0.lock().unwrap().push(Event {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields,
        });
    }
}

/// Captures events on this thread until the guard is dropped.
pub fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(captured.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}
