//! The two indexes of the sled log, packed so that a commit writes few sled
//! items.
//!
//! Why packed: sled costs a few microseconds per item written or looked up,
//! so one `streams` and one `ids` item per event capped appends near 60k
//! events/s whatever the batch size. Packed, a commit rewrites one or two id
//! buckets for time-ordered (v7) ids, and stream runs are written in batches,
//! one item per stream appended to since the previous batch.
//!
//! * **Stream runs** (`streams` tree): key `stream 0x00 first_version`
//!   (u64 BE), value the positions (u64 BE each) of versions
//!   `first_version, first_version + 1, ...` — at most [`RUN_MAX`]. Each
//!   batch of runs adds one run per stream it covers; runs are never
//!   rewritten except when a torn tail is cut. Versions stay gap-free across
//!   runs.
//! * **Id buckets** (`ids` tree): key a lower bound of the bucket's ids
//!   (16 bytes), value up to [`BUCKET_MAX`] entries `id (16) | position (u64
//!   BE)` sorted by id. An id lives in the bucket with the greatest key at or
//!   below it, and every id of a bucket is below the next bucket's key, so a
//!   lookup is one reverse seek plus a binary search. Time-ordered ids always
//!   land in the last bucket, which fills up and is followed by a new one, like
//!   the record chunks; random ids split buckets in halves, like a B-tree.

use std::ops::{Bound, ControlFlow};

use sled::{IVec, Tree};
use uuid::Uuid;

use crate::StoreError;

/// Most positions one stream run holds (2 KiB), to keep sled items small.
pub(crate) const RUN_MAX: usize = 256;
/// Most entries one id bucket holds (3 KiB).
pub(crate) const BUCKET_MAX: usize = 128;
const BUCKET_ENTRY: usize = 16 + 8;

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend {
        op: "index",
        reason: e.to_string(),
    }
}

fn malformed(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        position: 0,
        reason: format!("malformed index item: {what}"),
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

// ---------------------------------------------------------------------------
// Stream runs
// ---------------------------------------------------------------------------

pub(crate) fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.len() + 9);
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// The positions of a run value, checked for shape.
fn run_positions<'v>(stream: &str, value: &'v [u8]) -> Result<&'v [u8], StoreError> {
    if value.is_empty() || value.len() % 8 != 0 {
        return Err(malformed(format!(
            "stream run of {stream:?} has {} bytes",
            value.len()
        )));
    }
    Ok(value)
}

fn run_first_version(stream: &str, key: &[u8]) -> Result<u64, StoreError> {
    key.len()
        .checked_sub(8)
        .filter(|&at| at == stream.len() + 1)
        .map(|at| u64_at(key, at))
        .ok_or_else(|| malformed(format!("stream run key of {stream:?}")))
}

/// Encodes the positions of one run.
pub(crate) fn encode_run(positions: &[u64]) -> Vec<u8> {
    positions.iter().flat_map(|p| p.to_be_bytes()).collect()
}

