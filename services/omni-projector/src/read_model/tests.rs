//! The indexes stay equal to a rebuild while a realistic stream is folded, every list (walked
//! page by page) returns exactly what a scan of the world would, and lists stay fast at scale.

use std::time::{Duration, Instant};

use omni_core::{
    AgentProfile, AssignmentMethod, Event, EventKind, OfferOrigin, Presence, PresenceId,
    PresenceSource, QueueConfig, StatusReason, TabOutcome, Timestamp, Workstream, WorkstreamId,
};
use omni_proto::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, pb};
use omni_sim::{SimConfig, Simulation};
use prost::Message;

use super::*;

fn conversations_query() -> ConversationsQuery {
    ConversationsQuery {
        status: None,
        queue: None,
        agent: None,
        channel: None,
        page_size: DEFAULT_PAGE_SIZE,
        after: None,
        min_position: 0,
    }
}

fn agents_query() -> AgentsQuery {
    AgentsQuery {
        queue: None,
        base: None,
        signed_in_only: false,
        page_size: DEFAULT_PAGE_SIZE,
        after: None,
        min_position: 0,
    }
}

/// Every page of `q`, concatenated.
fn walk_conversations(model: &ReadModel, mut q: ConversationsQuery) -> Vec<ConversationId> {
    let mut all = Vec::new();
    loop {
        let page = model.conversations(&q);
        assert!(page.items.len() <= q.page_size);
        all.extend(page.items.iter().map(|c| c.id));
        match page.next {
            Some(next) => {
                assert_eq!(page.items.len(), q.page_size, "only a full page has a next");
                q.after = Some(next);
            }
            None => return all,
        }
    }
}

fn walk_agents(model: &ReadModel, mut q: AgentsQuery) -> Vec<AgentId> {
    let mut all = Vec::new();
    loop {
        let page = model.agents(&q);
        all.extend(page.items.iter().map(|a| a.profile.id));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return all,
        }
    }
}

/// Every list the model answers, compared with a scan of the world.
fn lists_match_a_scan(model: &ReadModel) {
    let world = model.world();
    let mut conversation_queries = vec![conversations_query()];
    let agent_ids: Vec<AgentId> = world.agents.keys().copied().step_by(7).collect();
    for &status in ConversationStatus::ALL {
        conversation_queries.push(ConversationsQuery {
            status: Some(status),
            ..conversations_query()
        });
    }
    for &queue in world.queues.keys() {
        conversation_queries.push(ConversationsQuery {
            queue: Some(queue),
            ..conversations_query()
        });
        conversation_queries.push(ConversationsQuery {
            queue: Some(queue),
            status: Some(ConversationStatus::Closed),
            ..conversations_query()
        });
    }
    for &channel in Channel::ALL {
        conversation_queries.push(ConversationsQuery {
            channel: Some(channel),
            status: Some(ConversationStatus::Active),
            ..conversations_query()
        });
    }
    for &agent in &agent_ids {
        conversation_queries.push(ConversationsQuery {
            agent: Some(agent),
            ..conversations_query()
        });
        conversation_queries.push(ConversationsQuery {
            agent: Some(agent),
            status: Some(ConversationStatus::WrapUp),
            ..conversations_query()
        });
    }
    for q in conversation_queries {
        let expected: Vec<ConversationId> = world
            .conversations
            .values()
            .filter(|c| {
                q.status.is_none_or(|s| c.status == s)
                    && q.queue.is_none_or(|id| c.queue == id)
                    && q.channel.is_none_or(|ch| c.channel == ch)
                    && q.agent.is_none_or(|a| c.open_session_of(a).is_some())
            })
            .map(|c| c.id)
            .collect();
        for page_size in [1, 7, MAX_PAGE_SIZE] {
            let got = walk_conversations(model, ConversationsQuery { page_size, ..q });
            assert_eq!(got, expected, "{q:?} by pages of {page_size}");
        }
    }

    let mut agent_queries = vec![
        agents_query(),
        AgentsQuery {
            signed_in_only: true,
            ..agents_query()
        },
    ];
    for &base in BaseStatus::ALL {
        agent_queries.push(AgentsQuery {
            base: Some(base),
            ..agents_query()
        });
        agent_queries.push(AgentsQuery {
            base: Some(base),
            signed_in_only: true,
            ..agents_query()
        });
    }
    for &queue in world.queues.keys() {
        agent_queries.push(AgentsQuery {
            queue: Some(queue),
            ..agents_query()
        });
        agent_queries.push(AgentsQuery {
            queue: Some(queue),
            base: Some(BaseStatus::Available),
            signed_in_only: true,
            ..agents_query()
        });
    }
    for q in agent_queries {
        let expected: Vec<AgentId> = world
            .agents
            .values()
            .filter(|a| {
                q.base.is_none_or(|b| a.presence.base == b)
                    && (!q.signed_in_only || a.signed_in)
                    && q.queue.is_none_or(|id| a.queues.contains(&id))
            })
            .map(|a| a.profile.id)
            .collect();
        for page_size in [1, 5, MAX_PAGE_SIZE] {
            let got = walk_agents(model, AgentsQuery { page_size, ..q });
            assert_eq!(got, expected, "{q:?} by pages of {page_size}");
        }
    }
}

