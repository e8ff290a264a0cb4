//! Behaviour tests of the sled event log, on real directories under the
//! system temp dir.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::index::{self, stream_key};
use crate::sled_log::{
    DEFAULT_CACHE_BYTES, HEAD_KEY, INDEXED_KEY, PENDING_RUNS_MAX, RUN_ITEMS_PER_COMMIT, frames,
    open_db, pos_key,
};
use crate::*;

/// A unique directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "omni-store-test-{name}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ev(n: u128) -> NewEvent {
    NewEvent::new(Uuid::from_u128(n), format!("payload-{n}"))
}

fn evs(range: std::ops::Range<u128>) -> Vec<NewEvent> {
    range.map(ev).collect()
}

fn open(dir: &TempDir) -> SledLog {
    SledLog::open(dir.path()).expect("open log")
}

/// Asserts the whole log is positions 1..=head with per-stream versions
/// 1, 2, 3... and returns it.
fn assert_consistent(log: &dyn EventLog) -> Vec<RecordedEvent> {
    let head = log.head().unwrap();
    let all = log.read_all(1, usize::MAX).unwrap();
    assert_eq!(all.len() as u64, head);
    let mut versions = std::collections::HashMap::<&str, u64>::new();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1);
        let v = versions.entry(&e.stream).or_default();
        *v += 1;
        assert_eq!(
            e.stream_version, *v,
            "stream {} at {}",
            e.stream, e.position
        );
    }
    for (stream, v) in versions {
        assert_eq!(log.stream_version(stream).unwrap(), v);
    }
    all
}

#[test]
fn append_and_read_back() {
    let dir = TempDir::new("basic");
    let log = open(&dir);
    assert_eq!(log.head().unwrap(), 0);
    assert_eq!(log.stream_version("a").unwrap(), 0);
    let r = log
        .append("a", ExpectedVersion::NoStream, evs(1..4))
        .unwrap();
    assert_eq!(
        r,
        AppendResult {
            first_position: 1,
            last_position: 3,
            stream_version: 3
        }
    );
    let r = log.append("b", ExpectedVersion::Any, evs(4..6)).unwrap();
    assert_eq!(
        (r.first_position, r.last_position, r.stream_version),
        (4, 5, 2)
    );
    let b = log.read_stream("b", 0, 10).unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(b[1].position, 5);
    assert_eq!(b[1].stream_version, 2);
    assert_eq!(b[1].id, Uuid::from_u128(5));
    assert_eq!(b[1].payload, b"payload-5");
    assert_eq!(log.read_stream("a", 2, 1).unwrap()[0].position, 2);
    assert!(log.read_stream("a", 4, 10).unwrap().is_empty());
    assert_eq!(
        log.read_all(3, 2)
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect::<Vec<_>>(),
        [3, 4]
    );
    assert!(log.read_all(6, 10).unwrap().is_empty());
    assert!(log.read_all(1, 0).unwrap().is_empty());
    assert_consistent(&log);

    let mut seen = Vec::new();
    let n = log
        .for_each_from(2, &mut |e| {
            seen.push((e.position, e.stream.to_owned()));
            if e.position == 4 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(seen, [(2, "a".into()), (3, "a".into()), (4, "b".into())]);
}

#[test]
fn expected_version_conflicts() {
    let dir = TempDir::new("expected");
    let log = open(&dir);
    log.append("s", ExpectedVersion::NoStream, evs(1..3))
        .unwrap();

    let err = log
        .append("s", ExpectedVersion::NoStream, evs(3..4))
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::WrongExpectedVersion {
            stream: "s".into(),
            expected: ExpectedVersion::NoStream,
            actual: 2
        }
    );
    let err = log
        .append("s", ExpectedVersion::Exact(1), evs(3..4))
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::WrongExpectedVersion {
            actual: 2,
            expected: ExpectedVersion::Exact(1),
            ..
        }
    ));
    let err = log
        .append("other", ExpectedVersion::Exact(1), evs(3..4))
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::WrongExpectedVersion { actual: 0, .. }
    ));
    assert!(err.to_string().contains("actual version 0"), "{err}");

    // Nothing was written by the refused appends.
    assert_eq!(log.head().unwrap(), 2);
    let r = log
        .append("s", ExpectedVersion::Exact(2), evs(3..4))
        .unwrap();
    assert_eq!(r.stream_version, 3);
    let r = log.append("s", ExpectedVersion::Any, evs(4..5)).unwrap();
    assert_eq!(r.stream_version, 4);
    log.append("t", ExpectedVersion::Exact(0), evs(5..6))
        .unwrap();
    assert_consistent(&log);
}

#[test]
fn idempotent_retry_returns_original_positions_forever() {
    let dir = TempDir::new("idem");
    let first;
    {
        let log = open(&dir);
        log.append("x", ExpectedVersion::Any, evs(100..101))
            .unwrap();
        first = log
            .append("s", ExpectedVersion::NoStream, evs(1..4))
            .unwrap();
        log.append("s", ExpectedVersion::Exact(3), evs(4..6))
            .unwrap();
        // The retry passes even though its expected version is now stale.
        let again = log
            .append("s", ExpectedVersion::NoStream, evs(1..4))
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(log.head().unwrap(), 6);
    }
    // "Forever": also after a reopen.
    let log = open(&dir);
    assert_eq!(
        log.append("s", ExpectedVersion::NoStream, evs(1..4))
            .unwrap(),
        first
    );
    let tail = log
        .append("s", ExpectedVersion::Exact(3), evs(4..6))
        .unwrap();
    assert_eq!(
        (tail.first_position, tail.last_position, tail.stream_version),
        (5, 6, 5)
    );
    assert_eq!(log.head().unwrap(), 6);
    assert_consistent(&log);
}

#[test]
fn concurrent_retries_in_one_group_write_once() {
    let dir = TempDir::new("idem-conc");
    let log = Arc::new(open(&dir));
    let results: Vec<AppendResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| log.append("s", ExpectedVersion::Any, evs(1..3)).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|r| *r == results[0]));
    assert_eq!(log.head().unwrap(), 2);
    assert_consistent(&*log);
}

