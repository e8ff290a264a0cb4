//! Invariants of the core over random command sequences on small worlds (up to 4 agents,
//! 4 conversations, 2 queues; the consultant bound needs 7 agents). Each invariant is its own
//! property; all share the generator and the runner.

use omni_core::{
    Actor, AgentId, AgentProfile, AssignmentMethod, BaseStatus, BulkFold, Channel, ChannelTimers,
    ClosureReason, Command, ConversationId, ConversationStatus, Event, EventKind, LinkEntity,
    LinkedRecord, MAX_CONSULTANTS, MediaAction, MediaKind, PresenceId, QueueConfig, QueueId,
    RecordId, Rejection, SessionRef, SessionRole, SessionStatus, SupervisorId, Timestamp,
    TransferTarget, Workstream, WorkstreamId, World, WrapUpBlocking, apply, decide, next_deadline,
    next_deadline_by_scan, on_tick, on_tick_by_scan,
};
use proptest::prelude::*;

const CONVERSATIONS: u8 = 4;
const QUEUES: u8 = 2;

/// The shape of a small world.
#[derive(Clone, Debug)]
pub struct Spec {
    agents: Vec<(u32, u32, PresenceId)>, // capacity, max sessions, default presence
    queues: Vec<(Channel, AssignmentMethod, WrapUpBlocking)>,
}

/// An operation, resolved against the current world into a command. Targeted variants (by the
/// primary, on the pending offer) make deep states reachable; untargeted ones try anybody.
#[derive(Clone, Debug)]
pub enum Op {
    SignIn(u8),
    SignOut(u8),
    SetPresence(u8, u8),
    Disconnect(u8),
    Reconnect(u8),
    Start(u8, u8, bool),
    Route(u8),
    Cycle,
    AcceptPending(u8),
    AcceptAs(u8, u8),
    RejectPending(u8),
    Transfer(u8, u8, u8),
    TransferByPrimary(u8, u8),
    Consult(u8, u8, u8),
    ConsultByPrimary(u8, u8),
    EndConsult(u8, u8),
    Hold(u8, bool),
    Media(u8, bool, u8),
    Link(u8, u8, u8),
    Unlink(u8, u8, u8),
    Focus(u8, u8),
    CustomerMessage(u8),
    CustomerEnd(u8),
    CustomerDisconnect(u8),
    CustomerReconnect(u8),
    End(u8),
    CloseSession(u8),
    Resume(u8),
    CompleteWrapUp(u8),
    Pick(u8, u8),
    SupervisorAssign(u8, u8),
    ForceClose(u8),
    ResolveCase(u8),
    Membership(u8, u8, bool),
    /// An administrator changes a workstream's timers, wrap-up blocking or offer timeout.
    Reconfigure(u8, u8),
    Tick,
}

fn agent_id(n: u8) -> AgentId {
    AgentId::from_u128(0xA0 + u128::from(n))
}
fn conversation_id(n: u8) -> ConversationId {
    ConversationId::from_u128(0xC000 + u128::from(n % CONVERSATIONS))
}
fn queue_id(n: u8) -> QueueId {
    QueueId::from_u128(0xE0 + u128::from(n % QUEUES))
}
const PRESENCES: [PresenceId; 5] = [
    PresenceId::AVAILABLE,
    PresenceId::BUSY,
    PresenceId::BUSY_DND,
    PresenceId::AWAY,
    PresenceId::OFFLINE,
];

impl Spec {
    fn agent_count(&self) -> u8 {
        self.agents.len() as u8
    }

    fn setup(&self) -> Vec<Command> {
        let mut commands = Vec::new();
        for (q, (channel, method, blocking)) in self.queues.iter().enumerate() {
            let queue = queue_id(q as u8);
            let mut ws = Workstream::with_defaults(WorkstreamId(queue.0), "ws", *channel);
            ws.wrap_up_blocking = *blocking;
            commands.push(Command::ConfigureWorkstream(ws));
            commands.push(Command::ConfigureQueue(QueueConfig {
                id: queue,
                name: "q".into(),
                workstream: WorkstreamId(queue.0),
                method: *method,
            }));
        }
        for (n, (capacity, max_sessions, default_presence)) in self.agents.iter().enumerate() {
            let id = agent_id(n as u8);
            commands.push(Command::ProvisionAgent(AgentProfile {
                id,
                name: format!("agent {n}"),
                capacity_units: *capacity,
                skills: if n % 2 == 0 {
                    ["billing".to_string()].into()
                } else {
                    Default::default()
                },
                max_sessions: *max_sessions,
                default_presence: *default_presence,
            }));
            for q in 0..self.queues.len() {
                commands.push(Command::AddAgentToQueue {
                    queue: queue_id(q as u8),
                    agent: id,
                });
            }
            commands.push(Command::SignIn { agent: id });
        }
        commands
    }
}

fn spec(max_agents: usize) -> impl Strategy<Value = Spec> {
    let agent = (
        1u32..=3,
        1u32..=3,
        prop_oneof![
            4 => Just(PresenceId::AVAILABLE),
            1 => Just(PresenceId::AWAY),
        ],
    );
    let queue = (
        prop_oneof![
            Just(Channel::LiveChat),
            Just(Channel::Voice),
            Just(Channel::Sms),
            Just(Channel::Teams),
        ],
        prop_oneof![
            Just(AssignmentMethod::HighestCapacity),
            Just(AssignmentMethod::AdvancedRoundRobin),
            Just(AssignmentMethod::LeastActive),
        ],
        prop_oneof![
            Just(WrapUpBlocking::Always),
            Just(WrapUpBlocking::Never),
            Just(WrapUpBlocking::ForSeconds(30)),
        ],
    );
    (
        prop::collection::vec(agent, 2..=max_agents),
        prop::collection::vec(queue, QUEUES as usize),
    )
        .prop_map(|(agents, queues)| Spec { agents, queues })
}

