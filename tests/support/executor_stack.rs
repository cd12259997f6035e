//! The real `shardex-executor` on the embedded cluster, driven by a hand-rolled framework: a
//! [`Stack`] launches tasks, finds sandboxes and reads back every call the agent received, and
//! [`in_both_modes!`](in_both_modes) runs a test with jobs in worker processes and on threads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use shardex::mesos::proto::v1::{self, TaskState, executor, task_status};
use shardex::mesos::{Encoding, uuid};
use shardex::payload::TaskPayload;

use super::{SOON, TestCluster, TestFramework, framework_info, state};

/// A cluster, a subscribed framework and the agent id.
pub struct Stack {
    pub test: TestCluster,
    pub framework: TestFramework,
    pub agent_id: String,
}

pub async fn stack(checkpoint: bool) -> Stack {
    stack_with(checkpoint, |_| {}).await
}

pub async fn stack_with(
    checkpoint: bool,
    tune: impl FnOnce(&mut shardex::local::LocalClusterConfig),
) -> Stack {
    let test = TestCluster::start_with(tune).await;
    let mut info = framework_info("executor-tests");
    info.checkpoint = Some(checkpoint);
    let framework = TestFramework::subscribe(&test.cluster.master_url(), info, Encoding::Protobuf)
        .await
        .expect("framework subscribes");
    let agent_id = test.cluster.agent_id().to_owned();
    Stack {
        test,
        framework,
        agent_id,
    }
}

pub fn task(stack: &Stack, executor: &v1::ExecutorInfo, payload: &TaskPayload) -> v1::TaskInfo {
    let mut info = super::task_info(&payload.context.task_id, &stack.agent_id, executor, "");
    info.data = Some(payload.encode().expect("valid payload"));
    info
}

impl Stack {
    pub async fn launch(&mut self, tasks: Vec<v1::TaskInfo>) {
        let offer = self.framework.next_offer().await;
        self.framework
            .launch(&offer, tasks)
            .await
            .expect("ACCEPT is taken");
    }

    pub fn sandbox(&self, executor_id: &str) -> PathBuf {
        self.test
            .cluster
            .work_dir()
            .join("slaves")
            .join(&self.agent_id)
            .join("frameworks")
            .join(&self.framework.framework_id)
            .join("executors")
            .join(executor_id)
            .join("runs/latest")
    }

    /// The work directory of one task: `tasks/<task id>` in its executor's sandbox.
    pub fn task_dir(&self, executor_id: &str, task_id: &str) -> PathBuf {
        self.sandbox(executor_id).join("tasks").join(task_id)
    }

    /// Waits for the FAILURE event of `executor_id`; returns its wait status.
    pub async fn executor_exit(&mut self, executor_id: &str) -> i32 {
        let id = executor_id.to_owned();
        let event = self
            .framework
            .wait_for(&format!("FAILURE of {executor_id}"), SOON, move |e| {
                e.failure
                    .as_ref()
                    .is_some_and(|f| f.executor_id.as_ref().is_some_and(|x| x.value == id))
            })
            .await;
        event
            .failure
            .and_then(|f| f.status)
            .expect("FAILURE has a status")
    }

    /// Every UPDATE the executor made for `task_id`, as (state, message), from the calls the
    /// agent received (UPDATE calls and updates replayed inside SUBSCRIBE), each uuid once.
    pub async fn sent_updates(&self, task_id: &str) -> Vec<(TaskState, Option<String>)> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for status in all_statuses(&self.executor_calls().await) {
            if status.task_id.value == task_id && !seen.contains(&status.uuid) {
                seen.push(status.uuid.clone());
                out.push((state(&status), status.message.clone()));
            }
        }
        out
    }

    pub async fn executor_calls(&self) -> Vec<executor::Call> {
        self.test
            .cluster
            .executor_calls()
            .await
            .expect("call log")
            .into_iter()
            .filter_map(|observed| observed.call)
            .collect()
    }

    /// Calls of one executor, by type.
    pub async fn calls_of(
        &self,
        executor_id: &str,
        kind: executor::call::Type,
    ) -> Vec<executor::Call> {
        self.executor_calls()
            .await
            .into_iter()
            .filter(|call| {
                call.executor_id.value == executor_id && call.r#type == Some(kind as i32)
            })
            .collect()
    }

    /// The protocol rules every executor update must follow, over every call the agent got.
    pub async fn assert_protocol_hygiene(&self) {
        let calls = self.executor_calls().await;
        let mut by_uuid: BTreeMap<Vec<u8>, (String, i32, Option<String>)> = BTreeMap::new();
        for status in all_statuses(&calls) {
            assert_eq!(
                status.source,
                Some(task_status::Source::Executor as i32),
                "{status:?}"
            );
            let id = status.uuid.clone().expect("every update has a uuid");
            assert!(uuid::is_valid_update_uuid(&id), "16-byte uuid: {status:?}");
            assert_ne!(state(&status), TaskState::TaskStaging);
            assert!(
                status.timestamp.is_some(),
                "the executor stamps its updates"
            );
            let what = (
                status.task_id.value.clone(),
                status.state,
                status.message.clone(),
            );
            // Re-sent updates are byte-identical: one uuid, one meaning.
            if let Some(previous) = by_uuid.insert(id, what.clone()) {
                assert_eq!(previous, what, "a uuid was reused for another update");
            }
        }
    }
}

/// Statuses carried by UPDATE calls and inside SUBSCRIBE's unacknowledged_updates.
pub fn all_statuses(calls: &[executor::Call]) -> Vec<v1::TaskStatus> {
    let mut out = Vec::new();
    for call in calls {
        if let Some(update) = &call.update {
            out.push(update.status.clone());
        }
        if let Some(subscribe) = &call.subscribe {
            out.extend(
                subscribe
                    .unacknowledged_updates
                    .iter()
                    .map(|u| u.status.clone()),
            );
        }
    }
    out
}

pub fn states(updates: &[(TaskState, Option<String>)]) -> Vec<TaskState> {
    updates.iter().map(|(s, _)| *s).collect()
}

/// Runs each named test in both isolation modes, as `thread_isolation::<name>` and
/// `process_isolation::<name>` (invoke it at the root of the test crate).
#[allow(unused_macros)]
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod thread_isolation {
            $(
                #[tokio::test]
                async fn $name() {
                    super::support::set_isolation(shardex::payload::Isolation::Thread);
                    super::$name().await
                }
            )*
        }
        mod process_isolation {
            $(
                #[tokio::test]
                async fn $name() {
                    super::support::set_isolation(shardex::payload::Isolation::Process);
                    super::$name().await
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use in_both_modes;
