//! The projections folded from events: conversations with their sessions, agents, queues.
//!
//! `fold` is the only code that changes state, and it only records what events say. The same
//! fold runs for `apply` on the [`World`] and inside `decide` on a copy-on-touch overlay, so a
//! decision that emits several events sees each one's effect on the next.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{AgentProfile, CustomPresence, QueueConfig, Workstream};
use crate::event::{Event, EventKind};
use crate::model::{
    AgentId, BaseStatus, CallActivity, Channel, ClosureReason, ConversationId, ConversationStatus,
    LinkSlot, LinkedRecord, MediaKind, MediaState, OfferOrigin, Presence, PresenceId,
    PresenceSource, QueueId, SessionNo, SessionRef, SessionStatus, StatusReason, TabOutcome,
    Timestamp, TransferTarget, WorkstreamId,
};

/// The whole state of one engine: what every decision reads.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct World {
    pub workstreams: BTreeMap<WorkstreamId, Workstream>,
    pub queues: BTreeMap<QueueId, Queue>,
    pub custom_presences: BTreeMap<PresenceId, CustomPresence>,
    pub agents: BTreeMap<AgentId, Agent>,
    pub conversations: BTreeMap<ConversationId, Conversation>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Queue {
    pub config: QueueConfig,
    /// The members, sorted by agent id, with what routing reads about each: a dense copy
    /// kept current by `fold`, so choosing an agent touches one contiguous vector instead of
    /// looking every member up in the agent map.
    pub roster: Vec<RosterSlot>,
    /// Open conversations with no offer out, oldest first: the queue's backlog.
    pub backlog: BTreeSet<(Timestamp, ConversationId)>,
}

/// One member of a queue as routing sees them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RosterSlot {
    pub agent: AgentId,
    /// When this queue last offered the member work (advanced round robin).
    pub last_assigned: Option<Timestamp>,
    /// The rest mirrors the agent.
    pub connected: bool,
    pub base: BaseStatus,
    pub free_units: u32,
    pub last_capacity_released_at: Option<Timestamp>,
    /// A one-sided filter of the agent's skills ([`skill_filter`]): a bit missing here means
    /// a skill is missing, so routing looks the agent up only when all bits are present.
    pub skill_filter: u64,
}

/// One bit per skill, chosen by a stable hash (FNV-1a) so snapshots stay deterministic.
pub fn skill_filter<'a>(skills: impl IntoIterator<Item = &'a String>) -> u64 {
    skills.into_iter().fold(0, |filter, skill| {
        let hash = skill.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        filter | 1 << (hash % 64)
    })
}

impl RosterSlot {
    /// The slot mirroring `agent`, not yet assigned anything in this queue.
    pub(crate) fn of(agent: &Agent) -> RosterSlot {
        RosterSlot {
            agent: agent.profile.id,
            last_assigned: None,
            connected: agent.is_connected(),
            base: agent.presence.base,
            free_units: agent.free_units(),
            last_capacity_released_at: agent.last_capacity_released_at,
            skill_filter: skill_filter(&agent.profile.skills),
        }
    }
}

impl Queue {
    fn slot(&self, agent: AgentId) -> Result<usize, usize> {
        self.roster.binary_search_by_key(&agent, |slot| slot.agent)
    }

    pub fn is_member(&self, agent: AgentId) -> bool {
        self.slot(agent).is_ok()
    }

    pub fn members(&self) -> impl Iterator<Item = AgentId> + '_ {
        self.roster.iter().map(|slot| slot.agent)
    }

    pub fn has_members(&self) -> bool {
        !self.roster.is_empty()
    }
}

/// A dropped desktop connection, remembered until the agent returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Disconnection {
    pub at: Timestamp,
    pub previous: Presence,
    pub previous_sticky: bool,
    /// The grace period ran out and the agent's work was released.
    pub grace_expired: bool,
}

