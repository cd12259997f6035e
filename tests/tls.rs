//! TLS to masters and agents, end to end on the embedded cluster serving `https://` with a test
//! CA made at test time (`support::tls`): a sharded job over mutual TLS, a scheduler that does
//! not trust the master, an executor that does not trust its agent, and plain HTTP meeting TLS
//! either way.
//!
//! Needs `cargo build --workspace` first.

mod support;

use std::path::Path;

use shardex::mesos::proto::v1::{TaskState, executor, scheduler};
use shardex::mesos::{ApiError, Client, ClientConfig, TlsConfig};
use support::scheduler_rest::*;
use support::tls::Pki;
use support::{SOON, TestCluster, eventually, holds};

/// A manual job of `shards` items of the hello plugin, in app `a`.
fn job(name: &str, shards: u32, failover: bool) -> String {
    format!(
        "[[jobs]]\nname = \"{name}\"\napp = \"a\"\nsharding_total_count = {shards}\n\
         plugin = \"libhello_shards.so\"\nfailover = {failover}\n"
    )
}

/// `[mesos.tls]` trusting `ca`, with the PKI's certificate as the client's.
fn mesos_tls(pki: &Pki, ca: &Path) -> String {
    format!(
        "[mesos.tls]\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
        ca.display().to_string(),
        pki.cert.display().to_string(),
        pki.key.display().to_string()
    )
}

