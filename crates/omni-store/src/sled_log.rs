//! The embedded [`EventLog`] on sled.
//!
//! # Layout
//!
//! | tree        | key                                         | value                                  |
//! |-------------|---------------------------------------------|----------------------------------------|
//! | `events`    | first position of a chunk (u64 BE)          | consecutive framed records             |
//! | `streams`   | stream name, `0x00`, first version (u64 BE) | positions of consecutive versions      |
//! | `ids`       | lower bound of a bucket's ids (16 bytes)    | sorted `(id, position)` entries        |
//! | `meta`      | `head`                                      | committed head (u64 BE)                |
//! | `meta`      | `indexed`                                   | head the `streams` runs reach (u64 BE) |
//! | `meta`      | `format`                                    | layout version (u64 BE), see `FORMAT`  |
//! | `meta`      | `checkpoint/<name>`                         | position (u64 BE)                      |
//! | `snapshots` | snapshot name                               | framed snapshot                        |
//!
//! The two indexes are packed too (see the `index` module), instead of two
//! sled items per event, which capped throughput near 60k events/s because
//! sled costs a few microseconds per item: a commit rewrites one or two `ids`
//! buckets for time-ordered ids, and the `streams` runs of the latest
//! appends are kept in memory (`Shared::pending_runs`, consulted by every
//! stream read) and written in **generations**: once `PENDING_RUNS_MAX`
//! positions are pending, the writer seals them (the head they reach is the
//! generation's) and the following commits each write a bounded share of the
//! sealed runs — at most `RUN_ITEMS_PER_COMMIT` items, or as many as the
//! commit has events if that is more, so a generation is always written before
//! the next one fills — trimming them from memory as they reach the tree. The
//! commit that writes a generation's last item also sets `meta/indexed` to its
//! head. Why not all at once: with one stream per conversation a generation is
//! thousands of items, and writing them in one commit stalled every append
//! queued behind it for tens of milliseconds. The runs are derived from the
//! records, so after a crash `open` rebuilds every run above `meta/indexed`;
//! items of an unfinished generation already in the tree start at the same
//! versions as the rebuilt runs (the first above `meta/indexed`) and are in
//! `index::RUN_MAX` pieces from there, so rewriting them later writes the
//! same keys with the same or longer values, never an overlapping run (a
//! clean close writes them all). The writer also remembers the version of
//! recently used streams and the greatest stored id, so deciding an append to
//! a hot stream with a fresh (time-ordered) id reads nothing from sled.
//!
//! Records are stored in small **chunks**: one sled value holds the frames of
//! consecutive positions (up to [`CHUNK_MAX_RECORDS`] records or
//! [`CHUNK_MAX_BYTES`] bytes), keyed by the position of its first record. Each
//! record keeps its own `[len][crc32][body]` frame, so integrity is still
//! checked and reported per position. Why chunks: sled costs roughly half a
//! microsecond per item iterated, which alone would cap replay near 1.5M
//! events/s; with ~20 records per item, `read_all`/`for_each_from` run at
//! several million events/s. The writer keeps the last (open) chunk in memory
//! and rewrites it with the new records of each commit until it is full.
//! Big-endian keys make sled's byte order the numeric order, so a position is
//! found with one reverse seek and `read_all` is one range scan.
//!
//! # Durability and group commit
//!
//! Appends are validated and written by a single writer thread fed through a
//! channel. The writer takes one job (an `append`, or all the requests of an
//! `append_many`, kept in order), drains every other pending job, decides
//! all their requests in arrival order against the current state (plus what
//! earlier requests of the same group will write), and then does two things
//! at once: its indexer thread (see `Indexer`) writes the chunks, index
//! items and, **last**, the new committed head to sled (plain inserts, in
//! an order whose every prefix `open` repairs, see `GroupWrites::in_order`;
//! one transaction for the rare group that moves id entries between
//! buckets), while the writer writes the group's records as one entry of the
//! **write-ahead file** (`wal` in the log's directory, see the `wal` module)
//! and `fdatasync`s it **once**. Once both are done it publishes the new
//! head to readers and only then answers every appender of the group. N
//! concurrent appenders therefore share one `fdatasync`, and no append is
//! acknowledged before it is on disk.
//! A group holds at most `MAX_GROUP_EVENTS` events; a larger `append_many` is
//! written as consecutive groups, still in order.
//!
//! Why a write-ahead file rather than making sled durable per group (which
//! this log did before): that took `Db::flush` — sled hands its buffer to one
//! of its IO threads, which writes it and waits for `sync_file_range` — and
//! then an `fdatasync` of sled's data file, because `sync_file_range`
//! survives a process crash but neither flushes the drive cache nor the file
//! size, so it alone does not survive a power cut. Two device round trips and
//! two thread hand-offs per group, about 0.36 ms of a 0.5 ms append at 2 000
//! conversations/s; the write-ahead entry is one write and one `fdatasync` of
//! a preallocated file (~0.15 ms).
//!
//! sled itself is made durable by a **checkpoint**: `Db::flush` and an
//! `fdatasync` of its data file, at least every `CHECKPOINT_EVERY` while
//! appends come in (and that long after the last one), when the write-ahead
//! file is full (the group that did not fit is then made durable by the
//! checkpoint itself), on open and on close. After a checkpoint the
//! write-ahead file is written over from its start. On open, after the torn
//! tail below is cut, every write-ahead entry that continues the committed
//! head (first position = head + 1, then the next, and so on) is written to
//! sled again — acknowledged groups whose sled writes did not reach the disk
//! — and the log checkpoints before taking appends. Entries at or below the
//! head are in sled already and are skipped; a checkpoint always precedes
//! the rewinding, so none is ever needed that the file no longer holds.
//!
//! If a write, `fdatasync` or checkpoint fails the writer refuses every later
//! append (its in-memory view can no longer be trusted); reopening recovers
//! whatever reached the disk, and an appender that got the error can retry
//! with the same event ids without risk of duplicates.
//!
//! # Torn tail
//!
//! sled recovers, after a crash, a prefix of what was written, and recovers a
//! transaction atomically; `meta/head` is written after the records and
//! index items it covers. The committed head is therefore the commit marker
//! of what sled holds: every acknowledged append is at or below it, or in the
//! write-ahead entries replayed above it (see above). Anything stored above it — records of a half-applied batch, or
//! records written by anything other than a completed commit — is a torn tail.
//! On open, those records are decoded to find the stream runs and id buckets
//! that may mention them; chunks above the head are deleted, the chunk
//! holding the head is cut right after the head's record, and those runs and
//! buckets lose their entries above the head, all in one transaction that is
//! flushed, with a `tracing::warn!` naming the cut range. If a torn record is
//! too damaged to decode, both indexes are scanned for entries above the head
//! instead. Nothing at or below the committed head is ever cut: a missing or
//! damaged head record is acknowledged data and makes `open` fail with
//! [`StoreError::Corrupt`] naming the position.
//!
//! Readers only ever look at positions up to the published head, so they
//! never see an append before it is durable.
//!
//! Caveat inherited from sled 0.34: a tree page larger than 1/4 of a segment
//! (128 KiB by default) is written to a separate blob file that sled does not
//! fsync. A chunk only exceeds 4 KiB when it holds one larger event, and a
//! sled page holds at most 17 items, so this needs several events with
//! payloads well above 4 KiB next to each other; the write-ahead file holds
//! their records until the next checkpoint, but after it, until sled's next
//! periodic full sync (every 500 ms), they survive a process crash and not
//! necessarily a power cut. Index items stay below 3 KiB (`index::RUN_MAX`,
//! `index::BUCKET_MAX`), so their pages never reach that threshold. Keep
//! payloads small (large media belongs in a blob store, referenced by the
//! event).
//!
//! A second caveat, narrower than before the write-ahead file: between
//! checkpoints sled writes without our `fdatasync` (its own flushes use
//! `sync_file_range`), and besides new records it may rewrite older pages
//! while it cleans its segments. A power cut on a drive that loses or
//! reorders cached writes inside that window (at most `CHECKPOINT_EVERY`)
//! could damage such a rewritten page; a process crash cannot. The damage
//! would be reported on open or on read (every record is checksummed), never
//! read as different contents. When sled was synced at every group the window
//! was one group long.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{IVec, Transactional, Tree};
use uuid::Uuid;

use crate::index::{self, stream_key};
use crate::record;
use crate::wal::{self, Wal};
use crate::{
    AppendDone, AppendRequest, AppendResult, EventLog, EventRef, ExpectedVersion,
    MAX_PAYLOAD_BYTES, NewEvent, RecordedEvent, Snapshot, StoreError, Subscription,
    SubscriptionSource, validate_stream_name,
};

