use std::collections::BTreeSet;

use bytes::Bytes;
use omni_core::{
    Actor, AgentId, AgentProfile, AssignmentMethod, BaseStatus, Channel, ChannelTimers,
    ClosureReason, ConversationId, CustomPresence, Event, EventKind as E, LinkEntity, LinkedRecord,
    MediaKind, MediaState, OfferOrigin, Presence, PresenceId, PresenceSource, QueueConfig, QueueId,
    RecordId, RoutingMode, SessionNo, SessionRef, StatusReason, SupervisorId, TabOutcome,
    Timestamp, TransferTarget, Workstream, WorkstreamId, WrapUpBlocking,
};
use prost::Message;
use uuid::Uuid;

use crate::pb::{self, event_envelope::Event as Ev};
use crate::{
    DecodeError, Envelope, FieldPath, decode, decode_event, encode, encode_to,
    optional_uuid_from_bytes, stream_id_for, uuid_from_bytes, uuid_to_bytes,
};

const CONVERSATION: ConversationId = ConversationId::from_u128(0xc0);
const AGENT: AgentId = AgentId::from_u128(0xa1);
const OTHER_AGENT: AgentId = AgentId::from_u128(0xa2);
const QUEUE: QueueId = QueueId::from_u128(0x90);
const WORKSTREAM: WorkstreamId = WorkstreamId::from_u128(0x55);
const SUPERVISOR: SupervisorId = SupervisorId::from_u128(0x5e);
const CUSTOM_PRESENCE: PresenceId = PresenceId(Uuid::from_u128(0xcafe));
const SESSION: SessionRef = SessionRef {
    conversation: CONVERSATION,
    number: SessionNo(2),
};
const CASE: LinkedRecord = LinkedRecord {
    entity: LinkEntity::Incident,
    record: RecordId::from_u128(0x1c),
};
const CONTACT: LinkedRecord = LinkedRecord {
    entity: LinkEntity::Contact,
    record: RecordId::from_u128(0x1d),
};

/// How many variants `EventKind` has; `every_kind` must show each of them.
const EVENT_KINDS: usize = 38;

