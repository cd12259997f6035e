//! The executor's side of worker processes: start them, hand each a run (`Start`), send it
//! `Fire` and `Cancel`, read its reports on a thread of their own, reap it, and when it dies
//! during a run, say how ([`JobReport::Done`] with [`Outcome::Crashed`]).
//!
//! A worker serves one run at a time. When a run ends cleanly its worker goes back to the
//! [`Pool`], keyed by job and plugin, and the next task of that job starts in it without a
//! process start-up or a plugin load; a worker that was force-killed, guarded (its limits
//! cannot be raised again, and CPU time adds up over runs) or that broke the protocol is
//! retired instead. One spare, started ahead by a spawner thread, serves the first task of a job.
//!
//! Workers are spawned only from long-lived threads (the event loop's, the spawner): the
//! parent-death signal a worker arms fires when the thread that spawned it ends.
//!
//! Killing is by process group (the worker and any script it runs that stays in its group).
//! The group id stays valid while the worker is unreaped, so the reader marks the worker
//! `exited` before reaping it, and every kill checks that mark under the same lock: a signal
//! never reaches a process group id the kernel has handed out again. A kill on behalf of a
//! task also checks that the worker still serves that task's run.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

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
/// Idle workers kept per job (and plugin), and in all: enough to absorb a burst of short
/// tasks, each costing under half a MiB of memory while it waits.
const IDLE_PER_JOB: usize = 8;
const IDLE_IN_ALL: usize = 32;
/// An idle worker not used for this long is retired.
const IDLE_LIFETIME: Duration = Duration::from_secs(60);

/// One worker process: shared by the handle of the task it serves, the pool while it is idle,
/// and its supervisor thread.
#[derive(Debug)]
struct Worker {
    pid: Pid,
    /// The executor's end of the socket (the supervisor reads a clone of it).
    socket: UnixStream,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Set just before the worker is reaped: from then on its pid may belong to another.
    exited: bool,
    /// Serves no run after the current one (force-killed, guarded, or retired).
    spent: bool,
    /// The run it serves now.
    run: Option<Assignment>,
    /// How many runs it was handed: the current run's number.
    runs: u64,
}

impl State {
    /// Hands the worker its next run; that run's number.
    fn begin(&mut self, assignment: Assignment) -> u64 {
        self.runs += 1;
        self.run = Some(assignment);
        self.runs
    }

    /// Whether it is serving run `run` now.
    fn serves(&self, run: u64) -> bool {
        self.run.is_some() && self.runs == run
    }
}

/// The task a run is for.
#[derive(Debug)]
struct Assignment {
    task_id: String,
    guards: Guards,
    key: PoolKey,
}

impl Worker {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Signals the worker's process group unless it was already reaped; whether it was sent.
    fn signal(&self, state: &State, signal: Signal) -> bool {
        if state.exited {
            return false;
        }
        match killpg(self.pid, signal) {
            Ok(()) => true,
            Err(errno) => {
                debug!(pid = self.pid.as_raw(), %errno, ?signal, "cannot signal a worker's group");
                false
            }
        }
    }

    /// Tells an idle worker to exit: it sees the end of its socket between runs.
    fn retire(&self) {
        self.state().spent = true;
        let _ = self.socket.shutdown(Shutdown::Write);
    }

    /// Sends one small frame without ever blocking the event loop.
    fn send(&self, message: &ToWorker) {
        let frame = encode_frame(message);
        match send(self.socket.as_raw_fd(), &frame, MsgFlags::MSG_DONTWAIT) {
            Ok(n) if n == frame.len() => {}
            Ok(n) => error!(
                pid = self.pid.as_raw(),
                sent = n,
                "short write to a worker process"
            ),
            Err(errno) => {
                debug!(pid = self.pid.as_raw(), %errno, ?message, "worker process not told")
            }
        }
    }
}

/// Which idle workers a task may reuse: those that served the same job with the same plugin
/// (whose globals and loaded plugin it shares, as tasks share them in thread mode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    job: String,
    plugin: Option<String>,
}

impl PoolKey {
    fn of(payload: &TaskPayload) -> PoolKey {
        PoolKey {
            job: payload.context.job_name.clone(),
            plugin: payload.job.plugin.clone(),
        }
    }
}

