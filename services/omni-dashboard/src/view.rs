//! The dashboard's view of the contact center: the core's `World` folded from the committed
//! events with `omni_core::apply`, and what a supervisor's page is sent from it.
//!
//! Closed conversations are counted and then forgotten (`World::forget`): the page lists live
//! work only, and a dashboard that runs for months holds only what is live.
//!
//! The page is sent [`Update`]s: a snapshot (every row) when it connects, then deltas that
//! carry only the rows that changed since the previous flush, keyed by id, plus the aggregates
//! (status and presence counts, the queue table), which are small and recomputed at each flush
//! from the world. A fold compares the rows an event can change before and after it, so an
//! event that changes nothing the page shows (an unread message, a focus) sends nothing.
//!
//! Times are engine times (milliseconds since the epoch, from the events): "now" is the latest
//! event's time, and rows carry when their conversation entered its status, not how long ago,
//! because the engine's clock may run faster than the wall (`--time-scale`). The page ages them
//! against its own estimate of the engine's clock (see `page.html`).

use std::collections::{BTreeMap, BTreeSet};

use omni_core::{
    Agent, AgentId, BaseStatus, Channel, Conversation, ConversationId, ConversationStatus, Event,
    EventKind, QueueId, Timestamp, World, apply,
};
use serde::Serialize;
use uuid::Uuid;

/// A flush with more changed rows than this sends a snapshot instead of a delta: after a
/// catch-up or a burst, one full picture is cheaper for the page than thousands of upserts.
pub const SNAPSHOT_ABOVE_ROWS: usize = 5_000;

/// Statuses in the order the page shows them (the life of a conversation), with DOMAIN.md's
/// names; their codes are the wire codes.
const STATUSES: [(ConversationStatus, &str); 5] = [
    (ConversationStatus::Open, "Open"),
    (ConversationStatus::Active, "Active"),
    (ConversationStatus::Waiting, "Waiting"),
    (ConversationStatus::WrapUp, "Wrap-up"),
    (ConversationStatus::Closed, "Closed"),
];

const PRESENCES: [(BaseStatus, &str); 5] = [
    (BaseStatus::Available, "Available"),
    (BaseStatus::Busy, "Busy"),
    (BaseStatus::BusyDnd, "Busy - DND"),
    (BaseStatus::Away, "Away"),
    (BaseStatus::Offline, "Offline"),
];

fn base_name(base: BaseStatus) -> &'static str {
    PRESENCES
        .iter()
        .find(|(b, _)| *b == base)
        .map_or("Unknown", |(_, name)| name)
}

/// The channel's label as Dynamics 365 shows it.
pub fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Teams => "Teams",
        Channel::WhatsApp => "WhatsApp",
        Channel::Line => "LINE",
        Channel::WeChat => "WeChat",
        Channel::Facebook => "Facebook",
        Channel::Sms => "SMS",
        Channel::Twitter => "Twitter",
        Channel::Custom => "Custom",
        Channel::LiveChat => "Live chat",
        Channel::Voice => "Voice",
        Channel::Video => "Video",
        Channel::CoBrowse => "Co-browse",
        Channel::ScreenSharing => "Screen sharing",
        Channel::VoiceCall => "Voice call",
        Channel::AppleMessages => "Apple Messages",
        Channel::GoogleBusinessMessages => "Google Business Messages",
    }
}

/// One live conversation as the page lists it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ConversationRow {
    pub id: Uuid,
    pub channel: &'static str,
    pub queue: Uuid,
    /// The status's wire code (1 Open, 2 Active, 3 Waiting, 5 Wrap-up).
    pub status: i32,
    /// The primary agent, or the agent holding the open offer (`offered`).
    pub agent: Option<Uuid>,
    pub offered: bool,
    /// When the conversation entered its status (engine time, ms): for an Open one, how long
    /// the customer has been waiting in this queue.
    pub since: i64,
    pub created: i64,
}

