//! The `shardex-scheduler` process against a hostile master: SUBSCRIBE answered with RecordIO
//! length headers that are huge, negative, non-numeric or lying; records of garbage or truncated
//! protobuf; a SUBSCRIBED the scheduler cannot use; malformed JSON; a wrong content type; a
//! stream that stalls mid-record.
//!
//! Each test asserts the exact warning the scheduler logs (its stderr, as JSON lines), then that
//! nothing else was affected: the process kept running, it resubscribed again and again with its
//! backoff between attempts, its peak memory stayed small, and once the master turns honest a
//! triggered job launches its three tasks exactly once.

mod fake_master;
mod support;

use std::time::Duration;

use fake_master::{AfterBody, FakeMaster, RawAnswer, all_launched, launched, record, subscribed};
use prost::Message as _;
use serde_json::{Value, json};
use shardex::mesos::proto::v1::TaskState;
use shardex::mesos::proto::v1::scheduler::{Event, call, event};
use shardex::mesos::{Encoding, recordio};
use support::scheduler_rest::{Rest, scheduler_args};
use support::{SOON, SchedulerProcess, eventually, proc_kib, spawn_scheduler};

/// Resubscription backs off 100 ms (jittered to 50–100 %), doubling up to 500 ms; two missed
/// heartbeats drop a silent stream.
const CONFIG: &str = r#"
[mesos]
resubscribe_backoff_initial = "100ms"
resubscribe_backoff_max = "500ms"
missed_heartbeats = 2
[tasks]
reconcile_retry_initial = "300ms"
[[apps]]
name = "demo"
executor_uri = "/opt/shardex/shardex-executor"
uris = ["/opt/shardex/libhello_shards.so"]
[[jobs]]
name = "hello"
app = "demo"
# Never fires by itself: the test triggers it.
cron = "0 0 0 1 1 ? 2099"
sharding_total_count = 3
plugin = "libhello_shards.so"
failover = true
"#;

/// The shortest pause the backoff allows between two SUBSCRIBEs: half the initial delay.
const BACKOFF_FLOOR: Duration = Duration::from_millis(50);

/// Peak resident memory a scheduler may reach here (it peaks near 25 MiB on this suite). A
/// buffer of the size the huge header claims could not be allocated at all.
const PEAK_RSS_KIB: u64 = 48 * 1024;

/// The warning the driver logs when an event stream breaks.
const STREAM_FAILED: &str = "event stream failed";

/// The scheduler process, the master it subscribes to, its REST API.
struct Hostile {
    master: FakeMaster,
    scheduler: SchedulerProcess,
    rest: Rest,
    _dir: tempfile::TempDir,
}

impl Hostile {
    /// Starts a scheduler speaking `encoding` against `master`, which answers every SUBSCRIBE
    /// with `raw` until it turns honest.
    async fn start(master: FakeMaster, encoding: Encoding, raw: Option<RawAnswer>) -> Hostile {
        master.answer_subscriptions_with(raw);
        let dir = tempfile::tempdir().unwrap();
        let config = match encoding {
            Encoding::Protobuf => CONFIG.to_owned(),
            Encoding::Json => CONFIG.replace("[mesos]\n", "[mesos]\nencoding = \"json\"\n"),
        };
        let mut args = scheduler_args(dir.path(), &config, &master.url);
        args.extend(["--log-format".into(), "json".into()]);
        let scheduler = tokio::task::spawn_blocking(move || spawn_scheduler(args))
            .await
            .unwrap();
        let rest = Rest::new(scheduler.rest_url.clone());
        Hostile {
            master,
            scheduler,
            rest,
            _dir: dir,
        }
    }

