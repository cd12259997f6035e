//! Stateless validation of calls and launches, with real Mesos' texts.
//!
//! Sources (apache/mesos 1.12): `src/master/validation.cpp` (`scheduler::call::validate`,
//! `framework::validate`, task and executor validators), `src/common/validation.cpp`
//! (`validateExecutorCall`, `validateID`), `src/common/roles.cpp`. Checks that need the
//! cluster's state (offers, known tasks, stream ids) live in `master.rs` and `agent.rs`.

use shardex_mesos::proto::v1::{self, executor, scheduler};
use shardex_mesos::uuid::is_valid_update_uuid;

/// Mesos' `NAME_MAX` bound on ids that become path components.
const NAME_MAX: usize = 255;

/// `common::validation::validateID`: ids become directory names on the agent.
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("ID must not be empty".to_owned());
    }
    if id.len() > NAME_MAX {
        return Err(format!("ID must not be greater than {NAME_MAX} characters"));
    }
    if id == "." || id == ".." {
        return Err(format!("'{id}' is disallowed"));
    }
    if id.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(format!("'{id}' contains invalid characters"));
    }
    Ok(())
}

/// A proto2 enum field holding a number the schema does not know reads as absent in C++
/// (the value goes to the unknown fields), so `has_type()` is false.
fn known_scheduler_type(call: &scheduler::Call) -> Option<scheduler::call::Type> {
    call.r#type
        .and_then(|n| scheduler::call::Type::try_from(n).ok())
}

fn known_executor_type(call: &executor::Call) -> Option<executor::call::Type> {
    call.r#type
        .and_then(|n| executor::call::Type::try_from(n).ok())
}

/// `scheduler::call::validate` (without authentication, which the embedded master does not do).
/// The HTTP layer prefixes errors with `Failed to validate scheduler::Call: `.
pub fn validate_scheduler_call(call: &scheduler::Call) -> Result<(), String> {
    use scheduler::call::Type;
    let Some(kind) = known_scheduler_type(call) else {
        return Err("Expecting 'type' to be present".to_owned());
    };
    if kind == Type::Subscribe {
        let Some(subscribe) = &call.subscribe else {
            return Err("Expecting 'subscribe' to be present".to_owned());
        };
        if subscribe.framework_info.id != call.framework_id {
            return Err("'framework_id' differs from 'subscribe.framework_info.id'".to_owned());
        }
        return Ok(());
    }
    if call.framework_id.is_none() {
        return Err("Expecting 'framework_id' to be present".to_owned());
    }
    let missing = |field: &str| Err(format!("Expecting '{field}' to be present"));
    match kind {
        Type::Subscribe | Type::Teardown | Type::Revive | Type::Suppress | Type::Unknown => Ok(()),
        Type::Accept if call.accept.is_none() => missing("accept"),
        Type::Decline if call.decline.is_none() => missing("decline"),
        Type::AcceptInverseOffers if call.accept_inverse_offers.is_none() => {
            missing("accept_inverse_offers")
        }
        Type::DeclineInverseOffers if call.decline_inverse_offers.is_none() => {
            missing("decline_inverse_offers")
        }
        Type::Kill if call.kill.is_none() => missing("kill"),
        Type::Shutdown if call.shutdown.is_none() => missing("shutdown"),
        Type::Acknowledge => match &call.acknowledge {
            None => missing("acknowledge"),
            Some(ack) if !is_valid_update_uuid(&ack.uuid) => Err("Not a valid UUID".to_owned()),
            Some(_) => Ok(()),
        },
        Type::AcknowledgeOperationStatus => match &call.acknowledge_operation_status {
            None => missing("acknowledge_operation_status"),
            Some(ack) if !is_valid_update_uuid(&ack.uuid) => Err("Not a valid UUID".to_owned()),
            Some(ack) if ack.agent_id.is_none() => missing("agent_id"),
            Some(_) => Ok(()),
        },
        Type::Reconcile if call.reconcile.is_none() => missing("reconcile"),
        Type::ReconcileOperations if call.reconcile_operations.is_none() => {
            missing("reconcile_operations")
        }
        Type::Message if call.message.is_none() => missing("message"),
        Type::Request if call.request.is_none() => missing("request"),
        Type::UpdateFramework => match &call.update_framework {
            None => missing("update_framework"),
            Some(update) if update.framework_info.id != call.framework_id => {
                Err("'framework_id' differs from 'update_framework.framework_info.id'".to_owned())
            }
            Some(_) => Ok(()),
        },
        _ => Ok(()),
    }
}

