//! A live engine for end-to-end tests: the real services on a real nats-server (started on a
//! free port by the engine) and a sled log in a temp dir, driven over the bus like any client.

use std::time::Duration;

use futures_util::StreamExt;
use omni_bus::Bus;
use omni_core::{Actor, AgentId, Command};
use omni_engine::{Engine, EngineConfig};
use omni_proto::{CommandEnvelope, Envelope, Outcome};
use uuid::Uuid;

use crate::support::{TempDir, standard_setup};

pub struct Live {
    pub engine: Engine,
    pub bus: Bus,
    _dir: TempDir,
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
            _dir: dir,
        }
    }

    /// The standard world of the rule tests (tests/support.rs), built over the bus.
    pub async fn standard(name: &str, time_scale: u32) -> Live {
        let live = Live::start(name, time_scale).await;
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
