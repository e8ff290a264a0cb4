//! An independent account of capacity and offers, kept from the event sequence alone (not from
//! the core's fold), that checks after every event:
//!
//! - an event that adds to an agent's load (offered plus held units) never takes it past the
//!   agent's capacity — only an administrator lowering the capacity can leave an agent over
//!   it, and then nothing new is added until the load is back within it;
//! - a conversation never has two open offers, two primary agents, or two holders of
//!   capacity; a closed one has none.
//!
//! At the end it must agree with the core's own fold of the same events.

use std::collections::BTreeMap;

use omni_core::{AgentId, ConversationId, EventKind, SessionRef, World};
use omni_proto::Envelope;

#[derive(Debug, Default)]
pub struct Ledger {
    capacity: BTreeMap<AgentId, u32>,
    /// Open offers: who, how many units.
    offers: BTreeMap<SessionRef, (AgentId, u32)>,
    /// Capacity held by a conversation's primary (or wrapping-up) agent.
    held: BTreeMap<ConversationId, (AgentId, u32)>,
    primary: BTreeMap<ConversationId, AgentId>,
    /// How many offers were made, for tests to check there was contention at all.
    pub offers_made: usize,
    /// How many times an offer or a resume took an agent exactly to capacity: shows the
    /// limit was reached, not just respected from afar.
    pub filled_up: usize,
}

impl Ledger {
    /// Folds `events` in order, checking every step; panics naming the position that breaks
    /// a rule.
    pub fn check(events: &[(u64, Envelope)]) -> Ledger {
        let mut ledger = Ledger::default();
        for (position, envelope) in events {
            ledger.step(*position, &envelope.event.kind);
        }
        ledger
    }

    fn load(&self, agent: AgentId) -> u32 {
        let offered: u32 = self
            .offers
            .values()
            .filter(|(a, _)| *a == agent)
            .map(|(_, u)| u)
            .sum();
        let held: u32 = self
            .held
            .values()
            .filter(|(a, _)| *a == agent)
            .map(|(_, u)| u)
            .sum();
        offered + held
    }

    fn step(&mut self, position: u64, kind: &EventKind) {
        use EventKind as E;
        let agent = kind.agent();
        let before = agent.map(|a| self.load(a));
        match kind {
            E::AgentProvisioned(profile) => {
                self.capacity.insert(profile.id, profile.capacity_units);
            }
            E::AgentCapacityChanged {
                agent,
                capacity_units,
            } => {
                self.capacity.insert(*agent, *capacity_units);
            }
            E::IncomingSessionRequest {
                session,
                agent,
                units,
                ..
            } => {
                self.offers_made += 1;
                let open: Vec<_> = self
                    .offers
                    .iter()
                    .filter(|(s, _)| s.conversation == session.conversation)
                    .collect();
                assert!(
                    open.is_empty(),
                    "position {position}: {session} offered to {agent} while {open:?} is still open"
                );
                self.offers.insert(*session, (*agent, *units));
            }
            E::SessionAccepted {
                session,
                agent,
                units,
                ..
            } => {
                let offer = self.offers.remove(session);
                assert_eq!(
                    offer,
                    Some((*agent, *units)),
                    "position {position}: {agent} accepted {session}, which was not their open offer"
                );
                self.hold(position, session.conversation, *agent, *units);
            }
            E::ConversationResumed {
                conversation,
                agent,
                units,
                ..
            } => self.hold(position, *conversation, *agent, *units),
            E::OfferRejected { session, agent, .. }
            | E::OfferTimedOut { session, agent, .. }
            | E::OfferWithdrawn { session, agent, .. } => {
                let offer = self.offers.remove(session);
                assert!(
                    offer.is_some_and(|(a, _)| a == *agent),
                    "position {position}: {session} of {agent} ended but was not open"
                );
            }
            E::CapacityReleased {
                conversation,
                agent,
                units,
            } => {
                let held = self.held.remove(conversation);
                assert_eq!(
                    held,
                    Some((*agent, *units)),
                    "position {position}: {conversation} released capacity it did not hold"
                );
            }
            E::SessionClosed { session, agent, .. }
                if self.primary.get(&session.conversation) == Some(agent) =>
            {
                self.primary.remove(&session.conversation);
            }
            E::ConversationClosed { conversation, .. } => {
                let offers: Vec<_> = self
                    .offers
                    .keys()
                    .filter(|s| s.conversation == *conversation)
                    .collect();
                assert!(
                    offers.is_empty()
                        && !self.held.contains_key(conversation)
                        && !self.primary.contains_key(conversation),
                    "position {position}: {conversation} closed with offers {offers:?}, holder {:?}, primary {:?}",
                    self.held.get(conversation),
                    self.primary.get(conversation),
                );
            }
            _ => {}
        }
        if let (Some(agent), Some(before)) = (agent, before) {
            let after = self.load(agent);
            let capacity = self.capacity.get(&agent).copied().unwrap_or(0);
            assert!(
                after <= capacity || after <= before,
                "position {position}: {} took {agent} from {before} to {after} units of {capacity}",
                kind.name()
            );
            if after > before && after == capacity {
                self.filled_up += 1;
            }
        }
    }

    fn hold(&mut self, position: u64, conversation: ConversationId, agent: AgentId, units: u32) {
        if let Some(primary) = self.primary.insert(conversation, agent) {
            panic!(
                "position {position}: {agent} became primary of {conversation}, which {primary} still is"
            );
        }
        if let Some(holder) = self.held.insert(conversation, (agent, units)) {
            panic!(
                "position {position}: {agent} holds {conversation}, which {holder:?} still holds"
            );
        }
    }

    /// The ledger and the core's fold of the same events agree on every agent's load.
    pub fn assert_agrees_with(&self, world: &World) {
        for (id, agent) in &world.agents {
            let offered: u32 = self
                .offers
                .values()
                .filter(|(a, _)| a == id)
                .map(|(_, u)| u)
                .sum();
            assert_eq!(
                (agent.offered_units, agent.used_units),
                (offered, self.load(*id) - offered),
                "{id}: the core's fold and the ledger disagree"
            );
        }
    }
}
