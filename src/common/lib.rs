//! What Shardex's executor and scheduler share (and the embedded cluster does not know):
//!
//! - [`payload`]: the versioned `TaskInfo.data` format the scheduler writes and the executor
//!   reads.
//! - [`status_contract`]: what the executor tells the scheduler beyond Mesos task states.
//! - [`cron`]: the Quartz cron dialect both the scheduler and daemon jobs use.

pub mod cron;
pub mod payload;
pub mod status_contract;
