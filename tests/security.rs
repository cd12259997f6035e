//! Security on the embedded cluster, end to end through the real binaries: the REST API's
//! bearer token, and the refusal to serve it beyond loopback without one.
//!
//! Needs `cargo build --workspace` first.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::scheduler_rest::*;
use support::{SOON, TestCluster, eventually, package_binary};

const TOKEN: &str = "9f4c1e0a-shardex-test-token";

/// A token file for the scheduler's user only.
fn token_file(dir: &Path, token: &str, mode: u32) -> PathBuf {
    let path = dir.join("rest.token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// `POST path` with an optional `Authorization` value: status, `WWW-Authenticate`, body.
async fn post(base: &str, path: &str, authorization: Option<&str>) -> (u16, String, String) {
    let mut request = support::http().post(format!("{base}{path}"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, response.text().await.unwrap())
}

/// `shardex-scheduler` with `config` (written into `dir`, beside its store) on `master`.
fn scheduler_in(dir: &Path, config: &str, master: &str) -> Process {
    let path = dir.join("scheduler.toml");
    std::fs::write(&path, config).unwrap();
    start_scheduler(&[
        "--config",
        path.to_str().unwrap(),
        "--master",
        master,
        "--store",
        dir.join("store.redb").to_str().unwrap(),
    ])
}

/// Waits until `s` has subscribed (`/health` 200).
async fn until_subscribed(s: &Process) {
    eventually("the scheduler to subscribe", SOON, || async {
        (s.rest.call(reqwest::Method::GET, "/health", None).await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_rest_api_takes_writes_only_with_its_token() {
    let tc = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), TOKEN, 0o600);
    let config = format!(
        "{TUNING}\n[rest]\ntoken_file = {:?}\n{}\n[[jobs]]\nname = \"once\"\napp = \"a\"\n\
         cron = \"0 0 0 1 1 ? 2099\"\nsharding_total_count = 2\nplugin = \"libfaulty.so\"\n\
         job_parameter = \"ok\"\n",
        token.display().to_string(),
        app("a", &["faulty"])
    );
    let s = scheduler_in(dir.path(), &config, &tc.cluster.master_url());
    let base = s.scheduler.rest_url.clone();
    until_subscribed(&s).await;

    let trigger = "/api/jobs/once/trigger";
    let (status, challenge, body) = post(&base, trigger, None).await;
    assert_eq!(
        (status, challenge.as_str(), body.as_str()),
        (
            401,
            "Bearer realm=\"shardex\"",
            "{\"error\":\"this endpoint needs the REST token: send `Authorization: Bearer \
             <token>` (the token is in the scheduler's rest.token_file)\"}"
        )
    );
    let (status, _, body) = post(&base, trigger, Some("Bearer not-the-token")).await;
    assert_eq!(
        (status, body.as_str()),
        (
            403,
            "{\"error\":\"the bearer token is not the scheduler's REST token\"}"
        )
    );
    // Refused requests changed nothing: the job never ran.
    assert_eq!(
        s.rest
            .metric("shardex_tasks_launched_total{type=\"ready\"}")
            .await,
        0
    );
    // Reads stay open; the token opens writes.
    let (status, jobs) = s.rest.call(reqwest::Method::GET, "/api/jobs", None).await;
    assert_eq!((status, jobs[0]["name"].as_str()), (200, Some("once")));
    let (status, _, _) = post(&base, trigger, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(status, 202);
    s.rest.until_metric("shardex_tasks_finished_total", 2).await;
    drop(s);
    tc.cluster.shutdown().await;
}

/// `shardex-scheduler` with `args`, expected to refuse to start: its exit status and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(package_binary("shardex-scheduler"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Beyond loopback without a token, the scheduler refuses to start, before binding anything
/// (so this test never listens beyond loopback itself); a token file readable by every user is
/// refused too, by name.
#[test]
fn a_scheduler_exposed_without_a_token_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb");
    let store = store.to_str().unwrap();
    let (status, stderr) = refused(&[
        "--master",
        "127.0.0.1:1",
        "--store",
        store,
        "--listen",
        "0.0.0.0:0",
    ]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "refusing to serve the REST API on 0.0.0.0:0 without a token: anyone who reaches \
             it can run commands on every agent (script jobs). Set rest.token_file (or \
             --rest-token-file), listen on 127.0.0.1, or pass --insecure-no-auth to accept \
             the risk"
        ),
        "{stderr}"
    );
    assert!(!Path::new(store).exists(), "nothing was started");

    let open = token_file(dir.path(), TOKEN, 0o644);
    let (status, stderr) = refused(&[
        "--master",
        "127.0.0.1:1",
        "--store",
        store,
        "--rest-token-file",
        open.to_str().unwrap(),
    ]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the REST token file {0} is readable by every user (mode 644): `chmod o-rwx {0}`",
            open.display()
        )),
        "{stderr}"
    );
}

/// A credentials file in Mesos' JSON format for `shardex` / `s3cret`.
fn credentials(dir: &Path) -> shardex::local::credentials::Credentials {
    let path = dir.join("credentials.json");
    std::fs::write(
        &path,
        r#"{"credentials": [{"principal": "shardex", "secret": "s3cret"}]}"#,
    )
    .unwrap();
    shardex::local::credentials::Credentials::read(&path).unwrap()
}

/// A captured answer of the real master: status, headers (name, value) and body.
fn captured(name: &str) -> (u16, Vec<(String, String)>, String) {
    let raw = std::fs::read_to_string(format!(
        "{}/tests/data/real-mesos/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (name, value) = l.split_once(": ").unwrap();
            (name.to_ascii_lowercase(), value.to_owned())
        })
        .collect();
    (status, headers, body.to_owned())
}

/// The same request's answer from the embedded master, in the capture's terms (the headers
/// the capture has).
async fn answer(
    response: reqwest::Response,
    names: &[(String, String)],
) -> (u16, Vec<(String, String)>, String) {
    let status = response.status().as_u16();
    let headers = names
        .iter()
        .map(|(name, _)| {
            let value = response
                .headers()
                .get(name.as_str())
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (name.clone(), value)
        })
        .collect();
    (status, headers, response.text().await.unwrap())
}

/// With framework authentication the embedded master answers byte for byte as the real one
/// did (`tests/data/real-mesos/`): 401 before the method or the body is looked at, whatever
/// was wrong with the credentials; 400 for a SUBSCRIBE claiming another principal.
#[tokio::test]
async fn the_embedded_master_authenticates_frameworks_as_mesos_does() {
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(dir.path());
    let tc = TestCluster::start_with(|c| c.framework_credentials = Some(creds)).await;
    let url = tc.cluster.master_url();
    let http = support::http();
    let subscribe = |principal: Option<&str>| {
        let principal = principal.map_or(String::new(), |p| format!(",\"principal\":\"{p}\""));
        format!(
            "{{\"type\":\"SUBSCRIBE\",\"subscribe\":{{\"framework_info\":\
             {{\"user\":\"root\",\"name\":\"probe\"{principal}}}}}}}"
        )
    };
    let unauthenticated = captured("scheduler-unauthenticated-response.http");
    let requests = [
        http.post(&url).body(subscribe(None)),
        http.post(&url)
            .basic_auth("shardex", Some("wrong"))
            .body(subscribe(None)),
        http.post(&url)
            .basic_auth("nobody", Some("s3cret"))
            .body(subscribe(None)),
        http.post(&url).bearer_auth("s3cret").body(subscribe(None)),
        http.post(&url)
            .header("Authorization", "Basic !!!")
            .body(subscribe(None)),
        http.post(&url).body("garbage"),
        http.get(&url),
    ];
    for (n, request) in requests.into_iter().enumerate() {
        let response = request
            .header("Content-Type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer(response, &unauthenticated.1).await,
            unauthenticated,
            "request {n}"
        );
    }
    let mismatch = captured("scheduler-principal-mismatch-response.http");
    let response = http
        .post(&url)
        .basic_auth("shardex", Some("s3cret"))
        .header("Content-Type", "application/json")
        .body(subscribe(Some("other")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer(response, &mismatch.1).await, mismatch);
    // Valid credentials, with or without the principal in FrameworkInfo: subscribed.
    for principal in [None, Some("shardex")] {
        let response = http
            .post(&url)
            .basic_auth("shardex", Some("s3cret"))
            .header("Content-Type", "application/json")
            .body(subscribe(principal))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{principal:?}");
    }
    tc.cluster.shutdown().await;
}

/// The scheduler with `framework.principal` and `framework.secret_file` runs jobs on a master
/// that authenticates frameworks, subscribing as its principal; with a wrong secret it never
/// subscribes, and every call it tried was refused.
#[tokio::test]
async fn a_scheduler_authenticates_with_its_principal_and_secret() {
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(dir.path());
    let tc = TestCluster::start_with(|c| c.framework_credentials = Some(creds)).await;
    for (secret, works) in [("s3cret", true), ("not-it", false)] {
        let run = tempfile::tempdir().unwrap();
        let secret_file = token_file(run.path(), secret, 0o600);
        let config = format!(
            "{TUNING}\n[framework]\nprincipal = \"shardex\"\nsecret_file = {:?}\n{}\n[[jobs]]\n\
             name = \"once\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\nsharding_total_count = 2\n\
             plugin = \"libfaulty.so\"\njob_parameter = \"ok\"\n",
            secret_file.display().to_string(),
            app("a", &["faulty"])
        );
        let calls_before = tc.cluster.scheduler_calls().await.unwrap().len();
        let s = scheduler_in(run.path(), &config, &tc.cluster.master_url());
        if works {
            until_subscribed(&s).await;
            assert_eq!(s.rest.post("/api/jobs/once/trigger").await, 202);
            s.rest.until_metric("shardex_tasks_finished_total", 2).await;
            let calls = tc.cluster.scheduler_calls().await.unwrap();
            let subscribe = calls[calls_before..]
                .iter()
                .filter_map(|c| c.call.as_ref())
                .find_map(|c| c.subscribe.as_ref())
                .expect("a SUBSCRIBE");
            assert_eq!(
                subscribe.framework_info.principal.as_deref(),
                Some("shardex")
            );
        } else {
            let refused = eventually("three refused SUBSCRIBEs", SOON, || async {
                let calls = tc.cluster.scheduler_calls().await.unwrap();
                (calls.len() >= calls_before + 3).then(|| calls[calls_before..].to_vec())
            })
            .await;
            assert!(refused.iter().all(|c| c.status == 401), "{refused:?}");
            let (status, health) = s.rest.call(reqwest::Method::GET, "/health", None).await;
            assert_eq!(
                (status, health["status"].as_str()),
                (503, Some("disconnected"))
            );
        }
        drop(s);
    }
    tc.cluster.shutdown().await;
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// No secret leaks on a cluster with every authentication on and the executor logging at
/// `trace`: the executor's token (a JWT the agent gives it in its environment) reaches no
/// job's environment and no file in any sandbox (the executor's own log included); the framework secret and the REST token
/// travel in no call body to the master (no `ExecutorInfo`, no label, no environment).
#[tokio::test]
async fn no_secret_reaches_jobs_sandboxes_or_task_infos() {
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(dir.path());
    let tc = TestCluster::start_with(|c| {
        c.framework_credentials = Some(creds);
        c.executor_authentication = true;
    })
    .await;
    let run = tempfile::tempdir().unwrap();
    let secret_file = run.path().join("framework.secret");
    std::fs::write(&secret_file, "s3cret").unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rest_token = token_file(run.path(), TOKEN, 0o600);
    let out = run.path().join("envs");
    std::fs::create_dir(&out).unwrap();
    let config = format!(
        "{}\n[framework]\nprincipal = \"shardex\"\nsecret_file = {:?}\n[rest]\ntoken_file = {:?}\n\
         {}\n[[jobs]]\nname = \"envdump\"\napp = \"a\"\ncron = \"0 0 0 1 1 ? 2099\"\n\
         kind = \"script\"\nsharding_total_count = 2\n\
         command_line = \"/bin/sh -c 'env > {}/$SHARDEX_SHARDING_ITEM.env'\"\n",
        TUNING.replace("RUST_LOG = \"info\"", "RUST_LOG = \"trace\""),
        secret_file.display().to_string(),
        rest_token.display().to_string(),
        app("a", &[]),
        out.display()
    );
    let s = scheduler_in(run.path(), &config, &tc.cluster.master_url());
    until_subscribed(&s).await;
    let (status, _, _) = post(
        &s.scheduler.rest_url,
        "/api/jobs/envdump/trigger",
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(status, 202);
    s.rest.until_metric("shardex_tasks_finished_total", 2).await;

    // The agent's token is a JWT (HS256): every one starts with the same encoded header.
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
    let executor_calls = tc.cluster.executor_calls().await.unwrap();
    assert!(
        !executor_calls.is_empty() && executor_calls.iter().all(|c| c.status != 401),
        "the executor authenticated every call"
    );
    for item in 0..2 {
        let env = std::fs::read_to_string(out.join(format!("{item}.env"))).unwrap();
        assert!(env.contains("SHARDEX_TASK_ID=envdump@-@"), "{env}");
        assert!(
            !env.contains("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"),
            "{env}"
        );
        assert!(
            !env.contains(jwt),
            "item {item}'s environment has a token: {env}"
        );
    }
    let sandboxes = files_under(tc.cluster.work_dir());
    let logs = sandboxes
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "stderr"))
        .count();
    assert!(
        logs >= 1,
        "the executor's stderr (its log) is among the files scanned"
    );
    for file in &sandboxes {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap_or_default()).into_owned();
        assert!(!text.contains(jwt), "{} has a token", file.display());
        assert!(
            !text.contains("MESOS_EXECUTOR_AUTHENTICATION_TOKEN="),
            "{} has the token's variable",
            file.display()
        );
    }
    let calls = tc.cluster.scheduler_calls().await.unwrap();
    assert!(
        calls.iter().any(|c| c.status == 202),
        "the scheduler's calls were accepted"
    );
    for call in &calls {
        let raw = String::from_utf8_lossy(&call.raw);
        for secret in ["s3cret", TOKEN] {
            assert!(!raw.contains(secret), "a call body carries a secret: {raw}");
        }
    }
    drop(s);
    tc.cluster.shutdown().await;
}
