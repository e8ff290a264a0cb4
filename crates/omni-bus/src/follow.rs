//! Following the committed events gap-free. Core NATS delivers at most once: a message can be
//! lost to a reconnect or a slow consumer. Every committed event carries its log position, so
//! a follower notices a gap and fills it from the log (`omni.log.read`); it also asks the log
//! now and then when nothing arrives, which heals a lost tail.

use std::time::Duration;

use futures_util::StreamExt;
use omni_proto::{DecodeError, Envelope};
use tokio::sync::{mpsc, watch};

use crate::client::Bus;
use crate::{headers, subjects};

/// One committed event, in log order. `envelope` is an error for an event this version cannot
/// read (e.g. from a newer schema): the follower reports it rather than skipping it.
#[derive(Debug)]
pub struct Followed {
    pub position: u64,
    pub envelope: Result<Envelope, DecodeError>,
}

/// How often a follower with nothing to do asks the log whether it missed anything.
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// Events asked for per `omni.log.read`.
const READ_BATCH: u32 = 5_000;

/// Follows the log from `from_position` (the first position wanted) until `shutdown` turns
/// true. Events arrive on the returned channel in position order, each exactly once.
pub async fn follow(
    bus: Bus,
    from_position: u64,
    mut shutdown: watch::Receiver<bool>,
) -> Result<mpsc::Receiver<Followed>, async_nats::SubscribeError> {
    let mut live = bus.client().subscribe(subjects::EVENTS_ALL).await?;
    let (tx, rx) = mpsc::channel(8_192);
    tokio::spawn(async move {
        let mut next = from_position.max(1);
        let mut follower = Catchup { bus, tx };
        // Whatever was committed before the subscription started.
        if follower.fill(&mut next).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                message = live.next() => {
                    let Some(message) = message else { return };
                    let Some(position) = headers::position(message.headers.as_ref()) else {
                        continue;
                    };
                    if position < next {
                        continue;
                    }
                    if position > next && follower.fill(&mut next).await.is_err() {
                        return;
                    }
                    if position == next {
                        next += 1;
                        let envelope = omni_proto::decode(&message.payload);
                        if follower.tx.send(Followed { position, envelope }).await.is_err() {
                            return;
                        }
                    }
                }
                () = tokio::time::sleep(IDLE_CHECK) => {
                    if follower.fill(&mut next).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}

struct Catchup {
    bus: Bus,
    tx: mpsc::Sender<Followed>,
}

/// The consumer went away.
struct Gone;

impl Catchup {
    /// Reads the log from `next` up to its head, handing every event over. A log that cannot
    /// be read now is left for the next try.
    async fn fill(&mut self, next: &mut u64) -> Result<(), Gone> {
        loop {
            let batch = match self.bus.read_log(*next, READ_BATCH).await {
                Ok(batch) if batch.error.is_empty() => batch,
                Ok(batch) => {
                    tracing::warn!(position = *next, error = %batch.error, "the log could not be read");
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(position = *next, error = %e, "the log is not reachable now");
                    return Ok(());
                }
            };
            let got = batch.events.len();
            for event in batch.events {
                if event.position != *next {
                    tracing::warn!(
                        expected = *next,
                        got = event.position,
                        "log read out of order"
                    );
                    return Ok(());
                }
                *next += 1;
                let followed = Followed {
                    position: event.position,
                    envelope: omni_proto::decode(&event.envelope),
                };
                self.tx.send(followed).await.map_err(|_| Gone)?;
            }
            if got == 0 || *next > batch.head {
                return Ok(());
            }
        }
    }
}

/// Waits (at most `max_wait`) until a follower's folded position, published on `folded`,
/// reaches `min`: how a read model answers a query with a `min_position` (read your writes).
/// The position reached is the error when it does not get there in time.
pub async fn folded_to(
    folded: &watch::Receiver<u64>,
    min: u64,
    max_wait: Duration,
) -> Result<(), u64> {
    let mut folded = folded.clone();
    if *folded.borrow_and_update() >= min {
        return Ok(());
    }
    let reached = tokio::time::timeout(max_wait, folded.wait_for(|&position| position >= min))
        .await
        .is_ok_and(|changed| changed.is_ok());
    if reached {
        Ok(())
    } else {
        Err(*folded.borrow())
    }
}
