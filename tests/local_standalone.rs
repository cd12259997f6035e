//! The `shardex-local` binary, and executor authentication.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use shardex::mesos::Encoding;
use shardex::mesos::proto::v1::{self, TaskState, executor};
use support::*;

/// Stops the child on drop (SIGINT, so it can kill its executors; SIGKILL if it hangs), so a
/// failing test leaves nothing behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gone_or_zombie(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.contains(") Z "),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_binary_serves_and_ctrl_c_kills_executors() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let mut child = Child(
        Command::new(package_binary("shardex-local"))
            .args([
                "--port",
                "0",
                "--agent-port",
                "0",
                "--allocation-interval",
                "100ms",
            ])
            .arg("--work-dir")
            .arg(&work)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start shardex-local"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(4)
            .collect::<Result<Vec<String>, _>>()
    });
    let lines = tokio::time::timeout(SOON, lines)
        .await
        .expect("endpoints printed in time")
        .unwrap()
        .expect("readable stdout");
    let master = lines[0]
        .strip_prefix("master: ")
        .expect("master line")
        .to_owned();
    assert!(master.starts_with("http://127.0.0.1:") && master.ends_with("/api/v1/scheduler"));
    assert!(
        lines[1].starts_with("agent: http://127.0.0.1:"),
        "{lines:?}"
    );
    let agent = lines[2]
        .strip_prefix("agent id: ")
        .expect("agent id line")
        .to_owned();
    assert_eq!(lines[3], format!("work dir: {}", work.display()));

    let mut fw =
        TestFramework::subscribe(&master, framework_info("standalone"), Encoding::Protobuf)
            .await
            .unwrap();
    let offer = fw.next_offer().await;
    fw.launch(
        &offer,
        vec![task_info(
            "t",
            &agent,
            &test_executor_info("exec-s"),
            "running",
        )],
    )
    .await
    .unwrap();
    let running = fw.await_state("t", TaskState::TaskRunning).await;
    let container = running
        .container_status
        .unwrap()
        .container_id
        .unwrap()
        .value;
    let sandbox = work
        .join("slaves")
        .join(&agent)
        .join("frameworks")
        .join(&fw.framework_id)
        .join("executors/exec-s/runs")
        .join(container);
    let pid: i32 = std::fs::read_to_string(sandbox.join("pid.txt"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(!gone_or_zombie(pid));

    // Ctrl-C: the binary exits and takes the executor with it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = eventually_blocking("shardex-local to exit", SOON, || {
        child.0.try_wait().unwrap()
    });
    assert!(status.success(), "{status:?}");
    eventually(&format!("executor {pid} to be gone"), SOON, || async {
        holds(gone_or_zombie(pid))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_authentication_with_jwt() {
    let tc = TestCluster::start_with(|c| c.executor_authentication = true).await;
    let agent = tc.cluster.agent_id().to_owned();
    let mut fw = tc.framework("auth").await;
    let offer = fw.next_offer().await;
    fw.launch(
        &offer,
        vec![
            task_info("a1", &agent, &test_executor_info("exec-auth"), "running"),
            task_info("a2", &agent, &test_executor_info("exec-auth2"), "running"),
        ],
    )
    .await
    .unwrap();
    // The test executor sends the token from its environment on every request.
    let running = fw.await_state("a1", TaskState::TaskRunning).await;
    fw.await_state("a2", TaskState::TaskRunning).await;
    let container = running
        .container_status
        .unwrap()
        .container_id
        .unwrap()
        .value;
    let calls = tc.cluster.executor_calls().await.unwrap();
    assert!(calls.iter().all(|c| c.status != 401), "{calls:#?}");

    // Without a token: 401 with a Bearer challenge, before anything else is looked at.
    let request = "POST /api/v1/executor HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
    let (line, headers, _) = raw_request(tc.cluster.agent_endpoint(), request.as_bytes()).await;
    assert_eq!(line, "HTTP/1.1 401 Unauthorized");
    assert!(
        headers.contains(&(
            "Www-Authenticate".to_owned(),
            "Bearer realm=\"mesos-agent-executor\"".to_owned()
        )),
        "{headers:?}"
    );

    // A valid token for another executor: 403.
    let sandbox_env = tc
        .cluster
        .work_dir()
        .join("slaves")
        .join(&agent)
        .join("frameworks")
        .join(&fw.framework_id)
        .join("executors/exec-auth/runs")
        .join(&container)
        .join("env.txt");
    let env = std::fs::read_to_string(sandbox_env).unwrap();
    let token = env
        .lines()
        .find_map(|l| l.strip_prefix("MESOS_EXECUTOR_AUTHENTICATION_TOKEN="))
        .expect("the token is in the executor's environment")
        .to_owned();
    let call = executor::Call {
        executor_id: v1::ExecutorId {
            value: "someone-else".into(),
        },
        framework_id: v1::FrameworkId {
            value: fw.framework_id.clone(),
        },
        r#type: Some(executor::call::Type::Message as i32),
        message: Some(executor::call::Message {
            data: b"x".to_vec(),
        }),
        ..Default::default()
    };
    let client = shardex::mesos::Client::new(
        tc.cluster.agent_url(),
        shardex::mesos::ClientConfig {
            credentials: Some(shardex::mesos::Credentials::Bearer(token)),
            ..Default::default()
        },
    )
    .unwrap();
    // An unknown executor is a 400 before claims are compared.
    let error = client.call(&call).await.unwrap_err();
    assert_eq!(error.status(), Some(400));
    // exec-auth's token used for exec-auth2: the claims do not match.
    let mut call = call;
    call.executor_id.value = "exec-auth2".into();
    let error = client.call(&call).await.unwrap_err();
    assert_eq!(error.status(), Some(403), "{error}");
    call.executor_id.value = "exec-auth".into();
    client
        .call(&call)
        .await
        .expect("matching claims are accepted");
    fw.teardown().await.unwrap();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_gets_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("local.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Child(
        Command::new(package_binary("shardex-local"))
            .args(["--port", "0", "--agent-port", "0"])
            .arg("--work-dir")
            .arg(dir.path().join("work"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start shardex-local"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(4)
            .collect::<Result<Vec<String>, _>>()
    });
    tokio::time::timeout(SOON, lines)
        .await
        .expect("endpoints printed in time")
        .unwrap()
        .expect("readable stdout");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + SOON;
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "shardex-local did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.contains("embedded Mesos cluster started"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text:?}"
    );
}
