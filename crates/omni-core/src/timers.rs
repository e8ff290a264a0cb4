//! Pure timers: deadlines are derived from the state; the caller's clock drives them.
//!
//! The [`World`] indexes every running timer by its deadline (see `state::Indexes`), so
//! [`next_deadline`] costs O(log n) and [`on_tick`] costs what is due, not what exists. The
//! scans they replaced stay, hidden, as the reference the property tests compare them with.

use crate::command::Command;
use crate::config::{
    AGENT_DISCONNECT_GRACE_SECS, CUSTOMER_RECONNECT_WINDOW_SECS, ChannelTimers, Workstream,
};
use crate::decide::decide;
use crate::event::Event;
use crate::model::{AgentId, ConversationStatus, SessionNo, Timestamp, WrapUpBlocking};
use crate::state::{Agent, Conversation, World};

/// A timer that fires on a conversation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Due {
    /// The offer was not answered in time.
    Offer { session: SessionNo, agent: AgentId },
    /// The customer did not come back within the reconnect window.
    CustomerGone { status: ConversationStatus },
    /// Custom wrap-up blocking ran out: capacity is released, the wrap-up goes on.
    WrapUpCapacity,
    /// The channel's auto-close timer for the current status ran out.
    StatusTimer {
        status: ConversationStatus,
        to_wrap_up: bool,
    },
}

/// What of a workstream its conversations' timers depend on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Timing {
    timers: ChannelTimers,
    wrap_up_blocking: WrapUpBlocking,
}

impl Timing {
    pub(crate) fn of(ws: &Workstream) -> Timing {
        Timing {
            timers: ws.timers,
            wrap_up_blocking: ws.wrap_up_blocking,
        }
    }
}

/// When the agent's disconnect grace runs out, if it is running.
pub(crate) fn agent_due(agent: &Agent) -> Option<Timestamp> {
    agent
        .disconnected
        .filter(|d| !d.grace_expired)
        .map(|d| d.at.plus_secs(AGENT_DISCONNECT_GRACE_SECS))
}

fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX / 1000)
}

/// Every running timer of a conversation with its deadline.
fn deadlines(c: &Conversation, ws: Timing) -> impl Iterator<Item = (Timestamp, Due)> {
    let offer = c.pending_offer.and_then(|n| c.session(n)).and_then(|s| {
        s.expires_at.map(|at| {
            (
                at,
                Due::Offer {
                    session: s.number,
                    agent: s.agent,
                },
            )
        })
    });
    let customer = c
        .customer_disconnected_at
        .filter(|_| {
            matches!(
                c.status,
                ConversationStatus::Open | ConversationStatus::Active
            )
        })
        .map(|at| {
            (
                at.plus_secs(CUSTOMER_RECONNECT_WINDOW_SECS),
                Due::CustomerGone { status: c.status },
            )
        });
    let wrap_up_capacity = match (c.status, c.held, ws.wrap_up_blocking, c.wrap_up_at) {
        (ConversationStatus::WrapUp, Some(_), WrapUpBlocking::ForSeconds(s), Some(at)) => {
            Some((at.plus_secs(i64::from(s)), Due::WrapUpCapacity))
        }
        _ => None,
    };
    let timers = ws.timers;
    let status_secs = match c.status {
        ConversationStatus::Open => timers.open_secs,
        ConversationStatus::Active => timers.active_secs,
        ConversationStatus::Waiting => timers.waiting_secs,
        ConversationStatus::WrapUp => timers.wrap_up_secs,
        ConversationStatus::Closed => None,
    };
    let status = status_secs.map(|s| {
        (
            c.status_since.plus_secs(secs(s)),
            Due::StatusTimer {
                status: c.status,
                to_wrap_up: c.channel.is_call(),
            },
        )
    });
    [offer, customer, wrap_up_capacity, status]
        .into_iter()
        .flatten()
}

/// When the earliest running timer of `c` falls due (Closed or not, as the scan sees it).
pub(crate) fn earliest(c: &Conversation, ws: Timing) -> Option<Timestamp> {
    deadlines(c, ws).map(|(at, _)| at).min()
}

/// The earliest timer of `c` due at `now`.
pub(crate) fn first_due(c: &Conversation, ws: &Workstream, now: Timestamp) -> Option<Due> {
    deadlines(c, Timing::of(ws))
        .filter(|(at, _)| *at <= now)
        .min_by_key(|(at, _)| *at)
        .map(|(_, due)| due)
}

/// When the next timer of the world falls due, if any runs: call [`on_tick`] then. O(log n),
/// from the world's deadline index.
pub fn next_deadline(world: &World) -> Option<Timestamp> {
    world.first_deadline()
}

/// [`next_deadline`] by a scan of every agent and conversation: the reference the index is
/// tested against. O(n); not for production use.
#[doc(hidden)]
pub fn next_deadline_by_scan(world: &World) -> Option<Timestamp> {
    let agents = world.agents.values().filter_map(agent_due);
    let conversations = world
        .conversations
        .values()
        .filter(|c| c.status != ConversationStatus::Closed)
        .filter_map(|c| {
            let ws = world.workstreams.get(&c.workstream)?;
            earliest(c, Timing::of(ws))
        });
    agents.chain(conversations).min()
}

/// The events of every timer due at `now`: offer timeouts, disconnect grace, the customer
/// reconnect window, auto-close, custom wrap-up blocking. Costs what is due, found through the
/// world's deadline index.
pub fn on_tick(world: &World, now: Timestamp) -> Vec<Event> {
    decide(world, Command::Tick, now).unwrap_or_default()
}

/// [`on_tick`] as it was before the deadline index: every agent and every live conversation
/// is checked. The reference the index is tested against; O(n), not for production use.
#[doc(hidden)]
pub fn on_tick_by_scan(world: &World, now: Timestamp) -> Vec<Event> {
    crate::decide::tick_by_scan(world, now)
}
