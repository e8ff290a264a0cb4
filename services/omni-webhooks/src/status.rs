//! Agent status changes, found by folding the committed events.
//!
//! The webhook service keeps no status of its own on disk: at every start it folds the log
//! from position 1 (gap-free, `omni_bus::follow`, which reads what it missed with
//! `omni.log.read`) into a `World` with `omni_core::apply`, like the presence service does, and
//! notifies only for positions after its checkpoint. So the statuses it sends are exactly the
//! presence API's (`omni_proto::agent_view`), and nothing can drift from the log. Closed
//! conversations are forgotten (`World::forget`) to keep the world bounded over months.

use omni_core::{AgentId, EventKind, PresenceId, PresenceSource, Timestamp, World, apply};
use omni_proto::Envelope;
use uuid::Uuid;

/// The status attributes, by their Dataverse names: what an endpoint may filter on (the seed's
/// "Filtering attributes" of a webhook step, e.g. current presence only).
pub const CURRENT_PRESENCE: &str = "msdyn_currentpresenceid";
pub const AVAILABLE_UNITS: &str = "msdyn_availableunitscapacity";
pub const LOGGED_IN: &str = "msdyn_isagentloggedin";
pub const PRESENCE_MODIFIED_BY: &str = "msdyn_presencemodifiedby";
pub const PRESENCE_MODIFIED_ON: &str = "msdyn_presencemodifiedon";
pub const CAPACITY_MODIFIED_ON: &str = "msdyn_capacitymodifiedon";
pub const STATUS_ATTRIBUTES: [&str; 6] = [
    CURRENT_PRESENCE,
    AVAILABLE_UNITS,
    LOGGED_IN,
    PRESENCE_MODIFIED_BY,
    PRESENCE_MODIFIED_ON,
    CAPACITY_MODIFIED_ON,
];

/// The `msdyn_agentstatus` fields a notification carries.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AgentStatus {
    pub agent: AgentId,
    /// `msdyn_currentpresenceid`.
    pub presence: PresenceId,
    /// `msdyn_availableunitscapacity`: capacity neither held nor reserved by an open offer,
    /// what `CCaaS_GetPresence` answers too.
    pub available_units: u32,
    /// `msdyn_isagentloggedin`.
    pub logged_in: bool,
    /// `msdyn_presencemodifiedby`.
    pub presence_modified_by: PresenceSource,
    /// `msdyn_presencemodifiedon`.
    pub presence_modified_on: Timestamp,
    /// `msdyn_capacitymodifiedon`.
    pub capacity_modified_on: Timestamp,
}

impl AgentStatus {
    /// The attributes that differ from `before`; all of them for a new agent.
    fn changed_since(&self, before: Option<&AgentStatus>) -> Vec<&'static str> {
        let Some(b) = before else {
            return STATUS_ATTRIBUTES.to_vec();
        };
        [
            (CURRENT_PRESENCE, self.presence != b.presence),
            (AVAILABLE_UNITS, self.available_units != b.available_units),
            (LOGGED_IN, self.logged_in != b.logged_in),
            (
                PRESENCE_MODIFIED_BY,
                self.presence_modified_by != b.presence_modified_by,
            ),
            (
                PRESENCE_MODIFIED_ON,
                self.presence_modified_on != b.presence_modified_on,
            ),
            (
                CAPACITY_MODIFIED_ON,
                self.capacity_modified_on != b.capacity_modified_on,
            ),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }

    fn of(agent: &omni_core::Agent) -> AgentStatus {
        AgentStatus {
            agent: agent.profile.id,
            presence: agent.presence.id,
            available_units: agent.free_units(),
            logged_in: agent.signed_in,
            presence_modified_by: agent.presence_source,
            presence_modified_on: agent.presence_modified_at,
            capacity_modified_on: agent.capacity_modified_at,
        }
    }
}

/// One agent status change: the status after the event, and the event that made it.
#[derive(Clone, Debug)]
pub struct Notification {
    pub status: AgentStatus,
    /// The attributes this change changed (names from [`STATUS_ATTRIBUTES`]).
    pub changed: Vec<&'static str>,
    pub position: u64,
    pub event_id: Uuid,
    /// The command that produced the event (the event's own id when it has no cause).
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub actor: omni_core::Actor,
    pub at: Timestamp,
}

/// The world the statuses are read from.
#[derive(Debug, Default)]
pub struct Statuses {
    world: World,
}

impl Statuses {
    /// Folds one committed event. Returns the agent's new status when the event changed any
    /// field of it: a presence change (manual or automatic), a capacity change (an offer, an
    /// accept, a release, a new capacity), a sign-in or sign-out, or a newly provisioned agent.
    /// Fold changes an agent only through events that name it, so the named agent is the only
    /// one to compare.
    pub fn fold(&mut self, position: u64, envelope: &Envelope) -> Option<Notification> {
        let kind = &envelope.event.kind;
        let agent = kind.agent();
        let before = agent.and_then(|id| self.status(id));
        apply(&mut self.world, &envelope.event);
        if let EventKind::ConversationClosed { conversation, .. } = kind {
            self.world.forget(*conversation);
        }
        let after = self.status(agent?)?;
        let changed = after.changed_since(before.as_ref());
        (!changed.is_empty()).then(|| Notification {
            status: after,
            changed,
            position,
            event_id: envelope.event_id,
            command_id: envelope.causation_id.unwrap_or(envelope.event_id),
            correlation_id: envelope.correlation_id,
            actor: envelope.actor,
            at: envelope.event.at,
        })
    }

    fn status(&self, agent: AgentId) -> Option<AgentStatus> {
        self.world.agents.get(&agent).map(AgentStatus::of)
    }
}
