//! The executor ↔ worker protocol: frames of a big-endian `u32` length then the bincode 2
//! (standard configuration) encoding of one message, at most [`MAX_FRAME`] bytes.
//!
//! A worker serves runs one after another: each begins with [`ToWorker::Start`], which carries
//! [`PROTOCOL_VERSION`] (a worker that speaks another version refuses the task naming both) and
//! the run's number, and ends with the worker's [`FromWorker::Done`] or
//! [`FromWorker::SetupFailed`]. `Fire` and `Cancel` name their run, so one sent for a run that
//! has just ended never reaches the next task in the same worker. Job reports cross it both
//! ways through [`FromWorker::from_report`] and [`FromWorker::into_report`].

use std::io::{self, Read, Write};

use bincode::{Decode, Encode};

use shardex_common::status_contract::SetupScope;

use crate::jobs::{JobReport, Outcome};

/// The version this build speaks.
pub const PROTOCOL_VERSION: u16 = 2;
/// The largest frame either side accepts (a task payload is at most 1 MiB, plus a header).
pub const MAX_FRAME: usize = (1 << 20) + 4096;

/// What the executor tells a worker.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ToWorker {
    /// Set up and run this task (the `TaskInfo.data` bytes) as run number `run`.
    Start {
        protocol: u16,
        run: u64,
        sandbox: String,
        payload: Vec<u8>,
    },
    /// Run one daemon fire of run `run`.
    Fire { run: u64 },
    /// Stop run `run` cooperatively (the job sees `is_cancelled()`; a daemon takes no more
    /// fires).
    Cancel { run: u64 },
}

/// How one run ended, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum WireOutcome {
    Succeeded,
    Failed(String),
    Broken(String),
}

/// Which launches a setup error spoils.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum WireScope {
    ThisLaunch,
    Job,
    Item,
}

/// What a worker tells the executor.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum FromWorker {
    Ready {
        work_dir: String,
    },
    SetupFailed {
        message: String,
        scope: WireScope,
    },
    FireDone(WireOutcome),
    /// The last frame of a run: the worker then waits for the next `Start`.
    Done(WireOutcome),
}

impl FromWorker {
    /// Whether this is the last frame of a run.
    pub fn ends_run(&self) -> bool {
        matches!(self, FromWorker::Done(_) | FromWorker::SetupFailed { .. })
    }

    /// A job report as the worker sends it.
    pub fn from_report(report: JobReport) -> FromWorker {
        let outcome = |outcome: Outcome| match outcome {
            Outcome::Succeeded => WireOutcome::Succeeded,
            Outcome::Failed(message) => WireOutcome::Failed(message),
            Outcome::Broken(message) => WireOutcome::Broken(message),
            // Only the executor decides that a worker crashed.
            Outcome::Crashed { message, .. } => WireOutcome::Broken(message),
        };
        match report {
            JobReport::Ready { work_dir, .. } => FromWorker::Ready {
                work_dir: work_dir.to_string_lossy().into_owned(),
            },
            JobReport::SetupFailed { message, scope, .. } => FromWorker::SetupFailed {
                message,
                scope: match scope {
                    None => WireScope::ThisLaunch,
                    Some(SetupScope::Job) => WireScope::Job,
                    Some(SetupScope::Item) => WireScope::Item,
                },
            },
            JobReport::FireDone { outcome: o, .. } => FromWorker::FireDone(outcome(o)),
            JobReport::Done { outcome: o, .. } => FromWorker::Done(outcome(o)),
        }
    }

    /// The job report of task `task_id` this frame carries, back on the executor's side.
    pub fn into_report(self, task_id: &str) -> JobReport {
        let task_id = task_id.to_owned();
        let outcome = |outcome: WireOutcome| match outcome {
            WireOutcome::Succeeded => Outcome::Succeeded,
            WireOutcome::Failed(message) => Outcome::Failed(message),
            WireOutcome::Broken(message) => Outcome::Broken(message),
        };
        match self {
            FromWorker::Ready { work_dir } => JobReport::Ready {
                task_id,
                work_dir: work_dir.into(),
            },
            FromWorker::SetupFailed { message, scope } => JobReport::SetupFailed {
                task_id,
                message,
                scope: match scope {
                    WireScope::ThisLaunch => None,
                    WireScope::Job => Some(SetupScope::Job),
                    WireScope::Item => Some(SetupScope::Item),
                },
            },
            FromWorker::FireDone(o) => JobReport::FireDone {
                task_id,
                outcome: outcome(o),
            },
            FromWorker::Done(o) => JobReport::Done {
                task_id,
                outcome: outcome(o),
            },
        }
    }
}

/// A stream that is not the protocol.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("reading the worker socket failed: {0}")]
    Io(#[from] io::Error),
    #[error("a frame of {0} bytes is larger than the {MAX_FRAME} allowed")]
    TooLarge(usize),
    #[error("the stream ended inside a frame")]
    Truncated,
    #[error("a frame does not decode: {0}")]
    Malformed(String),
    #[error("a report arrived while the worker served no run")]
    OutOfRun,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME>()
}

/// One message as a frame.
pub fn encode_frame<T: Encode>(message: &T) -> Vec<u8> {
    let mut frame = vec![0; 4];
    // Encoding into a Vec cannot fail for these types.
    let body = bincode::encode_to_vec(message, config()).unwrap_or_default();
    frame[..4].copy_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Writes one frame.
pub fn write_frame<T: Encode>(to: &mut impl Write, message: &T) -> io::Result<()> {
    to.write_all(&encode_frame(message))?;
    to.flush()
}

/// Reads one frame; `None` when the stream ended cleanly between frames.
pub fn read_frame<T: Decode<()>>(from: &mut impl Read) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        match from.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0; len];
    from.read_exact(&mut body).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    let (message, used) = bincode::decode_from_slice(&body, config())
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    if used != len {
        return Err(FrameError::Malformed(format!(
            "{} bytes left over after the message",
            len - used
        )));
    }
    Ok(Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_clean_end_is_none() {
        let mut bytes = encode_frame(&FromWorker::Ready {
            work_dir: "/w".into(),
        });
        bytes.extend(encode_frame(&FromWorker::Done(WireOutcome::Failed(
            "x".into(),
        ))));
        let mut reader = bytes.as_slice();
        assert_eq!(
            read_frame::<FromWorker>(&mut reader).unwrap(),
            Some(FromWorker::Ready {
                work_dir: "/w".into()
            })
        );
        assert_eq!(
            read_frame::<FromWorker>(&mut reader).unwrap(),
            Some(FromWorker::Done(WireOutcome::Failed("x".into())))
        );
        assert_eq!(read_frame::<FromWorker>(&mut reader).unwrap(), None);
    }

    #[test]
    fn a_broken_stream_is_named() {
        let frame = encode_frame(&ToWorker::Fire { run: 7 });
        let mut cut = &frame[..frame.len() - 1];
        assert!(matches!(
            read_frame::<ToWorker>(&mut cut),
            Err(FrameError::Truncated)
        ));
        let mut huge = &[0xff, 0xff, 0xff, 0xff][..];
        assert!(matches!(
            read_frame::<ToWorker>(&mut huge),
            Err(FrameError::TooLarge(_))
        ));
        let mut garbage = &[0, 0, 0, 1, 99][..];
        assert!(matches!(
            read_frame::<ToWorker>(&mut garbage),
            Err(FrameError::Malformed(_))
        ));
    }
}
