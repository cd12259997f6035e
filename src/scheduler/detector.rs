//! Finding the leading Mesos master through ZooKeeper: `master = "zk://host:port[,…]/mesos"`, the
//! same address Mesos' masters get as `--zk`.
//!
//! What a real Mesos 1.12 master writes (captured in `tests/data/real-mesos/zookeeper/`): one
//! ephemeral sequential child of that path per master, named `json.info_<10-digit sequence>`,
//! whose data is its `MasterInfo` in Mesos' JSON mapping (`address.{hostname, ip, port}`,
//! `hostname`, `ip` as a little-endian-read IPv4 `uint32`, `port`, `pid`, `version`, …). The lowest
//! sequence leads (ZooKeeper's leader-election recipe); other children (`log_replicas`, the
//! protobuf `info_*` of pre-1.0 masters) are not masters' JSON and are skipped.
//!
//! `MasterInfo` says nothing of TLS (`Address` is hostname, ip and port; Mesos' own scheduler
//! library, `src/scheduler/scheduler.cpp`, reaches every detected master with `https` exactly when
//! its own process has `LIBPROCESS_SSL_ENABLED`): the scheme comes from the scheduler's
//! `mesos.tls.enabled`.
//!
//! [`watch_leader`] follows the group with ZooKeeper watches and publishes the leader's scheduler
//! endpoint; the driver subscribes there, and resubscribes when it changes.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

/// The label Mesos' masters register under (`json.info_<sequence>`).
const LABEL: &str = "json.info_";

#[derive(Debug, Deserialize)]
struct Address {
    hostname: Option<String>,
    ip: Option<String>,
    port: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct MasterInfo {
    address: Option<Address>,
    hostname: Option<String>,
    ip: Option<u32>,
    port: Option<u32>,
}

/// The scheduler endpoint of the master whose `MasterInfo` JSON is `data`:
/// `<scheme>://<address.ip, else address.hostname, else hostname, else ip>:<port>/api/v1/scheduler`.
pub fn endpoint_of(data: &[u8], scheme: &str) -> Result<String, String> {
    let info: MasterInfo = serde_json::from_slice(data)
        .map_err(|e| format!("the master's node is not MasterInfo JSON: {e}"))?;
    let address = info.address.as_ref();
    let port = address
        .and_then(|a| a.port)
        .or(info.port)
        .filter(|p| *p > 0 && *p <= u32::from(u16::MAX))
        .ok_or("the master's MasterInfo has no port")?;
    let host = address
        .and_then(|a| a.ip.clone().or_else(|| a.hostname.clone()))
        .or(info.hostname)
        .or_else(|| {
            // `ip` holds the address bytes in network order, read as a little-endian uint32.
            info.ip
                .map(|ip| std::net::Ipv4Addr::from(ip.to_le_bytes()).to_string())
        })
        .ok_or("the master's MasterInfo has no address")?;
    Ok(format!("{scheme}://{host}:{port}/api/v1/scheduler"))
}

/// The leading master's node among the children of the group: the lowest `json.info_` sequence.
pub fn leader_node(children: &[String]) -> Option<&str> {
    children
        .iter()
        .filter_map(|name| {
            let sequence: u64 = name.strip_prefix(LABEL)?.parse().ok()?;
            Some((sequence, name.as_str()))
        })
        .min()
        .map(|(_, name)| name)
}

/// Follows the masters' group at `path` on `client` and publishes the leader's scheduler
/// endpoint with `scheme` (`None` while no master is registered) until `stop`.
pub async fn watch_leader(
    client: zk::Client,
    path: String,
    scheme: &'static str,
    leader: watch::Sender<Option<String>>,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let next = match lookup(&client, &path, scheme).await {
            Ok((endpoint, changed)) => {
                failures = 0;
                leader.send_if_modified(|current| {
                    if *current == endpoint {
                        return false;
                    }
                    tracing::info!(
                        master = endpoint.as_deref().unwrap_or("(none)"),
                        group = path,
                        "leading Mesos master"
                    );
                    *current = endpoint;
                    true
                });
                changed
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(group = path, %error, "cannot read the Mesos masters' group");
                let delay = Duration::from_millis(200 * u64::from(failures.min(25)));
                Box::pin(tokio::time::sleep(delay))
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = next => {}
        }
    }
}

type Changed = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The leader's endpoint now, and a future that completes when the group may have changed.
async fn lookup(
    client: &zk::Client,
    path: &str,
    scheme: &str,
) -> Result<(Option<String>, Changed), String> {
    let (children, watcher) = match client.list_and_watch_children(path).await {
        Ok(found) => found,
        Err(zk::Error::NoNode) => {
            // No master ever registered: wait for the group to appear.
            let (_, watcher) = client
                .check_and_watch_stat(path)
                .await
                .map_err(|e| format!("watching {path}: {e}"))?;
            return Ok((
                None,
                Box::pin(async move {
                    watcher.changed().await;
                }),
            ));
        }
        Err(error) => return Err(format!("listing {path}: {error}")),
    };
    let changed: Changed = Box::pin(async move {
        watcher.changed().await;
    });
    let Some(node) = leader_node(&children) else {
        return Ok((None, changed));
    };
    let node_path = format!("{path}/{node}");
    match client.get_data(&node_path).await {
        Ok((data, _)) => {
            let endpoint = endpoint_of(&data, scheme).map_err(|e| format!("{node_path}: {e}"))?;
            Ok((Some(endpoint), changed))
        }
        // Gone since the listing: the children watch has fired already.
        Err(zk::Error::NoNode) => Ok((None, changed)),
        Err(error) => Err(format!("reading {node_path}: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Mesos 1.12 wrote (tests/data/real-mesos/zookeeper/json.info_0000000000).
    const CAPTURED: &str = r#"{"address":{"hostname":"127.0.0.1","ip":"127.0.0.1","port":25050},"capabilities":[{"type":"AGENT_UPDATE"},{"type":"AGENT_DRAINING"},{"type":"QUOTA_V2"}],"hostname":"127.0.0.1","id":"43075b96-27ab-41fa-b597-a05f64431e6c","ip":16777343,"pid":"master@127.0.0.1:25050","port":25050,"version":"1.12.0"}"#;

    #[test]
    fn a_real_masters_node_names_its_scheduler_endpoint() {
        assert_eq!(
            endpoint_of(CAPTURED.as_bytes(), "http").unwrap(),
            "http://127.0.0.1:25050/api/v1/scheduler"
        );
        // With mesos.tls.enabled.
        assert_eq!(
            endpoint_of(CAPTURED.as_bytes(), "https").unwrap(),
            "https://127.0.0.1:25050/api/v1/scheduler"
        );
        // Without `address`: the packed `ip` (16777343 is 127.0.0.1) and `port`.
        assert_eq!(
            endpoint_of(br#"{"ip":16777343,"port":5050,"id":"x","pid":"p"}"#, "http").unwrap(),
            "http://127.0.0.1:5050/api/v1/scheduler"
        );
        assert!(
            endpoint_of(b"\x08\x01", "http")
                .unwrap_err()
                .contains("not MasterInfo JSON")
        );
        assert_eq!(
            endpoint_of(br#"{"ip":16777343}"#, "http").unwrap_err(),
            "the master's MasterInfo has no port"
        );
    }

    #[test]
    fn the_lowest_json_sequence_leads() {
        let children: Vec<String> = [
            "log_replicas",
            "json.info_0000000012",
            "info_0000000003",
            "json.info_0000000010",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(leader_node(&children), Some("json.info_0000000010"));
        assert_eq!(leader_node(&["log_replicas".to_owned()]), None);
    }
}
