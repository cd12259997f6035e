//! `master = "zk://…/mesos"`: the scheduler finds the leading Mesos master in ZooKeeper, in the
//! exact layout a real Mesos 1.12 master writes (an ephemeral sequential `json.info_<seq>` node
//! holding its `MasterInfo` JSON, captured in `tests/data/real-mesos/zookeeper/`), and follows a
//! change of leader to the new master.

mod support;

use serde_json::Value;
use shardex::mesos::proto::v1::scheduler::call;
use support::scheduler_rest::*;
use support::zookeeper::ZooKeeper;
use support::{SOON, TestCluster, eventually, holds};
use zookeeper_client as zk;

/// What the captured Mesos master wrote, with the address of `master_url`'s master.
fn master_info(master_url: &str) -> Vec<u8> {
    let captured = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/real-mesos/zookeeper/json.info_0000000000"
    ))
    .expect("the captured node");
    let mut info: Value = serde_json::from_slice(&captured).unwrap();
    let port: u64 = reqwest::Url::parse(master_url)
        .ok()
        .and_then(|url| url.port())
        .map(u64::from)
        .unwrap_or_else(|| panic!("no port in the master URL {master_url}"));
    info["address"]["port"] = port.into();
    info["port"] = port.into();
    info["pid"] = format!("master@127.0.0.1:{port}").into();
    serde_json::to_vec(&info).unwrap()
}

/// Registers a master as Mesos does, on a session of its own (closing it is the master dying).
async fn register(zookeeper: &ZooKeeper, master_url: &str) -> zk::Client {
    let session = zk::Client::connect(&zookeeper.connect_string())
        .await
        .unwrap();
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match session.create("/mesos", &[], &open).await {
        Ok(_) | Err(zk::Error::NodeExists) => {}
        Err(e) => panic!("create /mesos: {e}"),
    }
    let member = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    session
        .create("/mesos/json.info_", &master_info(master_url), &member)
        .await
        .unwrap();
    session
}

async fn subscribed_to(tc: &TestCluster) -> bool {
    tc.cluster.scheduler_calls().await.unwrap().iter().any(|c| {
        c.call
            .as_ref()
            .is_some_and(|c| c.r#type == Some(call::Type::Subscribe as i32))
    })
}

#[tokio::test]
async fn the_leading_master_is_found_in_zookeeper_and_followed_when_it_changes() {
    let Some(zookeeper) = ZooKeeper::standalone(
        "the_leading_master_is_found_in_zookeeper_and_followed_when_it_changes",
    ) else {
        return;
    };
    let (first, second) = (TestCluster::start().await, TestCluster::start().await);
    let first_session = register(&zookeeper, &first.cluster.master_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let (scheduler, rest) = scheduler_on(TUNING, &zookeeper.url("/mesos"), dir.path()).await;
    eventually("a SUBSCRIBE at the first master", SOON, || async {
        holds(subscribed_to(&first).await)
    })
    .await;
    let framework_id = rest.get("/health").await["framework_id"].clone();
    assert!(framework_id.is_string(), "{framework_id}");

    // A second master registers (a higher sequence: it stands by), then the first one dies.
    let _second_session = register(&zookeeper, &second.cluster.master_url()).await;
    assert!(
        !subscribed_to(&second).await,
        "the standby master is not the leader"
    );
    drop(first_session);
    eventually("a SUBSCRIBE at the new leading master", SOON, || async {
        holds(subscribed_to(&second).await)
    })
    .await;
    eventually(
        "subscribed again, with the same framework id",
        SOON,
        || async {
            let health = rest.get("/health").await;
            holds(health["subscribed"] == true && health["framework_id"] == framework_id)
        },
    )
    .await;
    scheduler.shutdown().await;
    first.cluster.shutdown().await;
    second.cluster.shutdown().await;
}

/// `MasterInfo` carries no scheme: with `mesos.tls.enabled` the master found in ZooKeeper is
/// reached with https, verified with `mesos.tls.ca_file`.
#[tokio::test]
async fn a_master_found_in_zookeeper_is_reached_over_https_when_tls_is_enabled() {
    let Some(zookeeper) = ZooKeeper::standalone(
        "a_master_found_in_zookeeper_is_reached_over_https_when_tls_is_enabled",
    ) else {
        return;
    };
    let pki = support::tls::Pki::new();
    let tls = TestCluster::start_with(|c| c.tls = Some(pki.cluster(false))).await;
    let master_url = tls.cluster.master_url();
    assert!(master_url.starts_with("https://"), "{master_url}");
    let _session = register(&zookeeper, &master_url).await;
    let config = format!(
        "{TUNING}\n[mesos.tls]\nenabled = true\nca_file = {:?}\n",
        pki.ca.display().to_string()
    );
    let dir = tempfile::tempdir().unwrap();
    let (scheduler, rest) = scheduler_on(&config, &zookeeper.url("/mesos"), dir.path()).await;
    eventually(
        "subscribed to the TLS master found in ZooKeeper",
        SOON,
        || async {
            holds(subscribed_to(&tls).await && rest.get("/health").await["subscribed"] == true)
        },
    )
    .await;
    scheduler.shutdown().await;
    tls.cluster.shutdown().await;
}
