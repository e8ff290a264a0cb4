//! The body of a notification: the `msdyn_agentstatus` Update execution context that Dynamics
//! 365 posts to a webhook registered on that entity (the presence seed), so middleware written
//! for it parses ours unchanged.
//!
//! Field order is the seed's, and `__type` comes first in every object that has one: .NET's
//! `DataContractJsonSerializer`, which such middleware often uses, requires the type hint to be
//! the first member. Dates are `"\/Date(ms)\/"` with the escaped slashes .NET writes.
//!
//! What omni has no counterpart for is filled in one documented way (see `docs/webhooks.md`):
//! the agent status record's id is the agent's id (omni keeps one status per agent), the
//! organization and business unit come from [`crate::Organization`], the user of the context is
//! whoever issued the command (an agent, a supervisor, or the nil id for the system and
//! customers), `OperationId` is the event's id, `RequestId` the command's id, `RowVersion` the
//! event's log position, and `OwningExtension` names the webhook registration.

use omni_core::{Actor, AgentId, Timestamp};
use serde::Serialize;
use uuid::Uuid;

use crate::Organization;
use crate::status::{
    AVAILABLE_UNITS, CAPACITY_MODIFIED_ON, CURRENT_PRESENCE, LOGGED_IN, Notification,
    PRESENCE_MODIFIED_BY, PRESENCE_MODIFIED_ON,
};

const ENTITY_TYPE: &str = "Entity:http://schemas.microsoft.com/xrm/2011/Contracts";
const REFERENCE_TYPE: &str = "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts";
const INITIATING_USER_AGENT: &str = concat!("omni-webhooks/", env!("CARGO_PKG_VERSION"));
/// Dataverse's time zone rule version the seed's records carry.
const TIME_ZONE_RULE_VERSION: i64 = 4;
/// Dynamics' values for a post-operation (40) step registered asynchronously (`Mode` 1), run
/// in its parent's (pre-operation, 30) context at depth 1, in the sandbox (`IsolationMode` 1).
const POST_OPERATION: i64 = 40;
const PRE_OPERATION: i64 = 30;

/// The JSON body posted for one agent status change to one endpoint.
pub fn render(notification: &Notification, organization: &Organization, endpoint: Uuid) -> String {
    let outer = Context::new(notification, organization, endpoint, Stage::Post);
    let json = serde_json::to_string(&outer).expect("the payload serializes: no maps, no floats");
    escape_date_slashes(&json)
}

