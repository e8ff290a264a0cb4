//! Folding the log into projections.
//!
//! Reading and decoding run on one thread while folding runs on the caller's: reading and
//! decoding an event costs about as much as folding it, so on two cores the pipeline replays at
//! nearly the speed of the slower half instead of the sum of both.
//!
//! The decoding thread copies each batch of payloads into one buffer and decodes from there
//! ([`omni_proto::decode_event`]), so ids are slices of it rather than an allocation each; the
//! buffer and the vectors of decoded events go round and are reused, so the steady state
//! allocates only for the strings events carry.

use std::ops::ControlFlow;
use std::sync::mpsc;

use bytes::BytesMut;
use omni_core::{BulkFold, Event, Timestamp, World};
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
/// channel costs nothing per event, small enough that a batch is still in cache when it is
/// folded.
const BATCH: usize = 1024;

/// Batches decoded ahead of the folder.
const AHEAD: usize = 4;

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
    let (sender, receiver) = mpsc::sync_channel::<Vec<Decoded>>(AHEAD);
    // Folded batches go back to be refilled: the decoder reuses their allocation and drops the
    // events there, leaving the folder nothing but folding.
    let (recycle, recycled) = mpsc::channel::<Vec<Decoded>>();
    let mut fold = BulkFold::new(&mut projection.world);
    let decoded = std::thread::scope(|scope| {
        let decoder = std::thread::Builder::new()
            .name("omni-replay-decode".to_owned())
            .spawn_scoped(scope, move || {
                decode_from(log, position + 1, until, &sender, &recycled)
            })
            .expect("the decoding thread starts");
        for batch in receiver {
            for item in &batch {
                match item {
                    Decoded::Event { position, event } => {
                        fold.apply(event);
                        projection.position = *position;
                        projection.events += 1;
                    }
                    Decoded::Unknown { position } => {
                        projection.unknown.push(*position);
                        projection.position = *position;
                    }
                }
            }
            progress(projection.position);
            // Refused once the decoder has finished.
            let _ = recycle.send(batch);
        }
        decoder.join().expect("the decoding thread does not panic")
    });
    drop(fold);
    decoded?;
    Ok(projection)
}

/// Reads and decodes from `from` until `until`, sending batches; stops early when the folder
/// has gone away.
///
/// Payloads are copied into one shared buffer per batch and decoded from there with
/// [`omni_proto::decode_event`], whose ids are then slices of that buffer rather than an
/// allocation each; the buffer is reused once the batch is decoded.
fn decode_from(
    log: &dyn EventLog,
    from: u64,
    until: Until,
    sender: &mpsc::SyncSender<Vec<Decoded>>,
    recycled: &mpsc::Receiver<Vec<Decoded>>,
) -> Result<(), ProjectionError> {
    let mut raw = RawBatch::default();
    let mut outcome = Ok(true);
    log.for_each_from(from, &mut |stored| {
        if let Until::Position(last) = until {
            if stored.position > last {
                return ControlFlow::Break(());
            }
        }
        raw.push(stored.position, stored.payload);
        if raw.len() == BATCH {
            outcome = raw.decode_and_send(until, sender, recycled);
            if !matches!(outcome, Ok(true)) {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    if matches!(outcome, Ok(true)) && !raw.ends.is_empty() {
        outcome = raw.decode_and_send(until, sender, recycled);
    }
    outcome.map(|_| ())
}

/// The payloads of a batch, read but not decoded yet.
#[derive(Default)]
struct RawBatch {
    bytes: BytesMut,
    /// Position and end offset in `bytes` of each payload (each starts where the last ends).
    ends: Vec<(u64, usize)>,
}

impl RawBatch {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn push(&mut self, position: u64, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
        self.ends.push((position, self.bytes.len()));
    }

    /// Decodes the batch, empties it and sends what it held. `Ok(true)` means go on; `Ok(false)`
    /// that time travel reached its moment or the folder has gone away. Everything decoded
    /// before a failure is sent first, so the error names the first bad position after a
    /// consistent prefix.
    fn decode_and_send(
        &mut self,
        until: Until,
        sender: &mpsc::SyncSender<Vec<Decoded>>,
        recycled: &mpsc::Receiver<Vec<Decoded>>,
    ) -> Result<bool, ProjectionError> {
        // `split` hands the filled part over; once its slices are gone the allocation returns
        // to `self.bytes` (`BytesMut::reserve` reclaims it), so batches reuse one buffer.
        let bytes = self.bytes.split().freeze();
        let mut decoded = match recycled.try_recv() {
            Ok(mut folded) => {
                folded.clear();
                folded
            }
            Err(_) => Vec::with_capacity(BATCH),
        };
        let mut start = 0;
        let mut outcome = Ok(true);
        for &(position, end) in &self.ends {
            let item = match omni_proto::decode_event(&bytes.slice(start..end)) {
                Ok(event) => {
                    if let Until::Time(moment) = until {
                        if event.at > moment {
                            outcome = Ok(false);
                            break;
                        }
                    }
                    Decoded::Event { position, event }
                }
                Err(DecodeError::UnknownEvent { .. }) => Decoded::Unknown { position },
                Err(error) => {
                    outcome = Err(ProjectionError::Malformed { position, error });
                    break;
                }
            };
            decoded.push(item);
            start = end;
        }
        self.ends.clear();
        if !decoded.is_empty() && sender.send(decoded).is_err() {
            return Ok(false);
        }
        outcome
    }
}
