//! # Writing Shardex job plugins
//!
//! A Shardex job plugin is a shared library (`.so`) that the Shardex executor loads at run time
//! and calls through a small, versioned C ABI. This crate is the Rust SDK for it: implement
//! [`SimpleJob`] and/or [`DataflowJob`], invoke [`export_plugin!`] once, and build a `cdylib`.
//! Plugins never link against the executor; everything they need from it (logging,
//! cancellation, progress) arrives as a table of function pointers behind [`ShardingContext`].
//!
//! ## The job kinds
//!
//! They match Elastic-Job's:
//! - **simple** ([`SimpleJob`]): `execute(ctx)` once per run. A daemon task keeps one instance
//!   and calls `execute` once per cron fire.
//! - **dataflow** ([`DataflowJob`]): `fetch_data(ctx)` returns items, `process_data(ctx, items)`
//!   handles them. A streaming job repeats both while fetch returns items and the task is not
//!   cancelled; a non-streaming job runs them once. Whether a job streams is part of the job's
//!   configuration, not of the plugin.
//!
//! Script jobs need no plugin: the executor runs their command line directly.
//!
//! Every task gets its own instance, built by the trait's `create`, and the instance is dropped
//! when the task ends. The [`ShardingContext`] gives the job name, task id, sharding total
//! count, sharding item, item parameter, job parameter, the job's properties and the task's
//! own work directory (`<sandbox>/tasks/<task id>`), plus [`ShardingContext::is_cancelled`] and logging
//! through [`info!`], [`warn!`] and friends. Log lines land in the executor's log tagged with
//! the task id.
//!
//! ## A complete plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "word-count"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! shardex-job = { path = "../sdk" }
//! ```
//!
//! `src/lib.rs` (this example also runs as a test of the SDK):
//!
//! ```
//! use std::io::Write;
//! use shardex_job::{DataflowJob, JobError, ShardingContext, SimpleJob};
//!
//! /// Simple job: appends one line per shard to a file in the work directory.
//! struct Greeter {
//!     file_name: String,
//! }
//!
//! impl SimpleJob for Greeter {
//!     fn create(ctx: &ShardingContext) -> Result<Self, JobError> {
//!         let file_name = ctx.property("output").unwrap_or("greetings.txt").to_owned();
//!         Ok(Greeter { file_name })
//!     }
//!
//!     fn execute(&mut self, ctx: &ShardingContext) -> Result<(), JobError> {
//!         let path = ctx.work_dir().join(&self.file_name);
//!         let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
//!         writeln!(file, "hello from shard {} of {}", ctx.sharding_item(), ctx.sharding_total_count())?;
//!         shardex_job::info!(ctx, "greeted into {}", path.display());
//!         Ok(())
//!     }
//! }
//!
//! /// Dataflow job: counts down from the number in the item parameter, ten numbers a batch.
//! struct Countdown {
//!     next: u64,
//! }
//!
//! impl DataflowJob for Countdown {
//!     type Item = u64;
//!
//!     fn create(ctx: &ShardingContext) -> Result<Self, JobError> {
//!         let next = ctx.item_parameter().parse().map_err(|e| {
//!             JobError::new(format!("item parameter {:?} is not a number: {e}", ctx.item_parameter()))
//!         })?;
//!         Ok(Countdown { next })
//!     }
//!
//!     fn fetch_data(&mut self, ctx: &ShardingContext) -> Result<Vec<u64>, JobError> {
//!         if ctx.is_cancelled() {
//!             return Ok(Vec::new()); // no more data: the executor's loop ends
//!         }
//!         let batch: Vec<u64> = (0..10).map_while(|_| {
//!             let n = self.next.checked_sub(1)?;
//!             self.next = n;
//!             Some(n)
//!         }).collect();
//!         Ok(batch)
//!     }
//!
//!     fn process_data(&mut self, ctx: &ShardingContext, items: Vec<u64>) -> Result<(), JobError> {
//!         if items.contains(&13) {
//!             return Err(JobError::new("unlucky number")); // the task fails with this message
//!         }
//!         ctx.progress(&format!("{} left", self.next));
//!         Ok(())
//!     }
//! }
//!
//! shardex_job::export_plugin! {
//!     name: "greetings",
//!     version: "0.1.0", // usually env!("CARGO_PKG_VERSION")
//!     simple: Greeter,
//!     dataflow: Countdown,
//! }
//!
//! # fn main() {
//! // What the executor sees when it loads the library:
//! let descriptor = unsafe { &*shardex_job_plugin_entry() };
//! assert_eq!(descriptor.magic, shardex_job::abi::MAGIC);
//! assert_eq!(descriptor.kinds, shardex_job::abi::KIND_SIMPLE | shardex_job::abi::KIND_DATAFLOW);
//! # // And a plugin's own unit test, without an executor:
//! # let dir = std::env::temp_dir().join(format!("shardex-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let ctx = ShardingContext::builder("demo").sharding(2, 4).work_dir(&dir).build();
//! # let mut job = <Greeter as SimpleJob>::create(&ctx).unwrap();
//! # job.execute(&ctx).unwrap();
//! # let text = std::fs::read_to_string(dir.join("greetings.txt")).unwrap();
//! # assert_eq!(text, "hello from shard 2 of 4\n");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # }
//! ```
//!
//! Build it with `cargo build --release` and ship `target/release/libword_count.so` with the
//! app; the job configuration names that file, relative to the sandbox.
//!
//! ## Errors, panics and cancellation
//!
//! - Return `Err(JobError)` for an ordinary job failure; any `std::error::Error` converts with
//!   `?`. The executor applies the job's error policy.
//! - A panic never unwinds into the executor: [`export_plugin!`] wraps every entry point in
//!   `catch_unwind` and reports the panic message separately from ordinary errors. The executor
//!   treats a panic as a broken plugin (`TASK_ERROR`) and never calls that instance again.
//!   Plugins must therefore be built with the default `panic = "unwind"`; with
//!   `panic = "abort"` a panic ends the executor process.
//! - An `abort`, a segfault or an infinite loop that ignores cancellation cannot be contained:
//!   plugins run inside the executor process. Mesos then reports the task lost or failed and the
//!   scheduler fails the shard over.
//! - When the task is killed, [`ShardingContext::is_cancelled`] turns true. Long-running jobs
//!   should check it (it is one atomic load in the executor) and return promptly.
//!
//! ## Unit-testing a job
//!
//! [`ShardingContext::builder`] makes a context without an executor: call your job's `create`
//! and `execute` directly in ordinary `#[test]`s, and cancel through
//! [`ShardingContextBuilder::cancel_flag`].
//!
//! ## Writing a plugin in C
//!
//! `include/shardex_job.h` in this crate describes the same ABI for C (and any language with a
//! C FFI): export `shardex_job_plugin_entry` returning a static `shx_plugin_descriptor`. The
//! header documents the ownership and lifetime of every pointer. The [`abi`] module holds the
//! matching Rust definitions.
//!
//! ## Compatibility
//!
//! The descriptor carries a magic number ([`abi::MAGIC`]), the ABI version ([`abi::ABI_VERSION`])
//! and its own size. The executor refuses a plugin built for another ABI version with a message
//! naming both versions; rebuild the plugin against the matching SDK. Plugins are never
//! unloaded: to upgrade one, restart the executor.

pub mod abi;
mod context;
mod error;
mod export;
mod job;

pub use context::{Level, ShardingContext, ShardingContextBuilder};
pub use error::JobError;
pub use job::{DataflowJob, SimpleJob};

/// Implementation details of [`export_plugin!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{Absent, descriptor};
}
