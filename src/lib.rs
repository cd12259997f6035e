//! Shardex: sharded batch and daemon jobs on Apache Mesos.
//!
//! Read it bottom-up, in the order data flows:
//! - [`mesos`]: the v1 protocol layer: generated protobuf types, RecordIO framing, Mesos' JSON
//!   mapping, durations and the HTTP call/stream client both sides share.
//! - [`local`]: an embedded single-machine Mesos cluster (master + agent) serving the real v1
//!   APIs, for local mode and tests.

pub mod local;
pub mod mesos;
