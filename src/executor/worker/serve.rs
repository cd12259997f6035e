//! The worker process's side: `shardex-executor --worker`, started by the executor with one end
//! of a socket pair as its stdin. It reads `Start`, applies the job's resource guards, then runs the
//! task exactly as a job thread would (`jobs::work`), sending each report as a frame. A thread
//! reads `Fire` and `Cancel`; if the executor's end closes, the worker exits at once.

use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::sync::{Mutex, PoisonError};

use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::getppid;
use tracing::{error, warn};

use shardex_common::payload::{Guards, TaskPayload};

use super::WORKER_PARENT_ENV;
use super::protocol::{FromWorker, PROTOCOL_VERSION, ToWorker, WireScope, read_frame, write_frame};
use crate::jobs;
use crate::plugin::JobControl;

/// Runs one task in this worker process; the process's exit code.
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
    let (mut reader, writer) = match socket.try_clone() {
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
    let (protocol, sandbox, bytes) = match read_frame::<ToWorker>(&mut reader) {
        Ok(Some(ToWorker::Start {
            protocol,
            sandbox,
            payload,
        })) => (protocol, sandbox, payload),
        other => {
            error!(?other, "worker: the first frame is not Start");
            return ExitCode::from(2);
        }
    };
    if protocol != PROTOCOL_VERSION {
        send(FromWorker::SetupFailed {
            message: format!(
                "the executor speaks worker protocol {protocol}, this worker {PROTOCOL_VERSION}; \
                 the executor binary changed under a running executor"
            ),
            scope: WireScope::ThisLaunch,
        });
        return ExitCode::SUCCESS;
    }
    let payload = match TaskPayload::decode(&bytes) {
        Ok(payload) => payload,
        Err(e) => {
            send(FromWorker::SetupFailed {
                message: e.to_string(),
                scope: WireScope::Item,
            });
            return ExitCode::SUCCESS;
        }
    };
    if let Err(message) = apply_guards(&payload.job.guards) {
        send(FromWorker::SetupFailed {
            message,
            scope: WireScope::Job,
        });
        return ExitCode::SUCCESS;
    }

    let control = JobControl::new();
    let (fires, fire_rx) = jobs::fire_channel(&payload.job.execution);
    // SIGTERM (the executor's force-kill, before SIGKILL) force-kills the job: a script's own
    // process group gets SIGKILL, so nothing the job started outlives it. Blocked here, before
    // any thread starts, so only `on_sigterm` takes it (spawned programs get a clean mask).
    let mut term = SigSet::empty();
    term.add(Signal::SIGTERM);
    if let Err(errno) = term.thread_block() {
        error!(%errno, "worker: cannot block SIGTERM");
        return ExitCode::from(2);
    }
    let term_control = control.clone();
    let on_sigterm = std::thread::Builder::new()
        .name("worker sigterm".into())
        .spawn(move || {
            if term.wait().is_ok() {
                warn!("worker: SIGTERM; stopping the job by force");
                term_control.force_kill();
            }
        });
    if let Err(e) = on_sigterm {
        error!(error = %e, "worker: cannot start its signal thread");
        return ExitCode::from(2);
    }
    let listener_control = control.clone();
    let listener = std::thread::Builder::new()
        .name("worker control".into())
        .spawn(move || listen(reader, listener_control, fires));
    if let Err(e) = listener {
        error!(error = %e, "worker: cannot start its control thread");
        return ExitCode::from(2);
    }

    let sandbox = std::path::PathBuf::from(sandbox);
    // One task per worker: the loader is opened at most once anyway.
    let loader = || jobs::open_loader(&sandbox);
    jobs::work(&sandbox, &loader, payload, &control, fire_rx, &|report| {
        send(FromWorker::from_report(report))
    });
    ExitCode::SUCCESS
}

/// Reads `Fire` and `Cancel` until the executor's end closes.
fn listen(mut reader: UnixStream, control: JobControl, mut fires: Option<std_mpsc::Sender<()>>) {
    loop {
        match read_frame::<ToWorker>(&mut reader) {
            Ok(Some(ToWorker::Fire)) => {
                if let Some(fires) = &fires {
                    let _ = fires.send(());
                }
            }
            Ok(Some(ToWorker::Cancel)) => {
                control.cancel();
                fires = None;
            }
            Ok(Some(ToWorker::Start { .. })) => warn!("worker: a second Start ignored"),
            Ok(None) | Err(_) => {
                // The executor is gone: so is this task.
                std::process::exit(1);
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
