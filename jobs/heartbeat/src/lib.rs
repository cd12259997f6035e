//! `heartbeat`: an example job for daemon tasks. A daemon task keeps one instance and calls it
//! on every cron fire; each fire appends one quick line to the output file:
//!
//! ```text
//! <job name> item <sharding item> fire <n> at <unix time in ms> task <task id>
//! ```
//!
//! `n` counts fires of this instance from 1, showing that state survives between fires. The file
//! is the property `output`, relative to the work directory, default `heartbeat.out`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use shardex_job::{JobError, ShardingContext, SimpleJob};

struct Heartbeat {
    output: PathBuf,
    fires: u64,
}

impl SimpleJob for Heartbeat {
    fn create(ctx: &ShardingContext) -> Result<Self, JobError> {
        Ok(Heartbeat {
            output: ctx.work_path(ctx.property("output").unwrap_or("heartbeat.out"))?,
            fires: 0,
        })
    }

    fn execute(&mut self, ctx: &ShardingContext) -> Result<(), JobError> {
        self.fires += 1;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let line = format!(
            "{} item {} fire {} at {} task {}\n",
            ctx.job_name(),
            ctx.sharding_item(),
            self.fires,
            now_ms,
            ctx.task_id()
        );
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.output)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .map_err(|e| {
                JobError::new(format!("cannot append to {}: {e}", self.output.display()))
            })?;
        shardex_job::debug!(ctx, "heartbeat fire {}", self.fires);
        Ok(())
    }
}

shardex_job::export_plugin! {
    name: "heartbeat",
    version: env!("CARGO_PKG_VERSION"),
    simple: Heartbeat,
}
