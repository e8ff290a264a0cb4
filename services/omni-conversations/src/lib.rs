//! The conversation service: the one writer of the log.
//!
//! It listens on `omni.intake.*`, decides every command with `omni-core` against the world it
//! folded from the log, appends the events with expected versions, and only then answers and
//! publishes the committed events (`omni.events.…`) and desktop notifications
//! (`omni.desktop.…`). Time-based rules run from the core's deadlines: the writer sleeps until
//! `next_deadline` and decides a `Tick`. It also serves the log over the bus (`omni.log.read`),
//! which is how other services fill gaps in what they follow.
//!
//! One task per concern: the intake listener (decodes, dead-letters what it cannot read), the
//! writer (decides and appends, in batches), the publisher (sends what is durable), the log
//! reader.

mod clock;
mod dedupe;
mod writer;

use std::sync::Arc;
use std::time::Instant;

use async_nats::Subject;
use bytes::Bytes;
use futures_util::StreamExt;
use omni_bus::{Metrics, subjects};
use omni_core::{Timestamp, World, next_deadline};
use omni_projection::{SNAPSHOT_NAME, Until, restore, resume};
use omni_proto::pb;
use omni_store::EventLog;
use prost::Message;
use tokio::sync::{mpsc, watch};

pub use clock::Clock;
use dedupe::Dedupe;
use writer::{Append, Decided, Job, Outgoing, Stored, Writer, tick_job};

/// The service's name on the bus: its queue group and its dead-letter subject.
pub const SERVICE: &str = "conversations";

#[derive(Clone, Debug)]
pub struct Config {
    /// How many times faster than the wall clock the engine's clock runs; 1 is real time.
    pub time_scale: u32,
    /// Most commands decided per append.
    pub max_batch: usize,
    /// How many accepted command ids are remembered for retries (also looked up in the log's
    /// tail at start-up).
    pub dedupe_window: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            time_scale: 1,
            max_batch: 1024,
            dedupe_window: 200_000,
        }
    }
}

/// Why the service stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("could not load the world from the log: {0}")]
    Load(#[from] omni_projection::ProjectionError),
    #[error("could not read the log: {0}")]
    Store(#[from] omni_store::StoreError),
    #[error("could not subscribe to {subject}: {reason}")]
    Subscribe {
        subject: &'static str,
        reason: String,
    },
    #[error("a background task failed: {0}")]
    Task(String),
}

/// Runs the service until `shutdown` turns true. Whatever was accepted before is durable and
/// answered; commands still queued when it stops are answered as unavailable (retryable).
pub async fn run(
    config: Config,
    log: Arc<dyn EventLog>,
    client: async_nats::Client,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    let loaded = load(Arc::clone(&log), config.dedupe_window).await?;
    tracing::info!(
        position = loaded.position,
        conversations = loaded.world.conversations.len(),
        agents = loaded.world.agents.len(),
        "conversation service loaded the log"
    );
    let clock = Clock::new(config.time_scale, loaded.last_event_at);
    let mut writer = Writer::new(
        loaded.world,
        Arc::clone(&log),
        loaded.dedupe,
        Arc::clone(&metrics),
    );

    let intake = client
        .queue_subscribe(subjects::INTAKE_ALL, SERVICE.to_owned())
        .await
        .map_err(|e| ServiceError::Subscribe {
            subject: subjects::INTAKE_ALL,
            reason: e.to_string(),
        })?;
    let log_reads = client
        .queue_subscribe(subjects::LOG_READ, SERVICE.to_owned())
        .await
        .map_err(|e| ServiceError::Subscribe {
            subject: subjects::LOG_READ,
            reason: e.to_string(),
        })?;
    let (jobs_tx, mut jobs) = mpsc::channel::<Job>(16_384);
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Outgoing>();
    let listener = tokio::spawn(listen(
        intake,
        jobs_tx,
        client.clone(),
        Arc::clone(&metrics),
    ));
    let reader = tokio::spawn(serve_log(
        log_reads,
        Arc::clone(&log),
        client.clone(),
        Arc::clone(&metrics),
        shutdown.clone(),
    ));
    let publisher = tokio::spawn(publish(out_rx, client.clone()));

    // Pipelined: while a batch is being stored, every command that arrives is decided at once
    // into the next batch, which is appended, as one group, as soon as the one in flight is
    // durable and answered. Why not append each arrival's batch on its own: a command that came
    // in during the append would then wait for the batches before its own too, one fsync each.
    let mut in_flight: Option<(Decided, Append)> = None;
    let mut next: Option<Decided> = None;
    let result = loop {
        let deadline = next_deadline(&writer.world).map(|at| clock.instant_of(at));
        let room = config
            .max_batch
            .saturating_sub(next.as_ref().map_or(0, Decided::commands));
        let first = tokio::select! {
            biased;
            _ = shutdown.changed() => break Ok(()),
            stored = wait_for(&mut in_flight), if in_flight.is_some() => {
                let (decided, _) = in_flight.take().expect("a batch in flight");
                match settle_then_next(&mut writer, decided, stored, next.take(), &out_tx) {
                    Ok(started) => in_flight = started,
                    Err(failed) => writer = reload(&log, &config, &metrics, failed).await?,
                }
                continue;
            }
            job = jobs.recv(), if room > 0 => match job {
                Some(job) => job,
                None => break Err(ServiceError::Task("the intake listener stopped".to_owned())),
            },
            () = sleep_until(deadline), if deadline.is_some() && room > 0 => tick_job(),
        };
        let mut batch = vec![first];
        while batch.len() < room {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let now = clock.now();
        if next_deadline(&writer.world).is_some_and(|due| due <= now)
            && !batch.iter().any(|job| job.reply.is_none())
        {
            batch.insert(0, tick_job());
        }
        // There is a next batch only while one is in flight.
        let mut decided = next.take().unwrap_or_default();
        writer.decide_into(&mut decided, batch, now);
        if in_flight.is_some() {
            next = Some(decided);
        } else {
            let append = writer.start_append(&decided);
            in_flight = Some((decided, append));
        }
    };
    // What is decided is stored and answered (or refused), and nothing is decided after it.
    while let Some((decided, mut append)) = in_flight.take() {
        let stored = append.wait().await;
        in_flight = settle_then_next(&mut writer, decided, stored, next.take(), &out_tx)
            .ok()
            .flatten();
    }

    // Stop taking requests, answer what is still queued as retryable, flush what is durable.
    // The log reader finishes the read in hand and stops: once this returns, nothing the
    // service started holds the log, so the engine can close it.
    listener.abort();
    let _ = reader.await;
    jobs.close();
    let mut refused = Outgoing::default();
    while let Ok(job) = jobs.try_recv() {
        if let Some(reply) = job.reply {
            let bytes = omni_proto::rejected_reply(
                pb::RejectionCode::Unavailable,
                "the engine is shutting down".to_owned(),
                true,
            )
            .encode_to_vec();
            refused.replies.push((reply, Bytes::from(bytes)));
        }
    }
    let _ = out_tx.send(refused);
    drop(out_tx);
    publisher
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))?;
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "could not flush the last messages");
    }
    result
}

