//! Shardex: sharded batch and daemon jobs on Apache Mesos.
//!
//! Read it bottom-up, in the order data flows:
//! - [`mesos`]: the v1 protocol layer: generated protobuf types, RecordIO framing, Mesos' JSON
//!   mapping, durations and the HTTP call/stream client both sides share.
//! - [`cron`]: the Quartz cron dialect both the scheduler and daemon jobs use.
//! - [`payload`]: the versioned `TaskInfo.data` format the scheduler writes and the executor reads.
//! - [`plugin`]: running job code: loading plugin `.so` files through the `shardex-job` C ABI,
//!   calling their jobs with cancellation, and script jobs.
//! - [`status_contract`]: what the executor tells the scheduler beyond Mesos task states.
//! - [`executor`]: `shardex-executor`, the v1 custom executor that runs jobs from plugins.
//! - [`local`]: an embedded single-machine Mesos cluster (master + agent) serving the real v1
//!   APIs, for local mode and tests.
//! - [`demo`]: `shardex-scheduler demo`, the narrated first run of the whole stack.
//! - [`logging`]: log output shared by the binaries.
//! - [`scheduler`]: `shardex-scheduler`, the Mesos framework: registry, cron, queues, placement,
//!   failover, durable store and REST API.

pub mod cron;
pub mod demo;
pub mod executor;
pub mod local;
pub mod logging;
pub mod mesos;
pub mod payload;
pub mod plugin;
pub mod scheduler;
pub mod status_contract;
