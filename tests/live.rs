//! A live engine for end-to-end tests: the real services on a real nats-server (started on a
//! free port by the engine) and a sled log in a temp dir, driven over the bus like any client.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use omni_bus::Bus;
use omni_core::{Actor, AgentId, Command};
use omni_engine::{Engine, EngineConfig};
use omni_proto::{CommandEnvelope, Committed, Envelope, Outcome};
use omni_store::{EventLog, SledLog};
use uuid::Uuid;

use crate::support::{TempDir, standard_setup};

pub struct Live {
    pub engine: Engine,
    pub bus: Bus,
    dir: TempDir,
}

impl Live {
    /// An engine whose clock runs `time_scale` times as fast as the wall.
    pub async fn start(name: &str, time_scale: u32) -> Live {
        Live::start_with(name, |config| config.time_scale = time_scale).await
    }

    pub async fn start_with(name: &str, adjust: impl FnOnce(&mut EngineConfig)) -> Live {
        let dir = TempDir::new(name);
        let mut config = EngineConfig::new(dir.path());
        adjust(&mut config);
        let engine = Engine::start(config).await.expect("the engine starts");
        let client = omni_engine::connect(&engine.nats_url, "test")
            .await
            .expect("a test client connects");
        Live {
            engine,
            bus: Bus::new(client),
            dir,
        }
    }

    /// The standard world of the rule tests (tests/support.rs), built over the bus.
    pub async fn standard(name: &str, time_scale: u32) -> Live {
        Live::standard_with(name, |config| config.time_scale = time_scale).await
    }

    /// The standard world on an engine configured by `adjust`.
    pub async fn standard_with(name: &str, adjust: impl FnOnce(&mut EngineConfig)) -> Live {
        let live = Live::start_with(name, adjust).await;
        for command in standard_setup() {
            live.accepted(Actor::System, command).await;
        }
        live
    }

    /// Sends a command as `actor` and returns the engine's answer.
    pub async fn send(&self, actor: Actor, command: Command) -> Outcome {
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

    /// Sends a command that must be accepted; returns its outcome.
    pub async fn accepted(&self, actor: Actor, command: Command) -> Outcome {
        let outcome = self.send(actor, command.clone()).await;
        assert!(
            matches!(outcome, Outcome::Accepted { .. }),
            "{command:?} was not accepted: {outcome:?}"
        );
        outcome
    }

    /// Sends a command that must be accepted with exactly these event kinds, in this order;
    /// returns its committed events.
    pub async fn expect(&self, actor: Actor, command: Command, kinds: &[&str]) -> Vec<Committed> {
        let outcome = self.send(actor, command.clone()).await;
        committed(&command, outcome, kinds)
    }

    /// Sends every command before waiting for any answer, in this order on one connection, so
    /// the engine receives them back to back (ahead of whatever its router does meanwhile).
    /// Returns the answers in the same order.
    pub async fn pipelined(&self, commands: &[(Actor, Command)]) -> Vec<Outcome> {
        let client = self.bus.client();
        let inbox = client.new_inbox();
        let mut replies = client
            .subscribe(format!("{inbox}.*"))
            .await
            .expect("subscribe to a reply inbox");
        for (i, (actor, command)) in commands.iter().enumerate() {
            let envelope = CommandEnvelope {
                command_id: Uuid::now_v7(),
                actor: *actor,
                correlation_id: None,
                command: command.clone(),
            };
            let payload = omni_proto::encode_command(&envelope).expect("a wire command");
            let subject = omni_bus::subjects::intake(omni_proto::command_name(command));
            client
                .publish_with_reply(subject, format!("{inbox}.{i}"), Bytes::from(payload))
                .await
                .expect("publish a command");
        }
        client.flush().await.expect("flush");
        let mut outcomes: Vec<Option<Outcome>> = vec![None; commands.len()];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while outcomes.iter().any(Option::is_none) {
            let message = tokio::time::timeout_at(deadline, replies.next())
                .await
                .expect("every pipelined command is answered within 10 s")
                .expect("the inbox is open");
            let i: usize = message
                .subject
                .rsplit('.')
                .next()
                .and_then(|i| i.parse().ok())
                .expect("a reply to one of the commands");
            outcomes[i] = Some(omni_proto::decode_reply(&message.payload).expect("a CommandReply"));
        }
        outcomes.into_iter().map(Option::unwrap).collect()
    }

    /// Subscribes to committed events matching `filter` (a subject of `omni.events`).
    pub async fn events(&self, filter: &str) -> Events {
        let subscriber = self
            .bus
            .client()
            .subscribe(filter.to_owned())
            .await
            .expect("subscribe to events");
        self.bus.client().flush().await.expect("flush");
        Events { subscriber }
    }

    /// Subscribes to an agent's desktop notifications.
    pub async fn desktop(&self, agent: AgentId) -> Desktop {
        let subscriber = self
            .bus
            .client()
            .subscribe(omni_bus::subjects::desktop_of(agent))
            .await
            .expect("subscribe to a desktop");
        self.bus.client().flush().await.expect("flush");
        Desktop { subscriber }
    }

    pub async fn stop(self) {
        self.engine
            .shutdown()
            .await
            .expect("the engine stops cleanly");
    }

    /// Stops the engine and reads its whole log back from disk, in position order.
    pub async fn stop_and_read_log(self) -> Vec<(u64, Envelope)> {
        let Live { engine, bus, dir } = self;
        drop(bus);
        engine.shutdown().await.expect("the engine stops cleanly");
        read_log(&dir.path().join("log"))
    }

    /// Stops the engine and checks the projection it stored at shutdown against a replay of
    /// the log: the live read model must be exactly what the log rebuilds. Returns the
    /// snapshot's position.
    pub async fn stop_and_verify(self) -> u64 {
        let Live { engine, bus, dir } = self;
        drop(bus);
        engine.shutdown().await.expect("the engine stops cleanly");
        verify_stored(&dir.path().join("log"))
    }

    /// Stops the engine, verifies its stored projection as [`Live::stop_and_verify`] does,
    /// and reads the whole log back.
    pub async fn stop_verify_and_read_log(self) -> (u64, Vec<(u64, Envelope)>) {
        let Live { engine, bus, dir } = self;
        drop(bus);
        engine.shutdown().await.expect("the engine stops cleanly");
        let position = verify_stored(&dir.path().join("log"));
        (position, read_log(&dir.path().join("log")))
    }
}

/// Checks the projection stored beside the log under `dir` against a replay of that log;
/// returns the snapshot's position.
fn verify_stored(dir: &Path) -> u64 {
    let log = open_when_released(dir);
    let verification = omni_projection::verify(&log, &mut |_| {}).expect("a snapshot to verify");
    assert!(
        verification.differences.is_empty(),
        "the live projection differs from the replay: {:?}",
        verification.differences
    );
    // Services stop together, so the projector may stop a few events short of the head.
    assert!(verification.position <= log.head().expect("head"));
    log.close().expect("the log closes");
    verification.position
}

/// Opens a log an engine just closed. sled releases its file lock from a background thread
/// after `close` returns, so on a loaded machine the lock can outlive the shutdown briefly.
pub fn open_when_released(dir: &Path) -> SledLog {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match SledLog::open(dir) {
            Ok(log) => return log,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the log opens: {e}"),
        }
    }
}

