//! Commands on the wire (`intake.proto`): what channel adapters, desktops, supervisors and the
//! router send, and the engine's answer. Like events, bytes become domain types only here, and
//! every error names the field.

use omni_core::{
    Actor, Command, ConversationId, Event, EventKind, LinkedRecord, MediaAction, Rejection,
    SessionNo, SessionRef, TransferTarget,
};
use prost::Message;
use uuid::Uuid;

use crate::decode::{actor as decode_actor, event_kind, linked_record as decode_linked_record};
use crate::encode::{actor as encode_actor, event as encode_event, linked_record};
use crate::error::{DecodeError, FieldPath};
use crate::pb::{self, command_request::Command as C, event_envelope::Event as Ev};
use crate::wire::{Coded, WireId, id_vec, optional_id_vec, parse_id, parse_optional_id};

/// A command with what the engine needs to record and deduplicate it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CommandEnvelope {
    /// The idempotency key: a retry with the same id gets the first answer.
    pub command_id: Uuid,
    /// Who asks; recorded on the events.
    pub actor: Actor,
    /// The flow this command belongs to; `None` starts one (the command id is used).
    pub correlation_id: Option<Uuid>,
    pub command: Command,
}

impl CommandEnvelope {
    /// A new command the engine's own machinery sends (timers, routing, setup): a fresh UUIDv7
    /// id, the system as actor, and no flow before it.
    pub fn from_system(command: Command) -> CommandEnvelope {
        CommandEnvelope {
            command_id: Uuid::now_v7(),
            actor: Actor::System,
            correlation_id: None,
            command,
        }
    }
}

/// Why bytes sent as a command could not be read. Displayed as one sentence naming the field.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RequestError {
    /// The bytes are not the expected protobuf message.
    #[error("bytes are not a protobuf omnichannel.v1.{message}: {source}")]
    NotProtobuf {
        message: &'static str,
        source: prost::DecodeError,
    },
    /// A field is missing or malformed.
    #[error(transparent)]
    Field(#[from] DecodeError),
    /// The command set does not match the subject it was sent on.
    #[error("a '{command}' command was sent on the subject for '{subject}'")]
    WrongSubject {
        command: &'static str,
        subject: String,
    },
}

/// The command is one only the engine itself issues (the clock's `Tick`): it has no wire form.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("'{0}' is issued by the engine itself and is never sent on the bus")]
pub struct InternalCommand(pub &'static str);

/// The name of a command on the bus: the `CommandRequest.command` member, which is also the
/// last token of its intake subject (`omni.intake.<name>`).
pub fn command_name(command: &Command) -> &'static str {
    use Command::*;
    match command {
        ConfigureWorkstream(_) => "configure_workstream",
        ConfigureQueue(_) => "configure_queue",
        DefineCustomPresence(_) => "define_custom_presence",
        ProvisionAgent(_) => "provision_agent",
        SetAgentCapacity { .. } => "set_agent_capacity",
        AddAgentToQueue { .. } => "add_agent_to_queue",
        RemoveAgentFromQueue { .. } => "remove_agent_from_queue",
        SignIn { .. } => "sign_in",
        SignOut { .. } => "sign_out",
        SetPresence { .. } => "set_presence",
        Disconnect { .. } => "disconnect",
        Reconnect { .. } => "reconnect",
        Accept { .. } => "accept",
        Reject { .. } => "reject",
        Pick { .. } => "pick",
        Transfer { .. } => "transfer",
        StartConsult { .. } => "start_consult",
        EndConsult { .. } => "end_consult",
        Hold { .. } => "hold",
        Unhold { .. } => "unhold",
        Media { .. } => "media",
        Link { .. } => "link",
        Unlink { .. } => "unlink",
        Focus { .. } => "focus",
        End { .. } => "end",
        CloseSession { .. } => "close_session",
        ResumeWaiting { .. } => "resume_waiting",
        CompleteWrapUp { .. } => "complete_wrap_up",
        StartConversation { .. } => "start_conversation",
        CustomerMessage { .. } => "customer_message",
        CustomerEnd { .. } => "customer_end",
        CustomerDisconnect { .. } => "customer_disconnect",
        CustomerReconnect { .. } => "customer_reconnect",
        Route { .. } => "route",
        AssignmentCycle { .. } => "assignment_cycle",
        SupervisorAssign { .. } => "supervisor_assign",
        ForceClose { .. } => "force_close",
        ResolveCase { .. } => "resolve_case",
        Tick => "tick",
    }
}