#[test]
fn indexes_follow_a_realistic_stream_and_lists_match_a_scan() {
    let sim = Simulation::new(SimConfig {
        agents: 40,
        conversations: 600,
        ..SimConfig::default()
    });
    let mut model = ReadModel::default();
    let mut position = 0;
    for event in sim {
        position += 1;
        model.fold(position, &event);
        if position % 5_000 == 0 {
            assert!(model.indexes_match_a_rebuild(), "at position {position}");
            lists_match_a_scan(&model);
        }
    }
    assert!(
        position > 5_000,
        "the stream is long enough to check mid-way"
    );
    assert_eq!(model.position(), position);
    assert!(model.indexes_match_a_rebuild());
    lists_match_a_scan(&model);
    assert_eq!(
        model.world().conversations.len(),
        600,
        "closed conversations are kept"
    );
}

#[test]
fn a_read_model_built_from_a_restored_world_has_the_same_indexes() {
    let mut folded = ReadModel::default();
    for (i, event) in Simulation::new(SimConfig {
        agents: 20,
        conversations: 100,
        ..SimConfig::default()
    })
    .enumerate()
    {
        folded.fold(i as u64 + 1, &event);
    }
    let restored = ReadModel::new(folded.world().clone(), folded.position());
    assert!(folded.indexes_match_a_rebuild());
    lists_match_a_scan(&restored);
    assert_eq!(restored.position(), folded.position());
}

#[test]
fn unknown_filters_give_empty_pages_and_skipped_events_advance_the_position() {
    let mut model = ReadModel::default();
    let q = ConversationsQuery {
        queue: Some(QueueId::from_u128(1)),
        ..conversations_query()
    };
    assert!(model.conversations(&q).items.is_empty());
    let q = ConversationsQuery {
        agent: Some(AgentId::from_u128(1)),
        ..conversations_query()
    };
    assert!(model.conversations(&q).items.is_empty());
    let q = AgentsQuery {
        queue: Some(QueueId::from_u128(1)),
        ..agents_query()
    };
    assert!(model.agents(&q).items.is_empty());
    model.skip(1);
    assert_eq!((model.position(), model.skipped()), (1, 1));
}

// --- scale -----------------------------------------------------------------------------------

const AGENTS: u128 = 10_000;
const CONVERSATIONS: u128 = 100_000;
const QUEUES: u128 = 20;

