//! Every endpoint of the API, declared once: the router is built from [`ENDPOINTS`] and so is
//! the OpenAPI document. One generic handler reads a request into an [`Input`], then sends the
//! endpoint's command on `omni.intake.*` or asks its query on `omni.query.*` /
//! `omni.presence.*`, and answers in JSON.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use omni_bus::{Bus, subjects};
use omni_core::Command;
use omni_proto::{CommandEnvelope, Outcome, pb, pb::query_reply::Result as Answer};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::input::{
    self, AGENT_ID, Build, Field, IDEMPOTENCY_KEY, Input, Kind, MIN_POSITION, PAGE_SIZE,
    PAGE_TOKEN, SESSION_NUMBER, optional, required,
};
use crate::views;

/// The HTTP methods the API uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Delete => "delete",
        }
    }
}

/// A read: the bus and the checked input in, the JSON answer out.
pub type Read = fn(Bus, Input) -> BoxFuture<'static, Result<Value, ApiError>>;

#[derive(Clone, Copy, Debug)]
pub enum Run {
    /// Sends the command built from the input; answers with its committed events.
    Command(Build),
    /// Asks the read model; answers with the named schema.
    Read(Read, &'static str),
}

/// One endpoint: what the router serves and the OpenAPI document describes.
#[derive(Debug)]
pub struct Endpoint {
    pub verb: Verb,
    /// An axum path: `{name}` for a path parameter.
    pub path: &'static str,
    pub operation: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub query: &'static [Field],
    pub body: &'static [Field],
    pub run: Run,
}

const fn command(
    path: &'static str,
    operation: &'static str,
    tag: &'static str,
    summary: &'static str,
    body: &'static [Field],
    build: Build,
) -> Endpoint {
    Endpoint {
        verb: Verb::Post,
        path,
        operation,
        tag,
        summary,
        query: &[],
        body,
        run: Run::Command(build),
    }
}

/// A command sent with another method than POST: PUT for an upsert, DELETE for a removal.
const fn command_as(verb: Verb, endpoint: Endpoint) -> Endpoint {
    Endpoint { verb, ..endpoint }
}

const fn read(
    (verb, path): (Verb, &'static str),
    operation: &'static str,
    tag: &'static str,
    summary: &'static str,
    query: &'static [Field],
    body: &'static [Field],
    (read, answer): (Read, &'static str),
) -> Endpoint {
    Endpoint {
        verb,
        path,
        operation,
        tag,
        summary,
        query,
        body,
        run: Run::Read(read, answer),
    }
}

const CONVERSATIONS: &str = "conversations";
const AGENTS: &str = "agents";
const PRESENCE: &str = "presence";
const QUEUES: &str = "queues";
const CASES: &str = "cases";
const ADMINISTRATION: &str = "administration";

const AGENT_SESSION: &[Field] = &[AGENT_ID, SESSION_NUMBER];
const AGENT_ONLY: &[Field] = &[AGENT_ID];
const CONSULT: &[Field] = &[
    AGENT_ID,
    required("consultant_id", Kind::Uuid, "the agent consulted"),
];
const TRANSFER: &[Field] = &[
    AGENT_ID,
    optional(
        "target_agent_id",
        Kind::Uuid,
        "transfer to this agent (exactly one target)",
    ),
    optional(
        "target_queue_id",
        Kind::Uuid,
        "transfer to this queue (exactly one target)",
    ),
];
const MEDIA: &[Field] = &[
    optional(
        "agent_id",
        Kind::Uuid,
        "the primary agent who acts (exactly one of agent_id and supervisor_id)",
    ),
    optional("supervisor_id", Kind::Uuid, "the supervisor who acts"),
];
const LINK: &[Field] = &[
    AGENT_ID,
    required(
        "entity_logical_name",
        Kind::Choice(input::ENTITIES),
        "the record's entity",
    ),
    required("record_id", Kind::Uuid, "the CRM record"),
];
const LINK_SEED: &[Field] = &[
    required(
        "agentId",
        Kind::Uuid,
        "the agent whose desktop links (and whose focused conversation is meant without conversationId)",
    ),
    required(
        "entityLogicalName",
        Kind::Choice(input::ENTITIES),
        "the record's entity",
    ),
    required("recordId", Kind::Uuid, "the CRM record"),
    optional(
        "conversationId",
        Kind::Uuid,
        "the conversation (liveworkitemid); without it, the agent's focused one",
    ),
];
const START: &[Field] = &[
    optional(
        "conversation_id",
        Kind::Uuid,
        "chosen by the adapter; default: the Idempotency-Key",
    ),
    required("queue_id", Kind::Uuid, "the queue the customer arrives in"),
    required(
        "customer",
        Kind::Text,
        "the customer as the channel names them",
    ),
    optional("skills", Kind::TextList, "skills an agent needs"),
];
const SUPERVISOR_ASSIGN: &[Field] = &[
    required("supervisor_id", Kind::Uuid, "the supervisor who assigns"),
    required("agent_id", Kind::Uuid, "the agent it is offered to"),
];
const SUPERVISOR: &[Field] = &[required(
    "supervisor_id",
    Kind::Uuid,
    "the supervisor who closes",
)];
const PRESENCE_BODY: &[Field] = &[required(
    "presence_id",
    Kind::Uuid,
    "an out-of-the-box presence id (Available f523f628-c07a-e811-8162-000d3aa11f50, Busy efdeb843-…, Busy-DND 08971864-…, Away 3dacae76-…, Offline 70139190-…) or a defined custom one",
)];
/// The Dataverse custom APIs' version this gateway speaks.
pub const API_VERSIONS: &[&str] = &["1.0"];
const CCAAS_GET: &[Field] = &[
    required("ApiVersion", Kind::Choice(API_VERSIONS), "the API version"),
    required("AgentId", Kind::Uuid, "the agent"),
];
const CCAAS_MODIFY: &[Field] = &[
    required("ApiVersion", Kind::Choice(API_VERSIONS), "the API version"),
    required("AgentId", Kind::Uuid, "the agent"),
    required(
        "PresenceId",
        Kind::Uuid,
        "an out-of-the-box presence id or a defined custom one",
    ),
];
const ONLY_MIN_POSITION: &[Field] = &[MIN_POSITION];
const LIST_CONVERSATIONS: &[Field] = &[
    optional(
        "status",
        Kind::Choice(input::STATUS_NAMES),
        "only conversations in this status",
    ),
    optional("queue", Kind::Uuid, "only conversations of this queue"),
    optional(
        "agent",
        Kind::Uuid,
        "only conversations where this agent has an open session (offer, primary or consult)",
    ),
    optional(
        "channel",
        Kind::Choice(input::CHANNEL_NAMES),
        "only conversations on this channel",
    ),
    PAGE_SIZE,
    PAGE_TOKEN,
    MIN_POSITION,
];
const LIST_AGENTS: &[Field] = &[
    optional("queue", Kind::Uuid, "only members of this queue"),
    optional(
        "presence",
        Kind::Choice(input::BASE_NAMES),
        "only agents whose presence has this base status",
    ),
    optional("signed_in", Kind::Flag, "only signed-in agents (true)"),
    PAGE_SIZE,
    PAGE_TOKEN,
    MIN_POSITION,
];

const WORKSTREAM: &[Field] = &[
    required("name", Kind::Text, "the workstream's name"),
    required(
        "channel",
        Kind::Choice(input::CHANNEL_NAMES),
        "its channel (timers are the channel's documented defaults)",
    ),
    optional(
        "mode",
        Kind::Choice(input::ROUTING_MODES),
        "push (default: the engine offers) or pick",
    ),
    optional(
        "capacity_units",
        Kind::Number,
        "units one conversation holds (default 1)",
    ),
    optional(
        "allowed_presences",
        Kind::ChoiceList(input::BASE_NAMES),
        "base statuses offered work (default available, busy)",
    ),
    optional(
        "wrap_up_blocking",
        Kind::Choice(input::WRAP_UP_BLOCKING),
        "whether wrap-up holds capacity (default always)",
    ),
    optional(
        "wrap_up_blocking_secs",
        Kind::Number,
        "with for_seconds: 30 to 3600",
    ),
    optional(
        "offer_timeout_secs",
        Kind::Number,
        "how long an offer waits (default 120)",
    ),
];
const QUEUE: &[Field] = &[
    required("name", Kind::Text, "the queue's name"),
    required("workstream_id", Kind::Uuid, "the workstream it follows"),
    optional(
        "method",
        Kind::Choice(input::ASSIGNMENT_METHODS),
        "how an agent is chosen (default highest_capacity)",
    ),
];
const CUSTOM_PRESENCE: &[Field] = &[
    required("name", Kind::Text, "the presence's name"),
    required(
        "base",
        Kind::Choice(input::BASE_NAMES),
        "the base status routing sees",
    ),
];
const AGENT_PROFILE: &[Field] = &[
    required("name", Kind::Text, "the agent's name"),
    required("capacity_units", Kind::Number, "total capacity units"),
    optional("skills", Kind::TextList, "the agent's skills"),
    optional(
        "max_sessions",
        Kind::Number,
        "session tabs the desktop holds (default 10)",
    ),
    optional(
        "default_presence_id",
        Kind::Uuid,
        "the presence at sign-in (default Available)",
    ),
];
const CAPACITY: &[Field] = &[required(
    "capacity_units",
    Kind::Number,
    "total capacity units",
)];

/// Every endpoint but `/openapi.json`.
pub static ENDPOINTS: &[Endpoint] = &[
    // --- conversations: reads ---
    read(
        (Verb::Get, "/v1/conversations"),
        "listConversations",
        CONVERSATIONS,
        "Conversations matching every filter, by id, a page at a time (follow next_page_token)",
        LIST_CONVERSATIONS,
        &[],
        (list_conversations, "ConversationPage"),
    ),
    read(
        (Verb::Get, "/v1/conversations/{conversation_id}"),
        "getConversation",
        CONVERSATIONS,
        "One conversation with its sessions",
        ONLY_MIN_POSITION,
        &[],
        (get_conversation, "Conversation"),
    ),
    // --- conversations: customers and channels ---
    command(
        "/v1/conversations",
        "startConversation",
        CONVERSATIONS,
        "A customer arrives: start a conversation in a queue (201; the router offers it)",
        START,
        input::start_conversation,
    ),
    command(
        "/v1/conversations/{conversation_id}/customer/message",
        "customerMessage",
        CONVERSATIONS,
        "The customer wrote",
        &[],
        input::customer_message,
    ),
    command(
        "/v1/conversations/{conversation_id}/customer/end",
        "customerEnd",
        CONVERSATIONS,
        "The customer ended the conversation",
        &[],
        input::customer_end,
    ),
    command(
        "/v1/conversations/{conversation_id}/customer/disconnect",
        "customerDisconnect",
        CONVERSATIONS,
        "The customer's connection dropped",
        &[],
        input::customer_disconnect,
    ),
    command(
        "/v1/conversations/{conversation_id}/customer/reconnect",
        "customerReconnect",
        CONVERSATIONS,
        "The customer is back within the reconnect window",
        &[],
        input::customer_reconnect,
    ),
    // --- conversations: agent desktop ---
    command(
        "/v1/conversations/{conversation_id}/accept",
        "accept",
        CONVERSATIONS,
        "Accept an offer",
        AGENT_SESSION,
        input::accept,
    ),
    command(
        "/v1/conversations/{conversation_id}/reject",
        "reject",
        CONVERSATIONS,
        "Reject an offer",
        AGENT_SESSION,
        input::reject,
    ),
    command(
        "/v1/conversations/{conversation_id}/focus",
        "focus",
        CONVERSATIONS,
        "Focus a session tab (clears its unread count)",
        AGENT_SESSION,
        input::focus,
    ),
    command(
        "/v1/conversations/{conversation_id}/pick",
        "pick",
        CONVERSATIONS,
        "Pick an Open conversation from a pick-mode queue",
        AGENT_ONLY,
        input::pick,
    ),
    command(
        "/v1/conversations/{conversation_id}/end",
        "end",
        CONVERSATIONS,
        "End the conversation (wrap-up)",
        AGENT_ONLY,
        input::end,
    ),
    command(
        "/v1/conversations/{conversation_id}/close-session",
        "closeSession",
        CONVERSATIONS,
        "Close the session without ending (persistent channels: Waiting)",
        AGENT_ONLY,
        input::close_session,
    ),
    command(
        "/v1/conversations/{conversation_id}/resume",
        "resumeWaiting",
        CONVERSATIONS,
        "The last primary agent takes a Waiting conversation back",
        AGENT_ONLY,
        input::resume_waiting,
    ),
    command(
        "/v1/conversations/{conversation_id}/complete-wrap-up",
        "completeWrapUp",
        CONVERSATIONS,
        "Finish wrap-up: the conversation closes",
        AGENT_ONLY,
        input::complete_wrap_up,
    ),
    command(
        "/v1/conversations/{conversation_id}/transfer",
        "transfer",
        CONVERSATIONS,
        "Transfer to an agent or a queue",
        TRANSFER,
        input::transfer,
    ),
    command(
        "/v1/conversations/{conversation_id}/consult/start",
        "startConsult",
        CONVERSATIONS,
        "Start a consult with another agent",
        CONSULT,
        input::start_consult,
    ),
    command(
        "/v1/conversations/{conversation_id}/consult/end",
        "endConsult",
        CONVERSATIONS,
        "End a consult (the primary agent or the consultant)",
        CONSULT,
        input::end_consult,
    ),
    command(
        "/v1/conversations/{conversation_id}/hold",
        "hold",
        CONVERSATIONS,
        "Put the call on hold",
        AGENT_ONLY,
        input::hold,
    ),
    command(
        "/v1/conversations/{conversation_id}/unhold",
        "unhold",
        CONVERSATIONS,
        "Resume the held call",
        AGENT_ONLY,
        input::unhold,
    ),
    command(
        "/v1/conversations/{conversation_id}/recording/{action}",
        "recording",
        CONVERSATIONS,
        "Start, pause, resume or stop the call's recording",
        MEDIA,
        input::recording,
    ),
    command(
        "/v1/conversations/{conversation_id}/transcription/{action}",
        "transcription",
        CONVERSATIONS,
        "Start, pause, resume or stop the call's transcription",
        MEDIA,
        input::transcription,
    ),
    command(
        "/v1/conversations/{conversation_id}/link",
        "link",
        CONVERSATIONS,
        "Link an account, contact or incident (Active conversations; a new customer or case replaces the old)",
        LINK,
        input::link,
    ),
    command(
        "/v1/conversations/{conversation_id}/unlink",
        "unlink",
        CONVERSATIONS,
        "Unlink a record",
        LINK,
        input::unlink,
    ),
    command(
        "/v1/linkToConversation",
        "linkToConversation",
        CONVERSATIONS,
        "linkToConversation(entityLogicalName, recordId, conversationId?) of the JavaScript API",
        LINK_SEED,
        input::link_to_conversation,
    ),
    command(
        "/v1/unlinkFromConversation",
        "unlinkFromConversation",
        CONVERSATIONS,
        "unlinkFromConversation(entityLogicalName, recordId, conversationId?)",
        LINK_SEED,
        input::unlink_from_conversation,
    ),
    // --- conversations: supervision ---
    command(
        "/v1/conversations/{conversation_id}/assign",
        "supervisorAssign",
        CONVERSATIONS,
        "A supervisor offers the conversation to an agent",
        SUPERVISOR_ASSIGN,
        input::supervisor_assign,
    ),
    command(
        "/v1/conversations/{conversation_id}/force-close",
        "forceClose",
        CONVERSATIONS,
        "A supervisor closes the conversation",
        SUPERVISOR,
        input::force_close,
    ),
    command(
        "/v1/cases/{record_id}/resolve",
        "resolveCase",
        CASES,
        "A case was resolved in the CRM: the conversations linked to it close",
        &[],
        input::resolve_case,
    ),
    // --- agents ---
    read(
        (Verb::Get, "/v1/agents"),
        "listAgents",
        AGENTS,
        "Agents matching every filter, by id, a page at a time (follow next_page_token)",
        LIST_AGENTS,
        &[],
        (list_agents, "AgentPage"),
    ),
    read(
        (Verb::Get, "/v1/agents/{agent_id}"),
        "getAgent",
        AGENTS,
        "One agent: presence, capacity, queues, open conversations",
        ONLY_MIN_POSITION,
        &[],
        (get_agent, "Agent"),
    ),
    command(
        "/v1/agents/{agent_id}/sign-in",
        "signIn",
        AGENTS,
        "Sign in",
        &[],
        input::sign_in,
    ),
    command(
        "/v1/agents/{agent_id}/sign-out",
        "signOut",
        AGENTS,
        "Sign out (refused while handling conversations)",
        &[],
        input::sign_out,
    ),
    command(
        "/v1/agents/{agent_id}/disconnect",
        "disconnect",
        AGENTS,
        "The desktop lost its connection (Offline; 150 s grace)",
        &[],
        input::disconnect,
    ),
    command(
        "/v1/agents/{agent_id}/reconnect",
        "reconnect",
        AGENTS,
        "The desktop is back",
        &[],
        input::reconnect,
    ),
    // --- presence ---
    read(
        (Verb::Get, "/v1/agents/{agent_id}/presence"),
        "getPresence",
        PRESENCE,
        "The agent's presence (CCaaS_GetPresence)",
        ONLY_MIN_POSITION,
        &[],
        (get_presence, "Agent"),
    ),
    read(
        (Verb::Put, "/v1/agents/{agent_id}/presence"),
        "modifyPresence",
        PRESENCE,
        "Set the agent's presence manually (CCaaS_ModifyAgentPresence); idempotent by Idempotency-Key",
        &[],
        PRESENCE_BODY,
        (modify_presence, "Agent"),
    ),
    read(
        (Verb::Post, "/v1/CCaaS_GetPresence"),
        "CCaaS_GetPresence",
        PRESENCE,
        "CCaaS_GetPresence with the custom API's body",
        &[],
        CCAAS_GET,
        (ccaas_get_presence, "CcaasPresence"),
    ),
    read(
        (Verb::Post, "/v1/CCaaS_ModifyAgentPresence"),
        "CCaaS_ModifyAgentPresence",
        PRESENCE,
        "CCaaS_ModifyAgentPresence with the custom API's body {ApiVersion, AgentId, PresenceId}",
        &[],
        CCAAS_MODIFY,
        (ccaas_modify_presence, "CcaasPresence"),
    ),
    // --- administration ---
    command_as(
        Verb::Put,
        command(
            "/v1/workstreams/{workstream_id}",
            "configureWorkstream",
            ADMINISTRATION,
            "Create or replace a workstream",
            WORKSTREAM,
            input::configure_workstream,
        ),
    ),
    command_as(
        Verb::Put,
        command(
            "/v1/queues/{queue_id}",
            "configureQueue",
            ADMINISTRATION,
            "Create or replace a queue",
            QUEUE,
            input::configure_queue,
        ),
    ),
    command_as(
        Verb::Put,
        command(
            "/v1/presences/{presence_id}",
            "defineCustomPresence",
            ADMINISTRATION,
            "Define a custom presence",
            CUSTOM_PRESENCE,
            input::define_custom_presence,
        ),
    ),
    command_as(
        Verb::Put,
        command(
            "/v1/agents/{agent_id}",
            "provisionAgent",
            ADMINISTRATION,
            "Provision an agent (or replace the profile)",
            AGENT_PROFILE,
            input::provision_agent,
        ),
    ),
    command_as(
        Verb::Put,
        command(
            "/v1/agents/{agent_id}/capacity",
            "setAgentCapacity",
            ADMINISTRATION,
            "Set an agent's capacity",
            CAPACITY,
            input::set_agent_capacity,
        ),
    ),
    command_as(
        Verb::Put,
        command(
            "/v1/queues/{queue_id}/members/{agent_id}",
            "addAgentToQueue",
            ADMINISTRATION,
            "Make the agent a member of the queue",
            &[],
            input::add_agent_to_queue,
        ),
    ),
    command_as(
        Verb::Delete,
        command(
            "/v1/queues/{queue_id}/members/{agent_id}",
            "removeAgentFromQueue",
            ADMINISTRATION,
            "Remove the agent from the queue",
            &[],
            input::remove_agent_from_queue,
        ),
    ),
    // --- queues ---
    read(
        (Verb::Get, "/v1/queues"),
        "listQueues",
        QUEUES,
        "Every queue with its live figures",
        ONLY_MIN_POSITION,
        &[],
        (list_queues, "QueueList"),
    ),
];

// --- the handler ---------------------------------------------------------------------------------

/// Reads, runs and answers one request to `endpoint`.
pub async fn handle(
    State(bus): State<Bus>,
    endpoint: &'static Endpoint,
    path: Result<Path<HashMap<String, String>>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match run(bus, endpoint, path, query, headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn run(
    bus: Bus,
    endpoint: &'static Endpoint,
    path: Result<Path<HashMap<String, String>>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(path) = path.map_err(|e| ApiError::field("path", e.body_text()))?;
    let Query(query) = query.map_err(|e| ApiError::field("query", e.body_text()))?;
    let body = body.map_err(|e| {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "PAYLOAD_TOO_LARGE"
        } else {
            "BAD_REQUEST"
        };
        ApiError::new(status, code, e.body_text()).with_field("body")
    })?;
    let command_id = idempotency_key(&headers)?;
    let body = json_object(&headers, &body)?;
    let input = Input::new(command_id, path, query, body, endpoint.query, endpoint.body)?;
    match endpoint.run {
        Run::Command(build) => send(&bus, build(&input)?, command_id).await,
        Run::Read(read, _) => Ok(Json(read(bus, input).await?).into_response()),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Uuid, ApiError> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(Uuid::now_v7()),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| Uuid::try_parse(v.trim()).ok())
            .ok_or_else(|| {
                ApiError::field(
                    IDEMPOTENCY_KEY,
                    "the Idempotency-Key header must be a UUID (the command's id)",
                )
            }),
    }
}

/// The body as a JSON object; an empty body is an empty object.
fn json_object(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !(essence == "application/json" || essence.ends_with("+json")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("a body must be application/json, not '{content_type}'"),
        )
        .with_field("Content-Type"));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::field(
            "body",
            format!("the body must be a JSON object, not {other}"),
        )),
        Err(e) => Err(ApiError {
            code: "INVALID_JSON".to_owned(),
            ..ApiError::field("body", format!("the body is not valid JSON: {e}"))
        }),
    }
}

