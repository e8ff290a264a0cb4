//! The read side end to end on a real nats-server: the conversation service (on a sled log in
//! a temporary directory), the projector and the presence service run in-process; commands go
//! through `omni_bus::Bus` and every query kind is asked over the bus, well-formed and not.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use omni_bus::{Bus, Metrics, headers, subjects};
use omni_core::{
    Actor, AgentId, AgentProfile, AssignmentMethod, BaseStatus, Channel, Command, ConversationId,
    CustomPresence, Presence, PresenceId, QueueConfig, QueueId, SessionNo, SessionRef, Workstream,
    WorkstreamId,
};
use omni_projection::SNAPSHOT_NAME;
use omni_proto::{CommandEnvelope, Outcome, pb};
use omni_store::{EventLog, SledLog};
use prost::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::nats::NatsServer;

const WORKSTREAM: WorkstreamId = WorkstreamId::from_u128(0x55);
const QUEUE: QueueId = QueueId::from_u128(0x90);
const OTHER_QUEUE: QueueId = QueueId::from_u128(0x91);
const ANA: AgentId = AgentId::from_u128(0xa1);
const BO: AgentId = AgentId::from_u128(0xa2);
/// Accepted by Ana.
const ACTIVE: ConversationId = ConversationId::from_u128(0xc1);
/// Waiting in the queue.
const OPEN: ConversationId = ConversationId::from_u128(0xc2);
const TRAINING: PresenceId = PresenceId::from_u128(0x7a1);

fn bytes_of(id: Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "omni-services-{name}-{}-{}",
            std::process::id(),
            Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A service running in-process, with its own shutdown switch.
struct Running<E> {
    stop: watch::Sender<bool>,
    handle: JoinHandle<Result<(), E>>,
}

impl<E: std::fmt::Display> Running<E> {
    /// Stops the service and checks it stopped cleanly.
    async fn stop(self, name: &str) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(Duration::from_secs(10), self.handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("{name} failed: {e}"),
            Ok(Err(e)) => panic!("{name} panicked: {e}"),
            Err(_) => panic!("{name} did not stop within 10 s"),
        }
    }

    fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }
}

fn spawn<E, F>(start: impl FnOnce(watch::Receiver<bool>) -> F) -> Running<E>
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let (stop, shutdown) = watch::channel(false);
    Running {
        stop,
        handle: tokio::spawn(start(shutdown)),
    }
}

/// The engine's services on one nats-server, and a client.
struct Engine {
    nats: NatsServer,
    log: Arc<SledLog>,
    conversations: Running<omni_conversations::ServiceError>,
    projector: Option<Running<omni_projector::ServiceError>>,
    presence: Running<omni_presence::ServiceError>,
    projector_config: omni_projector::Config,
    bus: Bus,
    client: async_nats::Client,
    _dir: TempDir,
}

impl Engine {
    async fn start(name: &str, snapshots: bool) -> Engine {
        let nats = NatsServer::start();
        let dir = TempDir::new(name);
        let log = Arc::new(SledLog::open(&dir.0.join("log")).expect("a sled log"));
        let shared: Arc<dyn EventLog> = log.clone();
        let client = nats.connect().await;
        let conversations = {
            let client = nats.connect().await;
            let log = Arc::clone(&shared);
            spawn(move |shutdown| {
                omni_conversations::run(
                    omni_conversations::Config::default(),
                    log,
                    client,
                    Arc::new(Metrics::default()),
                    shutdown,
                )
            })
        };
        let projector_config = omni_projector::Config {
            snapshots: snapshots.then(|| Arc::clone(&shared)),
            snapshot_interval: Duration::from_secs(3600),
            snapshot_events: 5,
            max_wait: Duration::from_millis(1500),
        };
        let presence = {
            let client = nats.connect().await;
            spawn(move |shutdown| {
                omni_presence::run(
                    omni_presence::Config::default(),
                    client,
                    Arc::new(Metrics::default()),
                    shutdown,
                )
            })
        };
        let mut engine = Engine {
            projector: None,
            projector_config,
            conversations,
            presence,
            log,
            bus: Bus::new(client.clone()),
            client,
            nats,
            _dir: dir,
        };
        engine.start_projector().await;
        engine
    }