/// One agent as the page lists it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct AgentRow {
    pub id: Uuid,
    pub name: String,
    /// The presence's name: an out-of-the-box one or the administrator's custom one.
    pub presence: String,
    pub presence_id: Uuid,
    /// The base status's wire code (192360000 Available … 192360004 Offline).
    pub base: i32,
    pub signed_in: bool,
    /// Signed in and not disconnected.
    pub connected: bool,
    /// Capacity units held by conversations.
    pub used: u32,
    pub capacity: u32,
    /// Offers, primary sessions and consults open now.
    pub open_sessions: usize,
}

/// A count under a coded name.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Count {
    pub code: i32,
    pub name: &'static str,
    pub count: u64,
}

/// One queue's live figures.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct QueueRow {
    pub id: Uuid,
    pub name: String,
    pub channel: &'static str,
    /// Live conversations of this queue by status: Open (waiting for an agent), Active,
    /// Waiting (for the customer), Wrap-up.
    pub open: u64,
    pub active: u64,
    pub waiting: u64,
    pub wrap_up: u64,
    /// When the longest-waiting Open conversation entered Open (engine time, ms).
    pub oldest_open_since: Option<i64>,
    /// The median of when the Open conversations entered Open: the page shows now minus it
    /// as the median wait.
    pub median_open_since: Option<i64>,
    pub members: usize,
    pub members_signed_in: usize,
    /// Members connected with an Available base presence.
    pub members_available: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateKind {
    /// Every row: the page replaces what it has.
    Snapshot,
    /// Only the rows that changed: the page upserts them by id and drops the removed ones.
    Delta,
}

/// What the page is sent: a snapshot or a delta, always with the aggregates.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Update {
    pub kind: UpdateKind,
    /// The flush this update belongs to. A snapshot taken between flushes carries the last
    /// flush's number: the next delta may repeat rows it holds, never older ones.
    pub seq: u64,
    /// The last log position folded.
    pub position: u64,
    /// The latest event's time (engine time, ms), 0 before any event.
    pub now: i64,
    /// Conversations by status in life order; Closed counts every conversation closed since
    /// the log began, the others the live ones.
    pub statuses: Vec<Count>,
    /// Signed-in agents by base presence.
    pub presences: Vec<Count>,
    pub agents_total: usize,
    pub agents_signed_in: usize,
    /// Every queue, by name.
    pub queues: Vec<QueueRow>,
    /// Live conversations (all of them in a snapshot, the changed ones in a delta).
    pub conversations: Vec<ConversationRow>,
    /// Conversations that closed since the previous flush (deltas only).
    pub removed_conversations: Vec<Uuid>,
    /// Agents (all of them in a snapshot, the changed ones in a delta).
    pub agents: Vec<AgentRow>,
    /// Events that could not be read (a newer schema) and were passed over.
    pub skipped_events: u64,
}

/// The world as the dashboard sees it, and what changed since the last flush.
#[derive(Debug, Default)]
pub struct View {
    world: World,
    position: u64,
    now: Timestamp,
    closed: u64,
    skipped: u64,
    seq: u64,
    changed_conversations: BTreeSet<ConversationId>,
    changed_agents: BTreeSet<AgentId>,
}

