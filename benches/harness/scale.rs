//! Simulated scale: the real `shardex-scheduler` binary, as a process with its default
//! settings (logging at info to a file), against the simulated master of `sim_master.rs` with
//! many agents, over the real v1 scheduler API.
//!
//! Each point registers `jobs` one-shard transient jobs from the config file, each firing every
//! 10 s, spread evenly over the 10 s (so `jobs / 10` launches per second are due), and runs
//! them on `agents` agents for a warm-up and then a measured window. Measured in the window:
//! offers sent and answered per second and how long an offer waited for its answer, tasks
//! launched per second against the demand, updates acknowledged per second, the scheduler's
//! CPU and resident memory at the end; and the start-up (process start → SUBSCRIBE).
//! Two curves, each 10× at a time: jobs with 1,000 agents, and agents with 10,000 jobs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::sim_master::{SimConfig, SimMaster};
use super::{Curve, Report, Samples, Scale, Table, auto, cpu_micros, mib, num, rss_kib};
use crate::support;

struct Point {
    agents: usize,
    jobs: usize,
    period_s: u32,
    startup_s: f64,
    offers_sent_per_s: f64,
    offers_answered_per_s: f64,
    offer_wait_ms: Samples,
    launches_per_s: f64,
    demand_per_s: f64,
    acks_per_s: f64,
    scheduler_cpu: f64,
    scheduler_rss_mib: f64,
    bench_cpu: f64,
}

fn config(jobs: usize, period_s: u32) -> String {
    let mut text = String::from(
        "[[apps]]\nname = \"sim\"\nexecutor_uri = \"/opt/shardex/shardex-executor\"\n\
         cpus = 0.01\nmem = 1\n",
    );
    for i in 0..jobs {
        let second = i as u32 % period_s;
        let cron = if period_s == 1 {
            "* * * * * ?".to_owned()
        } else {
            format!("{second}/{period_s} * * * * ?")
        };
        text.push_str(&format!(
            "[[jobs]]\nname = \"j{i}\"\napp = \"sim\"\ncron = \"{cron}\"\nsharding_total_count = 1\n\
             plugin = \"libsim.so\"\ncpus = 0.01\nmem = 1\n"
        ));
    }
    text
}

fn spawn_scheduler(dir: &Path, master: &str) -> Child {
    let log = std::fs::File::create(dir.join("scheduler.log")).expect("the scheduler's log");
    let mut command = Command::new(support::package_binary("shardex-scheduler"));
    command
        .arg("--config")
        .arg(dir.join("scheduler.toml"))
        .arg("--store")
        .arg(dir.join("store.redb"))
        .arg("--master")
        .arg(master)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    command.spawn().expect("the scheduler starts")
}

/// The scheduler process, killed and reaped however the point ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `done` until it holds; an error naming `what` after `bound`.
async fn until(bound: Duration, what: &str, done: impl Fn() -> bool) -> Result<(), String> {
    let end = Instant::now() + bound;
    while !done() {
        if Instant::now() >= end {
            return Err(format!("{what} did not happen within {bound:?}"));
        }
        tokio::time::sleep(support::POLL).await;
    }
    Ok(())
}

