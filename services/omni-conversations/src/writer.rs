//! The single writer: decides commands with the core in arrival order, appends their events
//! to the log in one group per batch, and only then answers and publishes.
//!
//! Commands are taken in batches: everything that arrived while the previous batch was being
//! stored is decided together (each against the world as the ones before it left it) and
//! stored with one `append_many`, so one fsync serves the whole batch. Nothing is answered or
//! published before its events are durable.
//!
//! The phases are separate ([`Writer::decide_into`], [`Writer::start_append`],
//! [`Writer::finish`]) so that the service can decide the next batch, on the world the
//! current one leaves, while the current one's append is in flight: each command as it
//! arrives, into the one batch that will be appended next. A batch's append starts only once
//! the one before it is durable, so positions keep the order of decisions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use omni_bus::{Metrics, headers, notify, subjects};
use omni_core::{Actor, Command, Event, EventKind, Timestamp, World, apply, decide};
use omni_proto::{CommandEnvelope, Envelope, pb};
use omni_store::{AppendRequest, AppendResult, EventLog, ExpectedVersion, NewEvent, StoreError};
use prost::Message;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::dedupe::{Dedupe, Seen};

/// A command waiting to be decided, with where to answer.
#[derive(Debug)]
pub struct Job {
    pub command: CommandEnvelope,
    /// `None` for the engine's own commands (the clock's ticks).
    pub reply: Option<Subject>,
    pub received: Instant,
}

/// Everything a batch sends once it is durable, handed to the publisher task.
#[derive(Debug, Default)]
pub struct Outgoing {
    pub events: Vec<(String, HeaderMap, Bytes)>,
    pub desktop: Vec<(String, Bytes)>,
    pub replies: Vec<(Subject, Bytes)>,
}

/// An event decided in this batch, encoded once for both the log and the bus.
struct Pending {
    stream: String,
    id: Uuid,
    payload: Bytes,
    subject: String,
    desktop: Vec<String>,
}

/// What became of one job of the batch.
enum Decision {
    /// Accepted: its events are `pending[range]`.
    Accepted {
        job: Job,
        range: std::ops::Range<usize>,
    },
    Rejected {
        job: Job,
        reply: pb::CommandReply,
    },
    /// Answered without deciding (a retry).
    Answered,
}

/// The writer's state: the authoritative world and what it needs to append safely.
pub struct Writer {
    pub world: World,
    log: Arc<dyn EventLog>,
    /// Stream versions as of the last append, for the expected-version check.
    versions: HashMap<String, u64>,
    dedupe: Dedupe,
    metrics: Arc<Metrics>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("conversations", &self.world.conversations.len())
            .field("agents", &self.world.agents.len())
            .finish_non_exhaustive()
    }
}

/// Why a batch could not be stored. The world then runs ahead of the log and must be
/// reloaded before anything else is decided.
#[derive(Debug)]
pub struct AppendFailed(pub StoreError);

impl Writer {
    pub fn new(
        world: World,
        log: Arc<dyn EventLog>,
        dedupe: Dedupe,
        metrics: Arc<Metrics>,
    ) -> Writer {
        Writer {
            world,
            log,
            versions: HashMap::new(),
            dedupe,
            metrics,
            buf: Vec::new(),
        }
    }

    /// Decides `jobs` against the world (which moves on at once) and adds them, with their
    /// encoded events, to the batch `decided`; nothing is stored or answered yet, except
    /// retries of commands answered before.
    pub fn decide_into(&mut self, decided: &mut Decided, jobs: Vec<Job>, now: Timestamp) {
        decided.decisions.reserve(jobs.len());
        for job in jobs {
            let decision = self.decide_one(job, now, decided);
            decided.decisions.push(decision);
        }
    }

    /// Answers every command of a batch that will not be stored (its own append failed, or
    /// one before it did, so the world it was decided on is gone) as unavailable: retryable.
    pub fn refuse(&mut self, decided: Decided, why: &StoreError) -> Outgoing {
        let Decided {
            mut out, decisions, ..
        } = decided;
        for decision in decisions {
            if let Decision::Accepted { job, .. } | Decision::Rejected { job, .. } = decision {
                let waiting = self.dedupe.forget(job.command.command_id);
                let reply = omni_proto::rejected_reply(
                    pb::RejectionCode::Unavailable,
                    format!("the log could not store the command: {why}"),
                    true,
                );
                answer(&mut out, job.reply.into_iter().chain(waiting), &reply);
            }
        }
        out
    }

