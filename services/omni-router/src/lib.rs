//! The router: decides *when* to route, never *to whom*.
//!
//! It follows the committed events into its own copy of the world and, when work or room
//! appears, asks the conversation service to route: `Route` for a conversation that became
//! routable again (queued again, offer rejected, timed out or withdrawn), an
//! `AssignmentCycle` for each queue where room appeared (presence change, capacity released,
//! capacity raised, an agent joined or signed in) and, every `sweep_every`, for each queue
//! whose backlog has an agent with room. The choice of agent is the core's, made by the
//! writer against the authoritative world — which is why two routers racing can never
//! overbook an agent: the second request finds the offer made or the room gone and is
//! rejected. The router's own world only keeps it from asking when nobody could answer yes.
//!
//! A new conversation is not the router's: the core routes it in the decision that creates
//! it (offered at once when someone has room, otherwise left in the backlog, which the
//! cycles above serve when room appears).
//!
//! Triggers are coalesced: everything that arrived since the last flush is routed once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use omni_bus::{Bus, Metrics};
use omni_core::{
    Command, ConversationId, ConversationStatus, EventKind, QueueId, RoutingMode, World, apply,
    choose_agent,
};
use omni_proto::{CommandEnvelope, Outcome};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// The service's name in logs and connections.
pub const SERVICE: &str = "router";

#[derive(Clone, Debug)]
pub struct Config {
    /// How often every queue with waiting work and free agents gets an assignment cycle, to
    /// heal anything a lost trigger missed.
    pub sweep_every: Duration,
    /// Most routing requests in flight at once.
    pub max_in_flight: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sweep_every: Duration::from_secs(1),
            max_in_flight: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("could not follow the committed events: {0}")]
    Follow(#[from] async_nats::SubscribeError),
}

/// What the events since the last flush call for.
#[derive(Debug, Default)]
struct Dirty {
    conversations: BTreeSet<ConversationId>,
    queues: BTreeSet<QueueId>,
}

impl Dirty {
    fn is_empty(&self) -> bool {
        self.conversations.is_empty() && self.queues.is_empty()
    }

    /// Notes what `kind`, just folded into `world`, makes worth routing.
    fn note(&mut self, kind: &EventKind, world: &World) {
        use EventKind as E;
        match kind {
            E::ConversationQueued { conversation, .. } => {
                self.conversations.insert(*conversation);
            }
            E::OfferRejected { session, agent, .. }
            | E::OfferTimedOut { session, agent, .. }
            | E::OfferWithdrawn { session, agent, .. } => {
                self.conversations.insert(session.conversation);
                self.queues_of(*agent, world);
            }
            E::PresenceUpdate { agent, .. }
            | E::CapacityReleased { agent, .. }
            | E::AgentCapacityChanged { agent, .. }
            | E::AgentSignedIn { agent }
            | E::AgentReconnected { agent } => self.queues_of(*agent, world),
            E::QueueMembershipChanged {
                queue,
                member: true,
                ..
            } => {
                self.queues.insert(*queue);
            }
            _ => {}
        }
    }

    fn queues_of(&mut self, agent: omni_core::AgentId, world: &World) {
        if let Some(a) = world.agents.get(&agent) {
            self.queues.extend(a.queues.iter().copied());
        }
    }
}