/// Every name [`command_name`] gives to a command that travels on the bus.
pub const COMMAND_NAMES: [&str; 38] = [
    "configure_workstream",
    "configure_queue",
    "define_custom_presence",
    "provision_agent",
    "set_agent_capacity",
    "add_agent_to_queue",
    "remove_agent_from_queue",
    "sign_in",
    "sign_out",
    "set_presence",
    "disconnect",
    "reconnect",
    "accept",
    "reject",
    "pick",
    "transfer",
    "start_consult",
    "end_consult",
    "hold",
    "unhold",
    "media",
    "link",
    "unlink",
    "focus",
    "end",
    "close_session",
    "resume_waiting",
    "complete_wrap_up",
    "start_conversation",
    "customer_message",
    "customer_end",
    "customer_disconnect",
    "customer_reconnect",
    "route",
    "assignment_cycle",
    "supervisor_assign",
    "force_close",
    "resolve_case",
];

fn code<T: Coded>(value: i32, at: FieldPath) -> Result<T, DecodeError> {
    crate::wire::parse_code(value, at)
}

/// `field!(Message, m.field)`: the path of `field` in `Message`, checked by the compiler.
macro_rules! path {
    ($message:literal, $m:ident . $field:ident) => {{
        let _ = &$m.$field;
        FieldPath::new($message, stringify!($field))
    }};
}

macro_rules! id {
    ($message:literal, $m:ident . $field:ident) => {
        parse_id(&$m.$field, path!($message, $m.$field))
    };
}

// --- domain → wire ---------------------------------------------------------------------------

/// The bytes of a command request. Fails only for commands the engine issues to itself.
pub fn encode_command(envelope: &CommandEnvelope) -> Result<Vec<u8>, InternalCommand> {
    pb::CommandRequest::try_from(envelope).map(|request| request.encode_to_vec())
}

fn agent_ref(agent: impl WireId) -> pb::AgentRef {
    pb::AgentRef {
        agent_id: id_vec(agent),
    }
}

fn agent_session(agent: impl WireId, session: SessionRef) -> pb::AgentSession {
    pb::AgentSession {
        agent_id: id_vec(agent),
        conversation_id: id_vec(session.conversation),
        session_number: session.number.0,
    }
}

fn agent_conversation(agent: impl WireId, conversation: ConversationId) -> pb::AgentConversation {
    pb::AgentConversation {
        agent_id: id_vec(agent),
        conversation_id: id_vec(conversation),
    }
}

fn conversation_ref(conversation: ConversationId) -> pb::ConversationRef {
    pb::ConversationRef {
        conversation_id: id_vec(conversation),
    }
}

fn consult(
    agent: impl WireId,
    conversation: ConversationId,
    consultant: impl WireId,
) -> pb::Consult {
    pb::Consult {
        agent_id: id_vec(agent),
        conversation_id: id_vec(conversation),
        consultant_id: id_vec(consultant),
    }
}

/// The wire form of a configuration command is the event it records.
fn recorded(kind: EventKind) -> Ev {
    encode_event(&kind)
}

impl TryFrom<&CommandEnvelope> for pb::CommandRequest {
    type Error = InternalCommand;

