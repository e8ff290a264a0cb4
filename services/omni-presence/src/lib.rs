//! The presence service: the two presence APIs integrators call (see the seeds' "Presence
//! APIs"), on the bus.
//!
//! - `omni.presence.get` (`CCaaS_GetPresence`): a `GetAgent` → a `QueryReply` with the
//!   `AgentView` (presence id and base status, available capacity, signed in, modified on and
//!   by), from the world this service folds from the committed events itself.
//! - `omni.presence.modify` (`CCaaS_ModifyAgentPresence`): a `ModifyAgentPresence` becomes a
//!   `SetPresence` command sent to the engine with the request's command id (so a retried
//!   request changes nothing twice) and the agent as actor. The answer is the agent as of the
//!   change (the service waits until its own fold has reached the command's last event), or
//!   REJECTED with the engine's rejection code and reason (an unknown presence, an agent not
//!   signed in…). Which presences exist is the engine's judgement: the five out-of-the-box ids
//!   and the custom ones an administrator defined.
//!
//! Malformed requests are answered MALFORMED, naming the field, and dead-lettered on
//! `omni.dead.presence`. One task per concern: the follower (omni-bus), the folder (this
//! function's loop), the listener (one short task per request).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use omni_bus::{Bus, Followed, Metrics, subjects};
use omni_core::{Actor, Command, World, apply};
use omni_proto::{
    AgentQuery, CommandEnvelope, Outcome, PresenceChange, QueryRequest, pb, query_error,
    query_rejected, query_reply,
};
use prost::Message;
use tokio::sync::{mpsc, watch};

/// The service's name on the bus: its queue group and its dead-letter subject.
pub const SERVICE: &str = "presence";

#[derive(Clone, Debug)]
pub struct Config {
    /// How long a request waits for this service's fold to reach a position (a `GetAgent`'s
    /// `min_position`, or the events of an accepted change) before answering NOT_READY.
    pub max_wait: Duration,
    /// How long one attempt to send the engine a command waits for its answer.
    pub command_timeout: Duration,
    /// How long a command is retried (same command id) before answering UNAVAILABLE.
    pub command_retry_for: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_wait: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            command_retry_for: Duration::from_secs(5),
        }
    }
}

/// Why the service stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("could not subscribe to {subject}: {reason}")]
    Subscribe {
        subject: &'static str,
        reason: String,
    },
    #[error("a background task failed: {0}")]
    Task(String),
}

/// What every request task shares.
struct Shared {
    /// The world and the last position folded into it.
    world: RwLock<(World, u64)>,
    folded: watch::Receiver<u64>,
    bus: Bus,
    metrics: Arc<Metrics>,
    max_wait: Duration,
}

/// Runs the service until `shutdown` turns true.
pub async fn run(
    config: Config,
    client: async_nats::Client,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    let subscribe = |subject: &'static str| {
        let client = client.clone();
        async move {
            client
                .queue_subscribe(subject, SERVICE.to_owned())
                .await
                .map_err(|e| ServiceError::Subscribe {
                    subject,
                    reason: e.to_string(),
                })
        }
    };
    let gets = subscribe(subjects::PRESENCE_GET).await?;
    let modifies = subscribe(subjects::PRESENCE_MODIFY).await?;
    let mut bus = Bus::new(client.clone());
    bus.attempt_timeout = config.command_timeout;
    bus.retry_for = config.command_retry_for;
    let events = omni_bus::follow(bus.clone(), 1, shutdown.clone())
        .await
        .map_err(|e| ServiceError::Subscribe {
            subject: subjects::EVENTS_ALL,
            reason: e.to_string(),
        })?;
    let (folded_tx, folded) = watch::channel(0);
    let shared = Arc::new(Shared {
        world: RwLock::new((World::default(), 0)),
        folded,
        bus,
        metrics,
        max_wait: config.max_wait,
    });
    let requests = futures_util::stream::select(gets, modifies);
    let server = tokio::spawn(serve(requests, Arc::clone(&shared)));
    let result = fold(events, &shared, &folded_tx, &mut shutdown).await;
    server.abort();
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "could not flush the last answers");
    }
    result
}

/// Folds what the follower hands over until shutdown.
async fn fold(
    mut events: mpsc::Receiver<Followed>,
    shared: &Shared,
    folded: &watch::Sender<u64>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            followed = events.recv() => match followed {
                Some(followed) => followed,
                None if *shutdown.borrow() => return Ok(()),
                None => return Err(ServiceError::Task("the event follower stopped".to_owned())),
            },
        };
        let mut batch = vec![first];
        while batch.len() < 1_024 {
            match events.try_recv() {
                Ok(followed) => batch.push(followed),
                Err(_) => break,
            }
        }
        let position = {
            let mut state = shared.world.write().unwrap_or_else(PoisonError::into_inner);
            for followed in batch {
                match followed.envelope {
                    Ok(envelope) => apply(&mut state.0, &envelope.event),
                    Err(error) => tracing::error!(
                        position = followed.position,
                        %error,
                        "skipping an event this version cannot read"
                    ),
                }
                state.1 = followed.position;
            }
            state.1
        };
        folded.send_replace(position);
    }
}

