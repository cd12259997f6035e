//! The versioned `TaskInfo.data` format: what the scheduler tells the executor about one task.
//!
//! Layout: the 4-byte magic `SHXP`, a little-endian `u16` format version, then the bincode 2
//! encoding (standard config) of [`TaskPayload`]. Decoding is bounded by [`MAX_PAYLOAD_SIZE`]
//! and every failure names what is wrong, so the executor can put it in a `TASK_ERROR` message.
//! A payload from a newer scheduler is refused naming both versions rather than misread.
//!
//! This replaces Elastic-Job-Cloud's Java-serialised map but keeps its logical fields: the
//! sharding context (task id, job name, total count, job parameter, item → parameter) and the
//! job configuration.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};

/// First bytes of every Shardex payload.
pub const MAGIC: [u8; 4] = *b"SHXP";
/// The format this build writes and the newest it reads. Version 2 added the job's isolation
/// and resource guards; a version-1 payload reads as thread isolation without guards (what an
/// executor of that time did).
pub const FORMAT_VERSION: u16 = 2;
/// Bound on an encoded payload; real ones are a few hundred bytes.
pub const MAX_PAYLOAD_SIZE: usize = 1024 * 1024;

const HEADER_LEN: usize = MAGIC.len() + 2;

/// Everything the executor needs to run one task.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct TaskPayload {
    pub context: ShardingContext,
    pub job: JobSpec,
}

/// Which sharding items this task runs, and with what parameters.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ShardingContext {
    /// The full Mesos task id.
    pub task_id: String,
    pub job_name: String,
    pub sharding_total_count: u32,
    pub job_parameter: String,
    /// The items of this task, each with its item parameter (`""` when none). The scheduler
    /// places one item per task; the format allows several.
    pub item_parameters: BTreeMap<u32, String>,
}

/// How the job runs.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct JobSpec {
    pub kind: JobKind,
    pub execution: ExecutionType,
    /// Plugin file, relative to the executor's sandbox (simple and dataflow jobs).
    pub plugin: Option<String>,
    pub error_policy: ErrorPolicy,
    /// Free-form job properties, passed to the job.
    pub properties: BTreeMap<String, String>,
    /// Where the job's code runs inside the executor.
    pub isolation: Isolation,
    /// Limits applied to the job's worker process (process isolation only).
    pub guards: Guards,
}

/// Where a task's job code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode)]
pub enum Isolation {
    /// In a worker process of its own: a crash of the job ends only its task.
    #[default]
    Process,
    /// On a thread of the executor: the least overhead, but a crash of the job ends the
    /// executor and every task in it.
    Thread,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Process => "process",
            Isolation::Thread => "thread",
        }
    }
}

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "process" => Ok(Isolation::Process),
            "thread" => Ok(Isolation::Thread),
            other => Err(format!(
                "unknown isolation '{other}'; expected 'process' or 'thread'"
            )),
        }
    }
}

/// Resource guards for a job's worker process, set with `setrlimit` before the job is loaded.
/// Guards against a runaway job, not container isolation: the executor's own container limits
/// still hold the whole executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode)]
pub struct Guards {
    /// `RLIMIT_AS`, bytes: an allocation past it fails (Rust code aborts).
    pub address_space: Option<u64>,
    /// `RLIMIT_CPU`, seconds of CPU time: SIGXCPU, then SIGKILL one second later.
    pub cpu_time: Option<u64>,
    /// `RLIMIT_NOFILE`: the most file descriptors open at once.
    pub open_files: Option<u64>,
}

impl Guards {
    pub fn is_empty(&self) -> bool {
        *self == Guards::default()
    }
}

/// Version 1 of the format, read for payloads from older schedulers.
mod v1 {
    use super::*;

    #[derive(Encode, Decode)]
    pub struct TaskPayload {
        pub context: ShardingContext,
        pub job: JobSpec,
    }

    #[derive(Encode, Decode)]
    pub struct JobSpec {
        pub kind: JobKind,
        pub execution: ExecutionType,
        pub plugin: Option<String>,
        pub error_policy: ErrorPolicy,
        pub properties: BTreeMap<String, String>,
    }

