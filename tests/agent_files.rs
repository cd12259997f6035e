//! The agent's `/files/*` endpoints (`src/local/agent/files.rs`): what a web console or a
//! scheduler linking to task output sees.
//!
//! The differential test launches the same executor on a real Mesos 1.12 agent
//! (`SHARDEX_MESOS_HOME`) and on the embedded one, writes the same files into both sandboxes
//! and sends both agents the same requests: `read` at every offset and length Mesos
//! distinguishes (absent, `-1`, past the end, negative, larger than the file, the 16-page cap,
//! unparsable), `browse`, `download` with its MIME types, `debug`, paths leaving the sandbox
//! (`..`, a symlink out), paths nobody attached, missing parameters, `jsonp`, route variants and
//! a malformed query. Answers are compared as status line, headers in order (`Date`'s value
//! excepted) and body bytes, after replacing the ids, work dirs and modification times that
//! differ by nature. The embedded-only tests pin exact answers, when sandboxes stay attached,
//! and what the embedded agent does where a real one would hang.
//!
//! Without `SHARDEX_MESOS_HOME` the differential test prints one `SHARDEX-SKIP:` line and
//! passes (fails under `SHARDEX_REQUIRE_REAL=1`).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use shardex::mesos::Encoding;
use shardex::mesos::proto::v1::TaskState;
use support::real_mesos::RealMesos;
use support::*;

const EXECUTOR: &str = "files-probe";

/// A response as compared: status line, headers in order, body.
type Answer = (String, Vec<(String, String)>, Vec<u8>);

async fn send(agent: SocketAddr, method: &str, target: &str) -> Answer {
    let request =
        format!("{method} {target} HTTP/1.1\r\nHost: {agent}\r\nContent-Length: 0\r\n\r\n");
    match try_raw_request(agent, request.as_bytes()).await {
        Some(answer) => answer,
        None => ("<no response>".to_owned(), Vec::new(), Vec::new()),
    }
}

/// An agent with the probe executor running and the fixture files in its sandbox.
struct Sandbox {
    agent: SocketAddr,
    framework: TestFramework,
    agent_id: String,
    work_dir: PathBuf,
    /// The sandbox's `/files/debug` value (canonical) and its own attached name.
    directory: PathBuf,
    run_name: String,
    latest_name: String,
    container_id: String,
}

impl Sandbox {
    /// `/frameworks/<fw>/executors/files-probe/runs/latest`.
    fn virtual_root(&self) -> String {
        format!(
            "/frameworks/{}/executors/{EXECUTOR}/runs/latest",
            self.framework.framework_id
        )
    }

    fn target(&self, template: &str) -> String {
        template
            .replace("{V}", &self.virtual_root())
            .replace("{S}", &self.run_name)
            .replace("{L}", &self.latest_name)
    }

    /// The replacements that make two agents' answers comparable (longest first).
    fn normalisations(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut pairs: Vec<(String, &str)> = Vec::new();
        for dir in [
            self.work_dir.clone(),
            std::fs::canonicalize(&self.work_dir).unwrap_or_default(),
        ] {
            pairs.push((dir.display().to_string(), "<work_dir>"));
        }
        pairs.push((self.framework.framework_id.clone(), "<framework>"));
        pairs.push((self.agent_id.clone(), "<agent>"));
        pairs.push((self.container_id.clone(), "<container>"));
        pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        pairs
            .into_iter()
            .filter(|(from, _)| !from.is_empty())
            .map(|(from, to)| (from.into_bytes(), to.as_bytes().to_vec()))
            .collect()
    }

