//! Hostile plugin paths and files, end to end: the real `shardex-executor` on the embedded
//! cluster is launched tasks whose plugin is a path with `..`, an absolute path, a symbolic link
//! in the sandbox pointing outside it, a text file named `.so` fetched into the sandbox, and a
//! library built for another plugin ABI.
//!
//! Every one is a setup error: the task ends `TASK_ERROR` (labelled `shardex.setup_error=job`,
//! as the same launch would fail the same way) with the loader's message naming the path and
//! the reason, and nothing of it runs (no `TASK_RUNNING`, no output). With
//! `--on-setup-error fail-task` the executor goes on serving: a sibling task keeps running
//! untouched and a good task launched afterwards finishes, all in the one executor process.
//! (By default the executor stops itself after a setup error instead; the lifecycle suite's
//! `setup_errors_stop_the_executor_after_their_updates_are_acknowledged` covers that.)

mod support;

use std::path::Path;

use shardex::mesos::proto::v1::{self, TaskState::*, executor};
use shardex::payload::{ErrorPolicy, TaskPayload};
use shardex::status_contract::{SetupScope, executor_stopping, setup_error_of};
use support::executor_stack::{in_both_modes, stack, states, task};
use support::{
    c_source, compile_c, example_plugin, faulty, install_example, payload, plugin_job, sandbox,
    shardex_executor_info,
};

const EXECUTOR: &str = "hostile@-@S0";

/// A hello-shards task (it writes `hello-shards.out` in its work directory when it runs) whose
/// plugin is `plugin`, exactly as given.
fn hello_at(task_id: &str, plugin: &str) -> TaskPayload {
    let mut spec = plugin_job("hello_shards", "", ErrorPolicy::Fail);
    spec.plugin = Some(plugin.to_owned());
    payload(task_id, task_id, 0, 1, spec)
}

/// `info` with `file` fetched into its sandbox as `output_file`.
fn fetching(mut info: v1::ExecutorInfo, file: &Path, output_file: &str) -> v1::ExecutorInfo {
    if let Some(command) = &mut info.command {
        command.uris.push(v1::command_info::Uri {
            value: file.display().to_string(),
            extract: Some(false),
            output_file: Some(output_file.to_owned()),
            ..Default::default()
        });
    }
    info
}

