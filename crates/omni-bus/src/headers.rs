//! NATS headers on committed events, so a consumer can order and deduplicate without decoding
//! the payload.

use async_nats::HeaderMap;

/// The event's global log position (decimal).
pub const POSITION: &str = "Omni-Position";
/// The event's stream and its version in the stream.
pub const STREAM: &str = "Omni-Stream";
pub const STREAM_VERSION: &str = "Omni-Stream-Version";
/// The event's id; JetStream deduplicates on it if a stream captures the subject.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// On dead letters: why the message was refused, and where it was sent.
pub const DEAD_REASON: &str = "Omni-Dead-Reason";
pub const DEAD_SUBJECT: &str = "Omni-Dead-Subject";

/// The log position a committed-event message carries.
pub fn position(headers: Option<&HeaderMap>) -> Option<u64> {
    headers?.get(POSITION)?.as_str().parse().ok()
}
