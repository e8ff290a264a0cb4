//! Crash test of the sled event log: a child process appends in a loop and is
//! killed with SIGKILL at a random moment; the reopened log must hold every
//! acknowledged event, gap-free, and nothing half-written.
//!
//! The child is this very test, re-executed from the test binary with
//! `OMNI_CRASH_CHILD=<dir>`: it then runs the appender instead of the parent
//! logic (so no ignored test and no second binary are needed). After each
//! acknowledged append it prints one `ACK` line per event, so the parent
//! knows exactly what was promised before the kill.
//!
//! Each log directory is killed several times in a row (a chain), so later
//! kills also hit a log that was recovered from an earlier crash, sometimes
//! during that recovery itself. The parent checks the log after every
//! [`KILLS_PER_CHECK`] kills only: its check closes the log cleanly, which
//! writes every pending stream run, and between checks the children's
//! events pile up across kills until a generation of stream runs is sealed
//! and written a share per commit, so later kills land while one is half
//! written (the first child after a check lives longer for that).
//!
//! `OMNI_CRASH_TRIALS` sets the number of kills (default 20, about 15 s);
//! `OMNI_CRASH_SEED` the seed of the delays and append mix.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omni_store::{AppendRequest, EventLog, ExpectedVersion, NewEvent, SledLog};
use uuid::Uuid;

const CHILD_ENV: &str = "OMNI_CRASH_CHILD";
const CHILD_TRIAL_ENV: &str = "OMNI_CRASH_CHILD_TRIAL";
const TRIALS_ENV: &str = "OMNI_CRASH_TRIALS";
const SEED_ENV: &str = "OMNI_CRASH_SEED";
/// This test's name as libtest knows it, to re-execute only it.
const TEST_NAME: &str = "store_crash::sigkill_while_appending_loses_no_acknowledged_event";
/// Kills per log directory before starting a fresh one.
const KILLS_PER_LOG: u64 = 8;
/// Kills between two checks of the log (see the module docs).
const KILLS_PER_CHECK: u64 = 4;
/// Appending threads in the child, so groups mix several appenders.
const CHILD_THREADS: u64 = 2;
/// The child stops by itself after this long, should the parent be gone.
const CHILD_LIFETIME: Duration = Duration::from_secs(20);

/// A small seeded generator (xorshift64*): the test must not depend on a
/// random crate and must be reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What an event id encodes, so the parent can check any stored event
/// without having seen it acknowledged: the kill it was written before, the
/// child thread, a per-thread counter of its batch, and its place in the
/// batch (to prove batches are all-or-nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag {
    trial: u64,
    thread: u64,
    batch: u64,
    index: u64,
    len: u64,
}

impl Tag {
    fn id(self) -> Uuid {
        Uuid::from_u128(
            (u128::from(self.trial) << 96)
                | (u128::from(self.thread) << 88)
                | (u128::from(self.batch) << 16)
                | (u128::from(self.index) << 8)
                | u128::from(self.len),
        )
    }

    fn of(id: Uuid) -> Tag {
        let n = id.as_u128();
        Tag {
            trial: (n >> 96) as u64,
            thread: ((n >> 88) & 0xff) as u64,
            batch: ((n >> 16) & 0xff_ffff_ffff_ffff) as u64,
            index: ((n >> 8) & 0xff) as u64,
            len: (n & 0xff) as u64,
        }
    }
}

/// The payload of an event: its id's bytes spread over a length that
/// depends on the id (20 to ~1,000 bytes), so a payload from another event,
/// or a cut one, is recognised.
fn payload_of(id: Uuid) -> Vec<u8> {
    let bytes = id.as_bytes();
    let len = 20 + (id.as_u128() % 997) as usize;
    (0..len)
        .map(|i| bytes[i % 16] ^ (i as u8).wrapping_mul(31))
        .collect()
}