/// A started worker process waiting for its first `Start`, and the executor's end of its socket.
type Spare = (Child, UnixStream);

/// The workers not serving a run: one spare, and the idle workers of each job.
#[derive(Debug, Default)]
pub struct Pool {
    inner: Mutex<PoolInner>,
    /// Asks the spawner thread for a spare.
    spawner: OnceLock<std_mpsc::Sender<()>>,
}

#[derive(Debug, Default)]
struct PoolInner {
    spare: Option<Spare>,
    /// A spare is being started (off the event loop).
    starting_spare: bool,
    /// The executor is exiting: no new spare.
    closed: bool,
    idle: HashMap<PoolKey, Vec<(Arc<Worker>, Instant)>>,
}

impl Pool {
    fn inner(&self) -> MutexGuard<'_, PoolInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently idle worker of `key` that is still alive, handed `assignment` under
    /// its lock (so its supervisor either sees the run or the taker sees it exited), and the
    /// run's number; the assignment back when there is none.
    fn take_idle(
        &self,
        key: &PoolKey,
        assignment: Assignment,
    ) -> Result<(Arc<Worker>, u64), Assignment> {
        let mut inner = self.inner();
        retire_stale(&mut inner, Instant::now());
        let Some(idle) = inner.idle.get_mut(key) else {
            return Err(assignment);
        };
        while let Some((worker, _)) = idle.pop() {
            let mut state = worker.state();
            if state.exited || state.spent || state.run.is_some() {
                continue;
            }
            let run = state.begin(assignment);
            drop(state);
            return Ok((worker, run));
        }
        Err(assignment)
    }

    /// Takes a worker back after a clean run. At a cap, the oldest idle worker of the job (or,
    /// at the overall cap, of any job) is retired to make room: the busiest jobs keep theirs.
    fn put_idle(&self, key: PoolKey, worker: Arc<Worker>) {
        let mut inner = self.inner();
        let now = Instant::now();
        retire_stale(&mut inner, now);
        let idle = inner.idle.entry(key).or_default();
        if idle.len() >= IDLE_PER_JOB {
            idle.remove(0).0.retire();
        }
        idle.push((worker, now));
        let total: usize = inner.idle.values().map(Vec::len).sum();
        if total > IDLE_IN_ALL {
            let oldest = inner
                .idle
                .iter()
                .filter_map(|(key, idle)| idle.first().map(|(_, since)| (*since, key.clone())))
                .min_by_key(|(since, _)| *since)
                .map(|(_, key)| key);
            if let Some(idle) = oldest.and_then(|key| inner.idle.get_mut(&key)) {
                idle.remove(0).0.retire();
            }
            inner.idle.retain(|_, idle| !idle.is_empty());
        }
    }

    fn take_spare(&self) -> Option<Spare> {
        self.inner().spare.take()
    }

    /// Has a new spare started unless there is one (or one on its way), by the spawner
    /// thread: `posix_spawn` waits for the child's `exec`, which the event loop should not.
    fn replenish(&self, env: &Arc<JobEnv>) {
        {
            let mut inner = self.inner();
            if inner.spare.is_some() || inner.starting_spare || inner.closed {
                return;
            }
            inner.starting_spare = true;
        }
        let spawner = self
            .spawner
            .get_or_init(|| start_spawner(Arc::downgrade(env)));
        if spawner.send(()).is_err() {
            self.inner().starting_spare = false;
            warn!("the spare worker spawner is gone; new jobs start their worker themselves");
        }
    }

    /// Ends the spare and every idle worker (the executor is exiting).
    pub fn kill_all(&self) {
        let mut inner = self.inner();
        inner.closed = true;
        if let Some((child, _)) = inner.spare.take() {
            end_spare(child);
        }
        for (worker, _) in inner.idle.drain().flat_map(|(_, idle)| idle) {
            let state = worker.state();
            worker.signal(&state, Signal::SIGKILL);
        }
    }
}

