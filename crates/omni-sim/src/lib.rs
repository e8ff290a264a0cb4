//! Deterministic, seeded generator of realistic contact-center activity, driving the real core.
//!
//! A [`Simulation`] provisions a center (six channels, queues with every assignment method,
//! agents with capacities 2–6, skills and custom presences), then plays customers, agents and
//! supervisors on a simulated clock: arrivals, offers accepted, rejected or left to time out,
//! messages, consults, transfers, holds, recordings, record links, waiting and revival,
//! wrap-up, breaks, dropped connections on both sides. Every action goes through
//! `omni_core::decide`; accepted events are folded with `omni_core::apply` and handed out,
//! refusals are counted in [`SimStats`]. The same seed gives the same stream, event for event.
//!
//! The stream is produced lazily (iterate the [`Simulation`], or call
//! [`Simulation::next_batch`]), so a million conversations never sit in memory as events;
//! [`SimConfig::forget_closed`] keeps the world itself bounded too. [`routing_world`] builds a
//! large, busy world for measuring the routing choice alone.
//!
//! The center ([`center`]), the odds of what people do ([`behaviour`]) and the shape of each
//! conversation ([`script`]) are public: `omni-simulate` plays the same center against a
//! running engine over the bus.

pub mod behaviour;
pub mod center;
mod engine;
mod routing_world;
pub mod script;
mod sim;
mod stats;
#[cfg(test)]
mod tests;

pub use routing_world::routing_world;
pub use sim::{SimConfig, Simulation};
pub use stats::SimStats;

use omni_core::Event;

/// Runs a whole simulation and collects its stream; for small runs, since every event is kept.
pub fn generate(cfg: SimConfig) -> Vec<Event> {
    Simulation::new(cfg).collect()
}
