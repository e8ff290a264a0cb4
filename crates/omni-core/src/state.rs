//! The projections folded from events: conversations with their sessions, agents, queues.
//!
//! `fold` is the only code that changes state, and it only records what events say. The same
//! fold runs for `apply` on the [`World`] and inside `decide` on a copy-on-touch overlay, so a
//! decision that emits several events sees each one's effect on the next.
//!
//! The [`World`] also keeps [`Indexes`] that let a service holding one world for a long time
//! answer "what falls due next", "what is due now" and "which conversations is this case
//! linked to" in O(log n), and forget closed conversations so it stays bounded.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use imbl::OrdSet;

use crate::config::{AgentProfile, CustomPresence, QueueConfig, Workstream};
use crate::event::{Event, EventKind};
use crate::model::{
    AgentId, BaseStatus, CallActivity, Channel, ClosureReason, ConversationId, ConversationStatus,
    LinkSlot, LinkedRecord, MediaKind, MediaState, OfferOrigin, Presence, PresenceId,
    PresenceSource, QueueId, RecordId, SessionNo, SessionRef, SessionStatus, StatusReason,
    TabOutcome, Timestamp, TransferTarget, WorkstreamId,
};
use crate::timers::{self, Timing};

/// The whole state of one engine: what every decision reads.
///
/// The world also indexes what a long-running service asks of it often: running timers by
/// deadline ([`next_deadline`](crate::next_deadline), `Tick`) and live conversations by linked
/// case (`ResolveCase`). The maps are public to read; change the world only through
/// [`apply`](crate::apply) and [`World::forget`], which keep the indexes current. Code that
/// edits the maps directly (a test building a state by hand, a migration) calls
/// [`World::rebuild_indexes`] after.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct World {
    pub workstreams: BTreeMap<WorkstreamId, Workstream>,
    pub queues: BTreeMap<QueueId, Queue>,
    pub custom_presences: BTreeMap<PresenceId, CustomPresence>,
    pub agents: BTreeMap<AgentId, Agent>,
    /// Boxed so the map's nodes stay small: at a million conversations a lookup then misses the
    /// cache a few times instead of once per level of a tree of 5 KB nodes.
    pub conversations: BTreeMap<ConversationId, Box<Conversation>>,
    /// Derived from the maps above, so never serialized: deserializing rebuilds it, and a
    /// snapshot's JSON (and its hash) is the same as before the indexes existed.
    #[cfg_attr(feature = "serde", serde(skip))]
    indexes: Indexes,
}

/// What the [`World`] indexes, so that timers and case resolution cost what is due or linked,
/// not what exists.
///
/// **Kept by `fold`**, like each queue's backlog and roster: `fold` computes a conversation's
/// index keys (earliest deadline, linked case) before and after each event about it and moves
/// its entries only when a key changed; an agent's disconnect grace likewise on the events
/// that start or end it. A workstream reconfiguration re-times the live conversations of that
/// workstream, found by one pass over the conversations: a rare administrative event, paid
/// once, instead of a per-workstream set paid on every conversation's creation and close.
///
/// Only the [`World`] keeps indexes. `decide`'s copy-on-touch overlay folds the same events
/// but skips them (copying an index on first touch would cost O(n) a decision); `decide` reads
/// the world's indexes and accounts for what it has touched itself (see `Tick`).
///
/// Every entry is a pure function of the maps, ordered by `BTreeSet`: two worlds with the same
/// entities have equal indexes, so equality, `Debug` and a rebuild stay deterministic.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
struct Indexes {
    /// Conversations that are not Closed and have a running timer, by their earliest
    /// deadline: the offer timeout, the customer reconnect window, custom wrap-up blocking or
    /// the channel's auto-close timer of their status.
    conversation_deadlines: BTreeSet<(Timestamp, ConversationId)>,
    /// Agents whose disconnect grace is running, by when it runs out.
    agent_deadlines: BTreeSet<(Timestamp, AgentId)>,
    /// Conversations that are not Closed, by the case (incident) linked to them.
    cases: BTreeSet<(RecordId, ConversationId)>,
}

