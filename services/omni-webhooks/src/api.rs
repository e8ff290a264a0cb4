//! The HTTP API over registrations and the delivery log, served through the gateway (which
//! checks the token and the limits). Errors are the gateway's one shape
//! ([`omni_gateway::ApiError`]: `{"status", "code", "message", "field"}`, `field` naming the
//! input that was wrong): 400 `INVALID_JSON` for a body that is not JSON and `INVALID_FIELD`
//! for a malformed id or query parameter; 422 `MISSING_FIELD`, `UNKNOWN_FIELD` or
//! `INVALID_FIELD` for a JSON body whose fields are missing, unknown or invalid (well-formed
//! input this API cannot use, as the gateway answers 422 for the engine's); 404 `NOT_FOUND`
//! for an unknown registration.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use omni_gateway::{ApiError, Mounted};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::openapi;
use crate::store::Endpoint;
use crate::{Live, STATUS_ATTRIBUTES, Webhooks, WebhooksError, now_ms};

/// Delivery log entries per page when `limit` is not given, and the most one page holds.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;
const MAX_URL_LEN: usize = 2_048;
const MAX_DESCRIPTION_LEN: usize = 1_000;
/// A secret shorter than this is too easy to guess.
const MIN_SECRET_LEN: usize = 16;
const MAX_SECRET_LEN: usize = 512;

const COLLECTION: &str = "/v1/webhooks";
const ONE: &str = "/v1/webhooks/{id}";
const DELIVERIES: &str = "/v1/webhooks/{id}/deliveries";

/// The routes, each with its OpenAPI operation, and the schemas those refer to.
pub fn mounted(webhooks: Webhooks) -> Mounted {
    let w = || webhooks.clone();
    Mounted::new()
        .route(Method::POST, COLLECTION, register, w(), openapi::register())
        .route(Method::GET, COLLECTION, list, w(), openapi::list())
        .route(Method::GET, ONE, show, w(), openapi::show())
        .route(Method::DELETE, ONE, remove, w(), openapi::remove())
        .route(
            Method::GET,
            DELIVERIES,
            deliveries,
            w(),
            openapi::deliveries(),
        )
        .schema("Webhook", openapi::webhook())
        .schema("WebhookList", openapi::webhook_list())
        .schema("WebhookDelivery", openapi::delivery())
        .schema("WebhookDeliveryPage", openapi::delivery_page())
}

/// A 422: well-formed JSON whose `field` this API cannot use.
fn unusable(code: &str, field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_field(field)
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    unusable("INVALID_FIELD", field, message)
}

fn internal(error: WebhooksError) -> ApiError {
    tracing::error!(%error, "webhook API");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
        error.to_string(),
    )
}

/// A registration as listed: never its secret.
#[derive(Serialize)]
struct EndpointView {
    id: Uuid,
    url: String,
    description: Option<String>,
    /// Milliseconds since the Unix epoch.
    created_at: i64,
    /// The status attributes whose changes it is sent; empty: every change.
    filtering_attributes: Vec<String>,
    /// Deliveries waiting to be made or retried.
    pending: usize,
}

fn view(live: &Live) -> EndpointView {
    let endpoint = &live.endpoint;
    EndpointView {
        id: endpoint.id,
        url: endpoint.url.clone(),
        description: endpoint.description.clone(),
        created_at: endpoint.created_at,
        filtering_attributes: endpoint.filtering_attributes.clone(),
        pending: live.queue.pending.load(Ordering::Relaxed),
    }
}

/// `POST /v1/webhooks` `{url, secret?, description?, filtering_attributes?}` → 201 with the
/// registration and its
/// secret: the only time the secret is shown. Without a secret, one is generated (32 random
/// bytes, hex).
async fn register(State(webhooks): State<Webhooks>, body: Bytes) -> Result<Response, ApiError> {
    let request = parse_registration(&body)?;
    let secret = match request.secret {
        Some(secret) => secret,
        None => generate_secret()?,
    };
    let secret_shown = secret.clone();
    let endpoint = Endpoint {
        id: Uuid::now_v7(),
        url: request.url,
        secret,
        description: request.description,
        created_at: now_ms(),
        filtering_attributes: request.filtering_attributes,
    };
    let inner = &webhooks.inner;
    let mut live = Live {
        endpoint,
        queue: Arc::default(),
        worker: None,
    };
    let mut body = {
        let mut endpoints = inner.endpoints();
        inner
            .store
            .insert_endpoint(&live.endpoint)
            .map_err(internal)?;
        inner.start_worker(&mut live);
        let body = serde_json::to_value(view(&live)).expect("a view serializes");
        endpoints.insert(live.endpoint.id, live);
        body
    };
    body["secret"] = Value::String(secret_shown);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

struct Registration {
    url: String,
    secret: Option<String>,
    description: Option<String>,
    filtering_attributes: Vec<String>,
}

fn parse_registration(body: &[u8]) -> Result<Registration, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!("the body is not JSON: {e}"),
        )
        .with_field("body")
    })?;
    let Value::Object(mut fields) = value else {
        return Err(invalid(
            "body",
            "the body must be a JSON object: {\"url\": …, \"secret\": …, \"description\": …}",
        ));
    };
    let url = optional_string(&mut fields, "url")?.ok_or_else(|| {
        unusable(
            "MISSING_FIELD",
            "url",
            "url is required: the http or https address to post to",
        )
    })?;
    let secret = optional_string(&mut fields, "secret")?;
    let description = optional_string(&mut fields, "description")?;
    let filtering_attributes = filtering_attributes(fields.remove(FILTERING_ATTRIBUTES))?;
    if let Some(unknown) = fields.keys().next() {
        return Err(unusable(
            "UNKNOWN_FIELD",
            unknown,
            format!(
                "unknown field {unknown:?}: expected url, secret, description, {FILTERING_ATTRIBUTES}"
            ),
        ));
    }
    validate_url(&url)?;
    if let Some(secret) = &secret {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
            return Err(invalid(
                "secret",
                format!(
                    "secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes long; leave it out to have one generated"
                ),
            ));
        }
    }
    if description
        .as_ref()
        .is_some_and(|d| d.len() > MAX_DESCRIPTION_LEN)
    {
        return Err(invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_LEN} bytes long"),
        ));
    }
    Ok(Registration {
        url,
        secret,
        description,
        filtering_attributes,
    })
}