/// Runs the router until `shutdown` turns true.
pub async fn run(
    config: Config,
    client: async_nats::Client,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RouterError> {
    let bus = Bus::new(client);
    let mut events = omni_bus::follow(bus.clone(), 1, shutdown.clone()).await?;
    let mut world = World::default();
    let mut dirty = Dirty::default();
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    // The routing requests under way: owned here, so none outlives the router.
    let mut requests = JoinSet::new();
    let mut sweep = tokio::time::interval(config.sweep_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            followed = events.recv() => {
                let Some(followed) = followed else { break };
                fold(&mut world, &mut dirty, followed);
                // Coalesce: fold everything already here before routing once.
                while let Ok(followed) = events.try_recv() {
                    fold(&mut world, &mut dirty, followed);
                }
            }
            _ = sweep.tick() => {
                dirty.queues.extend(world.queues.keys().copied());
            }
        }
        while requests.try_join_next().is_some() {}
        if !dirty.is_empty() {
            let mut sender = Sender {
                bus: &bus,
                in_flight: &in_flight,
                metrics: &metrics,
                requests: &mut requests,
            };
            flush(&mut sender, &world, std::mem::take(&mut dirty)).await;
        }
    }
    // A request still waiting for its answer is dropped: the commands are idempotent and
    // the next router's sweep asks again for whatever is still to route.
    requests.shutdown().await;
    Ok(())
}

fn fold(world: &mut World, dirty: &mut Dirty, followed: omni_bus::Followed) {
    match followed.envelope {
        Ok(envelope) => {
            let kind = &envelope.event.kind;
            apply(world, &envelope.event);
            dirty.note(kind, world);
            if let EventKind::ConversationClosed { conversation, .. } = kind {
                // Closed is final: the router never needs it again.
                world.forget(*conversation);
            }
        }
        Err(e) => {
            tracing::error!(position = followed.position, error = %e, "cannot read a committed event")
        }
    }
}

/// Sends the routing requests `dirty` calls for, skipping those the router's world says
/// nobody could accept.
async fn flush(sender: &mut Sender<'_>, world: &World, dirty: Dirty) {
    for conversation in dirty.conversations {
        if routable(world, conversation) && choose_agent(world, conversation).is_some() {
            sender.send(Command::Route { conversation }).await;
        }
    }
    for queue in dirty.queues {
        let Some(q) = world.queues.get(&queue) else {
            continue;
        };
        let push = world
            .workstreams
            .get(&q.config.workstream)
            .is_some_and(|ws| ws.mode == RoutingMode::Push);
        // The oldest few stand for the backlog: enough to see room, bounded when there is none.
        let someone_could_take = q
            .backlog
            .iter()
            .take(32)
            .any(|(_, c)| choose_agent(world, *c).is_some());
        if push && someone_could_take {
            sender
                .send(Command::AssignmentCycle { queue: Some(queue) })
                .await;
        }
    }
}

fn routable(world: &World, conversation: ConversationId) -> bool {
    world.conversations.get(&conversation).is_some_and(|c| {
        c.status == ConversationStatus::Open
            && c.pending_offer.is_none()
            && world
                .queues
                .get(&c.queue)
                .and_then(|q| world.workstreams.get(&q.config.workstream))
                .is_some_and(|ws| ws.mode == RoutingMode::Push)
    })
}

/// Sends routing requests, each in a task of the router's own, at most `in_flight` at once.
struct Sender<'a> {
    bus: &'a Bus,
    in_flight: &'a Arc<Semaphore>,
    metrics: &'a Arc<Metrics>,
    requests: &'a mut JoinSet<()>,
}

impl Sender<'_> {
    async fn send(&mut self, command: Command) {
        let Ok(permit) = Arc::clone(self.in_flight).acquire_owned().await else {
            return;
        };
        self.metrics.route_requests.add(1);
        let bus = self.bus.clone();
        self.requests.spawn(request(bus, command, permit));
    }
}

/// One routing request, holding its `in_flight` permit until answered.
async fn request(bus: Bus, command: Command, permit: tokio::sync::OwnedSemaphorePermit) {
    let envelope = CommandEnvelope::from_system(command);
    match bus.command(&envelope).await {
        Ok(Outcome::Accepted { .. }) => {}
        // Someone else routed it, or the room went: both are normal in a race.
        Ok(Outcome::Rejected { code, reason, .. }) => {
            tracing::debug!(?code, %reason, "routing request declined");
        }
        Err(e) => tracing::warn!(error = %e, "routing request got no answer"),
    }
    drop(permit);
}
