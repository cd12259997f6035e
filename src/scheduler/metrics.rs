//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Written by hand: a dozen counters and gauges owned by one task need no registry, atomics or
//! derive macros, and the format is a few lines of text. Counters count since the process
//! started (Prometheus handles resets); gauges are read from the state when scraped, so they
//! always equal what the REST API lists.

use std::fmt::Write as _;

/// Counters, owned by the scheduler's single owner task.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    pub tasks_launched_ready: u64,
    pub tasks_launched_failover: u64,
    pub tasks_finished: u64,
    pub tasks_failed: u64,
    pub tasks_killed: u64,
    pub tasks_failed_over: u64,
    pub failovers_dropped: u64,
    pub items_parked: u64,
    pub setup_errors: u64,
    pub tasks_retried: u64,
    pub tasks_timed_out: u64,
    pub runs_partial: u64,
    pub runs_skipped: u64,
    pub ready_fires_dropped: u64,
    pub offers_received: u64,
    pub offers_used: u64,
    pub offers_declined: u64,
    pub updates_received: u64,
    pub updates_duplicate: u64,
    pub subscriptions: u64,
}

/// Gauges taken from the state at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Gauges {
    pub running_tasks: u64,
    pub suspect_tasks: u64,
    pub ready_runs: u64,
    pub failover_entries: u64,
    pub parked_items: u64,
    pub stopping_executors: u64,
    pub connected: bool,
    pub reconciling: bool,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// Renders the exposition text.
pub fn render(c: &Counters, g: &Gauges) -> String {
    let mut out = String::new();
    metric(
        &mut out,
        "shardex_tasks_launched_total",
        "counter",
        "Tasks launched, by why: type ready for a run (cron fire, trigger, daemon start), failover for a relaunch of a failed item.",
        &[
            ("{type=\"ready\"}", c.tasks_launched_ready),
            ("{type=\"failover\"}", c.tasks_launched_failover),
        ],
    );
    metric(
        &mut out,
        "shardex_tasks_finished_total",
        "counter",
        "Tasks that reached TASK_FINISHED.",
        &[("", c.tasks_finished)],
    );
    metric(
        &mut out,
        "shardex_tasks_failed_total",
        "counter",
        "Tasks that ended in a failure state (FAILED, ERROR, LOST, DROPPED, GONE, GONE_BY_OPERATOR) or were abandoned as suspect.",
        &[("", c.tasks_failed)],
    );
    metric(
        &mut out,
        "shardex_tasks_killed_total",
        "counter",
        "Tasks that ended after a kill.",
        &[("", c.tasks_killed)],
    );
    metric(
        &mut out,
        "shardex_tasks_failed_over_total",
        "counter",
        "Failover entries recorded.",
        &[("", c.tasks_failed_over)],
    );
    metric(
        &mut out,
        "shardex_failovers_dropped_total",
        "counter",
        "Failovers not recorded because the failover queue was full.",
        &[("", c.failovers_dropped)],
    );
    metric(
        &mut out,
        "shardex_items_parked_total",
        "counter",
        "Sharding items parked after too many consecutive failures or by a setup error.",
        &[("", c.items_parked)],
    );
    metric(
        &mut out,
        "shardex_setup_errors_total",
        "counter",
        "Tasks that ended TASK_ERROR with a setup error that recurs on every launch (their job's or item's shards are parked).",
        &[("", c.setup_errors)],
    );
    metric(
        &mut out,
        "shardex_task_retries_total",
        "counter",
        "Re-runs queued after the job itself failed or timed out (the job's retries).",
        &[("", c.tasks_retried)],
    );
    metric(
        &mut out,
        "shardex_tasks_timed_out_total",
        "counter",
        "Tasks killed for running longer than their job's timeout.",
        &[("", c.tasks_timed_out)],
    );
    metric(
        &mut out,
        "shardex_runs_partial_total",
        "counter",
        "Runs launched without their parked items.",
        &[("", c.runs_partial)],
    );
    metric(
        &mut out,
        "shardex_runs_skipped_total",
        "counter",
        "Runs dropped because every item of the job is parked.",
        &[("", c.runs_skipped)],
    );
    metric(
        &mut out,
        "shardex_ready_fires_dropped_total",
        "counter",
        "Cron fires dropped because the job's ready queue was full.",
        &[("", c.ready_fires_dropped)],
    );
    metric(
        &mut out,
        "shardex_offers_received_total",
        "counter",
        "Offers received.",
        &[("", c.offers_received)],
    );
    metric(
        &mut out,
        "shardex_offers_used_total",
        "counter",
        "Offers accepted with at least one task.",
        &[("", c.offers_used)],
    );
    metric(
        &mut out,
        "shardex_offers_declined_total",
        "counter",
        "Offers declined.",
        &[("", c.offers_declined)],
    );
    metric(
        &mut out,
        "shardex_status_updates_total",
        "counter",
        "Status updates received.",
        &[("", c.updates_received)],
    );
    metric(
        &mut out,
        "shardex_status_updates_duplicate_total",
        "counter",
        "Status updates ignored as duplicates or as stale.",
        &[("", c.updates_duplicate)],
    );
    metric(
        &mut out,
        "shardex_subscriptions_total",
        "counter",
        "Successful (re)subscriptions.",
        &[("", c.subscriptions)],
    );
    metric(
        &mut out,
        "shardex_running_tasks",
        "gauge",
        "Tasks the scheduler tracks as running (suspect ones included).",
        &[("", g.running_tasks)],
    );
    metric(
        &mut out,
        "shardex_suspect_tasks",
        "gauge",
        "Tasks reported unreachable or unknown.",
        &[("", g.suspect_tasks)],
    );
    metric(
        &mut out,
        "shardex_ready_runs",
        "gauge",
        "Pending runs in the ready queue.",
        &[("", g.ready_runs)],
    );
    metric(
        &mut out,
        "shardex_failover_queue_size",
        "gauge",
        "Entries in the failover queue.",
        &[("", g.failover_entries)],
    );
    metric(
        &mut out,
        "shardex_parked_items",
        "gauge",
        "Sharding items parked.",
        &[("", g.parked_items)],
    );
    metric(
        &mut out,
        "shardex_stopping_executors",
        "gauge",
        "Executors seen stopping that nothing is launched into until Mesos reports them gone.",
        &[("", g.stopping_executors)],
    );
    metric(
        &mut out,
        "shardex_connected",
        "gauge",
        "1 while subscribed to a master.",
        &[("", u64::from(g.connected))],
    );
    metric(
        &mut out,
        "shardex_reconciling",
        "gauge",
        "1 while launching waits for reconciliation.",
        &[("", u64::from(g.reconciling))],
    );
    out
}

