//! The demo's stack as a user starts it: `shardex-scheduler demo --serve` (the embedded
//! cluster, the scheduler and the demo's three jobs: greeting, heartbeat, crunch) as a child
//! process, its REST address read from what it prints, its executors found among its child
//! processes as an operator would find them (`MESOS_EXECUTOR_ID` in their environment).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::{SOON, eventually_blocking, package_binary, process_tree};

/// What `demo` prints once the scheduler's REST API listens, before the address.
const REST_LINE: &str = "scheduler up: REST API on ";

/// A running `demo --serve`; stopped with SIGINT (as Ctrl-C) when dropped, so that its
/// embedded agent kills the executors it started.
pub struct DemoStack {
    child: Child,
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub rest_url: String,
    /// Where the demo keeps its store, config and sandboxes.
    pub work: tempfile::TempDir,
    output: Arc<Mutex<Vec<String>>>,
}

impl DemoStack {
    /// Starts it and waits for its REST address.
    pub fn start() -> DemoStack {
        let work = tempfile::tempdir().expect("a work directory");
        let mut child = Command::new(package_binary("shardex-scheduler"))
            .args(["demo", "--serve", "--work-dir"])
            .arg(work.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start shardex-scheduler demo --serve");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("piped stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("piped stderr")),
        ] {
            let lines = Arc::clone(&output);
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split(REST_LINE).nth(1) {
                        let url = rest.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send(url.to_owned());
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let rest_url = match rx.recv_timeout(SOON) {
            Ok(url) => url,
            Err(_) => panic!(
                "demo --serve printed no REST address:\n{}",
                output.lock().unwrap().join("\n")
            ),
        };
        DemoStack {
            child,
            rest_url,
            work,
            output,
        }
    }

    /// Everything it printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// The pid of the running executor of `app` (`MESOS_EXECUTOR_ID=<app>@-@…`), if any.
    pub fn executor_pid(&self, app: &str) -> Option<u32> {
        let wanted = format!("MESOS_EXECUTOR_ID={app}@-@");
        process_tree(self.child.id()).into_iter().find(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .unwrap_or_default()
                .split(|b| *b == 0)
                .any(|var| var.starts_with(wanted.as_bytes()))
        })
    }

    /// `kill -9` on the process group of `app`'s executor (the executor and what it runs), as
    /// the demo does; its pid.
    pub fn kill_executor(&self, app: &str) -> u32 {
        let pid = eventually_blocking(&format!("the executor of {app}"), SOON, || {
            self.executor_pid(app)
        });
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("SIGKILL the executor's process group");
        pid
    }
}

impl Drop for DemoStack {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let end = std::time::Instant::now() + SOON;
        while std::time::Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(super::POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
