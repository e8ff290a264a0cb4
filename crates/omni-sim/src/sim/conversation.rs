//! How customers, agents and supervisors move a conversation along: reactions to what the
//! engine decided, and the steps of each phase.

use omni_core::{
    Actor, Agent, AgentId, CUSTOMER_RECONNECT_WINDOW_SECS, Channel, Command, ConversationId,
    ConversationStatus, Event, LinkEntity, MediaAction, MediaState, QueueId, SessionRef,
    SupervisorId, Timestamp, TransferTarget, Workstream, World, WrapUpBlocking, is_eligible,
};
use rand::Rng;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;

use super::Simulation;
use super::agenda::Action;
use crate::script::{self, Step};

/// Who force-closes conversations in the simulation.
const SUPERVISOR: SupervisorId = SupervisorId::from_u128(0x5_0000);
/// How long before a refused step that must happen is tried again.
const RETRY_SECS: i64 = 30;

impl Simulation {
    /// The conversation is Open in `queue`: its customer's patience starts, and in a pick
    /// queue a member will pick it.
    pub(super) fn await_agent(&mut self, id: ConversationId, queue: QueueId, generation: u32) {
        self.wait_patiently(id, generation);
        if !self.routes_by_push(queue) {
            let after = self.secs(5, 60);
            self.schedule_step(after, id, generation, Step::Pick);
        }
    }

    /// A few customers leave almost at once; the others wait as long as their channel makes
    /// them expect to: briefly on the phone, longer in a chat, hours on a messaging app.
    pub(super) fn wait_patiently(&mut self, id: ConversationId, generation: u32) {
        let Some(channel) = self.engine.world.conversations.get(&id).map(|c| c.channel) else {
            return;
        };
        let patience = if self.rng.random_bool(0.05) {
            self.secs(5, 30)
        } else if channel.is_call() {
            self.secs(30, 300)
        } else if channel.is_persistent() {
            self.secs(20 * 60, 3 * 3600)
        } else {
            self.secs(60, 600)
        };
        self.schedule_step(patience, id, generation, Step::Patience);
    }

    /// Most offers are accepted within seconds; some are rejected, some left to time out.
    pub(super) fn answer(&mut self, session: SessionRef, agent: AgentId, expires_at: Timestamp) {
        let timeout_secs = expires_at.since(self.engine.now) / 1000;
        let (after, accept) = match self.rng.random_range(0..100) {
            0..85 => (self.secs(2, (timeout_secs - 5).clamp(3, 25)), true),
            85..93 => (self.secs(1, 15), false),
            _ => {
                self.stats.offers_ignored += 1;
                self.agenda.push_tick(expires_at);
                return;
            }
        };
        let answer = Action::Answer {
            session,
            agent,
            accept,
        };
        self.schedule(after, answer);
    }

    /// An agent took the conversation: their handling script starts.
    pub(super) fn start_handling(&mut self, id: ConversationId) {
        let Some(generation) = self.next_phase(id) else {
            return;
        };
        let Some(channel) = self.engine.world.conversations.get(&id).map(|c| c.channel) else {
            return;
        };
        let Some(tracked) = self.tracked.get_mut(&id) else {
            return;
        };
        let script = script::handling(&mut tracked.plan, channel, &mut self.rng);
        let mut after = 0;
        for (gap, step) in script.steps {
            after += gap;
            self.schedule_step(after, id, generation, step);
        }
    }

    /// Waiting for the customer: most write back, some agents take the conversation back
    /// first, and the rest are left to the waiting auto-close.
    pub(super) fn await_customer(&mut self, id: ConversationId) {
        let Some(generation) = self.next_phase(id) else {
            return;
        };
        match self.rng.random_range(0..100) {
            0..60 => {
                let after = self.secs(120, 3600);
                self.schedule_step(after, id, generation, Step::CustomerReply);
            }
            60..85 => {
                let after = self.secs(60, 1800);
                self.schedule_step(after, id, generation, Step::ResumeWaiting);
            }
            _ => {
                let timeout = self.workstream_of(id).and_then(|ws| ws.timers.waiting_secs);
                self.tick_after(timeout);
            }
        }
    }

