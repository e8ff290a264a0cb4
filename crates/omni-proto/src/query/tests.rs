//! Query requests into domain values (happy paths, and malformed input naming the field), and
//! the views built from a world the real core decided.

use omni_core::{
    AgentId, AgentProfile, AssignmentMethod, BaseStatus, Channel, Command, ConversationId,
    ConversationStatus, LinkEntity, LinkedRecord, PresenceId, QueueConfig, QueueId, RecordId,
    SessionNo, SessionRef, Timestamp, Workstream, WorkstreamId, World, apply, decide,
};
use prost::Message;
use uuid::Uuid;

use super::*;
use crate::pb;

const CONVERSATION: ConversationId = ConversationId::from_u128(0xc0);
const WAITING: ConversationId = ConversationId::from_u128(0xc1);
const AGENT: AgentId = AgentId::from_u128(0xa1);
const CONSULTANT: AgentId = AgentId::from_u128(0xa2);
const QUEUE: QueueId = QueueId::from_u128(0x90);
const WORKSTREAM: WorkstreamId = WorkstreamId::from_u128(0x55);
const COMMAND: Uuid = Uuid::from_u128(0xc0de);

fn bytes(id: impl crate::wire::WireId) -> Vec<u8> {
    id.uuid().as_bytes().to_vec()
}

/// Decoding `message`'s bytes as `Q` fails with exactly `expected`.
fn rejects<Q: QueryRequest + std::fmt::Debug>(message: Q::Message, expected: &str) -> BadQuery {
    let error = Q::decode(&message.encode_to_vec()).expect_err("must not decode");
    assert_eq!(error.to_string(), expected);
    error
}

// --- requests --------------------------------------------------------------------------------

#[test]
fn get_conversation_reads_its_id_and_min_position() {
    let message = pb::GetConversation {
        conversation_id: bytes(CONVERSATION),
        min_position: 42,
    };
    let query = ConversationQuery::decode(&message.encode_to_vec()).expect("valid");
    assert_eq!(
        query,
        ConversationQuery {
            conversation: CONVERSATION,
            min_position: 42
        }
    );
    assert_eq!(query.min_position(), 42);
}

#[test]
fn list_conversations_reads_every_filter() {
    let message = pb::ListConversations {
        status: pb::ConversationStatus::Active as i32,
        queue_id: bytes(QUEUE),
        agent_id: bytes(AGENT),
        channel: pb::Channel::Sms as i32,
        page_size: 1000,
        page_token: bytes(CONVERSATION),
        min_position: 7,
    };
    assert_eq!(
        ConversationsQuery::decode(&message.encode_to_vec()),
        Ok(ConversationsQuery {
            status: Some(ConversationStatus::Active),
            queue: Some(QUEUE),
            agent: Some(AGENT),
            channel: Some(Channel::Sms),
            page_size: 1000,
            after: Some(CONVERSATION),
            min_position: 7,
        })
    );
}

#[test]
fn an_empty_list_request_means_any_and_a_default_page() {
    assert_eq!(
        ConversationsQuery::decode(&[]),
        Ok(ConversationsQuery {
            status: None,
            queue: None,
            agent: None,
            channel: None,
            page_size: DEFAULT_PAGE_SIZE,
            after: None,
            min_position: 0,
        })
    );
    assert_eq!(
        AgentsQuery::decode(&[]),
        Ok(AgentsQuery {
            queue: None,
            base: None,
            signed_in_only: false,
            page_size: DEFAULT_PAGE_SIZE,
            after: None,
            min_position: 0,
        })
    );
    assert_eq!(
        QueuesQuery::decode(&[]),
        Ok(QueuesQuery { min_position: 0 })
    );
}

#[test]
fn list_agents_reads_every_filter() {
    let message = pb::ListAgents {
        queue_id: bytes(QUEUE),
        base: pb::BaseStatus::BusyDnd as i32,
        signed_in_only: true,
        page_size: 1,
        page_token: bytes(AGENT),
        min_position: 3,
    };
    assert_eq!(
        AgentsQuery::decode(&message.encode_to_vec()),
        Ok(AgentsQuery {
            queue: Some(QUEUE),
            base: Some(BaseStatus::BusyDnd),
            signed_in_only: true,
            page_size: 1,
            after: Some(AGENT),
            min_position: 3,
        })
    );
}

