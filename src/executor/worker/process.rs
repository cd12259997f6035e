//! The executor's side of a worker process: start it, send it `Start`, `Fire` and `Cancel`,
//! read its reports on a thread of their own, reap it, and when it dies without an outcome, say
//! how ([`JobReport::Done`] with [`Outcome::Crashed`]).
//!
//! Killing is by process group (the worker and any script it runs that stays in its group).
//! The group id stays valid while the worker is unreaped, so the reader marks the worker
//! `exited` before reaping it, and every kill checks that mark under the same lock: a signal
//! never reaches a process group id the kernel has handed out again.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::sys::socket::{MsgFlags, send};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use tracing::{debug, error, warn};

use shardex_common::payload::{Guards, TaskPayload};

use super::WORKER_PARENT_ENV;
use super::protocol::{
    FrameError, FromWorker, PROTOCOL_VERSION, ToWorker, encode_frame, read_frame, write_frame,
};
use crate::jobs::{JobEnv, JobReport, Outcome};

/// After SIGTERM to a worker's group, how long before SIGKILL.
const TERM_TO_KILL: Duration = Duration::from_secs(1);

/// One running worker process.
#[derive(Debug)]
pub struct WorkerProcess {
    task_id: String,
    pid: Pid,
    socket: UnixStream,
    /// Set (under the lock) just before the worker is reaped.
    exited: Arc<Mutex<bool>>,
}

impl WorkerProcess {
    /// Starts the worker of one task and hands it the task.
    pub fn start(env: &Arc<JobEnv>, payload: &TaskPayload) -> std::io::Result<WorkerProcess> {
        let task_id = payload.context.task_id.clone();
        let bytes = payload
            .encode()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // A spare started after the previous task is already past exec and waiting for its
        // Start frame: the task skips the process start-up. One spare serves one task only.
        let spare = env
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (mut child, mut ours) = match spare {
            Some(spare) => spare,
            None => spawn(env)?,
        };
        if child.try_wait().ok().flatten().is_some() {
            // The spare died (killed by someone): start a fresh one for this task.
            (child, ours) = spawn(env)?;
        }
        let pid = Pid::from_raw(child.id() as i32);
        let exited = Arc::new(Mutex::new(false));
        let start = ToWorker::Start {
            protocol: PROTOCOL_VERSION,
            sandbox: env.sandbox.to_string_lossy().into_owned(),
            payload: bytes,
        };
        let reader = ours.try_clone()?;
        // The socket buffer takes the Start frame at once; a worker that died at start-up shows
        // as a write error here and as its exit status on the reader.
        if let Err(e) = write_frame(&mut ours, &start) {
            warn!(task_id, error = %e, "could not hand the task to its worker process");
        }
        let supervisor = Supervisor {
            env: Arc::clone(env),
            task_id: task_id.clone(),
            guards: payload.job.guards,
            child,
            exited: Arc::clone(&exited),
        };
        std::thread::Builder::new()
            .name(format!("worker {}", payload.context.job_name))
            .spawn(move || supervisor.run(reader))?;
        debug!(task_id, pid = pid.as_raw(), "worker process started");
        // The next task's worker starts now, off that task's path.
        match spawn(env) {
            Ok(spare) => *env.spare.lock().unwrap_or_else(PoisonError::into_inner) = Some(spare),
            Err(e) => warn!(error = %e, "cannot start a spare worker process"),
        }
        Ok(WorkerProcess {
            task_id,
            pid,
            socket: ours,
            exited,
        })
    }

    /// Asks the job to stop cooperatively.
    pub fn cancel(&self) {
        self.send(&ToWorker::Cancel);
    }

    /// Starts one daemon fire.
    pub fn fire(&self) {
        self.send(&ToWorker::Fire);
    }