pub(crate) const HEAD_KEY: &[u8] = b"head";
/// Key of the layout version in `meta`.
const FORMAT_KEY: &[u8] = b"format";
/// Layout version this code reads and writes: 2 has the packed indexes of
/// [`index`]. (Version 1, one index item per event, was never released.)
const FORMAT: u64 = 2;
const CHECKPOINT_PREFIX: &[u8] = b"checkpoint/";
/// A chunk is closed once it holds this many records...
pub const CHUNK_MAX_RECORDS: u64 = 64;
/// ...or once the next record would take it above this many bytes (a single
/// larger record gets a chunk of its own). Small enough that rewriting the
/// open chunk on every commit stays cheap and a sled page stays well under
/// sled's blob threshold.
pub const CHUNK_MAX_BYTES: usize = 4 * 1024;
/// Upper bound on the events one group commit writes, to bound the latency of
/// the appenders queued behind a burst.
const MAX_GROUP_EVENTS: usize = 16 * 1024;
/// Streams whose version the writer remembers between groups.
const VERSION_CACHE_MAX: usize = 64 * 1024;
/// Key in `meta` of the head up to which the stream runs are in the
/// `streams` tree; the runs above it are [pending](Shared::pending_runs).
pub(crate) const INDEXED_KEY: &[u8] = b"indexed";
/// Pending stream-run positions that make the next commit seal them as a
/// generation to write.
pub(crate) const PENDING_RUNS_MAX: usize = 8 * 1024;
/// Sealed stream-run items a commit writes at least (when that many are
/// left); a commit with more events writes as many items as it has events.
/// Small, because each sled item costs microseconds on the commit path that
/// every queued appender waits for.
pub(crate) const RUN_ITEMS_PER_COMMIT: usize = 16;
/// Page size used by subscriptions while catching up.
const SUBSCRIPTION_PAGE: usize = 1024;
/// The writer checkpoints (sled flushed and `fdatasync`ed, the write-ahead
/// file rewound) at least this often while appends come in, and this long
/// after the last one: it bounds how much only the write-ahead file holds,
/// so how much an open replays and how long sled's own unsynced writes wait
/// for their `fdatasync`.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Counters of the writer thread, to observe group commit at work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Append requests answered (successful or not).
    pub appends: u64,
    /// Events written.
    pub events: u64,
    /// Flushes (fsyncs) done by the writer: one per group that wrote something.
    pub flushes: u64,
    /// The most stream-run items one commit wrote (see the module docs: a
    /// commit writes at most `max(16, its events)` of them).
    pub max_run_items_per_commit: u64,
}

/// State shared by the log handle, its writer thread and its subscriptions.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) db: sled::Db,
    /// sled's data file, opened only to `fdatasync` it after each flush.
    data_file: File,
    pub(crate) events: Tree,
    pub(crate) streams: Tree,
    pub(crate) ids: Tree,
    pub(crate) meta: Tree,
    pub(crate) snapshots: Tree,
    /// Stream runs not written to the `streams` tree yet, by stream: the
    /// positions of each stream's latest versions, from the first version
    /// not in the tree. Why: one run item per stream per commit costs a sled
    /// insert per event when every append goes to another stream (the common
    /// case: many interactions, one or two events each); written by
    /// generations of [`PENDING_RUNS_MAX`] events instead, they cost next to
    /// nothing. They are derived data: after a crash, `open` rebuilds them
    /// from the records above the indexed head.
    pending_runs: RwLock<HashMap<String, PendingRun>>,
    /// Last durable position; readers never look beyond it.
    head: AtomicU64,
    /// Set when the writer has stopped, so subscribers stop waiting.
    closed: AtomicBool,
    /// Subscribers wait on this for the head to move.
    wake_lock: Mutex<()>,
    wake: Condvar,
    appends: AtomicU64,
    events_written: AtomicU64,
    flushes: AtomicU64,
    max_run_items_per_commit: AtomicU64,
    /// Every insert `GroupWrites::in_order` made, in order (tree name, key,
    /// value), for the tests that replay prefixes of a group's writes.
    #[cfg(test)]
    pub(crate) written_in_order: Mutex<Vec<(IVec, IVec, IVec)>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("dir", &self.dir)
            .field("head", &self.head.load(Ordering::Relaxed))
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn backend(op: &'static str) -> impl Fn(sled::Error) -> StoreError {
    move |e| StoreError::Backend {
        op,
        reason: e.to_string(),
    }
}

fn tx_error(op: &'static str, e: TransactionError<()>) -> StoreError {
    StoreError::Backend {
        op,
        reason: match e {
            TransactionError::Abort(()) => "transaction aborted".to_owned(),
            TransactionError::Storage(e) => e.to_string(),
        },
    }
}

fn missing(position: u64, why: impl fmt::Display) -> StoreError {
    StoreError::Corrupt {
        position,
        reason: format!("record missing ({why})"),
    }
}

pub(crate) fn pos_key(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

fn parse_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn chunk_key(key: &[u8], near: u64) -> Result<u64, StoreError> {
    parse_u64(key).ok_or_else(|| StoreError::Corrupt {
        position: near,
        reason: format!("malformed chunk key of {} bytes", key.len()),
    })
}

fn checkpoint_key(name: &str) -> Vec<u8> {
    let mut k = CHECKPOINT_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// Walks the frames of a chunk by their length fields, yielding
/// `(position, frame bytes)` without verifying checksums.
pub(crate) struct Frames<'a> {
    first: u64,
    chunk: &'a [u8],
    offset: usize,
    position: u64,
    failed: bool,
}

pub(crate) fn frames(first: u64, chunk: &[u8]) -> Frames<'_> {
    Frames {
        first,
        chunk,
        offset: 0,
        position: first,
        failed: false,
    }
}

impl Frames<'_> {
    /// Byte offset just after the last frame yielded.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<(u64, &'a [u8]), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.chunk.len() {
            return None;
        }
        let rest = &self.chunk[self.offset..];
        let position = self.position;
        match record::frame_len(rest) {
            Some(n) => {
                self.offset += n;
                self.position += 1;
                Some(Ok((position, &rest[..n])))
            }
            None => {
                self.failed = true;
                Some(Err(StoreError::Corrupt {
                    position,
                    reason: format!(
                        "frame truncated ({} bytes left in the chunk starting at {})",
                        rest.len(),
                        self.first
                    ),
                }))
            }
        }
    }
}

/// After a frame of a chunk failed to decode, names the first damaged record
/// of the chunk: a damaged length field misaligns every later frame, so the
/// failure seen may only be a consequence.
fn first_damage(first: u64, chunk: &[u8], seen: StoreError) -> StoreError {
    for frame in frames(first, chunk) {
        match frame {
            Err(e) => return e,
            Ok((p, bytes)) => {
                if let Err(e) = record::decode(p, bytes) {
                    return e;
                }
            }
        }
    }
    seen
}

impl Shared {
    fn tree(&self, tree: LogTree) -> &Tree {
        match tree {
            LogTree::Events => &self.events,
            LogTree::Streams => &self.streams,
            LogTree::Ids => &self.ids,
            LogTree::Meta => &self.meta,
        }
    }

    fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    fn notify(&self) {
        let _guard = self.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }

    /// The chunk whose first position is the greatest at or below `position`.
    pub(crate) fn chunk_at(&self, position: u64) -> Result<Option<(u64, IVec)>, StoreError> {
        match self
            .events
            .range(..=pos_key(position))
            .next_back()
            .transpose()
            .map_err(backend("read"))?
        {
            None => Ok(None),
            Some((k, v)) => Ok(Some((chunk_key(&k, position)?, v))),
        }
    }