/// Sends a command and answers with its outcome: 200 (201 for a started conversation) with
/// the committed events, or the rejection as an error.
async fn send(
    bus: &Bus,
    (actor, command): input::Prepared,
    command_id: Uuid,
) -> Result<Response, ApiError> {
    let started = match &command {
        Command::StartConversation { conversation, .. } => Some(conversation.0),
        _ => None,
    };
    let envelope = CommandEnvelope {
        command_id,
        actor,
        correlation_id: None,
        command,
    };
    match bus.command(&envelope).await.map_err(ApiError::bus)? {
        Outcome::Accepted { events, replayed } => {
            let mut answer = json!({
                "command_id": command_id.to_string(),
                "replayed": replayed,
                "position": events.last().map(|e| e.position),
                "events": events.iter().map(|e| json!({
                    "event_id": e.event_id.to_string(),
                    "position": e.position,
                    "kind": e.kind,
                })).collect::<Vec<_>>(),
            });
            let status = match started {
                Some(conversation) => {
                    answer["conversation_id"] = Value::String(conversation.to_string());
                    StatusCode::CREATED
                }
                None => StatusCode::OK,
            };
            Ok((status, Json(answer)).into_response())
        }
        Outcome::Rejected { code, reason, .. } => Err(ApiError::rejected(code, reason)),
    }
}

