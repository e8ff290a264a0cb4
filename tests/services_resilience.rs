//! The engine under pressure: two routers racing for the same agents, and the NATS server
//! killed and restarted in the middle of traffic. Randomized but seeded traffic drives it over
//! the bus; afterwards the whole log is read back from disk and every step of it is checked
//! (tests/ledger.rs), not just the end state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use omni_bus::Followed;
use omni_core::{
    Actor, AgentId, Command, ConversationStatus, EventKind, OfferOrigin, QueueId, World, apply,
};
use omni_engine::NatsServer;
use omni_proto::{CommandEnvelope, Envelope, Outcome};
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::ledger::Ledger;
use crate::live::{Live, block_on};
use crate::support::{ANN, BOB, CHAT, CID, DEE, EMPTY, SMS, TempDir, VOICE, conversation, profile};

const AGENTS: [AgentId; 4] = [ANN, BOB, CID, DEE];
const QUEUES: [QueueId; 3] = [CHAT, VOICE, SMS];

/// Seeded traffic from customers and agents, chosen from what the log says so far.
struct Traffic {
    rng: SmallRng,
    next_conversation: u128,
    /// The world as followed over the bus, up to `position`.
    view: World,
    position: u64,
    followed: mpsc::Receiver<Followed>,
    _stop_following: watch::Sender<bool>,
    /// Every command sent and its answer; `None` when none came even after retries.
    sent: Vec<(CommandEnvelope, Option<Outcome>)>,
}

impl Traffic {
    async fn new(live: &Live, seed: u64) -> Traffic {
        let (stop, shutdown) = watch::channel(false);
        let followed = omni_bus::follow(live.bus.clone(), 1, shutdown)
            .await
            .expect("follow the log");
        Traffic {
            rng: SmallRng::seed_from_u64(seed),
            next_conversation: 1,
            view: World::default(),
            position: 0,
            followed,
            _stop_following: stop,
            sent: Vec::new(),
        }
    }

    /// Folds the followed events up to at least `position` (and whatever else is there).
    async fn catch_up(&mut self, position: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.position < position {
            let followed = tokio::time::timeout_at(deadline, self.followed.recv())
                .await
                .unwrap_or_else(|_| panic!("the log was not followed up to {position}"))
                .expect("the follower runs");
            self.fold(followed);
        }
        while let Ok(followed) = self.followed.try_recv() {
            self.fold(followed);
        }
    }

    fn fold(&mut self, followed: Followed) {
        let envelope = followed.envelope.expect("a committed event decodes");
        apply(&mut self.view, &envelope.event);
        self.position = followed.position;
    }