    /// Finds and verifies the record at `position`; a missing record at or
    /// below the head is corruption (the log is gap-free).
    fn with_record<R>(
        &self,
        position: u64,
        f: impl FnOnce(EventRef<'_>) -> R,
    ) -> Result<R, StoreError> {
        let Some((first, chunk)) = self.chunk_at(position)? else {
            return Err(missing(position, "no chunk at or before it"));
        };
        for frame in frames(first, &chunk) {
            let (p, bytes) = frame.map_err(|e| first_damage(first, &chunk, e))?;
            if p == position {
                let ev = record::decode(p, bytes).map_err(|e| first_damage(first, &chunk, e))?;
                return Ok(f(ev));
            }
        }
        Err(missing(
            position,
            format!("chunk starting at {first} ends before it"),
        ))
    }

    /// Visits positions `from..=to` in order, checking that none is missing.
    fn scan(
        &self,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        if from > to {
            return Ok(0);
        }
        let Some((start, _)) = self.chunk_at(from)? else {
            return Err(missing(from, "no chunk at or before it"));
        };
        let mut expected = from;
        for item in self.events.range(pos_key(start)..) {
            let (k, chunk) = item.map_err(backend("read_all"))?;
            let key = chunk_key(&k, expected)?;
            if key != start && key != expected {
                return Err(missing(expected, format!("the next chunk starts at {key}")));
            }
            for frame in frames(key, &chunk) {
                let (p, bytes) = frame.map_err(|e| first_damage(key, &chunk, e))?;
                if p < expected {
                    continue; // before `from`, in the first chunk
                }
                if p > to {
                    return Ok(expected - from);
                }
                let ev = record::decode(p, bytes).map_err(|e| first_damage(key, &chunk, e))?;
                expected += 1;
                if visit(ev).is_break() {
                    return Ok(expected - from);
                }
            }
            if expected > to {
                return Ok(expected - from);
            }
        }
        Err(missing(expected, "the log ends early"))
    }

    fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let head = self.head();
        let from = from_position.max(1);
        if max == 0 || from > head {
            return Ok(Vec::new());
        }
        let to = head.min(from.saturating_add(max as u64 - 1));
        let mut out = Vec::with_capacity((to - from + 1) as usize);
        self.scan(from, to, &mut |ev| {
            out.push(ev.to_recorded());
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Version of `stream` considering only entries at or below `head`.
    fn stream_version_at(&self, stream: &str, head: u64) -> Result<u64, StoreError> {
        let pending = self.pending_runs().get(stream).and_then(|run| {
            let i = run.positions.iter().rposition(|&p| p <= head)?;
            Some((run.first_version + i as u64, run.positions[i]))
        });
        let last = match pending {
            Some(last) => Some(last),
            None => index::last_stream_entry(&self.streams, stream, head)?,
        };
        let Some((version, position)) = last else {
            return Ok(0);
        };
        // Cross-check the entry with its record: a stale entry would silently
        // shift every later version of the stream.
        let (s, v) = self.with_record(position, |ev| (ev.stream == stream, ev.stream_version))?;
        if !s || v != version {
            return Err(StoreError::Corrupt {
                position,
                reason: format!(
                    "stream index says {stream:?} version {version} but the record differs"
                ),
            });
        }
        Ok(version)
    }

    fn pending_runs(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, PendingRun>> {
        self.pending_runs.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes everything written so far durable: sled's flush, then a real
    /// `fdatasync` of its data file (see the module docs for why both).
    fn sync(&self, op: &'static str) -> Result<(), StoreError> {
        self.db.flush().map_err(backend(op))?;
        self.data_file.sync_data().map_err(|e| StoreError::Backend {
            op,
            reason: format!("fdatasync of {}: {e}", self.dir.join("db").display()),
        })
    }
}

/// The embedded, durable [`EventLog`] on a sled database in one directory.
///
/// See the [module docs](self) for the layout, durability, group-commit and
/// torn-tail design. Dropping the log stops the writer
/// thread after it has answered every queued append and joins it;
/// [`SledLog::close`] does the same and reports a final flush error.
/// Subscriptions keep the database open until they are dropped, so drop them
/// before reopening the same directory.
pub struct SledLog {
    pub(crate) shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
}

impl fmt::Debug for SledLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledLog")
            .field("dir", &self.shared.dir)
            .field("head", &self.shared.head())
            .finish_non_exhaustive()
    }
}

/// What an appender hands the writer: valid requests to apply in order, and
/// where to send their answers (one per request, in the same order).
struct Job {
    requests: Vec<AppendRequest>,
    done: AppendDone,
}

impl Job {
    fn n_events(&self) -> usize {
        self.requests.iter().map(|r| r.events.len()).sum()
    }
}

/// Memory sled may keep of the log's pages when opened with [`SledLog::open`]
/// (sled's own default): the engine re-reads recent chunks, id buckets and
/// stream runs on every append and subscription.
pub(crate) const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// Memory for a log opened to be read once from end to end (replay, `log
/// tail`): every chunk is read once, so a cache only costs. With sled's
/// default a 1 M-conversation replay held 2.26 GB, with this 1.68 GB.
pub const SCAN_CACHE_BYTES: u64 = 64 << 20;

/// How long [`SledLog::open`] waits for the file lock of a log this process just closed.
const RELOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens sled, waiting briefly while the lock is held: sled releases its file lock from a
/// background thread after the last handle is dropped, so a log closed by this process and
/// opened again at once can find it still held. A lock held longer (another process) is
/// reported.
pub(crate) fn open_db(dir: &Path, cache_bytes: u64) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + RELOCK_WAIT;
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
        {
            // sled words the lock failure, with no kind of its own (`ErrorKind::Other`).
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

impl SledLog {
    /// Opens (creating if needed) the log stored in `dir`, cutting any torn
    /// tail, and starts its writer thread.
    pub fn open(dir: &Path) -> Result<SledLog, StoreError> {
        SledLog::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`SledLog::open`], with at most `cache_bytes` of the log's pages kept
    /// in memory (see [`SCAN_CACHE_BYTES`]).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<SledLog, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            dir: dir.to_path_buf(),
            reason,
        };
        let db = open_db(dir, cache_bytes).map_err(|e| open_err(e.to_string()))?;
        let data_path = dir.join("db");
        let data_file = File::open(&data_path)
            .map_err(|e| open_err(format!("cannot open {}: {e}", data_path.display())))?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| open_err(e.to_string()));
        let shared = Shared {
            dir: dir.to_path_buf(),
            events: tree("events")?,
            streams: tree("streams")?,
            ids: tree("ids")?,
            meta: tree("meta")?,
            snapshots: tree("snapshots")?,
            pending_runs: RwLock::new(HashMap::new()),
            db,
            data_file,
            head: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            wake_lock: Mutex::new(()),
            wake: Condvar::new(),
            appends: AtomicU64::new(0),
            events_written: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            max_run_items_per_commit: AtomicU64::new(0),
            #[cfg(test)]
            written_in_order: Mutex::new(Vec::new()),
        };
        check_format(&shared).map_err(open_err)?;
        let (head, tail) = recover(&shared)?;
        let pending_count = rebuild_pending_runs(&shared, head)?;
        shared.head.store(head, Ordering::Release);
        let (wal, entries) = Wal::open(dir)?;
        let shared = Arc::new(shared);
        let (tx, rx) = mpsc::channel();
        let indexer = IndexerThread::start(Indexer {
            shared: Arc::clone(&shared),
            tail,
            pending_count,
            sealed: None,
        })
        .map_err(|e| open_err(format!("cannot start the indexer thread: {e}")))?;
        let mut writer = Writer {
            max_id: index::max_id(&shared.ids)?,
            shared: Arc::clone(&shared),
            indexer,
            versions: HashMap::new(),
            failed: None,
            wal,
            last_checkpoint: Instant::now(),
            unsynced: false,
        };
        writer.replay(&entries)?;
        // Whatever sled holds now becomes durable before the write-ahead
        // file is written over from its start.
        writer.checkpoint("open")?;
        let writer = std::thread::Builder::new()
            .name("omni-store-writer".to_owned())
            .spawn(move || writer.run(&rx))
            .map_err(|e| open_err(format!("cannot start the writer thread: {e}")))?;
        tracing::debug!(dir = %dir.display(), head, "event log opened");
        Ok(SledLog {
            shared,
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    /// The directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Writer counters (appends, events, flushes) since open.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            appends: self.shared.appends.load(Ordering::Relaxed),
            events: self.shared.events_written.load(Ordering::Relaxed),
            flushes: self.shared.flushes.load(Ordering::Relaxed),
            max_run_items_per_commit: self.shared.max_run_items_per_commit.load(Ordering::Relaxed),
        }
    }

    /// Stops the writer (after it answered every queued append), joins it and
    /// flushes, reporting a flush failure instead of only logging it.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown();
        self.shared.sync("close")
    }

    fn shutdown(&mut self) {
        drop(self.tx.take());
        if self.writer.take().is_some_and(|w| w.join().is_err()) {
            tracing::error!(dir = %self.shared.dir.display(), "event log writer thread panicked");
        }
        self.shared.closed.store(true, Ordering::Release);
        self.shared.notify();
    }
}

impl Drop for SledLog {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.shutdown();
            if let Err(e) = self.shared.sync("close") {
                tracing::error!(dir = %self.shared.dir.display(), error = %e, "final flush failed");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Recovery
// ---------------------------------------------------------------------------

/// Refuses a directory written with another layout (and marks a new one).
fn check_format(s: &Shared) -> Result<(), String> {
    match s.meta.get(FORMAT_KEY).map_err(|e| e.to_string())? {
        Some(v) if parse_u64(&v) == Some(FORMAT) => Ok(()),
        Some(v) => Err(format!(
            "unknown layout version {:?} (this build reads version {FORMAT})",
            parse_u64(&v)
        )),
        None if s.events.is_empty()
            && s.meta.get(HEAD_KEY).map_err(|e| e.to_string())?.is_none() =>
        {
            // Made durable by the first commit's flush; until then the log is
            // empty and recognised as new again.
            s.meta
                .insert(FORMAT_KEY, &pos_key(FORMAT)[..])
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        None => Err(
            "written by an unreleased development layout without a version; recreate it".to_owned(),
        ),
    }
}

/// What recovery found above the committed head.
#[derive(Default)]
struct Torn {
    remove_chunks: Vec<IVec>,
    /// The chunk holding the head, cut right after the head's record.
    rewrite: Option<(u64, Vec<u8>)>,
    /// `(stream, version)` and id of every torn record that decoded.
    stream_versions: Vec<(String, u64)>,
    ids: Vec<Uuid>,
    records: u64,
    undecodable: u64,
    last: u64,
}

impl Torn {
    /// Notes the index entries of torn frames (and whether some could not be
    /// decoded).
    fn collect<'a>(&mut self, frames: impl Iterator<Item = Result<(u64, &'a [u8]), StoreError>>) {
        for frame in frames {
            match frame.and_then(|(p, bytes)| record::decode(p, bytes)) {
                Ok(ev) => {
                    self.records += 1;
                    self.last = self.last.max(ev.position);
                    self.stream_versions
                        .push((ev.stream.to_owned(), ev.stream_version));
                    self.ids.push(ev.id);
                }
                Err(_) => {
                    self.undecodable += 1;
                    return; // frame boundaries are lost from here on
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.remove_chunks.is_empty() && self.rewrite.is_none()
    }
}

/// Finds the committed head, cuts everything above it (see module docs) and
/// returns the head and the open chunk for the writer.
fn recover(s: &Shared) -> Result<(u64, Option<Tail>), StoreError> {
    let op = "open";
    let committed = match s.meta.get(HEAD_KEY).map_err(backend(op))? {
        None => 0,
        Some(v) => parse_u64(&v).ok_or_else(|| StoreError::Corrupt {
            position: 0,
            reason: format!("committed head marker has {} bytes", v.len()),
        })?,
    };

    let mut torn = Torn::default();
    let start = match s.chunk_at(committed + 1)? {
        Some((first, _)) => pos_key(first),
        None => pos_key(committed + 1),
    };
    for item in s.events.range(start..) {
        let (k, chunk) = item.map_err(backend(op))?;
        match parse_u64(&k) {
            Some(first) if first <= committed && first > 0 => {
                // The chunk holding the head: keep it up to the head's record.
                let mut walk = frames(first, &chunk);
                let mut end = None;
                for frame in walk.by_ref() {
                    match frame {
                        Ok((p, _)) if p == committed => {
                            end = Some(walk.offset());
                            break;
                        }
                        Ok(_) => {}
                        Err(_) => break, // acknowledged data damaged: checked below
                    }
                }
                if let Some(end) = end.filter(|&end| end < chunk.len()) {
                    torn.collect(walk);
                    torn.last = torn.last.max(committed + 1);
                    if torn.records == 0 && torn.undecodable == 0 {
                        torn.undecodable += 1; // trailing bytes, not even a frame
                    }
                    torn.rewrite = Some((first, chunk[..end].to_vec()));
                }
            }
            Some(first) if first > committed => {
                torn.collect(frames(first, &chunk));
                torn.last = torn.last.max(first);
                torn.remove_chunks.push(k);
            }
            _ => {
                torn.undecodable += 1;
                torn.remove_chunks.push(k);
            }
        }
    }
    if !torn.is_empty() {
        cut_torn_tail(s, committed, &torn)?;
    }

    // The head record is acknowledged data: it must be present and intact.
    if committed > 0 {
        s.with_record(committed, |_| ()).map_err(|e| match e {
            StoreError::Corrupt { position, reason } => StoreError::Corrupt {
                position,
                reason: format!("{reason} (the committed head is {committed})"),
            },
            other => other,
        })?;
    }
    let tail = match s.events.last().map_err(backend(op))? {
        None => None,
        Some((k, chunk)) => {
            let first = chunk_key(&k, committed)?;
            let mut count = 0;
            for frame in frames(first, &chunk) {
                frame?;
                count += 1;
            }
            Some(Tail {
                first,
                bytes: chunk.to_vec(),
                count,
            })
        }
    };
    Ok((committed, tail))
}

/// Rebuilds the stream runs that were pending when the log stopped, from
/// the records above the indexed head (after a crash at most two generations
/// of [`PENDING_RUNS_MAX`] and a group, none after a clean close); returns
/// their positions.
/// A damaged record there fails the open, naming its position, like a
/// damaged head does: the stream versions after it would be unknown.
fn rebuild_pending_runs(s: &Shared, head: u64) -> Result<usize, StoreError> {
    let indexed = match s.meta.get(INDEXED_KEY).map_err(backend("open"))? {
        None => 0,
        Some(v) => parse_u64(&v).ok_or_else(|| StoreError::Corrupt {
            position: 0,
            reason: format!("indexed head marker has {} bytes", v.len()),
        })?,
    };
    if indexed > head {
        return Err(StoreError::Corrupt {
            position: head,
            reason: format!(
                "the stream index reaches position {indexed}, beyond the committed head"
            ),
        });
    }
    let mut pending: HashMap<String, PendingRun> = HashMap::new();
    let mut gap = None;
    s.scan(indexed + 1, head, &mut |ev| {
        match pending.get_mut(ev.stream) {
            Some(run) if run.first_version + run.positions.len() as u64 == ev.stream_version => {
                run.positions.push(ev.position);
            }
            Some(_) => {
                gap = Some(ev.position);
                return ControlFlow::Break(());
            }
            None => {
                pending.insert(
                    ev.stream.to_owned(),
                    PendingRun {
                        first_version: ev.stream_version,
                        positions: vec![ev.position],
                    },
                );
            }
        }
        ControlFlow::Continue(())
    })?;
    if let Some(position) = gap {
        return Err(StoreError::Corrupt {
            position,
            reason: "the record skips a version of its stream".to_owned(),
        });
    }
    let count = pending.values().map(|r| r.positions.len()).sum();
    *s.pending_runs.write().unwrap_or_else(|e| e.into_inner()) = pending;
    Ok(count)
}

fn cut_torn_tail(s: &Shared, committed: u64, torn: &Torn) -> Result<(), StoreError> {
    let op = "open (cutting torn tail)";
    // The runs and buckets that may hold entries of torn records: found from
    // the records when they decode, by scanning both indexes when not.
    let mut runs = BTreeSet::new();
    let mut buckets = BTreeSet::new();
    if torn.undecodable > 0 {
        for (tree, keys, above) in [
            (
                &s.streams,
                &mut runs,
                index::run_above as fn(&[u8], u64) -> bool,
            ),
            (&s.ids, &mut buckets, index::bucket_above),
        ] {
            for item in tree.iter() {
                let (k, v) = item.map_err(backend(op))?;
                if above(&v, committed) {
                    keys.insert(k);
                }
            }
        }
    }
    for (stream, version) in &torn.stream_versions {
        runs.extend(index::run_holding(&s.streams, stream, *version)?);
    }
    for id in &torn.ids {
        buckets.extend(index::bucket_holding(&s.ids, id)?);
    }
    tracing::warn!(
        dir = %s.dir.display(),
        committed_head = committed,
        torn_from = committed + 1,
        torn_to = torn.last,
        records = torn.records,
        undecodable = torn.undecodable,
        "cutting torn tail of the event log: records above the committed head were never acknowledged"
    );
    (&s.events, &s.streams, &s.ids)
        .transaction(|(events, streams, ids)| {
            for k in &torn.remove_chunks {
                events.remove(k)?;
            }
            if let Some((first, bytes)) = &torn.rewrite {
                events.insert(&pos_key(*first)[..], bytes.as_slice())?;
            }
            // Only entries pointing above the head go: if a torn record
            // repeats a committed key, the log was inconsistent already and
            // keeping the committed entry is the safe choice.
            for (tree, keys, cut) in [
                (
                    streams,
                    &runs,
                    index::cut_run as fn(&[u8], u64) -> Option<Vec<u8>>,
                ),
                (ids, &buckets, index::cut_bucket),
            ] {
                for k in keys {
                    let Some(v) = tree.get(k)? else { continue };
                    match cut(&v, committed) {
                        Some(kept) if kept.len() == v.len() => {}
                        Some(kept) => {
                            tree.insert(k, kept)?;
                        }
                        None => {
                            tree.remove(k)?;
                        }
                    }
                }
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        })
        .map_err(|e| tx_error(op, e))?;
    s.sync(op)
}

// ---------------------------------------------------------------------------
// Writer thread
// ---------------------------------------------------------------------------

/// The open (last) chunk, mirrored in memory so each commit can extend it.
#[derive(Clone)]
struct Tail {
    first: u64,
    bytes: Vec<u8>,
    count: u64,
}

/// Consecutive versions of one stream, from `first_version`, whose positions
/// are not in the `streams` tree yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingRun {
    first_version: u64,
    positions: Vec<u64>,
}

/// A generation of stream runs sealed for writing: the leading positions of
/// some [`Shared::pending_runs`] that the following commits write to the
/// tree, a bounded share each.
struct Sealed {
    /// The head the generation reaches: `meta/indexed` once it is written.
    head: u64,
    /// Streams left to write, with how many of their leading pending
    /// positions belong to the generation (the rest came later).
    left: Vec<(String, usize)>,
    /// Positions in `left`.
    positions: usize,
}

/// The single writer: decides, writes and flushes groups of appends.
struct Writer {
    shared: Arc<Shared>,
    /// Writes each group to sled (see [`Indexer`]).
    indexer: IndexerThread,
    /// The greatest event id stored (see [`GroupPlan::max_id`]).
    max_id: Option<Uuid>,
    /// Versions of recently used streams (see [`Writer::cache_versions`]).
    versions: HashMap<String, u64>,
    /// Set after a failed write/flush: every later append is refused.
    failed: Option<String>,
    /// Where each group is made durable.
    wal: Wal,
    last_checkpoint: Instant,
    /// Whether sled holds groups written since the last checkpoint (durable
    /// only in the write-ahead file).
    unsynced: bool,
}

impl Writer {
    fn run(mut self, rx: &mpsc::Receiver<Job>) {
        loop {
            let first = match rx.recv_timeout(CHECKPOINT_EVERY) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.checkpoint_if_due();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut n_events = first.n_events();
            let mut jobs = vec![first];
            while n_events < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(job) => {
                        n_events += job.n_events();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            // Jobs are taken in arrival order and their requests kept in
            // order, so positions follow the order of every `append_many`.
            let requests: Vec<&AppendRequest> = jobs.iter().flat_map(|j| &j.requests).collect();
            let mut outcomes = Vec::with_capacity(requests.len());
            for group in split_groups(&requests) {
                outcomes.extend(self.commit_or_refuse(group));
            }
            self.shared
                .appends
                .fetch_add(requests.len() as u64, Ordering::Relaxed);
            drop(requests);
            let mut outcomes = outcomes.into_iter();
            for job in jobs {
                let answer = outcomes.by_ref().take(job.requests.len()).collect();
                (job.done)(answer);
            }
            self.checkpoint_if_due();
        }
        self.indexer.close(self.failed.is_none());
        self.shared.closed.store(true, Ordering::Release);
        self.shared.notify();
    }

    /// Commits one group, or refuses it whole once a write has failed.
    fn commit_or_refuse(
        &mut self,
        group: &[&AppendRequest],
    ) -> Vec<Result<AppendResult, StoreError>> {
        match &self.failed {
            Some(reason) => group
                .iter()
                .map(|_| {
                    Err(StoreError::Backend {
                        op: "append",
                        reason: format!(
                            "log refuses appends after an earlier write failure: {reason}"
                        ),
                    })
                })
                .collect(),
            None => self.commit_group(group),
        }
    }

    /// Decides, writes and flushes one group; returns the answer of each
    /// request.
    fn commit_group(&mut self, group: &[&AppendRequest]) -> Vec<Result<AppendResult, StoreError>> {
        let shared = Arc::clone(&self.shared);
        let head = shared.head();
        let mut plan = GroupPlan {
            shared: &shared,
            head,
            max_id: self.max_id,
            cached_versions: &self.versions,
            next_position: head + 1,
            versions: HashMap::new(),
            pending_ids: HashMap::new(),
            records: Vec::new(),
        };
        let mut outcomes: Vec<Result<AppendResult, StoreError>> =
            group.iter().map(|req| plan.plan(req)).collect();
        let GroupPlan {
            versions, records, ..
        } = plan;
        if records.is_empty() {
            self.cache_versions(versions);
            return outcomes;
        }
        let n_records = records.len() as u64;
        let new_head = head + n_records;
        let max_id = records.iter().map(|r| r.id).max();
        match self.store_and_make_durable(records, new_head) {
            Ok(()) => {
                self.max_id = self.max_id.max(max_id);
                self.cache_versions(versions);
                shared.flushes.fetch_add(1, Ordering::Relaxed);
                shared
                    .events_written
                    .fetch_add(n_records, Ordering::Relaxed);
                shared.head.store(new_head, Ordering::Release);
                shared.notify();
            }
            Err(e) => {
                tracing::error!(dir = %shared.dir.display(), error = %e, "event log write failed; refusing further appends");
                self.failed = Some(e.to_string());
                for o in &mut outcomes {
                    // Retries of already-durable appends and refused appends
                    // keep their answer; everything that needed this write
                    // fails.
                    if o.as_ref().is_ok_and(|r| r.last_position > head) {
                        *o = Err(e.clone());
                    }
                }
            }
        }
        outcomes
    }

    /// Remembers stream versions known after a successful group, so the next
    /// groups decide without reading the index. The writer is the only one
    /// writing, so the cache cannot go stale; it is bounded by forgetting
    /// everything when full (cold streams are read from the index again).
    fn cache_versions(&mut self, versions: HashMap<String, u64>) {
        if self.versions.len() + versions.len() > VERSION_CACHE_MAX {
            self.versions.clear();
        }
        self.versions.extend(versions);
    }

    /// Has the indexer write `records` (positions up to `new_head`) to sled
    /// while their entry goes to the write-ahead file, and waits for both;
    /// when the file is full, makes the group durable by a checkpoint once
    /// sled holds it.
    fn store_and_make_durable(
        &mut self,
        records: Vec<Planned>,
        new_head: u64,
    ) -> Result<(), StoreError> {
        self.unsynced = true;
        let fits = self.wal.prepare(
            records[0].position,
            records.iter().map(|r| r.frame.as_slice()),
        );
        self.indexer.send(records, new_head)?;
        if fits {
            let synced = self.wal.write_prepared();
            // Waited for even when the write failed: the indexer must be idle
            // before anything else happens.
            let stored = self.indexer.wait();
            stored.and(synced)
        } else {
            self.indexer.wait()?;
            self.checkpoint("append (checkpoint)")
        }
    }

    /// Makes everything sled holds durable (its flush and an `fdatasync`),
    /// after which the write-ahead file may be written over.
    fn checkpoint(&mut self, op: &'static str) -> Result<(), StoreError> {
        self.shared.sync(op)?;
        self.wal.rewind();
        self.last_checkpoint = Instant::now();
        self.unsynced = false;
        Ok(())
    }

    /// Checkpoints when [`CHECKPOINT_EVERY`] has passed since the last one
    /// and something was written since. A failure stops the writer like a
    /// failed append: sled's state on disk is unknown.
    fn checkpoint_if_due(&mut self) {
        if !self.unsynced
            || self.failed.is_some()
            || self.last_checkpoint.elapsed() < CHECKPOINT_EVERY
        {
            return;
        }
        if let Err(e) = self.checkpoint("checkpoint") {
            tracing::error!(dir = %self.shared.dir.display(), error = %e, "event log checkpoint failed; refusing further appends");
            self.failed = Some(e.to_string());
        }
    }

    /// Writes the groups of the write-ahead file that continue sled's
    /// committed head (acknowledged appends whose sled writes did not reach
    /// the disk), in order; entries at or below the head are in sled already.
    ///
    /// One pass in file order: since the last checkpoint the file holds
    /// entries in increasing positions, and whatever follows them is left
    /// from before that checkpoint, so at or below the head.
    fn replay(&mut self, entries: &[wal::Entry]) -> Result<(), StoreError> {
        let from = self.shared.head();
        for entry in entries {
            if entry.first_position != self.shared.head() + 1 {
                continue;
            }
            let mut records = Vec::with_capacity(entry.count as usize);
            for frame in frames(entry.first_position, &entry.frames) {
                let (position, bytes) = frame?;
                let ev = record::decode(position, bytes)?;
                records.push(Planned {
                    position,
                    frame: bytes.to_vec(),
                    stream: ev.stream.to_owned(),
                    version: ev.stream_version,
                    id: ev.id,
                });
            }
            let new_head = entry.last_position();
            if records.len() != entry.count as usize {
                return Err(StoreError::Corrupt {
                    position: entry.first_position,
                    reason: format!(
                        "the write-ahead entry holds {} records instead of {}",
                        records.len(),
                        entry.count
                    ),
                });
            }
            self.max_id = records.iter().map(|r| r.id).chain(self.max_id).max();
            self.indexer.store(records, new_head)?;
            self.shared.head.store(new_head, Ordering::Release);
        }
        let head = self.shared.head();
        if head > from {
            tracing::info!(dir = %self.shared.dir.display(), from = from + 1, to = head, "replayed the write-ahead file");
        }
        Ok(())
    }
}

/// Writes each group's records and index items to sled, on a thread of its
/// own (`omni-store-indexer`), while the writer makes the same group durable
/// in the write-ahead file.
///
/// Why a thread: under load a group's sled writes take about a third of its
/// `fdatasync` (70 µs against 220 µs at 2 000 conversations/s), and every
/// appender of the group waited for both, one after the other. The writer
/// hands the records over before its write and flush start, so the
/// indexer's wake-up is hidden behind them, and it waits for the indexer
/// only after its own `fdatasync`; the head moves, and appenders hear back,
/// once both are done. The next group is planned only then, so it reads an
/// index that holds every earlier group.
///
/// Crash safety is unchanged: sled's items were already written before the
/// group was durable, and `open` repairs any prefix of them (see
/// [`GroupWrites::in_order`]); this thread is the only one that writes them.
struct Indexer {
    shared: Arc<Shared>,
    tail: Option<Tail>,
    /// Positions in [`Shared::pending_runs`].
    pending_count: usize,
    /// The generation of runs being written to the tree, if any.
    sealed: Option<Sealed>,
}

/// What the writer asks of the indexer thread.
enum IndexJob {
    /// Write these records (positions up to the new head) and answer.
    Store(Vec<Planned>, u64),
    /// Stop, first writing every pending stream run when asked to (on a
    /// clean close, so that the next open has nothing to rebuild).
    Close { write_pending_runs: bool },
}

/// The writer's end of the indexer thread.
struct IndexerThread {
    jobs: mpsc::SyncSender<IndexJob>,
    stored: mpsc::Receiver<Result<(), StoreError>>,
    thread: std::thread::JoinHandle<()>,
}

impl IndexerThread {
    fn start(mut indexer: Indexer) -> std::io::Result<IndexerThread> {
        let (jobs, job_rx) = mpsc::sync_channel::<IndexJob>(1);
        let (stored_tx, stored) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("omni-store-indexer".to_owned())
            .spawn(move || {
                while let Ok(job) = job_rx.recv() {
                    match job {
                        IndexJob::Store(records, new_head) => {
                            if stored_tx.send(indexer.store(&records, new_head)).is_err() {
                                return;
                            }
                        }
                        IndexJob::Close { write_pending_runs } => {
                            if write_pending_runs && indexer.pending_count > 0 {
                                if let Err(e) = indexer.write_pending_runs() {
                                    // Harmless: the next open rebuilds them from the records.
                                    tracing::warn!(dir = %indexer.shared.dir.display(), error = %e, "could not write the pending stream index on close");
                                }
                            }
                            return;
                        }
                    }
                }
            })?;
        Ok(IndexerThread {
            jobs,
            stored,
            thread,
        })
    }

    /// Hands `records` over; [`IndexerThread::wait`] takes the outcome.
    fn send(&self, records: Vec<Planned>, new_head: u64) -> Result<(), StoreError> {
        self.jobs
            .send(IndexJob::Store(records, new_head))
            .map_err(|_| indexer_stopped())
    }

    fn wait(&self) -> Result<(), StoreError> {
        self.stored
            .recv()
            .unwrap_or_else(|_| Err(indexer_stopped()))
    }

    fn store(&self, records: Vec<Planned>, new_head: u64) -> Result<(), StoreError> {
        self.send(records, new_head)?;
        self.wait()
    }

    /// Stops the thread and waits for it.
    fn close(self, write_pending_runs: bool) {
        let _ = self.jobs.send(IndexJob::Close { write_pending_runs });
        if self.thread.join().is_err() {
            tracing::error!("event log indexer thread panicked");
        }
    }
}

fn indexer_stopped() -> StoreError {
    StoreError::Backend {
        op: "append",
        reason: "the log's indexer thread stopped".to_owned(),
    }
}

impl Indexer {
    /// Writes `records` (positions up to `new_head`) with their index items
    /// and the new committed head (see [`GroupWrites`]), not flushed (see
    /// [`Writer::store_and_make_durable`]); keeps the open chunk and the
    /// pending stream runs up to date.
    fn store(&mut self, records: &[Planned], new_head: u64) -> Result<(), StoreError> {
        let shared = Arc::clone(&self.shared);
        // Pack the frames into the open chunk and new chunks.
        let mut tail = self.tail.clone();
        let mut chunks: Vec<(u64, IVec)> = Vec::new();
        let mut tail_dirty = false;
        for r in records {
            match tail.as_mut() {
                Some(t)
                    if t.count < CHUNK_MAX_RECORDS
                        && t.bytes.len() + r.frame.len() <= CHUNK_MAX_BYTES =>
                {
                    t.bytes.extend_from_slice(&r.frame);
                    t.count += 1;
                }
                _ => {
                    if let Some(t) = tail.take().filter(|_| tail_dirty) {
                        chunks.push((t.first, IVec::from(t.bytes)));
                    }
                    tail = Some(Tail {
                        first: r.position,
                        bytes: r.frame.clone(),
                        count: 1,
                    });
                }
            }
            tail_dirty = true;
        }
        if let Some(t) = &tail {
            chunks.push((t.first, IVec::from(t.bytes.as_slice())));
        }

        // One run per stream: its versions in this group are consecutive.
        let mut runs: HashMap<&str, (u64, Vec<u64>)> = HashMap::new();
        for r in records {
            runs.entry(r.stream.as_str())
                .or_insert_with(|| (r.version, Vec::new()))
                .1
                .push(r.position);
        }
        // The runs stay pending until a generation is full; then it is
        // sealed, and this commit and the next write a bounded share each.
        if self.sealed.is_none() && self.pending_count >= PENDING_RUNS_MAX {
            self.sealed = Some(self.seal());
        }
        let share = self.sealed_share(RUN_ITEMS_PER_COMMIT.max(records.len()));
        let mut new_ids: Vec<(Uuid, u64)> = records.iter().map(|r| (r.id, r.position)).collect();
        let buckets = index::add_ids(&shared.ids, &mut new_ids)?;

        let writes = GroupWrites {
            chunks: &chunks,
            runs: &share.items,
            indexed: share.completes,
            buckets: &buckets,
            head: new_head,
        };
        if buckets.moves_entries {
            writes.in_one_transaction(&shared)?;
        } else {
            writes.in_order(&shared)?;
        }
        self.tail = tail;
        // Before the head moves (after the flush): a reader that sees the new
        // head finds every position up to it, in the tree or pending.
        let mut pending = shared
            .pending_runs
            .write()
            .unwrap_or_else(|e| e.into_inner());
        self.trim_written(&mut pending, share);
        for (stream, (first_version, positions)) in runs {
            pending
                .entry(stream.to_owned())
                .or_insert_with(|| PendingRun {
                    first_version,
                    positions: Vec::new(),
                })
                .positions
                .extend(positions);
        }
        self.pending_count += records.len();
        Ok(())
    }

    /// Seals every pending run as the generation to write next.
    fn seal(&self) -> Sealed {
        let left: Vec<(String, usize)> = self
            .shared
            .pending_runs()
            .iter()
            .map(|(stream, run)| (stream.clone(), run.positions.len()))
            .collect();
        Sealed {
            head: self.shared.head(),
            positions: left.iter().map(|(_, n)| n).sum(),
            left,
        }
    }

    /// The next `budget` items of the sealed generation, `index::RUN_MAX`
    /// positions each, taken from the end of its `left` list; nothing when
    /// no generation is sealed.
    fn sealed_share(&self, budget: usize) -> SealedShare {
        let mut share = SealedShare::default();
        let Some(sealed) = &self.sealed else {
            return share;
        };
        let pending = self.shared.pending_runs();
        let mut written = 0;
        for (stream, n) in sealed.left.iter().rev() {
            if share.items.len() == budget {
                break;
            }
            let Some(run) = pending.get(stream) else {
                continue; // cannot happen: sealed runs leave only once written
            };
            let mut taken = 0;
            for piece in run.positions[..*n].chunks(index::RUN_MAX) {
                if share.items.len() == budget {
                    break;
                }
                let version = run.first_version + taken as u64;
                share
                    .items
                    .push((stream_key(stream, version), index::encode_run(piece)));
                taken += piece.len();
            }
            share.trims.push(taken);
            written += taken;
        }
        share.completes = (written == sealed.positions).then_some(sealed.head);
        share
    }

    /// After the commit holding `share`: the written positions leave the
    /// pending runs and the sealed generation, which ends with its last.
    fn trim_written(&mut self, pending: &mut HashMap<String, PendingRun>, share: SealedShare) {
        self.shared
            .max_run_items_per_commit
            .fetch_max(share.items.len() as u64, Ordering::Relaxed);
        let Some(sealed) = self.sealed.as_mut() else {
            return;
        };
        for taken in share.trims {
            let Some((stream, n)) = sealed.left.last_mut() else {
                break;
            };
            if let Some(run) = pending.get_mut(stream.as_str()) {
                run.positions.drain(..taken);
                run.first_version += taken as u64;
                if run.positions.is_empty() {
                    pending.remove(stream.as_str());
                }
            }
            *n -= taken;
            if *n == 0 {
                sealed.left.pop();
            }
            sealed.positions -= taken;
            self.pending_count -= taken;
        }
        if share.completes.is_some() {
            self.sealed = None;
        }
    }

    /// Writes every pending stream run (on close, so that the next open has
    /// nothing to rebuild); the log's close flushes once this thread and the
    /// writer have stopped.
    fn write_pending_runs(&mut self) -> Result<(), StoreError> {
        let shared = Arc::clone(&self.shared);
        let mut pending = shared
            .pending_runs
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let items = run_items_of(
            pending
                .iter()
                .map(|(s, run)| (s.as_str(), run.first_version, run.positions.as_slice())),
        );
        let indexed = shared.head();
        (&shared.streams, &shared.meta)
            .transaction(|(streams, meta)| {
                for (key, value) in &items {
                    streams.insert(key.as_slice(), value.as_slice())?;
                }
                meta.insert(INDEXED_KEY, &pos_key(indexed)[..])?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| tx_error("close", e))?;
        pending.clear();
        self.pending_count = 0;
        self.sealed = None;
        Ok(())
    }
}

/// The sled items one group writes.
struct GroupWrites<'a> {
    /// The open chunk and new chunks, by first position.
    chunks: &'a [(u64, IVec)],
    /// Items of the sealed generation's runs.
    runs: &'a [(Vec<u8>, Vec<u8>)],
    /// `meta/indexed`, when `runs` completes the generation.
    indexed: Option<u64>,
    buckets: &'a index::BucketWrites,
    /// The new committed head, `meta/head`.
    head: u64,
}

impl GroupWrites<'_> {
    /// Writes the items one by one, the head last.
    ///
    /// Why not a sled transaction: each one rolls sled's IO buffer twice,
    /// which hands a write to sled's thread pool and wakes all seven of its
    /// waiting threads, about a fifth of both cores with 64 appenders. Plain
    /// inserts fill the buffer, which sled writes when full or flushed.
    ///
    /// Why this is still crash safe: sled recovers a prefix of the writes
    /// in the order the indexer thread (the only one writing them) made
    /// them, and every prefix of these is one `open` repairs. The head comes
    /// last, so a recovered head has all its records and index entries
    /// below it. What a group wrote
    /// before its head is a torn tail: chunks that only add records above
    /// the head, runs of a sealed generation (positions below the head,
    /// written again by the generation's next commit or rebuilt on open),
    /// and id buckets that keep every entry their key held
    /// ([`index::BucketWrites::moves_entries`] is false) or are new keys
    /// above every stored id, whose entries above the head `open` cuts.
    fn in_order(&self, shared: &Shared) -> Result<(), StoreError> {
        for (tree, key, value) in self.ordered() {
            let tree = shared.tree(tree);
            #[cfg(test)]
            shared
                .written_in_order
                .lock()
                .unwrap()
                .push((tree.name(), key.clone(), value.clone()));
            tree.insert(key, value).map_err(backend("append"))?;
        }
        Ok(())
    }

    /// The inserts of [`GroupWrites::in_order`], in their order.
    fn ordered(&self) -> impl Iterator<Item = (LogTree, IVec, IVec)> + '_ {
        let chunks = self
            .chunks
            .iter()
            .map(|(first, bytes)| (LogTree::Events, IVec::from(&pos_key(*first)), bytes.clone()));
        let runs = self.runs.iter().map(|(key, value)| {
            (
                LogTree::Streams,
                IVec::from(key.as_slice()),
                IVec::from(value.as_slice()),
            )
        });
        let indexed = self.indexed.map(|indexed| {
            (
                LogTree::Meta,
                IVec::from(INDEXED_KEY),
                IVec::from(&pos_key(indexed)),
            )
        });
        let ids = self
            .buckets
            .puts
            .iter()
            .map(|(key, value)| (LogTree::Ids, IVec::from(key), IVec::from(value.as_slice())));
        let head = (
            LogTree::Meta,
            IVec::from(HEAD_KEY),
            IVec::from(&pos_key(self.head)),
        );
        chunks.chain(runs).chain(indexed).chain(ids).chain([head])
    }

    /// Writes everything in one transaction across the four trees, for the
    /// groups that move stored id entries to another bucket: a prefix of
    /// those writes could lose an acknowledged id from the index. The
    /// removed bucket keys go first: a later piece of a split may take one
    /// over.
    fn in_one_transaction(&self, shared: &Shared) -> Result<(), StoreError> {
        (&shared.events, &shared.streams, &shared.ids, &shared.meta)
            .transaction(|(events, streams, ids, meta)| {
                for key in &self.buckets.removes {
                    ids.remove(key)?;
                }
                for (tree, key, value) in self.ordered() {
                    let tree = match tree {
                        LogTree::Events => events,
                        LogTree::Streams => streams,
                        LogTree::Ids => ids,
                        LogTree::Meta => meta,
                    };
                    tree.insert(key, value)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| tx_error("append", e))
    }
}

/// The trees a group commit writes.
#[derive(Debug, Clone, Copy)]
enum LogTree {
    Events,
    Streams,
    Ids,
    Meta,
}

/// What one commit writes of the sealed generation.
#[derive(Default)]
struct SealedShare {
    /// `streams` items to insert.
    items: Vec<(Vec<u8>, Vec<u8>)>,
    /// Positions written of each stream, from the end of [`Sealed::left`].
    trims: Vec<usize>,
    /// The generation's head, when this share is its last.
    completes: Option<u64>,
}

/// The `streams` items of runs given as `(stream, first version, positions)`,
/// cut to [`index::RUN_MAX`] positions each.
fn run_items_of<'a>(
    runs: impl Iterator<Item = (&'a str, u64, &'a [u64])>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut items = Vec::new();
    for (stream, first_version, positions) in runs {
        for (i, piece) in positions.chunks(index::RUN_MAX).enumerate() {
            let version = first_version + (i * index::RUN_MAX) as u64;
            items.push((stream_key(stream, version), index::encode_run(piece)));
        }
    }
    items
}

/// Cuts `requests` into consecutive groups of at most [`MAX_GROUP_EVENTS`]
/// events (a larger request forms a group of its own), so one huge
/// `append_many` is written as several commits instead of one unbounded
/// write; the groups are committed in order, which keeps the order.
fn split_groups<'r, 'a>(
    requests: &'r [&'a AppendRequest],
) -> impl Iterator<Item = &'r [&'a AppendRequest]> {
    let mut rest = requests;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut n_events = 0;
        let end = rest
            .iter()
            .position(|r| {
                n_events += r.events.len();
                n_events > MAX_GROUP_EVENTS
            })
            .unwrap_or(rest.len())
            .max(1);
        let (group, tail) = rest.split_at(end);
        rest = tail;
        Some(group)
    })
}

/// One record planned by a group, ready to be written.
struct Planned {
    position: u64,
    frame: Vec<u8>,
    stream: String,
    version: u64,
    id: Uuid,
}

/// Where an existing id is stored.
#[derive(Clone)]
struct Existing {
    position: u64,
    stream: String,
    version: u64,
}

/// Decisions of one group: the records to write plus the state they imply,
/// so later requests of the same group see earlier ones.
struct GroupPlan<'a> {
    shared: &'a Shared,
    head: u64,
    /// The greatest id stored: a greater id needs no index lookup (the
    /// common case with time-ordered ids).
    max_id: Option<Uuid>,
    /// Stream versions known from earlier groups.
    cached_versions: &'a HashMap<String, u64>,
    next_position: u64,
    /// Versions of the streams this group read or wrote.
    versions: HashMap<String, u64>,
    pending_ids: HashMap<Uuid, Existing>,
    records: Vec<Planned>,
}

