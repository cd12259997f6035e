//! An executor subscription spoken by hand: a JSON SUBSCRIBE to `/api/v1/executor` on a plain
//! TCP connection, the response head kept as sent, and the chunked RecordIO body read event by
//! event. For probes that speak for an executor whose process does not subscribe itself.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// An open SUBSCRIBE response.
pub struct RawSubscription {
    socket: TcpStream,
    /// The status line, e.g. `HTTP/1.1 200 OK`.
    pub status: String,
    /// The response headers, in order, as sent.
    pub headers: Vec<(String, String)>,
    chunked: bool,
    /// Bytes read past the head and not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked body bytes not yet parsed as records.
    body: Vec<u8>,
    ended: bool,
}

/// A JSON POST of `body` to `path`, as bytes to send.
pub fn json_post(address: SocketAddr, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl RawSubscription {
    /// Sends `request` on a new connection and reads the response head.
    pub async fn open(address: SocketAddr, request: &[u8]) -> Result<RawSubscription, String> {
        let mut socket = TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect to {address}: {e}"))?;
        socket
            .write_all(request)
            .await
            .map_err(|e| format!("send to {address}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut data = Vec::new();
        let end = loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut buffer = [0u8; 4096];
            match tokio::time::timeout_at(deadline, socket.read(&mut buffer)).await {
                Ok(Ok(0)) => return Err("the connection closed before a response head".into()),
                Ok(Ok(n)) => data.extend_from_slice(&buffer[..n]),
                Ok(Err(e)) => return Err(format!("read from {address}: {e}")),
                Err(_) => return Err("no response head within 10 s".into()),
            }
        };
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let chunked = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("Transfer-Encoding") && v.eq_ignore_ascii_case("chunked")
        });
        Ok(RawSubscription {
            socket,
            status,
            headers,
            chunked,
            raw: data[end + 4..].to_vec(),
            body: Vec::new(),
            ended: false,
        })
    }

    /// Moves complete chunks from `raw` to `body`; notes the last chunk.
    fn dechunk(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let Some(size) = std::str::from_utf8(&self.raw[..line_end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            else {
                self.ended = true;
                return;
            };
            if size == 0 {
                self.ended = true;
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
    }

    /// The next whole RecordIO record, if the body holds one.
    fn record(&mut self) -> Option<Vec<u8>> {
        let newline = self.body.iter().position(|b| *b == b'\n')?;
        let length: usize = std::str::from_utf8(&self.body[..newline])
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if self.body.len() < newline + 1 + length {
            return None;
        }
        let record = self.body[newline + 1..newline + 1 + length].to_vec();
        self.body.drain(..newline + 1 + length);
        Some(record)
    }

    /// The next event, or `None` once the stream has ended (the agent closed it, or sent its
    /// last chunk). Fails the test after `timeout` without either.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            self.dechunk();
            if let Some(record) = self.record() {
                let event = serde_json::from_slice(&record).unwrap_or_else(|e| {
                    panic!(
                        "an event that is not JSON ({e}): {:?}",
                        String::from_utf8_lossy(&record)
                    )
                });
                return Some(event);
            }
            if self.ended {
                return None;
            }
            let mut buffer = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.socket.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => self.ended = true,
                Ok(Ok(n)) => self.raw.extend_from_slice(&buffer[..n]),
                Err(_) => panic!("no event and no end of the stream within {timeout:?}"),
            }
        }
    }

    /// The body of a response that is not a stream (an error answer), as text.
    pub async fn whole_body(&mut self) -> String {
        let length: usize = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.raw.len() < length {
            let mut buffer = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.socket.read(&mut buffer)).await {
                Ok(Ok(n)) if n > 0 => self.raw.extend_from_slice(&buffer[..n]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}
