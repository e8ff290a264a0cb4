//! Behaviour tests of the sled event log, on real directories under the
//! system temp dir.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::sled_log::{HEAD_KEY, frames, pos_key, stream_key};
use crate::*;

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
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

    fn path(&self) -> &Path {
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
        s.ids.insert(id.as_bytes(), &pos_key(position)[..]).unwrap();
    }
    s.events.insert(pos_key(chunk_first), chunk).unwrap();
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
    assert!(
        log.shared
            .ids
            .get(Uuid::from_u128(900).as_bytes())
            .unwrap()
            .is_none()
    );
    assert!(
        log.shared
            .streams
            .get(stream_key("c", 2))
            .unwrap()
            .is_none()
    );
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
    assert!(
        log.shared
            .streams
            .get(stream_key("a", 3))
            .unwrap()
            .is_none()
    );
    assert!(
        log.shared
            .ids
            .get(Uuid::from_u128(900).as_bytes())
            .unwrap()
            .is_none()
    );
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
        let db = sled::open(dir.path()).unwrap();
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
}

#[test]
fn stale_stream_index_entry_is_reported_not_trusted() {
    let dir = TempDir::new("stale-index");
    let log = open(&dir);
    log.append("a", ExpectedVersion::Any, evs(1..3)).unwrap();
    log.append("b", ExpectedVersion::Any, evs(3..4)).unwrap();
    // An entry claiming "a" has a version 3 stored at position 3 (which is "b").
    log.shared
        .streams
        .insert(stream_key("a", 3), &pos_key(3)[..])
        .unwrap();
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
