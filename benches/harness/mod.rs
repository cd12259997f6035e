//! The benchmark suite's harnesses, shared by `benches/suite.rs` (the measurement runs) and
//! `tests/bench_smoke.rs` (CI runs each one at [`Scale::Smoke`], asserting only that it ran
//! and printed its tables).
//!
//! Each harness returns a [`Report`]: tables (peers side by side, medians and p99 over
//! repeated samples) and curves (how a cost grows 10× at a time), which the suite prints as
//! markdown and draws as SVG (`svg.rs`). Reading order: this file (scales, statistics,
//! reports, the machine), `agent.rs` (a v1 executor API agent that acknowledges at once),
//! `executor.rs`, `scheduler.rs`, `e2e.rs`, `sim_master.rs` and `scale.rs`.
//!
//! The crate that includes this module declares `support` (tests/support) and `fake_master`
//! (tests/fake_master) at its root, and installs [`alloc::Counting`] as its global allocator.

#![allow(dead_code)]

pub mod agent;
pub mod alloc;
pub mod e2e;
pub mod executor;
pub mod scale;
pub mod scheduler;
pub mod sim_master;
pub mod svg;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// CI: every harness end to end at toy sizes, no peers, no timing claims (seconds).
    Smoke,
    /// The published figures (minutes).
    Full,
}

impl Scale {
    /// `SHARDEX_BENCH_SCALE=smoke|full`, default full.
    pub fn from_env() -> Scale {
        match std::env::var("SHARDEX_BENCH_SCALE").as_deref() {
            Ok("smoke") => Scale::Smoke,
            _ => Scale::Full,
        }
    }

    /// `full` at full scale, else `smoke`.
    pub fn pick<T>(self, smoke: T, full: T) -> T {
        match self {
            Scale::Smoke => smoke,
            Scale::Full => full,
        }
    }
}

/// Samples of one measure, in the unit the caller chose.
#[derive(Debug, Clone, Default)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    pub fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    pub fn push_duration_ms(&mut self, value: Duration) {
        self.0.push(value.as_secs_f64() * 1e3);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut values = self.0.clone();
        values.sort_by(f64::total_cmp);
        values
    }

    /// The `q` quantile by nearest rank (0.5: the median; 0.99: p99, which is the maximum
    /// below 100 samples). NaN without samples.
    pub fn quantile(&self, q: f64) -> f64 {
        let values = self.sorted();
        if values.is_empty() {
            return f64::NAN;
        }
        let rank = (q * values.len() as f64).ceil() as usize;
        values[rank.clamp(1, values.len()) - 1]
    }

    pub fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    pub fn p99(&self) -> f64 {
        self.quantile(0.99)
    }

    pub fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::NAN, f64::min)
    }

    pub fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NAN, f64::max)
    }

    pub fn sum(&self) -> f64 {
        self.0.iter().sum()
    }
}

/// A number for a table: thousands separated, `decimals` after the point, `-` for NaN.
pub fn num(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let text = format!("{:.*}", decimals, value.abs());
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), ""), |(i, f)| (i, f));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if value < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// A value with enough decimals to read: 3 significant digits below 10, fewer above.
pub fn auto(value: f64) -> String {
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        3
    };
    num(value, decimals)
}

/// `median / p99` of samples.
pub fn median_p99(samples: &Samples) -> String {
    format!("{} / {}", auto(samples.median()), auto(samples.p99()))
}

/// How many times `ours` is better than `peer`, for a cost (lower is better): `peer / ours`.
pub fn times_better_cost(ours: f64, peer: f64) -> String {
    if ours > 0.0 && peer.is_finite() && ours.is_finite() {
        format!("{}×", auto(peer / ours))
    } else {
        "–".into()
    }
}

/// How many times `ours` is better than `peer`, for a rate (higher is better): `ours / peer`.
pub fn times_better_rate(ours: f64, peer: f64) -> String {
    if peer > 0.0 && peer.is_finite() && ours.is_finite() {
        format!("{}×", auto(ours / peer))
    } else {
        "–".into()
    }
}

/// One table of a report.
#[derive(Debug, Clone)]
pub struct Table {
    pub title: String,
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Printed under the table: what was measured and how.
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(title: &str, head: &[&str]) -> Table {
        Table {
            title: title.into(),
            head: head.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("#### {}\n\n", self.title);
        let _ = writeln!(out, "| {} |", self.head.join(" | "));
        let align: Vec<&str> = (0..self.head.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "|{}|", align.join("|"));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        for note in &self.notes {
            let _ = write!(out, "\n{note}\n");
        }
        out
    }
}

/// One series of a curve: `(x, y)` points in x order.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A cost against a size growing 10× at a time, drawn on log-log axes.
#[derive(Debug, Clone)]
pub struct Curve {
    /// File name of its SVG, without `.svg`.
    pub id: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

impl Curve {
    pub fn new(id: &str, title: &str, x_label: &str, y_label: &str) -> Curve {
        Curve {
            id: id.into(),
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
        }
    }

