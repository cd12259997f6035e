//! High availability on ZooKeeper: several schedulers share one ZooKeeper store, one leads.
//!
//! - `election.rs`: who leads (ephemeral sequential nodes, each watching the one below).
//! - `standby.rs`: what a standby answers on the REST API (reads from the shared state).
//! - `lease.rs`: whether the leader may act right now (its session confirmed recently enough).
//! - [`keep_lease`]: the leader's keeper task, pinging the epoch node and following the
//!   session's state, until the lease is lost.
//!
//! The leader takes the store's epoch (fencing every later write, see `store/zookeeper.rs`),
//! then runs exactly as a single scheduler does, its owner and driver waiting on the lease.

pub mod election;
pub mod lease;
pub mod run;
pub mod standby;
pub mod status;

pub use election::{Candidate, CandidateInfo, ElectionError};
pub use lease::{Gate, Lease};

use tokio::time::Instant;
use zookeeper_client as zk;

/// Keeps a leader's lease: every third of the lease, a round trip reading the epoch node
/// (confirming the session, and that `epoch` is still the current one); session state changes
/// as they come. Returns why the lease was lost: the session expired or closed, or another
/// scheduler took the epoch.
pub async fn keep_lease(client: zk::Client, epoch_path: String, epoch: i32, gate: Gate) -> String {
    let limit = {
        let mut limit = None;
        gate.update(|lease| limit = Some(lease.limit()));
        limit.unwrap_or(std::time::Duration::from_secs(5))
    };
    let mut states = client.state_watcher();
    let mut tick = tokio::time::interval(limit / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lose = |why: String| {
        gate.update(|lease| lease.lose(why.clone()));
        why
    };
    loop {
        tokio::select! {
            state = states.changed() => match state {
                zk::SessionState::Disconnected => {
                    tracing::warn!("ZooKeeper connection lost: not acting until it is confirmed");
                    gate.update(Lease::disconnected);
                }
                zk::SessionState::SyncConnected => gate.update(Lease::reconnected),
                zk::SessionState::Expired => return lose("the ZooKeeper session expired".into()),
                zk::SessionState::Closed => return lose("the ZooKeeper session was closed".into()),
                zk::SessionState::AuthFailed => {
                    return lose("ZooKeeper authentication failed".into());
                }
                _ => {}
            },
            _ = tick.tick() => {
                let sent = Instant::now();
                let read = tokio::time::timeout(limit, client.check_stat(&epoch_path)).await;
                match read {
                    Ok(Ok(Some(stat))) if stat.version == epoch => {
                        gate.update(|lease| lease.confirmed(sent));
                    }
                    Ok(Ok(Some(stat))) => {
                        return lose(format!(
                            "another scheduler took the epoch ({epoch} is now {})",
                            stat.version
                        ));
                    }
                    Ok(Ok(None)) => return lose(format!("{epoch_path} was deleted")),
                    Ok(Err(zk::Error::SessionExpired)) => {
                        return lose("the ZooKeeper session expired".into());
                    }
                    // Connection trouble: no confirmation, so the lease runs out by itself.
                    Ok(Err(error)) => tracing::warn!(%error, "cannot confirm the lease"),
                    Err(_) => tracing::warn!(?limit, "no answer from ZooKeeper to confirm the lease"),
                }
            }
        }
    }
}
