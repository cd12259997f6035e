//! `shardex-scheduler ctl <command>`: the REST API from a terminal, for operators who live in
//! one. Reads print aligned tables (columns separated by two spaces, no trailing blanks, `-`
//! for nothing); actions print one line saying what was done. Every failure is one line on
//! stderr and exit status 1: an unreachable scheduler names the URL it tried and what to do, a
//! refusal carries the scheduler's own `error` message.
//!
//! Where the scheduler is: `--url`, else `listen` of `--config` (a wildcard address reached on
//! loopback), else `http://127.0.0.1:8899`. The token: the file `--rest-token-file` names, else
//! `rest.token_file` of `--config`; sent as `Authorization: Bearer …` on every request, as the
//! REST API's `rest.token_file` / `rest.protect_reads` expect.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::config::Config;
use super::secret::{Secret, SecretError, read_secret};

/// The REST address a scheduler listens on when nothing says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8899";

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How often `logs --follow` asks for new output.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// What one read asks for: Mesos' cap of 16 pages.
const READ_BYTES: u64 = 65536;

/// `ctl`'s flags and command.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The scheduler's REST API, `http://host:port` or `host:port` [default: `listen` of
    /// --config, else http://127.0.0.1:8899].
    #[arg(long, env = "SHARDEX_URL")]
    pub url: Option<String>,
    /// A file holding the REST token, sent as `Authorization: Bearer <token>` [default:
    /// `rest.token_file` of --config].
    #[arg(long, env = "SHARDEX_REST_TOKEN_FILE")]
    pub rest_token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// What `ctl` does.
#[derive(Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// Every job: state, cron, next fire, last run.
    Jobs,
    /// Every app: state, revision, its jobs.
    Apps,
    /// A job's runs, newest first.
    Runs {
        job: String,
        /// How many runs (at most 200).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only runs older than this run id (the page after a previous listing).
        #[arg(long)]
        before: Option<u64>,
    },
    /// One run: each shard's tasks in launch order, each with its states.
    Run { run: u64 },
    /// One task: where it ran, its states, its sandbox files.
    Task { task: String },
    /// A file of a task's sandbox, read through the scheduler from its agent.
    Logs {
        task: String,
        /// Which file `ctl task` lists: `stdout` or `stderr` (the task's own, in its work
        /// directory: a script's output), `executor stdout` or `executor stderr` (its
        /// executor's, in the sandbox).
        #[arg(long, default_value = "stdout")]
        file: String,
        /// Keep printing new output until the task has ended (Ctrl-C stops earlier).
        #[arg(long)]
        follow: bool,
    },
    /// One more pending run of a job.
    Trigger { job: String },
    /// Enable a job: its cron fires again from now on.
    Enable { job: String },
    /// Disable a job: its tasks are killed, its queues dropped, its cron stopped.
    Disable { job: String },
    /// Release a parked shard: the job's next run includes it again.
    Release { job: String, item: u32 },
    /// The running, ready, failover and parked queues.
    Queues,
}

