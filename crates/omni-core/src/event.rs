//! Events: the immutable facts of the log. Each carries everything `apply` needs so that folding
//! is bookkeeping only; every judgement was made in `decide`.

use crate::config::{AgentProfile, CustomPresence, QueueConfig, Workstream};
use crate::model::{
    Actor, AgentId, Channel, ClosureReason, ConversationId, LinkedRecord, MediaKind, MediaState,
    OfferOrigin, Presence, PresenceSource, QueueId, SessionRef, StatusReason, TabOutcome,
    Timestamp, TransferTarget, WorkstreamId,
};

/// One fact, and when it happened.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Event {
    pub at: Timestamp,
    pub kind: EventKind,
}

#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum EventKind {
    // --- configuration -------------------------------------------------------------------
    WorkstreamConfigured(Workstream),
    QueueConfigured(QueueConfig),
    CustomPresenceDefined(CustomPresence),
    /// An agent was created, or their profile replaced (capacity, skills, max sessions…).
    AgentProvisioned(AgentProfile),
    AgentCapacityChanged {
        agent: AgentId,
        capacity_units: u32,
    },
    QueueMembershipChanged {
        queue: QueueId,
        agent: AgentId,
        member: bool,
    },

    // --- agents --------------------------------------------------------------------------
    AgentSignedIn {
        agent: AgentId,
    },
    AgentSignedOut {
        agent: AgentId,
    },
    /// The agent's presence changed. `sticky` marks a manual override that persists until
    /// sign-out or another manual change.
    PresenceUpdate {
        agent: AgentId,
        presence: Presence,
        source: PresenceSource,
        sticky: bool,
    },
    /// The agent's desktop lost its connection; `previous` is restored on a timely return.
    AgentDisconnected {
        agent: AgentId,
        previous: Presence,
        previous_sticky: bool,
    },
    AgentReconnected {
        agent: AgentId,
    },
    /// The disconnect grace ran out: the agent's work was released to be routed again.
    AgentDisconnectGraceExpired {
        agent: AgentId,
    },

    // --- conversations -------------------------------------------------------------------
    /// A customer request arrived: the conversation exists, Open, awaiting assignment.
    ConversationCreated {
        conversation: ConversationId,
        channel: Channel,
        queue: QueueId,
        workstream: WorkstreamId,
        skills: Vec<String>,
        customer: String,
    },
    /// An offer: the agent's desktop shows the incoming-session toast. Reserves `units` of the
    /// agent's capacity until it is accepted, rejected, timed out or withdrawn.
    IncomingSessionRequest {
        session: SessionRef,
        agent: AgentId,
        origin: OfferOrigin,
        units: u32,
        expires_at: Timestamp,
        /// The queue whose round robin this offer counts in (push routing only).
        queue: Option<QueueId>,
    },
    /// The agent accepted: they are the primary agent and hold `units` of capacity.
    SessionAccepted {
        session: SessionRef,
        agent: AgentId,
        units: u32,
        tab: TabOutcome,
    },
    OfferRejected {
        session: SessionRef,
        agent: AgentId,
        units: u32,
    },
    OfferTimedOut {
        session: SessionRef,
        agent: AgentId,
        units: u32,
    },
    /// An offer withdrawn before an answer (agent disconnected, customer left, closed…).
    OfferWithdrawn {
        session: SessionRef,
        agent: AgentId,
        units: u32,
        reason: ClosureReason,
    },
    /// A worked session (primary or consult) ended.
    SessionClosed {
        session: SessionRef,
        agent: AgentId,
        reason: ClosureReason,
    },
    CapacityReleased {
        conversation: ConversationId,
        agent: AgentId,
        units: u32,
    },
    TransferInitiated {
        conversation: ConversationId,
        from: AgentId,
        target: TransferTarget,
    },
    /// The transfer's receiver accepted and is now the primary agent.
    TransferCompleted {
        conversation: ConversationId,
        from: AgentId,
        to: AgentId,
    },
    ConsultStarted {
        session: SessionRef,
        consultant: AgentId,
        by: AgentId,
        tab: TabOutcome,
    },
    /// A consult ended. `keep_tab` when the consultant is about to receive the conversation
    /// by transfer: their tab stays and is re-activated on accept.
    ConsultEnded {
        session: SessionRef,
        consultant: AgentId,
        keep_tab: bool,
    },
    CallHeld {
        conversation: ConversationId,
    },
    CallResumed {
        conversation: ConversationId,
    },
    MediaStateChanged {
        conversation: ConversationId,
        media: MediaKind,
        state: MediaState,
    },
    RecordLinked {
        conversation: ConversationId,
        record: LinkedRecord,
        replaced: Option<LinkedRecord>,
    },
    RecordUnlinked {
        conversation: ConversationId,
        record: LinkedRecord,
    },
    /// A customer message arrived on a session the agent is not looking at.
    UnreadMessage {
        session: SessionRef,
        agent: AgentId,
        unread: u32,
    },
    /// The agent focused a session tab; its unread count is reset.
    SessionFocused {
        session: SessionRef,
        agent: AgentId,
    },
    /// The conversation is Open in `queue`, to be routed (again).
    ConversationQueued {
        conversation: ConversationId,
        queue: QueueId,
        reason: StatusReason,
    },
    /// An agent revived a waiting conversation: Active again, with them as primary.
    ConversationResumed {
        conversation: ConversationId,
        agent: AgentId,
        units: u32,
        tab: TabOutcome,
    },
    /// The agent closed the session without ending: Waiting for the customer.
    ConversationWaiting {
        conversation: ConversationId,
        agent: AgentId,
    },
    /// The conversation ended and moved to wrap-up.
    EndConversation {
        conversation: ConversationId,
        ended_by: Actor,
        reason: StatusReason,
    },
    /// Final. Nothing moves a closed conversation.
    ConversationClosed {
        conversation: ConversationId,
        reason: StatusReason,
    },
    CustomerDisconnected {
        conversation: ConversationId,
    },
    CustomerReconnected {
        conversation: ConversationId,
    },
}