    impl From<TaskPayload> for super::TaskPayload {
        fn from(old: TaskPayload) -> super::TaskPayload {
            super::TaskPayload {
                context: old.context,
                job: super::JobSpec {
                    kind: old.job.kind,
                    execution: old.job.execution,
                    plugin: old.job.plugin,
                    error_policy: old.job.error_policy,
                    properties: old.job.properties,
                    isolation: Isolation::Thread,
                    guards: Guards::default(),
                },
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum JobKind {
    /// `execute(ctx)` once per run.
    Simple,
    /// `fetch_data` then `process_data`; streaming loops while fetch returns data.
    Dataflow { streaming: bool },
    /// A command line run with the sharding context as one JSON argument.
    Script { command_line: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ExecutionType {
    /// Run once, then finish.
    Transient,
    /// Stay running; the executor fires the job on `cron` itself.
    Daemon {
        cron: String,
        /// Run a fire that was missed while the previous one ran (once), instead of skipping it.
        misfire: bool,
    },
}

/// What a job error does to the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode)]
pub enum ErrorPolicy {
    /// `TASK_FAILED` with the error message.
    #[default]
    Fail,
    /// `TASK_FINISHED` with the error message (Elastic-Job-Cloud's behaviour).
    Log,
    /// `TASK_ERROR`, and the executor stops itself.
    Stop,
}

impl ErrorPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorPolicy::Fail => "fail",
            ErrorPolicy::Log => "log",
            ErrorPolicy::Stop => "stop",
        }
    }
}

impl std::str::FromStr for ErrorPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "fail" => Ok(ErrorPolicy::Fail),
            "log" => Ok(ErrorPolicy::Log),
            "stop" => Ok(ErrorPolicy::Stop),
            other => Err(format!(
                "unknown error policy '{other}'; expected 'fail', 'log' or 'stop'"
            )),
        }
    }
}

/// Why `TaskInfo.data` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("task payload is missing: TaskInfo.data is empty")]
    Empty,
    #[error("task payload is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error(
        "task payload does not start with the Shardex magic 'SHXP' (found {found:02x?}): the \
         task was not launched by a Shardex scheduler"
    )]
    BadMagic { found: Vec<u8> },
    #[error("task payload is truncated: {size} bytes, shorter than its {HEADER_LEN}-byte header")]
    TruncatedHeader { size: usize },
    #[error(
        "task payload has format version {found}, but this executor reads versions up to \
         {supported}; upgrade the executor"
    )]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("task payload (format version {version}) is malformed: {reason}")]
    Malformed { version: u16, reason: String },
    #[error("task payload has {extra} unexpected bytes after its end")]
    TrailingBytes { extra: usize },
    #[error("task payload is invalid: {field} {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_PAYLOAD_SIZE>()
}

