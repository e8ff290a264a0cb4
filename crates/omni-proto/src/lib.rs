//! The protobuf wire format of omni's events (`proto/omnichannel/v1`), and the conversions
//! between it and the core's types.
//!
//! The generated types live in [`pb`]. Code outside this crate works with [`Envelope`]: turning
//! one into bytes cannot fail ([`encode`]), turning bytes back validates everything the
//! schema cannot ([`decode`]): ids must be UUIDs, codes must be known, required parts must be
//! there, and an event kind this version does not know is an error, never a silent skip, so a
//! reader too old for its log stops instead of folding an incomplete history.
//!
//! Decoding sits on the replay path (a target of a million events a second, decode and fold,
//! on one core), so the happy path formats nothing and allocates only what prost must.

mod decode;
mod encode;
mod error;
mod intake;
mod query;
mod wire;

#[cfg(test)]
mod tests;

use omni_core::{Actor, Event, EventKind};
use prost::Message;
use uuid::Uuid;

pub use error::{DecodeError, FieldPath};
pub use intake::{
    COMMAND_NAMES, CommandEnvelope, Committed, InternalCommand, Outcome, RequestError,
    accepted_reply, command_name, committed_event, decode_command, decode_reply, encode_command,
    rejected_reply, rejection_code, rejection_reply,
};
pub use query::{
    AgentQuery, AgentsQuery, BadQuery, ConversationQuery, ConversationsQuery, DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE, PresenceChange, QueryRequest, QueuesQuery, agent_page, agent_view,
    conversation_page, conversation_view, presence_view, query_error, query_rejected, query_reply,
    queue_view, session_view,
};

/// The types prost generates from `proto/omnichannel/v1/*.proto`; their documentation is the
/// schema's comments.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/omnichannel.v1.rs"));
}

/// One event of the log with its metadata: what [`pb::EventEnvelope`] carries, in the core's
/// types. The event's time (`event.at`) is the envelope's `occurred_at`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Envelope {
    /// This event's own id, a UUIDv7.
    pub event_id: Uuid,
    /// The stream it belongs to; [`stream_id_for`] gives the conventional one.
    pub stream_id: String,
    /// Shared by every event that one outside request caused.
    pub correlation_id: Uuid,
    /// The command or event that caused this one, if any.
    pub causation_id: Option<Uuid>,
    /// Who issued the command that produced the event.
    pub actor: Actor,
    pub event: Event,
}

/// The protobuf bytes of `envelope`.
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    pb::EventEnvelope::from(envelope).encode_to_vec()
}

/// Appends the protobuf bytes of `envelope` to `buf`, so a writer can reuse one buffer (clear
/// it between events) or pack several length-delimited frames into it.
pub fn encode_to(envelope: &Envelope, buf: &mut Vec<u8>) {
    pb::EventEnvelope::from(envelope)
        .encode(buf)
        .expect("prost fails only when the buffer cannot grow, and a Vec always can");
}

/// Reads one envelope from protobuf bytes, validating it.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    pb::EventEnvelope::decode(bytes)?.try_into()
}

/// The stream an event belongs to: `conversation-<id>` for anything about a conversation,
/// else `agent-<id>` for an agent's own events (their provisioning, presence, queue
/// membership), else `queue-<id>` for a queue's configuration, else `config` for the rest
/// (workstreams, custom presences). One conversation's or one agent's history is then one
/// stream, read in order without scanning the log.
pub fn stream_id_for(kind: &EventKind) -> String {
    if let Some(conversation) = kind.conversation() {
        stream_name("conversation-", conversation.0)
    } else if let Some(agent) = kind.agent() {
        stream_name("agent-", agent.0)
    } else if let EventKind::QueueConfigured(queue) = kind {
        stream_name("queue-", queue.id.0)
    } else {
        "config".to_owned()
    }
}

/// `prefix` then the hyphenated id, built in one allocation.
fn stream_name(prefix: &str, id: Uuid) -> String {
    let mut name = String::with_capacity(prefix.len() + uuid::fmt::Hyphenated::LENGTH);
    name.push_str(prefix);
    name.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    name
}
