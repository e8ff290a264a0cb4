//! The summary `omni replay` prints: what the rebuilt projections hold.

use std::collections::BTreeMap;
use std::time::Duration;

use omni_core::World;
use serde::Serialize;

use crate::Projection;

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub events: u64,
    pub position: u64,
    /// Events from a newer schema that were counted, not folded.
    pub unknown_events: u64,
    pub conversations: u64,
    pub conversations_by_status: BTreeMap<String, u64>,
    pub sessions: u64,
    pub sessions_by_status: BTreeMap<String, u64>,
    pub agents: u64,
    pub agents_signed_in: u64,
    pub agents_by_presence: BTreeMap<String, u64>,
    pub elapsed_ms: u64,
    pub events_per_sec: u64,
}

impl Summary {
    pub fn of(projection: &Projection, elapsed: Duration) -> Summary {
        let world: &World = &projection.world;
        // Counted by value and named once per status: formatting a name per conversation was
        // a noticeable part of a million-conversation summary.
        let mut conversations_by_status = BTreeMap::new();
        let mut sessions_by_status = BTreeMap::new();
        let mut sessions = 0;
        for c in world.conversations.values() {
            *conversations_by_status.entry(c.status).or_default() += 1;
            for s in &c.sessions {
                sessions += 1;
                *sessions_by_status.entry(s.status).or_default() += 1;
            }
        }
        let mut agents_by_presence = BTreeMap::new();
        for a in world.agents.values() {
            *agents_by_presence.entry(a.presence.base).or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        Summary {
            events: projection.events,
            position: projection.position,
            unknown_events: projection.unknown.len() as u64,
            conversations: world.conversations.len() as u64,
            conversations_by_status: named(conversations_by_status),
            sessions,
            sessions_by_status: named(sessions_by_status),
            agents: world.agents.len() as u64,
            agents_signed_in: world.agents.values().filter(|a| a.signed_in).count() as u64,
            agents_by_presence: named(agents_by_presence),
            elapsed_ms: elapsed.as_millis() as u64,
            events_per_sec: if secs > 0.0 {
                (projection.events as f64 / secs) as u64
            } else {
                0
            },
        }
    }
}

/// Counts keyed by each value's `Debug` name, the summary's wording.
fn named<K: std::fmt::Debug>(counts: BTreeMap<K, u64>) -> BTreeMap<String, u64> {
    counts
        .into_iter()
        .map(|(key, n)| (format!("{key:?}"), n))
        .collect()
}