/// Who leads, appended to [`render`]'s text: `shardex_leader` (1 on the scheduler that leads,
/// 0 on a standby; a scheduler without HA leads alone) and, with HA, the store's epoch as
/// `shardex_leader_elections_total`: how many times a scheduler took the leadership of this
/// store, so a rise means a failover happened.
pub fn render_leadership(out: &mut String, leader: bool, elections: Option<u64>) {
    metric(
        out,
        "shardex_leader",
        "gauge",
        "1 on the scheduler that leads, 0 on a standby.",
        &[("", u64::from(leader))],
    );
    if let Some(elections) = elections {
        metric(
            out,
            "shardex_leader_elections_total",
            "counter",
            "Times a scheduler took the leadership of this store (its epoch in ZooKeeper).",
            &[("", elections)],
        );
    }
}

/// The name of every metric `/metrics` may show (the README lists each).
pub fn names() -> Vec<String> {
    let mut text = render(&Counters::default(), &Gauges::default());
    render_leadership(&mut text, true, Some(0));
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// Reads one sample back from exposition text (tests compare `/metrics` with what they saw).
pub fn sample(text: &str, name_and_labels: &str) -> Option<u64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        (key == name_and_labels).then(|| value.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_parseable_exposition_text() {
        let c = Counters {
            tasks_launched_ready: 3,
            tasks_failed_over: 1,
            ..Counters::default()
        };
        let g = Gauges {
            failover_entries: 2,
            connected: true,
            ..Gauges::default()
        };
        let text = render(&c, &g);
        assert_eq!(
            sample(&text, "shardex_tasks_launched_total{type=\"ready\"}"),
            Some(3)
        );
        assert_eq!(sample(&text, "shardex_tasks_failed_over_total"), Some(1));
        assert_eq!(sample(&text, "shardex_failover_queue_size"), Some(2));
        assert_eq!(sample(&text, "shardex_connected"), Some(1));
        assert!(text.contains("# TYPE shardex_ready_runs gauge\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<u64>().unwrap();
        }
    }
}
