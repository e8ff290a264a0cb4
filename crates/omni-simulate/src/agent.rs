//! An agent: one task per agent, listening on its desktop subject like a real desktop. It
//! answers offers after a think time (or rejects them, or lets them time out), plays a
//! handling script for each conversation it takes (focus, links, holds, recordings, consults,
//! transfers to colleagues and queues, closing for waiting, ending), completes wrap-ups,
//! picks from pick-mode queues, leaves consults, and between conversations takes breaks,
//! drops its connection and signs out and back in. Every decision is drawn from the agent's
//! own seeded generator with `omni-sim`'s odds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use futures_util::StreamExt;
use omni_core::{
    Actor, AgentId, Channel, Command, ConversationId, EventKind, LinkEntity, MediaAction,
    MediaState, OfferOrigin, PresenceId, RecordId, SessionNo, SessionRef,
};
use omni_sim::behaviour::{
    self, OfferAnswer, RETRY_SECS, Routine, SUPERVISOR, WhileWaiting, transfer_target,
};
use omni_sim::center::AgentPlan;
use omni_sim::script::{self, Ending, Plan, Step};
use rand::rngs::SmallRng;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::shared::{Agenda, AgentPrompt, CustomerMsg, Sent, Shared, sleep_until};

/// What one agent did during the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AgentStats {
    pub offers: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub ignored: u64,
    /// Conversations taken (accepted, picked, transferred in or resumed).
    pub handled: u64,
    pub transfers: u64,
    pub consults_started: u64,
    pub consulted: u64,
    pub wrap_ups: u64,
    pub breaks: u64,
    pub drops: u64,
    pub sign_outs: u64,
}

#[derive(Debug)]
enum Act {
    Answer {
        session: SessionRef,
        accept: bool,
    },
    /// A step of one handling; stale once that handling is over.
    Step {
        conversation: ConversationId,
        handling: u64,
        step: Step,
    },
    CompleteWrapUp(ConversationId),
    Resume(ConversationId),
    ResolveCase(RecordId),
    Routine,
    BackToWork,
    Reconnect,
    SignIn,
}

/// A conversation this agent is primary on.
#[derive(Debug)]
struct Work {
    handling: u64,
    session: Option<SessionNo>,
}

pub(crate) struct AgentActor {
    plan: AgentPlan,
    rng: SmallRng,
    shared: Arc<Shared>,
    agenda: Agenda<Act>,
    working: HashMap<ConversationId, Work>,
    wrapping: HashMap<ConversationId, Channel>,
    /// Plans of conversations that are not this run's customers' (left by an earlier run).
    foreign: HashMap<ConversationId, Plan>,
    pending_answers: HashSet<SessionRef>,
    next_handling: u64,
    signed_in: bool,
    connected: bool,
    /// The administrator's default presence holds the agent Away: they will set Available.
    away_by_default: bool,
    drop_outlasts_grace: bool,
    draining: bool,
    stats: AgentStats,
}

impl AgentActor {
    pub fn new(plan: AgentPlan, rng: SmallRng, shared: Arc<Shared>) -> AgentActor {
        AgentActor {
            plan,
            rng,
            shared,
            agenda: Agenda::default(),
            working: HashMap::new(),
            wrapping: HashMap::new(),
            foreign: HashMap::new(),
            pending_answers: HashSet::new(),
            next_handling: 0,
            signed_in: false,
            connected: true,
            away_by_default: false,
            drop_outlasts_grace: false,
            draining: false,
            stats: AgentStats::default(),
        }
    }

    fn id(&self) -> AgentId {
        self.plan.id()
    }

    /// Signs in, then works until told to stop; goes home (signs out) if nothing is left.
    pub async fn run(
        mut self,
        mut desk: async_nats::Subscriber,
        mut inbox: mpsc::UnboundedReceiver<AgentPrompt>,
    ) -> AgentStats {
        self.sign_in().await;
        loop {
            tokio::select! {
                prompt = inbox.recv() => match prompt {
                    None | Some(AgentPrompt::Stop) => break,
                    Some(AgentPrompt::Drain) => self.draining = true,
                    Some(AgentPrompt::Pick(conversation)) => self.pick(conversation).await,
                    Some(AgentPrompt::LeaveConsult(conversation)) => {
                        self.leave_consult(conversation).await;
                    }
                },
                message = desk.next() => {
                    let Some(message) = message else { break };
                    self.notified(&message.payload).await;
                }
                () = sleep_until(self.agenda.next_at()) => {
                    while let Some(act) = self.agenda.pop_due(Instant::now()) {
                        self.act(act).await;
                    }
                }
            }
        }
        self.go_home().await;
        self.stats
    }

