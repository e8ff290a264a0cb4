//! Wire → domain, validating shape as it goes. Every error names the field it is about, as
//! `Message.field`: the message name comes from the generated type (`prost::Name`) and the
//! field is checked by the compiler to exist (see `at!`), so error paths follow the schema.

use omni_core::{
    Actor, AgentProfile, ChannelTimers, CustomPresence, Event, EventKind as E, LinkedRecord,
    OfferOrigin, Presence, QueueConfig, Timestamp, TransferTarget, Workstream, WrapUpBlocking,
};

use crate::Envelope;
use crate::error::{DecodeError, FieldPath};
use crate::pb::{self, event_envelope::Event as Ev};
use crate::wire::{parse_code, parse_id, parse_optional_id, parse_present_code, parse_session};

/// The protobuf name of a generated message, e.g. `SessionAccepted`, as a method so that it
/// reads the same through a reference.
trait MessageName {
    fn message_name(&self) -> &'static str;
}

impl<M: prost::Name> MessageName for M {
    fn message_name(&self) -> &'static str {
        M::NAME
    }
}

/// `at!(m.field)`: the path of `field` in message `m`. Naming the field as an expression makes
/// the compiler check that it exists. Use it before moving anything out of `m`.
macro_rules! at {
    ($m:ident . $field:ident) => {{
        let _ = &$m.$field;
        FieldPath::new($m.message_name(), stringify!($field))
    }};
}

/// A required id field.
macro_rules! id {
    ($m:ident . $field:ident) => {
        parse_id(&$m.$field, at!($m.$field))
    };
}

/// An id field where empty means `None`.
macro_rules! optional_id {
    ($m:ident . $field:ident) => {
        parse_optional_id(&$m.$field, at!($m.$field))
    };
}

/// A protobuf enum field.
macro_rules! code {
    ($m:ident . $field:ident) => {
        parse_code($m.$field, at!($m.$field))
    };
}

/// The `(conversation_id, session_number)` pair every session event starts with.
macro_rules! session {
    ($m:ident) => {
        parse_session(
            &$m.conversation_id,
            $m.session_number,
            at!($m.conversation_id),
            at!($m.session_number),
        )
    };
}

/// A nested message field: missing when absent, else parsed by `$parse(&value, path)`.
/// With `optional`, absent is `None`.
macro_rules! nested {
    ($m:ident . $field:ident, $parse:expr) => {{
        let at = at!($m.$field);
        match &$m.$field {
            Some(value) => $parse(value, at),
            None => Err(DecodeError::Missing(at)),
        }
    }};
    (optional $m:ident . $field:ident, $parse:expr) => {{
        let at = at!($m.$field);
        $m.$field
            .as_ref()
            .map(|value| $parse(value, at))
            .transpose()
    }};
}

impl TryFrom<pb::EventEnvelope> for Envelope {
    type Error = DecodeError;

    fn try_from(envelope: pb::EventEnvelope) -> Result<Self, DecodeError> {
        let event_id = id!(envelope.event_id)?;
        let correlation_id = id!(envelope.correlation_id)?;
        let causation_id = optional_id!(envelope.causation_id)?;
        let actor = nested!(envelope.actor, actor)?;
        if envelope.stream_id.is_empty() {
            return Err(DecodeError::Missing(at!(envelope.stream_id)));
        }
        let Some(event) = envelope.event else {
            return Err(DecodeError::UnknownEvent { event_id });
        };
        Ok(Envelope {
            event_id,
            stream_id: envelope.stream_id,
            correlation_id,
            causation_id,
            actor,
            event: Event {
                at: Timestamp(envelope.occurred_at),
                kind: event_kind(event)?,
            },
        })
    }
}

pub(crate) fn actor(actor: &pb::Actor, at: FieldPath) -> Result<Actor, DecodeError> {
    use pb::actor::Kind;
    match &actor.kind {
        Some(Kind::AgentId(agent)) => parse_id(agent, at.sub("agent_id")).map(Actor::Agent),
        Some(Kind::SupervisorId(supervisor)) => {
            parse_id(supervisor, at.sub("supervisor_id")).map(Actor::Supervisor)
        }
        Some(Kind::Customer(_)) => Ok(Actor::Customer),
        Some(Kind::System(_)) => Ok(Actor::System),
        None => Err(DecodeError::Missing(at.sub("kind"))),
    }
}

fn presence(presence: &pb::Presence, at: FieldPath) -> Result<Presence, DecodeError> {
    Ok(Presence {
        id: parse_id(&presence.presence_id, at.sub("presence_id"))?,
        base: parse_code(presence.base, at.sub("base"))?,
    })
}

pub(crate) fn linked_record(
    record: &pb::LinkedRecord,
    at: FieldPath,
) -> Result<LinkedRecord, DecodeError> {
    Ok(LinkedRecord {
        entity: parse_code(record.entity, at.sub("entity"))?,
        record: parse_id(&record.record_id, at.sub("record_id"))?,
    })
}

fn channel_timers(timers: pb::ChannelTimers) -> ChannelTimers {
    ChannelTimers {
        open_secs: timers.open_secs,
        active_secs: timers.active_secs,
        waiting_secs: timers.waiting_secs,
        wrap_up_secs: timers.wrap_up_secs,
    }
}

