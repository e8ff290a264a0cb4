//! Dead letters: a message a service cannot use is answered (when it asked for an answer) and
//! published, bytes untouched, on `omni.dead.<service>` with the reason, so nothing sent is
//! silently lost and an operator can see what was wrong.

use std::time::Duration;

use async_nats::HeaderMap;

use omni_proto::pb;

use crate::{Metrics, headers, subjects};

/// Dead-letters a request `service` could not use, and counts it.
pub async fn dead_letter_request(
    client: &async_nats::Client,
    service: &str,
    metrics: &Metrics,
    message: &async_nats::Message,
    reason: &str,
) {
    metrics.dead_letters.add(1);
    dead_letter(
        client,
        service,
        &message.subject,
        message.payload.clone(),
        reason,
    )
    .await;
}

/// What a query server answers to a request it cannot read: MALFORMED as of `position`, the
/// reason naming the field; the request is dead-lettered.
pub async fn refuse_malformed_query(
    client: &async_nats::Client,
    service: &str,
    metrics: &Metrics,
    message: &async_nats::Message,
    position: u64,
    reason: String,
) -> pb::QueryReply {
    tracing::debug!(service, subject = %message.subject, %reason, "malformed query");
    dead_letter_request(client, service, metrics, message, &reason).await;
    omni_proto::query_error(position, pb::QueryErrorCode::Malformed, reason)
}

/// Publishes `payload`, received on `subject`, as a dead letter of `service`.
pub async fn dead_letter(
    client: &async_nats::Client,
    service: &str,
    subject: &str,
    payload: bytes::Bytes,
    reason: &str,
) {
    let mut map = HeaderMap::new();
    map.insert(headers::DEAD_SUBJECT, subject);
    // Header values are one line.
    map.insert(
        headers::DEAD_REASON,
        reason.replace(['\r', '\n'], " ").as_str(),
    );
    if let Err(e) = client
        .publish_with_headers(subjects::dead_letter(service), map, payload)
        .await
    {
        tracing::warn!(%subject, error = %e, "could not publish a dead letter");
    }
}

/// Makes sure a JetStream stream keeps dead letters, when the server has JetStream. Without
/// it dead letters are still published, but only live subscribers see them.
pub async fn keep_dead_letters(client: &async_nats::Client) {
    let js = async_nats::jetstream::new(client.clone());
    let config = async_nats::jetstream::stream::Config {
        name: subjects::DEAD_LETTER_STREAM.to_owned(),
        subjects: vec![subjects::DEAD_ALL.to_owned()],
        max_age: Duration::from_secs(14 * 24 * 3600),
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    };
    match tokio::time::timeout(Duration::from_secs(5), js.get_or_create_stream(config)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "dead letters are not kept: no JetStream stream"),
        Err(_) => tracing::warn!("dead letters are not kept: JetStream did not answer"),
    }
}