    /// In wrap-up: the agent completes it after a while, except on some live chats, which are
    /// left to the wrap-up auto-close.
    pub(super) fn wrap_up(&mut self, id: ConversationId) {
        let Some(generation) = self.next_phase(id) else {
            return;
        };
        let Some(ws) = self.workstream_of(id) else {
            return;
        };
        let (channel, blocking, timeout) =
            (ws.channel, ws.wrap_up_blocking, ws.timers.wrap_up_secs);
        let completes_after = if channel == Channel::LiveChat && self.rng.random_bool(0.1) {
            self.tick_after(timeout);
            None
        } else {
            let after = self.secs(10, 120);
            self.schedule_step(after, id, generation, Step::CompleteWrapUp);
            Some(after)
        };
        // Custom blocking hands the agent's capacity back partway through a wrap-up that
        // lasts long enough (a tick costs a scan of every live conversation: only when due).
        if let WrapUpBlocking::ForSeconds(secs) = blocking {
            if completes_after.is_none_or(|ms| ms > i64::from(secs) * 1000) {
                self.tick_after(Some(u64::from(secs)));
            }
        }
    }

    fn workstream_of(&self, id: ConversationId) -> Option<&Workstream> {
        let world = &self.engine.world;
        let c = world.conversations.get(&id)?;
        world.workstreams.get(&c.workstream)
    }

    /// Ticks when a timer of `secs` from now falls due, if there is such a timer.
    fn tick_after(&mut self, secs: Option<u64>) {
        if let Some(secs) = secs {
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            self.agenda.push_tick(self.engine.now.plus_secs(secs));
        }
    }

    /// Plays one step of the conversation's current phase. A refused step that must happen
    /// is tried again later; any other refused step is just counted.
    pub(super) fn play(
        &mut self,
        id: ConversationId,
        generation: u32,
        step: Step,
        out: &mut Vec<Event>,
    ) {
        let world = &self.engine.world;
        let Some(c) = world.conversations.get(&id) else {
            return;
        };
        let (status, channel, queue) = (c.status, c.channel, c.queue);
        // Agent steps are taken by whoever is primary when they run.
        let primary = c.primary;
        let done = match step {
            Step::Patience => {
                if status != ConversationStatus::Open {
                    return;
                }
                self.customer_leaves(id, channel, out)
            }
            Step::Pick => {
                if status != ConversationStatus::Open || c.pending_offer.is_some() {
                    return;
                }
                let ws = world
                    .queues
                    .get(&queue)
                    .and_then(|q| world.workstreams.get(&q.config.workstream));
                let picker = ws.and_then(|ws| {
                    pick_member(world, &mut self.rng, queue, |a| is_eligible(a, c, ws))
                });
                match picker {
                    Some(agent) => self.exec(
                        "pick",
                        Command::Pick {
                            agent,
                            conversation: id,
                        },
                        out,
                    ),
                    None => false,
                }
            }
            Step::CustomerMessage | Step::CustomerReply => self.exec(
                "customer message",
                Command::CustomerMessage { conversation: id },
                out,
            ),
            Step::CustomerBlip => {
                let dropped = self.exec(
                    "customer disconnect",
                    Command::CustomerDisconnect { conversation: id },
                    out,
                );
                if dropped {
                    let after = self.secs(10, CUSTOMER_RECONNECT_WINDOW_SECS - 10);
                    self.schedule(after, Action::CustomerReturns { conversation: id });
                }
                dropped
            }
            Step::CustomerEnd => self.exec(
                "customer end",
                Command::CustomerEnd { conversation: id },
                out,
            ),
            Step::CustomerDrop => self.customer_drops(id, channel, out),
            Step::ForceClose => self.exec(
                "force close",
                Command::ForceClose {
                    supervisor: SUPERVISOR,
                    conversation: id,
                },
                out,
            ),
            Step::ResumeWaiting => {
                let Some(agent) = c.last_primary else {
                    return;
                };
                let command = Command::ResumeWaiting {
                    agent,
                    conversation: id,
                };
                if !self.exec("resume waiting", command, out) {
                    // The agent could not take it back: the customer will write again.
                    let after = self.secs(300, 3600);
                    self.schedule_step(after, id, generation, Step::CustomerReply);
                }
                return;
            }
            _ => {
                let Some(agent) = primary else {
                    return;
                };
                let connected = world.agents.get(&agent).is_some_and(Agent::is_connected);
                if !connected {
                    // A dropped desktop sends nothing: the agent carries on once back, unless
                    // the grace runs out first and the conversation moves on without them.
                    self.schedule_step(RETRY_SECS * 1000, id, generation, step);
                    return;
                }
                self.agent_step(id, agent, step, out)
            }
        };
        if !done && step.must_happen() {
            self.schedule_step(RETRY_SECS * 1000, id, generation, step);
        }
    }

