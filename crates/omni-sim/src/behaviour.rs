//! How people in a contact center behave: the odds and timings of what customers and agents
//! do, each drawn from a seeded generator. The in-process simulation and `omni-simulate`
//! (which plays the same people against a running engine over the bus) both draw from here,
//! so the two model one center.
//!
//! Every duration is in simulated (engine) milliseconds.

use omni_core::{
    AGENT_DISCONNECT_GRACE_SECS, Agent, AgentId, CUSTOMER_RECONNECT_WINDOW_SECS, Channel,
    ConversationId, PresenceId, QueueId, SupervisorId, TransferTarget, World,
};
use rand::Rng;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;

use crate::center::{self, QueueInfo};

/// Mean time between two things an agent does on their own (a break, a drop, a sign-out).
pub const ROUTINE_MEAN_SECS: f64 = 40.0 * 60.0;
/// How long before a refused step that must happen is tried again.
pub const RETRY_SECS: i64 = 30;
/// Who force-closes conversations.
pub const SUPERVISOR: SupervisorId = SupervisorId::from_u128(0x5_0000);

/// Uniformly between `lo` and `hi` seconds, in milliseconds.
pub fn secs(rng: &mut SmallRng, lo: i64, hi: i64) -> i64 {
    rng.random_range(lo * 1000..=hi * 1000)
}

/// An exponentially distributed gap with this mean: the time between two Poisson arrivals.
pub fn exponential(rng: &mut SmallRng, mean: f64) -> f64 {
    let u: f64 = rng.random();
    -(1.0 - u).ln() * mean
}

/// [`exponential`] in whole milliseconds, at least 1.
pub fn exponential_ms(rng: &mut SmallRng, mean_ms: f64) -> i64 {
    (exponential(rng, mean_ms) as i64).max(1)
}

/// What an agent does with an offer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OfferAnswer {
    Accept {
        after_ms: i64,
    },
    Reject {
        after_ms: i64,
    },
    /// Leaves it to time out.
    Ignore,
}

/// Most offers are accepted within seconds (well before `timeout_secs`); some are rejected,
/// some left to time out.
pub fn answer_offer(rng: &mut SmallRng, timeout_secs: i64) -> OfferAnswer {
    match rng.random_range(0..100) {
        0..85 => OfferAnswer::Accept {
            after_ms: secs(rng, 2, (timeout_secs - 5).clamp(3, 25)),
        },
        85..93 => OfferAnswer::Reject {
            after_ms: secs(rng, 1, 15),
        },
        _ => OfferAnswer::Ignore,
    }
}

/// How long a customer waits for an agent before giving up. A few leave almost at once; the
/// others wait as long as their channel makes them expect to: briefly on the phone, longer in
/// a chat, hours on a messaging app.
pub fn patience_ms(rng: &mut SmallRng, channel: Channel) -> i64 {
    if rng.random_bool(0.05) {
        secs(rng, 5, 30)
    } else if channel.is_call() {
        secs(rng, 30, 300)
    } else if channel.is_persistent() {
        secs(rng, 20 * 60, 3 * 3600)
    } else {
        secs(rng, 60, 600)
    }
}

/// Whether a customer who gives up drops (closes the tab, hangs up) rather than ending the
/// conversation. An asynchronous channel keeps no connection to drop.
pub fn leaves_by_dropping(rng: &mut SmallRng, channel: Channel) -> bool {
    !channel.is_persistent() && rng.random_bool(0.5)
}

/// When a customer whose connection blipped is back, within the reconnect window.
pub fn blip_return_ms(rng: &mut SmallRng) -> i64 {
    secs(rng, 10, CUSTOMER_RECONNECT_WINDOW_SECS - 10)
}

/// How long a conversation sits in a pick-mode queue before a member picks it.
pub fn pick_after_ms(rng: &mut SmallRng) -> i64 {
    secs(rng, 5, 60)
}

/// What ends a Waiting conversation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WhileWaiting {
    CustomerReplies {
        after_ms: i64,
    },
    AgentResumes {
        after_ms: i64,
    },
    /// Nobody: the waiting auto-close does.
    LeftToTimer,
}

/// Most customers write back, some agents take the conversation back first, and the rest are
/// left to the waiting auto-close.
pub fn while_waiting(rng: &mut SmallRng) -> WhileWaiting {
    match rng.random_range(0..100) {
        0..60 => WhileWaiting::CustomerReplies {
            after_ms: secs(rng, 120, 3600),
        },
        60..85 => WhileWaiting::AgentResumes {
            after_ms: secs(rng, 60, 1800),
        },
        _ => WhileWaiting::LeftToTimer,
    }
}

/// When a customer writes again after an agent could not take the waiting conversation back.
pub fn reply_after_failed_resume_ms(rng: &mut SmallRng) -> i64 {
    secs(rng, 300, 3600)
}

/// How long the agent takes to complete a wrap-up; `None` leaves it to the wrap-up auto-close
/// (some live chats).
pub fn wrap_up_ms(rng: &mut SmallRng, channel: Channel) -> Option<i64> {
    if channel == Channel::LiveChat && rng.random_bool(0.1) {
        None
    } else {
        Some(secs(rng, 10, 120))
    }
}

