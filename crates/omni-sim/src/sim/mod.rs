//! The simulation: an agenda of what customers, agents and supervisors will do, played
//! against the real core on a simulated clock.
//!
//! Every action becomes a [`Command`] judged by `decide` at the simulated time; accepted
//! events are folded into the world and handed out, refusals are only counted. What people do
//! next is a reaction to the events (an offer gets an answer, an accepted session gets a
//! handling script, a wrap-up gets completed), so the behaviour follows what the engine
//! actually decided rather than what the simulation expected.

mod agenda;
mod agents;
mod conversation;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use omni_core::{
    AgentId, Command, ConversationId, ConversationStatus, Event, EventKind, OfferOrigin, QueueId,
    RoutingMode, Timestamp, TransferTarget, World, next_deadline,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::behaviour;
use crate::center::{self, CHANNELS, QueueInfo, QueueMix};
use crate::engine::Engine;
use crate::script::{Plan, Step};
use crate::stats::SimStats;
use agenda::{Action, Agenda};

/// The shape of a simulated contact center and of the traffic it gets.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Agents provisioned and signed in at the start.
    pub agents: usize,
    /// Customer conversations to generate. The run ends when every one of them has closed.
    pub conversations: usize,
    /// Same seed, same configuration: the same event stream, event for event.
    pub seed: u64,
    /// Queues per channel (there are six channels).
    pub queues_per_channel: usize,
    /// Customers arriving per agent per hour, on average (Poisson arrivals). The default
    /// keeps agents busy without letting queues grow without bound.
    pub arrivals_per_agent_hour: f64,
    /// Forget closed conversations as they close ([`World::forget`]). Closed is final, so no
    /// later decision needs them; forgetting them keeps memory proportional to the live
    /// conversations, which a million-conversation run needs. The stream is the same either
    /// way; only [`Simulation::world`] then holds the live conversations alone.
    pub forget_closed: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            agents: 100,
            conversations: 2_000,
            seed: 0x5EED,
            queues_per_channel: 2,
            arrivals_per_agent_hour: 8.0,
            forget_closed: false,
        }
    }
}

/// How often a catch-all tick runs, for timers the simulation did not plan a tick for.
const HOUSEKEEPING_SECS: i64 = 300;

/// What the simulation remembers of a live conversation.
#[derive(Debug)]
struct Tracked {
    /// Bumped whenever the conversation enters a new phase (taken by an agent, queued,
    /// waiting, wrapping up): steps scheduled for an earlier phase are dropped.
    generation: u32,
    plan: Plan,
}

/// A running simulation. Iterate it for events, or take them in batches (one per action,
/// with the routing it triggered) with [`Simulation::next_batch`]; use one or the other.
#[derive(Debug)]
pub struct Simulation {
    cfg: SimConfig,
    engine: Engine,
    rng: SmallRng,
    agenda: Agenda,
    queues: Vec<QueueInfo>,
    /// The queues' traffic weights, for drawing an arrival's queue.
    mix: QueueMix,
    mean_arrival_gap_ms: f64,
    /// Only looked up, never iterated: its order cannot leak into the stream.
    tracked: HashMap<ConversationId, Tracked>,
    /// Queues whose routing may have changed during the current action.
    dirty: BTreeSet<QueueId>,
    created: usize,
    forgotten: u64,
    stats: SimStats,
    setup: Vec<Event>,
    pending: std::vec::IntoIter<Event>,
}

impl Simulation {
    /// Provisions the center (the configuration events form the first batch), signs agents
    /// in, and plans the first arrival.
    pub fn new(cfg: SimConfig) -> Simulation {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let mut engine = Engine::new();
        let queues = cfg.queues_per_channel.max(1) * CHANNELS.len();
        let (center, setup) = center::provision(&mut engine, &mut rng, cfg.agents, queues);
        let mix = QueueMix::new(&center.queues);
        let per_hour = cfg.arrivals_per_agent_hour * cfg.agents.max(1) as f64;
        let mut sim = Simulation {
            mean_arrival_gap_ms: 3_600_000.0 / per_hour,
            cfg,
            engine,
            rng,
            agenda: Agenda::default(),
            queues: center.queues,
            mix,
            tracked: HashMap::new(),
            dirty: BTreeSet::new(),
            created: 0,
            forgotten: 0,
            stats: SimStats::default(),
            setup: Vec::new(),
            pending: Vec::new().into_iter(),
        };
        for event in &setup {
            sim.stats.record(event);
        }
        sim.setup = setup;
        for agent in center.agents {
            sim.after_arrival(agent);
        }
        if sim.cfg.conversations > 0 {
            let gap = sim.arrival_gap();
            sim.schedule(gap, Action::Arrival);
        }
        sim.schedule(HOUSEKEEPING_SECS * 1000, Action::Housekeeping);
        sim
    }