/// At least one example of every `EventKind` variant, with both arms of every `Option` and
/// every oneof member somewhere.
fn every_kind() -> Vec<E> {
    vec![
        E::WorkstreamConfigured(Workstream {
            allowed_presences: [BaseStatus::Available, BaseStatus::Busy].into(),
            wrap_up_blocking: WrapUpBlocking::ForSeconds(90),
            ..Workstream::with_defaults(WORKSTREAM, "Voice support", Channel::Voice)
        }),
        E::WorkstreamConfigured(Workstream {
            wrap_up_blocking: WrapUpBlocking::Never,
            mode: RoutingMode::Pick,
            timers: ChannelTimers {
                open_secs: None,
                active_secs: Some(0),
                waiting_secs: None,
                wrap_up_secs: Some(u64::MAX),
            },
            ..Workstream::with_defaults(WORKSTREAM, "Chat", Channel::LiveChat)
        }),
        E::WorkstreamConfigured(Workstream::with_defaults(WORKSTREAM, "SMS", Channel::Sms)),
        E::QueueConfigured(QueueConfig {
            id: QUEUE,
            name: "Tier 1".into(),
            workstream: WORKSTREAM,
            method: AssignmentMethod::LeastActive,
        }),
        E::CustomPresenceDefined(CustomPresence {
            id: CUSTOM_PRESENCE,
            name: "Training".into(),
            base: BaseStatus::Away,
        }),
        E::AgentProvisioned(AgentProfile {
            id: AGENT,
            name: "Ana".into(),
            capacity_units: 100,
            skills: ["billing".to_owned(), "french".to_owned()].into(),
            max_sessions: 10,
            default_presence: PresenceId::AVAILABLE,
        }),
        E::AgentCapacityChanged {
            agent: AGENT,
            capacity_units: 0,
        },
        E::QueueMembershipChanged {
            queue: QUEUE,
            agent: AGENT,
            member: true,
        },
        E::AgentSignedIn { agent: AGENT },
        E::AgentSignedOut { agent: AGENT },
        E::PresenceUpdate {
            agent: AGENT,
            presence: Presence {
                id: CUSTOM_PRESENCE,
                base: BaseStatus::Away,
            },
            source: PresenceSource::Agent,
            sticky: true,
        },
        E::AgentDisconnected {
            agent: AGENT,
            previous: Presence::of(BaseStatus::BusyDnd),
            previous_sticky: false,
        },
        E::AgentReconnected { agent: AGENT },
        E::AgentDisconnectGraceExpired { agent: AGENT },
        E::ConversationCreated {
            conversation: CONVERSATION,
            channel: Channel::Teams,
            queue: QUEUE,
            workstream: WORKSTREAM,
            skills: vec!["french".into()],
            customer: "+33 1 23 45 67 89".into(),
        },
        E::IncomingSessionRequest {
            session: SESSION,
            agent: AGENT,
            origin: OfferOrigin::Routing,
            units: 10,
            expires_at: Timestamp(1_700_000_120_000),
            queue: Some(QUEUE),
        },
        E::IncomingSessionRequest {
            session: SESSION,
            agent: AGENT,
            origin: OfferOrigin::Transfer { from: OTHER_AGENT },
            units: 1,
            expires_at: Timestamp(-5),
            queue: None,
        },
        E::IncomingSessionRequest {
            session: SESSION,
            agent: AGENT,
            origin: OfferOrigin::Supervisor(SUPERVISOR),
            units: 1,
            expires_at: Timestamp(0),
            queue: None,
        },
        E::IncomingSessionRequest {
            session: SESSION,
            agent: AGENT,
            origin: OfferOrigin::Pick,
            units: 1,
            expires_at: Timestamp(i64::MAX),
            queue: Some(QUEUE),
        },
        E::SessionAccepted {
            session: SESSION,
            agent: AGENT,
            units: 10,
            tab: TabOutcome::Reactivated,
        },
        E::OfferRejected {
            session: SESSION,
            agent: AGENT,
            units: 10,
        },
        E::OfferTimedOut {
            session: SESSION,
            agent: AGENT,
            units: 10,
        },
        E::OfferWithdrawn {
            session: SESSION,
            agent: AGENT,
            units: 10,
            reason: ClosureReason::AgentReRouted,
        },
        E::SessionClosed {
            session: SESSION,
            agent: AGENT,
            reason: ClosureReason::CustomerEndedConversation,
        },
        E::CapacityReleased {
            conversation: CONVERSATION,
            agent: AGENT,
            units: 10,
        },
        E::TransferInitiated {
            conversation: CONVERSATION,
            from: AGENT,
            target: TransferTarget::Agent(OTHER_AGENT),
        },
        E::TransferInitiated {
            conversation: CONVERSATION,
            from: AGENT,
            target: TransferTarget::Queue(QUEUE),
        },
        E::TransferCompleted {
            conversation: CONVERSATION,
            from: AGENT,
            to: OTHER_AGENT,
        },
        E::ConsultStarted {
            session: SESSION,
            consultant: OTHER_AGENT,
            by: AGENT,
            tab: TabOutcome::LimitReached,
        },
        E::ConsultEnded {
            session: SESSION,
            consultant: OTHER_AGENT,
            keep_tab: true,
        },
        E::CallHeld {
            conversation: CONVERSATION,
        },
        E::CallResumed {
            conversation: CONVERSATION,
        },
        // Every media state, NotStarted (code 0) included: the optional int32 carries it.
        E::MediaStateChanged {
            conversation: CONVERSATION,
            media: MediaKind::Recording,
            state: MediaState::NotStarted,
        },
        E::MediaStateChanged {
            conversation: CONVERSATION,
            media: MediaKind::Transcription,
            state: MediaState::Running,
        },
        E::MediaStateChanged {
            conversation: CONVERSATION,
            media: MediaKind::Recording,
            state: MediaState::Paused,
        },
        E::MediaStateChanged {
            conversation: CONVERSATION,
            media: MediaKind::Recording,
            state: MediaState::Stopped,
        },
        E::RecordLinked {
            conversation: CONVERSATION,
            record: CASE,
            replaced: None,
        },
        E::RecordLinked {
            conversation: CONVERSATION,
            record: CONTACT,
            replaced: Some(LinkedRecord {
                entity: LinkEntity::Account,
                record: RecordId::from_u128(0x1e),
            }),
        },
        E::RecordUnlinked {
            conversation: CONVERSATION,
            record: CASE,
        },
        E::UnreadMessage {
            session: SESSION,
            agent: AGENT,
            unread: 11,
        },
        E::SessionFocused {
            session: SESSION,
            agent: AGENT,
        },
        E::ConversationQueued {
            conversation: CONVERSATION,
            queue: QUEUE,
            reason: StatusReason::AwaitingAgentAssignment,
        },
        E::ConversationResumed {
            conversation: CONVERSATION,
            agent: AGENT,
            units: 10,
            tab: TabOutcome::Opened,
        },
        E::ConversationWaiting {
            conversation: CONVERSATION,
            agent: AGENT,
        },
        E::EndConversation {
            conversation: CONVERSATION,
            ended_by: Actor::Agent(AGENT),
            reason: StatusReason::ConversationEndedByAgent,
        },
        E::EndConversation {
            conversation: CONVERSATION,
            ended_by: Actor::Customer,
            reason: StatusReason::CustomerDisconnected,
        },
        E::EndConversation {
            conversation: CONVERSATION,
            ended_by: Actor::System,
            reason: StatusReason::AgentMovedToWrapUp,
        },
        E::EndConversation {
            conversation: CONVERSATION,
            ended_by: Actor::Supervisor(SUPERVISOR),
            reason: StatusReason::ForceClosedBySupervisor,
        },
        E::ConversationClosed {
            conversation: CONVERSATION,
            reason: StatusReason::WrapUpCompleted,
        },
        E::CustomerDisconnected {
            conversation: CONVERSATION,
        },
        E::CustomerReconnected {
            conversation: CONVERSATION,
        },
    ]
}