#[test]
fn mixed_or_misplaced_ids_are_refused() {
    let dir = TempDir::new("idem-bad");
    let log = open(&dir);
    log.append("s", ExpectedVersion::Any, evs(1..4)).unwrap();
    log.append("t", ExpectedVersion::Any, evs(4..5)).unwrap();

    let err = log
        .append("s", ExpectedVersion::Any, evs(3..6))
        .unwrap_err();
    assert!(err.to_string().contains("on stream \"t\""), "{err}");
    let err = log
        .append("s", ExpectedVersion::Any, vec![ev(3), ev(9)])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PartialDuplicate { existing: 1, new: 1, example, .. } if example == Uuid::from_u128(3))
    );
    let err = log
        .append("u", ExpectedVersion::Any, evs(1..2))
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::IdOnOtherStream {
            id: Uuid::from_u128(1),
            stream: "u".into(),
            existing_stream: "s".into(),
            position: 1
        }
    );
    let err = log
        .append("s", ExpectedVersion::Any, vec![ev(3), ev(1)])
        .unwrap_err();
    assert!(matches!(err, StoreError::RetryMismatch { .. }), "{err}");
    let err = log
        .append("s", ExpectedVersion::Any, vec![ev(7), ev(7)])
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateIdInBatch { .. }));
    let err = log.append("s", ExpectedVersion::Any, vec![]).unwrap_err();
    assert!(matches!(err, StoreError::EmptyAppend { .. }));
    for bad in ["", "a\0b"] {
        let err = log
            .append(bad, ExpectedVersion::Any, evs(50..51))
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidStreamName { .. }));
    }
    // A retry of a subset of the original batch, in order, is still a retry.
    let r = log.append("s", ExpectedVersion::Any, evs(2..4)).unwrap();
    assert_eq!(
        (r.first_position, r.last_position, r.stream_version),
        (2, 3, 3)
    );
    assert_eq!(log.head().unwrap(), 4);
    assert_consistent(&log);
}