async fn point(
    agents: usize,
    jobs: usize,
    period_s: u32,
    warmup: Duration,
    window: Duration,
) -> Result<Point, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("a temp dir: {e}"))?;
    std::fs::write(dir.path().join("scheduler.toml"), config(jobs, period_s))
        .map_err(|e| format!("the scheduler's config: {e}"))?;
    let master = SimMaster::start(SimConfig {
        agents,
        cpus_per_agent: 16.0,
        mem_per_agent: 65536.0,
        allocation_interval: Duration::from_secs(1),
    })
    .await;
    let started = Instant::now();
    let mut child = Process(spawn_scheduler(dir.path(), &master.url));
    let pid = child.0.id();
    until(
        Duration::from_secs(600),
        "the scheduler's SUBSCRIBE",
        || master.subscribed(),
    )
    .await?;
    let startup_s = started.elapsed().as_secs_f64();
    until(Duration::from_secs(120), "a first launch", || {
        master.counts().tasks_launched > 0
    })
    .await?;
    // A measurement window, not a wait for an event: the rates are averaged over it.
    tokio::time::sleep(warmup).await;
    let before = master.counts();
    let _ = master.take_offer_waits();
    let cpu_before = cpu_micros(pid).map_or(0, |(own, _)| own);
    let own_before = super::own_cpu_micros();
    let measured = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = measured.elapsed().as_secs_f64();
    let after = master.counts();
    let cpu = cpu_micros(pid)
        .map_or(0, |(own, _)| own)
        .saturating_sub(cpu_before);
    let own = super::own_cpu_micros().saturating_sub(own_before);
    let scheduler_rss_mib = mib(rss_kib(pid));
    let offer_wait_ms = master.take_offer_waits();
    if child.0.try_wait().ok().flatten().is_some() {
        return Err("the scheduler died during the window".into());
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let end = Instant::now() + Duration::from_secs(30);
    while child.0.try_wait().ok().flatten().is_none() && Instant::now() < end {
        tokio::time::sleep(support::POLL).await;
    }
    drop(child);
    let rate = |a: u64, b: u64| (b - a) as f64 / elapsed;
    Ok(Point {
        agents,
        jobs,
        period_s,
        startup_s,
        offers_sent_per_s: rate(before.offers_sent, after.offers_sent),
        offers_answered_per_s: rate(before.offers_answered, after.offers_answered),
        offer_wait_ms,
        launches_per_s: rate(before.tasks_launched, after.tasks_launched),
        demand_per_s: jobs as f64 / f64::from(period_s),
        acks_per_s: rate(before.acknowledged, after.acknowledged),
        scheduler_cpu: cpu as f64 / 1e6 / elapsed,
        scheduler_rss_mib,
        bench_cpu: own as f64 / 1e6 / elapsed,
    })
}