/// The end of the append in flight; never, when there is none.
async fn wait_for(in_flight: &mut Option<(Decided, Append)>) -> Stored {
    match in_flight {
        Some((_, append)) => append.wait().await,
        None => std::future::pending().await,
    }
}

/// Sends what a stored batch answers and publishes, then starts the append of `next`, the batch
/// decided on the world it left. On a failed append: the refusals of both, and the failure,
/// after which the world must be reloaded before anything else is decided.
fn settle_then_next(
    writer: &mut Writer,
    decided: Decided,
    stored: Stored,
    next: Option<Decided>,
    out_tx: &mpsc::UnboundedSender<Outgoing>,
) -> Result<Option<(Decided, Append)>, writer::AppendFailed> {
    let (out, failed) = writer.finish(decided, stored);
    let _ = out_tx.send(out);
    if let Some(failed) = failed {
        if let Some(decided) = next {
            let _ = out_tx.send(writer.refuse(decided, &failed.0));
        }
        return Err(failed);
    }
    Ok(next.map(|decided| {
        let append = writer.start_append(&decided);
        (decided, append)
    }))
}

/// A writer on the world as the log has it, after `failed`.
async fn reload(
    log: &Arc<dyn EventLog>,
    config: &Config,
    metrics: &Arc<Metrics>,
    failed: writer::AppendFailed,
) -> Result<Writer, ServiceError> {
    tracing::error!(error = %failed.0, "the log refused a batch; reloading the world from the log");
    let reloaded = load(Arc::clone(log), config.dedupe_window).await?;
    Ok(Writer::new(
        reloaded.world,
        Arc::clone(log),
        reloaded.dedupe,
        Arc::clone(metrics),
    ))
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// The world as the log has it, and what start-up needs besides.
struct Loaded {
    world: World,
    position: u64,
    last_event_at: Option<Timestamp>,
    dedupe: Dedupe,
}

/// Folds the log (from the stored snapshot when there is a sound one), and remembers the
/// accepted commands of the log's tail for retries.
async fn load(log: Arc<dyn EventLog>, dedupe_window: usize) -> Result<Loaded, ServiceError> {
    tokio::task::spawn_blocking(move || {
        let (world, position) = match log.load_snapshot(SNAPSHOT_NAME)? {
            Some(snapshot) => match restore(&snapshot) {
                Ok(world) => (world, snapshot.position),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring the stored snapshot; folding the whole log");
                    (World::default(), 0)
                }
            },
            None => (World::default(), 0),
        };
        let projection = resume(&*log, world, position, Until::Head, &mut |_| {})?;
        if !projection.unknown.is_empty() {
            tracing::error!(
                count = projection.unknown.len(),
                first = projection.unknown[0],
                "the log holds events from a newer schema; this engine cannot judge them"
            );
        }
        let (dedupe, last_event_at) = recent_commands(&*log, projection.position, dedupe_window)?;
        Ok(Loaded {
            world: projection.world,
            position: projection.position,
            last_event_at,
            dedupe,
        })
    })
    .await
    .map_err(|e| ServiceError::Task(e.to_string()))?
}

