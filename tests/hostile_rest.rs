//! Hostile input at the scheduler's REST API, each answered with its exact error while the
//! scheduler goes on: malformed and truncated JSON, a body past the size limit, nesting deep
//! enough to exhaust a recursive parser, an invalid cron, names that would break task ids or
//! paths, plugin paths no executor would load, and ten thousand connections held open at once.

mod fake_master;
mod support;

use fake_master::FakeMaster;
use serde_json::{Value, json};
use shardex::scheduler::{Config, Options, Scheduler};

struct Harness {
    _master: FakeMaster,
    _dir: tempfile::TempDir,
    scheduler: Scheduler,
    base: String,
    http: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        let master = FakeMaster::start().await;
        let dir = tempfile::tempdir().unwrap();
        let scheduler = Scheduler::start(Options {
            config: Config::default(),
            master: master.url.clone(),
            store: dir.path().join("store.redb"),
            listen: "127.0.0.1:0".into(),
        })
        .await
        .unwrap();
        let base = format!("http://{}", scheduler.rest_addr());
        let h = Harness {
            _master: master,
            _dir: dir,
            scheduler,
            base,
            http: support::http(),
        };
        let app = json!({"name": "demo", "executor_uri": "/opt/shardex/shardex-executor"});
        assert_eq!(h.post_json("/api/apps", &app.to_string()).await.0, 201);
        h
    }

    /// `POST path` with `body` as JSON: status and the `error` of the answer.
    async fn post_json(&self, path: &str, body: &str) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let value: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        (
            status,
            value["error"].as_str().unwrap_or_default().to_owned(),
        )
    }

    async fn jobs(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/api/jobs", self.base))
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }
}

fn job(name: &str, cron: &str) -> String {
    json!({
        "name": name, "app": "demo", "cron": cron, "sharding_total_count": 2,
        "plugin": "libhello_shards.so"
    })
    .to_string()
}

