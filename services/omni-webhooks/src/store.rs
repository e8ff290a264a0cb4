//! What the webhook service keeps in its sled database (`DATA/webhooks`, apart from the log):
//!
//! - `endpoints`: registration id → [`Endpoint`];
//! - `pending`: (endpoint, position) → [`Pending`], the deliveries not yet finished, oldest
//!   first per endpoint;
//! - `deliveries`: (endpoint, position) → [`DeliveryRecord`], the delivery log;
//! - `meta`: `checkpoint` → the last log position whose notifications are stored.
//!
//! A position's pending deliveries, their log records and the checkpoint are written in one
//! transaction, so after a crash either all of them are there or none is and the position is
//! folded again: nothing is lost and nothing is enqueued twice.

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use uuid::Uuid;

use crate::WebhooksError;

/// A registered receiver.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub secret: String,
    pub description: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Send only changes of one of these status attributes; empty: every change.
    #[serde(default)]
    pub filtering_attributes: Vec<String>,
}

impl Endpoint {
    /// Whether this endpoint is sent a change of `changed`.
    pub fn wants(&self, changed: &[&str]) -> bool {
        self.filtering_attributes.is_empty()
            || self
                .filtering_attributes
                .iter()
                .any(|name| changed.contains(&name.as_str()))
    }
}

/// A delivery waiting to be made (or retried): the exact bytes every attempt sends.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    pub delivery_id: Uuid,
    pub body: String,
}

/// Where a delivery stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not attempted yet.
    Pending,
    /// Attempted and failed; another attempt is scheduled.
    Retrying,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed: given up (dead).
    Failed,
    /// Never sent: the endpoint's queue was full and this was its oldest waiting delivery.
    Dropped,
}

/// One line of the delivery log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub delivery_id: Uuid,
    /// The log position of the event that changed the status.
    pub position: u64,
    pub event_id: Uuid,
    pub agent_id: Uuid,
    pub presence_id: Uuid,
    pub state: DeliveryState,
    pub attempts: u32,
    /// The HTTP status of the last attempt, when the receiver answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
    /// When the next attempt is due, while retrying.
    pub next_attempt_at: Option<i64>,
}

/// One delivery to enqueue.
pub struct NewDelivery {
    pub endpoint: Uuid,
    pub position: u64,
    pub pending: Pending,
    pub record: DeliveryRecord,
}

const CHECKPOINT: &[u8] = b"checkpoint";

#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    endpoints: sled::Tree,
    pending: sled::Tree,
    deliveries: sled::Tree,
    meta: sled::Tree,
}

/// The key of a delivery: its endpoint, then its position, so one endpoint's deliveries are
/// one range in position order.
pub fn delivery_key(endpoint: Uuid, position: u64) -> [u8; 24] {
    let mut key = [0; 24];
    key[..16].copy_from_slice(endpoint.as_bytes());
    key[16..].copy_from_slice(&position.to_be_bytes());
    key
}

fn position_of(key: &[u8]) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&key[16..24]);
    u64::from_be_bytes(bytes)
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("stored records serialize: plain structs")
}

fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, WebhooksError> {
    serde_json::from_slice(bytes).map_err(|e| WebhooksError::Corrupt(e.to_string()))
}

fn flatten(e: TransactionError<WebhooksError>) -> WebhooksError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => WebhooksError::Storage(e),
    }
}