/// `common::validation::validateExecutorCall`. The HTTP layer prefixes errors with
/// `Failed to validate Executor::Call: `.
pub fn validate_executor_call(call: &executor::Call) -> Result<(), String> {
    use executor::call::Type;
    let Some(kind) = known_executor_type(call) else {
        return Err("Expecting 'type' to be present".to_owned());
    };
    match kind {
        Type::Subscribe if call.subscribe.is_none() => {
            Err("Expecting 'subscribe' to be present".to_owned())
        }
        Type::Update => {
            let Some(update) = &call.update else {
                return Err("Expecting 'update' to be present".to_owned());
            };
            let status = &update.status;
            let Some(uuid) = &status.uuid else {
                return Err("Expecting 'uuid' to be present".to_owned());
            };
            if !is_valid_update_uuid(uuid) {
                return Err("Not a valid UUID".to_owned());
            }
            if let Some(executor_id) = &status.executor_id
                && executor_id.value != call.executor_id.value
            {
                return Err(format!(
                    "ExecutorID in Call: {} does not match ExecutorID in TaskStatus: {}",
                    call.executor_id.value, executor_id.value
                ));
            }
            if status.source != Some(v1::task_status::Source::Executor as i32) {
                return Err(format!(
                    "Received Call from executor {} of framework {} with invalid source, \
                     expecting 'SOURCE_EXECUTOR'",
                    call.executor_id.value, call.framework_id.value
                ));
            }
            if status.state == v1::TaskState::TaskStaging as i32 {
                return Err(format!(
                    "Received TASK_STAGING from executor {} of framework {} which is not allowed",
                    call.executor_id.value, call.framework_id.value
                ));
            }
            Ok(())
        }
        Type::Message if call.message.is_none() => {
            Err("Expecting 'message' to be present".to_owned())
        }
        _ => Ok(()),
    }
}

/// `common/roles.cpp` `roles::validate`.
fn validate_role(role: &str) -> Result<(), String> {
    if role == "*" {
        return Ok(());
    }
    if role.is_empty() {
        return Err("Role names cannot be the empty string".to_owned());
    }
    if role.starts_with('/') {
        return Err(format!("Role '{role}' cannot start with a slash"));
    }
    if role.ends_with('/') {
        return Err(format!("Role '{role}' cannot end with a slash"));
    }
    if role.contains("//") {
        return Err(format!("Role '{role}' cannot contain two adjacent slashes"));
    }
    for component in role.split('/') {
        match component {
            "." => return Err(format!("Role '{role}' cannot include '.' as a component")),
            ".." => return Err(format!("Role '{role}' cannot include '..' as a component")),
            "*" => return Err(format!("Role '{role}' cannot include '*' as a component")),
            _ => {}
        }
        if component.starts_with('-') {
            return Err(format!(
                "Role component '{component}' is invalid because it starts with a dash"
            ));
        }
        if component
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\x7f')
        {
            return Err(format!(
                "Role component '{component}' is invalid because it contains backspace or \
                 whitespace"
            ));
        }
    }
    Ok(())
}

