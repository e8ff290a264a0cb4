//! The omni-store (sled) side of the benchmark.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use omni_store::{AppendRequest, EventLog, ExpectedVersion, NewEvent, SledLog, Uuid};
use tokio::sync::oneshot;

use crate::{Measurement, Scenario, payload};

/// Runs `scenario` for `duration` on a fresh log in `dir` (left in place for
/// [`replay`]).
pub fn run(
    dir: &Path,
    scenario: Scenario,
    duration: Duration,
    payload_len: usize,
) -> anyhow::Result<Measurement> {
    let log = Arc::new(SledLog::open(dir).with_context(|| format!("open {}", dir.display()))?);
    let flushes_before = log.stats().flushes;
    let mut m = match scenario {
        Scenario::Writers { writers, batch } => {
            writers_run(&log, writers, batch, duration, payload_len)?
        }
        Scenario::Bulk { requests } => bulk_run(&log, requests, duration, payload_len)?,
    };
    m.flushes = Some(log.stats().flushes - flushes_before);
    Arc::into_inner(log)
        .context("a writer task still holds the log")?
        .close()?;
    Ok(m)
}

/// `writers` tasks appending `batch` events at a time to their own streams, with the exact
/// expected version a command handler would pass, each awaiting its acknowledgement.
///
/// Tasks on a two-thread tokio runtime, as JetStream's publishers are and as the conversation
/// service appends (`append_many_then`, answered through a oneshot), so that both logs are
/// driven alike: a waiting appender costs a task wake-up, not a parked OS thread.
fn writers_run(
    log: &Arc<SledLog>,
    writers: usize,
    batch: usize,
    duration: Duration,
    payload_len: usize,
) -> anyhow::Result<Measurement> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    runtime.block_on(async {
        let start = Instant::now();
        let deadline = start + duration;
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let log = Arc::clone(log);
                tokio::spawn(async move {
                    let stream = format!("writer-{w}");
                    let mut seq = (w as u64) << 40;
                    let mut version = 0;
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let events = (0..batch)
                            .map(|_| {
                                seq += 1;
                                NewEvent::new(Uuid::now_v7(), payload(payload_len, seq))
                            })
                            .collect();
                        let request =
                            AppendRequest::new(&stream, ExpectedVersion::Exact(version), events);
                        let (answer, answered) = oneshot::channel();
                        let t = Instant::now();
                        log.append_many_then(
                            vec![request],
                            Box::new(move |results| {
                                let _ = answer.send(results);
                            }),
                        );
                        let result = answered
                            .await
                            .context("the log dropped an append unanswered")?
                            .pop()
                            .context("no answer for the append")??;
                        latencies.push(t.elapsed());
                        version = result.stream_version;
                    }
                    anyhow::Ok((version, latencies))
                })
            })
            .collect();
        Measurement::of_tasks(handles, start).await
    })
}

/// One caller submitting `requests` one-event appends per `append_many`,
/// spread over 64 streams.
fn bulk_run(
    log: &SledLog,
    requests: usize,
    duration: Duration,
    payload_len: usize,
) -> anyhow::Result<Measurement> {
    let streams: Vec<String> = (0..64).map(|i| format!("bulk-{i}")).collect();
    let mut m = Measurement::default();
    let mut seq = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        let batch = (0..requests)
            .map(|i| {
                seq += 1;
                let event = NewEvent::new(Uuid::now_v7(), payload(payload_len, seq));
                AppendRequest::new(
                    streams[i % streams.len()].as_str(),
                    ExpectedVersion::Any,
                    vec![event],
                )
            })
            .collect();
        let t = Instant::now();
        for answer in log.append_many(batch) {
            answer?;
        }
        m.latencies.push(t.elapsed());
        m.events += requests as u64;
    }
    m.elapsed = start.elapsed();
    Ok(m)
}

/// Reads the whole log in `dir` with `for_each_from`, touching every payload.
pub fn replay(dir: &Path) -> anyhow::Result<Measurement> {
    let log = SledLog::open(dir).with_context(|| format!("open {}", dir.display()))?;
    let mut checksum = 0u64;
    let start = Instant::now();
    let events = log.for_each_from(1, &mut |e| {
        checksum = checksum.wrapping_add(e.payload.len() as u64 ^ e.position);
        ControlFlow::Continue(())
    })?;
    let elapsed = start.elapsed();
    std::hint::black_box(checksum);
    log.close()?;
    Ok(Measurement {
        events,
        elapsed,
        ..Measurement::default()
    })
}