/// Where a conversation sits in the indexes (and in its queue's backlog).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Keys {
    backlog: Option<(QueueId, Timestamp)>,
    deadline: Option<Timestamp>,
    case: Option<RecordId>,
}

impl Indexes {
    fn move_conversation(&mut self, id: ConversationId, before: Keys, after: Keys) {
        if before.deadline != after.deadline {
            if let Some(at) = before.deadline {
                self.conversation_deadlines.remove(&(at, id));
            }
            if let Some(at) = after.deadline {
                self.conversation_deadlines.insert((at, id));
            }
        }
        if before.case != after.case {
            if let Some(record) = before.case {
                self.cases.remove(&(record, id));
            }
            if let Some(record) = after.case {
                self.cases.insert((record, id));
            }
        }
    }

    fn move_agent(&mut self, id: AgentId, before: Option<Timestamp>, after: Option<Timestamp>) {
        if before != after {
            if let Some(at) = before {
                self.agent_deadlines.remove(&(at, id));
            }
            if let Some(at) = after {
                self.agent_deadlines.insert((at, id));
            }
        }
    }
}

impl World {
    /// The earliest deadline of any running timer, in O(log n).
    pub(crate) fn first_deadline(&self) -> Option<Timestamp> {
        let conversation = self.indexes.conversation_deadlines.first().map(|e| e.0);
        let agent = self.indexes.agent_deadlines.first().map(|e| e.0);
        conversation.into_iter().chain(agent).min()
    }

    /// Agents whose disconnect grace has run out at `now`, in id order.
    pub(crate) fn agents_due(&self, now: Timestamp) -> Vec<AgentId> {
        let mut due: Vec<AgentId> = self
            .indexes
            .agent_deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect();
        due.sort_unstable();
        due
    }

    /// Conversations with a timer due at `now`, in id order.
    pub(crate) fn conversations_due(&self, now: Timestamp) -> BTreeSet<ConversationId> {
        self.indexes
            .conversation_deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Conversations that are not Closed and are linked to the case `record`, in id order.
    pub(crate) fn linked_to_case(&self, record: RecordId) -> Vec<ConversationId> {
        self.indexes
            .cases
            .range(
                (record, ConversationId::from_u128(0))
                    ..=(record, ConversationId::from_u128(u128::MAX)),
            )
            .map(|(_, id)| *id)
            .collect()
    }

    /// The index keys of conversation `id` as the world stands.
    fn keys_of(&self, id: ConversationId) -> Keys {
        self.conversations
            .get(&id)
            .map(|c| keys(c, self.timing(c.workstream), true))
            .unwrap_or_default()
    }

    fn timing(&self, workstream: WorkstreamId) -> Option<Timing> {
        self.workstreams.get(&workstream).map(Timing::of)
    }

    /// The conversation `id`, unboxed.
    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations.get(&id).map(Box::as_ref)
    }

    /// Recomputes every index from the maps. [`apply`](crate::apply), [`World::forget`] and
    /// deserialization keep them current; call this only after editing the maps directly.
    pub fn rebuild_indexes(&mut self) {
        let mut indexes = Indexes::default();
        for (id, c) in &self.conversations {
            let keys = keys(c, self.timing(c.workstream), true);
            indexes.move_conversation(*id, Keys::default(), keys);
        }
        for (id, agent) in &self.agents {
            indexes.move_agent(*id, None, timers::agent_due(agent));
        }
        self.indexes = indexes;
    }