    fn try_from(envelope: &CommandEnvelope) -> Result<Self, InternalCommand> {
        use Command as K;
        let command = match &envelope.command {
            K::ConfigureWorkstream(ws) => {
                match recorded(EventKind::WorkstreamConfigured(ws.clone())) {
                    Ev::WorkstreamConfigured(m) => C::ConfigureWorkstream(m),
                    _ => unreachable!("a workstream encodes as WorkstreamConfigured"),
                }
            }
            K::ConfigureQueue(queue) => match recorded(EventKind::QueueConfigured(queue.clone())) {
                Ev::QueueConfigured(m) => C::ConfigureQueue(m),
                _ => unreachable!("a queue encodes as QueueConfigured"),
            },
            K::DefineCustomPresence(custom) => {
                match recorded(EventKind::CustomPresenceDefined(custom.clone())) {
                    Ev::CustomPresenceDefined(m) => C::DefineCustomPresence(m),
                    _ => unreachable!("a custom presence encodes as CustomPresenceDefined"),
                }
            }
            K::ProvisionAgent(profile) => {
                match recorded(EventKind::AgentProvisioned(profile.clone())) {
                    Ev::AgentProvisioned(m) => C::ProvisionAgent(m),
                    _ => unreachable!("a profile encodes as AgentProvisioned"),
                }
            }
            K::SetAgentCapacity {
                agent,
                capacity_units,
            } => C::SetAgentCapacity(pb::SetAgentCapacity {
                agent_id: id_vec(*agent),
                capacity_units: *capacity_units,
            }),
            K::AddAgentToQueue { queue, agent } => C::AddAgentToQueue(pb::QueueMember {
                queue_id: id_vec(*queue),
                agent_id: id_vec(*agent),
            }),
            K::RemoveAgentFromQueue { queue, agent } => C::RemoveAgentFromQueue(pb::QueueMember {
                queue_id: id_vec(*queue),
                agent_id: id_vec(*agent),
            }),
            K::SignIn { agent } => C::SignIn(agent_ref(*agent)),
            K::SignOut { agent } => C::SignOut(agent_ref(*agent)),
            K::SetPresence { agent, presence } => C::SetPresence(pb::SetPresence {
                agent_id: id_vec(*agent),
                presence_id: id_vec(*presence),
            }),
            K::Disconnect { agent } => C::Disconnect(agent_ref(*agent)),
            K::Reconnect { agent } => C::Reconnect(agent_ref(*agent)),
            K::Accept { agent, session } => C::Accept(agent_session(*agent, *session)),
            K::Reject { agent, session } => C::Reject(agent_session(*agent, *session)),
            K::Focus { agent, session } => C::Focus(agent_session(*agent, *session)),
            K::Pick {
                agent,
                conversation,
            } => C::Pick(agent_conversation(*agent, *conversation)),
            K::Transfer {
                agent,
                conversation,
                target,
            } => C::Transfer(pb::Transfer {
                agent_id: id_vec(*agent),
                conversation_id: id_vec(*conversation),
                target: Some(match target {
                    TransferTarget::Agent(a) => pb::transfer::Target::TargetAgentId(id_vec(*a)),
                    TransferTarget::Queue(q) => pb::transfer::Target::TargetQueueId(id_vec(*q)),
                }),
            }),
            K::StartConsult {
                agent,
                conversation,
                consultant,
            } => C::StartConsult(consult(*agent, *conversation, *consultant)),
            K::EndConsult {
                agent,
                conversation,
                consultant,
            } => C::EndConsult(consult(*agent, *conversation, *consultant)),
            K::Hold {
                agent,
                conversation,
            } => C::Hold(agent_conversation(*agent, *conversation)),
            K::Unhold {
                agent,
                conversation,
            } => C::Unhold(agent_conversation(*agent, *conversation)),
            K::End {
                agent,
                conversation,
            } => C::End(agent_conversation(*agent, *conversation)),
            K::CloseSession {
                agent,
                conversation,
            } => C::CloseSession(agent_conversation(*agent, *conversation)),
            K::ResumeWaiting {
                agent,
                conversation,
            } => C::ResumeWaiting(agent_conversation(*agent, *conversation)),
            K::CompleteWrapUp {
                agent,
                conversation,
            } => C::CompleteWrapUp(agent_conversation(*agent, *conversation)),
            K::Media {
                actor: _,
                conversation,
                media,
                action,
            } => C::Media(pb::Media {
                conversation_id: id_vec(*conversation),
                media: media.code(),
                action: action.code(),
            }),
            K::Link {
                agent,
                conversation,
                record,
            } => C::Link(pb::Link {
                agent_id: id_vec(*agent),
                conversation_id: optional_id_vec(*conversation),
                record: Some(linked_record(*record)),
            }),
            K::Unlink {
                agent,
                conversation,
                entity,
                record,
            } => C::Unlink(pb::Unlink {
                agent_id: id_vec(*agent),
                conversation_id: optional_id_vec(*conversation),
                entity: entity.code(),
                record_id: id_vec(*record),
            }),
            K::StartConversation {
                conversation,
                queue,
                skills,
                customer,
            } => C::StartConversation(pb::StartConversation {
                conversation_id: id_vec(*conversation),
                queue_id: id_vec(*queue),
                skills: skills.clone(),
                customer: customer.clone(),
            }),
            K::CustomerMessage { conversation } => {
                C::CustomerMessage(conversation_ref(*conversation))
            }
            K::CustomerEnd { conversation } => C::CustomerEnd(conversation_ref(*conversation)),
            K::CustomerDisconnect { conversation } => {
                C::CustomerDisconnect(conversation_ref(*conversation))
            }
            K::CustomerReconnect { conversation } => {
                C::CustomerReconnect(conversation_ref(*conversation))
            }
            K::Route { conversation } => C::Route(conversation_ref(*conversation)),
            K::AssignmentCycle { queue } => C::AssignmentCycle(pb::AssignmentCycle {
                queue_id: optional_id_vec(*queue),
            }),
            K::SupervisorAssign {
                supervisor,
                conversation,
                agent,
            } => C::SupervisorAssign(pb::SupervisorAssign {
                supervisor_id: id_vec(*supervisor),
                conversation_id: id_vec(*conversation),
                agent_id: id_vec(*agent),
            }),
            K::ForceClose {
                supervisor,
                conversation,
            } => C::ForceClose(pb::SupervisorConversation {
                supervisor_id: id_vec(*supervisor),
                conversation_id: id_vec(*conversation),
            }),
            K::ResolveCase { record } => C::ResolveCase(pb::ResolveCase {
                record_id: id_vec(*record),
            }),
            K::Tick => return Err(InternalCommand("tick")),
        };
        // The actor of a media command is the command's own: keep the two the same.
        let actor = match &envelope.command {
            K::Media { actor, .. } => *actor,
            _ => envelope.actor,
        };
        Ok(pb::CommandRequest {
            command_id: id_vec(envelope.command_id),
            actor: Some(encode_actor(actor)),
            correlation_id: optional_id_vec(envelope.correlation_id),
            command: Some(command),
        })
    }
}

