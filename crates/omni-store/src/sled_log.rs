//! The embedded [`EventLog`] on sled.
//!
//! # Layout
//!
//! | tree        | key                                   | value                         |
//! |-------------|---------------------------------------|-------------------------------|
//! | `events`    | first position of a chunk (u64 BE)    | consecutive framed records    |
//! | `streams`   | stream name, `0x00`, version (u64 BE) | position (u64 BE)             |
//! | `ids`       | event id (16 bytes)                   | position (u64 BE)             |
//! | `meta`      | `head`                                | committed head (u64 BE)       |
//! | `meta`      | `checkpoint/<name>`                   | position (u64 BE)             |
//! | `snapshots` | snapshot name                         | framed snapshot               |
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
//! channel. The writer takes one request, drains every other pending request,
//! decides all of them against the current state (plus what earlier requests
//! of the same group will write), writes the chunks, index entries and the
//! new committed head in **one sled transaction across the four trees**,
//! calls `Db::flush` **once** and then `fdatasync`s sled's data file (sled's
//! flush uses `sync_file_range`, which survives a process crash but neither
//! flushes the drive cache nor the file size, so it alone does not survive a
//! power cut), publishes the new head to readers and only then answers every
//! appender of the group. N concurrent appenders therefore share one flush,
//! and no append is acknowledged before it is on disk.
//! If a write or flush fails the writer refuses every later append (its
//! in-memory view can no longer be trusted); reopening recovers whatever
//! reached the disk, and an appender that got the error can retry with the
//! same event ids without risk of duplicates.
//!
//! # Torn tail
//!
//! sled recovers, after a crash, a prefix of what was written, and recovers a
//! transaction atomically; `meta/head` is written in the same transaction as
//! the records it covers. The committed head is therefore the commit marker:
//! every acknowledged append is at or below it (it was flushed before the
//! answer). Anything stored above it — records of a half-applied batch, or
//! records written by anything other than a completed commit — is a torn tail.
//! On open, those records are decoded to find their index entries; chunks
//! above the head are deleted, the chunk holding the head is cut right after
//! the head's record, and the index entries are deleted, all in one
//! transaction that is flushed, with a `tracing::warn!` naming the cut range.
//! If a torn record is too damaged to decode, both indexes are scanned for
//! entries above the head instead. Nothing at or below the committed head is
//! ever cut: a missing or damaged head record is acknowledged data and makes
//! `open` fail with [`StoreError::Corrupt`] naming the position.
//!
//! Readers only ever look at positions up to the published head, so they
//! never see an append before it is durable.
//!
//! Caveat inherited from sled 0.34: a tree page larger than 1/4 of a segment
//! (128 KiB by default) is written to a separate blob file that sled does not
//! fsync. A chunk only exceeds 4 KiB when it holds one larger event, and a
//! sled page holds at most 17 items, so this needs several events with
//! payloads well above 4 KiB next to each other; those survive a process
//! crash but, until sled's next periodic full sync (every 500 ms), not
//! necessarily a power cut. Keep payloads small (large media belongs in a
//! blob store, referenced by the event).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{IVec, Transactional, Tree};
use uuid::Uuid;

use crate::record;
use crate::{
    AppendResult, EventLog, EventRef, ExpectedVersion, MAX_PAYLOAD_BYTES, NewEvent, RecordedEvent,
    Snapshot, StoreError, Subscription, SubscriptionSource, validate_stream_name,
};

pub(crate) const HEAD_KEY: &[u8] = b"head";
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
/// Page size used by subscriptions while catching up.
const SUBSCRIPTION_PAGE: usize = 1024;

/// Counters of the writer thread, to observe group commit at work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Append requests answered (successful or not).
    pub appends: u64,
    /// Events written.
    pub events: u64,
    /// Flushes (fsyncs) done by the writer: one per group that wrote something.
    pub flushes: u64,
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

fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.len() + 9);
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k
}

