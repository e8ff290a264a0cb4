//! Sending: one worker per endpoint posts its pending deliveries oldest first, each until the
//! receiver answers 2xx or the attempts run out. A worker only ever waits on its own receiver,
//! so a dead or slow one delays nobody else; the folder that enqueues never waits on any.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::{Request, header};
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;
use uuid::Uuid;

use crate::store::{DeliveryRecord, DeliveryState, Endpoint};
use crate::{Inner, Queue, RetryPolicy, WebhooksError, now_ms};

/// The header with the body's HMAC-SHA256 under the endpoint's secret: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-omni-signature";
/// The delivery's id: the same on every attempt, so receivers deduplicate on it.
pub const DELIVERY_HEADER: &str = "x-omni-delivery";
/// When this attempt was sent, in milliseconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "x-omni-timestamp";
/// The log position of the event that changed the status.
pub const POSITION_HEADER: &str = "x-omni-event-position";
/// Which attempt this is, from 1.
pub const ATTEMPT_HEADER: &str = "x-omni-attempt";
/// The registration the delivery is for.
pub const WEBHOOK_HEADER: &str = "x-omni-webhook";

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP/1 client for `http` and `https` receivers, trusting the platform's root
/// certificates (none found means https receivers fail their attempts, with the reason logged).
pub fn http_client() -> Result<HttpClient, WebhooksError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "a platform root certificate could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "root certificates for https receivers");
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| WebhooksError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// How long to wait after failed attempt number `attempt` (from 1): the first backoff doubled
/// per attempt, capped, then a random point in its upper half (jitter, so many endpoints that
/// failed together do not retry together).
pub fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let doubled = policy
        .first_backoff
        .saturating_mul(1 << attempt.saturating_sub(1).min(20));
    let capped = doubled.min(policy.max_backoff);
    let half = capped / 2;
    let random = getrandom::u64().unwrap_or(0);
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(if jitter_ms == 0 {
        0
    } else {
        random % (jitter_ms + 1)
    })
}

/// What one attempt came to.
enum Attempt {
    Delivered(u16),
    Failed { status: Option<u16>, error: String },
}

/// Posts the endpoint's pending deliveries until shutdown.
pub async fn worker(
    inner: Arc<Inner>,
    endpoint: Endpoint,
    queue: Arc<Queue>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let next = match inner.store.next_pending(endpoint.id) {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(webhook = %endpoint.id, %error, "cannot read the pending deliveries");
                None
            }
        };
        let Some((position, pending, record)) = next else {
            tokio::select! {
                () = queue.wake.notified() => continue,
                _ = shutdown.changed() => return,
            }
        };
        let delivery = Delivery {
            endpoint: &endpoint,
            queue: &queue,
            position,
            body: &pending.body,
        };
        if deliver(&inner, &delivery, record, &mut shutdown)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Shutdown came.
struct Stopped;

/// One delivery being made.
struct Delivery<'a> {
    endpoint: &'a Endpoint,
    queue: &'a Queue,
    position: u64,
    body: &'a str,
}

/// Attempts one delivery until it is finished (or dropped meanwhile).
async fn deliver(
    inner: &Inner,
    delivery: &Delivery<'_>,
    mut record: DeliveryRecord,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Stopped> {
    let policy = &inner.config.retry;
    let (endpoint, position) = (delivery.endpoint, delivery.position);
    loop {
        record.attempts += 1;
        inner.metrics.attempts.add(1);
        let outcome = attempt(inner, delivery, &record).await;
        record.updated_at = now_ms();
        record.next_attempt_at = None;
        let wait = match outcome {
            Attempt::Delivered(status) => {
                record.state = DeliveryState::Delivered;
                record.last_status = Some(status);
                record.last_error = None;
                inner.metrics.delivered.add(1);
                None
            }
            Attempt::Failed { status, error } => {
                tracing::debug!(webhook = %endpoint.id, position, attempt = record.attempts, %error, "delivery attempt failed");
                record.last_status = status;
                record.last_error = Some(error);
                if record.attempts >= policy.max_attempts {
                    record.state = DeliveryState::Failed;
                    inner.metrics.failed.add(1);
                    tracing::warn!(webhook = %endpoint.id, position, attempts = record.attempts, "delivery failed; giving up");
                    None
                } else {
                    let wait = backoff(policy, record.attempts);
                    record.state = DeliveryState::Retrying;
                    record.next_attempt_at = Some(
                        record.updated_at + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
                    );
                    Some(wait)
                }
            }
        };
        let still_pending = match inner.store.record(endpoint.id, &record) {
            Ok(still_pending) => {
                if still_pending && wait.is_none() {
                    delivery.queue.pending.fetch_sub(1, Ordering::Relaxed);
                }
                still_pending
            }
            Err(error) => {
                tracing::error!(webhook = %endpoint.id, position, %error, "cannot record a delivery attempt");
                true
            }
        };
        let Some(wait) = wait.filter(|_| still_pending) else {
            return Ok(());
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return Err(Stopped),
        }
        // A full queue may have dropped it while it waited.
        if !inner
            .store
            .is_pending(endpoint.id, position)
            .unwrap_or(true)
        {
            return Ok(());
        }
    }
}

async fn attempt(inner: &Inner, delivery: &Delivery<'_>, record: &DeliveryRecord) -> Attempt {
    let Delivery {
        endpoint,
        position,
        body,
        ..
    } = *delivery;
    let request = Request::post(endpoint.url.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, crate::USER_AGENT)
        .header(
            SIGNATURE_HEADER,
            signature(&endpoint.secret, body.as_bytes()),
        )
        .header(DELIVERY_HEADER, record.delivery_id.to_string())
        .header(TIMESTAMP_HEADER, now_ms().to_string())
        .header(POSITION_HEADER, position.to_string())
        .header(ATTEMPT_HEADER, record.attempts.to_string())
        .header(WEBHOOK_HEADER, endpoint.id.to_string())
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    let request = match request {
        Ok(request) => request,
        Err(e) => {
            return Attempt::Failed {
                status: None,
                error: format!("cannot build the request: {e}"),
            };
        }
    };
    match tokio::time::timeout(inner.config.request_timeout, inner.http.request(request)).await {
        Err(_) => Attempt::Failed {
            status: None,
            error: format!("no answer within {:?}", inner.config.request_timeout),
        },
        Ok(Err(e)) => Attempt::Failed {
            status: None,
            error: error_chain(&e),
        },
        Ok(Ok(response)) if response.status().is_success() => {
            Attempt::Delivered(response.status().as_u16())
        }
        Ok(Ok(response)) => Attempt::Failed {
            status: Some(response.status().as_u16()),
            error: format!("the receiver answered {}", response.status()),
        },
    }
}

/// An error and its causes on one line ("client error (Connect): connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// The id of the delivery of the notification at `position` to `endpoint`: derived from both,
/// so folding the same position again after a crash gives the same id, and receivers
/// deduplicate it like any retry.
pub fn delivery_id(endpoint: Uuid, position: u64) -> Uuid {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(endpoint.as_bytes())
        .chain_update(position.to_be_bytes())
        .finalize();
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}