impl GroupPlan<'_> {
    fn lookup_id(&self, id: &Uuid) -> Result<Option<Existing>, StoreError> {
        if let Some(e) = self.pending_ids.get(id) {
            return Ok(Some(e.clone()));
        }
        if self.max_id.is_none_or(|max| *id > max) {
            return Ok(None);
        }
        let Some(position) = index::find_id(&self.shared.ids, id)? else {
            return Ok(None);
        };
        if position > self.head {
            // Cannot happen after recovery; ignore rather than trust it.
            return Ok(None);
        }
        let (stored_id, stream, version) = self.shared.with_record(position, |ev| {
            (ev.id, ev.stream.to_owned(), ev.stream_version)
        })?;
        if stored_id != *id {
            return Err(StoreError::Corrupt {
                position,
                reason: format!("id index says {id} but the record holds {stored_id}"),
            });
        }
        Ok(Some(Existing {
            position,
            stream,
            version,
        }))
    }

    fn current_version(&mut self, stream: &str) -> Result<u64, StoreError> {
        if let Some(v) = self.versions.get(stream) {
            return Ok(*v);
        }
        let v = match self.cached_versions.get(stream) {
            Some(v) => *v,
            None => self.shared.stream_version_at(stream, self.head)?,
        };
        self.versions.insert(stream.to_owned(), v);
        Ok(v)
    }

    fn plan(&mut self, req: &AppendRequest) -> Result<AppendResult, StoreError> {
        let stream = req.stream.as_str();
        let mut existing = Vec::with_capacity(req.events.len());
        for ev in &req.events {
            existing.push(self.lookup_id(&ev.id)?);
        }
        let n_existing = existing.iter().filter(|e| e.is_some()).count();
        if n_existing > 0 {
            return check_retry(req, &existing, n_existing);
        }

        let actual = self.current_version(stream)?;
        if !req.expected.matches(actual) {
            return Err(StoreError::WrongExpectedVersion {
                stream: stream.to_owned(),
                expected: req.expected,
                actual,
            });
        }
        let first_position = self.next_position;
        let mut version = actual;
        for ev in &req.events {
            version += 1;
            let position = self.next_position;
            self.next_position += 1;
            self.records.push(Planned {
                position,
                frame: record::encode(position, stream, version, &ev.id, &ev.payload),
                stream: stream.to_owned(),
                version,
                id: ev.id,
            });
            self.pending_ids.insert(
                ev.id,
                Existing {
                    position,
                    stream: stream.to_owned(),
                    version,
                },
            );
        }
        self.versions.insert(stream.to_owned(), version);
        Ok(AppendResult {
            first_position,
            last_position: self.next_position - 1,
            stream_version: version,
        })
    }
}

