//! Shardex: sharded batch and daemon jobs on Apache Mesos.
//!
//! This crate only gathers the parts, one crate each, under one name for the integration
//! tests, examples and benchmarks. Read them bottom-up, in the order data flows:
//! - [`mesos`] (`src/mesos/`, crate `shardex-mesos`): the v1 protocol layer: generated
//!   protobuf types, RecordIO framing, Mesos' JSON mapping, durations and the HTTP call/stream
//!   client both sides share.
//! - [`cron`], [`payload`], [`status_contract`] (`src/common/`, crate `shardex-common`): what
//!   the executor and the scheduler share; [`logging`] (`src/logging/`): the binaries' logs.
//! - [`executor`] and [`plugin`] (`src/executor/`, crate `shardex-executor`): the v1 custom
//!   executor and the plugin host that runs jobs.
//! - [`local`] (`src/local/`, crate `shardex-local`): an embedded single-machine Mesos
//!   cluster serving the real v1 APIs; it knows nothing of Shardex's payload.
//! - [`scheduler`] (`src/scheduler/`, crate `shardex-scheduler`): the Mesos framework.
//!
//! The binaries' sources are in `src/bin/`; `docs/architecture.md` follows one LAUNCH and one
//! status update through the files.

pub use shardex_common::{cron, payload, status_contract};
pub use shardex_executor as executor;
pub use shardex_executor::plugin;
pub use shardex_local as local;
pub use shardex_logging as logging;
pub use shardex_mesos as mesos;
pub use shardex_scheduler as scheduler;
