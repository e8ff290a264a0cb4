//! Identifiers, time, and the coded vocabularies of the domain.
//!
//! Every enum that crosses the wire keeps the numeric code integrators already know from
//! Dynamics 365 Omnichannel (`../shared/DOMAIN.md`), so projections line up with their reports.
//! Where Dynamics publishes no number (status-change and closure reasons) the codes are ours,
//! stable, and never reused.

use std::fmt;

use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name(pub Uuid);

        /// The order of the UUID's bytes, compared as one big-endian `u128`: the same order as
        /// `Uuid`'s, without the byte-slice compare that was a third of a replay's fold.
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.0.as_u128().cmp(&other.0.as_u128())
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            /// Builds an id from a small number; handy in tests and generated worlds.
            pub const fn from_u128(value: u128) -> Self {
                Self(Uuid::from_u128(value))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($label, " {}"), self.0)
            }
        }
    };
}

uuid_id!(
    /// A conversation (work item, `msdyn_ocliveworkitemid`).
    ConversationId,
    "conversation"
);
uuid_id!(
    /// An agent (`systemuser` behind `msdyn_agentid`).
    AgentId,
    "agent"
);
uuid_id!(
    /// A queue agents are members of.
    QueueId,
    "queue"
);
uuid_id!(
    /// A workstream: the routing and capacity configuration a queue follows.
    WorkstreamId,
    "workstream"
);
uuid_id!(
    /// A CRM record linked to a conversation (account, contact or incident).
    RecordId,
    "record"
);
uuid_id!(
    /// A supervisor acting on conversations they do not handle themselves.
    SupervisorId,
    "supervisor"
);

/// A session within its conversation: sessions are numbered 1, 2, 3… in creation order.
///
/// Numbering instead of random ids lets pure code (timers, routing) open sessions without a
/// random source, and keeps replay deterministic.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SessionNo(pub u32);

/// A session named fully: its conversation and its number there.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SessionRef {
    pub conversation: ConversationId,
    pub number: SessionNo,
}

impl fmt::Display for SessionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session {}/{}", self.conversation.0, self.number.0)
    }
}

/// Milliseconds since the Unix epoch. The core never reads a clock: time is always an argument.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn plus_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    pub const fn plus_secs(self, secs: i64) -> Timestamp {
        self.plus_ms(secs.saturating_mul(1000))
    }

    /// Milliseconds from `earlier` to `self`, never negative.
    pub const fn since(self, earlier: Timestamp) -> i64 {
        let d = self.0.saturating_sub(earlier.0);
        if d < 0 { 0 } else { d }
    }
}

/// Declares a fieldless enum with stable wire codes, `code()` and `from_code()`.
macro_rules! coded_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable wire code.
            pub const fn code(self) -> i32 {
                match self {
                    $($name::$variant => $code),+
                }
            }

            /// The value for a wire code, or `None` for a code this version does not know.
            pub const fn from_code(code: i32) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

coded_enum!(
    /// Conversation status (`statuscode` of `msdyn_ocliveworkitem`).
    ConversationStatus {
        Open = 1,
        Active = 2,
        Waiting = 3,
        Closed = 4,
        WrapUp = 5,
    }
);

coded_enum!(
    /// Why a conversation is in its status (`msdyn_statuschangereason`). Codes are ours.
    StatusReason {
        AwaitingAgentAssignment = 1,
        AwaitingAgentAcceptance = 2,
        InConversation = 3,
        AgentMovedToWrapUp = 4,
        CustomerDisconnected = 5,
        ConversationEndedByAgent = 6,
        AutoClosedFromWaiting = 7,
        AutoClosedBySystem = 8,
        ClosedDueToOverflow = 9,
        ForceClosedBySupervisor = 10,
        AssignedBySupervisor = 11,
        /// The customer left before any agent was assigned.
        CustomerAbandoned = 12,
        /// A case linked to the conversation was resolved.
        LinkedCaseResolved = 13,
        /// Wrap-up was finished by the agent.
        WrapUpCompleted = 14,
        /// The conversation is waiting for the customer on an asynchronous channel.
        AwaitingCustomer = 15,
    }
);

