//! The two encodings the v1 HTTP APIs accept for calls and produce for events: protobuf and
//! Mesos' JSON mapping. The media type strings are compared by exact equality, as Mesos does:
//! `application/json; charset=utf-8` is neither.

use super::json::{self, JsonError};

pub const APPLICATION_PROTOBUF: &str = "application/x-protobuf";
pub const APPLICATION_JSON: &str = "application/json";

/// A wire encoding for calls and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    #[default]
    Protobuf,
    Json,
}

/// A body that is not a valid `M` in the given encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a valid {message} protobuf: {reason}")]
    Protobuf { message: String, reason: String },
    #[error("not a valid {message} JSON document: {source}")]
    Json {
        message: String,
        #[source]
        source: JsonError,
    },
}

impl Encoding {
    /// The exact media type string.
    pub fn media_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => APPLICATION_PROTOBUF,
            Encoding::Json => APPLICATION_JSON,
        }
    }

    /// The encoding named by a `Content-Type` value, compared exactly as Mesos does.
    pub fn from_content_type(value: &str) -> Option<Encoding> {
        match value {
            APPLICATION_PROTOBUF => Some(Encoding::Protobuf),
            APPLICATION_JSON => Some(Encoding::Json),
            _ => None,
        }
    }

    /// Encodes one message.
    pub fn encode<M: prost::Message + prost::Name>(self, message: &M) -> Vec<u8> {
        match self {
            Encoding::Protobuf => message.encode_to_vec(),
            Encoding::Json => json::to_json(message).into_bytes(),
        }
    }

    /// Decodes one message.
    pub fn decode<M: prost::Message + prost::Name + Default>(
        self,
        bytes: &[u8],
    ) -> Result<M, DecodeError> {
        match self {
            Encoding::Protobuf => M::decode(bytes).map_err(|error| DecodeError::Protobuf {
                message: M::full_name(),
                reason: error.to_string(),
            }),
            Encoding::Json => json::from_json(bytes).map_err(|source| DecodeError::Json {
                message: M::full_name(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_compare_exactly() {
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type("application/json"),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type("application/json; charset=utf-8"),
            None
        );
        assert_eq!(Encoding::from_content_type("Application/JSON"), None);
    }
}
