//! Running jobs through the loader and the ABI: the example plugins succeed, fail, panic, observe
//! cancellation and keep state exactly as documented, and the C example plugin runs.

mod support;

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardex::plugin::{
    DataflowRun, HostBindings, JOB_LOG_TARGET, JobContext, JobControl, JobError, JobInstance,
    JobKind, Plugin, PluginLoader,
};
use support::{capture_logs, compile_c, context, install_example, sandbox, wait_until};

/// Generous bound for things that should take milliseconds; only reached when a test fails.
/// The suites' shared bound for what should happen soon.
const DEADLINE: Duration = support::SOON;

fn load(root: &Path, lib: &str) -> Arc<Plugin> {
    let file = format!("lib{lib}.so");
    install_example(root, lib, &file);
    PluginLoader::new(root).unwrap().load(&file).unwrap()
}

fn instance(plugin: &Arc<Plugin>, kind: JobKind, ctx: &JobContext) -> (JobInstance, JobControl) {
    let control = JobControl::new();
    let instance = plugin
        .instantiate(kind, ctx, HostBindings::new(control.clone()))
        .unwrap();
    (instance, control)
}

fn faulty_plugin(root: &Path) -> Arc<Plugin> {
    load(root, "faulty")
}

fn faulty_with(plugin: &Arc<Plugin>, root: &Path, mode: &str) -> (JobInstance, JobControl) {
    let mut ctx = context("faulty", "faulty-task", root);
    ctx.job_parameter = mode.to_owned();
    instance(plugin, JobKind::Simple, &ctx)
}

fn faulty(root: &Path, mode: &str) -> (JobInstance, JobControl) {
    faulty_with(&faulty_plugin(root), root, mode)
}

#[test]
fn hello_shards_writes_its_line_and_logs_with_the_task_id() {
    let root = sandbox();
    let plugin = load(root.path(), "hello_shards");
    let ctx = context("demo", "demo@-@1@-@READY@-@agent@-@uuid", root.path());
    let (mut job, _) = instance(&plugin, JobKind::Simple, &ctx);

    let (logs, _guard) = capture_logs();
    job.run_simple().unwrap();

    let text = std::fs::read_to_string(root.path().join("hello-shards.out")).unwrap();
    assert_eq!(text, "demo 1/3 beta demo@-@1@-@READY@-@agent@-@uuid\n");
    let message = format!(
        "shard 1/3 wrote its line to {}",
        root.path().join("hello-shards.out").display()
    );
    let events = logs.with_message(&message);
    assert_eq!(events.len(), 1, "{:?}", logs.events());
    let event = &events[0];
    assert_eq!(event.level, tracing::Level::INFO);
    assert_eq!(event.target, JOB_LOG_TARGET);
    assert_eq!(
        event.field("task_id"),
        Some("demo@-@1@-@READY@-@agent@-@uuid")
    );
    assert_eq!(event.field("plugin"), Some("hello-shards"));
}

#[test]
fn job_properties_reach_the_plugin_and_cannot_escape_the_work_dir() {
    let root = sandbox();
    let plugin = load(root.path(), "hello_shards");
    let mut ctx = context("demo", "t", root.path());
    ctx.properties
        .insert("output".into(), "out/shards.txt".into());
    std::fs::create_dir(root.path().join("out")).unwrap();
    let (mut job, _) = instance(&plugin, JobKind::Simple, &ctx);
    job.run_simple().unwrap();
    assert_eq!(
        std::fs::read_to_string(root.path().join("out/shards.txt")).unwrap(),
        "demo 1/3 beta t\n"
    );

    ctx.properties
        .insert("output".into(), "../escape.txt".into());
    let error = plugin
        .instantiate(JobKind::Simple, &ctx, HostBindings::new(JobControl::new()))
        .unwrap_err();
    assert_eq!(
        error,
        JobError::Failed(format!(
            "\"../escape.txt\" is not a relative path inside the work directory {}",
            root.path().display()
        ))
    );
}

