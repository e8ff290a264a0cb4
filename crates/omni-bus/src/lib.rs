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
pub use dead::{dead_letter, dead_letter_request, keep_dead_letters, refuse_malformed_query};
pub use follow::{Followed, folded_to, follow};
pub use metrics::Metrics;

/// A client named `omni-<name>` that retries its first connection and reconnects for as long
/// as the process runs: services outlive NATS restarts.
pub async fn connect(
    url: &str,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .name(format!("omni-{name}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url)
        .await
}

/// A shutdown signal for a service's `run`, turned on by Ctrl-C.
pub fn shutdown_on_ctrl_c() -> tokio::sync::watch::Receiver<bool> {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });
    shutdown
}
