//! ACCEPT and LAUNCH on the embedded master: offer validation (TASK_DROPPED /
//! REASON_INVALID_OFFERS), task and executor validation in `validation::task::validate`'s order
//! (TASK_ERROR / REASON_TASK_INVALID), the framework id and allocation role the master fills
//! in, and the hand-off to the agent.

use std::collections::HashSet;

use super::{Master, MasterTask, master_status, update_event};
use crate::resources::{Resources, inject_allocation_info};
use crate::runtime::{Ctx, ToAgent};
use crate::validation::validate_id;
use shardex_mesos::proto::v1::{self, TaskState, scheduler, task_status};

impl Master {
    pub(super) fn validate_offers(
        &self,
        framework_id: &str,
        offer_ids: &[v1::OfferId],
    ) -> Result<(), String> {
        if offer_ids.is_empty() {
            return Err("No offers specified".to_owned());
        }
        let mut seen = HashSet::new();
        for offer_id in offer_ids {
            if !seen.insert(offer_id.value.as_str()) {
                return Err(format!("Duplicate offer {} in offer list", offer_id.value));
            }
        }
        for offer_id in offer_ids {
            match self.offers.get(&offer_id.value) {
                None => return Err(format!("Offer {} is no longer valid", offer_id.value)),
                Some(offer) if offer.framework_id != framework_id => {
                    return Err(format!(
                        "Offer {} has invalid framework {} while framework {} is expected",
                        offer_id.value, offer.framework_id, framework_id
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub(super) fn accept(
        &mut self,
        ctx: &mut Ctx,
        framework_id: &str,
        accept: scheduler::call::Accept,
    ) {
        let refuse = Self::refuse_duration(accept.filters.as_ref());
        if let Err(error) = self.validate_offers(framework_id, &accept.offer_ids) {
            tracing::warn!(framework = %framework_id, %error, "ACCEPT used invalid offers");
            // Valid offers among them are discarded (their resources return, unfiltered).
            for offer_id in &accept.offer_ids {
                if self
                    .offers
                    .get(&offer_id.value)
                    .is_some_and(|o| o.framework_id == framework_id)
                {
                    self.offers.remove(&offer_id.value);
                }
            }
            let Some(framework) = self.frameworks.get(framework_id) else {
                return;
            };
            let state = if framework.partition_aware() {
                TaskState::TaskDropped
            } else {
                TaskState::TaskLost
            };
            for operation in &accept.operations {
                for task in operation_tasks(operation) {
                    framework.send(&update_event(master_status(
                        &task.task_id.value,
                        state,
                        &format!("Task launched with invalid offers: {error}"),
                        task_status::Reason::InvalidOffers,
                        Some(&task.agent_id.value),
                    )));
                }
            }
            return;
        }
        let mut remaining = Resources::default();
        for offer_id in &accept.offer_ids {
            if let Some(offer) = self.offers.remove(&offer_id.value) {
                remaining = remaining.plus(&offer.resources);
            }
        }
        for operation in accept.operations {
            let kind = operation
                .r#type
                .and_then(|t| v1::offer::operation::Type::try_from(t).ok());
            match kind {
                Some(v1::offer::operation::Type::Launch) => {
                    let tasks = operation.launch.map(|l| l.task_infos).unwrap_or_default();
                    if operation.id.is_some() {
                        self.task_errors(
                            framework_id,
                            &tasks,
                            "The `id` field cannot be set on LAUNCH operations",
                        );
                        continue;
                    }
                    for task in tasks {
                        remaining = self.launch(ctx, framework_id, task, remaining);
                    }
                }
                Some(v1::offer::operation::Type::LaunchGroup) => {
                    let tasks = operation
                        .launch_group
                        .map(|g| g.task_group.tasks)
                        .unwrap_or_default();
                    let Some(framework) = self.frameworks.get(framework_id) else {
                        continue;
                    };
                    for task in &tasks {
                        framework.send(&update_event(master_status(
                            &task.task_id.value,
                            TaskState::TaskError,
                            "LAUNCH_GROUP is not supported by the embedded cluster (it has no \
                             default executor)",
                            task_status::Reason::TaskGroupInvalid,
                            Some(&task.agent_id.value),
                        )));
                    }
                }
                _ => tracing::warn!(
                    framework = %framework_id,
                    "dropping an offer operation the embedded cluster does not support"
                ),
            }
        }
        // What was not used is declined with the ACCEPT's filters.
        self.add_filter(framework_id, remaining, refuse);
    }

    pub(super) fn task_errors(&self, framework_id: &str, tasks: &[v1::TaskInfo], message: &str) {
        if let Some(framework) = self.frameworks.get(framework_id) {
            for task in tasks {
                framework.send(&update_event(master_status(
                    &task.task_id.value,
                    TaskState::TaskError,
                    message,
                    task_status::Reason::TaskInvalid,
                    Some(&task.agent_id.value),
                )));
            }
        }
    }

    /// Validates and launches one task; returns what is left of the offered resources.
    pub(super) fn launch(
        &mut self,
        ctx: &mut Ctx,
        framework_id: &str,
        mut task: v1::TaskInfo,
        remaining: Resources,
    ) -> Resources {
        // The master fills in the executor's framework id and the allocation role before it
        // validates (`Master::accept`).
        if let Some(executor) = &mut task.executor {
            if executor.framework_id.is_none() {
                executor.framework_id = Some(v1::FrameworkId {
                    value: framework_id.to_owned(),
                });
            }
            inject_allocation_info(&mut executor.resources);
        }
        inject_allocation_info(&mut task.resources);
        let consumed = match self.validate_task(framework_id, &task, &remaining) {
            Ok(consumed) => consumed,
            Err(message) => {
                self.task_errors(framework_id, std::slice::from_ref(&task), &message);
                return remaining;
            }
        };
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return remaining;
        };
        let task_resources = Resources::from_protos(&task.resources).unwrap_or_default();
        if let Some(executor) = &task.executor {
            let executors = self
                .agent
                .executors
                .entry(framework_id.to_owned())
                .or_default();
            if !executors.contains_key(&executor.executor_id.value) {
                let resources = Resources::from_protos(&executor.resources).unwrap_or_default();
                executors.insert(
                    executor.executor_id.value.clone(),
                    (executor.clone(), resources),
                );
            }
        }
        framework.tasks.insert(
            task.task_id.value.clone(),
            MasterTask {
                resources: task_resources,
                executor_id: task.executor.as_ref().map(|e| e.executor_id.value.clone()),
                agent_id: self.agent.id.clone(),
                state: TaskState::TaskStaging as i32,
                status_update_state: None,
                status_update_uuid: None,
                latest: None,
            },
        );
        tracing::info!(framework = %framework_id, task = %task.task_id.value, "launching task");
        ctx.send_to_agent(ToAgent::RunTask {
            framework: framework.info.clone(),
            task,
        });
        remaining.minus(&consumed)
    }

    /// `validation::task::validate`, in Mesos' order; returns what the launch consumes.
    pub(super) fn validate_task(
        &self,
        framework_id: &str,
        task: &v1::TaskInfo,
        offered: &Resources,
    ) -> Result<Resources, String> {
        let framework = self
            .frameworks
            .get(framework_id)
            .ok_or_else(|| "Framework cannot be found".to_owned())?;
        validate_id(&task.task_id.value)?;
        if framework.tasks.contains_key(&task.task_id.value) {
            return Err(format!("Task has duplicate ID: {}", task.task_id.value));
        }
        if framework
            .unreachable_tasks
            .contains_key(&task.task_id.value)
        {
            return Err(format!(
                "Task reuses the ID of an unreachable task: {}",
                task.task_id.value
            ));
        }
        if task.agent_id.value != self.agent.id {
            return Err(format!(
                "Task uses invalid agent {} while agent {} is expected",
                task.agent_id.value, self.agent.id
            ));
        }
        if let Some(grace) = task
            .kill_policy
            .as_ref()
            .and_then(|k| k.grace_period.as_ref())
            && grace.nanoseconds < 0
        {
            return Err("Task's 'kill_policy.grace_period' must be non-negative".to_owned());
        }
        if task
            .max_completion_time
            .as_ref()
            .is_some_and(|d| d.nanoseconds < 0)
        {
            return Err("Task's `max_completion_time` must be non-negative".to_owned());
        }
        if task.resources.is_empty() {
            return Err("Task uses no resources".to_owned());
        }
        let mut total = Resources::from_protos(&task.resources)
            .map_err(|e| format!("Task uses invalid resources: {e}"))?;
        if task.executor.is_some() == task.command.is_some() {
            return Err(
                "Task should have at least one (but not both) of CommandInfo or ExecutorInfo \
                 present"
                    .to_owned(),
            );
        }
        if let Some(executor) = &task.executor {
            use v1::executor_info::Type as ExecutorType;
            let kind = executor.r#type.and_then(|t| ExecutorType::try_from(t).ok());
            if kind == Some(ExecutorType::Default) && executor.command.is_some() {
                return Err(
                    "'ExecutorInfo.command' must not be set for 'DEFAULT' executor".to_owned(),
                );
            }
            if kind == Some(ExecutorType::Custom) && executor.command.is_none() {
                return Err("'ExecutorInfo.command' must be set for 'CUSTOM' executor".to_owned());
            }
            validate_id(&executor.executor_id.value)?;
            if executor
                .shutdown_grace_period
                .as_ref()
                .is_some_and(|d| d.nanoseconds < 0)
            {
                return Err(
                    "ExecutorInfo's 'shutdown_grace_period' must be non-negative".to_owned(),
                );
            }
            let executor_framework = executor
                .framework_id
                .as_ref()
                .map(|id| id.value.as_str())
                .unwrap_or_default();
            if executor_framework != framework_id {
                return Err(format!(
                    "ExecutorInfo has an invalid FrameworkID (Actual: {executor_framework} vs \
                     Expected: {framework_id})"
                ));
            }
            let executor_resources = Resources::from_protos(&executor.resources)
                .map_err(|e| format!("Executor uses invalid resources: {e}"))?;
            let existing = self
                .agent
                .executors
                .get(framework_id)
                .and_then(|executors| executors.get(&executor.executor_id.value));
            if let Some((existing, _)) = existing
                && existing != executor
            {
                return Err(format!(
                    "ExecutorInfo is not compatible with existing ExecutorInfo with same \
                     ExecutorID.\n\
                     ------------------------------------------------------------\n\
                     Existing ExecutorInfo:\n{}\n\
                     ------------------------------------------------------------\n\
                     ExecutorInfo:\n{}\n\
                     ------------------------------------------------------------\n",
                    shardex_mesos::json::to_json(existing),
                    shardex_mesos::json::to_json(executor)
                ));
            }
            if kind.is_some() && kind != Some(ExecutorType::Custom) {
                return Err("'ExecutorInfo.type' must be 'CUSTOM'".to_owned());
            }
            if executor.command.is_none() {
                return Err("'ExecutorInfo.command' must be set".to_owned());
            }
            if existing.is_none() {
                total = total.plus(&executor_resources);
            }
        }
        if !offered.contains(&total) {
            return Err(format!(
                "Total resources {} required by task and its executor is more than available {}",
                total.display_allocated(),
                offered.display_allocated()
            ));
        }
        Ok(total)
    }
}

fn operation_tasks(operation: &v1::offer::Operation) -> Vec<v1::TaskInfo> {
    let mut tasks = Vec::new();
    if let Some(launch) = &operation.launch {
        tasks.extend(launch.task_infos.iter().cloned());
    }
    if let Some(group) = &operation.launch_group {
        tasks.extend(group.task_group.tasks.iter().cloned());
    }
    tasks
}
