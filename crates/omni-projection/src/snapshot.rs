//! Snapshots: a projection with its position and a hash, stored beside the log.

use omni_core::World;
use omni_store::{EventLog, Snapshot};
use sha2::{Digest, Sha256};

use crate::{ProjectionError, Until, diff, rebuild};

/// The name the replay projection's snapshot is stored under.
pub const SNAPSHOT_NAME: &str = "projections";

/// The hash covers the position too, so a snapshot moved to another position is caught.
fn hash(position: u64, state: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(position.to_be_bytes());
    hasher.update(state);
    hasher.finalize().into()
}

/// The snapshot of `world` as of `position`.
pub fn snapshot_of(world: &World, position: u64) -> Snapshot {
    let state = serde_json::to_vec(world).expect("the world always serialises");
    Snapshot {
        position,
        hash: hash(position, &state),
        state,
    }
}

/// The world a snapshot holds, after checking its hash.
pub fn restore(snapshot: &Snapshot) -> Result<World, ProjectionError> {
    if hash(snapshot.position, &snapshot.state) != snapshot.hash {
        return Err(ProjectionError::SnapshotDamaged(format!(
            "its hash does not match its contents (position {})",
            snapshot.position
        )));
    }
    serde_json::from_slice(&snapshot.state)
        .map_err(|e| ProjectionError::SnapshotDamaged(format!("its state does not parse: {e}")))
}

/// The outcome of checking the stored snapshot against a rebuild from the log.
#[derive(Debug)]
pub struct Verification {
    pub position: u64,
    /// Empty when the rebuild equals the snapshot.
    pub differences: Vec<String>,
}

/// Rebuilds the log from zero up to the stored snapshot's position and compares.
pub fn verify(
    log: &dyn EventLog,
    progress: &mut dyn FnMut(u64),
) -> Result<Verification, ProjectionError> {
    let snapshot = log
        .load_snapshot(SNAPSHOT_NAME)?
        .ok_or(ProjectionError::NoSnapshot)?;
    let stored = restore(&snapshot)?;
    let head = log.head()?;
    if snapshot.position > head {
        return Err(ProjectionError::SnapshotBeyondLog {
            snapshot: snapshot.position,
            head,
        });
    }
    let rebuilt = rebuild(log, Until::Position(snapshot.position), progress)?;
    Ok(Verification {
        position: snapshot.position,
        differences: diff(&stored, &rebuilt.world),
    })
}
