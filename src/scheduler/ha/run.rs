//! One scheduler of a highly available installation, from start to stop:
//!
//! 1. connect a ZooKeeper session, open the store, join the election;
//! 2. **standby**: answer reads from the shared state, `/health` with 503 `standby` naming the
//!    leader, and writes with a 503 naming the leader's REST API (`standby.rs`), until this one
//!    leads;
//! 3. **leader**: take the epoch (fencing any former leader's writes), wait for the first
//!    confirmation of its lease, load the state, and run exactly as a single scheduler does
//!    (subscribing with the stored framework id, reconciling every stored task before
//!    launching), its owner and driver acting only while the lease holds;
//! 4. until it is told to stop (it resigns: the next candidate leads at once) or loses the
//!    lease (it stops at once and returns [`SchedulerError::LeadershipLost`]: the process exits,
//!    and a supervisor restarting it makes it a standby again).

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::standby::Standby;
use super::{Candidate, CandidateInfo, Gate, Lease, keep_lease};
use crate::store::{
    ELECTION_NODE, EPOCH_NODE, Store, ZkOptions, ZkStore, ZkTarget, connect_session,
};
use crate::{Config, Scheduler, SchedulerError, now_millis};

/// Runs one HA scheduler on `config.ha.zookeeper` until `stop` is cancelled (Ok) or it stops by
/// itself (the error says why). `announce` is told the REST address once it is bound.
pub async fn run(
    config: &Config,
    listen: &str,
    master: &str,
    stop: CancellationToken,
    announce: impl FnOnce(SocketAddr),
) -> Result<(), SchedulerError> {
    let Some(zookeeper) = &config.ha.zookeeper else {
        return Err(SchedulerError::Ha(
            "the config names no ha.zookeeper to run highly available on".into(),
        ));
    };
    let target: ZkTarget = zookeeper
        .parse()
        .map_err(|e: crate::ZkTargetError| SchedulerError::Ha(e.to_string()))?;
    let options = ZkOptions {
        session_timeout: config.ha.session_timeout.0,
        digest: config.ha.digest.clone(),
        ..ZkOptions::default()
    };
    let client = connect_session(&target, &options).await?;
    let mut store = ZkStore::open(client.clone(), target.clone(), options.clone()).await?;

    let listener = bind(listen).await?;
    let rest_addr = listener
        .local_addr()
        .map_err(|source| SchedulerError::Listen {
            addr: listen.to_owned(),
            source,
        })?;
    announce(rest_addr);
    let me = CandidateInfo {
        id: format!("{}:{}", hostname(), std::process::id()),
        rest: format!("http://{rest_addr}/"),
        since: now_millis(),
    };
    let election = target.path(ELECTION_NODE);
    let acls = if options.digest.is_some() {
        zookeeper_client::Acls::creator_all()
    } else {
        zookeeper_client::Acls::anyone_all()
    };
    let candidate = Candidate::join(client.clone(), election.clone(), &me, acls).await?;
    tracing::info!(node = candidate.node(), store = %target, "joined the election as a standby");

    // Standby until this one leads. The leader serves on a duplicate of the same socket, so
    // the address never stops accepting while one hands over to the other.
    let for_leader = duplicate(&listener, listen)?;
    let standby_stop = CancellationToken::new();
    let reader = ZkStore::open(client.clone(), target.clone(), options.clone()).await?;
    let standby = tokio::spawn(serve_standby(
        listener,
        Standby::new(client.clone(), election.clone(), reader, config.clone()),
        crate::RestAuth::from_config(&config.rest)?,
        standby_stop.clone(),
    ));
    let led = tokio::select! {
        _ = stop.cancelled() => None,
        led = candidate.wait_until_leader() => Some(led),
    };
    standby_stop.cancel();
    let _ = standby.await;
    match led {
        None => {
            candidate.resign().await;
            return Ok(());
        }
        Some(Err(error)) => return Err(error.into()),
        Some(Ok(())) => {}
    }

    // Leader: fence, confirm the lease, then run.
    let epoch = store.take_epoch(&me.id).await?;
    tracing::info!(epoch, node = candidate.node(), "leading");
    let gate = Gate::new(Lease::new(options.session_timeout));
    let keeper = tokio::spawn(keep_lease(
        client.clone(),
        target.path(EPOCH_NODE),
        epoch,
        gate.clone(),
    ));
    let prepared = Scheduler::prepare_with(config, Store::ZooKeeper(Box::new(store)), for_leader)
        .await?
        .leading(gate.clone(), epoch);
    let mut scheduler = prepared.start(config, master).await?;
    let outcome = tokio::select! {
        _ = stop.cancelled() => Ok(()),
        lost = keeper => Err(SchedulerError::LeadershipLost(
            lost.unwrap_or_else(|_| "the lease keeper ended".into()),
        )),
        error = scheduler.wait() => Err(lost_or(error, &gate)),
    };
    match &outcome {
        Ok(()) => {
            scheduler.shutdown().await;
            // Handing over at once: the next candidate leads without waiting for a session
            // to expire.
            candidate.resign().await;
        }
        Err(error) => {
            tracing::error!(%error, "stopping: no longer the leader");
            scheduler.shutdown().await;
        }
    }
    outcome
}

/// What a leader's stop means: if its lease is gone, or the error says another leads now (Mesos
/// failed the framework over to it, the store fenced this one out, the session expired), it
/// lost the leadership and may stand by again; anything else is the error itself.
fn lost_or(error: SchedulerError, gate: &Gate) -> SchedulerError {
    if let Some(lost) = gate.lost() {
        return SchedulerError::LeadershipLost(lost);
    }
    let lost = matches!(
        &error,
        SchedulerError::Driver(crate::DriverError::FencedOut { .. })
            | SchedulerError::Store(crate::StoreError::Fenced { .. })
            | SchedulerError::Store(crate::StoreError::ZooKeeper {
                source: zookeeper_client::Error::SessionExpired,
                ..
            })
    );
    if lost {
        SchedulerError::LeadershipLost(error.to_string())
    } else {
        error
    }
}

async fn bind(listen: &str) -> Result<TcpListener, SchedulerError> {
    TcpListener::bind(listen)
        .await
        .map_err(|source| SchedulerError::Listen {
            addr: listen.to_owned(),
            source,
        })
}

/// A second handle on the same listening socket.
fn duplicate(listener: &TcpListener, listen: &str) -> Result<TcpListener, SchedulerError> {
    let error = |source| SchedulerError::Listen {
        addr: listen.to_owned(),
        source,
    };
    let fd = std::os::fd::AsFd::as_fd(listener)
        .try_clone_to_owned()
        .map_err(error)?;
    let std_listener = std::net::TcpListener::from(fd);
    std_listener.set_nonblocking(true).map_err(error)?;
    TcpListener::from_std(std_listener).map_err(error)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A standby's REST API: the same routes as the leader's, answered by [`Standby`].
async fn serve_standby(
    listener: TcpListener,
    standby: Standby,
    auth: crate::RestAuth,
    stop: CancellationToken,
) {
    let app = crate::rest::router(crate::Handle::standby(standby), auth);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "the standby REST server failed");
    }
}
