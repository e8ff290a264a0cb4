//! Domain → wire. Infallible: every domain value has a wire form.

use omni_core::{
    Actor, ChannelTimers, EventKind as E, LinkedRecord, OfferOrigin, Presence, TransferTarget,
    WrapUpBlocking,
};

use crate::Envelope;
use crate::pb::{self, event_envelope::Event as Ev};
use crate::wire::{id_bytes, optional_id_bytes};

impl From<&Envelope> for pb::EventEnvelope {
    fn from(envelope: &Envelope) -> Self {
        pb::EventEnvelope {
            event_id: id_bytes(envelope.event_id),
            stream_id: envelope.stream_id.clone(),
            occurred_at: envelope.event.at.0,
            correlation_id: id_bytes(envelope.correlation_id),
            causation_id: optional_id_bytes(envelope.causation_id),
            actor: Some(actor(envelope.actor)),
            event: Some(event(&envelope.event.kind)),
        }
    }
}

pub(crate) fn actor(actor: Actor) -> pb::Actor {
    use pb::actor::Kind;
    let kind = match actor {
        Actor::Agent(agent) => Kind::AgentId(id_bytes(agent)),
        Actor::Supervisor(supervisor) => Kind::SupervisorId(id_bytes(supervisor)),
        Actor::Customer => Kind::Customer(pb::actor::Customer {}),
        Actor::System => Kind::System(pb::actor::System {}),
    };
    pb::Actor { kind: Some(kind) }
}

pub(crate) fn presence(presence: Presence) -> pb::Presence {
    pb::Presence {
        presence_id: id_bytes(presence.id),
        base: presence.base.code(),
    }
}

pub(crate) fn linked_record(record: LinkedRecord) -> pb::LinkedRecord {
    pb::LinkedRecord {
        entity: record.entity.code(),
        record_id: id_bytes(record.record),
    }
}

fn timers(timers: ChannelTimers) -> pb::ChannelTimers {
    pb::ChannelTimers {
        open_secs: timers.open_secs,
        active_secs: timers.active_secs,
        waiting_secs: timers.waiting_secs,
        wrap_up_secs: timers.wrap_up_secs,
    }
}

fn wrap_up_blocking(blocking: WrapUpBlocking) -> pb::workstream_configured::WrapUpBlocking {
    use pb::workstream_configured::{BlockAlways, BlockNever, WrapUpBlocking as W};
    match blocking {
        WrapUpBlocking::Always => W::BlockAlways(BlockAlways {}),
        WrapUpBlocking::Never => W::BlockNever(BlockNever {}),
        WrapUpBlocking::ForSeconds(secs) => W::BlockForSecs(secs),
    }
}

fn origin(origin: OfferOrigin) -> pb::incoming_session_request::Origin {
    use pb::incoming_session_request::{Origin, Pick, Routing};
    match origin {
        OfferOrigin::Routing => Origin::Routing(Routing {}),
        OfferOrigin::Transfer { from } => Origin::TransferFromAgentId(id_bytes(from)),
        OfferOrigin::Supervisor(supervisor) => Origin::AssignedBySupervisorId(id_bytes(supervisor)),
        OfferOrigin::Pick => Origin::Pick(Pick {}),
    }
}

fn target(target: TransferTarget) -> pb::transfer_initiated::Target {
    use pb::transfer_initiated::Target;
    match target {
        TransferTarget::Agent(agent) => Target::TargetAgentId(id_bytes(agent)),
        TransferTarget::Queue(queue) => Target::TargetQueueId(id_bytes(queue)),
    }
}

