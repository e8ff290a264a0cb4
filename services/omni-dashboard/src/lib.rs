//! The live supervisor dashboard: conversations by status and queue, queue waits, agents with
//! presence, capacity and open sessions, updated as events are committed.
//!
//! [`Dashboard::start`] follows the committed events gap-free (`omni_bus::follow`, from the
//! log's first position: the catch-up reads the log through `omni.log.read`) and folds them
//! into a [`View`]. Every [`FLUSH_EVERY`] the changes are coalesced into one [`Update`] —
//! only the rows that changed, keyed by id, plus the aggregates — serialised once and
//! broadcast to every connected page.
//!
//! [`Dashboard::router`] serves, relative to where it is mounted:
//! - `GET /dashboard`: one self-contained page (inline CSS and JS, nothing fetched elsewhere);
//! - `GET /dashboard/state`: the whole view as JSON (an [`Update`] of kind `snapshot`);
//!   `?min_position=N` waits (at most 2 s, else 503) until the view has folded position N;
//! - `GET /dashboard/stream`: server-sent events: `snapshot` first, then `delta`s; a client
//!   too slow to keep up (its broadcast buffer overflowed) gets a fresh `snapshot` and
//!   continues from there.
//!
//! The router authenticates nobody: mount it behind the gateway's auth. The page passes its own
//! `access_token` query parameter on to the stream (an `EventSource` cannot send headers).

mod view;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
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
    seq: u64,
    kind: UpdateKind,
    json: Arc<str>,
}

impl Pushed {
    fn of(update: &Update) -> Pushed {
        Pushed {
            seq: update.seq,
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

    /// `/dashboard`, `/dashboard/state` and `/dashboard/stream`, to mount behind auth.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/dashboard", get(page))
            .route("/dashboard/state", get(state))
            .route("/dashboard/stream", get(stream))
            .with_state(Arc::clone(&self.shared))
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

#[derive(Debug, serde::Deserialize)]
struct StateQuery {
    min_position: Option<u64>,
}

async fn state(State(shared): State<Arc<Shared>>, Query(query): Query<StateQuery>) -> Response {
    if let Some(min) = query.min_position
        && let Err(reached) = omni_bus::folded_to(&shared.folded, min, MAX_WAIT).await
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
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
        after: snapshot.seq,
        first: Some(snapshot),
    };
    let events = futures_util::stream::unfold(start, |mut follower| async move {
        let pushed = follower.next().await?;
        Some((Ok(pushed.event()), follower))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// One page's stream: its snapshot, then every update after it.
struct Follower {
    shared: Arc<Shared>,
    updates: broadcast::Receiver<Pushed>,
    /// Updates up to this flush are in what the page already has.
    after: u64,
    first: Option<Pushed>,
}

impl Follower {
    /// The next update to send, or `None` when the dashboard stops.
    async fn next(&mut self) -> Option<Pushed> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            let received = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return None,
                received = self.updates.recv() => received,
            };
            match received {
                Ok(pushed) if pushed.seq <= self.after => continue,
                Ok(pushed) => {
                    self.after = pushed.seq;
                    return Some(pushed);
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "a dashboard page fell behind; sending a snapshot");
                    let snapshot = self.shared.snapshot();
                    self.after = snapshot.seq;
                    return Some(snapshot);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