    /// SIGTERM to the worker's group now, SIGKILL [`TERM_TO_KILL`] later if it still lives.
    pub fn force_kill(&self) {
        if !signal_group(&self.exited, self.pid, Signal::SIGTERM) {
            return;
        }
        let (exited, pid) = (Arc::clone(&self.exited), self.pid);
        let spawned = std::thread::Builder::new()
            .name("worker kill".into())
            .spawn(move || {
                std::thread::sleep(TERM_TO_KILL);
                signal_group(&exited, pid, Signal::SIGKILL);
            });
        if spawned.is_err() {
            signal_group(&self.exited, self.pid, Signal::SIGKILL);
        }
    }

    /// SIGKILL to the worker's group (the executor is exiting).
    pub fn kill_now(&self) {
        signal_group(&self.exited, self.pid, Signal::SIGKILL);
    }

    /// Sends one small frame without ever blocking the event loop.
    fn send(&self, message: &ToWorker) {
        let frame = encode_frame(message);
        match send(self.socket.as_raw_fd(), &frame, MsgFlags::MSG_DONTWAIT) {
            Ok(n) if n == frame.len() => {}
            Ok(n) => {
                error!(
                    task_id = self.task_id,
                    sent = n,
                    "short write to a worker process"
                );
            }
            Err(errno) => {
                debug!(task_id = self.task_id, %errno, ?message, "worker process not told");
            }
        }
    }
}

/// A started worker process waiting for its Start frame, and the executor's end of its socket.
pub type Spare = (Child, UnixStream);

