//! Script jobs: the sharding context arrives as exactly one untouched JSON argument and in the
//! environment, output goes to the task's own files, exit statuses map to results (a failure
//! quoting the end of stderr), and cancel / force-kill reach the script's whole process tree.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::RwLock;
use std::sync::mpsc;
use std::time::Duration;

use shardex::plugin::{JobContext, JobControl, JobError, run_script};
use support::{capture_logs, sandbox, wait_until};

/// The suites' shared bound for what should happen soon.
const DEADLINE: Duration = support::SOON;

/// Writing an executable while another thread forks can leak the write descriptor into that
/// child for an instant, and exec'ing the file then fails with ETXTBSY. Writers take this lock
/// exclusively, script runs take it shared. Both give up after [`DEADLINE`], so a run that never
/// ends (a broken build) fails the tests instead of hanging them.
static EXEC_FILES: RwLock<()> = RwLock::new(());

fn with_deadline<G>(mut attempt: impl FnMut() -> Option<G>) -> G {
    let mut guard = None;
    assert!(
        wait_until(DEADLINE, || {
            guard = attempt();
            guard.is_some()
        }),
        "EXEC_FILES lock not available: another script run is stuck"
    );
    guard.unwrap()
}

fn write_executable(path: &Path, text: &str) {
    let _guard = with_deadline(|| EXEC_FILES.try_write().ok());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs a script on its own thread (with this thread's log capture); the receiver yields its
/// result.
fn run_in_background(
    command_line: &str,
    ctx: &JobContext,
    control: &JobControl,
) -> mpsc::Receiver<Result<(), JobError>> {
    let (tx, rx) = mpsc::channel();
    let (command_line, ctx, control) = (command_line.to_owned(), ctx.clone(), control.clone());
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            let _guard = with_deadline(|| EXEC_FILES.try_read().ok());
            let _ = tx.send(run_script(&command_line, &ctx, &control));
        })
    });
    rx
}

/// Runs a script to completion, failing the test if it takes longer than [`DEADLINE`].
fn run(command_line: &str, ctx: &JobContext, control: &JobControl) -> Result<(), JobError> {
    run_in_background(command_line, ctx, control)
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("script {command_line:?} did not finish in time"))
}

fn script_context(work_dir: &Path) -> JobContext {
    let mut ctx = support::context(
        "scripted",
        "scripted@-@1@-@READY@-@agent-1@-@0000",
        work_dir,
    );
    ctx.job_parameter = "it's \"quoted\" $(touch pwned) `touch pwned` and  two  spaces".into();
    ctx.item_parameter = "grüße & <b>".into();
    ctx
}