#[test]
fn sigkill_while_appending_loses_no_acknowledged_event() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let trial = std::env::var(CHILD_TRIAL_ENV)
            .expect("trial of the child")
            .parse()
            .expect("numeric trial");
        child_appender(Path::new(&dir), trial);
        return;
    }
    let trials: u64 = std::env::var(TRIALS_ENV)
        .map(|v| v.parse().expect("OMNI_CRASH_TRIALS is a number"))
        .unwrap_or(20);
    let seed: u64 = std::env::var(SEED_ENV)
        .map(|v| v.parse().expect("OMNI_CRASH_SEED is a number"))
        .unwrap_or(0x0C0F_FEE5);
    let mut rng = Rng::new(seed);
    let mut chain: Option<Chain> = None;
    let mut stats = TrialStats::default();
    for trial in 1..=trials {
        if chain.as_ref().is_none_or(|c| c.kills == KILLS_PER_LOG) {
            chain = Some(Chain::new(trial));
        }
        let chain = chain.as_mut().expect("chain");
        // The first child after a check lives longer, so that enough events
        // pile up for a generation of stream runs before the short-lived ones.
        let delay = if chain.kills % KILLS_PER_CHECK == 0 {
            Duration::from_millis(800 + rng.below(700))
        } else {
            Duration::from_millis(5 + rng.below(296))
        };
        let context = format!("seed {seed}, trial {trial}, kill after {delay:?}");
        chain.kill_once(trial, delay, &context, &mut stats);
    }
    if let Some(chain) = chain.as_mut().filter(|c| c.kills % KILLS_PER_CHECK != 0) {
        stats.unacknowledged += chain.check(&format!("seed {seed}, after the last kill"));
    }
    eprintln!(
        "store crash test: {trials} kills, {} acknowledged events checked, {} completed but unacknowledged",
        stats.acknowledged, stats.unacknowledged
    );
}

#[derive(Default)]
struct TrialStats {
    acknowledged: u64,
    unacknowledged: u64,
}

/// One log directory killed several times, with every event acknowledged so
/// far: position → id.
struct Chain {
    dir: PathBuf,
    kills: u64,
    acknowledged: BTreeMap<u64, Uuid>,
}

impl Drop for Chain {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Kills the child if the parent fails before it did.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Chain {
    fn new(trial: u64) -> Self {
        let dir =
            std::env::temp_dir().join(format!("omni-store-crash-{}-{trial}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Chain {
            dir,
            kills: 0,
            acknowledged: BTreeMap::new(),
        }
    }

    fn kill_once(&mut self, trial: u64, delay: Duration, context: &str, stats: &mut TrialStats) {
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new(exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &self.dir)
            .env(CHILD_TRIAL_ENV, trial.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the child appender");
        let mut child = KillOnDrop(child);
        let stdout = child.0.stdout.take().expect("piped stdout");
        let stderr = child.0.stderr.take().expect("piped stderr");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stdout).read_to_string(&mut text);
            // A line the kill cut short has no newline yet: it was not
            // printed, so it does not count.
            let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            complete
                .lines()
                .filter(|l| l.starts_with("ACK "))
                .map(str::to_owned)
                .collect::<Vec<String>>()
        });
        let errors = std::thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        std::thread::sleep(delay);
        child.0.kill().expect("SIGKILL the child");
        let status = child.0.wait().expect("reap the child");
        let lines = reader.join().expect("stdout reader");
        let errors = errors.join().expect("stderr reader").join("\n");
        assert_eq!(
            status.signal(),
            Some(9),
            "{context}: the child ended before the kill ({status}):\n{errors}"
        );
        self.kills += 1;

        for line in &lines {
            let (position, id) = parse_ack(line);
            let before = self.acknowledged.insert(position, id);
            assert!(
                before.is_none_or(|b| b == id),
                "{context}: position {position} acknowledged twice"
            );
        }
        stats.acknowledged += lines.len() as u64;
        if self.kills % KILLS_PER_CHECK == 0 {
            stats.unacknowledged += self.check(context);
        }
    }