#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Agent {
    pub profile: AgentProfile,
    pub signed_in: bool,
    pub presence: Presence,
    pub presence_source: PresenceSource,
    pub presence_modified_at: Timestamp,
    /// A manual Offline, Away or DND: it persists until sign-out or another manual change.
    pub sticky_presence: bool,
    /// Units held by conversations the agent is primary on (or wrapping up).
    pub used_units: u32,
    /// Units reserved by offers not yet answered.
    pub offered_units: u32,
    pub capacity_modified_at: Timestamp,
    pub last_capacity_released_at: Option<Timestamp>,
    pub disconnected: Option<Disconnection>,
    pub queues: BTreeSet<QueueId>,
    /// Open sessions of this agent: offers, primary sessions, consults.
    pub open_sessions: BTreeSet<SessionRef>,
    /// Conversations the agent's desktop has a session tab for.
    pub tabs: BTreeSet<ConversationId>,
    pub focused: Option<SessionRef>,
}

impl Agent {
    fn new(profile: AgentProfile) -> Agent {
        Agent {
            profile,
            signed_in: false,
            presence: Presence::of(crate::model::BaseStatus::Offline),
            presence_source: PresenceSource::System,
            presence_modified_at: Timestamp::default(),
            sticky_presence: false,
            used_units: 0,
            offered_units: 0,
            capacity_modified_at: Timestamp::default(),
            last_capacity_released_at: None,
            disconnected: None,
            queues: BTreeSet::new(),
            open_sessions: BTreeSet::new(),
            tabs: BTreeSet::new(),
            focused: None,
        }
    }

    /// Units neither held nor reserved by an offer.
    pub fn free_units(&self) -> u32 {
        self.profile
            .capacity_units
            .saturating_sub(self.used_units)
            .saturating_sub(self.offered_units)
    }

    /// Units available to accept work (offers to this agent already count as theirs).
    pub fn available_units(&self) -> u32 {
        self.profile.capacity_units.saturating_sub(self.used_units)
    }

    pub fn is_connected(&self) -> bool {
        self.signed_in && self.disconnected.is_none()
    }
}

/// What an agent's session is for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SessionRole {
    /// An offer not (yet) accepted.
    Offer,
    /// The agent handles the conversation.
    Primary,
    /// The agent was consulted: read-only, no capacity.
    Consultant,
}

#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Session {
    pub number: SessionNo,
    pub agent: AgentId,
    pub role: SessionRole,
    pub status: SessionStatus,
    pub closure: Option<ClosureReason>,
    pub created_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// Set on offers: when they time out, and why they were made.
    pub expires_at: Option<Timestamp>,
    pub origin: Option<OfferOrigin>,
    pub units: u32,
    pub unread: u32,
    /// The session has a tab on the agent's desktop.
    pub tab: bool,
    /// Session timer origin: reset when the conversation moves to wrap-up.
    pub timer_started_at: Timestamp,
}

/// Capacity a conversation holds on its primary agent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HeldCapacity {
    pub agent: AgentId,
    pub units: u32,
}

#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Conversation {
    pub id: ConversationId,
    pub channel: Channel,
    pub queue: QueueId,
    pub workstream: WorkstreamId,
    pub skills: Vec<String>,
    pub customer: String,
    pub status: ConversationStatus,
    pub reason: StatusReason,
    /// When the conversation entered its current status: auto-close timers count from here.
    pub status_since: Timestamp,
    pub primary: Option<AgentId>,
    /// The agent who last handled it: the one who may revive it from Waiting.
    pub last_primary: Option<AgentId>,
    pub consultants: BTreeSet<AgentId>,
    pub sessions: Vec<Session>,
    pub pending_offer: Option<SessionNo>,
    /// Agents who rejected or let an offer of this conversation time out.
    pub declined_by: BTreeSet<AgentId>,
    /// Set between TransferInitiated to an agent and its acceptance (or failure).
    pub transfer_from: Option<AgentId>,
    pub transfer_count: u32,
    pub held: Option<HeldCapacity>,
    pub created_at: Timestamp,
    pub assigned_at: Option<Timestamp>,
    pub accepted_at: Option<Timestamp>,
    pub wrap_up_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub call: CallActivity,
    pub hold_started_at: Option<Timestamp>,
    pub hold_ms: i64,
    pub recording: MediaState,
    pub transcription: MediaState,
    pub customer_link: Option<LinkedRecord>,
    pub case_link: Option<LinkedRecord>,
    pub customer_disconnected_at: Option<Timestamp>,
}

