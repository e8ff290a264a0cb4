//! What will happen, in time order.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};

use omni_core::{AgentId, ConversationId, RecordId, SessionRef, Timestamp};

use crate::script::Step;

#[derive(Clone, Copy, Debug)]
pub(super) enum Action {
    Arrival,
    /// The catch-all tick (see `Simulation::housekeeping`).
    Housekeeping,
    /// A timer the simulation knows falls due now: an ignored offer, a dropped agent or
    /// customer who is not coming back in time, a wrap-up or waiting left to its timer.
    Tick,
    Answer {
        session: SessionRef,
        agent: AgentId,
        accept: bool,
    },
    /// A step of the conversation's current phase; dropped if the phase has moved on.
    Step {
        conversation: ConversationId,
        generation: u32,
        step: Step,
    },
    /// A dropped customer is back. Not tied to a phase: the customer returns whatever the
    /// agent did meanwhile.
    CustomerReturns {
        conversation: ConversationId,
    },
    Agent {
        agent: AgentId,
        act: AgentAct,
    },
    ResolveCase {
        record: RecordId,
    },
}

#[derive(Clone, Copy, Debug)]
pub(super) enum AgentAct {
    /// Decide what to do next: a break, a dropped connection, a sign-out, or nothing.
    Routine,
    /// A manual Available: it ends a break, and is recalculated at the next accept or close.
    BackToWork,
    Reconnect,
    SignIn,
}

#[derive(Debug)]
struct Scheduled {
    at: Timestamp,
    /// Ties at the same millisecond run in scheduling order, which keeps runs deterministic.
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so that the max-heap pops the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The actions still to come, earliest first.
#[derive(Debug, Default)]
pub(super) struct Agenda {
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    /// Times a [`Action::Tick`] is already planned for: one tick fires every timer due then.
    ticks: BTreeSet<Timestamp>,
}

impl Agenda {
    pub fn push(&mut self, at: Timestamp, action: Action) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            action,
        });
    }

    pub fn push_tick(&mut self, at: Timestamp) {
        if self.ticks.insert(at) {
            self.push(at, Action::Tick);
        }
    }

    pub fn pop(&mut self) -> Option<(Timestamp, Action)> {
        let Scheduled { at, action, .. } = self.heap.pop()?;
        if let Action::Tick = action {
            self.ticks.remove(&at);
        }
        Some((at, action))
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
