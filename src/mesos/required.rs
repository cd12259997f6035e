//! proto2 `required` fields, checked the way C++ protobuf's `IsInitialized()` checks them.
//!
//! prost decodes a message with missing required fields without complaint (they read as zero
//! values), but real Mesos refuses such a body. The embedded cluster uses [`missing_in`] to
//! refuse it the same way, and tests use it to prove our encoders never omit one.

use prost_reflect::{DynamicMessage, Kind, ReflectMessage as _, Value};

use super::json::declared_fields;
use super::proto::descriptor_of;

/// Paths of the required fields missing anywhere in `message`, in the format of
/// `InitializationErrorString()`: `update.status.uuid`, `resources[1].name`.
pub fn missing_fields(message: &DynamicMessage) -> Vec<String> {
    let mut missing = Vec::new();
    collect(message, "", &mut missing);
    missing
}

/// Decodes `bytes` as an `M` and lists its missing required fields. A body that is not a valid
/// encoding of `M` at all is an `Err`.
pub fn missing_in<M: prost::Name>(bytes: &[u8]) -> Result<Vec<String>, prost::DecodeError> {
    let message = DynamicMessage::decode(descriptor_of::<M>(), bytes)?;
    Ok(missing_fields(&message))
}

fn collect(message: &DynamicMessage, prefix: &str, missing: &mut Vec<String>) {
    for field in declared_fields(&message.descriptor()) {
        let path = format!("{prefix}{}", field.name());
        if field.is_required() && !message.has_field(&field) {
            missing.push(path);
            continue;
        }
        if !matches!(field.kind(), Kind::Message(_)) || !message.has_field(&field) {
            continue;
        }
        match message.get_field(&field).as_ref() {
            Value::Message(nested) => collect(nested, &format!("{path}."), missing),
            Value::List(items) => {
                for (index, item) in items.iter().enumerate() {
                    if let Value::Message(nested) = item {
                        collect(nested, &format!("{path}[{index}]."), missing);
                    }
                }
            }
            Value::Map(entries) => {
                for value in entries.values() {
                    if let Value::Message(nested) = value {
                        collect(nested, &format!("{path}.value."), missing);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1;
    use prost::Message;

    #[test]
    fn finds_missing_required_fields_at_any_depth() {
        // prost always writes required fields, so malformed bodies are built by hand:
        // TaskStatus { state: TASK_STARTING } with no task_id.
        assert_eq!(
            missing_in::<v1::TaskStatus>(&[0x10, 0x00]).unwrap(),
            vec!["task_id"]
        );
        // TaskInfo { name: "t", task_id {}, agent_id { value: "a" }, executor {} }.
        let body = [
            0x0a, 0x01, b't', 0x12, 0x00, 0x1a, 0x03, 0x0a, 0x01, b'a', 0x2a, 0x00,
        ];
        assert_eq!(
            missing_in::<v1::TaskInfo>(&body).unwrap(),
            vec!["task_id.value", "executor.executor_id"]
        );
        assert!(missing_in::<v1::TaskInfo>(b"not a protobuf message").is_err());
    }

    #[test]
    fn zero_valued_required_fields_count_as_present() {
        // proto2 keeps TASK_STARTING (0) and SCALAR (0) on the wire, so they are present.
        let status = v1::TaskStatus {
            task_id: v1::TaskId { value: "t".into() },
            state: v1::TaskState::TaskStarting as i32,
            ..Default::default()
        };
        assert!(
            missing_in::<v1::TaskStatus>(&status.encode_to_vec())
                .unwrap()
                .is_empty()
        );
    }
}
