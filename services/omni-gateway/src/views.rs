//! The read models' answers (`query.proto` views) as JSON: ids as hyphenated UUIDs (null when
//! unset), coded values as their API name and their Dynamics wire code, times as Unix
//! milliseconds (null when not yet).

use omni_core::{
    BaseStatus, Channel, ClosureReason, ConversationStatus, PresenceSource, SessionStatus,
    StatusReason,
};
use omni_proto::pb;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::input::snake_name;

fn id(bytes: &[u8]) -> Value {
    Uuid::from_slice(bytes).map_or(Value::Null, |u| Value::String(u.to_string()))
}

fn ids(list: &[Vec<u8>]) -> Value {
    list.iter().map(|b| id(b)).collect()
}

fn time(ms: i64) -> Value {
    if ms == 0 { Value::Null } else { json!(ms) }
}

/// The API name of a code, or null for 0 / a code this version does not know.
fn name<T: std::fmt::Debug>(code: i32, from_code: fn(i32) -> Option<T>) -> Value {
    from_code(code).map_or(Value::Null, |v| {
        Value::String(snake_name(&format!("{v:?}")))
    })
}

fn record(link: Option<&pb::LinkedRecord>) -> Value {
    link.map_or(Value::Null, |r| {
        json!({
            "entity_logical_name": omni_core::LinkEntity::from_code(r.entity).map(|e| e.logical_name()),
            "record_id": id(&r.record_id),
        })
    })
}

pub fn session(s: &pb::SessionView) -> Value {
    json!({
        "session_number": s.session_number,
        "agent_id": id(&s.agent_id),
        "primary": s.primary,
        "status": name(s.status, SessionStatus::from_code),
        "closure": name(s.closure, ClosureReason::from_code),
        "created_at": time(s.created_at),
        "accepted_at": time(s.accepted_at),
        "ended_at": time(s.ended_at),
        "offer_expires_at": time(s.offer_expires_at),
        "unread": s.unread,
    })
}

pub fn conversation(c: &pb::ConversationView) -> Value {
    json!({
        "conversation_id": id(&c.conversation_id),
        "status": name(c.status, ConversationStatus::from_code),
        "status_code": c.status,
        "reason": name(c.reason, StatusReason::from_code),
        "channel": name(c.channel, Channel::from_code),
        "channel_code": c.channel,
        "queue_id": id(&c.queue_id),
        "workstream_id": id(&c.workstream_id),
        "skills": c.skills,
        "customer": c.customer,
        "primary_agent_id": id(&c.primary_agent_id),
        "consultant_ids": ids(&c.consultant_ids),
        "sessions": c.sessions.iter().map(session).collect::<Vec<_>>(),
        "created_at": time(c.created_at),
        "status_since": time(c.status_since),
        "first_accepted_at": time(c.first_accepted_at),
        "closed_at": time(c.closed_at),
        "transfer_count": c.transfer_count,
        "on_hold": c.on_hold,
        "hold_ms": c.hold_ms,
        "customer_link": record(c.customer_link.as_ref()),
        "case_link": record(c.case_link.as_ref()),
        "customer_connected": c.customer_connected,
    })
}

fn presence(p: Option<&pb::Presence>) -> Value {
    p.map_or(Value::Null, |p| {
        json!({
            "presence_id": id(&p.presence_id),
            "base": name(p.base, BaseStatus::from_code),
            "base_code": p.base,
        })
    })
}

pub fn agent(a: &pb::AgentView) -> Value {
    json!({
        "agent_id": id(&a.agent_id),
        "name": a.name,
        "signed_in": a.signed_in,
        "connected": a.connected,
        "presence": presence(a.presence.as_ref()),
        "presence_source": name(a.presence_source, PresenceSource::from_code),
        "presence_modified_at": time(a.presence_modified_at),
        "capacity_units": a.capacity_units,
        "available_units": a.available_units,
        "skills": a.skills,
        "queue_ids": ids(&a.queue_ids),
        "open_conversation_ids": ids(&a.open_conversation_ids),
    })
}

/// `CCaaS_GetPresence` / `CCaaS_ModifyAgentPresence`: the agent status attributes the seed's
/// presence webhook carries (`msdyn_agentid`, `msdyn_currentpresenceid`,
/// `msdyn_isagentloggedin`, `msdyn_availableunitscapacity`, `msdyn_presencemodifiedon`,
/// `msdyn_presencemodifiedby`), in the APIs' PascalCase.
pub fn ccaas_presence(a: &pb::AgentView) -> Value {
    json!({
        "AgentId": id(&a.agent_id),
        "CurrentPresenceId": a.presence.as_ref().map(|p| id(&p.presence_id)),
        "BasePresenceStatus": a.presence.as_ref().map(|p| p.base),
        "IsAgentLoggedIn": a.signed_in,
        "AvailableUnitsCapacity": a.available_units,
        "PresenceModifiedOn": time(a.presence_modified_at),
        "PresenceModifiedBy": PresenceSource::from_code(a.presence_source).map(|s| s.label()),
    })
}

pub fn queue(q: &pb::QueueView) -> Value {
    json!({
        "queue_id": id(&q.queue_id),
        "name": q.name,
        "workstream_id": id(&q.workstream_id),
        "channel": name(q.channel, Channel::from_code),
        "channel_code": q.channel,
        "method": name(q.method, omni_core::AssignmentMethod::from_code),
        "members": q.members,
        "members_signed_in": q.members_signed_in,
        "waiting": q.waiting,
        "oldest_waiting_since": time(q.oldest_waiting_since),
    })
}

/// A page: its items and the token of the next one (null on the last page).
pub fn page(key: &str, items: Vec<Value>, next_page_token: &[u8]) -> Value {
    json!({ key: items, "next_page_token": id(next_page_token) })
}