impl Conversation {
    pub fn session(&self, number: SessionNo) -> Option<&Session> {
        let index = usize::try_from(number.0).ok()?.checked_sub(1)?;
        self.sessions.get(index)
    }

    fn session_mut(&mut self, number: SessionNo) -> Option<&mut Session> {
        let index = usize::try_from(number.0).ok()?.checked_sub(1)?;
        self.sessions.get_mut(index)
    }

    /// The number the next session opened on this conversation gets.
    pub fn next_session_number(&self) -> SessionNo {
        SessionNo(u32::try_from(self.sessions.len()).unwrap_or(u32::MAX - 1) + 1)
    }

    pub fn session_ref(&self, number: SessionNo) -> SessionRef {
        SessionRef {
            conversation: self.id,
            number,
        }
    }

    /// The agent's open session on this conversation, if any.
    pub fn open_session_of(&self, agent: AgentId) -> Option<&Session> {
        self.sessions
            .iter()
            .find(|s| s.agent == agent && s.status == SessionStatus::Open)
    }

    pub fn open_sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions
            .iter()
            .filter(|s| s.status == SessionStatus::Open)
    }

    pub fn media(&self, media: MediaKind) -> MediaState {
        match media {
            MediaKind::Recording => self.recording,
            MediaKind::Transcription => self.transcription,
        }
    }

    pub fn link(&self, slot: LinkSlot) -> Option<LinkedRecord> {
        match slot {
            LinkSlot::Customer => self.customer_link,
            LinkSlot::Case => self.case_link,
        }
    }

    /// The backlog entry this conversation should have: Open with no offer out.
    fn backlog_key(&self) -> Option<(QueueId, Timestamp)> {
        (self.status == ConversationStatus::Open && self.pending_offer.is_none())
            .then_some((self.queue, self.status_since))
    }

    fn set_status(&mut self, status: ConversationStatus, reason: StatusReason, at: Timestamp) {
        self.status = status;
        self.reason = reason;
        self.status_since = at;
    }

    fn end_session(&mut self, number: SessionNo, reason: ClosureReason, at: Timestamp) {
        if let Some(s) = self.session_mut(number) {
            s.status = if s.role == SessionRole::Offer {
                SessionStatus::Canceled
            } else {
                SessionStatus::Completed
            };
            s.closure = Some(reason);
            s.ended_at = Some(at);
            s.tab = false;
            let consultant = (s.role == SessionRole::Consultant).then_some(s.agent);
            if let Some(agent) = consultant {
                self.consultants.remove(&agent);
            }
        }
        if self.pending_offer == Some(number) {
            self.pending_offer = None;
        }
    }
}

/// Entity access shared by the [`World`] and `decide`'s overlay, so both fold the same way.
pub(crate) trait Entities {
    fn agent_ref(&self, id: AgentId) -> Option<&Agent>;
    fn queue_ref(&self, id: QueueId) -> Option<&Queue>;
    fn agent_mut(&mut self, id: AgentId) -> Option<&mut Agent>;
    fn conversation_mut(&mut self, id: ConversationId) -> Option<&mut Conversation>;
    fn queue_mut(&mut self, id: QueueId) -> Option<&mut Queue>;
    fn insert_agent(&mut self, agent: Agent);
    fn insert_conversation(&mut self, conversation: Conversation);
    fn insert_queue(&mut self, queue: Queue);
    fn insert_workstream(&mut self, workstream: Workstream);
    fn insert_custom_presence(&mut self, presence: CustomPresence);
}