    async fn go_home(&mut self) {
        if !self.signed_in || !self.working.is_empty() || !self.wrapping.is_empty() {
            return;
        }
        if !self.connected
            && !self
                .send(Command::Reconnect { agent: self.id() })
                .await
                .ok()
        {
            return;
        }
        self.send(Command::SignOut { agent: self.id() }).await;
    }

    fn after(&mut self, engine_ms: i64, act: Act) {
        let at = Instant::now() + self.shared.scale.wall(engine_ms);
        self.agenda.push(at, act);
    }

    async fn send(&self, command: Command) -> Sent {
        self.shared.send(Actor::Agent(self.id()), command).await
    }

    /// One desktop notification: the event it carries says what happened.
    async fn notified(&mut self, payload: &[u8]) {
        let Ok(envelope) = omni_proto::decode(payload) else {
            tracing::warn!(agent = %self.id(), "unreadable desktop notification");
            return;
        };
        let me = self.id();
        let at = envelope.event.at;
        match envelope.event.kind {
            EventKind::IncomingSessionRequest {
                session,
                agent,
                origin,
                expires_at,
                ..
            } if agent == me => {
                self.stats.offers += 1;
                // Intake → offer is routing's latency: transfers and picks come later.
                if origin == OfferOrigin::Routing {
                    self.shared.note_offer(session.conversation);
                }
                // A pick is accepted in the same decision.
                if origin == OfferOrigin::Pick {
                    return;
                }
                let timeout_secs = expires_at.since(at) / 1000;
                match behaviour::answer_offer(&mut self.rng, timeout_secs) {
                    OfferAnswer::Accept { after_ms } => {
                        self.pending_answers.insert(session);
                        self.after(
                            after_ms,
                            Act::Answer {
                                session,
                                accept: true,
                            },
                        );
                    }
                    OfferAnswer::Reject { after_ms } => {
                        self.pending_answers.insert(session);
                        self.after(
                            after_ms,
                            Act::Answer {
                                session,
                                accept: false,
                            },
                        );
                    }
                    OfferAnswer::Ignore => {
                        self.stats.ignored += 1;
                        self.shared.counters.offers_ignored.fetch_add(1, Relaxed);
                    }
                }
            }
            EventKind::SessionAccepted { session, agent, .. } if agent == me => {
                self.start_handling(session.conversation, Some(session.number));
            }
            EventKind::ConversationResumed {
                conversation,
                agent,
                ..
            } if agent == me => self.start_handling(conversation, None),
            EventKind::OfferRejected { session, .. }
            | EventKind::OfferTimedOut { session, .. }
            | EventKind::OfferWithdrawn { session, .. } => {
                self.pending_answers.remove(&session);
            }
            EventKind::TransferInitiated {
                conversation, from, ..
            } if from == me => {
                self.working.remove(&conversation);
            }
            EventKind::SessionClosed { session, agent, .. } if agent == me => {
                let mine = self
                    .working
                    .get(&session.conversation)
                    .is_some_and(|w| w.session.is_none_or(|n| n == session.number));
                if mine {
                    self.working.remove(&session.conversation);
                }
            }
            // The primary agent wraps up; consultants hear of it too.
            EventKind::EndConversation { conversation, .. }
                if self.working.remove(&conversation).is_some() =>
            {
                self.wrap_up(conversation);
            }
            EventKind::ConversationClosed { conversation, .. } => {
                self.working.remove(&conversation);
                self.wrapping.remove(&conversation);
                self.foreign.remove(&conversation);
            }
            EventKind::ConsultStarted { consultant, .. } if consultant == me => {
                self.stats.consulted += 1;
            }
            _ => {}
        }
    }