/// The first example of the kind called `name`.
fn example(name: &str) -> E {
    every_kind()
        .into_iter()
        .find(|kind| kind.name() == name)
        .unwrap_or_else(|| panic!("no example of {name}"))
}

fn envelope(kind: E) -> Envelope {
    Envelope {
        event_id: Uuid::now_v7(),
        stream_id: stream_id_for(&kind),
        correlation_id: Uuid::from_u128(0xc0ffee),
        causation_id: Some(Uuid::from_u128(0xca05e)),
        actor: Actor::Agent(AGENT),
        event: Event {
            at: Timestamp(1_700_000_000_000),
            kind,
        },
    }
}

#[test]
fn every_event_kind_round_trips_through_bytes() {
    let kinds = every_kind();
    let names: BTreeSet<&str> = kinds.iter().map(E::name).collect();
    assert_eq!(names.len(), EVENT_KINDS, "an EventKind lacks an example");

    let mut buf = Vec::new();
    for kind in kinds {
        let original = envelope(kind);
        let bytes = encode(&original);
        let message = pb::EventEnvelope::decode(bytes.as_slice()).expect("prost reads it back");
        assert_eq!(Envelope::try_from(message), Ok(original.clone()));
        assert_eq!(decode(&bytes), Ok(original.clone()));

        buf.clear();
        encode_to(&original, &mut buf);
        assert_eq!(buf, bytes, "encode_to writes what encode returns");
    }
}