fn workstream(m: pb::WorkstreamConfigured) -> Result<Workstream, DecodeError> {
    use pb::workstream_configured::WrapUpBlocking as W;
    let wrap_up_blocking = match m.wrap_up_blocking {
        Some(W::BlockAlways(_)) => WrapUpBlocking::Always,
        Some(W::BlockNever(_)) => WrapUpBlocking::Never,
        Some(W::BlockForSecs(secs)) => WrapUpBlocking::ForSeconds(secs),
        None => return Err(DecodeError::Missing(at!(m.wrap_up_blocking))),
    };
    let timers = m
        .timers
        .map(channel_timers)
        .ok_or(DecodeError::Missing(at!(m.timers)))?;
    let allowed_at = at!(m.allowed_presences);
    Ok(Workstream {
        id: id!(m.workstream_id)?,
        channel: code!(m.channel)?,
        mode: code!(m.mode)?,
        capacity_units: m.capacity_units,
        allowed_presences: m
            .allowed_presences
            .iter()
            .map(|&base| parse_code(base, allowed_at))
            .collect::<Result<_, _>>()?,
        wrap_up_blocking,
        timers,
        offer_timeout_secs: m.offer_timeout_secs,
        name: m.name,
    })
}

fn offer_origin(m: &pb::IncomingSessionRequest) -> Result<OfferOrigin, DecodeError> {
    use pb::incoming_session_request::Origin;
    let message = m.message_name();
    match &m.origin {
        Some(Origin::Routing(_)) => Ok(OfferOrigin::Routing),
        Some(Origin::TransferFromAgentId(from)) => {
            let from = parse_id(from, FieldPath::new(message, "transfer_from_agent_id"))?;
            Ok(OfferOrigin::Transfer { from })
        }
        Some(Origin::AssignedBySupervisorId(supervisor)) => parse_id(
            supervisor,
            FieldPath::new(message, "assigned_by_supervisor_id"),
        )
        .map(OfferOrigin::Supervisor),
        Some(Origin::Pick(_)) => Ok(OfferOrigin::Pick),
        None => Err(DecodeError::Missing(at!(m.origin))),
    }
}

fn transfer_target(m: &pb::TransferInitiated) -> Result<TransferTarget, DecodeError> {
    use pb::transfer_initiated::Target;
    let message = m.message_name();
    match &m.target {
        Some(Target::TargetAgentId(agent)) => {
            parse_id(agent, FieldPath::new(message, "target_agent_id")).map(TransferTarget::Agent)
        }
        Some(Target::TargetQueueId(queue)) => {
            parse_id(queue, FieldPath::new(message, "target_queue_id")).map(TransferTarget::Queue)
        }
        None => Err(DecodeError::Missing(at!(m.target))),
    }
}

