//! The real core behind a simulated clock.

use omni_core::{Command, Event, Rejection, Timestamp, World, apply, decide};

/// Monday 3 March 2025, 08:00 UTC: simulated days start at a plausible opening hour, so the
/// timestamps of a generated stream read like a working day.
pub(crate) const OPENING: Timestamp = Timestamp(1_740_988_800_000);

/// A world and the time it is at. Every change goes through [`decide`] and [`apply`], exactly as
/// in the server, so a simulation exercises the same rules as production.
#[derive(Debug)]
pub(crate) struct Engine {
    pub world: World,
    pub now: Timestamp,
}

impl Engine {
    pub fn new() -> Engine {
        Engine {
            world: World::default(),
            now: OPENING,
        }
    }

    /// Moves the clock forward; never back, so events come out in time order.
    pub fn advance_to(&mut self, at: Timestamp) {
        self.now = self.now.max(at);
    }

    /// Decides `command` now and folds the accepted events into the world.
    pub fn exec(&mut self, command: Command) -> Result<Vec<Event>, Rejection> {
        let events = decide(&self.world, command, self.now)?;
        for event in &events {
            apply(&mut self.world, event);
        }
        Ok(events)
    }

    /// For commands the generator builds to be valid (administration, sign-in): a rejection
    /// means the generator and the core disagree about the rules, which no caller can handle.
    pub fn must(&mut self, command: Command) -> Vec<Event> {
        self.exec(command).unwrap_or_else(|rejection| {
            panic!("generator bug: a setup command was refused: {rejection}")
        })
    }
}
