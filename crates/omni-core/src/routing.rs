//! The routing choice: which agent gets an Open conversation. A pure function of the state.

use std::cmp::Reverse;

use crate::config::{CustomPresence, Workstream};
use crate::model::{AgentId, AssignmentMethod, ConversationId, PresenceId, QueueId, WorkstreamId};
use crate::state::{Agent, Conversation, Queue, World};

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
        self.conversations.get(&id)
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
    agent.is_connected()
        && ws.allowed_presences.contains(&agent.presence.base)
        && agent.free_units() >= ws.capacity_units
        && conversation
            .skills
            .iter()
            .all(|skill| agent.profile.skills.contains(skill))
        && !agent
            .open_sessions
            .iter()
            .any(|s| s.conversation == conversation.id)
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
    let mut best: Option<(RankKey, AgentId)> = None;
    for &id in &queue.members {
        let Some(agent) = view.agent(id) else {
            continue;
        };
        if !is_eligible(agent, conversation, ws) {
            continue;
        }
        let key = rank(queue, agent, conversation.declined_by.contains(&id));
        if best.as_ref().is_none_or(|(b, _)| key < *b) {
            best = Some((key, id));
        }
    }
    best.map(|(_, id)| id)
}

/// Smaller ranks first. Ties always end on the agent id, so the choice is deterministic.
type RankKey = (bool, Reverse<u32>, i64, AgentId);

fn rank(queue: &Queue, agent: &Agent, declined: bool) -> RankKey {
    let id = agent.profile.id;
    // Never assigned in this queue sorts before every assignment time.
    let last_assigned = queue.last_assigned.get(&id).map_or(i64::MIN, |t| t.0);
    match queue.config.method {
        AssignmentMethod::HighestCapacity => {
            (declined, Reverse(agent.free_units()), last_assigned, id)
        }
        AssignmentMethod::AdvancedRoundRobin => (declined, Reverse(0), last_assigned, id),
        AssignmentMethod::LeastActive => {
            let released = agent.last_capacity_released_at.map_or(i64::MIN, |t| t.0);
            (declined, Reverse(0), released, id)
        }
    }
}
