use std::collections::{BTreeMap, BTreeSet, HashSet};

use omni_core::{
    AgentId, ConversationStatus, Event, EventKind, MAX_CONSULTANTS, OfferOrigin, PresenceId,
    SessionRef, SessionRole, SessionStatus, StatusReason, TabOutcome, World, apply, choose_agent,
};

use crate::{SimConfig, Simulation, generate, routing_world};

fn small(seed: u64) -> SimConfig {
    SimConfig {
        agents: 40,
        conversations: 600,
        seed,
        ..SimConfig::default()
    }
}

fn replay(events: &[Event]) -> World {
    let mut world = World::default();
    for event in events {
        apply(&mut world, event);
    }
    world
}

#[test]
fn the_same_seed_gives_the_same_stream() {
    let first = generate(small(7));
    assert_eq!(first, generate(small(7)));
    assert_ne!(first, generate(small(8)));
}

#[test]
fn the_stream_replayed_from_nothing_is_the_simulated_world() {
    let mut sim = Simulation::new(small(11));
    let events: Vec<Event> = sim.by_ref().collect();
    assert_eq!(&replay(&events), sim.world());
}

#[test]
fn events_come_out_in_time_order_and_batches_match_the_iterator() {
    let mut sim = Simulation::new(small(5));
    let mut batched = Vec::new();
    while let Some(batch) = sim.next_batch() {
        assert!(!batch.is_empty());
        batched.extend(batch);
    }
    assert!(batched.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(batched, generate(small(5)));
}

#[test]
fn forgetting_closed_conversations_changes_only_the_simulated_world() {
    let cfg = SimConfig {
        forget_closed: true,
        ..small(3)
    };
    let mut sim = Simulation::new(cfg);
    let events: Vec<Event> = sim.by_ref().collect();
    assert_eq!(events, generate(small(3)));
    assert!(sim.world().conversations.is_empty());
    // Forgetting each one as it closed leaves what forgetting them all at the end does: no
    // trace on agents, queues or indexes.
    let mut replayed = replay(&events);
    let ids: Vec<_> = replayed.conversations.keys().copied().collect();
    for id in ids {
        assert!(replayed.forget(id).is_some(), "{id} closed");
    }
    assert_eq!(&replayed, sim.world());
    assert_eq!(
        sim.conversations_by_status(),
        BTreeMap::from([(ConversationStatus::Closed, 600)])
    );
}

/// Lifecycle shapes the stats do not count directly, read off the stream.
#[derive(Default, Debug)]
struct Shapes {
    picks: u64,
    tab_limit_reached: u64,
    links_replaced: u64,
    custom_presences: u64,
    revived_by_customer: u64,
}

fn shapes(events: &[Event]) -> Shapes {
    let custom: HashSet<PresenceId> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CustomPresenceDefined(p) => Some(p.id),
            _ => None,
        })
        .collect();
    let mut waiting = HashSet::new();
    let mut s = Shapes::default();
    for event in events {
        match &event.kind {
            EventKind::IncomingSessionRequest {
                origin: OfferOrigin::Pick,
                ..
            } => s.picks += 1,
            EventKind::SessionAccepted {
                tab: TabOutcome::LimitReached,
                ..
            } => s.tab_limit_reached += 1,
            EventKind::RecordLinked {
                replaced: Some(_), ..
            } => s.links_replaced += 1,
            EventKind::PresenceUpdate { presence, .. } if custom.contains(&presence.id) => {
                s.custom_presences += 1;
            }
            EventKind::ConversationWaiting { conversation, .. } => {
                waiting.insert(*conversation);
            }
            EventKind::ConversationResumed { conversation, .. } => {
                waiting.remove(conversation);
            }
            EventKind::ConversationQueued { conversation, .. } => {
                s.revived_by_customer += u64::from(waiting.remove(conversation));
            }
            _ => {}
        }
    }
    s
}

#[test]
fn a_run_contains_every_lifecycle() {
    let cfg = SimConfig {
        agents: 60,
        conversations: 2_500,
        seed: 1,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg);
    let events: Vec<Event> = sim.by_ref().collect();
    let stats = sim.stats();
    for kind in [
        "AgentSignedIn",
        "AgentSignedOut",
        "AgentDisconnected",
        "AgentReconnected",
        "AgentDisconnectGraceExpired",
        "IncomingSessionRequest",
        "SessionAccepted",
        "OfferRejected",
        "OfferTimedOut",
        "OfferWithdrawn",
        "SessionFocused",
        "UnreadMessage",
        "ConsultStarted",
        "ConsultEnded",
        "TransferInitiated",
        "TransferCompleted",
        "CallHeld",
        "CallResumed",
        "MediaStateChanged",
        "RecordLinked",
        "RecordUnlinked",
        "ConversationWaiting",
        "ConversationResumed",
        "ConversationQueued",
        "EndConversation",
        "CapacityReleased",
        "CustomerDisconnected",
        "CustomerReconnected",
        "ConversationClosed",
    ] {
        assert!(stats.count(kind) > 0, "no {kind} in {stats:#?}");
    }
    for reason in [
        StatusReason::WrapUpCompleted,
        StatusReason::CustomerAbandoned,
        StatusReason::AutoClosedBySystem,
        StatusReason::AutoClosedFromWaiting,
        StatusReason::ForceClosedBySupervisor,
        StatusReason::LinkedCaseResolved,
    ] {
        assert!(
            stats.closed_by_reason.contains_key(&reason),
            "nothing closed as {reason:?}: {stats:#?}"
        );
    }
    assert!(stats.transfers_to_agent > 0 && stats.transfers_to_queue > 0);
    assert!(stats.offers_ignored > 0);
    assert!(stats.reconnects_within_grace > 0 && stats.reconnects_after_grace > 0);
    let s = shapes(&events);
    assert!(
        s.picks > 0
            && s.tab_limit_reached > 0
            && s.links_replaced > 0
            && s.custom_presences > 0
            && s.revived_by_customer > 0,
        "{s:?}"
    );
}

