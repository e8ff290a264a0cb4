//! A large, busy world to measure the routing choice on.

use omni_core::{
    AgentId, Command, ConversationId, EventKind, PresenceId, QueueId, RoutingMode, World,
};
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::center::{self, custom_presence};
use crate::engine::Engine;

/// A world of `agents` agents over `queues` queues (each agent a member of two to four) in the
/// state routing meets in a real center, and the Open conversations still to route, spread
/// over the push queues, a quarter of them asking for a skill.
///
/// The state is built through `decide`, as a day would build it: about one conversation per
/// agent is routed on arrival and mostly accepted, so agents hold anything from none to all
/// of their capacity and some offers are still out; then the conversations to route arrive
/// while everyone is Away (so they wait: the core routes a conversation on arrival), everyone
/// comes back, and agents spread over presences (most routable, some Away, Busy-DND, on a
/// custom presence, disconnected or signed out).
pub fn routing_world(agents: usize, queues: usize, seed: u64) -> (World, Vec<ConversationId>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut engine = Engine::new();
    let (center, _) = center::provision(&mut engine, &mut rng, agents, queues);
    let push: Vec<QueueId> = center
        .queues
        .iter()
        .filter(|q| q.spec.mode == RoutingMode::Push)
        .map(|q| q.id)
        .collect();

    engine.advance_to(engine.now.plus_secs(60));
    let offers: Vec<_> = (0..agents)
        .flat_map(|_| start(&mut engine, &mut rng, &push).1)
        .collect();
    engine.advance_to(engine.now.plus_secs(5));
    for event in offers {
        if let EventKind::IncomingSessionRequest { session, agent, .. } = event.kind {
            if rng.random_bool(0.85) {
                engine.must(Command::Accept { agent, session });
            }
        }
    }

    engine.advance_to(engine.now.plus_secs(60));
    let everyone = |engine: &mut Engine, presence| {
        for &agent in &center.agents {
            engine.must(Command::SetPresence { agent, presence });
        }
    };
    everyone(&mut engine, PresenceId::AWAY);
    let targets = (0..queues * 20)
        .map(|_| start(&mut engine, &mut rng, &push).0)
        .collect();
    everyone(&mut engine, PresenceId::AVAILABLE);

    engine.advance_to(engine.now.plus_secs(60));
    for &agent in &center.agents {
        spread_presence(&mut engine, &mut rng, agent);
    }
    (engine.world, targets)
}

/// A new conversation in one of `queues`, with the events of its start (the offer routing
/// made on arrival, if any).
fn start(
    engine: &mut Engine,
    rng: &mut SmallRng,
    queues: &[QueueId],
) -> (ConversationId, Vec<omni_core::Event>) {
    let conversation = ConversationId::from_u128(rng.random());
    let queue = *queues.choose(rng).expect("the center has push queues");
    let skills = center::requested_skills(rng);
    let events = engine.must(Command::StartConversation {
        conversation,
        queue,
        skills,
        customer: format!("Customer {}", engine.world.conversations.len() + 1),
    });
    (conversation, events)
}

/// Seven agents in ten stay as routing left them; the others step away in various ways.
fn spread_presence(engine: &mut Engine, rng: &mut SmallRng, agent: AgentId) {
    let presence = |presence| Command::SetPresence { agent, presence };
    let command = match rng.random_range(0..100) {
        0..10 => presence(PresenceId::AWAY),
        10..15 => presence(PresenceId::BUSY_DND),
        15..20 => presence(custom_presence("Lunch")),
        // A custom presence on base Busy: still routable.
        20..25 => presence(custom_presence("Back office")),
        25..28 => Command::Disconnect { agent },
        28..30 => Command::SignOut { agent },
        _ => return,
    };
    // Sign-out is refused to agents still handling conversations; they stay signed in.
    let _ = engine.exec(command);
}
