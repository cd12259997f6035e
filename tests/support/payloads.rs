//! Builders for Shardex's own pieces in end-to-end tests: task payloads for the example
//! plugins and scripts, and ExecutorInfos running the real `shardex-executor`.

use std::collections::BTreeMap;

use shardex::mesos::proto::v1;
use std::cell::Cell;

use shardex::payload::{
    ErrorPolicy, ExecutionType, Guards, Isolation, JobKind, JobSpec, ShardingContext, TaskPayload,
};

use super::{example_plugin, package_binary};

/// ExecutorInfo running the real executor with `flags`, the example plugins fetched into
/// `plugins/` of its sandbox.
pub fn shardex_executor_info(id: &str, flags: &str, plugins: &[&str]) -> v1::ExecutorInfo {
    let uris = plugins
        .iter()
        .map(|name| v1::command_info::Uri {
            value: example_plugin(name).display().to_string(),
            extract: Some(false),
            output_file: Some(format!("plugins/lib{name}.so")),
            ..Default::default()
        })
        .collect();
    super::executor_info(
        id,
        &format!("{} {flags}", package_binary("shardex-executor").display()),
        uris,
    )
}

thread_local! {
    /// The isolation the builders below give their jobs: tests that run in both modes set it
    /// (`in_both_modes!`) before they build anything.
    static ISOLATION: Cell<Isolation> = const { Cell::new(Isolation::Process) };
}

/// Sets the isolation of the jobs built on this thread from now on.
pub fn set_isolation(isolation: Isolation) {
    ISOLATION.with(|cell| cell.set(isolation));
}

/// The isolation the builders use on this thread.
pub fn isolation() -> Isolation {
    ISOLATION.with(Cell::get)
}

pub fn payload(task_id: &str, job: &str, item: u32, total: u32, spec: JobSpec) -> TaskPayload {
    TaskPayload {
        context: ShardingContext {
            task_id: task_id.into(),
            job_name: job.into(),
            sharding_total_count: total,
            job_parameter: String::new(),
            item_parameters: BTreeMap::from([(item, format!("p{item}"))]),
        },
        job: spec,
    }
}

pub fn plugin_job(plugin: &str, parameter: &str, policy: ErrorPolicy) -> JobSpec {
    JobSpec {
        kind: JobKind::Simple,
        execution: ExecutionType::Transient,
        plugin: Some(format!("plugins/lib{plugin}.so")),
        error_policy: policy,
        properties: BTreeMap::from([("parameter".into(), parameter.into())]),
        isolation: isolation(),
        guards: Guards::default(),
    }
}

/// A faulty-plugin task whose job parameter selects its behaviour.
pub fn faulty(task_id: &str, mode: &str, policy: ErrorPolicy) -> TaskPayload {
    let mut payload = payload(task_id, "faulty", 0, 1, plugin_job("faulty", mode, policy));
    payload.context.job_parameter = mode.into();
    payload
}

pub fn script(task_id: &str, command_line: &str) -> TaskPayload {
    payload(
        task_id,
        "script",
        0,
        1,
        JobSpec {
            kind: JobKind::Script {
                command_line: command_line.into(),
            },
            execution: ExecutionType::Transient,
            plugin: None,
            error_policy: ErrorPolicy::Fail,
            properties: BTreeMap::new(),
            isolation: isolation(),
            guards: Guards::default(),
        },
    )
}