    async fn start_projector(&mut self) {
        let client = self.nats.connect().await;
        let config = self.projector_config.clone();
        self.projector = Some(spawn(move |shutdown| {
            omni_projector::run(config, client, Arc::new(Metrics::default()), shutdown)
        }));
    }

    async fn stop_projector(&mut self) {
        self.projector
            .take()
            .expect("the projector runs")
            .stop("the projector")
            .await;
    }

    async fn stop(mut self) {
        if self.projector.is_some() {
            self.stop_projector().await;
        }
        self.presence.stop("the presence service").await;
        self.conversations.stop("the conversation service").await;
    }

    /// Sends a command and returns its outcome.
    async fn send(&self, actor: Actor, command: Command) -> Outcome {
        let envelope = CommandEnvelope {
            command_id: Uuid::now_v7(),
            actor,
            correlation_id: None,
            command,
        };
        self.bus
            .command(&envelope)
            .await
            .expect("the engine answers")
    }

    /// Sends a command that must be accepted; the log position of its last event.
    async fn exec(&self, actor: Actor, command: Command) -> u64 {
        let name = omni_proto::command_name(&command);
        match self.send(actor, command).await {
            outcome @ Outcome::Accepted { .. } => outcome.last_position().unwrap_or(0),
            Outcome::Rejected { code, reason, .. } => {
                panic!("{name} was rejected: {code:?} {reason}")
            }
        }
    }

    async fn query(&self, subject: &str, request: &impl Message) -> pb::QueryReply {
        self.bus
            .query(subject, request)
            .await
            .unwrap_or_else(|e| panic!("no answer on {subject}: {e}"))
    }

    /// Sends raw bytes and reads the `QueryReply`.
    async fn raw(&self, subject: &str, payload: &[u8]) -> pb::QueryReply {
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            self.client
                .request(subject.to_owned(), Bytes::copy_from_slice(payload)),
        )
        .await
        .unwrap_or_else(|_| panic!("no answer on {subject} within 5 s"))
        .unwrap_or_else(|e| panic!("no answer on {subject}: {e}"));
        pb::QueryReply::decode(reply.payload).expect("a QueryReply")
    }

    /// A chat queue with Ana (signed in, capacity 2) and Bo (not signed in); an Other queue
    /// with Bo; a custom presence "Training"; conversation ACTIVE accepted by Ana, OPEN waiting.
    /// The position of the last event.
    async fn provision(&self) -> u64 {
        let admin = Actor::System;
        self.exec(
            admin,
            Command::ConfigureWorkstream(Workstream::with_defaults(
                WORKSTREAM,
                "Chat",
                Channel::LiveChat,
            )),
        )
        .await;
        for (id, name) in [(QUEUE, "Tier 1"), (OTHER_QUEUE, "Tier 2")] {
            self.exec(
                admin,
                Command::ConfigureQueue(QueueConfig {
                    id,
                    name: name.into(),
                    workstream: WORKSTREAM,
                    method: AssignmentMethod::HighestCapacity,
                }),
            )
            .await;
        }
        self.exec(
            admin,
            Command::DefineCustomPresence(CustomPresence {
                id: TRAINING,
                name: "Training".into(),
                base: BaseStatus::Away,
            }),
        )
        .await;
        for (agent, name, queue) in [(ANA, "Ana", QUEUE), (BO, "Bo", OTHER_QUEUE)] {
            self.exec(
                admin,
                Command::ProvisionAgent(AgentProfile {
                    id: agent,
                    name: name.into(),
                    capacity_units: 2,
                    skills: Default::default(),
                    max_sessions: 10,
                    default_presence: PresenceId::AVAILABLE,
                }),
            )
            .await;
            self.exec(admin, Command::AddAgentToQueue { queue, agent })
                .await;
        }
        // Both arrive before Ana signs in, so neither is offered on arrival; no router runs
        // here, so OPEN keeps waiting after ACTIVE is routed to her.
        for conversation in [ACTIVE, OPEN] {
            self.exec(
                Actor::Customer,
                Command::StartConversation {
                    conversation,
                    queue: QUEUE,
                    skills: Vec::new(),
                    customer: "Carla".into(),
                },
            )
            .await;
        }
        self.exec(Actor::Agent(ANA), Command::SignIn { agent: ANA })
            .await;
        self.exec(
            Actor::System,
            Command::Route {
                conversation: ACTIVE,
            },
        )
        .await;
        self.exec(
            Actor::Agent(ANA),
            Command::Accept {
                agent: ANA,
                session: SessionRef {
                    conversation: ACTIVE,
                    number: SessionNo(1),
                },
            },
        )
        .await
    }
}

