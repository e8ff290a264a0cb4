//! The read model: the world folded from the log with `omni_core::apply`, plus the secondary
//! indexes the list queries need, so that no filter scans every conversation or agent.
//!
//! Everything is folded and kept, closed conversations too: the world must equal a replay of
//! the log up to the same position, which is what `omni replay --verify` checks on the
//! snapshots this service stores.
//!
//! A list walks, in id order from the page token, the smallest candidate set among its
//! filters (every conversation, those of one status, one queue, one channel, or the agent's
//! open sessions; every agent, those of one base status, the signed-in ones, or one queue's
//! roster) and checks the other filters on each candidate, until the page is full.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{self, Excluded, Unbounded};

use omni_core::{
    Agent, AgentId, BaseStatus, Channel, Conversation, ConversationId, ConversationStatus, Event,
    QueueId, SessionNo, SessionRef, World, apply,
};
use omni_proto::{AgentsQuery, ConversationsQuery};

/// The world as of `position`, with its indexes.
#[derive(Debug, Default)]
pub struct ReadModel {
    world: World,
    /// The last log position folded (0 for none).
    position: u64,
    /// Events that could not be read (from a newer schema, or damaged) and were skipped, as a
    /// replay skips them.
    skipped: u64,
    by_status: BTreeMap<ConversationStatus, BTreeSet<ConversationId>>,
    by_queue: BTreeMap<QueueId, BTreeSet<ConversationId>>,
    by_channel: BTreeMap<Channel, BTreeSet<ConversationId>>,
    by_base: BTreeMap<BaseStatus, BTreeSet<AgentId>>,
    signed_in: BTreeSet<AgentId>,
}

/// What the conversation indexes hold about one conversation.
type ConversationKey = (ConversationStatus, QueueId, Channel);
/// What the agent indexes hold about one agent.
type AgentKey = (BaseStatus, bool);

fn conversation_key(c: &Conversation) -> ConversationKey {
    (c.status, c.queue, c.channel)
}

fn agent_key(a: &Agent) -> AgentKey {
    (a.presence.base, a.signed_in)
}

static NO_CONVERSATIONS: BTreeSet<ConversationId> = BTreeSet::new();
static NO_AGENTS: BTreeSet<AgentId> = BTreeSet::new();

/// One page of a list: the items, and the last one's id when more follow.
#[derive(Debug)]
pub struct Page<'a, T, Id> {
    pub items: Vec<&'a T>,
    pub next: Option<Id>,
}

/// Cuts `matches` (at most `size + 1` long) to a page.
fn page<'a, T, Id>(mut items: Vec<&'a T>, size: usize, id: impl Fn(&T) -> Id) -> Page<'a, T, Id> {
    let next = if items.len() > size {
        items.truncate(size);
        items.last().map(|last| id(last))
    } else {
        None
    };
    Page { items, next }
}

fn after<K: Copy>(token: Option<K>) -> (Bound<K>, Bound<K>) {
    (token.map_or(Unbounded, Excluded), Unbounded)
}

