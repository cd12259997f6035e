//! Real ZooKeeper servers for the HA suites: one standalone server or an ensemble of several on
//! this machine, each on free loopback ports with its own data dir, stopped when dropped.
//!
//! The jars come from `ZOOKEEPER_HOME` (an Apache release: `lib/*.jar` and `*.jar`) or from
//! Debian's `zookeeper` package (`/usr/share/java/zookeeper.jar` and its dependencies beside
//! it). Without either, [`ZooKeeper::start`] prints one `SHARDEX-SKIP:` line and returns `None`
//! (a failure under `SHARDEX_REQUIRE_REAL=1`, as in CI, where `.ci/run` installs the package).
//!
//! Each server is `java … org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg` with
//! `tickTime=500` (sessions of 1 to 10 s), the four-letter words enabled (readiness is `srvr`
//! answering with a `Mode:`), the admin server off, logging to `server.log` in its dir.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::skip;

/// How long a server (or a quorum) gets to come up.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The Java classpath holding ZooKeeper, or why there is none.
pub fn classpath() -> Result<String, String> {
    if let Some(home) = std::env::var_os("ZOOKEEPER_HOME") {
        let home = PathBuf::from(home);
        if home.join("lib").is_dir() {
            return Ok(format!("{}/lib/*:{}/*", home.display(), home.display()));
        }
        return Err(format!(
            "ZOOKEEPER_HOME={} has no lib/ directory",
            home.display()
        ));
    }
    if Path::new("/usr/share/java/zookeeper.jar").is_file() {
        // /usr/share/java holds several SLF4J bindings and the no-op one wins, so the server
        // logs nothing; the simple binding first puts its log in `server.log`.
        let simple = "/usr/share/java/slf4j-simple.jar";
        return Ok(if Path::new(simple).is_file() {
            format!("{simple}:/usr/share/java/*")
        } else {
            "/usr/share/java/*".into()
        });
    }
    Err(
        "no ZooKeeper: set ZOOKEEPER_HOME or install Debian's zookeeper package \
         (apt-get install zookeeper)"
            .into(),
    )
}

/// Distinct free loopback ports (all held while choosing).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

/// A four-letter-word command's answer, `None` when the server does not answer.
pub fn four_letters(addr: SocketAddr, word: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(word.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// One server of the ensemble.
struct Server {
    dir: PathBuf,
    client: SocketAddr,
    process: Option<Child>,
}

/// A running standalone server or ensemble.
pub struct ZooKeeper {
    classpath: String,
    /// Holds the data dirs and logs; kept when a test fails.
    root: Option<tempfile::TempDir>,
    servers: Vec<Server>,
}

impl ZooKeeper {
    /// One standalone server, or `None` (after the skip line) when ZooKeeper is missing.
    pub fn standalone(test: &str) -> Option<ZooKeeper> {
        ZooKeeper::start(test, 1)
    }

    /// An ensemble of `n` servers (n ≥ 3 for a quorum that survives one loss).
    pub fn ensemble(test: &str, n: usize) -> Option<ZooKeeper> {
        ZooKeeper::start(test, n)
    }

    fn start(test: &str, n: usize) -> Option<ZooKeeper> {
        let classpath = match classpath() {
            Ok(classpath) => classpath,
            Err(why) => {
                skip(test, &why);
                return None;
            }
        };
        let root = tempfile::Builder::new()
            .prefix("shardex-zookeeper-")
            .tempdir()
            .expect("a tempdir");
        let ports = free_ports(3 * n);
        let mut peers = String::new();
        if n > 1 {
            for i in 0..n {
                peers.push_str(&format!(
                    "server.{}=127.0.0.1:{}:{}\n",
                    i + 1,
                    ports[3 * i + 1],
                    ports[3 * i + 2]
                ));
            }
        }
        let mut servers = Vec::new();
        for i in 0..n {
            let dir = root.path().join(format!("server-{}", i + 1));
            std::fs::create_dir_all(dir.join("data")).expect("a data dir");
            if n > 1 {
                std::fs::write(dir.join("data/myid"), format!("{}\n", i + 1)).expect("myid");
            }
            let config = format!(
                "tickTime=500\ninitLimit=20\nsyncLimit=10\ndataDir={}\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n\
                 admin.enableServer=false\nmaxClientCnxns=0\n{peers}",
                dir.join("data").display(),
                ports[3 * i],
            );
            std::fs::write(dir.join("zoo.cfg"), config).expect("zoo.cfg");
            servers.push(Server {
                dir,
                client: SocketAddr::from(([127, 0, 0, 1], ports[3 * i])),
                process: None,
            });
        }
        let mut zookeeper = ZooKeeper {
            classpath,
            root: Some(root),
            servers,
        };
        for i in 0..n {
            zookeeper.start_server(i);
        }
        zookeeper.wait_serving(&(0..n).collect::<Vec<_>>());
        Some(zookeeper)
    }

    /// Starts (again) server `i` on its own data dir.
    pub fn start_server(&mut self, i: usize) {
        let server = &mut self.servers[i];
        assert!(server.process.is_none(), "server {i} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(server.dir.join("server.log"))
            .expect("a log file");
        let child = Command::new("java")
            // ZooKeeper keeps its last 500 committed transactions in memory
            // (`zookeeper.commitLogCount`); the scheduler's steps of thousands of launches
            // are multis of up to 1 MB, and at 256 MiB the server died of an
            // OutOfMemoryError (in SyncThread) in the store benchmark.
            .arg("-Xmx1g")
            .arg("-cp")
            .arg(&self.classpath)
            .arg("-Dzookeeper.admin.enableServer=false")
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(server.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .spawn()
            .expect("start java");
        server.process = Some(child);
    }

    /// `kill -9` of server `i`.
    pub fn kill_server(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every server in `which` answers `srvr` with a mode (leader, follower or
    /// standalone): a quorum is formed.
    pub fn wait_serving(&mut self, which: &[usize]) {
        let deadline = Instant::now() + START_DEADLINE;
        for &i in which {
            loop {
                let answer = four_letters(self.servers[i].client, "srvr").unwrap_or_default();
                if answer.contains("Mode: ") {
                    break;
                }
                if let Some(status) = self.servers[i]
                    .process
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    panic!(
                        "ZooKeeper server {} exited ({status}) while starting:\n{}",
                        i + 1,
                        self.log_tail(i)
                    );
                }
                if Instant::now() > deadline {
                    panic!(
                        "ZooKeeper server {} did not serve within {START_DEADLINE:?}; last \
                         srvr answer {answer:?}:\n{}",
                        i + 1,
                        self.log_tail(i)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The mode `srvr` reports for server `i` (`leader`, `follower`, `standalone`), if any.
    pub fn mode(&self, i: usize) -> Option<String> {
        four_letters(self.servers[i].client, "srvr")?
            .lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_owned)
    }

    /// `host:port,…` of every server, for a client.
    pub fn connect_string(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.client.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A `zk://` address of `root` on this ensemble.
    pub fn url(&self, root: &str) -> String {
        format!("zk://{}{root}", self.connect_string())
    }

    pub fn client_addr(&self, i: usize) -> SocketAddr {
        self.servers[i].client
    }

    fn log_tail(&self, i: usize) -> String {
        let text =
            std::fs::read_to_string(self.servers[i].dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill_server(i);
        }
        if std::thread::panicking()
            && let Some(root) = self.root.take()
        {
            let kept = root.keep();
            eprintln!("ZooKeeper logs kept in {}", kept.display());
            for i in 0..self.servers.len() {
                eprintln!("--- server {} ---\n{}", i + 1, self.log_tail(i));
            }
        }
    }
}