    async fn probe(&self, method: &str, template: &str) -> Answer {
        let (status, headers, body) = send(self.agent, method, &self.target(template)).await;
        let raw_length = body.len().to_string();
        let mut body = body;
        for (from, to) in self.normalisations() {
            body = replace(&body, &from, &to);
        }
        let body = normalise_mtimes(&body);
        let headers = headers
            .into_iter()
            .map(|(name, value)| {
                let value = if name.eq_ignore_ascii_case("Date") {
                    "<date>".to_owned()
                } else if name.eq_ignore_ascii_case("Content-Length") && value == raw_length {
                    "<length of the body>".to_owned()
                } else {
                    value
                };
                (name, value)
            })
            .collect();
        (status, headers, body)
    }
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// `"mtime":1796502637.0` → `"mtime":<mtime>`.
fn normalise_mtimes(body: &[u8]) -> Vec<u8> {
    const KEY: &[u8] = b"\"mtime\":";
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(KEY) {
            out.extend_from_slice(KEY);
            out.extend_from_slice(b"<mtime>");
            i += KEY.len();
            while i < body.len() && (body[i].is_ascii_digit() || body[i] == b'.' || body[i] == b'-')
            {
                i += 1;
            }
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

/// `/files/debug` as JSON.
async fn debug_map(agent: SocketAddr) -> serde_json::Map<String, serde_json::Value> {
    let (status, _, body) = send(agent, "GET", "/files/debug").await;
    assert_eq!(
        status,
        "HTTP/1.1 200 OK",
        "{}",
        String::from_utf8_lossy(&body)
    );
    match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Object(map)) => map,
        other => panic!("/files/debug is not an object: {other:?}"),
    }
}

/// Subscribes, launches the probe executor with a task that keeps running, writes the fixture
/// into its sandbox.
async fn start_sandbox(
    master_url: &str,
    agent: SocketAddr,
    agent_id: &str,
    work_dir: &Path,
) -> Sandbox {
    let mut framework =
        TestFramework::subscribe(master_url, framework_info("files"), Encoding::Protobuf)
            .await
            .expect("the framework subscribes");
    let offer = framework.next_offer().await;
    let executor = test_executor_info(EXECUTOR);
    framework
        .launch(
            &offer,
            vec![task_info(
                "files-task",
                &offer.agent_id.value,
                &executor,
                "running",
            )],
        )
        .await
        .expect("LAUNCH");
    framework
        .await_state("files-task", TaskState::TaskRunning)
        .await;
    let virtual_root = format!(
        "/frameworks/{}/executors/{EXECUTOR}/runs/latest",
        framework.framework_id
    );
    let debug = debug_map(agent).await;
    let directory = PathBuf::from(
        debug[&virtual_root]
            .as_str()
            .expect("the virtual path maps to a directory"),
    );
    let container_id = directory
        .file_name()
        .expect("a run directory")
        .to_string_lossy()
        .into_owned();
    let runs = work_dir
        .join("slaves")
        .join(agent_id)
        .join("frameworks")
        .join(&framework.framework_id)
        .join("executors")
        .join(EXECUTOR)
        .join("runs");
    write_fixture(&directory);
    Sandbox {
        agent,
        framework,
        agent_id: agent_id.to_owned(),
        work_dir: work_dir.to_owned(),
        directory,
        run_name: runs.join(&container_id).display().to_string(),
        latest_name: runs.join("latest").display().to_string(),
        container_id,
    }
}

/// Bytes 0–255, then UTF-8 and the characters JSON escapes.
fn binary_content() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255).collect();
    bytes.extend_from_slice("é\"\\/".as_bytes());
    bytes
}

fn write_fixture(sandbox: &Path) {
    let fixture = sandbox.join("fixture");
    std::fs::create_dir_all(fixture.join("sub/deeper")).unwrap();
    let files: &[(&str, &[u8])] = &[
        ("hello.txt", b"hello world\n"),
        ("a.json", b"{}"),
        ("bin.dat", &binary_content()),
        (".bashrc", b"x"),
        ("a.tar.gz", b"x"),
        ("UP.TXT", b"x"),
        ("a.png", b"x"),
        ("a.css", b"x"),
        ("a.", b"x"),
        ("noext", b"x"),
        ("sp ace.txt", b"x"),
        ("sub/x.html", b"abc"),
    ];
    for (name, content) in files {
        std::fs::write(fixture.join(name), content).unwrap();
    }
    std::fs::write(fixture.join("big.log"), vec![b'a'; 100_000]).unwrap();
    symlink("hello.txt", fixture.join("in-link")).unwrap();
    symlink("nowhere", fixture.join("dangling")).unwrap();
    let escape = sandbox.join("escape");
    std::fs::create_dir_all(&escape).unwrap();
    symlink("/etc/passwd", escape.join("out-link")).unwrap();
    symlink("/etc", escape.join("out-dir")).unwrap();
}