fn op() -> impl Strategy<Value = Op> {
    let a = 0u8..8;
    let c = 0u8..CONVERSATIONS;
    prop_oneof![
        2 => a.clone().prop_map(Op::SignIn),
        1 => a.clone().prop_map(Op::SignOut),
        2 => (a.clone(), 0u8..5).prop_map(|(a, p)| Op::SetPresence(a, p)),
        1 => a.clone().prop_map(Op::Disconnect),
        1 => a.clone().prop_map(Op::Reconnect),
        4 => (c.clone(), 0u8..QUEUES, any::<bool>()).prop_map(|(c, q, s)| Op::Start(c, q, s)),
        2 => c.clone().prop_map(Op::Route),
        2 => Just(Op::Cycle),
        10 => c.clone().prop_map(Op::AcceptPending),
        1 => (a.clone(), c.clone()).prop_map(|(a, c)| Op::AcceptAs(a, c)),
        2 => c.clone().prop_map(Op::RejectPending),
        2 => (a.clone(), c.clone(), 0u8..10).prop_map(|(a, c, t)| Op::Transfer(a, c, t)),
        4 => (c.clone(), 0u8..10).prop_map(|(c, t)| Op::TransferByPrimary(c, t)),
        2 => (a.clone(), c.clone(), a.clone()).prop_map(|(a, c, t)| Op::Consult(a, c, t)),
        5 => (c.clone(), a.clone()).prop_map(|(c, t)| Op::ConsultByPrimary(c, t)),
        1 => (c.clone(), a.clone()).prop_map(|(c, t)| Op::EndConsult(c, t)),
        2 => (c.clone(), any::<bool>()).prop_map(|(c, h)| Op::Hold(c, h)),
        2 => (c.clone(), any::<bool>(), 0u8..4).prop_map(|(c, r, x)| Op::Media(c, r, x)),
        2 => (c.clone(), 0u8..3, 0u8..3).prop_map(|(c, e, r)| Op::Link(c, e, r)),
        1 => (c.clone(), 0u8..3, 0u8..3).prop_map(|(c, e, r)| Op::Unlink(c, e, r)),
        3 => (a.clone(), c.clone()).prop_map(|(a, c)| Op::Focus(a, c)),
        3 => c.clone().prop_map(Op::CustomerMessage),
        1 => c.clone().prop_map(Op::CustomerEnd),
        1 => c.clone().prop_map(Op::CustomerDisconnect),
        1 => c.clone().prop_map(Op::CustomerReconnect),
        2 => c.clone().prop_map(Op::End),
        1 => c.clone().prop_map(Op::CloseSession),
        1 => c.clone().prop_map(Op::Resume),
        2 => c.clone().prop_map(Op::CompleteWrapUp),
        1 => (a.clone(), c.clone()).prop_map(|(a, c)| Op::Pick(a, c)),
        1 => (c.clone(), a.clone()).prop_map(|(c, a)| Op::SupervisorAssign(c, a)),
        1 => c.clone().prop_map(Op::ForceClose),
        1 => (0u8..3).prop_map(Op::ResolveCase),
        1 => (0u8..QUEUES, a.clone(), any::<bool>()).prop_map(|(q, a, m)| Op::Membership(q, a, m)),
        1 => (0u8..QUEUES, 0u8..6).prop_map(|(q, v)| Op::Reconfigure(q, v)),
        3 => Just(Op::Tick),
    ]
}

/// Milliseconds to advance before a step: mostly seconds, sometimes past the 120 s offer and
/// 150 s grace, rarely days (auto-close timers), so runs reach deep states before timers
/// sweep them away.
fn advance() -> impl Strategy<Value = i64> {
    prop_oneof![
        40 => 0i64..3_000,
        3 => 0i64..200_000,
        1 => 0i64..(3 * 24 * 3600 * 1000),
    ]
}

fn steps(len: usize) -> impl Strategy<Value = Vec<(Op, i64)>> {
    prop::collection::vec((op(), advance()), len / 4..len)
}

fn primary(world: &World, c: ConversationId) -> Option<AgentId> {
    world.conversations.get(&c).and_then(|c| c.primary)
}

fn pending(world: &World, c: ConversationId) -> Option<(SessionRef, AgentId)> {
    let c = world.conversations.get(&c)?;
    let n = c.pending_offer?;
    Some((c.session_ref(n), c.session(n)?.agent))
}

fn record(e: u8, r: u8) -> LinkedRecord {
    LinkedRecord {
        entity: [
            LinkEntity::Account,
            LinkEntity::Contact,
            LinkEntity::Incident,
        ][usize::from(e % 3)],
        record: RecordId::from_u128(u128::from(r)),
    }
}

/// The conversation an operation is about, if any.
fn op_conversation(op: &Op) -> Option<u8> {
    match *op {
        Op::AcceptPending(c)
        | Op::AcceptAs(_, c)
        | Op::RejectPending(c)
        | Op::Transfer(_, c, _)
        | Op::TransferByPrimary(c, _)
        | Op::Consult(_, c, _)
        | Op::ConsultByPrimary(c, _)
        | Op::EndConsult(c, _)
        | Op::Hold(c, _)
        | Op::Media(c, _, _)
        | Op::Link(c, _, _)
        | Op::Unlink(c, _, _)
        | Op::Focus(_, c)
        | Op::CustomerMessage(c)
        | Op::End(c)
        | Op::CloseSession(c)
        | Op::CompleteWrapUp(c)
        | Op::Pick(_, c) => Some(c),
        _ => None,
    }
}