/// 10,000 agents in 20 queues (half signed in) and 100,000 conversations: 1 in 50 still Open,
/// 1 in 50 Active with an agent, the rest Closed. Built from events, as the service folds.
fn large_model() -> ReadModel {
    let mut model = ReadModel::default();
    let mut position = 0;
    let mut at = Timestamp(1_700_000_000_000);
    let mut fold = |model: &mut ReadModel, kind: EventKind| {
        position += 1;
        at = at.plus_ms(10);
        model.fold(position, &Event { at, kind });
    };
    let channels = [
        Channel::LiveChat,
        Channel::Sms,
        Channel::Voice,
        Channel::Teams,
    ];
    for (i, &channel) in channels.iter().enumerate() {
        fold(
            &mut model,
            EventKind::WorkstreamConfigured(Workstream::with_defaults(
                WorkstreamId::from_u128(i as u128 + 1),
                "ws",
                channel,
            )),
        );
    }
    let queue = |i: u128| QueueId::from_u128(0x1000 + i);
    for i in 0..QUEUES {
        fold(
            &mut model,
            EventKind::QueueConfigured(QueueConfig {
                id: queue(i),
                name: format!("queue {i}"),
                workstream: WorkstreamId::from_u128(i % 4 + 1),
                method: AssignmentMethod::HighestCapacity,
            }),
        );
    }
    let agent = |i: u128| AgentId::from_u128(0x10_0000 + i);
    for i in 0..AGENTS {
        fold(
            &mut model,
            EventKind::AgentProvisioned(AgentProfile {
                id: agent(i),
                name: format!("agent {i}"),
                capacity_units: 10,
                skills: Default::default(),
                max_sessions: 10,
                default_presence: PresenceId::AVAILABLE,
            }),
        );
        fold(
            &mut model,
            EventKind::QueueMembershipChanged {
                queue: queue(i / 3 % QUEUES),
                agent: agent(i),
                member: true,
            },
        );
        if i % 2 == 0 {
            fold(&mut model, EventKind::AgentSignedIn { agent: agent(i) });
            fold(
                &mut model,
                EventKind::PresenceUpdate {
                    agent: agent(i),
                    presence: Presence::of(if i % 4 == 0 {
                        BaseStatus::Available
                    } else {
                        BaseStatus::Away
                    }),
                    source: PresenceSource::Agent,
                    sticky: i % 4 != 0,
                },
            );
        }
    }
    for i in 0..CONVERSATIONS {
        // Spread ids over the whole range, as UUIDv7/v4 ids are.
        let id =
            ConversationId::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
        let q = i / 7 % QUEUES;
        fold(
            &mut model,
            EventKind::ConversationCreated {
                conversation: id,
                channel: channels[(q % 4) as usize],
                queue: queue(q),
                workstream: WorkstreamId::from_u128(q % 4 + 1),
                skills: Vec::new(),
                customer: String::new(),
            },
        );
        match i % 50 {
            0 => {}
            1 => {
                let by = agent((i * 2) % AGENTS);
                let session = SessionRef {
                    conversation: id,
                    number: SessionNo(1),
                };
                fold(
                    &mut model,
                    EventKind::IncomingSessionRequest {
                        session,
                        agent: by,
                        origin: OfferOrigin::Routing,
                        units: 1,
                        expires_at: Timestamp(1_800_000_000_000),
                        queue: Some(queue(q)),
                    },
                );
                fold(
                    &mut model,
                    EventKind::SessionAccepted {
                        session,
                        agent: by,
                        units: 1,
                        tab: TabOutcome::Opened,
                    },
                );
            }
            _ => fold(
                &mut model,
                EventKind::ConversationClosed {
                    conversation: id,
                    reason: StatusReason::CustomerAbandoned,
                },
            ),
        }
    }
    model
}

/// The median time of a few runs of `f`, with what it returned.
fn timed(mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut runs: Vec<(Duration, usize)> = (0..7)
        .map(|_| {
            let started = Instant::now();
            let n = f();
            (started.elapsed(), n)
        })
        .collect();
    runs.sort();
    runs[runs.len() / 2]
}

