//! Answering `omni.query.*` from the read model.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use omni_bus::{Metrics, subjects};
use omni_proto::{
    AgentQuery, AgentsQuery, ConversationQuery, ConversationsQuery, QueryRequest, QueuesQuery, pb,
    query_error, query_reply,
};
use prost::Message;
use tokio::sync::watch;

use crate::{ReadModel, SERVICE};

/// What every request task shares.
pub(crate) struct Shared {
    pub model: RwLock<ReadModel>,
    /// The last position folded, for `min_position` waits.
    pub folded: watch::Receiver<u64>,
    pub client: async_nats::Client,
    pub metrics: Arc<Metrics>,
    pub max_wait: Duration,
}

impl Shared {
    /// The bytes a page of views may take: the largest message the server accepts, less room
    /// for the rest of the reply.
    fn page_budget(&self) -> usize {
        const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
        const REST_OF_REPLY: usize = 4 * 1024;
        match self.client.server_info().max_payload {
            0 => DEFAULT_MAX_PAYLOAD,
            max => max,
        }
        .saturating_sub(REST_OF_REPLY)
    }
}

/// Takes requests until the subscription ends; each is answered by its own task, so a query
/// waiting for its `min_position` holds up no other.
pub(crate) async fn serve(mut requests: async_nats::Subscriber, shared: Arc<Shared>) {
    while let Some(message) = requests.next().await {
        tokio::spawn(answer(Arc::clone(&shared), message));
    }
}

async fn answer(shared: Arc<Shared>, message: async_nats::Message) {
    let Some(reply_to) = message.reply.clone() else {
        dead_letter(&shared, &message, "a query needs a reply subject").await;
        return;
    };
    let reply = match message.subject.as_str() {
        subjects::QUERY_CONVERSATION => respond(&shared, &message, get_conversation).await,
        subjects::QUERY_CONVERSATIONS => {
            let budget = shared.page_budget();
            respond(&shared, &message, |model, q| {
                list_conversations(model, q, budget)
            })
            .await
        }
        subjects::QUERY_AGENT => respond(&shared, &message, get_agent).await,
        subjects::QUERY_AGENTS => {
            let budget = shared.page_budget();
            respond(&shared, &message, |model, q| list_agents(model, q, budget)).await
        }
        subjects::QUERY_QUEUES => respond(&shared, &message, list_queues).await,
        other => {
            let reason = format!(
                "'{other}' is not a query the projector answers (conversation, conversations, agent, agents, queues)"
            );
            malformed(&shared, &message, reason).await
        }
    };
    let _ = shared
        .client
        .publish(reply_to, Bytes::from(reply.encode_to_vec()))
        .await;
}

/// Decodes the request, waits for its `min_position`, and answers it from the model.
async fn respond<Q: QueryRequest>(
    shared: &Shared,
    message: &async_nats::Message,
    answer: impl FnOnce(&ReadModel, &Q) -> pb::QueryReply,
) -> pb::QueryReply {
    let query = match Q::decode(&message.payload) {
        Ok(query) => query,
        Err(error) => return malformed(shared, message, error.to_string()).await,
    };
    let min = query.min_position();
    if let Err(position) = omni_bus::folded_to(&shared.folded, min, shared.max_wait).await {
        return query_error(
            position,
            pb::QueryErrorCode::NotReady,
            format!(
                "the projector has folded the log up to position {position}, not yet {min}; ask again"
            ),
        );
    }
    shared.metrics.queries.add(1);
    let model = shared.model.read().unwrap_or_else(PoisonError::into_inner);
    answer(&model, &query)
}

/// Answers MALFORMED (the reason names the field) and dead-letters the request.
async fn malformed(
    shared: &Shared,
    message: &async_nats::Message,
    reason: String,
) -> pb::QueryReply {
    let position = *shared.folded.borrow();
    omni_bus::refuse_malformed_query(
        &shared.client,
        SERVICE,
        &shared.metrics,
        message,
        position,
        reason,
    )
    .await
}

async fn dead_letter(shared: &Shared, message: &async_nats::Message, reason: &str) {
    omni_bus::dead_letter_request(&shared.client, SERVICE, &shared.metrics, message, reason).await;
}

fn not_found(position: u64, what: String) -> pb::QueryReply {
    query_error(position, pb::QueryErrorCode::NotFound, what)
}

// --- the answers -----------------------------------------------------------------------------

pub(crate) fn get_conversation(model: &ReadModel, q: &ConversationQuery) -> pb::QueryReply {
    match model.conversation(q.conversation) {
        Some(c) => query_reply(
            model.position(),
            pb::query_reply::Result::Conversation(omni_proto::conversation_view(c)),
        ),
        None => not_found(
            model.position(),
            format!("no conversation {}", q.conversation.0),
        ),
    }
}

pub(crate) fn list_conversations(
    model: &ReadModel,
    q: &ConversationsQuery,
    budget: usize,
) -> pb::QueryReply {
    let page = model.conversations(q);
    let (views, next) = fit(
        &page.items,
        page.next,
        omni_proto::conversation_view,
        |c| c.id,
        budget,
    );
    query_reply(model.position(), omni_proto::conversation_page(views, next))
}

pub(crate) fn get_agent(model: &ReadModel, q: &AgentQuery) -> pb::QueryReply {
    match model.agent(q.agent) {
        Some(a) => query_reply(
            model.position(),
            pb::query_reply::Result::Agent(omni_proto::agent_view(a)),
        ),
        None => not_found(model.position(), format!("no agent {}", q.agent.0)),
    }
}

pub(crate) fn list_agents(model: &ReadModel, q: &AgentsQuery, budget: usize) -> pb::QueryReply {
    let page = model.agents(q);
    let (views, next) = fit(
        &page.items,
        page.next,
        omni_proto::agent_view,
        |a| a.profile.id,
        budget,
    );
    query_reply(model.position(), omni_proto::agent_page(views, next))
}

/// The views of `items` while their encoding fits in `budget` bytes. A page that would not
/// fit in one bus message ends early, with the token of its last item, so the client simply
/// asks for the next one (fewer results than `page_size` with a token is a valid page).
fn fit<T, V: Message, Id>(
    items: &[&T],
    next: Option<Id>,
    view: impl Fn(&T) -> V,
    id: impl Fn(&T) -> Id,
    budget: usize,
) -> (Vec<V>, Option<Id>) {
    /// A field's tag and length prefix, at most.
    const FRAMING: usize = 6;
    let mut used = 0;
    let mut views = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let v = view(item);
        let len = v.encoded_len() + FRAMING;
        if used + len > budget && i > 0 {
            return (views, Some(id(items[i - 1])));
        }
        used += len;
        views.push(v);
    }
    (views, next)
}

pub(crate) fn list_queues(model: &ReadModel, _: &QueuesQuery) -> pb::QueryReply {
    let world = model.world();
    let queues = world
        .queues
        .values()
        .map(|q| omni_proto::queue_view(q, world))
        .collect();
    query_reply(
        model.position(),
        pb::query_reply::Result::Queues(pb::QueueList { queues }),
    )
}
