//! Queries on the wire (`query.proto`): what desktops, dashboards and integrators ask the
//! projector and the presence service, and the read models they get back. Like commands,
//! request bytes become domain values only here, and every error names the field; views are
//! built here from the core's projections, so no service touches a generated type's fields.

use omni_core::{
    Agent, AgentId, BaseStatus, Channel, Conversation, ConversationId, ConversationStatus,
    PresenceId, Queue, QueueId, Session, SessionRole, SessionStatus, World,
};
use prost::Message;
use uuid::Uuid;

use crate::encode::{linked_record, presence};
use crate::error::{DecodeError, FieldPath};
use crate::pb;
use crate::wire::{id_vec, parse_id, parse_optional_id};

#[cfg(test)]
mod tests;

/// Results per page when a list request says 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page a list request may ask for.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Why bytes sent as a query could not be read. Displayed as one sentence naming the field.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum BadQuery {
    /// The bytes are not the expected protobuf message.
    #[error("bytes are not a protobuf omnichannel.v1.{message}: {source}")]
    NotProtobuf {
        message: &'static str,
        source: prost::DecodeError,
    },
    /// A field is missing or malformed.
    #[error(transparent)]
    Field(#[from] DecodeError),
    /// A number outside what the field allows.
    #[error("{field}: {value} is out of range ({allowed})")]
    OutOfRange {
        field: FieldPath,
        value: u64,
        allowed: &'static str,
    },
}

impl BadQuery {
    /// The field at fault, when it is one field.
    pub fn field(&self) -> Option<FieldPath> {
        match self {
            BadQuery::NotProtobuf { .. } => None,
            BadQuery::OutOfRange { field, .. } => Some(*field),
            BadQuery::Field(
                DecodeError::Missing(field)
                | DecodeError::NotAUuid { field, .. }
                | DecodeError::UnknownCode { field, .. },
            ) => Some(*field),
            BadQuery::Field(_) => None,
        }
    }
}

/// A request read from its protobuf message.
pub trait QueryRequest: Sized + TryFrom<Self::Message, Error = BadQuery> {
    /// The protobuf message it travels as.
    type Message: Message + Default + prost::Name;

    /// Reads and validates the request's bytes.
    fn decode(bytes: &[u8]) -> Result<Self, BadQuery> {
        let message = Self::Message::decode(bytes).map_err(|source| BadQuery::NotProtobuf {
            message: <Self::Message as prost::Name>::NAME,
            source,
        })?;
        Self::try_from(message)
    }

    /// The log position the answer must reflect (read your writes); 0 for any.
    fn min_position(&self) -> u64 {
        0
    }
}

// --- requests --------------------------------------------------------------------------------

/// `GetConversation`: one conversation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConversationQuery {
    pub conversation: ConversationId,
    pub min_position: u64,
}

/// `ListConversations`: conversations matching every filter given, by id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConversationsQuery {
    pub status: Option<ConversationStatus>,
    pub queue: Option<QueueId>,
    /// Conversations where this agent has an open session (offer, primary or consult).
    pub agent: Option<AgentId>,
    pub channel: Option<Channel>,
    /// 1 to [`MAX_PAGE_SIZE`].
    pub page_size: usize,
    /// Results start after this id (the previous page's token).
    pub after: Option<ConversationId>,
    pub min_position: u64,
}

/// `GetAgent`: one agent (also `CCaaS_GetPresence`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AgentQuery {
    pub agent: AgentId,
    pub min_position: u64,
}

/// `ListAgents`: agents matching every filter given, by id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AgentsQuery {
    pub queue: Option<QueueId>,
    pub base: Option<BaseStatus>,
    pub signed_in_only: bool,
    /// 1 to [`MAX_PAGE_SIZE`].
    pub page_size: usize,
    /// Results start after this id (the previous page's token).
    pub after: Option<AgentId>,
    pub min_position: u64,
}

/// `ListQueues`: every queue.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct QueuesQuery {
    pub min_position: u64,
}

/// `ModifyAgentPresence` (`CCaaS_ModifyAgentPresence`): a manual presence change.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PresenceChange {
    /// The idempotency key of the command it becomes.
    pub command_id: Uuid,
    pub agent: AgentId,
    pub presence: PresenceId,
}

/// The protobuf name of a generated message, read through a value.
fn name_of<M: prost::Name>(_: &M) -> &'static str {
    M::NAME
}

/// `at!(m.field)`: the path of `field` in message `m`, checked by the compiler to exist.
macro_rules! at {
    ($m:ident . $field:ident) => {{
        let _ = &$m.$field;
        FieldPath::new(name_of(&$m), stringify!($field))
    }};
}

/// An enum filter: 0 (`*_UNSPECIFIED`) means any.
fn optional_code<T>(
    value: i32,
    at: FieldPath,
    from_code: fn(i32) -> Option<T>,
    vocabulary: &'static str,
) -> Result<Option<T>, DecodeError> {
    if value == 0 {
        return Ok(None);
    }
    from_code(value).map(Some).ok_or(DecodeError::UnknownCode {
        field: at,
        value,
        vocabulary,
    })
}

