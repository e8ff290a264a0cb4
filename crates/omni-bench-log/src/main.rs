//! `omni-bench-log`: how many durable events per second the omni event log
//! takes, next to NATS JetStream doing the same work on the same machine.
//!
//! Why a reference: a raw events/s figure says little without knowing what
//! the disk and the cores allow. JetStream with file storage and
//! `sync_interval: always` (an fsync before every ack) is the durable log a
//! distributed omni would use instead, so it is the fair yardstick: both sides
//! acknowledge an event only once it is on disk.
//!
//! Every scenario runs for a fixed time on a fresh store, with events of
//! `--payload` bytes (200 by default, the size of a typical encoded domain
//! event):
//!
//! * `N writers × single events`: N concurrent appenders, each appending one
//!   event at a time to its own stream and waiting for the acknowledgement
//!   (command handlers of N interactions). On both sides the writers are N
//!   tokio tasks on a two-thread runtime: omni-store's await
//!   `append_many_then`'s answer as the conversation service does,
//!   JetStream's await each ack.
//! * `N writers × batches of 100`: the same with 100 events per append
//!   (JetStream has no atomic multi-message append here, so each task
//!   publishes 100 messages, then awaits their acks).
//! * `bulk`: one caller with `append_many` calls of `--bulk-batch` requests of
//!   one event each (seeding, replication catch-up). JetStream: one task
//!   publishing that many messages, then awaiting all acks: its best case.
//!
//! Then the log written by the bulk scenario is replayed with
//! `for_each_from` to measure read throughput.
//!
//! With the 1-writer scenario comes the disk's own bound for it (see the
//! `floor` module): one writer that waits for each acknowledgement cannot go
//! faster than a bare write-and-`fdatasync` loop, on either side.

