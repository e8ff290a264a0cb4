//! Configuration that administrators set: workstreams, queues, agents' profiles, timers.
//!
//! Configuration is itself event sourced (it arrives as events), so replaying the log rebuilds
//! the rules that were in force when each decision was taken.

use std::collections::BTreeSet;

use crate::model::{
    AgentId, AssignmentMethod, BaseStatus, Channel, PresenceId, QueueId, RoutingMode, WorkstreamId,
    WrapUpBlocking,
};

/// An offer is withdrawn if the agent neither accepts nor rejects it within this time.
pub const DEFAULT_OFFER_TIMEOUT_SECS: u32 = 120;
/// An agent who drops keeps their presence if back within this window.
pub const AGENT_DISCONNECT_GRACE_SECS: i64 = 150;
/// A live-chat customer who drops has this long to come back before the conversation moves on.
pub const CUSTOMER_RECONNECT_WINDOW_SECS: i64 = 180;
/// At most this many consultants on one conversation.
pub const MAX_CONSULTANTS: usize = 5;
/// Session tabs on an agent desktop unless the agent's profile says otherwise.
pub const DEFAULT_MAX_SESSIONS: u32 = 10;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Auto-close timers of one channel, in seconds. `None` means the status has no timer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChannelTimers {
    /// Open (unassigned) for this long: closed, "auto-closed by system".
    pub open_secs: Option<u64>,
    /// Active for this long: voice goes to wrap-up, asynchronous channels close.
    pub active_secs: Option<u64>,
    /// Waiting for this long: closed, "auto-closed from waiting".
    pub waiting_secs: Option<u64>,
    /// In wrap-up for this long: closed, "auto-closed by system".
    pub wrap_up_secs: Option<u64>,
}

impl ChannelTimers {
    /// The documented defaults. Waiting is not in the published table; asynchronous channels
    /// get the same 30 days as Open, because a waiting conversation is one a customer may still
    /// answer on the same terms.
    pub const fn defaults_for(channel: Channel) -> ChannelTimers {
        if channel.is_call() {
            ChannelTimers {
                open_secs: Some(30 * DAY),
                active_secs: Some(2 * HOUR),
                waiting_secs: None,
                wrap_up_secs: Some(DAY),
            }
        } else if channel.is_persistent() {
            ChannelTimers {
                open_secs: Some(30 * DAY),
                active_secs: Some(30 * DAY),
                waiting_secs: Some(30 * DAY),
                wrap_up_secs: Some(DAY),
            }
        } else {
            ChannelTimers {
                open_secs: Some(20 * MINUTE),
                active_secs: None,
                waiting_secs: None,
                wrap_up_secs: Some(15 * MINUTE),
            }
        }
    }
}

/// A workstream: how work of one channel is routed and what capacity it takes.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Workstream {
    pub id: WorkstreamId,
    pub name: String,
    pub channel: Channel,
    pub mode: RoutingMode,
    /// Capacity units one conversation of this workstream holds.
    pub capacity_units: u32,
    /// Base statuses an agent may be in to be offered work. A custom presence is allowed when
    /// its base status is.
    pub allowed_presences: BTreeSet<BaseStatus>,
    pub wrap_up_blocking: WrapUpBlocking,
    pub timers: ChannelTimers,
    pub offer_timeout_secs: u32,
}

impl Workstream {
    /// A workstream with the documented defaults for its channel: Available and Busy agents are
    /// offered work, wrap-up blocks capacity, offers time out after 120 s.
    pub fn with_defaults(id: WorkstreamId, name: &str, channel: Channel) -> Workstream {
        Workstream {
            id,
            name: name.to_owned(),
            channel,
            mode: RoutingMode::Push,
            capacity_units: 1,
            allowed_presences: [BaseStatus::Available, BaseStatus::Busy].into(),
            wrap_up_blocking: WrapUpBlocking::Always,
            timers: ChannelTimers::defaults_for(channel),
            offer_timeout_secs: DEFAULT_OFFER_TIMEOUT_SECS,
        }
    }
}

/// A queue: agents who may take a workstream's conversations, and how one of them is picked.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct QueueConfig {
    pub id: QueueId,
    pub name: String,
    pub workstream: WorkstreamId,
    pub method: AssignmentMethod,
}

/// An agent's profile as provisioned by an administrator.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AgentProfile {
    pub id: AgentId,
    pub name: String,
    /// Total capacity units.
    pub capacity_units: u32,
    pub skills: BTreeSet<String>,
    /// Session tabs the desktop may hold (`maxNumberOfSessions`).
    pub max_sessions: u32,
    /// The presence set by the administrator for sign-in and after a disconnect. When it is
    /// Away or Offline it is used as is; otherwise presence is calculated from capacity.
    pub default_presence: PresenceId,
}

/// A custom presence an administrator defined.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CustomPresence {
    pub id: PresenceId,
    pub name: String,
    pub base: BaseStatus,
}