/// Operations of a primary agent: these first move an Open conversation towards Active.
fn needs_primary(op: &Op) -> Option<u8> {
    match *op {
        Op::TransferByPrimary(c, _)
        | Op::ConsultByPrimary(c, _)
        | Op::EndConsult(c, _)
        | Op::Hold(c, _)
        | Op::Media(c, _, _)
        | Op::Link(c, _, _)
        | Op::Unlink(c, _, _)
        | Op::End(c)
        | Op::CloseSession(c)
        | Op::CompleteWrapUp(c) => Some(c),
        _ => None,
    }
}

/// For an Open conversation: the offeree accepts, or it is routed.
fn progress(world: &World, id: ConversationId) -> Option<Command> {
    let c = world.conversations.get(&id)?;
    if c.status != ConversationStatus::Open {
        return None;
    }
    Some(match pending(world, id) {
        Some((session, agent)) => Command::Accept { agent, session },
        None => Command::Route { conversation: id },
    })
}

/// The conversation in slot `c`: the first of its ids (c, c + 4, c + 8…) not yet closed. At most
/// four conversations are live at once; a closed one gives its slot to a fresh id.
fn live_slot(world: &World, c: u8) -> ConversationId {
    (0u128..)
        .map(|generation| {
            ConversationId::from_u128(0xC000 + u128::from(c % CONVERSATIONS) + 4 * generation)
        })
        .find(|id| {
            world
                .conversations
                .get(id)
                .is_none_or(|c| c.status != ConversationStatus::Closed)
        })
        .expect("an unused id exists")
}

/// Turns an operation into a command against the current world. Operations address live
/// slots; an operation about a slot with no conversation yet starts one instead, so runs spend
/// their steps on conversations that are there. `Route` keeps the raw first id of a slot, so
/// unknown and closed conversations are still asked about.
fn resolve(op: &Op, world: &World, agents: u8) -> Command {
    let conversation_id = |c: u8| live_slot(world, c);
    if let Some(c) = op_conversation(op) {
        if !world.conversations.contains_key(&conversation_id(c)) {
            let queue = queue_id(c % QUEUES);
            return Command::StartConversation {
                conversation: conversation_id(c),
                queue,
                skills: vec![],
                customer: "customer".into(),
            };
        }
    }
    if let Some(command) = needs_primary(op).and_then(|c| progress(world, conversation_id(c))) {
        return command;
    }
    let agent = |n: u8| agent_id(n % agents);
    let primary_or = |c: ConversationId| primary(world, c).unwrap_or(agent(0));
    match *op {
        Op::SignIn(a) => Command::SignIn { agent: agent(a) },
        Op::SignOut(a) => Command::SignOut { agent: agent(a) },
        Op::SetPresence(a, p) => Command::SetPresence {
            agent: agent(a),
            presence: PRESENCES[usize::from(p % 5)],
        },
        Op::Disconnect(a) => Command::Disconnect { agent: agent(a) },
        Op::Reconnect(a) => Command::Reconnect { agent: agent(a) },
        Op::Start(c, q, skill) => Command::StartConversation {
            conversation: conversation_id(c),
            queue: queue_id(q),
            skills: if skill {
                vec!["billing".into()]
            } else {
                vec![]
            },
            customer: "customer".into(),
        },
        Op::Route(c) => Command::Route {
            conversation: self::conversation_id(c),
        },
        Op::Cycle => Command::AssignmentCycle { queue: None },
        Op::AcceptPending(c) => match pending(world, conversation_id(c)) {
            Some((session, agent)) => Command::Accept { agent, session },
            None => Command::Route {
                conversation: conversation_id(c),
            },
        },
        Op::AcceptAs(a, c) => {
            let id = conversation_id(c);
            let session = pending(world, id).map_or(
                SessionRef {
                    conversation: id,
                    number: omni_core::SessionNo(1),
                },
                |(s, _)| s,
            );
            Command::Accept {
                agent: agent(a),
                session,
            }
        }
        Op::RejectPending(c) => match pending(world, conversation_id(c)) {
            Some((session, agent)) => Command::Reject { agent, session },
            None => Command::Tick,
        },
        Op::Transfer(a, c, t) => Command::Transfer {
            agent: agent(a),
            conversation: conversation_id(c),
            target: target(t, agents),
        },
        Op::TransferByPrimary(c, t) => {
            let id = conversation_id(c);
            Command::Transfer {
                agent: primary_or(id),
                conversation: id,
                target: target(t, agents),
            }
        }
        Op::Consult(a, c, t) => Command::StartConsult {
            agent: agent(a),
            conversation: conversation_id(c),
            consultant: agent(t),
        },
        Op::ConsultByPrimary(c, t) => {
            let id = conversation_id(c);
            Command::StartConsult {
                agent: primary_or(id),
                conversation: id,
                consultant: agent(t),
            }
        }
        Op::EndConsult(c, t) => {
            let id = conversation_id(c);
            Command::EndConsult {
                agent: primary_or(id),
                conversation: id,
                consultant: agent(t),
            }
        }
        Op::Hold(c, hold) => {
            let id = conversation_id(c);
            let agent = primary_or(id);
            if hold {
                Command::Hold {
                    agent,
                    conversation: id,
                }
            } else {
                Command::Unhold {
                    agent,
                    conversation: id,
                }
            }
        }
        Op::Media(c, recording, action) => {
            let id = conversation_id(c);
            Command::Media {
                actor: Actor::Agent(primary_or(id)),
                conversation: id,
                media: if recording {
                    MediaKind::Recording
                } else {
                    MediaKind::Transcription
                },
                action: MediaAction::ALL[usize::from(action % 4)],
            }
        }
        Op::Link(c, e, r) => {
            let id = conversation_id(c);
            Command::Link {
                agent: primary_or(id),
                conversation: Some(id),
                record: record(e, r),
            }
        }
        Op::Unlink(c, e, r) => {
            let id = conversation_id(c);
            let rec = record(e, r);
            Command::Unlink {
                agent: primary_or(id),
                conversation: Some(id),
                entity: rec.entity,
                record: rec.record,
            }
        }
        Op::Focus(a, c) => {
            let id = conversation_id(c);
            let agent = agent(a);
            let number = world
                .conversations
                .get(&id)
                .and_then(|c| c.open_session_of(agent))
                .map_or(omni_core::SessionNo(1), |s| s.number);
            Command::Focus {
                agent,
                session: SessionRef {
                    conversation: id,
                    number,
                },
            }
        }
        Op::CustomerMessage(c) => Command::CustomerMessage {
            conversation: conversation_id(c),
        },
        Op::CustomerEnd(c) => Command::CustomerEnd {
            conversation: conversation_id(c),
        },
        Op::CustomerDisconnect(c) => Command::CustomerDisconnect {
            conversation: conversation_id(c),
        },
        Op::CustomerReconnect(c) => Command::CustomerReconnect {
            conversation: conversation_id(c),
        },
        Op::End(c) => {
            let id = conversation_id(c);
            Command::End {
                agent: primary_or(id),
                conversation: id,
            }
        }
        Op::CloseSession(c) => {
            let id = conversation_id(c);
            Command::CloseSession {
                agent: primary_or(id),
                conversation: id,
            }
        }
        Op::Resume(c) => {
            let id = conversation_id(c);
            let last = world
                .conversations
                .get(&id)
                .and_then(|c| c.last_primary)
                .unwrap_or(agent(0));
            Command::ResumeWaiting {
                agent: last,
                conversation: id,
            }
        }
        Op::CompleteWrapUp(c) => {
            let id = conversation_id(c);
            Command::CompleteWrapUp {
                agent: primary_or(id),
                conversation: id,
            }
        }
        Op::Pick(a, c) => Command::Pick {
            agent: agent(a),
            conversation: conversation_id(c),
        },
        Op::SupervisorAssign(c, a) => Command::SupervisorAssign {
            supervisor: SupervisorId::from_u128(1),
            conversation: conversation_id(c),
            agent: agent(a),
        },
        Op::ForceClose(c) => Command::ForceClose {
            supervisor: SupervisorId::from_u128(1),
            conversation: conversation_id(c),
        },
        Op::ResolveCase(r) => Command::ResolveCase {
            record: RecordId::from_u128(u128::from(r)),
        },
        Op::Membership(q, a, member) => {
            if member {
                Command::AddAgentToQueue {
                    queue: queue_id(q),
                    agent: agent(a),
                }
            } else {
                Command::RemoveAgentFromQueue {
                    queue: queue_id(q),
                    agent: agent(a),
                }
            }
        }
        Op::Reconfigure(q, variant) => {
            Command::ConfigureWorkstream(reconfigured(world, queue_id(q), variant))
        }
        Op::Tick => Command::Tick,
    }
}