// --- reads -------------------------------------------------------------------------------------

/// Asks a query and returns its result, or the error it answered.
async fn ask(bus: &Bus, subject: &str, request: &impl prost::Message) -> Result<Answer, ApiError> {
    match bus
        .query(subject, request)
        .await
        .map_err(ApiError::bus)?
        .result
    {
        Some(Answer::Error(error)) => Err(ApiError::query(error)),
        Some(result) => Ok(result),
        None => Err(unexpected(subject)),
    }
}

fn unexpected(subject: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "BAD_ENGINE_REPLY",
        format!("the answer on {subject} holds no result this gateway expects"),
    )
}

fn bytes(id: Option<Uuid>) -> Vec<u8> {
    id.map(|u| u.as_bytes().to_vec()).unwrap_or_default()
}

/// Reads one agent on `subject` and shows it with `view`.
async fn one_agent(
    bus: &Bus,
    subject: &str,
    request: &impl prost::Message,
    view: fn(&pb::AgentView) -> Value,
) -> Result<Value, ApiError> {
    match ask(bus, subject, request).await? {
        Answer::Agent(agent) => Ok(view(&agent)),
        _ => Err(unexpected(subject)),
    }
}

/// `CCaaS_ModifyAgentPresence`, idempotent by the request's command id.
fn presence_change(input: &Input, agent: Uuid, presence: Uuid) -> pb::ModifyAgentPresence {
    pb::ModifyAgentPresence {
        command_id: input.command_id.as_bytes().to_vec(),
        agent_id: agent.as_bytes().to_vec(),
        presence_id: presence.as_bytes().to_vec(),
    }
}