    /// One round of commands, chosen from the current view.
    fn plan(&mut self) -> Vec<(Actor, Command)> {
        let rng = &mut self.rng;
        let mut commands = Vec::new();
        if rng.random_bool(0.3) {
            let agent = *AGENTS.choose(rng).expect("agents");
            let signed_in = self.view.agents.get(&agent).is_some_and(|a| a.signed_in);
            commands.push((
                Actor::Agent(agent),
                if signed_in {
                    Command::SignOut { agent }
                } else {
                    Command::SignIn { agent }
                },
            ));
        }
        if rng.random_bool(0.3) {
            let agent = *AGENTS.choose(rng).expect("agents");
            commands.push((
                Actor::System,
                Command::SetAgentCapacity {
                    agent,
                    capacity_units: rng.random_range(1..=4),
                },
            ));
        }
        for _ in 0..rng.random_range(0..=4) {
            let n = self.next_conversation;
            self.next_conversation += 1;
            commands.push((
                Actor::Customer,
                Command::StartConversation {
                    conversation: conversation(n),
                    queue: *QUEUES.choose(rng).expect("queues"),
                    skills: Vec::new(),
                    customer: format!("customer {n}"),
                },
            ));
        }
        for c in self.view.conversations.values() {
            let conversation = c.id;
            let roll: f64 = rng.random();
            match (c.status, c.pending_offer, c.primary) {
                (ConversationStatus::Open, Some(number), _) => {
                    let Some(session) = c.session(number) else {
                        continue;
                    };
                    let (agent, session) = (session.agent, c.session_ref(number));
                    let command = if roll < 0.75 {
                        Command::Accept { agent, session }
                    } else {
                        Command::Reject { agent, session }
                    };
                    commands.push((Actor::Agent(agent), command));
                }
                (ConversationStatus::Open, None, _) if roll < 0.1 => {
                    commands.push((Actor::Customer, Command::CustomerEnd { conversation }));
                }
                (ConversationStatus::Active, _, Some(agent)) if roll < 0.4 => {
                    let command = if c.channel.is_persistent() && roll < 0.1 {
                        Command::CloseSession {
                            agent,
                            conversation,
                        }
                    } else {
                        Command::End {
                            agent,
                            conversation,
                        }
                    };
                    commands.push((Actor::Agent(agent), command));
                }
                (ConversationStatus::WrapUp, _, Some(agent)) if roll < 0.7 => {
                    commands.push((
                        Actor::Agent(agent),
                        Command::CompleteWrapUp {
                            agent,
                            conversation,
                        },
                    ));
                }
                (ConversationStatus::Waiting, _, _) if roll < 0.3 => {
                    commands.push((Actor::Customer, Command::CustomerMessage { conversation }));
                }
                _ => {}
            }
        }
        commands
    }

    /// Sends one round concurrently (racing the routers) and follows the log past it.
    async fn round(&mut self, live: &Live) {
        let envelopes: Vec<CommandEnvelope> = self
            .plan()
            .into_iter()
            .map(|(actor, command)| CommandEnvelope {
                command_id: Uuid::now_v7(),
                actor,
                correlation_id: None,
                command,
            })
            .collect();
        let outcomes = join_all(envelopes.iter().map(|e| live.bus.command(e))).await;
        let mut last = self.position;
        for (envelope, outcome) in envelopes.into_iter().zip(outcomes) {
            let outcome = outcome.ok();
            if let Some(position) = outcome.as_ref().and_then(Outcome::last_position) {
                last = last.max(position);
            }
            self.sent.push((envelope, outcome));
        }
        self.catch_up(last).await;
    }

    fn accepted(&self) -> impl Iterator<Item = (&CommandEnvelope, &Outcome)> {
        self.sent
            .iter()
            .filter_map(|(envelope, outcome)| match outcome {
                Some(outcome @ Outcome::Accepted { .. }) => Some((envelope, outcome)),
                _ => None,
            })
    }
}

/// Every accepted answer names events the log holds, at those positions, under those ids and
/// kinds; and no command's events appear twice (each command is one contiguous run).
fn assert_answers_match_the_log(traffic: &Traffic, log: &[(u64, Envelope)]) {
    let at: BTreeMap<u64, &Envelope> = log.iter().map(|(p, e)| (*p, e)).collect();
    for (command, outcome) in traffic.accepted() {
        let Outcome::Accepted { events, .. } = outcome else {
            unreachable!()
        };
        for committed in events {
            let stored = at.get(&committed.position).unwrap_or_else(|| {
                panic!(
                    "{command:?} was answered with position {} the log lacks",
                    committed.position
                )
            });
            assert_eq!(stored.event_id, committed.event_id, "{command:?}");
            assert_eq!(stored.event.kind.name(), committed.kind, "{command:?}");
            assert_eq!(stored.causation_id, Some(command.command_id), "{command:?}");
        }
    }
    let mut runs: BTreeMap<Uuid, (u64, u64, usize)> = BTreeMap::new();
    for (position, envelope) in log {
        let Some(cause) = envelope.causation_id else {
            continue;
        };
        let run = runs.entry(cause).or_insert((*position, *position, 0));
        assert_eq!(
            run.1 + u64::from(run.2 > 0),
            *position,
            "command {cause} wrote at {} and again at {position}: it was applied twice",
            run.1
        );
        run.1 = *position;
        run.2 += 1;
    }
}