#[test]
fn concurrent_appenders_get_gap_free_positions() {
    const THREADS: u128 = 8;
    const APPENDS: u128 = 40;
    let dir = TempDir::new("concurrent");
    let log = Arc::new(open(&dir));
    let mut ranges: Vec<(u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let log = &log;
                s.spawn(move || {
                    let own = format!("own-{t}");
                    let mut out = Vec::new();
                    for i in 0..APPENDS {
                        let base = (t * 1_000 + i) * 10;
                        let n = 1 + (i % 3);
                        // Own stream with exact versions, plus a shared stream.
                        let (stream, expected) = if i % 4 == 0 {
                            ("shared".to_owned(), ExpectedVersion::Any)
                        } else {
                            let v = log.stream_version(&own).unwrap();
                            (own.clone(), ExpectedVersion::Exact(v))
                        };
                        let r = log.append(&stream, expected, evs(base..base + n)).unwrap();
                        assert_eq!(r.last_position - r.first_position + 1, n as u64);
                        out.push((r.first_position, r.last_position));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    ranges.sort_unstable();
    let mut next = 1;
    for (first, last) in &ranges {
        assert_eq!(*first, next, "gap or overlap before {first}");
        next = last + 1;
    }
    assert_eq!(log.head().unwrap(), next - 1);
    let all = assert_consistent(&*log);
    let ids: HashSet<Uuid> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), all.len());
    let stats = log.stats();
    assert_eq!(stats.appends, (THREADS * APPENDS) as u64);
    assert_eq!(stats.events, all.len() as u64);
    assert!(stats.flushes <= stats.appends);
    eprintln!("8 appenders: {stats:?}");
}

#[test]
fn subscription_catches_up_then_follows_live() {
    let dir = TempDir::new("subscribe");
    let log = Arc::new(open(&dir));
    for i in 0..30u128 {
        log.append(
            &format!("s{}", i % 3),
            ExpectedVersion::Any,
            evs(i * 10..i * 10 + 3),
        )
        .unwrap();
    }
    assert_eq!(log.head().unwrap(), 90);
    let mut from_start = log.subscribe(0).unwrap();
    let mut from_mid = log.subscribe(50).unwrap();
    let total = 300u64;
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 30..100u128 {
                log.append("live", ExpectedVersion::Any, evs(i * 10..i * 10 + 3))
                    .unwrap();
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        for (sub, from) in [(&mut from_start, 1u64), (&mut from_mid, 50)] {
            let mut expect = from;
            while expect <= total {
                let e = sub
                    .next_timeout(Duration::from_secs(10))
                    .unwrap()
                    .expect("event within timeout");
                assert_eq!(e.position, expect);
                expect += 1;
            }
            assert_eq!(sub.next_position(), total + 1);
        }
        writer.join().unwrap();
    });
    assert!(from_start.try_next().unwrap().is_none());
    assert!(
        from_start
            .next_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none()
    );
    // A live append after catching up is delivered.
    log.append("late", ExpectedVersion::Any, evs(5000..5001))
        .unwrap();
    let e = from_mid
        .next_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!((e.position, e.stream.as_str()), (total + 1, "late"));

    // Closing the log ends a caught-up subscription instead of hanging it.
    let log = Arc::into_inner(log).unwrap();
    log.close().unwrap();
    assert_eq!(
        from_mid.next_timeout(Duration::from_secs(5)).unwrap_err(),
        StoreError::Closed
    );
    // Stored events are still delivered to a lagging one before Closed.
    assert_eq!(
        from_start
            .next_timeout(Duration::ZERO)
            .unwrap()
            .unwrap()
            .position,
        total + 1
    );
    assert_eq!(
        from_start.next_timeout(Duration::ZERO).unwrap_err(),
        StoreError::Closed
    );
}

/// The chunk holding `position` and the byte range of its frame in it.
fn locate(log: &SledLog, position: u64) -> (u64, Vec<u8>, std::ops::Range<usize>) {
    let (first, chunk) = log.shared.chunk_at(position).unwrap().unwrap();
    let mut walk = frames(first, &chunk);
    let mut start = 0;
    while let Some(frame) = walk.next() {
        let (p, _) = frame.unwrap();
        if p == position {
            return (first, chunk.to_vec(), start..walk.offset());
        }
        start = walk.offset();
    }
    panic!("position {position} not stored");
}

fn corrupt_at(position: u64, r: Result<(), StoreError>) -> String {
    match r {
        Err(StoreError::Corrupt {
            position: p,
            reason,
        }) if p == position => reason,
        other => panic!("expected Corrupt at {position}, got {other:?}"),
    }
}

/// Ten events of ~1.5 KiB: two per chunk, so chunks start at 1, 3, 5, 7, 9.
fn ten_big_events(log: &SledLog) {
    for i in 0..10u128 {
        let e = NewEvent::new(Uuid::from_u128(i), vec![i as u8; 1500]);
        log.append("s", ExpectedVersion::Any, vec![e]).unwrap();
    }
    let keys: Vec<u64> = log
        .shared
        .events
        .iter()
        .keys()
        .map(|k| u64::from_be_bytes(k.unwrap().as_ref().try_into().unwrap()))
        .collect();
    assert_eq!(keys, [1, 3, 5, 7, 9]);
}

#[test]
fn flipped_byte_is_reported_as_corrupt_at_its_position() {
    let dir = TempDir::new("corrupt");
    let log = open(&dir);
    ten_big_events(&log);
    let events = &log.shared.events;
    let (first, mut chunk, range) = locate(&log, 5);
    chunk[range.end - 1] ^= 0x01; // inside the payload of record 5
    events.insert(pos_key(first), chunk).unwrap();

    let reason = corrupt_at(5, log.read_all(1, 100).map(drop));
    assert!(reason.contains("checksum"), "{reason}");
    corrupt_at(5, log.read_stream("s", 1, 100).map(drop));
    corrupt_at(
        5,
        log.for_each_from(1, &mut |_| ControlFlow::Continue(()))
            .map(drop),
    );
    let mut sub = log.subscribe(1).unwrap();
    for p in 1..5 {
        assert_eq!(
            sub.next_timeout(Duration::ZERO).unwrap().unwrap().position,
            p
        );
    }
    corrupt_at(5, sub.next_timeout(Duration::ZERO).map(drop));
    // Events before and after the damaged one stay readable.
    assert_eq!(log.read_all(1, 4).unwrap().len(), 4);
    assert_eq!(log.read_all(6, 100).unwrap().len(), 5);
    assert_eq!(log.read_stream("s", 6, 100).unwrap().len(), 5);
}

#[test]
fn damaged_frame_boundaries_and_gaps_are_reported() {
    let dir = TempDir::new("corrupt-frames");
    let log = open(&dir);
    ten_big_events(&log);
    let events = &log.shared.events;
    let (first, original, range) = locate(&log, 5);

    // A damaged length field misaligns record 6 too; the error names 5.
    let mut chunk = original.clone();
    chunk[range.start] ^= 0x10;
    events.insert(pos_key(first), chunk).unwrap();
    corrupt_at(5, log.read_all(6, 1).map(drop));
    corrupt_at(5, log.read_stream("s", 6, 1).map(drop));

    // Record 6 copied over record 5 is caught by the position inside it.
    let (_, _, six) = locate_in(&original, first, 6);
    let mut chunk = original.clone();
    chunk.splice(range.clone(), original[six].iter().copied());
    events.insert(pos_key(first), chunk).unwrap();
    let reason = corrupt_at(5, log.read_all(5, 1).map(drop));
    assert!(reason.contains("carries position 6"), "{reason}");

    // A missing chunk is a gap, never skipped.
    events.remove(pos_key(first)).unwrap();
    let reason = corrupt_at(5, log.read_all(1, 100).map(drop));
    assert!(reason.contains("missing"), "{reason}");
    corrupt_at(5, log.read_stream("s", 1, 100).map(drop));
    corrupt_at(5, log.read_all(5, 100).map(drop));
    corrupt_at(6, log.read_all(6, 100).map(drop));
    assert_eq!(log.read_all(7, 100).unwrap().len(), 4);
}

fn locate_in(chunk: &[u8], first: u64, position: u64) -> (u64, u64, std::ops::Range<usize>) {
    let mut walk = frames(first, chunk);
    let mut start = 0;
    while let Some(frame) = walk.next() {
        if frame.unwrap().0 == position {
            return (first, position, start..walk.offset());
        }
        start = walk.offset();
    }
    panic!("position {position} not in chunk {first}");
}

/// sled lets go of its file lock from a background thread after close: opening again at
/// once, as an engine restarted in the same process does, waits for it instead of failing.
#[test]
fn a_log_closed_by_this_process_opens_again_at_once() {
    let dir = TempDir::new("relock");
    for round in 0..20u128 {
        let log = open(&dir);
        log.append("s", ExpectedVersion::Any, evs(round..round + 1))
            .unwrap();
        log.close().unwrap();
    }
    assert_eq!(open(&dir).head().unwrap(), 20);
}

/// Another holder of the lock (here a handle still open) is reported, not waited for forever.
#[test]
fn a_log_held_open_elsewhere_is_reported() {
    let dir = TempDir::new("held");
    let _held = open(&dir);
    let error = SledLog::open(dir.path()).expect_err("the lock is held");
    assert!(error.to_string().contains("lock"), "{error}");
}

#[test]
fn reopen_keeps_everything() {
    let dir = TempDir::new("reopen");
    let before;
    {
        let log = open(&dir);
        for i in 0..20u128 {
            log.append(
                &format!("s{}", i % 4),
                ExpectedVersion::Any,
                evs(i * 5..i * 5 + 2),
            )
            .unwrap();
        }
        log.save_checkpoint("projection", 17).unwrap();
        before = assert_consistent(&log);
        log.close().unwrap();
    }
    let log = open(&dir);
    assert_eq!(log.head().unwrap(), 40);
    assert_eq!(assert_consistent(&log), before);
    assert_eq!(log.load_checkpoint("projection").unwrap(), Some(17));
    let r = log
        .append("s1", ExpectedVersion::Exact(10), evs(1000..1001))
        .unwrap();
    assert_eq!((r.first_position, r.stream_version), (41, 11));
}

/// Appends frames to the chunk starting at `chunk_first` (creating it if
/// needed) and writes their index entries, the way a commit that never wrote
/// its head marker would leave them.
fn write_torn(log: &SledLog, chunk_first: u64, records: &[(u64, &str, u64, u128)]) {
    let s = &log.shared;
    let mut chunk = s
        .events
        .get(pos_key(chunk_first))
        .unwrap()
        .map(|c| c.to_vec())
        .unwrap_or_default();
    for &(position, stream, version, id) in records {
        let id = Uuid::from_u128(id);
        chunk.extend(record::encode(position, stream, version, &id, b"torn"));
        s.streams
            .insert(stream_key(stream, version), &pos_key(position)[..])
            .unwrap();
        let buckets = index::add_ids(&s.ids, &mut [(id, position)]).unwrap();
        for k in buckets.removes {
            s.ids.remove(k).unwrap();
        }
        for (k, v) in buckets.puts {
            s.ids.insert(k, v).unwrap();
        }
        assert_eq!(index::find_id(&s.ids, &id).unwrap(), Some(position));
    }
    s.events.insert(pos_key(chunk_first), chunk).unwrap();
}

/// No stream run or id bucket mentions a position above `head`, and the ids
/// above it (the torn ones, 900 and up) are unknown to the id index.
fn assert_index_has_nothing_above(log: &SledLog, head: u64) {
    let s = &log.shared;
    for item in s.streams.iter().chain(s.ids.iter()) {
        let (_, v) = item.unwrap();
        assert!(!index::run_above(&v, head), "index item above {head}");
    }
    for id in 900..903 {
        assert_eq!(index::find_id(&s.ids, &Uuid::from_u128(id)).unwrap(), None);
    }
}

#[test]
fn torn_tail_is_cut_on_open() {
    let dir = TempDir::new("torn");
    {
        let log = open(&dir);
        log.append("a", ExpectedVersion::Any, evs(1..4)).unwrap();
        log.append("b", ExpectedVersion::Any, evs(4..6)).unwrap();
        // Inside the open chunk (1..=5) and in a new chunk above the head.
        write_torn(&log, 1, &[(6, "a", 4, 900)]);
        write_torn(&log, 7, &[(7, "c", 1, 901), (8, "c", 2, 902)]);
        log.shared.db.flush().unwrap();
    }
    let log = open(&dir);
    assert_eq!(log.head().unwrap(), 5);
    assert_eq!(log.stream_version("a").unwrap(), 3);
    assert_eq!(log.stream_version("c").unwrap(), 0);
    assert!(log.shared.events.get(pos_key(7)).unwrap().is_none());
    assert_index_has_nothing_above(&log, 5);
    assert_consistent(&log);
    // The torn ids were never acknowledged: they append as new events.
    let r = log
        .append("c", ExpectedVersion::NoStream, evs(901..902))
        .unwrap();
    assert_eq!((r.first_position, r.stream_version), (6, 1));
    let r = log
        .append("a", ExpectedVersion::Exact(3), evs(900..901))
        .unwrap();
    assert_eq!((r.first_position, r.stream_version), (7, 4));
    assert_consistent(&log);
    drop(log);
    let log = open(&dir);
    assert_eq!(log.head().unwrap(), 7);
    assert_consistent(&log);
}

#[test]
fn undecodable_torn_tail_is_cut_with_its_index_entries() {
    let dir = TempDir::new("torn-garbage");
    {
        let log = open(&dir);
        log.append("a", ExpectedVersion::Any, evs(1..3)).unwrap();
        write_torn(&log, 1, &[(3, "a", 3, 900)]);
        let s = &log.shared;
        // Damage the torn record so its index entries cannot be derived from
        // it, and add a garbage chunk above it.
        let mut chunk = s.events.get(pos_key(1)).unwrap().unwrap().to_vec();
        let n = chunk.len();
        chunk[n - 2] ^= 0xff;
        chunk.extend_from_slice(b"half a fra");
        s.events.insert(pos_key(1), chunk).unwrap();
        s.events.insert(pos_key(4), &b"x"[..]).unwrap();
        s.db.flush().unwrap();
    }
    let log = open(&dir);
    assert_eq!(log.head().unwrap(), 2);
    assert_eq!(log.stream_version("a").unwrap(), 2);
    assert_index_has_nothing_above(&log, 2);
    assert!(log.shared.events.get(pos_key(4)).unwrap().is_none());
    let r = log
        .append("a", ExpectedVersion::Exact(2), evs(900..901))
        .unwrap();
    assert_eq!((r.first_position, r.stream_version), (3, 3));
    assert_consistent(&log);
}

#[test]
fn damaged_committed_head_fails_open_instead_of_being_cut() {
    let dir = TempDir::new("head-damaged");
    let original;
    {
        let log = open(&dir);
        log.append("a", ExpectedVersion::Any, evs(1..4)).unwrap();
        let (first, chunk, three) = locate(&log, 3);
        original = chunk.clone();
        // Record 3 (the committed head) lost.
        log.shared
            .events
            .insert(pos_key(first), &chunk[..three.start])
            .unwrap();
        log.shared.db.flush().unwrap();
    }
    let err = SledLog::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { position: 3, .. }),
        "{err}"
    );
    {
        // Record 3 present but damaged: still refused, still named.
        let db = open_db(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        let mut chunk = original;
        let n = chunk.len();
        chunk[n - 1] ^= 0xff;
        db.open_tree("events")
            .unwrap()
            .insert(pos_key(1), chunk)
            .unwrap();
        assert_eq!(
            db.open_tree("meta")
                .unwrap()
                .get(HEAD_KEY)
                .unwrap()
                .as_deref(),
            Some(&pos_key(3)[..])
        );
        db.flush().unwrap();
    }
    let err = SledLog::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { position: 3, .. }),
        "{err}"
    );
}

