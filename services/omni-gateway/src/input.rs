//! JSON and query strings → commands and queries: the one place where HTTP input is read, and
//! where every error names the body field, path or query parameter or header at fault.
//!
//! Each endpoint declares its fields ([`Field`]); the same declarations are checked here
//! (unknown names, missing required ones) and published in the OpenAPI document, so the two
//! cannot disagree. Values are shape-checked only — a UUID is a UUID, a choice is one of its
//! values; whether the command is allowed is the engine's judgement.

use std::collections::HashMap;

use omni_core::{
    Actor, AgentId, AgentProfile, AssignmentMethod, Channel, Command, ConversationId,
    ConversationStatus, CustomPresence, DEFAULT_MAX_SESSIONS, LinkEntity, LinkedRecord,
    MediaAction, MediaKind, PresenceId, QueueConfig, QueueId, RecordId, SessionNo, SessionRef,
    SupervisorId, TransferTarget, Workstream, WorkstreamId, WrapUpBlocking,
};
use uuid::Uuid;

use crate::error::ApiError;

/// What a field holds, as the OpenAPI document describes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A hyphenated UUID string.
    Uuid,
    /// An integer from 1.
    Number,
    /// A non-negative integer (a log position).
    Position,
    /// An integer from 1 to [`omni_proto::MAX_PAGE_SIZE`].
    PageSize,
    Text,
    TextList,
    Flag,
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// An array of these strings.
    ChoiceList(&'static [&'static str]),
}

/// A body field or a query parameter of an endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub about: &'static str,
}

pub const fn required(name: &'static str, kind: Kind, about: &'static str) -> Field {
    Field {
        name,
        kind,
        required: true,
        about,
    }
}

pub const fn optional(name: &'static str, kind: Kind, about: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        about,
    }
}

/// The query parameter that may carry the token instead of the header (RFC 6750 §2.3); every
/// endpoint accepts it.
pub const ACCESS_TOKEN: &str = "access_token";
/// The header a client sets to make a command retry-safe.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// One request's input, checked against its endpoint's declared fields.
#[derive(Debug)]
pub struct Input {
    /// The command's idempotency key: the `Idempotency-Key` header, else a fresh UUIDv7.
    pub command_id: Uuid,
    path: HashMap<String, String>,
    query: HashMap<String, String>,
    body: serde_json::Map<String, serde_json::Value>,
}

impl Input {
    /// Checks the input against the endpoint's declarations: no parameter or field it does
    /// not declare, none given twice, every required one present (and not null), every value
    /// of its declared kind.
    pub fn new(
        command_id: Uuid,
        path: HashMap<String, String>,
        query: Vec<(String, String)>,
        body: serde_json::Map<String, serde_json::Value>,
        declared_query: &[Field],
        declared_body: &[Field],
    ) -> Result<Input, ApiError> {
        let mut params = HashMap::new();
        for (name, value) in query {
            if name == ACCESS_TOKEN {
                continue;
            }
            let Some(field) = declared_query.iter().find(|f| f.name == name) else {
                return Err(ApiError::field(
                    &name,
                    format!(
                        "unknown query parameter '{name}'{}",
                        expected(declared_query)
                    ),
                ));
            };
            check_text(field, &value)?;
            if params.insert(name.clone(), value).is_some() {
                return Err(ApiError::field(&name, format!("'{name}' is given twice")));
            }
        }
        for (name, value) in &body {
            let Some(field) = declared_body.iter().find(|f| f.name == name) else {
                return Err(ApiError::field(
                    name,
                    format!("unknown field '{name}'{}", expected(declared_body)),
                ));
            };
            check_json(field, value)?;
        }
        for field in declared_body.iter().filter(|f| f.required) {
            if body.get(field.name).is_none_or(serde_json::Value::is_null) {
                return Err(ApiError::field(
                    field.name,
                    format!("'{}' is required: {}", field.name, field.about),
                ));
            }
        }
        Ok(Input {
            command_id,
            path,
            query: params,
            body,
        })
    }

    // --- path ------------------------------------------------------------------------------

    pub fn path_uuid(&self, name: &str) -> Result<Uuid, ApiError> {
        let value = self.path.get(name).map(String::as_str).unwrap_or_default();
        parse_uuid(name, value)
    }