#[test]
fn job_error_comes_back_as_failed_with_its_message() {
    let root = sandbox();
    let (mut job, _) = faulty(root.path(), "error");
    assert_eq!(
        job.run_simple(),
        Err(JobError::Failed("faulty job failed on purpose".into()))
    );
    // An ordinary error leaves the instance usable (a daemon's next fire may succeed).
    assert_eq!(
        job.run_simple(),
        Err(JobError::Failed("faulty job failed on purpose".into()))
    );
}

#[test]
fn panic_comes_back_as_panicked_and_retires_the_instance() {
    let root = sandbox();
    let plugin = faulty_plugin(root.path());
    let (mut job, _) = faulty_with(&plugin, root.path(), "panic");
    let error = job.run_simple().unwrap_err();
    assert_eq!(
        error,
        JobError::Panicked("faulty job panicked on purpose".into())
    );
    assert_eq!(
        error.to_string(),
        "job panicked: faulty job panicked on purpose"
    );
    assert_eq!(
        job.run_simple(),
        Err(JobError::Setup(
            "job instance of plugin faulty is unusable after an earlier panic".into()
        ))
    );
    drop(job); // destroy() after a panic is fine too

    // This process survived, and the same plugin still works for a new instance.
    let (mut ok, _) = faulty_with(&plugin, root.path(), "ok");
    assert_eq!(ok.run_simple(), Ok(()));
}

#[test]
fn unknown_faulty_mode_is_an_error_naming_it() {
    let root = sandbox();
    let (mut job, _) = faulty(root.path(), "explode");
    assert_eq!(
        job.run_simple(),
        Err(JobError::Failed(
            "faulty: unknown mode \"explode\"; expected ok, error, panic, hang, abort, segfault, \
             exit:<code>, allocate, sleep:<ms> or ignore-cancel-sleep:<ms>"
                .into()
        ))
    );
}

#[test]
fn sleeping_job_cancelled_from_another_thread_stops_promptly() {
    let root = sandbox();
    let (mut job, control) = faulty(root.path(), "sleep:600000");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(job.run_simple());
    });
    // Still sleeping: nothing arrives before we cancel.
    assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    let cancelled_at = Instant::now();
    control.cancel();
    let result = rx
        .recv_timeout(DEADLINE)
        .expect("the job ignored cancellation");
    assert_eq!(result, Err(JobError::Failed("cancelled".into())));
    assert!(cancelled_at.elapsed() < Duration::from_secs(5));
}

#[test]
fn hang_mode_ignores_cancellation() {
    let root = sandbox();
    let (mut job, control) = faulty(root.path(), "hang");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(job.run_simple());
    });
    control.cancel();
    // This is the behaviour the executor's kill path must cope with: the job never returns.
    // (The thread stays behind until this test process exits.)
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
}

#[test]
fn ignore_cancel_sleep_finishes_successfully_despite_cancellation() {
    let root = sandbox();
    let (mut job, control) = faulty(root.path(), "ignore-cancel-sleep:100");
    control.cancel();
    let started = Instant::now();
    assert_eq!(job.run_simple(), Ok(()));
    assert!(started.elapsed() >= Duration::from_millis(100));
}

/// Runs one crash mode of the faulty job in a child copy of this test binary and returns how the
/// child died.
fn crash_in_child(mode: &str) -> std::process::ExitStatus {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SHARDEX_TEST_CRASH_MODE", mode)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
}

#[test]
#[ignore = "helper: run in a child process by crash_modes_kill_the_process"]
fn crash_child() {
    let Ok(mode) = std::env::var("SHARDEX_TEST_CRASH_MODE") else {
        return;
    };
    let root = sandbox();
    let (mut job, _) = faulty(root.path(), &mode);
    let _ = job.run_simple();
    // Reaching this line means the crash did not happen.
    std::process::exit(0);
}

#[test]
fn crash_modes_kill_the_process() {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        crash_in_child("abort").signal(),
        Some(6),
        "abort must die of SIGABRT"
    );
    assert_eq!(
        crash_in_child("segfault").signal(),
        Some(11),
        "segfault must die of SIGSEGV"
    );
    assert_eq!(
        crash_in_child("ok").code(),
        Some(0),
        "the helper itself works"
    );
}