pub(crate) fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut k = stream_prefix(stream);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// Parses a `streams` entry into `(version, position)`.
fn parse_stream_entry(key: &[u8], value: &[u8]) -> Option<(u64, u64)> {
    let version = parse_u64(key.get(key.len().checked_sub(8)?..)?)?;
    Some((version, parse_u64(value)?))
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
        for item in self.streams.scan_prefix(stream_prefix(stream)).rev() {
            let (k, v) = item.map_err(backend("stream_version"))?;
            let (version, position) =
                parse_stream_entry(&k, &v).ok_or_else(|| StoreError::Corrupt {
                    position: 0,
                    reason: format!("malformed stream index entry for {stream:?}"),
                })?;
            if position <= head {
                // Cross-check the entry with its record: a stale entry would
                // silently shift every later version of the stream.
                let (s, v) =
                    self.with_record(position, |ev| (ev.stream == stream, ev.stream_version))?;
                if !s || v != version {
                    return Err(StoreError::Corrupt {
                        position,
                        reason: format!(
                            "stream index says {stream:?} version {version} but the record differs"
                        ),
                    });
                }
                return Ok(version);
            }
        }
        Ok(0)
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
    tx: Option<mpsc::Sender<AppendRequest>>,
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

struct AppendRequest {
    stream: String,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    reply: mpsc::SyncSender<Result<AppendResult, StoreError>>,
}

impl SledLog {
    /// Opens (creating if needed) the log stored in `dir`, cutting any torn
    /// tail, and starts its writer thread.
    pub fn open(dir: &Path) -> Result<SledLog, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            dir: dir.to_path_buf(),
            reason,
        };
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| open_err(e.to_string()))?;
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
            db,
            data_file,
            head: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            wake_lock: Mutex::new(()),
            wake: Condvar::new(),
            appends: AtomicU64::new(0),
            events_written: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        };
        let (head, tail) = recover(&shared)?;
        shared.head.store(head, Ordering::Release);
        let shared = Arc::new(shared);
        let (tx, rx) = mpsc::channel();
        let mut writer = Writer {
            shared: Arc::clone(&shared),
            tail,
            failed: None,
        };
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

