//! Every intake command end to end: sent over NATS like any client would, decided by the
//! engine, stored, and answered with the committed event kinds asserted exactly. The router
//! runs meanwhile, as in production; the scenario only leaves it work where the test waits
//! for its offer, and sends `route` and `assignment_cycle` pipelined behind the start they
//! route, so the engine judges them before the router can.

use std::collections::BTreeSet;
use std::time::Duration;

use omni_bus::subjects;
use omni_core::{
    Actor, AgentId, AssignmentMethod, BaseStatus, Channel, Command, ConversationId, CustomPresence,
    EventKind, LinkEntity, LinkedRecord, MediaAction, MediaKind, PresenceId, QueueConfig, QueueId,
    RecordId, RoutingMode, SessionRef, SupervisorId, TransferTarget, Workstream,
};
use omni_proto::COMMAND_NAMES;

use crate::live::{Events, Live, block_on, committed};
use crate::support::{
    ANN, BOB, CHAT, CID, SMS, VOICE, conversation, profile, start_in as start, workstream_of,
};

/// A live-chat queue whose workstream routes in pick mode.
const PICK: QueueId = QueueId::from_u128(0xC5);
const LUNCH: PresenceId = PresenceId::from_u128(0x1C4);
const SUPERVISOR: SupervisorId = SupervisorId::from_u128(0x5E);
const CONTACT: RecordId = RecordId::from_u128(0xC047AC7);
const CASE_1: RecordId = RecordId::from_u128(0xCA5E1);
const CASE_2: RecordId = RecordId::from_u128(0xCA5E2);

const WITHIN: Duration = Duration::from_secs(5);

/// The live engine, remembering which commands the scenario sent.
struct Script {
    live: Live,
    sent: BTreeSet<&'static str>,
}

impl Script {
    /// Customer `n` arrives in `queue` and is offered on arrival: the conversation's events,
    /// followed from before the start, and the agent and session of the offer.
    async fn arrive(&mut self, n: u128, queue: QueueId) -> (Events, AgentId, SessionRef) {
        let mut events = self.follow(conversation(n)).await;
        self.expect(Actor::Customer, start(n, queue), ARRIVAL).await;
        let (offered, session) = next_offer(&mut events).await;
        (events, offered, session)
    }

    /// As [`Script::arrive`], and the offered agent accepts: the primary agent.
    async fn arrive_and_accept(&mut self, n: u128, queue: QueueId) -> AgentId {
        let (_, primary, session) = self.arrive(n, queue).await;
        self.accept(primary, session).await;
        primary
    }

    /// `agent` accepts the offered `session` and becomes its primary agent.
    async fn accept(&mut self, agent_id: AgentId, session: SessionRef) {
        self.expect(
            agent(agent_id),
            Command::Accept {
                agent: agent_id,
                session,
            },
            &["SessionAccepted", "PresenceUpdate"],
        )
        .await;
    }

    /// Sends `command` as `actor`; it must be accepted with exactly `kinds`.
    async fn expect(&mut self, actor: Actor, command: Command, kinds: &[&str]) {
        self.sent.insert(omni_proto::command_name(&command));
        self.live.expect(actor, command, kinds).await;
    }

    /// Sends the commands back to back; each must be accepted with its kinds.
    async fn pipelined(&mut self, commands: &[(Actor, Command, &[&str])]) {
        let plain: Vec<(Actor, Command)> = commands
            .iter()
            .map(|(actor, command, _)| (*actor, command.clone()))
            .collect();
        let outcomes = self.live.pipelined(&plain).await;
        for ((_, command, kinds), outcome) in commands.iter().zip(outcomes) {
            self.sent.insert(omni_proto::command_name(command));
            committed(command, outcome, kinds);
        }
    }

    async fn follow(&self, conversation: ConversationId) -> Events {
        self.live
            .events(&subjects::events_of_conversation(conversation))
            .await
    }
}