coded_enum!(
    /// Channel (`msdyn_channel` option values). The four engagement contexts without a label in
    /// the published table take its four unlabelled codes, in the table's order.
    Channel {
        Teams = 19241000,
        WhatsApp = 192300000,
        Line = 192310000,
        WeChat = 192320000,
        Facebook = 192330000,
        Sms = 192340000,
        Twitter = 192350001,
        Custom = 192350002,
        LiveChat = 192360000,
        Voice = 192370000,
        Video = 192380000,
        CoBrowse = 192390000,
        ScreenSharing = 192400000,
        VoiceCall = 192440000,
        AppleMessages = 192450000,
        GoogleBusinessMessages = 192450001,
    }
);

impl Channel {
    /// Persistent (asynchronous) channels keep the conversation when the agent closes the
    /// session: it goes to Waiting. Live chat and voice never wait.
    pub const fn is_persistent(self) -> bool {
        matches!(
            self,
            Channel::Teams
                | Channel::WhatsApp
                | Channel::Line
                | Channel::WeChat
                | Channel::Facebook
                | Channel::Sms
                | Channel::Twitter
                | Channel::AppleMessages
                | Channel::GoogleBusinessMessages
        )
    }

    /// Channels with a call: hold, recording and transcription apply only to these.
    pub const fn is_call(self) -> bool {
        matches!(self, Channel::Voice | Channel::VoiceCall | Channel::Video)
    }

    /// Channels where a dropped customer gets the reconnect window before the agent moves on:
    /// live sessions in a browser. A dropped call ends the call instead.
    pub const fn has_reconnect_window(self) -> bool {
        matches!(
            self,
            Channel::LiveChat | Channel::Custom | Channel::CoBrowse | Channel::ScreenSharing
        )
    }
}

coded_enum!(
    /// Session status (`msdyn_ocsession` statuscode).
    SessionStatus {
        Open = 1,
        Completed = 2,
        Canceled = 3,
    }
);

coded_enum!(
    /// Why a session ended (`msdyn_sessionclosurereason`). Codes are ours.
    ClosureReason {
        AgentRejected = 1,
        AgentTimedOut = 2,
        ConversationTimedOut = 3,
        AgentClosed = 4,
        AgentTransferred = 5,
        AgentDisconnected = 6,
        AgentReRouted = 7,
        TransferredToQueue = 8,
        AutoClose = 9,
        CustomerDisconnected = 10,
        AgentEndedConversation = 11,
        CustomerEndedConversation = 12,
    }
);

coded_enum!(
    /// Base presence status (`msdyn_presence` base status).
    BaseStatus {
        Available = 192360000,
        Busy = 192360001,
        BusyDnd = 192360002,
        Away = 192360003,
        Offline = 192360004,
    }
);

impl BaseStatus {
    /// Agents in Busy-DND, Away or Offline are never offered as transfer or consult targets.
    pub const fn accepts_transfers_and_consults(self) -> bool {
        matches!(self, BaseStatus::Available | BaseStatus::Busy)
    }

    /// A manual choice of these statuses sticks until sign-out or another manual change;
    /// Available and Busy are recalculated at the next accept or close.
    pub const fn is_sticky_when_manual(self) -> bool {
        matches!(
            self,
            BaseStatus::BusyDnd | BaseStatus::Away | BaseStatus::Offline
        )
    }

    /// The out-of-the-box presence with this base status.
    pub const fn default_presence(self) -> PresenceId {
        match self {
            BaseStatus::Available => PresenceId::AVAILABLE,
            BaseStatus::Busy => PresenceId::BUSY,
            BaseStatus::BusyDnd => PresenceId::BUSY_DND,
            BaseStatus::Away => PresenceId::AWAY,
            BaseStatus::Offline => PresenceId::OFFLINE,
        }
    }
}