/// The states the domain allows, checked on every conversation and agent.
fn assert_consistent(world: &World) {
    let mut held: BTreeMap<AgentId, u32> = BTreeMap::new();
    let mut offered: BTreeMap<AgentId, u32> = BTreeMap::new();
    let mut open: BTreeMap<AgentId, BTreeSet<SessionRef>> = BTreeMap::new();
    for c in world.conversations.values() {
        let sessions: Vec<_> = c.open_sessions().collect();
        for s in &sessions {
            open.entry(s.agent)
                .or_default()
                .insert(c.session_ref(s.number));
            if s.role == SessionRole::Offer {
                assert_eq!(c.pending_offer, Some(s.number), "{c:#?}");
                *offered.entry(s.agent).or_default() += s.units;
            }
        }
        if let Some(h) = c.held {
            *held.entry(h.agent).or_default() += h.units;
        }
        let primaries = sessions
            .iter()
            .filter(|s| s.role == SessionRole::Primary)
            .count();
        assert!(c.consultants.len() <= MAX_CONSULTANTS, "{c:#?}");
        match c.status {
            ConversationStatus::Open => {
                assert!(c.primary.is_none() && c.held.is_none(), "{c:#?}");
                assert!(
                    sessions.iter().all(|s| s.role == SessionRole::Offer),
                    "{c:#?}"
                );
            }
            ConversationStatus::Active => {
                let primary = c.primary.expect("an Active conversation has a primary");
                assert_eq!(c.held.map(|h| h.agent), Some(primary), "{c:#?}");
                assert_eq!(primaries, 1, "{c:#?}");
                assert_eq!(
                    sessions
                        .iter()
                        .filter(|s| s.role == SessionRole::Consultant)
                        .count(),
                    c.consultants.len(),
                    "{c:#?}"
                );
            }
            ConversationStatus::Waiting => {
                assert!(c.channel.is_persistent(), "{c:#?}");
                assert!(c.primary.is_none() && c.held.is_none() && sessions.is_empty());
            }
            ConversationStatus::WrapUp => {
                assert!(c.primary.is_some() && c.consultants.is_empty(), "{c:#?}");
                assert_eq!(primaries, 1, "{c:#?}");
            }
            ConversationStatus::Closed => {
                assert!(sessions.is_empty() && c.consultants.is_empty(), "{c:#?}");
                assert!(c.primary.is_none() && c.pending_offer.is_none() && c.held.is_none());
                assert!(c.closed_at.is_some());
                assert!(
                    c.sessions.iter().all(|s| s.status != SessionStatus::Open),
                    "{c:#?}"
                );
            }
        }
    }
    for (id, a) in &world.agents {
        let used = held.get(id).copied().unwrap_or(0);
        let reserved = offered.get(id).copied().unwrap_or(0);
        assert_eq!(a.used_units, used, "{a:#?}");
        assert_eq!(a.offered_units, reserved, "{a:#?}");
        // The concurrency limit is never exceeded, offers included.
        assert!(used + reserved <= a.profile.capacity_units, "{a:#?}");
        assert_eq!(
            a.open_sessions.iter().copied().collect::<BTreeSet<_>>(),
            open.remove(id).unwrap_or_default(),
            "{a:#?}"
        );
        assert!(a.tabs.len() <= a.profile.max_sessions as usize, "{a:#?}");
        if !a.signed_in {
            assert!(a.open_sessions.is_empty(), "{a:#?}");
        }
    }
}

#[test]
fn no_conversation_is_ever_left_in_an_impossible_state() {
    let mut sim = Simulation::new(SimConfig {
        agents: 50,
        conversations: 1_500,
        seed: 99,
        ..SimConfig::default()
    });
    let mut batches = 0;
    while sim.next_batch().is_some() {
        batches += 1;
        if batches % 250 == 0 {
            assert_consistent(sim.world());
        }
    }
    assert_consistent(sim.world());
    let world = sim.world();
    assert!(
        world
            .conversations
            .values()
            .all(|c| c.status == ConversationStatus::Closed),
        "every conversation runs its whole lifecycle"
    );
    assert!(world.agents.values().all(|a| a.used_units == 0));
}

#[test]
fn the_routing_world_has_open_conversations_most_of_which_someone_can_take() {
    let (world, targets) = routing_world(400, 12, 2);
    assert_eq!(world.agents.len(), 400);
    assert_eq!(world.queues.len(), 12);
    assert_eq!(targets.len(), 12 * 20);
    assert!(world.agents.values().all(|a| a.queues.len() >= 2));
    let busy = world.agents.values().filter(|a| a.used_units > 0).count();
    let away = world
        .agents
        .values()
        .filter(|a| !a.presence.base.accepts_transfers_and_consults())
        .count();
    assert!(busy > 100 && away > 40, "busy {busy}, away {away}");
    for id in &targets {
        let c = &world.conversations[id];
        assert!(c.status == ConversationStatus::Open && c.pending_offer.is_none());
    }
    let routable = targets
        .iter()
        .filter(|id| choose_agent(&world, **id).is_some())
        .count();
    assert!(routable > targets.len() / 2, "{routable} routable");
    assert_consistent(&world);
}