    /// The agent took the conversation: their handling script starts.
    fn start_handling(&mut self, conversation: ConversationId, session: Option<SessionNo>) {
        self.stats.handled += 1;
        self.next_handling += 1;
        let handling = self.next_handling;
        let script = {
            let mut conversations = self.shared.conversations();
            match conversations.get_mut(&conversation) {
                Some(t) => {
                    let channel = self.shared.queues[t.queue].spec.channel;
                    script::handling(&mut t.plan, channel, &mut self.rng)
                }
                None => {
                    drop(conversations);
                    let Some(channel) = self
                        .shared
                        .world()
                        .conversations
                        .get(&conversation)
                        .map(|c| c.channel)
                    else {
                        return;
                    };
                    let rng = &mut self.rng;
                    let plan = self.foreign.entry(conversation).or_insert_with(|| {
                        // Nobody plays this customer: the agent ends it.
                        let mut plan = Plan::draw(channel, rng);
                        plan.ending = Ending::Agent;
                        plan
                    });
                    script::handling(plan, channel, &mut self.rng)
                }
            }
        };
        self.working
            .insert(conversation, Work { handling, session });
        let mut after = 0;
        for (gap, step) in script.steps {
            after += gap;
            self.after(
                after,
                Act::Step {
                    conversation,
                    handling,
                    step,
                },
            );
        }
    }

    /// In wrap-up: complete it after a while, or leave it to the wrap-up auto-close.
    fn wrap_up(&mut self, conversation: ConversationId) {
        let channel = self
            .shared
            .world()
            .conversations
            .get(&conversation)
            .map_or(Channel::LiveChat, |c| c.channel);
        self.wrapping.insert(conversation, channel);
        if let Some(after) = behaviour::wrap_up_ms(&mut self.rng, channel) {
            self.after(after, Act::CompleteWrapUp(conversation));
        }
    }

    async fn act(&mut self, act: Act) {
        match act {
            Act::Answer { session, accept } => {
                if !self.pending_answers.remove(&session) {
                    return;
                }
                let agent = self.id();
                if accept {
                    if self.send(Command::Accept { agent, session }).await.ok() {
                        self.stats.accepted += 1;
                    }
                } else if self.send(Command::Reject { agent, session }).await.ok() {
                    self.stats.rejected += 1;
                }
            }
            Act::Step {
                conversation,
                handling,
                step,
            } => {
                let current = self
                    .working
                    .get(&conversation)
                    .is_some_and(|w| w.handling == handling);
                if !current {
                    return;
                }
                if !self.connected || !self.signed_in {
                    // A dropped desktop sends nothing: the agent carries on once back.
                    let again = Act::Step {
                        conversation,
                        handling,
                        step,
                    };
                    self.after(RETRY_SECS * 1000, again);
                    return;
                }
                let done = self.step(conversation, step).await;
                if !done && step.must_happen() {
                    let again = Act::Step {
                        conversation,
                        handling,
                        step,
                    };
                    self.after(RETRY_SECS * 1000, again);
                }
            }
            Act::CompleteWrapUp(conversation) => {
                if !self.wrapping.contains_key(&conversation) {
                    return;
                }
                let command = Command::CompleteWrapUp {
                    agent: self.id(),
                    conversation,
                };
                if self.connected && self.send(command).await.ok() {
                    self.stats.wrap_ups += 1;
                    self.wrapping.remove(&conversation);
                } else {
                    self.after(RETRY_SECS * 1000, Act::CompleteWrapUp(conversation));
                }
            }
            Act::Resume(conversation) => {
                let command = Command::ResumeWaiting {
                    agent: self.id(),
                    conversation,
                };
                if !self.send(command).await.ok() {
                    // The agent could not take it back: the customer will write again.
                    let after = behaviour::reply_after_failed_resume_ms(&mut self.rng);
                    self.shared
                        .tell_customer(conversation, CustomerMsg::ReplyAfter(after));
                }
            }
            Act::ResolveCase(record) => {
                self.shared
                    .send(Actor::System, Command::ResolveCase { record })
                    .await;
            }
            Act::Routine => self.routine().await,
            Act::BackToWork => {
                let command = Command::SetPresence {
                    agent: self.id(),
                    presence: PresenceId::AVAILABLE,
                };
                self.send(command).await;
                self.away_by_default = false;
                self.plan_routine();
            }
            Act::Reconnect => {
                if self
                    .send(Command::Reconnect { agent: self.id() })
                    .await
                    .ok()
                {
                    self.connected = true;
                    self.away_by_default = self.drop_outlasts_grace && self.starts_away();
                }
                self.after_arrival();
            }
            Act::SignIn => self.sign_in().await,
        }
    }