    /// Reopens the log and checks it against what was acknowledged; returns
    /// how many events are stored beyond the last acknowledged position.
    fn check(&mut self, context: &str) -> u64 {
        let log = SledLog::open(&self.dir)
            .unwrap_or_else(|e| panic!("{context}: reopening after the kill failed: {e}"));
        let head = log.head().expect("head");
        let all = log
            .read_all(1, usize::MAX)
            .unwrap_or_else(|e| panic!("{context}: reading the log failed: {e}"));
        assert_eq!(all.len() as u64, head, "{context}: positions have a gap");

        // Every acknowledged event is where it was promised, intact.
        let last_acknowledged = self.acknowledged.keys().next_back().copied().unwrap_or(0);
        assert!(
            head >= last_acknowledged,
            "{context}: head {head} is below acknowledged position {last_acknowledged}"
        );
        for (&position, &id) in &self.acknowledged {
            let e = &all[position as usize - 1];
            assert_eq!(e.position, position);
            assert_eq!(e.id, id, "{context}: wrong event at position {position}");
        }

        // Every stored event (acknowledged or not) is whole: its payload, its
        // stream, its version and its batch.
        let mut versions: HashMap<&str, u64> = HashMap::new();
        for e in &all {
            let tag = Tag::of(e.id);
            assert_eq!(
                e.payload,
                payload_of(e.id),
                "{context}: payload of position {} is damaged",
                e.position
            );
            let version = versions.entry(&e.stream).or_default();
            *version += 1;
            assert_eq!(
                e.stream_version, *version,
                "{context}: stream {} skips a version at position {}",
                e.stream, e.position
            );
            assert!(tag.index < tag.len, "{context}: foreign id {}", e.id);
            let first = (e.position - tag.index) as usize - 1;
            let last = first + tag.len as usize - 1;
            assert!(
                last < all.len(),
                "{context}: batch of position {} is cut at the head",
                e.position
            );
            for (i, other) in all[first..=last].iter().enumerate() {
                let t = Tag::of(other.id);
                assert_eq!(
                    (t.trial, t.thread, t.batch, t.index),
                    (tag.trial, tag.thread, tag.batch, i as u64),
                    "{context}: batch of position {} is not whole",
                    e.position
                );
            }
        }
        // Every stream reads back whole, from the stream runs written
        // before the kill and those rebuilt from the records.
        let mut positions: HashMap<&str, Vec<u64>> = HashMap::new();
        for e in &all {
            positions.entry(&e.stream).or_default().push(e.position);
        }
        for (stream, version) in versions {
            assert_eq!(log.stream_version(stream).expect("version"), version);
            let read: Vec<u64> = log
                .read_stream(stream, 0, usize::MAX)
                .unwrap_or_else(|err| panic!("{context}: reading stream {stream} failed: {err}"))
                .iter()
                .map(|e| e.position)
                .collect();
            assert_eq!(read, positions[stream], "{context}: stream {stream}");
        }

        // Retrying an acknowledged event returns its original position, even
        // across the crash.
        if let Some((&position, &id)) = self.acknowledged.iter().next_back() {
            let e = &all[position as usize - 1];
            let batch: Vec<NewEvent> = all[(position - Tag::of(id).index) as usize - 1..]
                .iter()
                .take(Tag::of(id).len as usize)
                .map(|e| NewEvent::new(e.id, e.payload.clone()))
                .collect();
            let r = log
                .append(&e.stream, ExpectedVersion::NoStream, batch)
                .unwrap_or_else(|err| panic!("{context}: retry refused: {err}"));
            assert!(r.first_position <= position && position <= r.last_position);
        }

        // And the log takes new appends.
        let id = Tag {
            trial: 0,
            thread: 0xff,
            batch: head,
            index: 0,
            len: 1,
        }
        .id();
        let r = log
            .append(
                "after-crash",
                ExpectedVersion::Any,
                vec![NewEvent::new(id, payload_of(id))],
            )
            .unwrap_or_else(|err| panic!("{context}: append after reopen failed: {err}"));
        assert_eq!(r.first_position, head + 1);
        self.acknowledged.insert(head + 1, id);
        log.close().expect("close");
        head - last_acknowledged
    }
}