/// The next offer among `events`: who was offered which session.
async fn next_offer(events: &mut Events) -> (AgentId, SessionRef) {
    let (_, envelope) = events.next("IncomingSessionRequest", WITHIN).await;
    match envelope.event.kind {
        EventKind::IncomingSessionRequest { agent, session, .. } => (agent, session),
        other => panic!("not an offer: {other:?}"),
    }
}

/// What a start in a push queue with someone free commits: routing offers it on arrival.
const ARRIVAL: &[&str] = &["ConversationCreated", "IncomingSessionRequest"];

fn agent(a: AgentId) -> Actor {
    Actor::Agent(a)
}

/// Administration: every configuration command once.
async fn configure(s: &mut Script) {
    let sys = Actor::System;
    for (queue, channel, name, method, mode) in [
        (
            CHAT,
            Channel::LiveChat,
            "chat",
            AssignmentMethod::AdvancedRoundRobin,
            RoutingMode::Push,
        ),
        (
            VOICE,
            Channel::Voice,
            "voice",
            AssignmentMethod::HighestCapacity,
            RoutingMode::Push,
        ),
        (
            SMS,
            Channel::Sms,
            "sms",
            AssignmentMethod::LeastActive,
            RoutingMode::Push,
        ),
        (
            PICK,
            Channel::LiveChat,
            "pick",
            AssignmentMethod::AdvancedRoundRobin,
            RoutingMode::Pick,
        ),
    ] {
        let mut ws = Workstream::with_defaults(workstream_of(queue), name, channel);
        ws.mode = mode;
        s.expect(
            sys,
            Command::ConfigureWorkstream(ws),
            &["WorkstreamConfigured"],
        )
        .await;
        let config = QueueConfig {
            id: queue,
            name: name.to_owned(),
            workstream: workstream_of(queue),
            method,
        };
        s.expect(sys, Command::ConfigureQueue(config), &["QueueConfigured"])
            .await;
    }
    let lunch = CustomPresence {
        id: LUNCH,
        name: "Lunch".to_owned(),
        base: BaseStatus::Away,
    };
    s.expect(
        sys,
        Command::DefineCustomPresence(lunch),
        &["CustomPresenceDefined"],
    )
    .await;
    for a in [ANN, BOB, CID] {
        s.expect(
            sys,
            Command::ProvisionAgent(profile(a, 3)),
            &["AgentProvisioned"],
        )
        .await;
        for queue in [CHAT, VOICE, SMS, PICK] {
            s.expect(
                sys,
                Command::AddAgentToQueue { queue, agent: a },
                &["QueueMembershipChanged"],
            )
            .await;
        }
    }
    s.expect(
        sys,
        Command::SetAgentCapacity {
            agent: ANN,
            capacity_units: 4,
        },
        &["AgentCapacityChanged"],
    )
    .await;
    s.expect(
        sys,
        Command::RemoveAgentFromQueue {
            queue: VOICE,
            agent: CID,
        },
        &["QueueMembershipChanged"],
    )
    .await;
}

/// Presence and connection, before any conversation exists.
async fn desktop_basics(s: &mut Script) {
    for a in [CID, ANN] {
        s.expect(
            agent(a),
            Command::SignIn { agent: a },
            &["AgentSignedIn", "PresenceUpdate"],
        )
        .await;
    }
    s.expect(
        agent(CID),
        Command::SignOut { agent: CID },
        &["PresenceUpdate", "AgentSignedOut"],
    )
    .await;
    for presence in [LUNCH, PresenceId::AVAILABLE] {
        s.expect(
            agent(ANN),
            Command::SetPresence {
                agent: ANN,
                presence,
            },
            &["PresenceUpdate"],
        )
        .await;
    }
    s.expect(
        agent(ANN),
        Command::Disconnect { agent: ANN },
        &["AgentDisconnected", "PresenceUpdate"],
    )
    .await;
    s.expect(
        agent(ANN),
        Command::Reconnect { agent: ANN },
        &["AgentReconnected", "PresenceUpdate"],
    )
    .await;
}

