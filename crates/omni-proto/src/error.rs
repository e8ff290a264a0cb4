//! What can be wrong with bytes that claim to be an event, named precisely enough to find the
//! writer's mistake without a debugger.

use std::fmt;

use uuid::Uuid;

/// Where in an event a bad value sits: `Message.field`, or `Message.field.sub` inside a nested
/// message or oneof. Built only from `&'static str`s, so making one costs nothing on the
/// happy path; text is formatted only when an error is displayed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FieldPath {
    /// The protobuf message, e.g. `SessionAccepted`.
    pub message: &'static str,
    /// The field of that message, e.g. `agent_id`.
    pub field: &'static str,
    /// The field inside `field`, when `field` is a message (`ended_by` → `agent_id`).
    pub sub: Option<&'static str>,
}

impl FieldPath {
    /// The path of `field` in `message`.
    pub const fn new(message: &'static str, field: &'static str) -> FieldPath {
        FieldPath {
            message,
            field,
            sub: None,
        }
    }

    /// The path of `sub` inside this field.
    pub const fn sub(self, sub: &'static str) -> FieldPath {
        FieldPath {
            sub: Some(sub),
            ..self
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.message, self.field)?;
        match self.sub {
            Some(sub) => write!(f, ".{sub}"),
            None => Ok(()),
        }
    }
}

/// Why bytes could not be turned into an [`Envelope`](crate::Envelope).
///
/// Events are facts already judged by the engine, so decoding checks shape only (ids are ids,
/// codes are known, required parts are there), never business rules.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a protobuf message at all (truncated, corrupt, another format).
    #[error("bytes are not a protobuf omnichannel.v1.EventEnvelope: {0}")]
    NotProtobuf(#[from] prost::DecodeError),
    /// A required field is absent: an empty id, an enum at 0 (`*_UNSPECIFIED`), an unset
    /// oneof or nested message, a session number 0.
    #[error("{0} is missing")]
    Missing(FieldPath),
    /// An id field holds something that is not a UUID: ids are exactly 16 bytes.
    #[error("{field}: {len} bytes are not a UUID (an id is 16 bytes)")]
    NotAUuid { field: FieldPath, len: usize },
    /// A code this version does not know: a corrupt value, or one added by a newer schema.
    #[error("{field}: {value} is not a known {vocabulary}")]
    UnknownCode {
        field: FieldPath,
        value: i32,
        vocabulary: &'static str,
    },
    /// The envelope's `event` oneof is empty: most likely an event kind added by a newer
    /// schema, whose bytes protobuf skips as an unknown field. Reported, so that a reader too
    /// old for its log stops instead of folding an incomplete history.
    #[error("event envelope {event_id} carries no event this version knows (newer schema?)")]
    UnknownEvent { event_id: Uuid },
}
