//! The projector: the read side of the engine.
//!
//! It follows the committed events gap-free (`omni_bus::follow`), folds them into a
//! [`ReadModel`] (the core's `World` with `omni_core::apply`, plus secondary indexes), and
//! answers every query on `omni.query.*` (queue group `projector`) from it: one conversation,
//! one agent, pages of conversations and agents by filter, the queues. A query may name a
//! `min_position` (read your writes); it is answered once the model has folded that far, or
//! NOT_READY after [`Config::max_wait`]. Malformed requests are answered MALFORMED, naming the
//! field, and dead-lettered on `omni.dead.projector`; nothing a client sends stops the service.
//!
//! With [`Config::snapshots`] set it restarts from the stored snapshot (the one `omni replay`
//! writes and verifies) and stores one every [`Config::snapshot_interval`] or
//! [`Config::snapshot_events`] events, and when it stops.
//!
//! One task per concern: the follower (omni-bus), the folder (this function's own loop, which
//! also stores snapshots), the query listener (one short task per request).

mod read_model;
mod serve;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use omni_bus::{Bus, Followed, Metrics, subjects};
use omni_core::World;
use omni_projection::{SNAPSHOT_NAME, restore, snapshot_of};
use omni_store::EventLog;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

pub use read_model::{Page, ReadModel};

use serve::Shared;

/// The service's name on the bus: its queue group and its dead-letter subject.
pub const SERVICE: &str = "projector";

#[derive(Clone)]
pub struct Config {
    /// Where snapshots are restored from and stored (under `omni_projection::SNAPSHOT_NAME`);
    /// `None` folds from the start of the log at every start and stores nothing.
    pub snapshots: Option<Arc<dyn EventLog>>,
    /// A snapshot is stored this often when anything was folded since the last one.
    pub snapshot_interval: Duration,
    /// ... and after this many events, whichever comes first.
    pub snapshot_events: u64,
    /// How long a query with a `min_position` not yet folded waits before NOT_READY.
    pub max_wait: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            snapshots: None,
            snapshot_interval: Duration::from_secs(60),
            snapshot_events: 100_000,
            max_wait: Duration::from_secs(2),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("snapshots", &self.snapshots.is_some())
            .field("snapshot_interval", &self.snapshot_interval)
            .field("snapshot_events", &self.snapshot_events)
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

/// Why the service stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("could not read the stored snapshot: {0}")]
    Store(#[from] omni_store::StoreError),
    #[error("could not subscribe to {subject}: {reason}")]
    Subscribe {
        subject: &'static str,
        reason: String,
    },
    #[error("a background task failed: {0}")]
    Task(String),
}

/// Runs the projector until `shutdown` turns true, then stores a last snapshot (when
/// configured) and returns.
pub async fn run(
    config: Config,
    client: async_nats::Client,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    let (world, position) = load(config.snapshots.clone()).await?;
    tracing::info!(
        position,
        conversations = world.conversations.len(),
        agents = world.agents.len(),
        "projector starts"
    );
    let (folded_tx, folded) = watch::channel(position);
    let shared = Arc::new(Shared {
        model: RwLock::new(ReadModel::new(world, position)),
        folded,
        client: client.clone(),
        metrics,
        max_wait: config.max_wait,
    });
    let requests = client
        .queue_subscribe(subjects::QUERY_ALL, SERVICE.to_owned())
        .await
        .map_err(|e| ServiceError::Subscribe {
            subject: subjects::QUERY_ALL,
            reason: e.to_string(),
        })?;
    let events = omni_bus::follow(Bus::new(client.clone()), position + 1, shutdown.clone())
        .await
        .map_err(|e| ServiceError::Subscribe {
            subject: subjects::EVENTS_ALL,
            reason: e.to_string(),
        })?;
    let server = tokio::spawn(serve::serve(requests, Arc::clone(&shared)));

    let mut checkpoints = Checkpoints::new(&config, position);
    let result = fold(events, &shared, &folded_tx, &mut checkpoints, &mut shutdown).await;

    server.abort();
    checkpoints.store(&shared).await;
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "could not flush the last answers");
    }
    result
}

