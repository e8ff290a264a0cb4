//! The conversation service when the log refuses an append while the next batch is already
//! decided (the writer is pipelined: batch N+1 is decided while N is being stored). Both
//! batches must be refused as unavailable (retryable), the world reloaded from the log, and
//! nothing acknowledged before lost: retries of the refused commands are decided afresh, a
//! retry of an acknowledged one is answered with its original events.
//!
//! The same hold, let through instead of refused, shows what the service does with commands
//! that arrive while an append is in flight: they are decided as they come and stored together,
//! in one append, once it is durable.
//!
//! The wrapper around the real sled log holds one `append_many_then` (the service's appends)
//! until the test lets it go, so the test decides what is in flight, and then refuses it or
//! passes it on; every other call goes to the log unchanged.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use omni_bus::{Bus, Metrics, subjects};
use omni_core::{Actor, Command};
use omni_proto::{CommandEnvelope, Outcome, pb};
use omni_store::{
    AppendDone, AppendRequest, AppendResult, EventLog, EventRef, ExpectedVersion, NewEvent,
    RecordedEvent, SledLog, Snapshot, StoreError, Subscription,
};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::nats::NatsServer;
use crate::support::{CHAT, TempDir, conversation, standard_setup, start_in};

/// One `append_many_then` to hold: the test hears when it starts and says when to end.
struct Hold {
    started: oneshot::Sender<()>,
    release: mpsc::Receiver<()>,
    /// Refused once released, instead of passed on to the log.
    refuse: bool,
}

/// The real log, except for the one append armed with a [`Hold`].
struct HoldingLog {
    log: Arc<SledLog>,
    armed: Mutex<Option<Hold>>,
    /// `append_many_then` calls so far.
    appends: AtomicUsize,
}

impl HoldingLog {
    fn open(dir: &TempDir) -> HoldingLog {
        HoldingLog {
            log: Arc::new(SledLog::open(&dir.path().join("log")).expect("a sled log")),
            armed: Mutex::new(None),
            appends: AtomicUsize::new(0),
        }
    }

    /// Arms the next `append_many_then`; returns when it started and the switch that ends it.
    fn arm(&self, refuse: bool) -> (oneshot::Receiver<()>, mpsc::Sender<()>) {
        let (started, on_start) = oneshot::channel();
        let (release, on_release) = mpsc::channel();
        *self.armed.lock().expect("not poisoned") = Some(Hold {
            started,
            release: on_release,
            refuse,
        });
        (on_start, release)
    }
}

impl EventLog for HoldingLog {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.log.append(stream, expected, events)
    }

    fn append_many(&self, requests: Vec<AppendRequest>) -> Vec<Result<AppendResult, StoreError>> {
        self.log.append_many(requests)
    }

    /// The service's appends: the armed one is held on a thread of its own (an implementation
    /// must not block its caller), then refused or passed on.
    fn append_many_then(&self, requests: Vec<AppendRequest>, done: AppendDone) {
        self.appends.fetch_add(1, Ordering::SeqCst);
        let hold = self.armed.lock().expect("not poisoned").take();
        let Some(hold) = hold else {
            return self.log.append_many_then(requests, done);
        };
        let log = Arc::clone(&self.log);
        std::thread::spawn(move || {
            let _ = hold.started.send(());
            let _ = hold.release.recv();
            if !hold.refuse {
                return log.append_many_then(requests, done);
            }
            done(
                requests
                    .iter()
                    .map(|_| {
                        Err(StoreError::Backend {
                            op: "append",
                            reason: "injected: the disk refused the write".to_owned(),
                        })
                    })
                    .collect(),
            );
        });
    }

    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.log.read_stream(stream, from_version, max)
    }

    fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.log.read_all(from_position, max)
    }

    fn for_each_from(
        &self,
        from_position: u64,
        visit: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        self.log.for_each_from(from_position, visit)
    }

    fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        self.log.stream_version(stream)
    }

    fn head(&self) -> Result<u64, StoreError> {
        self.log.head()
    }

    fn subscribe(&self, from_position: u64) -> Result<Subscription, StoreError> {
        self.log.subscribe(from_position)
    }

    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        self.log.save_checkpoint(name, position)
    }

    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.log.load_checkpoint(name)
    }

    fn save_snapshot(&self, name: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.log.save_snapshot(name, snapshot)
    }

    fn load_snapshot(&self, name: &str) -> Result<Option<Snapshot>, StoreError> {
        self.log.load_snapshot(name)
    }
}

/// Sends `envelope` once, with no retry (unlike `Bus::command`), and decodes the answer.
async fn send_once(client: &async_nats::Client, envelope: &CommandEnvelope) -> Outcome {
    let payload = omni_proto::encode_command(envelope).expect("a wire command");
    let subject = subjects::intake(omni_proto::command_name(&envelope.command));
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(subject, Bytes::from(payload)),
    )
    .await
    .expect("answered within 10 s")
    .expect("a reply");
    omni_proto::decode_reply(&reply.payload).expect("a CommandReply")
}

fn envelope(command: Command) -> CommandEnvelope {
    CommandEnvelope {
        command_id: Uuid::now_v7(),
        actor: Actor::System,
        correlation_id: None,
        command,
    }
}

fn accepted_positions(outcome: &Outcome) -> Vec<u64> {
    match outcome {
        Outcome::Accepted { events, .. } => events.iter().map(|e| e.position).collect(),
        Outcome::Rejected { reason, .. } => panic!("rejected: {reason}"),
    }
}

/// The conversation service on a [`HoldingLog`], with the standard setup accepted.
struct Running {
    _nats: NatsServer,
    _dir: TempDir,
    log: Arc<HoldingLog>,
    metrics: Arc<Metrics>,
    client: async_nats::Client,
    stop: watch::Sender<bool>,
    service: tokio::task::JoinHandle<Result<(), omni_conversations::ServiceError>>,
}

