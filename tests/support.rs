//! Given / when / then for the pure core: a world built by commands, a command judged against
//! it, and assertions on the events or the rejection.

use omni_core::{
    AgentId, AgentProfile, AssignmentMethod, Channel, Command, ConversationId,
    DEFAULT_MAX_SESSIONS, Event, EventKind, PresenceId, QueueConfig, QueueId, Rejection,
    SessionRef, SupervisorId, Timestamp, Workstream, WorkstreamId, World, apply, decide,
};

/// Agents of the standard world, by name.
pub const ANN: AgentId = AgentId::from_u128(0xA1);
pub const BOB: AgentId = AgentId::from_u128(0xA2);
pub const CID: AgentId = AgentId::from_u128(0xA3);
pub const DEE: AgentId = AgentId::from_u128(0xA4);

pub const CHAT: QueueId = QueueId::from_u128(0xC1);
pub const VOICE: QueueId = QueueId::from_u128(0xC2);
pub const SMS: QueueId = QueueId::from_u128(0xC3);
pub const EMPTY: QueueId = QueueId::from_u128(0xC4);

pub fn workstream_of(queue: QueueId) -> WorkstreamId {
    WorkstreamId(queue.0)
}

pub fn conversation(n: u128) -> ConversationId {
    ConversationId::from_u128(0xC0_0000 + n)
}

/// A customer starts conversation `n` in `queue`.
pub fn start_in(n: u128, queue: QueueId) -> Command {
    Command::StartConversation {
        conversation: conversation(n),
        queue,
        skills: Vec::new(),
        customer: format!("customer {n}"),
    }
}

/// The test clock starts at a round, recognisable instant.
pub const T0: Timestamp = Timestamp(1_700_000_000_000);

/// A world under test, with its clock and every accepted event so far.
pub struct Case {
    pub world: World,
    pub now: Timestamp,
    pub history: Vec<Event>,
}

impl Case {
    pub fn empty() -> Case {
        Case {
            world: World::default(),
            now: T0,
            history: Vec::new(),
        }
    }

    /// Chat (advanced round robin), voice and SMS queues plus an empty queue; four agents of
    /// capacity 3, all members of every staffed queue, none signed in.
    pub fn standard() -> Case {
        let mut case = Case::empty();
        for command in standard_setup() {
            case.given(command);
        }
        case
    }

    /// Runs a command that must be accepted, and applies its events.
    pub fn given(&mut self, command: Command) -> Vec<Event> {
        let events = decide(&self.world, command.clone(), self.now)
            .unwrap_or_else(|r| panic!("given {command:?} was rejected: {r}"));
        for event in &events {
            apply(&mut self.world, event);
        }
        self.history.extend(events.iter().cloned());
        events
    }

    pub fn sign_in(&mut self, agents: &[AgentId]) {
        for &agent in agents {
            self.given(Command::SignIn { agent });
        }
    }

    pub fn advance_secs(&mut self, secs: i64) {
        self.now = self.now.plus_secs(secs);
    }

    /// Judges a command without applying it.
    pub fn when(&self, command: Command) -> Result<Vec<Event>, Rejection> {
        decide(&self.world, command, self.now)
    }

    /// A command that must be rejected; the world must be exactly as before.
    pub fn rejected(&self, command: Command) -> Rejection {
        let before = self.world.clone();
        let rejection = match self.when(command.clone()) {
            Ok(events) => panic!("{command:?} was accepted with {events:?}"),
            Err(r) => r,
        };
        assert_eq!(self.world, before, "a rejection changed the world");
        rejection
    }

    /// A customer's conversation `n`, started in `queue` without skill requirements; routing
    /// offers it on arrival when someone has room. Returns the id and the start's events.
    pub fn start_with_events(&mut self, n: u128, queue: QueueId) -> (ConversationId, Vec<Event>) {
        let id = conversation(n);
        let events = self.given(Command::StartConversation {
            conversation: id,
            queue,
            skills: vec![],
            customer: format!("customer {n}"),
        });
        (id, events)
    }

    /// [`Case::start_with_events`], for its id only.
    pub fn start(&mut self, n: u128, queue: QueueId) -> ConversationId {
        self.start_with_events(n, queue).0
    }