impl View {
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Folds the event at `position`, noting the rows it changed.
    pub fn fold(&mut self, position: u64, event: &Event) {
        let conversation = event.kind.conversation();
        let before = conversation.and_then(|id| self.conversation_row(id));
        // The agents an event can change: the one it names, and the conversation's primary
        // before and after (whose sessions and capacity follow the conversation's).
        let mut agents: Vec<AgentId> = event.kind.agent().into_iter().collect();
        agents.extend(conversation.and_then(|id| self.primary_of(id)));
        let agents_before: Vec<(AgentId, Option<AgentRow>)> =
            agents.iter().map(|&id| (id, self.agent_row(id))).collect();

        apply(&mut self.world, event);
        self.now = self.now.max(event.at);
        self.position = position;

        if let Some(id) = conversation {
            let primary_after = self.primary_of(id);
            if self
                .world
                .conversations
                .get(&id)
                .is_some_and(|c| c.status == ConversationStatus::Closed)
            {
                self.closed += 1;
                self.world.forget(id);
            }
            if self.conversation_row(id) != before {
                self.changed_conversations.insert(id);
            }
            if let Some(agent) = primary_after.filter(|a| !agents.contains(a)) {
                self.changed_agents.insert(agent);
            }
        }
        for (id, row) in agents_before {
            if self.agent_row(id) != row {
                self.changed_agents.insert(id);
            }
        }
        if let EventKind::CustomPresenceDefined(presence) = &event.kind {
            // A renamed presence renames it on every agent who has it.
            let renamed = self
                .world
                .agents
                .values()
                .filter(|a| a.presence.id == presence.id)
                .map(|a| a.profile.id);
            self.changed_agents.extend(renamed);
        }
    }

    /// Passes over an event this version cannot read, as a replay does.
    pub fn skip(&mut self, position: u64) {
        self.skipped += 1;
        self.position = position;
    }

    /// What changed since the last flush, as a delta (or a snapshot when more than
    /// [`SNAPSHOT_ABOVE_ROWS`] rows changed); `None` when nothing did.
    pub fn flush(&mut self) -> Option<Update> {
        if self.changed_conversations.is_empty() && self.changed_agents.is_empty() {
            return None;
        }
        self.seq += 1;
        let changed_conversations = std::mem::take(&mut self.changed_conversations);
        let changed_agents = std::mem::take(&mut self.changed_agents);
        if changed_conversations.len() + changed_agents.len() > SNAPSHOT_ABOVE_ROWS {
            return Some(self.snapshot());
        }
        let mut update = self.aggregates(UpdateKind::Delta);
        for id in changed_conversations {
            match self.conversation_row(id) {
                Some(row) => update.conversations.push(row),
                None => update.removed_conversations.push(id.0),
            }
        }
        update.agents = changed_agents
            .into_iter()
            .filter_map(|id| self.agent_row(id))
            .collect();
        Some(update)
    }

    /// Everything, as of the last event folded.
    pub fn snapshot(&self) -> Update {
        let mut update = self.aggregates(UpdateKind::Snapshot);
        update.conversations = self
            .world
            .conversations
            .values()
            .map(|c| conversation_row(c))
            .collect();
        update.agents = self
            .world
            .agents
            .values()
            .map(|a| self.agent_row_of(a))
            .collect();
        update
    }

    fn primary_of(&self, id: ConversationId) -> Option<AgentId> {
        self.world.conversations.get(&id).and_then(|c| c.primary)
    }

    fn conversation_row(&self, id: ConversationId) -> Option<ConversationRow> {
        self.world.conversation(id).map(conversation_row)
    }

    fn agent_row(&self, id: AgentId) -> Option<AgentRow> {
        self.world.agents.get(&id).map(|a| self.agent_row_of(a))
    }

    fn agent_row_of(&self, a: &Agent) -> AgentRow {
        let presence = match a.presence.id.out_of_the_box_base() {
            Some(base) => base_name(base).to_owned(),
            None => self
                .world
                .custom_presences
                .get(&a.presence.id)
                .map_or_else(|| base_name(a.presence.base).to_owned(), |p| p.name.clone()),
        };
        AgentRow {
            id: a.profile.id.0,
            name: a.profile.name.clone(),
            presence,
            presence_id: a.presence.id.0,
            base: a.presence.base.code(),
            signed_in: a.signed_in,
            connected: a.is_connected(),
            used: a.used_units,
            capacity: a.profile.capacity_units,
            open_sessions: a.open_sessions.len(),
        }
    }

