//! The web console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver), on the demo's stack (`shardex-scheduler demo --serve`). A user opens the
//! console, sees the demo's three jobs, triggers `crunch` (confirming the dialog), its executor
//! is killed with `kill -9`, and the run's timeline shows each shard's two tasks, the
//! FAILOVER one second and the first failed with the agent's reason; the failed-over shard's
//! stdout shows what it printed; a job disabled with the keyboard shows as disabled.
//! Screenshots go to `target/console-screenshots/`, their paths printed.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`); without them the browser test prints one `SHARDEX-SKIP:` line.
//! The console's HTTP contract (content types, CSP, the JSON index kept for non-browsers, the
//! page served without the token) is checked without a browser.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use support::demo_stack::DemoStack;
use support::scheduler_rest::Rest;
use support::{EVENTUALLY, SOON, eventually, holds};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a loopback port it chose; killed when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Chromedriver {
    fn start() -> Chromedriver {
        let mut child = Command::new(CHROMEDRIVER)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // "ChromeDriver was started successfully on port 42507."
                if let Some(port) = line
                    .strip_prefix("ChromeDriver was started successfully on port ")
                    .map(|rest| rest.trim_end_matches('.').to_owned())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(SOON)
            .expect("chromedriver prints the port it listens on");
        Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless Chromium session with its own profile in `profile`.
    async fn session(&self, profile: &Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Tests run as root, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session from chromedriver")
    }
}

/// Where screenshots go: `target/console-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let dir = support::target_dir()
        .parent()
        .expect("target/<profile> has a parent")
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("create target/console-screenshots");
    dir
}

async fn screenshot(browser: &Client, name: &str) -> PathBuf {
    let png = browser.screenshot().await.expect("a screenshot");
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    // Straight to the stderr handle: the harness captures `eprintln!` of passing tests.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("screenshot: {}\n", path.display()).as_bytes(),
    );
    path
}

/// Waits until `css` matches an element, and returns it.
async fn element(browser: &Client, what: &str, css: &str) -> fantoccini::elements::Element {
    eventually(&format!("{what} ({css})"), EVENTUALLY, || async {
        browser.find(Locator::Css(css)).await.ok()
    })
    .await
}

/// Waits until the text of `css` satisfies `pred`; that text.
async fn text_when(browser: &Client, what: &str, css: &str, pred: impl Fn(&str) -> bool) -> String {
    eventually(&format!("{what} ({css})"), EVENTUALLY, || async {
        let text = browser
            .find(Locator::Css(css))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        pred(&text).then_some(text)
    })
    .await
}

/// The value of attribute `attr` of every element `css` matches, in document order.
async fn attrs(browser: &Client, css: &str, attr: &str) -> Vec<String> {
    let mut values = Vec::new();
    for element in browser
        .find_all(Locator::Css(css))
        .await
        .unwrap_or_default()
    {
        if let Ok(Some(value)) = element.attr(attr).await {
            values.push(value);
        }
    }
    values
}

/// What the page shows for one task of a shard's timeline: its kind and its states, in order.
async fn timeline(browser: &Client, item: u32) -> Vec<(String, Vec<String>)> {
    let mut tasks = Vec::new();
    let css = format!("section.shard[data-item=\"{item}\"] li.task");
    for task in browser
        .find_all(Locator::Css(&css))
        .await
        .unwrap_or_default()
    {
        let kind = task
            .attr("data-kind")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut states = Vec::new();
        for event in task
            .find_all(Locator::Css("li.event"))
            .await
            .unwrap_or_default()
        {
            states.push(
                event
                    .attr("data-state")
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            );
        }
        tasks.push((kind, states));
    }
    tasks
}

/// Clicks `css` once it is there. The page redraws what changed every 2 s: an element found
/// just before a redraw is gone when clicked ("stale"), and is found and clicked again.
async fn click(browser: &Client, what: &str, css: &str) {
    eventually(&format!("to click {what} ({css})"), EVENTUALLY, || async {
        browser
            .find(Locator::Css(css))
            .await
            .ok()?
            .click()
            .await
            .ok()
    })
    .await
}

