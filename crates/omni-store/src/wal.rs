//! The write-ahead file that makes a group commit durable with one
//! `fdatasync` (see the `sled_log` module docs, "Durability and group
//! commit", for how it fits with sled).
//!
//! A fixed-size file, filled with zeros when it is created, so that writing
//! into it never allocates blocks or changes the file's size: its
//! `fdatasync` then only has data to flush, which on ext4 is about the cost
//! of one device round trip (an append to a growing file costs an inode
//! update on top). Each group commit writes one **entry** after the previous
//! one:
//!
//! `[len u32 LE][crc32 u32 LE][first position u64 BE][count u32 BE][frames]`
//!
//! where `len` counts the bytes after the 8-byte header, the checksum covers
//! them, and `frames` are the group's records framed as in the `record`
//! module (each with its own checksum and position). When an entry does not
//! fit in the space left, the log checkpoints (everything in sled made
//! durable) and writes from the start again. Nothing is ever erased: an entry
//! is recognised on reading by its checksum, and kept only if it continues
//! the log where sled's durable state ends (see `SledLog::open`); older
//! entries from before a checkpoint name positions sled already holds.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Name of the file in the log's directory.
pub(crate) const FILE_NAME: &str = "wal";
/// Size of the file. Why 4 MiB: a group commit of the conversation service is
/// 1–20 KiB, so this is hundreds of commits between checkpoints even at
/// 10 000 conversations/s, while creating it (writing the zeros) stays a few
/// milliseconds for the many short-lived logs of the tests.
pub(crate) const CAPACITY: u64 = 4 * 1024 * 1024;
const HEADER_LEN: usize = 8;
/// First position and record count, after the header.
const PREFIX_LEN: usize = 8 + 4;

/// One entry as read back: the group's first position and its frames.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) first_position: u64,
    pub(crate) count: u32,
    pub(crate) frames: Vec<u8>,
}

impl Entry {
    pub(crate) fn last_position(&self) -> u64 {
        self.first_position + u64::from(self.count) - 1
    }
}

/// The open file and where the next entry goes.
pub(crate) struct Wal {
    path: PathBuf,
    file: File,
    capacity: u64,
    offset: u64,
    buf: Vec<u8>,
}

fn io_error(op: &'static str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend {
        op,
        reason: format!("{}: {e}", path.display()),
    }
}

impl Wal {
    /// Opens the file in `dir`, creating it when missing, and returns it with
    /// every intact entry it holds, in file order. The next entry is written
    /// at the start: the caller replays what it needs and checkpoints first.
    pub(crate) fn open(dir: &Path) -> Result<(Wal, Vec<Entry>), StoreError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            create(dir, &path)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error("open", &path, e))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes)
            .map_err(|e| io_error("open", &path, e))?;
        let entries = entries(&bytes);
        let wal = Wal {
            capacity: bytes.len() as u64,
            path,
            file,
            offset: 0,
            buf: Vec::new(),
        };
        Ok((wal, entries))
    }

    /// Builds one group's entry, to be written by [`Wal::write_prepared`].
    /// Returns `false` when it does not fit in the space left: the caller
    /// then makes the group durable by a checkpoint instead.
    ///
    /// Why two steps: the entry copies the frames, so the records can go to
    /// the indexer thread before the write and its `fdatasync` start.
    pub(crate) fn prepare<'f>(
        &mut self,
        first_position: u64,
        frames: impl ExactSizeIterator<Item = &'f [u8]>,
    ) -> bool {
        let count = u32::try_from(frames.len()).expect("a group holds far fewer records");
        self.buf.clear();
        self.buf.extend_from_slice(&[0; HEADER_LEN]);
        self.buf.extend_from_slice(&first_position.to_be_bytes());
        self.buf.extend_from_slice(&count.to_be_bytes());
        for frame in frames {
            self.buf.extend_from_slice(frame);
        }
        if self.offset + self.buf.len() as u64 > self.capacity {
            return false;
        }
        let len = u32::try_from(self.buf.len() - HEADER_LEN)
            .expect("an entry fits in the file, whose size fits in a u32");
        let crc = crc32fast::hash(&self.buf[HEADER_LEN..]);
        self.buf[0..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        true
    }

    /// Writes the entry [`Wal::prepare`] built and waits until it is on disk.
    pub(crate) fn write_prepared(&mut self) -> Result<(), StoreError> {
        self.file
            .write_all_at(&self.buf, self.offset)
            .map_err(|e| io_error("append (write-ahead)", &self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| io_error("append (fdatasync)", &self.path, e))?;
        self.offset += self.buf.len() as u64;
        Ok(())
    }

    /// After a checkpoint: every entry written so far is in sled, durably, so
    /// the next one may overwrite them.
    pub(crate) fn rewind(&mut self) {
        self.offset = 0;
    }
}

/// Creates the zero-filled file under a temporary name and renames it into
/// place once it is durable, so that a crash never leaves a short file.
fn create(dir: &Path, path: &Path) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let error = |e| io_error("open (creating the write-ahead file)", path, e);
    let file = File::create(&tmp).map_err(error)?;
    let zeros = vec![0; 256 * 1024];
    for _ in 0..CAPACITY / zeros.len() as u64 {
        (&file).write_all(&zeros).map_err(error)?;
    }
    file.sync_all().map_err(error)?;
    std::fs::rename(&tmp, path).map_err(error)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(error)
}