/// The environment of a live process, from `/proc`.
fn environment_of(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// The scheduler trusts the test CA and presents a certificate, the cluster requires client
/// certificates, and a three-shard job runs to the end: every shard's executor reached the
/// agent over https (the agent port speaks nothing else), verifying it with the CA the agent
/// handed it in its libprocess environment.
#[tokio::test]
async fn a_sharded_job_runs_end_to_end_over_mutual_tls() {
    let pki = Pki::new();
    let tc = TestCluster::start_with(|c| c.tls = Some(pki.cluster(true))).await;
    let master = tc.cluster.master_url();
    assert!(master.starts_with("https://127.0.0.1:"), "{master}");
    let config = format!(
        "{TUNING}\n{}\n{}\n{}",
        mesos_tls(&pki, &pki.ca),
        app("a", &["hello_shards"]),
        job("hello", 3, false)
    );
    let store = tempfile::tempdir().unwrap();
    let (scheduler, rest) = scheduler_on(&config, &master, store.path()).await;
    eventually("the scheduler to subscribe over TLS", SOON, || async {
        holds(rest.metric("shardex_connected").await == 1)
    })
    .await;
    assert_eq!(rest.post("/api/jobs/hello/trigger").await, 202);

    // The executor got the agent's libprocess SSL environment…
    let executor_id = format!("a@-@{}", tc.cluster.agent_id());
    let pid = support::executor_started(&tc.cluster, &executor_id).await;
    let mut ssl: Vec<String> = environment_of(pid)
        .into_iter()
        .filter(|v| v.starts_with("LIBPROCESS_SSL_"))
        .collect();
    ssl.sort();
    let mut expected = [
        "LIBPROCESS_SSL_ENABLED=true".to_owned(),
        format!("LIBPROCESS_SSL_CERT_FILE={}", pki.cert.display()),
        format!("LIBPROCESS_SSL_KEY_FILE={}", pki.key.display()),
        format!("LIBPROCESS_SSL_CA_FILE={}", pki.ca.display()),
        "LIBPROCESS_SSL_VERIFY_SERVER_CERT=true".to_owned(),
        "LIBPROCESS_SSL_REQUIRE_CLIENT_CERT=true".to_owned(),
    ];
    expected.sort();
    assert_eq!(ssl, expected);

    // …and every shard ran to the end.
    rest.until_metric("shardex_tasks_finished_total", 3).await;
    assert_eq!(rest.metric("shardex_tasks_failed_total").await, 0);
    eventually("every update to be acknowledged", SOON, || async {
        holds(tc.cluster.pending_updates().await.unwrap().is_empty())
    })
    .await;

    // The executor subscribed, and sent its updates, to https://: the agent answered them (a
    // plain-HTTP request would have met the "use https" answer, never the executor API).
    let calls = tc.cluster.executor_calls().await.unwrap();
    let of_type = |kind: executor::call::Type| {
        calls
            .iter()
            .filter(|c| c.call.as_ref().and_then(|c| c.r#type) == Some(kind as i32))
            .collect::<Vec<_>>()
    };
    let subscribes = of_type(executor::call::Type::Subscribe).len();
    let updates = of_type(executor::call::Type::Update);
    assert_eq!(subscribes, 1, "one executor for the three shards");
    // Each shard's updates, in the order the agent took them (all answered 202).
    let mut per_task: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for call in &updates {
        assert_eq!(call.status, 202);
        let status = &call.call.as_ref().unwrap().update.as_ref().unwrap().status;
        per_task
            .entry(status.task_id.value.clone())
            .or_default()
            .push(status.state);
    }
    let lifecycle = [
        TaskState::TaskStarting,
        TaskState::TaskRunning,
        TaskState::TaskFinished,
    ]
    .map(|s| s as i32);
    assert_eq!(per_task.len(), 3, "{per_task:?}");
    assert!(
        per_task.values().all(|states| states == &lifecycle),
        "{per_task:?}"
    );
    let agent_url = tc.cluster.agent_url();
    assert!(agent_url.starts_with("https://"), "{agent_url}");
    let started = lines_of(tc.cluster.work_dir(), "stderr")
        .into_iter()
        .filter(|l| l.contains("executor starting"))
        .collect::<Vec<_>>();
    assert_eq!(started.len(), 1, "{started:?}");
    assert!(
        started[0].contains(&format!("agent={agent_url}")),
        "{}",
        started[0]
    );
    scheduler.shutdown().await;
    tc.cluster.shutdown().await;
}

/// A scheduler that trusts another CA refuses the master's certificate: it says so, naming
/// the master's URL, the certificate problem and the setting to change, keeps retrying, and
/// never reaches the master's API.
#[tokio::test]
async fn a_scheduler_that_does_not_trust_the_master_refuses_it_and_does_nothing() {
    let pki = Pki::new();
    let tc = TestCluster::start_with(|c| c.tls = Some(pki.cluster(false))).await;
    let master = tc.cluster.master_url();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{TUNING}\n[mesos.tls]\nca_file = {:?}\n{}\n{}",
        pki.other_ca.display().to_string(),
        app("a", &["hello_shards"]),
        job("hello", 2, false)
    );
    let s = start_scheduler(&scheduler_args(dir.path(), &config, &master));
    let expected = format!(
        "TLS with {master} failed: the server's certificate is not signed by a trusted CA \
         (invalid peer certificate: UnknownIssuer); this client trusts the CAs of \
         mesos.tls.ca_file {}: give the CA that signed the server's certificate in \
         mesos.tls.ca_file or mesos.tls.ca_dir",
        pki.other_ca.display()
    );
    // Two attempts, each refused the same way.
    eventually("the scheduler to refuse the master twice", SOON, || async {
        holds(s.scheduler.lines_with(&expected).len() >= 2)
    })
    .await;
    let refusal = s.scheduler.lines_with(&expected).remove(0);
    assert!(
        refusal.contains("cannot subscribe: TLS with the master failed"),
        "{refusal}"
    );
    // Nothing reached the master, nothing is subscribed, nothing ran.
    assert!(tc.cluster.scheduler_calls().await.unwrap().is_empty());
    assert_eq!(s.rest.metric("shardex_connected").await, 0);
    assert_eq!(s.rest.metric("shardex_subscriptions_total").await, 0);
    assert_eq!(s.rest.post("/api/jobs/hello/trigger").await, 202);
    assert_eq!(
        s.rest
            .metric("shardex_tasks_launched_total{type=\"ready\"}")
            .await,
        0
    );
    assert!(tc.cluster.scheduler_calls().await.unwrap().is_empty());
    drop(s);
    tc.cluster.shutdown().await;
}

/// An executor told to trust another CA than the one that signed its agent's certificate
/// (the app's environment wins over the agent's) stops at once, its log naming the TLS failure;
/// the agent reports its task failed, and that update reaches the scheduler and is
/// acknowledged.
#[tokio::test]
async fn an_executor_that_does_not_trust_its_agent_fails_its_task_clearly() {
    let pki = Pki::new();
    let tc = TestCluster::start_with(|c| c.tls = Some(pki.cluster(false))).await;
    let master = tc.cluster.master_url();
    let config = format!(
        "{TUNING}\n[mesos.tls]\nca_file = {:?}\n{}[apps.environment]\n\
         LIBPROCESS_SSL_CA_FILE = {:?}\n{}",
        pki.ca.display().to_string(),
        app("a", &["hello_shards"]),
        pki.other_ca.display().to_string(),
        job("hello", 1, false)
    );
    let store = tempfile::tempdir().unwrap();
    let (scheduler, rest) = scheduler_on(&config, &master, store.path()).await;
    eventually("the scheduler to subscribe", SOON, || async {
        holds(rest.metric("shardex_connected").await == 1)
    })
    .await;
    assert_eq!(rest.post("/api/jobs/hello/trigger").await, 202);
    rest.until_metric("shardex_tasks_failed_total", 1).await;
    assert_eq!(rest.metric("shardex_tasks_finished_total").await, 0);
    eventually("the failure to be acknowledged", SOON, || async {
        holds(tc.cluster.pending_updates().await.unwrap().is_empty())
    })
    .await;
    let running = rest.get("/api/tasks/running").await;
    assert_eq!(running, serde_json::json!([]));

    // The agent saw no executor call at all; the executor's log says why.
    assert!(tc.cluster.executor_calls().await.unwrap().is_empty());
    let agent_url = tc.cluster.agent_url();
    let expected = format!(
        "cannot subscribe to the agent: TLS with {agent_url} failed: the server's certificate \
         is not signed by a trusted CA (invalid peer certificate: UnknownIssuer); this client \
         trusts the CAs of LIBPROCESS_SSL_CA_FILE {}: give the CA that signed the server's \
         certificate in LIBPROCESS_SSL_CA_FILE or LIBPROCESS_SSL_CA_DIR",
        pki.other_ca.display()
    );
    let stderr = lines_of(tc.cluster.work_dir(), "stderr");
    let said: Vec<&str> = stderr
        .iter()
        .filter(|l| l.contains(&expected))
        .map(|l| {
            l.split_once("shardex_executor::")
                .map_or("", |(_, rest)| rest)
        })
        .collect();
    assert_eq!(
        said,
        [
            format!("core: {expected}"),
            format!("core: executor stopping reason={expected}"),
            format!("core: executor exiting reason={expected} code=1"),
        ],
        "{stderr:#?}"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.contains(" ERROR ") && l.ends_with(&expected))
    );
    scheduler.shutdown().await;
    tc.cluster.shutdown().await;
}

/// A SUBSCRIBE that must fail, with the client's settings.
async fn subscribe(url: &str, tls: TlsConfig) -> ApiError {
    let client = Client::new(
        url,
        ClientConfig {
            tls,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let call = scheduler::Call {
        r#type: Some(scheduler::call::Type::Subscribe as i32),
        subscribe: Some(scheduler::call::Subscribe {
            framework_info: support::framework_info("probe"),
            suppressed_roles: Vec::new(),
        }),
        ..scheduler::Call::default()
    };
    client
        .subscribe::<_, scheduler::Event>(&call)
        .await
        .map(|_| ())
        .unwrap_err()
}

/// Plain HTTP to a TLS port is answered with where to go; TLS to a plain port, and TLS without
/// the client certificate a master requires, fail naming the URL and what to do. None of them
/// is worth retrying.
#[tokio::test]
async fn plain_http_and_tls_meeting_the_other_fail_clearly() {
    let pki = Pki::new();
    let tls = TestCluster::start_with(|c| c.tls = Some(pki.cluster(true))).await;
    let plain = TestCluster::start().await;
    let trusting = TlsConfig {
        ca_file: Some(pki.ca.clone()),
        ..TlsConfig::default()
    };

    let https_url = tls.cluster.master_url();
    let http_url = https_url.replacen("https://", "http://", 1);
    let error = subscribe(&http_url, trusting.clone()).await;
    assert_eq!(
        error.to_string(),
        format!("{http_url} answered 400: 400 Bad Request: this port serves TLS; use {https_url}")
    );
    assert!(!error.is_retryable());

    let plain_https = plain
        .cluster
        .master_url()
        .replacen("http://", "https://", 1);
    let error = subscribe(&plain_https, trusting.clone()).await;
    assert_eq!(
        error.to_string(),
        format!(
            "TLS with {plain_https} failed: the server did not answer in TLS (received corrupt \
             message of type InvalidContentType); it seems to serve plain HTTP: use an http:// \
             URL for it"
        )
    );
    assert!(!error.is_retryable());

    let error = subscribe(&https_url, trusting.clone()).await;
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "TLS with {https_url} failed: the server refused this client's certificate"
        )) && text.ends_with(
            "this client has no certificate (cert_file and key_file are unset): give a \
             certificate signed by a CA the server trusts"
        ),
        "{text}"
    );
    assert!(!error.is_retryable());
    // None of them reached the master's API.
    assert!(tls.cluster.scheduler_calls().await.unwrap().is_empty());
    tls.cluster.shutdown().await;
    plain.cluster.shutdown().await;
}

/// Unusable trust material fails the client at once, naming the URL and the file.
#[test]
fn an_unreadable_ca_file_names_the_url_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let error = Client::new(
        "https://127.0.0.1:5050/api/v1/scheduler",
        ClientConfig {
            tls: TlsConfig {
                ca_file: Some(missing.clone()),
                ..TlsConfig::default()
            },
            ..ClientConfig::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "cannot use https://127.0.0.1:5050/api/v1/scheduler: cannot read ca_file {}: No such \
             file or directory (os error 2); point ca_file at a readable PEM file",
            missing.display()
        )
    );
    // Plain http:// needs no trust material, so the same settings do not stop it.
    assert!(
        Client::new(
            "http://127.0.0.1:5050/api/v1/scheduler",
            ClientConfig {
                tls: TlsConfig {
                    ca_file: Some(missing),
                    ..TlsConfig::default()
                },
                ..ClientConfig::default()
            },
        )
        .is_ok()
    );
}
