//! Projections from the log. The log is the truth; everything here derives from it.
//!
//! - [`rebuild`] folds the log into a [`World`], up to a position or a moment (time travel).
//! - [`Snapshot`]s store a projection with its position and a hash, so restarts need not replay
//!   from zero, and so a rebuild can be checked against what was stored ([`verify`]).
//! - [`diff`] names what differs between two worlds, field by field.
//! - [`seed`] writes a generated, realistic log through the normal append path.

mod diff;
mod rebuild;
mod seed;
mod snapshot;
mod summary;

pub use diff::diff;
pub use rebuild::{Projection, Until, rebuild, resume};
pub use seed::{SeedReport, seed};
pub use snapshot::{SNAPSHOT_NAME, Verification, restore, snapshot_of, verify};
pub use summary::Summary;

/// What can go wrong while projecting the log.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] omni_store::StoreError),
    #[error("event at position {position} cannot be read: {error}")]
    Malformed {
        position: u64,
        error: omni_proto::DecodeError,
    },
    #[error("the stored snapshot is damaged: {0}")]
    SnapshotDamaged(String),
    #[error("no snapshot is stored; `omni replay` stores one when it reaches the head")]
    NoSnapshot,
    #[error("the snapshot is at position {snapshot} but the log ends at {head}")]
    SnapshotBeyondLog { snapshot: u64, head: u64 },
}