/// Decides a batch in which some ids already exist.
fn check_retry(
    req: &AppendRequest,
    existing: &[Option<Existing>],
    n_existing: usize,
) -> Result<AppendResult, StoreError> {
    let stream = req.stream.as_str();
    for (ev, e) in req.events.iter().zip(existing) {
        if let Some(e) = e.as_ref().filter(|e| e.stream != stream) {
            return Err(StoreError::IdOnOtherStream {
                id: ev.id,
                stream: stream.to_owned(),
                existing_stream: e.stream.clone(),
                position: e.position,
            });
        }
    }
    if n_existing < req.events.len() {
        let example = req
            .events
            .iter()
            .zip(existing)
            .find_map(|(ev, e)| e.as_ref().map(|_| ev.id))
            .expect("n_existing > 0");
        return Err(StoreError::PartialDuplicate {
            stream: stream.to_owned(),
            existing: n_existing,
            new: req.events.len() - n_existing,
            example,
        });
    }
    let found: Vec<&Existing> = existing.iter().flatten().collect();
    for pair in found.windows(2) {
        if pair[1].position != pair[0].position + 1 {
            return Err(StoreError::RetryMismatch {
                stream: stream.to_owned(),
                reason: format!(
                    "ids are stored at positions {} and {}, not consecutively in batch order",
                    pair[0].position, pair[1].position
                ),
            });
        }
    }
    Ok(AppendResult {
        first_position: found[0].position,
        last_position: found[found.len() - 1].position,
        stream_version: found[found.len() - 1].version,
    })
}