impl TaskPayload {
    /// Encodes the payload for `TaskInfo.data`.
    pub fn encode(&self) -> Result<Vec<u8>, PayloadError> {
        self.validate()?;
        let body = bincode::encode_to_vec(self, config()).map_err(|e| PayloadError::Malformed {
            version: FORMAT_VERSION,
            reason: e.to_string(),
        })?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&body);
        if out.len() > MAX_PAYLOAD_SIZE {
            return Err(PayloadError::TooLarge {
                size: out.len(),
                max: MAX_PAYLOAD_SIZE,
            });
        }
        Ok(out)
    }

    /// Decodes and validates `TaskInfo.data`.
    pub fn decode(data: &[u8]) -> Result<TaskPayload, PayloadError> {
        if data.is_empty() {
            return Err(PayloadError::Empty);
        }
        if data.len() > MAX_PAYLOAD_SIZE {
            return Err(PayloadError::TooLarge {
                size: data.len(),
                max: MAX_PAYLOAD_SIZE,
            });
        }
        let magic_len = data.len().min(MAGIC.len());
        if data[..magic_len] != MAGIC[..magic_len] {
            return Err(PayloadError::BadMagic {
                found: data[..magic_len].to_vec(),
            });
        }
        if data.len() < HEADER_LEN {
            return Err(PayloadError::TruncatedHeader { size: data.len() });
        }
        let version = u16::from_le_bytes([data[4], data[5]]);
        if version > FORMAT_VERSION || version == 0 {
            return Err(PayloadError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let malformed = |e: bincode::error::DecodeError| PayloadError::Malformed {
            version,
            reason: e.to_string(),
        };
        let body = &data[HEADER_LEN..];
        let (payload, used): (TaskPayload, usize) = if version == 1 {
            let (old, used): (v1::TaskPayload, usize) =
                bincode::decode_from_slice(body, config()).map_err(malformed)?;
            (old.into(), used)
        } else {
            bincode::decode_from_slice(body, config()).map_err(malformed)?
        };
        let extra = data.len() - HEADER_LEN - used;
        if extra > 0 {
            return Err(PayloadError::TrailingBytes { extra });
        }
        payload.validate()?;
        Ok(payload)
    }

    /// Checks what the type system cannot.
    pub fn validate(&self) -> Result<(), PayloadError> {
        let invalid = |field, reason: String| Err(PayloadError::Invalid { field, reason });
        let context = &self.context;
        if context.task_id.is_empty() {
            return invalid("context.task_id", "is empty".into());
        }
        if context.job_name.is_empty() {
            return invalid("context.job_name", "is empty".into());
        }
        if context.sharding_total_count == 0 {
            return invalid("context.sharding_total_count", "is 0".into());
        }
        if context.item_parameters.is_empty() {
            return invalid("context.item_parameters", "names no sharding item".into());
        }
        if let Some(item) = context
            .item_parameters
            .keys()
            .find(|item| **item >= context.sharding_total_count)
        {
            return invalid(
                "context.item_parameters",
                format!(
                    "holds item {item}, outside 0..{}",
                    context.sharding_total_count
                ),
            );
        }
        match (&self.job.kind, &self.job.plugin) {
            (JobKind::Script { command_line }, _) if command_line.trim().is_empty() => invalid(
                "job.kind",
                "is a script job with an empty command line".into(),
            ),
            (JobKind::Simple | JobKind::Dataflow { .. }, None) => invalid(
                "job.plugin",
                "is missing; simple and dataflow jobs need a plugin file".into(),
            ),
            (JobKind::Simple | JobKind::Dataflow { .. }, Some(path)) if path.is_empty() => {
                invalid("job.plugin", "is empty".into())
            }
            _ => Ok(()),
        }?;
        if let ExecutionType::Daemon { cron, .. } = &self.job.execution
            && cron.trim().is_empty()
        {
            return invalid("job.execution", "is daemon with an empty cron".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TaskPayload {
        TaskPayload {
            context: ShardingContext {
                task_id: "demo@-@1@-@READY@-@agent-S0@-@0c5f".into(),
                job_name: "demo".into(),
                sharding_total_count: 3,
                job_parameter: "p".into(),
                item_parameters: BTreeMap::from([(1, "b".into())]),
            },
            job: JobSpec {
                kind: JobKind::Dataflow { streaming: true },
                execution: ExecutionType::Daemon {
                    cron: "0/5 * * * * ?".into(),
                    misfire: false,
                },
                plugin: Some("plugins/libdemo.so".into()),
                error_policy: ErrorPolicy::Log,
                properties: BTreeMap::from([("k".into(), "v".into())]),
                isolation: Isolation::Process,
                guards: Guards {
                    address_space: Some(256 << 20),
                    cpu_time: None,
                    open_files: Some(64),
                },
            },
        }
    }

    #[test]
    fn a_version_1_payload_reads_as_thread_isolation_without_guards() {
        let new = sample();
        let old = v1::TaskPayload {
            context: new.context.clone(),
            job: v1::JobSpec {
                kind: new.job.kind.clone(),
                execution: new.job.execution.clone(),
                plugin: new.job.plugin.clone(),
                error_policy: new.job.error_policy,
                properties: new.job.properties.clone(),
            },
        };
        let mut bytes = b"SHXP\x01\x00".to_vec();
        bytes.extend(bincode::encode_to_vec(&old, config()).unwrap());
        let read = TaskPayload::decode(&bytes).unwrap();
        assert_eq!(read.job.isolation, Isolation::Thread);
        assert_eq!(read.job.guards, Guards::default());
        assert_eq!(read.context, new.context);
        assert_eq!(read.job.properties, new.job.properties);
    }

    #[test]
    fn round_trips() {
        let bytes = sample().encode().unwrap();
        assert_eq!(&bytes[..6], b"SHXP\x02\x00");
        assert_eq!(TaskPayload::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn every_malformed_payload_is_named() {
        let good = sample().encode().unwrap();
        assert_eq!(TaskPayload::decode(b""), Err(PayloadError::Empty));
        assert_eq!(
            TaskPayload::decode(b"payload-t1"),
            Err(PayloadError::BadMagic {
                found: b"payl".to_vec()
            })
        );
        assert_eq!(
            TaskPayload::decode(b"SHXP\x01"),
            Err(PayloadError::TruncatedHeader { size: 5 })
        );
        let mut newer = good.clone();
        newer[4] = 3;
        let error = TaskPayload::decode(&newer).unwrap_err();
        assert_eq!(
            error,
            PayloadError::UnsupportedVersion {
                found: 3,
                supported: 2
            }
        );
        assert_eq!(
            error.to_string(),
            "task payload has format version 3, but this executor reads versions up to 2; \
             upgrade the executor"
        );
        assert!(matches!(
            TaskPayload::decode(&good[..good.len() - 3]),
            Err(PayloadError::Malformed { version: 2, .. })
        ));
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(
            TaskPayload::decode(&longer),
            Err(PayloadError::TrailingBytes { extra: 1 })
        );
        assert!(matches!(
            TaskPayload::decode(&vec![b'S'; MAX_PAYLOAD_SIZE + 1]),
            Err(PayloadError::TooLarge { .. })
        ));
    }

    #[test]
    fn refuses_semantically_invalid_payloads() {
        let mut payload = sample();
        payload.context.item_parameters = BTreeMap::from([(3, String::new())]);
        assert_eq!(
            payload.encode().unwrap_err().to_string(),
            "task payload is invalid: context.item_parameters holds item 3, outside 0..3"
        );
        let mut payload = sample();
        payload.job.plugin = None;
        assert!(matches!(
            payload.encode(),
            Err(PayloadError::Invalid {
                field: "job.plugin",
                ..
            })
        ));
        let mut payload = sample();
        payload.job.kind = JobKind::Script {
            command_line: "  ".into(),
        };
        assert!(payload.encode().is_err());
    }
}
