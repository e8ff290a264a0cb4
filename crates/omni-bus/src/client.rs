//! Request-reply over the bus, with retries that are safe because commands are idempotent by
//! command id.

use std::time::Duration;

use async_nats::client::RequestErrorKind;
use bytes::Bytes;
use omni_proto::{CommandEnvelope, InternalCommand, Outcome, RequestError, pb};
use prost::Message;

use crate::subjects;

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Nobody answered in time, even after retrying.
    #[error("no answer on {subject} after {attempts} attempts: {detail}")]
    Unavailable {
        subject: String,
        attempts: u32,
        detail: String,
    },
    /// The answer was not the expected message.
    #[error("the answer on {subject} is malformed: {source}")]
    BadReply {
        subject: String,
        source: RequestError,
    },
    /// The command is internal to the engine.
    #[error(transparent)]
    Internal(#[from] InternalCommand),
}

/// A handle on the bus for clients of the engine: adapters, desktops, the router, tools.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    /// How long one attempt waits for its answer.
    pub attempt_timeout: Duration,
    /// How long a command keeps being retried before giving up.
    pub retry_for: Duration,
}

impl Bus {
    pub fn new(client: async_nats::Client) -> Bus {
        Bus {
            client,
            attempt_timeout: Duration::from_secs(2),
            retry_for: Duration::from_secs(15),
        }
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Sends a command and waits for its answer. Timeouts, missing responders and retryable
    /// rejections are retried with the same command id (so nothing happens twice) until
    /// `retry_for` has passed.
    pub async fn command(&self, command: &CommandEnvelope) -> Result<Outcome, BusError> {
        let payload = Bytes::from(omni_proto::encode_command(command)?);
        let subject = subjects::intake(omni_proto::command_name(&command.command));
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(20);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self.request_once(&subject, payload.clone()).await {
                Ok(reply) => match omni_proto::decode_reply(&reply) {
                    Ok(Outcome::Rejected {
                        retryable: true,
                        reason,
                        ..
                    }) => reason,
                    Ok(outcome) => return Ok(outcome),
                    Err(source) => return Err(BusError::BadReply { subject, source }),
                },
                Err(detail) => detail,
            };
            if started.elapsed() + backoff > self.retry_for {
                return Err(BusError::Unavailable {
                    subject,
                    attempts,
                    detail: failure,
                });
            }
            tracing::debug!(%subject, attempts, %failure, "retrying command");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Sends a query and decodes its `QueryReply`. Retried like commands: queries change
    /// nothing.
    pub async fn query(
        &self,
        subject: &str,
        request: &impl Message,
    ) -> Result<pb::QueryReply, BusError> {
        self.request_decoded(subject, Bytes::from(request.encode_to_vec()), "QueryReply")
            .await
    }

    /// Reads up to `max` events of the log from `from_position`.
    pub async fn read_log(&self, from_position: u64, max: u32) -> Result<pb::LogBatch, BusError> {
        let request = pb::ReadLog {
            from_position,
            max_events: max,
        };
        self.request_decoded(
            subjects::LOG_READ,
            Bytes::from(request.encode_to_vec()),
            "LogBatch",
        )
        .await
    }

    async fn request_decoded<M: Message + Default>(
        &self,
        subject: &str,
        payload: Bytes,
        message: &'static str,
    ) -> Result<M, BusError> {
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(20);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.request_once(subject, payload.clone()).await {
                Ok(reply) => {
                    return M::decode(reply).map_err(|source| BusError::BadReply {
                        subject: subject.to_owned(),
                        source: RequestError::NotProtobuf { message, source },
                    });
                }
                Err(detail) if started.elapsed() + backoff > self.retry_for => {
                    return Err(BusError::Unavailable {
                        subject: subject.to_owned(),
                        attempts,
                        detail,
                    });
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// One request; the error is why it failed, for the retry log.
    async fn request_once(&self, subject: &str, payload: Bytes) -> Result<Bytes, String> {
        let request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(self.attempt_timeout));
        match self.client.send_request(subject.to_owned(), request).await {
            Ok(message) => Ok(message.payload),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::TimedOut => "timed out".to_owned(),
                RequestErrorKind::NoResponders => "no service is listening".to_owned(),
                _ => e.to_string(),
            }),
        }
    }
}
