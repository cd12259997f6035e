//! RecordIO, the framing of every SUBSCRIBE response body: `<decimal length>\n<length bytes>`,
//! repeated, with no separator after the payload.
//!
//! HTTP chunk boundaries are unrelated to record boundaries, so [`Decoder`] is fed arbitrary
//! byte slices and hands out whole records as soon as they are complete. The record size is
//! bounded: a peer that announces a larger record is refused as soon as the header exceeds the
//! bound, before any of it is buffered.

use bytes::{Buf, Bytes, BytesMut};

/// Default bound on one record: a few MiB covers any OFFERS event a single agent produces.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 4 * 1024 * 1024;

/// Frames one record.
pub fn encode(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len() + 8);
    encode_into(record, &mut out);
    out
}

/// Frames one record, appending to `out`.
pub fn encode_into(record: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(record.len().to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(record);
}

/// A malformed RecordIO stream. Every variant is fatal for the stream: the reader must drop
/// the connection (and, for a subscription, reconnect).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIoError {
    #[error(
        "RecordIO header at stream offset {offset} holds byte 0x{byte:02x}; expected a decimal \
         digit or a newline"
    )]
    NonDigitHeader { offset: u64, byte: u8 },
    #[error(
        "RecordIO record at stream offset {offset} announces at least {length} bytes, more than \
         the {max} allowed"
    )]
    RecordTooLarge {
        offset: u64,
        length: u64,
        max: usize,
    },
    #[error(
        "RecordIO stream ended inside a record header at stream offset {offset} (after {digits} \
         digits)"
    )]
    TruncatedHeader { offset: u64, digits: usize },
    #[error(
        "RecordIO stream ended inside the record at stream offset {offset}: {received} of \
         {length} bytes received"
    )]
    TruncatedRecord {
        offset: u64,
        length: u64,
        received: usize,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading the length; `digits` so far, `length` their value.
    Header { digits: usize, length: u64 },
    /// Waiting for `length` payload bytes.
    Payload { length: usize },
}

/// Incremental RecordIO decoder.
#[derive(Debug)]
pub struct Decoder {
    buffer: BytesMut,
    state: State,
    max_record_size: usize,
    /// Stream offset of `buffer[0]`.
    consumed: u64,
    /// Stream offset where the current record's header started.
    record_start: u64,
    failed: Option<RecordIoError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RECORD_SIZE)
    }
}