/// The whole log checked step by step, and against the core's fold.
fn assert_log_invariants(log: &[(u64, Envelope)]) -> Ledger {
    let ledger = Ledger::check(log);
    let mut world = World::default();
    for (_, envelope) in log {
        apply(&mut world, &envelope.event);
    }
    ledger.assert_agrees_with(&world);
    ledger
}

async fn sign_everyone_in(live: &Live) {
    for agent in AGENTS {
        live.accepted(Actor::Agent(agent), Command::SignIn { agent })
            .await;
    }
}

#[test]
fn two_routers_racing_never_overbook_an_agent_or_double_offer_a_conversation() {
    block_on(async {
        let live = Live::standard_with("racing-routers", |config| config.routers = 2).await;
        sign_everyone_in(&live).await;
        let mut traffic = Traffic::new(&live, 0x5EED_0001).await;
        for _ in 0..60 {
            traffic.round(&live).await;
        }
        let route_requests = live.engine.metrics.route_requests.get();
        let log = live.stop_and_read_log().await;
        let ledger = assert_log_invariants(&log);
        assert_answers_match_the_log(&traffic, &log);
        let routed = log
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e.event.kind,
                    EventKind::IncomingSessionRequest {
                        origin: OfferOrigin::Routing,
                        ..
                    }
                )
            })
            .count();
        eprintln!(
            "racing routers: {} events, {} commands sent, {} offers ({routed} routed), filled up {} times, {route_requests} routing requests",
            log.len(),
            traffic.sent.len(),
            ledger.offers_made,
            ledger.filled_up
        );
        // The race was real: many offers, agents filled to capacity, and far more routing
        // requests than routed offers — the two routers asked for the same work, and the
        // writer declined whatever the other had already been given.
        assert!(
            ledger.offers_made >= 50,
            "only {} offers",
            ledger.offers_made
        );
        assert!(ledger.filled_up > 0, "no agent was ever filled to capacity");
        assert!(
            route_requests > routed as u64 + 20,
            "{route_requests} routing requests for {routed} routed offers"
        );
    });
}

