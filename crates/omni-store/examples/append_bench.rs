//! Rough throughput figures for the sled event log (not a benchmark suite).
//!
//! `cargo run --release -p omni-store --example append_bench [bulk_events]`
//!
//! Prints appends/s with 1 and 8 concurrent appenders (one event per append,
//! every append durable before it returns), bulk write rate with large
//! batches, and replay rates over the whole log.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use omni_store::{EventLog, ExpectedVersion, NewEvent, SledLog, Uuid};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bulk: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("omni-store-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log = Arc::new(SledLog::open(&dir)?);
    let payload = vec![0xabu8; 200];
    let new = |i: u64| NewEvent::new(Uuid::from_u128(u128::from(i) + 1), payload.clone());

    // 1 appender.
    let n1 = 2_000u64;
    let t = Instant::now();
    for i in 0..n1 {
        log.append("single", ExpectedVersion::Any, vec![new(i)])?;
    }
    let s1 = t.elapsed().as_secs_f64();
    println!(
        "1 appender : {n1} appends in {s1:.3}s = {:.0} appends/s ({:?})",
        n1 as f64 / s1,
        log.stats()
    );

    // 8 appenders.
    let per = 2_000u64;
    let before = log.stats();
    let t = Instant::now();
    std::thread::scope(|s| {
        for th in 0..8u64 {
            let log = &log;
            let new = &new;
            s.spawn(move || {
                let stream = format!("stream-{th}");
                for i in 0..per {
                    log.append(
                        &stream,
                        ExpectedVersion::Any,
                        vec![new(1_000_000 * (th + 1) + i)],
                    )
                    .expect("append");
                }
            });
        }
    });
    let s8 = t.elapsed().as_secs_f64();
    let after = log.stats();
    println!(
        "8 appenders: {} appends in {s8:.3}s = {:.0} appends/s, {} flushes ({:.1} appends per flush)",
        8 * per,
        (8 * per) as f64 / s8,
        after.flushes - before.flushes,
        (after.appends - before.appends) as f64 / (after.flushes - before.flushes) as f64
    );

    // Bulk: batches of 1000 events.
    let t = Instant::now();
    let mut written = 0u64;
    while written < bulk {
        let batch: Vec<NewEvent> = (0..1000).map(|i| new(100_000_000 + written + i)).collect();
        log.append(
            &format!("bulk-{}", written / 1000 % 64),
            ExpectedVersion::Any,
            batch,
        )?;
        written += 1000;
    }
    let sb = t.elapsed().as_secs_f64();
    println!(
        "bulk       : {written} events in {sb:.3}s = {:.0} events/s",
        written as f64 / sb
    );

    // Replay.
    let head = log.head()?;
    let t = Instant::now();
    let mut bytes = 0usize;
    let n = log.for_each_from(1, &mut |e| {
        bytes += e.payload.len();
        ControlFlow::Continue(())
    })?;
    let sr = t.elapsed().as_secs_f64();
    println!(
        "for_each   : {n} events ({bytes} payload bytes) in {sr:.3}s = {:.0} events/s",
        n as f64 / sr
    );
    let t = Instant::now();
    let mut next = 1;
    while next <= head {
        let page = log.read_all(next, 4096)?;
        next += page.len() as u64;
    }
    let sa = t.elapsed().as_secs_f64();
    println!(
        "read_all   : {head} events in {sa:.3}s = {:.0} events/s",
        head as f64 / sa
    );

    drop(log);
    let t = Instant::now();
    let log = SledLog::open(&dir)?;
    println!(
        "reopen     : head {} in {:.3}s",
        log.head()?,
        t.elapsed().as_secs_f64()
    );
    drop(log);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
