//! What the disk allows one writer: a loop that writes an entry into a
//! preallocated file and `fdatasync`s it, with nothing else around it.
//!
//! Why: a writer that waits for each acknowledgement gets one event per
//! flush, whatever the log, so its rate is bounded by this loop. Printed next
//! to the 1-writer figures, it says how much of each log's time is its own
//! and how much is the disk's.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::Measurement;

/// Size of the preallocated file; entries are written one after the other
/// and wrap around at its end, as omni-store's write-ahead file does.
const FILE_LEN: u64 = 4 * 1024 * 1024;

/// Writes `entry_len`-byte entries and `fdatasync`s each, for `duration`.
pub fn run(dir: &Path, duration: Duration, entry_len: usize) -> anyhow::Result<Measurement> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("floor");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // Zeros written and flushed first, so that the loop's writes never
    // allocate blocks or change the file's size.
    let zeros = vec![0; 256 * 1024];
    for _ in 0..FILE_LEN / zeros.len() as u64 {
        file.write_all(&zeros)?;
    }
    file.sync_all()?;

    let entry = crate::payload(entry_len, 1);
    let mut m = Measurement::default();
    let mut offset = 0;
    let start = Instant::now();
    while start.elapsed() < duration {
        let sent = Instant::now();
        file.write_all_at(&entry, offset)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("cannot fdatasync {}", path.display()))?;
        m.latencies.push(sent.elapsed());
        m.events += 1;
        offset += entry_len as u64;
        if offset + entry_len as u64 > FILE_LEN {
            offset = 0;
        }
    }
    m.elapsed = start.elapsed();
    Ok(m)
}