/// A live chat: offered, rejected, offered again, accepted, messages, focus, links, a consult,
/// a transfer to an agent and one to a queue, a customer who drops and comes back, end and
/// wrap-up.
async fn chat(s: &mut Script) {
    let c1 = conversation(1);
    // Ann is the only one signed in: routing offers her the chat on arrival, and the router
    // again after she rejects it (a decliner comes last, but is not skipped when nobody else
    // can help).
    let (mut events, offered, session) = s.arrive(1, CHAT).await;
    assert_eq!(offered, ANN);
    s.expect(
        agent(ANN),
        Command::Reject {
            agent: ANN,
            session,
        },
        &["OfferRejected"],
    )
    .await;
    let (offered, session) = next_offer(&mut events).await;
    assert_eq!((offered, session.number.0), (ANN, 2));
    s.accept(ANN, session).await;
    s.expect(
        Actor::Customer,
        Command::CustomerMessage { conversation: c1 },
        &["UnreadMessage"],
    )
    .await;
    s.expect(
        agent(ANN),
        Command::Focus {
            agent: ANN,
            session,
        },
        &["SessionFocused"],
    )
    .await;
    // Linking without a conversation id uses the focused one.
    for record in [
        LinkedRecord {
            entity: LinkEntity::Contact,
            record: CONTACT,
        },
        LinkedRecord {
            entity: LinkEntity::Incident,
            record: CASE_1,
        },
    ] {
        s.expect(
            agent(ANN),
            Command::Link {
                agent: ANN,
                conversation: None,
                record,
            },
            &["RecordLinked"],
        )
        .await;
    }
    s.expect(
        agent(ANN),
        Command::Unlink {
            agent: ANN,
            conversation: Some(c1),
            entity: LinkEntity::Contact,
            record: CONTACT,
        },
        &["RecordUnlinked"],
    )
    .await;

    s.expect(
        agent(BOB),
        Command::SignIn { agent: BOB },
        &["AgentSignedIn", "PresenceUpdate"],
    )
    .await;
    let consult = |start: bool| {
        let (agent, conversation, consultant) = (ANN, c1, BOB);
        if start {
            Command::StartConsult {
                agent,
                conversation,
                consultant,
            }
        } else {
            Command::EndConsult {
                agent,
                conversation,
                consultant,
            }
        }
    };
    s.expect(agent(ANN), consult(true), &["ConsultStarted"])
        .await;
    s.expect(agent(ANN), consult(false), &["ConsultEnded"])
        .await;

    // To Bob: Ann's session closes and her capacity is released at once.
    s.expect(
        agent(ANN),
        Command::Transfer {
            agent: ANN,
            conversation: c1,
            target: TransferTarget::Agent(BOB),
        },
        &[
            "SessionClosed",
            "CapacityReleased",
            "PresenceUpdate",
            "TransferInitiated",
            "IncomingSessionRequest",
        ],
    )
    .await;
    let (offered, session) = next_offer(&mut events).await;
    assert_eq!(offered, BOB);
    s.expect(
        agent(BOB),
        Command::Accept {
            agent: BOB,
            session,
        },
        &["SessionAccepted", "TransferCompleted", "PresenceUpdate"],
    )
    .await;

    // Back to the queue: routed again by the router, to whoever it chooses.
    s.expect(
        agent(BOB),
        Command::Transfer {
            agent: BOB,
            conversation: c1,
            target: TransferTarget::Queue(CHAT),
        },
        &[
            "SessionClosed",
            "CapacityReleased",
            "PresenceUpdate",
            "TransferInitiated",
            "ConversationQueued",
        ],
    )
    .await;
    let (primary, session) = next_offer(&mut events).await;
    s.accept(primary, session).await;

    s.expect(
        Actor::Customer,
        Command::CustomerDisconnect { conversation: c1 },
        &["CustomerDisconnected"],
    )
    .await;
    s.expect(
        Actor::Customer,
        Command::CustomerReconnect { conversation: c1 },
        &["CustomerReconnected"],
    )
    .await;
    s.expect(
        agent(primary),
        Command::End {
            agent: primary,
            conversation: c1,
        },
        &["EndConversation"],
    )
    .await;
    s.expect(
        agent(primary),
        Command::CompleteWrapUp {
            agent: primary,
            conversation: c1,
        },
        &[
            "SessionClosed",
            "CapacityReleased",
            "PresenceUpdate",
            "ConversationClosed",
        ],
    )
    .await;
}