/// Every event of the sled log under `dir`, decoded, in position order.
pub fn read_log(dir: &Path) -> Vec<(u64, Envelope)> {
    let log = open_when_released(dir);
    let mut events = Vec::new();
    let mut next = 1;
    loop {
        let batch = log.read_all(next, 10_000).expect("the log reads");
        if batch.is_empty() {
            break;
        }
        for event in batch {
            assert_eq!(event.position, next, "the log has no gaps");
            next += 1;
            let envelope = omni_proto::decode(&event.payload).expect("a stored event decodes");
            assert_eq!(envelope.event_id, event.id, "stored under its own id");
            events.push((event.position, envelope));
        }
    }
    log.close().expect("the log closes");
    events
}

/// The committed events of an accepted outcome whose kinds must be exactly `kinds`.
pub fn committed(command: &Command, outcome: Outcome, kinds: &[&str]) -> Vec<Committed> {
    let Outcome::Accepted { events, .. } = outcome else {
        panic!("{command:?} was not accepted: {outcome:?}");
    };
    let got: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(got, kinds, "the events of {command:?}");
    events
}

/// A subscription to committed events.
pub struct Events {
    subscriber: async_nats::Subscriber,
}

impl Events {
    /// The next event whose kind is `kind` within `within`, skipping others, with its
    /// position.
    pub async fn next(&mut self, kind: &str, within: Duration) -> (u64, Envelope) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.subscriber.next())
                .await
                .unwrap_or_else(|_| panic!("no {kind} event within {within:?}"))
                .expect("the subscription is open");
            if message.subject.as_str().ends_with(&format!(".{kind}")) {
                let position = omni_bus::headers::position(message.headers.as_ref())
                    .expect("a committed event carries its position");
                let envelope =
                    omni_proto::decode(&message.payload).expect("a committed event decodes");
                return (position, envelope);
            }
        }
    }
}

/// One agent's desktop notifications.
pub struct Desktop {
    subscriber: async_nats::Subscriber,
}

impl Desktop {
    /// The next notification named `name` within `within`, skipping others.
    pub async fn next(&mut self, name: &str, within: Duration) -> Envelope {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.subscriber.next())
                .await
                .unwrap_or_else(|_| panic!("no {name} notification within {within:?}"))
                .expect("the subscription is open");
            if message.subject.as_str().ends_with(&format!(".{name}")) {
                return omni_proto::decode(&message.payload)
                    .expect("a desktop payload is an event");
            }
        }
    }
}

/// Runs an async test body on a fresh multi-threaded runtime.
pub fn block_on<F: Future>(body: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(body)
}