impl Decoder {
    /// A decoder refusing records larger than `max_record_size` bytes.
    pub fn new(max_record_size: usize) -> Self {
        Decoder {
            buffer: BytesMut::new(),
            state: State::Header {
                digits: 0,
                length: 0,
            },
            max_record_size,
            consumed: 0,
            record_start: 0,
            failed: None,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete record, `Ok(None)` when more bytes are needed. After an error the
    /// decoder keeps returning that error.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.advance();
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// Call at end of stream: fails if the stream stopped inside a record.
    pub fn finish(&self) -> Result<(), RecordIoError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.state {
            State::Header { digits: 0, .. } => Ok(()),
            State::Header { digits, .. } => Err(RecordIoError::TruncatedHeader {
                offset: self.record_start,
                digits,
            }),
            State::Payload { length } => Err(RecordIoError::TruncatedRecord {
                offset: self.record_start,
                length: length as u64,
                received: self.buffer.len(),
            }),
        }
    }

    /// Bytes held that do not yet form a record.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    fn advance(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        loop {
            match self.state {
                State::Header {
                    mut digits,
                    mut length,
                } => {
                    // Header bytes are consumed one at a time, so a header split anywhere
                    // resumes where it stopped.
                    let mut used = 0;
                    let mut complete = false;
                    for &byte in self.buffer.iter() {
                        used += 1;
                        match byte {
                            b'0'..=b'9' => {
                                length = length
                                    .saturating_mul(10)
                                    .saturating_add(u64::from(byte - b'0'));
                                digits += 1;
                                if length > self.max_record_size as u64 {
                                    return Err(RecordIoError::RecordTooLarge {
                                        offset: self.record_start,
                                        length,
                                        max: self.max_record_size,
                                    });
                                }
                            }
                            b'\n' if digits == 0 => {
                                // An empty header line carries nothing; skip it.
                                self.record_start = self.consumed + used as u64;
                            }
                            b'\n' => {
                                complete = true;
                                break;
                            }
                            other => {
                                return Err(RecordIoError::NonDigitHeader {
                                    offset: self.consumed + used as u64 - 1,
                                    byte: other,
                                });
                            }
                        }
                    }
                    self.buffer.advance(used);
                    self.consumed += used as u64;
                    if !complete {
                        self.state = State::Header { digits, length };
                        return Ok(None);
                    }
                    // Bounded above by max_record_size, which is a usize.
                    self.state = State::Payload {
                        length: length as usize,
                    };
                }
                State::Payload { length } => {
                    if self.buffer.len() < length {
                        return Ok(None);
                    }
                    let record = self.buffer.split_to(length).freeze();
                    self.consumed += length as u64;
                    self.record_start = self.consumed;
                    self.state = State::Header {
                        digits: 0,
                        length: 0,
                    };
                    return Ok(Some(record));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut Decoder) -> Result<Vec<Bytes>, RecordIoError> {
        let mut out = Vec::new();
        while let Some(record) = decoder.next_record()? {
            out.push(record);
        }
        Ok(out)
    }

    #[test]
    fn encodes_length_newline_payload() {
        assert_eq!(
            encode(br#"{"type":"HEARTBEAT"}"#),
            b"20\n{\"type\":\"HEARTBEAT\"}"
        );
        assert_eq!(encode(b""), b"0\n");
        // Protobuf payloads may contain newlines; the length governs.
        assert_eq!(encode(b"\x08\n"), b"2\n\x08\n");
    }

    #[test]
    fn decodes_records_split_at_every_byte_boundary() {
        let records: Vec<&[u8]> = vec![b"\x08\x09", b"", b"line\nbreak\n", &[0x0a; 12]];
        let mut stream = Vec::new();
        for record in &records {
            encode_into(record, &mut stream);
        }
        for first in 0..=stream.len() {
            for second in first..=stream.len() {
                let mut decoder = Decoder::new(64);
                let mut got = Vec::new();
                for piece in [&stream[..first], &stream[first..second], &stream[second..]] {
                    decoder.feed(piece);
                    got.extend(decode_all(&mut decoder).unwrap());
                }
                decoder.finish().unwrap();
                assert_eq!(got, records, "split at {first} and {second}");
            }
        }
    }

    #[test]
    fn skips_empty_header_lines() {
        let mut decoder = Decoder::default();
        decoder.feed(b"\n\n3\nabc\n1\nz");
        assert_eq!(decode_all(&mut decoder).unwrap(), vec!["abc", "z"]);
        decoder.finish().unwrap();
    }

    #[test]
    fn refuses_non_digit_header() {
        let mut decoder = Decoder::default();
        decoder.feed(b"3\nabc1x\n");
        assert_eq!(decoder.next_record().unwrap().unwrap(), "abc");
        let error = decoder.next_record().unwrap_err();
        assert_eq!(
            error,
            RecordIoError::NonDigitHeader {
                offset: 6,
                byte: b'x'
            }
        );
        // The decoder stays failed.
        decoder.feed(b"1\na");
        assert_eq!(decoder.next_record().unwrap_err(), error);
        assert_eq!(
            error.to_string(),
            "RecordIO header at stream offset 6 holds byte 0x78; expected a decimal digit or a \
             newline"
        );
    }

    #[test]
    fn refuses_oversized_record_before_buffering_it() {
        let mut decoder = Decoder::new(1000);
        decoder.feed(b"100");
        assert_eq!(decoder.next_record(), Ok(None));
        decoder.feed(b"1");
        assert_eq!(
            decoder.next_record(),
            Err(RecordIoError::RecordTooLarge {
                offset: 0,
                length: 1001,
                max: 1000
            })
        );
        // A length with absurdly many digits cannot overflow.
        let mut decoder = Decoder::new(10);
        decoder.feed(b"99999999999999999999999999999\n");
        assert!(matches!(
            decoder.next_record(),
            Err(RecordIoError::RecordTooLarge { length: 99, .. })
        ));
    }

    #[test]
    fn reports_streams_ending_mid_record() {
        let mut decoder = Decoder::default();
        decoder.feed(b"2\nab10\nabc");
        assert_eq!(decoder.next_record().unwrap().unwrap(), "ab");
        assert_eq!(decoder.next_record(), Ok(None));
        assert_eq!(
            decoder.finish(),
            Err(RecordIoError::TruncatedRecord {
                offset: 4,
                length: 10,
                received: 3
            })
        );

        let mut decoder = Decoder::default();
        decoder.feed(b"1\na12");
        assert_eq!(decoder.next_record().unwrap().unwrap(), "a");
        assert_eq!(decoder.next_record(), Ok(None));
        assert_eq!(
            decoder.finish(),
            Err(RecordIoError::TruncatedHeader {
                offset: 3,
                digits: 2
            })
        );
    }
}
