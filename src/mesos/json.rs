//! Mesos' JSON mapping of the v1 protobuf messages (stout's `protobuf.hpp`), in both directions.
//!
//! This is not the proto3 canonical JSON mapping. What Mesos does, and so what we do:
//! - keys are proto field names (snake_case), written in the order the .proto *declares* them;
//! - a field is written when set, and also when unset if it has an explicit `[default = …]` and
//!   is not deprecated (so `"extract":true`, `"shell":true`, `"type":"VALUE"` appear even though
//!   they are absent from the protobuf encoding); empty repeated fields are left out;
//! - enums are their names, `bytes` are standard base64 with padding, doubles are written like
//!   rapidjson does (`32.0`, `0.1`, `1e30`), 64-bit integers as plain numbers.
//!
//! Reading is lenient the way stout is: unknown keys are ignored; an unknown enum name leaves an
//! optional field unset; numbers and booleans may be given as strings; doubles accept
//! `"Infinity"`; base64 may omit its padding; `null` means unset; a single value is accepted for
//! a repeated field. Type mismatches fail with stout's messages ("Not expecting a JSON number
//! for field 'state'"), and a message missing required fields fails like `IsInitialized()`.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _, Value,
};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::fmt::Write as _;

use super::proto::descriptor_of;
use super::required;

/// Why a JSON document could not become a message. The texts are stout's, so an HTTP layer can
/// put them behind Mesos' own prefixes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("{0}")]
    Syntax(String),
    #[error("Expecting a JSON object")]
    NotAnObject,
    #[error("{0}")]
    Field(String),
    #[error("Missing required fields: {}", .0.join(", "))]
    MissingRequired(Vec<String>),
}

const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Renders a message as Mesos renders it.
pub fn to_json<M: prost::Message + prost::Name>(message: &M) -> String {
    let descriptor = descriptor_of::<M>();
    // A message we just encoded always decodes against its own descriptor.
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a generated message decodes against its own descriptor");
    let mut out = String::new();
    write_message(&dynamic, &mut out);
    out
}

/// Renders a message as a `serde_json` value (same rules as [`to_json`]).
pub fn to_json_value<M: prost::Message + prost::Name>(message: &M) -> Json {
    serde_json::from_str(&to_json(message)).expect("to_json writes valid JSON")
}

/// Parses a JSON document into a message, as Mesos parses request bodies.
pub fn from_json<M: prost::Message + prost::Name + Default>(text: &[u8]) -> Result<M, JsonError> {
    let value: Json =
        serde_json::from_slice(text).map_err(|error| JsonError::Syntax(error.to_string()))?;
    from_json_value(&value)
}

