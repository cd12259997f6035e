//! `hello-shards`: the demo's simple job. Each run appends one line to a file in the work
//! directory:
//!
//! ```text
//! <job name> <sharding item>/<sharding total count> <item parameter> <task id>
//! ```
//!
//! (the item parameter is empty when none is configured, leaving two spaces). The file is the
//! property `output`, relative to the work directory, default `hello-shards.out`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use shardex_job::{JobError, ShardingContext, SimpleJob};

/// Default output file name.
const DEFAULT_OUTPUT: &str = "hello-shards.out";

struct HelloShards {
    output: PathBuf,
}

impl SimpleJob for HelloShards {
    fn create(ctx: &ShardingContext) -> Result<Self, JobError> {
        let output = ctx.work_path(ctx.property("output").unwrap_or(DEFAULT_OUTPUT))?;
        Ok(HelloShards { output })
    }

    fn execute(&mut self, ctx: &ShardingContext) -> Result<(), JobError> {
        let line = format!(
            "{} {}/{} {} {}\n",
            ctx.job_name(),
            ctx.sharding_item(),
            ctx.sharding_total_count(),
            ctx.item_parameter(),
            ctx.task_id()
        );
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.output)
            .map_err(|e| JobError::new(format!("cannot open {}: {e}", self.output.display())))?;
        // One write call on an O_APPEND file: lines of concurrent shards never interleave.
        file.write_all(line.as_bytes())
            .map_err(|e| JobError::new(format!("cannot write {}: {e}", self.output.display())))?;
        shardex_job::info!(
            ctx,
            "shard {}/{} wrote its line to {}",
            ctx.sharding_item(),
            ctx.sharding_total_count(),
            self.output.display()
        );
        Ok(())
    }
}

shardex_job::export_plugin! {
    name: "hello-shards",
    version: env!("CARGO_PKG_VERSION"),
    simple: HelloShards,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_line_per_run_and_refuses_escaping_output() {
        let dir = std::env::temp_dir().join(format!("hello-shards-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ctx = ShardingContext::builder("demo")
            .task_id("t1")
            .sharding(1, 3)
            .item_parameter("b")
            .work_dir(&dir)
            .build();
        let mut job = HelloShards::create(&ctx).unwrap();
        job.execute(&ctx).unwrap();
        let text = std::fs::read_to_string(dir.join(DEFAULT_OUTPUT)).unwrap();
        assert_eq!(text, "demo 1/3 b t1\n");
        std::fs::remove_dir_all(&dir).unwrap();

        let ctx = ShardingContext::builder("demo")
            .property("output", "../x")
            .build();
        let error = HelloShards::create(&ctx).err().unwrap();
        assert!(
            error
                .message()
                .starts_with("\"../x\" is not a relative path"),
            "{error}"
        );
    }
}
