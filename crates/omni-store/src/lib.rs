//! The durable, append-only event log: the only source of truth of omni.
//!
//! Everything else (state, projections, routing queues) is a fold over this
//! log, so the log has three jobs and nothing else:
//!
//! 1. **Order** — every event gets a global, 1-based, gap-free `position` and a
//!    1-based `stream_version` within its stream. Consumers rely on "no gap, no
//!    duplicate" to fold deterministically.
//! 2. **Durability** — an append is acknowledged only after its bytes are on
//!    disk. Concurrent appenders share one flush (group commit) so durability
//!    does not cost one fsync per event.
//! 3. **Integrity** — every record is checksummed; a damaged record is
//!    reported with its position, never skipped, because skipping an event
//!    silently would make every state derived from the log wrong.
//!
//! The log stores opaque payloads (protobuf bytes encoded elsewhere) plus the
//! event id; it deliberately knows nothing about event types so that it can
//! not drift with the domain model.
//!
//! [`EventLog`] is the backend-neutral, object-safe trait; [`SledLog`] is the
//! embedded implementation (see the [`sled_log`] module docs for its layout,
//! group commit, durability and torn-tail design). A NATS JetStream backend
//! is expected to implement the same trait.

mod index;
mod record;
pub mod sled_log;
mod wal;

use std::fmt;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

pub use uuid::Uuid;

pub use sled_log::{SCAN_CACHE_BYTES, SledLog, WriterStats};

/// Largest payload accepted for one event.
///
/// Why a limit: the record length is framed as a `u32`, and very large values
/// make sled (and any replay) slow; events are small facts, so anything this
/// large is a bug upstream rather than data worth storing.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// Longest stream name accepted, in bytes.
///
/// Why: stream names are part of every index key; unbounded keys would bloat
/// the index and are never legitimate (names are ids like `interaction-<uuid>`).
pub const MAX_STREAM_NAME_BYTES: usize = 1024;

/// An event to append: its id (the idempotency key) and its opaque payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique id of the event. Appending an id that is already in the log is
    /// treated as a retry of the original append (see [`EventLog::append`]).
    pub id: Uuid,
    /// Opaque bytes (protobuf encoded by the caller). The log never looks
    /// inside.
    pub payload: Vec<u8>,
}

impl NewEvent {
    /// Builds a new event from an id and its payload.
    pub fn new(id: Uuid, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            id,
            payload: payload.into(),
        }
    }
}

/// An event as stored in the log, with the order the log gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position: 1-based and gap-free across all streams.
    pub position: u64,
    /// Name of the stream the event belongs to.
    pub stream: String,
    /// Version of the stream after this event: 1-based and gap-free per stream.
    pub stream_version: u64,
    /// The id given at append time.
    pub id: Uuid,
    /// The opaque payload given at append time.
    pub payload: Vec<u8>,
}

/// A borrowed view of a stored event, handed to [`EventLog::for_each_from`]
/// visitors so that replay does not allocate per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Global position (1-based, gap-free).
    pub position: u64,
    /// Stream name.
    pub stream: &'a str,
    /// Version within the stream (1-based, gap-free).
    pub stream_version: u64,
    /// Event id.
    pub id: Uuid,
    /// Opaque payload.
    pub payload: &'a [u8],
}

impl EventRef<'_> {
    /// Copies the borrowed event into an owned [`RecordedEvent`].
    pub fn to_recorded(&self) -> RecordedEvent {
        RecordedEvent {
            position: self.position,
            stream: self.stream.to_owned(),
            stream_version: self.stream_version,
            id: self.id,
            payload: self.payload.to_vec(),
        }
    }
}