#[test]
fn services_reconnect_after_nats_restarts_mid_traffic_and_nothing_is_lost_or_doubled() {
    block_on(async {
        let nats_dir = TempDir::new("nats-restart-server");
        let nats = NatsServer::start(nats_dir.path())
            .await
            .expect("nats-server starts");
        let (url, port) = (nats.url.clone(), nats.port);
        let mut live = Live::standard_with("nats-restart", |config| {
            config.nats_url = Some(url);
        })
        .await;
        // Short attempts, so commands caught by the outage are retried with their ids.
        live.bus.attempt_timeout = Duration::from_millis(250);
        sign_everyone_in(&live).await;
        let mut traffic = Traffic::new(&live, 0x5EED_0002).await;

        let rounds = Arc::new(AtomicUsize::new(0));
        // A command whose answer the outage swallows: it is stored, its reply goes nowhere,
        // and the server dies right after; the client sends it again after the restart.
        let orphan = CommandEnvelope {
            command_id: Uuid::now_v7(),
            actor: Actor::Customer,
            correlation_id: None,
            command: Command::StartConversation {
                conversation: conversation(0x0DD),
                queue: EMPTY,
                skills: Vec::new(),
                customer: "reply lost in the outage".to_owned(),
            },
        };
        let mut orphan_events = live
            .events(&omni_bus::subjects::events_of_conversation(conversation(
                0x0DD,
            )))
            .await;
        let chaos = {
            let rounds = Arc::clone(&rounds);
            let client = live.bus.client().clone();
            let orphan = omni_proto::encode_command(&orphan).expect("a wire command");
            async move {
                while rounds.load(Ordering::SeqCst) < 15 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                client
                    .publish_with_reply(
                        omni_bus::subjects::intake("start_conversation"),
                        client.new_inbox(),
                        orphan.into(),
                    )
                    .await
                    .expect("publish");
                orphan_events
                    .next("ConversationCreated", Duration::from_secs(5))
                    .await;
                nats.stop().await;
                let killed = rounds.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(700)).await;
                let nats = NatsServer::start_on(nats_dir.path(), port)
                    .await
                    .expect("nats-server restarts on the same port and store");
                (nats, nats_dir, killed, rounds.load(Ordering::SeqCst))
            }
        };
        let drive = async {
            for _ in 0..45 {
                traffic.round(&live).await;
                rounds.fetch_add(1, Ordering::SeqCst);
            }
        };
        let ((nats, _nats_dir, killed_at, restarted_at), ()) = tokio::join!(chaos, drive);
        assert!(
            restarted_at < 45,
            "the restart came after the traffic ({killed_at}, {restarted_at})"
        );

        // After the restart: every service is back. A new agent in a queue of their own is
        // offered a new conversation (router and desktop notifications work)…
        let eve = AgentId::from_u128(0xA5);
        live.accepted(Actor::System, Command::ProvisionAgent(profile(eve, 3)))
            .await;
        live.accepted(
            Actor::System,
            Command::AddAgentToQueue {
                queue: EMPTY,
                agent: eve,
            },
        )
        .await;
        let mut desk = live.desktop(eve).await;
        live.accepted(Actor::Agent(eve), Command::SignIn { agent: eve })
            .await;
        live.accepted(
            Actor::Customer,
            Command::StartConversation {
                conversation: conversation(0xE7E),
                queue: EMPTY,
                skills: Vec::new(),
                customer: "after the restart".to_owned(),
            },
        )
        .await;
        // (The orphan above waits in the same queue and may be offered to Eve first.)
        loop {
            let offer = desk
                .next("incoming_session_request", Duration::from_secs(5))
                .await;
            if offer.event.kind.conversation() == Some(conversation(0xE7E)) {
                break;
            }
        }
        // …and commands sent again with their ids are answered from the first attempt,
        // before and after the restart alike, without writing anything.
        let retried: Vec<(CommandEnvelope, Outcome)> = traffic
            .accepted()
            .step_by(7)
            .map(|(e, o)| (e.clone(), o.clone()))
            .collect();
        assert!(retried.len() > 5);
        for (envelope, first) in &retried {
            let again = live.bus.command(envelope).await.expect("answered");
            let (
                Outcome::Accepted { events: a, .. },
                Outcome::Accepted {
                    events: b,
                    replayed: true,
                },
            ) = (first, &again)
            else {
                panic!("a retry of {envelope:?} was not replayed: {again:?}");
            };
            assert_eq!(a, b);
        }

        // The command whose reply was lost: its retry is answered from the first attempt.
        let again = live.bus.command(&orphan).await.expect("answered");
        let Outcome::Accepted {
            events,
            replayed: true,
        } = &again
        else {
            panic!("the orphan's retry was not replayed: {again:?}");
        };
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "ConversationCreated");
        traffic.sent.push((orphan, Some(again)));
        let replayed = live.engine.metrics.commands_replayed.get();
        let log = live.stop_and_read_log().await;
        nats.stop().await;
        let ledger = assert_log_invariants(&log);
        assert_answers_match_the_log(&traffic, &log);
        eprintln!(
            "nats restart: killed after round {killed_at}, back after round {restarted_at}; {} events, {} commands sent, {} offers, {replayed} retries answered from the first attempt",
            log.len(),
            traffic.sent.len(),
            ledger.offers_made,
        );
        let unanswered = traffic.sent.iter().filter(|(_, o)| o.is_none()).count();
        assert_eq!(unanswered, 0, "commands left without an answer");
    });
}
