//! `shardex-scheduler ctl` against the demo's stack (`demo --serve`), as an operator uses it:
//! every read's table, exactly (cut at the columns its header starts, so a misaligned cell
//! fails), every action's line, and every refusal's one line on stderr with exit status 1.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

use support::demo_stack::DemoStack;
use support::scheduler_rest::Rest;

/// What one `ctl` run printed, and its exit status.
#[derive(Debug)]
struct Output {
    status: i32,
    stdout: String,
    stderr: String,
}

fn ctl(args: &[&str]) -> Output {
    let output = Command::new(support::package_binary("shardex-scheduler"))
        .arg("ctl")
        .args(args)
        .env_remove("SHARDEX_URL")
        .env_remove("SHARDEX_REST_TOKEN_FILE")
        .env_remove("SHARDEX_CONFIG")
        .output()
        .expect("run shardex-scheduler ctl");
    Output {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `ctl --url <url> args…`, which must succeed; its stdout.
fn ok(url: &str, args: &[&str]) -> String {
    let mut all = vec!["--url", url];
    all.extend_from_slice(args);
    let output = ctl(&all);
    assert_eq!(output.status, 0, "ctl {args:?}: {output:?}");
    assert_eq!(output.stderr, "", "ctl {args:?}");
    output.stdout
}

/// `ctl --url <url> args…`, which must fail; its stderr (stdout must be empty).
fn fails(url: &str, args: &[&str]) -> String {
    let mut all = vec!["--url", url];
    all.extend_from_slice(args);
    let output = ctl(&all);
    assert_eq!(output.status, 1, "ctl {args:?}: {output:?}");
    assert_eq!(output.stdout, "", "ctl {args:?}");
    output.stderr
}

/// A table `ctl` printed: its header's columns and each row's cells, cut where the header's
/// columns start. Every cell must start right after two blanks (its column is aligned) and no
/// line may end in a blank.
fn table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    let chars: Vec<char> = header.chars().collect();
    let mut starts = vec![0];
    for i in 2..chars.len() {
        if chars[i] != ' ' && chars[i - 1] == ' ' && chars[i - 2] == ' ' {
            starts.push(i);
        }
    }
    let cut = |line: &str| -> Vec<String> {
        assert!(!line.ends_with(' '), "trailing blank in {line:?}");
        let chars: Vec<char> = line.chars().collect();
        starts
            .iter()
            .enumerate()
            .map(|(n, &start)| {
                let end = starts
                    .get(n + 1)
                    .copied()
                    .unwrap_or(chars.len())
                    .min(chars.len());
                if start > 0 && start < chars.len() {
                    assert!(
                        chars[start - 2..start] == [' ', ' '],
                        "column {n} of {line:?} is not aligned with {header:?}"
                    );
                }
                chars[start.min(chars.len())..end]
                    .iter()
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect()
    };
    let columns = cut(header);
    (columns, lines.map(cut).collect())
}

fn is_time(cell: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(cell).is_ok() && cell.ends_with('Z')
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

async fn running_crunch(rest: &Rest, kind: &str) -> Vec<Value> {
    rest.until(
        "/api/tasks/running",
        &format!("crunch's two {kind} shards running"),
        |v| {
            v.as_array().is_some_and(|tasks| {
                tasks
                    .iter()
                    .filter(|t| {
                        t["job"] == "crunch" && t["kind"] == kind && t["state"] == "TASK_RUNNING"
                    })
                    .count()
                    == 2
            })
        },
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .filter(|t| t["job"] == "crunch")
    .cloned()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_reads_and_acts_on_the_demo_stack() {
    let stack = DemoStack::start();
    let url = stack.rest_url.clone();
    let rest = Rest::new(url.clone());
    rest.until("/health", "the scheduler to subscribe", |h| {
        h["status"] == "ok"
    })
    .await;

    // greeting fires every 5 s: stop it, so that what follows is the same on every run.
    assert_eq!(
        ok(&url, &["disable", "greeting"]),
        "disabled greeting: its tasks are killed and its cron stopped\n"
    );

    let (header, rows) = table(&ok(&url, &["jobs"]));
    assert_eq!(
        header,
        row([
            "JOB",
            "APP",
            "TYPE",
            "STATE",
            "CRON",
            "SHARDS",
            "NEXT FIRE",
            "LAST RUN",
            "PENDING"
        ])
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        rows[0],
        row([
            "crunch",
            "batch-app",
            "transient/script",
            "enabled",
            "manual",
            "2",
            "-",
            "-",
            "0"
        ])
    );
    assert_eq!(
        rows[1][..7],
        row([
            "greeting",
            "demo-app",
            "transient/simple",
            "disabled",
            "0/5 * * * * ?",
            "3",
            "-"
        ])
    );
    assert_eq!(rows[1][8], "0");
    assert_eq!(
        rows[2][..7],
        row([
            "heartbeat",
            "demo-app",
            "daemon/simple",
            "enabled",
            "* * * * * ?",
            "2",
            "-"
        ])
    );

    let config = format!("file:{}/demo.toml", stack.work.path().display());
    let (header, rows) = table(&ok(&url, &["apps"]));
    assert_eq!(header, row(["APP", "STATE", "REVISION", "SOURCE", "JOBS"]));
    assert_eq!(
        rows,
        vec![
            row(["batch-app", "enabled", "1", &config, "crunch"]),
            row(["demo-app", "enabled", "1", &config, "greeting,heartbeat"]),
        ]
    );

    assert_eq!(
        ok(&url, &["trigger", "crunch"]),
        "triggered crunch: 1 pending run\n"
    );
    let crunch = running_crunch(&rest, "READY").await;

    // The queues: crunch's and heartbeat's shards running, nothing else anywhere.
    let queues = ok(&url, &["queues"]);
    let sections: Vec<&str> = queues.split("\n\n").collect();
    assert_eq!(sections.len(), 4, "{queues}");
    let (title, running) = sections[0].split_once('\n').unwrap();
    assert_eq!(title, "running: 4");
    let (header, rows) = table(running);
    assert_eq!(
        header,
        row([
            "JOB", "ITEM", "KIND", "STATE", "ATTEMPT", "LAUNCHED", "TASK"
        ])
    );
    for (row_cells, (job, item)) in rows.iter().zip([
        ("crunch", "0"),
        ("crunch", "1"),
        ("heartbeat", "0"),
        ("heartbeat", "1"),
    ]) {
        assert_eq!(
            row_cells[..5],
            row([job, item, "READY", "TASK_RUNNING", "0"])
        );
        assert!(is_time(&row_cells[5]), "{row_cells:?}");
        assert!(
            row_cells[6].starts_with(&format!("{job}@-@{item}@-@READY@-@")),
            "{row_cells:?}"
        );
    }
    assert_eq!(
        sections[1..],
        ["ready: none", "failover: none", "parked: none\n"]
    );

    // Kill crunch's executor; both shards fail over and finish.
    stack.kill_executor("batch-app");
    let runs = rest
        .until("/api/jobs/crunch/runs", "crunch's run to succeed", |v| {
            v["runs"][0]["outcome"] == "succeeded"
        })
        .await;
    let run_id = runs["runs"][0]["id"]
        .as_u64()
        .expect("a run id")
        .to_string();

    let (header, rows) = table(&ok(&url, &["runs", "crunch"]));
    assert_eq!(
        header,
        row([
            "RUN", "TRIGGER", "FIRED", "ENDED", "TOOK", "OUTCOME", "SHARDS"
        ])
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][..2], row([&run_id, "rest"]));
    assert!(is_time(&rows[0][2]) && is_time(&rows[0][3]), "{rows:?}");
    assert!(rows[0][4].ends_with(" s"), "{rows:?}");
    assert_eq!(rows[0][5..], row(["succeeded", "2 succeeded"]));

    // The run: per item, the READY task failed with its executor, then the FAILOVER task.
    let shown = ok(&url, &["run", &run_id]);
    let blocks: Vec<&str> = shown.split("\n\n").collect();
    assert_eq!(blocks.len(), 3, "{shown}");
    let head: Vec<&str> = blocks[0].lines().collect();
    assert_eq!(
        head[0],
        format!("run {run_id} of job crunch (app batch-app): succeeded")
    );
    assert_eq!(head[1], "trigger   rest");
    for (line, key) in head[2..]
        .iter()
        .zip(["fired     ", "launched  ", "ended     "])
    {
        let value = line.strip_prefix(key).unwrap_or_else(|| panic!("{line:?}"));
        assert!(is_time(value), "{line:?}");
    }
    let mut failover_task = String::new();
    for (item, block) in blocks[1..].iter().enumerate() {
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines[0], format!("item {item}: succeeded"), "{block}");
        let tasks: Vec<usize> = (1..lines.len())
            .filter(|i| lines[*i].starts_with("  ") && !lines[*i].starts_with("    "))
            .collect();
        assert_eq!(tasks.len(), 2, "{block}");
        for (n, (kind, attempt)) in [("READY", "0"), ("FAILOVER", "1")].iter().enumerate() {
            let title = lines[tasks[n]];
            let prefix = format!("  {kind} attempt {attempt}: crunch@-@{item}@-@{kind}@-@");
            assert!(title.starts_with(&prefix), "{title:?}");
            let end = tasks.get(n + 1).copied().unwrap_or(lines.len());
            let states: String = lines[tasks[n] + 1..end]
                .iter()
                .map(|l| {
                    format!(
                        "{}\n",
                        l.strip_prefix("    ").unwrap_or_else(|| panic!("{l:?}"))
                    )
                })
                .collect();
            let (header, rows) = table(&states);
            assert_eq!(header, row(["AT", "STATE", "SOURCE", "REASON", "MESSAGE"]));
            let sequence: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
            assert_eq!(sequence.first(), Some(&"launched"), "{states}");
            assert!(sequence.contains(&"TASK_RUNNING"), "{states}");
            assert!(rows.iter().all(|r| is_time(&r[0])), "{states}");
            let last = rows.last().unwrap();
            if *kind == "READY" {
                assert_eq!(
                    last[1..4],
                    row(["TASK_FAILED", "SOURCE_AGENT", "REASON_EXECUTOR_TERMINATED"])
                );
            } else {
                assert_eq!(last[1], "TASK_FINISHED", "{states}");
                if item == 0 {
                    let id = title.split(": ").nth(1).unwrap();
                    failover_task = id.split(',').next().unwrap().to_owned();
                }
            }
        }
    }
    assert!(
        crunch
            .iter()
            .all(|t| t["task_id"] != failover_task.as_str()),
        "a new task ran the failover"
    );

    // The failed-over task and its stdout, read through the scheduler.
    let shown = ok(&url, &["task", &failover_task]);
    let (facts, files) = shown.split_once("\n\n").unwrap();
    let facts: Vec<&str> = facts.lines().collect();
    assert_eq!(facts[0], format!("task      {failover_task}"));
    assert_eq!(facts[1], format!("run       {run_id} (job crunch, item 0)"));
    assert_eq!(facts[2], "kind      FAILOVER, attempt 1");
    assert_eq!(facts[3], "state     TASK_FINISHED");
    let files = files.split("\n\n").last().unwrap();
    let (header, rows) = table(files);
    assert_eq!(header, row(["FILE", "PATH"]));
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert!(
        names.contains(&"stdout") && names.contains(&"stderr"),
        "{rows:?}"
    );
    assert_eq!(
        ok(&url, &["logs", &failover_task]),
        format!(
            "crunch item 0 starting as {failover_task}\ncrunch item 0 done by {failover_task}\n"
        )
    );

    // --follow prints a running task's output as it comes, and returns once the task ended.
    assert_eq!(
        ok(&url, &["trigger", "crunch"]),
        "triggered crunch: 1 pending run\n"
    );
    let tasks = running_crunch(&rest, "READY").await;
    let task = tasks
        .iter()
        .find(|t| t["item"] == 1 && t["state"] == "TASK_RUNNING")
        .and_then(|t| t["task_id"].as_str())
        .unwrap()
        .to_owned();
    let followed = ok(&url, &["logs", &task, "--follow", "--file", "stdout"]);
    assert_eq!(
        followed,
        format!("crunch item 1 starting as {task}\ncrunch item 1 done by {task}\n")
    );

    // Paging: the newest run and the command for the next page, then that page.
    let page = ok(&url, &["runs", "crunch", "--limit", "1"]);
    let (listing, next) = page.trim_end().rsplit_once('\n').unwrap();
    let (_, rows) = table(listing);
    assert_eq!(rows.len(), 1, "{page}");
    let newest = rows[0][0].clone();
    assert_ne!(newest, run_id);
    assert_eq!(
        next,
        format!("older runs: shardex-scheduler ctl runs crunch --before {newest}")
    );
    let page = ok(&url, &["runs", "crunch", "--before", &newest]);
    let (_, rows) = table(&page);
    assert_eq!(
        rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        [run_id.as_str()],
        "{page}"
    );

    // Refusals: one line on stderr naming what is wrong, exit status 1.
    assert_eq!(
        ok(&url, &["disable", "crunch"]),
        "disabled crunch: its tasks are killed and its cron stopped\n"
    );
    assert_eq!(
        fails(&url, &["trigger", "crunch"]),
        format!(
            "shardex-scheduler ctl: POST {url}/api/jobs/crunch/trigger answered 409: job \
             'crunch' is disabled (or its app is); enable it first\n"
        )
    );
    assert_eq!(
        fails(&url, &["release", "crunch", "0"]),
        format!(
            "shardex-scheduler ctl: POST {url}/api/tasks/parked/crunch/0/release answered 404: \
             item 0 of job 'crunch' is not parked\n"
        )
    );
    assert_eq!(
        fails(&url, &["logs", &task, "--file", "nope"]),
        format!(
            "shardex-scheduler ctl: GET {url}/api/tasks/{}/files/nope?offset=0&length=65536 \
             answered 404: task '{task}' has no file 'nope': it has {}\n",
            task.replace('@', "%40"),
            names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
    assert_eq!(ok(&url, &["enable", "greeting"]), "enabled greeting\n");
    let jobs = rest.get("/api/jobs").await;
    let enabled: Vec<(String, bool)> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["name"].as_str().unwrap().to_owned(), j["enabled"] == true))
        .collect();
    assert_eq!(
        enabled,
        [
            ("crunch".into(), false),
            ("greeting".into(), true),
            ("heartbeat".into(), true)
        ]
    );
    drop(stack);
}

#[test]
fn ctl_names_the_url_it_cannot_reach_and_what_to_do() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(
        fails(&url, &["jobs"]),
        format!(
            "shardex-scheduler ctl: cannot reach the scheduler at {url}: Connection refused (os \
             error 111). Start it (`shardex-scheduler --local …` or with --master) or pass --url \
             with its REST address\n"
        )
    );
    let output = ctl(&["--url", "ftp://127.0.0.1", "jobs"]);
    assert_eq!(output.status, 1);
    assert_eq!(
        output.stderr,
        "shardex-scheduler ctl: invalid --url 'ftp://127.0.0.1': give an http:// or https:// URL\n"
    );
}

/// A scheduler with `rest.token_file` and `protect_reads`: ctl without the token is told to
/// give it, with a wrong one that it is wrong; with the scheduler's config it needs no flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_sends_the_rest_token_from_its_flag_or_the_schedulers_config() {
    let dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    };
    let token = secret("rest.token", "ctl-test-token\n");
    let wrong = secret("wrong.token", "not-the-token\n");
    let config = dir.path().join("scheduler.toml");
    std::fs::write(
        &config,
        format!("[rest]\ntoken_file = {token:?}\nprotect_reads = true\n"),
    )
    .unwrap();
    let store = dir.path().join("store.redb");
    let scheduler = support::spawn_scheduler([
        "--local".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
    ]);
    let url = scheduler.rest_url.clone();

    assert_eq!(
        fails(&url, &["jobs"]),
        format!(
            "shardex-scheduler ctl: GET {url}/api/jobs answered 401: this endpoint needs the \
             REST token: send `Authorization: Bearer <token>` (the token is in the scheduler's \
             rest.token_file) (give the scheduler's REST token with --rest-token-file)\n"
        )
    );
    assert_eq!(
        fails(&url, &["--rest-token-file", &wrong, "trigger", "x"]),
        format!(
            "shardex-scheduler ctl: POST {url}/api/jobs/x/trigger answered 403: the bearer \
             token is not the scheduler's REST token (the token given is not the scheduler's \
             REST token)\n"
        )
    );
    assert_eq!(
        ok(&url, &["--rest-token-file", &token, "jobs"]),
        "no jobs registered\n"
    );
    assert_eq!(
        fails(&url, &["--rest-token-file", &token, "trigger", "x"]),
        format!(
            "shardex-scheduler ctl: POST {url}/api/jobs/x/trigger answered 404: job 'x' is not registered\n"
        )
    );

    // The scheduler's own config gives both the address and the token.
    let listen = url.strip_prefix("http://").unwrap();
    let ctl_config = dir.path().join("ctl.toml");
    std::fs::write(
        &ctl_config,
        format!("listen = {listen:?}\n[rest]\ntoken_file = {token:?}\nprotect_reads = true\n"),
    )
    .unwrap();
    let output = Command::new(support::package_binary("shardex-scheduler"))
        .arg("--config")
        .arg(&ctl_config)
        .args(["ctl", "queues"])
        .env_remove("SHARDEX_URL")
        .env_remove("SHARDEX_REST_TOKEN_FILE")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "running: none\n\nready: none\n\nfailover: none\n\nparked: none\n"
    );
    drop(scheduler);
}