/// Visits `(version, position)` of `stream` from version `from` on, in
/// version order, until `visit` breaks.
pub(crate) fn for_each_stream_entry(
    tree: &Tree,
    stream: &str,
    from: u64,
    mut visit: impl FnMut(u64, u64) -> Result<ControlFlow<()>, StoreError>,
) -> Result<(), StoreError> {
    let lo = stream_key(stream, 0);
    let hi = stream_key(stream, u64::MAX);
    // The run holding `from` starts at or before it.
    let start = match tree
        .range(lo.as_slice()..=stream_key(stream, from).as_slice())
        .next_back()
        .transpose()
        .map_err(backend)?
    {
        Some((k, _)) => k.to_vec(),
        None => lo,
    };
    for item in tree.range(start..=hi) {
        let (k, v) = item.map_err(backend)?;
        let first = run_first_version(stream, &k)?;
        for (i, p) in run_positions(stream, &v)?.chunks_exact(8).enumerate() {
            let version = first + i as u64;
            if version < from {
                continue;
            }
            if visit(version, u64_at(p, 0))?.is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The last `(version, position)` of `stream` whose position is at or below
/// `head`.
pub(crate) fn last_stream_entry(
    tree: &Tree,
    stream: &str,
    head: u64,
) -> Result<Option<(u64, u64)>, StoreError> {
    let range = stream_key(stream, 0)..=stream_key(stream, u64::MAX);
    for item in tree.range(range).rev() {
        let (k, v) = item.map_err(backend)?;
        let first = run_first_version(stream, &k)?;
        let positions = run_positions(stream, &v)?;
        if let Some(i) = positions
            .chunks_exact(8)
            .rposition(|p| u64_at(p, 0) <= head)
        {
            return Ok(Some((first + i as u64, u64_at(positions, i * 8))));
        }
    }
    Ok(None)
}

/// The key of the run holding `version` of `stream`, if any.
pub(crate) fn run_holding(
    tree: &Tree,
    stream: &str,
    version: u64,
) -> Result<Option<IVec>, StoreError> {
    let range = stream_key(stream, 0)..=stream_key(stream, version);
    Ok(tree
        .range(range)
        .next_back()
        .transpose()
        .map_err(backend)?
        .map(|(k, _)| k))
}

/// A run cut to its positions at or below `head` (`None`: nothing left).
/// Positions grow with versions inside a run, so this keeps a prefix and the
/// versions stay gap-free.
pub(crate) fn cut_run(value: &[u8], head: u64) -> Option<Vec<u8>> {
    let keep = value
        .chunks_exact(8)
        .take_while(|p| u64_at(p, 0) <= head)
        .count();
    (keep > 0).then(|| value[..keep * 8].to_vec())
}

/// Whether a run holds a position above `head` (malformed ones count: they
/// cannot be trusted either).
pub(crate) fn run_above(value: &[u8], head: u64) -> bool {
    value.len() % 8 != 0 || value.chunks_exact(8).any(|p| u64_at(p, 0) > head)
}

// ---------------------------------------------------------------------------
// Id buckets
// ---------------------------------------------------------------------------

fn bucket_entries(value: &[u8]) -> Result<&[u8], StoreError> {
    if value.is_empty() || value.len() % BUCKET_ENTRY != 0 {
        return Err(malformed(format!("id bucket of {} bytes", value.len())));
    }
    Ok(value)
}

fn entry_id(entry: &[u8]) -> &[u8] {
    &entry[..16]
}

/// The position stored for `id`, if any.
pub(crate) fn find_id(tree: &Tree, id: &Uuid) -> Result<Option<u64>, StoreError> {
    let Some((_, v)) = tree
        .range(..=&id.as_bytes()[..])
        .next_back()
        .transpose()
        .map_err(backend)?
    else {
        return Ok(None);
    };
    let entries = bucket_entries(&v)?;
    let n = entries.len() / BUCKET_ENTRY;
    let at = |i: usize| &entries[i * BUCKET_ENTRY..(i + 1) * BUCKET_ENTRY];
    // Binary search over the fixed-size entries.
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match entry_id(at(mid)).cmp(&id.as_bytes()[..]) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Ok(Some(u64_at(at(mid), 16))),
        }
    }
    Ok(None)
}

/// The greatest id in the index.
pub(crate) fn max_id(tree: &Tree) -> Result<Option<Uuid>, StoreError> {
    let Some((_, v)) = tree.last().map_err(backend)? else {
        return Ok(None);
    };
    let entries = bucket_entries(&v)?;
    let last = &entries[entries.len() - BUCKET_ENTRY..];
    Ok(Some(Uuid::from_bytes(
        entry_id(last).try_into().expect("16 bytes"),
    )))
}

/// The sled writes that add ids to the buckets: items to remove, then items
/// to insert.
#[derive(Debug, Default)]
pub(crate) struct BucketWrites {
    pub(crate) removes: Vec<IVec>,
    pub(crate) puts: Vec<([u8; 16], Vec<u8>)>,
    /// Whether a stored entry leaves its item (a bucket split in the
    /// middle, or re-keyed below its old key): only then do the writes have
    /// to land together. Otherwise every put keeps all the entries its key
    /// held or is a new key above every old id, so any prefix of them is an
    /// index that finds every id stored before.
    pub(crate) moves_entries: bool,
}

/// Plans adding `new` (ids not in the index yet, with their positions) to
/// the buckets. Reads the current buckets, so it must run on the only thread
/// that writes them.
pub(crate) fn add_ids(tree: &Tree, new: &mut [(Uuid, u64)]) -> Result<BucketWrites, StoreError> {
    new.sort_unstable_by_key(|(id, _)| *id);
    let mut writes = BucketWrites::default();
    let mut i = 0;
    while i < new.len() {
        let id = new[i].0;
        // The bucket for `id`; ids below every key go to the first bucket.
        let bucket = match tree
            .range(..=&id.as_bytes()[..])
            .next_back()
            .transpose()
            .map_err(backend)?
        {
            Some(kv) => Some(kv),
            None => tree.first().map_err(backend)?,
        };
        let next_key = match &bucket {
            Some((k, _)) => tree
                .range::<&[u8], _>((Bound::Excluded(&k[..]), Bound::Unbounded))
                .next()
                .transpose()
                .map_err(backend)?
                .map(|(k, _)| k),
            None => None,
        };
        let take = new[i..].partition_point(|(id, _)| {
            next_key
                .as_ref()
                .is_none_or(|next| id.as_bytes()[..] < next[..])
        });
        let added = &new[i..i + take];
        i += take;

        let mut merged: Vec<[u8; BUCKET_ENTRY]> = Vec::new();
        let old = match &bucket {
            Some((_, v)) => bucket_entries(v)?,
            None => &[],
        };
        let appending = old.is_empty()
            || entry_id(&old[old.len() - BUCKET_ENTRY..]) < &added[0].0.as_bytes()[..];
        let mut old_entries = old.chunks_exact(BUCKET_ENTRY).peekable();
        for (id, position) in added {
            while let Some(e) = old_entries.next_if(|e| entry_id(e) < &id.as_bytes()[..]) {
                merged.push(e.try_into().expect("entry size"));
            }
            let mut e = [0; BUCKET_ENTRY];
            e[..16].copy_from_slice(id.as_bytes());
            e[16..].copy_from_slice(&position.to_be_bytes());
            merged.push(e);
        }
        merged.extend(old_entries.map(|e| <[u8; BUCKET_ENTRY]>::try_from(e).expect("entry size")));

        // Appended ids fill buckets up (the next ones will follow them);
        // ids inserted in the middle split the bucket in halves so that both
        // have room.
        let pieces = merged.len().div_ceil(BUCKET_MAX);
        let size = if appending {
            BUCKET_MAX
        } else {
            merged.len().div_ceil(pieces)
        };
        let first_piece = writes.puts.len();
        for piece in merged.chunks(size) {
            let key: [u8; 16] = piece[0][..16].try_into().expect("16 bytes");
            writes.puts.push((key, piece.concat()));
        }
        writes.moves_entries |= !appending && pieces > 1;
        // Each piece is keyed by its first id; the old key goes unless the
        // first piece took it over.
        if let Some((k, _)) = bucket {
            if k[..] != writes.puts[first_piece].0[..] {
                writes.removes.push(k);
                writes.moves_entries = true;
            }
        }
    }
    Ok(writes)
}

/// The key of the bucket `id` would be stored in, if any.
pub(crate) fn bucket_holding(tree: &Tree, id: &Uuid) -> Result<Option<IVec>, StoreError> {
    Ok(tree
        .range(..=&id.as_bytes()[..])
        .next_back()
        .transpose()
        .map_err(backend)?
        .map(|(k, _)| k))
}

/// A bucket without its entries above `head` (`None`: nothing left). The key
/// is kept: it is still a lower bound of what is left.
pub(crate) fn cut_bucket(value: &[u8], head: u64) -> Option<Vec<u8>> {
    let kept: Vec<u8> = value
        .chunks_exact(BUCKET_ENTRY)
        .filter(|e| u64_at(e, 16) <= head)
        .flatten()
        .copied()
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// Whether a bucket holds an entry above `head` (malformed ones count).
pub(crate) fn bucket_above(value: &[u8], head: u64) -> bool {
    value.len() % BUCKET_ENTRY != 0
        || value
            .chunks_exact(BUCKET_ENTRY)
            .any(|e| u64_at(e, 16) > head)
}