    /// Once the append of `decided` is durable (or failed): what to send — its answers,
    /// events and notifications, or its refusals — and whether the append failed.
    pub fn finish(&mut self, decided: Decided, stored: Stored) -> (Outgoing, Option<AppendFailed>) {
        if let Some(versions) = stored.versions {
            self.versions = versions;
        }
        if let Some(elapsed) = stored.elapsed {
            self.metrics.append_latency.observe(elapsed);
        }
        let positions = match stored.positions {
            Ok(positions) => positions,
            Err(failed) => {
                let out = self.refuse(decided, &failed.0);
                return (out, Some(failed));
            }
        };
        for stream in &decided.closed_streams {
            // A closed conversation's stream never grows again.
            self.versions.remove(stream);
        }
        let Decided {
            mut out,
            pending,
            decisions,
            ..
        } = decided;
        for (position, event) in positions.iter().zip(&pending) {
            let mut map = HeaderMap::new();
            map.insert(headers::POSITION, position.0.to_string().as_str());
            map.insert(headers::STREAM, event.stream.as_str());
            map.insert(headers::STREAM_VERSION, position.1.to_string().as_str());
            map.insert(headers::MSG_ID, event.id.to_string().as_str());
            out.events
                .push((event.subject.clone(), map, event.payload.clone()));
            for subject in &event.desktop {
                out.desktop.push((subject.clone(), event.payload.clone()));
            }
        }
        self.metrics.events_appended.add(pending.len() as u64);
        for decision in decisions {
            match decision {
                Decision::Accepted { job, range } => {
                    let committed: Vec<pb::CommittedEvent> = range
                        .map(|i| pb::CommittedEvent {
                            event_id: pending[i].id.as_bytes().to_vec(),
                            position: positions[i].0,
                            kind: kind_of(&pending[i].subject).to_owned(),
                        })
                        .collect();
                    let replayed = Bytes::from(
                        omni_proto::accepted_reply(committed.clone(), true).encode_to_vec(),
                    );
                    let waiting = self.dedupe.done(job.command.command_id, replayed.clone());
                    let reply =
                        Bytes::from(omni_proto::accepted_reply(committed, false).encode_to_vec());
                    out.replies
                        .extend(job.reply.iter().map(|s| (s.clone(), reply.clone())));
                    out.replies
                        .extend(waiting.into_iter().map(|s| (s, replayed.clone())));
                    self.metrics.commands_accepted.add(1);
                    self.metrics.command_latency.observe(job.received.elapsed());
                }
                Decision::Rejected { job, reply } => {
                    let waiting = self.dedupe.forget(job.command.command_id);
                    answer(&mut out, job.reply.into_iter().chain(waiting), &reply);
                    self.metrics.commands_rejected.add(1);
                    self.metrics.command_latency.observe(job.received.elapsed());
                }
                Decision::Answered => {}
            }
        }
        (out, None)
    }

    fn decide_one(&mut self, job: Job, now: Timestamp, decided: &mut Decided) -> Decision {
        let command_id = job.command.command_id;
        // The clock's ticks are never retried, so they are not remembered.
        let seen = if job.command.command == Command::Tick {
            Seen::New
        } else {
            self.dedupe.check(command_id, job.reply.as_ref())
        };
        match seen {
            Seen::New => {}
            Seen::Answered(bytes) => {
                decided.out.replies.extend(job.reply.map(|s| (s, bytes)));
                self.metrics.commands_replayed.add(1);
                return Decision::Answered;
            }
            Seen::Waiting => {
                self.metrics.commands_replayed.add(1);
                return Decision::Answered;
            }
        }
        let events = match decide(&self.world, job.command.command.clone(), now) {
            Ok(events) => events,
            Err(rejection) => {
                tracing::debug!(command = omni_proto::command_name(&job.command.command), %rejection, "rejected");
                let reply = omni_proto::rejection_reply(&rejection);
                return Decision::Rejected { job, reply };
            }
        };
        let start = decided.pending.len();
        let correlation_id = job.command.correlation_id.unwrap_or(command_id);
        for event in events {
            apply(&mut self.world, &event);
            if let EventKind::ConversationClosed { .. } = event.kind {
                decided
                    .closed_streams
                    .push(omni_proto::stream_id_for(&event.kind));
            }
            let encoded = self.encode(event, job.command.actor, correlation_id, command_id);
            decided.pending.push(encoded);
        }
        Decision::Accepted {
            job,
            range: start..decided.pending.len(),
        }
    }