fn result(reply: pb::QueryReply) -> pb::query_reply::Result {
    reply.result.expect("a reply carries a result")
}

fn conversation(reply: pb::QueryReply) -> pb::ConversationView {
    match result(reply) {
        pb::query_reply::Result::Conversation(view) => view,
        other => panic!("expected a conversation, got {other:?}"),
    }
}

fn conversations(reply: pb::QueryReply) -> pb::ConversationPage {
    match result(reply) {
        pb::query_reply::Result::Conversations(page) => page,
        other => panic!("expected a page of conversations, got {other:?}"),
    }
}

fn agent(reply: pb::QueryReply) -> pb::AgentView {
    match result(reply) {
        pb::query_reply::Result::Agent(view) => view,
        other => panic!("expected an agent, got {other:?}"),
    }
}

fn agents(reply: pb::QueryReply) -> pb::AgentPage {
    match result(reply) {
        pb::query_reply::Result::Agents(page) => page,
        other => panic!("expected a page of agents, got {other:?}"),
    }
}

fn error(reply: pb::QueryReply) -> pb::QueryError {
    match result(reply) {
        pb::query_reply::Result::Error(error) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn ids_of_conversations(page: &pb::ConversationPage) -> Vec<Vec<u8>> {
    page.conversations
        .iter()
        .map(|c| c.conversation_id.clone())
        .collect()
}

fn ids_of_agents(page: &pb::AgentPage) -> Vec<Vec<u8>> {
    page.agents.iter().map(|a| a.agent_id.clone()).collect()
}

fn get_agent(agent: AgentId, min_position: u64) -> pb::GetAgent {
    pb::GetAgent {
        agent_id: bytes_of(agent.0),
        min_position,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_answers_every_query_kind_from_the_log() {
    let engine = Engine::start("every-kind", false).await;
    let at = engine.provision().await;

    let reply = engine
        .query(
            subjects::QUERY_CONVERSATION,
            &pb::GetConversation {
                conversation_id: bytes_of(ACTIVE.0),
                min_position: at,
            },
        )
        .await;
    assert!(reply.position >= at, "answered as of {}", reply.position);
    let view = conversation(reply);
    assert_eq!(view.conversation_id, bytes_of(ACTIVE.0));
    assert_eq!(view.status, pb::ConversationStatus::Active as i32);
    assert_eq!(view.channel, pb::Channel::LiveChat as i32);
    assert_eq!(view.queue_id, bytes_of(QUEUE.0));
    assert_eq!(view.primary_agent_id, bytes_of(ANA.0));
    assert_eq!(view.sessions.len(), 1);
    assert!(view.sessions[0].primary);

    let missing = engine
        .query(
            subjects::QUERY_CONVERSATION,
            &pb::GetConversation {
                conversation_id: bytes_of(Uuid::from_u128(0xdead)),
                min_position: at,
            },
        )
        .await;
    assert_eq!(error(missing).code, pb::QueryErrorCode::NotFound as i32);

    let page = conversations(
        engine
            .query(
                subjects::QUERY_CONVERSATIONS,
                &pb::ListConversations {
                    min_position: at,
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(
        ids_of_conversations(&page),
        [bytes_of(ACTIVE.0), bytes_of(OPEN.0)]
    );
    assert!(page.next_page_token.is_empty());

    let view = agent(
        engine
            .query(subjects::QUERY_AGENT, &get_agent(ANA, at))
            .await,
    );
    assert_eq!(view.name, "Ana");
    assert!(view.signed_in);
    assert_eq!(view.capacity_units, 2);
    assert_eq!(view.available_units, 1, "one of two units is held");
    assert_eq!(view.queue_ids, [bytes_of(QUEUE.0)]);
    assert_eq!(view.open_conversation_ids, [bytes_of(ACTIVE.0)]);
    assert_eq!(
        view.presence,
        Some(omni_proto::presence_view(Presence::of(BaseStatus::Busy))),
        "partly used capacity: Busy"
    );
    let missing = engine
        .query(
            subjects::QUERY_AGENT,
            &get_agent(AgentId::from_u128(0xdead), at),
        )
        .await;
    assert_eq!(error(missing).code, pb::QueryErrorCode::NotFound as i32);

    let page = agents(
        engine
            .query(
                subjects::QUERY_AGENTS,
                &pb::ListAgents {
                    min_position: at,
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(ids_of_agents(&page), [bytes_of(ANA.0), bytes_of(BO.0)]);

    let queues = match result(
        engine
            .query(subjects::QUERY_QUEUES, &pb::ListQueues { min_position: at })
            .await,
    ) {
        pb::query_reply::Result::Queues(list) => list.queues,
        other => panic!("expected queues, got {other:?}"),
    };
    let [tier1, tier2] = queues.as_slice() else {
        panic!("two queues expected: {queues:?}");
    };
    assert_eq!(tier1.queue_id, bytes_of(QUEUE.0));
    assert_eq!(tier1.name, "Tier 1");
    assert_eq!(tier1.channel, pb::Channel::LiveChat as i32);
    assert_eq!(
        (tier1.members, tier1.members_signed_in, tier1.waiting),
        (1, 1, 1)
    );
    assert!(tier1.oldest_waiting_since > 0);
    assert_eq!(
        (tier2.members, tier2.members_signed_in, tier2.waiting),
        (1, 0, 0)
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_by_every_field_and_page_by_token() {
    let engine = Engine::start("filters", false).await;
    let at = engine.provision().await;
    let list = |request: pb::ListConversations| {
        let engine = &engine;
        async move {
            let request = pb::ListConversations {
                min_position: at,
                ..request
            };
            conversations(engine.query(subjects::QUERY_CONVERSATIONS, &request).await)
        }
    };
    let active = list(pb::ListConversations {
        status: pb::ConversationStatus::Active as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(ids_of_conversations(&active), [bytes_of(ACTIVE.0)]);
    let open_in_queue = list(pb::ListConversations {
        status: pb::ConversationStatus::Open as i32,
        queue_id: bytes_of(QUEUE.0),
        ..Default::default()
    })
    .await;
    assert_eq!(ids_of_conversations(&open_in_queue), [bytes_of(OPEN.0)]);
    let anas = list(pb::ListConversations {
        agent_id: bytes_of(ANA.0),
        ..Default::default()
    })
    .await;
    assert_eq!(ids_of_conversations(&anas), [bytes_of(ACTIVE.0)]);
    let voice = list(pb::ListConversations {
        channel: pb::Channel::Voice as i32,
        ..Default::default()
    })
    .await;
    assert!(voice.conversations.is_empty());
    let other_queue = list(pb::ListConversations {
        queue_id: bytes_of(OTHER_QUEUE.0),
        ..Default::default()
    })
    .await;
    assert!(other_queue.conversations.is_empty());

    // Page by page, one at a time: the token is the last id of the page.
    let first = list(pb::ListConversations {
        page_size: 1,
        ..Default::default()
    })
    .await;
    assert_eq!(ids_of_conversations(&first), [bytes_of(ACTIVE.0)]);
    assert_eq!(first.next_page_token, bytes_of(ACTIVE.0));
    let second = list(pb::ListConversations {
        page_size: 1,
        page_token: first.next_page_token,
        ..Default::default()
    })
    .await;
    assert_eq!(ids_of_conversations(&second), [bytes_of(OPEN.0)]);
    assert!(second.next_page_token.is_empty(), "the last page");

    let list_agents = |request: pb::ListAgents| {
        let engine = &engine;
        async move {
            let request = pb::ListAgents {
                min_position: at,
                ..request
            };
            agents(engine.query(subjects::QUERY_AGENTS, &request).await)
        }
    };
    let signed_in = list_agents(pb::ListAgents {
        signed_in_only: true,
        ..Default::default()
    })
    .await;
    assert_eq!(ids_of_agents(&signed_in), [bytes_of(ANA.0)]);
    let offline = list_agents(pb::ListAgents {
        base: pb::BaseStatus::Offline as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(ids_of_agents(&offline), [bytes_of(BO.0)]);
    let tier2 = list_agents(pb::ListAgents {
        queue_id: bytes_of(OTHER_QUEUE.0),
        ..Default::default()
    })
    .await;
    assert_eq!(ids_of_agents(&tier2), [bytes_of(BO.0)]);
    let first = list_agents(pb::ListAgents {
        page_size: 1,
        ..Default::default()
    })
    .await;
    assert_eq!(ids_of_agents(&first), [bytes_of(ANA.0)]);
    let second = list_agents(pb::ListAgents {
        page_size: 1,
        page_token: first.next_page_token,
        ..Default::default()
    })
    .await;
    assert_eq!(ids_of_agents(&second), [bytes_of(BO.0)]);
    assert!(second.next_page_token.is_empty());
    engine.stop().await;
}

/// Waits for the next dead letter and returns its subject and reason.
async fn dead_letter(dead: &mut async_nats::Subscriber) -> (String, String, String) {
    let message = tokio::time::timeout(Duration::from_secs(5), dead.next())
        .await
        .expect("a dead letter within 5 s")
        .expect("the subscription is open");
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    (
        message.subject.to_string(),
        header(headers::DEAD_SUBJECT),
        header(headers::DEAD_REASON),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_queries_are_answered_named_and_dead_lettered_and_the_projector_goes_on() {
    let engine = Engine::start("malformed-queries", false).await;
    let at = engine.provision().await;
    let mut dead = engine
        .client
        .subscribe(subjects::dead_letter(omni_projector::SERVICE))
        .await
        .expect("subscribe to dead letters");
    engine.client.flush().await.expect("flush");

    let garbage = [0xff_u8, 0xff, 0xff];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            subjects::QUERY_CONVERSATION,
            garbage.to_vec(),
            "bytes are not a protobuf omnichannel.v1.GetConversation",
        ),
        (
            subjects::QUERY_CONVERSATION,
            pb::GetConversation::default().encode_to_vec(),
            "GetConversation.conversation_id is missing",
        ),
        (
            subjects::QUERY_CONVERSATIONS,
            pb::ListConversations {
                page_size: 1001,
                ..Default::default()
            }
            .encode_to_vec(),
            "ListConversations.page_size: 1001 is out of range",
        ),
        (
            subjects::QUERY_CONVERSATIONS,
            pb::ListConversations {
                status: 42,
                ..Default::default()
            }
            .encode_to_vec(),
            "ListConversations.status: 42 is not a known ConversationStatus",
        ),
        (
            subjects::QUERY_AGENT,
            pb::GetAgent {
                agent_id: vec![1, 2, 3],
                min_position: 0,
            }
            .encode_to_vec(),
            "GetAgent.agent_id: 3 bytes are not a UUID (an id is 16 bytes)",
        ),
        (
            subjects::QUERY_AGENTS,
            pb::ListAgents {
                page_token: vec![9; 5],
                ..Default::default()
            }
            .encode_to_vec(),
            "ListAgents.page_token",
        ),
        (
            subjects::QUERY_QUEUES,
            garbage.to_vec(),
            "bytes are not a protobuf omnichannel.v1.ListQueues",
        ),
        (
            "omni.query.everything",
            Vec::new(),
            "'omni.query.everything' is not a query the projector answers",
        ),
    ];
    for (subject, payload, expected) in cases {
        let reply = engine.raw(subject, &payload).await;
        let failure = error(reply);
        assert_eq!(
            failure.code,
            pb::QueryErrorCode::Malformed as i32,
            "{subject}: {failure:?}"
        );
        assert!(
            failure.reason.starts_with(expected),
            "{subject}: the reason '{}' does not start with '{expected}'",
            failure.reason
        );
        let (dead_subject, sent_on, reason) = dead_letter(&mut dead).await;
        assert_eq!(dead_subject, "omni.dead.projector");
        assert_eq!(sent_on, subject);
        assert_eq!(reason, failure.reason);
    }

    // Still answering.
    let view = agent(
        engine
            .query(subjects::QUERY_AGENT, &get_agent(ANA, at))
            .await,
    );
    assert_eq!(view.name, "Ana");
    assert!(engine.projector.as_ref().expect("runs").is_running());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_waits_for_its_min_position_or_answers_not_ready() {
    let engine = Engine::start("min-position", false).await;
    let at = engine.provision().await;

    // Read your writes: asked right after the command's answer, the query sees its effect.
    let signed_in = engine
        .exec(Actor::Agent(BO), Command::SignIn { agent: BO })
        .await;
    let reply = engine
        .query(subjects::QUERY_AGENT, &get_agent(BO, signed_in))
        .await;
    assert!(reply.position >= signed_in);
    assert!(agent(reply).signed_in);

    // A query for a position not yet written waits for it.
    let waiting = {
        let bus = engine.bus.clone();
        tokio::spawn(async move {
            bus.query(subjects::QUERY_AGENT, &get_agent(BO, signed_in + 1))
                .await
                .expect("an answer")
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let away = engine
        .exec(
            Actor::Agent(BO),
            Command::SetPresence {
                agent: BO,
                presence: PresenceId::AWAY,
            },
        )
        .await;
    assert_eq!(away, signed_in + 1);
    let reply = waiting.await.expect("the query task");
    assert!(reply.position > signed_in);
    assert_eq!(
        agent(reply).presence,
        Some(omni_proto::presence_view(Presence::of(BaseStatus::Away)))
    );

    // A position that does not come: NOT_READY after the projector's wait limit, saying how
    // far it got.
    let started = Instant::now();
    let reply = engine
        .query(
            subjects::QUERY_CONVERSATIONS,
            &pb::ListConversations {
                min_position: at + 1_000,
                ..Default::default()
            },
        )
        .await;
    let waited = started.elapsed();
    assert_eq!(reply.position, away);
    let failure = error(reply);
    assert_eq!(failure.code, pb::QueryErrorCode::NotReady as i32);
    assert!(
        failure.reason.contains(&format!("up to position {away}")),
        "{}",
        failure.reason
    );
    assert!(
        waited >= Duration::from_millis(1_400) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    engine.stop().await;
}

fn modify(command_id: Uuid, agent: AgentId, presence: PresenceId) -> pb::ModifyAgentPresence {
    pb::ModifyAgentPresence {
        command_id: bytes_of(command_id),
        agent_id: bytes_of(agent.0),
        presence_id: bytes_of(presence.0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_get_and_modify_answer_with_the_agent_after_the_change() {
    let engine = Engine::start("presence", false).await;
    let at = engine.provision().await;

    let reply = engine
        .query(subjects::PRESENCE_GET, &get_agent(ANA, at))
        .await;
    assert!(reply.position >= at);
    let before = agent(reply);
    assert_eq!(
        before.presence,
        Some(omni_proto::presence_view(Presence::of(BaseStatus::Busy)))
    );
    assert!(before.signed_in);
    assert_eq!(before.available_units, 1);
    assert_eq!(before.presence_source, pb::PresenceSource::System as i32);

    // An out-of-the-box presence.
    let command = Uuid::now_v7();
    let reply = engine
        .query(
            subjects::PRESENCE_MODIFY,
            &modify(command, ANA, PresenceId::AWAY),
        )
        .await;
    let position = reply.position;
    let after = agent(reply);
    assert_eq!(
        after.presence,
        Some(omni_proto::presence_view(Presence::of(BaseStatus::Away)))
    );
    assert_eq!(after.presence_source, pb::PresenceSource::Agent as i32);
    assert!(after.presence_modified_at >= before.presence_modified_at);
    assert!(position > at);

    // A retry with the same command id changes nothing and answers the same.
    let again = engine
        .query(
            subjects::PRESENCE_MODIFY,
            &modify(command, ANA, PresenceId::AWAY),
        )
        .await;
    assert_eq!(again.position, position, "nothing new was written");
    assert_eq!(agent(again), after);

    // A custom presence the administrator defined, on its base status.
    let reply = engine
        .query(
            subjects::PRESENCE_MODIFY,
            &modify(Uuid::now_v7(), ANA, TRAINING),
        )
        .await;
    assert_eq!(
        agent(reply).presence,
        Some(omni_proto::presence_view(Presence {
            id: TRAINING,
            base: BaseStatus::Away,
        }))
    );

    // The projector sees the same.
    let head = engine.log.head().expect("head");
    let view = agent(
        engine
            .query(subjects::QUERY_AGENT, &get_agent(ANA, head))
            .await,
    );
    assert_eq!(
        view.presence,
        Some(omni_proto::presence_view(Presence {
            id: TRAINING,
            base: BaseStatus::Away,
        }))
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_changes_the_engine_refuses_carry_its_rejection() {
    let engine = Engine::start("presence-rejected", false).await;
    engine.provision().await;

    let unknown = PresenceId::from_u128(0x0bad);
    let failure = error(
        engine
            .query(
                subjects::PRESENCE_MODIFY,
                &modify(Uuid::now_v7(), ANA, unknown),
            )
            .await,
    );
    assert_eq!(failure.code, pb::QueryErrorCode::Rejected as i32);
    assert_eq!(failure.rejection, pb::RejectionCode::UnknownPresence as i32);
    assert!(
        failure.reason.contains(&unknown.0.to_string()),
        "{}",
        failure.reason
    );

    let failure = error(
        engine
            .query(
                subjects::PRESENCE_MODIFY,
                &modify(Uuid::now_v7(), BO, PresenceId::AVAILABLE),
            )
            .await,
    );
    assert_eq!(failure.code, pb::QueryErrorCode::Rejected as i32);
    assert_eq!(failure.rejection, pb::RejectionCode::NotSignedIn as i32);

    let failure = error(
        engine
            .query(
                subjects::PRESENCE_MODIFY,
                &modify(Uuid::now_v7(), AgentId::from_u128(0xdead), PresenceId::AWAY),
            )
            .await,
    );
    assert_eq!(failure.rejection, pb::RejectionCode::UnknownAgent as i32);

    let missing = engine
        .query(
            subjects::PRESENCE_GET,
            &get_agent(AgentId::from_u128(0xdead), 0),
        )
        .await;
    assert_eq!(error(missing).code, pb::QueryErrorCode::NotFound as i32);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_presence_requests_are_answered_named_and_dead_lettered() {
    let engine = Engine::start("presence-malformed", false).await;
    let at = engine.provision().await;
    let mut dead = engine
        .client
        .subscribe(subjects::dead_letter(omni_presence::SERVICE))
        .await
        .expect("subscribe to dead letters");
    engine.client.flush().await.expect("flush");

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            subjects::PRESENCE_MODIFY,
            pb::ModifyAgentPresence {
                presence_id: vec![1; 8],
                ..modify(Uuid::now_v7(), ANA, PresenceId::AWAY)
            }
            .encode_to_vec(),
            "ModifyAgentPresence.presence_id: 8 bytes are not a UUID (an id is 16 bytes)",
        ),
        (
            subjects::PRESENCE_MODIFY,
            pb::ModifyAgentPresence {
                command_id: Vec::new(),
                ..modify(Uuid::now_v7(), ANA, PresenceId::AWAY)
            }
            .encode_to_vec(),
            "ModifyAgentPresence.command_id is missing",
        ),
        (
            subjects::PRESENCE_MODIFY,
            vec![0xff, 0xff],
            "bytes are not a protobuf omnichannel.v1.ModifyAgentPresence",
        ),
        (
            subjects::PRESENCE_GET,
            pb::GetAgent::default().encode_to_vec(),
            "GetAgent.agent_id is missing",
        ),
    ];
    for (subject, payload, expected) in cases {
        let failure = error(engine.raw(subject, &payload).await);
        assert_eq!(failure.code, pb::QueryErrorCode::Malformed as i32);
        assert!(
            failure.reason.starts_with(expected),
            "{subject}: the reason '{}' does not start with '{expected}'",
            failure.reason
        );
        let (dead_subject, sent_on, reason) = dead_letter(&mut dead).await;
        assert_eq!(dead_subject, "omni.dead.presence");
        assert_eq!(sent_on, subject);
        assert_eq!(reason, failure.reason);
    }
    // Nothing was changed, and the service still answers.
    let view = agent(
        engine
            .query(subjects::PRESENCE_GET, &get_agent(ANA, at))
            .await,
    );
    assert_eq!(
        view.presence,
        Some(omni_proto::presence_view(Presence::of(BaseStatus::Busy)))
    );
    assert!(engine.presence.is_running());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_restarts_from_its_snapshot_and_the_live_projection_verifies() {
    let mut engine = Engine::start("snapshots", true).await;
    let at = engine.provision().await;

    // Every few events a snapshot is stored while running.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stored = engine
            .log
            .load_snapshot(SNAPSHOT_NAME)
            .expect("read the snapshot")
            .map_or(0, |s| s.position);
        if stored >= at.saturating_sub(5) && stored > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot near {at}: {stored}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // At shutdown it stores one at the position it folded, equal to a replay of the log.
    engine
        .query(subjects::QUERY_AGENT, &get_agent(ANA, at))
        .await;
    engine.stop_projector().await;
    let snapshot = engine
        .log
        .load_snapshot(SNAPSHOT_NAME)
        .expect("read the snapshot")
        .expect("a snapshot");
    assert_eq!(snapshot.position, engine.log.head().expect("head"));
    let verification = omni_projection::verify(&*engine.log, &mut |_| {}).expect("verify");
    assert_eq!(verification.position, snapshot.position);
    assert!(
        verification.differences.is_empty(),
        "the live projection differs from a replay: {:?}",
        verification.differences
    );

    // Mark the snapshot so that a restart from it shows, and write while the projector is down.
    let mut world = omni_projection::restore(&snapshot).expect("a sound snapshot");
    world.agents.get_mut(&ANA).expect("Ana").profile.name = "Ana (from the snapshot)".into();
    engine
        .log
        .save_snapshot(
            SNAPSHOT_NAME,
            &omni_projection::snapshot_of(&world, snapshot.position),
        )
        .expect("store the marked snapshot");
    let later = engine
        .exec(Actor::Agent(BO), Command::SignIn { agent: BO })
        .await;
    assert!(later > snapshot.position);

    engine.start_projector().await;
    let view = agent(
        engine
            .query(subjects::QUERY_AGENT, &get_agent(ANA, later))
            .await,
    );
    assert_eq!(
        view.name, "Ana (from the snapshot)",
        "restored, not refolded"
    );
    let reply = engine
        .query(subjects::QUERY_AGENT, &get_agent(BO, later))
        .await;
    assert!(reply.position >= later);
    assert!(
        agent(reply).signed_in,
        "what came after the snapshot is folded"
    );
    engine.stop().await;
}