    /// A step the conversation's primary agent takes.
    fn agent_step(
        &mut self,
        id: ConversationId,
        agent: AgentId,
        step: Step,
        out: &mut Vec<Event>,
    ) -> bool {
        let world = &self.engine.world;
        let Some(c) = world.conversations.get(&id) else {
            return false;
        };
        let (attempt, command) = match step {
            Step::Focus => {
                let Some(session) = c.open_session_of(agent).map(|s| c.session_ref(s.number))
                else {
                    return false;
                };
                ("focus", Command::Focus { agent, session })
            }
            Step::Link { record, by_focus } => {
                let linked = self.exec(
                    "link",
                    Command::Link {
                        agent,
                        conversation: (!by_focus).then_some(id),
                        record,
                    },
                    out,
                );
                // Now and then the case is resolved in the CRM while the conversation runs.
                if linked && record.entity == LinkEntity::Incident && self.rng.random_bool(0.03) {
                    let after = self.secs(60, 1800);
                    let record = record.record;
                    self.schedule(after, Action::ResolveCase { record });
                }
                return linked;
            }
            Step::Unlink(slot) => {
                let Some(linked) = c.link(slot) else {
                    return false;
                };
                let command = Command::Unlink {
                    agent,
                    conversation: Some(id),
                    entity: linked.entity,
                    record: linked.record,
                };
                ("unlink", command)
            }
            Step::Hold => (
                "hold",
                Command::Hold {
                    agent,
                    conversation: id,
                },
            ),
            Step::Unhold => (
                "unhold",
                Command::Unhold {
                    agent,
                    conversation: id,
                },
            ),
            Step::Media(media, action) => {
                // A colleague who had the conversation before may have started it already.
                let running = matches!(c.media(media), MediaState::Running | MediaState::Paused);
                if action == MediaAction::Start && running {
                    return false;
                }
                // Some recordings are started by policy rather than by the agent.
                let actor = if action == MediaAction::Start && self.rng.random_bool(0.2) {
                    Actor::System
                } else {
                    Actor::Agent(agent)
                };
                let command = Command::Media {
                    actor,
                    conversation: id,
                    media,
                    action,
                };
                ("media", command)
            }
            Step::StartConsult => {
                let consultant = pick_member(world, &mut self.rng, c.queue, |a| {
                    a.profile.id != agent
                        && reachable(a)
                        && c.open_session_of(a.profile.id).is_none()
                });
                let Some(consultant) = consultant else {
                    return false;
                };
                let command = Command::StartConsult {
                    agent,
                    conversation: id,
                    consultant,
                };
                ("start consult", command)
            }
            Step::EndConsult => {
                let Some(consultant) = c.consultants.first().copied() else {
                    return false;
                };
                // The primary or the consultant leaves the consult.
                let by = if self.rng.random_bool(0.5) {
                    agent
                } else {
                    consultant
                };
                let command = Command::EndConsult {
                    agent: by,
                    conversation: id,
                    consultant,
                };
                ("end consult", command)
            }
            Step::Transfer => {
                let target = self.transfer_target(id, agent);
                let command = Command::Transfer {
                    agent,
                    conversation: id,
                    target,
                };
                ("transfer", command)
            }
            Step::CloseSession => (
                "close session",
                Command::CloseSession {
                    agent,
                    conversation: id,
                },
            ),
            Step::End => (
                "end",
                Command::End {
                    agent,
                    conversation: id,
                },
            ),
            Step::CompleteWrapUp => (
                "complete wrap-up",
                Command::CompleteWrapUp {
                    agent,
                    conversation: id,
                },
            ),
            Step::Patience
            | Step::Pick
            | Step::CustomerMessage
            | Step::CustomerReply
            | Step::CustomerBlip
            | Step::CustomerEnd
            | Step::CustomerDrop
            | Step::ResumeWaiting
            | Step::ForceClose => unreachable!("not an agent step: {step:?}"),
        };
        self.exec(attempt, command, out)
    }