/// Whether the primary agent (rather than the consultant) ends a consult.
pub fn primary_ends_consult(rng: &mut SmallRng) -> bool {
    rng.random_bool(0.5)
}

/// Some recordings are started by policy (the system) rather than by the agent.
pub fn recording_started_by_policy(rng: &mut SmallRng) -> bool {
    rng.random_bool(0.2)
}

/// Now and then a linked case is resolved in the CRM while the conversation runs: when.
pub fn case_resolved_after_ms(rng: &mut SmallRng) -> Option<i64> {
    rng.random_bool(0.03).then(|| secs(rng, 60, 1800))
}

/// What an agent does on their own, between conversations.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Routine {
    /// A break in this presence (Away, DND or a custom one); back after [`break_ms`].
    Break(PresenceId),
    /// The desktop's connection drops; back after [`drop_length`].
    Drop,
    /// Signs out (refused while they still handle work); back after [`sign_out_ms`].
    SignOut,
    Nothing,
}

pub fn routine(rng: &mut SmallRng) -> Routine {
    match rng.random_range(0..100) {
        0..40 => {
            let choices: Vec<PresenceId> = center::break_presences().collect();
            Routine::Break(*choices.choose(rng).unwrap_or(&PresenceId::AWAY))
        }
        40..75 => Routine::Drop,
        75..85 => Routine::SignOut,
        _ => Routine::Nothing,
    }
}

/// When the next [`routine`] comes.
pub fn routine_gap_ms(rng: &mut SmallRng) -> i64 {
    exponential_ms(rng, ROUTINE_MEAN_SECS * 1000.0)
}

pub fn break_ms(rng: &mut SmallRng) -> i64 {
    secs(rng, 180, 1200)
}

/// How long a dropped desktop stays away.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DropLength {
    pub after_ms: i64,
    /// Longer than the 150 s grace: the core releases the agent's work meanwhile.
    pub outlasts_grace: bool,
}

pub fn drop_length(rng: &mut SmallRng) -> DropLength {
    if rng.random_bool(0.25) {
        DropLength {
            after_ms: secs(rng, AGENT_DISCONNECT_GRACE_SECS + 10, 600),
            outlasts_grace: true,
        }
    } else {
        DropLength {
            after_ms: secs(rng, 5, AGENT_DISCONNECT_GRACE_SECS - 10),
            outlasts_grace: false,
        }
    }
}

pub fn sign_out_ms(rng: &mut SmallRng) -> i64 {
    secs(rng, 600, 2400)
}

/// An agent whose administrator's default presence holds them Away after sign-in sets
/// themselves Available after this long.
pub fn back_from_default_presence_ms(rng: &mut SmallRng) -> i64 {
    secs(rng, 60, 300)
}

/// A transfer or consult may only go to a connected agent who is Available or Busy.
pub fn reachable(agent: &Agent) -> bool {
    agent.is_connected() && agent.presence.base.accepts_transfers_and_consults()
}

/// A random member of `queue` that `fits`, drawn from the members in id order.
pub fn pick_member(
    world: &World,
    rng: &mut SmallRng,
    queue: QueueId,
    mut fits: impl FnMut(&Agent) -> bool,
) -> Option<AgentId> {
    let candidates: Vec<AgentId> = world
        .queues
        .get(&queue)?
        .members()
        .filter_map(|id| world.agents.get(&id))
        .filter(|a| fits(a))
        .map(|a| a.profile.id)
        .collect();
    candidates.choose(rng).copied()
}

/// A colleague to consult: a reachable member of the conversation's queue not already in it.
pub fn consultant(
    world: &World,
    rng: &mut SmallRng,
    conversation: ConversationId,
    agent: AgentId,
) -> Option<AgentId> {
    let c = world.conversations.get(&conversation)?;
    pick_member(world, rng, c.queue, |a| {
        a.profile.id != agent && reachable(a) && c.open_session_of(a.profile.id).is_none()
    })
}

/// Where `agent` transfers the conversation: mostly a colleague of the same queue who could
/// take it now, or else another queue of the same channel (the same queue when the channel
/// has only one). `None` if `world` does not know the conversation.
pub fn transfer_target(
    world: &World,
    queues: &[QueueInfo],
    rng: &mut SmallRng,
    conversation: ConversationId,
    agent: AgentId,
) -> Option<TransferTarget> {
    let c = world.conversations.get(&conversation)?;
    let units = world
        .workstreams
        .get(&c.workstream)
        .map_or(1, |ws| ws.capacity_units);
    if rng.random_bool(0.6) {
        let colleague = pick_member(world, rng, c.queue, |a| {
            a.profile.id != agent && reachable(a) && a.free_units() >= units
        });
        if let Some(colleague) = colleague {
            return Some(TransferTarget::Agent(colleague));
        }
    }
    let others: Vec<QueueId> = queues
        .iter()
        .filter(|q| q.spec.channel == c.channel && q.id != c.queue)
        .map(|q| q.id)
        .collect();
    Some(TransferTarget::Queue(
        others.choose(rng).copied().unwrap_or(c.queue),
    ))
}
