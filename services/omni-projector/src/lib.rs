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
//! [`Config::snapshot_events`] events, paced by what the last one cost (see
//! [`SNAPSHOT_PACE`]), and when it stops.
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

/// A snapshot starts no sooner than this many times its predecessor's duration after that one
/// ended, so snapshots take at most a twentieth of one core, however large the world grows.
///
/// A snapshot serializes the whole world (all conversations, closed ones included, since
/// queries answer about them) and costs about 15 µs a conversation, while folding an event
/// costs about 0.5 µs. A fixed count of events between snapshots would make that O(n) work
/// ever more frequent relative to the events as the world grows: at 300 000 conversations and
/// 50 000 events/s, a snapshot every 100 000 events would never stop running. The price of
/// the pace is a longer replay after a crash: at most what was folded in twenty snapshot
/// durations (the clean shutdown stores one regardless).
pub const SNAPSHOT_PACE: u32 = 20;

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
        let deferred = checkpoints.deferred();
        let first = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            _ = timer.tick() => {
                checkpoints.store_when_paced(shared).await;
                continue;
            }
            () = tokio::time::sleep_until(deferred.unwrap_or_else(Instant::now)), if deferred.is_some() => {
                checkpoints.store_when_paced(shared).await;
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
            checkpoints.store_when_paced(shared).await;
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
    pace: Pace,
}

/// Spaces snapshots by [`SNAPSHOT_PACE`] times the last one's duration.
#[derive(Debug)]
struct Pace {
    /// No snapshot starts before this.
    until: Instant,
    /// A snapshot fell due before `until`; it is stored then.
    waiting: bool,
}

impl Pace {
    /// No snapshot yet: the first may start at once.
    fn new(now: Instant) -> Pace {
        Pace {
            until: now,
            waiting: false,
        }
    }

    /// Whether a snapshot due at `now` may start; if not, it is remembered for later.
    fn admit(&mut self, now: Instant) -> bool {
        self.waiting = now < self.until;
        !self.waiting
    }

    /// A snapshot ran from `started` to `ended`.
    fn ran(&mut self, started: Instant, ended: Instant) {
        self.until = ended + (ended - started) * SNAPSHOT_PACE;
    }

    /// When the snapshot refused earlier may start.
    fn deferred(&self) -> Option<Instant> {
        self.waiting.then_some(self.until)
    }
}

impl Checkpoints {
    fn new(config: &Config, position: u64) -> Checkpoints {
        Checkpoints {
            log: config.snapshots.clone(),
            interval: config.snapshot_interval.max(Duration::from_millis(10)),
            every_events: config.snapshot_events.max(1),
            stored: position,
            pace: Pace::new(Instant::now()),
        }
    }

    fn due(&self, position: u64) -> bool {
        self.log.is_some() && position >= self.stored + self.every_events
    }

    /// When a snapshot that fell due too soon after the last one is to be stored.
    fn deferred(&self) -> Option<Instant> {
        self.pace.deferred()
    }

    /// Stores a snapshot now if the pace allows, or when it does.
    async fn store_when_paced(&mut self, shared: &Arc<Shared>) {
        let started = Instant::now();
        if self.pace.admit(started) {
            self.store(shared).await;
            self.pace.ran(started, Instant::now());
        }
    }

