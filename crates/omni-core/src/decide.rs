//! `decide`: every business rule of the engine, as a pure function.
//!
//! A command is judged against a copy-on-touch overlay of the world: each emitted event is
//! folded into the overlay at once, so the rest of the decision sees it (two offers in one
//! assignment cycle both count against an agent's capacity). The world itself is never
//! touched; a rejection therefore leaves it exactly as it was and emits nothing.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::command::Command;
use crate::config::{
    AGENT_DISCONNECT_GRACE_SECS, AgentProfile, CUSTOMER_RECONNECT_WINDOW_SECS, CustomPresence,
    MAX_CONSULTANTS, QueueConfig, Workstream,
};
use crate::event::{Event, EventKind};
use crate::model::{
    Actor, AgentId, BaseStatus, ClosureReason, ConversationId, ConversationStatus, LinkEntity,
    LinkedRecord, MediaAction, MediaKind, MediaState, OfferOrigin, Presence, PresenceId,
    PresenceSource, QueueId, RecordId, RoutingMode, SessionRef, StatusReason, TabOutcome,
    Timestamp, TransferTarget, WorkstreamId, WrapUpBlocking,
};
use crate::routing::{self, View};
use crate::state::{self, Agent, Conversation, Entities, Queue, SessionRole, World};
use crate::timers::{self, Due, Timing};

/// Why a command was refused. The message names who and what, for the person who asked.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Rejection {
    #[error("{0} does not exist")]
    UnknownConversation(ConversationId),
    #[error("{0} is not provisioned")]
    UnknownAgent(AgentId),
    #[error("{0} does not exist")]
    UnknownQueue(QueueId),
    #[error("{0} does not exist")]
    UnknownWorkstream(WorkstreamId),
    #[error("{0} does not exist")]
    UnknownSession(SessionRef),
    #[error("{0} is neither an out-of-the-box nor a defined custom presence")]
    UnknownPresence(PresenceId),
    #[error("{0} already exists")]
    ConversationExists(ConversationId),
    #[error("{conversation} is closed; a closed conversation never changes again")]
    ConversationClosed { conversation: ConversationId },
    #[error("{agent} is not the primary agent of {conversation}")]
    NotPrimary {
        agent: AgentId,
        conversation: ConversationId,
    },
    #[error("{conversation} is {status:?}; {action} needs it to be {needed}")]
    WrongStatus {
        conversation: ConversationId,
        status: ConversationStatus,
        action: &'static str,
        needed: &'static str,
    },
    #[error("{0} is not signed in")]
    NotSignedIn(AgentId),
    #[error("{0} is already signed in")]
    AlreadySignedIn(AgentId),
    #[error("{0} is disconnected")]
    Disconnected(AgentId),
    #[error("{0} is connected")]
    NotDisconnected(AgentId),
    #[error("{agent} is {base:?} and cannot be offered transfers or consults")]
    TargetUnavailable { agent: AgentId, base: BaseStatus },
    #[error("{agent} cannot {action} with themselves")]
    SelfTarget {
        agent: AgentId,
        action: &'static str,
    },
    #[error("{conversation} already has {max} consultants")]
    TooManyConsultants {
        conversation: ConversationId,
        max: usize,
    },
    #[error("{agent} already has a session on {conversation}")]
    AlreadyInConversation {
        agent: AgentId,
        conversation: ConversationId,
    },
    #[error("{agent} is not a consultant on {conversation}")]
    NotConsultant {
        agent: AgentId,
        conversation: ConversationId,
    },
    #[error("{agent} has {available} capacity units free; {conversation} needs {needed}")]
    NoCapacity {
        agent: AgentId,
        conversation: ConversationId,
        needed: u32,
        available: u32,
    },
    #[error("{session} is not an open offer to {agent}")]
    NotAnOpenOffer { session: SessionRef, agent: AgentId },
    #[error("{session} expired at {expires_at:?}")]
    OfferExpired {
        session: SessionRef,
        expires_at: Timestamp,
    },
    #[error("{session} is not an open session of {agent}")]
    NotOwnSession { session: SessionRef, agent: AgentId },
    #[error("{conversation} is already offered to an agent")]
    AlreadyOffered { conversation: ConversationId },
    #[error("no agent of {queue} can take {conversation} now")]
    NoEligibleAgent {
        conversation: ConversationId,
        queue: QueueId,
    },
    #[error("{agent} cannot take {conversation}: {why}")]
    NotEligible {
        agent: AgentId,
        conversation: ConversationId,
        why: &'static str,
    },
    #[error("{queue} routes in pick mode: agents pick its conversations")]
    PickModeQueue { queue: QueueId },
    #[error("{queue} has no agents, so nobody could take {conversation} there")]
    QueueHasNoAgents {
        queue: QueueId,
        conversation: ConversationId,
    },
    #[error("{conversation} is on {channel:?}, which {why}")]
    ChannelDoesNotSupport {
        conversation: ConversationId,
        channel: crate::model::Channel,
        why: &'static str,
    },
    #[error("{conversation} call is {state:?}; cannot {action}")]
    CallState {
        conversation: ConversationId,
        state: crate::model::CallActivity,
        action: &'static str,
    },
    #[error("{media:?} on {conversation} is {state:?}; cannot {action:?}")]
    MediaTransition {
        conversation: ConversationId,
        media: MediaKind,
        state: MediaState,
        action: MediaAction,
    },
    #[error("{actor} may not control recording or transcription")]
    MediaActor { actor: Actor },
    #[error("{agent} has no focused session to link or unlink")]
    NoFocusedConversation { agent: AgentId },
    #[error("{entity} {record} is not linked to {conversation}")]
    NotLinked {
        conversation: ConversationId,
        entity: &'static str,
        record: RecordId,
    },
    #[error("{agent} still handles {count} conversation(s); end or transfer them first")]
    StillHandling { agent: AgentId, count: usize },
    #[error("{agent} is not a member of {queue}")]
    NotMember { agent: AgentId, queue: QueueId },
    #[error("{agent} is already a member of {queue}")]
    AlreadyMember { agent: AgentId, queue: QueueId },
    #[error("only {expected} may revive waiting {conversation}")]
    NotLastAgent {
        conversation: ConversationId,
        expected: AgentId,
    },
    #[error("the customer of {conversation} is {state}")]
    CustomerConnection {
        conversation: ConversationId,
        state: &'static str,
    },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// Judges `command` at time `now`: the events to append, or why not.
pub fn decide(world: &World, command: Command, now: Timestamp) -> Result<Vec<Event>, Rejection> {
    let mut tx = Tx::new(world, now);
    tx.run(command)?;
    Ok(tx.events)
}

/// [`crate::on_tick_by_scan`]: `Tick` judged by scanning the whole world.
pub(crate) fn tick_by_scan(world: &World, now: Timestamp) -> Vec<Event> {
    let mut tx = Tx::new(world, now);
    tx.tick_by_scan();
    tx.events
}

/// The world as this decision has changed it so far.
struct Tx<'w> {
    base: &'w World,
    now: Timestamp,
    agents: BTreeMap<AgentId, Agent>,
    conversations: BTreeMap<ConversationId, Box<Conversation>>,
    queues: BTreeMap<QueueId, Queue>,
    workstreams: BTreeMap<WorkstreamId, Workstream>,
    presences: BTreeMap<PresenceId, CustomPresence>,
    events: Vec<Event>,
}