    /// The next batch of events: the configuration first, then the events of one action and
    /// the routing it triggered. `None` once every conversation has closed.
    pub fn next_batch(&mut self) -> Option<Vec<Event>> {
        let unread: Vec<Event> = self.pending.by_ref().collect();
        if !unread.is_empty() {
            return Some(unread);
        }
        if !self.setup.is_empty() {
            return Some(std::mem::take(&mut self.setup));
        }
        while !self.finished() {
            let batch = self.step()?;
            if !batch.is_empty() {
                return Some(batch);
            }
        }
        None
    }

    /// The world as the events so far left it.
    pub fn world(&self) -> &World {
        &self.engine.world
    }

    /// The simulated time.
    pub fn now(&self) -> Timestamp {
        self.engine.now
    }

    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Conversations by status, counting those `forget_closed` dropped as Closed.
    pub fn conversations_by_status(&self) -> BTreeMap<ConversationStatus, u64> {
        let mut counts = BTreeMap::new();
        for c in self.engine.world.conversations.values() {
            *counts.entry(c.status).or_default() += 1;
        }
        if self.forgotten > 0 {
            *counts.entry(ConversationStatus::Closed).or_default() += self.forgotten;
        }
        counts
    }

    fn finished(&self) -> bool {
        self.created == self.cfg.conversations && self.tracked.is_empty()
    }

    fn schedule(&mut self, after_ms: i64, action: Action) {
        self.agenda.push(self.engine.now.plus_ms(after_ms), action);
    }

    fn schedule_step(&mut self, after_ms: i64, id: ConversationId, generation: u32, step: Step) {
        self.schedule(
            after_ms,
            Action::Step {
                conversation: id,
                generation,
                step,
            },
        );
    }

    fn exponential_ms(&mut self, mean_ms: f64) -> i64 {
        behaviour::exponential_ms(&mut self.rng, mean_ms)
    }

    fn arrival_gap(&mut self) -> i64 {
        self.exponential_ms(self.mean_arrival_gap_ms)
    }

    /// Decides a command now; accepted events go to `out`, a refusal is counted under
    /// `attempt`. Returns whether it was accepted.
    fn exec(&mut self, attempt: &'static str, command: Command, out: &mut Vec<Event>) -> bool {
        self.stats.commands += 1;
        match self.engine.exec(command) {
            Ok(events) => {
                out.extend(events);
                true
            }
            Err(_) => {
                self.stats.rejected(attempt);
                false
            }
        }
    }

    /// Performs the earliest action, then runs an assignment cycle on every push queue whose
    /// routing it may have changed, as the server does on new work, capacity or presence.
    fn step(&mut self) -> Option<Vec<Event>> {
        let (at, action) = self.agenda.pop()?;
        self.engine.advance_to(at);
        let mut batch = Vec::new();
        self.perform(action, &mut batch);
        let mut observed = 0;
        loop {
            for event in &batch[observed..] {
                self.observe(event);
            }
            observed = batch.len();
            let Some(queue) = self.dirty.pop_first() else {
                break;
            };
            if self.routes_by_push(queue) {
                let cycle = Command::AssignmentCycle { queue: Some(queue) };
                self.exec("assignment cycle", cycle, &mut batch);
            }
        }
        Some(batch)
    }

    fn routes_by_push(&self, queue: QueueId) -> bool {
        let world = &self.engine.world;
        world
            .queues
            .get(&queue)
            .and_then(|q| world.workstreams.get(&q.config.workstream))
            .is_some_and(|ws| ws.mode == RoutingMode::Push)
    }

    fn perform(&mut self, action: Action, out: &mut Vec<Event>) {
        match action {
            Action::Arrival => self.arrive(out),
            Action::Housekeeping => self.housekeeping(out),
            Action::Tick => {
                self.exec("tick", Command::Tick, out);
            }
            Action::Answer {
                session,
                agent,
                accept,
            } => {
                if accept {
                    self.exec("accept", Command::Accept { agent, session }, out);
                } else {
                    self.exec("reject", Command::Reject { agent, session }, out);
                }
            }
            Action::Step {
                conversation,
                generation,
                step,
            } => {
                let current = self
                    .tracked
                    .get(&conversation)
                    .is_some_and(|t| t.generation == generation);
                if current {
                    self.play(conversation, generation, step, out);
                }
            }
            Action::CustomerReturns { conversation } => {
                let command = Command::CustomerReconnect { conversation };
                self.exec("customer reconnect", command, out);
            }
            Action::Agent { agent, act } => self.agent_act(agent, act, out),
            Action::ResolveCase { record } => {
                self.exec("resolve case", Command::ResolveCase { record }, out);
            }
        }
    }