    /// The scheduler's log lines that are JSON objects (its `tracing` output).
    fn log(&self) -> Vec<Value> {
        self.scheduler
            .log()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Lines with `message`.
    fn logged(&self, message: &str) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|line| line["message"] == message)
            .collect()
    }

    /// Waits until the scheduler subscribed `n` times and logged `message` at least twice; then
    /// asserts that each of those lines has `field` = `value`, and that nothing worse happened.
    async fn refuses_again_and_again(&mut self, message: &str, field: &str, value: &str) {
        assert!(
            self.master.wait_count(call::Type::Subscribe, 3, SOON).await,
            "the scheduler resubscribed only {} times; log: {:#?}",
            self.master.count_of(call::Type::Subscribe),
            self.scheduler.log()
        );
        let lines = eventually(&format!("'{message}' logged twice"), SOON, || async {
            let lines = self.logged(message);
            (lines.len() >= 2).then_some(lines)
        })
        .await;
        for line in &lines {
            assert_eq!(line["level"], "WARN", "{line}");
            assert_eq!(line[field], value, "{line}");
        }
        self.nothing_else_was_affected();
    }

    /// The process runs, never logged an error or a panic, paused between SUBSCRIBEs and stayed
    /// small.
    fn nothing_else_was_affected(&mut self) {
        assert!(self.scheduler.is_running(), "{:#?}", self.scheduler.log());
        let log = self.scheduler.log();
        assert!(
            !log.iter()
                .any(|l| l.contains("panicked") || l.contains("\"ERROR\"")),
            "{log:#?}"
        );
        let arrivals: Vec<_> = self
            .master
            .calls_of(call::Type::Subscribe)
            .iter()
            .map(|c| c.at)
            .collect();
        for pair in arrivals.windows(2) {
            let pause = pair[1] - pair[0];
            assert!(
                pause >= BACKOFF_FLOOR,
                "resubscribed {pause:?} after the previous SUBSCRIBE, below the backoff"
            );
        }
        let peak = proc_kib(self.scheduler.child.id(), "status", "VmHWM:");
        assert!(
            peak > 0 && peak < PEAK_RSS_KIB,
            "peak resident memory {peak} KiB"
        );
    }

    /// The master turns honest; the scheduler subscribes and a job still runs exactly once.
    async fn a_job_still_runs_exactly_once(&self) {
        self.master.answer_subscriptions_with(None);
        let hostile = self.master.subscriptions();
        let honest = self
            .master
            .wait_for("SUPPRESS on an honest subscription", |calls| {
                calls
                    .iter()
                    .find(|c| c.subscription > hostile && c.kind() == call::Type::Suppress)
                    .map(|c| c.subscription)
            })
            .await;
        self.runs_hello_once_on(honest).await;
    }

    /// On subscription `honest`: a trigger of `hello` launches items 0, 1 and 2 once, their
    /// updates are acknowledged, and nothing else is launched.
    async fn runs_hello_once_on(&self, honest: usize) {
        let health = self.rest.get("/health").await;
        assert_eq!(health["framework_id"], "fw-test", "{health}");
        let revives = self.master.count_of(call::Type::Revive);
        assert_eq!(self.rest.post("/api/jobs/hello/trigger").await, 202);
        assert!(
            self.master
                .wait_count(call::Type::Revive, revives + 1, SOON)
                .await
        );
        self.master
            .send_offers(vec![self.master.offer("o1", 4.0, 4096.0, &[])]);
        let accept = self.master.nth(call::Type::Accept, 1).await;
        assert_eq!(accept.subscription, honest);
        let ids: Vec<String> = launched(&accept)
            .iter()
            .map(|t| t.task_id.value.clone())
            .collect();
        let items: Vec<&str> = ids
            .iter()
            .map(|id| id.split("@-@").nth(1).unwrap())
            .collect();
        assert_eq!(items, ["0", "1", "2"]);
        for (n, id) in ids.iter().enumerate() {
            self.master.send_update(self.master.update(
                id,
                TaskState::TaskFinished,
                Some(n as u8 + 1),
            ));
        }
        assert!(
            self.master
                .wait_count(call::Type::Acknowledge, 3, SOON)
                .await
        );
        self.rest
            .until("/api/tasks/running", "no running task", |v| v == &json!([]))
            .await;
        // Nothing is left to run: the next offer is declined.
        self.master
            .send_offers(vec![self.master.offer("o2", 4.0, 4096.0, &[])]);
        self.master.nth(call::Type::Decline, 1).await;
        assert_eq!(all_launched(&self.master.calls()).len(), 3);
        assert_eq!(self.master.count_of(call::Type::Accept), 1);
    }

    /// `malformed event stream from <master>: <reason>`, as the scheduler logs it.
    fn malformed(&self, reason: String) -> String {
        format!("malformed event stream from {}: {reason}", self.master.url)
    }

    /// `undecodable event from <master>: <reason>`, as the scheduler logs it.
    fn undecodable(&self, reason: &str) -> String {
        format!("undecodable event from {}: {reason}", self.master.url)
    }
}

/// An honest SUBSCRIBED record (framework `fw-test`, 15 s heartbeats), then `rest`, as a
/// protobuf stream.
fn after_subscribed(rest: &[u8], then: AfterBody) -> (RawAnswer, u64) {
    let mut body = record(&subscribed("fw-test", 15.0), Encoding::Protobuf);
    let offset = body.len() as u64;
    body.extend_from_slice(rest);
    let raw = RawAnswer {
        content_type: "application/x-protobuf".into(),
        body,
        then,
    };
    (raw, offset)
}