fn parse_ack(line: &str) -> (u64, Uuid) {
    let mut parts = line.split_whitespace().skip(1);
    let position = parts.next().and_then(|p| p.parse().ok());
    let id = parts.next().and_then(|i| Uuid::parse_str(i).ok());
    match (position, id) {
        (Some(position), Some(id)) => (position, id),
        _ => panic!("malformed line from the child: {line:?}"),
    }
}

/// The child: appends until killed (or until [`CHILD_LIFETIME`]), printing
/// one `ACK <position> <id>` line per acknowledged event.
fn child_appender(dir: &Path, trial: u64) {
    let log = SledLog::open(dir).expect("child opens the log");
    std::thread::scope(|s| {
        for thread in 0..CHILD_THREADS {
            let log = &log;
            s.spawn(move || append_loop(log, trial, thread));
        }
    });
}

fn append_loop(log: &SledLog, trial: u64, thread: u64) {
    let mut rng = Rng::new(trial << 8 | thread);
    let own: Vec<String> = (0..3).map(|k| format!("t{thread}-s{k}")).collect();
    let mut batch = 0;
    let mut new_request = |rng: &mut Rng| {
        let len = if rng.below(3) == 0 {
            1 + rng.below(6)
        } else {
            1
        };
        batch += 1;
        let events: Vec<NewEvent> = (0..len)
            .map(|index| {
                let id = Tag {
                    trial,
                    thread,
                    batch,
                    index,
                    len,
                }
                .id();
                NewEvent::new(id, payload_of(id))
            })
            .collect();
        // Own streams with exact versions, a stream shared by threads, and
        // new streams (one per conversation in the engine: they make the
        // stream-run generations large, so kills land while one is being
        // written).
        if rng.below(4) == 0 {
            AppendRequest::new("shared", ExpectedVersion::Any, events)
        } else if rng.below(2) == 0 {
            let stream = format!("t{thread}-{trial}-{batch}");
            AppendRequest::new(stream, ExpectedVersion::NoStream, events)
        } else {
            let stream = &own[rng.below(own.len() as u64) as usize];
            let version = log.stream_version(stream).expect("stream version");
            AppendRequest::new(stream.as_str(), ExpectedVersion::Exact(version), events)
        }
    };
    let started = Instant::now();
    while started.elapsed() < CHILD_LIFETIME {
        let requests: Vec<AppendRequest> = if rng.below(3) == 0 {
            // Several requests at once; later ones on the same stream as an
            // earlier one of the batch may be refused for their version.
            // Now and then a burst, so each log soon holds several
            // generations of stream runs.
            let n = if rng.below(6) == 0 {
                500 + rng.below(2000)
            } else {
                2 + rng.below(30)
            };
            (0..n).map(|_| new_request(&mut rng)).collect()
        } else {
            vec![new_request(&mut rng)]
        };
        let answers = if requests.len() == 1 {
            let r = requests.into_iter().next().expect("one request");
            let events = r.events.clone();
            vec![(log.append(&r.stream, r.expected, r.events), events)]
        } else {
            let events: Vec<Vec<NewEvent>> = requests.iter().map(|r| r.events.clone()).collect();
            log.append_many(requests).into_iter().zip(events).collect()
        };
        let mut lines = String::new();
        for (answer, events) in answers {
            match answer {
                Ok(r) => {
                    for (position, e) in (r.first_position..).zip(&events) {
                        lines.push_str(&format!("ACK {position} {}\n", e.id));
                    }
                }
                Err(omni_store::StoreError::WrongExpectedVersion { .. }) => {}
                Err(e) => panic!("child append failed: {e}"),
            }
        }
        let mut out = std::io::stdout().lock();
        out.write_all(lines.as_bytes()).expect("stdout");
        out.flush().expect("stdout");
    }
}