/// A call: hold, unhold, recording and transcription, the customer hangs up, a supervisor
/// force-closes the wrap-up.
async fn voice(s: &mut Script) {
    let c2 = conversation(2);
    let primary = s.arrive_and_accept(2, VOICE).await;
    for hold in [true, false] {
        let (command, kind) = if hold {
            (
                Command::Hold {
                    agent: primary,
                    conversation: c2,
                },
                "CallHeld",
            )
        } else {
            (
                Command::Unhold {
                    agent: primary,
                    conversation: c2,
                },
                "CallResumed",
            )
        };
        s.expect(agent(primary), command, &[kind]).await;
    }
    for action in [
        MediaAction::Start,
        MediaAction::Pause,
        MediaAction::Resume,
        MediaAction::Stop,
    ] {
        s.expect(
            agent(primary),
            Command::Media {
                actor: agent(primary),
                conversation: c2,
                media: MediaKind::Recording,
                action,
            },
            &["MediaStateChanged"],
        )
        .await;
    }
    // A supervisor may control media too.
    s.expect(
        Actor::Supervisor(SUPERVISOR),
        Command::Media {
            actor: Actor::Supervisor(SUPERVISOR),
            conversation: c2,
            media: MediaKind::Transcription,
            action: MediaAction::Start,
        },
        &["MediaStateChanged"],
    )
    .await;
    // The customer hangs up: the running transcription stops, wrap-up starts.
    s.expect(
        Actor::Customer,
        Command::CustomerEnd { conversation: c2 },
        &["MediaStateChanged", "EndConversation"],
    )
    .await;
    s.expect(
        Actor::Supervisor(SUPERVISOR),
        Command::ForceClose {
            supervisor: SUPERVISOR,
            conversation: c2,
        },
        &[
            "SessionClosed",
            "CapacityReleased",
            "PresenceUpdate",
            "ConversationClosed",
        ],
    )
    .await;
}

/// A persistent channel: the session closes while the customer is away (Waiting), the agent
/// takes it back, links a case, and resolving the case in the CRM closes the conversation.
async fn sms(s: &mut Script) {
    let c3 = conversation(3);
    let primary = s.arrive_and_accept(3, SMS).await;
    s.expect(
        agent(primary),
        Command::CloseSession {
            agent: primary,
            conversation: c3,
        },
        &[
            "SessionClosed",
            "CapacityReleased",
            "PresenceUpdate",
            "ConversationWaiting",
        ],
    )
    .await;
    s.expect(
        agent(primary),
        Command::ResumeWaiting {
            agent: primary,
            conversation: c3,
        },
        &["ConversationResumed", "PresenceUpdate"],
    )
    .await;
    s.expect(
        agent(primary),
        Command::Link {
            agent: primary,
            conversation: Some(c3),
            record: LinkedRecord {
                entity: LinkEntity::Incident,
                record: CASE_2,
            },
        },
        &["RecordLinked"],
    )
    .await;
    s.expect(
        Actor::System,
        Command::ResolveCase { record: CASE_2 },
        &[
            "SessionClosed",
            "CapacityReleased",
            "PresenceUpdate",
            "ConversationClosed",
        ],
    )
    .await;
}