    pub fn path_choice<T: Copy>(&self, name: &str, choices: &[(&str, T)]) -> Result<T, ApiError> {
        let value = self.path.get(name).map(String::as_str).unwrap_or_default();
        choose(name, value, choices)
    }

    // --- body ------------------------------------------------------------------------------

    fn value(&self, name: &str) -> Option<&serde_json::Value> {
        self.body.get(name).filter(|v| !v.is_null())
    }

    pub fn uuid(&self, name: &str) -> Result<Uuid, ApiError> {
        self.optional_uuid(name)?.ok_or_else(|| missing(name))
    }

    pub fn optional_uuid(&self, name: &str) -> Result<Option<Uuid>, ApiError> {
        self.value(name)
            .map(|v| match v.as_str() {
                Some(s) => parse_uuid(name, s),
                None => Err(ApiError::field(
                    name,
                    format!("'{name}' must be a UUID string, not {v}"),
                )),
            })
            .transpose()
    }

    pub fn number(&self, name: &str) -> Result<u32, ApiError> {
        let value = self.value(name).ok_or_else(|| missing(name))?;
        value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                ApiError::field(
                    name,
                    format!("'{name}' must be an integer from 1, not {value}"),
                )
            })
    }

    pub fn optional_number(&self, name: &str) -> Result<Option<u32>, ApiError> {
        self.value(name).map(|_| self.number(name)).transpose()
    }

    pub fn optional_choice<T: Copy>(
        &self,
        name: &str,
        choices: &[(&str, T)],
    ) -> Result<Option<T>, ApiError> {
        self.value(name)
            .map(|_| self.choice(name, choices))
            .transpose()
    }

    /// An array of choices; absent is `None`.
    pub fn choices<T: Copy>(
        &self,
        name: &str,
        choices: &[(&str, T)],
    ) -> Result<Option<Vec<T>>, ApiError> {
        self.value(name)
            .map(|_| {
                self.texts(name)?
                    .iter()
                    .map(|text| choose(name, text, choices))
                    .collect()
            })
            .transpose()
    }

    pub fn text(&self, name: &str) -> Result<String, ApiError> {
        let value = self.value(name).ok_or_else(|| missing(name))?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::field(name, format!("'{name}' must be a string, not {value}")))
    }

    pub fn texts(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let Some(value) = self.value(name) else {
            return Ok(Vec::new());
        };
        let not_strings = || {
            ApiError::field(
                name,
                format!("'{name}' must be an array of strings, not {value}"),
            )
        };
        value
            .as_array()
            .ok_or_else(not_strings)?
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(not_strings))
            .collect()
    }

    pub fn choice<T: Copy>(&self, name: &str, choices: &[(&str, T)]) -> Result<T, ApiError> {
        let value = self.value(name).ok_or_else(|| missing(name))?;
        match value.as_str() {
            Some(s) => choose(name, s, choices),
            None => Err(ApiError::field(
                name,
                format!("'{name}' must be a string, not {value}"),
            )),
        }
    }

    // --- query -----------------------------------------------------------------------------

    pub fn query_uuid(&self, name: &str) -> Result<Option<Uuid>, ApiError> {
        self.query
            .get(name)
            .map(|v| parse_uuid(name, v))
            .transpose()
    }

    pub fn query_choice<T: Copy>(
        &self,
        name: &str,
        choices: &[(&str, T)],
    ) -> Result<Option<T>, ApiError> {
        self.query
            .get(name)
            .map(|v| choose(name, v, choices))
            .transpose()
    }

    pub fn query_flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.query.get(name).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::field(
                name,
                format!("'{name}' must be true or false, not '{other}'"),
            )),
        }
    }

    /// The log position a read must reflect (read your writes); 0 when not given.
    pub fn min_position(&self) -> Result<u64, ApiError> {
        self.query.get(MIN_POSITION.name).map_or(Ok(0), |v| {
            v.parse().map_err(|_| {
                ApiError::field(
                    MIN_POSITION.name,
                    format!("'min_position' must be a non-negative integer, not '{v}'"),
                )
            })
        })
    }

    /// 1 to 1000; absent means [`omni_proto::DEFAULT_PAGE_SIZE`].
    pub fn page_size(&self) -> Result<u32, ApiError> {
        let Some(value) = self.query.get(PAGE_SIZE.name) else {
            return Ok(omni_proto::DEFAULT_PAGE_SIZE as u32);
        };
        value
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=omni_proto::MAX_PAGE_SIZE as u32).contains(n))
            .ok_or_else(|| {
                ApiError::field(
                    PAGE_SIZE.name,
                    format!(
                        "'page_size' must be an integer from 1 to {}, not '{value}'",
                        omni_proto::MAX_PAGE_SIZE
                    ),
                )
            })
    }

    /// The previous page's `next_page_token`.
    pub fn page_token(&self) -> Result<Option<Uuid>, ApiError> {
        self.query_uuid(PAGE_TOKEN.name)
    }
}