// --- wire → domain ---------------------------------------------------------------------------

/// Reads a command request sent on the intake subject for `subject_command` (the last token of
/// the subject), validating every field.
pub fn decode_command(
    bytes: &[u8],
    subject_command: &str,
) -> Result<CommandEnvelope, RequestError> {
    let request =
        pb::CommandRequest::decode(bytes).map_err(|source| RequestError::NotProtobuf {
            message: "CommandRequest",
            source,
        })?;
    let envelope = CommandEnvelope::try_from(request)?;
    let command = command_name(&envelope.command);
    if command != subject_command {
        return Err(RequestError::WrongSubject {
            command,
            subject: subject_command.to_owned(),
        });
    }
    Ok(envelope)
}

fn session(
    conversation: &[u8],
    number: u32,
    message: &'static str,
) -> Result<SessionRef, DecodeError> {
    let conversation = parse_id(conversation, FieldPath::new(message, "conversation_id"))?;
    if number == 0 {
        return Err(DecodeError::Missing(FieldPath::new(
            message,
            "session_number",
        )));
    }
    Ok(SessionRef {
        conversation,
        number: SessionNo(number),
    })
}

/// A configuration command decodes as the event it records.
fn configured(event: Ev) -> Result<EventKind, DecodeError> {
    event_kind(event)
}

