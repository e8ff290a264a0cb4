//! The live supervisor dashboard: conversations by status and queue, queue waits, agents with
//! presence, capacity and open sessions, updated as events are committed.
//!
//! [`Dashboard::start`] follows the committed events gap-free (`omni_bus::follow`, from the
//! log's first position: the catch-up reads the log through `omni.log.read`) and folds them
//! into a [`View`]. Every [`FLUSH_EVERY`] the changes are coalesced into one [`Update`] —
//! only the rows that changed, keyed by id, plus the aggregates — serialised once and
//! broadcast to every connected page.
//!
//! [`Dashboard::mounted`] serves, through the gateway and documented in its `/openapi.json`:
//! - `GET /dashboard`: one self-contained page (inline CSS and JS, nothing fetched elsewhere);
//! - `GET /dashboard/state`: the whole view as JSON (an [`Update`] of kind `snapshot`);
//!   `?min_position=N` waits (at most 2 s, else 503) until the view has folded position N;
//! - `GET /dashboard/stream`: server-sent events: `snapshot` first, then `delta`s; a client
//!   too slow to keep up (more than 64 updates behind) gets a fresh `snapshot` and continues
//!   from there.
//!
//! It authenticates nobody: the gateway's guard does. The page passes its own
//! `access_token` query parameter on to the stream (an `EventSource` cannot send headers).

mod openapi;
mod view;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{Method, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::Stream;
use omni_bus::{Bus, Followed};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

pub use view::{
    AgentRow, ConversationRow, Count, QueueRow, SNAPSHOT_ABOVE_ROWS, Update, UpdateKind, View,
    channel_name,
};

/// How often changes are pushed: at most this often, whatever the event rate.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Updates a slow page may fall behind before it is sent a fresh snapshot instead.
const BUFFERED_UPDATES: usize = 64;
/// Events folded under one lock at most, so snapshots for new pages wait little.
const FOLD_BATCH: usize = 1_024;
/// How long `/dashboard/state?min_position=` waits for the view to get there.
const MAX_WAIT: Duration = Duration::from_secs(2);

const PAGE: &str = include_str!("page.html");

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("could not subscribe to the committed events: {0}")]
    Subscribe(String),
}

/// An update serialised once for every page.
#[derive(Clone, Debug)]
struct Pushed {
    kind: UpdateKind,
    json: Arc<str>,
}

impl Pushed {
    fn of(update: &Update) -> Pushed {
        Pushed {
            kind: update.kind,
            json: serde_json::to_string(update)
                .expect("an update is plain data")
                .into(),
        }
    }

    fn event(&self) -> Event {
        let name = match self.kind {
            UpdateKind::Snapshot => "snapshot",
            UpdateKind::Delta => "delta",
        };
        Event::default().event(name).data(&*self.json)
    }
}

#[derive(Debug)]
struct Shared {
    /// The view, and the sender of its updates: a page subscribes and takes its snapshot
    /// under the same lock the flush sends under, so it misses no delta and gets none older
    /// than its snapshot.
    view: Mutex<(View, broadcast::Sender<Pushed>)>,
    folded: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// A snapshot of the view now, and the updates after it.
    fn subscribe(&self) -> (Pushed, broadcast::Receiver<Pushed>) {
        let guard = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        (Pushed::of(&guard.0.snapshot()), guard.1.subscribe())
    }

    fn snapshot(&self) -> Pushed {
        let guard = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        Pushed::of(&guard.0.snapshot())
    }
}