    /// Forgets a Closed conversation: removes it and every trace of it, so a service that runs
    /// for months holds only live conversations (and the closed ones it still wants to show). Returns the
    /// conversation, for archiving; `None`, changing nothing, when it is unknown or not Closed.
    ///
    /// Closed is final, so no decision about the other conversations, agents and queues
    /// depends on it: they are judged exactly as before. What changes is what is said about
    /// the forgotten one: a command naming it is rejected as an unknown conversation instead
    /// of a closed one, and the world no longer knows its id was used, so `StartConversation`
    /// with that id would be accepted again: conversation ids must never be reused, which the
    /// log, where the conversation's stream exists, can enforce. Replaying the log brings
    /// forgotten conversations back; forget them again as they close if the replayed world
    /// should stay bounded too.
    ///
    /// A Closed conversation has no index or backlog entry and no open session, tab or focus
    /// (closing ended them); they are removed anyway, so nothing can be left dangling.
    pub fn forget(&mut self, id: ConversationId) -> Option<Conversation> {
        if self.conversations.get(&id)?.status != ConversationStatus::Closed {
            return None;
        }
        let keys = self.keys_of(id);
        let c = self.conversations.remove(&id)?;
        self.indexes.move_conversation(id, keys, Keys::default());
        if let Some(q) = self.queues.get_mut(&c.queue) {
            q.backlog.remove(&(c.status_since, id));
        }
        for session in &c.sessions {
            if let Some(agent) = self.agents.get_mut(&session.agent) {
                agent.open_sessions.remove(&c.session_ref(session.number));
                agent.tabs.remove(&id);
                if agent.focused.is_some_and(|f| f.conversation == id) {
                    agent.focused = None;
                }
            }
        }
        Some(*c)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for World {
    /// The maps as serialized, then the indexes rebuilt from them.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<World, D::Error> {
        #[derive(serde::Deserialize)]
        struct Maps {
            workstreams: BTreeMap<WorkstreamId, Workstream>,
            queues: BTreeMap<QueueId, Queue>,
            custom_presences: BTreeMap<PresenceId, CustomPresence>,
            agents: BTreeMap<AgentId, Agent>,
            conversations: BTreeMap<ConversationId, Box<Conversation>>,
        }
        let maps = Maps::deserialize(deserializer)?;
        let mut world = World {
            workstreams: maps.workstreams,
            queues: maps.queues,
            custom_presences: maps.custom_presences,
            agents: maps.agents,
            conversations: maps.conversations,
            indexes: Indexes::default(),
        };
        world.rebuild_indexes();
        Ok(world)
    }
}

/// Where `c` belongs in the backlog and, when `indexed`, in the world's indexes.
fn keys(c: &Conversation, ws: Option<Timing>, indexed: bool) -> Keys {
    let live = c.status != ConversationStatus::Closed;
    Keys {
        backlog: c.backlog_key(),
        deadline: if indexed && live {
            ws.and_then(|ws| timers::earliest(c, ws))
        } else {
            None
        },
        case: if indexed && live {
            c.case_link.map(|l| l.record)
        } else {
            None
        },
    }
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
    ///
    /// A persistent set, like the agent's sessions: every new conversation and every offer
    /// touches its queue, and `decide`'s copy-on-touch then costs O(1) instead of a copy of a
    /// backlog that may hold thousands when the queue is overrun.
    pub backlog: OrdSet<(Timestamp, ConversationId)>,
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
    ///
    /// This set and `tabs` are persistent (structurally shared) sets: every offer touches the
    /// agent, and `decide`'s copy-on-touch then copies a path of small nodes, not every
    /// session of an agent who holds many (a social or SMS desk, or offers nobody answers).
    pub open_sessions: OrdSet<SessionRef>,
    /// Conversations the agent's desktop has a session tab for.
    pub tabs: OrdSet<ConversationId>,
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
            open_sessions: OrdSet::new(),
            tabs: OrdSet::new(),
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

impl Session {
    /// A session opened at `at`: not yet accepted, ended, timed, holding nothing, no tab.
    fn opened(number: SessionNo, agent: AgentId, role: SessionRole, at: Timestamp) -> Session {
        Session {
            number,
            agent,
            role,
            status: SessionStatus::Open,
            closure: None,
            created_at: at,
            accepted_at: None,
            ended_at: None,
            expires_at: None,
            origin: None,
            units: 0,
            unread: 0,
            tab: false,
            timer_started_at: at,
        }
    }
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

    /// Adds a session, growing the list by one. Why not `push`: it starts a list at four
    /// sessions of 120 B, and a conversation has fewer than two on average, so a million of them
    /// (a replay, a long-running engine) held about 260 MB of empty room.
    fn push_session(&mut self, session: Session) {
        self.sessions.reserve_exact(1);
        self.sessions.push(session);
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
    /// Whether this keeps the world's [`Indexes`]: `fold` skips computing their keys if not.
    const INDEXED: bool;
    fn agent_ref(&self, id: AgentId) -> Option<&Agent>;
    fn queue_ref(&self, id: QueueId) -> Option<&Queue>;
    fn workstream_ref(&self, id: WorkstreamId) -> Option<&Workstream>;
    fn agent_mut(&mut self, id: AgentId) -> Option<&mut Agent>;
    /// The conversation, and (when `timing`) what its timers depend on in its workstream,
    /// with one lookup of each.
    fn conversation_and_timing(
        &mut self,
        id: ConversationId,
        timing: bool,
    ) -> Option<(&mut Conversation, Option<Timing>)>;
    fn queue_mut(&mut self, id: QueueId) -> Option<&mut Queue>;
    fn insert_agent(&mut self, agent: Agent);
    fn insert_conversation(&mut self, conversation: Conversation);
    fn insert_queue(&mut self, queue: Queue);
    fn insert_workstream(&mut self, workstream: Workstream);
    fn insert_custom_presence(&mut self, presence: CustomPresence);
    /// Moves a conversation's index entries (only called when [`Entities::INDEXED`]).
    fn reindex_conversation(&mut self, id: ConversationId, before: Keys, after: Keys);
    /// Moves an agent's disconnect-grace entry (only called when [`Entities::INDEXED`]).
    fn reindex_agent(&mut self, id: AgentId, before: Option<Timestamp>, after: Option<Timestamp>);
}

impl Entities for World {
    const INDEXED: bool = true;
    fn agent_ref(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(&id)
    }
    fn queue_ref(&self, id: QueueId) -> Option<&Queue> {
        self.queues.get(&id)
    }
    fn workstream_ref(&self, id: WorkstreamId) -> Option<&Workstream> {
        self.workstreams.get(&id)
    }
    fn agent_mut(&mut self, id: AgentId) -> Option<&mut Agent> {
        self.agents.get_mut(&id)
    }
    fn conversation_and_timing(
        &mut self,
        id: ConversationId,
        timing: bool,
    ) -> Option<(&mut Conversation, Option<Timing>)> {
        let c = self.conversations.get_mut(&id)?;
        let timing = if timing {
            self.workstreams.get(&c.workstream).map(Timing::of)
        } else {
            None
        };
        Some((c, timing))
    }
    fn queue_mut(&mut self, id: QueueId) -> Option<&mut Queue> {
        self.queues.get_mut(&id)
    }
    fn insert_agent(&mut self, agent: Agent) {
        self.agents.insert(agent.profile.id, agent);
    }
    fn insert_conversation(&mut self, conversation: Conversation) {
        self.conversations
            .insert(conversation.id, Box::new(conversation));
    }
    fn insert_queue(&mut self, queue: Queue) {
        self.queues.insert(queue.config.id, queue);
    }
    /// A new workstream, or new timers or wrap-up blocking for an existing one, re-times its
    /// live conversations: one pass over the conversations, on an administrative event.
    fn insert_workstream(&mut self, workstream: Workstream) {
        let id = workstream.id;
        let retime = self
            .workstreams
            .get(&id)
            .is_none_or(|old| Timing::of(old) != Timing::of(&workstream));
        if !retime {
            self.workstreams.insert(id, workstream);
            return;
        }
        let before: Vec<(ConversationId, Keys)> = self
            .conversations
            .values()
            .filter(|c| c.workstream == id && c.status != ConversationStatus::Closed)
            .map(|c| (c.id, keys(c, self.timing(id), true)))
            .collect();
        self.workstreams.insert(id, workstream);
        for (conversation, before) in before {
            let after = self.keys_of(conversation);
            self.indexes.move_conversation(conversation, before, after);
        }
    }
    fn insert_custom_presence(&mut self, presence: CustomPresence) {
        self.custom_presences.insert(presence.id, presence);
    }
    fn reindex_conversation(&mut self, id: ConversationId, before: Keys, after: Keys) {
        self.indexes.move_conversation(id, before, after);
    }
    fn reindex_agent(&mut self, id: AgentId, before: Option<Timestamp>, after: Option<Timestamp>) {
        self.indexes.move_agent(id, before, after);
    }
}

/// Folds a run of events without keeping the world's indexes, and rebuilds them once when
/// dropped: replay's fold, where nothing asks for a deadline until the end. At a million
/// conversations keeping the deadline and case indexes event by event costs a tenth of the
/// fold; one rebuild at the end is a pass over the live conversations. The queues' backlogs
/// and rosters are not indexes of this kind and stay current throughout.
///
/// The conversations are also taken out of the world's B-tree into a hash map for the fold
/// and put back, sorted, when it is dropped: events arrive in time order, not id order, so
/// each one looks up a conversation at a random place in the tree, and at a million
/// conversations that lookup was several cache misses deep (the tree's lower levels do not
/// fit in cache) where a hash lookup is one or two. Putting them back is a sort and a bulk
/// build, a small fraction of folding a million lifecycles.
#[derive(Debug)]
pub struct BulkFold<'w> {
    world: &'w mut World,
    conversations: HashMap<ConversationId, Box<Conversation>>,
}

impl<'w> BulkFold<'w> {
    pub fn new(world: &'w mut World) -> BulkFold<'w> {
        let conversations = std::mem::take(&mut world.conversations)
            .into_iter()
            .collect();
        BulkFold {
            world,
            conversations,
        }
    }

    /// Folds one event, as [`apply`](crate::apply) does but for the indexes.
    pub fn apply(&mut self, event: &Event) {
        let mut unindexed = Unindexed {
            world: self.world,
            conversations: &mut self.conversations,
        };
        fold(&mut unindexed, event);
    }
}

impl Drop for BulkFold<'_> {
    fn drop(&mut self) {
        let mut conversations: Vec<_> = self.conversations.drain().collect();
        conversations.sort_unstable_by_key(|(id, _)| *id);
        self.world.conversations = conversations.into_iter().collect();
        self.world.rebuild_indexes();
    }
}

/// The world's maps without its indexes, and the conversations a [`BulkFold`] holds.
struct Unindexed<'f> {
    world: &'f mut World,
    conversations: &'f mut HashMap<ConversationId, Box<Conversation>>,
}

impl Entities for Unindexed<'_> {
    const INDEXED: bool = false;
    fn agent_ref(&self, id: AgentId) -> Option<&Agent> {
        self.world.agent_ref(id)
    }
    fn queue_ref(&self, id: QueueId) -> Option<&Queue> {
        self.world.queue_ref(id)
    }
    fn workstream_ref(&self, id: WorkstreamId) -> Option<&Workstream> {
        self.world.workstream_ref(id)
    }
    fn agent_mut(&mut self, id: AgentId) -> Option<&mut Agent> {
        self.world.agent_mut(id)
    }
    fn conversation_and_timing(
        &mut self,
        id: ConversationId,
        timing: bool,
    ) -> Option<(&mut Conversation, Option<Timing>)> {
        debug_assert!(!timing, "an unindexed fold needs no timing");
        Some((self.conversations.get_mut(&id)?, None))
    }
    fn queue_mut(&mut self, id: QueueId) -> Option<&mut Queue> {
        self.world.queue_mut(id)
    }
    fn insert_agent(&mut self, agent: Agent) {
        self.world.insert_agent(agent);
    }
    fn insert_conversation(&mut self, conversation: Conversation) {
        self.conversations
            .insert(conversation.id, Box::new(conversation));
    }
    fn insert_queue(&mut self, queue: Queue) {
        self.world.insert_queue(queue);
    }
    /// No re-timing: the indexes are rebuilt at the end.
    fn insert_workstream(&mut self, workstream: Workstream) {
        self.world.workstreams.insert(workstream.id, workstream);
    }
    fn insert_custom_presence(&mut self, presence: CustomPresence) {
        self.world.insert_custom_presence(presence);
    }
    fn reindex_conversation(&mut self, _: ConversationId, _: Keys, _: Keys) {}
    fn reindex_agent(&mut self, _: AgentId, _: Option<Timestamp>, _: Option<Timestamp>) {}
}