impl Store {
    pub fn open(path: &std::path::Path) -> Result<Store, WebhooksError> {
        let db = sled::open(path)?;
        Ok(Store {
            endpoints: db.open_tree("endpoints")?,
            pending: db.open_tree("pending")?,
            deliveries: db.open_tree("deliveries")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    pub async fn flush(&self) -> Result<(), WebhooksError> {
        self.db.flush_async().await?;
        Ok(())
    }

    pub fn checkpoint(&self) -> Result<u64, WebhooksError> {
        Ok(self.meta.get(CHECKPOINT)?.map_or(0, |bytes| {
            let mut be = [0; 8];
            be.copy_from_slice(&bytes[..8]);
            u64::from_be_bytes(be)
        }))
    }

    pub fn endpoints(&self) -> Result<Vec<Endpoint>, WebhooksError> {
        self.endpoints
            .iter()
            .values()
            .map(|value| from_json(&value?))
            .collect()
    }

    pub fn insert_endpoint(&self, endpoint: &Endpoint) -> Result<(), WebhooksError> {
        self.endpoints
            .insert(endpoint.id.as_bytes(), to_json(endpoint))?;
        Ok(())
    }

    /// Removes an endpoint with its pending deliveries and its delivery log.
    pub fn remove_endpoint(&self, id: Uuid) -> Result<(), WebhooksError> {
        self.endpoints.remove(id.as_bytes())?;
        for tree in [&self.pending, &self.deliveries] {
            for key in tree.scan_prefix(id.as_bytes()).keys() {
                tree.remove(key?)?;
            }
        }
        Ok(())
    }

    pub fn pending_count(&self, endpoint: Uuid) -> usize {
        self.pending.scan_prefix(endpoint.as_bytes()).count()
    }

    /// Stores the deliveries of a batch of events and moves the checkpoint past it, at once.
    pub fn enqueue(
        &self,
        deliveries: &[NewDelivery],
        checkpoint: u64,
    ) -> Result<(), WebhooksError> {
        (&self.pending, &self.deliveries, &self.meta)
            .transaction(|(pending, log, meta)| {
                for d in deliveries {
                    let key = delivery_key(d.endpoint, d.position);
                    pending.insert(&key[..], to_json(&d.pending))?;
                    log.insert(&key[..], to_json(&d.record))?;
                }
                meta.insert(CHECKPOINT, &checkpoint.to_be_bytes()[..])?;
                Ok::<_, ConflictableTransactionError<WebhooksError>>(())
            })
            .map_err(flatten)
    }

    /// The endpoint's oldest pending delivery, with its position and log record.
    pub fn next_pending(
        &self,
        endpoint: Uuid,
    ) -> Result<Option<(u64, Pending, DeliveryRecord)>, WebhooksError> {
        let Some((key, value)) = self
            .pending
            .scan_prefix(endpoint.as_bytes())
            .next()
            .transpose()?
        else {
            return Ok(None);
        };
        let Some(record) = self.deliveries.get(&key)? else {
            return Err(WebhooksError::Corrupt(format!(
                "pending delivery at position {} has no log record",
                position_of(&key)
            )));
        };
        Ok(Some((
            position_of(&key),
            from_json(&value)?,
            from_json(&record)?,
        )))
    }

    pub fn is_pending(&self, endpoint: Uuid, position: u64) -> Result<bool, WebhooksError> {
        Ok(self
            .pending
            .contains_key(delivery_key(endpoint, position))?)
    }

    /// Records an attempt; a delivery that is finished (delivered, failed or dropped) leaves the
    /// pending queue in the same transaction. Returns whether the delivery was still pending
    /// (a dropped one is not, and is not recorded over).
    pub fn record(&self, endpoint: Uuid, record: &DeliveryRecord) -> Result<bool, WebhooksError> {
        let key = delivery_key(endpoint, record.position);
        let finished = !matches!(
            record.state,
            DeliveryState::Pending | DeliveryState::Retrying
        );
        (&self.endpoints, &self.pending, &self.deliveries)
            .transaction(|(endpoints, pending, log)| {
                // A worker finishing an attempt as its endpoint is deleted leaves nothing behind.
                if endpoints.get(endpoint.as_bytes())?.is_none() {
                    return Ok(false);
                }
                let was_pending = if finished {
                    pending.remove(&key[..])?.is_some()
                } else {
                    pending.get(&key[..])?.is_some()
                };
                // A delivery made while it was being dropped was still made: record it.
                if was_pending || record.state == DeliveryState::Delivered {
                    log.insert(&key[..], to_json(record))?;
                }
                Ok::<_, ConflictableTransactionError<WebhooksError>>(was_pending)
            })
            .map_err(flatten)
    }

    /// The endpoint's oldest pending delivery's position, the one a full queue drops.
    pub fn oldest_pending(&self, endpoint: Uuid) -> Result<Option<u64>, WebhooksError> {
        Ok(self
            .pending
            .scan_prefix(endpoint.as_bytes())
            .keys()
            .next()
            .transpose()?
            .map(|key| position_of(&key)))
    }

    pub fn record_of(
        &self,
        endpoint: Uuid,
        position: u64,
    ) -> Result<Option<DeliveryRecord>, WebhooksError> {
        self.deliveries
            .get(delivery_key(endpoint, position))?
            .map(|bytes| from_json(&bytes))
            .transpose()
    }

    /// A page of the delivery log, newest first: at most `limit` records at positions below
    /// `before`.
    pub fn deliveries(
        &self,
        endpoint: Uuid,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, WebhooksError> {
        let start = delivery_key(endpoint, 0);
        let end = delivery_key(endpoint, before.unwrap_or(u64::MAX));
        self.deliveries
            .range(start..end)
            .values()
            .rev()
            .take(limit)
            .map(|value| from_json(&value?))
            .collect()
    }
}
