//! A TCP proxy in front of one ZooKeeper server that breaks a client's connection around its
//! next `multi` (or a create under a given path), the way a server dying mid-request does:
//! either before the server saw it, or after the server applied and answered it (the answer
//! never reaches the client). The client then reconnects through the proxy with the same
//! session, which it forwards as before.
//!
//! It reads ZooKeeper's framing only as far as it must: every packet is a 4-byte big-endian
//! length and that many bytes; after the first packet of each direction (the connect request
//! and response, which have no header), a request starts `xid, opcode` and an answer `xid`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// ZooKeeper's opcode of a `multi` request (`ZooDefs.OpCode.multi`).
const MULTI: i32 = 14;
/// The opcodes of creates: `create`, `create2`, `createTTL`, `createContainer`.
const CREATES: [i32; 4] = [1, 15, 21, 19];

/// Which request a cut waits for.
#[derive(Debug, Clone)]
enum Trigger {
    Multi,
    /// A create of a path containing this.
    Create(String),
}

impl Trigger {
    /// Whether the request `packet` (length prefix, xid, opcode, body) is the one.
    fn matches(&self, packet: &[u8]) -> bool {
        let opcode = i32::from_be_bytes(packet[8..12].try_into().unwrap());
        match self {
            Trigger::Multi => opcode == MULTI,
            Trigger::Create(part) => {
                // A create's body starts with its path: a 4-byte length and the bytes.
                let path = packet.get(12..16).and_then(|len| {
                    let len = usize::try_from(i32::from_be_bytes(len.try_into().ok()?)).ok()?;
                    packet.get(16..16 + len)
                });
                CREATES.contains(&opcode)
                    && path.is_some_and(|p| String::from_utf8_lossy(p).contains(part.as_str()))
            }
        }
    }
}

/// Where the next `multi` breaks its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The request never reaches the server.
    BeforeTheServer,
    /// The server applies it and answers; the answer never reaches the client.
    AfterTheAnswer,
}

/// The proxy, stopped when dropped. It runs on a thread of its own, so a test that blocks
/// its own thread (waiting on a child process) never stalls it.
pub struct ZkProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Shared {
    upstream: SocketAddr,
    armed: Mutex<Option<(Trigger, Cut)>>,
    /// How many connections a cut broke.
    cuts: watch::Sender<usize>,
}

impl ZkProxy {
    /// A proxy on a free loopback port forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> ZkProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            upstream,
            armed: Mutex::new(None),
            cuts: watch::Sender::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the proxy's runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("the proxy's listener");
                let accept = async {
                    while let Ok((client, _)) = listener.accept().await {
                        tokio::spawn(relay(client, Arc::clone(&accepting)));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
        });
        ZkProxy {
            addr,
            shared,
            stop: Some(stop),
        }
    }

    /// `host:port` for a client's connect string.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next `multi` any client sends breaks its connection as `cut` says.
    pub fn arm(&self, cut: Cut) {
        *self.shared.armed.lock().unwrap() = Some((Trigger::Multi, cut));
    }

    /// The next create of a path containing `part` breaks its connection as `cut` says.
    pub fn arm_create(&self, part: &str, cut: Cut) {
        *self.shared.armed.lock().unwrap() = Some((Trigger::Create(part.to_owned()), cut));
    }

    /// How many connections were broken so far.
    pub fn cuts(&self) -> usize {
        *self.shared.cuts.borrow()
    }
}

impl Drop for ZkProxy {
    fn drop(&mut self) {
        // The runtime ends with its thread, and every relayed connection with it.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One client connection relayed to its own server connection, until either side closes or a
/// cut breaks both.
async fn relay(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // The xid of a multi whose answer is to be swallowed (set before the request goes on, so
    // the answer can never get ahead of it).
    let swallow: Mutex<Option<i32>> = Mutex::new(None);
    let up = async {
        let mut first = true;
        loop {
            let packet = read_packet(&mut from_client).await?;
            if !first && packet.len() >= 12 {
                let xid = i32::from_be_bytes(packet[4..8].try_into().unwrap());
                let mut armed = shared.armed.lock().unwrap();
                let cut = match armed.as_ref() {
                    Some((trigger, cut)) if trigger.matches(&packet) => Some(*cut),
                    _ => None,
                };
                match cut {
                    Some(Cut::BeforeTheServer) => {
                        *armed = None;
                        return Some(());
                    }
                    Some(Cut::AfterTheAnswer) => {
                        *armed = None;
                        *swallow.lock().unwrap() = Some(xid);
                    }
                    None => {}
                }
            }
            first = false;
            to_server.write_all(&packet).await.ok()?;
        }
    };
    let down = async {
        let mut first = true;
        loop {
            let packet = read_packet(&mut from_server).await?;
            if !first && packet.len() >= 8 {
                let xid = i32::from_be_bytes(packet[4..8].try_into().unwrap());
                if *swallow.lock().unwrap() == Some(xid) {
                    return Some(());
                }
            }
            first = false;
            to_client.write_all(&packet).await.ok()?;
        }
    };
    // Whichever ends first ends both: every half is dropped, so both connections close.
    let cut = tokio::select! {
        cut = up => cut,
        cut = down => cut,
    };
    if cut.is_some() {
        shared.cuts.send_modify(|n| *n += 1);
    }
}

/// One whole packet, its length prefix included; `None` at the end of the stream.
async fn read_packet(from: &mut (impl AsyncRead + Unpin)) -> Option<Vec<u8>> {
    let mut length = [0u8; 4];
    from.read_exact(&mut length).await.ok()?;
    let body = usize::try_from(i32::from_be_bytes(length)).ok()?;
    if body > 64 << 20 {
        return None;
    }
    let mut packet = vec![0u8; 4 + body];
    packet[..4].copy_from_slice(&length);
    from.read_exact(&mut packet[4..]).await.ok()?;
    Some(packet)
}
