//! End-to-end helpers: a hand-rolled v1 scheduler over HTTP ([`TestFramework`]), builders for
//! FrameworkInfo/ExecutorInfo/TaskInfo, an embedded cluster tuned for fast tests, a tiny static
//! HTTP file server and tarball building.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shardex::local::{LocalCluster, LocalClusterConfig, RestartTimings};
use shardex::mesos::proto::v1::{
    self, TaskState, framework_info::capability::Type as Capability, scheduler, task_status,
};
use shardex::mesos::{ApiError, Client, ClientConfig, Encoding, Subscription};
use tokio::time::Instant;

use super::test_executor_binary;

pub use super::wait::SOON;

/// The pid of `executor_id`'s process, once the agent has started it.
pub async fn executor_started(cluster: &LocalCluster, executor_id: &str) -> u32 {
    super::eventually(
        &format!("executor {executor_id} to start"),
        SOON,
        || async { cluster.executor_pid(executor_id).await.unwrap() },
    )
    .await
}

/// Returns once the agent no longer has a live process for `executor_id`.
pub async fn executor_gone(cluster: &LocalCluster, executor_id: &str) {
    super::eventually(
        &format!("executor {executor_id} to be gone"),
        SOON,
        || async { super::holds(cluster.executor_pid(executor_id).await.unwrap().is_none()) },
    )
    .await
}

/// Logs to the test's captured output; `RUST_LOG=shardex=debug` shows the cluster's steps.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("shardex=info")),
        )
        .with_test_writer()
        .try_init();
}

/// Cluster settings for tests: short intervals, Mesos defaults otherwise.
pub fn fast_config(work_dir: &Path) -> LocalClusterConfig {
    LocalClusterConfig {
        work_dir: Some(work_dir.to_owned()),
        heartbeat_interval: Duration::from_secs(15),
        allocation_interval: Duration::from_millis(100),
        executor_registration_timeout: Duration::from_secs(20),
        executor_reregistration_timeout: Duration::from_millis(1500),
        executor_shutdown_grace_period: Duration::from_secs(2),
        status_update_retry_interval: Duration::from_secs(1),
        restart_timings: RestartTimings {
            reregister_delay: Duration::from_millis(200),
            recovered_exit_delay: Duration::from_millis(300),
            ..RestartTimings::default()
        },
        ..LocalClusterConfig::default()
    }
}

/// A started cluster and the temporary directory holding its work dir.
pub struct TestCluster {
    pub cluster: LocalCluster,
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    pub async fn start() -> TestCluster {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut LocalClusterConfig)) -> TestCluster {
        init_logging();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = fast_config(&dir.path().join("work"));
        tune(&mut config);
        let cluster = LocalCluster::start(config).await.expect("cluster starts");
        TestCluster { cluster, dir }
    }

    /// A protobuf framework subscribed with [`framework_info`]`(name)`.
    pub async fn framework(&self, name: &str) -> TestFramework {
        TestFramework::subscribe(
            &self.cluster.master_url(),
            framework_info(name),
            Encoding::Protobuf,
        )
        .await
        .expect("the framework subscribes")
    }
}

/// FrameworkInfo as the captures used: checkpointing, 1 h failover timeout, PARTITION_AWARE and
/// TASK_KILLING_STATE.
pub fn framework_info(name: &str) -> v1::FrameworkInfo {
    v1::FrameworkInfo {
        user: "root".into(),
        name: name.into(),
        failover_timeout: Some(3600.0),
        checkpoint: Some(true),
        capabilities: [Capability::PartitionAware, Capability::TaskKillingState]
            .into_iter()
            .map(|t| v1::framework_info::Capability {
                r#type: Some(t as i32),
            })
            .collect(),
        ..Default::default()
    }
}

pub fn scalar(name: &str, value: f64) -> v1::Resource {
    v1::Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        ..Default::default()
    }
}

