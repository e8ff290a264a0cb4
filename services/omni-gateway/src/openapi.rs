//! The OpenAPI 3.1 document served at `/openapi.json`, built from the same endpoint table as
//! the router ([`crate::routes::ENDPOINTS`]): paths, parameters and bodies cannot drift from
//! what is served.

use serde_json::{Map, Value, json};

use crate::Mounted;
use crate::input::{Field, IDEMPOTENCY_KEY, Kind};
use crate::routes::{ENDPOINTS, Endpoint, Run, Verb};

/// Where the document is served; public, like any API description.
pub const PATH: &str = "/openapi.json";

/// Every (method, path) the document describes, in OpenAPI's spelling (`get`, `/v1/…/{id}`).
pub fn operations(document: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            for method in item.as_object().into_iter().flat_map(Map::keys) {
                found.push((method.clone(), path.clone()));
            }
        }
    }
    found
}

fn schema(kind: Kind) -> Value {
    match kind {
        Kind::Uuid => json!({"type": "string", "format": "uuid"}),
        Kind::Number => json!({"type": "integer", "minimum": 1}),
        Kind::Position => json!({"type": "integer", "minimum": 0}),
        Kind::PageSize => json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        Kind::Text => json!({"type": "string"}),
        Kind::TextList => json!({"type": "array", "items": {"type": "string"}}),
        Kind::Flag => json!({"type": "boolean"}),
        Kind::Choice(values) => json!({"type": "string", "enum": values}),
        Kind::ChoiceList(values) => {
            json!({"type": "array", "items": {"type": "string", "enum": values}})
        }
    }
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = if name == "action" {
                schema(Kind::Choice(crate::input::MEDIA_ACTIONS))
            } else {
                schema(Kind::Uuid)
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

fn query_parameter(field: &Field) -> Value {
    json!({
        "name": field.name,
        "in": "query",
        "required": field.required,
        "description": field.about,
        "schema": schema(field.kind),
    })
}

fn body(fields: &[Field]) -> Value {
    let properties: Map<String, Value> = fields
        .iter()
        .map(|f| {
            let mut s = schema(f.kind);
            s["description"] = Value::String(f.about.to_owned());
            (f.name.to_owned(), s)
        })
        .collect();
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({
        "required": true,
        "content": {"application/json": {"schema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        }}},
    })
}

/// An error answer in the gateway's one shape (the `Error` schema), for the `responses` of an
/// operation: `{"404": error_response("no such webhook")}`.
pub fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

fn operation(endpoint: &Endpoint) -> Value {
    let (answer, success) = match endpoint.run {
        // A started conversation is a created resource.
        Run::Command(_) if endpoint.operation == "startConversation" => ("CommandResult", "201"),
        Run::Command(_) => ("CommandResult", "200"),
        Run::Read(_, answer) => (answer, "200"),
    };
    let mut parameters = path_parameters(endpoint.path);
    parameters.extend(endpoint.query.iter().map(query_parameter));
    if endpoint.verb != Verb::Get {
        parameters.push(json!({
            "name": IDEMPOTENCY_KEY,
            "in": "header",
            "required": false,
            "description": "a UUID: the command's id. Sending the same request with the same key again is a retry: the first answer is repeated (replayed: true) and nothing happens twice. Default: a fresh one.",
            "schema": {"type": "string", "format": "uuid"},
        }));
    }
    let mut responses = Map::new();
    responses.insert(
        success.to_owned(),
        json!({
            "description": "done",
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{answer}")}}},
        }),
    );
    let mut errors = vec![
        (
            "400",
            "bad input: the field, parameter or header is named in `field`",
        ),
        (
            "404",
            "an unknown conversation, agent, queue, workstream or session",
        ),
        (
            "503",
            "the engine is unavailable or its read model behind; see Retry-After",
        ),
    ];
    errors.extend(GUARD_ERRORS);
    if endpoint.verb != Verb::Get {
        errors.extend([
            (
                "409",
                "the engine refused the command: `code` is its RejectionCode, `message` its reason",
            ),
            ("413", "the body is over the size limit"),
            ("415", "the body is not application/json"),
            (
                "422",
                "an unknown presence id, or a configuration the engine finds invalid",
            ),
        ]);
    }
    for (status, description) in errors {
        responses.insert(status.to_owned(), error_response(description));
    }
    let mut op = json!({
        "operationId": endpoint.operation,
        "tags": [endpoint.tag],
        "summary": endpoint.summary,
        "parameters": parameters,
        "responses": responses,
    });
    if !endpoint.body.is_empty() {
        op["requestBody"] = body(endpoint.body);
    }
    op
}

/// The answers the guard gives before any route runs, on every mounted route too.
const GUARD_ERRORS: [(&str, &str); 2] = [
    ("401", "no token, or not a valid one"),
    ("429", "this token's rate limit; see Retry-After"),
];

/// The whole document: the gateway's endpoints and the `mounted` ones.
pub fn document(mounted: &Mounted) -> Value {
    let mut paths = Map::new();
    for endpoint in ENDPOINTS {
        let item = paths
            .entry(endpoint.path.to_owned())
            .or_insert_with(|| json!({}));
        item[endpoint.verb.as_str()] = operation(endpoint);
    }
    paths.insert(
        PATH.to_owned(),
        json!({"get": {
            "operationId": "openapi",
            "tags": ["meta"],
            "summary": "This document (no token needed)",
            "security": [],
            "responses": {"200": {"description": "the OpenAPI document", "content": {"application/json": {}}}},
        }}),
    );
    for mounted in &mounted.operations {
        let mut operation = mounted.operation.clone();
        for (status, description) in GUARD_ERRORS {
            if operation["responses"].get(status).is_none() {
                operation["responses"][status] = error_response(description);
            }
        }
        let item = paths
            .entry(mounted.path.clone())
            .or_insert_with(|| json!({}));
        item[&mounted.method] = operation;
    }
    let mut schemas = schemas();
    for (name, schema) in &mounted.schemas {
        let previous = schemas[name].clone();
        assert!(previous.is_null(), "the schema {name} is the gateway's own");
        schemas[name] = schema.clone();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "omni gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The omni engine's commands, read models and presence APIs over HTTP. Ids are hyphenated UUIDs; times are Unix milliseconds; coded values are snake_case names with their Dynamics 365 wire code beside them. Every error has the Error shape. Commands answer once their events are durable; pass the answer's `position` as `min_position` to read your writes.",
        },
        "security": [{"bearer": []}, {"access_token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "access_token": {"type": "apiKey", "in": "query", "name": "access_token",
                    "description": "the token as a query parameter (RFC 6750 §2.3), for browsers' EventSource"},
            },
            "schemas": schemas,
        },
    })
}

fn schemas() -> Value {
    let uuid = json!({"type": "string", "format": "uuid"});
    let nullable_uuid = json!({"type": ["string", "null"], "format": "uuid"});
    let time = json!({"type": ["integer", "null"], "description": "Unix milliseconds"});
    let name = json!({"type": ["string", "null"]});
    let record = json!({"type": ["object", "null"], "properties": {
        "entity_logical_name": {"type": "string", "enum": crate::input::ENTITIES},
        "record_id": uuid,
    }});
    json!({
        "Error": {"type": "object", "required": ["status", "code", "message", "field"], "properties": {
            "status": {"type": "integer"},
            "code": {"type": "string", "description": "the engine's RejectionCode without its prefix (NOT_PRIMARY, WRONG_STATUS, …) or the gateway's own (INVALID_FIELD, INVALID_JSON, UNAUTHORIZED, RATE_LIMITED, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, NOT_FOUND, METHOD_NOT_ALLOWED, NOT_READY, UNAVAILABLE, BAD_ENGINE_REPLY)"},
            "message": {"type": "string"},
            "field": {"type": ["string", "null"], "description": "the body field, path or query parameter or header at fault"},
        }},
        "CommandResult": {"type": "object", "properties": {
            "command_id": uuid,
            "replayed": {"type": "boolean", "description": "true when this answers a retry"},
            "position": {"type": ["integer", "null"], "description": "the last log position written; pass it as min_position"},
            "events": {"type": "array", "items": {"type": "object", "properties": {
                "event_id": uuid, "position": {"type": "integer"}, "kind": {"type": "string"},
            }}},
            "conversation_id": {"type": "string", "format": "uuid", "description": "startConversation only"},
        }},
        "Session": {"type": "object", "properties": {
            "session_number": {"type": "integer"}, "agent_id": uuid, "primary": {"type": "boolean"},
            "status": name, "closure": name, "created_at": time, "accepted_at": time,
            "ended_at": time, "offer_expires_at": time, "unread": {"type": "integer"},
        }},
        "Conversation": {"type": "object", "properties": {
            "conversation_id": uuid, "status": name, "status_code": {"type": "integer"},
            "reason": name, "channel": name, "channel_code": {"type": "integer"},
            "queue_id": uuid, "workstream_id": uuid,
            "skills": {"type": "array", "items": {"type": "string"}},
            "customer": {"type": "string"}, "primary_agent_id": nullable_uuid,
            "consultant_ids": {"type": "array", "items": uuid},
            "sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}},
            "created_at": time, "status_since": time, "first_accepted_at": time, "closed_at": time,
            "transfer_count": {"type": "integer"}, "on_hold": {"type": "boolean"},
            "hold_ms": {"type": "integer"}, "customer_link": record, "case_link": record,
            "customer_connected": {"type": "boolean"},
        }},
        "ConversationPage": {"type": "object", "properties": {
            "conversations": {"type": "array", "items": {"$ref": "#/components/schemas/Conversation"}},
            "next_page_token": {"type": ["string", "null"], "description": "pass as page_token for the next page; null on the last"},
        }},
        "Agent": {"type": "object", "properties": {
            "agent_id": uuid, "name": {"type": "string"}, "signed_in": {"type": "boolean"},
            "connected": {"type": "boolean"},
            "presence": {"type": ["object", "null"], "properties": {
                "presence_id": uuid, "base": name, "base_code": {"type": "integer"},
            }},
            "presence_source": name, "presence_modified_at": time,
            "capacity_units": {"type": "integer"}, "available_units": {"type": "integer"},
            "skills": {"type": "array", "items": {"type": "string"}},
            "queue_ids": {"type": "array", "items": uuid},
            "open_conversation_ids": {"type": "array", "items": uuid},
        }},
        "AgentPage": {"type": "object", "properties": {
            "agents": {"type": "array", "items": {"$ref": "#/components/schemas/Agent"}},
            "next_page_token": {"type": ["string", "null"]},
        }},
        "CcaasPresence": {"type": "object", "properties": {
            "AgentId": uuid, "CurrentPresenceId": uuid,
            "BasePresenceStatus": {"type": "integer", "description": "192360000 Available … 192360004 Offline"},
            "IsAgentLoggedIn": {"type": "boolean"}, "AvailableUnitsCapacity": {"type": "integer"},
            "PresenceModifiedOn": time,
            "PresenceModifiedBy": {"type": ["string", "null"], "enum": ["AGENT", "SYSTEM", null]},
        }},
        "QueueList": {"type": "object", "properties": {
            "queues": {"type": "array", "items": {"type": "object", "properties": {
                "queue_id": uuid, "name": {"type": "string"}, "workstream_id": uuid,
                "channel": name, "channel_code": {"type": "integer"}, "method": name,
                "members": {"type": "integer"}, "members_signed_in": {"type": "integer"},
                "waiting": {"type": "integer"}, "oldest_waiting_since": time,
            }}},
        }},
    })
}
