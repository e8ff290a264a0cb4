//! Presence webhooks: endpoints registered over HTTP get every agent status change as the
//! `msdyn_agentstatus` Update execution context Dynamics 365 posts (the presence seed), signed
//! with HMAC-SHA256, at least once. `docs/webhooks.md` is the receivers' contract.
//!
//! - [`Webhooks::open`] opens the registrations, pending deliveries, delivery log and
//!   checkpoint (a sled database, `DATA/webhooks`, apart from the event log).
//! - [`Webhooks::mounted`] is the HTTP API (`/v1/webhooks…`) with its OpenAPI operations, for
//!   the gateway to serve behind its authentication (`omni_gateway::Bound::serve`).
//! - [`Webhooks::run`] follows the committed events (`omni_bus::follow`), finds status changes
//!   (`status.rs`) and enqueues one delivery per endpoint, which that endpoint's own worker
//!   (`deliver.rs`) sends with retries. One task per concern: the follower, the folder (this
//!   `run`), a worker per endpoint.
//!
//! A dead receiver never slows the engine: this service is a follower like any other on its
//! own NATS connection, and enqueuing is a sled write that never waits on a receiver.

mod api;
mod deliver;
mod openapi;
mod payload;
mod status;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use omni_bus::metrics::Counter;
use omni_bus::{Bus, Followed};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::AbortHandle;
use uuid::Uuid;

pub use deliver::{
    ATTEMPT_HEADER, DELIVERY_HEADER, POSITION_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    WEBHOOK_HEADER, backoff, signature,
};
pub use payload::render as render_payload;
pub use status::{AgentStatus, Notification, STATUS_ATTRIBUTES};
pub use store::{DeliveryRecord, DeliveryState};

/// The service's name: its NATS client name and its logs.
pub const SERVICE: &str = "webhooks";
/// Events folded, and their deliveries stored, in one transaction at most.
const BATCH: usize = 1_024;
const USER_AGENT: &str = concat!("omni-webhooks/", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Debug)]
pub struct Config {
    /// The service's database directory (`DATA/webhooks` in the engine).
    pub path: PathBuf,
    pub retry: RetryPolicy,
    /// How long one attempt waits for the receiver's answer.
    pub request_timeout: Duration,
    /// Deliveries an endpoint may have waiting. When one more arrives for a full queue, its
    /// oldest waiting delivery is dropped (recorded as `dropped` in the delivery log): a newer
    /// status of an agent supersedes an older one, so the newest are the ones worth keeping.
    pub max_pending: usize,
    pub organization: Organization,
}