    fn encode(
        &mut self,
        event: Event,
        actor: Actor,
        correlation_id: Uuid,
        causation_id: Uuid,
    ) -> Pending {
        self.count(&event.kind);
        let stream = omni_proto::stream_id_for(&event.kind);
        let conversation = event.kind.conversation();
        let queue = match &event.kind {
            EventKind::QueueConfigured(q) => Some(q.id),
            EventKind::QueueMembershipChanged { queue, .. } => Some(*queue),
            _ => conversation
                .and_then(|c| self.world.conversations.get(&c))
                .map(|c| c.queue),
        };
        let subject = subjects::event(queue, conversation, event.kind.agent(), event.kind.name());
        let desktop = notify::desktop_notifications(&event.kind, &self.world)
            .into_iter()
            .map(|(agent, name)| subjects::desktop(agent, name))
            .collect();
        let envelope = Envelope {
            event_id: Uuid::now_v7(),
            stream_id: stream,
            correlation_id,
            causation_id: Some(causation_id),
            actor,
            event,
        };
        self.buf.clear();
        omni_proto::encode_to(&envelope, &mut self.buf);
        Pending {
            stream: envelope.stream_id,
            id: envelope.event_id,
            payload: Bytes::copy_from_slice(&self.buf),
            subject,
            desktop,
        }
    }

    fn count(&self, kind: &EventKind) {
        let m = &self.metrics;
        match kind {
            EventKind::IncomingSessionRequest { .. } => m.offers.add(1),
            EventKind::OfferTimedOut { .. } => m.offers_timed_out.add(1),
            EventKind::OfferRejected { .. } => m.offers_rejected.add(1),
            EventKind::ConversationCreated { .. } => m.conversations_started.add(1),
            EventKind::ConversationClosed { .. } => m.conversations_closed.add(1),
            _ => {}
        }
    }

    /// Starts appending the batch's events, one request per run of one stream, each checked
    /// against the stream's version; [`Writer::finish`] takes the result. The stream versions
    /// travel with the append, so the next one starts after it is done.
    ///
    /// The log answers through [`EventLog::append_many_then`], which wakes this task from the
    /// log's writer thread: no blocking-pool thread waits on the append. Versions not known yet
    /// are read here: an index lookup, not a wait for a flush.
    pub fn start_append(&mut self, decided: &Decided) -> Append {
        let pending = &decided.pending;
        if pending.is_empty() {
            return Append(None);
        }
        let started = Instant::now();
        let mut versions = std::mem::take(&mut self.versions);
        let streams: Vec<&str> = pending.iter().map(|p| p.stream.as_str()).collect();
        let runs = omni_store::stream_runs(&streams);
        let mut requests = Vec::with_capacity(runs.len());
        let mut expected_after: HashMap<&str, u64> = HashMap::new();
        for run in &runs {
            let stream = pending[run.start].stream.as_str();
            let current = match expected_after.get(stream) {
                Some(&v) => v,
                None => match versions.get(stream) {
                    Some(&v) => v,
                    None => match self.log.stream_version(stream) {
                        Ok(v) => v,
                        Err(e) => return Append::failed(versions, e, started),
                    },
                },
            };
            expected_after.insert(stream, current + run.len() as u64);
            let events = pending[run.clone()]
                .iter()
                .map(|p| NewEvent::new(p.id, p.payload.to_vec()))
                .collect();
            requests.push(AppendRequest::new(
                stream,
                ExpectedVersion::Exact(current),
                events,
            ));
        }
        let (answer, answered) = oneshot::channel();
        let appended: Vec<(String, u64)> = requests
            .iter()
            .map(|r| (r.stream.clone(), r.events.len() as u64))
            .collect();
        self.log.append_many_then(
            requests,
            Box::new(move |results| {
                let positions = record_versions(&mut versions, &appended, results);
                // The service may have stopped waiting; nothing to do then.
                let _ = answer.send((versions, positions));
            }),
        );
        Append(Some((answered, started)))
    }
}