impl TryFrom<pb::CommandRequest> for CommandEnvelope {
    type Error = DecodeError;

    fn try_from(request: pb::CommandRequest) -> Result<Self, DecodeError> {
        let command_id = id!("CommandRequest", request.command_id)?;
        let correlation_id = parse_optional_id(
            &request.correlation_id,
            path!("CommandRequest", request.correlation_id),
        )?;
        let actor = match &request.actor {
            Some(actor) => decode_actor(actor, path!("CommandRequest", request.actor))?,
            None => return Err(DecodeError::Missing(path!("CommandRequest", request.actor))),
        };
        let Some(command) = request.command else {
            return Err(DecodeError::Missing(FieldPath::new(
                "CommandRequest",
                "command",
            )));
        };
        use Command as K;
        let command = match command {
            C::ConfigureWorkstream(m) => match configured(Ev::WorkstreamConfigured(m))? {
                EventKind::WorkstreamConfigured(ws) => K::ConfigureWorkstream(ws),
                _ => unreachable!("WorkstreamConfigured decodes as a workstream"),
            },
            C::ConfigureQueue(m) => match configured(Ev::QueueConfigured(m))? {
                EventKind::QueueConfigured(queue) => K::ConfigureQueue(queue),
                _ => unreachable!("QueueConfigured decodes as a queue"),
            },
            C::DefineCustomPresence(m) => match configured(Ev::CustomPresenceDefined(m))? {
                EventKind::CustomPresenceDefined(custom) => K::DefineCustomPresence(custom),
                _ => unreachable!("CustomPresenceDefined decodes as a custom presence"),
            },
            C::ProvisionAgent(m) => match configured(Ev::AgentProvisioned(m))? {
                EventKind::AgentProvisioned(profile) => K::ProvisionAgent(profile),
                _ => unreachable!("AgentProvisioned decodes as a profile"),
            },
            C::SetAgentCapacity(m) => K::SetAgentCapacity {
                agent: id!("SetAgentCapacity", m.agent_id)?,
                capacity_units: m.capacity_units,
            },
            C::AddAgentToQueue(m) => K::AddAgentToQueue {
                queue: id!("QueueMember", m.queue_id)?,
                agent: id!("QueueMember", m.agent_id)?,
            },
            C::RemoveAgentFromQueue(m) => K::RemoveAgentFromQueue {
                queue: id!("QueueMember", m.queue_id)?,
                agent: id!("QueueMember", m.agent_id)?,
            },
            C::SignIn(m) => K::SignIn {
                agent: id!("AgentRef", m.agent_id)?,
            },
            C::SignOut(m) => K::SignOut {
                agent: id!("AgentRef", m.agent_id)?,
            },
            C::SetPresence(m) => K::SetPresence {
                agent: id!("SetPresence", m.agent_id)?,
                presence: id!("SetPresence", m.presence_id)?,
            },
            C::Disconnect(m) => K::Disconnect {
                agent: id!("AgentRef", m.agent_id)?,
            },
            C::Reconnect(m) => K::Reconnect {
                agent: id!("AgentRef", m.agent_id)?,
            },
            C::Accept(m) => K::Accept {
                agent: id!("AgentSession", m.agent_id)?,
                session: session(&m.conversation_id, m.session_number, "AgentSession")?,
            },
            C::Reject(m) => K::Reject {
                agent: id!("AgentSession", m.agent_id)?,
                session: session(&m.conversation_id, m.session_number, "AgentSession")?,
            },
            C::Focus(m) => K::Focus {
                agent: id!("AgentSession", m.agent_id)?,
                session: session(&m.conversation_id, m.session_number, "AgentSession")?,
            },
            C::Pick(m) => K::Pick {
                agent: id!("AgentConversation", m.agent_id)?,
                conversation: id!("AgentConversation", m.conversation_id)?,
            },
            C::Transfer(m) => K::Transfer {
                agent: id!("Transfer", m.agent_id)?,
                conversation: id!("Transfer", m.conversation_id)?,
                target: match &m.target {
                    Some(pb::transfer::Target::TargetAgentId(a)) => TransferTarget::Agent(
                        parse_id(a, FieldPath::new("Transfer", "target_agent_id"))?,
                    ),
                    Some(pb::transfer::Target::TargetQueueId(q)) => TransferTarget::Queue(
                        parse_id(q, FieldPath::new("Transfer", "target_queue_id"))?,
                    ),
                    None => return Err(DecodeError::Missing(path!("Transfer", m.target))),
                },
            },
            C::StartConsult(m) => K::StartConsult {
                agent: id!("Consult", m.agent_id)?,
                conversation: id!("Consult", m.conversation_id)?,
                consultant: id!("Consult", m.consultant_id)?,
            },
            C::EndConsult(m) => K::EndConsult {
                agent: id!("Consult", m.agent_id)?,
                conversation: id!("Consult", m.conversation_id)?,
                consultant: id!("Consult", m.consultant_id)?,
            },
            C::Hold(m) => K::Hold {
                agent: id!("AgentConversation", m.agent_id)?,
                conversation: id!("AgentConversation", m.conversation_id)?,
            },
            C::Unhold(m) => K::Unhold {
                agent: id!("AgentConversation", m.agent_id)?,
                conversation: id!("AgentConversation", m.conversation_id)?,
            },
            C::End(m) => K::End {
                agent: id!("AgentConversation", m.agent_id)?,
                conversation: id!("AgentConversation", m.conversation_id)?,
            },
            C::CloseSession(m) => K::CloseSession {
                agent: id!("AgentConversation", m.agent_id)?,
                conversation: id!("AgentConversation", m.conversation_id)?,
            },
            C::ResumeWaiting(m) => K::ResumeWaiting {
                agent: id!("AgentConversation", m.agent_id)?,
                conversation: id!("AgentConversation", m.conversation_id)?,
            },
            C::CompleteWrapUp(m) => K::CompleteWrapUp {
                agent: id!("AgentConversation", m.agent_id)?,
                conversation: id!("AgentConversation", m.conversation_id)?,
            },
            C::Media(m) => K::Media {
                actor,
                conversation: id!("Media", m.conversation_id)?,
                media: code(m.media, path!("Media", m.media))?,
                action: media_action(m.action)?,
            },
            C::Link(m) => K::Link {
                agent: id!("Link", m.agent_id)?,
                conversation: parse_optional_id(
                    &m.conversation_id,
                    path!("Link", m.conversation_id),
                )?,
                record: match &m.record {
                    Some(record) => linked_record_bytes(record)?,
                    None => return Err(DecodeError::Missing(path!("Link", m.record))),
                },
            },
            C::Unlink(m) => K::Unlink {
                agent: id!("Unlink", m.agent_id)?,
                conversation: parse_optional_id(
                    &m.conversation_id,
                    path!("Unlink", m.conversation_id),
                )?,
                entity: code(m.entity, path!("Unlink", m.entity))?,
                record: id!("Unlink", m.record_id)?,
            },
            C::StartConversation(m) => K::StartConversation {
                conversation: id!("StartConversation", m.conversation_id)?,
                queue: id!("StartConversation", m.queue_id)?,
                skills: m.skills,
                customer: m.customer,
            },
            C::CustomerMessage(m) => K::CustomerMessage {
                conversation: id!("ConversationRef", m.conversation_id)?,
            },
            C::CustomerEnd(m) => K::CustomerEnd {
                conversation: id!("ConversationRef", m.conversation_id)?,
            },
            C::CustomerDisconnect(m) => K::CustomerDisconnect {
                conversation: id!("ConversationRef", m.conversation_id)?,
            },
            C::CustomerReconnect(m) => K::CustomerReconnect {
                conversation: id!("ConversationRef", m.conversation_id)?,
            },
            C::Route(m) => K::Route {
                conversation: id!("ConversationRef", m.conversation_id)?,
            },
            C::AssignmentCycle(m) => K::AssignmentCycle {
                queue: parse_optional_id(&m.queue_id, path!("AssignmentCycle", m.queue_id))?,
            },
            C::SupervisorAssign(m) => K::SupervisorAssign {
                supervisor: id!("SupervisorAssign", m.supervisor_id)?,
                conversation: id!("SupervisorAssign", m.conversation_id)?,
                agent: id!("SupervisorAssign", m.agent_id)?,
            },
            C::ForceClose(m) => K::ForceClose {
                supervisor: id!("SupervisorConversation", m.supervisor_id)?,
                conversation: id!("SupervisorConversation", m.conversation_id)?,
            },
            C::ResolveCase(m) => K::ResolveCase {
                record: id!("ResolveCase", m.record_id)?,
            },
        };
        Ok(CommandEnvelope {
            command_id,
            actor,
            correlation_id,
            command,
        })
    }
}