/// 0 means [`DEFAULT_PAGE_SIZE`]; more than [`MAX_PAGE_SIZE`] is refused, never cut silently.
fn page_size(value: u32, at: FieldPath) -> Result<usize, BadQuery> {
    match usize::try_from(value) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(n) if n <= MAX_PAGE_SIZE => Ok(n),
        _ => Err(BadQuery::OutOfRange {
            field: at,
            value: value.into(),
            allowed: "1 to 1000; 0 means 100",
        }),
    }
}

impl TryFrom<pb::GetConversation> for ConversationQuery {
    type Error = BadQuery;

    fn try_from(m: pb::GetConversation) -> Result<Self, BadQuery> {
        Ok(ConversationQuery {
            conversation: parse_id(&m.conversation_id, at!(m.conversation_id))?,
            min_position: m.min_position,
        })
    }
}

impl TryFrom<pb::ListConversations> for ConversationsQuery {
    type Error = BadQuery;

    fn try_from(m: pb::ListConversations) -> Result<Self, BadQuery> {
        Ok(ConversationsQuery {
            status: optional_code(
                m.status,
                at!(m.status),
                ConversationStatus::from_code,
                "ConversationStatus",
            )?,
            queue: parse_optional_id(&m.queue_id, at!(m.queue_id))?,
            agent: parse_optional_id(&m.agent_id, at!(m.agent_id))?,
            channel: optional_code(m.channel, at!(m.channel), Channel::from_code, "Channel")?,
            page_size: page_size(m.page_size, at!(m.page_size))?,
            after: parse_optional_id(&m.page_token, at!(m.page_token))?,
            min_position: m.min_position,
        })
    }
}

impl TryFrom<pb::GetAgent> for AgentQuery {
    type Error = BadQuery;

    fn try_from(m: pb::GetAgent) -> Result<Self, BadQuery> {
        Ok(AgentQuery {
            agent: parse_id(&m.agent_id, at!(m.agent_id))?,
            min_position: m.min_position,
        })
    }
}

impl TryFrom<pb::ListAgents> for AgentsQuery {
    type Error = BadQuery;

    fn try_from(m: pb::ListAgents) -> Result<Self, BadQuery> {
        Ok(AgentsQuery {
            queue: parse_optional_id(&m.queue_id, at!(m.queue_id))?,
            base: optional_code(m.base, at!(m.base), BaseStatus::from_code, "BaseStatus")?,
            signed_in_only: m.signed_in_only,
            page_size: page_size(m.page_size, at!(m.page_size))?,
            after: parse_optional_id(&m.page_token, at!(m.page_token))?,
            min_position: m.min_position,
        })
    }
}

impl TryFrom<pb::ListQueues> for QueuesQuery {
    type Error = BadQuery;

    fn try_from(m: pb::ListQueues) -> Result<Self, BadQuery> {
        Ok(QueuesQuery {
            min_position: m.min_position,
        })
    }
}

impl TryFrom<pb::ModifyAgentPresence> for PresenceChange {
    type Error = BadQuery;

    fn try_from(m: pb::ModifyAgentPresence) -> Result<Self, BadQuery> {
        Ok(PresenceChange {
            command_id: parse_id(&m.command_id, at!(m.command_id))?,
            agent: parse_id(&m.agent_id, at!(m.agent_id))?,
            presence: parse_id(&m.presence_id, at!(m.presence_id))?,
        })
    }
}

macro_rules! query_requests {
    ($($ty:ident: $message:ident),+) => {$(
        impl QueryRequest for $ty {
            type Message = pb::$message;
            fn min_position(&self) -> u64 {
                self.min_position
            }
        }
    )+};
}

query_requests!(
    ConversationQuery: GetConversation,
    ConversationsQuery: ListConversations,
    AgentQuery: GetAgent,
    AgentsQuery: ListAgents,
    QueuesQuery: ListQueues
);

impl QueryRequest for PresenceChange {
    type Message = pb::ModifyAgentPresence;
}

// --- views -----------------------------------------------------------------------------------

fn optional_time(at: Option<omni_core::Timestamp>) -> i64 {
    at.map_or(0, |t| t.0)
}

/// One session as a desktop or a dashboard sees it.
pub fn session_view(s: &Session) -> pb::SessionView {
    let open_offer = s.status == SessionStatus::Open && s.role == SessionRole::Offer;
    pb::SessionView {
        session_number: s.number.0,
        agent_id: id_vec(s.agent),
        primary: s.role == SessionRole::Primary,
        status: s.status.code(),
        closure: s.closure.map_or(0, |c| c.code()),
        created_at: s.created_at.0,
        accepted_at: optional_time(s.accepted_at),
        ended_at: optional_time(s.ended_at),
        offer_expires_at: if open_offer {
            optional_time(s.expires_at)
        } else {
            0
        },
        unread: s.unread,
    }
}