/// A presence (`msdyn_presenceid`): one of the five out-of-the-box ids, or a custom presence an
/// administrator defined, which maps to one base status.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PresenceId(pub Uuid);

impl PresenceId {
    pub const fn from_u128(value: u128) -> Self {
        Self(Uuid::from_u128(value))
    }

    pub const AVAILABLE: PresenceId =
        PresenceId(Uuid::from_u128(0xf523f628_c07a_e811_8162_000d3aa11f50));
    pub const BUSY: PresenceId =
        PresenceId(Uuid::from_u128(0xefdeb843_c07a_e811_8162_000d3aa11f50));
    pub const BUSY_DND: PresenceId =
        PresenceId(Uuid::from_u128(0x08971864_c07a_e811_8162_000d3aa11f50));
    pub const AWAY: PresenceId =
        PresenceId(Uuid::from_u128(0x3dacae76_c07a_e811_8162_000d3aa11f50));
    pub const OFFLINE: PresenceId =
        PresenceId(Uuid::from_u128(0x70139190_c07a_e811_8162_000d3aa11f50));

    /// The base status of an out-of-the-box presence; `None` for a custom one.
    pub fn out_of_the_box_base(self) -> Option<BaseStatus> {
        BaseStatus::ALL
            .iter()
            .copied()
            .find(|base| base.default_presence() == self)
    }
}

impl fmt::Display for PresenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "presence {}", self.0)
    }
}

/// An agent's presence: which presence, and the base status routing looks at.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Presence {
    pub id: PresenceId,
    pub base: BaseStatus,
}

impl Presence {
    pub const fn of(base: BaseStatus) -> Presence {
        Presence {
            id: base.default_presence(),
            base,
        }
    }
}

coded_enum!(
    /// Who last changed an agent's presence (`msdyn_presencemodifiedby`).
    PresenceSource {
        Agent = 1,
        System = 2,
    }
);

impl PresenceSource {
    /// The label the presence webhook carries.
    pub const fn label(self) -> &'static str {
        match self {
            PresenceSource::Agent => "AGENT",
            PresenceSource::System => "SYSTEM",
        }
    }
}

coded_enum!(
    /// Call activity state of a voice conversation.
    CallActivity {
        Default = 0,
        Talk = 1,
        Hold = 2,
        Ended = 3,
    }
);

coded_enum!(
    /// Recording or transcription state (CCaaS start / pause / resume / stop).
    MediaState {
        NotStarted = 0,
        Running = 1,
        Paused = 2,
        Stopped = 3,
    }
);

coded_enum!(
    /// What a media command does to recording or transcription.
    MediaAction {
        Start = 1,
        Pause = 2,
        Resume = 3,
        Stop = 4,
    }
);

coded_enum!(
    /// Recording, or transcription: the two media streams a call can capture.
    MediaKind {
        Recording = 1,
        Transcription = 2,
    }
);

coded_enum!(
    /// Entity kinds `linkToConversation` accepts.
    LinkEntity {
        Account = 1,
        Contact = 2,
        Incident = 3,
    }
);

impl LinkEntity {
    /// The Dataverse logical name (`account`, `contact`, `incident`).
    pub const fn logical_name(self) -> &'static str {
        match self {
            LinkEntity::Account => "account",
            LinkEntity::Contact => "contact",
            LinkEntity::Incident => "incident",
        }
    }

    pub fn from_logical_name(name: &str) -> Option<LinkEntity> {
        LinkEntity::ALL
            .iter()
            .copied()
            .find(|e| e.logical_name() == name)
    }

    /// Links come in two slots: one customer (account or contact) and one case.
    pub const fn slot(self) -> LinkSlot {
        match self {
            LinkEntity::Account | LinkEntity::Contact => LinkSlot::Customer,
            LinkEntity::Incident => LinkSlot::Case,
        }
    }
}

/// The two link slots of a conversation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum LinkSlot {
    Customer,
    Case,
}