impl View for Tx<'_> {
    fn agent(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(&id).or_else(|| self.base.agents.get(&id))
    }
    fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations
            .get(&id)
            .or_else(|| self.base.conversations.get(&id))
            .map(Box::as_ref)
    }
    fn queue(&self, id: QueueId) -> Option<&Queue> {
        self.queues.get(&id).or_else(|| self.base.queues.get(&id))
    }
    fn workstream(&self, id: WorkstreamId) -> Option<&Workstream> {
        self.workstreams
            .get(&id)
            .or_else(|| self.base.workstreams.get(&id))
    }
    fn custom_presence(&self, id: PresenceId) -> Option<&CustomPresence> {
        self.presences
            .get(&id)
            .or_else(|| self.base.custom_presences.get(&id))
    }
}

/// Copies an entity into the overlay on first write.
fn touch<'a, K: Ord + Copy, V: Clone>(
    overlay: &'a mut BTreeMap<K, V>,
    base: &BTreeMap<K, V>,
    id: K,
) -> Option<&'a mut V> {
    match overlay.entry(id) {
        std::collections::btree_map::Entry::Occupied(entry) => Some(entry.into_mut()),
        std::collections::btree_map::Entry::Vacant(entry) => {
            Some(entry.insert(base.get(&id)?.clone()))
        }
    }
}

/// The overlay keeps no indexes of its own (copying the world's on first touch would cost
/// O(n) a decision): `decide` reads the world's, before it has changed anything they cover,
/// except `Tick`, which also visits the conversations it has touched.
impl Entities for Tx<'_> {
    const INDEXED: bool = false;
    fn agent_ref(&self, id: AgentId) -> Option<&Agent> {
        self.agent(id)
    }
    fn queue_ref(&self, id: QueueId) -> Option<&Queue> {
        self.queue(id)
    }
    fn workstream_ref(&self, id: WorkstreamId) -> Option<&Workstream> {
        self.workstream(id)
    }
    fn agent_mut(&mut self, id: AgentId) -> Option<&mut Agent> {
        touch(&mut self.agents, &self.base.agents, id)
    }
    fn conversation_and_timing(
        &mut self,
        id: ConversationId,
        timing: bool,
    ) -> Option<(&mut Conversation, Option<Timing>)> {
        let base = self.base;
        let c = touch(&mut self.conversations, &base.conversations, id)?;
        let timing = if timing {
            let ws = c.workstream;
            self.workstreams
                .get(&ws)
                .or_else(|| base.workstreams.get(&ws))
                .map(Timing::of)
        } else {
            None
        };
        Some((c, timing))
    }
    fn queue_mut(&mut self, id: QueueId) -> Option<&mut Queue> {
        touch(&mut self.queues, &self.base.queues, id)
    }
    fn insert_agent(&mut self, agent: Agent) {
        self.agents.insert(agent.profile.id, agent);
    }
    fn insert_conversation(&mut self, conversation: Conversation) {
        self.conversations
            .insert(conversation.id, Box::new(conversation));
    }
    fn insert_queue(&mut self, queue: Queue) {
        self.queues.insert(queue.config.id, queue);
    }
    fn insert_workstream(&mut self, workstream: Workstream) {
        self.workstreams.insert(workstream.id, workstream);
    }
    fn insert_custom_presence(&mut self, presence: CustomPresence) {
        self.presences.insert(presence.id, presence);
    }
    fn reindex_conversation(&mut self, _: ConversationId, _: state::Keys, _: state::Keys) {}
    fn reindex_agent(&mut self, _: AgentId, _: Option<Timestamp>, _: Option<Timestamp>) {}
}

type Verdict = Result<(), Rejection>;