/// Starts a worker process. Its stdin is its end of the socket; with no pre-exec code the
/// standard library spawns with posix_spawn (no copy of the executor's page tables), and the
/// worker arms its parent-death signal itself.
fn spawn(env: &JobEnv) -> std::io::Result<Spare> {
    let (ours, theirs) = UnixStream::pair()?;
    let child = Command::new(&env.worker.program)
        .args(&env.worker.args)
        .env(WORKER_PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .process_group(0)
        .spawn()?;
    Ok((child, ours))
}

/// Ends the spare worker, if there is one (the executor is exiting).
pub fn kill_spare(env: &JobEnv) {
    if let Some((mut child, _)) = env
        .spare
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Signals the worker's process group unless it was already reaped; whether it was sent.
fn signal_group(exited: &Mutex<bool>, pid: Pid, signal: Signal) -> bool {
    let exited = exited.lock().unwrap_or_else(PoisonError::into_inner);
    if *exited {
        return false;
    }
    match killpg(pid, signal) {
        Ok(()) => true,
        Err(errno) => {
            debug!(pid = pid.as_raw(), %errno, ?signal, "cannot signal a worker's group");
            false
        }
    }
}

/// The reader thread: reports frames, then reaps the worker and names its death.
struct Supervisor {
    env: Arc<JobEnv>,
    task_id: String,
    guards: Guards,
    child: Child,
    exited: Arc<Mutex<bool>>,
}

impl Supervisor {
    fn run(mut self, mut socket: UnixStream) {
        let mut ended = false;
        let broken = loop {
            match read_frame::<FromWorker>(&mut socket) {
                Ok(Some(message)) => {
                    ended |= matches!(
                        message,
                        FromWorker::Done(_) | FromWorker::SetupFailed { .. }
                    );
                    self.env.report(message.into_report(&self.task_id));
                }
                Ok(None) => break None,
                Err(error) => break Some(error),
            }
        };
        let pid = Pid::from_raw(self.child.id() as i32);
        if let Some(error) = &broken {
            error!(task_id = self.task_id, %error, "a worker process broke the protocol; killing it");
            signal_group(&self.exited, pid, Signal::SIGKILL);
        }
        // Wait for its end without reaping, mark it, then reap: see the module comment.
        if let Err(errno) = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            warn!(task_id = self.task_id, %errno, "cannot wait for a worker process");
        }
        *self.exited.lock().unwrap_or_else(PoisonError::into_inner) = true;
        let status = match self.child.wait() {
            Ok(status) => status,
            Err(error) => {
                error!(task_id = self.task_id, %error, "cannot reap a worker process");
                ExitStatus::from_raw(0xff << 8)
            }
        };
        if ended {
            if !status.success() {
                warn!(task_id = self.task_id, %status, "worker process ended badly after its outcome");
            }
            return;
        }
        let (cause, message) = describe(status, broken.as_ref(), &self.guards);
        warn!(task_id = self.task_id, %message, "worker process died without an outcome");
        self.env.report(JobReport::Done {
            task_id: self.task_id,
            outcome: Outcome::Crashed { cause, message },
        });
    }
}

/// How a worker that gave no outcome died: a short cause for the status label, and the message.
pub fn describe(
    status: ExitStatus,
    broken: Option<&FrameError>,
    guards: &Guards,
) -> (String, String) {
    if let Some(error) = broken {
        return (
            "protocol".into(),
            format!("job process broke the worker protocol ({error}) and was killed"),
        );
    }
    if let Some(number) = status.signal() {
        let name = Signal::try_from(number)
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|_| format!("signal {number}"));
        let mut message = format!("job process killed by {name}");
        if status.core_dumped() {
            message.push_str(" (core dumped)");
        }
        let cpu_guard = guards
            .cpu_time
            .filter(|_| number == Signal::SIGXCPU as i32 || number == Signal::SIGKILL as i32);
        if let Some(seconds) = cpu_guard {
            message.push_str(&format!(
                "; its CPU-time guard is {seconds} s (SIGXCPU at the guard, SIGKILL a second later)"
            ));
        } else if number == Signal::SIGKILL as i32 {
            message.push_str(" (sent by a person or by the kernel's OOM killer)");
        }
        let memory_signal = [Signal::SIGABRT, Signal::SIGSEGV, Signal::SIGBUS]
            .iter()
            .any(|s| *s as i32 == number);
        if let Some(bytes) = guards.address_space.filter(|_| memory_signal) {
            message.push_str(&format!(
                "; its address-space guard is {bytes} bytes: an allocation past it fails, and \
                 Rust code aborts on a failed allocation"
            ));
        }
        return (name, message);
    }
    let code = status.code().unwrap_or(-1);
    (
        format!("exit {code}"),
        format!("job process exited with status {code} without reporting an outcome"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signalled(signal: Signal, core: bool) -> ExitStatus {
        ExitStatus::from_raw(signal as i32 | if core { 0x80 } else { 0 })
    }

    #[test]
    fn every_death_is_named() {
        let none = Guards::default();
        assert_eq!(
            describe(signalled(Signal::SIGSEGV, true), None, &none),
            (
                "SIGSEGV".into(),
                "job process killed by SIGSEGV (core dumped)".into()
            )
        );
        assert_eq!(
            describe(ExitStatus::from_raw(3 << 8), None, &none),
            (
                "exit 3".into(),
                "job process exited with status 3 without reporting an outcome".into()
            )
        );
        assert_eq!(
            describe(ExitStatus::from_raw(0), None, &none).0,
            "exit 0",
            "exit(0) without an outcome is a crash too"
        );
        assert!(
            describe(signalled(Signal::SIGKILL, false), None, &none)
                .1
                .contains("OOM killer")
        );
        let guarded = Guards {
            address_space: Some(64 << 20),
            cpu_time: Some(2),
            open_files: None,
        };
        let (cause, message) = describe(signalled(Signal::SIGABRT, false), None, &guarded);
        assert_eq!(cause, "SIGABRT");
        assert!(
            message.contains("address-space guard is 67108864 bytes"),
            "{message}"
        );
        assert!(
            describe(signalled(Signal::SIGXCPU, false), None, &guarded)
                .1
                .contains("CPU-time guard is 2 s")
        );
        let (cause, message) =
            describe(ExitStatus::from_raw(0), Some(&FrameError::Truncated), &none);
        assert_eq!(cause, "protocol");
        assert!(message.contains("broke the worker protocol"));
    }
}