/// A running dashboard: its follower task and what its router serves from.
#[derive(Debug)]
pub struct Dashboard {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Dashboard {
    /// Starts following the committed events on `client`'s bus (the whole log first) until
    /// `shutdown` turns true; then open streams end and the task stops.
    pub async fn start(
        client: async_nats::Client,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Dashboard, DashboardError> {
        let events = omni_bus::follow(Bus::new(client), 1, shutdown.clone())
            .await
            .map_err(|e| DashboardError::Subscribe(e.to_string()))?;
        let (updates, _) = broadcast::channel(BUFFERED_UPDATES);
        let (folded_tx, folded) = watch::channel(0);
        let shared = Arc::new(Shared {
            view: Mutex::new((View::default(), updates)),
            folded,
            shutdown: shutdown.clone(),
        });
        let task = tokio::spawn(fold(events, Arc::clone(&shared), folded_tx, shutdown));
        Ok(Dashboard { shared, task })
    }

    /// `/dashboard`, `/dashboard/state` and `/dashboard/stream` with their OpenAPI operations,
    /// for the gateway to serve behind its auth.
    pub fn mounted(&self) -> omni_gateway::Mounted {
        let shared = || Arc::clone(&self.shared);
        omni_gateway::Mounted::new()
            .route(Method::GET, "/dashboard", page, (), openapi::page())
            .route(
                Method::GET,
                "/dashboard/state",
                state,
                shared(),
                openapi::state(),
            )
            .route(
                Method::GET,
                "/dashboard/stream",
                stream,
                shared(),
                openapi::stream(),
            )
    }

    /// The last log position the view has folded, as it moves.
    pub fn folded(&self) -> watch::Receiver<u64> {
        self.shared.folded.clone()
    }

    /// Waits until the follower task has stopped (after shutdown, or when the bus is gone).
    pub async fn stopped(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the dashboard's follower task failed");
        }
    }
}

/// Folds what the follower hands over and pushes the coalesced changes every [`FLUSH_EVERY`].
async fn fold(
    mut events: mpsc::Receiver<Followed>,
    shared: Arc<Shared>,
    folded: watch::Sender<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            _ = flush.tick() => {
                let mut guard = shared.view.lock().unwrap_or_else(PoisonError::into_inner);
                let (view, updates) = &mut *guard;
                if let Some(update) = view.flush() {
                    // No page listening is not an error.
                    let _ = updates.send(Pushed::of(&update));
                }
                continue;
            }
            followed = events.recv() => match followed {
                Some(followed) => followed,
                None => return,
            },
        };
        let position = {
            let mut guard = shared.view.lock().unwrap_or_else(PoisonError::into_inner);
            let view = &mut guard.0;
            let mut next = Some(first);
            let mut folded_now = 0;
            while let Some(followed) = next.take() {
                match followed.envelope {
                    Ok(envelope) => view.fold(followed.position, &envelope.event),
                    Err(error) => {
                        tracing::error!(
                            position = followed.position,
                            %error,
                            "passing over an event this version cannot read"
                        );
                        view.skip(followed.position);
                    }
                }
                folded_now += 1;
                if folded_now < FOLD_BATCH {
                    next = events.try_recv().ok();
                }
            }
            view.position()
        };
        folded.send_replace(position);
    }
}

async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE)).into_response()
}

/// `min_position` from the query string (which also carries `access_token`), named when it is
/// not a position.
fn min_position(query: Option<&str>) -> Result<Option<u64>, omni_gateway::ApiError> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("min_position="))
    else {
        return Ok(None);
    };
    value.parse().map(Some).map_err(|_| {
        omni_gateway::ApiError::field(
            "min_position",
            format!("'{value}' is not a log position (a whole number)"),
        )
    })
}

async fn state(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let min = match min_position(query.as_deref()) {
        Ok(min) => min,
        Err(error) => return error.into_response(),
    };
    if let Some(min) = min
        && let Err(reached) = omni_bus::folded_to(&shared.folded, min, MAX_WAIT).await
    {
        return omni_gateway::ApiError::unavailable(
            "NOT_READY",
            format!("the dashboard has folded up to position {reached}, not yet {min}; ask again"),
        )
        .into_response();
    }
    let snapshot = shared.snapshot();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        snapshot.json.to_string(),
    )
        .into_response()
}

