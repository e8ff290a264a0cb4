//! Commands: what someone asks the engine to do. `decide` turns one into events or a rejection.

use crate::config::{AgentProfile, CustomPresence, QueueConfig, Workstream};
use crate::model::{
    Actor, AgentId, ConversationId, LinkEntity, LinkedRecord, MediaAction, MediaKind, PresenceId,
    QueueId, RecordId, SessionRef, SupervisorId, TransferTarget,
};

#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Command {
    // --- administration ------------------------------------------------------------------
    ConfigureWorkstream(Workstream),
    ConfigureQueue(QueueConfig),
    DefineCustomPresence(CustomPresence),
    ProvisionAgent(AgentProfile),
    SetAgentCapacity {
        agent: AgentId,
        capacity_units: u32,
    },
    AddAgentToQueue {
        queue: QueueId,
        agent: AgentId,
    },
    RemoveAgentFromQueue {
        queue: QueueId,
        agent: AgentId,
    },

    // --- agent desktop -------------------------------------------------------------------
    SignIn {
        agent: AgentId,
    },
    SignOut {
        agent: AgentId,
    },
    /// A manual presence change by the agent (`CCaaS_ModifyAgentPresence`).
    SetPresence {
        agent: AgentId,
        presence: PresenceId,
    },
    Disconnect {
        agent: AgentId,
    },
    Reconnect {
        agent: AgentId,
    },
    Accept {
        agent: AgentId,
        session: SessionRef,
    },
    Reject {
        agent: AgentId,
        session: SessionRef,
    },
    /// Push mode's alternative: the agent picks an Open conversation from one of their queues.
    Pick {
        agent: AgentId,
        conversation: ConversationId,
    },
    Transfer {
        agent: AgentId,
        conversation: ConversationId,
        target: TransferTarget,
    },
    StartConsult {
        agent: AgentId,
        conversation: ConversationId,
        consultant: AgentId,
    },
    /// Ends a consult; the primary agent or the consultant may end it.
    EndConsult {
        agent: AgentId,
        conversation: ConversationId,
        consultant: AgentId,
    },
    Hold {
        agent: AgentId,
        conversation: ConversationId,
    },
    Unhold {
        agent: AgentId,
        conversation: ConversationId,
    },
    Media {
        actor: Actor,
        conversation: ConversationId,
        media: MediaKind,
        action: MediaAction,
    },
    /// `linkToConversation`; without a conversation, the agent's focused one.
    Link {
        agent: AgentId,
        conversation: Option<ConversationId>,
        record: LinkedRecord,
    },
    /// `unlinkFromConversation`; without a conversation, the agent's focused one.
    Unlink {
        agent: AgentId,
        conversation: Option<ConversationId>,
        entity: LinkEntity,
        record: RecordId,
    },
    Focus {
        agent: AgentId,
        session: SessionRef,
    },
    /// The primary agent ends the conversation: wrap-up.
    End {
        agent: AgentId,
        conversation: ConversationId,
    },
    /// The primary agent closes the session without ending (persistent channels): Waiting.
    CloseSession {
        agent: AgentId,
        conversation: ConversationId,
    },
    /// The last primary agent takes a waiting conversation back.
    ResumeWaiting {
        agent: AgentId,
        conversation: ConversationId,
    },
    CompleteWrapUp {
        agent: AgentId,
        conversation: ConversationId,
    },

    // --- customers and channels ----------------------------------------------------------
    StartConversation {
        conversation: ConversationId,
        queue: QueueId,
        skills: Vec<String>,
        customer: String,
    },
    CustomerMessage {
        conversation: ConversationId,
    },
    CustomerEnd {
        conversation: ConversationId,
    },
    CustomerDisconnect {
        conversation: ConversationId,
    },
    CustomerReconnect {
        conversation: ConversationId,
    },

    // --- routing, supervision, time ------------------------------------------------------
    /// Offer one Open conversation to the best eligible agent.
    Route {
        conversation: ConversationId,
    },
    /// Offer every routable Open conversation (of one queue, or all) while agents have room.
    AssignmentCycle {
        queue: Option<QueueId>,
    },
    SupervisorAssign {
        supervisor: SupervisorId,
        conversation: ConversationId,
        agent: AgentId,
    },
    ForceClose {
        supervisor: SupervisorId,
        conversation: ConversationId,
    },
    /// A case was resolved in the CRM: conversations linked to it close.
    ResolveCase {
        record: RecordId,
    },
    /// Time passed: fire every deadline due at `now`.
    Tick,
}
