use std::collections::BTreeMap;

use omni_core::{
    AgentProfile, AssignmentMethod, Command, DEFAULT_MAX_SESSIONS, PresenceId, QueueConfig,
    SessionNo, SessionRef, WorkstreamId, decide,
};
use omni_sim::{SimConfig, Simulation};

use super::*;

const CHAT: QueueId = QueueId::from_u128(0xC1);
const ANN: AgentId = AgentId::from_u128(0xA1);
const BOB: AgentId = AgentId::from_u128(0xB0);
const C1: ConversationId = ConversationId::from_u128(0xC7);
const C2: ConversationId = ConversationId::from_u128(0xC8);
const T0: Timestamp = Timestamp(1_700_000_000_000);

/// The engine's side (a world that decides) and the dashboard's view of the same log.
struct Center {
    world: World,
    view: View,
    now: Timestamp,
    position: u64,
}

impl Center {
    /// A live-chat queue with Ann and Bob (2 units each), both signed in; flushed.
    fn new() -> Center {
        Center::staffed(true)
    }

    /// The same center, its agents signed in or not: with nobody signed in, new conversations
    /// wait in the queue instead of being offered on arrival.
    fn staffed(signed_in: bool) -> Center {
        let mut center = Center {
            world: World::default(),
            view: View::default(),
            now: T0,
            position: 0,
        };
        let workstream = WorkstreamId(CHAT.0);
        center.run(Command::ConfigureWorkstream(
            omni_core::Workstream::with_defaults(workstream, "chat", Channel::LiveChat),
        ));
        center.run(Command::ConfigureQueue(QueueConfig {
            id: CHAT,
            name: "Chat support".to_owned(),
            workstream,
            method: AssignmentMethod::AdvancedRoundRobin,
        }));
        for (agent, name) in [(ANN, "Ann"), (BOB, "Bob")] {
            center.run(Command::ProvisionAgent(AgentProfile {
                id: agent,
                name: name.to_owned(),
                capacity_units: 2,
                skills: Default::default(),
                max_sessions: DEFAULT_MAX_SESSIONS,
                default_presence: PresenceId::AVAILABLE,
            }));
            center.run(Command::AddAgentToQueue { queue: CHAT, agent });
            if signed_in {
                center.run(Command::SignIn { agent });
            }
        }
        center.view.flush();
        center
    }

    /// Decides `command` a second after the last one and folds its events into both.
    fn run(&mut self, command: Command) {
        self.now = self.now.plus_secs(1);
        let events = decide(&self.world, command.clone(), self.now)
            .unwrap_or_else(|r| panic!("{command:?} was refused: {r}"));
        for event in events {
            apply(&mut self.world, &event);
            self.position += 1;
            self.view.fold(self.position, &event);
        }
    }

    fn start(&mut self, conversation: ConversationId) {
        self.run(Command::StartConversation {
            conversation,
            queue: CHAT,
            skills: Vec::new(),
            customer: "a customer".to_owned(),
        });
    }
}

fn count(counts: &[Count], name: &str) -> u64 {
    counts
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no count named {name}"))
        .count
}

fn session(conversation: ConversationId, number: u32) -> SessionRef {
    SessionRef {
        conversation,
        number: SessionNo(number),
    }
}

#[test]
fn a_new_conversation_is_one_open_row_waiting_in_its_queue() {
    let mut center = Center::staffed(false);
    center.start(C1);
    let created = center.now.0;
    center.now = center.now.plus_secs(30);
    center.start(C2);

    let delta = center.view.flush().expect("two conversations changed");
    assert_eq!(delta.kind, UpdateKind::Delta);
    let ids: Vec<Uuid> = delta.conversations.iter().map(|c| c.id).collect();
    assert_eq!(ids, [C1.0, C2.0]);
    let row = &delta.conversations[0];
    assert_eq!(
        (row.channel, row.queue, row.status, row.agent, row.since),
        ("Live chat", CHAT.0, 1, None, created)
    );
    assert!(
        delta.agents.is_empty(),
        "no agent changed: {:?}",
        delta.agents
    );
    assert_eq!(count(&delta.statuses, "Open"), 2);
    assert_eq!(count(&delta.statuses, "Active"), 0);
    assert_eq!(
        delta.statuses.iter().map(|s| s.code).collect::<Vec<_>>(),
        [1, 2, 3, 5, 4]
    );
    let queue = &delta.queues[0];
    assert_eq!(
        (
            queue.name.as_str(),
            queue.channel,
            queue.open,
            queue.oldest_open_since
        ),
        ("Chat support", "Live chat", 2, Some(created))
    );
    // The upper median of two.
    assert_eq!(queue.median_open_since, Some(center.now.0));
    assert_eq!(
        (
            queue.members,
            queue.members_signed_in,
            queue.members_available
        ),
        (2, 0, 0)
    );
    assert_eq!(delta.now, center.now.0);
    assert_eq!(delta.position, center.position);

    assert_eq!(center.view.flush(), None, "nothing changed since");
}