// ---------------------------------------------------------------------------
// EventLog
// ---------------------------------------------------------------------------

/// Checks what can be checked without the log's state, on the caller's thread,
/// so the writer spends its time writing.
fn validate_append(stream: &str, events: &[NewEvent]) -> Result<(), StoreError> {
    validate_stream_name(stream)?;
    if events.is_empty() {
        return Err(StoreError::EmptyAppend {
            stream: stream.to_owned(),
        });
    }
    let mut seen = HashSet::with_capacity(events.len());
    for ev in events {
        if ev.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(StoreError::PayloadTooLarge {
                id: ev.id,
                size: ev.payload.len(),
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        if !seen.insert(ev.id) {
            return Err(StoreError::DuplicateIdInBatch {
                stream: stream.to_owned(),
                id: ev.id,
            });
        }
    }
    Ok(())
}

impl EventLog for SledLog {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let request = AppendRequest {
            stream: stream.to_owned(),
            expected,
            events,
        };
        self.append_many(vec![request])
            .pop()
            .unwrap_or(Err(StoreError::Closed))
    }

    fn append_many(&self, requests: Vec<AppendRequest>) -> Vec<Result<AppendResult, StoreError>> {
        let n = requests.len();
        let (reply, answer) = mpsc::sync_channel(1);
        self.append_many_then(
            requests,
            Box::new(move |answers| {
                // The appender may have given up waiting; nothing to do then.
                let _ = reply.send(answers);
            }),
        );
        // No answer at all: the writer stopped with the job queued.
        answer
            .recv()
            .unwrap_or_else(|_| (0..n).map(|_| Err(StoreError::Closed)).collect())
    }

    fn append_many_then(&self, requests: Vec<AppendRequest>, done: AppendDone) {
        // Invalid requests are answered here; the valid ones go to the writer
        // as one job, so they are decided in order within one group.
        let mut refused: Vec<Option<StoreError>> = Vec::with_capacity(requests.len());
        let mut valid = Vec::with_capacity(requests.len());
        for request in requests {
            match validate_append(&request.stream, &request.events) {
                Ok(()) => {
                    refused.push(None);
                    valid.push(request);
                }
                Err(e) => refused.push(Some(e)),
            }
        }
        let merged = move |written: Vec<Result<AppendResult, StoreError>>| {
            let mut written = written.into_iter();
            refused
                .into_iter()
                .map(|r| match r {
                    Some(e) => Err(e),
                    None => written.next().unwrap_or(Err(StoreError::Closed)),
                })
                .collect()
        };
        if valid.is_empty() {
            return done(merged(Vec::new()));
        }
        let job = Job {
            requests: valid,
            done: Box::new(move |written| done(merged(written))),
        };
        let unsent = match &self.tx {
            Some(tx) => tx.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = unsent {
            (job.done)(Vec::new()); // every valid request: `Closed`
        }
    }

    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        validate_stream_name(stream)?;
        let s = &self.shared;
        let head = s.head();
        let from = from_version.max(1);
        let mut out = Vec::new();
        let mut expected_version = from;
        // The pending versions, copied first: a commit that writes them to
        // the tree meanwhile adds nothing the tree scan below reads, since it
        // stops where they start.
        let pending = s.pending_runs().get(stream).map(|run| {
            let skip = from.saturating_sub(run.first_version) as usize;
            let tail = run.positions.get(skip..).unwrap_or_default();
            let first = run.first_version + skip.min(run.positions.len()) as u64;
            (first, tail[..tail.len().min(max)].to_vec())
        });
        let indexed_below = pending.as_ref().map_or(u64::MAX, |(first, _)| *first);
        let mut visit = |version: u64, position: u64| {
            if out.len() >= max || position > head {
                return Ok(ControlFlow::Break(())); // full, or not durable yet
            }
            let ev = s.with_record(position, |ev| ev.to_recorded())?;
            if ev.stream != stream || ev.stream_version != version {
                return Err(StoreError::Corrupt {
                    position,
                    reason: format!(
                        "stream index says {stream:?} version {version} but the record is {:?} version {}",
                        ev.stream, ev.stream_version
                    ),
                });
            }
            if version != expected_version {
                return Err(StoreError::Corrupt {
                    position,
                    reason: format!(
                        "stream {stream:?} jumps from version {} to {version}",
                        expected_version - 1
                    ),
                });
            }
            expected_version += 1;
            out.push(ev);
            Ok(ControlFlow::Continue(()))
        };
        index::for_each_stream_entry(&s.streams, stream, from, |version, position| {
            if version >= indexed_below {
                return Ok(ControlFlow::Break(()));
            }
            visit(version, position)
        })?;
        if let Some((first, positions)) = pending {
            for (version, position) in (first..).zip(positions) {
                if visit(version, position)?.is_break() {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.shared.read_all(from_position, max)
    }

    fn for_each_from(
        &self,
        from_position: u64,
        visit: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        let head = self.shared.head();
        self.shared.scan(from_position.max(1), head, visit)
    }

    fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        validate_stream_name(stream)?;
        self.shared.stream_version_at(stream, self.shared.head())
    }

    fn head(&self) -> Result<u64, StoreError> {
        Ok(self.shared.head())
    }

    fn subscribe(&self, from_position: u64) -> Result<Subscription, StoreError> {
        let from = from_position.max(1);
        Ok(Subscription::new(
            Box::new(SledSubscription {
                shared: Arc::clone(&self.shared),
                next: from,
                buffer: VecDeque::new(),
            }),
            from,
        ))
    }

    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        let head = self.shared.head();
        if position > head {
            return Err(StoreError::PositionBeyondHead { position, head });
        }
        let op = "save_checkpoint";
        self.shared
            .meta
            .insert(checkpoint_key(name), &pos_key(position)[..])
            .map_err(backend(op))?;
        self.shared.sync(op)
    }

    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let Some(v) = self
            .shared
            .meta
            .get(checkpoint_key(name))
            .map_err(backend("load_checkpoint"))?
        else {
            return Ok(None);
        };
        parse_u64(&v).map(Some).ok_or_else(|| StoreError::Backend {
            op: "load_checkpoint",
            reason: format!("checkpoint {name:?} has {} bytes instead of 8", v.len()),
        })
    }

    fn save_snapshot(&self, name: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        let head = self.shared.head();
        if snapshot.position > head {
            return Err(StoreError::PositionBeyondHead {
                position: snapshot.position,
                head,
            });
        }
        let op = "save_snapshot";
        if snapshot.state.len() > record::MAX_SNAPSHOT_STATE {
            return Err(StoreError::Backend {
                op,
                reason: format!(
                    "snapshot state of {} bytes is too large",
                    snapshot.state.len()
                ),
            });
        }
        let framed = record::encode_snapshot(snapshot.position, &snapshot.hash, &snapshot.state);
        self.shared
            .snapshots
            .insert(name.as_bytes(), framed)
            .map_err(backend(op))?;
        self.shared.sync(op)
    }

    fn load_snapshot(&self, name: &str) -> Result<Option<Snapshot>, StoreError> {
        let Some(v) = self
            .shared
            .snapshots
            .get(name.as_bytes())
            .map_err(backend("load_snapshot"))?
        else {
            return Ok(None);
        };
        let (position, hash, state) =
            record::decode_snapshot(&v).map_err(|reason| StoreError::CorruptSnapshot {
                name: name.to_owned(),
                reason,
            })?;
        Ok(Some(Snapshot {
            position,
            state: state.to_vec(),
            hash,
        }))
    }
}

// ---------------------------------------------------------------------------
// Subscription
// ---------------------------------------------------------------------------

/// Reads pages of the log by position and waits on the head when caught up.
/// Because it asks for exactly the next position every time and positions are
/// gap-free, catch-up and live delivery are the same code path: there is no
/// hand-over moment where an event could be missed or delivered twice.
struct SledSubscription {
    pub(crate) shared: Arc<Shared>,
    next: u64,
    buffer: VecDeque<RecordedEvent>,
}

impl fmt::Debug for SledSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledSubscription")
            .field("dir", &self.shared.dir)
            .field("next", &self.next)
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl SubscriptionSource for SledSubscription {
    fn next_timeout(&mut self, timeout: Duration) -> Result<Option<RecordedEvent>, StoreError> {
        if let Some(ev) = self.buffer.pop_front() {
            return Ok(Some(ev));
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let head = self.shared.head();
            if head >= self.next {
                // Deliver every good event before a damaged one, then the
                // error (again on every call: the damage does not go away).
                let to = head.min(self.next + SUBSCRIPTION_PAGE as u64 - 1);
                let buffer = &mut self.buffer;
                let scanned = self.shared.scan(self.next, to, &mut |ev| {
                    buffer.push_back(ev.to_recorded());
                    ControlFlow::Continue(())
                });
                self.next += self.buffer.len() as u64;
                return match self.buffer.pop_front() {
                    Some(ev) => Ok(Some(ev)),
                    None => scanned.map(|_| None),
                };
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            let guard = self
                .shared
                .wake_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // Re-check under the lock: the writer publishes the head before
            // taking the lock to notify, so no wake-up can be lost.
            if self.shared.head() >= self.next || self.shared.closed.load(Ordering::Acquire) {
                continue;
            }
            let wait = match deadline {
                None => Duration::from_secs(3600),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    d - now
                }
            };
            let _unused = self
                .shared
                .wake
                .wait_timeout(guard, wait)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}