impl<'w> Tx<'w> {
    fn new(base: &'w World, now: Timestamp) -> Self {
        Tx {
            base,
            now,
            agents: BTreeMap::new(),
            conversations: BTreeMap::new(),
            queues: BTreeMap::new(),
            workstreams: BTreeMap::new(),
            presences: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    fn emit(&mut self, kind: EventKind) {
        let event = Event { at: self.now, kind };
        state::fold(self, &event);
        self.events.push(event);
    }

    // --- lookups that reject ---------------------------------------------------------------

    fn agent_or_reject(&self, id: AgentId) -> Result<&Agent, Rejection> {
        self.agent(id).ok_or(Rejection::UnknownAgent(id))
    }

    fn connected_agent(&self, id: AgentId) -> Result<&Agent, Rejection> {
        let agent = self.agent_or_reject(id)?;
        if !agent.signed_in {
            return Err(Rejection::NotSignedIn(id));
        }
        if agent.disconnected.is_some() {
            return Err(Rejection::Disconnected(id));
        }
        Ok(agent)
    }

    fn conversation_or_reject(&self, id: ConversationId) -> Result<&Conversation, Rejection> {
        self.conversation(id)
            .ok_or(Rejection::UnknownConversation(id))
    }

    /// A conversation that is not closed: Closed is final, anything about it is refused.
    fn live_conversation(&self, id: ConversationId) -> Result<&Conversation, Rejection> {
        let c = self.conversation_or_reject(id)?;
        if c.status == ConversationStatus::Closed {
            return Err(Rejection::ConversationClosed { conversation: id });
        }
        Ok(c)
    }

    /// A conversation `agent` is the primary agent of, in `status`.
    fn primary_conversation(
        &self,
        agent: AgentId,
        id: ConversationId,
        status: ConversationStatus,
        action: &'static str,
    ) -> Result<&Conversation, Rejection> {
        self.connected_agent(agent)?;
        let c = self.live_conversation(id)?;
        if c.primary != Some(agent) {
            return Err(Rejection::NotPrimary {
                agent,
                conversation: id,
            });
        }
        require_status(c, status, action)?;
        Ok(c)
    }

    fn queue_or_reject(&self, id: QueueId) -> Result<&Queue, Rejection> {
        self.queue(id).ok_or(Rejection::UnknownQueue(id))
    }

    fn workstream_of_queue(&self, id: QueueId) -> Result<&Workstream, Rejection> {
        let queue = self.queue_or_reject(id)?;
        self.workstream(queue.config.workstream)
            .ok_or(Rejection::UnknownWorkstream(queue.config.workstream))
    }

    fn resolve_presence(&self, id: PresenceId) -> Result<Presence, Rejection> {
        let base = id
            .out_of_the_box_base()
            .or_else(|| self.custom_presence(id).map(|p| p.base))
            .ok_or(Rejection::UnknownPresence(id))?;
        Ok(Presence { id, base })
    }

    // --- shared effects ------------------------------------------------------------------

    /// Presence an agent gets on arrival (sign-in, or return after the disconnect grace): the
    /// administrator's default when it is Away or Offline, kept until the agent changes it;
    /// otherwise calculated from capacity.
    fn set_arrival_presence(&mut self, id: AgentId) {
        let Some(agent) = self.agent(id) else { return };
        let default = agent.profile.default_presence;
        let base = self.resolve_presence(default).map(|p| p.base);
        match base {
            Ok(base @ (BaseStatus::Away | BaseStatus::Offline)) => {
                self.emit(EventKind::PresenceUpdate {
                    agent: id,
                    presence: Presence { id: default, base },
                    source: PresenceSource::System,
                    sticky: true,
                });
            }
            _ => self.recalculate_presence(id, true),
        }
    }

    /// Automatic presence: capacity free → Available, partly used → Busy, fully used →
    /// Busy-DND. A sticky manual presence is left alone; so is a disconnected agent.
    fn recalculate_presence(&mut self, id: AgentId, force: bool) {
        let Some(agent) = self.agent(id) else { return };
        if !agent.is_connected() || agent.sticky_presence {
            return;
        }
        let base = if agent.used_units == 0 {
            BaseStatus::Available
        } else if agent.available_units() == 0 {
            BaseStatus::BusyDnd
        } else {
            BaseStatus::Busy
        };
        let presence = Presence::of(base);
        if force || agent.presence != presence || agent.presence_source != PresenceSource::System {
            self.emit(EventKind::PresenceUpdate {
                agent: id,
                presence,
                source: PresenceSource::System,
                sticky: false,
            });
        }
    }

    fn release_capacity(&mut self, id: ConversationId) {
        let Some(held) = self.conversation(id).and_then(|c| c.held) else {
            return;
        };
        self.emit(EventKind::CapacityReleased {
            conversation: id,
            agent: held.agent,
            units: held.units,
        });
        self.recalculate_presence(held.agent, false);
    }

    fn withdraw_offer(&mut self, id: ConversationId, reason: ClosureReason) {
        let Some(c) = self.conversation(id) else {
            return;
        };
        let Some(session) = c.pending_offer.and_then(|n| c.session(n)) else {
            return;
        };
        let kind = EventKind::OfferWithdrawn {
            session: c.session_ref(session.number),
            agent: session.agent,
            units: session.units,
            reason,
        };
        self.emit(kind);
    }

    /// Withdraws the pending offer of a conversation that stays open.
    fn withdraw_offer_and_requeue(&mut self, id: ConversationId, reason: ClosureReason) {
        self.withdraw_offer(id, reason);
        self.requeue_failed_transfer(id);
    }

    /// Ends every consult; `transfer_to`'s tab survives for the transfer they are receiving.
    fn end_consults(&mut self, id: ConversationId, transfer_to: Option<AgentId>) {
        let Some(c) = self.conversation(id) else {
            return;
        };
        let consults: Vec<_> = c
            .open_sessions()
            .filter(|s| s.role == SessionRole::Consultant)
            .map(|s| (c.session_ref(s.number), s.agent))
            .collect();
        for (session, consultant) in consults {
            self.emit(EventKind::ConsultEnded {
                session,
                consultant,
                keep_tab: transfer_to == Some(consultant),
            });
        }
    }

    /// Closes the primary agent's open session, releasing their capacity at once.
    fn close_primary_session(&mut self, id: ConversationId, reason: ClosureReason) {
        let Some(c) = self.conversation(id) else {
            return;
        };
        let primary = c
            .open_sessions()
            .find(|s| s.role == SessionRole::Primary)
            .map(|s| (c.session_ref(s.number), s.agent));
        if let Some((session, agent)) = primary {
            self.emit(EventKind::SessionClosed {
                session,
                agent,
                reason,
            });
        }
        self.release_capacity(id);
    }

    fn stop_media(&mut self, id: ConversationId) {
        for media in [MediaKind::Recording, MediaKind::Transcription] {
            let state = self.conversation(id).map(|c| c.media(media));
            if matches!(state, Some(MediaState::Running | MediaState::Paused)) {
                self.emit(EventKind::MediaStateChanged {
                    conversation: id,
                    media,
                    state: MediaState::Stopped,
                });
            }
        }
    }

    /// Active → Wrap-up. Consults end; the primary keeps the session to wrap up; capacity is
    /// released now only when the workstream does not block it during wrap-up.
    fn end_conversation(
        &mut self,
        id: ConversationId,
        ended_by: Actor,
        reason: StatusReason,
        consult_reason: ClosureReason,
    ) {
        let consults: Vec<_> = self
            .conversation(id)
            .map(|c| {
                c.open_sessions()
                    .filter(|s| s.role == SessionRole::Consultant)
                    .map(|s| (c.session_ref(s.number), s.agent))
                    .collect()
            })
            .unwrap_or_default();
        for (session, agent) in consults {
            self.emit(EventKind::SessionClosed {
                session,
                agent,
                reason: consult_reason,
            });
        }
        self.stop_media(id);
        self.emit(EventKind::EndConversation {
            conversation: id,
            ended_by,
            reason,
        });
        let blocking = self
            .conversation(id)
            .and_then(|c| self.workstream(c.workstream))
            .map(|ws| ws.wrap_up_blocking);
        if blocking == Some(WrapUpBlocking::Never) {
            self.release_capacity(id);
        }
    }

    /// Any live status → Closed: every open session ends, capacity is released, presence is
    /// recalculated.
    fn close_conversation(&mut self, id: ConversationId, reason: StatusReason, why: ClosureReason) {
        self.withdraw_offer(id, why);
        let sessions: Vec<_> = self
            .conversation(id)
            .map(|c| {
                c.open_sessions()
                    .map(|s| (c.session_ref(s.number), s.agent))
                    .collect()
            })
            .unwrap_or_default();
        for (session, agent) in sessions {
            self.emit(EventKind::SessionClosed {
                session,
                agent,
                reason: why,
            });
        }
        self.stop_media(id);
        self.release_capacity(id);
        self.emit(EventKind::ConversationClosed {
            conversation: id,
            reason,
        });
    }

    fn offer(
        &mut self,
        id: ConversationId,
        agent: AgentId,
        origin: OfferOrigin,
    ) -> Result<SessionRef, Rejection> {
        let c = self.conversation_or_reject(id)?;
        let ws = self.workstream_of_queue(c.queue)?;
        let session = c.session_ref(c.next_session_number());
        let queue = matches!(origin, OfferOrigin::Routing | OfferOrigin::Pick).then_some(c.queue);
        self.emit(EventKind::IncomingSessionRequest {
            session,
            agent,
            origin,
            units: ws.capacity_units,
            expires_at: self.now.plus_secs(i64::from(ws.offer_timeout_secs)),
            queue,
        });
        Ok(session)
    }

    fn tab_for(&self, agent: &Agent, conversation: ConversationId) -> TabOutcome {
        if agent.tabs.contains(&conversation) {
            TabOutcome::Reactivated
        } else if agent.tabs.len() >= agent.profile.max_sessions as usize {
            TabOutcome::LimitReached
        } else {
            TabOutcome::Opened
        }
    }

    fn accept(&mut self, agent: AgentId, session: SessionRef) -> Verdict {
        let a = self.connected_agent(agent)?;
        let c = self.live_conversation(session.conversation)?;
        let s = c
            .session(session.number)
            .ok_or(Rejection::UnknownSession(session))?;
        if s.agent != agent || s.role != SessionRole::Offer || c.pending_offer != Some(s.number) {
            return Err(Rejection::NotAnOpenOffer { session, agent });
        }
        if let Some(expires_at) = s.expires_at.filter(|e| self.now >= *e) {
            return Err(Rejection::OfferExpired {
                session,
                expires_at,
            });
        }
        if a.available_units() < s.units {
            return Err(Rejection::NoCapacity {
                agent,
                conversation: c.id,
                needed: s.units,
                available: a.available_units(),
            });
        }
        let units = s.units;
        let transfer_from = c.transfer_from;
        let tab = self.tab_for(a, c.id);
        self.emit(EventKind::SessionAccepted {
            session,
            agent,
            units,
            tab,
        });
        if let Some(from) = transfer_from {
            self.emit(EventKind::TransferCompleted {
                conversation: session.conversation,
                from,
                to: agent,
            });
        }
        self.recalculate_presence(agent, false);
        Ok(())
    }

    /// Ends an unanswered offer; a failed transfer offer returns the conversation to its queue.
    fn decline(&mut self, session: SessionRef, agent: AgentId, timed_out: bool) {
        let Some(c) = self.conversation(session.conversation) else {
            return;
        };
        let Some(s) = c.session(session.number) else {
            return;
        };
        let units = s.units;
        self.emit(if timed_out {
            EventKind::OfferTimedOut {
                session,
                agent,
                units,
            }
        } else {
            EventKind::OfferRejected {
                session,
                agent,
                units,
            }
        });
        self.requeue_failed_transfer(session.conversation);
    }

    /// A transfer whose offer ended unaccepted is over: the conversation goes back to its
    /// queue as a plain Open conversation, so no later acceptance reports the old transfer.
    fn requeue_failed_transfer(&mut self, id: ConversationId) {
        let Some(c) = self.conversation(id) else {
            return;
        };
        if c.transfer_from.is_some() && c.status == ConversationStatus::Open {
            let queue = c.queue;
            self.emit(EventKind::ConversationQueued {
                conversation: id,
                queue,
                reason: StatusReason::AwaitingAgentAssignment,
            });
        }
    }

    fn transfer(&mut self, agent: AgentId, id: ConversationId, target: TransferTarget) -> Verdict {
        let c = self.primary_conversation(agent, id, ConversationStatus::Active, "a transfer")?;
        match target {
            TransferTarget::Agent(to) => {
                if to == agent {
                    return Err(Rejection::SelfTarget {
                        agent,
                        action: "transfer",
                    });
                }
                let receiver = self.consult_or_transfer_target(to)?;
                let needed = self.workstream_of_queue(c.queue)?.capacity_units;
                if receiver.free_units() < needed {
                    return Err(Rejection::NoCapacity {
                        agent: to,
                        conversation: id,
                        needed,
                        available: receiver.free_units(),
                    });
                }
            }
            TransferTarget::Queue(queue) => {
                let q = self.queue_or_reject(queue)?;
                self.workstream_of_queue(queue)?;
                if !q.has_members() {
                    return Err(Rejection::QueueHasNoAgents {
                        queue,
                        conversation: id,
                    });
                }
            }
        }
        let receiver = match target {
            TransferTarget::Agent(to) => Some(to),
            TransferTarget::Queue(_) => None,
        };
        self.end_consults(id, receiver);
        let reason = match target {
            TransferTarget::Agent(_) => ClosureReason::AgentTransferred,
            TransferTarget::Queue(_) => ClosureReason::TransferredToQueue,
        };
        self.close_primary_session(id, reason);
        self.emit(EventKind::TransferInitiated {
            conversation: id,
            from: agent,
            target,
        });
        match target {
            TransferTarget::Agent(to) => {
                self.offer(id, to, OfferOrigin::Transfer { from: agent })?;
            }
            TransferTarget::Queue(queue) => self.emit(EventKind::ConversationQueued {
                conversation: id,
                queue,
                reason: StatusReason::AwaitingAgentAssignment,
            }),
        }
        Ok(())
    }

    /// Agents in Busy-DND, Away or Offline (or not connected) are not transfer or consult
    /// targets.
    fn consult_or_transfer_target(&self, id: AgentId) -> Result<&Agent, Rejection> {
        let target = self.connected_agent(id)?;
        if !target.presence.base.accepts_transfers_and_consults() {
            return Err(Rejection::TargetUnavailable {
                agent: id,
                base: target.presence.base,
            });
        }
        Ok(target)
    }

    fn start_consult(
        &mut self,
        agent: AgentId,
        id: ConversationId,
        consultant: AgentId,
    ) -> Verdict {
        let c = self.primary_conversation(agent, id, ConversationStatus::Active, "a consult")?;
        if consultant == agent {
            return Err(Rejection::SelfTarget {
                agent,
                action: "consult",
            });
        }
        if c.consultants.len() >= MAX_CONSULTANTS {
            return Err(Rejection::TooManyConsultants {
                conversation: id,
                max: MAX_CONSULTANTS,
            });
        }
        if c.open_session_of(consultant).is_some() {
            return Err(Rejection::AlreadyInConversation {
                agent: consultant,
                conversation: id,
            });
        }
        let target = self.consult_or_transfer_target(consultant)?;
        let tab = self.tab_for(target, id);
        let session = c.session_ref(c.next_session_number());
        self.emit(EventKind::ConsultStarted {
            session,
            consultant,
            by: agent,
            tab,
        });
        Ok(())
    }

    fn end_consult(&mut self, agent: AgentId, id: ConversationId, consultant: AgentId) -> Verdict {
        self.connected_agent(agent)?;
        let c = self.live_conversation(id)?;
        let session = c
            .open_sessions()
            .find(|s| s.agent == consultant && s.role == SessionRole::Consultant)
            .map(|s| c.session_ref(s.number))
            .ok_or(Rejection::NotConsultant {
                agent: consultant,
                conversation: id,
            })?;
        if agent != consultant && c.primary != Some(agent) {
            return Err(Rejection::NotPrimary {
                agent,
                conversation: id,
            });
        }
        self.emit(EventKind::ConsultEnded {
            session,
            consultant,
            keep_tab: false,
        });
        Ok(())
    }

    fn call_control(&mut self, agent: AgentId, id: ConversationId, hold: bool) -> Verdict {
        let action = if hold { "hold" } else { "unhold" };
        let c = self.primary_conversation(agent, id, ConversationStatus::Active, action)?;
        if !c.channel.is_call() {
            return Err(Rejection::ChannelDoesNotSupport {
                conversation: id,
                channel: c.channel,
                why: "has no call to hold",
            });
        }
        let expected = if hold {
            crate::model::CallActivity::Talk
        } else {
            crate::model::CallActivity::Hold
        };
        if c.call != expected {
            return Err(Rejection::CallState {
                conversation: id,
                state: c.call,
                action,
            });
        }
        self.emit(if hold {
            EventKind::CallHeld { conversation: id }
        } else {
            EventKind::CallResumed { conversation: id }
        });
        Ok(())
    }

    fn media(
        &mut self,
        actor: Actor,
        id: ConversationId,
        media: MediaKind,
        action: MediaAction,
    ) -> Verdict {
        if let Actor::Agent(agent) = actor {
            self.connected_agent(agent)?;
        }
        let c = self.live_conversation(id)?;
        match actor {
            Actor::Agent(agent) if c.primary != Some(agent) => {
                return Err(Rejection::NotPrimary {
                    agent,
                    conversation: id,
                });
            }
            Actor::Customer => return Err(Rejection::MediaActor { actor }),
            _ => {}
        }
        require_status(c, ConversationStatus::Active, "recording or transcription")?;
        if !c.channel.is_call() {
            return Err(Rejection::ChannelDoesNotSupport {
                conversation: id,
                channel: c.channel,
                why: "has no call to record or transcribe",
            });
        }
        let current = c.media(media);
        let next = match (action, current) {
            (MediaAction::Start, MediaState::NotStarted | MediaState::Stopped) => {
                MediaState::Running
            }
            (MediaAction::Pause, MediaState::Running) => MediaState::Paused,
            (MediaAction::Resume, MediaState::Paused) => MediaState::Running,
            (MediaAction::Stop, MediaState::Running | MediaState::Paused) => MediaState::Stopped,
            _ => {
                return Err(Rejection::MediaTransition {
                    conversation: id,
                    media,
                    state: current,
                    action,
                });
            }
        };
        self.emit(EventKind::MediaStateChanged {
            conversation: id,
            media,
            state: next,
        });
        Ok(())
    }

    fn focused_or_given(
        &self,
        agent: AgentId,
        conversation: Option<ConversationId>,
    ) -> Result<ConversationId, Rejection> {
        match conversation {
            Some(id) => Ok(id),
            None => self
                .agent_or_reject(agent)?
                .focused
                .map(|s| s.conversation)
                .ok_or(Rejection::NoFocusedConversation { agent }),
        }
    }

    /// `linkToConversation`. Only the primary agent of an Active conversation links records:
    /// the seed says "only active conversations", and we read Active literally (not Open,
    /// Waiting or Wrap-up), and a consultant's view is read-only. Linking the record already
    /// linked succeeds with no event; a new record of the same slot replaces the old one.
    fn link(
        &mut self,
        agent: AgentId,
        conversation: Option<ConversationId>,
        record: LinkedRecord,
    ) -> Verdict {
        let id = self.focused_or_given(agent, conversation)?;
        let c = self.primary_conversation(agent, id, ConversationStatus::Active, "linking")?;
        let current = c.link(record.entity.slot());
        if current == Some(record) {
            return Ok(());
        }
        self.emit(EventKind::RecordLinked {
            conversation: id,
            record,
            replaced: current,
        });
        Ok(())
    }

    /// `unlinkFromConversation`: by the primary agent, while the conversation is not closed.
    fn unlink(
        &mut self,
        agent: AgentId,
        conversation: Option<ConversationId>,
        entity: LinkEntity,
        record: RecordId,
    ) -> Verdict {
        self.connected_agent(agent)?;
        let id = self.focused_or_given(agent, conversation)?;
        let c = self.live_conversation(id)?;
        if c.primary != Some(agent) {
            return Err(Rejection::NotPrimary {
                agent,
                conversation: id,
            });
        }
        let wanted = LinkedRecord { entity, record };
        if c.link(entity.slot()) != Some(wanted) {
            return Err(Rejection::NotLinked {
                conversation: id,
                entity: entity.logical_name(),
                record,
            });
        }
        self.emit(EventKind::RecordUnlinked {
            conversation: id,
            record: wanted,
        });
        Ok(())
    }

    fn disconnect(&mut self, agent: AgentId) -> Verdict {
        let a = self.connected_agent(agent)?;
        let (previous, previous_sticky) = (a.presence, a.sticky_presence);
        let offers: Vec<_> = a
            .open_sessions
            .iter()
            .filter(|s| {
                self.conversation(s.conversation)
                    .and_then(|c| c.session(s.number))
                    .is_some_and(|s| s.role == SessionRole::Offer)
            })
            .map(|s| s.conversation)
            .collect();
        self.emit(EventKind::AgentDisconnected {
            agent,
            previous,
            previous_sticky,
        });
        self.emit(EventKind::PresenceUpdate {
            agent,
            presence: Presence::of(BaseStatus::Offline),
            source: PresenceSource::System,
            sticky: false,
        });
        for conversation in offers {
            self.withdraw_offer_and_requeue(conversation, ClosureReason::AgentDisconnected);
        }
        Ok(())
    }

    /// The disconnect grace ran out: the agent's Active conversations go back to their
    /// queues and consults end. Wrap-ups stay with the agent until their timer closes them.
    fn expire_disconnect_grace(&mut self, agent: AgentId) {
        self.emit(EventKind::AgentDisconnectGraceExpired { agent });
        let sessions: Vec<SessionRef> = self
            .agent(agent)
            .map(|a| a.open_sessions.iter().copied().collect())
            .unwrap_or_default();
        for session in sessions {
            let Some(c) = self.conversation(session.conversation) else {
                continue;
            };
            let Some(s) = c.session(session.number) else {
                continue;
            };
            match (s.role, c.status) {
                (SessionRole::Consultant, _) => self.emit(EventKind::ConsultEnded {
                    session,
                    consultant: agent,
                    keep_tab: false,
                }),
                (SessionRole::Primary, ConversationStatus::Active) => {
                    let queue = c.queue;
                    self.end_consults(c.id, None);
                    self.close_primary_session(
                        session.conversation,
                        ClosureReason::AgentDisconnected,
                    );
                    self.emit(EventKind::ConversationQueued {
                        conversation: session.conversation,
                        queue,
                        reason: StatusReason::AwaitingAgentAssignment,
                    });
                }
                _ => {}
            }
        }
    }

    /// Back within the grace (strictly less than 150 s): the presence from before the
    /// disconnect is restored. A manual Offline, Away or DND comes back as it was; any other
    /// presence comes back too unless the agent's capacity changed meanwhile (a conversation
    /// closed or a capacity change), which recalculates it as any close would: restoring a
    /// stale automatic Busy-DND would starve a free agent. Past the grace, presence is
    /// calculated afresh, as on arrival.
    fn reconnect(&mut self, agent: AgentId) -> Verdict {
        let a = self.agent_or_reject(agent)?;
        let d = a.disconnected.ok_or(Rejection::NotDisconnected(agent))?;
        let capacity_changed = a.capacity_modified_at >= d.at;
        let grace_over = self.now >= d.at.plus_secs(AGENT_DISCONNECT_GRACE_SECS);
        if grace_over && !d.grace_expired {
            self.expire_disconnect_grace(agent);
        }
        self.emit(EventKind::AgentReconnected { agent });
        if grace_over {
            self.set_arrival_presence(agent);
        } else if capacity_changed && !d.previous_sticky {
            self.recalculate_presence(agent, true);
        } else {
            self.emit(EventKind::PresenceUpdate {
                agent,
                presence: d.previous,
                source: PresenceSource::System,
                sticky: d.previous_sticky,
            });
        }
        Ok(())
    }

    /// Sign-out is refused while the agent still handles conversations (Active or in
    /// wrap-up): nobody would hold them. Offers are withdrawn and consults end.
    fn sign_out(&mut self, agent: AgentId) -> Verdict {
        let a = self.agent_or_reject(agent)?;
        if !a.signed_in {
            return Err(Rejection::NotSignedIn(agent));
        }
        let mut handling = 0;
        let mut offers = Vec::new();
        let mut consults = Vec::new();
        for session in &a.open_sessions {
            let role = self
                .conversation(session.conversation)
                .and_then(|c| c.session(session.number))
                .map(|s| s.role);
            match role {
                Some(SessionRole::Primary) => handling += 1,
                Some(SessionRole::Offer) => offers.push(session.conversation),
                Some(SessionRole::Consultant) => consults.push(*session),
                None => {}
            }
        }
        if handling > 0 {
            return Err(Rejection::StillHandling {
                agent,
                count: handling,
            });
        }
        for conversation in offers {
            self.withdraw_offer_and_requeue(conversation, ClosureReason::AgentDisconnected);
        }
        for session in consults {
            self.emit(EventKind::ConsultEnded {
                session,
                consultant: agent,
                keep_tab: false,
            });
        }
        self.emit(EventKind::PresenceUpdate {
            agent,
            presence: Presence::of(BaseStatus::Offline),
            source: PresenceSource::System,
            sticky: false,
        });
        self.emit(EventKind::AgentSignedOut { agent });
        Ok(())
    }

    fn set_presence(&mut self, agent: AgentId, presence: PresenceId) -> Verdict {
        self.connected_agent(agent)?;
        let presence = self.resolve_presence(presence)?;
        self.emit(EventKind::PresenceUpdate {
            agent,
            presence,
            source: PresenceSource::Agent,
            sticky: presence.base.is_sticky_when_manual(),
        });
        Ok(())
    }

    fn route(&mut self, id: ConversationId) -> Verdict {
        let c = self.live_conversation(id)?;
        require_status(c, ConversationStatus::Open, "routing")?;
        if c.pending_offer.is_some() {
            return Err(Rejection::AlreadyOffered { conversation: id });
        }
        let queue = c.queue;
        if self.workstream_of_queue(queue)?.mode == RoutingMode::Pick {
            return Err(Rejection::PickModeQueue { queue });
        }
        let agent = routing::choose(self, c).ok_or(Rejection::NoEligibleAgent {
            conversation: id,
            queue,
        })?;
        self.offer(id, agent, OfferOrigin::Routing)?;
        Ok(())
    }

    /// A customer's new conversation, routed in the same decision: DOMAIN.md runs an
    /// assignment cycle on a new conversation, so its queue's cycle runs right after
    /// `ConversationCreated`. The newcomer is the newest entry of the backlog, so it is offered
    /// at once when an eligible member has room (one decision and one append from arrival to
    /// offer), never ahead of an older conversation the same agent could take; with nobody
    /// free, or in a pick-mode queue, it waits in the backlog, and the router asks for a cycle
    /// when room appears. A rejected start (unknown queue, existing id) emits nothing.
    fn start_conversation(
        &mut self,
        conversation: ConversationId,
        queue: QueueId,
        skills: Vec<String>,
        customer: String,
    ) -> Verdict {
        if self.conversation(conversation).is_some() {
            return Err(Rejection::ConversationExists(conversation));
        }
        let ws = self.workstream_of_queue(queue)?;
        let (channel, workstream) = (ws.channel, ws.id);
        self.emit(EventKind::ConversationCreated {
            conversation,
            channel,
            queue,
            workstream,
            skills,
            customer,
        });
        self.cycle_queue(queue)
    }

    fn assignment_cycle(&mut self, only: Option<QueueId>) -> Verdict {
        let queues: Vec<QueueId> = match only {
            Some(q) => {
                self.queue_or_reject(q)?;
                vec![q]
            }
            None => self.base.queues.keys().copied().collect(),
        };
        for queue in queues {
            self.cycle_queue(queue)?;
        }
        Ok(())
    }

    /// One queue's assignment cycle: offers its backlog oldest first while agents have room
    /// (nothing in pick mode). When no member has room for a work item at all, nothing is
    /// looked at. Once a conversation without skill requirements finds nobody, no later one of
    /// the same queue can either, so the rest of those are skipped; conversations asking for
    /// skills are still tried. The backlog is walked by key, not copied, since offers take
    /// conversations out of it as the walk goes.
    fn cycle_queue(&mut self, queue: QueueId) -> Verdict {
        let ws = self.workstream_of_queue(queue)?;
        if ws.mode == RoutingMode::Pick || !routing::anyone_has_room(self, queue) {
            return Ok(());
        }
        let mut plain_exhausted = false;
        let mut after = None;
        while let Some((since, id)) = self.queue(queue).and_then(|q| match after {
            None => q.backlog.get_min().copied(),
            Some(key) => q
                .backlog
                .range((Bound::Excluded(key), Bound::Unbounded))
                .next()
                .copied(),
        }) {
            after = Some((since, id));
            let Some(c) = self.conversation(id) else {
                continue;
            };
            if plain_exhausted && c.skills.is_empty() {
                continue;
            }
            match routing::choose(self, c) {
                Some(agent) => {
                    self.offer(id, agent, OfferOrigin::Routing)?;
                }
                None if c.skills.is_empty() => plain_exhausted = true,
                None => {}
            }
        }
        Ok(())
    }

    fn pick(&mut self, agent: AgentId, id: ConversationId) -> Verdict {
        let a = self.connected_agent(agent)?;
        let c = self.live_conversation(id)?;
        require_status(c, ConversationStatus::Open, "picking")?;
        if c.pending_offer.is_some() {
            return Err(Rejection::AlreadyOffered { conversation: id });
        }
        let queue = self.queue_or_reject(c.queue)?;
        if !queue.is_member(agent) {
            return Err(Rejection::NotMember {
                agent,
                queue: c.queue,
            });
        }
        let ws = self.workstream_of_queue(c.queue)?;
        if !routing::is_eligible(a, c, ws) {
            return Err(Rejection::NotEligible {
                agent,
                conversation: id,
                why: "presence not allowed, capacity full or skills missing",
            });
        }
        let session = self.offer(id, agent, OfferOrigin::Pick)?;
        self.accept(agent, session)
    }

    /// A supervisor assigns directly, bypassing queue membership and allowed presence but
    /// never capacity: an outstanding offer is withdrawn and the agent is offered instead.
    fn supervisor_assign(
        &mut self,
        supervisor: crate::model::SupervisorId,
        id: ConversationId,
        agent: AgentId,
    ) -> Verdict {
        let a = self.connected_agent(agent)?;
        let c = self.live_conversation(id)?;
        require_status(c, ConversationStatus::Open, "supervisor assignment")?;
        let needed = self.workstream_of_queue(c.queue)?.capacity_units;
        let offered_to_agent = c
            .pending_offer
            .and_then(|n| c.session(n))
            .is_some_and(|s| s.agent == agent);
        if offered_to_agent {
            return Err(Rejection::AlreadyOffered { conversation: id });
        }
        if a.free_units() < needed {
            return Err(Rejection::NoCapacity {
                agent,
                conversation: id,
                needed,
                available: a.free_units(),
            });
        }
        self.withdraw_offer_and_requeue(id, ClosureReason::AgentReRouted);
        self.offer(id, agent, OfferOrigin::Supervisor(supervisor))?;
        Ok(())
    }

    fn customer_end(&mut self, id: ConversationId) -> Verdict {
        let c = self.live_conversation(id)?;
        match c.status {
            ConversationStatus::Open | ConversationStatus::Waiting => self.close_conversation(
                id,
                StatusReason::CustomerAbandoned,
                ClosureReason::CustomerEndedConversation,
            ),
            ConversationStatus::Active => self.end_conversation(
                id,
                Actor::Customer,
                StatusReason::CustomerDisconnected,
                ClosureReason::CustomerEndedConversation,
            ),
            status => {
                return Err(Rejection::WrongStatus {
                    conversation: id,
                    status,
                    action: "the customer ending it",
                    needed: "Open, Active or Waiting",
                });
            }
        }
        Ok(())
    }

    /// A dropped customer: live web sessions get the 3-minute reconnect window; a dropped call
    /// ends it at once; asynchronous channels keep no connection to drop.
    fn customer_disconnect(&mut self, id: ConversationId) -> Verdict {
        let c = self.live_conversation(id)?;
        if c.channel.is_persistent() {
            return Err(Rejection::ChannelDoesNotSupport {
                conversation: id,
                channel: c.channel,
                why: "is asynchronous and keeps no customer connection",
            });
        }
        if c.customer_disconnected_at.is_some() {
            return Err(Rejection::CustomerConnection {
                conversation: id,
                state: "already disconnected",
            });
        }
        if c.channel.has_reconnect_window() {
            self.emit(EventKind::CustomerDisconnected { conversation: id });
            return Ok(());
        }
        match c.status {
            ConversationStatus::Active => self.end_conversation(
                id,
                Actor::Customer,
                StatusReason::CustomerDisconnected,
                ClosureReason::CustomerDisconnected,
            ),
            ConversationStatus::WrapUp => {
                return Err(Rejection::WrongStatus {
                    conversation: id,
                    status: c.status,
                    action: "a customer disconnect",
                    needed: "Open or Active",
                });
            }
            _ => self.close_conversation(
                id,
                StatusReason::CustomerAbandoned,
                ClosureReason::CustomerDisconnected,
            ),
        }
        Ok(())
    }

    fn customer_reconnect(&mut self, id: ConversationId) -> Verdict {
        let c = self.live_conversation(id)?;
        let since = c
            .customer_disconnected_at
            .ok_or(Rejection::CustomerConnection {
                conversation: id,
                state: "connected",
            })?;
        if self.now >= since.plus_secs(CUSTOMER_RECONNECT_WINDOW_SECS) {
            return Err(Rejection::CustomerConnection {
                conversation: id,
                state: "past the 3-minute reconnect window",
            });
        }
        self.emit(EventKind::CustomerReconnected { conversation: id });
        Ok(())
    }

    /// A customer message: each worked session not in focus gains an unread message; a
    /// waiting conversation is revived back to Open to be routed.
    fn customer_message(&mut self, id: ConversationId) -> Verdict {
        let c = self.live_conversation(id)?;
        if c.status == ConversationStatus::Waiting {
            let queue = c.queue;
            self.emit(EventKind::ConversationQueued {
                conversation: id,
                queue,
                reason: StatusReason::AwaitingAgentAssignment,
            });
            return Ok(());
        }
        let unread: Vec<_> = c
            .open_sessions()
            .filter(|s| s.role != SessionRole::Offer)
            .filter(|s| {
                self.agent(s.agent)
                    .is_none_or(|a| a.focused != Some(c.session_ref(s.number)))
            })
            .map(|s| (c.session_ref(s.number), s.agent, s.unread.saturating_add(1)))
            .collect();
        for (session, agent, unread) in unread {
            self.emit(EventKind::UnreadMessage {
                session,
                agent,
                unread,
            });
        }
        Ok(())
    }

    fn resume_waiting(&mut self, agent: AgentId, id: ConversationId) -> Verdict {
        let a = self.connected_agent(agent)?;
        let c = self.live_conversation(id)?;
        require_status(c, ConversationStatus::Waiting, "reviving")?;
        if let Some(expected) = c.last_primary.filter(|last| *last != agent) {
            return Err(Rejection::NotLastAgent {
                conversation: id,
                expected,
            });
        }
        let units = self.workstream_of_queue(c.queue)?.capacity_units;
        if a.free_units() < units {
            return Err(Rejection::NoCapacity {
                agent,
                conversation: id,
                needed: units,
                available: a.free_units(),
            });
        }
        let tab = self.tab_for(a, id);
        self.emit(EventKind::ConversationResumed {
            conversation: id,
            agent,
            units,
            tab,
        });
        self.recalculate_presence(agent, false);
        Ok(())
    }

    fn configure_workstream(&mut self, ws: Workstream) -> Verdict {
        if ws.capacity_units == 0 {
            return Err(invalid(format!(
                "workstream {} needs at least 1 capacity unit per work item",
                ws.id.0
            )));
        }
        if ws.allowed_presences.is_empty() {
            return Err(invalid(format!(
                "workstream {} allows no presence, so nobody could ever be offered its work",
                ws.id.0
            )));
        }
        if let WrapUpBlocking::ForSeconds(secs) = ws.wrap_up_blocking {
            if !(WrapUpBlocking::MIN_CUSTOM_SECS..=WrapUpBlocking::MAX_CUSTOM_SECS).contains(&secs)
            {
                return Err(invalid(format!(
                    "wrap-up blocking of {secs} s is outside 30 s to 60 min"
                )));
            }
        }
        if ws.offer_timeout_secs == 0 {
            return Err(invalid(
                "an offer timeout of 0 s would expire every offer".into(),
            ));
        }
        self.emit(EventKind::WorkstreamConfigured(ws));
        Ok(())
    }

    fn configure_queue(&mut self, config: QueueConfig) -> Verdict {
        if self.workstream(config.workstream).is_none() {
            return Err(Rejection::UnknownWorkstream(config.workstream));
        }
        self.emit(EventKind::QueueConfigured(config));
        Ok(())
    }

    fn define_presence(&mut self, presence: CustomPresence) -> Verdict {
        if presence.id.out_of_the_box_base().is_some() {
            return Err(invalid(format!(
                "{} is an out-of-the-box presence and cannot be redefined",
                presence.id
            )));
        }
        self.emit(EventKind::CustomPresenceDefined(presence));
        Ok(())
    }

    fn provision(&mut self, profile: AgentProfile) -> Verdict {
        if profile.max_sessions == 0 {
            return Err(invalid(format!(
                "{} needs room for at least one session tab",
                profile.id
            )));
        }
        self.resolve_presence(profile.default_presence)?;
        let id = profile.id;
        self.emit(EventKind::AgentProvisioned(profile));
        self.recalculate_presence(id, false);
        Ok(())
    }

    fn membership(&mut self, queue: QueueId, agent: AgentId, member: bool) -> Verdict {
        self.agent_or_reject(agent)?;
        let is_member = self.queue_or_reject(queue)?.is_member(agent);
        match (member, is_member) {
            (true, true) => Err(Rejection::AlreadyMember { agent, queue }),
            (false, false) => Err(Rejection::NotMember { agent, queue }),
            _ => {
                self.emit(EventKind::QueueMembershipChanged {
                    queue,
                    agent,
                    member,
                });
                Ok(())
            }
        }
    }

    /// Fires everything due at `now`, entity by entity in id order so the result is
    /// deterministic: first the agents whose disconnect grace ran out, then the conversations.
    ///
    /// The world's indexes name what is due in it. Expiring an agent's grace changes their
    /// conversations in the overlay, and could in principle make one due that was not, so the
    /// conversations are visited in id order over the union of those due in the world and
    /// those the overlay holds by the time the visit reaches them: exactly the ones the full
    /// scan ([`tick_by_scan`]) would find something due on, in the same order.
    fn tick(&mut self) {
        let now = self.now;
        for agent in self.base.agents_due(now) {
            self.expire_disconnect_grace(agent);
        }
        let due = self.base.conversations_due(now);
        let mut from = Bound::Unbounded;
        loop {
            let in_world = due.range((from, Bound::Unbounded)).next().copied();
            let touched = self
                .conversations
                .range((from, Bound::Unbounded))
                .map(|(id, _)| *id)
                .find(|id| {
                    self.base
                        .conversations
                        .get(id)
                        .is_some_and(|c| c.status != ConversationStatus::Closed)
                });
            let Some(id) = in_world.into_iter().chain(touched).min() else {
                break;
            };
            from = Bound::Excluded(id);
            self.fire_all_due(id);
        }
    }

    /// The reference [`Tx::tick`] is tested against: every agent and every conversation of
    /// the world is checked.
    fn tick_by_scan(&mut self) {
        let now = self.now;
        let disconnected: Vec<AgentId> = self
            .base
            .agents
            .values()
            .filter(|a| timers::agent_due(a).is_some_and(|d| d <= now))
            .map(|a| a.profile.id)
            .collect();
        for agent in disconnected {
            self.expire_disconnect_grace(agent);
        }
        let ids: Vec<ConversationId> = self
            .base
            .conversations
            .values()
            .filter(|c| c.status != ConversationStatus::Closed)
            .map(|c| c.id)
            .collect();
        for id in ids {
            self.fire_all_due(id);
        }
    }

    fn fire_all_due(&mut self, id: ConversationId) {
        let now = self.now;
        // Each firing changes the conversation; a conversation has few timers, and every
        // firing removes its own deadline, so this ends.
        for _ in 0..8 {
            let due = self.conversation(id).and_then(|c| {
                let ws = self.workstream(c.workstream)?;
                timers::first_due(c, ws, now)
            });
            match due {
                Some(due) => self.fire(id, due),
                None => break,
            }
        }
    }

    fn fire(&mut self, id: ConversationId, due: Due) {
        match due {
            Due::Offer { session, agent } => {
                let session = SessionRef {
                    conversation: id,
                    number: session,
                };
                self.decline(session, agent, true);
            }
            Due::CustomerGone { status } => match status {
                ConversationStatus::Active => self.end_conversation(
                    id,
                    Actor::Customer,
                    StatusReason::CustomerDisconnected,
                    ClosureReason::CustomerDisconnected,
                ),
                _ => self.close_conversation(
                    id,
                    StatusReason::CustomerAbandoned,
                    ClosureReason::CustomerDisconnected,
                ),
            },
            Due::WrapUpCapacity => self.release_capacity(id),
            Due::StatusTimer { status, to_wrap_up } => match status {
                ConversationStatus::Active if to_wrap_up => self.end_conversation(
                    id,
                    Actor::System,
                    StatusReason::AgentMovedToWrapUp,
                    ClosureReason::ConversationTimedOut,
                ),
                ConversationStatus::Waiting => self.close_conversation(
                    id,
                    StatusReason::AutoClosedFromWaiting,
                    ClosureReason::AutoClose,
                ),
                _ => self.close_conversation(
                    id,
                    StatusReason::AutoClosedBySystem,
                    ClosureReason::AutoClose,
                ),
            },
        }
    }

    fn run(&mut self, command: Command) -> Verdict {
        use Command as C;
        match command {
            C::ConfigureWorkstream(ws) => self.configure_workstream(ws),
            C::ConfigureQueue(config) => self.configure_queue(config),
            C::DefineCustomPresence(p) => self.define_presence(p),
            C::ProvisionAgent(profile) => self.provision(profile),
            C::SetAgentCapacity {
                agent,
                capacity_units,
            } => {
                self.agent_or_reject(agent)?;
                self.emit(EventKind::AgentCapacityChanged {
                    agent,
                    capacity_units,
                });
                self.recalculate_presence(agent, false);
                Ok(())
            }
            C::AddAgentToQueue { queue, agent } => self.membership(queue, agent, true),
            C::RemoveAgentFromQueue { queue, agent } => self.membership(queue, agent, false),
            C::SignIn { agent } => {
                if self.agent_or_reject(agent)?.signed_in {
                    return Err(Rejection::AlreadySignedIn(agent));
                }
                self.emit(EventKind::AgentSignedIn { agent });
                self.set_arrival_presence(agent);
                Ok(())
            }
            C::SignOut { agent } => self.sign_out(agent),
            C::SetPresence { agent, presence } => self.set_presence(agent, presence),
            C::Disconnect { agent } => self.disconnect(agent),
            C::Reconnect { agent } => self.reconnect(agent),
            C::Accept { agent, session } => self.accept(agent, session),
            C::Reject { agent, session } => {
                self.connected_agent(agent)?;
                let c = self.live_conversation(session.conversation)?;
                let s = c
                    .session(session.number)
                    .ok_or(Rejection::UnknownSession(session))?;
                if s.agent != agent || c.pending_offer != Some(s.number) {
                    return Err(Rejection::NotAnOpenOffer { session, agent });
                }
                self.decline(session, agent, false);
                Ok(())
            }
            C::Pick {
                agent,
                conversation,
            } => self.pick(agent, conversation),
            C::Transfer {
                agent,
                conversation,
                target,
            } => self.transfer(agent, conversation, target),
            C::StartConsult {
                agent,
                conversation,
                consultant,
            } => self.start_consult(agent, conversation, consultant),
            C::EndConsult {
                agent,
                conversation,
                consultant,
            } => self.end_consult(agent, conversation, consultant),
            C::Hold {
                agent,
                conversation,
            } => self.call_control(agent, conversation, true),
            C::Unhold {
                agent,
                conversation,
            } => self.call_control(agent, conversation, false),
            C::Media {
                actor,
                conversation,
                media,
                action,
            } => self.media(actor, conversation, media, action),
            C::Link {
                agent,
                conversation,
                record,
            } => self.link(agent, conversation, record),
            C::Unlink {
                agent,
                conversation,
                entity,
                record,
            } => self.unlink(agent, conversation, entity, record),
            C::Focus { agent, session } => {
                self.connected_agent(agent)?;
                let c = self.live_conversation(session.conversation)?;
                let worked = c.session(session.number).is_some_and(|s| {
                    s.agent == agent
                        && s.role != SessionRole::Offer
                        && s.status == crate::model::SessionStatus::Open
                });
                if !worked {
                    return Err(Rejection::NotOwnSession { session, agent });
                }
                self.emit(EventKind::SessionFocused { session, agent });
                Ok(())
            }
            C::End {
                agent,
                conversation,
            } => {
                self.primary_conversation(
                    agent,
                    conversation,
                    ConversationStatus::Active,
                    "ending",
                )?;
                self.end_conversation(
                    conversation,
                    Actor::Agent(agent),
                    StatusReason::ConversationEndedByAgent,
                    ClosureReason::AgentEndedConversation,
                );
                Ok(())
            }
            C::CloseSession {
                agent,
                conversation,
            } => {
                let c = self.primary_conversation(
                    agent,
                    conversation,
                    ConversationStatus::Active,
                    "closing the session to wait",
                )?;
                if !c.channel.is_persistent() {
                    return Err(Rejection::ChannelDoesNotSupport {
                        conversation,
                        channel: c.channel,
                        why: "is live: its conversations never wait",
                    });
                }
                self.end_consults(conversation, None);
                self.close_primary_session(conversation, ClosureReason::AgentClosed);
                self.emit(EventKind::ConversationWaiting {
                    conversation,
                    agent,
                });
                Ok(())
            }
            C::ResumeWaiting {
                agent,
                conversation,
            } => self.resume_waiting(agent, conversation),
            C::CompleteWrapUp {
                agent,
                conversation,
            } => {
                self.primary_conversation(
                    agent,
                    conversation,
                    ConversationStatus::WrapUp,
                    "completing wrap-up",
                )?;
                self.close_conversation(
                    conversation,
                    StatusReason::WrapUpCompleted,
                    ClosureReason::AgentClosed,
                );
                Ok(())
            }
            C::StartConversation {
                conversation,
                queue,
                skills,
                customer,
            } => self.start_conversation(conversation, queue, skills, customer),
            C::CustomerMessage { conversation } => self.customer_message(conversation),
            C::CustomerEnd { conversation } => self.customer_end(conversation),
            C::CustomerDisconnect { conversation } => self.customer_disconnect(conversation),
            C::CustomerReconnect { conversation } => self.customer_reconnect(conversation),
            C::Route { conversation } => self.route(conversation),
            C::AssignmentCycle { queue } => self.assignment_cycle(queue),
            C::SupervisorAssign {
                supervisor,
                conversation,
                agent,
            } => self.supervisor_assign(supervisor, conversation, agent),
            C::ForceClose {
                supervisor: _,
                conversation,
            } => {
                self.live_conversation(conversation)?;
                self.close_conversation(
                    conversation,
                    StatusReason::ForceClosedBySupervisor,
                    ClosureReason::AutoClose,
                );
                Ok(())
            }
            C::ResolveCase { record } => {
                for id in self.base.linked_to_case(record) {
                    self.close_conversation(
                        id,
                        StatusReason::LinkedCaseResolved,
                        ClosureReason::AutoClose,
                    );
                }
                Ok(())
            }
            C::Tick => {
                self.tick();
                Ok(())
            }
        }
    }
}

fn require_status(c: &Conversation, status: ConversationStatus, action: &'static str) -> Verdict {
    if c.status == status {
        return Ok(());
    }
    let needed = match status {
        ConversationStatus::Open => "Open",
        ConversationStatus::Active => "Active",
        ConversationStatus::Waiting => "Waiting",
        ConversationStatus::WrapUp => "in wrap-up",
        ConversationStatus::Closed => "Closed",
    };
    Err(Rejection::WrongStatus {
        conversation: c.id,
        status: c.status,
        action,
        needed,
    })
}

fn invalid(message: String) -> Rejection {
    Rejection::InvalidConfig(message)
}