#[test]
fn envelope_metadata_round_trips_with_every_actor_and_no_causation() {
    let actors = [
        Actor::Agent(AGENT),
        Actor::Supervisor(SUPERVISOR),
        Actor::Customer,
        Actor::System,
    ];
    for actor in actors {
        let original = Envelope {
            causation_id: None,
            actor,
            ..envelope(E::CallHeld {
                conversation: CONVERSATION,
            })
        };
        assert_eq!(decode(&encode(&original)), Ok(original));
    }
}

#[test]
fn encode_to_appends() {
    let first = envelope(E::AgentSignedIn { agent: AGENT });
    let second = envelope(E::AgentSignedOut { agent: AGENT });
    let mut buf = encode(&first);
    encode_to(&second, &mut buf);
    assert_eq!(buf, [encode(&first), encode(&second)].concat());
}

#[test]
fn streams_follow_the_conversation_then_the_agent_then_the_queue() {
    let stream = |name: &str| stream_id_for(&example(name));
    assert_eq!(
        stream("SessionAccepted"),
        "conversation-00000000-0000-0000-0000-0000000000c0"
    );
    assert_eq!(
        stream("TransferCompleted"),
        "conversation-00000000-0000-0000-0000-0000000000c0"
    );
    assert_eq!(
        stream("PresenceUpdate"),
        "agent-00000000-0000-0000-0000-0000000000a1"
    );
    assert_eq!(
        stream("QueueMembershipChanged"),
        "agent-00000000-0000-0000-0000-0000000000a1"
    );
    assert_eq!(
        stream("AgentProvisioned"),
        "agent-00000000-0000-0000-0000-0000000000a1"
    );
    assert_eq!(
        stream("QueueConfigured"),
        "queue-00000000-0000-0000-0000-000000000090"
    );
    assert_eq!(stream("WorkstreamConfigured"), "config");
    assert_eq!(stream("CustomPresenceDefined"), "config");
}

/// The proto enums carry exactly the core's codes, under the same names.
#[test]
fn proto_enums_use_the_domain_codes() {
    macro_rules! same_codes {
        ($($ty:ident),+) => {$(
            for value in omni_core::$ty::ALL {
                let wire = pb::$ty::try_from(value.code())
                    .unwrap_or_else(|_| panic!("{value:?} has no value in the proto"));
                assert!(
                    format!("{wire:?}").eq_ignore_ascii_case(&format!("{value:?}")),
                    "code {} is {wire:?} in the proto but {value:?} in the core",
                    value.code()
                );
            }
            assert_eq!(omni_core::$ty::from_code(0), None, "0 must stay UNSPECIFIED");
        )+};
    }
    same_codes!(
        ConversationStatus,
        StatusReason,
        Channel,
        SessionStatus,
        ClosureReason,
        BaseStatus,
        PresenceSource,
        MediaKind,
        LinkEntity,
        AssignmentMethod,
        RoutingMode
    );
    for (tab, wire) in [
        (TabOutcome::Opened, pb::TabOutcome::Opened),
        (TabOutcome::Reactivated, pb::TabOutcome::Reactivated),
        (TabOutcome::LimitReached, pb::TabOutcome::LimitReached),
    ] {
        assert_eq!(tab.code(), wire as i32);
    }
}

/// Ids travel as their 16 bytes in RFC 4122 order, the order of the text form.
#[test]
fn ids_are_their_sixteen_bytes_in_text_order() {
    let available = PresenceId::AVAILABLE.0;
    assert_eq!(
        available.hyphenated().to_string(),
        "f523f628-c07a-e811-8162-000d3aa11f50"
    );
    let bytes = uuid_to_bytes(available);
    assert_eq!(
        bytes[..],
        [
            0xf5, 0x23, 0xf6, 0x28, 0xc0, 0x7a, 0xe8, 0x11, 0x81, 0x62, 0x00, 0x0d, 0x3a, 0xa1,
            0x1f, 0x50
        ]
    );
    let at = FieldPath::new("Presence", "presence_id");
    assert_eq!(uuid_from_bytes(&bytes, at), Ok(available));
    assert_eq!(optional_uuid_from_bytes(&bytes, at), Ok(Some(available)));
    assert_eq!(optional_uuid_from_bytes(&[], at), Ok(None));
    assert_eq!(uuid_from_bytes(&[], at), Err(DecodeError::Missing(at)));
    assert_eq!(
        optional_uuid_from_bytes(&bytes[1..], at),
        Err(DecodeError::NotAUuid { field: at, len: 15 })
    );

    // On the wire: an agent signing in is the envelope around tag 1, 16 bytes, the agent's id.
    let signed_in = pb::EventEnvelope::from(&envelope(E::AgentSignedIn { agent: AGENT }));
    match signed_in.event {
        Some(Ev::AgentSignedIn(m)) => {
            assert_eq!(
                m.encode_to_vec(),
                [&[0x0a, 16][..], AGENT.0.as_bytes()].concat()
            )
        }
        other => panic!("expected AgentSignedIn, built {other:?}"),
    }
}