/// A custom executor running `command` (shell) in its sandbox, with `uris` fetched first.
pub fn executor_info(
    id: &str,
    command: &str,
    uris: Vec<v1::command_info::Uri>,
) -> v1::ExecutorInfo {
    v1::ExecutorInfo {
        r#type: Some(v1::executor_info::Type::Custom as i32),
        executor_id: v1::ExecutorId { value: id.into() },
        command: Some(v1::CommandInfo {
            uris,
            value: Some(command.into()),
            ..Default::default()
        }),
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        ..Default::default()
    }
}

/// Our test executor, run from where cargo built it (its working directory is the sandbox).
pub fn test_executor_info(id: &str) -> v1::ExecutorInfo {
    executor_info(
        id,
        &test_executor_binary().display().to_string(),
        Vec::new(),
    )
}

/// Sets an environment variable on an ExecutorInfo's command.
pub fn with_env(mut info: v1::ExecutorInfo, name: &str, value: &str) -> v1::ExecutorInfo {
    if let Some(command) = &mut info.command {
        command
            .environment
            .get_or_insert_with(Default::default)
            .variables
            .push(v1::environment::Variable {
                name: name.into(),
                value: Some(value.into()),
                ..Default::default()
            });
    }
    info
}

/// A task for `executor` with cpus 0.1, mem 32 and `data`.
pub fn task_info(
    id: &str,
    agent_id: &str,
    executor: &v1::ExecutorInfo,
    data: &str,
) -> v1::TaskInfo {
    v1::TaskInfo {
        name: id.into(),
        task_id: v1::TaskId { value: id.into() },
        agent_id: v1::AgentId {
            value: agent_id.into(),
        },
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        executor: Some(executor.clone()),
        data: Some(data.as_bytes().to_vec()),
        ..Default::default()
    }
}

pub fn event_type(event: &scheduler::Event) -> scheduler::event::Type {
    event
        .r#type
        .and_then(|t| scheduler::event::Type::try_from(t).ok())
        .unwrap_or(scheduler::event::Type::Unknown)
}

pub fn state(status: &v1::TaskStatus) -> TaskState {
    TaskState::try_from(status.state).unwrap_or(TaskState::TaskStaging)
}

pub fn reason(status: &v1::TaskStatus) -> Option<task_status::Reason> {
    status
        .reason
        .and_then(|r| task_status::Reason::try_from(r).ok())
}

/// A hand-rolled v1 scheduler: one subscription, calls on a second connection.
pub struct TestFramework {
    pub client: Client,
    pub framework_id: String,
    pub stream_id: String,
    pub info: v1::FrameworkInfo,
    subscription: Subscription<scheduler::Event>,
    /// Events read but not yet handed out by `wait_for`.
    backlog: VecDeque<scheduler::Event>,
    /// Every event received, in order.
    pub history: Vec<scheduler::Event>,
}

