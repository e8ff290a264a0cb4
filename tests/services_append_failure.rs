//! The conversation service when the log refuses an append while the next batch is already
//! decided (the writer is pipelined: batch N+1 is decided while N is being stored). Both
//! batches must be refused as unavailable (retryable), the world reloaded from the log, and
//! nothing acknowledged before lost: retries of the refused commands are decided afresh, a
//! retry of an acknowledged one is answered with its original events.
//!
//! The fault is injected by a wrapper around the real sled log that refuses one
//! `append_many_then` (the service's appends) after holding it until the test lets it go, so the test decides what is in flight; every
//! other call goes to the log unchanged.

use std::ops::ControlFlow;
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

/// One `append_many_then` to hold and refuse: the test hears when it starts and says when to end.
struct Hold {
    started: oneshot::Sender<()>,
    release: mpsc::Receiver<()>,
}

/// The real log, except for the one append armed with a [`Hold`].
struct RefusingLog {
    log: SledLog,
    armed: Mutex<Option<Hold>>,
}

impl RefusingLog {
    /// Arms the next `append_many_then`; returns when it started and the switch that ends it.
    fn arm(&self) -> (oneshot::Receiver<()>, mpsc::Sender<()>) {
        let (started, on_start) = oneshot::channel();
        let (release, on_release) = mpsc::channel();
        *self.armed.lock().expect("not poisoned") = Some(Hold {
            started,
            release: on_release,
        });
        (on_start, release)
    }
}

impl EventLog for RefusingLog {
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
    /// must not block its caller) and then refused.
    fn append_many_then(&self, requests: Vec<AppendRequest>, done: AppendDone) {
        let hold = self.armed.lock().expect("not poisoned").take();
        let Some(hold) = hold else {
            return self.log.append_many_then(requests, done);
        };
        std::thread::spawn(move || {
            let _ = hold.started.send(());
            let _ = hold.release.recv();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_append_refuses_both_batches_in_flight_and_loses_nothing_acknowledged() {
    let nats = NatsServer::start();
    let dir = TempDir::new("append-failure");
    let log = Arc::new(RefusingLog {
        log: SledLog::open(&dir.path().join("log")).expect("a sled log"),
        armed: Mutex::new(None),
    });
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
    let acknowledged = envelope(start_in(1, CHAT));
    let acknowledged_positions = accepted_positions(&send_once(&client, &acknowledged).await);
    let head_before = log.head().expect("head");

    // Batch N: held in its append, so that the next command is decided on top of it.
    let (started, release) = log.arm();
    let first = envelope(start_in(2, CHAT));
    let first_answer = tokio::spawn({
        let (client, first) = (client.clone(), first.clone());
        async move { send_once(&client, &first).await }
    });
    started.await.expect("the held append started");
    // Batch N+1: decided (its conversation counted) while N is still being stored.
    let second = envelope(start_in(3, CHAT));
    let second_answer = tokio::spawn({
        let (client, second) = (client.clone(), second.clone());
        async move { send_once(&client, &second).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metrics.conversations_started.get() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second command was not decided while the first was being stored"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
    let first_positions = accepted_positions(&send_once(&client, &first).await);
    let second_positions = accepted_positions(&send_once(&client, &second).await);
    assert_eq!(first_positions[0], head_before + 1);
    assert_eq!(
        second_positions[0],
        first_positions[first_positions.len() - 1] + 1
    );
    match send_once(&client, &acknowledged).await {
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

    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), service)
        .await
        .expect("the service stops")
        .expect("the service task")
        .expect("the service stops cleanly");
}