    pub fn series(&mut self, name: &str, points: Vec<(f64, f64)>) {
        self.series.push(Series {
            name: name.into(),
            points,
        });
    }

    /// The curve as a table: one row per x, one column per series.
    pub fn table(&self) -> Table {
        let mut head = vec![self.x_label.as_str()];
        head.extend(self.series.iter().map(|s| s.name.as_str()));
        let mut table = Table::new(&format!("{} ({})", self.title, self.y_label), &head);
        let mut xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        for x in xs {
            let mut row = vec![num(x, 0)];
            for series in &self.series {
                row.push(
                    series
                        .points
                        .iter()
                        .find(|p| p.0 == x)
                        .map_or("–".into(), |p| auto(p.1)),
                );
            }
            table.row(row);
        }
        table.note(format!("Plot: `benchmarks/{}.svg`.", self.id));
        table
    }
}

/// What one harness measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub tables: Vec<Table>,
    pub curves: Vec<Curve>,
    /// Load average (1 min) when the harness started and ended.
    pub load: (f64, f64),
    pub elapsed: Duration,
}

impl Report {
    pub fn new(name: &str) -> Report {
        Report {
            name: name.into(),
            tables: Vec::new(),
            curves: Vec::new(),
            load: (load_average(), f64::NAN),
            elapsed: Duration::ZERO,
        }
    }

    pub fn table(&mut self, table: Table) {
        self.tables.push(table);
    }

    pub fn curve(&mut self, curve: Curve) {
        self.curves.push(curve);
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### {}\n\nload average (1 min) {} at the start, {} at the end; {:.0} s\n\n",
            self.name,
            num(self.load.0, 2),
            num(self.load.1, 2),
            self.elapsed.as_secs_f64()
        );
        for table in &self.tables {
            out.push_str(&table.markdown());
            out.push('\n');
        }
        for curve in &self.curves {
            out.push_str(&curve.table().markdown());
            out.push('\n');
        }
        out
    }

    /// Writes each curve as `<dir>/<id>.svg`.
    pub fn write_plots(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for curve in &self.curves {
            std::fs::write(dir.join(format!("{}.svg", curve.id)), svg::plot(curve))?;
        }
        Ok(())
    }
}

/// Runs one harness, stamping its load and duration.
pub async fn timed<F: std::future::Future<Output = Report>>(run: F) -> Report {
    let started = std::time::Instant::now();
    let mut report = run.await;
    report.elapsed = started.elapsed();
    report.load.1 = load_average();
    report
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The machine the figures come from, as a markdown list.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_owned(), |(_, m)| m.trim().to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "- CPUs (`nproc`): {cpus}\n- CPU model: {model}\n- memory: {} GiB\n- kernel: Linux {}\n",
        num(memory_kib / 1024.0 / 1024.0, 1),
        kernel.trim()
    )
}

/// User + system CPU time of process `pid` (all its threads, living and ended), and of its
/// reaped children, in microseconds; `None` once it is gone. Clock ticks are 10 ms: measure
/// enough work that this does not matter.
pub fn cpu_micros(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields start after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    let to_us = |t: u64| t * 1_000_000 / ticks;
    let own = field(14)? + field(15)?;
    let children = field(16)? + field(17)?;
    Some((to_us(own), to_us(children)))
}

/// CPU time of `pid` and every process under it, plus what they reaped, in microseconds.
pub fn tree_cpu_micros(pid: u32) -> u64 {
    crate::support::process_tree(pid)
        .into_iter()
        .filter_map(cpu_micros)
        .map(|(own, children)| own + children)
        .sum()
}

/// Resident set (VmRSS) of `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    crate::support::proc_kib(pid, "status", "VmRSS:")
}

/// Proportional set size of `pid` and every process under it, KiB.
pub fn tree_pss_kib(pid: u32) -> u64 {
    crate::support::process_tree(pid)
        .into_iter()
        .map(|pid| crate::support::proc_kib(pid, "smaps_rollup", "Pss:"))
        .sum()
}

/// Resident set of `pid` and every process under it, KiB (shared pages counted per process).
pub fn tree_rss_kib(pid: u32) -> u64 {
    crate::support::process_tree(pid)
        .into_iter()
        .map(rss_kib)
        .sum()
}

/// This process's own CPU time, microseconds.
pub fn own_cpu_micros() -> u64 {
    cpu_micros(std::process::id()).map_or(0, |(own, _)| own)
}

/// MiB from KiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
