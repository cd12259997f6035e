//! The decoder targets; the state machines have a file each.

pub mod executor;
pub mod scheduler;

use shardex_common::payload::TaskPayload;
use shardex_mesos::json::{from_json, to_json};
use shardex_mesos::recordio::Decoder;
use shardex_mesos::v1::{executor as exec, scheduler as sched};

use crate::Reader;

/// Everything a decoder yields from `chunks`: the records, then how the stream ended.
fn decode(max: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, String) {
    let mut decoder = Decoder::new(max);
    let mut records = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        loop {
            match decoder.next_record() {
                Ok(Some(record)) => {
                    assert!(
                        record.len() <= max,
                        "a record of {} bytes passed a limit of {max}",
                        record.len()
                    );
                    records.push(record.to_vec());
                }
                Ok(None) => break,
                Err(error) => return (records, format!("error: {error:?}")),
            }
        }
    }
    (records, format!("end: {:?}", decoder.finish()))
}

/// RecordIO: bounded, and the same records and outcome however the stream is cut.
pub fn recordio(data: &[u8]) {
    let mut input = Reader::new(data);
    let max = input.below(64) + 1;
    let cut = input.below(7) + 1;
    let stream = input.rest();
    let whole = decode(max, &[stream]);
    let chunks: Vec<&[u8]> = stream.chunks(cut).collect();
    let chunked = decode(max, &chunks);
    assert_eq!(whole, chunked, "cut every {cut} bytes, max {max}");
}

/// `TaskInfo.data`: what decodes survives a round trip unchanged.
pub fn payload(data: &[u8]) {
    let Ok(payload) = TaskPayload::decode(data) else {
        return;
    };
    let encoded = payload
        .encode()
        .expect("a decoded payload encodes again within the size limit");
    let again = TaskPayload::decode(&encoded).expect("an encoded payload decodes");
    assert_eq!(again, payload);
}

/// Mesos JSON: scheduler and executor events that decode survive a JSON round trip.
pub fn json(data: &[u8]) {
    if let Ok(event) = from_json::<sched::Event>(data) {
        let again: sched::Event =
            from_json(to_json(&event).as_bytes()).expect("our own JSON of an event decodes");
        assert_eq!(again, event);
    }
    if let Ok(event) = from_json::<exec::Event>(data) {
        let again: exec::Event =
            from_json(to_json(&event).as_bytes()).expect("our own JSON of an event decodes");
        assert_eq!(again, event);
    }
}