#[test]
fn get_agent_and_modify_presence_read_their_ids() {
    let get = pb::GetAgent {
        agent_id: bytes(AGENT),
        min_position: 9,
    };
    assert_eq!(
        AgentQuery::decode(&get.encode_to_vec()),
        Ok(AgentQuery {
            agent: AGENT,
            min_position: 9
        })
    );
    let modify = pb::ModifyAgentPresence {
        command_id: COMMAND.as_bytes().to_vec(),
        agent_id: bytes(AGENT),
        presence_id: bytes(PresenceId::AWAY),
    };
    assert_eq!(
        PresenceChange::decode(&modify.encode_to_vec()),
        Ok(PresenceChange {
            command_id: COMMAND,
            agent: AGENT,
            presence: PresenceId::AWAY,
        })
    );
}

#[test]
fn a_page_size_beyond_the_limit_is_refused_not_cut() {
    let error = rejects::<ConversationsQuery>(
        pb::ListConversations {
            page_size: 1001,
            ..Default::default()
        },
        "ListConversations.page_size: 1001 is out of range (1 to 1000; 0 means 100)",
    );
    assert_eq!(
        error.field(),
        Some(FieldPath::new("ListConversations", "page_size"))
    );
    rejects::<AgentsQuery>(
        pb::ListAgents {
            page_size: u32::MAX,
            ..Default::default()
        },
        "ListAgents.page_size: 4294967295 is out of range (1 to 1000; 0 means 100)",
    );
}

#[test]
fn a_missing_id_is_named() {
    let error = rejects::<ConversationQuery>(
        pb::GetConversation::default(),
        "GetConversation.conversation_id is missing",
    );
    assert!(matches!(error, BadQuery::Field(DecodeError::Missing(_))));
    rejects::<AgentQuery>(pb::GetAgent::default(), "GetAgent.agent_id is missing");
    rejects::<PresenceChange>(
        pb::ModifyAgentPresence {
            command_id: COMMAND.as_bytes().to_vec(),
            agent_id: bytes(AGENT),
            presence_id: Vec::new(),
        },
        "ModifyAgentPresence.presence_id is missing",
    );
    rejects::<PresenceChange>(
        pb::ModifyAgentPresence {
            agent_id: bytes(AGENT),
            presence_id: bytes(PresenceId::AWAY),
            ..Default::default()
        },
        "ModifyAgentPresence.command_id is missing",
    );
}

#[test]
fn an_id_of_the_wrong_length_is_named() {
    rejects::<AgentQuery>(
        pb::GetAgent {
            agent_id: vec![1, 2, 3],
            min_position: 0,
        },
        "GetAgent.agent_id: 3 bytes are not a UUID (an id is 16 bytes)",
    );
    rejects::<ConversationsQuery>(
        pb::ListConversations {
            queue_id: vec![0; 17],
            ..Default::default()
        },
        "ListConversations.queue_id: 17 bytes are not a UUID (an id is 16 bytes)",
    );
    rejects::<ConversationsQuery>(
        pb::ListConversations {
            agent_id: vec![0; 4],
            ..Default::default()
        },
        "ListConversations.agent_id: 4 bytes are not a UUID (an id is 16 bytes)",
    );
    rejects::<AgentsQuery>(
        pb::ListAgents {
            page_token: b"next".to_vec(),
            ..Default::default()
        },
        "ListAgents.page_token: 4 bytes are not a UUID (an id is 16 bytes)",
    );
    rejects::<PresenceChange>(
        pb::ModifyAgentPresence {
            command_id: COMMAND.as_bytes().to_vec(),
            agent_id: bytes(AGENT),
            presence_id: vec![7; 8],
        },
        "ModifyAgentPresence.presence_id: 8 bytes are not a UUID (an id is 16 bytes)",
    );
}

#[test]
fn an_unknown_filter_code_names_its_vocabulary() {
    let error = rejects::<ConversationsQuery>(
        pb::ListConversations {
            status: 9,
            ..Default::default()
        },
        "ListConversations.status: 9 is not a known ConversationStatus",
    );
    assert_eq!(
        error.field(),
        Some(FieldPath::new("ListConversations", "status"))
    );
    rejects::<ConversationsQuery>(
        pb::ListConversations {
            channel: 12,
            ..Default::default()
        },
        "ListConversations.channel: 12 is not a known Channel",
    );
    rejects::<AgentsQuery>(
        pb::ListAgents {
            base: 1,
            ..Default::default()
        },
        "ListAgents.base: 1 is not a known BaseStatus",
    );
}

