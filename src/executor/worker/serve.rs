//! The worker process's side: `shardex-executor --worker`, started by the executor with one end
//! of a socket pair as its stdin. It serves runs one after another, each exactly as a job thread
//! would (`jobs::work`), sending each report as a frame, until the executor closes its end.
//!
//! Two threads besides the main one: the listener reads frames (a `Start` becomes the current
//! run and goes to the main thread; `Fire` and `Cancel` reach the current run only if they name
//! it), and the signal thread turns the executor's SIGTERM into a force-kill of the current
//! run. If the executor's end closes during a run, the worker exits at once.

use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::getppid;
use tracing::{error, warn};

use shardex_common::payload::{ExecutionType, Guards, TaskPayload};

use super::WORKER_PARENT_ENV;
use super::protocol::{FromWorker, PROTOCOL_VERSION, ToWorker, WireScope, read_frame, write_frame};
use crate::jobs;
use crate::plugin::{JobControl, PluginLoader};

/// The run being served: what `Cancel`, `Fire` and SIGTERM act on.
struct Current {
    run: u64,
    control: JobControl,
    /// Daemon runs: one message per fire; dropped on `Cancel`.
    fires: Option<std_mpsc::Sender<()>>,
}

type Shared = Arc<Mutex<Option<Current>>>;

/// A `Start` handed from the listener to the main thread.
struct Run {
    protocol: u16,
    run: u64,
    sandbox: PathBuf,
    payload: Vec<u8>,
    control: JobControl,
    fires: std_mpsc::Receiver<()>,
}

