//! Leader election among the schedulers of one ZooKeeper store: each registers an ephemeral
//! sequential node `election/candidate-<seq>` (its data: who it is and where its REST API
//! listens), and leads when its node is the lowest. A candidate that does not lead watches only
//! the node just below its own (no herd of watches firing on every change); when that one goes,
//! it looks again. A leader that shuts down cleanly deletes its node, so the next one leads at
//! once; one that dies leaves it until its session expires.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::store::{answer_lost, until_answered};

/// What a candidate says about itself in its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateInfo {
    /// `host:pid`, for people.
    pub id: String,
    /// Where its REST API listens (`http://…/`).
    pub rest: String,
    /// When it registered (ms since the epoch).
    pub since: i64,
}

/// The election failed: ZooKeeper answered with an error.
#[derive(Debug, thiserror::Error)]
#[error("leader election under {dir}: {what} failed: {source}")]
pub struct ElectionError {
    pub dir: String,
    pub what: String,
    #[source]
    pub source: zk::Error,
}

/// This scheduler's registration in the election.
#[derive(Debug)]
pub struct Candidate {
    client: zk::Client,
    dir: String,
    /// The node's name (`candidate-0000000007`).
    name: String,
}

const PREFIX: &str = "candidate-";

impl Candidate {
    /// Registers under `dir` (the store's `election` node). A create whose answer was lost
    /// (a server died after it was sent) may have made the node: once the session is
    /// connected again, a node of this session holding this candidate's data is adopted rather
    /// than a second one made (that one would sit below this candidate for as long as the
    /// session lives, and it would never lead).
    pub async fn join(
        client: zk::Client,
        dir: String,
        info: &CandidateInfo,
        acls: zk::Acls<'static>,
    ) -> Result<Candidate, ElectionError> {
        let data = serde_json::to_vec(info).unwrap_or_default();
        let prefix = format!("{dir}/{PREFIX}");
        let options = zk::CreateMode::EphemeralSequential.with_acls(acls);
        let wrap = |what: &str, source| ElectionError {
            dir: dir.clone(),
            what: what.to_owned(),
            source,
        };
        let until = Instant::now() + client.session_timeout();
        loop {
            let error = match client.create(&prefix, &data, &options).await {
                Ok((_, sequence)) => {
                    return Ok(Candidate {
                        client,
                        dir,
                        name: format!("{PREFIX}{sequence}"),
                    });
                }
                Err(error) if answer_lost(&error) && Instant::now() < until => error,
                Err(source) => return Err(wrap("registering", source)),
            };
            tracing::warn!(%error, "the answer to registering in the election was lost");
            // Sent while disconnected, the look waits for the session to be connected again.
            let own = until_answered(&client, "looking for our own node", until, || {
                own_node(&client, &dir, &data)
            })
            .await
            .map_err(|source| wrap("looking for our own node", source))?;
            if let Some(name) = own {
                return Ok(Candidate { client, dir, name });
            }
        }
    }

    /// This candidate's node, e.g. `/shardex/election/candidate-0000000007`.
    pub fn node(&self) -> String {
        format!("{}/{}", self.dir, self.name)
    }

    /// Returns once this candidate leads. A request whose answer is lost (a server of the
    /// ensemble died) is asked again once the session is connected; the wait ends with an
    /// error when the session ends, or a request stays unanswered for a session timeout.
    pub async fn wait_until_leader(&self) -> Result<(), ElectionError> {
        loop {
            let candidates = self.candidates().await?;
            let Some(index) = candidates.iter().position(|name| *name == self.name) else {
                // Our node is gone: the session expired.
                return Err(self.error("finding our own node", zk::Error::SessionExpired));
            };
            if index == 0 {
                return Ok(());
            }
            let below = format!("{}/{}", self.dir, candidates[index - 1]);
            let until = Instant::now() + self.client.session_timeout();
            let (stat, watcher) =
                until_answered(&self.client, "watching a candidate", until, || {
                    self.client.check_and_watch_stat(&below)
                })
                .await
                .map_err(|source| self.error(&format!("watching {below}"), source))?;
            if stat.is_some() {
                let event = watcher.changed().await;
                if event.event_type == zk::EventType::Session
                    && matches!(
                        event.session_state,
                        zk::SessionState::Expired | zk::SessionState::Closed
                    )
                {
                    return Err(self.error("waiting", zk::Error::SessionExpired));
                }
            }
        }
    }

    /// The leading candidate's information, if any candidate is registered.
    pub async fn leader(&self) -> Result<Option<CandidateInfo>, ElectionError> {
        leader(&self.client, &self.dir).await
    }

    /// Leaves the election (a clean shutdown: the next candidate leads at once).
    pub async fn resign(self) {
        let _ = self.client.delete(&self.node(), None).await;
    }

    /// Registered candidates, lowest sequence first.
    async fn candidates(&self) -> Result<Vec<String>, ElectionError> {
        let until = Instant::now() + self.client.session_timeout();
        until_answered(&self.client, "listing candidates", until, || {
            sorted_candidates(&self.client, &self.dir)
        })
        .await
        .map_err(|source| self.error("listing candidates", source))
    }

    fn error(&self, what: &str, source: zk::Error) -> ElectionError {
        ElectionError {
            dir: self.dir.clone(),
            what: what.to_owned(),
            source,
        }
    }
}

/// The candidates under `dir`, lowest sequence first (the leader first).
pub(crate) async fn sorted_candidates(
    client: &zk::Client,
    dir: &str,
) -> Result<Vec<String>, zk::Error> {
    let mut names: Vec<String> = client
        .list_children(dir)
        .await?
        .into_iter()
        .filter(|name| name.starts_with(PREFIX))
        .collect();
    // The sequence is the number after the prefix (zero-padded, so also the name order, but
    // compared as a number in case a 19-digit sequence ever appears).
    names.sort_by_key(|name| name[PREFIX.len()..].parse::<i64>().unwrap_or(i64::MAX));
    Ok(names)
}

/// The candidate node under `dir` that this session made holding `data`, if there is one.
/// Synced first: the server the session reconnected to may not have applied the lost create
/// yet (the client never saw its zxid), and a node missed here would be made a second time.
async fn own_node(
    client: &zk::Client,
    dir: &str,
    data: &[u8],
) -> Result<Option<String>, zk::Error> {
    let session = client.session_id().0;
    client.sync(dir).await?;
    for name in sorted_candidates(client, dir).await? {
        match client.get_data(&format!("{dir}/{name}")).await {
            Ok((found, stat)) if stat.ephemeral_owner == session && found == data => {
                return Ok(Some(name));
            }
            Ok(_) | Err(zk::Error::NoNode) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}

/// The leading candidate of the election under `dir`, as anyone can read it.
pub async fn leader(
    client: &zk::Client,
    dir: &str,
) -> Result<Option<CandidateInfo>, ElectionError> {
    let wrap = |what: &str, source| ElectionError {
        dir: dir.to_owned(),
        what: what.to_owned(),
        source,
    };
    for name in sorted_candidates(client, dir)
        .await
        .map_err(|e| wrap("listing candidates", e))?
    {
        match client.get_data(&format!("{dir}/{name}")).await {
            Ok((data, _)) => return Ok(serde_json::from_slice(&data).ok()),
            // Gone between the listing and the read: the next one leads.
            Err(zk::Error::NoNode) => continue,
            Err(source) => return Err(wrap("reading the leader", source)),
        }
    }
    Ok(None)
}
