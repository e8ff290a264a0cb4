//! Pure timers: deadlines are derived from the state; the caller's clock drives them.

use crate::command::Command;
use crate::config::{AGENT_DISCONNECT_GRACE_SECS, CUSTOMER_RECONNECT_WINDOW_SECS, Workstream};
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
fn deadlines(c: &Conversation, ws: &Workstream) -> impl Iterator<Item = (Timestamp, Due)> {
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

/// The earliest timer of `c` due at `now`.
pub(crate) fn first_due(c: &Conversation, ws: &Workstream, now: Timestamp) -> Option<Due> {
    deadlines(c, ws)
        .filter(|(at, _)| *at <= now)
        .min_by_key(|(at, _)| *at)
        .map(|(_, due)| due)
}

/// When the next timer of the world falls due, if any runs: call [`on_tick`] then.
pub fn next_deadline(world: &World) -> Option<Timestamp> {
    let agents = world.agents.values().filter_map(agent_due);
    let conversations = world
        .conversations
        .values()
        .filter(|c| c.status != ConversationStatus::Closed)
        .filter_map(|c| {
            let ws = world.workstreams.get(&c.workstream)?;
            deadlines(c, ws).map(|(at, _)| at).min()
        });
    agents.chain(conversations).min()
}

/// The events of every timer due at `now`: offer timeouts, disconnect grace, the customer
/// reconnect window, auto-close, custom wrap-up blocking.
pub fn on_tick(world: &World, now: Timestamp) -> Vec<Event> {
    decide(world, Command::Tick, now).unwrap_or_default()
}