/// The accepted commands among the last `window` events, keyed by the command id every event
/// carries as its causation id, and the time of the last event.
fn recent_commands(
    log: &dyn EventLog,
    head: u64,
    window: usize,
) -> Result<(Dedupe, Option<Timestamp>), ServiceError> {
    let from = head.saturating_sub(window as u64) + 1;
    let mut by_command: Vec<(uuid::Uuid, Vec<pb::CommittedEvent>)> = Vec::new();
    let mut last_event_at = None;
    for event in log.read_all(from, window)? {
        let Ok(envelope) = omni_proto::decode(&event.payload) else {
            continue;
        };
        last_event_at = Some(envelope.event.at);
        let Some(command) = envelope.causation_id else {
            continue;
        };
        let committed =
            omni_proto::committed_event(envelope.event_id, event.position, &envelope.event);
        match by_command.last_mut() {
            Some((id, events)) if *id == command => events.push(committed),
            _ => by_command.push((command, vec![committed])),
        }
    }
    let mut dedupe = Dedupe::new(window);
    for (command, events) in by_command {
        let reply = omni_proto::accepted_reply(events, true).encode_to_vec();
        dedupe.remember(command, Bytes::from(reply));
    }
    Ok((dedupe, last_event_at))
}

/// Reads intake requests; what cannot be read is answered as malformed and dead-lettered.
async fn listen(
    mut intake: async_nats::Subscriber,
    jobs: mpsc::Sender<Job>,
    client: async_nats::Client,
    metrics: Arc<Metrics>,
) {
    while let Some(message) = intake.next().await {
        let received = Instant::now();
        let name = subjects::intake_command(&message.subject).unwrap_or_default();
        match omni_proto::decode_command(&message.payload, name) {
            Ok(command) => {
                let job = Job {
                    command,
                    reply: message.reply,
                    received,
                };
                if jobs.send(job).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                metrics.commands_malformed.add(1);
                metrics.dead_letters.add(1);
                let reason = error.to_string();
                tracing::debug!(subject = %message.subject, %reason, "malformed command");
                if let Some(reply) = message.reply {
                    let bytes = omni_proto::rejected_reply(
                        pb::RejectionCode::Malformed,
                        reason.clone(),
                        false,
                    )
                    .encode_to_vec();
                    let _ = client.publish(reply, Bytes::from(bytes)).await;
                }
                omni_bus::dead_letter(&client, SERVICE, &message.subject, message.payload, &reason)
                    .await;
            }
        }
    }
}

/// Most events one `omni.log.read` returns.
const MAX_LOG_READ: u32 = 10_000;

/// Answers `omni.log.read` until `shutdown` turns true.
async fn serve_log(
    mut requests: async_nats::Subscriber,
    log: Arc<dyn EventLog>,
    client: async_nats::Client,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let message = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            message = requests.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        let batch = match pb::ReadLog::decode(message.payload.clone()) {
            Ok(request) => {
                let log = Arc::clone(&log);
                let max = match request.max_events {
                    0 => 1_000,
                    n => n.min(MAX_LOG_READ),
                };
                tokio::task::spawn_blocking(move || read_batch(&*log, request.from_position, max))
                    .await
                    .unwrap_or_else(|e| pb::LogBatch {
                        error: e.to_string(),
                        ..Default::default()
                    })
            }
            Err(e) => {
                let reason = format!("bytes are not a protobuf omnichannel.v1.ReadLog: {e}");
                metrics.dead_letters.add(1);
                omni_bus::dead_letter(&client, SERVICE, &message.subject, message.payload, &reason)
                    .await;
                pb::LogBatch {
                    error: reason,
                    ..Default::default()
                }
            }
        };
        let _ = client
            .publish(reply, Bytes::from(batch.encode_to_vec()))
            .await;
    }
}

fn read_batch(log: &dyn EventLog, from: u64, max: u32) -> pb::LogBatch {
    let read = log
        .head()
        .and_then(|head| Ok((head, log.read_all(from, max as usize)?)));
    match read {
        Ok((head, events)) => pb::LogBatch {
            events: events
                .into_iter()
                .map(|e| pb::LoggedEvent {
                    position: e.position,
                    stream_id: e.stream,
                    stream_version: e.stream_version,
                    envelope: e.payload,
                })
                .collect(),
            head,
            error: String::new(),
        },
        Err(e) => pb::LogBatch {
            error: e.to_string(),
            ..Default::default()
        },
    }
}

/// Sends what the writer made durable: events, then desktop notifications, then answers.
async fn publish(mut batches: mpsc::UnboundedReceiver<Outgoing>, client: async_nats::Client) {
    while let Some(out) = batches.recv().await {
        for (subject, headers, payload) in out.events {
            if let Err(e) = client.publish_with_headers(subject, headers, payload).await {
                tracing::warn!(error = %e, "could not publish an event; followers will read it from the log");
            }
        }
        for (subject, payload) in out.desktop {
            let _ = client.publish(subject, payload).await;
        }
        for (subject, payload) in out.replies {
            let _ = client.publish::<Subject>(subject, payload).await;
        }
    }
}
