//! The shared v1 HTTP client against a scripted loopback server that writes raw HTTP/1.1, so
//! headers, status codes and chunk boundaries are exactly what each test chooses.

use std::time::Duration;

use shardex::mesos::backoff::{self, Backoff};
use shardex::mesos::proto::v1::{self, executor, scheduler};
use shardex::mesos::{ApiError, Client, ClientConfig, Credentials, Encoding, recordio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(10);

/// One request as the server saw it.
#[derive(Debug)]
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    /// Header lines other than Host and Content-Length, lower-cased names, sorted.
    fn headers(&self) -> Vec<String> {
        let mut headers: Vec<String> = self
            .head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| format!("{}: {value}", name.to_ascii_lowercase()))
            .filter(|line| !line.starts_with("host:") && !line.starts_with("content-length:"))
            .collect();
        headers.sort();
        headers
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(": "))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request { head, body })
}

/// A server that answers each request with the next scripted response (raw bytes) and
/// reports every request it saw.
async fn scripted_server(responses: Vec<Vec<u8>>) -> (String, mpsc::UnboundedReceiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/executor", listener.local_addr().unwrap());
    let (seen, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut responses = responses.into_iter();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            // Serve requests on this connection until it closes (calls keep it alive).
            while let Some(request) = read_request(&mut stream).await {
                let _ = seen.send(request);
                let Some(response) = responses.next() else {
                    return;
                };
                if stream.write_all(&response).await.is_err() {
                    break;
                }
            }
        }
    });
    (url, requests)
}

fn accepted() -> Vec<u8> {
    b"HTTP/1.1 202 Accepted\r\nDate: Mon, 23 Nov 2026 19:52:04 GMT\r\nContent-Length: 0\r\n\r\n"
        .to_vec()
}