pub fn has_capability(
    info: &v1::FrameworkInfo,
    capability: v1::framework_info::capability::Type,
) -> bool {
    info.capabilities
        .iter()
        .any(|c| c.r#type == Some(capability as i32))
}

// `FrameworkInfo.role` is deprecated but still how a non-MULTI_ROLE framework names its role.
#[allow(deprecated)]
/// `framework::validate`: answered on SUBSCRIBE as `200` + `ERROR` event, not as a 4xx.
pub fn validate_framework_info(info: &v1::FrameworkInfo) -> Result<(), String> {
    use v1::framework_info::capability::Type;
    let multi_role = has_capability(info, Type::MultiRole);
    if multi_role {
        if info.role.is_some() {
            return Err(
                "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
                    .to_owned(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        let duplicates: Vec<&str> = info
            .roles
            .iter()
            .filter(|role| !seen.insert(role.as_str()))
            .map(String::as_str)
            .collect();
        if !duplicates.is_empty() {
            return Err(format!(
                "'FrameworkInfo.roles' contains duplicate items: {{ {} }}",
                duplicates.join(", ")
            ));
        }
        for role in &info.roles {
            validate_role(role)
                .map_err(|e| format!("'FrameworkInfo.roles' contains invalid role: {e}"))?;
        }
    } else {
        if !info.roles.is_empty() {
            return Err(
                "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE \
                 capable"
                    .to_owned(),
            );
        }
        validate_role(info.role.as_deref().unwrap_or("*"))
            .map_err(|e| format!("'FrameworkInfo.role' is not a valid role: {e}"))?;
    }
    if let Some(id) = &info.id
        && !id.value.is_empty()
    {
        validate_id(&id.value)?;
    }
    let timeout = info.failover_timeout.unwrap_or(0.0);
    if !timeout.is_finite() || timeout < 0.0 || timeout * 1e9 > i64::MAX as f64 {
        return Err(format!(
            "The framework failover_timeout ({timeout}) is invalid"
        ));
    }
    Ok(())
}

#[allow(deprecated)]
/// Whether the framework is offered the default role `*`, the only one the embedded agent has.
pub fn framework_takes_default_role(info: &v1::FrameworkInfo) -> bool {
    if has_capability(info, v1::framework_info::capability::Type::MultiRole) {
        info.roles.iter().any(|role| role == "*")
    } else {
        info.role.as_deref().unwrap_or("*") == "*"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_mesos_rules() {
        assert!(validate_id("exec-1").is_ok());
        assert_eq!(validate_id("").unwrap_err(), "ID must not be empty");
        assert_eq!(validate_id("..").unwrap_err(), "'..' is disallowed");
        assert_eq!(
            validate_id("a/b").unwrap_err(),
            "'a/b' contains invalid characters"
        );
        assert!(validate_id(&"x".repeat(256)).is_err());
    }

    #[test]
    fn executor_update_checks_come_in_mesos_order() {
        let mut call = executor::Call {
            executor_id: v1::ExecutorId { value: "e".into() },
            framework_id: v1::FrameworkId { value: "f".into() },
            r#type: Some(executor::call::Type::Update as i32),
            update: Some(executor::call::Update {
                status: v1::TaskStatus {
                    task_id: v1::TaskId { value: "t".into() },
                    state: v1::TaskState::TaskStaging as i32,
                    ..Default::default()
                },
            }),
            ..Default::default()
        };
        assert_eq!(
            validate_executor_call(&call).unwrap_err(),
            "Expecting 'uuid' to be present"
        );
        let status = &mut call.update.as_mut().unwrap().status;
        status.uuid = Some(shardex_mesos::uuid::new_update_uuid());
        assert!(
            validate_executor_call(&call)
                .unwrap_err()
                .ends_with("with invalid source, expecting 'SOURCE_EXECUTOR'")
        );
        call.update.as_mut().unwrap().status.source =
            Some(v1::task_status::Source::Executor as i32);
        assert_eq!(
            validate_executor_call(&call).unwrap_err(),
            "Received TASK_STAGING from executor e of framework f which is not allowed"
        );
        call.r#type = Some(99);
        assert_eq!(
            validate_executor_call(&call).unwrap_err(),
            "Expecting 'type' to be present"
        );
    }

    #[test]
    fn framework_roles() {
        let mut info = v1::FrameworkInfo {
            user: "u".into(),
            name: "n".into(),
            roles: vec!["a".into()],
            ..Default::default()
        };
        assert!(
            validate_framework_info(&info)
                .unwrap_err()
                .contains("MULTI_ROLE")
        );
        info.roles.clear();
        info.failover_timeout = Some(-1.0);
        assert_eq!(
            validate_framework_info(&info).unwrap_err(),
            "The framework failover_timeout (-1) is invalid"
        );
        info.failover_timeout = Some(3600.0);
        assert!(validate_framework_info(&info).is_ok());
        assert!(framework_takes_default_role(&info));
    }
}