    /// One step of the handling script; whether it was done.
    async fn step(&mut self, conversation: ConversationId, step: Step) -> bool {
        let me = self.id();
        let command = match step {
            Step::CustomerMessage
            | Step::CustomerReply
            | Step::CustomerBlip
            | Step::CustomerEnd
            | Step::CustomerDrop => {
                self.shared
                    .tell_customer(conversation, CustomerMsg::Line(step));
                return true;
            }
            Step::Focus => {
                let session = self.working.get(&conversation).and_then(|w| w.session);
                let session = session.or_else(|| {
                    let world = self.shared.world();
                    let c = world.conversations.get(&conversation)?;
                    c.open_session_of(me).map(|s| s.number)
                });
                let Some(number) = session else {
                    return false;
                };
                Command::Focus {
                    agent: me,
                    session: SessionRef {
                        conversation,
                        number,
                    },
                }
            }
            Step::Link { record, by_focus } => {
                let command = Command::Link {
                    agent: me,
                    conversation: (!by_focus).then_some(conversation),
                    record,
                };
                let linked = self.send(command).await.ok();
                if linked && record.entity == LinkEntity::Incident {
                    if let Some(after) = behaviour::case_resolved_after_ms(&mut self.rng) {
                        self.after(after, Act::ResolveCase(record.record));
                    }
                }
                return linked;
            }
            Step::Unlink(slot) => {
                let linked = self
                    .shared
                    .world()
                    .conversations
                    .get(&conversation)
                    .and_then(|c| c.link(slot));
                let Some(linked) = linked else {
                    return false;
                };
                Command::Unlink {
                    agent: me,
                    conversation: Some(conversation),
                    entity: linked.entity,
                    record: linked.record,
                }
            }
            Step::Hold => Command::Hold {
                agent: me,
                conversation,
            },
            Step::Unhold => Command::Unhold {
                agent: me,
                conversation,
            },
            Step::Media(media, action) => {
                // A colleague who had the conversation before may have started it already.
                let running = self
                    .shared
                    .world()
                    .conversations
                    .get(&conversation)
                    .is_some_and(|c| {
                        matches!(c.media(media), MediaState::Running | MediaState::Paused)
                    });
                if action == MediaAction::Start && running {
                    return false;
                }
                let actor = if action == MediaAction::Start
                    && behaviour::recording_started_by_policy(&mut self.rng)
                {
                    Actor::System
                } else {
                    Actor::Agent(me)
                };
                let command = Command::Media {
                    actor,
                    conversation,
                    media,
                    action,
                };
                return self.shared.send(actor, command).await.ok();
            }
            Step::StartConsult => {
                let consultant = {
                    let world = self.shared.world();
                    behaviour::consultant(&world, &mut self.rng, conversation, me)
                };
                let Some(consultant) = consultant else {
                    return false;
                };
                let started = self
                    .send(Command::StartConsult {
                        agent: me,
                        conversation,
                        consultant,
                    })
                    .await
                    .ok();
                if started {
                    self.stats.consults_started += 1;
                }
                return started;
            }
            Step::EndConsult => {
                let consultant = self
                    .shared
                    .world()
                    .conversations
                    .get(&conversation)
                    .and_then(|c| c.consultants.first().copied());
                let Some(consultant) = consultant else {
                    return false;
                };
                if !behaviour::primary_ends_consult(&mut self.rng) {
                    // The consultant leaves on their own desktop.
                    self.shared
                        .prompt_agent(consultant, AgentPrompt::LeaveConsult(conversation));
                    return true;
                }
                Command::EndConsult {
                    agent: me,
                    conversation,
                    consultant,
                }
            }
            Step::Transfer => {
                let target = {
                    let world = self.shared.world();
                    transfer_target(&world, &self.shared.queues, &mut self.rng, conversation, me)
                };
                let Some(target) = target else {
                    return false;
                };
                let moved = self
                    .send(Command::Transfer {
                        agent: me,
                        conversation,
                        target,
                    })
                    .await
                    .ok();
                if moved {
                    self.stats.transfers += 1;
                }
                return moved;
            }
            Step::CloseSession => {
                let closed = self
                    .send(Command::CloseSession {
                        agent: me,
                        conversation,
                    })
                    .await
                    .ok();
                if closed {
                    match behaviour::while_waiting(&mut self.rng) {
                        WhileWaiting::CustomerReplies { after_ms } => self
                            .shared
                            .tell_customer(conversation, CustomerMsg::ReplyAfter(after_ms)),
                        WhileWaiting::AgentResumes { after_ms } => {
                            self.after(after_ms, Act::Resume(conversation));
                        }
                        WhileWaiting::LeftToTimer => {}
                    }
                }
                return closed;
            }
            Step::End => Command::End {
                agent: me,
                conversation,
            },
            Step::ForceClose => {
                let command = Command::ForceClose {
                    supervisor: SUPERVISOR,
                    conversation,
                };
                return self
                    .shared
                    .send(Actor::Supervisor(SUPERVISOR), command)
                    .await
                    .ok();
            }
            // Not part of a handling script.
            Step::Patience | Step::Pick | Step::ResumeWaiting | Step::CompleteWrapUp => {
                return false;
            }
        };
        self.send(command).await.ok()
    }