/// An UPDATE event for a task this scheduler never launched, encoded.
fn update_event(master: &FakeMaster) -> Vec<u8> {
    Event {
        r#type: Some(event::Type::Update as i32),
        update: Some(event::Update {
            status: master.update("stranger", TaskState::TaskRunning, Some(9)),
        }),
        ..Event::default()
    }
    .encode_to_vec()
}

async fn hostile_after_subscribed(rest: &[u8], then: AfterBody) -> (Hostile, u64) {
    let (raw, offset) = after_subscribed(rest, then);
    let h = Hostile::start(FakeMaster::start().await, Encoding::Protobuf, Some(raw)).await;
    (h, offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_record_length_is_refused_before_anything_is_read_or_allocated() {
    // The stream stalls after the header: the scheduler must refuse on the header alone.
    let (mut h, offset) =
        hostile_after_subscribed(b"99999999999999999999\n", AfterBody::Stall).await;
    let error = h.malformed(format!(
        "RecordIO record at stream offset {offset} announces at least 9999999 bytes, more \
         than the 4194304 allowed"
    ));
    h.refuses_again_and_again(STREAM_FAILED, "error", &error)
        .await;
    h.a_job_still_runs_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_record_length_is_refused() {
    let (mut h, offset) = hostile_after_subscribed(b"-5\nabcde", AfterBody::Stall).await;
    let error = h.malformed(format!(
        "RecordIO header at stream offset {offset} holds byte 0x2d; expected a decimal digit or \
         a newline"
    ));
    h.refuses_again_and_again(STREAM_FAILED, "error", &error)
        .await;
    h.a_job_still_runs_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_numeric_record_length_is_refused() {
    let (mut h, offset) = hostile_after_subscribed(b"abc\n", AfterBody::Stall).await;
    let error = h.malformed(format!(
        "RecordIO header at stream offset {offset} holds byte 0x61; expected a decimal digit or \
         a newline"
    ));
    h.refuses_again_and_again(STREAM_FAILED, "error", &error)
        .await;
    h.a_job_still_runs_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_claiming_more_bytes_than_the_stream_holds_is_refused_at_its_end() {
    let master = FakeMaster::start().await;
    let update = update_event(&master);
    let mut rest = format!("{}\n", update.len() + 40).into_bytes();
    rest.extend_from_slice(&update);
    let (raw, offset) = after_subscribed(&rest, AfterBody::End);
    let mut h = Hostile::start(master, Encoding::Protobuf, Some(raw)).await;
    let error = h.malformed(format!(
        "RecordIO stream ended inside the record at stream offset {offset}: {} of {} bytes \
         received",
        update.len(),
        update.len() + 40
    ));
    h.refuses_again_and_again(STREAM_FAILED, "error", &error)
        .await;
    h.a_job_still_runs_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_claiming_fewer_bytes_makes_the_next_header_garbage() {
    // "2" covers the UPDATE's type field only; its `update` field (tag 0x2a, '*') is then read
    // as the next header.
    let master = FakeMaster::start().await;
    let update = update_event(&master);
    assert_eq!(update[..3], [0x08, event::Type::Update as u8, 0x2a]);
    let mut rest = b"2\n".to_vec();
    rest.extend_from_slice(&update);
    let (raw, offset) = after_subscribed(&rest, AfterBody::Stall);
    let mut h = Hostile::start(master, Encoding::Protobuf, Some(raw)).await;
    let error = h.malformed(format!(
        "RecordIO header at stream offset {} holds byte 0x2a; expected a decimal digit or a \
         newline",
        offset + 4
    ));
    h.refuses_again_and_again(STREAM_FAILED, "error", &error)
        .await;
    h.a_job_still_runs_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_garbage_protobuf_is_refused() {
    let garbage = recordio::encode(b"\xff\xff\xff\xff");
    let (mut h, _) = hostile_after_subscribed(&garbage, AfterBody::Stall).await;
    let error = h.undecodable(
        "not a valid mesos.v1.scheduler.Event protobuf: failed to decode Protobuf message: \
         invalid varint",
    );
    h.refuses_again_and_again(STREAM_FAILED, "error", &error)
        .await;
    h.a_job_still_runs_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_truncated_protobuf_is_refused() {
    let master = FakeMaster::start().await;
    let update = update_event(&master);
    let cut = recordio::encode(&update[..update.len() - 5]);
    let (raw, _) = after_subscribed(&cut, AfterBody::Stall);
    let mut h = Hostile::start(master, Encoding::Protobuf, Some(raw)).await;
    let error = h.undecodable(
        "not a valid mesos.v1.scheduler.Event protobuf: failed to decode Protobuf message: \
         Event.update: buffer underflow",
    );
    h.refuses_again_and_again(STREAM_FAILED, "error", &error)
        .await;
    h.a_job_still_runs_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_event_without_a_framework_id_is_not_taken() {
    // Valid protobuf: `type: SUBSCRIBED, subscribed { heartbeat_interval_seconds: 15 }`, the
    // required `framework_id` left out.
    let mut event = vec![0x08, event::Type::Subscribed as u8, 0x12, 0x09, 0x11];
    event.extend_from_slice(&15.0f64.to_le_bytes());
    let raw = RawAnswer {
        content_type: "application/x-protobuf".into(),
        body: recordio::encode(&event),
        then: AfterBody::Stall,
    };
    let mut h = Hostile::start(FakeMaster::start().await, Encoding::Protobuf, Some(raw)).await;
    let error = format!(
        "{} sent SUBSCRIBED without the required framework_id; a master must name the \
         framework it subscribed",
        h.master.url
    );
    h.refuses_again_and_again(
        "unusable event from the master; resubscribing",
        "error",
        &error,
    )
    .await;
    // Nothing of it was kept: every SUBSCRIBE still asks for a new framework id.
    for seen in h.master.calls_of(call::Type::Subscribe) {
        assert_eq!(seen.call.framework_id, None);
    }
    h.a_job_still_runs_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_events_are_refused() {
    let mut body = record(&subscribed("fw-test", 15.0), Encoding::Json);
    body.extend(recordio::encode(br#"{"type":"HEARTBEAT""#));
    let raw = RawAnswer {
        content_type: "application/json".into(),
        body,
        then: AfterBody::Stall,
    };
    let mut h = Hostile::start(FakeMaster::start().await, Encoding::Json, Some(raw)).await;
    let error = h.undecodable(
        "not a valid mesos.v1.scheduler.Event JSON document: EOF while parsing an object at \
         line 1 column 19",
    );
    h.refuses_again_and_again(STREAM_FAILED, "error", &error)
        .await;
    h.a_job_still_runs_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_answered_with_another_content_type_is_refused() {
    let raw = RawAnswer {
        content_type: "text/html".into(),
        body: b"<html><body>Mesos is down for maintenance</body></html>".to_vec(),
        then: AfterBody::End,
    };
    let mut h = Hostile::start(FakeMaster::start().await, Encoding::Protobuf, Some(raw)).await;
    let error = format!(
        "{} answered the subscription with Content-Type 'text/html', expected \
         'application/x-protobuf'",
        h.master.url
    );
    h.refuses_again_and_again("subscription failed; retrying", "error", &error)
        .await;
    h.a_job_still_runs_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stalling_mid_record_is_dropped_by_the_heartbeat_watchdog() {
    // 100 ms heartbeats, two missed: 200 ms of silence drops the stream, half a record held.
    let mut body = record(&subscribed("fw-test", 0.1), Encoding::Protobuf);
    body.extend_from_slice(b"40\n\x08\x04\x2a");
    let raw = RawAnswer {
        content_type: "application/x-protobuf".into(),
        body,
        then: AfterBody::Stall,
    };
    // The honest master's own SUBSCRIBED says 15 s.
    let mut h = Hostile::start(FakeMaster::start().await, Encoding::Protobuf, Some(raw)).await;
    h.refuses_again_and_again(
        "no event (not even a heartbeat) from the master; resubscribing",
        "silent_for",
        "200ms",
    )
    .await;
    // Each SUBSCRIBE came only after the watchdog's 200 ms.
    let arrivals: Vec<_> = h
        .master
        .calls_of(call::Type::Subscribe)
        .iter()
        .map(|c| c.at)
        .collect();
    for pair in arrivals.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(200));
    }
    h.a_job_still_runs_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_interval_beyond_any_duration_falls_back_to_the_default() {
    // An honest stream in every other way: the scheduler keeps it, watching for Mesos' default
    // 15 s heartbeats instead.
    let master = FakeMaster::start_with_heartbeat(1e300).await;
    let mut h = Hostile::start(master, Encoding::Protobuf, None).await;
    h.master.nth(call::Type::Suppress, 1).await;
    let lines = eventually("the interval warning", SOON, || async {
        let lines = h.logged("unusable heartbeat interval from the master; using 15 s");
        (!lines.is_empty()).then_some(lines)
    })
    .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["heartbeat_interval_seconds"], 1e300);
    h.nothing_else_was_affected();
    h.runs_hello_once_on(1).await;
    assert_eq!(h.master.count_of(call::Type::Subscribe), 1);
}
