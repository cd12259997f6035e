//! Waiting for something to happen, with a deadline: the one polling primitive of the suites
//! and their shared time bounds. Nothing here sleeps a fixed time waiting for an event; it polls
//! a probe and fails the test, naming what it waited for, when the deadline passes.

use std::future::Future;
use std::time::Duration;

/// Generous bound for anything that should happen "soon" on a loaded CI machine.
pub const SOON: Duration = Duration::from_secs(20);
/// Bound for a multi-step scenario (several launches, failovers, restarts).
pub const EVENTUALLY: Duration = Duration::from_secs(40);
/// How often a probe is asked again.
pub const POLL: Duration = Duration::from_millis(20);

/// Asks `probe` until it answers `Some`, and returns that; fails the test after `deadline`,
/// naming `what` it waited for.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a probe that is not async (a child process, a file).
pub fn eventually_blocking<T>(
    what: &str,
    deadline: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let end = std::time::Instant::now() + deadline;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// `Some(())` when `condition` holds: for probes that only say yes or no.
pub fn holds(condition: bool) -> Option<()> {
    condition.then_some(())
}
