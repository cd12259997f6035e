//! `faulty`: a simple job that misbehaves on demand, for end-to-end and reliability tests. The
//! job parameter selects what it does, or an item parameter `faulty:<mode>` for that item alone
//! (so one job can have items that crash and items that succeed):
//!
//! | parameter | behaviour |
//! |---|---|
//! | `ok` | succeeds |
//! | `error` | returns the error `faulty job failed on purpose` |
//! | `panic` | panics with `faulty job panicked on purpose` |
//! | `hang` | loops forever, ignoring cancellation |
//! | `abort` | calls `std::process::abort()` (SIGABRT kills the executor) |
//! | `segfault` | writes to an unmapped address (SIGSEGV kills the executor) |
//! | `exit:<code>` | calls `exit(code)` (ends the whole process) |
//! | `allocate` | allocates and touches 16 MiB blocks until an allocation fails |
//! | `sleep:<ms>` | sleeps in 10 ms steps; returns the error `cancelled` if cancelled first |
//! | `ignore-cancel-sleep:<ms>` | sleeps the whole time ignoring cancellation, then succeeds |
//!
//! Anything else is an error naming the unknown parameter.

use std::time::{Duration, Instant};

use shardex_job::{JobError, ShardingContext, SimpleJob};

struct Faulty;

fn millis(text: &str) -> Result<Duration, JobError> {
    text.parse().map(Duration::from_millis).map_err(|e| {
        JobError::new(format!(
            "faulty: {text:?} is not a number of milliseconds: {e}"
        ))
    })
}

impl SimpleJob for Faulty {
    fn create(_: &ShardingContext) -> Result<Self, JobError> {
        Ok(Faulty)
    }

    fn execute(&mut self, ctx: &ShardingContext) -> Result<(), JobError> {
        let mode = match ctx.item_parameter().trim().strip_prefix("faulty:") {
            Some(mode) => mode,
            None => ctx.job_parameter().trim(),
        };
        shardex_job::info!(ctx, "faulty job running in mode {mode:?}");
        match mode {
            "ok" => Ok(()),
            "error" => Err(JobError::new("faulty job failed on purpose")),
            "panic" => panic!("faulty job panicked on purpose"),
            "hang" => loop {
                std::thread::sleep(Duration::from_millis(100));
            },
            "abort" => std::process::abort(),
            "allocate" => {
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touch every page so the memory is really taken.
                    blocks.push(vec![1u8; 16 << 20]);
                    if blocks.len().is_multiple_of(64) {
                        shardex_job::info!(ctx, "faulty holds {} MiB", blocks.len() * 16);
                    }
                }
            }
            "segfault" => {
                // The first page is never mapped, so this store faults for real (a SIGSEGV the
                // kernel delivers, not a raised signal a handler could swallow).
                let unmapped = std::ptr::with_exposed_provenance_mut::<u64>(64);
                // SAFETY: not safe at all, on purpose: this mode exists to crash the process.
                unsafe { unmapped.write_volatile(0xdead) };
                Err(JobError::new("faulty: the segfault did not happen"))
            }
            _ => {
                if let Some(ms) = mode.strip_prefix("sleep:") {
                    let deadline = Instant::now() + millis(ms)?;
                    while Instant::now() < deadline {
                        if ctx.is_cancelled() {
                            return Err(JobError::new("cancelled"));
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Ok(())
                } else if let Some(code) = mode.strip_prefix("exit:") {
                    let code = code.parse().map_err(|e| {
                        JobError::new(format!("faulty: {code:?} is not an exit code: {e}"))
                    })?;
                    std::process::exit(code)
                } else if let Some(ms) = mode.strip_prefix("ignore-cancel-sleep:") {
                    std::thread::sleep(millis(ms)?);
                    Ok(())
                } else {
                    Err(JobError::new(format!(
                        "faulty: unknown mode {mode:?}; expected ok, error, panic, hang, abort, \
                         segfault, exit:<code>, allocate, sleep:<ms> or \
                         ignore-cancel-sleep:<ms>"
                    )))
                }
            }
        }
    }
}

shardex_job::export_plugin! {
    name: "faulty",
    version: env!("CARGO_PKG_VERSION"),
    simple: Faulty,
}
