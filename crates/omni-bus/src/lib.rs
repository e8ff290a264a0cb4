//! omni on NATS: the subject scheme (the public contract, see `docs/subjects.md`), headers,
//! request-reply with safe retries, following the committed events without gaps, desktop
//! notifications, dead letters and the engine's metrics.
//!
//! Payloads are the Protobuf messages of `proto/omnichannel/v1`, converted by `omni-proto`;
//! this crate only moves bytes and knows where they go.

mod client;
mod dead;
mod follow;
pub mod headers;
pub mod metrics;
pub mod notify;
pub mod subjects;

pub use client::{Bus, BusError};
pub use dead::{dead_letter, keep_dead_letters};
pub use follow::{Followed, folded_to, follow};
pub use metrics::Metrics;