/// `(label, method, target)`; `{V}` is the virtual `runs/latest` path, `{S}` the sandbox's own
/// path, `{L}` its `runs/latest` path.
fn probes() -> Vec<(&'static str, &'static str, String)> {
    let up = "../".repeat(20);
    let get = |label: &'static str, target: String| (label, "GET", target);
    vec![
        // read: parameters
        get("read without path", "/files/read".into()),
        get("read with empty path", "/files/read?path=".into()),
        get(
            "read without offset",
            "/files/read?path={V}/fixture/hello.txt".into(),
        ),
        get(
            "read offset -1",
            "/files/read?path={V}/fixture/hello.txt&offset=-1".into(),
        ),
        get(
            "read offset 0",
            "/files/read?path={V}/fixture/hello.txt&offset=0".into(),
        ),
        get(
            "read length 5",
            "/files/read?path={V}/fixture/hello.txt&offset=0&length=5".into(),
        ),
        get(
            "read length past the end",
            "/files/read?path={V}/fixture/hello.txt&offset=6&length=100".into(),
        ),
        get(
            "read length -1",
            "/files/read?path={V}/fixture/hello.txt&offset=0&length=-1".into(),
        ),
        get(
            "read length 0",
            "/files/read?path={V}/fixture/hello.txt&offset=0&length=0".into(),
        ),
        get(
            "read offset at the end",
            "/files/read?path={V}/fixture/hello.txt&offset=12".into(),
        ),
        get(
            "read offset past the end",
            "/files/read?path={V}/fixture/hello.txt&offset=100".into(),
        ),
        get(
            "read negative offset",
            "/files/read?path={V}/fixture/hello.txt&offset=-2".into(),
        ),
        get(
            "read negative length",
            "/files/read?path={V}/fixture/hello.txt&offset=0&length=-2".into(),
        ),
        get(
            "read offset beyond 32 bits negative",
            "/files/read?path={V}/fixture/hello.txt&offset=-5000000000".into(),
        ),
        get(
            "read offset not a number",
            "/files/read?path={V}/fixture/hello.txt&offset=abc".into(),
        ),
        get(
            "read length not a number",
            "/files/read?path={V}/fixture/hello.txt&offset=0&length=1.5".into(),
        ),
        get(
            "read empty offset",
            "/files/read?path={V}/fixture/hello.txt&offset=".into(),
        ),
        get(
            "read offset with +",
            "/files/read?path={V}/fixture/hello.txt&offset=+3".into(),
        ),
        get(
            "read offset %2B3",
            "/files/read?path={V}/fixture/hello.txt&offset=%2B3".into(),
        ),
        get(
            "read offset hex",
            "/files/read?path={V}/fixture/hello.txt&offset=0x3".into(),
        ),
        get(
            "read length negative hex",
            "/files/read?path={V}/fixture/hello.txt&offset=0&length=-0x10".into(),
        ),
        get(
            "read offset given twice",
            "/files/read?path={V}/fixture/hello.txt&offset=1&offset=2".into(),
        ),
        get(
            "read with ; separators",
            "/files/read?path={V}/fixture/hello.txt;offset=0".into(),
        ),
        get(
            "read jsonp",
            "/files/read?path={V}/fixture/hello.txt&offset=0&jsonp=cb".into(),
        ),
        get(
            "read empty jsonp",
            "/files/read?path={V}/fixture/hello.txt&offset=0&jsonp=".into(),
        ),
        get(
            "read capped at 16 pages",
            "/files/read?path={V}/fixture/big.log&offset=0".into(),
        ),
        get(
            "read to the end under the cap",
            "/files/read?path={V}/fixture/big.log&offset=50000&length=70000".into(),
        ),
        get(
            "read binary",
            "/files/read?path={V}/fixture/bin.dat&offset=0".into(),
        ),
        get(
            "malformed query",
            "/files/read?path={V}/fixture/hello.txt&offset=%zz".into(),
        ),
        // read: paths
        get(
            "read a directory",
            "/files/read?path={V}/fixture&offset=0".into(),
        ),
        get("read the sandbox", "/files/read?path={V}/&offset=0".into()),
        get(
            "read a missing file",
            "/files/read?path={V}/fixture/nope&offset=0".into(),
        ),
        get(
            "read a dangling link",
            "/files/read?path={V}/fixture/dangling&offset=0".into(),
        ),
        get(
            "read a link inside",
            "/files/read?path={V}/fixture/in-link&offset=0".into(),
        ),
        get(
            "read a link out",
            "/files/read?path={V}/escape/out-link&offset=0".into(),
        ),
        get(
            "read through a link out",
            "/files/read?path={V}/escape/out-dir/passwd&offset=0".into(),
        ),
        get(
            "read .. out of the sandbox",
            format!("/files/read?path={{V}}/{up}etc/passwd&offset=0"),
        ),
        get(
            "read .. to nothing",
            format!("/files/read?path={{V}}/{up}no-such-file&offset=0"),
        ),
        get(
            "read the sandbox's parent",
            "/files/read?path={V}/..&offset=0".into(),
        ),
        get(
            "read .. back inside",
            "/files/read?path={V}/fixture/sub/../hello.txt&offset=0".into(),
        ),
        get(
            "read %2E%2E",
            "/files/read?path={V}/%2E%2E/latest/fixture/hello.txt&offset=0".into(),
        ),
        get(
            "read a file as a directory",
            "/files/read?path={V}/fixture/hello.txt/x&offset=0".into(),
        ),
        get(
            "read double slashes",
            "/files/read?path={V}//fixture//hello.txt&offset=0".into(),
        ),
        get(
            "read trailing slash",
            "/files/read?path={V}/fixture/hello.txt/&offset=0".into(),
        ),
        get(
            "read an unattached path",
            "/files/read?path=/etc/passwd&offset=0".into(),
        ),
        get(
            "read a relative path",
            "/files/read?path=frameworks/x/hello.txt&offset=0".into(),
        ),
        get(
            "read file://",
            "/files/read?path=file://{V}/fixture/hello.txt&offset=0".into(),
        ),
        get(
            "read by the sandbox's path",
            "/files/read?path={S}/fixture/hello.txt&offset=0".into(),
        ),
        get(
            "read by the latest path",
            "/files/read?path={L}/fixture/hello.txt&offset=0".into(),
        ),
        // routes and methods
        get(
            "read/ route",
            "/files/read/?path={V}/fixture/hello.txt&offset=0".into(),
        ),
        get(
            "read/extra route",
            "/files/read/extra?path={V}/fixture/hello.txt&offset=0".into(),
        ),
        get(
            "read.json route",
            "/files/read.json?path={V}/fixture/hello.txt&offset=0".into(),
        ),
        get(
            "slave(1) route",
            "/slave(1)/files/read?path={V}/fixture/hello.txt&offset=0".into(),
        ),
        get("/files", "/files?path={V}/fixture/hello.txt".into()),
        get("/files/", "/files/".into()),
        (
            "POST read",
            "POST",
            "/files/read?path={V}/fixture/hello.txt&offset=0".into(),
        ),
        ("DELETE debug", "DELETE", "/files/debug".into()),
        // browse
        get("browse without path", "/files/browse".into()),
        get("browse", "/files/browse?path={V}/fixture".into()),
        get(
            "browse trailing slash",
            "/files/browse?path={V}/fixture/sub/".into(),
        ),
        get(
            "browse double slashes",
            "/files/browse?path={V}//fixture//sub//".into(),
        ),
        get(
            "browse a file",
            "/files/browse?path={V}/fixture/hello.txt".into(),
        ),
        get(
            "browse missing",
            "/files/browse?path={V}/fixture/nope".into(),
        ),
        get("browse the parent", "/files/browse?path={V}/..".into()),
        get(
            "browse a link out",
            "/files/browse?path={V}/escape/out-dir".into(),
        ),
        get(
            "browse an unattached path",
            "/files/browse?path=/frameworks".into(),
        ),
        get(
            "browse jsonp",
            "/files/browse?path={V}/fixture/sub&jsonp=cb".into(),
        ),
        // download
        get("download without path", "/files/download".into()),
        get(
            "download .txt",
            "/files/download?path={V}/fixture/hello.txt".into(),
        ),
        get(
            "download .json",
            "/files/download?path={V}/fixture/a.json".into(),
        ),
        get(
            "download .html",
            "/files/download?path={V}/fixture/sub/x.html".into(),
        ),
        get(
            "download .png",
            "/files/download?path={V}/fixture/a.png".into(),
        ),
        get(
            "download .css",
            "/files/download?path={V}/fixture/a.css".into(),
        ),
        get(
            "download .tar.gz",
            "/files/download?path={V}/fixture/a.tar.gz".into(),
        ),
        get(
            "download .TXT",
            "/files/download?path={V}/fixture/UP.TXT".into(),
        ),
        get(
            "download .bashrc",
            "/files/download?path={V}/fixture/.bashrc".into(),
        ),
        get("download a.", "/files/download?path={V}/fixture/a.".into()),
        get(
            "download no extension",
            "/files/download?path={V}/fixture/noext".into(),
        ),
        get(
            "download a space",
            "/files/download?path={V}/fixture/sp%20ace.txt".into(),
        ),
        get(
            "download a link inside",
            "/files/download?path={V}/fixture/in-link".into(),
        ),
        get(
            "download binary",
            "/files/download?path={V}/fixture/bin.dat".into(),
        ),
        get(
            "download big",
            "/files/download?path={V}/fixture/big.log".into(),
        ),
        get(
            "download a link out",
            "/files/download?path={V}/escape/out-link".into(),
        ),
        get(
            "download a directory",
            "/files/download?path={V}/fixture".into(),
        ),
        get(
            "download missing",
            "/files/download?path={V}/fixture/nope".into(),
        ),
        get(
            "download .. out",
            format!("/files/download?path={{V}}/{up}etc/passwd"),
        ),
        // debug
        get("debug", "/files/debug".into()),
        get("debug jsonp", "/files/debug?jsonp=cb".into()),
    ]
}