const FILTERING_ATTRIBUTES: &str = "filtering_attributes";

/// The seed's "Filtering attributes": status attributes by name, each once; absent, null or
/// empty sends every change.
fn filtering_attributes(value: Option<Value>) -> Result<Vec<String>, ApiError> {
    let refuse = |why: String| {
        invalid(
            FILTERING_ATTRIBUTES,
            format!(
                "{FILTERING_ATTRIBUTES} must be a list of status attributes ({}): {why}",
                STATUS_ATTRIBUTES.join(", ")
            ),
        )
    };
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(refuse(format!("not {other}"))),
    };
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(name) if STATUS_ATTRIBUTES.contains(&name.as_str()) => {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            other => return Err(refuse(format!("{other} is not one"))),
        }
    }
    Ok(names)
}

/// Takes `name` out of `fields`: absent or null is `None`; anything but a string is an error
/// naming it.
fn optional_string(
    fields: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ApiError> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(
            name,
            format!("{name} must be a string, not {other}"),
        )),
    }
}

/// An absolute `http` or `https` URL with a host.
fn validate_url(url: &str) -> Result<(), ApiError> {
    let refuse = |why: &str| {
        invalid(
            "url",
            format!(
                "url must be an absolute http or https URL such as https://example.com/hooks/presence: {why}"
            ),
        )
    };
    if url.len() > MAX_URL_LEN {
        return Err(refuse(&format!("it is longer than {MAX_URL_LEN} bytes")));
    }
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|_| refuse(&format!("{url:?} is not a URL")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(refuse(&format!("the scheme is {other:?}"))),
        None => return Err(refuse(&format!("{url:?} has no scheme"))),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(refuse(&format!("{url:?} has no host")));
    }
    Ok(())
}

fn generate_secret() -> Result<String, ApiError> {
    let mut bytes = [0; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("no randomness for a secret: {e}"),
        )
    })?;
    Ok(crate::deliver::hex(&bytes))
}

/// `GET /v1/webhooks` → `{"webhooks": […]}` in registration order.
async fn list(State(webhooks): State<Webhooks>) -> Json<Value> {
    let mut views: Vec<EndpointView> = webhooks.inner.endpoints().values().map(view).collect();
    // Ids are UUIDv7: their order is the order of registration.
    views.sort_by_key(|v| v.id);
    Json(json!({ "webhooks": views }))
}

/// The registration named by the path's `id` (400 when it is not a UUID, 404 when unknown),
/// as listed.
fn find(webhooks: &Webhooks, id: &str) -> Result<EndpointView, ApiError> {
    let id = Uuid::parse_str(id)
        .map_err(|_| ApiError::field("id", format!("{id:?} is not a webhook id (a UUID)")))?;
    webhooks
        .inner
        .endpoints()
        .get(&id)
        .map(view)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no webhook {id}"),
            )
            .with_field("id")
        })
}

/// `GET /v1/webhooks/{id}`.
async fn show(
    State(webhooks): State<Webhooks>,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    find(&webhooks, &id).map(Json)
}

/// `DELETE /v1/webhooks/{id}` → 204. Its worker stops, and its pending deliveries and delivery
/// log are deleted with it.
async fn remove(
    State(webhooks): State<Webhooks>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let endpoint = find(&webhooks, &id)?;
    let inner = &webhooks.inner;
    let mut endpoints = inner.endpoints();
    if let Some(live) = endpoints.remove(&endpoint.id) {
        if let Some(worker) = live.worker {
            worker.abort();
        }
    }
    inner.store.remove_endpoint(endpoint.id).map_err(internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/webhooks/{id}/deliveries?limit=&before=` → `{"deliveries": […], "next_before"}`:
/// the delivery log, newest first; pass `next_before` as `before` for the next page (null on
/// the last one). `limit` is 1 to 1000 (default 100).
async fn deliveries(
    State(webhooks): State<Webhooks>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = find(&webhooks, &id)?;
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        query
            .get(name)
            .map(|raw| {
                raw.parse::<u64>().map_err(|_| {
                    ApiError::field(name, format!("{name} must be a whole number, not {raw:?}"))
                })
            })
            .transpose()
    };
    if let Some(unknown) = query
        .keys()
        .find(|k| !matches!(k.as_str(), "limit" | "before"))
    {
        return Err(ApiError::field(
            unknown,
            format!("unknown query parameter {unknown:?}: expected limit, before"),
        ));
    }
    let limit = match number("limit")? {
        None => DEFAULT_PAGE,
        Some(n) if (1..=MAX_PAGE as u64).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::field(
                "limit",
                format!("limit must be 1 to {MAX_PAGE}, not {n}"),
            ));
        }
    };
    let before = number("before")?;
    let page = webhooks
        .inner
        .store
        .deliveries(endpoint.id, before, limit)
        .map_err(internal)?;
    let next_before = (page.len() == limit)
        .then(|| page.last().map(|r| r.position))
        .flatten();
    Ok(Json(
        json!({ "deliveries": page, "next_before": next_before }),
    ))
}