#[test]
fn non_streaming_dataflow_runs_one_round() {
    let root = sandbox();
    let plugin = load(root.path(), "stream_numbers");
    let mut ctx = context("numbers", "t", root.path());
    ctx.properties.insert("batch_size".into(), "4".into());
    let (mut job, _) = instance(&plugin, JobKind::Dataflow, &ctx);
    assert_eq!(
        job.run_dataflow(false),
        Ok(DataflowRun {
            batches: 1,
            items: 4,
            cancelled: false
        })
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("stream-numbers.out")).unwrap(),
        "batch 1: 1 4 7 10\n"
    );
}

#[test]
fn streaming_dataflow_runs_until_fetch_returns_nothing() {
    let root = sandbox();
    let plugin = load(root.path(), "stream_numbers");
    let mut ctx = context("numbers", "t", root.path());
    ctx.properties.insert("limit".into(), "5".into());
    ctx.properties.insert("batch_size".into(), "2".into());
    let notes = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&notes);
    let bindings = HostBindings::new(JobControl::new())
        .with_progress(move |n| sink.lock().unwrap().push(n.to_owned()));
    let mut job = plugin
        .instantiate(JobKind::Dataflow, &ctx, bindings)
        .unwrap();
    assert_eq!(
        job.run_dataflow(true),
        Ok(DataflowRun {
            batches: 3,
            items: 5,
            cancelled: false
        })
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("stream-numbers.out")).unwrap(),
        "batch 1: 1 4\nbatch 2: 7 10\nbatch 3: 13\n"
    );
    assert_eq!(
        *notes.lock().unwrap(),
        [
            "2 numbers in 1 batches",
            "4 numbers in 2 batches",
            "5 numbers in 3 batches"
        ]
    );
}

#[test]
fn streaming_dataflow_stops_when_cancelled_from_another_thread() {
    let root = sandbox();
    let plugin = load(root.path(), "stream_numbers");
    let mut ctx = context("numbers", "t", root.path());
    ctx.properties.insert("limit".into(), "0".into()); // endless unless cancelled
    ctx.properties.insert("batch_size".into(), "3".into());
    ctx.properties.insert("delay_ms".into(), "5".into());
    let (mut job, control) = instance(&plugin, JobKind::Dataflow, &ctx);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(job.run_dataflow(true));
    });

    let output = root.path().join("stream-numbers.out");
    let lines = || {
        std::fs::read_to_string(&output)
            .map(|t| t.lines().count() as u64)
            .unwrap_or(0)
    };
    assert!(
        wait_until(DEADLINE, || lines() >= 3),
        "the stream never got going"
    );
    control.cancel();
    let written_at_cancel = lines();

    let run = rx
        .recv_timeout(DEADLINE)
        .expect("the dataflow loop did not stop after cancellation")
        .unwrap();
    assert!(run.cancelled);
    assert!(run.batches >= 3);
    // At most the batch that was being processed when we cancelled completes afterwards.
    assert!(
        run.batches <= written_at_cancel + 1,
        "{} batches ran, {} were written when cancelled",
        run.batches,
        written_at_cancel
    );
    assert_eq!(run.items, run.batches * 3);
    assert_eq!(lines(), run.batches);
}