// --- malformed input ---------------------------------------------------------------------

/// The wire form of an example event, with `$edit` applied to its `$variant` message.
macro_rules! tampered {
    ($kind:expr, $variant:ident, |$m:ident| $edit:expr) => {{
        let mut message = pb::EventEnvelope::from(&envelope($kind));
        match message.event.as_mut() {
            Some(Ev::$variant($m)) => $edit,
            other => panic!("expected {}, built {other:?}", stringify!($variant)),
        }
        message
    }};
}

/// Decoding `message`'s bytes fails with exactly `expected`.
fn rejects(message: pb::EventEnvelope, expected: &str) -> DecodeError {
    let error = decode(&message.encode_to_vec()).expect_err("must not decode");
    assert_eq!(error.to_string(), expected);
    error
}

fn accepted() -> E {
    E::SessionAccepted {
        session: SESSION,
        agent: AGENT,
        units: 1,
        tab: TabOutcome::Opened,
    }
}

#[test]
fn a_missing_id_is_named() {
    let message = tampered!(
        example("IncomingSessionRequest"),
        IncomingSessionRequest,
        |m| m.agent_id.clear()
    );
    let error = rejects(message, "IncomingSessionRequest.agent_id is missing");
    assert!(matches!(error, DecodeError::Missing(_)));
}

#[test]
fn an_id_of_the_wrong_length_is_named() {
    let message = tampered!(accepted(), SessionAccepted, |m| m.agent_id =
        b"xyz".to_vec().into());
    let error = rejects(
        message,
        "SessionAccepted.agent_id: 3 bytes are not a UUID (an id is 16 bytes)",
    );
    assert!(matches!(error, DecodeError::NotAUuid { len: 3, .. }));
    // The text form of a UUID is not its wire form either.
    let message = tampered!(accepted(), SessionAccepted, |m| m.agent_id =
        AGENT.0.hyphenated().to_string().into_bytes().into());
    rejects(
        message,
        "SessionAccepted.agent_id: 36 bytes are not a UUID (an id is 16 bytes)",
    );
}

#[test]
fn an_unknown_code_names_its_vocabulary() {
    let closed = E::ConversationClosed {
        conversation: CONVERSATION,
        reason: StatusReason::AutoClosedBySystem,
    };
    let message = tampered!(closed, ConversationClosed, |m| m.reason = 77);
    let error = rejects(
        message,
        "ConversationClosed.reason: 77 is not a known StatusReason",
    );
    assert!(matches!(error, DecodeError::UnknownCode { value: 77, .. }));
}

#[test]
fn an_unspecified_enum_is_missing() {
    let message = tampered!(accepted(), SessionAccepted, |m| m.tab = 0);
    rejects(message, "SessionAccepted.tab is missing");
}

#[test]
fn session_number_zero_is_missing() {
    let message = tampered!(accepted(), SessionAccepted, |m| m.session_number = 0);
    rejects(message, "SessionAccepted.session_number is missing");
}