async fn serve(
    mut requests: impl futures_util::Stream<Item = async_nats::Message> + Unpin,
    shared: Arc<Shared>,
) {
    while let Some(message) = requests.next().await {
        tokio::spawn(answer(Arc::clone(&shared), message));
    }
}

async fn answer(shared: Arc<Shared>, message: async_nats::Message) {
    let Some(reply_to) = message.reply.clone() else {
        dead_letter(
            &shared,
            &message,
            "a presence request needs a reply subject",
        )
        .await;
        return;
    };
    let reply = if message.subject.as_str() == subjects::PRESENCE_MODIFY {
        modify(&shared, &message).await
    } else {
        get(&shared, &message).await
    };
    let _ = shared
        .bus
        .client()
        .publish(reply_to, Bytes::from(reply.encode_to_vec()))
        .await;
}

/// `CCaaS_GetPresence`.
async fn get(shared: &Shared, message: &async_nats::Message) -> pb::QueryReply {
    let query = match AgentQuery::decode(&message.payload) {
        Ok(query) => query,
        Err(error) => return malformed(shared, message, error.to_string()).await,
    };
    if let Err(position) =
        omni_bus::folded_to(&shared.folded, query.min_position, shared.max_wait).await
    {
        return not_ready(position, query.min_position);
    }
    shared.metrics.queries.add(1);
    agent_reply(shared, query.agent)
}

/// `CCaaS_ModifyAgentPresence`.
async fn modify(shared: &Shared, message: &async_nats::Message) -> pb::QueryReply {
    let change = match PresenceChange::decode(&message.payload) {
        Ok(change) => change,
        Err(error) => return malformed(shared, message, error.to_string()).await,
    };
    let command = CommandEnvelope {
        command_id: change.command_id,
        actor: Actor::Agent(change.agent),
        correlation_id: None,
        command: Command::SetPresence {
            agent: change.agent,
            presence: change.presence,
        },
    };
    let position = || *shared.folded.borrow();
    match shared.bus.command(&command).await {
        Ok(outcome @ Outcome::Accepted { .. }) => {
            let last = outcome.last_position().unwrap_or(0);
            if let Err(position) = omni_bus::folded_to(&shared.folded, last, shared.max_wait).await
            {
                return query_error(
                    position,
                    pb::QueryErrorCode::NotReady,
                    format!(
                        "the change was accepted at position {last}, but the presence service has folded only up to {position}; get the presence again"
                    ),
                );
            }
            agent_reply(shared, change.agent)
        }
        Ok(Outcome::Rejected { code, reason, .. }) => query_rejected(position(), code, reason),
        Err(error) => query_error(
            position(),
            pb::QueryErrorCode::Unavailable,
            error.to_string(),
        ),
    }
}

fn agent_reply(shared: &Shared, agent: omni_core::AgentId) -> pb::QueryReply {
    let state = shared.world.read().unwrap_or_else(PoisonError::into_inner);
    let (world, position) = (&state.0, state.1);
    match world.agents.get(&agent) {
        Some(a) => query_reply(
            position,
            pb::query_reply::Result::Agent(omni_proto::agent_view(a)),
        ),
        None => query_error(
            position,
            pb::QueryErrorCode::NotFound,
            format!("no agent {}", agent.0),
        ),
    }
}

fn not_ready(position: u64, min: u64) -> pb::QueryReply {
    query_error(
        position,
        pb::QueryErrorCode::NotReady,
        format!(
            "the presence service has folded the log up to position {position}, not yet {min}; ask again"
        ),
    )
}

/// Answers MALFORMED (the reason names the field) and dead-letters the request.
async fn malformed(
    shared: &Shared,
    message: &async_nats::Message,
    reason: String,
) -> pb::QueryReply {
    let position = *shared.folded.borrow();
    omni_bus::refuse_malformed_query(
        shared.bus.client(),
        SERVICE,
        &shared.metrics,
        message,
        position,
        reason,
    )
    .await
}

async fn dead_letter(shared: &Shared, message: &async_nats::Message, reason: &str) {
    omni_bus::dead_letter_request(
        shared.bus.client(),
        SERVICE,
        &shared.metrics,
        message,
        reason,
    )
    .await;
}