/// The workstream of `queue` with one setting changed: default, short, zero or no auto-close
/// timers, another wrap-up blocking, a shorter offer timeout.
fn reconfigured(world: &World, queue: QueueId, variant: u8) -> Workstream {
    let mut ws = world.workstreams[&WorkstreamId(queue.0)].clone();
    match variant % 6 {
        0 => ws.timers = ChannelTimers::defaults_for(ws.channel),
        1 => {
            ws.timers = ChannelTimers {
                open_secs: Some(90),
                active_secs: Some(300),
                waiting_secs: Some(120),
                wrap_up_secs: Some(60),
            }
        }
        2 => {
            ws.timers = ChannelTimers {
                open_secs: None,
                active_secs: None,
                waiting_secs: None,
                wrap_up_secs: None,
            }
        }
        3 => {
            // Due the moment a conversation enters Open, Waiting or Wrap-up.
            ws.timers = ChannelTimers {
                open_secs: Some(0),
                active_secs: None,
                waiting_secs: Some(0),
                wrap_up_secs: Some(0),
            }
        }
        4 => {
            ws.wrap_up_blocking = match ws.wrap_up_blocking {
                WrapUpBlocking::Always => WrapUpBlocking::ForSeconds(45),
                WrapUpBlocking::ForSeconds(_) => WrapUpBlocking::Never,
                WrapUpBlocking::Never => WrapUpBlocking::Always,
            }
        }
        _ => ws.offer_timeout_secs = if ws.offer_timeout_secs == 30 { 120 } else { 30 },
    }
    ws
}

fn target(t: u8, agents: u8) -> TransferTarget {
    if t < 8 {
        TransferTarget::Agent(agent_id(t % agents))
    } else {
        TransferTarget::Queue(queue_id(t))
    }
}

/// One judged step, for the invariants to inspect.
pub struct Step<'a> {
    pub before: &'a World,
    pub after: &'a World,
    pub command: &'a Command,
    pub outcome: &'a Result<Vec<Event>, Rejection>,
    pub now: Timestamp,
}

/// Builds the world, runs every step, checks `invariant` after each one, and returns the live
/// world with the accepted events.
pub fn run(
    spec: &Spec,
    steps: &[(Op, i64)],
    mut invariant: impl FnMut(&Step),
) -> (World, Vec<Event>) {
    let mut world = World::default();
    let mut now = Timestamp(1_700_000_000_000);
    let mut history = Vec::new();
    for command in spec.setup() {
        let events = decide(&world, command, now).expect("setup is valid");
        for e in &events {
            apply(&mut world, e);
        }
        history.extend(events);
    }
    for (op, advance) in steps {
        now = now.plus_ms(*advance);
        let command = resolve(op, &world, spec.agent_count());
        let before = world.clone();
        let outcome = decide(&world, command.clone(), now);
        if let Ok(events) = &outcome {
            for e in events {
                apply(&mut world, e);
            }
            history.extend(events.iter().cloned());
        }
        invariant(&Step {
            before: &before,
            after: &world,
            command: &command,
            outcome: &outcome,
            now,
        });
    }
    (world, history)
}