/// What recovery found above the committed head.
#[derive(Default)]
struct Torn {
    remove_chunks: Vec<IVec>,
    /// The chunk holding the head, cut right after the head's record.
    rewrite: Option<(u64, Vec<u8>)>,
    stream_keys: Vec<Vec<u8>>,
    id_keys: Vec<Vec<u8>>,
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
                    self.stream_keys
                        .push(stream_key(ev.stream, ev.stream_version));
                    self.id_keys.push(ev.id.as_bytes().to_vec());
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
        cut_torn_tail(s, committed, &mut torn)?;
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

fn cut_torn_tail(s: &Shared, committed: u64, torn: &mut Torn) -> Result<(), StoreError> {
    let op = "open (cutting torn tail)";
    if torn.undecodable > 0 {
        // Cannot tell which index entries belong to the damaged records, so
        // find every entry pointing above the committed head.
        for (tree, keys) in [
            (&s.streams, &mut torn.stream_keys),
            (&s.ids, &mut torn.id_keys),
        ] {
            for item in tree.iter() {
                let (k, v) = item.map_err(backend(op))?;
                if parse_u64(&v).is_none_or(|p| p > committed) {
                    keys.push(k.to_vec());
                }
            }
        }
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
    let torn = &*torn;
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
            for (tree, keys) in [(streams, &torn.stream_keys), (ids, &torn.id_keys)] {
                for k in keys {
                    let stale = tree
                        .get(k)?
                        .is_some_and(|v| parse_u64(&v).is_none_or(|p| p > committed));
                    if stale {
                        tree.remove(k.as_slice())?;
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

/// The single writer: decides, writes and flushes groups of appends.
struct Writer {
    shared: Arc<Shared>,
    tail: Option<Tail>,
    /// Set after a failed write/flush: every later append is refused.
    failed: Option<String>,
}

impl Writer {
    fn run(&mut self, rx: &mpsc::Receiver<AppendRequest>) {
        while let Ok(first) = rx.recv() {
            let mut n_events = first.events.len();
            let mut group = vec![first];
            while n_events < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(req) => {
                        n_events += req.events.len();
                        group.push(req);
                    }
                    Err(_) => break,
                }
            }
            let outcomes = match &self.failed {
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
                None => self.commit_group(&group),
            };
            self.shared
                .appends
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            for (req, outcome) in group.into_iter().zip(outcomes) {
                // The appender may have given up waiting; nothing to do then.
                let _ = req.reply.send(outcome);
            }
        }
        self.shared.closed.store(true, Ordering::Release);
        self.shared.notify();
    }

    /// Decides, writes and flushes one group; returns the answer of each
    /// request.
    fn commit_group(&mut self, group: &[AppendRequest]) -> Vec<Result<AppendResult, StoreError>> {
        let shared = &*self.shared;
        let head = shared.head();
        let mut plan = GroupPlan {
            shared,
            head,
            next_position: head + 1,
            versions: HashMap::new(),
            pending_ids: HashMap::new(),
            records: Vec::new(),
        };
        let mut outcomes: Vec<Result<AppendResult, StoreError>> =
            group.iter().map(|req| plan.plan(req)).collect();
        if plan.records.is_empty() {
            return outcomes;
        }
        let new_head = plan.next_position - 1;
        let n_records = plan.records.len() as u64;

        // Pack the frames into the open chunk and new chunks.
        let mut tail = self.tail.clone();
        let mut chunks: Vec<(u64, IVec)> = Vec::new();
        let mut index: Vec<(Vec<u8>, Uuid, [u8; 8])> = Vec::with_capacity(plan.records.len());
        let mut tail_dirty = false;
        for r in plan.records {
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
                        bytes: r.frame,
                        count: 1,
                    });
                }
            }
            tail_dirty = true;
            index.push((r.stream_key, r.id, pos_key(r.position)));
        }
        if let Some(t) = &tail {
            chunks.push((t.first, IVec::from(t.bytes.as_slice())));
        }

        let written = (&shared.events, &shared.streams, &shared.ids, &shared.meta)
            .transaction(|(events, streams, ids, meta)| {
                for (first, bytes) in &chunks {
                    events.insert(&pos_key(*first)[..], bytes.clone())?;
                }
                for (skey, id, pos) in &index {
                    streams.insert(skey.as_slice(), &pos[..])?;
                    ids.insert(&id.as_bytes()[..], &pos[..])?;
                }
                meta.insert(HEAD_KEY, &pos_key(new_head)[..])?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| tx_error("append", e))
            .and_then(|()| shared.sync("append (flush)"));

        match written {
            Ok(()) => {
                self.tail = tail;
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
}

/// One record planned by a group, ready to be written.
struct Planned {
    position: u64,
    frame: Vec<u8>,
    stream_key: Vec<u8>,
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
    next_position: u64,
    versions: HashMap<String, u64>,
    pending_ids: HashMap<Uuid, Existing>,
    records: Vec<Planned>,
}

impl GroupPlan<'_> {
    fn lookup_id(&self, id: &Uuid) -> Result<Option<Existing>, StoreError> {
        if let Some(e) = self.pending_ids.get(id) {
            return Ok(Some(e.clone()));
        }
        let Some(v) = self
            .shared
            .ids
            .get(id.as_bytes())
            .map_err(backend("append"))?
        else {
            return Ok(None);
        };
        let position = parse_u64(&v).ok_or_else(|| StoreError::Corrupt {
            position: 0,
            reason: format!("malformed id index entry for {id}"),
        })?;
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
        let v = self.shared.stream_version_at(stream, self.head)?;
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
                stream_key: stream_key(stream, version),
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
        validate_append(stream, &events)?;
        let (reply, answer) = mpsc::sync_channel(1);
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.send(AppendRequest {
            stream: stream.to_owned(),
            expected,
            events,
            reply,
        })
        .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
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
        let range = stream_key(stream, from)..=stream_key(stream, u64::MAX);
        for (expected_version, item) in (from..).zip(s.streams.range(range).take(max)) {
            let (k, v) = item.map_err(backend("read_stream"))?;
            let (version, position) =
                parse_stream_entry(&k, &v).ok_or_else(|| StoreError::Corrupt {
                    position: 0,
                    reason: format!("malformed stream index entry for {stream:?}"),
                })?;
            if position > head {
                break; // not durable yet
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
            out.push(ev);
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