fn get_agent_request(agent: Uuid, input: &Input) -> Result<pb::GetAgent, ApiError> {
    Ok(pb::GetAgent {
        agent_id: agent.as_bytes().to_vec(),
        min_position: input.min_position()?,
    })
}

fn list_conversations(bus: Bus, input: Input) -> BoxFuture<'static, Result<Value, ApiError>> {
    Box::pin(async move {
        let statuses = input::statuses();
        let channels = input::channels();
        let request = pb::ListConversations {
            status: input
                .query_choice("status", &input::borrowed(&statuses))?
                .map_or(0, |s| s.code()),
            queue_id: bytes(input.query_uuid("queue")?),
            agent_id: bytes(input.query_uuid("agent")?),
            channel: input
                .query_choice("channel", &input::borrowed(&channels))?
                .map_or(0, |c| c.code()),
            page_size: input.page_size()?,
            page_token: bytes(input.page_token()?),
            min_position: input.min_position()?,
        };
        match ask(&bus, subjects::QUERY_CONVERSATIONS, &request).await? {
            Answer::Conversations(page) => Ok(views::page(
                "conversations",
                page.conversations.iter().map(views::conversation).collect(),
                &page.next_page_token,
            )),
            _ => Err(unexpected(subjects::QUERY_CONVERSATIONS)),
        }
    })
}