#[test]
fn media_state_is_an_optional_code_validated_against_the_domain() {
    let media = || E::MediaStateChanged {
        conversation: CONVERSATION,
        media: MediaKind::Recording,
        state: MediaState::Running,
    };
    let unset = tampered!(media(), MediaStateChanged, |m| m.state = None);
    rejects(unset, "MediaStateChanged.state is missing");
    let unknown = tampered!(media(), MediaStateChanged, |m| m.state = Some(4));
    rejects(
        unknown,
        "MediaStateChanged.state: 4 is not a known MediaState",
    );
}

#[test]
fn errors_inside_nested_messages_and_oneofs_give_the_whole_path() {
    let ended = E::EndConversation {
        conversation: CONVERSATION,
        ended_by: Actor::Agent(AGENT),
        reason: StatusReason::ConversationEndedByAgent,
    };
    let message = tampered!(ended.clone(), EndConversation, |m| {
        m.ended_by = Some(pb::Actor {
            kind: Some(pb::actor::Kind::AgentId(vec![0; 17].into())),
        })
    });
    rejects(
        message,
        "EndConversation.ended_by.agent_id: 17 bytes are not a UUID (an id is 16 bytes)",
    );
    let message = tampered!(ended, EndConversation, |m| m.ended_by = None);
    rejects(message, "EndConversation.ended_by is missing");

    let update = example("PresenceUpdate");
    let message = tampered!(update, PresenceUpdate, |m| {
        if let Some(presence) = m.presence.as_mut() {
            presence.base = 5;
        }
    });
    rejects(
        message,
        "PresenceUpdate.presence.base: 5 is not a known BaseStatus",
    );

    let transfer = || E::TransferInitiated {
        conversation: CONVERSATION,
        from: AGENT,
        target: TransferTarget::Queue(QUEUE),
    };
    let message = tampered!(transfer(), TransferInitiated, |m| m.target = None);
    rejects(message, "TransferInitiated.target is missing");
    let message = tampered!(transfer(), TransferInitiated, |m| {
        m.target = Some(pb::transfer_initiated::Target::TargetQueueId(
            vec![1; 15].into(),
        ))
    });
    rejects(
        message,
        "TransferInitiated.target_queue_id: 15 bytes are not a UUID (an id is 16 bytes)",
    );

    let workstream = example("WorkstreamConfigured");
    let message = tampered!(workstream.clone(), WorkstreamConfigured, |m| m
        .allowed_presences
        .push(3));
    rejects(
        message,
        "WorkstreamConfigured.allowed_presences: 3 is not a known BaseStatus",
    );
    let message = tampered!(workstream, WorkstreamConfigured, |m| m.timers = None);
    rejects(message, "WorkstreamConfigured.timers is missing");
}

#[test]
fn envelope_fields_are_checked() {
    let valid = || pb::EventEnvelope::from(&envelope(accepted()));

    let mut message = valid();
    message.event_id = b"not-a-uuid".to_vec().into();
    rejects(
        message,
        "EventEnvelope.event_id: 10 bytes are not a UUID (an id is 16 bytes)",
    );

    let mut message = valid();
    message.correlation_id.clear();
    rejects(message, "EventEnvelope.correlation_id is missing");

    let mut message = valid();
    message.causation_id = vec![7; 4].into();
    rejects(
        message,
        "EventEnvelope.causation_id: 4 bytes are not a UUID (an id is 16 bytes)",
    );

    let mut message = valid();
    message.stream_id.clear();
    rejects(message, "EventEnvelope.stream_id is missing");

    let mut message = valid();
    message.actor = None;
    rejects(message, "EventEnvelope.actor is missing");

    let mut message = valid();
    message.actor = Some(pb::Actor { kind: None });
    rejects(message, "EventEnvelope.actor.kind is missing");
}

#[test]
fn an_envelope_without_event_is_reported_not_dropped() {
    let mut message = pb::EventEnvelope::from(&envelope(accepted()));
    message.event = None;
    let event_id = Uuid::from_slice(&message.event_id).expect("16 bytes");
    let error = rejects(
        message,
        &format!("event envelope {event_id} carries no event this version knows (newer schema?)"),
    );
    assert!(matches!(error, DecodeError::UnknownEvent { .. }));
}