/// Serves runs in this worker process until the executor closes the socket; the exit code.
pub fn serve() -> ExitCode {
    // Never outlive the executor: armed first, then checked, so an executor that died in
    // between is noticed too.
    let parent: Option<i32> = std::env::var(WORKER_PARENT_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let Some(parent) = parent else {
        eprintln!(
            "shardex-executor --worker: {WORKER_PARENT_ENV} is not set; worker processes are \
             started by the executor, not by hand"
        );
        return ExitCode::from(2);
    };
    if let Err(errno) = prctl::set_pdeathsig(Signal::SIGKILL) {
        eprintln!("shardex-executor --worker: cannot arm the parent-death signal: {errno}");
        return ExitCode::from(2);
    }
    if getppid().as_raw() != parent {
        return ExitCode::from(2);
    }
    // SAFETY: the executor made our stdin our end of the socket pair, for us alone.
    let socket = unsafe { UnixStream::from_raw_fd(0) };
    let (reader, writer) = match socket.try_clone() {
        Ok(reader) => (reader, Mutex::new(socket)),
        Err(e) => {
            error!(error = %e, "worker: cannot use its socket");
            return ExitCode::from(2);
        }
    };
    let send = |message: FromWorker| {
        let mut socket = writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = write_frame(&mut *socket, &message) {
            // The executor is gone; nobody is left to report to.
            error!(error = %e, "worker: cannot report to the executor; exiting");
            std::process::exit(1);
        }
    };

    let current: Shared = Arc::new(Mutex::new(None));
    // SIGTERM (the executor's force-kill, before SIGKILL) force-kills the current run: a
    // script's own process group gets SIGKILL, so nothing the job started outlives it. Blocked
    // here, before any thread starts, so only the signal thread takes it (spawned programs get
    // a clean mask).
    let mut term = SigSet::empty();
    term.add(Signal::SIGTERM);
    if let Err(errno) = term.thread_block() {
        error!(%errno, "worker: cannot block SIGTERM");
        return ExitCode::from(2);
    }
    let on_term = Arc::clone(&current);
    let signals = std::thread::Builder::new()
        .name("worker sigterm".into())
        .spawn(move || {
            while term.wait().is_ok() {
                warn!("worker: SIGTERM; stopping the job by force");
                if let Some(current) = &*on_term.lock().unwrap_or_else(PoisonError::into_inner) {
                    current.control.force_kill();
                }
            }
        });
    if let Err(e) = signals {
        error!(error = %e, "worker: cannot start its signal thread");
        return ExitCode::from(2);
    }
    let (starts, runs) = std_mpsc::channel();
    let listened = Arc::clone(&current);
    let listener = std::thread::Builder::new()
        .name("worker control".into())
        .spawn(move || listen(reader, &listened, &starts));
    if let Err(e) = listener {
        error!(error = %e, "worker: cannot start its control thread");
        return ExitCode::from(2);
    }

    // The sandbox is the executor's, the same for every run: its loader (and the plugins it
    // loaded) serve every run of this worker.
    let loader: OnceLock<(PathBuf, Result<Arc<PluginLoader>, String>)> = OnceLock::new();
    // The listener drops its sender when the executor closes the socket between runs.
    while let Ok(run) = runs.recv() {
        let number = run.run;
        // The run is over before its last frame leaves: the executor may send the next
        // `Start` as soon as it reads it.
        let report = |message: FromWorker| {
            if message.ends_run() {
                let mut current = current.lock().unwrap_or_else(PoisonError::into_inner);
                if current.as_ref().is_some_and(|c| c.run == number) {
                    *current = None;
                }
            }
            send(message);
        };
        serve_run(run, &loader, &report);
    }
    ExitCode::SUCCESS
}

/// Serves one run, from its `Start` to its last report.
fn serve_run(
    run: Run,
    loader: &OnceLock<(PathBuf, Result<Arc<PluginLoader>, String>)>,
    send: &dyn Fn(FromWorker),
) {
    if run.protocol != PROTOCOL_VERSION {
        send(FromWorker::SetupFailed {
            message: format!(
                "the executor speaks worker protocol {}, this worker {PROTOCOL_VERSION}; the \
                 executor binary changed under a running executor",
                run.protocol
            ),
            scope: WireScope::ThisLaunch,
        });
        return;
    }
    let payload = match TaskPayload::decode(&run.payload) {
        Ok(payload) => payload,
        Err(e) => {
            send(FromWorker::SetupFailed {
                message: e.to_string(),
                scope: WireScope::Item,
            });
            return;
        }
    };
    // A guarded worker serves this one run: the executor never hands it another.
    if let Err(message) = apply_guards(&payload.job.guards) {
        send(FromWorker::SetupFailed {
            message,
            scope: WireScope::Job,
        });
        return;
    }
    let fires = matches!(payload.job.execution, ExecutionType::Daemon { .. }).then_some(run.fires);
    let sandbox = run.sandbox;
    let open = || {
        let (root, opened) = loader.get_or_init(|| (sandbox.clone(), jobs::open_loader(&sandbox)));
        if *root == sandbox {
            opened.clone()
        } else {
            jobs::open_loader(&sandbox)
        }
    };
    jobs::work(&sandbox, &open, payload, &run.control, fires, &|report| {
        send(FromWorker::from_report(report))
    });
}

/// Reads frames until the executor's end closes: each `Start` becomes the current run before
/// it reaches the main thread, so a `Cancel` right behind it is never lost.
fn listen(
    mut reader: UnixStream,
    current: &Mutex<Option<Current>>,
    starts: &std_mpsc::Sender<Run>,
) {
    loop {
        let frame = read_frame::<ToWorker>(&mut reader);
        let mut current = current.lock().unwrap_or_else(PoisonError::into_inner);
        match frame {
            Ok(Some(ToWorker::Start {
                protocol,
                run,
                sandbox,
                payload,
            })) => {
                if let Some(busy) = &*current {
                    error!(
                        run,
                        busy = busy.run,
                        "worker: a Start during a run; exiting"
                    );
                    std::process::exit(1);
                }
                let control = JobControl::new();
                // Used only if the payload is a daemon's; decoded on the main thread.
                let (fires, fire_rx) = std_mpsc::channel();
                *current = Some(Current {
                    run,
                    control: control.clone(),
                    fires: Some(fires),
                });
                let run = Run {
                    protocol,
                    run,
                    sandbox: sandbox.into(),
                    payload,
                    control,
                    fires: fire_rx,
                };
                if starts.send(run).is_err() {
                    std::process::exit(1);
                }
            }
            Ok(Some(ToWorker::Fire { run })) => {
                let fires = current.as_ref().filter(|c| c.run == run);
                if let Some(fires) = fires.and_then(|c| c.fires.as_ref()) {
                    let _ = fires.send(());
                }
            }
            Ok(Some(ToWorker::Cancel { run })) => {
                if let Some(now) = current.as_mut().filter(|c| c.run == run) {
                    now.control.cancel();
                    now.fires = None;
                }
            }
            Ok(None) | Err(_) => {
                if current.is_some() {
                    // The executor is gone: so is this run.
                    std::process::exit(1);
                }
                // Retired between runs: the main thread ends the process.
                return;
            }
        }
    }
}

/// `setrlimit` for each guard the job set.
fn apply_guards(guards: &Guards) -> Result<(), String> {
    let set = |resource: Resource, name: &str, soft: u64, hard: u64| {
        setrlimit(resource, soft, hard)
            .map_err(|e| format!("cannot set the job's {name} guard to {soft}: {e}"))
    };
    if let Some(bytes) = guards.address_space {
        set(Resource::RLIMIT_AS, "address-space", bytes, bytes)?;
    }
    if let Some(seconds) = guards.cpu_time {
        // SIGXCPU at the soft limit, SIGKILL at the hard one.
        set(Resource::RLIMIT_CPU, "CPU-time", seconds, seconds + 1)?;
    }
    if let Some(files) = guards.open_files {
        set(Resource::RLIMIT_NOFILE, "open-files", files, files)?;
    }
    Ok(())
}
