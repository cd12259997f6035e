//! The job traits a plugin implements, matching Elastic-Job's job kinds.

use crate::{JobError, ShardingContext};

/// A simple job: one [`execute`](Self::execute) per run (per cron fire for a daemon task).
///
/// The executor creates one instance per task with [`create`](Self::create) and drops it when the
/// task ends, so state kept in `self` lives across the fires of one daemon task. Calls on one
/// instance never overlap, but may come from different threads, hence `Send`.
pub trait SimpleJob: Send + 'static {
    /// Builds the job for a task; read properties and open resources here. An error fails the
    /// task before anything ran.
    fn create(ctx: &ShardingContext) -> Result<Self, JobError>
    where
        Self: Sized;

    /// Runs the job once for this shard.
    fn execute(&mut self, ctx: &ShardingContext) -> Result<(), JobError>;
}

/// A dataflow job: [`fetch_data`](Self::fetch_data) then [`process_data`](Self::process_data).
///
/// In streaming mode the executor repeats fetch + process while fetch returns items and the task
/// has not been cancelled; otherwise it fetches and processes once. Items stay inside the plugin:
/// only an opaque handle crosses to the executor, so `Item` can be any Rust type.
pub trait DataflowJob: Send + 'static {
    /// One unit of work.
    type Item: Send + 'static;

    /// Builds the job for a task (see [`SimpleJob::create`]).
    fn create(ctx: &ShardingContext) -> Result<Self, JobError>
    where
        Self: Sized;

    /// Returns the next items to process; an empty vector means "nothing more for now".
    fn fetch_data(&mut self, ctx: &ShardingContext) -> Result<Vec<Self::Item>, JobError>;

    /// Processes items returned by the previous fetch.
    fn process_data(
        &mut self,
        ctx: &ShardingContext,
        items: Vec<Self::Item>,
    ) -> Result<(), JobError>;
}