#[test]
fn an_event_kind_from_a_newer_schema_is_reported() {
    let mut message = pb::EventEnvelope::from(&envelope(accepted()));
    message.event = None;
    let mut bytes = message.encode_to_vec();
    // Field 999, length-delimited, 2 bytes: what a newer writer's event would look like.
    prost::encoding::encode_key(999, prost::encoding::WireType::LengthDelimited, &mut bytes);
    bytes.extend_from_slice(&[2, 0x08, 0x01]);
    assert!(matches!(
        decode(&bytes),
        Err(DecodeError::UnknownEvent { .. })
    ));
}

#[test]
fn bytes_that_are_not_protobuf_are_rejected_clearly() {
    let error = decode(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").expect_err("garbage");
    assert!(matches!(error, DecodeError::NotProtobuf(_)));
    assert_eq!(
        error.to_string(),
        "bytes are not a protobuf omnichannel.v1.EventEnvelope: \
         failed to decode Protobuf message: invalid varint"
    );

    let truncated = &encode(&envelope(accepted()))[..20];
    assert!(matches!(
        decode(truncated),
        Err(DecodeError::NotProtobuf(_))
    ));
}

// --- replay's reader -----------------------------------------------------------------------

/// Replay's reader: every kind comes back from a slice of a larger buffer, as from `decode`.
#[test]
fn decode_event_reads_every_kind_from_a_shared_buffer() {
    let envelopes: Vec<Envelope> = every_kind().into_iter().map(envelope).collect();
    let mut buf = Vec::new();
    let mut ends = Vec::new();
    for original in &envelopes {
        encode_to(original, &mut buf);
        ends.push(buf.len());
    }
    let shared = Bytes::from(buf);
    let mut start = 0;
    for (original, end) in envelopes.iter().zip(ends) {
        let bytes = shared.slice(start..end);
        assert_eq!(decode_event(&bytes), Ok(original.event.clone()));
        start = end;
    }
}

/// The envelope's metadata is skipped, not checked; the event is checked as `decode` does.
#[test]
fn decode_event_checks_the_event_and_skips_the_metadata() {
    let original = envelope(accepted());
    let mut message = pb::EventEnvelope::from(&original);
    message.correlation_id = vec![1; 3].into();
    message.stream_id.clear();
    message.actor = None;
    let bytes = Bytes::from(message.encode_to_vec());
    assert_eq!(decode_event(&bytes), Ok(original.event));
    assert!(decode(&bytes).is_err(), "decode still checks all of it");

    let message = tampered!(accepted(), SessionAccepted, |m| m.agent_id =
        vec![9; 20].into());
    let bytes = Bytes::from(message.encode_to_vec());
    let error = decode_event(&bytes).expect_err("a bad id in the event");
    assert_eq!(
        error.to_string(),
        "SessionAccepted.agent_id: 20 bytes are not a UUID (an id is 16 bytes)"
    );
    assert_eq!(decode(&bytes).expect_err("the same error"), error);

    let garbage = Bytes::from_static(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff");
    assert!(matches!(
        decode_event(&garbage),
        Err(DecodeError::NotProtobuf(_))
    ));
}

#[test]
fn decode_event_reports_an_unknown_kind_with_its_event_id() {
    let mut message = pb::EventEnvelope::from(&envelope(accepted()));
    message.event = None;
    let event_id = Uuid::from_slice(&message.event_id).expect("16 bytes");
    let mut bytes = message.encode_to_vec();
    prost::encoding::encode_key(999, prost::encoding::WireType::LengthDelimited, &mut bytes);
    bytes.extend_from_slice(&[2, 0x08, 0x01]);
    assert_eq!(
        decode_event(&Bytes::from(bytes)),
        Err(DecodeError::UnknownEvent { event_id })
    );
}
