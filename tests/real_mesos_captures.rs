//! Bytes captured from a real Mesos 1.12.0 master and agent (tests/data/real-mesos, copied from
//! shared/testdata) decode with our protos and re-encode byte for byte, in protobuf and in JSON.
//! A field missing from proto/ would be dropped on re-encode and fail these tests.

use std::path::{Path, PathBuf};

use shardex::mesos::proto::v1::{TaskState, executor, scheduler, task_status};
use shardex::mesos::{Encoding, json, recordio, required};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/real-mesos")
}

fn files_with_suffix(suffix: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, suffix, out);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&data_dir(), suffix, &mut out);
    out
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

fn is_scheduler(name: &str) -> bool {
    name.starts_with("scheduler")
}

/// Decodes `bytes` as `M` in `encoding` and re-encodes it.
fn reencode<M>(encoding: Encoding, bytes: &[u8]) -> Vec<u8>
where
    M: prost::Message + prost::Name + Default,
{
    let message: M = encoding
        .decode(bytes)
        .unwrap_or_else(|e| panic!("decode {}: {e}", M::full_name()));
    encoding.encode(&message)
}

fn split_records(stream: &[u8]) -> Vec<bytes::Bytes> {
    let mut decoder = recordio::Decoder::default();
    decoder.feed(stream);
    let mut records = Vec::new();
    while let Some(record) = decoder.next_record().expect("well-formed RecordIO") {
        records.push(record);
    }
    decoder.finish().expect("stream ends between records");
    records
}

#[test]
fn every_captured_call_reencodes_byte_for_byte() {
    let calls = files_with_suffix(".bin");
    assert!(
        calls.len() > 80,
        "expected the captured calls, found {}",
        calls.len()
    );
    let mut checked = 0;
    for path in calls {
        let name = file_name(&path);
        let bytes = std::fs::read(&path).expect("read call");
        // Deliberately malformed bodies: not protobuf at all, or an empty GET body.
        if name.contains("probe-garbage-body") || name.contains("probe-GET") {
            continue;
        }
        let (reencoded, missing) = if is_scheduler(&name) {
            (
                reencode::<scheduler::Call>(Encoding::Protobuf, &bytes),
                required::missing_in::<scheduler::Call>(&bytes).expect("decodes"),
            )
        } else {
            (
                reencode::<executor::Call>(Encoding::Protobuf, &bytes),
                required::missing_in::<executor::Call>(&bytes).expect("decodes"),
            )
        };
        assert!(missing.is_empty(), "{name} misses {missing:?}");
        assert_eq!(reencoded, bytes, "{name} changed on re-encode");
        checked += 1;
    }
    assert!(checked > 80, "only {checked} calls checked");
}

#[test]
fn every_captured_event_stream_reencodes_byte_for_byte() {
    let streams = files_with_suffix(".recordio");
    assert!(streams.len() >= 15, "found {} streams", streams.len());
    let mut events = 0;
    for path in streams {
        let name = file_name(&path);
        let stream = std::fs::read(&path).expect("read stream");
        let records = split_records(&stream);
        assert!(!records.is_empty(), "{name} holds no record");
        let mut reframed = Vec::new();
        for record in &records {
            let encoding = if record.first() == Some(&b'{') {
                Encoding::Json
            } else {
                Encoding::Protobuf
            };
            let again = if is_scheduler(&name) {
                reencode::<scheduler::Event>(encoding, record)
            } else {
                reencode::<executor::Event>(encoding, record)
            };
            assert_eq!(
                String::from_utf8_lossy(&again),
                String::from_utf8_lossy(record),
                "{name}: record changed on re-encode"
            );
            recordio::encode_into(&again, &mut reframed);
            events += 1;
        }
        assert_eq!(reframed, stream, "{name} changed when re-framed");
    }
    assert!(events > 100, "only {events} events checked");
}

/// De-chunks an HTTP/1.1 response captured off the wire.
fn dechunk(raw: &[u8]) -> (String, Vec<u8>) {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = &raw[split + 4..];
    let mut body = Vec::new();
    while !rest.is_empty() {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16)
            .expect("hex chunk size");
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    (head, body)
}