pub async fn run(scale: Scale) -> Report {
    let mut report =
        Report::new("Simulated scale: the scheduler process against a simulated master");
    let (warmup, window) = scale.pick(
        (Duration::from_millis(200), Duration::from_secs(1)),
        (Duration::from_secs(12), Duration::from_secs(20)),
    );
    let period = scale.pick(1, 10);
    let job_sizes: Vec<usize> = scale.pick(vec![10, 100], vec![1_000, 10_000, 100_000]);
    let agent_sizes: Vec<usize> = scale.pick(vec![1, 10], vec![10, 100, 1_000]);
    let (fixed_agents, fixed_jobs) = scale.pick((10, 100), (1_000, 10_000));

    let mut points = Vec::new();
    let mut failed = Vec::new();
    let mut sizes: Vec<(usize, usize)> = job_sizes.iter().map(|&j| (fixed_agents, j)).collect();
    sizes.extend(
        agent_sizes
            .iter()
            .filter(|&&a| a != fixed_agents)
            .map(|&a| (a, fixed_jobs)),
    );
    // `SHARDEX_BENCH_SCALE_POINTS=1000x100000,10x10000` (agents x jobs) picks points to profile.
    if let Ok(only) = std::env::var("SHARDEX_BENCH_SCALE_POINTS") {
        sizes = only
            .split(',')
            .filter_map(|p| p.split_once('x'))
            .filter_map(|(a, j)| Some((a.trim().parse().ok()?, j.trim().parse().ok()?)))
            .collect();
    }
    for (agents, jobs) in sizes {
        match point(agents, jobs, period, warmup, window).await {
            Ok(point) => points.push(point),
            Err(why) => failed.push(format!(
                "{} agents, {} jobs: not measured: {why}.",
                num(agents as f64, 0),
                num(jobs as f64, 0)
            )),
        }
    }
    points.sort_by_key(|p| (p.agents, p.jobs));

    let mut table = Table::new(
        "Scheduler process against the simulated master (rates per second over the window)",
        &[
            "agents, jobs",
            "start-up, s",
            "launches/s (due)",
            "offers sent / answered per s",
            "offer wait, ms (median / p99)",
            "ACKs/s",
            "scheduler CPU",
            "scheduler RSS, MiB",
            "bench (master) CPU",
        ],
    );
    for p in &points {
        table.row(vec![
            format!("{}, {}", num(p.agents as f64, 0), num(p.jobs as f64, 0)),
            auto(p.startup_s),
            format!("{} ({})", num(p.launches_per_s, 0), num(p.demand_per_s, 0)),
            format!(
                "{} / {}",
                num(p.offers_sent_per_s, 0),
                num(p.offers_answered_per_s, 0)
            ),
            super::median_p99(&p.offer_wait_ms),
            num(p.acks_per_s, 0),
            format!("{} %", num(p.scheduler_cpu * 100.0, 0)),
            auto(p.scheduler_rss_mib),
            format!("{} %", num(p.bench_cpu * 100.0, 0)),
        ]);
    }
    table.note(format!(
        "Each job: one shard, cron every {period} s, the jobs spread evenly over the period; \
         agents of 16 cpus and 64 GiB, allocation interval 1 s; simulated tasks report \
         TASK_RUNNING and TASK_FINISHED at once. Warm-up {} s after the first launch, then a \
         {} s window. Start-up: process start → SUBSCRIBE (config file parsed, every job \
         registered and committed to a fresh store). CPU: share of one core.",
        warmup.as_secs_f64(),
        window.as_secs_f64()
    ));
    for note in failed {
        table.note(note);
    }
    report.table(table);

    let by_jobs: Vec<&Point> = points.iter().filter(|p| p.agents == fixed_agents).collect();
    let mut jobs_curve = Curve::new(
        "scale-jobs",
        &format!("{} agents: rates against jobs", num(fixed_agents as f64, 0)),
        "jobs",
        "per second",
    );
    jobs_curve.series(
        "launches due",
        by_jobs
            .iter()
            .map(|p| (p.jobs as f64, p.demand_per_s))
            .collect(),
    );
    jobs_curve.series(
        "launches",
        by_jobs
            .iter()
            .map(|p| (p.jobs as f64, p.launches_per_s))
            .collect(),
    );
    jobs_curve.series(
        "offers answered",
        by_jobs
            .iter()
            .map(|p| (p.jobs as f64, p.offers_answered_per_s))
            .collect(),
    );
    report.curve(jobs_curve);
    let mut memory_curve = Curve::new(
        "scale-memory",
        &format!("{} agents: scheduler memory", num(fixed_agents as f64, 0)),
        "jobs",
        "RSS MiB",
    );
    memory_curve.series(
        "scheduler RSS",
        by_jobs
            .iter()
            .map(|p| (p.jobs as f64, p.scheduler_rss_mib))
            .collect(),
    );
    report.curve(memory_curve);
    let by_agents: Vec<&Point> = points.iter().filter(|p| p.jobs == fixed_jobs).collect();
    let mut agents_curve = Curve::new(
        "scale-agents",
        &format!("{} jobs: offers against agents", num(fixed_jobs as f64, 0)),
        "agents",
        "per second / ms",
    );
    agents_curve.series(
        "offers answered per s",
        by_agents
            .iter()
            .map(|p| (p.agents as f64, p.offers_answered_per_s))
            .collect(),
    );
    agents_curve.series(
        "offer wait p50, ms",
        by_agents
            .iter()
            .map(|p| (p.agents as f64, p.offer_wait_ms.median()))
            .collect(),
    );
    agents_curve.series(
        "launches per s",
        by_agents
            .iter()
            .map(|p| (p.agents as f64, p.launches_per_s))
            .collect(),
    );
    report.curve(agents_curve);
    report
}