impl Running {
    async fn start(name: &str) -> Running {
        let nats = NatsServer::start();
        let dir = TempDir::new(name);
        let log = Arc::new(HoldingLog::open(&dir));
        let metrics = Arc::new(Metrics::default());
        let (stop, shutdown) = watch::channel(false);
        let service = tokio::spawn(omni_conversations::run(
            omni_conversations::Config::default(),
            log.clone(),
            nats.connect().await,
            Arc::clone(&metrics),
            shutdown,
        ));
        let client = nats.connect().await;
        let bus = Bus::new(client.clone());
        for command in standard_setup() {
            let outcome = bus.command(&envelope(command)).await.expect("answered");
            accepted_positions(&outcome);
        }
        Running {
            _nats: nats,
            _dir: dir,
            log,
            metrics,
            client,
            stop,
            service,
        }
    }

    /// Sends `command` once in a task of its own, to be answered later.
    fn send(&self, command: &CommandEnvelope) -> tokio::task::JoinHandle<Outcome> {
        let (client, command) = (self.client.clone(), command.clone());
        tokio::spawn(async move { send_once(&client, &command).await })
    }

    /// Waits until the service has decided `n` conversation starts in all.
    async fn decided_starts(&self, n: u64, why: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.metrics.conversations_started.get() < n {
            assert!(tokio::time::Instant::now() < deadline, "{why}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.service)
            .await
            .expect("the service stops")
            .expect("the service task")
            .expect("the service stops cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_append_refuses_both_batches_in_flight_and_loses_nothing_acknowledged() {
    let running = Running::start("append-failure").await;
    let Running { log, client, .. } = &running;
    let acknowledged = envelope(start_in(1, CHAT));
    let acknowledged_positions = accepted_positions(&send_once(client, &acknowledged).await);
    let head_before = log.head().expect("head");

    // Batch N: held in its append, so that the next command is decided on top of it.
    let (started, release) = log.arm(true);
    let first = envelope(start_in(2, CHAT));
    let first_answer = running.send(&first);
    started.await.expect("the held append started");
    // Batch N+1: decided (its conversation counted) while N is still being stored.
    let second = envelope(start_in(3, CHAT));
    let second_answer = running.send(&second);
    running
        .decided_starts(
            3,
            "the second command was not decided while the first was being stored",
        )
        .await;
    release.send(()).expect("the held append waits");

    for (name, answer) in [("first", first_answer), ("second", second_answer)] {
        match answer.await.expect("the request task") {
            Outcome::Rejected {
                code, retryable, ..
            } => {
                assert_eq!(code, pb::RejectionCode::Unavailable, "{name}");
                assert!(retryable, "{name} must be retryable");
            }
            outcome => panic!("{name} was not refused: {outcome:?}"),
        }
    }
    assert_eq!(log.head().expect("head"), head_before, "nothing was stored");

    // The world was reloaded from the log: the refused commands are decided again, after
    // the acknowledged one, which is still there and answered as before.
    let first_positions = accepted_positions(&send_once(client, &first).await);
    let second_positions = accepted_positions(&send_once(client, &second).await);
    assert_eq!(first_positions[0], head_before + 1);
    assert_eq!(
        second_positions[0],
        first_positions[first_positions.len() - 1] + 1
    );
    match send_once(client, &acknowledged).await {
        Outcome::Accepted { events, replayed } => {
            assert!(replayed, "a retry of an acknowledged command is a replay");
            let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
            assert_eq!(positions, acknowledged_positions);
        }
        outcome => panic!("the acknowledged command was forgotten: {outcome:?}"),
    }

    // The log holds each conversation's creation exactly once, and no gap.
    let all = log.read_all(1, usize::MAX).expect("read the log");
    assert_eq!(all.len() as u64, log.head().expect("head"));
    for (i, event) in all.iter().enumerate() {
        assert_eq!(event.position, i as u64 + 1);
    }
    for n in 1..=3 {
        let created = all
            .iter()
            .filter_map(|e| omni_proto::decode(&e.payload).ok())
            .filter(|e| {
                matches!(e.event.kind, omni_core::EventKind::ConversationCreated { conversation: c, .. } if c == conversation(n))
            })
            .count();
        assert_eq!(created, 1, "conversation {n} created {created} times");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_that_arrive_during_an_append_are_stored_together_in_the_next_one() {
    let running = Running::start("append-grouping").await;
    let log = &running.log;
    // Given an append held in flight,
    let (started, release) = log.arm(false);
    let first = running.send(&envelope(start_in(1, CHAT)));
    started.await.expect("the held append started");
    let appends_before = log.appends.load(Ordering::SeqCst);
    // when three commands arrive one after the other while it is,
    let mut later = Vec::new();
    for n in 2u8..=4 {
        later.push(running.send(&envelope(start_in(n.into(), CHAT))));
        running
            .decided_starts(
                n.into(),
                "a command was not decided while an append was in flight",
            )
            .await;
    }
    assert_eq!(
        log.appends.load(Ordering::SeqCst),
        appends_before,
        "nothing is appended while an append is in flight"
    );
    release.send(()).expect("the held append waits");
    // then all four are accepted, and the three are stored by one append, in arrival order.
    let first = accepted_positions(&first.await.expect("the request task"));
    let mut next = first[first.len() - 1] + 1;
    for answer in later {
        let positions = accepted_positions(&answer.await.expect("the request task"));
        assert_eq!(positions[0], next, "in arrival order, with no gap");
        next = positions[positions.len() - 1] + 1;
    }
    assert_eq!(log.appends.load(Ordering::SeqCst), appends_before + 1);
    running.stop().await;
}
