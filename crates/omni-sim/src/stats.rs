//! What a simulation did, counted as it goes.

use std::collections::BTreeMap;

use omni_core::{Event, EventKind, StatusReason, TransferTarget};

/// Counters of one run. Rejections are normal in a simulation (an agent clicks accept on an
/// offer the customer just abandoned); they are counted by what the simulation tried, and
/// never appear in the stream.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SimStats {
    /// Commands handed to `decide`.
    pub commands: u64,
    /// Refused commands, by what was attempted ("accept", "transfer", …).
    pub rejections: BTreeMap<&'static str, u64>,
    /// Accepted events, by [`EventKind::name`].
    pub events: BTreeMap<&'static str, u64>,
    /// Closed conversations, by why they closed.
    pub closed_by_reason: BTreeMap<StatusReason, u64>,
    pub transfers_to_agent: u64,
    pub transfers_to_queue: u64,
    /// Offers the agent let run out (a subset of `OfferTimedOut` when agents also drop).
    pub offers_ignored: u64,
    /// Agents who came back before the 150 s grace ran out, and after.
    pub reconnects_within_grace: u64,
    pub reconnects_after_grace: u64,
}

impl SimStats {
    /// Every event the run emitted.
    pub fn total_events(&self) -> u64 {
        self.events.values().sum()
    }

    /// Every refused command.
    pub fn total_rejections(&self) -> u64 {
        self.rejections.values().sum()
    }

    /// How many events of this kind (by [`EventKind::name`]) the run emitted.
    pub fn count(&self, kind: &str) -> u64 {
        self.events.get(kind).copied().unwrap_or(0)
    }

    pub(crate) fn record(&mut self, event: &Event) {
        *self.events.entry(event.kind.name()).or_default() += 1;
        match &event.kind {
            EventKind::ConversationClosed { reason, .. } => {
                *self.closed_by_reason.entry(*reason).or_default() += 1;
            }
            EventKind::TransferInitiated { target, .. } => match target {
                TransferTarget::Agent(_) => self.transfers_to_agent += 1,
                TransferTarget::Queue(_) => self.transfers_to_queue += 1,
            },
            _ => {}
        }
    }

    pub(crate) fn rejected(&mut self, attempt: &'static str) {
        *self.rejections.entry(attempt).or_default() += 1;
    }
}