fn command_conversation(command: &Command) -> Option<ConversationId> {
    use Command as C;
    match command {
        C::Pick { conversation, .. }
        | C::Transfer { conversation, .. }
        | C::StartConsult { conversation, .. }
        | C::EndConsult { conversation, .. }
        | C::Hold { conversation, .. }
        | C::Unhold { conversation, .. }
        | C::Media { conversation, .. }
        | C::End { conversation, .. }
        | C::CloseSession { conversation, .. }
        | C::ResumeWaiting { conversation, .. }
        | C::CompleteWrapUp { conversation, .. }
        | C::CustomerMessage { conversation }
        | C::CustomerEnd { conversation }
        | C::CustomerDisconnect { conversation }
        | C::CustomerReconnect { conversation }
        | C::Route { conversation }
        | C::SupervisorAssign { conversation, .. }
        | C::ForceClose { conversation, .. } => Some(*conversation),
        C::Link { conversation, .. } | C::Unlink { conversation, .. } => *conversation,
        C::Accept { session, .. } | C::Reject { session, .. } | C::Focus { session, .. } => {
            Some(session.conversation)
        }
        _ => None,
    }
}

fn events_of<'a>(step: &'a Step<'a>) -> &'a [Event] {
    step.outcome.as_deref().unwrap_or(&[])
}

/// The presence an agent arriving now should get: the administrator's Away/Offline default,
/// or the automatic one from capacity.
fn arrival_presence(world: &World, agent: AgentId) -> BaseStatus {
    match world.agents[&agent]
        .profile
        .default_presence
        .out_of_the_box_base()
    {
        Some(base @ (BaseStatus::Away | BaseStatus::Offline)) => base,
        _ => automatic_presence(world, agent),
    }
}

/// Capacity free → Available, partly used → Busy, fully used → Busy-DND.
fn automatic_presence(world: &World, agent: AgentId) -> BaseStatus {
    let a = &world.agents[&agent];
    if a.used_units == 0 {
        BaseStatus::Available
    } else if a.available_units() == 0 {
        BaseStatus::BusyDnd
    } else {
        BaseStatus::Busy
    }
}

pub fn check_only_primary_transfers_or_consults(step: &Step) {
    if let Command::Transfer {
        agent,
        conversation,
        ..
    }
    | Command::StartConsult {
        agent,
        conversation,
        ..
    } = step.command
    {
        let was_primary = primary(step.before, *conversation) == Some(*agent);
        match step.outcome {
            Ok(_) => assert!(
                was_primary,
                "{agent} transferred or consulted without being primary"
            ),
            Err(Rejection::NotPrimary { .. }) => {
                assert!(!was_primary);
                let message = step.outcome.as_ref().unwrap_err().to_string();
                assert!(message.contains("is not the primary agent of conversation"));
            }
            Err(_) => {}
        }
    }
    if step.outcome.is_err() {
        assert_eq!(step.before, step.after, "a rejection changed the state");
    }
}

pub fn check_one_primary_and_transfer_handover(step: &Step) {
    for c in step.after.conversations.values() {
        let primaries: Vec<AgentId> = c
            .open_sessions()
            .filter(|s| s.role == SessionRole::Primary)
            .map(|s| s.agent)
            .collect();
        assert!(primaries.len() <= 1, "{} has primaries {primaries:?}", c.id);
        if let Some(p) = c.primary {
            assert_eq!(
                primaries,
                [p],
                "{} primary field disagrees with sessions",
                c.id
            );
        }
        if matches!(c.status, ConversationStatus::Active) {
            assert!(c.primary.is_some(), "{} is Active without a primary", c.id);
        }
    }
    for event in events_of(step) {
        match &event.kind {
            EventKind::TransferCompleted {
                conversation, to, ..
            } => assert_eq!(primary(step.after, *conversation), Some(*to)),
            EventKind::TransferInitiated {
                conversation,
                from,
                target,
            } => {
                let c = &step.after.conversations[conversation];
                let initiator = c
                    .sessions
                    .iter()
                    .rev()
                    .find(|s| s.agent == *from && s.role == SessionRole::Primary)
                    .expect("the initiator had a primary session");
                let expected = match target {
                    TransferTarget::Agent(_) => ClosureReason::AgentTransferred,
                    TransferTarget::Queue(_) => ClosureReason::TransferredToQueue,
                };
                assert_eq!(initiator.status, SessionStatus::Completed);
                assert_eq!(initiator.closure, Some(expected));
                assert!(
                    c.held.is_none(),
                    "the initiator's capacity is released at once"
                );
            }
            _ => {}
        }
    }
}