/// A query parameter's text against its kind.
fn check_text(field: &Field, value: &str) -> Result<(), ApiError> {
    let name = field.name;
    let ok = match field.kind {
        Kind::Uuid => return parse_uuid(name, value).map(drop),
        Kind::Choice(values) => {
            return choose(
                name,
                value,
                &values.iter().map(|v| (*v, ())).collect::<Vec<_>>(),
            );
        }
        Kind::Number => value.parse::<u32>().is_ok_and(|n| n >= 1),
        Kind::Position => value.parse::<u64>().is_ok(),
        Kind::PageSize => value
            .parse::<usize>()
            .is_ok_and(|n| (1..=omni_proto::MAX_PAGE_SIZE).contains(&n)),
        Kind::Flag => value == "true" || value == "false",
        Kind::Text | Kind::TextList | Kind::ChoiceList(_) => true,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            name,
            format!("'{name}' must be {}, not '{value}'", kind_name(field.kind)),
        ))
    }
}

/// A body field's JSON value against its kind (null is "not given").
fn check_json(field: &Field, value: &serde_json::Value) -> Result<(), ApiError> {
    use serde_json::Value as V;
    let name = field.name;
    match (field.kind, value) {
        (_, V::Null) => Ok(()),
        (Kind::Uuid | Kind::Choice(_), V::String(text)) => check_text(field, text),
        (Kind::Text, V::String(_)) | (Kind::Flag, V::Bool(_)) => Ok(()),
        (Kind::TextList, V::Array(items)) if items.iter().all(V::is_string) => Ok(()),
        (Kind::ChoiceList(values), V::Array(items)) => {
            items.iter().try_for_each(|item| match item.as_str() {
                Some(text) => check_text(
                    &Field {
                        kind: Kind::Choice(values),
                        ..*field
                    },
                    text,
                ),
                None => Err(ApiError::field(
                    name,
                    format!("'{name}' must be {}, not {value}", kind_name(field.kind)),
                )),
            })
        }
        (Kind::Number | Kind::Position | Kind::PageSize, V::Number(n)) => {
            check_text(field, &n.to_string())
        }
        _ => Err(ApiError::field(
            name,
            format!("'{name}' must be {}, not {value}", kind_name(field.kind)),
        )),
    }
}

fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Uuid => "a UUID string".to_owned(),
        Kind::Number => "an integer from 1".to_owned(),
        Kind::Position => "a non-negative integer".to_owned(),
        Kind::PageSize => format!("an integer from 1 to {}", omni_proto::MAX_PAGE_SIZE),
        Kind::Text => "a string".to_owned(),
        Kind::TextList => "an array of strings".to_owned(),
        Kind::Flag => "true or false".to_owned(),
        Kind::Choice(values) => format!("one of {}", values.join(", ")),
        Kind::ChoiceList(values) => format!("an array of {}", values.join(", ")),
    }
}

fn expected(fields: &[Field]) -> String {
    if fields.is_empty() {
        " (this endpoint takes none)".to_owned()
    } else {
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        format!(" (expected: {})", names.join(", "))
    }
}

fn missing(name: &str) -> ApiError {
    ApiError::field(name, format!("'{name}' is required"))
}

fn parse_uuid(name: &str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(value)
        .map_err(|_| ApiError::field(name, format!("'{name}': '{value}' is not a UUID")))
}

fn choose<T: Copy>(name: &str, value: &str, choices: &[(&str, T)]) -> Result<T, ApiError> {
    choices
        .iter()
        .find(|(label, _)| *label == value)
        .map(|&(_, v)| v)
        .ok_or_else(|| {
            let labels: Vec<&str> = choices.iter().map(|(label, _)| *label).collect();
            ApiError::field(
                name,
                format!("'{name}': '{value}' is not one of {}", labels.join(", ")),
            )
        })
}

// --- vocabularies ------------------------------------------------------------------------------