    /// A conversation started in `queue` and offered on arrival to `agent` (who must be
    /// routing's choice).
    pub fn offered(&mut self, n: u128, queue: QueueId, agent: AgentId) -> SessionRef {
        let (_, events) = self.start_with_events(n, queue);
        match &events[..] {
            [
                Event {
                    kind: EventKind::ConversationCreated { .. },
                    ..
                },
                Event {
                    kind:
                        EventKind::IncomingSessionRequest {
                            session,
                            agent: offered,
                            ..
                        },
                    ..
                },
            ] => {
                assert_eq!(*offered, agent, "routing offered someone else");
                *session
            }
            other => panic!("the start produced {other:?}"),
        }
    }

    /// A conversation Active with `agent` as primary: started, then accepted by `agent` when
    /// routing offered it to them on arrival, assigned to them by a supervisor when routing
    /// offered it to someone else, or picked by them when nobody was offered it.
    pub fn active(&mut self, n: u128, queue: QueueId, agent: AgentId) -> SessionRef {
        let (id, events) = self.start_with_events(n, queue);
        let offered_to = events.iter().find_map(|e| match e.kind {
            EventKind::IncomingSessionRequest {
                session, agent: to, ..
            } => Some((session, to)),
            _ => None,
        });
        match offered_to {
            Some((session, to)) if to == agent => {
                self.given(Command::Accept { agent, session });
            }
            Some(_) => {
                self.given(Command::SupervisorAssign {
                    supervisor: SupervisorId::from_u128(0x5E),
                    conversation: id,
                    agent,
                });
                let c = self.conversation(id);
                let session = c.session_ref(c.pending_offer.expect("assigned"));
                self.given(Command::Accept { agent, session });
            }
            None => {
                self.given(Command::Pick {
                    agent,
                    conversation: id,
                });
            }
        }
        let c = self.conversation(id);
        c.session_ref(c.open_session_of(agent).expect("accepted").number)
    }

    pub fn conversation(&self, id: ConversationId) -> &omni_core::Conversation {
        &self.world.conversations[&id]
    }

    pub fn agent(&self, id: AgentId) -> &omni_core::Agent {
        &self.world.agents[&id]
    }
}

pub fn profile(agent: AgentId, capacity_units: u32) -> AgentProfile {
    AgentProfile {
        id: agent,
        name: format!("agent {:x}", agent.0.as_u128()),
        capacity_units,
        skills: Default::default(),
        max_sessions: DEFAULT_MAX_SESSIONS,
        default_presence: PresenceId::AVAILABLE,
    }
}

/// The kinds of `events`, by name, in order: compact to assert on.
pub fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "omni-test-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The commands that build the standard world: chat (advanced round robin), voice and SMS
/// queues plus an empty queue; four agents of capacity 3, all members of every staffed queue,
/// none signed in.
pub fn standard_setup() -> Vec<Command> {
    let mut commands = Vec::new();
    for (queue, channel, name, method) in [
        (
            CHAT,
            Channel::LiveChat,
            "chat",
            AssignmentMethod::AdvancedRoundRobin,
        ),
        (
            VOICE,
            Channel::Voice,
            "voice",
            AssignmentMethod::HighestCapacity,
        ),
        (SMS, Channel::Sms, "sms", AssignmentMethod::LeastActive),
        (
            EMPTY,
            Channel::LiveChat,
            "empty",
            AssignmentMethod::AdvancedRoundRobin,
        ),
    ] {
        commands.push(Command::ConfigureWorkstream(Workstream::with_defaults(
            workstream_of(queue),
            name,
            channel,
        )));
        commands.push(Command::ConfigureQueue(QueueConfig {
            id: queue,
            name: name.to_owned(),
            workstream: workstream_of(queue),
            method,
        }));
    }
    for agent in [ANN, BOB, CID, DEE] {
        commands.push(Command::ProvisionAgent(profile(agent, 3)));
        for queue in [CHAT, VOICE, SMS] {
            commands.push(Command::AddAgentToQueue { queue, agent });
        }
    }
    commands
}

/// The tests' plain-HTTP client (the gateway, receivers' peers).
pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

pub fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// Sends `request` and reads the whole answer: its status, headers and body.
pub async fn exchange(
    client: &HttpClient,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> (hyper::StatusCode, hyper::HeaderMap, bytes::Bytes) {
    use http_body_util::BodyExt;
    let response = client.request(request).await.expect("the server answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, headers, body)
}