    fn arrive(&mut self, out: &mut Vec<Event>) {
        let queue = self.queues[self.mix.draw(&mut self.rng)];
        let conversation = ConversationId::from_u128(self.rng.random());
        let skills = center::requested_skills(&mut self.rng);
        let plan = Plan::draw(queue.spec.channel, &mut self.rng);
        self.tracked.insert(
            conversation,
            Tracked {
                generation: 0,
                plan,
            },
        );
        self.created += 1;
        let command = Command::StartConversation {
            conversation,
            queue: queue.id,
            skills,
            customer: format!("Customer {}", self.created),
        };
        if !self.exec("start conversation", command, out) {
            self.tracked.remove(&conversation);
        }
        if self.created < self.cfg.conversations {
            let gap = self.arrival_gap();
            self.schedule(gap, Action::Arrival);
        }
    }

    /// Fires every due timer. The simulation ticks at the deadlines it causes (an ignored
    /// offer, a drop, a wrap-up or waiting left to its timer); this catch-all covers any
    /// other, a few minutes late at most. (This schedule dates from when `next_deadline` and
    /// `Tick` scanned every live conversation; both now use the core's deadline index, so
    /// ticking at `next_deadline` would be cheap and exact, but it would change the stream
    /// every seed gives.) Once nothing else is planned, the run only waits for timers, so it
    /// jumps to the next one.
    fn housekeeping(&mut self, out: &mut Vec<Event>) {
        self.exec("tick", Command::Tick, out);
        let now = self.engine.now;
        let next = if self.agenda.is_empty() {
            // Nothing planned and no timer running: whatever is still live is stuck, and
            // ticking on would only spin.
            let Some(deadline) = next_deadline(&self.engine.world) else {
                return;
            };
            deadline.max(now.plus_ms(1))
        } else {
            now.plus_secs(HOUSEKEEPING_SECS)
        };
        self.agenda.push(next, Action::Housekeeping);
    }

    /// Reacts to one accepted event: counts it, advances the conversation's phase, plans
    /// what people do about it, and marks the queues whose routing it may change.
    fn observe(&mut self, event: &Event) {
        self.stats.record(event);
        match &event.kind {
            EventKind::ConversationCreated {
                conversation,
                queue,
                ..
            } => {
                self.dirty.insert(*queue);
                self.await_agent(*conversation, *queue, 0);
            }
            EventKind::ConversationQueued {
                conversation,
                queue,
                ..
            } => {
                self.dirty.insert(*queue);
                if let Some(generation) = self.next_phase(*conversation) {
                    self.await_agent(*conversation, *queue, generation);
                }
            }
            EventKind::TransferInitiated {
                conversation,
                target,
                ..
            } => {
                let generation = self.next_phase(*conversation);
                // The customer waits for the colleague; a queue transfer is followed by
                // ConversationQueued, which starts the wait itself.
                if let (Some(generation), TransferTarget::Agent(_)) = (generation, target) {
                    self.wait_patiently(*conversation, generation);
                }
            }
            // A pick is accepted in the same decision; every other offer awaits an answer.
            EventKind::IncomingSessionRequest {
                session,
                agent,
                origin,
                expires_at,
                ..
            } if *origin != OfferOrigin::Pick => self.answer(*session, *agent, *expires_at),
            EventKind::OfferRejected { session, agent, .. }
            | EventKind::OfferTimedOut { session, agent, .. }
            | EventKind::OfferWithdrawn { session, agent, .. } => {
                if let Some(c) = self.engine.world.conversations.get(&session.conversation) {
                    self.dirty.insert(c.queue);
                }
                self.mark_queues_of(*agent);
            }
            EventKind::SessionAccepted { session, .. } => {
                self.start_handling(session.conversation);
            }
            EventKind::ConversationResumed { conversation, .. } => {
                self.start_handling(*conversation);
            }
            EventKind::ConversationWaiting { conversation, .. } => {
                self.await_customer(*conversation);
            }
            EventKind::EndConversation { conversation, .. } => self.wrap_up(*conversation),
            EventKind::ConversationClosed { conversation, .. } => {
                self.tracked.remove(conversation);
                if self.cfg.forget_closed && self.engine.world.forget(*conversation).is_some() {
                    self.forgotten += 1;
                }
            }
            EventKind::CapacityReleased { agent, .. } | EventKind::PresenceUpdate { agent, .. } => {
                self.mark_queues_of(*agent);
            }
            _ => {}
        }
    }

    fn mark_queues_of(&mut self, agent: AgentId) {
        if let Some(a) = self.engine.world.agents.get(&agent) {
            self.dirty.extend(a.queues.iter().copied());
        }
    }

    /// Starts a new phase of the conversation; `None` if the simulation no longer tracks it.
    fn next_phase(&mut self, id: ConversationId) -> Option<u32> {
        let tracked = self.tracked.get_mut(&id)?;
        tracked.generation += 1;
        Some(tracked.generation)
    }
}

impl Iterator for Simulation {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.next() {
                return Some(event);
            }
            self.pending = self.next_batch()?.into_iter();
        }
    }
}
