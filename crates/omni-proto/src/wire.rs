//! The scalars every event is made of: ids (16 bytes on the wire) and coded vocabularies
//! (int32 codes on the wire). One generic helper per direction, instead of a hand-written
//! conversion per field, keeps the per-event code to a list of field names.

use bytes::Bytes;
use omni_core::{
    AgentId, AssignmentMethod, BaseStatus, Channel, ClosureReason, ConversationId, LinkEntity,
    MediaKind, MediaState, PresenceId, PresenceSource, QueueId, RecordId, RoutingMode, SessionNo,
    SessionRef, StatusReason, SupervisorId, TabOutcome, WorkstreamId,
};
use uuid::Uuid;

use crate::error::{DecodeError, FieldPath};

/// A domain id that travels as the 16 bytes of its UUID.
pub(crate) trait WireId: Copy {
    fn uuid(self) -> Uuid;
    fn from_uuid(uuid: Uuid) -> Self;
}

impl WireId for Uuid {
    fn uuid(self) -> Uuid {
        self
    }
    fn from_uuid(uuid: Uuid) -> Self {
        uuid
    }
}

macro_rules! wire_ids {
    ($($id:ident),+) => {$(
        impl WireId for $id {
            fn uuid(self) -> Uuid {
                self.0
            }
            fn from_uuid(uuid: Uuid) -> Self {
                $id(uuid)
            }
        }
    )+};
}

wire_ids!(
    ConversationId,
    AgentId,
    QueueId,
    WorkstreamId,
    RecordId,
    SupervisorId,
    PresenceId
);

/// A domain vocabulary that travels as its int32 code (encoding uses the inherent `code()`). `NAME` is what errors call it.
pub(crate) trait Coded: Copy {
    const NAME: &'static str;
    fn from_code(code: i32) -> Option<Self>;
}

/// The core's coded enums already carry their codes; this only lends them the trait.
macro_rules! core_coded {
    ($($ty:ident),+) => {$(
        impl Coded for $ty {
            const NAME: &'static str = stringify!($ty);
            fn from_code(code: i32) -> Option<Self> {
                $ty::from_code(code)
            }
        }
    )+};
}

core_coded!(
    Channel,
    StatusReason,
    ClosureReason,
    BaseStatus,
    PresenceSource,
    MediaKind,
    MediaState,
    LinkEntity,
    AssignmentMethod,
    RoutingMode,
    TabOutcome
);

// --- domain → wire ---------------------------------------------------------------------------

/// The wire form of a UUID: its 16 bytes in RFC 4122 order (the order of the hyphenated text).
/// `.into()` makes it the `bytes::Bytes` of a field generated that way.
///
/// Every id of omnichannel.v1 travels this way, and so do the ids of any other schema that
/// shares the convention; [`uuid_from_bytes`] reads it back.
pub fn uuid_to_bytes(id: Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// A domain id in a `Vec<u8>` field (the bus contract's messages).
pub(crate) fn id_vec(id: impl WireId) -> Vec<u8> {
    uuid_to_bytes(id.uuid())
}

/// An optional domain id in a `Vec<u8>` field; empty stands for `None`.
pub(crate) fn optional_id_vec(id: Option<impl WireId>) -> Vec<u8> {
    id.map(id_vec).unwrap_or_default()
}

/// A domain id in a `Bytes` field (the events).
pub(crate) fn id_bytes(id: impl WireId) -> Bytes {
    uuid_to_bytes(id.uuid()).into()
}

/// An optional id; empty bytes stand for `None`.
pub(crate) fn optional_id_bytes(id: Option<impl WireId>) -> Bytes {
    id.map(id_bytes).unwrap_or_default()
}

// --- wire → domain ---------------------------------------------------------------------------

/// Reads a required id field written by [`uuid_to_bytes`]: empty is [`DecodeError::Missing`],
/// any length but 16 is [`DecodeError::NotAUuid`], both naming the field `at`.
pub fn uuid_from_bytes(bytes: &[u8], at: FieldPath) -> Result<Uuid, DecodeError> {
    match <[u8; 16]>::try_from(bytes) {
        Ok(raw) => Ok(Uuid::from_bytes(raw)),
        Err(_) if bytes.is_empty() => Err(DecodeError::Missing(at)),
        Err(_) => Err(DecodeError::NotAUuid {
            field: at,
            len: bytes.len(),
        }),
    }
}

/// Reads an optional id field: empty is `None`, else as [`uuid_from_bytes`].
pub fn optional_uuid_from_bytes(bytes: &[u8], at: FieldPath) -> Result<Option<Uuid>, DecodeError> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        uuid_from_bytes(bytes, at).map(Some)
    }
}

/// A required domain id.
pub(crate) fn parse_id<T: WireId>(bytes: &[u8], at: FieldPath) -> Result<T, DecodeError> {
    uuid_from_bytes(bytes, at).map(T::from_uuid)
}

/// An optional domain id: empty is `None`.
pub(crate) fn parse_optional_id<T: WireId>(
    bytes: &[u8],
    at: FieldPath,
) -> Result<Option<T>, DecodeError> {
    optional_uuid_from_bytes(bytes, at).map(|id| id.map(T::from_uuid))
}

/// A protobuf enum field: 0 is `*_UNSPECIFIED`, which means the writer did not set it.
pub(crate) fn parse_code<T: Coded>(code: i32, at: FieldPath) -> Result<T, DecodeError> {
    parse_present_code((code != 0).then_some(code), at)
}

/// An `optional int32` code field (a vocabulary whose code 0 is real): absent is missing.
pub(crate) fn parse_present_code<T: Coded>(
    code: Option<i32>,
    at: FieldPath,
) -> Result<T, DecodeError> {
    let code = code.ok_or(DecodeError::Missing(at))?;
    T::from_code(code).ok_or(DecodeError::UnknownCode {
        field: at,
        value: code,
        vocabulary: T::NAME,
    })
}

/// A session reference: sessions are numbered from 1, so number 0 is missing.
pub(crate) fn parse_session(
    conversation: &[u8],
    number: u32,
    conversation_at: FieldPath,
    number_at: FieldPath,
) -> Result<SessionRef, DecodeError> {
    let conversation = parse_id(conversation, conversation_at)?;
    if number == 0 {
        return Err(DecodeError::Missing(number_at));
    }
    Ok(SessionRef {
        conversation,
        number: SessionNo(number),
    })
}