/// Why a `ctl` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(
        "cannot reach the scheduler at {url}: {reason}. Start it (`shardex-scheduler --local …` \
         or with --master) or pass --url with its REST address"
    )]
    Unreachable { url: String, reason: String },
    #[error("{method} {url} answered {status}: {message}{hint}")]
    Refused {
        method: &'static str,
        url: String,
        status: u16,
        message: String,
        hint: &'static str,
    },
    #[error("{method} {url} answered something that is not the JSON expected: {reason}")]
    Unexpected {
        method: &'static str,
        url: String,
        reason: String,
    },
    #[error("invalid --url '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    #[error(transparent)]
    Token(#[from] SecretError),
    #[error("cannot make the HTTP client: {0}")]
    Client(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// The scheduler's REST API, as `ctl` speaks to it.
struct Api {
    base: reqwest::Url,
    token: Option<Secret>,
    http: reqwest::Client,
}

/// The innermost cause of an error: "Connection refused (os error 111)", not "error sending
/// request".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// `--url`, `listen` of the config, or the default, as a base URL.
fn base_url(url: Option<&str>, config: Option<&Config>) -> Result<reqwest::Url, CtlError> {
    let given = match (url, config.and_then(|c| c.listen.as_deref())) {
        (Some(url), _) => url.to_owned(),
        (None, Some(listen)) => match listen.parse::<SocketAddr>() {
            // A scheduler listening on every address is reached on loopback.
            Ok(addr) if addr.ip().is_unspecified() => format!("127.0.0.1:{}", addr.port()),
            _ => listen.to_owned(),
        },
        (None, None) => DEFAULT_URL.to_owned(),
    };
    let with_scheme = if given.contains("://") {
        given.clone()
    } else {
        format!("http://{given}")
    };
    let bad = |reason: String| CtlError::BadUrl {
        url: given.clone(),
        reason,
    };
    let mut base = reqwest::Url::parse(&with_scheme).map_err(|e| bad(e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(bad("give an http:// or https:// URL".into()));
    }
    base.set_query(None);
    base.set_fragment(None);
    let path = base.path().trim_end_matches('/').to_owned();
    base.set_path(&path);
    Ok(base)
}

impl Api {
    fn new(args: &CtlArgs, config: Option<&Config>) -> Result<Api, CtlError> {
        let base = base_url(args.url.as_deref(), config)?;
        let token_file = args
            .rest_token_file
            .clone()
            .or_else(|| config.and_then(|c| c.rest.token_file.clone()));
        let token = match token_file {
            Some(path) => Some(read_secret("the REST token", &path)?),
            None => None,
        };
        let http = shardex_mesos::tls::http_client_builder()
            .map_err(|e| CtlError::Client(e.to_string()))?
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| CtlError::Client(e.to_string()))?;
        Ok(Api { base, token, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    async fn call(&self, method: &'static str, path: &str) -> Result<Value, CtlError> {
        let url = self.url(path);
        let request = match method {
            "POST" => self.http.post(&url),
            _ => self.http.get(&url),
        };
        let request = match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        };
        let response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| CtlError::Unreachable {
                url: self.base.as_str().trim_end_matches('/').to_owned(),
                reason: root_cause(&e),
            })?;
        let status = response.status();
        let unexpected = |reason: String| CtlError::Unexpected {
            method,
            url: url.clone(),
            reason,
        };
        let body = response
            .bytes()
            .await
            .map_err(|e| unexpected(root_cause(&e)))?;
        let value: Option<Value> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            let message = value
                .as_ref()
                .and_then(|v| v["error"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
            return Err(CtlError::Refused {
                method,
                url,
                status: status.as_u16(),
                message,
                hint: match status.as_u16() {
                    401 => " (give the scheduler's REST token with --rest-token-file)",
                    403 => " (the token given is not the scheduler's REST token)",
                    _ => "",
                },
            });
        }
        value.ok_or_else(|| unexpected(String::from_utf8_lossy(&body).chars().take(200).collect()))
    }

    async fn get(&self, path: &str) -> Result<Value, CtlError> {
        self.call("GET", path).await
    }

    async fn post(&self, path: &str) -> Result<Value, CtlError> {
        self.call("POST", path).await
    }
}

/// A path segment, percent-encoded.
fn segment(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A field as text: strings as they are, numbers and booleans written out, `-` for null.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// Milliseconds as `850 ms`, `4.0 s`, `2 min 5 s`, `1 h 3 min`.
pub fn duration(millis: u64) -> String {
    if millis < 1000 {
        return format!("{millis} ms");
    }
    let seconds = millis / 1000;
    if seconds < 60 {
        return format!("{}.{} s", seconds, (millis % 1000) / 100);
    }
    let minutes = seconds / 60;
    if minutes < 60 {
        return format!("{minutes} min {} s", seconds % 60);
    }
    format!("{} h {} min", minutes / 60, minutes % 60)
}

/// Rows under a header, each column as wide as its widest cell, two spaces apart, no
/// trailing blanks.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let fill = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', fill));
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// `key  value` lines, the values aligned.
fn key_values(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(key, value)| format!("{key:<width$}  {value}").trim_end().to_owned() + "\n")
        .collect()
}

/// Runs one `ctl` command, printing to `out`.
pub async fn run(
    args: &CtlArgs,
    config: Option<&Config>,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let api = Api::new(args, config)?;
    match &args.command {
        CtlCommand::Jobs => jobs(&api, out).await,
        CtlCommand::Apps => apps(&api, out).await,
        CtlCommand::Runs { job, limit, before } => runs(&api, job, *limit, *before, out).await,
        CtlCommand::Run { run } => show_run(&api, *run, out).await,
        CtlCommand::Task { task } => show_task(&api, task, out).await,
        CtlCommand::Logs { task, file, follow } => logs(&api, task, file, *follow, out).await,
        CtlCommand::Trigger { job } => {
            let answer = api
                .post(&format!("/api/jobs/{}/trigger", segment(job)))
                .await?;
            let pending = answer["ready_runs"].as_u64().unwrap_or(1);
            let runs = if pending == 1 { "run" } else { "runs" };
            writeln!(out, "triggered {job}: {pending} pending {runs}")?;
            Ok(())
        }
        CtlCommand::Enable { job } => {
            api.post(&format!("/api/jobs/{}/enable", segment(job)))
                .await?;
            writeln!(out, "enabled {job}")?;
            Ok(())
        }
        CtlCommand::Disable { job } => {
            api.post(&format!("/api/jobs/{}/disable", segment(job)))
                .await?;
            writeln!(
                out,
                "disabled {job}: its tasks are killed and its cron stopped"
            )?;
            Ok(())
        }
        CtlCommand::Release { job, item } => {
            api.post(&format!(
                "/api/tasks/parked/{}/{item}/release",
                segment(job)
            ))
            .await?;
            writeln!(
                out,
                "released item {item} of {job}: the job's next run includes it"
            )?;
            Ok(())
        }
        CtlCommand::Queues => queues(&api, out).await,
    }
}

async fn jobs(api: &Api, out: &mut dyn Write) -> Result<(), CtlError> {
    let jobs = api.get("/api/jobs").await?;
    let mut table = Table::new(&[
        "JOB",
        "APP",
        "TYPE",
        "STATE",
        "CRON",
        "SHARDS",
        "NEXT FIRE",
        "LAST RUN",
        "PENDING",
    ]);
    for job in list(&jobs) {
        let last = &job["last_run"];
        table.row(vec![
            text(&job["name"]),
            text(&job["app"]),
            format!("{}/{}", text(&job["execution_type"]), text(&job["kind"])),
            if job["enabled"] == true {
                "enabled"
            } else {
                "disabled"
            }
            .to_owned(),
            if job["cron"].is_null() {
                "manual".to_owned()
            } else {
                text(&job["cron"])
            },
            text(&job["sharding_total_count"]),
            text(&job["next_fire"]),
            if last.is_object() {
                format!("#{} {}", text(&last["id"]), text(&last["outcome"]))
            } else {
                "-".to_owned()
            },
            text(&job["ready_runs"]),
        ]);
    }
    if table.is_empty() {
        writeln!(out, "no jobs registered")?;
    } else {
        write!(out, "{table}")?;
    }
    Ok(())
}

async fn apps(api: &Api, out: &mut dyn Write) -> Result<(), CtlError> {
    let apps = api.get("/api/apps").await?;
    let jobs = api.get("/api/jobs").await?;
    let mut table = Table::new(&["APP", "STATE", "REVISION", "SOURCE", "JOBS"]);
    for app in list(&apps) {
        let names: Vec<String> = list(&jobs)
            .iter()
            .filter(|j| j["app"] == app["name"])
            .map(|j| text(&j["name"]))
            .collect();
        table.row(vec![
            text(&app["name"]),
            if app["disabled"] == true {
                "disabled"
            } else {
                "enabled"
            }
            .to_owned(),
            text(&app["revision"]),
            text(&app["source"]),
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(",")
            },
        ]);
    }
    if table.is_empty() {
        writeln!(out, "no apps registered")?;
    } else {
        write!(out, "{table}")?;
    }
    Ok(())
}

/// How a run's items ended: `2 succeeded`, `1 failed, 1 succeeded`.
fn items_summary(run: &Value) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for item in list(&run["items"]) {
        let outcome = text(&item["outcome"]);
        match counts.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, n)) => *n += 1,
            None => counts.push((outcome, 1)),
        }
    }
    if counts.is_empty() {
        return "-".to_owned();
    }
    counts
        .iter()
        .map(|(outcome, n)| format!("{n} {outcome}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Milliseconds between two RFC 3339 times, when both are there.
fn between(from: &Value, to: &Value) -> Option<u64> {
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok();
    let millis = (parse(to)? - parse(from)?).num_milliseconds();
    u64::try_from(millis).ok()
}

async fn runs(
    api: &Api,
    job: &str,
    limit: u32,
    before: Option<u64>,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let mut path = format!("/api/jobs/{}/runs?limit={limit}", segment(job));
    if let Some(before) = before {
        path.push_str(&format!("&before={before}"));
    }
    let answer = api.get(&path).await?;
    let mut table = Table::new(&[
        "RUN", "TRIGGER", "FIRED", "ENDED", "TOOK", "OUTCOME", "SHARDS",
    ]);
    for run in list(&answer["runs"]) {
        table.row(vec![
            text(&run["id"]),
            text(&run["trigger"]),
            text(&run["fired_at"]),
            text(&run["ended_at"]),
            between(&run["fired_at"], &run["ended_at"]).map_or("-".to_owned(), duration),
            text(&run["outcome"]),
            items_summary(run),
        ]);
    }
    if table.is_empty() {
        writeln!(out, "no runs of {job} recorded")?;
    } else {
        write!(out, "{table}")?;
    }
    if let Some(next) = answer["next_before"].as_u64() {
        writeln!(
            out,
            "older runs: shardex-scheduler ctl runs {job} --before {next}"
        )?;
    }
    Ok(())
}

/// A task's states as a table: AT, STATE, SOURCE, REASON, MESSAGE; the launch first.
fn states_table(task: &Value) -> Table {
    let mut table = Table::new(&["AT", "STATE", "SOURCE", "REASON", "MESSAGE"]);
    table.row(vec![
        text(&task["launched_at"]),
        "launched".to_owned(),
        "-".to_owned(),
        "-".to_owned(),
        format!(
            "on agent {} in executor {}",
            text(&task["agent_id"]),
            text(&task["executor_id"])
        ),
    ]);
    for state in list(&task["states"]) {
        table.row(vec![
            text(&state["at"]),
            text(&state["state"]),
            text(&state["source"]),
            text(&state["reason"]),
            // One line per row: a multi-line message (a script's stderr) keeps its first line.
            text(&state["message"])
                .lines()
                .next()
                .unwrap_or("-")
                .to_owned(),
        ]);
    }
    table
}

/// Indents every line of `block` by `by` spaces.
fn indent(block: &str, by: usize) -> String {
    block
        .lines()
        .map(|line| format!("{}{line}\n", " ".repeat(by)))
        .collect()
}

async fn show_run(api: &Api, run_id: u64, out: &mut dyn Write) -> Result<(), CtlError> {
    let run = api.get(&format!("/api/runs/{run_id}")).await?;
    writeln!(
        out,
        "run {} of job {} (app {}): {}",
        text(&run["id"]),
        text(&run["job"]),
        text(&run["app"]),
        text(&run["outcome"])
    )?;
    write!(
        out,
        "{}",
        key_values(&[
            ("trigger", text(&run["trigger"])),
            ("fired", text(&run["fired_at"])),
            ("launched", text(&run["launched_at"])),
            ("ended", text(&run["ended_at"])),
        ])
    )?;
    for item in list(&run["items"]) {
        writeln!(out)?;
        writeln!(
            out,
            "item {}: {}",
            text(&item["item"]),
            text(&item["outcome"])
        )?;
        for task in list(&item["tasks"]) {
            let took = task["duration_ms"]
                .as_u64()
                .map_or(String::new(), |ms| format!(", took {}", duration(ms)));
            writeln!(
                out,
                "  {} attempt {}: {}{took}",
                text(&task["kind"]),
                text(&task["attempt"]),
                text(&task["task_id"])
            )?;
            write!(out, "{}", indent(&states_table(task).to_string(), 4))?;
        }
    }
    Ok(())
}

async fn show_task(api: &Api, task_id: &str, out: &mut dyn Write) -> Result<(), CtlError> {
    let answer = api.get(&format!("/api/tasks/{}", segment(task_id))).await?;
    let task = &answer["task"];
    let sandbox = &task["sandbox"];
    let facts: [(&str, String); 10] = [
        ("task", text(&task["task_id"])),
        (
            "run",
            format!(
                "{} (job {}, item {})",
                text(&answer["run"]),
                text(&answer["job"]),
                text(&answer["item"])
            ),
        ),
        (
            "kind",
            format!(
                "{}, attempt {}",
                text(&task["kind"]),
                text(&task["attempt"])
            ),
        ),
        ("state", text(&task["state"])),
        ("agent", text(&task["agent_id"])),
        ("executor", text(&task["executor_id"])),
        ("launched", text(&task["launched_at"])),
        (
            "ended",
            match task["duration_ms"].as_u64() {
                Some(ms) => format!("{} (took {})", text(&task["ended_at"]), duration(ms)),
                None => text(&task["ended_at"]),
            },
        ),
        (
            "sandbox",
            format!(
                "{} (agent {})",
                text(&sandbox["directory"]),
                text(&sandbox["agent_url"])
            ),
        ),
        ("work dir", text(&sandbox["work_dir"])),
    ];
    write!(out, "{}", key_values(&facts))?;
    writeln!(out)?;
    write!(out, "{}", states_table(task))?;
    writeln!(out)?;
    let mut files = Table::new(&["FILE", "PATH"]);
    for file in list(&sandbox["files"]) {
        files.row(vec![text(&file["name"]), text(&file["path"])]);
    }
    if files.is_empty() {
        writeln!(out, "no sandbox files known")?;
    } else {
        write!(out, "{files}")?;
    }
    Ok(())
}

/// Whether a task state is terminal (Mesos' terminal states).
fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "TASK_FINISHED"
            | "TASK_FAILED"
            | "TASK_KILLED"
            | "TASK_LOST"
            | "TASK_ERROR"
            | "TASK_DROPPED"
            | "TASK_GONE"
            | "TASK_GONE_BY_OPERATOR"
    )
}

