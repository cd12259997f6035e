//! `stream-numbers`: an example streaming dataflow job.
//!
//! Shard `i` of `n` owns the numbers `i, i+n, i+2n, …`. Each fetch returns the next `batch_size`
//! of them until `limit` numbers were produced (`limit = 0`: never stop on its own), and each
//! process appends one line `batch <k>: <numbers separated by spaces>` to the output file and
//! reports progress. Fetch returns nothing once the task is cancelled, so a streaming run ends
//! promptly.
//!
//! Properties (all optional): `limit` (default 100), `batch_size` (default 10), `delay_ms`
//! (time each process call takes, default 0; sleeps in short steps and stops early on cancel),
//! `output` (relative to the work directory, default `stream-numbers.out`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use shardex_job::{DataflowJob, JobError, ShardingContext};

struct StreamNumbers {
    limit: u64,
    batch_size: u64,
    delay: Duration,
    output: PathBuf,
    produced: u64,
    batches: u64,
}

fn number_property(ctx: &ShardingContext, key: &str, default: u64) -> Result<u64, JobError> {
    match ctx.property(key) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|e| {
            JobError::new(format!(
                "property {key} = {text:?} is not a whole number: {e}"
            ))
        }),
    }
}

impl DataflowJob for StreamNumbers {
    type Item = u64;

    fn create(ctx: &ShardingContext) -> Result<Self, JobError> {
        let batch_size = number_property(ctx, "batch_size", 10)?;
        if batch_size == 0 {
            return Err(JobError::new("property batch_size must be at least 1"));
        }
        Ok(StreamNumbers {
            limit: number_property(ctx, "limit", 100)?,
            batch_size,
            delay: Duration::from_millis(number_property(ctx, "delay_ms", 0)?),
            output: ctx.work_path(ctx.property("output").unwrap_or("stream-numbers.out"))?,
            produced: 0,
            batches: 0,
        })
    }

    fn fetch_data(&mut self, ctx: &ShardingContext) -> Result<Vec<u64>, JobError> {
        if ctx.is_cancelled() {
            shardex_job::info!(ctx, "cancelled after {} numbers", self.produced);
            return Ok(Vec::new());
        }
        let remaining = if self.limit == 0 {
            u64::MAX
        } else {
            self.limit.saturating_sub(self.produced)
        };
        let count = remaining.min(self.batch_size);
        let step = u64::from(ctx.sharding_total_count().max(1));
        let first = u64::from(ctx.sharding_item());
        let batch = (self.produced..self.produced + count)
            .map(|k| first.saturating_add(k.saturating_mul(step)))
            .collect();
        self.produced += count;
        Ok(batch)
    }

    fn process_data(&mut self, ctx: &ShardingContext, items: Vec<u64>) -> Result<(), JobError> {
        let deadline = Instant::now() + self.delay;
        while !ctx.is_cancelled() && Instant::now() < deadline {
            std::thread::sleep(
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(5)),
            );
        }
        self.batches += 1;
        let numbers: Vec<String> = items.iter().map(u64::to_string).collect();
        let line = format!("batch {}: {}\n", self.batches, numbers.join(" "));
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.output)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .map_err(|e| {
                JobError::new(format!("cannot append to {}: {e}", self.output.display()))
            })?;
        ctx.progress(&format!(
            "{} numbers in {} batches",
            self.produced, self.batches
        ));
        Ok(())
    }
}

shardex_job::export_plugin! {
    name: "stream-numbers",
    version: env!("CARGO_PKG_VERSION"),
    dataflow: StreamNumbers,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_takes_its_residue_class_until_the_limit() {
        let ctx = ShardingContext::builder("n")
            .sharding(1, 3)
            .property("limit", "5")
            .property("batch_size", "2")
            .build();
        let mut job = StreamNumbers::create(&ctx).unwrap();
        assert_eq!(job.fetch_data(&ctx).unwrap(), [1, 4]);
        assert_eq!(job.fetch_data(&ctx).unwrap(), [7, 10]);
        assert_eq!(job.fetch_data(&ctx).unwrap(), [13]);
        assert!(job.fetch_data(&ctx).unwrap().is_empty());
    }

    #[test]
    fn bad_properties_are_named() {
        let ctx = ShardingContext::builder("n")
            .property("limit", "lots")
            .build();
        let error = StreamNumbers::create(&ctx).err().unwrap();
        assert!(
            error
                .message()
                .starts_with("property limit = \"lots\" is not a whole number")
        );
    }
}