#[test]
fn checkpoint_and_snapshot_round_trip() {
    let dir = TempDir::new("checkpoint");
    let snap = Snapshot {
        position: 2,
        state: b"folded state".to_vec(),
        hash: [9; 32],
    };
    {
        let log = open(&dir);
        assert_eq!(log.load_checkpoint("p").unwrap(), None);
        assert_eq!(log.load_snapshot("state").unwrap(), None);
        log.append("s", ExpectedVersion::Any, evs(1..4)).unwrap();
        log.save_checkpoint("p", 2).unwrap();
        log.save_checkpoint("p", 3).unwrap();
        log.save_checkpoint("q", 0).unwrap();
        assert_eq!(
            log.save_checkpoint("p", 4).unwrap_err(),
            StoreError::PositionBeyondHead {
                position: 4,
                head: 3
            }
        );
        log.save_snapshot("state", &snap).unwrap();
        assert!(matches!(
            log.save_snapshot(
                "state",
                &Snapshot {
                    position: 9,
                    ..snap.clone()
                }
            ),
            Err(StoreError::PositionBeyondHead { .. })
        ));
        assert_eq!(log.load_checkpoint("p").unwrap(), Some(3));
        assert_eq!(log.load_snapshot("state").unwrap().as_ref(), Some(&snap));
    }
    let log = open(&dir);
    assert_eq!(log.load_checkpoint("p").unwrap(), Some(3));
    assert_eq!(log.load_checkpoint("q").unwrap(), Some(0));
    assert_eq!(log.load_snapshot("state").unwrap(), Some(snap));

    let mut raw = log.shared.snapshots.get("state").unwrap().unwrap().to_vec();
    raw[12] ^= 1;
    log.shared.snapshots.insert("state", raw).unwrap();
    assert!(matches!(
        log.load_snapshot("state"),
        Err(StoreError::CorruptSnapshot { name, .. }) if name == "state"
    ));
}

#[test]
fn open_failure_names_the_directory() {
    let dir = TempDir::new("open-fail");
    std::fs::create_dir_all(dir.path()).unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = SledLog::open(&file).unwrap_err();
    assert!(matches!(&err, StoreError::Open { dir, .. } if dir == &file));
    assert!(err.to_string().contains("not-a-dir"), "{err}");
    // A log already open in this process is locked.
    let log_dir = dir.path().join("log");
    let _log = SledLog::open(&log_dir).unwrap();
    let err = SledLog::open(&log_dir).unwrap_err();
    assert!(
        err.to_string().contains(&*log_dir.to_string_lossy()),
        "{err}"
    );
}

/// Delegates everything except `for_each_from`, to exercise the trait's
/// default implementation and object safety.
struct Delegate(SledLog);

impl EventLog for Delegate {
    fn append(
        &self,
        s: &str,
        e: ExpectedVersion,
        v: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.0.append(s, e, v)
    }
    fn append_many_then(&self, requests: Vec<AppendRequest>, done: AppendDone) {
        self.0.append_many_then(requests, done)
    }
    fn read_stream(&self, s: &str, f: u64, m: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_stream(s, f, m)
    }
    fn read_all(&self, f: u64, m: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_all(f, m)
    }
    fn stream_version(&self, s: &str) -> Result<u64, StoreError> {
        self.0.stream_version(s)
    }
    fn head(&self) -> Result<u64, StoreError> {
        self.0.head()
    }
    fn subscribe(&self, f: u64) -> Result<Subscription, StoreError> {
        self.0.subscribe(f)
    }
    fn save_checkpoint(&self, n: &str, p: u64) -> Result<(), StoreError> {
        self.0.save_checkpoint(n, p)
    }
    fn load_checkpoint(&self, n: &str) -> Result<Option<u64>, StoreError> {
        self.0.load_checkpoint(n)
    }
    fn save_snapshot(&self, n: &str, s: &Snapshot) -> Result<(), StoreError> {
        self.0.save_snapshot(n, s)
    }
    fn load_snapshot(&self, n: &str) -> Result<Option<Snapshot>, StoreError> {
        self.0.load_snapshot(n)
    }
}

