//! The benchmark suite's smoke run: every harness of `benches/harness/` end to end at
//! [`Scale::Smoke`] (toy sizes, no peers), so CI notices when one breaks. No timing is
//! asserted: only that each ran, printed its tables with a row per measure, and drew its curves.
//! The figures themselves come from `cargo bench --bench suite` (docs/benchmarks.md).
//!
//! Needs `cargo build --workspace` first (the executor, the scheduler and the `faulty` plugin).

#[path = "fake_master/mod.rs"]
mod fake_master;
#[path = "../benches/harness/mod.rs"]
mod harness;
mod support;

use harness::{Report, Scale};

#[global_allocator]
static ALLOCATOR: harness::alloc::Counting = harness::alloc::Counting;

/// Every table named has its header and at least one row of as many cells; every curve has
/// points and an SVG with a polyline per series.
fn assert_printed(report: &Report, tables: &[&str], curves: usize) {
    let markdown = report.markdown();
    println!("{markdown}");
    for title in tables {
        let table = report
            .tables
            .iter()
            .find(|t| t.title.starts_with(title))
            .unwrap_or_else(|| panic!("{}: no table {title:?}", report.name));
        assert!(
            !table.rows.is_empty(),
            "{}: table {title:?} has no rows",
            report.name
        );
        for row in &table.rows {
            assert_eq!(
                row.len(),
                table.head.len(),
                "{}: a row of {title:?} does not fit its header: {row:?}",
                report.name
            );
        }
        assert!(markdown.contains(&format!("#### {}", table.title)));
    }
    assert_eq!(report.curves.len(), curves, "{}: curves", report.name);
    let dir = tempfile::tempdir().expect("a temp dir");
    report
        .write_plots(dir.path())
        .expect("the plots are written");
    for curve in &report.curves {
        assert!(
            curve.series.iter().all(|s| !s.points.is_empty()),
            "{}: curve {} has a series without points",
            report.name,
            curve.id
        );
        let svg = std::fs::read_to_string(dir.path().join(format!("{}.svg", curve.id)))
            .expect("the SVG exists");
        assert!(svg.starts_with("<svg"), "{}", curve.id);
        assert_eq!(
            svg.matches("<polyline").count(),
            curve.series.len(),
            "{}: one polyline per series",
            curve.id
        );
        assert!(markdown.contains(&format!("benchmarks/{}.svg", curve.id)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_harness_runs_at_smoke_scale() {
    let report = harness::timed(harness::executor::run(Scale::Smoke)).await;
    assert_printed(&report, &["Executor on the bench agent"], 0);
    // Real Mesos is a full-scale peer: the table says why it has no rows.
    assert!(report.markdown().contains("Not measured: smoke scale."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_harness_runs_at_smoke_scale() {
    let report = harness::timed(harness::scheduler::run(Scale::Smoke)).await;
    assert_printed(
        &report,
        &[
            "Placement of ready shards",
            "Cron producer and memory per registered job",
            "The whole scheduler against a scripted master",
        ],
        4,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_to_end_harness_runs_at_smoke_scale() {
    let report = harness::timed(harness::e2e::run(Scale::Smoke)).await;
    assert_printed(
        &report,
        &["Trigger → every shard TASK_FINISHED", "Failover"],
        1,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scale_harness_runs_at_smoke_scale() {
    let report = harness::timed(harness::scale::run(Scale::Smoke)).await;
    assert_printed(
        &report,
        &["Scheduler process against the simulated master"],
        3,
    );
}