/// Presses Enter on `css` (the keyboard's way to press a button), as [`click`].
async fn press_enter(browser: &Client, what: &str, css: &str) {
    eventually(
        &format!("to press Enter on {what} ({css})"),
        EVENTUALLY,
        || async {
            browser
                .find(Locator::Css(css))
                .await
                .ok()?
                .send_keys("\u{E007}")
                .await
                .ok()
        },
    )
    .await
}

/// Attribute `attr` of `css`, once it is there.
async fn attr_of(browser: &Client, what: &str, css: &str, attr: &str) -> String {
    eventually(&format!("{what} ({css}, {attr})"), EVENTUALLY, || async {
        browser
            .find(Locator::Css(css))
            .await
            .ok()?
            .attr(attr)
            .await
            .ok()?
    })
    .await
}

/// Confirms the open confirmation dialog, checking its title.
async fn confirm(browser: &Client, title: &str) {
    element(
        browser,
        "the open confirmation dialog",
        "#confirm-dialog[open]",
    )
    .await;
    let shown = browser
        .find(Locator::Css("#confirm-title"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(shown, title);
    click(browser, "the dialog's confirm button", "#confirm-ok").await;
}

/// Whether Chromium or its driver is missing (then `test` has printed its skip line).
fn browser_missing(test: &str) -> bool {
    for needed in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(needed).is_file() {
            support::skip(
                test,
                &format!("{needed} is missing: apt-get install chromium chromium-driver"),
            );
            return true;
        }
    }
    false
}

/// A file holding `secret`, readable by its owner only (as the scheduler requires).
fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, secret).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// `shardex-scheduler --local` whose REST API needs `token` for reads too.
fn scheduler_with_token(dir: &Path, token: &str) -> support::SchedulerProcess {
    let token_file = secret_file(dir, "rest.token", token);
    let config = dir.join("scheduler.toml");
    std::fs::write(
        &config,
        format!(
            "[rest]\ntoken_file = {:?}\nprotect_reads = true\n",
            token_file.display().to_string()
        ),
    )
    .unwrap();
    let store = dir.join("store.redb");
    support::spawn_scheduler([
        "--local".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_triggers_crunch_watches_its_shards_fail_over_reads_their_output_and_disables_a_job()
{
    if browser_missing(
        "a_user_triggers_crunch_watches_its_shards_fail_over_reads_their_output_and_disables_a_job",
    ) {
        return;
    }
    let stack = DemoStack::start();
    let rest = Rest::new(stack.rest_url.clone());
    rest.until("/health", "the scheduler to subscribe", |h| {
        h["status"] == "ok"
    })
    .await;
    let driver = Chromedriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session(profile.path()).await;

    // The overview lists the demo's three jobs, and the cluster connection.
    browser.goto(&format!("{}/", stack.rest_url)).await.unwrap();
    eventually("the three demo jobs", EVENTUALLY, || async {
        let jobs = attrs(&browser, "#jobs-table tbody tr", "data-job").await;
        holds(jobs == ["crunch", "greeting", "heartbeat"])
    })
    .await;
    text_when(&browser, "the connection state", "#connection", |t| {
        t.starts_with("● Connected to Mesos as framework ")
    })
    .await;
    // Daemon shards show in the running queue, live.
    eventually(
        "heartbeat's two shards in the running queue",
        EVENTUALLY,
        || async {
            let rows = attrs(&browser, "#running-table tbody tr", "data-task").await;
            holds(
                rows.iter()
                    .filter(|t| t.starts_with("heartbeat@-@"))
                    .count()
                    == 2,
            )
        },
    )
    .await;
    screenshot(&browser, "overview.png").await;

    // crunch's page; trigger it, confirming the dialog.
    click(&browser, "crunch's link", "#job-link-crunch").await;
    text_when(&browser, "crunch's page", "#page-title", |t| {
        t == "Job crunch"
    })
    .await;
    click(&browser, "the trigger button", "#action-trigger").await;
    confirm(&browser, "Trigger crunch").await;
    text_when(&browser, "the trigger's announcement", "#status", |t| {
        t == "Triggered crunch: 1 pending run(s)."
    })
    .await;

    // Both shards run in one executor: kill it, as `kill -9` on its process group.
    rest.until("/api/tasks/running", "crunch's two shards running", |v| {
        v.as_array().is_some_and(|tasks| {
            tasks
                .iter()
                .filter(|t| t["job"] == "crunch" && t["state"] == "TASK_RUNNING")
                .count()
                == 2
        })
    })
    .await;
    let pid = stack.kill_executor("batch-app");
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("killed crunch's executor: kill -9 -{pid}\n").as_bytes(),
    );

    // The run history lists the run; its timeline shows each shard failing over.
    let run = attr_of(
        &browser,
        "the run in crunch's history",
        "#runs-table tbody tr[data-run]",
        "data-run",
    )
    .await;
    click(&browser, "the run's link", &format!("#run-link-{run}")).await;
    text_when(&browser, "the run's section", "#run-heading", |t| {
        t == format!("Run #{run}")
    })
    .await;
    for item in [0, 1] {
        let tasks = eventually(
            &format!("shard {item}'s failover to finish in the timeline"),
            Duration::from_secs(60),
            || async {
                let tasks = timeline(&browser, item).await;
                let done =
                    tasks.len() == 2 && tasks[1].1.last().is_some_and(|s| s == "TASK_FINISHED");
                done.then_some(tasks)
            },
        )
        .await;
        assert_eq!(tasks[0].0, "READY", "shard {item}: {tasks:?}");
        assert_eq!(tasks[1].0, "FAILOVER", "shard {item}: {tasks:?}");
        assert_eq!(tasks[0].1.first().map(String::as_str), Some("LAUNCHED"));
        assert_eq!(
            tasks[0].1.last().map(String::as_str),
            Some("TASK_FAILED"),
            "shard {item}'s first task ends with its executor: {tasks:?}"
        );
        assert!(tasks[0].1.contains(&"TASK_RUNNING".to_owned()), "{tasks:?}");
        assert!(tasks[1].1.contains(&"TASK_RUNNING".to_owned()), "{tasks:?}");
        // The agent's reason for the failure is on the page.
        let failed = text_when(
            &browser,
            "the failed state's line",
            &format!(
                "section.shard[data-item=\"{item}\"] li.task[data-kind=\"READY\"] \
                 li.event[data-state=\"TASK_FAILED\"]"
            ),
            |t| !t.is_empty(),
        )
        .await;
        // The time, the state, then the agent's source, reason and message.
        let (_, said) = failed.split_once(" ✗ TASK_FAILED — ").unwrap_or_default();
        assert_eq!(
            said, "SOURCE_AGENT · REASON_EXECUTOR_TERMINATED · Executor terminated",
            "shard {item}: {failed}"
        );
        text_when(
            &browser,
            "the shard's outcome",
            &format!("#shard-{item}-heading"),
            |t| t.ends_with("succeeded"),
        )
        .await;
    }
    browser
        .execute(
            "document.getElementById('run-heading').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&browser, "history-page.png").await;

    // The failed-over shard 0's stdout, through the scheduler.
    let failover_task = attr_of(
        &browser,
        "shard 0's failover task",
        "section.shard[data-item=\"0\"] li.task[data-kind=\"FAILOVER\"]",
        "data-task-id",
    )
    .await;
    click(
        &browser,
        "the failover task's stdout",
        "section.shard[data-item=\"0\"] li.task[data-kind=\"FAILOVER\"] a[data-file=\"stdout\"]",
    )
    .await;
    let log = text_when(&browser, "shard 0's stdout", "#log-text", |t| {
        t.contains("done by")
    })
    .await;
    assert_eq!(
        log,
        format!("crunch item 0 starting as {failover_task}\ncrunch item 0 done by {failover_task}")
    );
    text_when(&browser, "the log page's title", "#page-title", |t| {
        t == "stdout of crunch shard 0"
    })
    .await;
    screenshot(&browser, "log-page.png").await;

    // Back to crunch's page through the breadcrumb: its history and the selected run.
    click(
        &browser,
        "the breadcrumb to crunch",
        ".crumbs a[href=\"#/jobs/crunch\"]",
    )
    .await;
    text_when(&browser, "crunch's page", "#page-title", |t| {
        t == "Job crunch"
    })
    .await;
    element(
        &browser,
        "the run in the history",
        &format!("#run-link-{run}"),
    )
    .await;
    screenshot(&browser, "job-page.png").await;

    // Disable greeting with the keyboard: Enter on the button, Enter on the dialog's button.
    browser
        .goto(&format!("{}/#/jobs/greeting", stack.rest_url))
        .await
        .unwrap();
    text_when(&browser, "greeting's page", "#page-title", |t| {
        t == "Job greeting"
    })
    .await;
    press_enter(&browser, "the disable button", "#action-disable").await;
    element(
        &browser,
        "the open confirmation dialog",
        "#confirm-dialog[open]",
    )
    .await;
    press_enter(&browser, "the dialog's confirm button", "#confirm-ok").await;
    text_when(&browser, "greeting's state", "#job-state", |t| {
        t == "○ disabled"
    })
    .await;
    text_when(&browser, "the announcement", "#status", |t| {
        t == "Disabled greeting."
    })
    .await;
    assert_eq!(
        rest.get("/api/jobs/greeting").await["enabled"],
        json!(false)
    );
    click(
        &browser,
        "the breadcrumb to the overview",
        ".crumbs a[href=\"#/\"]",
    )
    .await;
    text_when(
        &browser,
        "greeting disabled in the overview",
        "#jobs-table tr[data-job=\"greeting\"] td[data-label=\"State\"]",
        |t| t == "○ disabled",
    )
    .await;

    // A job whose plugin is missing fails the same way on every launch: its shard is parked.
    // Release it from the job's page.
    let (status, answer) = rest
        .call(
            reqwest::Method::POST,
            "/api/jobs",
            Some(&json!({
                "name": "broken", "app": "demo-app", "sharding_total_count": 1,
                "kind": "simple", "plugin": "plugins/libmissing.so",
            })),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(rest.post("/api/jobs/broken/trigger").await, 202);
    rest.until("/api/tasks/parked", "broken's shard parked", |v| {
        v.as_array()
            .is_some_and(|p| p.iter().any(|p| p["job"] == "broken" && p["item"] == 0))
    })
    .await;
    browser
        .goto(&format!("{}/#/jobs/broken", stack.rest_url))
        .await
        .unwrap();
    click(&browser, "the release button", "#release-broken-0").await;
    confirm(&browser, "Release shard 0 of broken").await;
    text_when(&browser, "the release's announcement", "#status", |t| {
        t == "Released shard 0 of broken: the job's next run includes it."
    })
    .await;
    text_when(&browser, "no parked shards", "#parked-empty", |t| {
        t == "No parked shards."
    })
    .await;
    assert_eq!(rest.get("/api/tasks/parked").await, json!([]));

    // Enable greeting again with the mouse.
    browser
        .goto(&format!("{}/#/jobs/greeting", stack.rest_url))
        .await
        .unwrap();
    click(&browser, "the enable button", "#action-enable").await;
    confirm(&browser, "Enable greeting").await;
    text_when(&browser, "greeting's state", "#job-state", |t| {
        t == "● enabled"
    })
    .await;
    assert_eq!(rest.get("/api/jobs/greeting").await["enabled"], json!(true));

    // At 360 px nothing needs scrolling sideways.
    browser.set_window_size(360, 900).await.unwrap();
    let fits = eventually("the page to reflow at 360 px", SOON, || async {
        let widths = browser
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .ok()?;
        let widths: Vec<u64> = serde_json::from_value(widths).ok()?;
        (widths[1] <= 360).then_some(widths)
    })
    .await;
    assert!(
        fits[0] <= fits[1],
        "the page is wider than the window: {fits:?}"
    );
    screenshot(&browser, "overview-360px.png").await;

    browser.close().await.unwrap();
    drop(stack);
}

/// With `rest.protect_reads`, the console asks for the token when the API refuses it, again
/// when the token given is wrong, and shows the scheduler once it has the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_asks_for_the_rest_token_and_sends_it() {
    if browser_missing("the_console_asks_for_the_rest_token_and_sends_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scheduler = scheduler_with_token(dir.path(), "console-browser-token\n");
    let driver = Chromedriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session(profile.path()).await;
    browser
        .goto(&format!("{}/", scheduler.rest_url))
        .await
        .unwrap();

    element(&browser, "the token dialog", "#token-dialog[open]").await;
    let why = text_when(&browser, "why the token is asked for", "#token-why", |t| {
        t.starts_with("The scheduler answered")
    })
    .await;
    assert!(why.contains("this endpoint needs the REST token"), "{why}");
    let input = element(&browser, "the token field", "#token-input").await;
    input.send_keys("not-the-token").await.unwrap();
    click(&browser, "Use token", "#token-save").await;

    // A wrong token: asked again, saying so.
    text_when(
        &browser,
        "why the token is asked again",
        "#token-why",
        |t| t.contains("the bearer token is not the scheduler's REST token"),
    )
    .await;
    element(&browser, "the token dialog, again", "#token-dialog[open]").await;
    let input = element(&browser, "the token field", "#token-input").await;
    input.clear().await.unwrap();
    input.send_keys("console-browser-token").await.unwrap();
    click(&browser, "Use token", "#token-save").await;

    text_when(&browser, "the overview", "#jobs-empty", |t| {
        t == "No jobs registered."
    })
    .await;
    text_when(&browser, "the connection state", "#connection", |t| {
        t.starts_with("● Connected to Mesos as framework ")
    })
    .await;
    text_when(&browser, "the announcement", "#status", |t| {
        t == "REST token set for this tab."
    })
    .await;
    browser.close().await.unwrap();
    drop(scheduler);
}

/// `GET /` to `curl` and to a browser; the assets' types and policy; a scheduler with a token
/// and `protect_reads` still serves the page, and the API refuses the page's requests until
/// it sends the token.
#[tokio::test]
async fn the_console_is_served_to_browsers_and_the_json_index_to_everyone_else() {
    let dir = tempfile::tempdir().unwrap();
    let scheduler = scheduler_with_token(dir.path(), "console-test-token\n");
    let base = scheduler.rest_url.clone();
    let http = support::http();
    let get = |path: &str, accept: &str| {
        http.get(format!("{base}{path}"))
            .header("accept", accept)
            .send()
    };

    let page = get("/", "text/html,application/xhtml+xml,*/*;q=0.8")
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(
        header(&page, "content-security-policy"),
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "vary"), "Accept");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#));

    for (asset, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let response = get(&format!("/console/{asset}"), "*/*").await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(header(&response, "content-type"), content_type, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    // Only the console's own files are served without the token.
    assert_eq!(get("/console/nope.js", "*/*").await.unwrap().status(), 401);
    let missing = http
        .get(format!("{base}/console/nope.js"))
        .bearer_auth("console-test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        serde_json::from_slice::<Value>(&missing.bytes().await.unwrap()).unwrap(),
        json!({"error": "no console file 'nope.js': the console serves app.js, style.css and icon.svg"})
    );

    // Everything else still needs the token: the JSON index, the API.
    for (path, accept) in [
        ("/", "application/json"),
        ("/", "*/*"),
        ("/api/jobs", "text/html"),
    ] {
        let response = get(path, accept).await.unwrap();
        assert_eq!(response.status(), 401, "{path} {accept}");
    }
    let index = http
        .get(format!("{base}/"))
        .bearer_auth("console-test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), 200);
    let index: Value = serde_json::from_slice(&index.bytes().await.unwrap()).unwrap();
    assert_eq!(index["name"], json!("shardex-scheduler"));
    assert!(
        index["endpoints"]
            .as_array()
            .unwrap()
            .contains(&json!("GET /console/{file}")),
        "{index}"
    );
    drop(scheduler);
}