    async fn pick(&mut self, conversation: ConversationId) {
        if self.connected && self.signed_in {
            self.send(Command::Pick {
                agent: self.id(),
                conversation,
            })
            .await;
        }
    }

    async fn leave_consult(&mut self, conversation: ConversationId) {
        if self.connected {
            let me = self.id();
            self.send(Command::EndConsult {
                agent: me,
                conversation,
                consultant: me,
            })
            .await;
        }
    }

    fn starts_away(&self) -> bool {
        self.plan.profile.default_presence == PresenceId::AWAY
    }

    async fn sign_in(&mut self) {
        match self.send(Command::SignIn { agent: self.id() }).await {
            // Already signed in (a center left running by an earlier run) is signed in too.
            Sent::Accepted | Sent::Rejected(_) => {
                self.signed_in = true;
                self.connected = true;
                self.away_by_default = self.starts_away();
            }
            Sent::Unanswered => {}
        }
        self.after_arrival();
    }

    /// After sign-in or a late reconnect the default presence may hold the agent Away: they
    /// set themselves Available shortly. Otherwise routines resume.
    fn after_arrival(&mut self) {
        if self.away_by_default {
            let after = behaviour::back_from_default_presence_ms(&mut self.rng);
            self.after(after, Act::BackToWork);
        } else {
            self.plan_routine();
        }
    }

    fn plan_routine(&mut self) {
        let after = behaviour::routine_gap_ms(&mut self.rng);
        self.after(after, Act::Routine);
    }

    /// Breaks, dropped connections and sign-outs, each followed by the return that ends it.
    /// Once customers stop arriving, agents stop taking breaks: the center is closing.
    async fn routine(&mut self) {
        if self.draining {
            return;
        }
        let agent = self.id();
        let back = match behaviour::routine(&mut self.rng) {
            Routine::Break(presence) => {
                if self
                    .send(Command::SetPresence { agent, presence })
                    .await
                    .ok()
                {
                    self.stats.breaks += 1;
                    Some((behaviour::break_ms(&mut self.rng), Act::BackToWork))
                } else {
                    None
                }
            }
            Routine::Drop => {
                if self.send(Command::Disconnect { agent }).await.ok() {
                    self.stats.drops += 1;
                    self.connected = false;
                    let length = behaviour::drop_length(&mut self.rng);
                    self.drop_outlasts_grace = length.outlasts_grace;
                    Some((length.after_ms, Act::Reconnect))
                } else {
                    None
                }
            }
            Routine::SignOut => {
                if self.send(Command::SignOut { agent }).await.ok() {
                    self.stats.sign_outs += 1;
                    self.signed_in = false;
                    Some((behaviour::sign_out_ms(&mut self.rng), Act::SignIn))
                } else {
                    None
                }
            }
            Routine::Nothing => None,
        };
        match back {
            Some((after, act)) => self.after(after, act),
            None => self.plan_routine(),
        }
    }
}