pub fn check_capacity_bounds(step: &Step) {
    for (id, agent) in &step.after.agents {
        let held: u32 = step
            .after
            .conversations
            .values()
            .filter_map(|c| c.held.filter(|h| h.agent == *id))
            .map(|h| h.units)
            .sum();
        let offered: u32 = step
            .after
            .conversations
            .values()
            .filter_map(|c| c.pending_offer.and_then(|n| c.session(n)))
            .filter(|s| s.agent == *id)
            .map(|s| s.units)
            .sum();
        assert_eq!(
            agent.used_units, held,
            "{id} used units drift from holdings"
        );
        assert_eq!(agent.offered_units, offered, "{id} offered units drift");
        assert!(
            agent.used_units + agent.offered_units <= agent.profile.capacity_units,
            "{id} overbooked: {} used + {} offered > {}",
            agent.used_units,
            agent.offered_units,
            agent.profile.capacity_units
        );
    }
    for queue in step.after.queues.values() {
        for slot in &queue.roster {
            let agent = &step.after.agents[&slot.agent];
            assert!(agent.queues.contains(&queue.config.id));
            let mirrored = omni_core::RosterSlot {
                agent: slot.agent,
                last_assigned: slot.last_assigned,
                connected: agent.is_connected(),
                base: agent.presence.base,
                free_units: agent.free_units(),
                last_capacity_released_at: agent.last_capacity_released_at,
                skill_filter: omni_core::skill_filter(&agent.profile.skills),
            };
            assert_eq!(*slot, mirrored, "the routing roster drifted from the agent");
        }
    }
    for event in events_of(step) {
        if let EventKind::ConsultStarted { consultant, .. } = &event.kind {
            assert_eq!(
                step.before.agents[consultant].used_units, step.after.agents[consultant].used_units,
                "a consult consumed capacity"
            );
        }
    }
}

/// A new conversation is routed in the decision that creates it: afterwards it has an offer
/// (from its push queue, made by routing), or nobody in its queue could take it; any other
/// offer of that decision is for an older conversation of the same queue, which the cycle
/// serves first.
pub fn check_arrivals_are_routed_at_once(step: &Step) {
    let Command::StartConversation {
        conversation,
        queue,
        ..
    } = step.command
    else {
        return;
    };
    if step.outcome.is_err() {
        return;
    }
    let c = &step.after.conversations[conversation];
    let push = step.after.workstreams[&c.workstream].mode == omni_core::RoutingMode::Push;
    if c.pending_offer.is_none() && push {
        assert_eq!(
            omni_core::choose_agent(step.after, *conversation),
            None,
            "{conversation} waits although someone could take it"
        );
    }
    for event in &events_of(step)[1..] {
        let EventKind::IncomingSessionRequest {
            session, origin, ..
        } = &event.kind
        else {
            panic!("a start emitted {event:?}");
        };
        assert!(push, "an arrival in a pick-mode queue was offered");
        assert_eq!(*origin, omni_core::OfferOrigin::Routing);
        let offered = &step.after.conversations[&session.conversation];
        assert_eq!(offered.queue, *queue);
        assert!(
            offered.created_at <= c.created_at,
            "an arrival offered a younger conversation"
        );
    }
}

pub fn check_closed_is_final(step: &Step) {
    for (id, before) in &step.before.conversations {
        if before.status == ConversationStatus::Closed {
            assert_eq!(
                Some(before),
                step.after.conversations.get(id),
                "{id} moved after Closed"
            );
            if command_conversation(step.command) == Some(*id) {
                assert!(
                    step.outcome.is_err(),
                    "{:?} about closed {id} was accepted",
                    step.command
                );
            }
        }
    }
}

pub fn check_consultants_and_tabs_bounded(step: &Step) {
    for c in step.after.conversations.values() {
        assert!(c.consultants.len() <= MAX_CONSULTANTS);
    }
    for (id, agent) in &step.after.agents {
        assert!(
            agent.tabs.len() <= agent.profile.max_sessions as usize,
            "{id} has {} tabs, max {}",
            agent.tabs.len(),
            agent.profile.max_sessions
        );
    }
}

pub fn check_disconnect_grace(step: &Step) {
    let (Command::Reconnect { agent }, Ok(_)) = (step.command, step.outcome) else {
        return;
    };
    let d = step.before.agents[agent]
        .disconnected
        .expect("reconnect needs a disconnection");
    let before = &step.before.agents[agent];
    let presence = step.after.agents[agent].presence;
    let capacity_changed = before.capacity_modified_at >= d.at;
    if step.now >= d.at.plus_secs(150) {
        assert_eq!(presence.base, arrival_presence(step.after, *agent));
    } else if capacity_changed && !d.previous_sticky {
        assert_eq!(
            presence.base,
            automatic_presence(step.after, *agent),
            "capacity changed while away: presence is recalculated"
        );
    } else {
        assert_eq!(
            presence, d.previous,
            "within 150 s the previous presence returns"
        );
    }
}

pub fn check_unread_counts(step: &Step) {
    for agent in step.after.agents.values() {
        if let Some(s) = agent.focused {
            let session = step.after.conversations[&s.conversation]
                .session(s.number)
                .unwrap();
            assert_eq!(
                session.unread, 0,
                "the focused session shows unread messages"
            );
        }
    }
    for event in events_of(step) {
        match &event.kind {
            EventKind::UnreadMessage {
                session, unread, ..
            } => {
                let before = step.before.conversations[&session.conversation]
                    .session(session.number)
                    .unwrap()
                    .unread;
                assert_eq!(*unread, before + 1);
            }
            EventKind::SessionFocused { session, .. } => {
                let after = step.after.conversations[&session.conversation]
                    .session(session.number)
                    .unwrap();
                assert_eq!(after.unread, 0);
            }
            _ => {}
        }
    }
}

pub fn check_replay_equivalence(world: &World, history: &[Event]) {
    assert_eq!(
        &folded(World::default(), history),
        world,
        "folding the log differs from the live state"
    );
    assert_eq!(
        &bulk_folded(World::default(), history),
        world,
        "replay's bulk fold (indexes rebuilt at the end) differs from the live state"
    );
    // Replay resuming from a snapshot: a bulk fold over a world that already holds
    // conversations (the first half, folded event by event).
    let (before, after) = history.split_at(history.len() / 2);
    assert_eq!(
        &bulk_folded(folded(World::default(), before), after),
        world,
        "a bulk fold resumed halfway differs from the live state"
    );
}