    /// A colleague of the same queue who could take the conversation now, or else another
    /// queue of the same channel (the same queue when the channel has only one).
    fn transfer_target(&mut self, id: ConversationId, agent: AgentId) -> TransferTarget {
        let world = &self.engine.world;
        let c = &world.conversations[&id];
        let units = world
            .workstreams
            .get(&c.workstream)
            .map_or(1, |ws| ws.capacity_units);
        if self.rng.random_bool(0.6) {
            let colleague = pick_member(world, &mut self.rng, c.queue, |a| {
                a.profile.id != agent && reachable(a) && a.free_units() >= units
            });
            if let Some(colleague) = colleague {
                return TransferTarget::Agent(colleague);
            }
        }
        let others: Vec<QueueId> = self
            .queues
            .iter()
            .filter(|q| q.spec.channel == c.channel && q.id != c.queue)
            .map(|q| q.id)
            .collect();
        TransferTarget::Queue(others.choose(&mut self.rng).copied().unwrap_or(c.queue))
    }

    /// The customer gives up waiting: a chat customer ends it or closes the tab (and is gone
    /// once the reconnect window passes), a caller ends or hangs up, a messaging customer
    /// ends it.
    fn customer_leaves(
        &mut self,
        id: ConversationId,
        channel: Channel,
        out: &mut Vec<Event>,
    ) -> bool {
        if !channel.is_persistent() && self.rng.random_bool(0.5) {
            self.customer_drops(id, channel, out)
        } else {
            self.exec(
                "customer end",
                Command::CustomerEnd { conversation: id },
                out,
            )
        }
    }

    /// The customer drops for good. With a reconnect window the core decides when the window
    /// has passed; the simulation only makes sure a tick happens then.
    fn customer_drops(
        &mut self,
        id: ConversationId,
        channel: Channel,
        out: &mut Vec<Event>,
    ) -> bool {
        let command = Command::CustomerDisconnect { conversation: id };
        let dropped = self.exec("customer disconnect", command, out);
        if dropped && channel.has_reconnect_window() {
            let at = self.engine.now.plus_secs(CUSTOMER_RECONNECT_WINDOW_SECS);
            self.agenda.push_tick(at);
        }
        dropped
    }
}

/// A transfer or consult may only go to a connected agent who is Available or Busy.
fn reachable(agent: &Agent) -> bool {
    agent.is_connected() && agent.presence.base.accepts_transfers_and_consults()
}

/// A random member of `queue` that `fits`, drawn from the members in id order.
fn pick_member(
    world: &World,
    rng: &mut SmallRng,
    queue: QueueId,
    mut fits: impl FnMut(&Agent) -> bool,
) -> Option<AgentId> {
    let candidates: Vec<AgentId> = world
        .queues
        .get(&queue)?
        .members()
        .filter_map(|id| world.agents.get(&id))
        .filter(|a| fits(a))
        .map(|a| a.profile.id)
        .collect();
    candidates.choose(rng).copied()
}