/// Strings are moved out of `m` last in each arm: `at!` needs `m` whole.
pub(crate) fn event_kind(event: Ev) -> Result<E, DecodeError> {
    Ok(match event {
        Ev::WorkstreamConfigured(m) => E::WorkstreamConfigured(workstream(m)?),
        Ev::QueueConfigured(m) => E::QueueConfigured(QueueConfig {
            id: id!(m.queue_id)?,
            workstream: id!(m.workstream_id)?,
            method: code!(m.method)?,
            name: m.name,
        }),
        Ev::CustomPresenceDefined(m) => E::CustomPresenceDefined(CustomPresence {
            id: id!(m.presence_id)?,
            base: code!(m.base)?,
            name: m.name,
        }),
        Ev::AgentProvisioned(m) => E::AgentProvisioned(AgentProfile {
            id: id!(m.agent_id)?,
            capacity_units: m.capacity_units,
            max_sessions: m.max_sessions,
            default_presence: id!(m.default_presence_id)?,
            name: m.name,
            skills: m.skills.into_iter().collect(),
        }),
        Ev::AgentCapacityChanged(m) => E::AgentCapacityChanged {
            agent: id!(m.agent_id)?,
            capacity_units: m.capacity_units,
        },
        Ev::QueueMembershipChanged(m) => E::QueueMembershipChanged {
            queue: id!(m.queue_id)?,
            agent: id!(m.agent_id)?,
            member: m.member,
        },
        Ev::AgentSignedIn(m) => E::AgentSignedIn {
            agent: id!(m.agent_id)?,
        },
        Ev::AgentSignedOut(m) => E::AgentSignedOut {
            agent: id!(m.agent_id)?,
        },
        Ev::PresenceUpdate(m) => E::PresenceUpdate {
            agent: id!(m.agent_id)?,
            presence: nested!(m.presence, presence)?,
            source: code!(m.source)?,
            sticky: m.sticky,
        },
        Ev::AgentDisconnected(m) => E::AgentDisconnected {
            agent: id!(m.agent_id)?,
            previous: nested!(m.previous, presence)?,
            previous_sticky: m.previous_sticky,
        },
        Ev::AgentReconnected(m) => E::AgentReconnected {
            agent: id!(m.agent_id)?,
        },
        Ev::AgentDisconnectGraceExpired(m) => E::AgentDisconnectGraceExpired {
            agent: id!(m.agent_id)?,
        },
        Ev::ConversationCreated(m) => E::ConversationCreated {
            conversation: id!(m.conversation_id)?,
            channel: code!(m.channel)?,
            queue: id!(m.queue_id)?,
            workstream: id!(m.workstream_id)?,
            skills: m.skills,
            customer: m.customer,
        },
        Ev::IncomingSessionRequest(m) => E::IncomingSessionRequest {
            session: session!(m)?,
            agent: id!(m.agent_id)?,
            origin: offer_origin(&m)?,
            units: m.units,
            expires_at: Timestamp(m.expires_at),
            queue: optional_id!(m.queue_id)?,
        },
        Ev::SessionAccepted(m) => E::SessionAccepted {
            session: session!(m)?,
            agent: id!(m.agent_id)?,
            units: m.units,
            tab: code!(m.tab)?,
        },
        Ev::OfferRejected(m) => E::OfferRejected {
            session: session!(m)?,
            agent: id!(m.agent_id)?,
            units: m.units,
        },
        Ev::OfferTimedOut(m) => E::OfferTimedOut {
            session: session!(m)?,
            agent: id!(m.agent_id)?,
            units: m.units,
        },
        Ev::OfferWithdrawn(m) => E::OfferWithdrawn {
            session: session!(m)?,
            agent: id!(m.agent_id)?,
            units: m.units,
            reason: code!(m.reason)?,
        },
        Ev::SessionClosed(m) => E::SessionClosed {
            session: session!(m)?,
            agent: id!(m.agent_id)?,
            reason: code!(m.reason)?,
        },
        Ev::CapacityReleased(m) => E::CapacityReleased {
            conversation: id!(m.conversation_id)?,
            agent: id!(m.agent_id)?,
            units: m.units,
        },
        Ev::TransferInitiated(m) => E::TransferInitiated {
            conversation: id!(m.conversation_id)?,
            from: id!(m.from_agent_id)?,
            target: transfer_target(&m)?,
        },
        Ev::TransferCompleted(m) => E::TransferCompleted {
            conversation: id!(m.conversation_id)?,
            from: id!(m.from_agent_id)?,
            to: id!(m.to_agent_id)?,
        },
        Ev::ConsultStarted(m) => E::ConsultStarted {
            session: session!(m)?,
            consultant: id!(m.consultant_agent_id)?,
            by: id!(m.by_agent_id)?,
            tab: code!(m.tab)?,
        },
        Ev::ConsultEnded(m) => E::ConsultEnded {
            session: session!(m)?,
            consultant: id!(m.consultant_agent_id)?,
            keep_tab: m.keep_tab,
        },
        Ev::CallHeld(m) => E::CallHeld {
            conversation: id!(m.conversation_id)?,
        },
        Ev::CallResumed(m) => E::CallResumed {
            conversation: id!(m.conversation_id)?,
        },
        Ev::MediaStateChanged(m) => E::MediaStateChanged {
            conversation: id!(m.conversation_id)?,
            media: code!(m.media)?,
            state: parse_present_code(m.state, at!(m.state))?,
        },
        Ev::RecordLinked(m) => E::RecordLinked {
            conversation: id!(m.conversation_id)?,
            record: nested!(m.record, linked_record)?,
            replaced: nested!(optional m.replaced, linked_record)?,
        },
        Ev::RecordUnlinked(m) => E::RecordUnlinked {
            conversation: id!(m.conversation_id)?,
            record: nested!(m.record, linked_record)?,
        },
        Ev::UnreadMessage(m) => E::UnreadMessage {
            session: session!(m)?,
            agent: id!(m.agent_id)?,
            unread: m.unread,
        },
        Ev::SessionFocused(m) => E::SessionFocused {
            session: session!(m)?,
            agent: id!(m.agent_id)?,
        },
        Ev::ConversationQueued(m) => E::ConversationQueued {
            conversation: id!(m.conversation_id)?,
            queue: id!(m.queue_id)?,
            reason: code!(m.reason)?,
        },
        Ev::ConversationResumed(m) => E::ConversationResumed {
            conversation: id!(m.conversation_id)?,
            agent: id!(m.agent_id)?,
            units: m.units,
            tab: code!(m.tab)?,
        },
        Ev::ConversationWaiting(m) => E::ConversationWaiting {
            conversation: id!(m.conversation_id)?,
            agent: id!(m.agent_id)?,
        },
        Ev::EndConversation(m) => E::EndConversation {
            conversation: id!(m.conversation_id)?,
            ended_by: nested!(m.ended_by, actor)?,
            reason: code!(m.reason)?,
        },
        Ev::ConversationClosed(m) => E::ConversationClosed {
            conversation: id!(m.conversation_id)?,
            reason: code!(m.reason)?,
        },
        Ev::CustomerDisconnected(m) => E::CustomerDisconnected {
            conversation: id!(m.conversation_id)?,
        },
        Ev::CustomerReconnected(m) => E::CustomerReconnected {
            conversation: id!(m.conversation_id)?,
        },
    })
}
