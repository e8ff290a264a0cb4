//! Folding the log into projections.

use std::ops::ControlFlow;

use omni_core::{Timestamp, World, apply};
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
    let mut failure = None;
    log.for_each_from(position + 1, &mut |event| {
        if let Until::Position(last) = until {
            if event.position > last {
                return ControlFlow::Break(());
            }
        }
        let envelope = match omni_proto::decode(event.payload) {
            Ok(envelope) => envelope,
            Err(DecodeError::UnknownEvent { .. }) => {
                projection.unknown.push(event.position);
                projection.position = event.position;
                return ControlFlow::Continue(());
            }
            Err(error) => {
                failure = Some(ProjectionError::Malformed {
                    position: event.position,
                    error,
                });
                return ControlFlow::Break(());
            }
        };
        if let Until::Time(moment) = until {
            if envelope.event.at > moment {
                return ControlFlow::Break(());
            }
        }
        apply(&mut projection.world, &envelope.event);
        projection.position = event.position;
        projection.events += 1;
        if projection.events % PROGRESS_EVERY == 0 {
            progress(event.position);
        }
        ControlFlow::Continue(())
    })?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    progress(projection.position);
    Ok(projection)
}

/// Progress is reported this often: rare enough to cost nothing per event.
const PROGRESS_EVERY: u64 = 65_536;