mod floor;
mod jetstream;
mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Durable append throughput of omni-store (sled) vs NATS JetStream")]
struct Args {
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Payload bytes per event.
    #[arg(long, default_value_t = 200)]
    payload: usize,
    /// Requests (of one event each) per `append_many` call in the bulk
    /// scenario, and messages published before awaiting acks for JetStream.
    #[arg(long, default_value_t = 1000)]
    bulk_batch: usize,
    /// Measure omni-store only (no nats-server needed).
    #[arg(long)]
    no_jetstream: bool,
    /// Run only the scenarios whose label contains this text (e.g. `bulk`,
    /// `64 writers`), to profile one of them.
    #[arg(long)]
    only: Option<String>,
    /// Where the stores are created (a fresh directory inside it is removed
    /// afterwards); defaults to the system temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Bytes omni-store's write-ahead entry adds to one event's payload (entry
/// header, record frame, stream name, id), about: what the disk-bound loop
/// writes on top of `--payload`.
const ENTRY_OVERHEAD: usize = 100;

/// One workload, run the same way against both stores.
#[derive(Debug, Clone, Copy)]
pub enum Scenario {
    /// Concurrent writers, each appending `batch` events per append to its
    /// own stream and waiting for the acknowledgement.
    Writers {
        /// Concurrent appenders.
        writers: usize,
        /// Events per append.
        batch: usize,
    },
    /// One caller submitting many one-event appends at once.
    Bulk {
        /// Appends per call.
        requests: usize,
    },
}

impl Scenario {
    fn label(&self) -> String {
        match *self {
            Scenario::Writers { writers, batch } => {
                let who = if writers == 1 { "writer" } else { "writers" };
                match batch {
                    1 => format!("{writers} {who} × single events"),
                    _ => format!("{writers} {who} × batches of {batch}"),
                }
            }
            Scenario::Bulk { requests } => format!("bulk: append_many of {requests} appends"),
        }
    }
}

/// One concurrent writer: it reports its events and the latency of each of its calls.
type WriterTask = tokio::task::JoinHandle<anyhow::Result<(u64, Vec<Duration>)>>;

/// What one scenario achieved.
#[derive(Debug, Default)]
pub struct Measurement {
    /// Events acknowledged as durable.
    pub events: u64,
    /// Wall time from the start of the first append to the last answer.
    pub elapsed: Duration,
    /// Latency of every acknowledged call (append or publish+ack).
    pub latencies: Vec<Duration>,
    /// Flushes done by the store, when it reports them.
    pub flushes: Option<u64>,
}

impl Measurement {
    /// Sums what the writers started at `start` report.
    async fn of_tasks(
        tasks: Vec<WriterTask>,
        start: std::time::Instant,
    ) -> anyhow::Result<Measurement> {
        let mut m = Measurement::default();
        for task in tasks {
            let (events, latencies) = task.await??;
            m.events += events;
            m.latencies.extend(latencies);
        }
        m.elapsed = start.elapsed();
        Ok(m)
    }

    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i]
    }

    fn latency_cell(&mut self) -> String {
        format!(
            "{:.2} / {:.2}",
            ms(self.percentile(0.5)),
            ms(self.percentile(0.99))
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A payload of `len` bytes that differs per event (so nothing downstream
/// can deduplicate or trivially compress it), stamped with `seq`.
pub fn payload(len: usize, seq: u64) -> Vec<u8> {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A directory removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(base: Option<&Path>) -> anyhow::Result<Self> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = base.join(format!("omni-bench-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fmt_rate(r: f64) -> String {
    let r = r.round() as u64;
    let s = r.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nats = if args.no_jetstream {
        None
    } else {
        // Checked first so that a missing server fails in a second, not after
        // the omni-store half of the run.
        match jetstream::server_version() {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("omni-bench-log: {e:#}");
                std::process::exit(2);
            }
        }
    };
    let scratch = ScratchDir::new(args.dir.as_deref())?;
    let duration = Duration::from_secs_f64(args.secs);
    let scenarios = [
        Scenario::Writers {
            writers: 1,
            batch: 1,
        },
        Scenario::Writers {
            writers: 8,
            batch: 1,
        },
        Scenario::Writers {
            writers: 64,
            batch: 1,
        },
        Scenario::Writers {
            writers: 1,
            batch: 100,
        },
        Scenario::Writers {
            writers: 8,
            batch: 100,
        },
        Scenario::Writers {
            writers: 64,
            batch: 100,
        },
        Scenario::Bulk {
            requests: args.bulk_batch,
        },
    ];
    let scenarios: Vec<Scenario> = scenarios
        .into_iter()
        .filter(|s| {
            args.only
                .as_ref()
                .is_none_or(|o| s.label().contains(o.as_str()))
        })
        .collect();

    let mut sled_results = Vec::new();
    let mut replay = None;
    for (i, scenario) in scenarios.iter().enumerate() {
        let dir = scratch.0.join(format!("sled-{i}"));
        let m = store::run(&dir, *scenario, duration, args.payload)?;
        eprintln!(
            "omni-store  {:<40} {:>12} events/s",
            scenario.label(),
            fmt_rate(m.rate())
        );
        if matches!(scenario, Scenario::Bulk { .. }) {
            replay = Some(store::replay(&dir)?);
        }
        sled_results.push(m);
        std::fs::remove_dir_all(&dir).ok();
    }

    let one_writer = scenarios.iter().position(|s| {
        matches!(
            s,
            Scenario::Writers {
                writers: 1,
                batch: 1
            }
        )
    });
    let floor = if one_writer.is_some() {
        let m = floor::run(
            &scratch.0.join("floor"),
            duration,
            args.payload + ENTRY_OVERHEAD,
        )?;
        eprintln!(
            "disk        {:<40} {:>12} events/s",
            "write + fdatasync, nothing else",
            fmt_rate(m.rate())
        );
        Some(m)
    } else {
        None
    };

    let mut js_results: Vec<Option<Measurement>> = scenarios.iter().map(|_| None).collect();
    if nats.is_some() {
        let server = jetstream::Server::start(&scratch.0.join("nats"))?;
        for (scenario, slot) in scenarios.iter().zip(&mut js_results) {
            let m = server.run(*scenario, duration, args.payload)?;
            eprintln!(
                "JetStream   {:<40} {:>12} events/s",
                scenario.label(),
                fmt_rate(m.rate())
            );
            *slot = Some(m);
        }
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\n{cores} cores, {} B payloads, {} s per scenario; JetStream: {}\n",
        args.payload,
        args.secs,
        nats.as_deref().map_or("skipped".to_owned(), |v| format!(
            "{v}, file storage, sync_interval always"
        ))
    );
    println!(
        "| scenario | omni-store (sled) events/s | events/flush | p50 / p99 ms | JetStream events/s | p50 / p99 ms | sled / JetStream |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for ((scenario, s), j) in scenarios.iter().zip(&mut sled_results).zip(&mut js_results) {
        let per_flush = s.flushes.filter(|&f| f > 0).map_or("–".to_owned(), |f| {
            format!("{:.0}", s.events as f64 / f as f64)
        });
        let (js_rate, js_lat, ratio) = match j {
            Some(j) => (
                fmt_rate(j.rate()),
                j.latency_cell(),
                format!("{:.2}×", s.rate() / j.rate()),
            ),
            None => ("–".to_owned(), "–".to_owned(), "–".to_owned()),
        };
        println!(
            "| {} | {} | {per_flush} | {} | {js_rate} | {js_lat} | {ratio} |",
            scenario.label(),
            fmt_rate(s.rate()),
            s.latency_cell(),
        );
    }
    if let (Some(mut floor), Some(i)) = (floor, one_writer) {
        let floor_rate = floor.rate();
        let share = |m: Option<&Measurement>| {
            m.map_or("–".to_owned(), |m| {
                format!("{:.0} %", 100.0 * m.rate() / floor_rate)
            })
        };
        println!(
            "\nthe disk's bound for one writer (write + fdatasync of a {} B entry in a preallocated file, nothing else): {} events/s, p50 / p99 {} ms; 1 writer × single events reaches {} of it with omni-store, {} with JetStream",
            args.payload + ENTRY_OVERHEAD,
            fmt_rate(floor_rate),
            floor.latency_cell(),
            share(sled_results.get(i)),
            share(js_results[i].as_ref()),
        );
    }
    if let Some(r) = replay {
        println!(
            "\nreplay (for_each_from over the bulk log): {} events in {:.2} s = {} events/s, {:.0} MB/s of payload",
            r.events,
            r.elapsed.as_secs_f64(),
            fmt_rate(r.rate()),
            r.events as f64 * args.payload as f64 / r.elapsed.as_secs_f64() / 1e6
        );
    }
    Ok(())
}