impl Entities for World {
    fn agent_ref(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(&id)
    }
    fn queue_ref(&self, id: QueueId) -> Option<&Queue> {
        self.queues.get(&id)
    }
    fn agent_mut(&mut self, id: AgentId) -> Option<&mut Agent> {
        self.agents.get_mut(&id)
    }
    fn conversation_mut(&mut self, id: ConversationId) -> Option<&mut Conversation> {
        self.conversations.get_mut(&id)
    }
    fn queue_mut(&mut self, id: QueueId) -> Option<&mut Queue> {
        self.queues.get_mut(&id)
    }
    fn insert_agent(&mut self, agent: Agent) {
        self.agents.insert(agent.profile.id, agent);
    }
    fn insert_conversation(&mut self, conversation: Conversation) {
        self.conversations.insert(conversation.id, conversation);
    }
    fn insert_queue(&mut self, queue: Queue) {
        self.queues.insert(queue.config.id, queue);
    }
    fn insert_workstream(&mut self, workstream: Workstream) {
        self.workstreams.insert(workstream.id, workstream);
    }
    fn insert_custom_presence(&mut self, presence: CustomPresence) {
        self.custom_presences.insert(presence.id, presence);
    }
}

/// Folds one event into the entities it touches. Bookkeeping only: no rule is checked here.
///
/// The conversation an event is about is looked up once: its backlog key is taken before and
/// after [`fold_conversation`] on the same reference, and its entry moves only if it changed.
pub(crate) fn fold(s: &mut impl Entities, event: &Event) {
    let at = event.at;
    let kind = &event.kind;
    let mut resumed = None;
    let mut moved = None;
    if let EventKind::ConversationCreated {
        conversation: id, ..
    } = kind
    {
        // A second creation of the same id replaces the first (fold checks nothing).
        let before = s.conversation_mut(*id).and_then(|c| c.backlog_key());
        if let Some(c) = new_conversation(at, kind) {
            moved = Some((*id, before, c.backlog_key()));
            s.insert_conversation(c);
        }
    } else if let Some(id) = kind.conversation() {
        if let Some(c) = s.conversation_mut(id) {
            let before = c.backlog_key();
            resumed = fold_conversation(c, at, kind);
            moved = Some((id, before, c.backlog_key()));
        }
    }
    fold_entities(s, at, kind, resumed);
    if let Some(agent) = routing_change(kind) {
        // Skills change only when the agent is (re)provisioned: only then are they rehashed.
        let skills_changed = matches!(kind, EventKind::AgentProvisioned(_));
        refresh_roster(s, agent, skills_changed);
    }
    if let Some((id, before, after)) = moved.filter(|(_, before, after)| before != after) {
        if let Some((queue, since)) = before {
            if let Some(q) = s.queue_mut(queue) {
                q.backlog.remove(&(since, id));
            }
        }
        if let Some((queue, since)) = after {
            if let Some(q) = s.queue_mut(queue) {
                q.backlog.insert((since, id));
            }
        }
    }
}

/// The agent whose routing view (presence, connection, capacity, membership) this event can
/// change. Unread messages, focus, consults and the like leave it alone and cost nothing here;
/// the roster property test catches a kind missing from this list.
fn routing_change(kind: &EventKind) -> Option<AgentId> {
    use EventKind as E;
    match kind {
        E::AgentProvisioned(profile) => Some(profile.id),
        E::AgentCapacityChanged { agent, .. }
        | E::QueueMembershipChanged { agent, .. }
        | E::AgentSignedIn { agent }
        | E::AgentSignedOut { agent }
        | E::PresenceUpdate { agent, .. }
        | E::AgentDisconnected { agent, .. }
        | E::AgentReconnected { agent }
        | E::AgentDisconnectGraceExpired { agent }
        | E::IncomingSessionRequest { agent, .. }
        | E::SessionAccepted { agent, .. }
        | E::OfferRejected { agent, .. }
        | E::OfferTimedOut { agent, .. }
        | E::OfferWithdrawn { agent, .. }
        | E::CapacityReleased { agent, .. }
        | E::ConversationResumed { agent, .. } => Some(*agent),
        _ => None,
    }
}