/// Events that change neither a conversation's timers nor its linked case: `fold` spares them
/// the index keys. Most of a stream is these (messages, focus).
fn leaves_indexes(kind: &EventKind) -> bool {
    use EventKind as E;
    matches!(
        kind,
        E::UnreadMessage { .. }
            | E::SessionFocused { .. }
            | E::MediaStateChanged { .. }
            | E::CallHeld { .. }
            | E::CallResumed { .. }
            | E::TransferCompleted { .. }
    )
}

/// Folds one event into the entities it touches. Bookkeeping only: no rule is checked here.
///
/// The conversation an event is about is looked up once: its backlog and index keys are taken
/// before and after [`fold_conversation`] on the same reference, and only the entries whose
/// key changed are moved.
pub(crate) fn fold<S: Entities>(s: &mut S, event: &Event) {
    let at = event.at;
    let kind = &event.kind;
    let indexed = S::INDEXED && !leaves_indexes(kind);
    let grace = if S::INDEXED {
        grace_change(kind).map(|id| (id, s.agent_ref(id).and_then(timers::agent_due)))
    } else {
        None
    };
    let mut resumed = None;
    let mut moved = None;
    if let EventKind::ConversationCreated {
        conversation: id,
        workstream,
        ..
    } = kind
    {
        // A second creation of the same id replaces the first (fold checks nothing).
        let before = s
            .conversation_and_timing(*id, indexed)
            .map(|(c, timing)| keys(c, timing, indexed))
            .unwrap_or_default();
        if let Some(c) = new_conversation(at, kind) {
            let timing = if indexed {
                s.workstream_ref(*workstream).map(Timing::of)
            } else {
                None
            };
            moved = Some((*id, before, keys(&c, timing, indexed)));
            s.insert_conversation(c);
        }
    } else if let Some(id) = kind.conversation() {
        if let Some((c, timing)) = s.conversation_and_timing(id, indexed) {
            let before = keys(c, timing, indexed);
            resumed = fold_conversation(c, at, kind);
            moved = Some((id, before, keys(c, timing, indexed)));
        }
    }
    fold_entities(s, at, kind, resumed);
    if let Some(agent) = routing_change(kind) {
        // Skills change only when the agent is (re)provisioned: only then are they rehashed.
        let skills_changed = matches!(kind, EventKind::AgentProvisioned(_));
        refresh_roster(s, agent, skills_changed);
    }
    if let Some((id, before, after)) = moved.filter(|(_, before, after)| before != after) {
        if before.backlog != after.backlog {
            if let Some((queue, since)) = before.backlog {
                if let Some(q) = s.queue_mut(queue) {
                    q.backlog.remove(&(since, id));
                }
            }
            if let Some((queue, since)) = after.backlog {
                if let Some(q) = s.queue_mut(queue) {
                    q.backlog.insert((since, id));
                }
            }
        }
        if indexed {
            s.reindex_conversation(id, before, after);
        }
    }
    if let Some((id, before)) = grace {
        let after = s.agent_ref(id).and_then(timers::agent_due);
        s.reindex_agent(id, before, after);
    }
}

/// The agent whose disconnect grace this event can start or end.
fn grace_change(kind: &EventKind) -> Option<AgentId> {
    use EventKind as E;
    match kind {
        E::AgentProvisioned(profile) => Some(profile.id),
        E::AgentSignedIn { agent }
        | E::AgentSignedOut { agent }
        | E::AgentDisconnected { agent, .. }
        | E::AgentReconnected { agent }
        | E::AgentDisconnectGraceExpired { agent } => Some(*agent),
        _ => None,
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
                backlog: OrdSet::new(),
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
            c.push_session(Session {
                expires_at: Some(*expires_at),
                origin: Some(*origin),
                units: *units,
                ..Session::opened(session.number, *agent, SessionRole::Offer, at)
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
            c.push_session(Session {
                accepted_at: Some(at),
                tab: *tab != TabOutcome::LimitReached,
                ..Session::opened(session.number, *consultant, SessionRole::Consultant, at)
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
            c.push_session(Session {
                accepted_at: Some(at),
                units: *units,
                tab: *tab != TabOutcome::LimitReached,
                ..Session::opened(number, *agent, SessionRole::Primary, at)
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