#[test]
fn an_accepted_offer_changes_the_conversation_and_the_agent_rows_only() {
    let mut center = Center::new();
    center.start(C1);
    let offered = center
        .view
        .flush()
        .expect("an offer on arrival changes rows");
    let row = &offered.conversations[0];
    let offered_to = row.agent.expect("the offer names its agent");
    assert!(row.offered);
    let agent = AgentId(offered_to);

    center.run(Command::Accept {
        agent,
        session: session(C1, 1),
    });
    let delta = center.view.flush().expect("the accept changes rows");
    assert_eq!(delta.conversations.len(), 1);
    let row = &delta.conversations[0];
    assert_eq!(
        (row.status, row.agent, row.offered),
        (2, Some(offered_to), false)
    );
    assert_eq!(
        delta.agents.len(),
        1,
        "only the accepting agent: {:?}",
        delta.agents
    );
    let a = &delta.agents[0];
    assert_eq!(
        (
            a.id,
            a.used,
            a.capacity,
            a.open_sessions,
            a.presence.as_str()
        ),
        (offered_to, 1, 2, 1, "Busy")
    );
    assert_eq!(a.base, BaseStatus::Busy.code());
    assert_eq!(count(&delta.statuses, "Active"), 1);
    assert_eq!(count(&delta.presences, "Busy"), 1);
    assert_eq!(count(&delta.presences, "Available"), 1);
    assert_eq!(delta.queues[0].open, 0);
    assert_eq!(delta.queues[0].oldest_open_since, None);

    // A customer message on the focused session changes no row the page shows.
    center.run(Command::CustomerMessage { conversation: C1 });
    assert_eq!(center.view.flush(), None);
}

#[test]
fn a_closed_conversation_is_removed_and_counted() {
    let mut center = Center::new();
    center.start(C1);
    center.start(C2);
    center.view.flush();
    center.run(Command::CustomerEnd { conversation: C1 });

    let delta = center.view.flush().expect("the close changes rows");
    assert!(delta.conversations.is_empty());
    assert_eq!(delta.removed_conversations, [C1.0]);
    assert_eq!(count(&delta.statuses, "Closed"), 1);
    assert_eq!(count(&delta.statuses, "Open"), 1);
    let snapshot = center.view.snapshot();
    assert_eq!(snapshot.kind, UpdateKind::Snapshot);
    assert_eq!(
        snapshot
            .conversations
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [C2.0],
        "closed conversations are forgotten"
    );
    assert_eq!(snapshot.agents.len(), 2);
}

#[test]
fn a_burst_larger_than_the_delta_limit_is_sent_as_a_snapshot() {
    let mut center = Center::new();
    for n in 0..=SNAPSHOT_ABOVE_ROWS as u128 {
        center.start(ConversationId::from_u128(0x10_0000 + n));
    }
    let update = center.view.flush().expect("a burst");
    assert_eq!(update.kind, UpdateKind::Snapshot);
    assert_eq!(update.conversations.len(), SNAPSHOT_ABOVE_ROWS + 1);
    assert_eq!(update.seq, center.view.snapshot().seq);
}

/// What a page holds: rows by id, replaced by snapshots, upserted by deltas.
#[derive(Default, PartialEq, Debug)]
struct Page {
    conversations: BTreeMap<Uuid, ConversationRow>,
    agents: BTreeMap<Uuid, AgentRow>,
}

impl Page {
    fn apply(&mut self, update: Update) {
        if update.kind == UpdateKind::Snapshot {
            *self = Page::default();
        }
        for row in update.conversations {
            self.conversations.insert(row.id, row);
        }
        for id in update.removed_conversations {
            self.conversations.remove(&id);
        }
        for row in update.agents {
            self.agents.insert(row.id, row);
        }
    }
}

/// A page that took a snapshot and then applied every delta holds what a fresh snapshot
/// holds, at every flush, over a simulated center's whole day (offers, transfers, consults,
/// waiting, wrap-ups, disconnects, custom presences).
#[test]
fn deltas_keep_a_page_equal_to_a_fresh_snapshot() {
    let mut view = View::default();
    let mut page = Page::default();
    let simulation = Simulation::new(SimConfig {
        agents: 30,
        conversations: 400,
        seed: 11,
        ..SimConfig::default()
    });
    let mut position = 0;
    let mut flushes = 0;
    for (i, event) in simulation.enumerate() {
        position += 1;
        view.fold(position, &event);
        if i % 37 == 0 {
            if let Some(update) = view.flush() {
                flushes += 1;
                page.apply(update);
            }
            let mut fresh = Page::default();
            fresh.apply(view.snapshot());
            assert_eq!(page, fresh, "after event {position}");
        }
    }
    assert!(flushes > 100, "only {flushes} flushes");
    let last = view.snapshot();
    assert_eq!(count(&last.statuses, "Closed"), 400);
    assert!(last.conversations.is_empty());
}