/// A probe whose answers differ on purpose (docs/local-cluster.md): `browse` of a directory
/// holding symlinks that lead out of the sandbox.
const LINKS_OUT: &str = "/files/browse?path={V}/escape";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_files_request_is_answered_like_the_real_agent() {
    let Some(mesos) = RealMesos::start("agent_files::differential", <_>::default()) else {
        return;
    };
    let real_work_dir = mesos
        .dir
        .as_ref()
        .expect("the cluster's dir")
        .path()
        .join("agent");
    let real = start_sandbox(
        &mesos.master_url(),
        mesos.agent_addr,
        &mesos.agent_id,
        &real_work_dir,
    )
    .await;
    let tc = TestCluster::start().await;
    let embedded = start_sandbox(
        &tc.cluster.master_url(),
        tc.cluster.agent_endpoint(),
        tc.cluster.agent_id(),
        tc.cluster.work_dir(),
    )
    .await;

    let probes = probes();
    let mut differences = Vec::new();
    for (label, method, template) in &probes {
        let r = real.probe(method, template).await;
        let e = embedded.probe(method, template).await;
        if r != e {
            differences.push(format!(
                "{label} ({method} {template}):\n  real:     {}\n  embedded: {}",
                show(&r),
                show(&e)
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} probes differ:\n{}",
        differences.len(),
        probes.len(),
        differences.join("\n")
    );

    // The one difference kept: a real agent `stat`s a link leading out of the sandbox and
    // lists its target's metadata; the embedded agent lists the link's own.
    let listing = |answer: Answer| -> Vec<serde_json::Value> {
        assert_eq!(answer.0, "HTTP/1.1 200 OK");
        serde_json::from_slice(&answer.2).expect("a JSON listing")
    };
    let real_links = listing(send(real.agent, "GET", &real.target(LINKS_OUT)).await);
    let embedded_links = listing(send(embedded.agent, "GET", &embedded.target(LINKS_OUT)).await);
    let passwd = std::fs::metadata("/etc/passwd").unwrap();
    let summary = |entries: &[serde_json::Value]| -> Vec<(String, String, u64)> {
        entries
            .iter()
            .map(|e| {
                (
                    e["path"]
                        .as_str()
                        .unwrap_or_default()
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                    e["mode"].as_str().unwrap_or_default().to_owned(),
                    e["size"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    };
    assert_eq!(
        summary(&real_links),
        [
            (
                "out-dir".to_owned(),
                "drwxr-xr-x".to_owned(),
                std::fs::metadata("/etc").unwrap().len()
            ),
            ("out-link".to_owned(), "-rw-r--r--".to_owned(), passwd.len()),
        ]
    );
    assert_eq!(
        summary(&embedded_links),
        [
            ("out-dir".to_owned(), "lrwxrwxrwx".to_owned(), 4),
            ("out-link".to_owned(), "lrwxrwxrwx".to_owned(), 11),
        ]
    );
    println!(
        "{} probes answered identically by the real and the embedded agent",
        probes.len()
    );
    for (label, method, template) in &probes {
        let answer = embedded.probe(method, template).await;
        println!("{label:40} {}", answer.0);
    }
    let _ = real.framework.teardown().await;
    let _ = embedded.framework.teardown().await;
    tc.cluster.shutdown().await;
}

fn show(answer: &Answer) -> String {
    let mut body = String::from_utf8_lossy(&answer.2).into_owned();
    if body.len() > 400 {
        body.truncate(400);
        body.push('…');
    }
    format!("{} {:?} {body:?}", answer.0, answer.1)
}

// ---------------------------------------------------------------------------------------------
// The embedded agent alone

/// An answer with `Date`'s value blanked, nothing else touched.
async fn exact(agent: SocketAddr, target: &str) -> Answer {
    let (status, headers, body) = send(agent, "GET", target).await;
    let headers = headers
        .into_iter()
        .map(|(name, value)| {
            if name == "Date" {
                (name, "<date>".to_owned())
            } else {
                (name, value)
            }
        })
        .collect();
    (status, headers, body)
}

fn expected(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut all = vec![("Date".to_owned(), "<date>".to_owned())];
    all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    (status.to_owned(), all, body.to_vec())
}

fn text(status: &str, body: &str) -> Answer {
    expected(
        status,
        &[
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", &body.len().to_string()),
        ],
        body.as_bytes(),
    )
}

fn json(body: &str) -> Answer {
    expected(
        "HTTP/1.1 200 OK",
        &[
            ("Content-Length", &body.len().to_string()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

async fn embedded_sandbox(tc: &TestCluster) -> Sandbox {
    start_sandbox(
        &tc.cluster.master_url(),
        tc.cluster.agent_endpoint(),
        tc.cluster.agent_id(),
        tc.cluster.work_dir(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_browse_download_and_debug_answer_exactly_as_pinned() {
    let tc = TestCluster::start().await;
    let sandbox = embedded_sandbox(&tc).await;
    let agent = sandbox.agent;
    let v = sandbox.virtual_root();
    let dir = sandbox.directory.display().to_string();
    let hello = format!("/files/read?path={v}/fixture/hello.txt");
    let pinned: Vec<(String, Answer)> = vec![
        (
            "/files/read".into(),
            text(
                "HTTP/1.1 400 Bad Request",
                "Expecting 'path=value' in query.\n",
            ),
        ),
        // No offset, or -1: the size only.
        (hello.clone(), json(r#"{"data":"","offset":12}"#)),
        (
            format!("{hello}&offset=-1&length=3"),
            json(r#"{"data":"","offset":12}"#),
        ),
        (
            format!("{hello}&offset=0"),
            json(r#"{"data":"hello world\n","offset":0}"#),
        ),
        // A length past the end reads to the end.
        (
            format!("{hello}&offset=6&length=100"),
            json(r#"{"data":"world\n","offset":6}"#),
        ),
        // An offset past the end: no data, and the offset asked for (not the size).
        (
            format!("{hello}&offset=100"),
            json(r#"{"data":"","offset":100}"#),
        ),
        (
            format!("{hello}&offset=0&length=-2"),
            text(
                "HTTP/1.1 400 Bad Request",
                "Negative length provided: -2.\n",
            ),
        ),
        (
            format!("{hello}&offset=-2"),
            text(
                "HTTP/1.1 400 Bad Request",
                "Negative offset provided: -2.\n",
            ),
        ),
        (
            format!("{hello}&offset=x"),
            text(
                "HTTP/1.1 400 Bad Request",
                "Failed to parse offset: Failed to convert 'x' to number.\n",
            ),
        ),
        (
            format!("{hello}&offset=0&jsonp=cb"),
            expected(
                "HTTP/1.1 200 OK",
                &[
                    ("Content-Length", "39"),
                    ("Content-Type", "text/javascript"),
                ],
                br#"cb({"data":"hello world\n","offset":0})"#,
            ),
        ),
        // Outside the sandbox: refused naming the path tried; nothing attached: 404, empty.
        (
            format!(
                "/files/read?path={v}/{}etc/passwd&offset=0",
                "../".repeat(20)
            ),
            text(
                "HTTP/1.1 400 Bad Request",
                &format!("'{dir}/{}etc/passwd' is inaccessible.\n", "../".repeat(20)),
            ),
        ),
        (
            format!("/files/read?path={v}/escape/out-link&offset=0"),
            text(
                "HTTP/1.1 400 Bad Request",
                &format!("'{dir}/escape/out-link' is inaccessible.\n"),
            ),
        ),
        (
            "/files/read?path=/etc/passwd&offset=0".into(),
            text("HTTP/1.1 404 Not Found", ""),
        ),
        (
            format!("/files/read?path={v}/fixture"),
            text("HTTP/1.1 400 Bad Request", "Cannot read a directory.\n"),
        ),
        (
            format!("/files/browse?path={v}/fixture/sub/deeper"),
            json("[]"),
        ),
        (
            format!("/files/download?path={v}/fixture/hello.txt"),
            expected(
                "HTTP/1.1 200 OK",
                &[
                    ("Content-Length", "12"),
                    ("Content-Disposition", "attachment; filename=hello.txt"),
                    ("Content-Type", "text/plain"),
                ],
                b"hello world\n",
            ),
        ),
        (
            format!("/files/download?path={v}/fixture/nope"),
            text("HTTP/1.1 404 Not Found", "404 Not Found."),
        ),
        (
            format!("/files/download?path={v}/fixture"),
            text("HTTP/1.1 400 Bad Request", "Cannot download a directory.\n"),
        ),
    ];
    for (target, wanted) in &pinned {
        assert_eq!(&exact(agent, target).await, wanted, "GET {target}");
    }

    // The cap: 16 pages of the 100 000-byte file.
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .unwrap()
        .unwrap() as usize;
    let (status, _, body) = exact(
        agent,
        &format!("/files/read?path={v}/fixture/big.log&offset=0"),
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let read: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(read["data"].as_str().unwrap().len(), 16 * page);
    assert_eq!(read["offset"], 0);

    // `debug`: the run's three names, sorted, each to the canonical sandbox.
    let debug = format!(
        r#"{{"{v}":"{dir}","{}":"{dir}","{}":"{dir}"}}"#,
        sandbox.run_name, sandbox.latest_name
    );
    assert_eq!(exact(agent, "/files/debug").await, json(&debug));

    // `browse`: sorted by name, links followed, dangling ones left out.
    let (status, _, body) = exact(agent, &format!("/files/browse?path={v}/fixture")).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let listing: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    let names: Vec<&str> = listing
        .iter()
        .map(|e| e["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            ".bashrc",
            "UP.TXT",
            "a.",
            "a.css",
            "a.json",
            "a.png",
            "a.tar.gz",
            "big.log",
            "bin.dat",
            "hello.txt",
            "in-link",
            "noext",
            "sp ace.txt",
            "sub"
        ]
    );
    let link = &listing[10];
    assert_eq!(link["path"], format!("{v}/fixture/in-link"));
    assert_eq!(link["mode"], "-rw-r--r--");
    assert_eq!(link["size"], 12);

    // A malformed escape in the query: the connection closes unanswered.
    assert_eq!(
        send(agent, "GET", &format!("{hello}&offset=%zz")).await.0,
        "<no response>"
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_in_a_sandbox_neither_hangs_read_nor_download() {
    let tc = TestCluster::start().await;
    let sandbox = embedded_sandbox(&tc).await;
    let fifo = sandbox.directory.join("fixture/fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let v = sandbox.virtual_root();
    // A real agent's `files` process blocks for good opening a FIFO without a writer; the
    // embedded one reaches the error Mesos has for a file it cannot seek.
    assert_eq!(
        exact(
            sandbox.agent,
            &format!("/files/read?path={v}/fixture/fifo&offset=0")
        )
        .await,
        text(
            "HTTP/1.1 500 Internal Server Error",
            &format!(
                "Failed to open file at '{}': Illegal seek.\n",
                fifo.display()
            ),
        )
    );
    assert_eq!(
        exact(
            sandbox.agent,
            &format!("/files/download?path={v}/fixture/fifo")
        )
        .await,
        expected(
            "HTTP/1.1 200 OK",
            &[
                ("Content-Length", "0"),
                ("Content-Disposition", "attachment; filename=fifo"),
                ("Content-Type", "application/octet-stream"),
            ],
            b"",
        )
    );
    tc.cluster.shutdown().await;
}

/// `/files/debug` once it answers 200 (the agent may be restarting).
async fn debug_when_up(agent: SocketAddr) -> Option<BTreeMap<String, String>> {
    let response = http()
        .get(format!("http://{agent}/files/debug"))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let body = response.bytes().await.ok()?;
    serde_json::from_slice(&body).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_stay_attached_after_their_executor_ends_and_restarts_keep_recovered_runs() {
    let tc = TestCluster::start().await;
    let first = embedded_sandbox(&tc).await;
    let agent = first.agent;
    let v = first.virtual_root();
    let names = |run: &Sandbox| {
        BTreeMap::from([
            (run.virtual_root(), run.directory.display().to_string()),
            (run.run_name.clone(), run.directory.display().to_string()),
            (run.latest_name.clone(), run.directory.display().to_string()),
        ])
    };
    let first_names = names(&first);
    assert_eq!(debug_when_up(agent).await, Some(first_names.clone()));

    // The executor ends: its sandbox stays attached (a real agent detaches at garbage
    // collection, a week later by default).
    let mut framework = first.framework;
    framework
        .shutdown_executor(EXECUTOR, tc.cluster.agent_id())
        .await
        .expect("SHUTDOWN");
    framework
        .await_state("files-task", TaskState::TaskKilled)
        .await;
    executor_gone(&tc.cluster, EXECUTOR).await;
    assert_eq!(debug_when_up(agent).await, Some(first_names));
    let (status, _, body) = exact(
        agent,
        &format!("/files/read?path={v}/fixture/hello.txt&offset=0"),
    )
    .await;
    assert_eq!(
        (status.as_str(), body.as_slice()),
        (
            "HTTP/1.1 200 OK",
            &br#"{"data":"hello world\n","offset":0}"#[..]
        )
    );

    // The same executor again: the `latest` names move to the new run, the old run keeps its
    // own name.
    let offer = framework.next_offer().await;
    let executor = test_executor_info(EXECUTOR);
    framework
        .launch(
            &offer,
            vec![task_info(
                "files-task-2",
                &offer.agent_id.value,
                &executor,
                "running",
            )],
        )
        .await
        .expect("LAUNCH");
    framework
        .await_state("files-task-2", TaskState::TaskRunning)
        .await;
    let debug = debug_when_up(agent).await.expect("debug answers");
    let second_dir = PathBuf::from(&debug[&v]);
    assert_ne!(second_dir, first.directory);
    let second_run = second_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let second_name = Path::new(&first.latest_name)
        .with_file_name(&second_run)
        .display()
        .to_string();
    let second = second_dir.display().to_string();
    assert_eq!(
        debug,
        BTreeMap::from([
            (v.clone(), second.clone()),
            (
                first.run_name.clone(),
                first.directory.display().to_string()
            ),
            (first.latest_name.clone(), second.clone()),
            (second_name.clone(), second.clone()),
        ])
    );

    // A framework that does not checkpoint: attached while the agent runs…
    let mut transient_info = framework_info("transient");
    transient_info.checkpoint = Some(false);
    let mut transient =
        TestFramework::subscribe(&tc.cluster.master_url(), transient_info, Encoding::Protobuf)
            .await
            .expect("subscribe");
    let offer = transient.next_offer().await;
    let executor = test_executor_info("files-transient");
    transient
        .launch(
            &offer,
            vec![task_info(
                "transient-task",
                &offer.agent_id.value,
                &executor,
                "running",
            )],
        )
        .await
        .expect("LAUNCH");
    transient
        .await_state("transient-task", TaskState::TaskRunning)
        .await;
    let transient_name = format!(
        "/frameworks/{}/executors/files-transient/runs/latest",
        transient.framework_id
    );
    assert_eq!(debug_when_up(agent).await.map(|d| d.len()), Some(7));

    // …and not recovered by a restarted agent, which re-attaches only the latest run of each
    // executor of a checkpointing framework.
    tc.cluster
        .restart_agent(std::time::Duration::from_millis(100))
        .await
        .expect("restart");
    let recovered = eventually("the restarted agent to answer /files/debug", SOON, || {
        debug_when_up(agent)
    })
    .await;
    assert!(!recovered.contains_key(&transient_name), "{recovered:?}");
    assert_eq!(
        recovered,
        BTreeMap::from([
            (v.clone(), second.clone()),
            (first.latest_name.clone(), second.clone()),
            (second_name, second.clone()),
        ])
    );
    tc.cluster.shutdown().await;
}