/// Prints the time of each list (the page, its views and the encoded reply, as answered); run it with
/// `cargo test --release -p omni-projector large -- --nocapture` for the figures. The bound
/// is loose (debug builds, busy CI machines): it catches a list that scans everything.
#[test]
fn large_lists_stay_fast() {
    let started = Instant::now();
    let model = large_model();
    println!(
        "built 10k agents / 100k conversations in {:?}",
        started.elapsed()
    );
    let signed_in_agent = agent_with_work(&model);
    let queue = QueueId::from_u128(0x1000 + 3);
    let conversation_cases = [
        (
            "all, page 1000",
            ConversationsQuery {
                page_size: MAX_PAGE_SIZE,
                ..conversations_query()
            },
        ),
        (
            "status Open",
            ConversationsQuery {
                status: Some(ConversationStatus::Open),
                ..conversations_query()
            },
        ),
        (
            "status Active, page 1000",
            ConversationsQuery {
                status: Some(ConversationStatus::Active),
                page_size: MAX_PAGE_SIZE,
                ..conversations_query()
            },
        ),
        (
            "status Waiting (none)",
            ConversationsQuery {
                status: Some(ConversationStatus::Waiting),
                ..conversations_query()
            },
        ),
        (
            "queue + status Closed, page 1000",
            ConversationsQuery {
                queue: Some(queue),
                status: Some(ConversationStatus::Closed),
                page_size: MAX_PAGE_SIZE,
                ..conversations_query()
            },
        ),
        (
            "queue + status Open (none: 2,000 Open checked)",
            ConversationsQuery {
                queue: Some(queue),
                status: Some(ConversationStatus::Open),
                ..conversations_query()
            },
        ),
        (
            "channel Voice + status Active",
            ConversationsQuery {
                channel: Some(Channel::Voice),
                status: Some(ConversationStatus::Active),
                ..conversations_query()
            },
        ),
        (
            "agent",
            ConversationsQuery {
                agent: Some(signed_in_agent),
                ..conversations_query()
            },
        ),
    ];
    let bound = Duration::from_millis(250);
    for (name, q) in conversation_cases {
        let (took, n) = timed(|| {
            let reply = crate::serve::list_conversations(&model, &q, usize::MAX);
            let bytes = reply.encode_to_vec().len();
            match reply.result {
                Some(pb::query_reply::Result::Conversations(page)) => {
                    assert!(bytes > 0);
                    page.conversations.len()
                }
                other => panic!("{other:?}"),
            }
        });
        println!("conversations, {name}: {n} in {took:?}");
        assert!(took < bound, "conversations, {name}: {took:?}");
    }
    // Without the indexes, a filter nothing matches scans every conversation.
    let (took, _) = timed(|| {
        model
            .world()
            .conversations
            .values()
            .filter(|c| c.status == ConversationStatus::Waiting)
            .take(DEFAULT_PAGE_SIZE + 1)
            .count()
    });
    println!("(a scan of every conversation, for comparison: {took:?})");
    let agent_cases = [
        (
            "all, page 1000",
            AgentsQuery {
                page_size: MAX_PAGE_SIZE,
                ..agents_query()
            },
        ),
        (
            "queue",
            AgentsQuery {
                queue: Some(queue),
                ..agents_query()
            },
        ),
        (
            "base Available + signed in",
            AgentsQuery {
                base: Some(BaseStatus::Available),
                signed_in_only: true,
                ..agents_query()
            },
        ),
        (
            "base Busy-DND (none)",
            AgentsQuery {
                base: Some(BaseStatus::BusyDnd),
                ..agents_query()
            },
        ),
        (
            "queue + base Away",
            AgentsQuery {
                queue: Some(queue),
                base: Some(BaseStatus::Away),
                page_size: MAX_PAGE_SIZE,
                ..agents_query()
            },
        ),
    ];
    for (name, q) in agent_cases {
        let (took, n) = timed(|| {
            let reply = crate::serve::list_agents(&model, &q, usize::MAX);
            let bytes = reply.encode_to_vec().len();
            match reply.result {
                Some(pb::query_reply::Result::Agents(page)) => {
                    assert!(bytes > 0);
                    page.agents.len()
                }
                other => panic!("{other:?}"),
            }
        });
        println!("agents, {name}: {n} in {took:?}");
        assert!(took < bound, "agents, {name}: {took:?}");
    }
}

fn agent_with_work(model: &ReadModel) -> AgentId {
    model
        .world()
        .agents
        .values()
        .find(|a| !a.open_sessions.is_empty())
        .map(|a| a.profile.id)
        .expect("some agent works")
}

#[test]
fn a_page_too_big_for_one_message_ends_early_with_a_token() {
    let sim = Simulation::new(SimConfig {
        agents: 30,
        conversations: 200,
        ..SimConfig::default()
    });
    let mut model = ReadModel::default();
    for (i, event) in sim.enumerate() {
        model.fold(i as u64 + 1, &event);
    }
    let everything: Vec<ConversationId> = model.world().conversations.keys().copied().collect();
    // Room for a few views per page.
    let budget = 4 * 1024;
    let mut q = ConversationsQuery {
        page_size: MAX_PAGE_SIZE,
        ..conversations_query()
    };
    let mut walked = Vec::new();
    let mut pages = 0;
    loop {
        let reply = crate::serve::list_conversations(&model, &q, budget);
        let Some(pb::query_reply::Result::Conversations(page)) = reply.result else {
            panic!("a page");
        };
        pages += 1;
        let bytes: usize = page.conversations.iter().map(|c| c.encoded_len() + 6).sum();
        assert!(
            bytes <= budget || page.conversations.len() == 1,
            "{bytes} bytes"
        );
        assert!(!page.conversations.is_empty());
        walked.extend(
            page.conversations.iter().map(|c| {
                ConversationId(uuid::Uuid::from_slice(&c.conversation_id).expect("an id"))
            }),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        assert_eq!(
            page.next_page_token,
            page.conversations
                .last()
                .expect("not empty")
                .conversation_id
        );
        q.after = Some(ConversationId(
            uuid::Uuid::from_slice(&page.next_page_token).expect("an id"),
        ));
    }
    assert_eq!(walked, everything);
    assert!(pages > 5, "the budget cut pages: {pages}");
}
