//! `shardex-scheduler ha status`: what an operator needs to see of an HA installation, read
//! straight from ZooKeeper (no scheduler has to answer): who leads and since when, the standbys,
//! their ZooKeeper sessions, the epoch, and how many rows each table holds.

use std::fmt;

use zookeeper_client as zk;

use super::election::{CandidateInfo, sorted_candidates};
use crate::store::{
    ELECTION_NODE, EPOCH_NODE, FRAMEWORK_NODE, SCHEMA_NODE, StoreError, ZkOptions, ZkTarget,
    connect_session,
};

/// One registered scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node: String,
    pub info: Option<CandidateInfo>,
    /// The ZooKeeper session holding its node.
    pub session: i64,
    /// When it registered (ms since the epoch, ZooKeeper's clock).
    pub since: i64,
}

/// An HA installation as ZooKeeper holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaStatus {
    pub store: String,
    pub schema_version: Option<String>,
    pub framework_id: Option<String>,
    /// The epoch (`meta/epoch`'s version) and who took it last.
    pub epoch: Option<(i32, String)>,
    /// Registered schedulers, the leader first.
    pub members: Vec<Member>,
    /// Rows per table, in the store's table order.
    pub rows: Vec<(&'static str, usize)>,
}

/// Reads the status of the HA installation at `target`.
pub async fn read(target: &ZkTarget, options: &ZkOptions) -> Result<HaStatus, StoreError> {
    let client = connect_session(target, options).await?;
    let failed = |what: String, source: zk::Error| StoreError::ZooKeeper {
        store: target.to_string(),
        what,
        source,
    };
    let text = |path: String| {
        let client = client.clone();
        async move {
            match client.get_data(&path).await {
                Ok((data, stat)) => Ok(Some((String::from_utf8_lossy(&data).into_owned(), stat))),
                Err(zk::Error::NoNode) => Ok(None),
                Err(source) => Err((path, source)),
            }
        }
    };
    let schema_version = text(target.path(SCHEMA_NODE))
        .await
        .map_err(|(p, e)| failed(format!("reading {p}"), e))?
        .map(|(t, _)| t);
    let framework_id = text(target.path(FRAMEWORK_NODE))
        .await
        .map_err(|(p, e)| failed(format!("reading {p}"), e))?
        .map(|(t, _)| t);
    let epoch = text(target.path(EPOCH_NODE))
        .await
        .map_err(|(p, e)| failed(format!("reading {p}"), e))?
        .map(|(holder, stat)| (stat.version, holder));
    let election = target.path(ELECTION_NODE);
    let names = match sorted_candidates(&client, &election).await {
        Ok(names) => names,
        Err(zk::Error::NoNode) => Vec::new(),
        Err(source) => return Err(failed(format!("listing {election}"), source)),
    };
    let mut members = Vec::new();
    for name in names {
        let Some((data, stat)) = text(format!("{election}/{name}"))
            .await
            .map_err(|(p, e)| failed(format!("reading {p}"), e))?
        else {
            continue;
        };
        members.push(Member {
            node: name,
            info: serde_json::from_str(&data).ok(),
            session: stat.ephemeral_owner,
            since: stat.ctime,
        });
    }
    let mut rows = Vec::new();
    for table in crate::store::table_names() {
        let dir = target.table_dir(table);
        let count = match client.list_children(&dir).await {
            Ok(children) => children.len(),
            Err(zk::Error::NoNode) => 0,
            Err(source) => return Err(failed(format!("listing {dir}"), source)),
        };
        rows.push((table, count));
    }
    Ok(HaStatus {
        store: target.to_string(),
        schema_version,
        framework_id,
        epoch,
        members,
        rows,
    })
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

impl fmt::Display for HaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "store      {} (schema {})",
            self.store,
            self.schema_version
                .as_deref()
                .unwrap_or("none: not a Shardex store yet")
        )?;
        writeln!(
            f,
            "framework  {}",
            self.framework_id.as_deref().unwrap_or("(none yet)")
        )?;
        match &self.epoch {
            Some((epoch, holder)) if !holder.is_empty() => {
                writeln!(f, "epoch      {epoch}, taken by {holder}")?
            }
            _ => writeln!(f, "epoch      never taken")?,
        }
        if self.members.is_empty() {
            writeln!(f, "leader     none: no scheduler is registered")?;
        }
        for (i, member) in self.members.iter().enumerate() {
            let role = if i == 0 { "leader " } else { "standby" };
            let (id, rest) = member
                .info
                .as_ref()
                .map(|i| (i.id.as_str(), i.rest.as_str()))
                .unwrap_or(("?", "?"));
            writeln!(
                f,
                "{role}    {id}  {rest}  since {}  session 0x{:x}  ({})",
                time(member.since),
                member.session,
                member.node
            )?;
        }
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|(table, n)| format!("{table} {n}"))
            .collect();
        write!(f, "rows       {}", rows.join(", "))
    }
}