/// Parses an already-parsed JSON value into a message.
pub fn from_json_value<M: prost::Message + prost::Name + Default>(
    value: &Json,
) -> Result<M, JsonError> {
    let Json::Object(object) = value else {
        return Err(JsonError::NotAnObject);
    };
    let mut dynamic = DynamicMessage::new(descriptor_of::<M>());
    parse_object(&mut dynamic, object)?;
    let missing = required::missing_fields(&dynamic);
    if !missing.is_empty() {
        return Err(JsonError::MissingRequired(missing));
    }
    dynamic
        .transcode_to::<M>()
        .map_err(|error| JsonError::Field(error.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Fields declared in proto/ only because real Mesos sends them in protobuf (v0 leftovers its
/// v1 conversion keeps); its JSON renderer uses the upstream v1 descriptors and never writes them.
const V0_ONLY_FIELDS: &[(&str, u32)] = &[("mesos.v1.AgentInfo", 7)];

fn write_message(message: &DynamicMessage, out: &mut String) {
    let descriptor = message.descriptor();
    out.push('{');
    let mut first = true;
    for field in declared_fields(&descriptor) {
        if V0_ONLY_FIELDS.contains(&(descriptor.full_name(), field.number())) {
            continue;
        }
        let value = if field.is_list() || field.is_map() {
            let value = message.get_field(&field);
            let empty = match value.as_ref() {
                Value::List(items) => items.is_empty(),
                Value::Map(entries) => entries.is_empty(),
                _ => false,
            };
            if empty {
                continue;
            }
            value
        } else if message.has_field(&field) || has_explicit_default(&field) {
            message.get_field(&field)
        } else {
            continue;
        };
        if !first {
            out.push(',');
        }
        first = false;
        write_string(field.name(), out);
        out.push(':');
        write_value(&field.kind(), &value, out);
    }
    out.push('}');
}

/// Fields in the order the .proto declares them (what Mesos' JSON output follows).
pub(crate) fn declared_fields(descriptor: &MessageDescriptor) -> Vec<FieldDescriptor> {
    descriptor
        .descriptor_proto()
        .field
        .iter()
        .filter_map(|raw| descriptor.get_field(raw.number() as u32))
        .collect()
}

fn has_explicit_default(field: &FieldDescriptor) -> bool {
    let raw = field.field_descriptor_proto();
    let deprecated = raw
        .options
        .as_ref()
        .and_then(|options| options.deprecated)
        .unwrap_or(false);
    raw.default_value.is_some() && !deprecated
}

fn write_value(kind: &Kind, value: &Value, out: &mut String) {
    match value {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I32(n) => write!(out, "{n}").unwrap_or(()),
        Value::I64(n) => write!(out, "{n}").unwrap_or(()),
        Value::U32(n) => write!(out, "{n}").unwrap_or(()),
        Value::U64(n) => write!(out, "{n}").unwrap_or(()),
        Value::F32(n) => out.push_str(&format_double(f64::from(*n))),
        Value::F64(n) => out.push_str(&format_double(*n)),
        Value::String(s) => write_string(s, out),
        Value::Bytes(b) => write_string(&base64::engine::general_purpose::STANDARD.encode(b), out),
        Value::EnumNumber(number) => match kind {
            Kind::Enum(enum_descriptor) => match enum_descriptor.get_value(*number) {
                Some(name) => write_string(name.name(), out),
                None => write!(out, "{number}").unwrap_or(()),
            },
            _ => write!(out, "{number}").unwrap_or(()),
        },
        Value::Message(message) => write_message(message, out),
        Value::List(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(kind, item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let Kind::Message(entry) = kind else {
                out.push_str("{}");
                return;
            };
            let value_kind = entry.map_entry_value_field().kind();
            let mut keys: Vec<&MapKey> = entries.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                let text = match key {
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                    MapKey::String(s) => s.clone(),
                };
                write_string(&text, out);
                out.push(':');
                write_value(&value_kind, &entries[key], out);
            }
            out.push('}');
        }
    }
}

fn write_string(text: &str, out: &mut String) {
    // serde_json escapes exactly what JSON requires.
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned()));
}

/// Formats a double the way rapidjson's `Writer::Double` does: the shortest digits that read
/// back to the same value, laid out by rapidjson's `Prettify` (`32.0`, `0.001`, `1e30`).
pub fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_owned();
    }
    // `{:e}` gives the shortest round-trip digits: "d.ddddde±x".
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let length = digits.len() as i32;
    // value = digits × 10^k; kk is the position of the decimal point.
    let k = exponent - (length - 1);
    let kk = length + k;
    let mut out = String::new();
    if value < 0.0 {
        out.push('-');
    }
    if k >= 0 && kk <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', k as usize));
        out.push_str(".0");
    } else if 0 < kk && kk <= 21 {
        out.push_str(&digits[..kk as usize]);
        out.push('.');
        out.push_str(&digits[kk as usize..]);
    } else if -6 < kk && kk <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-kk) as usize));
        out.push_str(&digits);
    } else if length == 1 {
        write!(out, "{digits}e{}", kk - 1).unwrap_or(());
    } else {
        write!(out, "{}.{}e{}", &digits[..1], &digits[1..], kk - 1).unwrap_or(());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Reading

fn parse_object(
    message: &mut DynamicMessage,
    object: &serde_json::Map<String, Json>,
) -> Result<(), JsonError> {
    let descriptor = message.descriptor();
    for (name, value) in object {
        // Unknown names are ignored, as stout does (so a camelCase key is silently lost).
        if let Some(field) = descriptor.get_field_by_name(name) {
            parse_field(message, &field, value)?;
        }
    }
    Ok(())
}

fn parse_field(
    message: &mut DynamicMessage,
    field: &FieldDescriptor,
    value: &Json,
) -> Result<(), JsonError> {
    match value {
        Json::Null => Ok(()),
        Json::Array(items) => {
            if !field.is_list() {
                return Err(mismatch("array", field));
            }
            for item in items {
                parse_field(message, field, item)?;
            }
            Ok(())
        }
        Json::Object(object) if field.is_map() => parse_map(message, field, object),
        _ => {
            let Some(parsed) = parse_scalar_or_message(field, value)? else {
                return Ok(());
            };
            if field.is_list() {
                if let Value::List(items) = message.get_field_mut(field) {
                    items.push(parsed);
                }
            } else {
                message.set_field(field, parsed);
            }
            Ok(())
        }
    }
}

fn parse_map(
    message: &mut DynamicMessage,
    field: &FieldDescriptor,
    object: &serde_json::Map<String, Json>,
) -> Result<(), JsonError> {
    let Kind::Message(entry) = field.kind() else {
        return Err(mismatch("object", field));
    };
    let key_field = entry.map_entry_key_field();
    let value_field = entry.map_entry_value_field();
    let mut entries = HashMap::new();
    for (key, value) in object {
        let key = match parse_scalar_or_message(&key_field, &Json::String(key.clone()))? {
            Some(Value::String(s)) => MapKey::String(s),
            Some(Value::Bool(b)) => MapKey::Bool(b),
            Some(Value::I32(n)) => MapKey::I32(n),
            Some(Value::I64(n)) => MapKey::I64(n),
            Some(Value::U32(n)) => MapKey::U32(n),
            Some(Value::U64(n)) => MapKey::U64(n),
            _ => continue,
        };
        if let Some(value) = parse_scalar_or_message(&value_field, value)? {
            entries.insert(key, value);
        }
    }
    if let Value::Map(existing) = message.get_field_mut(field) {
        existing.extend(entries);
    }
    Ok(())
}

/// One non-array JSON value for `field`. `Ok(None)` means "leave unset" (unknown enum name).
fn parse_scalar_or_message(
    field: &FieldDescriptor,
    value: &Json,
) -> Result<Option<Value>, JsonError> {
    let kind = field.kind();
    match value {
        Json::Object(object) => match kind {
            Kind::Message(descriptor) => {
                let mut nested = DynamicMessage::new(descriptor);
                parse_object(&mut nested, object)?;
                Ok(Some(Value::Message(nested)))
            }
            _ => Err(mismatch("object", field)),
        },
        Json::String(text) => parse_string(field, &kind, text),
        Json::Number(number) => parse_number(field, &kind, number).map(Some),
        Json::Bool(b) => match kind {
            Kind::Bool => Ok(Some(Value::Bool(*b))),
            _ => Err(mismatch("boolean", field)),
        },
        Json::Array(_) => Err(mismatch("array", field)),
        Json::Null => Ok(None),
    }
}

fn parse_string(
    field: &FieldDescriptor,
    kind: &Kind,
    text: &str,
) -> Result<Option<Value>, JsonError> {
    match kind {
        Kind::String => Ok(Some(Value::String(text.to_owned()))),
        Kind::Bytes => BASE64_LENIENT
            .decode(text)
            .map(|bytes| Some(Value::Bytes(bytes.into())))
            .map_err(|error| {
                JsonError::Field(format!(
                    "Failed to base64 decode bytes field '{}': {}",
                    field.name(),
                    describe_base64_error(&error)
                ))
            }),
        Kind::Enum(descriptor) => match descriptor.get_value_by_name(text) {
            Some(value) => Ok(Some(Value::EnumNumber(value.number()))),
            None if field.is_required() => Err(JsonError::Field(format!(
                "Failed to find enum for '{text}'"
            ))),
            // proto2 semantics: an unknown name on an optional field is dropped.
            None => Ok(None),
        },
        Kind::Double | Kind::Float if text == "Infinity" => {
            Ok(Some(float_value(kind, f64::INFINITY)))
        }
        Kind::Double | Kind::Float if text == "-Infinity" => {
            Ok(Some(float_value(kind, f64::NEG_INFINITY)))
        }
        Kind::Bool => match text {
            "true" => Ok(Some(Value::Bool(true))),
            "false" => Ok(Some(Value::Bool(false))),
            _ => Err(JsonError::Field(format!(
                "Failed to parse '{text}' as a JSON boolean for field '{}'",
                field.name()
            ))),
        },
        Kind::Message(_) => Err(mismatch("string", field)),
        _ => {
            let number: serde_json::Number = text.trim().parse().map_err(|_| {
                JsonError::Field(format!(
                    "Failed to parse '{text}' as a JSON number for field '{}'",
                    field.name()
                ))
            })?;
            parse_number(field, kind, &number).map(Some)
        }
    }
}

fn parse_number(
    field: &FieldDescriptor,
    kind: &Kind,
    number: &serde_json::Number,
) -> Result<Value, JsonError> {
    let as_f64 = number.as_f64().unwrap_or(0.0);
    // Like stout's JSON::Number::as<T>(), fractional input is truncated toward zero.
    let as_i64 = number.as_i64().unwrap_or(as_f64 as i64);
    let as_u64 = number.as_u64().unwrap_or(as_f64 as u64);
    Ok(match kind {
        Kind::Double | Kind::Float => float_value(kind, as_f64),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(as_i64),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(as_u64),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(as_i64 as i32),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(as_u64 as u32),
        _ => return Err(mismatch("number", field)),
    })
}

fn float_value(kind: &Kind, value: f64) -> Value {
    match kind {
        Kind::Float => Value::F32(value as f32),
        _ => Value::F64(value),
    }
}

fn mismatch(json_type: &str, field: &FieldDescriptor) -> JsonError {
    JsonError::Field(format!(
        "Not expecting a JSON {json_type} for field '{}'",
        field.name()
    ))
}

fn describe_base64_error(error: &base64::DecodeError) -> String {
    match error {
        base64::DecodeError::InvalidByte(_, byte) => {
            format!("Invalid character '{}'", char::from(*byte))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{self, executor};

    #[test]
    fn large_doubles_survive_a_round_trip() {
        // Found by the `json` fuzz target: with serde_json's default (not correctly rounded)
        // number parser, these read back as a neighbouring double.
        for text in [
            "12633744574332333333799.1",
            "1.2633744574332333e22",
            "1888888888888888975436",
        ] {
            let value: f64 = serde_json::from_str(text).unwrap();
            let again: f64 = serde_json::from_str(&format_double(value)).unwrap();
            assert_eq!(again.to_bits(), value.to_bits(), "{text}");
        }
    }

    #[test]
    fn doubles_are_written_like_rapidjson() {
        assert_eq!(format_double(32.0), "32.0");
        assert_eq!(format_double(0.1), "0.1");
        assert_eq!(format_double(4096.0), "4096.0");
        assert_eq!(format_double(3600.0), "3600.0");
        assert_eq!(format_double(0.001234), "0.001234");
        assert_eq!(format_double(1e-7), "1e-7");
        assert_eq!(format_double(1e16), "10000000000000000.0");
        assert_eq!(format_double(1.234e33), "1.234e33");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(1763927537.123456), "1763927537.123456");
    }

    #[test]
    fn unset_defaults_are_written_and_deprecated_ones_are_not() {
        let uri = v1::command_info::Uri {
            value: "/tmp/x".into(),
            executable: Some(true),
            ..Default::default()
        };
        assert_eq!(
            to_json(&uri),
            r#"{"value":"/tmp/x","executable":true,"extract":true}"#
        );
        // Resource.role has a default but is deprecated: not written when unset.
        let resource = v1::Resource {
            name: "cpus".into(),
            r#type: v1::value::Type::Scalar as i32,
            scalar: Some(v1::value::Scalar { value: 0.1 }),
            ..Default::default()
        };
        assert_eq!(
            to_json(&resource),
            r#"{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}"#
        );
    }

    #[test]
    fn reads_leniently_like_stout() {
        let call: executor::Call = from_json(
            br#"{"executor_id":{"value":"e"},"framework_id":{"value":"f"},"type":"UPDATE",
                "no_such_field":{"x":1},
                "update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING",
                "source":"SOURCE_EXECUTOR","uuid":"SxQ7TVUZSJq1YiRZWT2+SA","timestamp":"12.5"}}}"#,
        )
        .unwrap();
        let status = call.update.unwrap().status;
        assert_eq!(status.uuid.unwrap().len(), 16);
        assert_eq!(status.timestamp, Some(12.5));
        assert_eq!(status.state, v1::TaskState::TaskRunning as i32);
    }

    #[test]
    fn refuses_with_stouts_messages() {
        let error = from_json::<executor::Call>(
            br#"{"executor_id":{"value":"e"},"framework_id":{"value":"f"},"type":"UPDATE",
                "update":{"status":{"task_id":{"value":"t"},"state":1}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Not expecting a JSON number for field 'state'"
        );
        let error = from_json::<executor::Call>(
            br#"{"executor_id":{"value":"e"},"framework_id":{"value":"f"},"type":"UPDATE",
                "update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING",
                "uuid":"6b9ae63c-4fae-4a14-987e-e31823ab4ea8"}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Failed to base64 decode bytes field 'uuid': Invalid character '-'"
        );
        // An unknown enum name leaves the optional field unset.
        let call: executor::Call = from_json(
            br#"{"executor_id":{"value":"e"},"framework_id":{"value":"f"},"type":"NO_SUCH"}"#,
        )
        .unwrap();
        assert_eq!(call.r#type, None);
        let error = from_json::<executor::Call>(br#"{"type":"SUBSCRIBE"}"#).unwrap_err();
        assert_eq!(
            error,
            JsonError::MissingRequired(vec!["executor_id".into(), "framework_id".into()])
        );
        assert_eq!(
            from_json::<executor::Call>(b"[1]").unwrap_err(),
            JsonError::NotAnObject
        );
    }
}