/// `/Date(…)/` becomes `\/Date(…)\/`, as .NET writes it. Only date values can contain
/// `"/Date(`: every other string in the payload is an id, a name or a fixed label.
fn escape_date_slashes(json: &str) -> String {
    json.replace("\"/Date(", "\"\\/Date(")
        .replace(")/\"", ")\\/\"")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The context posted, with the post-operation image.
    Post,
    /// Its `ParentContext`.
    Pre,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Context {
    business_unit_id: Uuid,
    correlation_id: Uuid,
    depth: i64,
    initiating_user_agent: &'static str,
    initiating_user_azure_active_directory_object_id: Uuid,
    initiating_user_id: Uuid,
    input_parameters: Vec<KeyValue<Entity>>,
    is_executing_offline: bool,
    is_in_transaction: bool,
    is_offline_playback: bool,
    isolation_mode: i64,
    message_name: &'static str,
    mode: i64,
    operation_created_on: String,
    operation_id: Uuid,
    organization_id: Uuid,
    organization_name: String,
    output_parameters: Vec<KeyValue<Value>>,
    owning_extension: Reference,
    parent_context: Option<Box<Context>>,
    post_entity_images: Vec<KeyValue<Entity>>,
    pre_entity_images: Vec<KeyValue<Entity>>,
    primary_entity_id: Uuid,
    primary_entity_name: &'static str,
    request_id: Uuid,
    secondary_entity_name: &'static str,
    shared_variables: Vec<KeyValue<Value>>,
    stage: i64,
    user_azure_active_directory_object_id: Uuid,
    user_id: Uuid,
}

impl Context {
    fn new(n: &Notification, organization: &Organization, endpoint: Uuid, stage: Stage) -> Context {
        let status_id = status_record_id(n.status.agent);
        let user = user_of(n.actor);
        let (parent_context, post_entity_images, stage_code) = match stage {
            Stage::Post => (
                Some(Box::new(Context::new(
                    n,
                    organization,
                    endpoint,
                    Stage::Pre,
                ))),
                vec![KeyValue {
                    key: "AsynchronousStepPrimaryName",
                    value: Entity::image(status_id),
                }],
                POST_OPERATION,
            ),
            Stage::Pre => (None, Vec::new(), PRE_OPERATION),
        };
        Context {
            business_unit_id: organization.business_unit_id,
            correlation_id: n.correlation_id,
            depth: 1,
            initiating_user_agent: INITIATING_USER_AGENT,
            initiating_user_azure_active_directory_object_id: Uuid::nil(),
            initiating_user_id: user,
            input_parameters: vec![KeyValue {
                key: "Target",
                value: Entity::target(n, stage),
            }],
            is_executing_offline: false,
            is_in_transaction: false,
            is_offline_playback: false,
            isolation_mode: 1,
            message_name: "Update",
            mode: 1,
            operation_created_on: date_with_offset(n.at),
            operation_id: n.event_id,
            organization_id: organization.organization_id,
            organization_name: organization.organization_name.clone(),
            output_parameters: Vec::new(),
            owning_extension: Reference::new(endpoint, "sdkmessageprocessingstep"),
            parent_context,
            post_entity_images,
            pre_entity_images: Vec::new(),
            primary_entity_id: status_id,
            primary_entity_name: "msdyn_agentstatus",
            request_id: n.command_id,
            secondary_entity_name: "none",
            shared_variables: vec![
                KeyValue {
                    key: "IsAutoTransact",
                    value: Value::Bool(true),
                },
                KeyValue {
                    key: "AcceptLang",
                    value: Value::Text(String::new()),
                },
            ],
            stage: stage_code,
            user_azure_active_directory_object_id: Uuid::nil(),
            user_id: user,
        }
    }
}

#[derive(Serialize)]
struct KeyValue<V> {
    key: &'static str,
    value: V,
}

/// An attribute value: the JSON kinds the seed's attributes use.
#[derive(Serialize)]
#[serde(untagged)]
enum Value {
    Bool(bool),
    Number(i64),
    Text(String),
    Reference(Reference),
    Null(Option<()>),
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entity {
    /// Absent on entity images, as in the seed.
    #[serde(rename = "__type", skip_serializing_if = "Option::is_none")]
    type_hint: Option<&'static str>,
    attributes: Vec<KeyValue<Value>>,
    entity_state: Option<()>,
    formatted_values: Vec<KeyValue<Value>>,
    id: Uuid,
    key_attributes: Vec<KeyValue<Value>>,
    logical_name: &'static str,
    related_entities: Vec<KeyValue<Value>>,
    row_version: Option<String>,
}

impl Entity {
    /// The updated `msdyn_agentstatus`: every attribute the update wrote (the pre-operation
    /// context) plus the ones Dataverse adds on the way (`modifiedby`, `modifiedon`, …) in the
    /// post-operation one, in the seed's order.
    fn target(n: &Notification, stage: Stage) -> Entity {
        let s = &n.status;
        let status_id = status_record_id(s.agent);
        let attribute = |key, value| KeyValue { key, value };
        let status_id_attribute =
            || attribute("msdyn_agentstatusid", Value::Text(status_id.to_string()));
        let capacity = || attribute(AVAILABLE_UNITS, Value::Number(i64::from(s.available_units)));
        let presence = || {
            attribute(
                CURRENT_PRESENCE,
                Value::Reference(Reference::new(s.presence.0, "msdyn_presence")),
            )
        };
        let capacity_modified_on = || {
            attribute(
                CAPACITY_MODIFIED_ON,
                Value::Text(date(s.capacity_modified_on)),
            )
        };
        let modified_by = || {
            attribute(
                PRESENCE_MODIFIED_BY,
                Value::Text(s.presence_modified_by.label().to_owned()),
            )
        };
        let presence_modified_on = || {
            attribute(
                PRESENCE_MODIFIED_ON,
                Value::Text(date(s.presence_modified_on)),
            )
        };
        let blocked = || attribute("msdyn_isblockedbysomeprofile", Value::Bool(false));
        let logged_in = || attribute(LOGGED_IN, Value::Bool(s.logged_in));
        let agent = || {
            attribute(
                "msdyn_agentid",
                Value::Reference(Reference::new(s.agent.0, "systemuser")),
            )
        };
        let attributes = match stage {
            Stage::Post => vec![
                attribute(
                    "modifiedby",
                    Value::Reference(Reference::new(user_of(n.actor), "systemuser")),
                ),
                logged_in(),
                presence(),
                attribute("modifiedon", Value::Text(date(n.at))),
                attribute("modifiedonbehalfby", Value::Null(None)),
                capacity(),
                status_id_attribute(),
                capacity_modified_on(),
                presence_modified_on(),
                blocked(),
                modified_by(),
                agent(),
                attribute(
                    "timezoneruleversionnumber",
                    Value::Number(TIME_ZONE_RULE_VERSION),
                ),
            ],
            Stage::Pre => vec![
                status_id_attribute(),
                capacity(),
                presence(),
                capacity_modified_on(),
                modified_by(),
                presence_modified_on(),
                blocked(),
                logged_in(),
                agent(),
            ],
        };
        Entity::agent_status(
            Some(ENTITY_TYPE),
            attributes,
            status_id,
            Some(n.position.to_string()),
        )
    }

    /// The post-entity image an asynchronous step gets: the record's primary key only.
    fn image(status_id: Uuid) -> Entity {
        let key = KeyValue {
            key: "msdyn_agentstatusid",
            value: Value::Text(status_id.to_string()),
        };
        Entity::agent_status(None, vec![key], status_id, None)
    }

    fn agent_status(
        type_hint: Option<&'static str>,
        attributes: Vec<KeyValue<Value>>,
        status_id: Uuid,
        row_version: Option<String>,
    ) -> Entity {
        Entity {
            type_hint,
            attributes,
            entity_state: None,
            formatted_values: Vec::new(),
            id: status_id,
            key_attributes: Vec::new(),
            logical_name: "msdyn_agentstatus",
            related_entities: Vec::new(),
            row_version,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Reference {
    /// Absent on `OwningExtension`, as in the seed.
    #[serde(rename = "__type", skip_serializing_if = "Option::is_none")]
    type_hint: Option<&'static str>,
    id: Uuid,
    key_attributes: Vec<KeyValue<Value>>,
    logical_name: &'static str,
    name: Option<String>,
    row_version: Option<String>,
}

impl Reference {
    fn new(id: Uuid, logical_name: &'static str) -> Reference {
        Reference {
            type_hint: (logical_name != "sdkmessageprocessingstep").then_some(REFERENCE_TYPE),
            id,
            key_attributes: Vec::new(),
            logical_name,
            name: None,
            row_version: None,
        }
    }
}

/// omni keeps one status per agent, so the status record's id is the agent's id: stable, and
/// a receiver that keys on `msdyn_agentstatusid` sees one record per agent.
fn status_record_id(agent: AgentId) -> Uuid {
    agent.0
}

/// The `systemuser` behind a change: the agent or supervisor who issued the command, else the
/// nil id (the engine's timers, a customer's action).
fn user_of(actor: Actor) -> Uuid {
    match actor {
        Actor::Agent(agent) => agent.0,
        Actor::Supervisor(supervisor) => supervisor.0,
        Actor::Customer | Actor::System => Uuid::nil(),
    }
}

/// `/Date(ms)/`, the WCF JSON date.
fn date(at: Timestamp) -> String {
    format!("/Date({})/", at.0)
}

/// `/Date(ms+0000)/`: a WCF date with its UTC offset, as `OperationCreatedOn` carries it.
fn date_with_offset(at: Timestamp) -> String {
    format!("/Date({}+0000)/", at.0)
}