#[test]
fn trait_objects_and_default_scan() {
    let dir = TempDir::new("dyn");
    let log: Arc<dyn EventLog> = Arc::new(Delegate(open(&dir)));
    for i in 0..10u128 {
        log.append("s", ExpectedVersion::Any, evs(i * 600..i * 600 + 600))
            .unwrap();
    }
    let mut expect = 2;
    let n = log
        .for_each_from(2, &mut |e| {
            assert_eq!(e.position, expect);
            expect += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(n, 5999);
    let n = log
        .for_each_from(5000, &mut |e| {
            if e.position == 5004 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(n, 5);

    // The default `append_many` loops over `append`, in order.
    let answers = log.append_many(vec![
        req("t", ExpectedVersion::NoStream, 9000..9002),
        req("t", ExpectedVersion::NoStream, 9002..9003),
        req("t", ExpectedVersion::Exact(2), 9003..9004),
    ]);
    assert_eq!(
        positions(&answers),
        [Some((6001, 6002, 2)), None, Some((6003, 6003, 3))]
    );
}

#[test]
fn stale_stream_index_entry_is_reported_not_trusted() {
    let dir = TempDir::new("stale-index");
    {
        let log = open(&dir);
        log.append("a", ExpectedVersion::Any, evs(1..3)).unwrap();
        log.append("b", ExpectedVersion::Any, evs(3..4)).unwrap();
        // A run claiming "a" has a version 3 stored at position 3 (which is
        // "b"), written behind the writer's back (so after a reopen, when it
        // no longer remembers the version of "a").
        log.shared
            .streams
            .insert(stream_key("a", 3), &pos_key(3)[..])
            .unwrap();
    }
    let log = open(&dir);
    corrupt_at(3, log.stream_version("a").map(drop));
    corrupt_at(3, log.read_stream("a", 1, 10).map(drop));
    corrupt_at(
        3,
        log.append("a", ExpectedVersion::Any, evs(4..5)).map(drop),
    );
}

#[test]
fn oversized_payload_is_refused_before_writing() {
    let dir = TempDir::new("oversized");
    let log = open(&dir);
    let big = NewEvent::new(Uuid::from_u128(1), vec![0; MAX_PAYLOAD_BYTES + 1]);
    let err = log
        .append("a", ExpectedVersion::Any, vec![big])
        .unwrap_err();
    assert!(matches!(err, StoreError::PayloadTooLarge { .. }), "{err}");
    assert_eq!(log.head().unwrap(), 0);
}

fn req(stream: &str, expected: ExpectedVersion, ids: std::ops::Range<u128>) -> AppendRequest {
    AppendRequest::new(stream, expected, evs(ids))
}

/// Positions of successful answers, `None` for refused ones.
fn positions(answers: &[Result<AppendResult, StoreError>]) -> Vec<Option<(u64, u64, u64)>> {
    answers
        .iter()
        .map(|a| {
            a.as_ref()
                .ok()
                .map(|r| (r.first_position, r.last_position, r.stream_version))
        })
        .collect()
}

#[test]
fn append_many_applies_requests_in_order_with_one_flush() {
    let dir = TempDir::new("many-order");
    let log = open(&dir);
    log.append("a", ExpectedVersion::Any, evs(1..2)).unwrap();
    let flushes = log.stats().flushes;
    // Later requests see earlier ones of the same batch: "b" is created and
    // then appended to with an exact version.
    let mut batch = vec![
        req("b", ExpectedVersion::NoStream, 10..12),
        req("a", ExpectedVersion::Exact(1), 12..13),
        req("b", ExpectedVersion::Exact(2), 13..14),
    ];
    batch.extend((0..1000u128).map(|i| {
        req(
            &format!("s{}", i % 7),
            ExpectedVersion::Any,
            100 + i..101 + i,
        )
    }));
    let answers = log.append_many(batch);
    assert_eq!(answers.len(), 1003);
    assert_eq!(
        positions(&answers[..3]),
        [Some((2, 3, 2)), Some((4, 4, 2)), Some((5, 5, 3))]
    );
    for (i, a) in answers[3..].iter().enumerate() {
        let p = 6 + i as u64;
        assert_eq!(a.as_ref().unwrap().first_position, p);
        assert_eq!(a.as_ref().unwrap().last_position, p);
    }
    assert_eq!(log.stats().flushes, flushes + 1, "one batch, one flush");
    let all = assert_consistent(&log);
    assert_eq!(all.len(), 1005);
    for (i, e) in all[5..].iter().enumerate() {
        assert_eq!(e.id, Uuid::from_u128(100 + i as u128));
    }
    assert!(log.append_many(Vec::new()).is_empty());
}

#[test]
fn append_many_refuses_requests_one_by_one() {
    let dir = TempDir::new("many-conflict");
    let log = open(&dir);
    log.append("a", ExpectedVersion::Any, evs(1..3)).unwrap();
    let answers = log.append_many(vec![
        req("a", ExpectedVersion::Exact(1), 10..11), // stale version
        req("b", ExpectedVersion::Any, 11..12),
        req("", ExpectedVersion::Any, 12..13), // invalid name
        req("c", ExpectedVersion::Any, 1..2),  // id stored on "a"
        AppendRequest::new("d", ExpectedVersion::Any, vec![]), // empty
        req("a", ExpectedVersion::Exact(2), 13..15),
        req("b", ExpectedVersion::NoStream, 15..16), // created above
        req("e", ExpectedVersion::Any, 16..17),
    ]);
    assert!(matches!(
        answers[0],
        Err(StoreError::WrongExpectedVersion { actual: 2, .. })
    ));
    assert!(matches!(
        answers[2],
        Err(StoreError::InvalidStreamName { .. })
    ));
    assert!(matches!(
        answers[3],
        Err(StoreError::IdOnOtherStream { .. })
    ));
    assert!(matches!(answers[4], Err(StoreError::EmptyAppend { .. })));
    assert!(matches!(
        answers[6],
        Err(StoreError::WrongExpectedVersion { actual: 1, .. })
    ));
    assert_eq!(
        positions(&answers),
        [
            None,
            Some((3, 3, 1)),
            None,
            None,
            None,
            Some((4, 5, 4)),
            None,
            Some((6, 6, 1))
        ]
    );
    assert_eq!(log.head().unwrap(), 6);
    assert_consistent(&log);
}

#[test]
fn append_many_whole_batch_retry_is_idempotent() {
    let dir = TempDir::new("many-retry");
    let batch = || {
        vec![
            req("a", ExpectedVersion::NoStream, 1..3),
            req("b", ExpectedVersion::NoStream, 3..4),
            req("a", ExpectedVersion::Exact(2), 4..6),
            req("a", ExpectedVersion::Exact(9), 6..7), // refused every time
        ]
    };
    let first = positions(&open(&dir).append_many(batch()));
    assert_eq!(
        first,
        [Some((1, 2, 2)), Some((3, 3, 1)), Some((4, 5, 4)), None]
    );
    {
        let log = open(&dir);
        log.append("b", ExpectedVersion::Exact(1), evs(20..21))
            .unwrap();
        // Resent after a reopen and another append: same answers, nothing
        // written twice, even though the expected versions are stale now.
        assert_eq!(positions(&log.append_many(batch())), first);
        // Twice within one batch: the second copy is a retry of the first.
        let twice: Vec<_> = batch().into_iter().chain(batch()).collect();
        let answers = positions(&log.append_many(twice));
        assert_eq!(answers[..4], first[..]);
        assert_eq!(answers[4..], first[..]);
        assert_eq!(log.head().unwrap(), 6);
        assert_consistent(&log);
    }
}

#[test]
fn append_many_larger_than_a_group_keeps_order() {
    let dir = TempDir::new("many-big");
    let log = open(&dir);
    // Above MAX_GROUP_EVENTS (16 Ki): written as consecutive commits, still
    // in order; the stream runs are written to the tree on the way
    // (PENDING_RUNS_MAX) and pending after that.
    let n = 20_000u128;
    let batch: Vec<_> = (0..n / 4)
        .map(|i| {
            req(
                &format!("s{}", i % 3),
                ExpectedVersion::Any,
                i * 4..i * 4 + 4,
            )
        })
        .collect();
    let answers = log.append_many(batch);
    for (i, a) in answers.iter().enumerate() {
        let r = a.as_ref().unwrap();
        assert_eq!(r.first_position, 1 + 4 * i as u64);
    }
    assert_eq!(log.stats().flushes, 2, "{:?}", log.stats());
    assert!(!log.shared.streams.is_empty());
    let s0 = log.read_stream("s0", 0, usize::MAX).unwrap();
    assert_eq!(s0.len() as u128, (n / 4).div_ceil(3) * 4);
    assert!(s0.iter().zip(1..).all(|(e, v)| e.stream_version == v));
    assert_consistent(&log);
    let mut next = 0u128;
    log.for_each_from(1, &mut |e| {
        assert_eq!(e.id, Uuid::from_u128(next));
        next += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(next, n);
}

/// A scrambled id: consecutive `n` land all over the id space.
fn random_id(n: u128) -> Uuid {
    Uuid::from_u128(n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) ^ (n << 64))
}

/// Buckets are ordered, within [`index::BUCKET_MAX`], keyed at or below their
/// first id, and every id is below the next bucket's key.
fn assert_id_buckets_well_formed(log: &SledLog) -> usize {
    let mut previous_last: Option<Vec<u8>> = None;
    let mut n = 0;
    for item in log.shared.ids.iter() {
        let (k, v) = item.unwrap();
        assert_eq!(v.len() % 24, 0);
        let ids: Vec<&[u8]> = v.chunks_exact(24).map(|e| &e[..16]).collect();
        assert!(!ids.is_empty() && ids.len() <= index::BUCKET_MAX);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "bucket not sorted");
        assert!(&k[..] <= ids[0], "key above the bucket's first id");
        if let Some(last) = &previous_last {
            assert!(last[..] < k[..], "previous bucket reaches this key");
        }
        previous_last = Some(ids[ids.len() - 1].to_vec());
        n += ids.len();
    }
    n
}

#[test]
fn id_index_finds_ids_in_any_order_across_bucket_splits() {
    let dir = TempDir::new("id-buckets");
    let mut expected = Vec::new();
    {
        let log = open(&dir);
        let mut n = 10u128; // random_id(0) is the nil id, used below
        // Random ids, then ids below and above everything, in batches of
        // varied sizes so buckets split in the middle and at both ends.
        for batch in 0..60u128 {
            let size = 1 + (batch * 7) % 40;
            let ids: Vec<Uuid> = (n..n + size).map(random_id).collect();
            n += size;
            let events = ids.iter().map(|id| NewEvent::new(*id, "x")).collect();
            let r = log.append("s", ExpectedVersion::Any, events).unwrap();
            expected.extend(ids.into_iter().zip(r.first_position..));
        }
        for (i, id) in [Uuid::nil(), Uuid::max(), Uuid::from_u128(1)]
            .into_iter()
            .enumerate()
        {
            let r = log
                .append(
                    &format!("edge-{i}"),
                    ExpectedVersion::Any,
                    vec![NewEvent::new(id, "x")],
                )
                .unwrap();
            expected.push((id, r.first_position));
        }
        assert_eq!(assert_id_buckets_well_formed(&log), expected.len());
        assert!(log.shared.ids.len() > expected.len() / index::BUCKET_MAX);
    }
    let log = open(&dir);
    for (id, position) in &expected {
        assert_eq!(
            index::find_id(&log.shared.ids, id).unwrap(),
            Some(*position)
        );
    }
    // Every stored id is recognised as a retry, on its own stream only.
    for (id, position) in expected.iter().step_by(37) {
        let stream = log.read_all(*position, 1).unwrap()[0].stream.clone();
        let r = log
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![NewEvent::new(*id, "x")],
            )
            .unwrap();
        assert_eq!(r.first_position, *position);
        let err = log
            .append(
                "elsewhere",
                ExpectedVersion::Any,
                vec![NewEvent::new(*id, "x")],
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::IdOnOtherStream { .. }), "{err}");
    }
    assert!(
        index::find_id(&log.shared.ids, &random_id(1_000_000))
            .unwrap()
            .is_none()
    );
    assert_eq!(log.head().unwrap(), expected.len() as u64);
}

#[test]
fn stream_runs_longer_than_a_run_and_across_groups_read_back() {
    let dir = TempDir::new("stream-runs");
    let n = index::RUN_MAX as u128 * 2 + 10;
    {
        let log = open(&dir);
        // One append longer than a run, interleaved with another stream.
        log.append("a", ExpectedVersion::NoStream, evs(0..5))
            .unwrap();
        log.append("b", ExpectedVersion::Any, evs(5..6)).unwrap();
        log.append("a", ExpectedVersion::Exact(5), evs(6..n))
            .unwrap();
        assert_eq!(log.stream_version("a").unwrap(), n as u64 - 1);
        // Still pending: written to the tree on close.
        assert!(log.shared.streams.is_empty());
    }
    // After a reopen the writer knows no version: it reads the runs.
    let log = open(&dir);
    assert_eq!(log.shared.streams.len(), 4);
    assert_eq!(log.stream_version("a").unwrap(), n as u64 - 1);
    let a = log.read_stream("a", 0, usize::MAX).unwrap();
    assert_eq!(a.len() as u128, n - 1);
    for (i, e) in a.iter().enumerate() {
        assert_eq!(e.stream_version, i as u64 + 1);
    }
    let middle = log.read_stream("a", 300, 3).unwrap();
    assert_eq!(
        middle.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [300, 301, 302]
    );
    let r = log
        .append("a", ExpectedVersion::Exact(n as u64 - 1), evs(n..n + 1))
        .unwrap();
    assert_eq!(r.stream_version, n as u64);
    // Across the tree and the pending run.
    let across = log.read_stream("a", n as u64 - 2, 10).unwrap();
    assert_eq!(
        across.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [n as u64 - 2, n as u64 - 1, n as u64]
    );
    assert!(log.read_stream("c", 1, 10).unwrap().is_empty());
    assert_consistent(&log);
}

#[test]
fn unknown_layout_is_refused() {
    let dir = TempDir::new("format");
    {
        let log = open(&dir);
        log.append("a", ExpectedVersion::Any, evs(1..2)).unwrap();
        log.shared.meta.insert("format", &pos_key(1)[..]).unwrap();
    }
    let err = SledLog::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("layout version"), "{err}");
}

#[test]
fn pending_stream_runs_lost_in_a_crash_are_rebuilt_on_open() {
    let dir = TempDir::new("rebuild-runs");
    let before;
    {
        let log = open(&dir);
        for i in 0..30u128 {
            let stream = format!("s{}", i % 4);
            let v = log.stream_version(&stream).unwrap();
            log.append(&stream, ExpectedVersion::Exact(v), evs(i * 3..i * 3 + 3))
                .unwrap();
        }
        before = assert_consistent(&log);
    }
    {
        // What a crash leaves: the runs written since the indexed head are
        // only in memory, so neither they nor the marker reach the disk.
        let db = open_db(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        db.open_tree("streams").unwrap().clear().unwrap();
        db.open_tree("meta").unwrap().remove("indexed").unwrap();
        db.flush().unwrap();
    }
    let log = open(&dir);
    assert_eq!(assert_consistent(&log), before);
    assert_eq!(log.read_stream("s2", 0, 100).unwrap().len(), 21);
    let r = log
        .append("s2", ExpectedVersion::Exact(21), evs(500..501))
        .unwrap();
    assert_eq!((r.first_position, r.stream_version), (91, 22));
}

#[test]
fn stream_runs_keep_the_decision_order() {
    assert_eq!(
        stream_runs::<&str>(&[]),
        Vec::<std::ops::Range<usize>>::new()
    );
    assert_eq!(
        stream_runs(&["c", "c", "a", "c", "c", "c"]),
        vec![0..2, 2..3, 3..6]
    );
    assert_eq!(stream_runs(&["x"]), vec![0..1]);
}

/// Where the stream runs of the tree reach: `meta/indexed`.
fn indexed_head(log: &SledLog) -> u64 {
    log.shared
        .meta
        .get(INDEXED_KEY)
        .unwrap()
        .map_or(0, |v| u64::from_be_bytes(v.as_ref().try_into().unwrap()))
}

/// Every stream's runs in the tree follow each other without overlap or gap:
/// each starts where the previous one ended.
fn assert_stream_runs_well_formed(log: &SledLog) {
    let mut previous: Option<(Vec<u8>, u64)> = None; // stream, next version
    for item in log.shared.streams.iter() {
        let (k, v) = item.unwrap();
        let (stream, version) = k.split_at(k.len() - 8);
        let version = u64::from_be_bytes(version.try_into().unwrap());
        assert!(!v.is_empty() && v.len() % 8 == 0 && v.len() / 8 <= index::RUN_MAX);
        if let Some((s, next)) = &previous
            && s.as_slice() == stream
        {
            assert_eq!(
                version,
                *next,
                "run of {:?} overlaps or skips",
                String::from_utf8_lossy(stream)
            );
        }
        previous = Some((stream.to_vec(), version + v.len() as u64 / 8));
    }
}

/// Reads every stream back whole and checks it against the log's order.
fn assert_streams_read_back(log: &SledLog) {
    let all = assert_consistent(log);
    let mut by_stream = std::collections::HashMap::<&str, Vec<u64>>::new();
    for e in &all {
        by_stream.entry(&e.stream).or_default().push(e.position);
    }
    for (stream, positions) in by_stream {
        let read: Vec<u64> = log
            .read_stream(stream, 0, usize::MAX)
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(read, positions, "stream {stream}");
    }
}

/// Appends `n` single events from 4 threads, ids from `first`: one in ten
/// to the thread's long-lived stream, the others each to a stream of its
/// own (one new stream per conversation, as in the engine).
fn append_many_streams(log: &SledLog, first: u128, n: u128) {
    const THREADS: u128 = 4;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for i in (t..n).step_by(THREADS as usize) {
                    let id = first + i;
                    let (stream, expected) = if i % 10 == 0 {
                        (format!("hot{t}"), ExpectedVersion::Any)
                    } else {
                        (format!("c{id}"), ExpectedVersion::NoStream)
                    };
                    log.append(&stream, expected, evs(id..id + 1)).unwrap();
                }
            });
        }
    });
}