fn media_action(value: i32) -> Result<MediaAction, DecodeError> {
    let at = FieldPath::new("Media", "action");
    if value == 0 {
        return Err(DecodeError::Missing(at));
    }
    MediaAction::from_code(value).ok_or(DecodeError::UnknownCode {
        field: at,
        value,
        vocabulary: "MediaAction",
    })
}

fn linked_record_bytes(record: &pb::LinkedRecord) -> Result<LinkedRecord, DecodeError> {
    decode_linked_record(record, FieldPath::new("Link", "record"))
}

// --- answers ---------------------------------------------------------------------------------

/// The stable wire code of a core rejection. Exhaustive, so a new rejection needs a code.
pub fn rejection_code(rejection: &Rejection) -> pb::RejectionCode {
    use Rejection as R;
    use pb::RejectionCode as W;
    match rejection {
        R::UnknownConversation(_) => W::UnknownConversation,
        R::UnknownAgent(_) => W::UnknownAgent,
        R::UnknownQueue(_) => W::UnknownQueue,
        R::UnknownWorkstream(_) => W::UnknownWorkstream,
        R::UnknownSession(_) => W::UnknownSession,
        R::UnknownPresence(_) => W::UnknownPresence,
        R::ConversationExists(_) => W::ConversationExists,
        R::ConversationClosed { .. } => W::ConversationClosed,
        R::NotPrimary { .. } => W::NotPrimary,
        R::WrongStatus { .. } => W::WrongStatus,
        R::NotSignedIn(_) => W::NotSignedIn,
        R::AlreadySignedIn(_) => W::AlreadySignedIn,
        R::Disconnected(_) => W::Disconnected,
        R::NotDisconnected(_) => W::NotDisconnected,
        R::TargetUnavailable { .. } => W::TargetUnavailable,
        R::SelfTarget { .. } => W::SelfTarget,
        R::TooManyConsultants { .. } => W::TooManyConsultants,
        R::AlreadyInConversation { .. } => W::AlreadyInConversation,
        R::NotConsultant { .. } => W::NotConsultant,
        R::NoCapacity { .. } => W::NoCapacity,
        R::NotAnOpenOffer { .. } => W::NotAnOpenOffer,
        R::OfferExpired { .. } => W::OfferExpired,
        R::NotOwnSession { .. } => W::NotOwnSession,
        R::AlreadyOffered { .. } => W::AlreadyOffered,
        R::NoEligibleAgent { .. } => W::NoEligibleAgent,
        R::NotEligible { .. } => W::NotEligible,
        R::PickModeQueue { .. } => W::PickModeQueue,
        R::QueueHasNoAgents { .. } => W::QueueHasNoAgents,
        R::ChannelDoesNotSupport { .. } => W::ChannelDoesNotSupport,
        R::CallState { .. } => W::CallState,
        R::MediaTransition { .. } => W::MediaTransition,
        R::MediaActor { .. } => W::MediaActor,
        R::NoFocusedConversation { .. } => W::NoFocusedConversation,
        R::NotLinked { .. } => W::NotLinked,
        R::StillHandling { .. } => W::StillHandling,
        R::NotMember { .. } => W::NotMember,
        R::AlreadyMember { .. } => W::AlreadyMember,
        R::NotLastAgent { .. } => W::NotLastAgent,
        R::CustomerConnection { .. } => W::CustomerConnection,
        R::InvalidConfig(..) => W::InvalidConfig,
    }
}

