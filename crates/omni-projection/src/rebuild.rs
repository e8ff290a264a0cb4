//! Folding the log into projections.
//!
//! Reading and decoding run on one thread while folding runs on the caller's: decoding a
//! Protobuf envelope costs about as much as folding it, so on two cores the pipeline replays at
//! nearly the speed of the slower half instead of the sum of both.

use std::ops::ControlFlow;
use std::sync::mpsc;

use omni_core::{Event, Timestamp, World, apply};
use omni_proto::DecodeError;
use omni_store::EventLog;

use crate::ProjectionError;

/// How far to fold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Until {
    /// Everything in the log.
    Head,
    /// Up to and including this global position.
    Position(u64),
    /// Every event up to the first one that happened after this moment. The log's order is
    /// the truth, so folding stops there rather than skipping over it.
    Time(Timestamp),
}

/// A world folded from the log, and what it took.
#[derive(Debug)]
pub struct Projection {
    pub world: World,
    /// The last position folded (0 for none).
    pub position: u64,
    /// Events folded by this call.
    pub events: u64,
    /// Positions of events from a newer schema: counted and reported, never folded or
    /// rewritten.
    pub unknown: Vec<u64>,
}

/// Rebuilds the projections from an empty world. `progress` is called now and then with the
/// position reached.
pub fn rebuild(
    log: &dyn EventLog,
    until: Until,
    progress: &mut dyn FnMut(u64),
) -> Result<Projection, ProjectionError> {
    resume(log, World::default(), 0, until, progress)
}

/// Events travel from the decoder to the folder in batches this large: big enough that the
/// channel costs nothing per event, small enough to keep both threads busy.
const BATCH: usize = 4096;

/// What the decoding thread hands over.
enum Decoded {
    Event { position: u64, event: Event },
    Unknown { position: u64 },
}

/// Continues folding `world`, which reflects the log up to `position`.
pub fn resume(
    log: &dyn EventLog,
    world: World,
    position: u64,
    until: Until,
    progress: &mut dyn FnMut(u64),
) -> Result<Projection, ProjectionError> {
    let mut projection = Projection {
        world,
        position,
        events: 0,
        unknown: Vec::new(),
    };
    let (sender, receiver) = mpsc::sync_channel::<Vec<Decoded>>(4);
    let decoded = std::thread::scope(|scope| {
        let decoder = scope.spawn(move || decode_from(log, position + 1, until, sender));
        for batch in receiver {
            for item in batch {
                match item {
                    Decoded::Event { position, event } => {
                        apply(&mut projection.world, &event);
                        projection.position = position;
                        projection.events += 1;
                    }
                    Decoded::Unknown { position } => {
                        projection.unknown.push(position);
                        projection.position = position;
                    }
                }
            }
            progress(projection.position);
        }
        decoder.join().expect("the decoding thread does not panic")
    });
    decoded?;
    Ok(projection)
}

/// Reads and decodes from `from` until `until`, sending batches; stops early when the folder
/// has gone away.
fn decode_from(
    log: &dyn EventLog,
    from: u64,
    until: Until,
    sender: mpsc::SyncSender<Vec<Decoded>>,
) -> Result<(), ProjectionError> {
    let mut batch = Vec::with_capacity(BATCH);
    let mut failure = None;
    log.for_each_from(from, &mut |stored| {
        if let Until::Position(last) = until {
            if stored.position > last {
                return ControlFlow::Break(());
            }
        }
        let item = match omni_proto::decode(stored.payload) {
            Ok(envelope) => {
                if let Until::Time(moment) = until {
                    if envelope.event.at > moment {
                        return ControlFlow::Break(());
                    }
                }
                Decoded::Event {
                    position: stored.position,
                    event: envelope.event,
                }
            }
            Err(DecodeError::UnknownEvent { .. }) => Decoded::Unknown {
                position: stored.position,
            },
            Err(error) => {
                failure = Some(ProjectionError::Malformed {
                    position: stored.position,
                    error,
                });
                return ControlFlow::Break(());
            }
        };
        batch.push(item);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if sender.send(full).is_err() {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    // Everything decoded before a failure is folded, so the error names the first bad position
    // after a consistent prefix.
    if !batch.is_empty() {
        let _ = sender.send(batch);
    }
    failure.map_or(Ok(()), Err)
}
