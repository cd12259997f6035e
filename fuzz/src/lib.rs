//! Fuzz targets: each takes arbitrary bytes and checks a property, panicking when it does not
//! hold. The same functions serve AFL++ (`src/bin/`, `cargo afl build --features afl`) and
//! `cargo test`, which replays every input kept under `fuzz/seeds/<target>/` and
//! `fuzz/regressions/<target>/` (the inputs of every failure found, kept once fixed).
//!
//! | target | what it feeds | what must hold |
//! |---|---|---|
//! | [`recordio`] | a byte stream, in chunks the input chooses | no panic; no record above the limit; the same records and outcome however the stream is cut |
//! | [`payload`] | `TaskInfo.data` | no panic; what decodes re-encodes and decodes to the same payload |
//! | [`json`] | a JSON scheduler or executor event | no panic; what decodes survives a JSON round trip |
//! | [`executor`] | a program of agent events, answers, job reports and time | no panic; every UPDATE names a launched task with a fresh 16-byte uuid; nothing after EXIT |
//! | [`scheduler`] | a program of status updates, offers, triggers, reconnections and time | no panic; never two live tasks of one item; never an item both parked and queued for failover; every ACKNOWLEDGE answers an update that was sent |

mod reader;
mod targets;

pub use reader::Reader;
pub use targets::executor::executor;
pub use targets::scheduler::scheduler;
pub use targets::{json, payload, recordio};

/// A target: arbitrary bytes in, a panic when its property does not hold.
pub type Target = fn(&[u8]);

/// The targets by name, for replaying inputs.
pub const TARGETS: &[(&str, Target)] = &[
    ("recordio", recordio),
    ("payload", payload),
    ("json", json),
    ("executor", executor),
    ("scheduler", scheduler),
];
