//! The monitor: follows the committed events gap-free from the start of the log and folds
//! them into a world, as the projector does. That world is what desktops and supervisors see
//! (who is free for a transfer, what waits in a pick queue); the events tell each customer
//! what became of their conversation; and the monitor samples agents' and queues' load for
//! the report. Everything the report says about conversations comes from the log, not from
//! what the actors believe they did.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use omni_bus::Followed;
use omni_core::{
    AgentId, ConversationStatus, EventKind, OfferOrigin, QueueId, TransferTarget, apply,
    choose_agent,
};
use tokio::sync::{mpsc, watch};

use crate::shared::{CustomerMsg, Shared};

/// How often load is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Load of one agent, summed over the samples.
#[derive(Clone, Debug, Default)]
pub(crate) struct AgentLoad {
    /// Samples in which the agent was signed in.
    pub signed_in: u64,
    /// Sum of used capacity ÷ capacity over those samples.
    pub used: f64,
}

/// Load of one queue, summed over the samples.
#[derive(Clone, Debug, Default)]
pub(crate) struct QueueLoad {
    /// Capacity units held by the queue's conversations.
    pub held_units: f64,
    /// Capacity units of the queue's signed-in members (shared with their other queues).
    pub staffed_units: f64,
    /// Conversations waiting for an agent.
    pub backlog: f64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Samples {
    pub count: u64,
    pub agents: Vec<AgentLoad>,
    pub queues: Vec<QueueLoad>,
}

/// Folds `events` until `stop`, then returns the samples taken while `shared.sampling` was on.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut events: mpsc::Receiver<Followed>,
    agents: Vec<AgentId>,
    mut stop: watch::Receiver<bool>,
) -> Samples {
    let agent_index: HashMap<AgentId, usize> =
        agents.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    let queue_index: HashMap<QueueId, usize> = shared
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| (q.id, i))
        .collect();
    let mut samples = Samples {
        count: 0,
        agents: vec![AgentLoad::default(); agents.len()],
        queues: vec![QueueLoad::default(); shared.queues.len()],
    };
    let mut sampler = tokio::time::interval(SAMPLE_EVERY);
    sampler.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.changed() => return samples,
            followed = events.recv() => {
                let Some(followed) = followed else { return samples };
                fold(&shared, followed);
                while let Ok(followed) = events.try_recv() {
                    fold(&shared, followed);
                }
            }
            _ = sampler.tick() => {
                if shared.sampling.load(Relaxed) {
                    sample(&shared, &agent_index, &queue_index, &mut samples);
                }
            }
        }
    }
}

/// Folds one committed event and passes on what it means for this run's conversations.
fn fold(shared: &Shared, followed: Followed) {
    let envelope = match followed.envelope {
        Ok(envelope) => envelope,
        Err(e) => {
            tracing::error!(position = followed.position, error = %e, "cannot read a committed event");
            return;
        }
    };
    let counters = &shared.counters;
    counters.events.fetch_add(1, Relaxed);
    let event = envelope.event;
    let at = event.at;
    let mut routable_on_arrival = None;
    {
        let mut world = shared.world.write().unwrap_or_else(|e| e.into_inner());
        apply(&mut world, &event);
        match &event.kind {
            EventKind::ConversationCreated { conversation, .. } => {
                // What the router, folding the same log, sees at this point.
                routable_on_arrival = Some(choose_agent(&world, *conversation).is_some());
            }
            EventKind::ConversationClosed { conversation, .. } => {
                // Closed is final: no desktop needs it again.
                world.forget(*conversation);
            }
            _ => {}
        }
    }
    counters.position.store(followed.position, Relaxed);
    match &event.kind {
        EventKind::AgentDisconnected { .. } => {
            counters.agent_disconnects.fetch_add(1, Relaxed);
        }
        EventKind::PresenceUpdate { .. } => {
            counters.presence_changes.fetch_add(1, Relaxed);
        }
        _ => {}
    }
    let Some(conversation) = event.kind.conversation() else {
        return;
    };
    let mut conversations = shared.conversations();
    let Some(t) = conversations.get_mut(&conversation) else {
        return;
    };
    let status = match &event.kind {
        EventKind::ConversationCreated { .. } => {
            t.created_at = Some(at);
            t.routable_on_arrival = routable_on_arrival;
            Some(ConversationStatus::Open)
        }
        EventKind::ConversationQueued { .. } => Some(ConversationStatus::Open),
        EventKind::SessionAccepted { .. } | EventKind::ConversationResumed { .. } => {
            t.accepted_at.get_or_insert(at);
            Some(ConversationStatus::Active)
        }
        EventKind::ConversationWaiting { .. } => Some(ConversationStatus::Waiting),
        EventKind::EndConversation { .. } => Some(ConversationStatus::WrapUp),
        EventKind::ConversationClosed { reason, .. } => {
            t.closed = Some((at, *reason));
            Some(ConversationStatus::Closed)
        }
        EventKind::IncomingSessionRequest { origin, .. } => {
            if *origin != OfferOrigin::Pick {
                counters.offers.fetch_add(1, Relaxed);
            }
            None
        }
        EventKind::OfferRejected { .. } => {
            counters.offers_rejected.fetch_add(1, Relaxed);
            None
        }
        EventKind::OfferTimedOut { .. } => {
            counters.offers_timed_out.fetch_add(1, Relaxed);
            None
        }
        EventKind::OfferWithdrawn { .. } => {
            counters.offers_withdrawn.fetch_add(1, Relaxed);
            None
        }
        EventKind::TransferInitiated { target, .. } => {
            match target {
                TransferTarget::Agent(_) => counters.transfers_to_agent.fetch_add(1, Relaxed),
                TransferTarget::Queue(_) => counters.transfers_to_queue.fetch_add(1, Relaxed),
            };
            None
        }
        EventKind::ConsultStarted { .. } => {
            counters.consults.fetch_add(1, Relaxed);
            None
        }
        EventKind::CallHeld { .. } => {
            counters.holds.fetch_add(1, Relaxed);
            None
        }
        _ => None,
    };
    if let Some(status) = status {
        let _ = t.customer.send(CustomerMsg::Status(status));
    }
}

fn sample(
    shared: &Shared,
    agent_index: &HashMap<AgentId, usize>,
    queue_index: &HashMap<QueueId, usize>,
    samples: &mut Samples,
) {
    let world = shared.world();
    samples.count += 1;
    for (id, &i) in agent_index {
        let Some(a) = world.agents.get(id) else {
            continue;
        };
        if a.signed_in && a.profile.capacity_units > 0 {
            samples.agents[i].signed_in += 1;
            samples.agents[i].used += f64::from(a.used_units) / f64::from(a.profile.capacity_units);
        }
    }
    let mut held = vec![0u64; samples.queues.len()];
    for c in world.conversations.values() {
        if let (Some(h), Some(&i)) = (c.held, queue_index.get(&c.queue)) {
            held[i] += u64::from(h.units);
        }
    }
    for (id, &i) in queue_index {
        let Some(q) = world.queues.get(id) else {
            continue;
        };
        let staffed: u64 = q
            .members()
            .filter_map(|m| world.agents.get(&m))
            .filter(|a| a.signed_in)
            .map(|a| u64::from(a.profile.capacity_units))
            .sum();
        let load = &mut samples.queues[i];
        load.held_units += held[i] as f64;
        load.staffed_units += staffed as f64;
        load.backlog += q.backlog.len() as f64;
    }
}
