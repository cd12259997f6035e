//! [`JobControl`]: the cancellation handle the executor shares with a running job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Shared stop switch for one task. Cloning is cheap (an `Arc`); the executor keeps one clone
/// and may call [`cancel`](Self::cancel) or [`force_kill`](Self::force_kill) from any thread.
///
/// Plugins see the flag through the host table's `is_cancelled` (one atomic load). Script jobs
/// get `SIGTERM` on cancel and `SIGKILL` on force-kill, sent to the script's whole process
/// group. A plugin cannot be force-killed: it runs inside the executor process.
#[derive(Clone, Debug, Default)]
pub struct JobControl {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    killed: AtomicBool,
    /// Bumped on every state change so waiters can tell a change from a spurious wakeup.
    generation: Mutex<u64>,
    changed: Condvar,
}

impl JobControl {
    /// A fresh, not cancelled handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the job to stop. Idempotent.
    pub fn cancel(&self) {
        if !self.inner.cancelled.swap(true, Ordering::AcqRel) {
            self.notify();
        }
    }

    /// Cancels and, for script jobs, kills the process group with `SIGKILL`. Idempotent.
    pub fn force_kill(&self) {
        self.inner.cancelled.store(true, Ordering::Release);
        if !self.inner.killed.swap(true, Ordering::AcqRel) {
            self.notify();
        }
    }

    /// Whether [`cancel`](Self::cancel) or [`force_kill`](Self::force_kill) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Whether [`force_kill`](Self::force_kill) was called.
    pub fn is_force_killed(&self) -> bool {
        self.inner.killed.load(Ordering::Acquire)
    }

    /// Blocks until the job is cancelled or `timeout` passes; returns whether it is cancelled.
    pub fn wait_cancelled(&self, timeout: Duration) -> bool {
        let guard = self.lock();
        let (_guard, _) = self
            .inner
            .changed
            .wait_timeout_while(guard, timeout, |_| !self.is_cancelled())
            .unwrap_or_else(PoisonError::into_inner);
        self.is_cancelled()
    }

    /// The current change counter, for [`wait_change`](Self::wait_change).
    pub(crate) fn generation(&self) -> u64 {
        *self.lock()
    }

    /// Blocks until the state changes after `seen` or `timeout` passes; returns the counter.
    pub(crate) fn wait_change(&self, seen: u64, timeout: Duration) -> u64 {
        let guard = self.lock();
        let (guard, _) = self
            .inner
            .changed
            .wait_timeout_while(guard, timeout, |generation| *generation == seen)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        // A panic while holding this lock cannot leave the counter inconsistent.
        self.inner
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        *self.lock() += 1;
        self.inner.changed.notify_all();
    }
}