/// The thread that starts spares, for as long as the executor runs. It must outlive them: a
/// worker's parent-death signal fires when the *thread* that spawned it ends, not the process.
fn start_spawner(env: Weak<JobEnv>) -> std_mpsc::Sender<()> {
    let (requests, pending) = std_mpsc::channel::<()>();
    let started = std::thread::Builder::new()
        .name("worker spawner".into())
        .spawn(move || {
            while pending.recv().is_ok() {
                let Some(env) = env.upgrade() else { return };
                let spare = spawn(&env);
                let mut inner = env.pool.inner();
                inner.starting_spare = false;
                match spare {
                    Ok((child, _)) if inner.closed => end_spare(child),
                    Ok(spare) => inner.spare = Some(spare),
                    Err(e) => warn!(error = %e, "cannot start a spare worker process"),
                }
            }
        });
    if let Err(e) = started {
        // `pending` is dropped with the closure: every request fails, and tasks start their
        // workers themselves.
        warn!(error = %e, "cannot start the spare worker spawner");
    }
    requests
}

/// Kills and reaps a worker process that never got a run.
fn end_spare(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Retires the idle workers unused for [`IDLE_LIFETIME`].
fn retire_stale(inner: &mut PoolInner, now: Instant) {
    for idle in inner.idle.values_mut() {
        idle.retain(|(worker, since)| {
            let fresh = now.duration_since(*since) < IDLE_LIFETIME;
            if !fresh {
                worker.retire();
            }
            fresh
        });
    }
    inner.idle.retain(|_, idle| !idle.is_empty());
}

/// The event loop's handle on the worker serving one task's run.
#[derive(Debug)]
pub struct WorkerProcess {
    worker: Arc<Worker>,
    run: u64,
}

impl WorkerProcess {
    /// Hands one task to a worker: an idle one of its job, else the spare, else a new one.
    pub fn start(env: &Arc<JobEnv>, payload: &TaskPayload) -> std::io::Result<WorkerProcess> {
        let task_id = payload.context.task_id.clone();
        let bytes = payload
            .encode()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let key = PoolKey::of(payload);
        let guarded = payload.job.guards != Guards::default();
        let assignment = Assignment {
            task_id: task_id.clone(),
            guards: payload.job.guards,
            key: key.clone(),
        };
        // A guarded task needs a fresh process: limits only go down, CPU time only adds up.
        let reused = if guarded {
            Err(assignment)
        } else {
            env.pool.take_idle(&key, assignment)
        };
        let (worker, run) = match reused {
            Ok(reused) => reused,
            Err(assignment) => {
                let worker = start_worker(env, &payload.context.job_name)?;
                let mut state = worker.state();
                state.spent = guarded;
                let run = state.begin(assignment);
                drop(state);
                (worker, run)
            }
        };
        let start = ToWorker::Start {
            protocol: PROTOCOL_VERSION,
            run,
            sandbox: env.sandbox.to_string_lossy().into_owned(),
            payload: bytes,
        };
        // The socket buffer takes the Start frame at once (a large payload as the worker reads
        // it); a worker that died shows as a write error here and as its exit status on the
        // supervisor, which reports the run as crashed.
        if let Err(e) = write_frame(&mut &worker.socket, &start) {
            warn!(task_id, error = %e, "could not hand the task to its worker process");
        }
        debug!(
            task_id,
            pid = worker.pid.as_raw(),
            run,
            "task handed to a worker process"
        );
        Ok(WorkerProcess { worker, run })
    }

    /// Asks the job to stop cooperatively.
    pub fn cancel(&self) {
        self.worker.send(&ToWorker::Cancel { run: self.run });
    }

    /// Starts one daemon fire.
    pub fn fire(&self) {
        self.worker.send(&ToWorker::Fire { run: self.run });
    }

    /// SIGTERM to the worker's group now, SIGKILL [`TERM_TO_KILL`] later if it still lives;
    /// nothing if the worker already finished this task's run. The worker serves no more runs.
    pub fn force_kill(&self) {
        {
            let mut state = self.worker.state();
            if !state.serves(self.run) {
                return;
            }
            state.spent = true;
            if !self.worker.signal(&state, Signal::SIGTERM) {
                return;
            }
        }
        let worker = Arc::clone(&self.worker);
        let spawned = std::thread::Builder::new()
            .name("worker kill".into())
            .spawn(move || {
                std::thread::sleep(TERM_TO_KILL);
                let state = worker.state();
                worker.signal(&state, Signal::SIGKILL);
            });
        if spawned.is_err() {
            let state = self.worker.state();
            self.worker.signal(&state, Signal::SIGKILL);
        }
    }

    /// SIGKILL to the worker's group (the executor is exiting).
    pub fn kill_now(&self) {
        let state = self.worker.state();
        self.worker.signal(&state, Signal::SIGKILL);
    }
}

/// A worker process for a new task: the spare if it is still alive, else a new one. Its
/// supervisor thread runs from here.
fn start_worker(env: &Arc<JobEnv>, job: &str) -> std::io::Result<Arc<Worker>> {
    let (child, socket) = match env.pool.take_spare() {
        Some((mut child, socket)) => {
            if child.try_wait().ok().flatten().is_none() {
                (child, socket)
            } else {
                // Killed by someone while it waited.
                spawn(env)?
            }
        }
        None => spawn(env)?,
    };
    let reader = match socket.try_clone() {
        Ok(reader) => reader,
        Err(e) => {
            end_spare(child);
            return Err(e);
        }
    };
    let worker = Arc::new(Worker {
        pid: Pid::from_raw(child.id() as i32),
        socket,
        state: Mutex::new(State::default()),
    });
    let supervisor = Supervisor {
        env: Arc::clone(env),
        worker: Arc::clone(&worker),
        child,
    };
    std::thread::Builder::new()
        .name(format!("worker {job}"))
        .spawn(move || supervisor.run(reader))?;
    Ok(worker)
}

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

/// The reader thread of one worker, for its whole life: reports each frame as its current
/// run's, returns the worker to the pool when a run ends cleanly, then reaps it and names its
/// death if it died during a run.
struct Supervisor {
    env: Arc<JobEnv>,
    worker: Arc<Worker>,
    child: Child,
}

impl Supervisor {
    fn run(mut self, mut socket: UnixStream) {
        let broken = loop {
            let message = match read_frame::<FromWorker>(&mut socket) {
                Ok(Some(message)) => message,
                Ok(None) => break None,
                Err(error) => break Some(error),
            };
            let ends = message.ends_run();
            let mut state = self.worker.state();
            let Some(task_id) = state.run.as_ref().map(|a| a.task_id.clone()) else {
                break Some(FrameError::OutOfRun);
            };
            let ended = if ends { state.run.take() } else { None };
            let spent = state.spent;
            drop(state);
            // Back to the pool before the report, so the task launched right after this one's
            // end finds it.
            match ended {
                Some(ended) if !spent => {
                    self.env.pool.put_idle(ended.key, Arc::clone(&self.worker))
                }
                Some(_) => self.worker.retire(),
                None => {}
            }
            self.env.report(message.into_report(&task_id));
            if ends {
                // The next new job's worker starts now, off any task's path.
                self.env.pool.replenish(&self.env);
            }
        };
        let pid = self.worker.pid;
        if let Some(error) = &broken {
            error!(pid = pid.as_raw(), %error, "a worker process broke the protocol; killing it");
            let mut state = self.worker.state();
            state.spent = true;
            self.worker.signal(&state, Signal::SIGKILL);
        }
        // Wait for its end without reaping, mark it, then reap: see the module comment. A run
        // handed to it until the mark is this death's to report.
        if let Err(errno) = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            warn!(pid = pid.as_raw(), %errno, "cannot wait for a worker process");
        }
        let run = {
            let mut state = self.worker.state();
            state.exited = true;
            state.run.take()
        };
        let status = match self.child.wait() {
            Ok(status) => status,
            Err(error) => {
                error!(pid = pid.as_raw(), %error, "cannot reap a worker process");
                ExitStatus::from_raw(0xff << 8)
            }
        };
        let Some(run) = run else {
            debug!(pid = pid.as_raw(), %status, "worker process ended between runs");
            return;
        };
        let (cause, message) = describe(status, broken.as_ref(), &run.guards);
        warn!(task_id = run.task_id, %message, "worker process died without an outcome");
        self.env.report(JobReport::Done {
            task_id: run.task_id,
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