/// A decided batch: what it answers and stores once durable.
#[derive(Default)]
pub struct Decided {
    out: Outgoing,
    pending: Vec<Pending>,
    decisions: Vec<Decision>,
    /// Streams of conversations this batch closed, forgotten once it is durable.
    closed_streams: Vec<String>,
}

impl Decided {
    /// How many commands the batch holds.
    pub fn commands(&self) -> usize {
        self.decisions.len()
    }
}

/// The stream versions an append carries, and each event's (position, stream version) or
/// why the append failed.
type Appended = (HashMap<String, u64>, Result<Vec<(u64, u64)>, AppendFailed>);

/// An append in flight (none for a batch without events).
#[derive(Debug)]
pub struct Append(Option<(oneshot::Receiver<Appended>, Instant)>);

impl Append {
    /// An append that failed before reaching the log.
    fn failed(versions: HashMap<String, u64>, why: StoreError, started: Instant) -> Append {
        let (answer, answered) = oneshot::channel();
        let _ = answer.send((versions, Err(AppendFailed(why))));
        Append(Some((answered, started)))
    }

    /// Waits until the append is done. Cancel-safe: a wait dropped before the end leaves the
    /// append running, and a later wait takes its result. Not to be called again after it
    /// returned.
    pub async fn wait(&mut self) -> Stored {
        let Some((answered, started)) = self.0.as_mut() else {
            return Stored {
                versions: None,
                positions: Ok(Vec::new()),
                elapsed: None,
            };
        };
        let appended = answered.await;
        let elapsed = Some(started.elapsed());
        match appended {
            Ok((versions, positions)) => Stored {
                versions: Some(versions),
                positions,
                elapsed,
            },
            // The log dropped the append unanswered: it stopped.
            Err(_) => Stored {
                versions: None,
                positions: Err(AppendFailed(StoreError::Closed)),
                elapsed,
            },
        }
    }
}

/// How an append ended: the stream versions it carried (lost if the log dropped it
/// unanswered), each event's (position, stream version) or the failure, and how long it took.
#[derive(Debug)]
pub struct Stored {
    versions: Option<HashMap<String, u64>>,
    positions: Result<Vec<(u64, u64)>, AppendFailed>,
    elapsed: Option<std::time::Duration>,
}

/// Records the new version of each appended stream and returns each event's (position,
/// stream version); `appended` names each request's stream and its number of events.
fn record_versions(
    versions: &mut HashMap<String, u64>,
    appended: &[(String, u64)],
    results: Vec<Result<AppendResult, StoreError>>,
) -> Result<Vec<(u64, u64)>, AppendFailed> {
    let mut positions = Vec::new();
    for (result, (stream, len)) in results.into_iter().zip(appended) {
        let stored = result.map_err(AppendFailed)?;
        versions.insert(stream.clone(), stored.stream_version);
        let first_version = stored.stream_version + 1 - len;
        for (i, position) in (stored.first_position..=stored.last_position).enumerate() {
            positions.push((position, first_version + i as u64));
        }
    }
    Ok(positions)
}

fn answer(out: &mut Outgoing, to: impl Iterator<Item = Subject>, reply: &pb::CommandReply) {
    let bytes = Bytes::from(reply.encode_to_vec());
    out.replies.extend(to.map(|s| (s, bytes.clone())));
}

/// The event name is the last token of its subject.
fn kind_of(subject: &str) -> &str {
    subject.rsplit('.').next().unwrap_or(subject)
}

/// The engine's own command: the clock's tick.
pub fn tick_job() -> Job {
    Job {
        command: CommandEnvelope::from_system(Command::Tick),
        reply: None,
        received: Instant::now(),
    }
}
