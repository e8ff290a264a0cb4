//! The dashboard's OpenAPI operations, served in the gateway's `/openapi.json` beside its own
//! (`Dashboard::mounted` pairs each with its route).

use omni_gateway::error_response;
use serde_json::{Value, json};

fn operation(id: &str, summary: &str, answer: Value) -> Value {
    json!({
        "operationId": id,
        "tags": ["dashboard"],
        "summary": summary,
        "responses": {"200": answer},
    })
}

pub fn page() -> Value {
    operation(
        "dashboardPage",
        "The live supervisor dashboard: one page that reads the stream (pass access_token, which it hands on to the stream)",
        json!({"description": "the page", "content": {"text/html": {}}}),
    )
}

pub fn state() -> Value {
    let mut op = operation(
        "dashboardState",
        "A snapshot of what the dashboard shows: conversations by status and queue, queue waits, agents",
        json!({"description": "the snapshot", "content": {"application/json": {"schema": {"type": "object"}}}}),
    );
    op["parameters"] = json!([{
        "name": "min_position", "in": "query", "required": false,
        "description": "wait (up to a few seconds) until the dashboard has folded this log position",
        "schema": {"type": "integer", "minimum": 0},
    }]);
    op["responses"]["503"] =
        error_response("the dashboard has not folded min_position yet; ask again");
    op
}

pub fn stream() -> Value {
    operation(
        "dashboardStream",
        "Server-sent events: a snapshot, then the changes every 250 ms (a fresh snapshot after falling behind)",
        json!({"description": "the event stream", "content": {"text/event-stream": {}}}),
    )
}