/// `world` with `events` applied one by one, as the services do.
fn folded(mut world: World, events: &[Event]) -> World {
    for event in events {
        apply(&mut world, event);
    }
    world
}

/// `world` with `events` folded as replay does, through [`BulkFold`].
fn bulk_folded(mut world: World, events: &[Event]) -> World {
    let mut fold = BulkFold::new(&mut world);
    for event in events {
        fold.apply(event);
    }
    drop(fold);
    world
}

/// The world's indexes agree with a scan of the world: the next deadline, everything a `Tick`
/// fires, the conversations a case is linked to, and a rebuild from scratch.
fn check_indexes(world: &World) {
    assert_eq!(
        next_deadline(world),
        next_deadline_by_scan(world),
        "the indexed next deadline differs from the scan"
    );
    let mut rebuilt = world.clone();
    rebuilt.rebuild_indexes();
    assert!(
        rebuilt == *world,
        "the indexes kept by fold differ from a rebuild"
    );
}

/// After every event of the step the indexes agree with a scan; then `Tick` at the step's
/// time, around the next deadline and `probe` ms past it fires exactly what the scan-based
/// reference fires, and resolving each case closes exactly the live conversations linked to it.
pub fn check_indexes_against_scans(step: &Step, probe: i64) {
    let mut world = step.before.clone();
    for event in events_of(step) {
        apply(&mut world, event);
        check_indexes(&world);
    }
    let world = step.after;
    check_indexes(world);
    let mut times = vec![step.now, step.now.plus_ms(probe)];
    if let Some(due) = next_deadline(world) {
        times.extend([due.plus_ms(-1), due, due.plus_ms(probe)]);
    }
    for at in times {
        assert_eq!(
            on_tick(world, at),
            on_tick_by_scan(world, at),
            "Tick at {at:?} differs from the scan"
        );
    }
    for r in 0..3 {
        let record = RecordId::from_u128(r);
        let linked: Vec<ConversationId> = world
            .conversations
            .values()
            .filter(|c| c.status != ConversationStatus::Closed)
            .filter(|c| c.case_link.is_some_and(|l| l.record == record))
            .map(|c| c.id)
            .collect();
        let events = decide(world, Command::ResolveCase { record }, step.now).unwrap();
        let closed: Vec<ConversationId> = events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::ConversationClosed { conversation, .. } => Some(conversation),
                _ => None,
            })
            .collect();
        assert_eq!(closed, linked, "ResolveCase closed other conversations");
    }
}

/// A snapshot of the world round-trips, indexes included, and serializes the same again.
pub fn check_snapshot_round_trip(world: &World) {
    let json = serde_json::to_vec(world).unwrap();
    let restored: World = serde_json::from_slice(&json).unwrap();
    assert!(restored == *world, "a restored snapshot differs");
    assert_eq!(serde_json::to_vec(&restored).unwrap(), json);
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "agents",
            "conversations",
            "custom_presences",
            "queues",
            "workstreams"
        ],
        "a snapshot holds the maps only"
    );
}

/// Runs the steps on two worlds: one keeps everything, the other forgets its Closed
/// conversations whenever `forget` says so. Every command not naming a forgotten conversation
/// must be judged the same by both; the forgetting world must be the full one without the
/// forgotten conversations, with no trace of them left, and a message about the last one
/// forgotten is refused as about an unknown conversation instead of a closed one. Returns how
/// many were forgotten and how many commands named one after.
pub fn run_forgetting(spec: &Spec, steps: &[(Op, i64)], forget: &[bool]) -> (usize, usize) {
    let mut world = World::default();
    let mut lean = World::default();
    let mut now = Timestamp(1_700_000_000_000);
    for command in spec.setup() {
        for e in decide(&world, command, now).expect("setup is valid") {
            apply(&mut world, &e);
            apply(&mut lean, &e);
        }
    }
    let mut forgotten = std::collections::BTreeSet::new();
    let mut named_forgotten = 0;
    for (i, (op, advance)) in steps.iter().enumerate() {
        now = now.plus_ms(*advance);
        let command = resolve(op, &world, spec.agent_count());
        let named = match &command {
            Command::StartConversation { conversation, .. } => Some(*conversation),
            other => command_conversation(other),
        };
        let outcome = decide(&world, command.clone(), now);
        match named.filter(|id| forgotten.contains(id)) {
            Some(id) => {
                named_forgotten += 1;
                assert!(
                    outcome.is_err(),
                    "{command:?} about closed {id} was accepted"
                );
                if !matches!(command, Command::StartConversation { .. }) {
                    assert_eq!(
                        decide(&lean, command.clone(), now),
                        Err(Rejection::UnknownConversation(id))
                    );
                }
            }
            None => assert_eq!(
                decide(&lean, command.clone(), now),
                outcome,
                "forgetting closed conversations changed how {command:?} is judged"
            ),
        }
        if let Ok(events) = &outcome {
            for e in events {
                apply(&mut world, e);
                apply(&mut lean, e);
            }
        }
        if forget.get(i).copied().unwrap_or(false) {
            let closed: Vec<ConversationId> = lean
                .conversations
                .values()
                .filter(|c| c.status == ConversationStatus::Closed)
                .map(|c| c.id)
                .collect();
            for id in closed {
                assert!(lean.forget(id).is_some());
                forgotten.insert(id);
            }
        }
        // A forgotten conversation is unknown where the full world calls it closed.
        if let Some(id) = forgotten.last().copied() {
            named_forgotten += 1;
            let message = Command::CustomerMessage { conversation: id };
            assert_eq!(
                decide(&world, message.clone(), now),
                Err(Rejection::ConversationClosed { conversation: id })
            );
            assert_eq!(
                decide(&lean, message, now),
                Err(Rejection::UnknownConversation(id))
            );
        }
        let mut expected = world.clone();
        expected
            .conversations
            .retain(|id, _| !forgotten.contains(id));
        expected.rebuild_indexes();
        assert!(
            lean == expected,
            "forgetting left a trace or removed more than the closed conversations"
        );
    }
    (forgotten.len(), named_forgotten)
}