async fn hostile_plugins_end_in_task_error_and_the_executor_serves_on() {
    let mut stack = stack(true).await;
    // What the app ships besides the example plugins: a text file named like a library, and a
    // library whose descriptor says ABI 2. And a real plugin outside any sandbox.
    let files = sandbox();
    let evil = files.path().join("evil.so");
    std::fs::write(&evil, "#!/bin/sh\necho this is not a library\n").unwrap();
    let abi2 = files.path().join("libabi2.so");
    compile_c(&[&c_source("bad_descriptor.c")], &abi2, &["ABI=2u"]);
    let outside = install_example(files.path(), "hello_shards", "libhello.so");
    let exec = shardex_executor_info(
        EXECUTOR,
        "--on-setup-error fail-task",
        &["hello_shards", "faulty"],
    );
    let exec = fetching(exec, &evil, "plugins/evil.so");
    let exec = fetching(exec, &abi2, "plugins/libabi2.so");

    // A sibling that runs throughout.
    let sibling = faulty("sibling", "sleep:60000", ErrorPolicy::Fail);
    stack.launch(vec![task(&stack, &exec, &sibling)]).await;
    stack.framework.await_state("sibling", TaskRunning).await;
    let pid = stack
        .test
        .cluster
        .executor_pid(EXECUTOR)
        .await
        .unwrap()
        .expect("the executor runs");

    // A symbolic link in the sandbox to a plugin outside it (what an app bundle unpacked by
    // Mesos' fetcher with `tar` can leave behind).
    let root = stack.sandbox(EXECUTOR).canonicalize().unwrap();
    std::os::unix::fs::symlink(&outside, root.join("plugins/libescape.so")).unwrap();

    let r = root.display();
    let real_plugin = example_plugin("hello_shards");
    let cases: Vec<(&str, String, String)> = vec![
        (
            "dotdot",
            "../../etc/x.so".into(),
            format!(
                "plugin path ../../etc/x.so contains '..'; plugin paths must name a file inside \
                 {r} directly"
            ),
        ),
        (
            // It would resolve inside the sandbox, to a good plugin: `..` is refused as such.
            "dotdot-inside",
            "plugins/../plugins/libhello_shards.so".into(),
            format!(
                "plugin path plugins/../plugins/libhello_shards.so contains '..'; plugin paths \
                 must name a file inside {r} directly"
            ),
        ),
        (
            "absolute",
            "/usr/lib/x.so".into(),
            format!("plugin path /usr/lib/x.so is outside the allowed plugin root {r}"),
        ),
        (
            // A loadable plugin, outside the sandbox.
            "absolute-real",
            real_plugin.display().to_string(),
            format!(
                "plugin path {} is outside the allowed plugin root {r}",
                real_plugin.display()
            ),
        ),
        (
            "symlink",
            "plugins/libescape.so".into(),
            format!(
                "plugin path {r}/plugins/libescape.so resolves through a symbolic link to {}, \
                 outside the allowed plugin root {r}",
                outside.canonicalize().unwrap().display()
            ),
        ),
        (
            "not-elf",
            "plugins/evil.so".into(),
            format!(
                "plugin {r}/plugins/evil.so is not a shared library: it does not start with the \
                 ELF magic bytes"
            ),
        ),
        (
            "wrong-abi",
            "plugins/libabi2.so".into(),
            format!(
                "plugin {r}/plugins/libabi2.so was built for Shardex plugin ABI 2, this executor \
                 supports 1; rebuild it against the matching shardex-job SDK"
            ),
        ),
    ];
    let tasks = cases
        .iter()
        .map(|(id, plugin, _)| task(&stack, &exec, &hello_at(id, plugin)))
        .collect();
    stack.launch(tasks).await;
    for (id, _, message) in &cases {
        let error = stack.framework.await_state(id, TaskError).await;
        assert_eq!(error.message.as_ref(), Some(message), "task {id}");
        assert_eq!(setup_error_of(&error), Some(SetupScope::Job), "task {id}");
        assert!(!executor_stopping(&error), "task {id}");
        // Nothing ran: never RUNNING, no output.
        assert_eq!(
            states(&stack.sent_updates(id).await),
            [TaskStarting, TaskError],
            "task {id}"
        );
        let output = stack.task_dir(EXECUTOR, id).join("hello-shards.out");
        assert!(!output.exists(), "task {id} ran: {}", output.display());
    }

    // The executor goes on: the sibling was not touched, and a good task runs to its end.
    assert_eq!(
        states(&stack.sent_updates("sibling").await),
        [TaskStarting, TaskRunning]
    );
    let good = hello_at("good", "plugins/libhello_shards.so");
    stack.launch(vec![task(&stack, &exec, &good)]).await;
    stack.framework.await_state("good", TaskFinished).await;
    let line =
        std::fs::read_to_string(stack.task_dir(EXECUTOR, "good").join("hello-shards.out")).unwrap();
    assert_eq!(line, "good 0/1 p0 good\n");
    stack.framework.kill("sibling", None).await.unwrap();
    stack.framework.await_state("sibling", TaskKilled).await;
    // All in the one executor process.
    assert_eq!(
        stack.test.cluster.executor_pid(EXECUTOR).await.unwrap(),
        Some(pid)
    );
    assert_eq!(
        stack
            .calls_of(EXECUTOR, executor::call::Type::Subscribe)
            .await
            .len(),
        1
    );
    stack.assert_protocol_hygiene().await;
}

in_both_modes!(hostile_plugins_end_in_task_error_and_the_executor_serves_on);