    /// Stores a snapshot of the model if it moved since the last one. Serialising holds a
    /// read lock (queries go on; folding waits) on a thread of lower priority (see
    /// [`serialize_at_low_priority`]); writing happens after it is released.
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
        let snapshot = match serialize_at_low_priority(move || {
            let model = shared.model.read().unwrap_or_else(PoisonError::into_inner);
            snapshot_of(model.world(), model.position())
        })
        .await
        {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::warn!(error = %e, "could not serialize a snapshot");
                return;
            }
        };
        let stored = tokio::task::spawn_blocking(move || {
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

/// How much nicer than the projector the thread serializing a snapshot runs.
///
/// Serializing the world is seconds of CPU for a large one, and on a small machine it took one
/// of two cores from the services that answer customers and agents: in a run at 5 000 new
/// conversations/s, the p99 of the 5 s holding a snapshot was 2–7 times the others'. At nice
/// +10 the scheduler gives it about a tenth of a contended core and all of an idle one. The
/// cost falls on the projector alone: its fold waits for the read lock the serialization
/// holds, so queries see the model a little staler while a snapshot runs.
pub const SNAPSHOT_NICE: i32 = 10;

/// Runs `serialize` on a thread of its own at [`SNAPSHOT_NICE`] more than the caller's nice
/// value, and hands back its result.
///
/// A thread of its own, not the blocking pool: Linux keeps a nice value per thread, and a
/// pool thread would keep it for the next blocking task, as would any thread it started. The
/// thread only serializes; storing happens elsewhere, so sled never starts a thread from it.
/// Elsewhere than on Linux the nice value is the process's, so it is left alone there.
async fn serialize_at_low_priority<T: Send + 'static>(
    serialize: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let (result, answered) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("omni-snapshot".to_owned())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            lower_this_threads_priority();
            let _ = result.send(serialize());
        })?;
    answered
        .await
        .map_err(|_| std::io::Error::other("the snapshot thread panicked"))
}

#[cfg(target_os = "linux")]
fn lower_this_threads_priority() {
    use rustix::process::{getpriority_process, setpriority_process};
    // `None` is the calling thread: Linux keeps the nice value per thread.
    let lowered = getpriority_process(None)
        .and_then(|nice| setpriority_process(None, (nice + SNAPSHOT_NICE).min(19)));
    if let Err(e) = lowered {
        tracing::debug!(error = %e, "the snapshot runs at the projector's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_due_within_the_pace_waits_for_it_and_is_not_lost() {
        // Given a snapshot that took 50 ms and ended at `t0`
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        pace.ran(t0 - Duration::from_millis(50), t0);
        let paced_until = t0 + Duration::from_millis(50) * SNAPSHOT_PACE;

        // When the next one falls due sooner than twenty durations later
        let admitted = pace.admit(t0 + Duration::from_millis(900));

        // Then it does not start, and is deferred to exactly the end of the pace
        assert!(!admitted);
        assert_eq!(pace.deferred(), Some(paced_until));

        // And when the pace is over it starts and nothing is deferred any more
        assert!(pace.admit(paced_until));
        assert_eq!(pace.deferred(), None);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn snapshots_are_serialized_on_a_nicer_thread_and_the_callers_keeps_its_priority() {
        use rustix::process::getpriority_process;
        // Given the caller's nice value
        let callers = getpriority_process(None).expect("read the nice value");

        // When a snapshot is serialized
        let (serializers, thread) = serialize_at_low_priority(|| {
            (
                getpriority_process(None).expect("read the nice value"),
                std::thread::current().name().map(str::to_owned),
            )
        })
        .await
        .expect("the serializer answers");

        // Then it ran on its own thread, nicer by SNAPSHOT_NICE (up to the limit, 19)
        assert_eq!(thread.as_deref(), Some("omni-snapshot"));
        assert_eq!(serializers, (callers + SNAPSHOT_NICE).min(19));
        // And the caller's thread is as it was
        assert_eq!(getpriority_process(None).expect("read it again"), callers);
    }

    #[tokio::test]
    async fn a_serializer_that_panics_is_an_error_not_a_hang() {
        let outcome = serialize_at_low_priority(|| -> u32 { panic!("a broken world") }).await;
        assert!(outcome.is_err());
    }

    #[test]
    fn the_first_snapshot_is_not_paced() {
        let now = Instant::now();
        let mut pace = Pace::new(now);
        assert!(pace.admit(now));
        assert_eq!(pace.deferred(), None);
    }
}