#[test]
fn bytes_that_are_not_the_request_are_refused_naming_the_message() {
    let garbage = [0xff, 0xff, 0xff];
    let error = ConversationQuery::decode(&garbage).expect_err("not protobuf");
    assert!(
        error
            .to_string()
            .starts_with("bytes are not a protobuf omnichannel.v1.GetConversation:"),
        "{error}"
    );
    assert_eq!(error.field(), None);
    let error = PresenceChange::decode(&garbage).expect_err("not protobuf");
    assert!(
        error
            .to_string()
            .starts_with("bytes are not a protobuf omnichannel.v1.ModifyAgentPresence:"),
        "{error}"
    );
}

// --- views -----------------------------------------------------------------------------------

const T0: Timestamp = Timestamp(1_700_000_000_000);

/// Decides `command` at `at` with the real core and folds what it emits.
fn run(world: &mut World, command: Command, at: Timestamp) {
    let events = decide(world, command.clone(), at)
        .unwrap_or_else(|r| panic!("{command:?} was rejected: {r}"));
    for event in &events {
        apply(world, event);
    }
}

/// A chat queue with two agents; one conversation routed on arrival and accepted by AGENT,
/// consulting CONSULTANT, with a contact linked; another waiting in the queue.
fn busy_world() -> World {
    let mut world = World::default();
    let mut at = T0;
    let mut step = |world: &mut World, command: Command| {
        at = at.plus_secs(1);
        run(world, command, at);
    };
    step(
        &mut world,
        Command::ConfigureWorkstream(Workstream::with_defaults(
            WORKSTREAM,
            "Chat",
            Channel::LiveChat,
        )),
    );
    step(
        &mut world,
        Command::ConfigureQueue(QueueConfig {
            id: QUEUE,
            name: "Tier 1".into(),
            workstream: WORKSTREAM,
            method: AssignmentMethod::HighestCapacity,
        }),
    );
    for (agent, name) in [(AGENT, "Ana"), (CONSULTANT, "Bo")] {
        step(
            &mut world,
            Command::ProvisionAgent(AgentProfile {
                id: agent,
                name: name.into(),
                capacity_units: 1,
                skills: ["billing".to_owned()].into(),
                max_sessions: 10,
                default_presence: PresenceId::AVAILABLE,
            }),
        );
        step(
            &mut world,
            Command::AddAgentToQueue {
                queue: QUEUE,
                agent,
            },
        );
    }
    step(&mut world, Command::SignIn { agent: AGENT });
    step(
        &mut world,
        Command::StartConversation {
            conversation: CONVERSATION,
            queue: QUEUE,
            skills: vec!["billing".into()],
            customer: "Carla".into(),
        },
    );
    // Routed on arrival: AGENT is the only one signed in.
    step(
        &mut world,
        Command::Accept {
            agent: AGENT,
            session: SessionRef {
                conversation: CONVERSATION,
                number: SessionNo(1),
            },
        },
    );
    step(&mut world, Command::SignIn { agent: CONSULTANT });
    step(
        &mut world,
        Command::StartConsult {
            agent: AGENT,
            conversation: CONVERSATION,
            consultant: CONSULTANT,
        },
    );
    step(
        &mut world,
        Command::Link {
            agent: AGENT,
            conversation: Some(CONVERSATION),
            record: LinkedRecord {
                entity: LinkEntity::Contact,
                record: RecordId::from_u128(0x1d),
            },
        },
    );
    // It asks for a skill nobody has, so routing on arrival leaves it in the queue.
    step(
        &mut world,
        Command::StartConversation {
            conversation: WAITING,
            queue: QUEUE,
            skills: vec!["french".into()],
            customer: "Dan".into(),
        },
    );
    world
}