fn get_conversation(bus: Bus, input: Input) -> BoxFuture<'static, Result<Value, ApiError>> {
    Box::pin(async move {
        let request = pb::GetConversation {
            conversation_id: input.path_uuid("conversation_id")?.as_bytes().to_vec(),
            min_position: input.min_position()?,
        };
        match ask(&bus, subjects::QUERY_CONVERSATION, &request).await? {
            Answer::Conversation(c) => Ok(views::conversation(&c)),
            _ => Err(unexpected(subjects::QUERY_CONVERSATION)),
        }
    })
}

fn list_agents(bus: Bus, input: Input) -> BoxFuture<'static, Result<Value, ApiError>> {
    Box::pin(async move {
        let bases = input::base_statuses();
        let request = pb::ListAgents {
            queue_id: bytes(input.query_uuid("queue")?),
            base: input
                .query_choice("presence", &input::borrowed(&bases))?
                .map_or(0, |b| b.code()),
            signed_in_only: input.query_flag("signed_in")?,
            page_size: input.page_size()?,
            page_token: bytes(input.page_token()?),
            min_position: input.min_position()?,
        };
        match ask(&bus, subjects::QUERY_AGENTS, &request).await? {
            Answer::Agents(page) => Ok(views::page(
                "agents",
                page.agents.iter().map(views::agent).collect(),
                &page.next_page_token,
            )),
            _ => Err(unexpected(subjects::QUERY_AGENTS)),
        }
    })
}

