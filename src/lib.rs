//! Shardex: sharded batch and daemon jobs on Apache Mesos.
//!
//! Read it bottom-up, in the order data flows:
//! - [`mesos`]: the v1 protocol layer: generated protobuf types, RecordIO framing, Mesos' JSON
//!   mapping, durations and the HTTP call/stream client both sides share.
//! - [`cron`]: the Quartz cron dialect both the scheduler and daemon jobs use.
//! - [`payload`]: the versioned `TaskInfo.data` format the scheduler writes and the executor reads.
//! - [`plugin`]: running job code: loading plugin `.so` files through the `shardex-job` C ABI,
//!   calling their jobs with cancellation, and script jobs.

pub mod cron;
pub mod mesos;
pub mod payload;
pub mod plugin;
