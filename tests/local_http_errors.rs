//! Every probe of tests/data/real-mesos/http-errors.md replayed against the embedded cluster:
//! same request bytes and headers, same status, body and response headers.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;

use shardex::mesos::proto::v1::{self, executor, scheduler};
use shardex::mesos::{Encoding, recordio};
use support::*;

fn capture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/real-mesos/calls")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// POSTs `body` with exactly `headers` (besides Host and Content-Length).
async fn post(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (String, Vec<(String, String)>, String) {
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {address}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    let (status, headers, body) = raw_request(address, &bytes).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn names(headers: &[(String, String)]) -> Vec<&str> {
    headers.iter().map(|(k, _)| k.as_str()).collect()
}

/// Checks an error answer: status line, body, and libprocess' header set and order.
fn assert_error(answer: &(String, Vec<(String, String)>, String), status: &str, body: &str) {
    let (line, headers, text) = answer;
    assert_eq!(line, &format!("HTTP/1.1 {status}"), "body: {text}");
    assert_eq!(text, body);
    assert_eq!(names(headers), ["Date", "Content-Type", "Content-Length"]);
    assert_eq!(headers[1].1, "text/plain; charset=utf-8");
    assert_eq!(headers[2].1, body.len().to_string());
}

/// A captured body, the headers it was sent with, and the expected status and body.
type Probe<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, String);

const PB: (&str, &str) = ("Content-Type", "application/x-protobuf");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_endpoint_answers_like_a_real_master() {
    let tc = TestCluster::start().await;
    let master = tc.cluster.master_endpoint();
    let path = "/api/v1/scheduler";
    let fw = tc.framework("probe").await;
    let stream = fw.stream_id.clone();
    // The captured bodies name the captured framework id; re-target them at ours.
    let retarget = |name: &str| -> Vec<u8> {
        let mut call: scheduler::Call = prost::Message::decode(capture(name).as_slice()).unwrap();
        if call.framework_id.is_some() {
            call.framework_id = Some(v1::FrameworkId {
                value: fw.framework_id.clone(),
            });
        }
        prost::Message::encode_to_vec(&call)
    };
    let reconcile = retarget("scheduler-call-02-RECONCILE-probe-no-stream-id.bin");

    assert_error(
        &post(master, path, &[PB], &reconcile).await,
        "400 Bad Request",
        "All non-subscribe calls should include the 'Mesos-Stream-Id' header",
    );
    let wrong = "64bb0cf0-a117-43ce-b325-8c91660e3154";
    assert_error(
        &post(master, path, &[PB, ("Mesos-Stream-Id", wrong)], &reconcile).await,
        "400 Bad Request",
        &format!(
            "The stream ID '{wrong}' included in this request didn't match the stream ID \
             currently associated with framework ID {}",
            fw.framework_id
        ),
    );
    let sid = ("Mesos-Stream-Id", stream.as_str());
    assert_error(
        &post(
            master,
            path,
            &[
                ("Content-Type", "application/x-protobuf; charset=utf-8"),
                sid,
            ],
            &reconcile,
        )
        .await,
        "415 Unsupported Media Type",
        "Expecting 'Content-Type' of application/json or application/x-protobuf",
    );
    assert_error(
        &post(
            master,
            path,
            &[PB, sid],
            &capture("scheduler-call-05-probe-garbage-body.bin"),
        )
        .await,
        "400 Bad Request",
        "Failed to parse body into Call protobuf",
    );
    assert_error(
        &post(
            master,
            path,
            &[PB, sid, ("Accept", "application/x-protobuf")],
            &capture("scheduler-call-06-SUBSCRIBE-probe-with-stream-id.bin"),
        )
        .await,
        "400 Bad Request",
        "Subscribe calls should not include the 'Mesos-Stream-Id' header",
    );
    assert_error(
        &post(
            master,
            path,
            &[PB, ("Accept", "application/x-protobuf")],
            &capture("scheduler-call-07-SUBSCRIBE-probe-framework-id-mismatch.bin"),
        )
        .await,
        "400 Bad Request",
        "Failed to validate scheduler::Call: 'framework_id' differs from 'subscribe.framework_info.id'",
    );
    assert_error(
        &post(
            master,
            path,
            &[PB, sid],
            &retarget("scheduler-call-08-RECONCILE-probe-without-reconcile-field.bin"),
        )
        .await,
        "400 Bad Request",
        "Failed to validate scheduler::Call: Expecting 'reconcile' to be present",
    );
    assert_error(
        &post(
            master,
            path,
            &[PB, sid],
            &capture("scheduler-call-09-RECONCILE-probe-no-framework-id.bin"),
        )
        .await,
        "400 Bad Request",
        "Failed to validate scheduler::Call: Expecting 'framework_id' to be present",
    );
    assert_error(
        &post(
            master,
            path,
            &[PB, sid],
            &capture("scheduler-call-10-RECONCILE-probe-unknown-framework-id.bin"),
        )
        .await,
        "400 Bad Request",
        "Framework cannot be found",
    );
    assert_error(
        &post(master, path, &[sid], &reconcile).await,
        "400 Bad Request",
        "Expecting 'Content-Type' to be present",
    );
    // ACKNOWLEDGE with the uuid as text.
    assert_error(
        &post(
            master,
            path,
            &[PB, sid],
            &retarget("scheduler-call-13-ACKNOWLEDGE-probe-uuid-36-char-string.bin"),
        )
        .await,
        "400 Bad Request",
        "Failed to validate scheduler::Call: Not a valid UUID",
    );
    // 406 when neither encoding is acceptable.
    let subscribe = capture("scheduler-call-01-SUBSCRIBE.bin");
    assert_error(
        &post(
            master,
            path,
            &[PB, ("Accept", "application/recordio")],
            &subscribe,
        )
        .await,
        "406 Not Acceptable",
        "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'",
    );
    // A well-formed call: 202 with only Date and Content-Length: 0.
    let (line, headers, body) = post(master, path, &[PB, sid], &reconcile).await;
    assert_eq!(line, "HTTP/1.1 202 Accepted");
    assert_eq!(names(&headers), ["Date", "Content-Length"]);
    assert_eq!(headers[1].1, "0");
    assert!(body.is_empty());
    // The /master alias.
    let (line, _, _) = post(master, "/master/api/v1/scheduler", &[PB, sid], &reconcile).await;
    assert_eq!(line, "HTTP/1.1 202 Accepted");
    // 405 with Allow: POST.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {master}\r\nContent-Type: application/x-protobuf\r\n\r\n"
    );
    let (line, headers, body) = raw_request(master, request.as_bytes()).await;
    assert_eq!(line, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(
        names(&headers),
        ["Date", "Allow", "Content-Type", "Content-Length"]
    );
    assert_eq!(headers[1].1, "POST");
    assert_eq!(
        String::from_utf8_lossy(&body),
        "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'."
    );
    // UNKNOWN type: 501.
    let mut unknown = fw.call(scheduler::call::Type::Unknown);
    unknown.r#type = Some(0);
    assert_error(
        &post(
            master,
            path,
            &[PB, sid],
            &prost::Message::encode_to_vec(&unknown),
        )
        .await,
        "501 Not Implemented",
        "501 Not Implemented.",
    );

    // The observation log saw every call with the status answered, in order.
    let statuses: Vec<u16> = tc
        .cluster
        .scheduler_calls()
        .await
        .unwrap()
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(
        statuses,
        [
            200, 400, 400, 415, 400, 400, 400, 400, 400, 400, 400, 400, 406, 202, 202, 405, 501
        ]
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_responses_failover_and_removed_frameworks() {
    let tc = TestCluster::start().await;
    let master = tc.cluster.master_endpoint();
    let url = tc.cluster.master_url();
    // Response headers of a SUBSCRIBE, in libprocess' order, and RecordIO chunks.
    let subscribe = capture("scheduler-call-01-SUBSCRIBE.bin");
    let request = format!(
        "POST /api/v1/scheduler HTTP/1.1\r\nHost: {master}\r\nContent-Type: application/x-protobuf\r\nAccept: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
        subscribe.len()
    );
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(&subscribe);
    let (line, headers, body) = raw_request(master, &bytes).await;
    assert_eq!(line, "HTTP/1.1 200 OK");
    assert_eq!(
        names(&headers),
        [
            "Date",
            "Transfer-Encoding",
            "Mesos-Stream-Id",
            "Content-Type"
        ]
    );
    assert_eq!(headers[1].1, "chunked");
    assert_eq!(headers[2].1.len(), 36);
    assert_eq!(headers[3].1, "application/x-protobuf");
    // First chunk: exactly one record (SUBSCRIBED).
    let mut decoder = recordio::Decoder::default();
    decoder.feed(first_chunk(&body).expect("a complete first chunk"));
    let record = decoder
        .next_record()
        .unwrap()
        .expect("one whole record in the first chunk");
    let event: scheduler::Event = prost::Message::decode(record.as_ref()).unwrap();
    assert_eq!(event_type(&event), scheduler::event::Type::Subscribed);
    assert!(decoder.next_record().unwrap().is_none());

    // A second subscription with the same id fences the first: ERROR "Framework failed over".
    let mut first = TestFramework::subscribe(&url, framework_info("fo"), Encoding::Json)
        .await
        .unwrap();
    let second = TestFramework::subscribe(&url, first.info.clone(), Encoding::Protobuf)
        .await
        .unwrap();
    assert_eq!(second.framework_id, first.framework_id);
    assert_ne!(second.stream_id, first.stream_id);
    let error = first
        .wait_for("ERROR", SOON, |e| {
            event_type(e) == scheduler::event::Type::Error
        })
        .await;
    assert_eq!(error.error.unwrap().message, "Framework failed over");
    first.wait_closed(SOON).await.expect("old stream closed");
    // The old stream id is now stale: 400.
    let error = first.reconcile(&[]).await.unwrap_err();
    assert_eq!(error.status(), Some(400));

    // After TEARDOWN the id is dead: 200 + a single ERROR, then the stream ends.
    second.teardown().await.unwrap();
    let mut probe = shardex::mesos::Client::new(&url, Default::default()).unwrap();
    probe.set_stream_id(None);
    let call = scheduler::Call {
        framework_id: second.info.id.clone(),
        r#type: Some(scheduler::call::Type::Subscribe as i32),
        subscribe: Some(scheduler::call::Subscribe {
            framework_info: second.info.clone(),
            suppressed_roles: Vec::new(),
        }),
        ..Default::default()
    };
    let mut subscription = probe
        .subscribe::<_, scheduler::Event>(&call)
        .await
        .expect("200 for a removed framework");
    assert!(
        subscription.stream_id().is_some(),
        "a fresh Mesos-Stream-Id even so"
    );
    let event = subscription.next_event().await.unwrap().expect("ERROR");
    assert_eq!(event.error.unwrap().message, "Framework has been removed");
    assert!(
        subscription.next_event().await.unwrap().is_none(),
        "then the stream ends"
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_endpoint_answers_like_a_real_agent() {
    let tc = TestCluster::start().await;
    let agent = tc.cluster.agent_endpoint();
    let path = "/api/v1/executor";
    // The UPDATE checks come before any lookup, so the captured bodies (naming the captured
    // framework and executor) get the captured texts byte for byte.
    let fw = "e14960a5-0fa2-4e89-9ec2-ffdc9657ab0e-0000";
    let probes: [Probe; 8] = [
        (
            "executor-call-02-UPDATE-probe-uuid-36-char-string.bin",
            &[PB],
            "400 Bad Request",
            "Failed to validate Executor::Call: Not a valid UUID".into(),
        ),
        (
            "executor-call-03-UPDATE-probe-state-TASK_STAGING.bin",
            &[PB],
            "400 Bad Request",
            format!("Failed to validate Executor::Call: Received TASK_STAGING from executor capture-exec of framework {fw} which is not allowed"),
        ),
        (
            "executor-call-04-UPDATE-probe-source-unset.bin",
            &[PB],
            "400 Bad Request",
            format!("Failed to validate Executor::Call: Received Call from executor capture-exec of framework {fw} with invalid source, expecting 'SOURCE_EXECUTOR'"),
        ),
        (
            "executor-call-05-UPDATE-probe-wrong-status-executor-id.bin",
            &[PB],
            "400 Bad Request",
            "Failed to validate Executor::Call: ExecutorID in Call: capture-exec does not match ExecutorID in TaskStatus: wrong-executor-id".into(),
        ),
        (
            "executor-call-06-UPDATE-probe-content-type-charset.bin",
            &[("Content-Type", "application/x-protobuf; charset=utf-8")],
            "415 Unsupported Media Type",
            "Expecting 'Content-Type' of application/json or application/x-protobuf".into(),
        ),
        (
            "executor-call-07-probe-garbage-body.bin",
            &[PB],
            "400 Bad Request",
            "Failed to parse body into Call protobuf".into(),
        ),
        (
            "executor-call-08-UPDATE-probe-uuid-unset.bin",
            &[PB],
            "400 Bad Request",
            "Failed to validate Executor::Call: Expecting 'uuid' to be present".into(),
        ),
        (
            "executor-call-09-UPDATE-probe-no-content-type.bin",
            &[],
            "400 Bad Request",
            "Expecting 'Content-Type' to be present".into(),
        ),
    ];
    for (file, headers, status, body) in probes {
        assert_error(
            &post(agent, path, headers, &capture(file)).await,
            status,
            &body,
        );
    }
    assert_error(
        &post(
            agent,
            path,
            &[PB],
            &capture("executor-call-14-MESSAGE-probe-no-message-field.bin"),
        )
        .await,
        "400 Bad Request",
        "Failed to validate Executor::Call: Expecting 'message' to be present",
    );
    // HEARTBEAT is answered before any lookup, on both paths.
    for (file, path) in [
        ("executor-call-10-HEARTBEAT.bin", path),
        ("executor-call-11-HEARTBEAT-probe-dummy-ids.bin", path),
        (
            "executor-call-12-HEARTBEAT-probe-slave1-path.bin",
            "/slave(1)/api/v1/executor",
        ),
    ] {
        let (line, headers, body) = post(agent, path, &[PB], &capture(file)).await;
        assert_eq!(line, "HTTP/1.1 202 Accepted", "{file}");
        assert_eq!(names(&headers), ["Date", "Content-Length"]);
        assert!(body.is_empty());
    }
    // Unknown framework.
    let mut update: executor::Call =
        prost::Message::decode(capture("executor-call-16-UPDATE-t1-TASK_STARTING.bin").as_slice())
            .unwrap();
    assert_error(
        &post(agent, path, &[PB], &prost::Message::encode_to_vec(&update)).await,
        "400 Bad Request",
        "Framework cannot be found",
    );
    // JSON errors use stout's texts behind Mesos' prefixes.
    update.update.as_mut().unwrap().status.uuid = None;
    let json = br#"{"executor_id":{"value":"e"},"framework_id":{"value":"f"},"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":1,"source":"SOURCE_EXECUTOR","uuid":"SxQ7TVUZSJq1YiRZWT2+SA=="}}}"#;
    assert_error(
        &post(agent, path, &[("Content-Type", "application/json")], json).await,
        "400 Bad Request",
        "Failed to convert JSON into Call protobuf: Not expecting a JSON number for field 'state'",
    );
    let json =
        br#"{"executor_id":{"value":"e"},"framework_id":{"value":"f"},"type":"NO_SUCH_TYPE"}"#;
    assert_error(
        &post(agent, path, &[("Content-Type", "application/json")], json).await,
        "400 Bad Request",
        "Failed to validate Executor::Call: Expecting 'type' to be present",
    );
    // GET: 405 with Allow.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {agent}\r\nContent-Type: application/x-protobuf\r\n\r\n"
    );
    let (line, headers, _) = raw_request(agent, request.as_bytes()).await;
    assert_eq!(line, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(
        names(&headers),
        ["Date", "Allow", "Content-Type", "Content-Length"]
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_calls_before_subscribing_are_forbidden_and_unknown_is_501() {
    // An executor that never subscribes (a plain `sleep`) stays REGISTERING.
    let tc = TestCluster::start().await;
    let agent_address = tc.cluster.agent_endpoint();
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("forbidden").await;
    let offer = fw.next_offer().await;
    let silent = executor_info("silent", "sleep 30", Vec::new());
    let subscribing = test_executor_info("talker");
    fw.launch(
        &offer,
        vec![
            task_info("s1", &agent, &silent, ""),
            task_info("k1", &agent, &subscribing, "running"),
        ],
    )
    .await
    .unwrap();
    fw.await_state("k1", v1::TaskState::TaskRunning).await;
    let call = |executor: &str, kind: executor::call::Type| executor::Call {
        executor_id: v1::ExecutorId {
            value: executor.into(),
        },
        framework_id: v1::FrameworkId {
            value: fw.framework_id.clone(),
        },
        r#type: Some(kind as i32),
        message: Some(executor::call::Message {
            data: b"x".to_vec(),
        }),
        ..Default::default()
    };
    let body = prost::Message::encode_to_vec(&call("silent", executor::call::Type::Message));
    assert_error(
        &post(agent_address, "/api/v1/executor", &[PB], &body).await,
        "403 Forbidden",
        "Executor is not subscribed",
    );
    let body = prost::Message::encode_to_vec(&call("nobody", executor::call::Type::Message));
    assert_error(
        &post(agent_address, "/api/v1/executor", &[PB], &body).await,
        "400 Bad Request",
        "Executor cannot be found",
    );
    let body = prost::Message::encode_to_vec(&call("talker", executor::call::Type::Unknown));
    assert_error(
        &post(agent_address, "/api/v1/executor", &[PB], &body).await,
        "501 Not Implemented",
        "501 Not Implemented.",
    );
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_never_take_the_cluster_down() {
    let tc = TestCluster::start().await;
    let master = tc.cluster.master_endpoint();
    let agent_address = tc.cluster.agent_endpoint();
    let json = ("Content-Type", "application/json");
    let deep = "[".repeat(10_000);
    let bodies: Vec<(&(&str, &str), Vec<u8>)> = vec![
        (&PB, Vec::new()),
        (&PB, vec![0xff; 64]),
        (&PB, vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        (&json, b"{".to_vec()),
        (&json, deep.into_bytes()),
        (&json, vec![b'"', 0xff, 0xfe, b'"']),
        (&json, br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":1}}}"#.to_vec()),
        (&json, br#"{"type":"ACCEPT","framework_id":{"value":"x"},"accept":{"filters":{"refuse_seconds":1e308}}}"#.to_vec()),
        (&json, br#"{"executor_id":{"value":"e"},"framework_id":{"value":"f"},"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":"AAAAAAAAQAAAAAAAAAAAAA==","timestamp":"NaN"}}}"#.to_vec()),
    ];
    for (header, body) in &bodies {
        for (address, path) in [
            (master, "/api/v1/scheduler"),
            (agent_address, "/api/v1/executor"),
        ] {
            let (line, _, _) = post(address, path, &[**header], body).await;
            assert!(
                line.starts_with("HTTP/1.1 4") || line.starts_with("HTTP/1.1 2"),
                "{path}: {line}"
            );
        }
    }
    // An ACCEPT asking for absurd resources is a TASK_ERROR, not a crash.
    let mut fw = tc.framework("still-up").await;
    let offer = fw.next_offer().await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut task = task_info("huge", &agent, &test_executor_info("e"), "");
    task.resources = vec![scalar("cpus", 1e300), scalar("mem", f64::MAX)];
    fw.launch(&offer, vec![task]).await.unwrap();
    let status = fw.next_update("huge").await;
    assert_eq!(state(&status), v1::TaskState::TaskError);
    tc.cluster.shutdown().await;
}