/// A conversation with its sessions.
pub fn conversation_view(c: &Conversation) -> pb::ConversationView {
    pb::ConversationView {
        conversation_id: id_vec(c.id),
        status: c.status.code(),
        reason: c.reason.code(),
        channel: c.channel.code(),
        queue_id: id_vec(c.queue),
        workstream_id: id_vec(c.workstream),
        skills: c.skills.clone(),
        customer: c.customer.clone(),
        primary_agent_id: c.primary.map(id_vec).unwrap_or_default(),
        consultant_ids: c.consultants.iter().map(|&a| id_vec(a)).collect(),
        sessions: c.sessions.iter().map(session_view).collect(),
        created_at: c.created_at.0,
        status_since: c.status_since.0,
        first_accepted_at: optional_time(c.accepted_at),
        closed_at: optional_time(c.closed_at),
        transfer_count: c.transfer_count,
        on_hold: c.call == omni_core::CallActivity::Hold,
        hold_ms: c.hold_ms,
        customer_link: c.customer_link.map(linked_record),
        case_link: c.case_link.map(linked_record),
        customer_connected: c.customer_disconnected_at.is_none(),
    }
}

/// An agent's status: presence, capacity, queues and open work (what `CCaaS_GetPresence` and
/// the presence webhook carry, and more).
pub fn agent_view(a: &Agent) -> pb::AgentView {
    let mut open_conversations: Vec<ConversationId> =
        a.open_sessions.iter().map(|s| s.conversation).collect();
    // Sessions are ordered by conversation first, so duplicates are neighbours.
    open_conversations.dedup();
    pb::AgentView {
        agent_id: id_vec(a.profile.id),
        name: a.profile.name.clone(),
        signed_in: a.signed_in,
        connected: a.is_connected(),
        presence: Some(presence(a.presence)),
        presence_source: a.presence_source.code(),
        presence_modified_at: a.presence_modified_at.0,
        capacity_units: a.profile.capacity_units,
        available_units: a.free_units(),
        skills: a.profile.skills.iter().cloned().collect(),
        queue_ids: a.queues.iter().map(|&q| id_vec(q)).collect(),
        open_conversation_ids: open_conversations.into_iter().map(id_vec).collect(),
    }
}

/// A queue with its live figures. `waiting` counts the backlog: Open conversations with no
/// offer out (an offered one is waiting for that agent, not for the queue).
pub fn queue_view(q: &Queue, world: &World) -> pb::QueueView {
    let signed_in = q
        .members()
        .filter(|agent| world.agents.get(agent).is_some_and(|a| a.signed_in))
        .count();
    pb::QueueView {
        queue_id: id_vec(q.config.id),
        name: q.config.name.clone(),
        workstream_id: id_vec(q.config.workstream),
        channel: world
            .workstreams
            .get(&q.config.workstream)
            .map_or(0, |w| w.channel.code()),
        method: q.config.method.code(),
        members: count(q.roster.len()),
        members_signed_in: count(signed_in),
        waiting: count(q.backlog.len()),
        oldest_waiting_since: q.backlog.get_min().map_or(0, |(since, _)| since.0),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A presence as views carry it (`AgentView.presence`).
pub fn presence_view(p: omni_core::Presence) -> pb::Presence {
    presence(p)
}

/// A page of conversations; `next` is the last one's id when more follow.
pub fn conversation_page(
    conversations: Vec<pb::ConversationView>,
    next: Option<ConversationId>,
) -> pb::query_reply::Result {
    pb::query_reply::Result::Conversations(pb::ConversationPage {
        conversations,
        next_page_token: next.map(id_vec).unwrap_or_default(),
    })
}

/// A page of agents; `next` is the last one's id when more follow.
pub fn agent_page(agents: Vec<pb::AgentView>, next: Option<AgentId>) -> pb::query_reply::Result {
    pb::query_reply::Result::Agents(pb::AgentPage {
        agents,
        next_page_token: next.map(id_vec).unwrap_or_default(),
    })
}

// --- answers ---------------------------------------------------------------------------------

/// An answer, as of the log position the service had folded.
pub fn query_reply(position: u64, result: pb::query_reply::Result) -> pb::QueryReply {
    pb::QueryReply {
        position,
        result: Some(result),
    }
}

/// A failed query.
pub fn query_error(
    position: u64,
    code: pb::QueryErrorCode,
    reason: impl Into<String>,
) -> pb::QueryReply {
    query_reply(
        position,
        pb::query_reply::Result::Error(pb::QueryError {
            code: code as i32,
            reason: reason.into(),
            rejection: 0,
        }),
    )
}

/// A presence change the engine rejected, with its code and reason.
pub fn query_rejected(
    position: u64,
    rejection: pb::RejectionCode,
    reason: impl Into<String>,
) -> pb::QueryReply {
    query_reply(
        position,
        pb::query_reply::Result::Error(pb::QueryError {
            code: pb::QueryErrorCode::Rejected as i32,
            reason: reason.into(),
            rejection: rejection as i32,
        }),
    )
}
