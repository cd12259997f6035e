//! The leader's lease: whether this scheduler may act on Mesos (ACCEPT, ACKNOWLEDGE, KILL,
//! anything) right now.
//!
//! ZooKeeper expires a session `session_timeout` after it last heard from the client; only
//! then can another scheduler's election node become the lowest. So a leader may act only while
//! it *knows* its session is alive: it was connected and a round trip to the ensemble (a ping of
//! the epoch node, or a commit) sent less than `limit = session_timeout / 2` ago came back. A
//! leader that was frozen (SIGSTOP, a long GC) finds its last confirmation stale the moment it
//! runs again, before it has even heard from ZooKeeper, and waits; the session has by then
//! expired, the next ping says so, and the lease is lost for good.
//!
//! [`Lease`] is the rule, with the clock passed in; [`Gate`] shares it between the owner, the
//! driver and the keeper task, and lets them wait until it opens.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The lease rule, without a clock of its own.
#[derive(Debug, Clone)]
pub struct Lease {
    limit: Duration,
    connected: bool,
    confirmed_at: Option<Instant>,
    lost: Option<String>,
}

impl Lease {
    /// A lease for a session of `session_timeout`, not yet confirmed.
    pub fn new(session_timeout: Duration) -> Lease {
        Lease {
            limit: session_timeout / 2,
            connected: true,
            confirmed_at: None,
            lost: None,
        }
    }

    /// How long a confirmation lasts.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Whether the leader may act at `now`.
    pub fn may_act(&self, now: Instant) -> bool {
        self.lost.is_none()
            && self.connected
            && self
                .confirmed_at
                .is_some_and(|at| now.saturating_duration_since(at) < self.limit)
    }

    /// A round trip sent at `sent_at` came back: the session was alive then.
    pub fn confirmed(&mut self, sent_at: Instant) {
        if self.confirmed_at.is_none_or(|at| at < sent_at) {
            self.confirmed_at = Some(sent_at);
        }
    }

    /// The client lost its connection: suspect the session until a round trip confirms it.
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.confirmed_at = None;
    }

    /// The client is connected again (with the same session); a round trip still has to
    /// confirm it.
    pub fn reconnected(&mut self) {
        self.connected = true;
    }

    /// The session expired or the epoch was taken: never act again.
    pub fn lose(&mut self, why: impl Into<String>) {
        if self.lost.is_none() {
            self.lost = Some(why.into());
        }
    }

    /// Why the lease was lost, once it was.
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }
}

/// A [`Lease`] shared by the tasks that act, or a gate that is always open (no HA).
#[derive(Debug, Clone, Default)]
pub struct Gate {
    inner: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    lease: Mutex<Lease>,
    changed: Notify,
}

impl Gate {
    /// A gate that never closes: a scheduler that is the only one of its store.
    pub fn always_open() -> Gate {
        Gate { inner: None }
    }

    pub fn new(lease: Lease) -> Gate {
        Gate {
            inner: Some(Arc::new(Shared {
                lease: Mutex::new(lease),
                changed: Notify::new(),
            })),
        }
    }

    /// Whether acting is allowed now.
    pub fn is_open(&self) -> bool {
        self.with(|lease| lease.may_act(Instant::now()))
            .unwrap_or(true)
    }

    /// Returns once acting is allowed; never, once the lease is lost.
    pub async fn open(&self) {
        let Some(shared) = &self.inner else {
            return;
        };
        loop {
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            // Registered before the check: a change right after it still wakes us.
            changed.as_mut().enable();
            if self.is_open() {
                return;
            }
            changed.await;
        }
    }

    /// Applies `change` to the lease and wakes the waiters.
    pub fn update(&self, change: impl FnOnce(&mut Lease)) {
        if let Some(shared) = &self.inner {
            change(&mut shared.lease.lock().unwrap_or_else(PoisonError::into_inner));
            shared.changed.notify_waiters();
        }
    }

    /// Why the lease was lost, once it was.
    pub fn lost(&self) -> Option<String> {
        self.with(|lease| lease.lost().map(str::to_owned)).flatten()
    }

    fn with<T>(&self, read: impl FnOnce(&Lease) -> T) -> Option<T> {
        self.inner
            .as_ref()
            .map(|shared| read(&shared.lease.lock().unwrap_or_else(PoisonError::into_inner)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_for_half_a_session_after_the_last_round_trip_was_sent() {
        let start = Instant::now();
        let mut lease = Lease::new(Duration::from_secs(10));
        assert!(!lease.may_act(start), "not before the first confirmation");
        lease.confirmed(start);
        assert!(lease.may_act(start + Duration::from_millis(4999)));
        assert!(!lease.may_act(start + Duration::from_secs(5)));
        // A late answer to an older ping never moves it back.
        lease.confirmed(start + Duration::from_secs(3));
        lease.confirmed(start + Duration::from_secs(1));
        assert!(lease.may_act(start + Duration::from_millis(7999)));
        assert!(!lease.may_act(start + Duration::from_secs(8)));
    }

    #[test]
    fn a_frozen_leader_finds_its_lease_stale_before_hearing_from_zookeeper() {
        let start = Instant::now();
        let mut lease = Lease::new(Duration::from_secs(4));
        lease.confirmed(start);
        // SIGSTOP for 30 s: the monotonic clock kept going.
        assert!(!lease.may_act(start + Duration::from_secs(30)));
    }

    #[test]
    fn a_disconnection_closes_it_until_a_new_round_trip_and_loss_is_for_good() {
        let start = Instant::now();
        let mut lease = Lease::new(Duration::from_secs(10));
        lease.confirmed(start);
        lease.disconnected();
        assert!(!lease.may_act(start));
        lease.reconnected();
        assert!(!lease.may_act(start), "reconnected is not yet confirmed");
        lease.confirmed(start + Duration::from_secs(1));
        assert!(lease.may_act(start + Duration::from_secs(1)));
        lease.lose("session expired");
        lease.lose("later reason");
        lease.confirmed(start + Duration::from_secs(2));
        assert!(!lease.may_act(start + Duration::from_secs(2)));
        assert_eq!(lease.lost(), Some("session expired"));
    }

    #[tokio::test]
    async fn waiters_wake_when_the_lease_is_confirmed() {
        let gate = Gate::new(Lease::new(Duration::from_secs(10)));
        assert!(!gate.is_open());
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.open().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        gate.update(|lease| lease.confirmed(Instant::now()));
        waiter.await.unwrap();
        assert!(Gate::always_open().is_open());
    }
}
