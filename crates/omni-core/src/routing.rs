//! The routing choice: which agent gets an Open conversation. A pure function of the state.

use std::cmp::Reverse;

use crate::config::{CustomPresence, Workstream};
use crate::model::{AgentId, AssignmentMethod, ConversationId, PresenceId, QueueId, WorkstreamId};
use crate::state::{Agent, Conversation, Queue, RosterSlot, World, skill_filter};

/// Read access shared by the [`World`] and `decide`'s overlay.
pub(crate) trait View {
    fn agent(&self, id: AgentId) -> Option<&Agent>;
    fn conversation(&self, id: ConversationId) -> Option<&Conversation>;
    fn queue(&self, id: QueueId) -> Option<&Queue>;
    fn workstream(&self, id: WorkstreamId) -> Option<&Workstream>;
    fn custom_presence(&self, id: PresenceId) -> Option<&CustomPresence>;
}

impl View for World {
    fn agent(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(&id)
    }
    fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations.get(&id).map(Box::as_ref)
    }
    fn queue(&self, id: QueueId) -> Option<&Queue> {
        self.queues.get(&id)
    }
    fn workstream(&self, id: WorkstreamId) -> Option<&Workstream> {
        self.workstreams.get(&id)
    }
    fn custom_presence(&self, id: PresenceId) -> Option<&CustomPresence> {
        self.custom_presences.get(&id)
    }
}

/// Whether `agent` may be offered `conversation` of workstream `ws`: signed in and connected,
/// in an allowed presence, with free capacity for one more work item, holding every required
/// skill, and not already in the conversation. Queue membership is the caller's part.
pub fn is_eligible(agent: &Agent, conversation: &Conversation, ws: &Workstream) -> bool {
    may_take(&RosterSlot::of(agent), conversation, ws) && has_skills(agent, conversation)
}

/// Everything but skills, from what a queue's roster holds.
fn may_take(slot: &RosterSlot, conversation: &Conversation, ws: &Workstream) -> bool {
    has_room(slot, ws) && conversation.open_session_of(slot.agent).is_none()
}

/// Connected, in an allowed presence, with the units of one work item free.
fn has_room(slot: &RosterSlot, ws: &Workstream) -> bool {
    slot.connected
        && ws.allowed_presences.contains(&slot.base)
        && slot.free_units >= ws.capacity_units
}

/// Whether any member of `queue` could take one more of its work items now, whatever the
/// conversation: connected, in an allowed presence, with the units free. When nobody can, an
/// assignment cycle of the queue has nothing to offer and need not look at its backlog.
pub(crate) fn anyone_has_room(view: &impl View, queue: QueueId) -> bool {
    let Some(q) = view.queue(queue) else {
        return false;
    };
    let Some(ws) = view.workstream(q.config.workstream) else {
        return false;
    };
    q.roster.iter().any(|slot| has_room(slot, ws))
}

fn has_skills(agent: &Agent, conversation: &Conversation) -> bool {
    conversation
        .skills
        .iter()
        .all(|skill| agent.profile.skills.contains(skill))
}

/// The agent the conversation's queue would offer it to now, if any.
pub fn choose_agent(world: &World, conversation: ConversationId) -> Option<AgentId> {
    let conversation = world.conversations.get(&conversation)?;
    choose(world, conversation)
}

/// Picks among eligible members of the conversation's queue by the queue's method.
///
/// Agents who already rejected or let this conversation's offer time out come last: they are
/// offered it again only when nobody else can take it, so a conversation is never stuck while
/// someone else could help, and never dropped while its decliners are the only ones around.
pub(crate) fn choose(view: &impl View, conversation: &Conversation) -> Option<AgentId> {
    let queue = view.queue(conversation.queue)?;
    let ws = view.workstream(queue.config.workstream)?;
    let needed = skill_filter(&conversation.skills);
    let mut best: Option<RankKey> = None;
    for slot in &queue.roster {
        if !may_take(slot, conversation, ws) || slot.skill_filter & needed != needed {
            continue;
        }
        // The filter only rules agents out; the skills themselves live on the agent.
        if !conversation.skills.is_empty()
            && !view
                .agent(slot.agent)
                .is_some_and(|agent| has_skills(agent, conversation))
        {
            continue;
        }
        let key = rank(
            queue.config.method,
            slot,
            conversation.declined_by.contains(&slot.agent),
        );
        if best.as_ref().is_none_or(|b| key < *b) {
            best = Some(key);
        }
    }
    best.map(|(.., id)| id)
}

/// Smaller ranks first. Ties always end on the agent id, so the choice is deterministic.
type RankKey = (bool, Reverse<u32>, i64, AgentId);

fn rank(method: AssignmentMethod, slot: &RosterSlot, declined: bool) -> RankKey {
    // Never assigned in this queue (or never released) sorts before every time.
    let last_assigned = slot.last_assigned.map_or(i64::MIN, |t| t.0);
    match method {
        AssignmentMethod::HighestCapacity => (
            declined,
            Reverse(slot.free_units),
            last_assigned,
            slot.agent,
        ),
        AssignmentMethod::AdvancedRoundRobin => (declined, Reverse(0), last_assigned, slot.agent),
        AssignmentMethod::LeastActive => {
            let released = slot.last_capacity_released_at.map_or(i64::MIN, |t| t.0);
            (declined, Reverse(0), released, slot.agent)
        }
    }
}