pub(crate) fn event(kind: &E) -> Ev {
    match kind {
        E::WorkstreamConfigured(ws) => Ev::WorkstreamConfigured(pb::WorkstreamConfigured {
            workstream_id: id_bytes(ws.id),
            name: ws.name.clone(),
            channel: ws.channel.code(),
            mode: ws.mode.code(),
            capacity_units: ws.capacity_units,
            allowed_presences: ws.allowed_presences.iter().map(|b| b.code()).collect(),
            timers: Some(timers(ws.timers)),
            offer_timeout_secs: ws.offer_timeout_secs,
            wrap_up_blocking: Some(wrap_up_blocking(ws.wrap_up_blocking)),
        }),
        E::QueueConfigured(queue) => Ev::QueueConfigured(pb::QueueConfigured {
            queue_id: id_bytes(queue.id),
            name: queue.name.clone(),
            workstream_id: id_bytes(queue.workstream),
            method: queue.method.code(),
        }),
        E::CustomPresenceDefined(custom) => Ev::CustomPresenceDefined(pb::CustomPresenceDefined {
            presence_id: id_bytes(custom.id),
            name: custom.name.clone(),
            base: custom.base.code(),
        }),
        E::AgentProvisioned(profile) => Ev::AgentProvisioned(pb::AgentProvisioned {
            agent_id: id_bytes(profile.id),
            name: profile.name.clone(),
            capacity_units: profile.capacity_units,
            skills: profile.skills.iter().cloned().collect(),
            max_sessions: profile.max_sessions,
            default_presence_id: id_bytes(profile.default_presence),
        }),
        E::AgentCapacityChanged {
            agent,
            capacity_units,
        } => Ev::AgentCapacityChanged(pb::AgentCapacityChanged {
            agent_id: id_bytes(*agent),
            capacity_units: *capacity_units,
        }),
        E::QueueMembershipChanged {
            queue,
            agent,
            member,
        } => Ev::QueueMembershipChanged(pb::QueueMembershipChanged {
            queue_id: id_bytes(*queue),
            agent_id: id_bytes(*agent),
            member: *member,
        }),
        E::AgentSignedIn { agent } => Ev::AgentSignedIn(pb::AgentSignedIn {
            agent_id: id_bytes(*agent),
        }),
        E::AgentSignedOut { agent } => Ev::AgentSignedOut(pb::AgentSignedOut {
            agent_id: id_bytes(*agent),
        }),
        E::PresenceUpdate {
            agent,
            presence: current,
            source,
            sticky,
        } => Ev::PresenceUpdate(pb::PresenceUpdate {
            agent_id: id_bytes(*agent),
            presence: Some(presence(*current)),
            source: source.code(),
            sticky: *sticky,
        }),
        E::AgentDisconnected {
            agent,
            previous,
            previous_sticky,
        } => Ev::AgentDisconnected(pb::AgentDisconnected {
            agent_id: id_bytes(*agent),
            previous: Some(presence(*previous)),
            previous_sticky: *previous_sticky,
        }),
        E::AgentReconnected { agent } => Ev::AgentReconnected(pb::AgentReconnected {
            agent_id: id_bytes(*agent),
        }),
        E::AgentDisconnectGraceExpired { agent } => {
            Ev::AgentDisconnectGraceExpired(pb::AgentDisconnectGraceExpired {
                agent_id: id_bytes(*agent),
            })
        }
        E::ConversationCreated {
            conversation,
            channel,
            queue,
            workstream,
            skills,
            customer,
        } => Ev::ConversationCreated(pb::ConversationCreated {
            conversation_id: id_bytes(*conversation),
            channel: channel.code(),
            queue_id: id_bytes(*queue),
            workstream_id: id_bytes(*workstream),
            skills: skills.clone(),
            customer: customer.clone(),
        }),
        E::IncomingSessionRequest {
            session,
            agent,
            origin: why,
            units,
            expires_at,
            queue,
        } => Ev::IncomingSessionRequest(pb::IncomingSessionRequest {
            conversation_id: id_bytes(session.conversation),
            session_number: session.number.0,
            agent_id: id_bytes(*agent),
            units: *units,
            expires_at: expires_at.0,
            queue_id: optional_id_bytes(*queue),
            origin: Some(origin(*why)),
        }),
        E::SessionAccepted {
            session,
            agent,
            units,
            tab,
        } => Ev::SessionAccepted(pb::SessionAccepted {
            conversation_id: id_bytes(session.conversation),
            session_number: session.number.0,
            agent_id: id_bytes(*agent),
            units: *units,
            tab: tab.code(),
        }),
        E::OfferRejected {
            session,
            agent,
            units,
        } => Ev::OfferRejected(pb::OfferRejected {
            conversation_id: id_bytes(session.conversation),
            session_number: session.number.0,
            agent_id: id_bytes(*agent),
            units: *units,
        }),
        E::OfferTimedOut {
            session,
            agent,
            units,
        } => Ev::OfferTimedOut(pb::OfferTimedOut {
            conversation_id: id_bytes(session.conversation),
            session_number: session.number.0,
            agent_id: id_bytes(*agent),
            units: *units,
        }),
        E::OfferWithdrawn {
            session,
            agent,
            units,
            reason,
        } => Ev::OfferWithdrawn(pb::OfferWithdrawn {
            conversation_id: id_bytes(session.conversation),
            session_number: session.number.0,
            agent_id: id_bytes(*agent),
            units: *units,
            reason: reason.code(),
        }),
        E::SessionClosed {
            session,
            agent,
            reason,
        } => Ev::SessionClosed(pb::SessionClosed {
            conversation_id: id_bytes(session.conversation),
            session_number: session.number.0,
            agent_id: id_bytes(*agent),
            reason: reason.code(),
        }),
        E::CapacityReleased {
            conversation,
            agent,
            units,
        } => Ev::CapacityReleased(pb::CapacityReleased {
            conversation_id: id_bytes(*conversation),
            agent_id: id_bytes(*agent),
            units: *units,
        }),
        E::TransferInitiated {
            conversation,
            from,
            target: to,
        } => Ev::TransferInitiated(pb::TransferInitiated {
            conversation_id: id_bytes(*conversation),
            from_agent_id: id_bytes(*from),
            target: Some(target(*to)),
        }),
        E::TransferCompleted {
            conversation,
            from,
            to,
        } => Ev::TransferCompleted(pb::TransferCompleted {
            conversation_id: id_bytes(*conversation),
            from_agent_id: id_bytes(*from),
            to_agent_id: id_bytes(*to),
        }),
        E::ConsultStarted {
            session,
            consultant,
            by,
            tab,
        } => Ev::ConsultStarted(pb::ConsultStarted {
            conversation_id: id_bytes(session.conversation),
            session_number: session.number.0,
            consultant_agent_id: id_bytes(*consultant),
            by_agent_id: id_bytes(*by),
            tab: tab.code(),
        }),
        E::ConsultEnded {
            session,
            consultant,
            keep_tab,
        } => Ev::ConsultEnded(pb::ConsultEnded {
            conversation_id: id_bytes(session.conversation),
            session_number: session.number.0,
            consultant_agent_id: id_bytes(*consultant),
            keep_tab: *keep_tab,
        }),
        E::CallHeld { conversation } => Ev::CallHeld(pb::CallHeld {
            conversation_id: id_bytes(*conversation),
        }),
        E::CallResumed { conversation } => Ev::CallResumed(pb::CallResumed {
            conversation_id: id_bytes(*conversation),
        }),
        E::MediaStateChanged {
            conversation,
            media,
            state,
        } => Ev::MediaStateChanged(pb::MediaStateChanged {
            conversation_id: id_bytes(*conversation),
            media: media.code(),
            state: Some(state.code()),
        }),
        E::RecordLinked {
            conversation,
            record,
            replaced,
        } => Ev::RecordLinked(pb::RecordLinked {
            conversation_id: id_bytes(*conversation),
            record: Some(linked_record(*record)),
            replaced: replaced.map(linked_record),
        }),
        E::RecordUnlinked {
            conversation,
            record,
        } => Ev::RecordUnlinked(pb::RecordUnlinked {
            conversation_id: id_bytes(*conversation),
            record: Some(linked_record(*record)),
        }),
        E::UnreadMessage {
            session,
            agent,
            unread,
        } => Ev::UnreadMessage(pb::UnreadMessage {
            conversation_id: id_bytes(session.conversation),
            session_number: session.number.0,
            agent_id: id_bytes(*agent),
            unread: *unread,
        }),
        E::SessionFocused { session, agent } => Ev::SessionFocused(pb::SessionFocused {
            conversation_id: id_bytes(session.conversation),
            session_number: session.number.0,
            agent_id: id_bytes(*agent),
        }),
        E::ConversationQueued {
            conversation,
            queue,
            reason,
        } => Ev::ConversationQueued(pb::ConversationQueued {
            conversation_id: id_bytes(*conversation),
            queue_id: id_bytes(*queue),
            reason: reason.code(),
        }),
        E::ConversationResumed {
            conversation,
            agent,
            units,
            tab,
        } => Ev::ConversationResumed(pb::ConversationResumed {
            conversation_id: id_bytes(*conversation),
            agent_id: id_bytes(*agent),
            units: *units,
            tab: tab.code(),
        }),
        E::ConversationWaiting {
            conversation,
            agent,
        } => Ev::ConversationWaiting(pb::ConversationWaiting {
            conversation_id: id_bytes(*conversation),
            agent_id: id_bytes(*agent),
        }),
        E::EndConversation {
            conversation,
            ended_by,
            reason,
        } => Ev::EndConversation(pb::EndConversation {
            conversation_id: id_bytes(*conversation),
            ended_by: Some(actor(*ended_by)),
            reason: reason.code(),
        }),
        E::ConversationClosed {
            conversation,
            reason,
        } => Ev::ConversationClosed(pb::ConversationClosed {
            conversation_id: id_bytes(*conversation),
            reason: reason.code(),
        }),
        E::CustomerDisconnected { conversation } => {
            Ev::CustomerDisconnected(pb::CustomerDisconnected {
                conversation_id: id_bytes(*conversation),
            })
        }
        E::CustomerReconnected { conversation } => {
            Ev::CustomerReconnected(pb::CustomerReconnected {
                conversation_id: id_bytes(*conversation),
            })
        }
    }
}
