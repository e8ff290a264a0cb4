//! The subject scheme: the public contract documented in `docs/subjects.md`. Every subject
//! the engine publishes or listens on is built here and nowhere else.
//!
//! Ids in subjects are hyphenated lower-case UUIDs; `_` stands for "none" in a position that
//! has no id, so every subject of a family has the same number of tokens and wildcards work.

use omni_core::{AgentId, ConversationId, QueueId};
use uuid::Uuid;

/// Commands: `omni.intake.<command>` (request-reply, `CommandRequest` → `CommandReply`).
pub const INTAKE_PREFIX: &str = "omni.intake";
/// What the conversation service listens on.
pub const INTAKE_ALL: &str = "omni.intake.*";

/// Committed events: `omni.events.<queue>.<conversation>.<agent>.<EventName>`.
pub const EVENTS_PREFIX: &str = "omni.events";
/// Every committed event.
pub const EVENTS_ALL: &str = "omni.events.>";

/// Desktop notifications: `omni.desktop.<agent>.<notification>`.
pub const DESKTOP_PREFIX: &str = "omni.desktop";

/// Queries answered by the projector (request-reply, `QueryReply`).
pub const QUERY_CONVERSATION: &str = "omni.query.conversation";
pub const QUERY_CONVERSATIONS: &str = "omni.query.conversations";
pub const QUERY_AGENT: &str = "omni.query.agent";
pub const QUERY_AGENTS: &str = "omni.query.agents";
pub const QUERY_QUEUES: &str = "omni.query.queues";
/// Every query subject: what the projector listens on.
pub const QUERY_ALL: &str = "omni.query.*";

/// Presence, answered by the presence service (`CCaaS_GetPresence`,
/// `CCaaS_ModifyAgentPresence`).
pub const PRESENCE_GET: &str = "omni.presence.get";
pub const PRESENCE_MODIFY: &str = "omni.presence.modify";

/// The log over the bus (`ReadLog` → `LogBatch`), answered by the conversation service.
pub const LOG_READ: &str = "omni.log.read";

/// Dead letters: `omni.dead.<service>`, the original bytes with the reason in headers.
pub const DEAD_PREFIX: &str = "omni.dead";
pub const DEAD_ALL: &str = "omni.dead.>";

/// The JetStream stream that keeps dead letters (when the server has JetStream).
pub const DEAD_LETTER_STREAM: &str = "OMNI_DEAD_LETTERS";

/// The subject a command of this name is sent on.
pub fn intake(command: &str) -> String {
    format!("{INTAKE_PREFIX}.{command}")
}

/// The command name an intake subject carries, if it is one.
pub fn intake_command(subject: &str) -> Option<&str> {
    subject
        .strip_prefix(INTAKE_PREFIX)?
        .strip_prefix('.')
        .filter(|name| !name.is_empty() && !name.contains('.'))
}

fn token(id: Option<Uuid>) -> String {
    id.map_or_else(|| "_".to_owned(), |id| id.hyphenated().to_string())
}

/// Where a committed event is published: one subject per event, carrying every dimension a
/// consumer may filter on.
pub fn event(
    queue: Option<QueueId>,
    conversation: Option<ConversationId>,
    agent: Option<AgentId>,
    kind: &str,
) -> String {
    format!(
        "{EVENTS_PREFIX}.{}.{}.{}.{kind}",
        token(queue.map(|q| q.0)),
        token(conversation.map(|c| c.0)),
        token(agent.map(|a| a.0)),
    )
}

/// Every committed event of one conversation.
pub fn events_of_conversation(conversation: ConversationId) -> String {
    format!("{EVENTS_PREFIX}.*.{}.>", conversation.0.hyphenated())
}

/// Every committed event an agent is the subject of.
pub fn events_of_agent(agent: AgentId) -> String {
    format!("{EVENTS_PREFIX}.*.*.{}.*", agent.0.hyphenated())
}

/// Every committed event of one queue (its configuration and its conversations).
pub fn events_of_queue(queue: QueueId) -> String {
    format!("{EVENTS_PREFIX}.{}.>", queue.0.hyphenated())
}

/// One desktop notification of an agent.
pub fn desktop(agent: AgentId, notification: &str) -> String {
    format!("{DESKTOP_PREFIX}.{}.{notification}", agent.0.hyphenated())
}

/// Every desktop notification of an agent: what an agent desktop subscribes to.
pub fn desktop_of(agent: AgentId) -> String {
    format!("{DESKTOP_PREFIX}.{}.*", agent.0.hyphenated())
}

/// Every desktop notification of every agent.
pub const DESKTOP_ALL: &str = "omni.desktop.*.*";

/// The agent a desktop subject is addressed to.
pub fn desktop_agent(subject: &str) -> Option<AgentId> {
    let rest = subject.strip_prefix(DESKTOP_PREFIX)?.strip_prefix('.')?;
    let (agent, _) = rest.split_once('.')?;
    Uuid::try_parse(agent).ok().map(AgentId)
}

/// The dead-letter subject of a service.
pub fn dead_letter(service: &str) -> String {
    format!("{DEAD_PREFIX}.{service}")
}
