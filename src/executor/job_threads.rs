//! The threads that run thread-isolated jobs, kept for the next task once a job ends.
//!
//! Starting a thread per task cost more than the rest of a no-op task's work in the executor:
//! a fresh stack mapped, guarded and faulted in, and unmapped again at exit (a TLB shoot-down
//! on every core). A thread that finishes a job now waits for the next one, up to
//! [`IDLE_LIFETIME`], and at most [`MAX_IDLE`] of them wait at once. A job never waits for a
//! thread: with none idle, a new one starts.
//!
//! Handing a job to an idle thread cannot lose it: a thread whose wait timed out leaves only
//! after taking itself off the idle list; if it is no longer there, somebody took it and is
//! sending it a job, which it then waits for.

use std::ffi::CString;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a thread with nothing to run waits for a job before it ends.
pub const IDLE_LIFETIME: Duration = Duration::from_secs(10);
/// The most threads waiting for a job at once; more end as their jobs do.
pub const MAX_IDLE: usize = 64;

/// Work for a job thread: its name (shown by `top -H`, cut to 15 bytes) and what to run.
struct Work {
    name: String,
    run: Box<dyn FnOnce() + Send>,
}

#[derive(Default)]
struct Idle {
    next_id: u64,
    /// The waiting threads, each with the way to hand it work.
    threads: Vec<(u64, Sender<Work>)>,
}

/// The job threads of one executor.
#[derive(Clone)]
pub struct JobThreads {
    idle: Arc<Mutex<Idle>>,
    lifetime: Duration,
}

impl std::fmt::Debug for JobThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobThreads")
            .field("idle", &self.idle_count())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl Default for JobThreads {
    fn default() -> JobThreads {
        JobThreads::with_idle_lifetime(IDLE_LIFETIME)
    }
}

impl JobThreads {
    /// Threads that wait `lifetime` for their next job.
    pub fn with_idle_lifetime(lifetime: Duration) -> JobThreads {
        JobThreads {
            idle: Arc::default(),
            lifetime,
        }
    }

    /// Runs `run` on an idle job thread, or on a new one named `name`.
    pub fn run(&self, name: String, run: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let mut work = Work {
            name,
            run: Box::new(run),
        };
        // The newest idle thread first: its stack is the most likely to be warm.
        while let Some((_, thread)) = self.lock().threads.pop() {
            match thread.send(work) {
                Ok(()) => return Ok(()),
                // Only a thread that ended while idle drops its receiver, and it takes itself
                // off the list first; be safe anyway and try the next.
                Err(mpsc::SendError(back)) => work = back,
            }
        }
        let idle = Arc::clone(&self.idle);
        let lifetime = self.lifetime;
        std::thread::Builder::new()
            .name(work.name.clone())
            .spawn(move || serve(&idle, lifetime, work))?;
        Ok(())
    }

    /// How many threads are waiting for a job.
    pub fn idle_count(&self) -> usize {
        self.lock().threads.len()
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        lock(&self.idle)
    }
}

fn lock(idle: &Mutex<Idle>) -> MutexGuard<'_, Idle> {
    // The lock guards a list only: a panic elsewhere cannot leave it half changed.
    idle.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A job thread's life: run the work, wait for more, end when none comes in time.
fn serve(idle: &Mutex<Idle>, lifetime: Duration, first: Work) {
    let mut work = first;
    let mut named = work.name.clone();
    loop {
        if work.name != named {
            name_this_thread(&work.name);
            named = work.name;
        }
        (work.run)();
        let (hand, wait) = mpsc::channel();
        let id = {
            let mut idle = lock(idle);
            if idle.threads.len() >= MAX_IDLE {
                return;
            }
            idle.next_id += 1;
            let id = idle.next_id;
            idle.threads.push((id, hand));
            id
        };
        work = match wait.recv_timeout(lifetime) {
            Ok(work) => work,
            Err(RecvTimeoutError::Timeout) => {
                let mut list = lock(idle);
                if let Some(at) = list.threads.iter().position(|(t, _)| *t == id) {
                    list.threads.remove(at);
                    return;
                }
                drop(list);
                // Taken off the list by a caller that is handing it work.
                match wait.recv() {
                    Ok(work) => work,
                    Err(_) => return,
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
    }
}

/// Renames the calling thread (Linux keeps 15 bytes).
fn name_this_thread(name: &str) {
    let mut bytes: Vec<u8> = name.bytes().filter(|b| *b != 0).collect();
    let mut end = bytes.len().min(15);
    while end > 0 && !name.is_char_boundary(end) {
        end -= 1;
    }
    bytes.truncate(end);
    if let Ok(name) = CString::new(bytes) {
        // Only cosmetic: a failure leaves the previous job's name.
        let _ = nix::sys::prctl::set_name(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::thread::ThreadId;

    fn thread_of(threads: &JobThreads, name: &str) -> ThreadId {
        let (tx, rx) = channel();
        threads
            .run(name.into(), move || {
                tx.send(std::thread::current().id()).unwrap();
            })
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    fn wait_idle(threads: &JobThreads, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while threads.idle_count() != n {
            assert!(std::time::Instant::now() < deadline, "never {n} idle");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_thread_that_finished_a_job_runs_the_next() {
        let threads = JobThreads::default();
        let first = thread_of(&threads, "job a");
        wait_idle(&threads, 1);
        let second = thread_of(&threads, "job b");
        assert_eq!(first, second);
        wait_idle(&threads, 1);
    }

    #[test]
    fn busy_threads_never_make_a_job_wait() {
        let threads = JobThreads::default();
        let (release, hold) = channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let (started, starts) = channel();
        for _ in 0..3 {
            let hold = Arc::clone(&hold);
            let started = started.clone();
            threads
                .run("job hold".into(), move || {
                    started.send(std::thread::current().id()).unwrap();
                    let _ = hold.lock().unwrap().recv();
                })
                .unwrap();
        }
        let mut ids: Vec<ThreadId> = (0..3)
            .map(|_| starts.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        ids.sort_by_key(|id| format!("{id:?}"));
        ids.dedup();
        assert_eq!(ids.len(), 3, "three jobs at once, three threads");
        drop(release);
        wait_idle(&threads, 3);
    }

    #[test]
    fn handing_work_to_a_thread_ending_its_wait_loses_nothing() {
        // Threads whose idle wait is about as long as the gaps between jobs: handovers race
        // with threads timing out, and every job still runs exactly once.
        let threads = JobThreads::with_idle_lifetime(Duration::from_micros(20));
        let (done, finished) = channel();
        for i in 0..2000 {
            let done = done.clone();
            threads
                .run("job race".into(), move || done.send(i).unwrap())
                .unwrap();
            if i % 7 == 0 {
                std::thread::yield_now();
            }
        }
        let mut seen: Vec<i32> = (0..2000)
            .map(|_| finished.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..2000).collect::<Vec<_>>());
    }
}