impl ReadModel {
    /// The read model of `world`, which reflects the log up to `position`.
    pub fn new(world: World, position: u64) -> ReadModel {
        let mut model = ReadModel {
            world,
            position,
            ..ReadModel::default()
        };
        let conversations: Vec<(ConversationId, ConversationKey)> = model
            .world
            .conversations
            .values()
            .map(|c| (c.id, conversation_key(c)))
            .collect();
        for (id, key) in conversations {
            model.index_conversation(id, None, Some(key));
        }
        let agents: Vec<(AgentId, AgentKey)> = model
            .world
            .agents
            .values()
            .map(|a| (a.profile.id, agent_key(a)))
            .collect();
        for (id, key) in agents {
            model.index_agent(id, None, Some(key));
        }
        model
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Folds the event at `position` and keeps the indexes in step.
    pub fn fold(&mut self, position: u64, event: &Event) {
        let conversation = event.kind.conversation();
        let agent = event.kind.agent();
        let conversation_before = conversation
            .and_then(|id| self.world.conversation(id))
            .map(conversation_key);
        let agent_before = agent
            .and_then(|id| self.world.agents.get(&id))
            .map(agent_key);
        apply(&mut self.world, event);
        if let Some(id) = conversation {
            let after = self.world.conversation(id).map(conversation_key);
            if after != conversation_before {
                self.index_conversation(id, conversation_before, after);
            }
        }
        if let Some(id) = agent {
            let after = self.world.agents.get(&id).map(agent_key);
            if after != agent_before {
                self.index_agent(id, agent_before, after);
            }
        }
        self.position = position;
    }

    /// Passes over an event that cannot be read, as a replay does.
    pub fn skip(&mut self, position: u64) {
        self.skipped += 1;
        self.position = position;
    }

    fn index_conversation(
        &mut self,
        id: ConversationId,
        before: Option<ConversationKey>,
        after: Option<ConversationKey>,
    ) {
        fn remove<K: Ord>(
            index: &mut BTreeMap<K, BTreeSet<ConversationId>>,
            key: K,
            id: ConversationId,
        ) {
            if let Some(set) = index.get_mut(&key) {
                set.remove(&id);
                if set.is_empty() {
                    index.remove(&key);
                }
            }
        }
        if let Some((status, queue, channel)) = before {
            remove(&mut self.by_status, status, id);
            remove(&mut self.by_queue, queue, id);
            remove(&mut self.by_channel, channel, id);
        }
        if let Some((status, queue, channel)) = after {
            self.by_status.entry(status).or_default().insert(id);
            self.by_queue.entry(queue).or_default().insert(id);
            self.by_channel.entry(channel).or_default().insert(id);
        }
    }

    fn index_agent(&mut self, id: AgentId, before: Option<AgentKey>, after: Option<AgentKey>) {
        if let Some((base, _)) = before {
            if let Some(set) = self.by_base.get_mut(&base) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_base.remove(&base);
                }
            }
            self.signed_in.remove(&id);
        }
        if let Some((base, signed_in)) = after {
            self.by_base.entry(base).or_default().insert(id);
            if signed_in {
                self.signed_in.insert(id);
            }
        }
    }

    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.world.conversation(id)
    }

    pub fn agent(&self, id: AgentId) -> Option<&Agent> {
        self.world.agents.get(&id)
    }

    /// One page of the conversations matching every filter of `q`, by id.
    pub fn conversations(&self, q: &ConversationsQuery) -> Page<'_, Conversation, ConversationId> {
        let wanted = q.page_size.saturating_add(1);
        let matching = |c: &&Conversation| {
            q.status.is_none_or(|s| c.status == s)
                && q.queue.is_none_or(|id| c.queue == id)
                && q.channel.is_none_or(|ch| c.channel == ch)
                && q.agent.is_none_or(|a| c.open_session_of(a).is_some())
        };
        // The smallest candidate set among the filters given.
        let mut set: Option<&BTreeSet<ConversationId>> = None;
        let mut smallest = self.world.conversations.len();
        let indexed = [
            q.status
                .map(|s| self.by_status.get(&s).unwrap_or(&NO_CONVERSATIONS)),
            q.queue
                .map(|id| self.by_queue.get(&id).unwrap_or(&NO_CONVERSATIONS)),
            q.channel
                .map(|ch| self.by_channel.get(&ch).unwrap_or(&NO_CONVERSATIONS)),
        ];
        for candidate in indexed.into_iter().flatten() {
            if candidate.len() < smallest {
                smallest = candidate.len();
                set = Some(candidate);
            }
        }
        // `Some(None)`: the agent filter names an agent nobody provisioned, so nothing matches.
        let sessions = q
            .agent
            .map(|a| self.world.agents.get(&a).map(|agent| &agent.open_sessions));
        let items: Vec<&Conversation> = match (sessions, set) {
            (Some(None), _) => Vec::new(),
            (Some(Some(sessions)), _) if sessions.len() <= smallest => {
                // Sessions are ordered by conversation first: one conversation's are neighbours.
                let from = q.after.map_or(Unbounded, |id| {
                    Excluded(SessionRef {
                        conversation: id,
                        number: SessionNo(u32::MAX),
                    })
                });
                let mut last = None;
                sessions
                    .range((from, Unbounded))
                    .map(|s| s.conversation)
                    .filter(|&id| last.replace(id) != Some(id))
                    .filter_map(|id| self.world.conversation(id))
                    .filter(matching)
                    .take(wanted)
                    .collect()
            }
            (_, Some(set)) => set
                .range(after(q.after))
                .filter_map(|&id| self.world.conversation(id))
                .filter(matching)
                .take(wanted)
                .collect(),
            (_, None) => self
                .world
                .conversations
                .range(after(q.after))
                .map(|(_, c)| &**c)
                .filter(matching)
                .take(wanted)
                .collect(),
        };
        page(items, q.page_size, |c| c.id)
    }

    /// One page of the agents matching every filter of `q`, by id.
    pub fn agents(&self, q: &AgentsQuery) -> Page<'_, Agent, AgentId> {
        let wanted = q.page_size.saturating_add(1);
        let matching = |a: &&Agent| {
            q.base.is_none_or(|b| a.presence.base == b)
                && (!q.signed_in_only || a.signed_in)
                && q.queue.is_none_or(|id| a.queues.contains(&id))
        };
        let mut set: Option<&BTreeSet<AgentId>> = None;
        let mut smallest = self.world.agents.len();
        let indexed = [
            q.base.map(|b| self.by_base.get(&b).unwrap_or(&NO_AGENTS)),
            q.signed_in_only.then_some(&self.signed_in),
        ];
        for candidate in indexed.into_iter().flatten() {
            if candidate.len() < smallest {
                smallest = candidate.len();
                set = Some(candidate);
            }
        }
        let roster = q.queue.map(|id| {
            self.world
                .queues
                .get(&id)
                .map_or(&[][..], |q| &q.roster[..])
        });
        let items: Vec<&Agent> = match (roster, set) {
            (Some(roster), _) if roster.len() <= smallest => {
                // The roster is sorted by agent id.
                let start = q
                    .after
                    .map_or(0, |id| roster.partition_point(|slot| slot.agent <= id));
                roster[start..]
                    .iter()
                    .filter_map(|slot| self.world.agents.get(&slot.agent))
                    .filter(matching)
                    .take(wanted)
                    .collect()
            }
            (_, Some(set)) => set
                .range(after(q.after))
                .filter_map(|id| self.world.agents.get(id))
                .filter(matching)
                .take(wanted)
                .collect(),
            (_, None) => self
                .world
                .agents
                .range(after(q.after))
                .map(|(_, a)| a)
                .filter(matching)
                .take(wanted)
                .collect(),
        };
        page(items, q.page_size, |a| a.profile.id)
    }

    /// The indexes rebuilt from the world alone, for tests to compare with the folded ones.
    #[cfg(test)]
    pub fn indexes_match_a_rebuild(&self) -> bool {
        let rebuilt = ReadModel::new(self.world.clone(), self.position);
        self.by_status == rebuilt.by_status
            && self.by_queue == rebuilt.by_queue
            && self.by_channel == rebuilt.by_channel
            && self.by_base == rebuilt.by_base
            && self.signed_in == rebuilt.signed_in
    }
}

#[cfg(test)]
mod tests;