impl EventKind {
    /// The conversation this event is about, if any.
    pub fn conversation(&self) -> Option<ConversationId> {
        use EventKind::*;
        match self {
            ConversationCreated { conversation, .. }
            | CapacityReleased { conversation, .. }
            | TransferInitiated { conversation, .. }
            | TransferCompleted { conversation, .. }
            | CallHeld { conversation }
            | CallResumed { conversation }
            | MediaStateChanged { conversation, .. }
            | RecordLinked { conversation, .. }
            | RecordUnlinked { conversation, .. }
            | ConversationQueued { conversation, .. }
            | ConversationResumed { conversation, .. }
            | ConversationWaiting { conversation, .. }
            | EndConversation { conversation, .. }
            | ConversationClosed { conversation, .. }
            | CustomerDisconnected { conversation }
            | CustomerReconnected { conversation } => Some(*conversation),
            IncomingSessionRequest { session, .. }
            | SessionAccepted { session, .. }
            | OfferRejected { session, .. }
            | OfferTimedOut { session, .. }
            | OfferWithdrawn { session, .. }
            | SessionClosed { session, .. }
            | ConsultStarted { session, .. }
            | ConsultEnded { session, .. }
            | UnreadMessage { session, .. }
            | SessionFocused { session, .. } => Some(session.conversation),
            WorkstreamConfigured(_)
            | QueueConfigured(_)
            | CustomPresenceDefined(_)
            | AgentProvisioned(_)
            | AgentCapacityChanged { .. }
            | QueueMembershipChanged { .. }
            | AgentSignedIn { .. }
            | AgentSignedOut { .. }
            | PresenceUpdate { .. }
            | AgentDisconnected { .. }
            | AgentReconnected { .. }
            | AgentDisconnectGraceExpired { .. } => None,
        }
    }