fn text_error(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn heartbeat_call() -> executor::Call {
    executor::Call {
        executor_id: v1::ExecutorId {
            value: "exec-1".into(),
        },
        framework_id: v1::FrameworkId {
            value: "fw-1".into(),
        },
        r#type: Some(executor::call::Type::Heartbeat as i32),
        ..Default::default()
    }
}

async fn next<T>(requests: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(DEADLINE, requests.recv())
        .await
        .expect("request within the deadline")
        .expect("server still running")
}

#[tokio::test]
async fn call_sends_exact_headers_and_accepts_202() {
    let (url, mut requests) = scripted_server(vec![accepted(), accepted()]).await;
    let config = ClientConfig {
        credentials: Some(Credentials::Bearer("token-123".into())),
        ..Default::default()
    };
    let mut client = Client::new(&url, config).unwrap();
    let call = heartbeat_call();
    assert!(client.call(&call).await.unwrap().is_empty());

    let request = next(&mut requests).await;
    assert!(
        request
            .head
            .starts_with("POST /api/v1/executor HTTP/1.1\r\n")
    );
    assert_eq!(
        request.headers(),
        vec![
            "accept: application/x-protobuf",
            "authorization: Bearer token-123",
            "content-type: application/x-protobuf",
        ]
    );
    assert_eq!(request.body, Encoding::Protobuf.encode(&call));

    // Scheduler-side calls carry the subscription's stream id.
    client.set_stream_id(Some("16e6c4cd-2bcf-415a-b0b8-cf3ac64e9bde"));
    client.call(&call).await.unwrap();
    let request = next(&mut requests).await;
    assert!(
        request
            .headers()
            .contains(&"mesos-stream-id: 16e6c4cd-2bcf-415a-b0b8-cf3ac64e9bde".to_owned())
    );
}

#[tokio::test]
async fn client_errors_carry_the_server_text_and_are_final() {
    let body = "Failed to validate Executor::Call: Expecting 'uuid' to be present";
    let (url, _requests) = scripted_server(vec![
        text_error("400 Bad Request", body),
        text_error(
            "415 Unsupported Media Type",
            "Expecting 'Content-Type' of application/json or application/x-protobuf",
        ),
    ])
    .await;
    let client = Client::new(&url, ClientConfig::default()).unwrap();
    let error = client.call(&heartbeat_call()).await.unwrap_err();
    match &error {
        ApiError::Status {
            status, body: text, ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(text, body);
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert!(
        error
            .to_string()
            .ends_with(&format!("answered 400: {body}"))
    );

    let error = client.call(&heartbeat_call()).await.unwrap_err();
    assert_eq!(error.status(), Some(415));
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn service_unavailable_is_retried_until_accepted() {
    let (url, mut requests) = scripted_server(vec![
        text_error("503 Service Unavailable", "Agent has not finished recovery"),
        text_error("404 Not Found", "404 Not Found."),
        accepted(),
    ])
    .await;
    let client = Client::new(&url, ClientConfig::default()).unwrap();
    let mut attempts = 0;
    let call = heartbeat_call();
    let backoff = Backoff::exponential(Duration::from_millis(1), Duration::from_millis(5));
    backoff::retry(backoff, None, || {
        attempts += 1;
        client.call(&call)
    })
    .await
    .unwrap();
    assert_eq!(attempts, 3);
    for _ in 0..3 {
        next(&mut requests).await;
    }
}

#[tokio::test]
async fn retry_gives_up_at_the_deadline_with_the_last_error() {
    let (url, _requests) = scripted_server(
        (0..100)
            .map(|_| text_error("503 Service Unavailable", "Agent has not finished recovery"))
            .collect(),
    )
    .await;
    let client = Client::new(&url, ClientConfig::default()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
    let backoff = Backoff::exponential(Duration::from_millis(5), Duration::from_millis(10));
    let call = heartbeat_call();
    let error = backoff::retry(backoff, Some(deadline), || client.call(&call))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(503));
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(
        format!("http://127.0.0.1:{port}/api/v1/executor"),
        ClientConfig::default(),
    )
    .unwrap();
    let error = client.call(&heartbeat_call()).await.unwrap_err();
    assert!(matches!(error, ApiError::Connect { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn redirect_names_the_leading_master() {
    let (url, _requests) = scripted_server(vec![
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: //10.1.2.3:5050/api/v1/scheduler\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
    ])
    .await;
    let client = Client::new(&url, ClientConfig::default()).unwrap();
    match client.call(&heartbeat_call()).await.unwrap_err() {
        ApiError::Redirect { location, .. } => {
            assert_eq!(location, "http://10.1.2.3:5050/api/v1/scheduler")
        }
        other => panic!("expected a redirect, got {other:?}"),
    }
}

fn event(kind: scheduler::event::Type) -> scheduler::Event {
    scheduler::Event {
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

fn chunk(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

/// Serves one SUBSCRIBE whose body is written piece by piece, each piece only after the test
/// says so: the client must yield events before the body ends.
async fn streaming_server(
    head: &'static str,
) -> (
    String,
    mpsc::UnboundedSender<Vec<u8>>,
    mpsc::UnboundedReceiver<Request>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/scheduler", listener.local_addr().unwrap());
    let (pieces, mut to_write) = mpsc::unbounded_channel::<Vec<u8>>();
    let (seen, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let request = read_request(&mut stream).await.unwrap();
        let _ = seen.send(request);
        stream.write_all(head.as_bytes()).await.unwrap();
        while let Some(piece) = to_write.recv().await {
            if piece.is_empty() {
                // An empty piece means: drop the connection now.
                return;
            }
            stream.write_all(&piece).await.unwrap();
            stream.flush().await.unwrap();
        }
    });
    (url, pieces, requests)
}

const SUBSCRIBED_HEAD: &str = "HTTP/1.1 200 OK\r\nDate: Mon, 23 Nov 2026 19:52:04 GMT\r\n\
    Transfer-Encoding: chunked\r\nMesos-Stream-Id: 16e6c4cd-2bcf-415a-b0b8-cf3ac64e9bde\r\n\
    Content-Type: application/x-protobuf\r\n\r\n";

#[tokio::test]
async fn subscription_yields_events_as_pieces_arrive() {
    let (url, pieces, mut requests) = streaming_server(SUBSCRIBED_HEAD).await;
    let mut client = Client::new(&url, ClientConfig::default()).unwrap();
    // A stream id set from an earlier subscription must not be sent on SUBSCRIBE.
    client.set_stream_id(Some("stale"));
    let subscribe = scheduler::Call {
        r#type: Some(scheduler::call::Type::Subscribe as i32),
        subscribe: Some(scheduler::call::Subscribe {
            framework_info: v1::FrameworkInfo {
                user: "root".into(),
                name: "test".into(),
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut subscription = tokio::time::timeout(
        DEADLINE,
        client.subscribe::<_, scheduler::Event>(&subscribe),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        subscription.stream_id(),
        Some("16e6c4cd-2bcf-415a-b0b8-cf3ac64e9bde")
    );
    let request = next(&mut requests).await;
    assert_eq!(
        request.headers(),
        vec![
            "accept: application/x-protobuf",
            "content-type: application/x-protobuf",
        ]
    );

    // Two records framed together, then split so one HTTP chunk ends mid-header and the next
    // mid-payload.
    let mut body =
        recordio::encode(&Encoding::Protobuf.encode(&event(scheduler::event::Type::Heartbeat)));
    let first_len = body.len();
    let offers = event(scheduler::event::Type::Offers);
    recordio::encode_into(&Encoding::Protobuf.encode(&offers), &mut body);
    // First record's header alone, then its payload plus the second record's first byte.
    pieces.send(chunk(&body[..1])).unwrap();
    pieces.send(chunk(&body[1..first_len + 1])).unwrap();
    let first = tokio::time::timeout(DEADLINE, subscription.next_event())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first, event(scheduler::event::Type::Heartbeat));
    // The second record is incomplete: nothing until the rest arrives.
    pieces
        .send(chunk(&body[first_len + 1..first_len + 3]))
        .unwrap();
    let pending = tokio::time::timeout(Duration::from_millis(50), subscription.next_event()).await;
    assert!(
        pending.is_err(),
        "no event may be yielded from half a record"
    );
    pieces.send(chunk(&body[first_len + 3..])).unwrap();
    let second = tokio::time::timeout(DEADLINE, subscription.next_event())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second, offers);

    // The terminating chunk ends the stream cleanly.
    pieces.send(b"0\r\n\r\n".to_vec()).unwrap();
    assert!(
        tokio::time::timeout(DEADLINE, subscription.next_event())
            .await
            .unwrap()
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn subscription_reports_a_stream_cut_inside_a_record() {
    let (url, pieces, _requests) = streaming_server(SUBSCRIBED_HEAD).await;
    let client = Client::new(&url, ClientConfig::default()).unwrap();
    let mut subscription = client
        .subscribe::<_, scheduler::Event>(&heartbeat_call())
        .await
        .unwrap();
    pieces.send(chunk(b"10\nabc")).unwrap();
    // The connection drops with no terminating chunk, as when an agent dies.
    pieces.send(Vec::new()).unwrap();
    let error = tokio::time::timeout(DEADLINE, subscription.next_event())
        .await
        .unwrap()
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn subscription_with_wrong_content_type_is_refused() {
    let (url, _pieces, _requests) = streaming_server(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n",
    )
    .await;
    let client = Client::new(&url, ClientConfig::default()).unwrap();
    let error = client
        .subscribe::<_, scheduler::Event>(&heartbeat_call())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ApiError::UnexpectedContentType { ref content_type, .. } if content_type == "application/json"),
        "{error:?}"
    );
}

#[tokio::test]
async fn json_encoding_sends_json_headers_and_bodies() {
    let (url, mut requests) = scripted_server(vec![accepted()]).await;
    let client = Client::new(
        &url,
        ClientConfig {
            encoding: Encoding::Json,
            ..Default::default()
        },
    )
    .unwrap();
    client.call(&heartbeat_call()).await.unwrap();
    let request = next(&mut requests).await;
    assert_eq!(
        request.headers(),
        vec!["accept: application/json", "content-type: application/json"]
    );
    assert_eq!(
        String::from_utf8(request.body).unwrap(),
        r#"{"executor_id":{"value":"exec-1"},"framework_id":{"value":"fw-1"},"type":"HEARTBEAT"}"#
    );
}
