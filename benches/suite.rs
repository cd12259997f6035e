//! The benchmark suite: every harness of `benches/harness/` in one run, the figures of
//! `docs/benchmarks.md`.
//!
//! Run: `cargo build --release --workspace && cargo bench --bench suite`
//! (with `SHARDEX_MESOS_HOME` for the real-Mesos peer, and ZooKeeper installed for its store).
//! It prints every table as markdown, and writes them with the machine and the load to
//! `docs/benchmarks/results.md`, and each curve as `docs/benchmarks/<curve>.svg`
//! (`SHARDEX_BENCH_OUT` names another directory). `SHARDEX_BENCH_ONLY=executor,scale` runs
//! some harnesses only (`executor`, `scheduler`, `e2e`, `scale`); `SHARDEX_BENCH_SCALE=smoke`
//! runs them at toy sizes.

#[path = "../tests/fake_master/mod.rs"]
mod fake_master;
mod harness;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;

use harness::{Report, Scale};

#[global_allocator]
static ALLOCATOR: harness::alloc::Counting = harness::alloc::Counting;

/// Whether `SHARDEX_BENCH_ONLY` (comma-separated) selects `name`; everything when unset.
fn selected(name: &str) -> bool {
    std::env::var("SHARDEX_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|o| o.trim() == name))
}

fn main() {
    // Only problems: the components log every launch at info.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .try_init();
    let scale = Scale::from_env();
    let out = std::env::var_os("SHARDEX_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut reports: Vec<Report> = Vec::new();
    runtime.block_on(async {
        if selected("executor") {
            reports.push(harness::timed(harness::executor::run(scale)).await);
            println!(
                "{}",
                reports.last().map(Report::markdown).unwrap_or_default()
            );
        }
        if selected("scheduler") {
            reports.push(harness::timed(harness::scheduler::run(scale)).await);
            println!(
                "{}",
                reports.last().map(Report::markdown).unwrap_or_default()
            );
        }
        if selected("e2e") {
            reports.push(harness::timed(harness::e2e::run(scale)).await);
            println!(
                "{}",
                reports.last().map(Report::markdown).unwrap_or_default()
            );
        }
        if selected("scale") {
            reports.push(harness::timed(harness::scale::run(scale)).await);
            println!(
                "{}",
                reports.last().map(Report::markdown).unwrap_or_default()
            );
        }
    });
    let mut results = format!(
        "## Results ({})\n\nThe machine:\n\n{}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        harness::machine()
    );
    for report in &reports {
        results.push_str(&report.markdown());
        if let Err(error) = report.write_plots(&out) {
            eprintln!("cannot write the plots to {}: {error}", out.display());
        }
    }
    let name = if scale == Scale::Smoke {
        "results-smoke.md"
    } else {
        "results.md"
    };
    if let Err(error) =
        std::fs::create_dir_all(&out).and_then(|()| std::fs::write(out.join(name), &results))
    {
        eprintln!("cannot write {}: {error}", out.join(name).display());
    }
    println!("written: {}", out.join(name).display());
}
