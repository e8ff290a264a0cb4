//! Engine throughput and latency on realistic data from `omni-sim`:
//!
//! - `fold/apply`: folding a generated stream from an empty world (replay speed);
//! - `fold/decode_apply`: the same stream as protobuf envelopes, decoded then folded;
//!   `fold/decode_event_apply` decodes only the events, from slices of one shared buffer (what
//!   `omni replay` does);
//! - `routing/choose_agent`: one routing choice in a 10 000-agent, 100-queue world, and
//!   `routing/choose_agent_each_timed`, which times every call on its own and prints the
//!   p50 / p99 / max that criterion's mean hides;
//! - `timers/next_deadline` and `timers/tick_idle`: the next deadline of that busy world, and a
//!   `Tick` one millisecond before it (nothing due: the fixed cost every tick pays).
//!
//! Run: `cargo bench -p omni-sim --bench engine -- --warm-up-time 1 --measurement-time 3`.
//! Results and targets are in `BENCHMARKS.md`.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use omni_core::{Actor, ConversationId, Event, World, apply, choose_agent, next_deadline, on_tick};
use omni_proto::{Bytes, Envelope, decode, decode_event, encode_to, stream_id_for};
use omni_sim::{SimConfig, generate, routing_world};

/// At least 200 000 events: a 200-agent center through 10 000 full conversations.
fn stream() -> &'static [Event] {
    static STREAM: OnceLock<Vec<Event>> = OnceLock::new();
    STREAM.get_or_init(|| {
        let events = generate(SimConfig {
            agents: 200,
            conversations: 10_000,
            seed: 42,
            ..SimConfig::default()
        });
        assert!(events.len() >= 200_000, "only {} events", events.len());
        events
    })
}

/// The envelope a writer would have stored: a fresh event id, the conventional stream, four
/// events to a correlation, each caused by the one before.
fn envelope(index: usize, event: &Event) -> Envelope {
    // Stand-in uuids. The core's ids wrap `uuid::Uuid`; borrowing one's constructor spares
    // the bench a dependency of its own.
    let uuid = |n: usize| ConversationId::from_u128(n as u128).0;
    Envelope {
        event_id: uuid(index),
        stream_id: stream_id_for(&event.kind),
        correlation_id: uuid(index / 4),
        causation_id: index.checked_sub(1).map(uuid),
        actor: event.kind.agent().map_or(Actor::System, Actor::Agent),
        event: event.clone(),
    }
}

fn fold(c: &mut Criterion) {
    let events = stream();
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("apply", |b| {
        b.iter_with_large_drop(|| {
            let mut world = World::default();
            for event in events {
                apply(&mut world, event);
            }
            world
        })
    });

    // One contiguous log segment, as a reader would get it from storage.
    let mut log = Vec::new();
    let mut frames = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let start = log.len();
        encode_to(&envelope(index, event), &mut log);
        frames.push(start..log.len());
    }
    println!(
        "fold: {} events; as envelopes {} bytes, {} bytes an event",
        events.len(),
        log.len(),
        log.len() / events.len()
    );
    group.bench_function("decode_apply", |b| {
        b.iter_with_large_drop(|| {
            let mut world = World::default();
            for frame in &frames {
                let envelope = decode(&log[frame.clone()]).expect("the bench encoded it");
                apply(&mut world, &envelope.event);
            }
            world
        })
    });
    // What replay does: the event alone, decoded from slices of one shared buffer.
    let shared = Bytes::from(log.clone());
    group.bench_function("decode_event_apply", |b| {
        b.iter_with_large_drop(|| {
            let mut world = World::default();
            for frame in &frames {
                let event =
                    decode_event(&shared.slice(frame.clone())).expect("the bench encoded it");
                apply(&mut world, &event);
            }
            world
        })
    });
    group.finish();
}

fn routing(c: &mut Criterion) {
    let (world, targets) = routing_world(10_000, 100, 7);
    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(1));
    group.bench_function("choose_agent", |b| {
        let mut next = targets.iter().cycle();
        b.iter(|| choose_agent(&world, *next.next().expect("cycle never ends")))
    });

    let mut calls = Vec::new();
    group.bench_function("choose_agent_each_timed", |b| {
        let mut next = targets.iter().cycle();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let target = *next.next().expect("cycle never ends");
                let start = Instant::now();
                black_box(choose_agent(&world, black_box(target)));
                let took = start.elapsed();
                calls.push(took);
                total += took;
            }
            total
        })
    });
    group.finish();
    if !calls.is_empty() {
        calls.sort_unstable();
        let at = |q: f64| calls[((calls.len() - 1) as f64 * q) as usize];
        println!(
            "routing/choose_agent_each_timed: {} calls timed one by one (warm-up included): \
             p50 {:.1?}  p99 {:.1?}  max {:.1?}",
            calls.len(),
            at(0.50),
            at(0.99),
            calls[calls.len() - 1],
        );
    }
}

fn timers(c: &mut Criterion) {
    let (world, _) = routing_world(10_000, 100, 7);
    let due = next_deadline(&world).expect("offers are out");
    let idle = due.plus_ms(-1);
    assert!(
        on_tick(&world, idle).is_empty(),
        "nothing is due before the next deadline"
    );
    println!(
        "timers: {} conversations, {} agents; next deadline {due:?}",
        world.conversations.len(),
        world.agents.len()
    );
    let mut group = c.benchmark_group("timers");
    group.throughput(Throughput::Elements(1));
    group.bench_function("next_deadline", |b| {
        b.iter(|| next_deadline(black_box(&world)))
    });
    group.bench_function("tick_idle", |b| b.iter(|| on_tick(black_box(&world), idle)));
    group.finish();
}

criterion_group!(benches, fold, routing, timers);
criterion_main!(benches);