/// Pick mode, and routing asked for explicitly: `route`, `assignment_cycle`, and a supervisor
/// who reassigns an outstanding offer.
async fn routing(s: &mut Script) {
    let c4 = conversation(4);
    s.expect(Actor::Customer, start(4, PICK), &["ConversationCreated"])
        .await;
    s.expect(
        agent(ANN),
        Command::Pick {
            agent: ANN,
            conversation: c4,
        },
        &[
            "IncomingSessionRequest",
            "SessionAccepted",
            "PresenceUpdate",
        ],
    )
    .await;

    // Routing offers both on arrival; `route` and `assignment_cycle` route them again after a
    // rejection, sent together with it, so before the router's own request.
    let (c5, c6) = (conversation(5), conversation(6));
    let route: &[&str] = &["IncomingSessionRequest"];
    let (_, offered, session) = s.arrive(5, CHAT).await;
    s.pipelined(&[
        (
            agent(offered),
            Command::Reject {
                agent: offered,
                session,
            },
            &["OfferRejected"],
        ),
        (Actor::System, Command::Route { conversation: c5 }, route),
    ])
    .await;
    let (mut c6_events, offered, session) = s.arrive(6, CHAT).await;
    s.pipelined(&[
        (
            agent(offered),
            Command::Reject {
                agent: offered,
                session,
            },
            &["OfferRejected"],
        ),
        (
            Actor::System,
            Command::AssignmentCycle { queue: Some(CHAT) },
            route,
        ),
    ])
    .await;
    // The supervisor gives conversation 6 to whoever it was not offered to.
    let (offered, _) = next_offer(&mut c6_events).await;
    let other = if offered == ANN { BOB } else { ANN };
    s.expect(
        Actor::Supervisor(SUPERVISOR),
        Command::SupervisorAssign {
            supervisor: SUPERVISOR,
            conversation: c6,
            agent: other,
        },
        &["OfferWithdrawn", "IncomingSessionRequest"],
    )
    .await;
    let (offered, _) = next_offer(&mut c6_events).await;
    assert_eq!(offered, other, "the supervisor's choice is offered");

    // Tidy up: everything closes, and both agents can sign out.
    for c in [c5, c6] {
        s.expect(
            Actor::Supervisor(SUPERVISOR),
            Command::ForceClose {
                supervisor: SUPERVISOR,
                conversation: c,
            },
            &["OfferWithdrawn", "ConversationClosed"],
        )
        .await;
    }
    s.expect(
        agent(ANN),
        Command::End {
            agent: ANN,
            conversation: c4,
        },
        &["EndConversation"],
    )
    .await;
    s.expect(
        agent(ANN),
        Command::CompleteWrapUp {
            agent: ANN,
            conversation: c4,
        },
        &[
            "SessionClosed",
            "CapacityReleased",
            "PresenceUpdate",
            "ConversationClosed",
        ],
    )
    .await;
    for a in [ANN, BOB] {
        s.expect(
            agent(a),
            Command::SignOut { agent: a },
            &["PresenceUpdate", "AgentSignedOut"],
        )
        .await;
    }
}

#[test]
fn every_intake_command_is_accepted_end_to_end_with_its_events() {
    block_on(async {
        let live = Live::start("every-command", 1).await;
        let mut s = Script {
            live,
            sent: BTreeSet::new(),
        };
        configure(&mut s).await;
        desktop_basics(&mut s).await;
        chat(&mut s).await;
        voice(&mut s).await;
        sms(&mut s).await;
        routing(&mut s).await;

        let missing: Vec<&str> = COMMAND_NAMES
            .iter()
            .copied()
            .filter(|name| !s.sent.contains(name))
            .collect();
        assert!(missing.is_empty(), "commands never sent: {missing:?}");

        // Nothing was left over for the router to do behind the scenario's back: every
        // conversation is closed and nobody holds capacity.
        let log = s.live.stop_and_read_log().await;
        let mut world = omni_core::World::default();
        for (_, envelope) in &log {
            omni_core::apply(&mut world, &envelope.event);
        }
        assert!(
            world
                .conversations
                .values()
                .all(|c| c.status == omni_core::ConversationStatus::Closed),
            "a conversation was left open"
        );
        assert!(
            world
                .agents
                .values()
                .all(|a| a.used_units == 0 && a.offered_units == 0 && !a.signed_in)
        );
    });
}