async fn logs(
    api: &Api,
    task: &str,
    file: &str,
    follow: bool,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let path = format!("/api/tasks/{}/files/{}", segment(task), segment(file));
    let mut offset: u64 = 0;
    loop {
        // Whether the task had ended before this read: then the read sees all it wrote.
        let ended = if follow {
            let answer = api.get(&format!("/api/tasks/{}", segment(task))).await?;
            answer["task"]["state"].as_str().is_some_and(is_terminal)
        } else {
            true
        };
        loop {
            let chunk = api
                .get(&format!("{path}?offset={offset}&length={READ_BYTES}"))
                .await?;
            let data = chunk["data"].as_str().unwrap_or_default();
            if data.is_empty() {
                break;
            }
            out.write_all(data.as_bytes())?;
            out.flush()?;
            offset = chunk["offset"].as_u64().unwrap_or(offset) + data.len() as u64;
        }
        if ended {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// One queue: its title and count, then its table (nothing more when it is empty).
fn queue(out: &mut dyn Write, title: &str, table: &Table, count: usize) -> std::io::Result<()> {
    if count == 0 {
        writeln!(out, "{title}: none")
    } else {
        writeln!(out, "{title}: {count}")?;
        write!(out, "{table}")
    }
}

async fn queues(api: &Api, out: &mut dyn Write) -> Result<(), CtlError> {
    let running = api.get("/api/tasks/running").await?;
    let ready = api.get("/api/tasks/ready").await?;
    let failover = api.get("/api/tasks/failover").await?;
    let parked = api.get("/api/tasks/parked").await?;

    let mut table = Table::new(&[
        "JOB", "ITEM", "KIND", "STATE", "ATTEMPT", "LAUNCHED", "TASK",
    ]);
    let mut tasks: Vec<&Value> = list(&running).iter().collect();
    tasks.sort_by_key(|t| (text(&t["job"]), t["item"].as_u64()));
    for task in &tasks {
        table.row(vec![
            text(&task["job"]),
            text(&task["item"]),
            text(&task["kind"]),
            text(&task["state"]),
            text(&task["attempt"]),
            text(&task["launched_at"]),
            text(&task["task_id"]),
        ]);
    }
    queue(out, "running", &table, tasks.len())?;

    let mut table = Table::new(&["JOB", "RUNS"]);
    for entry in list(&ready) {
        table.row(vec![text(&entry["job"]), text(&entry["runs"])]);
    }
    writeln!(out)?;
    queue(out, "ready", &table, list(&ready).len())?;

    let mut table = Table::new(&["JOB", "ITEM", "ATTEMPTS", "NOT BEFORE", "CAUSE"]);
    for entry in list(&failover) {
        table.row(vec![
            text(&entry["job"]),
            text(&entry["item"]),
            text(&entry["attempts"]),
            text(&entry["not_before"]),
            text(&entry["cause"]),
        ]);
    }
    writeln!(out)?;
    queue(out, "failover", &table, list(&failover).len())?;

    let mut table = Table::new(&["JOB", "ITEM", "ATTEMPTS", "PARKED AT", "CAUSE"]);
    for entry in list(&parked) {
        table.row(vec![
            text(&entry["job"]),
            text(&entry["item"]),
            text(&entry["attempts"]),
            text(&entry["parked_at"]),
            text(&entry["cause"]),
        ]);
    }
    writeln!(out)?;
    queue(out, "parked", &table, list(&parked).len())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_blanks() {
        let mut table = Table::new(&["JOB", "STATE", "X"]);
        table.row(vec!["crunch".into(), "enabled".into(), "-".into()]);
        table.row(vec!["hb".into(), "disabled".into(), "".into()]);
        assert_eq!(
            table.to_string(),
            "JOB     STATE     X\ncrunch  enabled   -\nhb      disabled\n"
        );
    }

    #[test]
    fn the_url_comes_from_the_flag_the_config_or_the_default() {
        let config = |listen: &str| {
            Config::from_toml(&format!("listen = \"{listen}\"\n"), "t.toml").unwrap()
        };
        let url = |flag: Option<&str>, config: Option<&Config>| {
            base_url(flag, config).map(|u| u.to_string())
        };
        assert_eq!(url(None, None).unwrap(), "http://127.0.0.1:8899/");
        assert_eq!(
            url(None, Some(&config("0.0.0.0:9000"))).unwrap(),
            "http://127.0.0.1:9000/"
        );
        assert_eq!(
            url(None, Some(&config("127.0.0.1:9001"))).unwrap(),
            "http://127.0.0.1:9001/"
        );
        assert_eq!(
            url(Some("http://127.0.0.1:5/"), Some(&config("127.0.0.1:9001"))).unwrap(),
            "http://127.0.0.1:5/"
        );
        let error = url(Some("ftp://x"), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid --url 'ftp://x': give an http:// or https:// URL"
        );
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(4_049), "4.0 s");
        assert_eq!(duration(125_000), "2 min 5 s");
        assert_eq!(duration(3_780_000), "1 h 3 min");
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("crunch@-@0@-@READY"), "crunch%40-%400%40-%40READY");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