/// The intact entries from the start of `bytes`, up to the first that is
/// not (zeros, a torn write, or the middle of an older entry).
fn entries(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(entry) = next_entry(&mut rest) {
        out.push(entry);
    }
    out
}

fn next_entry(rest: &mut &[u8]) -> Option<Entry> {
    let len = u32::from_le_bytes(rest.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?);
    let body = rest.get(HEADER_LEN..HEADER_LEN.checked_add(len)?)?;
    if len < PREFIX_LEN || crc32fast::hash(body) != crc {
        return None;
    }
    let first_position = u64::from_be_bytes(body[0..8].try_into().ok()?);
    let count = u32::from_be_bytes(body[8..12].try_into().ok()?);
    if first_position == 0 || count == 0 {
        return None;
    }
    *rest = &rest[HEADER_LEN + len..];
    Some(Entry {
        first_position,
        count,
        frames: body[PREFIX_LEN..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TempDir;

    /// Prepares and writes one entry; `false` when it does not fit.
    fn append(wal: &mut Wal, first_position: u64, frames: &[&[u8]]) -> bool {
        let fits = wal.prepare(first_position, frames.iter().copied());
        if fits {
            wal.write_prepared().unwrap();
        }
        fits
    }

    fn opened(name: &str) -> (TempDir, Wal) {
        let dir = TempDir::new(name);
        std::fs::create_dir_all(dir.path()).unwrap();
        let (wal, found) = Wal::open(dir.path()).unwrap();
        assert!(found.is_empty());
        (dir, wal)
    }

    #[test]
    fn entries_read_back_until_the_first_damaged_one() {
        let (dir, mut wal) = opened("wal-entries");
        let groups: [(u64, &[&[u8]]); 3] = [(1, &[b"ab", b"c"]), (3, &[b"def"]), (4, &[b"g"])];
        for (first, frames) in groups {
            assert!(append(&mut wal, first, frames));
        }
        let mut bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(bytes.len() as u64, CAPACITY);
        let read = entries(&bytes);
        let summary: Vec<(u64, u64, &[u8])> = read
            .iter()
            .map(|e| (e.first_position, e.last_position(), e.frames.as_slice()))
            .collect();
        assert_eq!(
            summary,
            [(1, 2, &b"abc"[..]), (3, 3, &b"def"[..]), (4, 4, &b"g"[..])]
        );
        // A torn second entry hides the third: it may be an older one.
        let second = HEADER_LEN + PREFIX_LEN + 3;
        bytes[second + HEADER_LEN + PREFIX_LEN] ^= 1;
        assert_eq!(entries(&bytes).len(), 1);
    }

    #[test]
    fn an_entry_that_does_not_fit_is_refused_and_rewind_starts_over() {
        let (dir, mut wal) = opened("wal-rewind");
        let big = vec![7; CAPACITY as usize / 2];
        assert!(append(&mut wal, 1, &[big.as_slice()]));
        assert!(!append(&mut wal, 2, &[big.as_slice()]));
        wal.rewind();
        assert!(append(&mut wal, 2, &[&b"x"[..]]));
        drop(wal);
        let (_, found) = Wal::open(dir.path()).unwrap();
        // The new entry, then the rest of the old one, which does not read
        // as an entry.
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].first_position, found[0].count), (2, 1));
    }
}