#[test]
fn captured_subscribe_responses_carry_the_recorded_streams() {
    let mut compared = 0;
    for path in files_with_suffix("-response.http") {
        let name = file_name(&path);
        let raw = std::fs::read(&path).expect("read response");
        if !raw.starts_with(b"HTTP/1.1 200 OK") {
            continue;
        }
        let (head, body) = dechunk(&raw);
        assert!(head.contains("Transfer-Encoding: chunked"), "{name}");
        // `x-subscribe-response.http` ↔ `x-events.recordio`, `x-subscribe-N-response.http` ↔
        // `x-events-N.recordio`.
        let stem = name.trim_end_matches("-response.http");
        let events_name = match stem.rsplit_once("-subscribe-") {
            Some((who, n)) if n.chars().all(|c| c.is_ascii_digit()) => {
                format!("{who}-events-{n}.recordio")
            }
            _ => format!("{}-events.recordio", stem.trim_end_matches("-subscribe")),
        };
        let events_path = path.with_file_name(&events_name);
        if !events_path.exists() {
            continue;
        }
        let recorded = std::fs::read(&events_path).expect("read stream");
        assert_eq!(body, recorded, "{name} vs {events_name}");
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} responses compared");
}

#[test]
fn captured_updates_decode_to_what_the_capture_describes() {
    let dir = data_dir().join("calls");
    let bytes = std::fs::read(dir.join("executor-call-16-UPDATE-t1-TASK_STARTING.bin")).unwrap();
    let call: executor::Call = Encoding::Protobuf.decode(&bytes).unwrap();
    let status = call.update.expect("update").status;
    // TASK_STARTING is 0: proto2 keeps it on the wire.
    assert_eq!(status.state, TaskState::TaskStarting as i32);
    assert_eq!(status.source, Some(task_status::Source::Executor as i32));
    assert_eq!(status.uuid.as_ref().map(Vec::len), Some(16));
    assert!(shardex::mesos::uuid::is_valid_update_uuid(
        status.uuid.as_deref().unwrap()
    ));
    // The 36-character text form is what real Mesos refused.
    let probe =
        std::fs::read(dir.join("executor-call-02-UPDATE-probe-uuid-36-char-string.bin")).unwrap();
    let probe: executor::Call = Encoding::Protobuf.decode(&probe).unwrap();
    let uuid = probe.update.unwrap().status.uuid.unwrap();
    assert!(!shardex::mesos::uuid::is_valid_update_uuid(&uuid));
}

#[test]
fn captured_json_calls_parse_or_fail_like_mesos() {
    let dir = data_dir().join("recovery/D-json-executor/calls");
    let parse = |file: &str| {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        json::from_json::<executor::Call>(&bytes)
    };
    assert!(
        parse("exec-d-call-01-SUBSCRIBE.json")
            .unwrap()
            .subscribe
            .is_some()
    );
    assert_eq!(
        parse("exec-d-call-02-UPDATE-probe-uuid-canonical-string.json")
            .unwrap_err()
            .to_string(),
        "Failed to base64 decode bytes field 'uuid': Invalid character '-'"
    );
    let unpadded = parse("exec-d-call-03-UPDATE-probe-uuid-base64-unpadded.json").unwrap();
    assert_eq!(unpadded.update.unwrap().status.uuid.unwrap().len(), 16);
    assert_eq!(
        parse("exec-d-call-04-UPDATE-probe-state-as-number.json")
            .unwrap_err()
            .to_string(),
        "Not expecting a JSON number for field 'state'"
    );
    // The unknown enum name is dropped: `type` ends up absent, which validation refuses.
    assert_eq!(
        parse("exec-d-call-05-UPDATE-probe-unknown-enum-name.json")
            .unwrap()
            .r#type,
        None
    );
    assert!(parse("exec-d-call-06-UPDATE-probe-unknown-field.json").is_ok());
    let message = parse("exec-d-call-08-MESSAGE.json").unwrap();
    assert_eq!(message.message.unwrap().data, b"hello-from-json-executor");

    let subscribe =
        std::fs::read(data_dir().join("calls/scheduler-json-call-01-SUBSCRIBE.json")).unwrap();
    let call: scheduler::Call = json::from_json(&subscribe).unwrap();
    assert_eq!(
        json::to_json(&call).as_bytes(),
        subscribe.as_slice(),
        "JSON SUBSCRIBE re-renders byte for byte"
    );
}
