//! The packaging scripts' tarballs work the way an operator uses them: the embedded agent's
//! fetcher downloads the executor tarball and an app tarball over HTTP into an empty sandbox,
//! and the executor starts from there (`./shardex-executor`) and runs a job plugin.
//! `packaging/build-release.sh` packs release binaries with the same scripts.

mod support;

use std::path::Path;
use std::process::Command;

use shardex::mesos::proto::v1::{self, TaskState};
use shardex::payload::ErrorPolicy;
use support::*;

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(name)
}

/// Runs a packaging script; returns the archive path it prints.
fn run(name: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let output = Command::new(script(name))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("run the packaging script");
    assert!(
        output.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn archive_entries(archive: &str) -> Vec<String> {
    let listing = Command::new("tar")
        .arg("tzf")
        .arg(archive)
        .output()
        .unwrap();
    String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn tarballs_run_a_job_from_an_empty_sandbox() {
    let dist = tempfile::tempdir().unwrap();
    // Debug binaries carry debug info; strip it like the release profile does.
    let stripped = dist.path().join("shardex-executor");
    let status = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(package_binary("shardex-executor"))
        .status()
        .expect("strip");
    assert!(status.success());

    let executor_tarball = run(
        "make-executor-tarball.sh",
        &[
            &stripped,
            &"0.0.0-test",
            &"x86_64-unknown-linux-gnu",
            &dist.path(),
        ],
    );
    assert!(
        executor_tarball.ends_with("shardex-executor-0.0.0-test-x86_64-unknown-linux-gnu.tar.gz")
    );
    assert_eq!(archive_entries(&executor_tarball), ["shardex-executor"]);
    let checksum = std::fs::read_to_string(format!("{executor_tarball}.sha256")).unwrap();
    assert!(checksum.ends_with("  shardex-executor-0.0.0-test-x86_64-unknown-linux-gnu.tar.gz\n"));

    let app_tarball = run(
        "make-app-tarball.sh",
        &[
            &"demo-app",
            &"0.0.0-test",
            &dist.path(),
            &example_plugin("hello_shards"),
        ],
    );
    assert_eq!(
        archive_entries(&app_tarball),
        ["plugins/", "plugins/libhello_shards.so"]
    );

    let files = FileServer::serve(dist.path().to_owned()).await;
    let uri = |name: &str| v1::command_info::Uri {
        value: files.url(name),
        ..Default::default()
    };
    let executor = executor_info(
        "demo-app@-@S0",
        "./shardex-executor",
        vec![
            uri("shardex-executor-0.0.0-test-x86_64-unknown-linux-gnu.tar.gz"),
            uri("demo-app-0.0.0-test.tar.gz"),
        ],
    );

    let test = TestCluster::start().await;
    let mut framework = test.framework("packaging").await;
    let task_payload = payload(
        "hello@-@0@-@READY@-@S0@-@1",
        "hello",
        0,
        1,
        plugin_job("hello_shards", "", ErrorPolicy::Fail),
    );
    let mut task = task_info(
        &task_payload.context.task_id,
        test.cluster.agent_id(),
        &executor,
        "",
    );
    task.data = Some(task_payload.encode().unwrap());
    let offer = framework.next_offer().await;
    framework.launch(&offer, vec![task]).await.unwrap();
    framework
        .await_state("hello@-@0@-@READY@-@S0@-@1", TaskState::TaskFinished)
        .await;

    // The sandbox holds what the tarballs held, the archives, the executor's logs and the
    // task's work directory with the job's output: nothing else was needed.
    let sandbox = test
        .cluster
        .work_dir()
        .join("slaves")
        .join(test.cluster.agent_id())
        .join("frameworks")
        .join(&framework.framework_id)
        .join("executors/demo-app@-@S0/runs/latest");
    let mut entries: Vec<String> = std::fs::read_dir(&sandbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            "demo-app-0.0.0-test.tar.gz",
            "plugins",
            "shardex-executor",
            "shardex-executor-0.0.0-test-x86_64-unknown-linux-gnu.tar.gz",
            "stderr",
            "stdout",
            "tasks",
        ]
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.join("tasks/hello@-@0@-@READY@-@S0@-@1/hello-shards.out"))
            .unwrap(),
        "hello 0/1 p0 hello@-@0@-@READY@-@S0@-@1\n"
    );
}
