//! Writing a generated, realistic log through the normal append path.

use omni_core::{Actor, apply};
use omni_proto::Envelope;
use omni_sim::{SimConfig, Simulation};
use omni_store::{AppendRequest, EventLog, ExpectedVersion, NewEvent};
use uuid::Uuid;

use crate::{ProjectionError, Until, rebuild, snapshot::SNAPSHOT_NAME, snapshot_of};

/// What a seeding run wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SeedReport {
    pub events: u64,
    pub conversations: u64,
    pub head: u64,
}

/// Generates `cfg`'s contact center, appends every event (one append request per stream run of
/// each simulated action, with a fresh correlation id per action, sent in ordered groups so
/// one flush serves many), and stores a snapshot of the projections at the end so
/// `omni replay --verify` has something to check. A log that already holds events is folded
/// first, so the snapshot covers all of it.
pub fn seed(
    log: &dyn EventLog,
    mut cfg: SimConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<SeedReport, ProjectionError> {
    let mut world = rebuild(log, Until::Head, &mut |_| {})?.world;
    // The simulation may forget closed conversations; the projection here keeps them.
    cfg.forget_closed = true;
    let conversations = cfg.conversations as u64;
    let mut sim = Simulation::new(cfg);
    let mut events = 0;
    let mut buf = Vec::new();
    let mut pending = Vec::new();
    let mut pending_events = 0;
    while let Some(batch) = sim.next_batch() {
        let correlation_id = Uuid::now_v7();
        let streams: Vec<String> = batch
            .iter()
            .map(|e| omni_proto::stream_id_for(&e.kind))
            .collect();
        let mut start = 0;
        while start < batch.len() {
            let stream_id = &streams[start];
            let end = streams[start..]
                .iter()
                .position(|s| s != stream_id)
                .map_or(batch.len(), |n| start + n);
            let mut new_events = Vec::with_capacity(end - start);
            for event in &batch[start..end] {
                let envelope = Envelope {
                    event_id: Uuid::now_v7(),
                    stream_id: stream_id.clone(),
                    correlation_id,
                    causation_id: None,
                    actor: Actor::System,
                    event: event.clone(),
                };
                buf.clear();
                omni_proto::encode_to(&envelope, &mut buf);
                new_events.push(NewEvent::new(envelope.event_id, buf.as_slice()));
            }
            pending_events += new_events.len();
            pending.push(AppendRequest::new(
                stream_id.clone(),
                ExpectedVersion::Any,
                new_events,
            ));
            start = end;
        }
        for event in &batch {
            apply(&mut world, event);
        }
        events += batch.len() as u64;
        if pending_events >= EVENTS_PER_FLUSH {
            append_all(log, std::mem::take(&mut pending))?;
            pending_events = 0;
            progress(events);
        }
    }
    append_all(log, pending)?;
    progress(events);
    let head = log.head()?;
    log.save_snapshot(SNAPSHOT_NAME, &snapshot_of(&world, head))?;
    Ok(SeedReport {
        events,
        conversations,
        head,
    })
}

/// Events sent per `append_many`: large enough that the flush is shared by thousands.
const EVENTS_PER_FLUSH: usize = 16_384;

fn append_all(log: &dyn EventLog, requests: Vec<AppendRequest>) -> Result<(), ProjectionError> {
    for result in log.append_many(requests) {
        result?;
    }
    Ok(())
}