/// Optimistic concurrency check for an append.
///
/// Why: a command handler decides on a state folded up to some stream
/// version; if another writer appended in between, the decision may be wrong
/// and must be retried on fresh state instead of being appended blindly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check: append whatever the current version is.
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must be exactly at this version (`Exact(0)` ≡ `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream currently at `actual` satisfies this expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// One append of a batch handed to [`EventLog::append_many`]: the same three
/// arguments [`EventLog::append`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest {
    /// The stream appended to.
    pub stream: String,
    /// The optimistic concurrency check for this request alone.
    pub expected: ExpectedVersion,
    /// The events, appended atomically and contiguously.
    pub events: Vec<NewEvent>,
}

impl AppendRequest {
    /// Builds a request.
    pub fn new(
        stream: impl Into<String>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        Self {
            stream: stream.into(),
            expected,
            events,
        }
    }
}

/// What an append did: where its events landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Global position of the first event of the batch.
    pub first_position: u64,
    /// Global position of the last event of the batch (batches are contiguous).
    pub last_position: u64,
    /// Version of the stream after the batch (the version of its last event).
    pub stream_version: u64,
}

/// A saved fold state, so that replay can start from `position + 1` instead
/// of from the beginning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The last position folded into `state`.
    pub position: u64,
    /// The encoded state (opaque to the log).
    pub state: Vec<u8>,
    /// A digest of the state computed by the caller (e.g. to cross-check that
    /// a replay from zero arrives at the same state).
    pub hash: [u8; 32],
}

/// Everything that can go wrong with the event log.
///
/// Backend failures are carried as text so the enum stays backend-neutral
/// (the trait must be implementable by a JetStream backend) and `Clone`
/// (group commit answers many appenders with the same failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The log directory could not be opened (missing permissions, not a
    /// directory, locked by another process, ...).
    #[error("cannot open event log at {}: {reason}", dir.display())]
    Open {
        /// The directory that was being opened.
        dir: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// The storage backend failed during an operation.
    #[error("event log backend failed during {op}: {reason}")]
    Backend {
        /// The operation that failed.
        op: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The optimistic concurrency check failed; `actual` is the stream's
    /// version so the caller can reload and retry.
    #[error(
        "wrong expected version on stream {stream:?}: expected {expected}, actual version {actual}"
    )]
    WrongExpectedVersion {
        /// The stream appended to.
        stream: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's current version.
        actual: u64,
    },
    /// A stored record failed its integrity checks. Never skipped: the
    /// position tells an operator exactly what is damaged.
    #[error("corrupt event log record at position {position}: {reason}")]
    Corrupt {
        /// Position of the damaged (or missing) record.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// A stored snapshot failed its checksum.
    #[error("corrupt snapshot {name:?}: {reason}")]
    CorruptSnapshot {
        /// Snapshot name.
        name: String,
        /// What check failed.
        reason: String,
    },
    /// Some ids of the batch are already in the log and others are not: this
    /// is not a retry of one earlier append, so it is refused as a whole.
    #[error(
        "append to {stream:?} mixes {existing} already-stored event id(s) (e.g. {example}) with {new} new one(s); a retry must resend exactly the original batch"
    )]
    PartialDuplicate {
        /// The stream appended to.
        stream: String,
        /// How many ids of the batch already exist.
        existing: usize,
        /// How many are new.
        new: usize,
        /// One of the existing ids.
        example: Uuid,
    },
    /// An id of the batch is already stored on a different stream.
    #[error(
        "event id {id} is already stored on stream {existing_stream:?} at position {position}, not on {stream:?}"
    )]
    IdOnOtherStream {
        /// The duplicated id.
        id: Uuid,
        /// The stream appended to.
        stream: String,
        /// The stream holding the id.
        existing_stream: String,
        /// Where it is stored.
        position: u64,
    },
    /// All ids exist on the stream, but not as one contiguous earlier batch in
    /// the same order, so the batch is not a retry of one append.
    #[error(
        "append to {stream:?} repeats stored event ids but not as the original batch: {reason}"
    )]
    RetryMismatch {
        /// The stream appended to.
        stream: String,
        /// What differs.
        reason: String,
    },
    /// The same id appears twice in one batch.
    #[error("event id {id} appears more than once in one append to {stream:?}")]
    DuplicateIdInBatch {
        /// The stream appended to.
        stream: String,
        /// The repeated id.
        id: Uuid,
    },
    /// An append with no events: there is nothing to order, so it is refused
    /// rather than silently succeeding with meaningless positions.
    #[error("append to {stream:?} has no events")]
    EmptyAppend {
        /// The stream appended to.
        stream: String,
    },
    /// The stream name is not usable as a key.
    #[error("invalid stream name {stream:?}: {reason}")]
    InvalidStreamName {
        /// The offending name.
        stream: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An event payload exceeds [`MAX_PAYLOAD_BYTES`].
    #[error("event {id} payload is {size} bytes, above the limit of {limit}")]
    PayloadTooLarge {
        /// The event.
        id: Uuid,
        /// Its payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A checkpoint or snapshot names a position the log does not have yet:
    /// storing it would make a consumer skip events after a restart.
    #[error("position {position} is beyond the log head {head}")]
    PositionBeyondHead {
        /// The position given.
        position: u64,
        /// The current head.
        head: u64,
    },
    /// The log has been closed (or its writer stopped).
    #[error("event log is closed")]
    Closed,
}

/// What [`EventLog::append_many_then`] calls with one answer per request.
pub type AppendDone = Box<dyn FnOnce(Vec<Result<AppendResult, StoreError>>) + Send>;

/// The backend-neutral, object-safe event log.
///
/// All methods take `&self` and implementations are `Send + Sync`, so one log
/// can be shared as `Arc<dyn EventLog>` between command handlers, projections
/// and subscribers.
pub trait EventLog: Send + Sync {
    /// Appends `events` to `stream` atomically (all or none, contiguous
    /// positions), after checking `expected` against the stream's version.
    /// Returns only once the events are durable.
    ///
    /// Idempotent by event id, forever: if *every* id of the batch is already
    /// stored on `stream` as one contiguous earlier batch in the same order,
    /// nothing is written and the original positions are returned (the
    /// expected version is not re-checked, since the original append passed
    /// it). A batch mixing stored and new ids, or an id stored on another
    /// stream, is an error.
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Applies `requests` in order, as if each were passed to
    /// [`append`](EventLog::append) one after the other, and returns one
    /// answer per request, in the same order.
    ///
    /// Each request keeps its own expected-version check, atomicity and
    /// idempotency: a refused request writes nothing and does not affect the
    /// others, and later requests see what earlier ones wrote (so a batch may
    /// append version 1 and then `Exact(1)` to the same stream). Global
    /// positions follow the request order. Returns once every written event
    /// is durable. Resending a whole batch after an error or a crash is safe:
    /// the requests that were stored answer with their original positions.
    ///
    /// Why: seeding a log and pipelined writers have many small appends ready
    /// at once; a backend can then pay one flush for all of them instead of
    /// one per request. The default implementation loops over `append`.
    fn append_many(&self, requests: Vec<AppendRequest>) -> Vec<Result<AppendResult, StoreError>> {
        requests
            .into_iter()
            .map(|r| self.append(&r.stream, r.expected, r.events))
            .collect()
    }

    /// Starts [`append_many`](EventLog::append_many) and hands its answers to
    /// `done` once every written event is durable, instead of returning them.
    ///
    /// Why: an async caller (a service's writer task) then awaits a oneshot
    /// that `done` fills, rather than parking a blocking-pool thread on the
    /// append: two thread hand-offs fewer per append, which on two cores are
    /// a good part of a command's tail latency. `done` may run on the log's
    /// own thread, so it must be quick (send the answers on). An
    /// implementation must not wait for the append on the calling thread;
    /// if it has to block, it does so on a thread of its own.
    fn append_many_then(&self, requests: Vec<AppendRequest>, done: AppendDone);

    /// Reads up to `max` events of `stream` starting at `from_version`
    /// (1-based; 0 is treated as 1), in version order.
    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `max` events starting at global `from_position` (1-based;
    /// 0 is treated as 1), in position order.
    fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Visits every event from `from_position` up to the head as of the call,
    /// without allocating per event; the visitor may stop early with
    /// `ControlFlow::Break`. Returns how many events were visited.
    ///
    /// Why: replay folds millions of events; borrowing avoids copying each
    /// payload. The default implementation pages through [`read_all`]
    /// (backends should override it when they can lend buffers).
    ///
    /// [`read_all`]: EventLog::read_all
    fn for_each_from(
        &self,
        from_position: u64,
        visit: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        let head = self.head()?;
        let mut next = from_position.max(1);
        let mut visited = 0;
        while next <= head {
            let page = self.read_all(next, 4096)?;
            if page.is_empty() {
                break;
            }
            for ev in &page {
                if ev.position > head {
                    return Ok(visited);
                }
                visited += 1;
                next = ev.position + 1;
                let r = EventRef {
                    position: ev.position,
                    stream: &ev.stream,
                    stream_version: ev.stream_version,
                    id: ev.id,
                    payload: &ev.payload,
                };
                if visit(r).is_break() {
                    return Ok(visited);
                }
            }
        }
        Ok(visited)
    }

    /// The current version of `stream` (0 if it has no events).
    fn stream_version(&self, stream: &str) -> Result<u64, StoreError>;

    /// The last global position (0 if the log is empty).
    fn head(&self) -> Result<u64, StoreError>;

    /// Follows the log from `from_position` (1-based; 0 is treated as 1):
    /// first the stored events, then live appends, with no gap and no
    /// duplicate.
    fn subscribe(&self, from_position: u64) -> Result<Subscription, StoreError>;

    /// Durably stores a consumer's checkpoint (the last position it
    /// processed). Refuses positions beyond the head.
    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError>;

    /// Loads a checkpoint saved with [`save_checkpoint`](EventLog::save_checkpoint).
    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError>;

    /// Durably stores a snapshot under `name` (replacing any earlier one).
    /// Refuses positions beyond the head.
    fn save_snapshot(&self, name: &str, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// Loads the snapshot stored under `name`, verifying its checksum.
    fn load_snapshot(&self, name: &str) -> Result<Option<Snapshot>, StoreError>;
}

/// What a backend implements to feed a [`Subscription`].
pub trait SubscriptionSource: Send + fmt::Debug {
    /// Returns the next event, waiting up to `timeout` for one; `Ok(None)` on
    /// timeout.
    fn next_timeout(&mut self, timeout: Duration) -> Result<Option<RecordedEvent>, StoreError>;
}

/// A blocking handle that follows the log: catch-up first, then live.
///
/// It enforces the contract for every backend: each event must have exactly
/// the next position, so a consumer can never see a gap or a duplicate
/// (a backend that broke this gets a [`StoreError::Corrupt`] instead).
#[derive(Debug)]
pub struct Subscription {
    source: Box<dyn SubscriptionSource>,
    next_position: u64,
}

impl Subscription {
    /// Wraps a backend source that starts at `from_position`.
    pub fn new(source: Box<dyn SubscriptionSource>, from_position: u64) -> Self {
        Self {
            source,
            next_position: from_position.max(1),
        }
    }

    /// The position the next event will have.
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// Returns the next event, waiting up to `timeout` for it to be appended;
    /// `Ok(None)` if none arrived in time. Once the log is closed and every
    /// stored event was delivered, returns [`StoreError::Closed`].
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<RecordedEvent>, StoreError> {
        match self.source.next_timeout(timeout)? {
            None => Ok(None),
            Some(ev) if ev.position == self.next_position => {
                self.next_position += 1;
                Ok(Some(ev))
            }
            Some(ev) => Err(StoreError::Corrupt {
                position: self.next_position,
                reason: format!(
                    "subscription expected position {} but received {}",
                    self.next_position, ev.position
                ),
            }),
        }
    }

    /// Returns the next event if one is already available, without waiting.
    pub fn try_next(&mut self) -> Result<Option<RecordedEvent>, StoreError> {
        self.next_timeout(Duration::ZERO)
    }
}

/// Checks that a stream name can be used as an index key.
///
/// Why no NUL: the stream index key is `name 0x00 version`, so a NUL inside
/// a name could make one stream's keys look like another's.
pub(crate) fn validate_stream_name(stream: &str) -> Result<(), StoreError> {
    let reason = if stream.is_empty() {
        "must not be empty"
    } else if stream.len() > MAX_STREAM_NAME_BYTES {
        "longer than MAX_STREAM_NAME_BYTES"
    } else if stream.as_bytes().contains(&0) {
        "must not contain a NUL byte"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidStreamName {
        stream: stream.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests;

/// The runs of consecutive equal stream names in `streams`, as index ranges.
///
/// Why: one decision may touch several streams in an interleaved order (a conversation, then
/// an agent, then the conversation again); the log's order must be the decision's order, so a
/// writer appends one request per run rather than one per stream.
pub fn stream_runs<S: AsRef<str>>(streams: &[S]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < streams.len() {
        let name = streams[start].as_ref();
        let end = streams[start..]
            .iter()
            .position(|s| s.as_ref() != name)
            .map_or(streams.len(), |n| start + n);
        runs.push(start..end);
        start = end;
    }
    runs
}