#[tokio::test]
async fn malformed_oversized_and_deeply_nested_bodies_get_their_exact_errors() {
    let h = Harness::start().await;
    let deep_error = format!(
        "invalid job body: Failed to parse the request body as JSON: name{}: recursion limit \
         exceeded at line 1 column 136",
        "[0]".repeat(126)
    );
    let cases: Vec<(String, u16, &str)> = vec![
        (
            "{\"name\": ".into(),
            400,
            "invalid job body: Failed to parse the request body as JSON: name: EOF while parsing \
             a value at line 1 column 9",
        ),
        (
            "{\"name\": \"x\",}".into(),
            400,
            "invalid job body: Failed to parse the request body as JSON: trailing comma at \
             line 1 column 14",
        ),
        (
            "[1, 2]".into(),
            400,
            "invalid job body: expected a JSON object, got an array",
        ),
        (
            format!(
                "{{\"name\": {}{}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
            400,
            // serde_json stops at 128 levels, whatever the depth sent.
            &deep_error,
        ),
        (
            format!("{{\"name\": \"{}\"}}", "x".repeat(3 * 1024 * 1024)),
            413,
            "invalid job body: Failed to buffer the request body: length limit exceeded",
        ),
    ];
    for (body, status, error) in cases {
        let preview: String = body.chars().take(40).collect();
        assert_eq!(
            h.post_json("/api/jobs", &body).await,
            (status, error.to_owned()),
            "body {preview}…"
        );
    }
    assert_eq!(h.jobs().await, json!([]), "nothing was registered");
    // The scheduler goes on.
    assert_eq!(
        h.post_json("/api/jobs", &job("fine", "0 0 0 1 1 ? 2099"))
            .await
            .0,
        201
    );
    h.scheduler.shutdown().await;
}

#[tokio::test]
async fn an_invalid_cron_and_names_that_would_break_ids_or_paths_are_refused_by_name() {
    let h = Harness::start().await;
    let cases = [
        (
            job("nightly", "0 0 25 * * ?"),
            "job 'nightly': field 'cron' invalid cron expression '0 0 25 * * ?': hour 25 is out \
             of range 0-23; expected Quartz format 'second minute hour day-of-month month \
             day-of-week [year]', e.g. '0/30 * * * * ?'",
        ),
        (
            job("a@-@b", "0 0 0 1 1 ? 2099"),
            "job: field 'name' 'a@-@b' contains the id delimiter '@-@'",
        ),
        (
            job("../etc", "0 0 0 1 1 ? 2099"),
            "job: field 'name' '../etc' contains '/'; names may not contain '/' or '\\'",
        ),
    ];
    for (body, error) in cases {
        assert_eq!(
            h.post_json("/api/jobs", &body).await,
            (400, error.to_owned()),
            "{body}"
        );
    }
    assert_eq!(h.jobs().await, json!([]), "nothing was registered");
    h.scheduler.shutdown().await;
}

/// A plugin path with `..` or an absolute one can never load (the executor confines plugins to
/// its sandbox), so the job is refused up front, on registration and on update alike.
#[tokio::test]
async fn plugin_paths_outside_the_sandbox_are_refused_up_front() {
    let h = Harness::start().await;
    let with_plugin = |plugin: &str| {
        json!({
            "name": "escape", "app": "demo", "cron": "0 0 0 1 1 ? 2099",
            "sharding_total_count": 1, "plugin": plugin
        })
        .to_string()
    };
    let refused = |plugin: &str| {
        format!(
            "job 'escape': field 'plugin' '{plugin}' must be a path relative to the executor's \
             sandbox, without '..'"
        )
    };
    for plugin in ["../../etc/x.so", "plugins/../../x.so", "/usr/lib/x.so"] {
        assert_eq!(
            h.post_json("/api/jobs", &with_plugin(plugin)).await,
            (400, refused(plugin)),
            "{plugin}"
        );
    }
    assert_eq!(h.jobs().await, json!([]), "nothing was registered");

    // A registered job cannot be moved outside either.
    assert_eq!(
        h.post_json("/api/jobs", &with_plugin("plugins/libhello_shards.so"))
            .await
            .0,
        201
    );
    let response = h
        .http
        .patch(format!("{}/api/jobs/escape", h.base))
        .header("content-type", "application/merge-patch+json")
        .body(json!({"plugin": "/usr/lib/x.so"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["error"], refused("/usr/lib/x.so"));
    assert_eq!(h.jobs().await[0]["plugin"], "plugins/libhello_shards.so");
    h.scheduler.shutdown().await;
}

/// A child process (Python, so that its descriptors are not this process') that opens
/// `n` connections to `addr`, sends half a request on every other one, says `ready`, and
/// holds them until its stdin closes.
const HOLDER: &str = r#"
import resource, socket, sys
n, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for i in range(n):
    s = socket.create_connection((host, port))
    if i % 2 == 0:
        s.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    held.append(s)
print("ready", len(held), flush=True)
sys.stdin.read()
"#;

/// Ten thousand connections opened and held (half of them stalled mid-request): the scheduler
/// keeps answering, neither refusing to accept nor crashing, and once they close it answers as
/// before.
#[tokio::test]
async fn ten_thousand_idle_connections_do_not_stop_the_scheduler() {
    use std::io::{BufRead, BufReader, Write};
    const CONNECTIONS: usize = 10_000;
    let test = "ten_thousand_idle_connections_do_not_stop_the_scheduler";
    let limit = nix::sys::resource::Resource::RLIMIT_NOFILE;
    let (_, hard) = nix::sys::resource::getrlimit(limit).expect("the open-files limit");
    let wanted = CONNECTIONS as u64 + 2_000;
    if hard < wanted {
        support::skip(
            test,
            &format!("the open-files hard limit is {hard}, below the {wanted} this test needs"),
        );
        return;
    }
    nix::sys::resource::setrlimit(limit, wanted, hard).expect("raising the open-files limit");
    let h = Harness::start().await;
    let addr = h.scheduler.rest_addr();
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            HOLDER,
            &CONNECTIONS.to_string(),
            &addr.ip().to_string(),
        ])
        .arg(addr.port().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 to hold the connections");
    let stdout = holder.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(ready.trim(), format!("ready {CONNECTIONS}"));
    assert_eq!(
        h.post_json("/api/jobs", &job("during", "0 0 0 1 1 ? 2099"))
            .await
            .0,
        201
    );
    let mut stdin = holder.stdin.take().unwrap();
    let _ = stdin.write_all(b"");
    drop(stdin);
    let status = tokio::task::spawn_blocking(move || holder.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        h.post_json("/api/jobs", &job("after", "0 0 0 1 1 ? 2099"))
            .await
            .0,
        201
    );
    let names: Vec<Value> = h
        .jobs()
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].clone())
        .collect();
    assert_eq!(names, [json!("after"), json!("during")]);
    h.scheduler.shutdown().await;
}

/// A client stalled mid-request does not keep the scheduler from stopping: requests in
/// progress get `REST_DRAIN` to finish, then their connections are closed.
#[tokio::test]
async fn a_client_stalled_mid_request_does_not_hold_up_stopping() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start().await;
    let mut stalled = tokio::net::TcpStream::connect(h.scheduler.rest_addr())
        .await
        .unwrap();
    // One whole request first, so the connection is being served, then half of another.
    stalled
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    stalled.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    stalled
        .write_all(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let limit = shardex::scheduler::REST_DRAIN + support::SOON;
    tokio::time::timeout(limit, h.scheduler.shutdown())
        .await
        .expect("stopping waited on a stalled client");
    drop(stalled);
}
