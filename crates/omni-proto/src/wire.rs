//! The scalars every event is made of: ids (UUID strings on the wire) and coded vocabularies
//! (int32 codes on the wire). One generic helper per direction, instead of a hand-written
//! conversion per field, keeps the per-event code to a list of field names.

use omni_core::{
    AgentId, AssignmentMethod, BaseStatus, Channel, ClosureReason, ConversationId, LinkEntity,
    MediaKind, MediaState, PresenceId, PresenceSource, QueueId, RecordId, RoutingMode, SessionNo,
    SessionRef, StatusReason, SupervisorId, TabOutcome, WorkstreamId,
};
use uuid::Uuid;

use crate::error::{DecodeError, FieldPath};

/// A domain id that travels as a UUID string.
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

/// The hyphenated lower-case form, written through a stack buffer: one allocation, no
/// formatting machinery.
pub(crate) fn id_string(id: impl WireId) -> String {
    id.uuid()
        .hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .to_owned()
}

/// An optional id; the empty string stands for `None`.
pub(crate) fn optional_id_string(id: Option<impl WireId>) -> String {
    id.map(id_string).unwrap_or_default()
}

// --- wire → domain ---------------------------------------------------------------------------

/// A required id: empty is missing, anything else must parse as a UUID.
pub(crate) fn parse_id<T: WireId>(text: &str, at: FieldPath) -> Result<T, DecodeError> {
    if text.is_empty() {
        return Err(DecodeError::Missing(at));
    }
    Uuid::try_parse(text)
        .map(T::from_uuid)
        .map_err(|_| DecodeError::NotAUuid {
            field: at,
            value: text.to_owned(),
        })
}

/// An optional id: empty is `None`.
pub(crate) fn parse_optional_id<T: WireId>(
    text: &str,
    at: FieldPath,
) -> Result<Option<T>, DecodeError> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse_id(text, at).map(Some)
    }
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
    conversation: &str,
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