/// Whether a process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits for `name` in `dir` (written atomically by the script) and parses the pid in it.
fn wait_for_pid(dir: &Path, name: &str) -> i32 {
    let path = dir.join(name);
    assert!(
        wait_until(DEADLINE, || path.exists()),
        "the script never wrote {name}"
    );
    std::fs::read_to_string(&path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn context_arrives_as_one_json_argument_and_in_the_environment_untouched() {
    let dir = sandbox();
    write_executable(
        &dir.path().join("bin/dump.sh"),
        "#!/bin/sh\n\
         for a in \"$@\"; do printf '%s\\0' \"$a\"; done > args.bin\n\
         env -0 > env.bin\n\
         pwd -P > cwd.txt\n",
    );
    // The program is found in the sandbox; the script runs in the task's own directory.
    let work = dir.path().join("tasks/t");
    std::fs::create_dir_all(&work).unwrap();
    let mut ctx = script_context(&work);
    ctx.sandbox = dir.path().to_path_buf();
    let command_line = r#"bin/dump.sh --flag "two words" 'single $HOME' plain\ escaped"#;
    run(command_line, &ctx, &JobControl::new()).unwrap();

    let json = format!(
        r#"{{"jobName":"scripted","taskId":"scripted@-@1@-@READY@-@agent-1@-@0000","shardingTotalCount":3,"jobParameter":"it's \"quoted\" $(touch pwned) `touch pwned` and  two  spaces","shardingItem":1,"shardingParameter":"grüße & <b>","workDir":"{}"}}"#,
        work.display()
    );
    let json = json.as_str();
    let args = std::fs::read(work.join("args.bin")).unwrap();
    let args: Vec<&str> = std::str::from_utf8(&args)
        .unwrap()
        .strip_suffix('\0')
        .unwrap()
        .split('\0')
        .collect();
    assert_eq!(
        args,
        ["--flag", "two words", "single $HOME", "plain escaped", json]
    );

    let env = std::fs::read(work.join("env.bin")).unwrap();
    let shardex_env: BTreeMap<&str, &str> = std::str::from_utf8(&env)
        .unwrap()
        .split('\0')
        .filter_map(|entry| entry.split_once('='))
        .filter(|(key, _)| key.starts_with("SHARDEX_"))
        // Inherited from this test's own environment (CI sets SHARDEX_MESOS_HOME, …): not
        // what the job runner sets.
        .filter(|(key, _)| std::env::var_os(key).is_none())
        .collect();
    let expected: BTreeMap<&str, &str> = [
        ("SHARDEX_JOB_NAME", "scripted"),
        ("SHARDEX_TASK_ID", "scripted@-@1@-@READY@-@agent-1@-@0000"),
        ("SHARDEX_SHARDING_TOTAL_COUNT", "3"),
        ("SHARDEX_SHARDING_ITEM", "1"),
        ("SHARDEX_SHARDING_PARAMETER", "grüße & <b>"),
        (
            "SHARDEX_JOB_PARAMETER",
            "it's \"quoted\" $(touch pwned) `touch pwned` and  two  spaces",
        ),
        ("SHARDEX_SHARDING_CONTEXT", json),
        ("SHARDEX_WORK_DIR", work.to_str().unwrap()),
    ]
    .into_iter()
    .collect();
    assert_eq!(shardex_env, expected);

    let cwd = std::fs::read_to_string(work.join("cwd.txt")).unwrap();
    assert_eq!(
        cwd.trim_end(),
        work.canonicalize().unwrap().to_str().unwrap()
    );
    // Nothing interpreted the parameters: no command substitution ran anywhere.
    assert!(!dir.path().join("pwned").exists());
    assert!(!Path::new("pwned").exists());
}

#[test]
fn bare_program_names_are_found_on_path() {
    let dir = sandbox();
    let ctx = script_context(dir.path());
    // `sh` via PATH; the JSON becomes $0 of the -c script, which prints it.
    run(
        r#"sh -c 'printf "%s" "$0" > zero.txt'"#,
        &ctx,
        &JobControl::new(),
    )
    .unwrap();
    let zero = std::fs::read_to_string(dir.path().join("zero.txt")).unwrap();
    assert!(zero.starts_with(r#"{"jobName":"scripted","#), "{zero}");
}

#[test]
fn output_goes_to_the_task_s_own_files_and_later_runs_append() {
    let dir = sandbox();
    let ctx = script_context(dir.path());
    let script = r#"/bin/sh -c 'echo "to stdout"; echo "to stderr" >&2; printf "no newline"'"#;
    run(script, &ctx, &JobControl::new()).unwrap();
    run(script, &ctx, &JobControl::new()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stdout")).unwrap(),
        "to stdout\nno newlineto stdout\nno newline"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stderr")).unwrap(),
        "to stderr\nto stderr\n"
    );
}

#[test]
fn a_failure_quotes_the_end_of_what_this_run_wrote_to_stderr() {
    let dir = sandbox();
    let ctx = script_context(dir.path());
    let control = JobControl::new();
    let stderr = dir.path().join("stderr");
    // An earlier run's output is not this run's.
    run("/bin/sh -c 'echo earlier >&2'", &ctx, &control).unwrap();
    let result = run(
        "/bin/sh -c 'for i in $(seq 1 30); do echo \"line $i\" >&2; done; exit 3'",
        &ctx,
        &control,
    );
    let tail: Vec<String> = (11..=30).map(|i| format!("line {i}")).collect();
    assert_eq!(
        result,
        Err(JobError::Failed(format!(
            "script exited with status 3; the end of its stderr ({}):\n{}",
            stderr.display(),
            tail.join("\n")
        )))
    );
    // Bounded in bytes too: 30 lines of 300 bytes keep only the whole lines of the last 4 KiB.
    let result = run(
        "/bin/sh -c 'for i in $(seq 10 39); do printf \"%s%0296d\\n\" $i 0 >&2; done; exit 4'",
        &ctx,
        &control,
    );
    let Err(JobError::Failed(message)) = result else {
        panic!("{result:?}");
    };
    let (head, quoted) = message.split_once(":\n").unwrap();
    assert_eq!(
        head,
        format!(
            "script exited with status 4; the end of its stderr ({})",
            stderr.display()
        )
    );
    let lines: Vec<&str> = quoted.lines().collect();
    assert_eq!(lines.len(), 13, "{quoted}");
    assert!(lines.iter().all(|l| l.len() == 298), "{quoted}");
    assert!(lines[0].starts_with("27000"), "{quoted}");
    assert!(lines[12].starts_with("39000"), "{quoted}");
    // Nothing on stderr: the message is just the status.
    assert_eq!(
        run("/bin/sh -c 'exit 5'", &ctx, &control),
        Err(JobError::Failed("script exited with status 5".into()))
    );
}

#[test]
fn exit_status_maps_to_the_result() {
    let dir = sandbox();
    let ctx = script_context(dir.path());
    let control = JobControl::new();
    assert_eq!(run("/bin/sh -c 'exit 0'", &ctx, &control), Ok(()));
    assert_eq!(
        run("/bin/sh -c 'exit 3'", &ctx, &control),
        Err(JobError::Failed("script exited with status 3".into()))
    );
    assert_eq!(
        run("/bin/sh -c 'kill -USR1 $$'", &ctx, &control),
        Err(JobError::Failed(
            "script was killed by signal 10 (SIGUSR1)".into()
        ))
    );
}

#[test]
fn cancel_terminates_the_whole_process_group() {
    let dir = sandbox();
    let ctx = script_context(dir.path());
    let control = JobControl::new();
    let result = run_in_background(
        "/bin/sh -c 'echo $$ > leader.tmp && mv leader.tmp leader.pid; \
         sleep 1000 & echo $! > child.tmp && mv child.tmp child.pid; wait'",
        &ctx,
        &control,
    );
    let leader = wait_for_pid(dir.path(), "leader.pid");
    let grandchild = wait_for_pid(dir.path(), "child.pid");
    assert!(alive(leader) && alive(grandchild));

    control.cancel();
    let result = result
        .recv_timeout(DEADLINE)
        .expect("cancel did not stop the script");
    assert_eq!(
        result,
        Err(JobError::Failed(
            "script was killed by signal 15 (SIGTERM)".into()
        ))
    );
    assert!(!alive(leader));
    assert!(
        wait_until(DEADLINE, || !alive(grandchild)),
        "the script's child {grandchild} survived the cancel"
    );
}

#[test]
fn force_kill_reaches_a_tree_that_ignores_sigterm() {
    let dir = sandbox();
    let ctx = script_context(dir.path());
    let control = JobControl::new();
    let result = run_in_background(
        "/bin/sh -c 'trap \"\" TERM; sleep 1000 & echo $! > child.tmp && mv child.tmp child.pid; wait'",
        &ctx,
        &control,
    );
    let grandchild = wait_for_pid(dir.path(), "child.pid");

    control.cancel();
    // SIGTERM is ignored by the whole tree, so the script keeps running.
    assert!(result.recv_timeout(Duration::from_millis(200)).is_err());
    assert!(alive(grandchild));

    control.force_kill();
    let result = result
        .recv_timeout(DEADLINE)
        .expect("SIGKILL did not stop the script");
    assert_eq!(
        result,
        Err(JobError::Failed(
            "script was killed by signal 9 (SIGKILL)".into()
        ))
    );
    assert!(
        wait_until(DEADLINE, || !alive(grandchild)),
        "the script's child {grandchild} survived SIGKILL"
    );
}

#[test]
fn processes_left_behind_by_a_finished_script_are_killed() {
    let dir = sandbox();
    let ctx = script_context(dir.path());
    let (logs, _guard) = capture_logs();
    // The background sleep also holds the script's stdout open; the run must not wait for it.
    let result = run(
        "/bin/sh -c 'sleep 1000 & echo $! > child.tmp && mv child.tmp child.pid; exit 0'",
        &ctx,
        &JobControl::new(),
    );
    assert_eq!(result, Ok(()));
    let grandchild = wait_for_pid(dir.path(), "child.pid");
    assert!(
        wait_until(DEADLINE, || !alive(grandchild)),
        "the leftover child {grandchild} is still running"
    );
    assert!(
        logs.events().iter().all(|e| e.level > tracing::Level::WARN),
        "{:?}",
        logs.events()
    );
}

#[test]
fn unusable_command_lines_are_setup_errors() {
    let dir = sandbox();
    let ctx = script_context(dir.path());
    let control = JobControl::new();
    assert_eq!(
        run("run.sh 'unclosed", &ctx, &control),
        Err(JobError::Setup(
            "script command line \"run.sh 'unclosed\" has an unclosed quote or a trailing backslash"
                .into()
        ))
    );
    assert_eq!(
        run("   ", &ctx, &control),
        Err(JobError::Setup(
            "script command line \"   \" names no program".into()
        ))
    );
    let wd = dir.path().display();
    assert_eq!(
        run("./missing.sh --x", &ctx, &control),
        Err(JobError::Setup(format!(
            "cannot start script {wd}/missing.sh in {wd}: No such file or directory (os error 2)"
        )))
    );
}

#[test]
fn a_cancelled_task_never_starts_its_script() {
    let dir = sandbox();
    let ctx = script_context(dir.path());
    let control = JobControl::new();
    control.cancel();
    assert_eq!(
        run("/bin/sh -c 'touch started'", &ctx, &control),
        Err(JobError::Failed(
            "script not started: the task was cancelled".into()
        ))
    );
    assert!(!dir.path().join("started").exists());
}