    /// The agent this event is about, if any (the receiver, for a completed transfer).
    pub fn agent(&self) -> Option<AgentId> {
        use EventKind::*;
        match self {
            AgentProvisioned(profile) => Some(profile.id),
            AgentCapacityChanged { agent, .. }
            | QueueMembershipChanged { agent, .. }
            | AgentSignedIn { agent }
            | AgentSignedOut { agent }
            | PresenceUpdate { agent, .. }
            | AgentDisconnected { agent, .. }
            | AgentReconnected { agent }
            | AgentDisconnectGraceExpired { agent }
            | IncomingSessionRequest { agent, .. }
            | SessionAccepted { agent, .. }
            | OfferRejected { agent, .. }
            | OfferTimedOut { agent, .. }
            | OfferWithdrawn { agent, .. }
            | SessionClosed { agent, .. }
            | CapacityReleased { agent, .. }
            | UnreadMessage { agent, .. }
            | SessionFocused { agent, .. }
            | ConversationResumed { agent, .. }
            | ConversationWaiting { agent, .. } => Some(*agent),
            TransferInitiated { from, .. } => Some(*from),
            TransferCompleted { to, .. } => Some(*to),
            ConsultStarted { consultant, .. } | ConsultEnded { consultant, .. } => {
                Some(*consultant)
            }
            _ => None,
        }
    }

    /// A short stable name, used for subjects, metrics and logs.
    pub fn name(&self) -> &'static str {
        use EventKind::*;
        match self {
            WorkstreamConfigured(_) => "WorkstreamConfigured",
            QueueConfigured(_) => "QueueConfigured",
            CustomPresenceDefined(_) => "CustomPresenceDefined",
            AgentProvisioned(_) => "AgentProvisioned",
            AgentCapacityChanged { .. } => "AgentCapacityChanged",
            QueueMembershipChanged { .. } => "QueueMembershipChanged",
            AgentSignedIn { .. } => "AgentSignedIn",
            AgentSignedOut { .. } => "AgentSignedOut",
            PresenceUpdate { .. } => "PresenceUpdate",
            AgentDisconnected { .. } => "AgentDisconnected",
            AgentReconnected { .. } => "AgentReconnected",
            AgentDisconnectGraceExpired { .. } => "AgentDisconnectGraceExpired",
            ConversationCreated { .. } => "ConversationCreated",
            IncomingSessionRequest { .. } => "IncomingSessionRequest",
            SessionAccepted { .. } => "SessionAccepted",
            OfferRejected { .. } => "OfferRejected",
            OfferTimedOut { .. } => "OfferTimedOut",
            OfferWithdrawn { .. } => "OfferWithdrawn",
            SessionClosed { .. } => "SessionClosed",
            CapacityReleased { .. } => "CapacityReleased",
            TransferInitiated { .. } => "TransferInitiated",
            TransferCompleted { .. } => "TransferCompleted",
            ConsultStarted { .. } => "ConsultStarted",
            ConsultEnded { .. } => "ConsultEnded",
            CallHeld { .. } => "CallHeld",
            CallResumed { .. } => "CallResumed",
            MediaStateChanged { .. } => "MediaStateChanged",
            RecordLinked { .. } => "RecordLinked",
            RecordUnlinked { .. } => "RecordUnlinked",
            UnreadMessage { .. } => "UnreadMessage",
            SessionFocused { .. } => "SessionFocused",
            ConversationQueued { .. } => "ConversationQueued",
            ConversationResumed { .. } => "ConversationResumed",
            ConversationWaiting { .. } => "ConversationWaiting",
            EndConversation { .. } => "EndConversation",
            ConversationClosed { .. } => "ConversationClosed",
            CustomerDisconnected { .. } => "CustomerDisconnected",
            CustomerReconnected { .. } => "CustomerReconnected",
        }
    }
}
