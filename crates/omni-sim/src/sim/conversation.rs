//! How customers, agents and supervisors move a conversation along: reactions to what the
//! engine decided, and the steps of each phase.

use omni_core::{
    Actor, Agent, AgentId, CUSTOMER_RECONNECT_WINDOW_SECS, Channel, Command, ConversationId,
    ConversationStatus, Event, LinkEntity, MediaAction, MediaState, QueueId, SessionRef, Timestamp,
    Workstream, WrapUpBlocking, is_eligible,
};

use super::Simulation;
use super::agenda::Action;
use crate::behaviour::{
    self, OfferAnswer, RETRY_SECS, SUPERVISOR, WhileWaiting, pick_member, transfer_target,
};
use crate::script::{self, Step};

impl Simulation {
    /// The conversation is Open in `queue`: its customer's patience starts, and in a pick
    /// queue a member will pick it.
    pub(super) fn await_agent(&mut self, id: ConversationId, queue: QueueId, generation: u32) {
        self.wait_patiently(id, generation);
        if !self.routes_by_push(queue) {
            let after = behaviour::pick_after_ms(&mut self.rng);
            self.schedule_step(after, id, generation, Step::Pick);
        }
    }

    /// A few customers leave almost at once; the others wait as long as their channel makes
    /// them expect to: briefly on the phone, longer in a chat, hours on a messaging app.
    pub(super) fn wait_patiently(&mut self, id: ConversationId, generation: u32) {
        let Some(channel) = self.engine.world.conversations.get(&id).map(|c| c.channel) else {
            return;
        };
        let patience = behaviour::patience_ms(&mut self.rng, channel);
        self.schedule_step(patience, id, generation, Step::Patience);
    }

    /// Most offers are accepted within seconds; some are rejected, some left to time out.
    pub(super) fn answer(&mut self, session: SessionRef, agent: AgentId, expires_at: Timestamp) {
        let timeout_secs = expires_at.since(self.engine.now) / 1000;
        let (after, accept) = match behaviour::answer_offer(&mut self.rng, timeout_secs) {
            OfferAnswer::Accept { after_ms } => (after_ms, true),
            OfferAnswer::Reject { after_ms } => (after_ms, false),
            OfferAnswer::Ignore => {
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
        match behaviour::while_waiting(&mut self.rng) {
            WhileWaiting::CustomerReplies { after_ms } => {
                self.schedule_step(after_ms, id, generation, Step::CustomerReply);
            }
            WhileWaiting::AgentResumes { after_ms } => {
                self.schedule_step(after_ms, id, generation, Step::ResumeWaiting);
            }
            WhileWaiting::LeftToTimer => {
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
        let completes_after = behaviour::wrap_up_ms(&mut self.rng, channel);
        match completes_after {
            Some(after) => self.schedule_step(after, id, generation, Step::CompleteWrapUp),
            None => self.tick_after(timeout),
        }
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
                    let after = behaviour::blip_return_ms(&mut self.rng);
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
                    let after = behaviour::reply_after_failed_resume_ms(&mut self.rng);
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
                if linked && record.entity == LinkEntity::Incident {
                    if let Some(after) = behaviour::case_resolved_after_ms(&mut self.rng) {
                        let record = record.record;
                        self.schedule(after, Action::ResolveCase { record });
                    }
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
                let actor = if action == MediaAction::Start
                    && behaviour::recording_started_by_policy(&mut self.rng)
                {
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
                let consultant = behaviour::consultant(world, &mut self.rng, id, agent);
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
                let by = if behaviour::primary_ends_consult(&mut self.rng) {
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
                let Some(target) = transfer_target(world, &self.queues, &mut self.rng, id, agent)
                else {
                    return false;
                };
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

    /// The customer gives up waiting: a chat customer ends it or closes the tab (and is gone
    /// once the reconnect window passes), a caller ends or hangs up, a messaging customer
    /// ends it.
    fn customer_leaves(
        &mut self,
        id: ConversationId,
        channel: Channel,
        out: &mut Vec<Event>,
    ) -> bool {
        if behaviour::leaves_by_dropping(&mut self.rng, channel) {
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