#[test]
fn daemon_instance_keeps_state_across_fires() {
    let root = sandbox();
    let plugin = load(root.path(), "heartbeat");
    let ctx = context("beat", "beat-task", root.path());
    let (mut job, _) = instance(&plugin, JobKind::Simple, &ctx);
    for _ in 0..3 {
        job.run_simple().unwrap();
    }
    let text = std::fs::read_to_string(root.path().join("heartbeat.out")).unwrap();
    let fires: Vec<(String, String)> = text
        .lines()
        .map(|line| {
            // "<job> item <i> fire <n> at <ms> task <id>"
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(words.len(), 9, "{line}");
            assert_eq!(
                (words[0], words[1], words[2], words[3]),
                ("beat", "item", "1", "fire")
            );
            assert_eq!((words[5], words[7]), ("at", "task"));
            assert!(words[6].parse::<u128>().is_ok(), "{line}");
            (words[4].to_owned(), words[8].to_owned())
        })
        .collect();
    assert_eq!(
        fires,
        [("1", "beat-task"), ("2", "beat-task"), ("3", "beat-task")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}

#[test]
fn asking_for_a_kind_the_plugin_lacks_is_a_setup_error() {
    let root = sandbox();
    let plugin = load(root.path(), "hello_shards");
    let ctx = context("demo", "t", root.path());
    let error = plugin
        .instantiate(
            JobKind::Dataflow,
            &ctx,
            HostBindings::new(JobControl::new()),
        )
        .unwrap_err();
    assert_eq!(
        error,
        JobError::Setup(format!(
            "plugin hello-shards ({}) does not implement dataflow jobs; it implements: simple",
            plugin.path().display()
        ))
    );
    let (mut simple, _) = instance(&plugin, JobKind::Simple, &ctx);
    assert_eq!(
        simple.run_dataflow(true),
        Err(JobError::Setup(
            "cannot run a dataflow job on an instance of plugin hello-shards created as simple"
                .into()
        ))
    );
}

#[test]
fn c_plugin_runs_simple_and_dataflow_jobs() {
    let root = sandbox();
    let library = root.path().join("libc_hello.so");
    compile_c(
        &[&support::repo_root().join("jobs/sdk/examples/c-hello/hello.c")],
        &library,
        &[],
    );
    let plugin = PluginLoader::new(root.path())
        .unwrap()
        .load("libc_hello.so")
        .unwrap();
    assert_eq!((plugin.name(), plugin.version()), ("c-hello", "1.0.0"));
    assert_eq!(plugin.kinds().to_string(), "simple, dataflow");

    let mut ctx = context("demo", "c-task", root.path());
    let (logs, _guard) = capture_logs();
    let (mut simple, _) = instance(&plugin, JobKind::Simple, &ctx);
    simple.run_simple().unwrap();
    let events = logs.with_message("c-hello wrote its line");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].field("task_id"), Some("c-task"));

    ctx.properties.insert("count".into(), "7".into());
    let (mut dataflow, _) = instance(&plugin, JobKind::Dataflow, &ctx);
    assert_eq!(
        dataflow.run_dataflow(true),
        Ok(DataflowRun {
            batches: 3,
            items: 7,
            cancelled: false
        })
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("c-hello.out")).unwrap(),
        "c-hello demo 1/3 beta c-task\nc-batch 1,2,3\nc-batch 4,5,6\nc-batch 7\n"
    );

    ctx.job_parameter = "fail".into();
    let (mut failing, _) = instance(&plugin, JobKind::Simple, &ctx);
    assert_eq!(
        failing.run_simple(),
        Err(JobError::Failed("c-hello failed as asked".into()))
    );
}

#[test]
fn statuses_outside_the_abi_and_missing_messages_are_reported() {
    let root = sandbox();
    compile_c(
        &[&support::c_source("status_plugin.c")],
        &root.path().join("libstatus.so"),
        &[],
    );
    let plugin = PluginLoader::new(root.path())
        .unwrap()
        .load("libstatus.so")
        .unwrap();
    let run = |status: &str, item_parameter: &str| {
        let mut ctx = context("s", "t", root.path());
        ctx.job_parameter = status.into();
        ctx.item_parameter = item_parameter.into();
        let (mut job, _) = instance(&plugin, JobKind::Simple, &ctx);
        job.run_simple()
    };
    assert_eq!(run("0", ""), Ok(()));
    assert_eq!(
        run("1", "with-message"),
        Err(JobError::Failed("status plugin message".into()))
    );
    assert_eq!(
        run("1", ""),
        Err(JobError::Failed(
            "plugin status-plugin reported an error from execute without a message".into()
        ))
    );
    assert_eq!(
        run("2", ""),
        Err(JobError::Panicked(
            "plugin status-plugin panicked in execute without a message".into()
        ))
    );
    assert_eq!(
        run("7", ""),
        Err(JobError::Panicked(
            "plugin status-plugin returned status 7 from execute, which Shardex plugin ABI 1 does \
             not define"
                .into()
        ))
    );
}