/// Mirrors the agent into their slot of each of their queues. A slot is written only when it
/// changes, so a queue is copied into `decide`'s overlay only when routing would see a
/// difference. Skills are hashed only when `skills_changed`.
fn refresh_roster(s: &mut impl Entities, id: AgentId, skills_changed: bool) {
    let Some(agent) = s.agent_ref(id) else {
        return;
    };
    let mirrored = RosterSlot {
        agent: id,
        last_assigned: None,
        connected: agent.is_connected(),
        base: agent.presence.base,
        free_units: agent.free_units(),
        last_capacity_released_at: agent.last_capacity_released_at,
        skill_filter: if skills_changed {
            skill_filter(&agent.profile.skills)
        } else {
            0
        },
    };
    let queues: Vec<QueueId> = agent.queues.iter().copied().collect();
    for queue in queues {
        let stale = s.queue_ref(queue).and_then(|q| {
            let at = q.slot(id).ok()?;
            let current = q.roster[at];
            let updated = RosterSlot {
                last_assigned: current.last_assigned,
                skill_filter: if skills_changed {
                    mirrored.skill_filter
                } else {
                    current.skill_filter
                },
                ..mirrored
            };
            (current != updated).then_some((at, updated))
        });
        if let Some((at, updated)) = stale {
            if let Some(q) = s.queue_mut(queue) {
                q.roster[at] = updated;
            }
        }
    }
}

/// What an event does to everything but the conversation it is about (see
/// [`fold_conversation`]): configuration, agents, queues.
fn fold_entities(
    s: &mut impl Entities,
    at: Timestamp,
    kind: &EventKind,
    resumed: Option<SessionRef>,
) {
    use EventKind as E;
    match kind {
        E::WorkstreamConfigured(ws) => s.insert_workstream(ws.clone()),
        E::QueueConfigured(config) => match s.queue_mut(config.id) {
            Some(q) => q.config = config.clone(),
            None => s.insert_queue(Queue {
                config: config.clone(),
                roster: Vec::new(),
                backlog: BTreeSet::new(),
            }),
        },
        E::CustomPresenceDefined(p) => s.insert_custom_presence(p.clone()),
        E::AgentProvisioned(profile) => match s.agent_mut(profile.id) {
            Some(agent) => {
                agent.profile = profile.clone();
                agent.capacity_modified_at = at;
            }
            None => {
                let mut agent = Agent::new(profile.clone());
                agent.capacity_modified_at = at;
                s.insert_agent(agent);
            }
        },
        E::AgentCapacityChanged {
            agent,
            capacity_units,
        } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.profile.capacity_units = *capacity_units;
                a.capacity_modified_at = at;
            }
        }
        E::QueueMembershipChanged {
            queue,
            agent,
            member,
        } => {
            let joining = s.agent_ref(*agent).map(RosterSlot::of);
            if let Some(q) = s.queue_mut(*queue) {
                match (q.slot(*agent), *member, joining) {
                    (Err(at), true, Some(slot)) => q.roster.insert(at, slot),
                    (Ok(at), false, _) => {
                        q.roster.remove(at);
                    }
                    _ => {}
                }
            }
            if let Some(a) = s.agent_mut(*agent) {
                if *member {
                    a.queues.insert(*queue);
                } else {
                    a.queues.remove(queue);
                }
            }
        }
        E::AgentSignedIn { agent } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.signed_in = true;
                a.disconnected = None;
            }
        }
        E::AgentSignedOut { agent } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.signed_in = false;
                a.sticky_presence = false;
                a.disconnected = None;
                a.focused = None;
            }
        }
        E::PresenceUpdate {
            agent,
            presence,
            source,
            sticky,
        } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.presence = *presence;
                a.presence_source = *source;
                a.presence_modified_at = at;
                a.sticky_presence = *sticky;
            }
        }
        E::AgentDisconnected {
            agent,
            previous,
            previous_sticky,
        } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.disconnected = Some(Disconnection {
                    at,
                    previous: *previous,
                    previous_sticky: *previous_sticky,
                    grace_expired: false,
                });
            }
        }
        E::AgentReconnected { agent } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.disconnected = None;
            }
        }
        E::AgentDisconnectGraceExpired { agent } => {
            if let Some(d) = s.agent_mut(*agent).and_then(|a| a.disconnected.as_mut()) {
                d.grace_expired = true;
            }
        }
        E::IncomingSessionRequest {
            session,
            agent,
            units,
            queue,
            ..
        } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.offered_units += units;
                a.open_sessions.insert(*session);
            }
            if let Some(q) = queue.and_then(|q| s.queue_mut(q)) {
                if let Ok(slot) = q.slot(*agent) {
                    q.roster[slot].last_assigned = Some(at);
                }
            }
        }
        E::SessionAccepted {
            session,
            agent,
            units,
            tab,
        } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.offered_units = a.offered_units.saturating_sub(*units);
                a.used_units += units;
                a.capacity_modified_at = at;
                if *tab != TabOutcome::LimitReached {
                    a.tabs.insert(session.conversation);
                }
            }
        }
        E::OfferRejected {
            session,
            agent,
            units,
        }
        | E::OfferTimedOut {
            session,
            agent,
            units,
        }
        | E::OfferWithdrawn {
            session,
            agent,
            units,
            ..
        } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.offered_units = a.offered_units.saturating_sub(*units);
                a.open_sessions.remove(session);
                // An unanswered offer leaves the agent without a session here: no tab either.
                a.tabs.remove(&session.conversation);
            }
        }
        E::SessionClosed { session, agent, .. } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.open_sessions.remove(session);
                a.tabs.remove(&session.conversation);
                if a.focused == Some(*session) {
                    a.focused = None;
                }
            }
        }
        E::CapacityReleased { agent, units, .. } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.used_units = a.used_units.saturating_sub(*units);
                a.capacity_modified_at = at;
                a.last_capacity_released_at = Some(at);
            }
        }
        E::ConsultStarted {
            session,
            consultant,
            tab,
            ..
        } => {
            if let Some(a) = s.agent_mut(*consultant) {
                a.open_sessions.insert(*session);
                if *tab != TabOutcome::LimitReached {
                    a.tabs.insert(session.conversation);
                }
            }
        }
        E::ConsultEnded {
            session,
            consultant,
            keep_tab,
        } => {
            if let Some(a) = s.agent_mut(*consultant) {
                a.open_sessions.remove(session);
                if !keep_tab {
                    a.tabs.remove(&session.conversation);
                }
                if a.focused == Some(*session) {
                    a.focused = None;
                }
            }
        }
        E::SessionFocused { session, agent } => {
            if let Some(a) = s.agent_mut(*agent) {
                a.focused = Some(*session);
            }
        }
        E::ConversationResumed {
            conversation,
            agent,
            units,
            tab,
        } => {
            if let (Some(session), Some(a)) = (resumed, s.agent_mut(*agent)) {
                a.used_units += units;
                a.capacity_modified_at = at;
                a.open_sessions.insert(session);
                if *tab != TabOutcome::LimitReached {
                    a.tabs.insert(*conversation);
                }
            }
        }
        // `fold` inserts a created conversation itself, with its backlog and index keys.
        E::ConversationCreated { .. }
        | E::TransferInitiated { .. }
        | E::TransferCompleted { .. }
        | E::CallHeld { .. }
        | E::CallResumed { .. }
        | E::MediaStateChanged { .. }
        | E::RecordLinked { .. }
        | E::RecordUnlinked { .. }
        | E::UnreadMessage { .. }
        | E::ConversationQueued { .. }
        | E::ConversationWaiting { .. }
        | E::EndConversation { .. }
        | E::ConversationClosed { .. }
        | E::CustomerDisconnected { .. }
        | E::CustomerReconnected { .. } => {}
    }
}