#[test]
fn a_conversation_view_shows_status_agents_sessions_and_links() {
    let world = busy_world();
    let view = conversation_view(&world.conversations[&CONVERSATION]);
    assert_eq!(view.conversation_id, bytes(CONVERSATION));
    assert_eq!(view.status, pb::ConversationStatus::Active as i32);
    assert_eq!(view.reason, pb::StatusReason::InConversation as i32);
    assert_eq!(view.channel, pb::Channel::LiveChat as i32);
    assert_eq!(view.queue_id, bytes(QUEUE));
    assert_eq!(view.workstream_id, bytes(WORKSTREAM));
    assert_eq!(view.skills, ["billing"]);
    assert_eq!(view.customer, "Carla");
    assert_eq!(view.primary_agent_id, bytes(AGENT));
    assert_eq!(view.consultant_ids, [bytes(CONSULTANT)]);
    assert!(view.first_accepted_at > 0);
    assert_eq!(view.closed_at, 0);
    assert!(view.customer_connected);
    assert!(!view.on_hold);
    let link = view.customer_link.expect("a contact is linked");
    assert_eq!(link.entity, pb::LinkEntity::Contact as i32);
    assert_eq!(
        link,
        linked_record(LinkedRecord {
            entity: LinkEntity::Contact,
            record: RecordId::from_u128(0x1d),
        })
    );
    assert_eq!(view.case_link, None);

    let [primary, consult] = view.sessions.as_slice() else {
        panic!("two sessions expected: {:?}", view.sessions);
    };
    assert_eq!(primary.session_number, 1);
    assert_eq!(primary.agent_id, bytes(AGENT));
    assert!(primary.primary);
    assert_eq!(primary.status, pb::SessionStatus::Open as i32);
    assert_eq!(primary.closure, 0);
    assert!(primary.accepted_at > 0);
    assert_eq!(primary.ended_at, 0);
    assert_eq!(
        primary.offer_expires_at, 0,
        "an accepted offer no longer expires"
    );
    assert_eq!(consult.agent_id, bytes(CONSULTANT));
    assert!(!consult.primary);

    let waiting = conversation_view(&world.conversations[&WAITING]);
    assert_eq!(waiting.status, pb::ConversationStatus::Open as i32);
    assert!(waiting.primary_agent_id.is_empty());
    assert!(waiting.sessions.is_empty());
    assert_eq!(waiting.first_accepted_at, 0);
}

#[test]
fn an_agent_view_shows_presence_capacity_queues_and_open_work() {
    let world = busy_world();
    let view = agent_view(&world.agents[&AGENT]);
    assert_eq!(view.agent_id, bytes(AGENT));
    assert_eq!(view.name, "Ana");
    assert!(view.signed_in);
    assert!(view.connected);
    let presence = view.presence.expect("presence is always set");
    assert_eq!(
        presence.base,
        pb::BaseStatus::BusyDnd as i32,
        "full: 1 of 1 unit"
    );
    assert_eq!(view.presence_source, pb::PresenceSource::System as i32);
    assert!(view.presence_modified_at > 0);
    assert_eq!(view.capacity_units, 1);
    assert_eq!(view.available_units, 0);
    assert_eq!(view.skills, ["billing"]);
    assert_eq!(view.queue_ids, [bytes(QUEUE)]);
    assert_eq!(view.open_conversation_ids, [bytes(CONVERSATION)]);

    let consultant = agent_view(&world.agents[&CONSULTANT]);
    assert_eq!(
        consultant.open_conversation_ids,
        [bytes(CONVERSATION)],
        "a consult is open work"
    );
    assert_eq!(consultant.available_units, 1, "a consult costs no capacity");
}

#[test]
fn a_queue_view_counts_members_and_the_backlog() {
    let world = busy_world();
    let view = queue_view(&world.queues[&QUEUE], &world);
    assert_eq!(view.queue_id, bytes(QUEUE));
    assert_eq!(view.name, "Tier 1");
    assert_eq!(view.workstream_id, bytes(WORKSTREAM));
    assert_eq!(view.channel, pb::Channel::LiveChat as i32);
    assert_eq!(view.method, pb::AssignmentMethod::HighestCapacity as i32);
    assert_eq!(view.members, 2);
    assert_eq!(view.members_signed_in, 2);
    assert_eq!(view.waiting, 1);
    assert_eq!(
        view.oldest_waiting_since,
        world.conversations[&WAITING].created_at.0
    );
}

#[test]
fn pages_carry_the_last_id_as_token_only_when_more_follow() {
    let pb::query_reply::Result::Agents(page) = agent_page(Vec::new(), Some(AGENT)) else {
        panic!("an agent page");
    };
    assert_eq!(page.next_page_token, bytes(AGENT));
    let pb::query_reply::Result::Conversations(page) = conversation_page(Vec::new(), None) else {
        panic!("a conversation page");
    };
    assert!(page.next_page_token.is_empty());
}

#[test]
fn errors_and_rejections_carry_their_codes() {
    let reply = query_rejected(5, pb::RejectionCode::UnknownPresence, "no such presence");
    assert_eq!(reply.position, 5);
    let Some(pb::query_reply::Result::Error(error)) = reply.result else {
        panic!("an error");
    };
    assert_eq!(error.code, pb::QueryErrorCode::Rejected as i32);
    assert_eq!(error.rejection, pb::RejectionCode::UnknownPresence as i32);
    assert_eq!(error.reason, "no such presence");

    let reply = query_error(6, pb::QueryErrorCode::NotReady, "later");
    let Some(pb::query_reply::Result::Error(error)) = reply.result else {
        panic!("an error");
    };
    assert_eq!(error.code, pb::QueryErrorCode::NotReady as i32);
    assert_eq!(error.rejection, 0);
}