    /// The counts and the queue table, computed from the world: one pass over the live
    /// conversations and the agents, O(live + agents + memberships) per flush — at most four
    /// a second, whatever the event rate.
    fn aggregates(&self, kind: UpdateKind) -> Update {
        let mut by_status: BTreeMap<ConversationStatus, u64> = BTreeMap::new();
        let mut by_queue: BTreeMap<QueueId, QueueFigures> = BTreeMap::new();
        for c in self.world.conversations.values() {
            *by_status.entry(c.status).or_default() += 1;
            let figures = by_queue.entry(c.queue).or_default();
            match c.status {
                ConversationStatus::Open => figures.open_since.push(c.status_since.0),
                ConversationStatus::Active => figures.active += 1,
                ConversationStatus::Waiting => figures.waiting += 1,
                ConversationStatus::WrapUp => figures.wrap_up += 1,
                ConversationStatus::Closed => {}
            }
        }
        let statuses = STATUSES
            .iter()
            .map(|&(status, name)| Count {
                code: status.code(),
                name,
                count: if status == ConversationStatus::Closed {
                    self.closed
                } else {
                    by_status.get(&status).copied().unwrap_or(0)
                },
            })
            .collect();
        let signed_in: Vec<&Agent> = self.world.agents.values().filter(|a| a.signed_in).collect();
        let presences = PRESENCES
            .iter()
            .map(|&(base, name)| Count {
                code: base.code(),
                name,
                count: signed_in.iter().filter(|a| a.presence.base == base).count() as u64,
            })
            .collect();
        let mut queues: Vec<QueueRow> = self
            .world
            .queues
            .values()
            .map(|q| {
                let mut figures = by_queue.remove(&q.config.id).unwrap_or_default();
                let members: Vec<&Agent> = q
                    .members()
                    .filter_map(|id| self.world.agents.get(&id))
                    .collect();
                QueueRow {
                    id: q.config.id.0,
                    name: q.config.name.clone(),
                    channel: self
                        .world
                        .workstreams
                        .get(&q.config.workstream)
                        .map_or("", |ws| channel_name(ws.channel)),
                    open: figures.open_since.len() as u64,
                    active: figures.active,
                    waiting: figures.waiting,
                    wrap_up: figures.wrap_up,
                    oldest_open_since: figures.open_since.iter().copied().min(),
                    median_open_since: median(&mut figures.open_since),
                    members: members.len(),
                    members_signed_in: members.iter().filter(|a| a.signed_in).count(),
                    members_available: members
                        .iter()
                        .filter(|a| a.is_connected() && a.presence.base == BaseStatus::Available)
                        .count(),
                }
            })
            .collect();
        queues.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Update {
            kind,
            seq: self.seq,
            position: self.position,
            now: self.now.0,
            statuses,
            presences,
            agents_total: self.world.agents.len(),
            agents_signed_in: signed_in.len(),
            queues,
            conversations: Vec::new(),
            removed_conversations: Vec::new(),
            agents: Vec::new(),
            skipped_events: self.skipped,
        }
    }
}

/// A queue's figures while they are being counted.
#[derive(Default)]
struct QueueFigures {
    open_since: Vec<i64>,
    active: u64,
    waiting: u64,
    wrap_up: u64,
}

/// The median (the upper one of an even count), in linear time.
fn median(values: &mut [i64]) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let middle = values.len() / 2;
    Some(*values.select_nth_unstable(middle).1)
}

fn conversation_row(c: &Conversation) -> ConversationRow {
    let offered = c.pending_offer.and_then(|n| c.session(n)).map(|s| s.agent);
    ConversationRow {
        id: c.id.0,
        channel: channel_name(c.channel),
        queue: c.queue.0,
        status: c.status.code(),
        agent: c.primary.or(offered).map(|a| a.0),
        offered: c.primary.is_none() && offered.is_some(),
        since: c.status_since.0,
        created: c.created_at.0,
    }
}

#[cfg(test)]
mod tests;