fn get_agent(bus: Bus, input: Input) -> BoxFuture<'static, Result<Value, ApiError>> {
    Box::pin(async move {
        let request = get_agent_request(input.path_uuid("agent_id")?, &input)?;
        one_agent(&bus, subjects::QUERY_AGENT, &request, views::agent).await
    })
}

fn get_presence(bus: Bus, input: Input) -> BoxFuture<'static, Result<Value, ApiError>> {
    Box::pin(async move {
        let request = get_agent_request(input.path_uuid("agent_id")?, &input)?;
        one_agent(&bus, subjects::PRESENCE_GET, &request, views::agent).await
    })
}

fn modify_presence(bus: Bus, input: Input) -> BoxFuture<'static, Result<Value, ApiError>> {
    Box::pin(async move {
        let request = presence_change(
            &input,
            input.path_uuid("agent_id")?,
            input.uuid("presence_id")?,
        );
        one_agent(&bus, subjects::PRESENCE_MODIFY, &request, views::agent).await
    })
}

fn ccaas_get_presence(bus: Bus, input: Input) -> BoxFuture<'static, Result<Value, ApiError>> {
    Box::pin(async move {
        let request = get_agent_request(input.uuid("AgentId")?, &input)?;
        one_agent(
            &bus,
            subjects::PRESENCE_GET,
            &request,
            views::ccaas_presence,
        )
        .await
    })
}

fn ccaas_modify_presence(bus: Bus, input: Input) -> BoxFuture<'static, Result<Value, ApiError>> {
    Box::pin(async move {
        let request = presence_change(&input, input.uuid("AgentId")?, input.uuid("PresenceId")?);
        one_agent(
            &bus,
            subjects::PRESENCE_MODIFY,
            &request,
            views::ccaas_presence,
        )
        .await
    })
}

fn list_queues(bus: Bus, input: Input) -> BoxFuture<'static, Result<Value, ApiError>> {
    Box::pin(async move {
        let request = pb::ListQueues {
            min_position: input.min_position()?,
        };
        match ask(&bus, subjects::QUERY_QUEUES, &request).await? {
            Answer::Queues(list) => Ok(json!({
                "queues": list.queues.iter().map(views::queue).collect::<Vec<_>>(),
            })),
            _ => Err(unexpected(subjects::QUERY_QUEUES)),
        }
    })
}