/// The world and position to start from: the stored snapshot when there is a sound one.
async fn load(snapshots: Option<Arc<dyn EventLog>>) -> Result<(World, u64), ServiceError> {
    let Some(log) = snapshots else {
        return Ok((World::default(), 0));
    };
    tokio::task::spawn_blocking(move || match log.load_snapshot(SNAPSHOT_NAME)? {
        Some(snapshot) => match restore(&snapshot) {
            Ok(world) => Ok((world, snapshot.position)),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the stored snapshot; folding the whole log");
                Ok((World::default(), 0))
            }
        },
        None => Ok((World::default(), 0)),
    })
    .await
    .map_err(|e| ServiceError::Task(e.to_string()))?
}

/// Events folded under one write lock at most: queries wait at most that long.
const FOLD_BATCH: usize = 1_024;

/// Folds what the follower hands over until shutdown, storing snapshots when due.
async fn fold(
    mut events: mpsc::Receiver<Followed>,
    shared: &Arc<Shared>,
    folded: &watch::Sender<u64>,
    checkpoints: &mut Checkpoints,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    let mut timer =
        tokio::time::interval_at(Instant::now() + checkpoints.interval, checkpoints.interval);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            _ = timer.tick() => {
                checkpoints.store(shared).await;
                continue;
            }
            followed = events.recv() => match followed {
                Some(followed) => followed,
                None if *shutdown.borrow() => return Ok(()),
                None => return Err(ServiceError::Task("the event follower stopped".to_owned())),
            },
        };
        let mut batch = Vec::with_capacity(64);
        batch.push(first);
        while batch.len() < FOLD_BATCH {
            match events.try_recv() {
                Ok(followed) => batch.push(followed),
                Err(_) => break,
            }
        }
        let position = {
            let mut model = shared.model.write().unwrap_or_else(PoisonError::into_inner);
            for followed in batch {
                match followed.envelope {
                    Ok(envelope) => model.fold(followed.position, &envelope.event),
                    Err(error) => {
                        tracing::error!(
                            position = followed.position,
                            %error,
                            "skipping an event this version cannot read, as a replay does"
                        );
                        model.skip(followed.position);
                    }
                }
            }
            model.position()
        };
        folded.send_replace(position);
        if checkpoints.due(position) {
            checkpoints.store(shared).await;
        }
    }
}

/// When and where snapshots are stored.
struct Checkpoints {
    log: Option<Arc<dyn EventLog>>,
    interval: Duration,
    every_events: u64,
    /// The position of the last snapshot stored (or restored).
    stored: u64,
}

impl Checkpoints {
    fn new(config: &Config, position: u64) -> Checkpoints {
        Checkpoints {
            log: config.snapshots.clone(),
            interval: config.snapshot_interval.max(Duration::from_millis(10)),
            every_events: config.snapshot_events.max(1),
            stored: position,
        }
    }

    fn due(&self, position: u64) -> bool {
        self.log.is_some() && position >= self.stored + self.every_events
    }

    /// Stores a snapshot of the model if it moved since the last one. Serialising holds a
    /// read lock (queries go on; folding waits); writing happens after it is released.
    async fn store(&mut self, shared: &Arc<Shared>) {
        let Some(log) = self.log.clone() else {
            return;
        };
        let position = shared
            .model
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .position();
        if position <= self.stored {
            return;
        }
        let shared = Arc::clone(shared);
        let stored = tokio::task::spawn_blocking(move || {
            let snapshot = {
                let model = shared.model.read().unwrap_or_else(PoisonError::into_inner);
                snapshot_of(model.world(), model.position())
            };
            log.save_snapshot(SNAPSHOT_NAME, &snapshot)
                .map(|()| snapshot.position)
        })
        .await;
        match stored {
            Ok(Ok(position)) => {
                tracing::debug!(position, "snapshot stored");
                self.stored = position;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "could not store a snapshot"),
            Err(e) => tracing::warn!(error = %e, "the snapshot task failed"),
        }
    }
}