async fn stream(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (snapshot, updates) = shared.subscribe();
    let start = Follower {
        shared,
        updates,
        first: Some(snapshot),
    };
    let events = futures_util::stream::unfold(start, |mut follower| async move {
        let pushed = follower.next().await?;
        Some((Ok(pushed.event()), follower))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// One page's stream: its snapshot, then every update after it. The receiver was subscribed
/// with the snapshot, under the lock the flush sends under, so every update it gets is newer.
struct Follower {
    shared: Arc<Shared>,
    updates: broadcast::Receiver<Pushed>,
    first: Option<Pushed>,
}

impl Follower {
    /// The next update to send, or `None` when the dashboard stops.
    async fn next(&mut self) -> Option<Pushed> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        let mut shutdown = self.shared.shutdown.clone();
        let received = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return None,
            received = self.updates.recv() => received,
        };
        match received {
            Ok(pushed) => Some(pushed),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "a dashboard page fell behind; sending a snapshot");
                // Subscribed afresh with the snapshot: the updates still buffered are in it.
                let (snapshot, updates) = self.shared.subscribe();
                self.updates = updates;
                Some(snapshot)
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use omni_core::{AgentId, AgentProfile, Event, EventKind, PresenceId, Timestamp};

    use super::*;

    /// A dashboard's shared state with no follower: the test folds and flushes itself.
    fn shared() -> (Arc<Shared>, watch::Sender<bool>) {
        let (stop, shutdown) = watch::channel(false);
        let (_, folded) = watch::channel(0);
        let (updates, _) = broadcast::channel(BUFFERED_UPDATES);
        let shared = Arc::new(Shared {
            view: Mutex::new((View::default(), updates)),
            folded,
            shutdown,
        });
        (shared, stop)
    }

    /// Provisions agent `n` at position `n` and pushes the flush, as the follower task does.
    fn provision_and_flush(shared: &Shared, n: u64) {
        let mut guard = shared.view.lock().unwrap_or_else(PoisonError::into_inner);
        let (view, updates) = &mut *guard;
        let event = Event {
            at: Timestamp(1_700_000_000_000 + n as i64),
            kind: EventKind::AgentProvisioned(AgentProfile {
                id: AgentId::from_u128(u128::from(n)),
                name: format!("agent {n}"),
                capacity_units: 2,
                skills: Default::default(),
                max_sessions: 10,
                default_presence: PresenceId::AVAILABLE,
            }),
        };
        view.fold(n, &event);
        let update = view.flush().expect("a new agent is a changed row");
        let _ = updates.send(Pushed::of(&update));
    }

    /// The update's flush number and how many agent rows it carries.
    fn seq_and_agents(pushed: &Pushed) -> (u64, usize) {
        let update: serde_json::Value = serde_json::from_str(&pushed.json).expect("JSON");
        let seq = update["seq"].as_u64().expect("a flush number");
        (seq, update["agents"].as_array().expect("agents").len())
    }

    #[tokio::test]
    async fn a_page_gets_its_snapshot_then_only_newer_deltas() {
        let (shared, _stop) = shared();
        provision_and_flush(&shared, 1);
        let (snapshot, updates) = shared.subscribe();
        let mut page = Follower {
            shared: Arc::clone(&shared),
            updates,
            first: Some(snapshot),
        };
        let first = page.next().await.expect("the snapshot");
        assert_eq!(
            (first.kind, seq_and_agents(&first)),
            (UpdateKind::Snapshot, (1, 1))
        );
        provision_and_flush(&shared, 2);
        let delta = page.next().await.expect("a delta");
        assert_eq!(
            (delta.kind, seq_and_agents(&delta)),
            (UpdateKind::Delta, (2, 1))
        );
    }

    #[tokio::test]
    async fn a_page_that_falls_behind_gets_a_fresh_snapshot_and_nothing_older() {
        let (shared, stop) = shared();
        let (_, updates) = shared.subscribe();
        let mut page = Follower {
            shared: Arc::clone(&shared),
            updates,
            first: None,
        };
        let flushes = BUFFERED_UPDATES as u64 + 10;
        for n in 1..=flushes {
            provision_and_flush(&shared, n);
        }
        let caught_up = page.next().await.expect("an update");
        assert_eq!(caught_up.kind, UpdateKind::Snapshot);
        assert_eq!(seq_and_agents(&caught_up), (flushes, flushes as usize));
        // The deltas still buffered are all in that snapshot: none is sent.
        provision_and_flush(&shared, flushes + 1);
        let next = page.next().await.expect("the next delta");
        assert_eq!(
            (next.kind, seq_and_agents(&next)),
            (UpdateKind::Delta, (flushes + 1, 1))
        );

        stop.send_replace(true);
        assert!(page.next().await.is_none(), "the stream ends at shutdown");
    }
}
