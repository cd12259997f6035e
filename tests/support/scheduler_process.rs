//! The `shardex-scheduler` binary as a child process, for tests that kill or restart it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::{SOON, package_binary};

/// A scheduler process, killed when dropped.
pub struct SchedulerProcess {
    pub child: Child,
    /// `http://127.0.0.1:<port>`: its REST API, `/metrics` and `/health`.
    pub rest_url: String,
    /// Every line it wrote to stderr so far (its log, warnings and above).
    log: Arc<Mutex<Vec<String>>>,
}

impl SchedulerProcess {
    /// The lines of its stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The stderr lines so far that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|line| line.contains(needle))
            .collect()
    }

    /// Whether it is still running (it neither exited nor crashed).
    pub fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("the scheduler's status")
            .is_none()
    }
}

impl Drop for SchedulerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failing test shows what the scheduler said (the harness prints captured output).
            let status = self.child.try_wait().ok().flatten();
            eprintln!(
                "--- shardex-scheduler at {} ({}) ---",
                self.rest_url,
                status.map_or_else(|| "running".to_owned(), |s| s.to_string())
            );
            for line in self.log() {
                eprintln!("{line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The REST address `shardex-scheduler` printed into `log` after byte `from` (where a start
/// began), if it did.
#[allow(dead_code)]
pub fn rest_url_in_log(log: &std::path::Path, from: usize) -> Option<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.get(from..)?
        .lines()
        .find_map(|l| l.strip_prefix(REST_LINE))
        .map(str::to_owned)
}

/// The line the scheduler prints once its REST API listens, before the address.
const REST_LINE: &str = "shardex-scheduler: REST API on ";

/// Starts `shardex-scheduler` with `args` plus `--listen 127.0.0.1:0`, logging warnings only,
/// and waits for the REST address it prints.
pub fn spawn_scheduler<I, S>(args: I) -> SchedulerProcess
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(package_binary("shardex-scheduler"))
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shardex-scheduler");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix(REST_LINE) {
                let _ = tx.send(url.to_owned());
            }
            lines.lock().unwrap().push(line);
        }
    });
    let rest_url = rx
        .recv_timeout(SOON)
        .expect("the scheduler prints its REST address");
    SchedulerProcess {
        child,
        rest_url,
        log,
    }
}
