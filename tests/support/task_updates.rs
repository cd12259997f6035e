//! A real agent's checkpointed status update streams: each task's `task.updates` file in the
//! agent's meta dir, `meta/slaves/<agent>/frameworks/<framework>/executors/<executor>/runs/
//! <container>/tasks/<task>/task.updates` (`src/slave/paths.cpp`).
//!
//! The agent appends one record per update it takes from the executor (or generates) and one per
//! acknowledgement of the update in flight (`src/status_update_manager/`), each written by
//! stout's `protobuf::write`: the record's size as a native-endian `uint32` (little-endian on
//! x86-64), then the serialized `mesos.internal.StatusUpdateRecord`. Those internal messages
//! (`src/messages/messages.proto`) are not in `proto/`, so the fields read here are declared by
//! hand with Mesos' field numbers; `TaskStatus` is the v1 one (wire-compatible with v0's).

use std::path::{Path, PathBuf};

use shardex::mesos::proto::v1;

/// `mesos.internal.StatusUpdateRecord`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusUpdateRecord {
    /// `Type`: `UPDATE = 0`, `ACK = 1`.
    #[prost(int32, optional, tag = "1")]
    pub r#type: Option<i32>,
    /// Set when the type is `UPDATE`.
    #[prost(message, optional, tag = "2")]
    pub update: Option<StatusUpdate>,
    /// Set when the type is `ACK`: the acknowledged update's uuid.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub uuid: Option<Vec<u8>>,
}

/// `mesos.internal.StatusUpdate` (the fields this suite reads).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusUpdate {
    #[prost(message, optional, tag = "1")]
    pub framework_id: Option<v1::FrameworkId>,
    #[prost(message, optional, tag = "2")]
    pub executor_id: Option<v1::ExecutorId>,
    #[prost(message, optional, tag = "4")]
    pub status: Option<v1::TaskStatus>,
    #[prost(double, optional, tag = "5")]
    pub timestamp: Option<f64>,
    /// Deprecated since 0.26 in favour of `status.uuid`.
    #[prost(bytes = "vec", optional, tag = "6")]
    pub uuid: Option<Vec<u8>>,
}

/// One record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// An update the agent took: its state, message and uuid (`status.uuid`).
    Update {
        state: v1::TaskState,
        message: Option<String>,
        uuid: Vec<u8>,
    },
    /// The scheduler's acknowledgement of the update with this uuid.
    Ack { uuid: Vec<u8> },
}

/// Decodes a whole `task.updates` file. A record cut short at the end (the agent is writing
/// it) is left out, as the agent's own recovery does (`ignorePartial`); anything else that does
/// not decode is an error naming the file and the offset.
pub fn read(path: &Path) -> Result<Vec<Record>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 4) {
        let size = u32::from_ne_bytes(header.try_into().expect("four bytes")) as usize;
        let Some(body) = bytes.get(at + 4..at + 4 + size) else {
            break;
        };
        let record: StatusUpdateRecord = prost::Message::decode(body).map_err(|e| {
            format!(
                "{}: the record at byte {at} is not a StatusUpdateRecord: {e}",
                path.display()
            )
        })?;
        records.push(decode(record).map_err(|e| format!("{}: byte {at}: {e}", path.display()))?);
        at += 4 + size;
    }
    Ok(records)
}

fn decode(record: StatusUpdateRecord) -> Result<Record, String> {
    match record.r#type {
        Some(0) => {
            let status = record
                .update
                .and_then(|u| u.status)
                .ok_or("an UPDATE record without update.status")?;
            Ok(Record::Update {
                state: v1::TaskState::try_from(status.state)
                    .map_err(|_| format!("unknown task state {}", status.state))?,
                message: status.message,
                uuid: status.uuid.ok_or("an UPDATE record without status.uuid")?,
            })
        }
        Some(1) => Ok(Record::Ack {
            uuid: record.uuid.ok_or("an ACK record without a uuid")?,
        }),
        other => Err(format!("record type {other:?} is neither UPDATE nor ACK")),
    }
}

/// The `task.updates` file of every task of `executor_id` (all its runs), by task id.
pub fn files_of_executor(
    agent_work_dir: &Path,
    agent_id: &str,
    framework_id: &str,
    executor_id: &str,
) -> Vec<(String, PathBuf)> {
    let runs = agent_work_dir
        .join("meta/slaves")
        .join(agent_id)
        .join("frameworks")
        .join(framework_id)
        .join("executors")
        .join(executor_id)
        .join("runs");
    let mut files = Vec::new();
    for run in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
        // `latest` is a symlink to one of the runs.
        if run.file_name() == "latest" {
            continue;
        }
        for task in std::fs::read_dir(run.path().join("tasks"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let file = task.path().join("task.updates");
            if file.is_file() {
                files.push((task.file_name().to_string_lossy().into_owned(), file));
            }
        }
    }
    files.sort();
    files
}

/// What [`check_stream`] found in a well-formed stream.
#[derive(Debug)]
pub struct Stream {
    /// Updates not acknowledged yet (the oldest is the one in flight).
    pub unacknowledged: usize,
    /// `(state, message)` of every UPDATE, in order.
    pub sequence: Vec<(v1::TaskState, Option<String>)>,
}

/// Checks one stream: every UPDATE's uuid is new, ACKs come in the order of the UPDATEs, each
/// after its UPDATE and each uuid once.
pub fn check_stream(records: &[Record]) -> Result<Stream, String> {
    let mut updates: Vec<&[u8]> = Vec::new();
    let mut sequence = Vec::new();
    let mut acked = 0;
    for (i, record) in records.iter().enumerate() {
        match record {
            Record::Update {
                state,
                message,
                uuid,
            } => {
                if updates.contains(&uuid.as_slice()) {
                    return Err(format!("record {i}: a second UPDATE with uuid {uuid:02x?}"));
                }
                updates.push(uuid);
                sequence.push((*state, message.clone()));
            }
            Record::Ack { uuid } => match updates.get(acked) {
                Some(expected) if *expected == uuid.as_slice() => acked += 1,
                Some(expected) => {
                    return Err(format!(
                        "record {i}: ACK of {uuid:02x?} while {expected:02x?} is the oldest \
                         unacknowledged update"
                    ));
                }
                None => {
                    return Err(format!(
                        "record {i}: ACK of {uuid:02x?} with no update unacknowledged"
                    ));
                }
            },
        }
    }
    Ok(Stream {
        unacknowledged: updates.len() - acked,
        sequence,
    })
}
