//! Which agent desktops hear about an event, and as what. The six core desktop events of
//! the seeds (incoming session request, session accepted, transfer initiated, unread message,
//! presence update, end conversation) plus the ones a desktop needs to stay true: an offer
//! that is no longer open, a consult, a session that closed, a conversation that closed.

use omni_core::{AgentId, EventKind, TransferTarget, World};

/// The notification names: the last token of `omni.desktop.<agent>.<notification>`.
pub const INCOMING_SESSION_REQUEST: &str = "incoming_session_request";
pub const SESSION_ACCEPTED: &str = "session_accepted";
pub const TRANSFER_INITIATED: &str = "transfer_initiated";
pub const UNREAD_MESSAGE: &str = "unread_message";
pub const PRESENCE_UPDATE: &str = "presence_update";
pub const END_CONVERSATION: &str = "end_conversation";
pub const OFFER_CLOSED: &str = "offer_closed";
pub const CONSULT_STARTED: &str = "consult_started";
pub const CONSULT_ENDED: &str = "consult_ended";
pub const SESSION_CLOSED: &str = "session_closed";
pub const CONVERSATION_CLOSED: &str = "conversation_closed";

/// The desktops to notify of `kind` and under which name. `world` is the state right after
/// the event, which says who works on the conversation when the event itself does not.
pub fn desktop_notifications(kind: &EventKind, world: &World) -> Vec<(AgentId, &'static str)> {
    use EventKind as E;
    match kind {
        E::IncomingSessionRequest { agent, .. } => vec![(*agent, INCOMING_SESSION_REQUEST)],
        E::SessionAccepted { agent, .. } => vec![(*agent, SESSION_ACCEPTED)],
        E::ConversationResumed { agent, .. } => vec![(*agent, SESSION_ACCEPTED)],
        E::TransferInitiated { from, target, .. } => match target {
            TransferTarget::Agent(to) => {
                vec![(*from, TRANSFER_INITIATED), (*to, TRANSFER_INITIATED)]
            }
            TransferTarget::Queue(_) => vec![(*from, TRANSFER_INITIATED)],
        },
        E::UnreadMessage { agent, .. } => vec![(*agent, UNREAD_MESSAGE)],
        E::PresenceUpdate { agent, .. } => vec![(*agent, PRESENCE_UPDATE)],
        E::OfferRejected { agent, .. }
        | E::OfferTimedOut { agent, .. }
        | E::OfferWithdrawn { agent, .. } => vec![(*agent, OFFER_CLOSED)],
        E::ConsultStarted { consultant, by, .. } => {
            vec![(*by, CONSULT_STARTED), (*consultant, CONSULT_STARTED)]
        }
        E::ConsultEnded { consultant, .. } => vec![(*consultant, CONSULT_ENDED)],
        E::SessionClosed { agent, .. } => vec![(*agent, SESSION_CLOSED)],
        E::EndConversation { conversation, .. } => {
            participants(world, *conversation, END_CONVERSATION)
        }
        E::ConversationClosed { conversation, .. } => {
            participants(world, *conversation, CONVERSATION_CLOSED)
        }
        _ => Vec::new(),
    }
}

/// The primary agent (or, once closed, the last one) and the consultants of a conversation.
fn participants(
    world: &World,
    conversation: omni_core::ConversationId,
    notification: &'static str,
) -> Vec<(AgentId, &'static str)> {
    let Some(c) = world.conversations.get(&conversation) else {
        return Vec::new();
    };
    c.primary
        .or(c.last_primary)
        .into_iter()
        .chain(c.consultants.iter().copied())
        .map(|agent| (agent, notification))
        .collect()
}