/// The reply for a rejected command.
pub fn rejected_reply(
    code: pb::RejectionCode,
    reason: String,
    retryable: bool,
) -> pb::CommandReply {
    pb::CommandReply {
        outcome: Some(pb::command_reply::Outcome::Rejected(pb::Rejected {
            code: code as i32,
            reason,
            retryable,
        })),
    }
}

/// The reply for a command the core rejected.
pub fn rejection_reply(rejection: &Rejection) -> pb::CommandReply {
    rejected_reply(rejection_code(rejection), rejection.to_string(), false)
}

/// One event of an accepted command, as its reply lists it.
pub fn committed_event(event_id: Uuid, position: u64, event: &Event) -> pb::CommittedEvent {
    pb::CommittedEvent {
        event_id: event_id.as_bytes().to_vec(),
        position,
        kind: event.kind.name().to_owned(),
    }
}

/// The reply for an accepted command.
pub fn accepted_reply(events: Vec<pb::CommittedEvent>, replayed: bool) -> pb::CommandReply {
    pb::CommandReply {
        outcome: Some(pb::command_reply::Outcome::Accepted(pb::Accepted {
            events,
            replayed,
        })),
    }
}

/// What a client makes of a reply.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    Accepted {
        events: Vec<Committed>,
        replayed: bool,
    },
    Rejected {
        code: pb::RejectionCode,
        reason: String,
        retryable: bool,
    },
}