proptest! {
    /// Ids order as their UUIDs do (snapshots, pages and `BTreeMap` iteration depend on it),
    /// though they compare as `u128`.
    #[test]
    fn ids_order_as_their_uuids(a in any::<[u8; 16]>(), b in any::<[u8; 16]>()) {
        let (ua, ub) = (uuid::Uuid::from_bytes(a), uuid::Uuid::from_bytes(b));
        prop_assert_eq!(ConversationId(ua).cmp(&ConversationId(ub)), ua.cmp(&ub));
        prop_assert_eq!(AgentId(ua).cmp(&AgentId(ub)), ua.cmp(&ub));
        prop_assert_eq!(RecordId(ua).partial_cmp(&RecordId(ub)), Some(ua.cmp(&ub)));
    }

    #[test]
    fn only_the_primary_agent_may_transfer_or_consult(spec in spec(4), steps in steps(80)) {
        run(&spec, &steps, check_only_primary_transfers_or_consults);
    }

    #[test]
    fn at_most_one_primary_and_a_transfer_hands_over(spec in spec(4), steps in steps(80)) {
        run(&spec, &steps, check_one_primary_and_transfer_handover);
    }

    #[test]
    fn used_capacity_never_exceeds_capacity_and_consults_use_none(spec in spec(4), steps in steps(80)) {
        run(&spec, &steps, check_capacity_bounds);
    }

    #[test]
    fn an_arrival_is_offered_at_once_unless_nobody_could_take_it(spec in spec(4), steps in steps(80)) {
        run(&spec, &steps, check_arrivals_are_routed_at_once);
    }

    #[test]
    fn closed_is_final(spec in spec(4), steps in steps(80)) {
        run(&spec, &steps, check_closed_is_final);
    }

    #[test]
    fn consultants_and_tabs_stay_bounded(spec in spec(7), steps in steps(120)) {
        run(&spec, &steps, check_consultants_and_tabs_bounded);
    }

    #[test]
    fn a_disconnect_within_150_s_restores_presence_and_after_it_recalculates(spec in spec(4), steps in steps(80)) {
        run(&spec, &steps, check_disconnect_grace);
    }

    #[test]
    fn replaying_the_accepted_events_rebuilds_the_live_state(spec in spec(4), steps in steps(80)) {
        let (world, history) = run(&spec, &steps, |_| {});
        check_replay_equivalence(&world, &history);
    }

    #[test]
    fn unread_counts_count_up_and_reset_on_focus(spec in spec(4), steps in steps(80)) {
        run(&spec, &steps, check_unread_counts);
    }

    #[test]
    fn the_indexes_find_what_scanning_the_world_finds(
        spec in spec(4),
        steps in steps(80),
        probes in prop::collection::vec(advance(), 1..16),
    ) {
        let mut n = 0;
        let (world, _) = run(&spec, &steps, |step| {
            check_indexes_against_scans(step, probes[n % probes.len()]);
            n += 1;
        });
        check_snapshot_round_trip(&world);
    }

    #[test]
    fn forgetting_closed_conversations_changes_no_decision_about_the_rest(
        spec in spec(4),
        steps in steps(80),
        forget in prop::collection::vec(prop::bool::weighted(0.3), 80),
    ) {
        run_forgetting(&spec, &steps, &forget);
    }
}

/// The properties only mean something if the generated runs reach deep states: this guards
/// the generator against drifting into sequences that are all rejections.
#[test]
fn generated_runs_reach_every_lifecycle_step() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for _ in 0..256 {
        let spec = spec(4).new_tree(&mut runner).unwrap().current();
        let steps = steps(80).new_tree(&mut runner).unwrap().current();
        run(&spec, &steps, |step| {
            for event in events_of(step) {
                *seen.entry(event.kind.name()).or_default() += 1;
            }
        });
    }
    for kind in [
        "SessionAccepted",
        "OfferRejected",
        "OfferTimedOut",
        "TransferInitiated",
        "TransferCompleted",
        "ConsultStarted",
        "ConsultEnded",
        "CallHeld",
        "MediaStateChanged",
        "RecordLinked",
        "UnreadMessage",
        "SessionFocused",
        "ConversationWaiting",
        "EndConversation",
        "ConversationClosed",
        "AgentDisconnectGraceExpired",
        "AgentReconnected",
        "WorkstreamConfigured",
    ] {
        assert!(
            seen.get(kind).copied().unwrap_or(0) >= 3,
            "{kind} barely reached: {seen:?}"
        );
    }
}

/// The forgetting property only means something if runs forget conversations and then meet
/// commands about them.
#[test]
fn forgetting_runs_forget_conversations_and_meet_their_ids_again() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut forgotten, mut named) = (0, 0);
    for _ in 0..64 {
        let spec = spec(4).new_tree(&mut runner).unwrap().current();
        let steps = steps(80).new_tree(&mut runner).unwrap().current();
        let forget = prop::collection::vec(prop::bool::weighted(0.3), 80)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let (f, n) = run_forgetting(&spec, &steps, &forget);
        forgotten += f;
        named += n;
    }
    assert!(
        forgotten >= 64,
        "only {forgotten} conversations forgotten in 64 runs"
    );
    assert!(
        named >= 640,
        "only {named} commands named a forgotten conversation"
    );
}
