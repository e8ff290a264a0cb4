//! The pure conversation engine of omni.
//!
//! Everything here is a function of its arguments: no IO, no clock, no async runtime.
//! [`decide`] judges a [`Command`] against the [`World`] at a given time and returns the
//! [`Event`]s to append, or a [`Rejection`] saying why not. [`apply`] folds an event into the
//! world. Timers are pure too: [`next_deadline`] says when something falls due and
//! [`on_tick`] produces the events of everything due.
//!
//! The domain rules follow `DOMAIN.md`; where it leaves a choice open, the choice is written on
//! the function that makes it.

mod command;
mod config;
mod decide;
mod event;
mod model;
mod routing;
mod state;
mod timers;

pub use command::Command;
pub use config::*;
pub use decide::{Rejection, decide};
pub use event::{Event, EventKind};
pub use model::*;
pub use routing::{choose_agent, is_eligible};
pub use state::{
    Agent, BulkFold, Conversation, Disconnection, HeldCapacity, Queue, RosterSlot, Session,
    SessionRole, World, skill_filter,
};
pub use timers::{next_deadline, next_deadline_by_scan, on_tick, on_tick_by_scan};

/// Folds one event into the world. Events are facts: folding never fails and checks nothing.
pub fn apply(world: &mut World, event: &Event) {
    state::fold(world, event);
}