/// An event of an accepted command.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Committed {
    pub event_id: Uuid,
    pub position: u64,
    pub kind: String,
}

impl Outcome {
    /// The last log position the command wrote, for read-your-writes queries.
    pub fn last_position(&self) -> Option<u64> {
        match self {
            Outcome::Accepted { events, .. } => events.last().map(|e| e.position),
            Outcome::Rejected { .. } => None,
        }
    }
}

/// Reads a command reply.
pub fn decode_reply(bytes: &[u8]) -> Result<Outcome, RequestError> {
    let reply = pb::CommandReply::decode(bytes).map_err(|source| RequestError::NotProtobuf {
        message: "CommandReply",
        source,
    })?;
    match reply.outcome {
        Some(pb::command_reply::Outcome::Accepted(accepted)) => Ok(Outcome::Accepted {
            events: accepted
                .events
                .into_iter()
                .map(|e| {
                    Ok(Committed {
                        event_id: parse_id(&e.event_id, path!("CommittedEvent", e.event_id))?,
                        position: e.position,
                        kind: e.kind,
                    })
                })
                .collect::<Result<_, DecodeError>>()?,
            replayed: accepted.replayed,
        }),
        Some(pb::command_reply::Outcome::Rejected(rejected)) => Ok(Outcome::Rejected {
            code: pb::RejectionCode::try_from(rejected.code)
                .unwrap_or(pb::RejectionCode::Unspecified),
            reason: rejected.reason,
            retryable: rejected.retryable,
        }),
        None => Err(DecodeError::Missing(FieldPath::new("CommandReply", "outcome")).into()),
    }
}