impl TestFramework {
    /// SUBSCRIBEs (with `info.id` when set) and waits for SUBSCRIBED.
    pub async fn subscribe(
        url: &str,
        info: v1::FrameworkInfo,
        encoding: Encoding,
    ) -> Result<TestFramework, String> {
        let mut client = Client::new(
            url,
            ClientConfig {
                encoding,
                call_timeout: Duration::from_secs(10),
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let call = scheduler::Call {
            framework_id: info.id.clone(),
            r#type: Some(scheduler::call::Type::Subscribe as i32),
            subscribe: Some(scheduler::call::Subscribe {
                framework_info: info.clone(),
                suppressed_roles: Vec::new(),
            }),
            ..Default::default()
        };
        let mut subscription: Subscription<scheduler::Event> =
            client.subscribe(&call).await.map_err(|e| e.to_string())?;
        let stream_id = subscription
            .stream_id()
            .ok_or("SUBSCRIBE answered without a Mesos-Stream-Id")?
            .to_owned();
        client.set_stream_id(Some(&stream_id));
        let first = tokio::time::timeout(SOON, subscription.next_event())
            .await
            .map_err(|_| "no SUBSCRIBED in time".to_owned())?
            .map_err(|e| e.to_string())?
            .ok_or("the subscription ended before SUBSCRIBED")?;
        let Some(subscribed) = &first.subscribed else {
            return Err(format!("expected SUBSCRIBED, got {first:?}"));
        };
        let framework_id = subscribed.framework_id.value.clone();
        let mut info = info;
        info.id = Some(subscribed.framework_id.clone());
        Ok(TestFramework {
            client,
            framework_id,
            stream_id,
            info,
            subscription,
            backlog: VecDeque::new(),
            history: vec![first],
        })
    }

    async fn read(&mut self, deadline: Instant) -> Result<scheduler::Event, String> {
        let event = tokio::time::timeout_at(deadline, self.subscription.next_event())
            .await
            .map_err(|_| "timed out waiting for an event".to_owned())?
            .map_err(|e| format!("subscription broken: {e}"))?
            .ok_or("the subscription ended")?;
        self.history.push(event.clone());
        Ok(event)
    }

    /// The next event (backlog first), HEARTBEATs included.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<scheduler::Event, String> {
        if let Some(event) = self.backlog.pop_front() {
            return Ok(event);
        }
        self.read(Instant::now() + timeout).await
    }

    /// Whether the subscription ends (cleanly or not) within `timeout`, skipping events.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.subscription.next_event()).await {
                Err(_) => return Err("the subscription is still open".into()),
                Ok(Ok(Some(event))) => self.history.push(event),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// The first event matching `predicate`; others stay in the backlog, in order.
    pub async fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut predicate: impl FnMut(&scheduler::Event) -> bool,
    ) -> scheduler::Event {
        if let Some(index) = self.backlog.iter().position(&mut predicate) {
            return self.backlog.remove(index).expect("index is valid");
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read(deadline).await {
                Ok(event) if predicate(&event) => return event,
                Ok(event) => self.backlog.push_back(event),
                Err(error) => panic!(
                    "waiting for {what}: {error}; events so far: {:#?}",
                    self.history.iter().map(summarize).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Drops backlog events that match `predicate` (e.g. stale offers).
    pub fn discard(&mut self, predicate: impl Fn(&scheduler::Event) -> bool) {
        self.backlog.retain(|e| !predicate(e));
    }

    pub fn backlog(&self) -> &VecDeque<scheduler::Event> {
        &self.backlog
    }

    pub async fn next_offer(&mut self) -> v1::Offer {
        let event = self
            .wait_for("an offer", SOON, |e| {
                event_type(e) == scheduler::event::Type::Offers
            })
            .await;
        event
            .offers
            .and_then(|o| o.offers.into_iter().next())
            .expect("OFFERS holds an offer")
    }

    /// The next UPDATE for `task_id` (any state).
    pub async fn next_update(&mut self, task_id: &str) -> v1::TaskStatus {
        let task = task_id.to_owned();
        self.wait_for(&format!("an update for {task_id}"), SOON, move |e| {
            e.update
                .as_ref()
                .is_some_and(|u| u.status.task_id.value == task)
        })
        .await
        .update
        .expect("UPDATE")
        .status
    }

    /// Waits for `task_id` to reach `state`, acknowledging every update with a uuid on the
    /// way; returns that update.
    pub async fn await_state(&mut self, task_id: &str, wanted: TaskState) -> v1::TaskStatus {
        loop {
            let status = self.next_update(task_id).await;
            if status.uuid.is_some() {
                self.acknowledge(&status).await.expect("ACKNOWLEDGE");
            }
            if state(&status) == wanted {
                return status;
            }
        }
    }

    pub fn call(&self, kind: scheduler::call::Type) -> scheduler::Call {
        scheduler::Call {
            framework_id: Some(v1::FrameworkId {
                value: self.framework_id.clone(),
            }),
            r#type: Some(kind as i32),
            ..Default::default()
        }
    }

    pub async fn send(&self, call: &scheduler::Call) -> Result<(), ApiError> {
        self.client.call(call).await.map(|_| ())
    }

    pub async fn accept(
        &self,
        offer_ids: Vec<v1::OfferId>,
        operations: Vec<v1::offer::Operation>,
        refuse_seconds: Option<f64>,
    ) -> Result<(), ApiError> {
        let mut call = self.call(scheduler::call::Type::Accept);
        call.accept = Some(scheduler::call::Accept {
            offer_ids,
            operations,
            filters: refuse_seconds.map(|s| v1::Filters {
                refuse_seconds: Some(s),
            }),
        });
        self.send(&call).await
    }

    /// ACCEPTs `offer` with one LAUNCH of `tasks`.
    pub async fn launch(
        &self,
        offer: &v1::Offer,
        tasks: Vec<v1::TaskInfo>,
    ) -> Result<(), ApiError> {
        self.accept(vec![offer.id.clone()], vec![launch_operation(tasks)], None)
            .await
    }

    pub async fn decline(
        &self,
        offer: &v1::Offer,
        refuse_seconds: Option<f64>,
    ) -> Result<(), ApiError> {
        let mut call = self.call(scheduler::call::Type::Decline);
        call.decline = Some(scheduler::call::Decline {
            offer_ids: vec![offer.id.clone()],
            filters: refuse_seconds.map(|s| v1::Filters {
                refuse_seconds: Some(s),
            }),
        });
        self.send(&call).await
    }

    pub async fn acknowledge(&self, status: &v1::TaskStatus) -> Result<(), ApiError> {
        let mut call = self.call(scheduler::call::Type::Acknowledge);
        call.acknowledge = Some(scheduler::call::Acknowledge {
            agent_id: status.agent_id.clone().unwrap_or_default(),
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone().unwrap_or_default(),
        });
        self.send(&call).await
    }

    pub async fn kill(&self, task_id: &str, grace: Option<Duration>) -> Result<(), ApiError> {
        let mut call = self.call(scheduler::call::Type::Kill);
        call.kill = Some(scheduler::call::Kill {
            task_id: v1::TaskId {
                value: task_id.into(),
            },
            agent_id: None,
            kill_policy: grace.map(|g| v1::KillPolicy {
                grace_period: Some(v1::DurationInfo {
                    nanoseconds: g.as_nanos() as i64,
                }),
            }),
        });
        self.send(&call).await
    }

    pub async fn shutdown_executor(
        &self,
        executor_id: &str,
        agent_id: &str,
    ) -> Result<(), ApiError> {
        let mut call = self.call(scheduler::call::Type::Shutdown);
        call.shutdown = Some(scheduler::call::Shutdown {
            executor_id: v1::ExecutorId {
                value: executor_id.into(),
            },
            agent_id: v1::AgentId {
                value: agent_id.into(),
            },
        });
        self.send(&call).await
    }

    /// RECONCILE; an empty list is implicit reconciliation.
    pub async fn reconcile(&self, tasks: &[(&str, Option<&str>)]) -> Result<(), ApiError> {
        let mut call = self.call(scheduler::call::Type::Reconcile);
        call.reconcile = Some(scheduler::call::Reconcile {
            tasks: tasks
                .iter()
                .map(|(task, agent)| scheduler::call::reconcile::Task {
                    task_id: v1::TaskId {
                        value: (*task).into(),
                    },
                    agent_id: agent.map(|a| v1::AgentId { value: a.into() }),
                })
                .collect(),
        });
        self.send(&call).await
    }

    pub async fn message(
        &self,
        executor_id: &str,
        agent_id: &str,
        data: &[u8],
    ) -> Result<(), ApiError> {
        let mut call = self.call(scheduler::call::Type::Message);
        call.message = Some(scheduler::call::Message {
            agent_id: v1::AgentId {
                value: agent_id.into(),
            },
            executor_id: v1::ExecutorId {
                value: executor_id.into(),
            },
            data: data.to_vec(),
        });
        self.send(&call).await
    }

    pub async fn revive(&self) -> Result<(), ApiError> {
        self.send(&self.call(scheduler::call::Type::Revive)).await
    }

    pub async fn suppress(&self) -> Result<(), ApiError> {
        self.send(&self.call(scheduler::call::Type::Suppress)).await
    }

    pub async fn teardown(&self) -> Result<(), ApiError> {
        self.send(&self.call(scheduler::call::Type::Teardown)).await
    }
}

pub fn launch_operation(tasks: Vec<v1::TaskInfo>) -> v1::offer::Operation {
    v1::offer::Operation {
        r#type: Some(v1::offer::operation::Type::Launch as i32),
        launch: Some(v1::offer::operation::Launch { task_infos: tasks }),
        ..Default::default()
    }
}

/// A one-line summary of an event, for failure messages.
pub fn summarize(event: &scheduler::Event) -> String {
    match (&event.update, &event.offers, &event.failure) {
        (Some(update), _, _) => format!(
            "UPDATE {} {} {:?} {:?}",
            update.status.task_id.value,
            shardex::mesos::states::name(update.status.state),
            reason(&update.status),
            update.status.message
        ),
        (_, Some(offers), _) => format!(
            "OFFERS {:?}",
            offers
                .offers
                .iter()
                .map(|o| &o.id.value)
                .collect::<Vec<_>>()
        ),
        (_, _, Some(failure)) => format!("FAILURE {:?} {:?}", failure.executor_id, failure.status),
        _ => format!("{:?}", event_type(event)),
    }
}

/// Writes a `.tar.gz` holding `files` (name in archive, source path, mode).
pub fn make_tarball(path: &Path, files: &[(&str, &Path, u32)]) {
    let file = std::fs::File::create(path).expect("create tarball");
    let encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    for (name, source, mode) in files {
        let data = std::fs::read(source).expect("read tarball member");
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        builder
            .append_data(&mut header, name, data.as_slice())
            .expect("append to tarball");
    }
    let encoder = builder.into_inner().expect("finish tar");
    encoder
        .finish()
        .expect("finish gzip")
        .flush()
        .expect("flush");
}

/// A minimal HTTP/1.1 static file server on loopback (GET only), for fetcher tests.
pub struct FileServer {
    pub address: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FileServer {
    pub async fn serve(root: PathBuf) -> FileServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind file server");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    continue;
                };
                let root = root.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let file = root.join(path.trim_start_matches('/'));
                    let response = match std::fs::read(&file) {
                        Ok(body) => {
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            r.extend_from_slice(&body);
                            r
                        }
                        Err(_) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    };
                    let _ = socket.write_all(&response).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        FileServer { address, task }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.address)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A raw HTTP/1.1 exchange on a fresh connection: the status line, headers (in order, as
/// sent) and the body: `Content-Length` bytes, or for a chunked stream the raw bytes up to the
/// end of its first chunk.
pub async fn raw_request(
    address: std::net::SocketAddr,
    request: &[u8],
) -> (String, Vec<(String, String)>, Vec<u8>) {
    try_raw_request(address, request)
        .await
        .expect("a complete response head")
}

/// [`raw_request`], `None` when no complete response head arrives (the connection closed or
/// 10 s passed).
pub async fn try_raw_request(
    address: std::net::SocketAddr,
    request: &[u8],
) -> Option<(String, Vec<(String, String)>, Vec<u8>)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut socket = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    socket.write_all(request).await.expect("write request");
    let mut data = Vec::new();
    let mut buffer = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    let complete = |data: &[u8]| -> bool {
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&data[..end]).to_string();
        let body = &data[end + 4..];
        if let Some(length) = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            return body.len() >= length;
        }
        first_chunk(body).is_some()
    };
    while !complete(&data) {
        match tokio::time::timeout_at(deadline, socket.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => data.extend_from_slice(&buffer[..n]),
        }
    }
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&data[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Some((status, headers, data[end + 4..].to_vec()))
}

/// The payload of the first HTTP chunk in `body`, once it is complete.
pub fn first_chunk(body: &[u8]) -> Option<&[u8]> {
    let line_end = body.windows(2).position(|w| w == b"\r\n")?;
    let size =
        usize::from_str_radix(std::str::from_utf8(&body[..line_end]).ok()?.trim(), 16).ok()?;
    let start = line_end + 2;
    (body.len() >= start + size + 2).then(|| &body[start..start + size])
}