impl Config {
    /// The defaults: 15 attempts, waits from 1 s doubling to at most 5 minutes (17 to 34
    /// minutes in all, so a receiver's restart or short outage costs nothing), 10 s per
    /// attempt, 10 000 waiting deliveries per endpoint.
    pub fn new(path: impl Into<PathBuf>) -> Config {
        Config {
            path: path.into(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(10),
            max_pending: 10_000,
            organization: Organization::default(),
        }
    }
}

/// When to try a failed delivery again.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts before a delivery is given up (recorded as `failed`).
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles each time.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 15,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// The Dataverse organization the payload names (`OrganizationId`, `OrganizationName`,
/// `BusinessUnitId`): set them to what your middleware expects; nil ids and "omni" by default.
#[derive(Clone, Debug)]
pub struct Organization {
    pub organization_id: Uuid,
    pub organization_name: String,
    pub business_unit_id: Uuid,
}

impl Default for Organization {
    fn default() -> Organization {
        Organization {
            organization_id: Uuid::nil(),
            organization_name: "omni".to_owned(),
            business_unit_id: Uuid::nil(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhooksError {
    #[error("the webhook database failed: {0}")]
    Storage(#[from] sled::Error),
    #[error("the webhook database holds a record this version cannot read: {0}")]
    Corrupt(String),
    #[error("cannot set up TLS for https receivers: {0}")]
    Tls(String),
    #[error("cannot follow the committed events: {0}")]
    Subscribe(String),
    #[error("the event follower stopped")]
    FollowerStopped,
}

/// The service's counters, in the Prometheus text format by [`WebhookMetrics::render`].
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    /// Agent status changes found.
    pub notifications: Counter,
    /// Deliveries enqueued (one per change for each endpoint that wants it).
    pub enqueued: Counter,
    /// HTTP attempts made.
    pub attempts: Counter,
    pub delivered: Counter,
    /// Deliveries given up after every attempt failed.
    pub failed: Counter,
    /// Deliveries dropped from a full queue.
    pub dropped: Counter,
}

impl WebhookMetrics {
    pub fn render(&self) -> String {
        let counters = [
            (
                "omni_webhook_notifications_total",
                "Agent status changes found",
                &self.notifications,
            ),
            (
                "omni_webhook_deliveries_enqueued_total",
                "Deliveries enqueued, one per change for each endpoint that wants it",
                &self.enqueued,
            ),
            (
                "omni_webhook_attempts_total",
                "HTTP delivery attempts",
                &self.attempts,
            ),
            (
                "omni_webhook_deliveries_delivered_total",
                "Deliveries a receiver acknowledged",
                &self.delivered,
            ),
            (
                "omni_webhook_deliveries_failed_total",
                "Deliveries given up after every attempt failed",
                &self.failed,
            ),
            (
                "omni_webhook_deliveries_dropped_total",
                "Deliveries dropped from a full queue",
                &self.dropped,
            ),
        ];
        counters
            .iter()
            .map(|(name, help, counter)| {
                format!(
                    "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                    counter.get()
                )
            })
            .collect()
    }
}

/// The webhook service: its HTTP API and its delivery loop share one database. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

/// An endpoint's queue as its worker and the folder share it.
#[derive(Debug, Default)]
struct Queue {
    /// Notified when something is enqueued.
    wake: Notify,
    /// Deliveries waiting in the database, counted here so that checking for a full queue
    /// costs nothing. Raised before the deliveries are stored, lowered once they are finished.
    pending: AtomicUsize,
}

/// A registered endpoint as the workers know it.
#[derive(Debug)]
struct Live {
    endpoint: store::Endpoint,
    queue: Arc<Queue>,
    /// Its worker, while [`Webhooks::run`] runs.
    worker: Option<AbortHandle>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    store: store::Store,
    http: deliver::HttpClient,
    metrics: Arc<WebhookMetrics>,
    /// The endpoints by id. Registration, deletion and enqueuing hold it, so an endpoint being
    /// deleted gets nothing enqueued after its data is gone.
    endpoints: Mutex<HashMap<Uuid, Live>>,
    /// The shutdown signal of a running [`Webhooks::run`]: where workers of endpoints registered
    /// meanwhile get theirs.
    running: Mutex<Option<watch::Receiver<bool>>>,
}

impl Inner {
    fn endpoints(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Live>> {
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `live`'s worker if the service runs.
    fn start_worker(self: &Arc<Self>, live: &mut Live) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shutdown) = running.as_ref() {
            let task = tokio::spawn(deliver::worker(
                Arc::clone(self),
                live.endpoint.clone(),
                Arc::clone(&live.queue),
                shutdown.clone(),
            ));
            live.worker = Some(task.abort_handle());
        }
    }
}

impl Webhooks {
    /// Opens (or creates) the service's database.
    pub fn open(config: Config) -> Result<Webhooks, WebhooksError> {
        let store = store::Store::open(&config.path)?;
        let endpoints = store
            .endpoints()?
            .into_iter()
            .map(|endpoint| {
                let queue = Queue {
                    wake: Notify::new(),
                    pending: AtomicUsize::new(store.pending_count(endpoint.id)),
                };
                let live = Live {
                    endpoint,
                    queue: Arc::new(queue),
                    worker: None,
                };
                (live.endpoint.id, live)
            })
            .collect();
        Ok(Webhooks {
            inner: Arc::new(Inner {
                http: deliver::http_client()?,
                config,
                store,
                metrics: Arc::default(),
                endpoints: Mutex::new(endpoints),
                running: Mutex::new(None),
            }),
        })
    }

    /// The HTTP API for the gateway to serve: `POST /v1/webhooks`, `GET /v1/webhooks`, `GET`
    /// and `DELETE /v1/webhooks/{id}`, `GET /v1/webhooks/{id}/deliveries`, each with its
    /// OpenAPI operation. Errors are the gateway's `ApiError`. It authenticates nobody: the
    /// gateway's guard does.
    pub fn mounted(&self) -> omni_gateway::Mounted {
        api::mounted(self.clone())
    }

    pub fn metrics(&self) -> Arc<WebhookMetrics> {
        Arc::clone(&self.inner.metrics)
    }

    /// The last log position whose notifications are stored.
    pub fn checkpoint(&self) -> Result<u64, WebhooksError> {
        self.inner.store.checkpoint()
    }

    /// Follows the committed events and delivers until `shutdown` turns true. The world is
    /// folded from position 1 (see `status.rs`); deliveries are enqueued only for positions
    /// after the checkpoint, so a restart sends what it had not stored yet and nothing twice.
    pub async fn run(
        self,
        client: async_nats::Client,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), WebhooksError> {
        let checkpoint = self.inner.store.checkpoint()?;
        let events = omni_bus::follow(Bus::new(client), 1, shutdown.clone())
            .await
            .map_err(|e| WebhooksError::Subscribe(e.to_string()))?;
        *self
            .inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(shutdown.clone());
        for live in self.inner.endpoints().values_mut() {
            self.inner.start_worker(live);
        }
        let result = self.fold(events, checkpoint, &mut shutdown).await;
        *self
            .inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        for live in self.inner.endpoints().values_mut() {
            if let Some(worker) = live.worker.take() {
                worker.abort();
            }
        }
        self.inner.store.flush().await?;
        result
    }

    async fn fold(
        &self,
        mut events: mpsc::Receiver<Followed>,
        mut checkpoint: u64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), WebhooksError> {
        let mut statuses = status::Statuses::default();
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let received = tokio::select! {
                biased;
                _ = shutdown.changed() => return Ok(()),
                received = events.recv_many(&mut batch, BATCH) => received,
            };
            if received == 0 {
                return if *shutdown.borrow() {
                    Ok(())
                } else {
                    Err(WebhooksError::FollowerStopped)
                };
            }
            let last = batch.last().map_or(checkpoint, |f| f.position);
            let mut changes = Vec::new();
            for followed in batch.drain(..) {
                let envelope = match followed.envelope {
                    Ok(envelope) => envelope,
                    Err(error) => {
                        tracing::error!(position = followed.position, %error, "skipping an event this version cannot read");
                        continue;
                    }
                };
                if let Some(change) = statuses.fold(followed.position, &envelope) {
                    if followed.position > checkpoint {
                        changes.push(change);
                    }
                }
            }
            if last > checkpoint {
                self.enqueue(&changes, last)?;
                checkpoint = last;
            }
        }
    }

    /// Stores one delivery per change for every endpoint that wants it (its filtering
    /// attributes) and the new checkpoint, then wakes the
    /// workers; drops the oldest waiting deliveries of queues that overflowed.
    fn enqueue(&self, changes: &[Notification], checkpoint: u64) -> Result<(), WebhooksError> {
        let inner = &self.inner;
        let endpoints = inner.endpoints();
        let created_at = now_ms();
        let mut deliveries = Vec::new();
        for live in endpoints.values() {
            let endpoint = live.endpoint.id;
            let before = deliveries.len();
            for change in changes.iter().filter(|c| live.endpoint.wants(&c.changed)) {
                let delivery_id = deliver::delivery_id(endpoint, change.position);
                deliveries.push(store::NewDelivery {
                    endpoint,
                    position: change.position,
                    pending: store::Pending {
                        delivery_id,
                        body: payload::render(change, &inner.config.organization, endpoint),
                    },
                    record: DeliveryRecord {
                        delivery_id,
                        position: change.position,
                        event_id: change.event_id,
                        agent_id: change.status.agent.0,
                        presence_id: change.status.presence.0,
                        state: DeliveryState::Pending,
                        attempts: 0,
                        last_status: None,
                        last_error: None,
                        created_at,
                        updated_at: created_at,
                        next_attempt_at: None,
                    },
                });
            }
            // Counted before they are stored: a worker cannot finish one before it is counted.
            live.queue
                .pending
                .fetch_add(deliveries.len() - before, Ordering::Relaxed);
        }
        inner.store.enqueue(&deliveries, checkpoint)?;
        inner.metrics.notifications.add(changes.len() as u64);
        inner.metrics.enqueued.add(deliveries.len() as u64);
        if deliveries.is_empty() {
            return Ok(());
        }
        for live in endpoints.values() {
            self.drop_overflow(live)?;
            live.queue.wake.notify_one();
        }
        Ok(())
    }

    /// Drops an endpoint's oldest waiting deliveries while it has more than `max_pending`.
    fn drop_overflow(&self, live: &Live) -> Result<(), WebhooksError> {
        let store = &self.inner.store;
        let endpoint = live.endpoint.id;
        let max = self.inner.config.max_pending;
        // Each round drops one, or finds the worker finished it first: the excess is gone
        // either way.
        let excess = live
            .queue
            .pending
            .load(Ordering::Relaxed)
            .saturating_sub(max);
        for _ in 0..excess {
            let Some(position) = store.oldest_pending(endpoint)? else {
                return Ok(());
            };
            if let Some(mut record) = store.record_of(endpoint, position)? {
                record.state = DeliveryState::Dropped;
                record.updated_at = now_ms();
                record.next_attempt_at = None;
                record.last_error = Some(format!(
                    "dropped unsent: the endpoint had {} deliveries waiting",
                    self.inner.config.max_pending
                ));
                if store.record(endpoint, &record)? {
                    live.queue.pending.fetch_sub(1, Ordering::Relaxed);
                    self.inner.metrics.dropped.add(1);
                    tracing::warn!(webhook = %endpoint, position, "queue full; dropped the oldest waiting delivery");
                }
            }
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch by the wall clock.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
