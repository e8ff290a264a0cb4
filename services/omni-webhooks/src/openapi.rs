//! The API's OpenAPI operations and schemas, which the gateway serves in its `/openapi.json`
//! beside its own (`api::mounted` pairs each with its route).

use omni_gateway::error_response;
use serde_json::{Value, json};

use crate::STATUS_ATTRIBUTES;

const TAG: &str = "webhooks";

fn id_parameter() -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": "the webhook's id",
        "schema": {"type": "string", "format": "uuid"}})
}

fn answer(status: &str, description: &str, schema: &str) -> (String, Value) {
    (
        status.to_owned(),
        json!({"description": description, "content": {"application/json": {"schema":
            {"$ref": format!("#/components/schemas/{schema}")}}}}),
    )
}

fn bad_id() -> (String, Value) {
    (
        "400".to_owned(),
        error_response("the id is not a UUID (`field`: id)"),
    )
}

fn unknown() -> (String, Value) {
    ("404".to_owned(), error_response("no webhook with this id"))
}

fn operation(
    id: &str,
    summary: &str,
    parameters: Vec<Value>,
    responses: Vec<(String, Value)>,
) -> Value {
    json!({
        "operationId": id,
        "tags": [TAG],
        "summary": summary,
        "parameters": parameters,
        "responses": responses.into_iter().collect::<serde_json::Map<_, _>>(),
    })
}

pub fn register() -> Value {
    let mut op = operation(
        "registerWebhook",
        "Register an endpoint for agent status changes; the answer is the only one showing its secret",
        Vec::new(),
        vec![
            answer("201", "registered; `secret` is shown this once", "Webhook"),
            (
                "400".to_owned(),
                error_response("the body is not JSON (INVALID_JSON)"),
            ),
            (
                "413".to_owned(),
                error_response("the body is over the size limit"),
            ),
            (
                "422".to_owned(),
                error_response(
                    "a field is missing, unknown or invalid (MISSING_FIELD, UNKNOWN_FIELD, INVALID_FIELD), named in `field`",
                ),
            ),
        ],
    );
    op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["url"],
        "additionalProperties": false,
        "properties": {
            "url": {"type": "string", "format": "uri", "maxLength": 2048,
                "description": "the absolute http or https URL to post to"},
            "secret": {"type": "string", "minLength": 16, "maxLength": 512,
                "description": "the HMAC-SHA256 key; leave it out to have one generated"},
            "description": {"type": ["string", "null"], "maxLength": 1000},
            "filtering_attributes": filtering_attributes(),
        },
    }}}});
    op
}

fn filtering_attributes() -> Value {
    json!({"type": ["array", "null"], "uniqueItems": true,
        "items": {"type": "string", "enum": STATUS_ATTRIBUTES},
        "description": "send only changes of these status attributes; empty or absent: every change"})
}

pub fn list() -> Value {
    operation(
        "listWebhooks",
        "The registered endpoints, in registration order (never their secrets)",
        Vec::new(),
        vec![answer("200", "the endpoints", "WebhookList")],
    )
}

pub fn show() -> Value {
    operation(
        "getWebhook",
        "One registered endpoint (never its secret)",
        vec![id_parameter()],
        vec![
            answer("200", "the endpoint", "Webhook"),
            bad_id(),
            unknown(),
        ],
    )
}

pub fn remove() -> Value {
    operation(
        "deleteWebhook",
        "Delete an endpoint with its pending deliveries and delivery log",
        vec![id_parameter()],
        vec![
            ("204".to_owned(), json!({"description": "deleted"})),
            bad_id(),
            unknown(),
        ],
    )
}

pub fn deliveries() -> Value {
    let page = |name: &str, description: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema});
    operation(
        "listWebhookDeliveries",
        "An endpoint's delivery log, newest first",
        vec![
            id_parameter(),
            page(
                "limit",
                "entries per page",
                json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
            ),
            page(
                "before",
                "the previous page's next_before",
                json!({"type": "integer", "minimum": 0}),
            ),
        ],
        vec![
            answer("200", "a page of the delivery log", "WebhookDeliveryPage"),
            (
                "400".to_owned(),
                error_response(
                    "the id, limit or before is malformed, or an unknown query parameter; named in `field`",
                ),
            ),
            unknown(),
        ],
    )
}

pub fn webhook() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"},
        "url": {"type": "string"},
        "description": {"type": ["string", "null"]},
        "created_at": {"type": "integer", "description": "Unix milliseconds"},
        "filtering_attributes": filtering_attributes(),
        "pending": {"type": "integer", "description": "deliveries waiting to be made or retried"},
        "secret": {"type": "string", "description": "only in the answer to the registration"},
    }})
}

pub fn webhook_list() -> Value {
    json!({"type": "object", "properties": {
        "webhooks": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}},
    }})
}

pub fn delivery() -> Value {
    let uuid = json!({"type": "string", "format": "uuid"});
    let time = json!({"type": ["integer", "null"], "description": "Unix milliseconds"});
    json!({"type": "object", "properties": {
        "delivery_id": uuid, "position": {"type": "integer"}, "event_id": uuid,
        "agent_id": uuid, "presence_id": uuid,
        "state": {"type": "string", "enum": ["pending", "retrying", "delivered", "failed", "dropped"]},
        "attempts": {"type": "integer"},
        "last_status": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]},
        "created_at": time, "updated_at": time, "next_attempt_at": time,
    }})
}

pub fn delivery_page() -> Value {
    json!({"type": "object", "properties": {
        "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookDelivery"}},
        "next_before": {"type": ["integer", "null"], "description": "pass as before for the next page; null on the last"},
    }})
}