#[test]
fn stream_runs_are_written_a_bounded_share_per_commit() {
    let dir = TempDir::new("run-generations");
    let n = 2 * PENDING_RUNS_MAX as u128 + 400;
    let (crash_tree, crash_indexed, head) = {
        let log = open(&dir);
        append_many_streams(&log, 0, n);
        // Commits of at most 4 events: no commit wrote more than the fixed
        // share, and yet a whole generation reached the tree.
        let stats = log.stats();
        assert!(
            (1..=RUN_ITEMS_PER_COMMIT as u64).contains(&stats.max_run_items_per_commit),
            "{stats:?}"
        );
        let indexed = indexed_head(&log);
        assert!(indexed >= PENDING_RUNS_MAX as u64, "indexed {indexed}");
        // The second generation is on its way: some of its runs are in the
        // tree already, above the indexed head.
        let above = log
            .shared
            .streams
            .iter()
            .values()
            .filter(|v| index::run_above(&v.as_ref().unwrap()[..], indexed))
            .count();
        assert!(above > 0, "no run above the indexed head {indexed}");
        assert_stream_runs_well_formed(&log);
        assert_streams_read_back(&log);
        // What a crash now would leave on disk: the tree as it is, the
        // indexed head as it is (every record is durable).
        let tree: Vec<(sled::IVec, sled::IVec)> =
            log.shared.streams.iter().map(|i| i.unwrap()).collect();
        (tree, indexed, log.head().unwrap())
    };
    {
        // The clean close wrote every run; put back the crash's state.
        let db = open_db(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        let streams = db.open_tree("streams").unwrap();
        streams.clear().unwrap();
        for (k, v) in crash_tree {
            streams.insert(k, v).unwrap();
        }
        db.open_tree("meta")
            .unwrap()
            .insert(INDEXED_KEY, &pos_key(crash_indexed)[..])
            .unwrap();
        db.flush().unwrap();
    }
    {
        // The runs above the indexed head are rebuilt over the half-written
        // generation; writing them again overwrites the same keys.
        let log = open(&dir);
        assert_eq!(log.head().unwrap(), head);
        assert_streams_read_back(&log);
        append_many_streams(&log, n, PENDING_RUNS_MAX as u128);
        assert_stream_runs_well_formed(&log);
        assert_streams_read_back(&log);
    }
    let log = open(&dir);
    assert_eq!(indexed_head(&log), log.head().unwrap());
    assert_stream_runs_well_formed(&log);
    assert_streams_read_back(&log);
}

/// Copies sled's files of a closed log (not the write-ahead file).
fn copy_sled_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_sled_files(&entry.path(), &target);
        } else if entry.file_name() != crate::wal::FILE_NAME {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn acknowledged_groups_sled_lost_are_replayed_from_the_write_ahead_file() {
    let dir = TempDir::new("wal-replay");
    let before = TempDir::new("wal-replay-sled");
    {
        let log = open(&dir);
        log.append("a", ExpectedVersion::Any, evs(1..4)).unwrap();
    }
    // sled as it was at head 3.
    copy_sled_files(dir.path(), before.path());
    let after;
    {
        let log = open(&dir);
        log.append("a", ExpectedVersion::Exact(3), evs(4..6))
            .unwrap();
        let results = log.append_many(vec![
            AppendRequest::new("b", ExpectedVersion::NoStream, evs(6..8)),
            AppendRequest::new("a", ExpectedVersion::Exact(5), evs(8..9)),
        ]);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        after = assert_consistent(&log);
    }
    // What a power cut could leave: sled without the last two groups (its
    // writes were not synced yet), the write-ahead file with them.
    copy_sled_files(before.path(), dir.path());
    {
        let log = open(&dir);
        assert_eq!(assert_consistent(&log), after);
        assert_eq!(log.stream_version("a").unwrap(), 6);
        assert_eq!(log.stream_version("b").unwrap(), 2);
        // Retries of the replayed appends answer with their positions.
        let retried = log
            .append("b", ExpectedVersion::NoStream, evs(6..8))
            .unwrap();
        assert_eq!((retried.first_position, retried.last_position), (6, 7));
        let next = log
            .append("b", ExpectedVersion::Exact(2), evs(9..10))
            .unwrap();
        assert_eq!(next.first_position, 9);
    }
    // Replayed, then checkpointed: a second open finds the same log.
    let log = open(&dir);
    assert_eq!(log.head().unwrap(), 9);
    assert_eq!(&assert_consistent(&log)[..8], &after[..]);
}

/// sled recovers a prefix of the inserts a group makes outside a
/// transaction (`GroupWrites::in_order`); `open` must repair every such
/// prefix. With the group's write-ahead entry on disk (it was acknowledged)
/// the group comes back whole; without it the log ends at the previous head,
/// with nothing of the group in its indexes, unless the head itself landed.
/// The group closes chunks, starts id buckets and writes a share of a sealed
/// generation of stream runs, so every kind of insert is in the prefixes.
#[test]
fn every_prefix_of_a_groups_inserts_is_repaired_on_open() {
    let dir = TempDir::new("prefix");
    let before = TempDir::new("prefix-before");
    let base = PENDING_RUNS_MAX as u128 + 100;
    let group: Vec<AppendRequest> = (base..base + 150)
        .map(|id| {
            AppendRequest::new(
                format!("g{}", id % 7),
                ExpectedVersion::Any,
                evs(id..id + 1),
            )
        })
        .collect();
    let (ops, expected, wal_after) = {
        let log = open(&dir);
        append_many_streams(&log, 0, base);
        // What a crash right now would leave: everything synced, no
        // write-ahead entry needed.
        log.shared.db.flush().unwrap();
        copy_sled_files(dir.path(), before.path());
        log.shared.written_in_order.lock().unwrap().clear();
        let answers = log.append_many(group.clone());
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        let ops = std::mem::take(&mut *log.shared.written_in_order.lock().unwrap());
        let wal_after = std::fs::read(dir.path().join(crate::wal::FILE_NAME)).unwrap();
        (ops, assert_consistent(&log), wal_after)
    };
    let head_before = base as u64;
    let count = |tree: &str| {
        ops.iter()
            .filter(|(t, _, _)| &t[..] == tree.as_bytes())
            .count()
    };
    assert!(count("events") >= 3, "chunks: {}", count("events"));
    assert!(count("streams") >= 16, "run items: {}", count("streams"));
    assert!(count("ids") >= 2, "id buckets: {}", count("ids"));
    assert_eq!(
        ops.last().map(|(t, k, _)| (&t[..], &k[..])),
        Some((&b"meta"[..], HEAD_KEY))
    );

    // Every prefix, except that only every 16th ends inside the run items
    // (they are all alike), to keep the test short.
    let runs = ops
        .iter()
        .position(|(t, _, _)| &t[..] == b"streams")
        .unwrap()
        ..ops
            .iter()
            .rposition(|(t, _, _)| &t[..] == b"streams")
            .unwrap();
    let prefixes = (0..=ops.len()).filter(|n| !runs.contains(n) || (n - runs.start) % 16 == 0);
    for landed in prefixes {
        for with_wal in [true, false] {
            let trial = TempDir::new("prefix-trial");
            copy_sled_files(before.path(), trial.path());
            if with_wal {
                std::fs::write(trial.path().join(crate::wal::FILE_NAME), &wal_after).unwrap();
            }
            {
                let db = open_db(trial.path(), DEFAULT_CACHE_BYTES).unwrap();
                for (tree, key, value) in &ops[..landed] {
                    db.open_tree(tree)
                        .unwrap()
                        .insert(key, value.clone())
                        .unwrap();
                }
                db.flush().unwrap();
            }
            let log = open(&trial);
            let whole = with_wal || landed == ops.len();
            let context = format!(
                "{landed} of {} inserts, write-ahead entry: {with_wal}",
                ops.len()
            );
            let head = if whole {
                expected.len() as u64
            } else {
                head_before
            };
            assert_eq!(log.head().unwrap(), head, "{context}");
            assert_eq!(
                assert_consistent(&log),
                expected[..head as usize],
                "{context}"
            );
            assert_id_buckets_well_formed(&log);
            assert_stream_runs_well_formed(&log);
            assert_streams_read_back(&log);
            if !whole {
                for item in log.shared.streams.iter().chain(log.shared.ids.iter()) {
                    let (_, v) = item.unwrap();
                    assert!(!index::run_above(&v, head_before), "{context}");
                }
                for id in base..base + 150 {
                    let id = Uuid::from_u128(id);
                    assert_eq!(
                        index::find_id(&log.shared.ids, &id).unwrap(),
                        None,
                        "{context}"
                    );
                }
            }
            // Retrying the group: the original positions when it was
            // recovered, new ones (the same, as nothing else came) otherwise.
            let retried = log.append_many(group.clone());
            let positions: Vec<u64> = retried
                .iter()
                .map(|r| r.as_ref().unwrap().first_position)
                .collect();
            assert_eq!(
                positions,
                (head_before + 1..=head_before + 150).collect::<Vec<_>>(),
                "{context}"
            );
            assert_eq!(log.head().unwrap(), head_before + 150, "{context}");
        }
    }
}