/// A linked CRM record.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LinkedRecord {
    pub entity: LinkEntity,
    pub record: RecordId,
}

coded_enum!(
    /// How a queue picks among eligible agents.
    AssignmentMethod {
        /// Most free capacity first; ties by round robin.
        HighestCapacity = 1,
        /// Earliest last assignment in this queue first.
        AdvancedRoundRobin = 2,
        /// Longest since capacity was last released first.
        LeastActive = 3,
    }
);

coded_enum!(
    /// Push: the engine offers. Pick: agents pick from the queue.
    RoutingMode {
        Push = 1,
        Pick = 2,
    }
);

/// Whether a conversation in wrap-up keeps holding the agent's capacity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WrapUpBlocking {
    /// Wrap-up holds capacity until the conversation closes.
    Always,
    /// Capacity is released as wrap-up starts.
    Never,
    /// Capacity is held this many seconds into wrap-up (30 s to 60 min), then released.
    ForSeconds(u32),
}

impl WrapUpBlocking {
    pub const MIN_CUSTOM_SECS: u32 = 30;
    pub const MAX_CUSTOM_SECS: u32 = 3600;
}

/// Who issued a command or caused an event.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Actor {
    Agent(AgentId),
    Supervisor(SupervisorId),
    Customer,
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Agent(a) => a.fmt(f),
            Actor::Supervisor(s) => s.fmt(f),
            Actor::Customer => f.write_str("the customer"),
            Actor::System => f.write_str("the system"),
        }
    }
}

/// Where a transfer goes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TransferTarget {
    Agent(AgentId),
    Queue(QueueId),
}

/// Why an offer was made.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum OfferOrigin {
    /// Push routing picked the agent.
    Routing,
    /// The primary agent transferred the conversation to this agent.
    Transfer { from: AgentId },
    /// A supervisor assigned the conversation to this agent.
    Supervisor(SupervisorId),
    /// The agent picked the conversation from their queue (pick mode); accepted at once.
    Pick,
}

coded_enum!(
    /// What happened to the agent's desktop tab when a session was accepted or a consult joined.
    TabOutcome {
        /// A new session tab was opened.
        Opened = 1,
        /// The agent already had a tab for the conversation; it was re-activated.
        Reactivated = 2,
        /// The agent was at `max_sessions`: no tab, a notification instead.
        LimitReached = 3,
    }
);

/// Display form of an unread count: the desktop shows "10+" past ten.
pub fn unread_badge(count: u32) -> String {
    if count > 10 {
        "10+".to_owned()
    } else {
        count.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_coded_enum_round_trips_its_codes() {
        for s in ConversationStatus::ALL {
            assert_eq!(ConversationStatus::from_code(s.code()), Some(*s));
        }
        for c in Channel::ALL {
            assert_eq!(Channel::from_code(c.code()), Some(*c));
        }
        for b in BaseStatus::ALL {
            assert_eq!(BaseStatus::from_code(b.code()), Some(*b));
            assert_eq!(b.default_presence().out_of_the_box_base(), Some(*b));
        }
        assert_eq!(ConversationStatus::from_code(6), None);
    }

    #[test]
    fn wire_codes_match_the_domain_document() {
        assert_eq!(ConversationStatus::WrapUp.code(), 5);
        assert_eq!(ConversationStatus::Closed.code(), 4);
        assert_eq!(Channel::Teams.code(), 19241000);
        assert_eq!(Channel::LiveChat.code(), 192360000);
        assert_eq!(BaseStatus::BusyDnd.code(), 192360002);
        assert_eq!(
            PresenceId::AWAY.0.to_string(),
            "3dacae76-c07a-e811-8162-000d3aa11f50"
        );
        assert_eq!(CallActivity::Hold.code(), 2);
    }

    #[test]
    fn unread_badge_caps_at_ten_plus() {
        assert_eq!(unread_badge(0), "0");
        assert_eq!(unread_badge(10), "10");
        assert_eq!(unread_badge(11), "10+");
    }
}