/// `LiveChat` → `live_chat`: the names enum values have in the API.
pub fn snake_name(debug: &str) -> String {
    let mut name = String::with_capacity(debug.len() + 4);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

/// Every value of a coded vocabulary with its API name.
fn named<T: Copy + std::fmt::Debug>(all: &[T]) -> Vec<(String, T)> {
    all.iter()
        .map(|&v| (snake_name(&format!("{v:?}")), v))
        .collect()
}

pub fn statuses() -> Vec<(String, ConversationStatus)> {
    named(ConversationStatus::ALL)
}

pub fn channels() -> Vec<(String, Channel)> {
    named(Channel::ALL)
}

pub fn base_statuses() -> Vec<(String, omni_core::BaseStatus)> {
    named(omni_core::BaseStatus::ALL)
}

/// Borrowed view of an owned vocabulary, for [`Input::query_choice`].
pub fn borrowed<T: Copy>(owned: &[(String, T)]) -> Vec<(&str, T)> {
    owned.iter().map(|(name, v)| (name.as_str(), *v)).collect()
}

pub const ENTITIES: &[&str] = &["account", "contact", "incident"];
/// The API names of the core's vocabularies, for the OpenAPI document (a unit test holds them
/// to [`statuses`], [`channels`] and [`base_statuses`]).
pub const STATUS_NAMES: &[&str] = &["open", "active", "waiting", "closed", "wrap_up"];
pub const CHANNEL_NAMES: &[&str] = &[
    "teams",
    "whats_app",
    "line",
    "we_chat",
    "facebook",
    "sms",
    "twitter",
    "custom",
    "live_chat",
    "voice",
    "video",
    "co_browse",
    "screen_sharing",
    "voice_call",
    "apple_messages",
    "google_business_messages",
];
pub const BASE_NAMES: &[&str] = &["available", "busy", "busy_dnd", "away", "offline"];
pub const ROUTING_MODES: &[&str] = &["push", "pick"];
pub const ASSIGNMENT_METHODS: &[&str] =
    &["highest_capacity", "advanced_round_robin", "least_active"];
pub const WRAP_UP_BLOCKING: &[&str] = &["always", "never", "for_seconds"];

pub fn routing_modes() -> Vec<(String, omni_core::RoutingMode)> {
    named(omni_core::RoutingMode::ALL)
}

pub fn assignment_methods() -> Vec<(String, omni_core::AssignmentMethod)> {
    named(omni_core::AssignmentMethod::ALL)
}
pub const MEDIA_ACTIONS: &[&str] = &["start", "pause", "resume", "stop"];

pub fn media_actions() -> Vec<(String, MediaAction)> {
    named(MediaAction::ALL)
}

fn entity_choices() -> Vec<(&'static str, LinkEntity)> {
    LinkEntity::ALL
        .iter()
        .map(|&e| (e.logical_name(), e))
        .collect()
}

// --- common parameters -------------------------------------------------------------------------

pub const MIN_POSITION: Field = optional(
    "min_position",
    Kind::Position,
    "answer only once the read model has folded this log position (a command's `position`): read your writes",
);
pub const PAGE_SIZE: Field = optional("page_size", Kind::PageSize, "1 to 1000; default 100");
pub const PAGE_TOKEN: Field = optional(
    "page_token",
    Kind::Uuid,
    "the previous page's `next_page_token`",
);

// --- commands ------------------------------------------------------------------------------------

/// A command and who asks for it.
pub type Prepared = (Actor, Command);

/// Builds an endpoint's command from its checked input.
pub type Build = fn(&Input) -> Result<Prepared, ApiError>;

fn conversation(input: &Input) -> Result<ConversationId, ApiError> {
    input.path_uuid("conversation_id").map(ConversationId)
}

fn path_agent(input: &Input) -> Result<AgentId, ApiError> {
    input.path_uuid("agent_id").map(AgentId)
}

fn agent(input: &Input) -> Result<AgentId, ApiError> {
    input.uuid("agent_id").map(AgentId)
}

fn session(input: &Input) -> Result<SessionRef, ApiError> {
    Ok(SessionRef {
        conversation: conversation(input)?,
        number: SessionNo(input.number("session_number")?),
    })
}

pub const AGENT_ID: Field = required("agent_id", Kind::Uuid, "the agent who acts");
pub const SESSION_NUMBER: Field = required(
    "session_number",
    Kind::Number,
    "the session of the offer (from the incoming_session_request notification or the conversation's sessions)",
);

macro_rules! builders {
    ($($(#[$doc:meta])* $name:ident($input:ident) => $body:expr;)+) => {$(
        $(#[$doc])*
        pub fn $name($input: &Input) -> Result<Prepared, ApiError> {
            $body
        }
    )+};
}

builders! {
    accept(i) => Ok((Actor::Agent(agent(i)?), Command::Accept { agent: agent(i)?, session: session(i)? }));
    reject(i) => Ok((Actor::Agent(agent(i)?), Command::Reject { agent: agent(i)?, session: session(i)? }));
    focus(i) => Ok((Actor::Agent(agent(i)?), Command::Focus { agent: agent(i)?, session: session(i)? }));
    pick(i) => Ok((Actor::Agent(agent(i)?), Command::Pick { agent: agent(i)?, conversation: conversation(i)? }));
    end(i) => Ok((Actor::Agent(agent(i)?), Command::End { agent: agent(i)?, conversation: conversation(i)? }));
    close_session(i) => Ok((Actor::Agent(agent(i)?), Command::CloseSession { agent: agent(i)?, conversation: conversation(i)? }));
    resume_waiting(i) => Ok((Actor::Agent(agent(i)?), Command::ResumeWaiting { agent: agent(i)?, conversation: conversation(i)? }));
    complete_wrap_up(i) => Ok((Actor::Agent(agent(i)?), Command::CompleteWrapUp { agent: agent(i)?, conversation: conversation(i)? }));
    hold(i) => Ok((Actor::Agent(agent(i)?), Command::Hold { agent: agent(i)?, conversation: conversation(i)? }));
    unhold(i) => Ok((Actor::Agent(agent(i)?), Command::Unhold { agent: agent(i)?, conversation: conversation(i)? }));
    start_consult(i) => Ok((Actor::Agent(agent(i)?), Command::StartConsult {
        agent: agent(i)?,
        conversation: conversation(i)?,
        consultant: AgentId(i.uuid("consultant_id")?),
    }));
    end_consult(i) => Ok((Actor::Agent(agent(i)?), Command::EndConsult {
        agent: agent(i)?,
        conversation: conversation(i)?,
        consultant: AgentId(i.uuid("consultant_id")?),
    }));
    /// Exactly one of `target_agent_id` and `target_queue_id`.
    transfer(i) => {
        let target = match (i.optional_uuid("target_agent_id")?, i.optional_uuid("target_queue_id")?) {
            (Some(a), None) => TransferTarget::Agent(AgentId(a)),
            (None, Some(q)) => TransferTarget::Queue(QueueId(q)),
            _ => return Err(ApiError::field(
                "target_agent_id",
                "give exactly one of 'target_agent_id' and 'target_queue_id'",
            )),
        };
        Ok((Actor::Agent(agent(i)?), Command::Transfer { agent: agent(i)?, conversation: conversation(i)?, target }))
    };
    recording(i) => media(i, MediaKind::Recording);
    transcription(i) => media(i, MediaKind::Transcription);
    link(i) => linking(i, &REST_NAMES, Some(conversation(i)?), Linking::Link);
    unlink(i) => linking(i, &REST_NAMES, Some(conversation(i)?), Linking::Unlink);
    /// `Microsoft.Omnichannel.linkToConversation(entityLogicalName, recordId, conversationId?)`
    /// with the JavaScript API's names; without `conversationId`, the agent's focused one.
    link_to_conversation(i) => {
        let conversation = i.optional_uuid("conversationId")?.map(ConversationId);
        linking(i, &SCRIPT_NAMES, conversation, Linking::Link)
    };
    /// `unlinkFromConversation`, named like `linkToConversation`.
    unlink_from_conversation(i) => {
        let conversation = i.optional_uuid("conversationId")?.map(ConversationId);
        linking(i, &SCRIPT_NAMES, conversation, Linking::Unlink)
    };
    /// Without `conversation_id` the conversation takes the command's id (the
    /// `Idempotency-Key`), so a retried start names the same conversation.
    start_conversation(i) => Ok((Actor::Customer, Command::StartConversation {
        conversation: ConversationId(i.optional_uuid("conversation_id")?.unwrap_or(i.command_id)),
        queue: QueueId(i.uuid("queue_id")?),
        skills: i.texts("skills")?,
        customer: i.text("customer")?,
    }));
    customer_message(i) => Ok((Actor::Customer, Command::CustomerMessage { conversation: conversation(i)? }));
    customer_end(i) => Ok((Actor::Customer, Command::CustomerEnd { conversation: conversation(i)? }));
    customer_disconnect(i) => Ok((Actor::Customer, Command::CustomerDisconnect { conversation: conversation(i)? }));
    customer_reconnect(i) => Ok((Actor::Customer, Command::CustomerReconnect { conversation: conversation(i)? }));
    supervisor_assign(i) => {
        let supervisor = SupervisorId(i.uuid("supervisor_id")?);
        Ok((Actor::Supervisor(supervisor), Command::SupervisorAssign {
            supervisor,
            conversation: conversation(i)?,
            agent: agent(i)?,
        }))
    };
    force_close(i) => {
        let supervisor = SupervisorId(i.uuid("supervisor_id")?);
        Ok((Actor::Supervisor(supervisor), Command::ForceClose { supervisor, conversation: conversation(i)? }))
    };
    /// A CRM resolved a case: the system closes what is linked to it.
    resolve_case(i) => Ok((Actor::System, Command::ResolveCase { record: RecordId(i.path_uuid("record_id")?) }));
    /// An upsert: the agent's profile as a whole, provisioned again when it exists.
    provision_agent(i) => Ok((Actor::System, Command::ProvisionAgent(AgentProfile {
        id: path_agent(i)?,
        name: i.text("name")?,
        capacity_units: i.number("capacity_units")?,
        skills: i.texts("skills")?.into_iter().collect(),
        max_sessions: i.optional_number("max_sessions")?.unwrap_or(DEFAULT_MAX_SESSIONS),
        default_presence: PresenceId(
            i.optional_uuid("default_presence_id")?.unwrap_or(PresenceId::AVAILABLE.0),
        ),
    })));
    set_agent_capacity(i) => Ok((Actor::System, Command::SetAgentCapacity {
        agent: path_agent(i)?,
        capacity_units: i.number("capacity_units")?,
    }));
    add_agent_to_queue(i) => Ok((Actor::System, Command::AddAgentToQueue {
        queue: QueueId(i.path_uuid("queue_id")?),
        agent: path_agent(i)?,
    }));
    remove_agent_from_queue(i) => Ok((Actor::System, Command::RemoveAgentFromQueue {
        queue: QueueId(i.path_uuid("queue_id")?),
        agent: path_agent(i)?,
    }));
    define_custom_presence(i) => Ok((Actor::System, Command::DefineCustomPresence(CustomPresence {
        id: PresenceId(i.path_uuid("presence_id")?),
        name: i.text("name")?,
        base: i.choice("base", &borrowed(&base_statuses()))?,
    })));
    configure_queue(i) => Ok((Actor::System, Command::ConfigureQueue(QueueConfig {
        id: QueueId(i.path_uuid("queue_id")?),
        name: i.text("name")?,
        workstream: WorkstreamId(i.uuid("workstream_id")?),
        method: i.optional_choice("method", &borrowed(&assignment_methods()))?
            .unwrap_or(AssignmentMethod::HighestCapacity),
    })));
    /// A workstream with its channel's documented defaults for whatever the body leaves out
    /// (timers always: they are per channel).
    configure_workstream(i) => {
        let id = WorkstreamId(i.path_uuid("workstream_id")?);
        let channel = i.choice("channel", &borrowed(&channels()))?;
        let defaults = Workstream::with_defaults(id, &i.text("name")?, channel);
        let blocking = match (i.optional_choice("wrap_up_blocking", WRAP_UP_BLOCKING_VALUES)?, i.optional_number("wrap_up_blocking_secs")?) {
            (None | Some(Blocking::Always), None) => WrapUpBlocking::Always,
            (Some(Blocking::Never), None) => WrapUpBlocking::Never,
            (Some(Blocking::ForSeconds), Some(secs)) => WrapUpBlocking::ForSeconds(secs),
            (Some(Blocking::ForSeconds), None) => return Err(ApiError::field(
                "wrap_up_blocking_secs",
                "'wrap_up_blocking_secs' is required with wrap_up_blocking 'for_seconds'",
            )),
            (_, Some(_)) => return Err(ApiError::field(
                "wrap_up_blocking_secs",
                "'wrap_up_blocking_secs' goes only with wrap_up_blocking 'for_seconds'",
            )),
        };
        Ok((Actor::System, Command::ConfigureWorkstream(Workstream {
            mode: i.optional_choice("mode", &borrowed(&routing_modes()))?.unwrap_or(defaults.mode),
            capacity_units: i.optional_number("capacity_units")?.unwrap_or(defaults.capacity_units),
            allowed_presences: match i.choices("allowed_presences", &borrowed(&base_statuses()))? {
                Some(bases) => bases.into_iter().collect(),
                None => defaults.allowed_presences.clone(),
            },
            wrap_up_blocking: blocking,
            offer_timeout_secs: i.optional_number("offer_timeout_secs")?.unwrap_or(defaults.offer_timeout_secs),
            ..defaults
        })))
    };
    sign_in(i) => Ok((Actor::Agent(path_agent(i)?), Command::SignIn { agent: path_agent(i)? }));
    sign_out(i) => Ok((Actor::Agent(path_agent(i)?), Command::SignOut { agent: path_agent(i)? }));
    disconnect(i) => Ok((Actor::Agent(path_agent(i)?), Command::Disconnect { agent: path_agent(i)? }));
    reconnect(i) => Ok((Actor::Agent(path_agent(i)?), Command::Reconnect { agent: path_agent(i)? }));
}

#[derive(Clone, Copy)]
enum Blocking {
    Always,
    Never,
    ForSeconds,
}

const WRAP_UP_BLOCKING_VALUES: &[(&str, Blocking)] = &[
    ("always", Blocking::Always),
    ("never", Blocking::Never),
    ("for_seconds", Blocking::ForSeconds),
];

/// What a link's fields are called: the REST API's snake_case, or the JavaScript API's
/// camelCase (`linkToConversation(entityLogicalName, recordId, conversationId?)`).
struct LinkNames {
    agent: &'static str,
    entity: &'static str,
    record: &'static str,
}

const REST_NAMES: LinkNames = LinkNames {
    agent: "agent_id",
    entity: "entity_logical_name",
    record: "record_id",
};
const SCRIPT_NAMES: LinkNames = LinkNames {
    agent: "agentId",
    entity: "entityLogicalName",
    record: "recordId",
};

#[derive(Clone, Copy)]
enum Linking {
    Link,
    Unlink,
}

/// Links or unlinks a record; without a conversation, the agent's focused one.
fn linking(
    i: &Input,
    names: &LinkNames,
    conversation: Option<ConversationId>,
    linking: Linking,
) -> Result<Prepared, ApiError> {
    let agent = AgentId(i.uuid(names.agent)?);
    let entity = i.choice(names.entity, &entity_choices())?;
    let record = RecordId(i.uuid(names.record)?);
    let command = match linking {
        Linking::Link => Command::Link {
            agent,
            conversation,
            record: LinkedRecord { entity, record },
        },
        Linking::Unlink => Command::Unlink {
            agent,
            conversation,
            entity,
            record,
        },
    };
    Ok((Actor::Agent(agent), command))
}

/// Recording or transcription control: the actor is the agent (`agent_id`) or a supervisor
/// (`supervisor_id`), exactly one; the engine checks that an agent is the primary one.
fn media(i: &Input, media: MediaKind) -> Result<Prepared, ApiError> {
    let actor = match (
        i.optional_uuid("agent_id")?,
        i.optional_uuid("supervisor_id")?,
    ) {
        (Some(a), None) => Actor::Agent(AgentId(a)),
        (None, Some(s)) => Actor::Supervisor(SupervisorId(s)),
        _ => {
            return Err(ApiError::field(
                "agent_id",
                "give exactly one of 'agent_id' and 'supervisor_id'",
            ));
        }
    };
    Ok((
        actor,
        Command::Media {
            actor,
            conversation: conversation(i)?,
            media,
            action: i.path_choice("action", &borrowed(&media_actions()))?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lists the OpenAPI document shows are the ones the builders accept.
    #[test]
    fn documented_values_are_accepted_values() {
        assert_eq!(WRAP_UP_BLOCKING, labels(WRAP_UP_BLOCKING_VALUES));
        assert_eq!(ENTITIES, labels(&entity_choices()));
    }

    fn labels<T>(pairs: &[(&'static str, T)]) -> Vec<&'static str> {
        pairs.iter().map(|(label, _)| *label).collect()
    }
}