/// The conversation a `ConversationCreated` event describes.
fn new_conversation(at: Timestamp, kind: &EventKind) -> Option<Conversation> {
    let EventKind::ConversationCreated {
        conversation,
        channel,
        queue,
        workstream,
        skills,
        customer,
    } = kind
    else {
        return None;
    };
    Some(Conversation {
        id: *conversation,
        channel: *channel,
        queue: *queue,
        workstream: *workstream,
        skills: skills.clone(),
        customer: customer.clone(),
        status: ConversationStatus::Open,
        reason: StatusReason::AwaitingAgentAssignment,
        status_since: at,
        primary: None,
        last_primary: None,
        consultants: BTreeSet::new(),
        sessions: Vec::new(),
        pending_offer: None,
        declined_by: BTreeSet::new(),
        transfer_from: None,
        transfer_count: 0,
        held: None,
        created_at: at,
        assigned_at: None,
        accepted_at: None,
        wrap_up_at: None,
        closed_at: None,
        call: CallActivity::Default,
        hold_started_at: None,
        hold_ms: 0,
        recording: MediaState::NotStarted,
        transcription: MediaState::NotStarted,
        customer_link: None,
        case_link: None,
        customer_disconnected_at: None,
    })
}

/// What an event (other than its creation) does to the conversation it is about. Returns the
/// session a `ConversationResumed` opened, for the agent's side.
fn fold_conversation(c: &mut Conversation, at: Timestamp, kind: &EventKind) -> Option<SessionRef> {
    use EventKind as E;
    match kind {
        E::IncomingSessionRequest {
            session,
            agent,
            origin,
            units,
            expires_at,
            ..
        } => {
            c.sessions.push(Session {
                number: session.number,
                agent: *agent,
                role: SessionRole::Offer,
                status: SessionStatus::Open,
                closure: None,
                created_at: at,
                accepted_at: None,
                ended_at: None,
                expires_at: Some(*expires_at),
                origin: Some(*origin),
                units: *units,
                unread: 0,
                tab: false,
                timer_started_at: at,
            });
            c.pending_offer = Some(session.number);
            c.reason = StatusReason::AwaitingAgentAcceptance;
            c.assigned_at.get_or_insert(at);
        }
        E::SessionAccepted {
            session,
            agent,
            units,
            tab,
        } => {
            if let Some(sess) = c.session_mut(session.number) {
                sess.role = SessionRole::Primary;
                sess.accepted_at = Some(at);
                sess.expires_at = None;
                sess.tab = *tab != TabOutcome::LimitReached;
                sess.timer_started_at = at;
            }
            c.pending_offer = None;
            c.primary = Some(*agent);
            c.last_primary = Some(*agent);
            c.held = Some(HeldCapacity {
                agent: *agent,
                units: *units,
            });
            c.declined_by.clear();
            c.accepted_at.get_or_insert(at);
            if c.channel.is_call() {
                c.call = CallActivity::Talk;
            }
            c.set_status(ConversationStatus::Active, StatusReason::InConversation, at);
        }
        E::OfferRejected { session, agent, .. }
        | E::OfferTimedOut { session, agent, .. }
        | E::OfferWithdrawn { session, agent, .. } => {
            let reason = match kind {
                E::OfferRejected { .. } => ClosureReason::AgentRejected,
                E::OfferTimedOut { .. } => ClosureReason::AgentTimedOut,
                E::OfferWithdrawn { reason, .. } => *reason,
                _ => unreachable!("matched above"),
            };
            c.end_session(session.number, reason, at);
            if !matches!(kind, E::OfferWithdrawn { .. }) {
                c.declined_by.insert(*agent);
            }
            if c.status == ConversationStatus::Open {
                c.reason = StatusReason::AwaitingAgentAssignment;
            }
        }
        E::SessionClosed {
            session,
            agent,
            reason,
        } => {
            c.end_session(session.number, *reason, at);
            if c.primary == Some(*agent) {
                c.primary = None;
            }
        }
        E::CapacityReleased { .. } => c.held = None,
        E::TransferInitiated { from, target, .. } => {
            c.transfer_count += 1;
            c.primary = None;
            match target {
                TransferTarget::Agent(_) => {
                    c.transfer_from = Some(*from);
                    c.set_status(
                        ConversationStatus::Open,
                        StatusReason::AwaitingAgentAcceptance,
                        at,
                    );
                }
                TransferTarget::Queue(_) => c.transfer_from = None,
            }
        }
        E::TransferCompleted { .. } => c.transfer_from = None,
        E::ConsultStarted {
            session,
            consultant,
            tab,
            ..
        } => {
            c.sessions.push(Session {
                number: session.number,
                agent: *consultant,
                role: SessionRole::Consultant,
                status: SessionStatus::Open,
                closure: None,
                created_at: at,
                accepted_at: Some(at),
                ended_at: None,
                expires_at: None,
                origin: None,
                units: 0,
                unread: 0,
                tab: *tab != TabOutcome::LimitReached,
                timer_started_at: at,
            });
            c.consultants.insert(*consultant);
        }
        E::ConsultEnded { session, .. } => {
            c.end_session(session.number, ClosureReason::AgentClosed, at);
        }
        E::CallHeld { .. } => {
            c.call = CallActivity::Hold;
            c.hold_started_at = Some(at);
        }
        E::CallResumed { .. } => {
            c.call = CallActivity::Talk;
            if let Some(started) = c.hold_started_at.take() {
                c.hold_ms += at.since(started);
            }
        }
        E::MediaStateChanged { media, state, .. } => match media {
            MediaKind::Recording => c.recording = *state,
            MediaKind::Transcription => c.transcription = *state,
        },
        E::RecordLinked { record, .. } => match record.entity.slot() {
            LinkSlot::Customer => c.customer_link = Some(*record),
            LinkSlot::Case => c.case_link = Some(*record),
        },
        E::RecordUnlinked { record, .. } => match record.entity.slot() {
            LinkSlot::Customer => c.customer_link = None,
            LinkSlot::Case => c.case_link = None,
        },
        E::UnreadMessage {
            session, unread, ..
        } => {
            if let Some(sess) = c.session_mut(session.number) {
                sess.unread = *unread;
            }
        }
        E::SessionFocused { session, .. } => {
            if let Some(sess) = c.session_mut(session.number) {
                sess.unread = 0;
            }
        }
        E::ConversationQueued { queue, reason, .. } => {
            c.queue = *queue;
            c.primary = None;
            c.transfer_from = None;
            c.set_status(ConversationStatus::Open, *reason, at);
        }
        E::ConversationResumed {
            agent, units, tab, ..
        } => {
            let number = c.next_session_number();
            c.sessions.push(Session {
                number,
                agent: *agent,
                role: SessionRole::Primary,
                status: SessionStatus::Open,
                closure: None,
                created_at: at,
                accepted_at: Some(at),
                ended_at: None,
                expires_at: None,
                origin: None,
                units: *units,
                unread: 0,
                tab: *tab != TabOutcome::LimitReached,
                timer_started_at: at,
            });
            c.primary = Some(*agent);
            c.last_primary = Some(*agent);
            c.held = Some(HeldCapacity {
                agent: *agent,
                units: *units,
            });
            c.set_status(ConversationStatus::Active, StatusReason::InConversation, at);
            return Some(c.session_ref(number));
        }
        E::ConversationWaiting { .. } => {
            c.primary = None;
            c.set_status(
                ConversationStatus::Waiting,
                StatusReason::AwaitingCustomer,
                at,
            );
        }
        E::EndConversation { reason, .. } => {
            c.wrap_up_at = Some(at);
            if c.channel.is_call() {
                c.call = CallActivity::Ended;
            }
            if let Some(started) = c.hold_started_at.take() {
                c.hold_ms += at.since(started);
            }
            for sess in c.sessions.iter_mut() {
                if sess.status == SessionStatus::Open {
                    sess.timer_started_at = at;
                }
            }
            c.set_status(ConversationStatus::WrapUp, *reason, at);
        }
        E::ConversationClosed { reason, .. } => {
            c.closed_at = Some(at);
            c.primary = None;
            c.pending_offer = None;
            c.transfer_from = None;
            if c.channel.is_call() {
                c.call = CallActivity::Ended;
            }
            if let Some(started) = c.hold_started_at.take() {
                c.hold_ms += at.since(started);
            }
            c.set_status(ConversationStatus::Closed, *reason, at);
        }
        E::CustomerDisconnected { .. } => c.customer_disconnected_at = Some(at),
        E::CustomerReconnected { .. } => c.customer_disconnected_at = None,
        E::WorkstreamConfigured(_)
        | E::QueueConfigured(_)
        | E::CustomPresenceDefined(_)
        | E::AgentProvisioned(_)
        | E::AgentCapacityChanged { .. }
        | E::QueueMembershipChanged { .. }
        | E::AgentSignedIn { .. }
        | E::AgentSignedOut { .. }
        | E::PresenceUpdate { .. }
        | E::AgentDisconnected { .. }
        | E::AgentReconnected { .. }
        | E::AgentDisconnectGraceExpired { .. }
        | E::ConversationCreated { .. } => {}
    }
    None
}
