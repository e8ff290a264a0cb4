//! The one error shape every answer that is not a success has:
//! `{"status": 409, "code": "NOT_PRIMARY", "message": "…", "field": "agent_id"}`, with the
//! status the error class calls for. `field` names the body field, path or query parameter
//! or header at fault (null when no one field is); `code` is the engine's `RejectionCode`
//! name (without its `REJECTION_CODE_` prefix) for the engine's rejections, else one of the
//! gateway's own codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use omni_bus::BusError;
use omni_proto::pb::{self, RejectionCode};

/// Seconds a client should wait before retrying when the engine is unavailable or behind.
const RETRY_AFTER_UNAVAILABLE_SECS: u64 = 1;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
    /// `Retry-After` in seconds (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// A 400 naming the field at fault.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_FIELD", message).with_field(field)
    }

    /// This error, naming `field` as the one at fault.
    pub fn with_field(self, field: &str) -> ApiError {
        ApiError {
            field: Some(field.to_owned()),
            ..self
        }
    }

    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    pub fn rate_limited(retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many requests for this token; retry after the Retry-After seconds",
            )
        }
    }

    /// 503 with `Retry-After`: the engine, or a read model, is not there yet.
    pub fn unavailable(code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(RETRY_AFTER_UNAVAILABLE_SECS),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// An engine's rejection of a command (or a presence change): 404 when the command names
    /// an entity the engine does not know, 422 for an unknown presence id or a configuration
    /// the core finds invalid (well-formed input it cannot use), 503 when the engine could not
    /// decide now, 409 with the core's reason for every rule it broke.
    pub fn rejected(code: RejectionCode, reason: String) -> ApiError {
        use RejectionCode as R;
        let status = match code {
            R::UnknownConversation
            | R::UnknownAgent
            | R::UnknownQueue
            | R::UnknownWorkstream
            | R::UnknownSession => StatusCode::NOT_FOUND,
            R::UnknownPresence | R::InvalidConfig => StatusCode::UNPROCESSABLE_ENTITY,
            R::Malformed | R::Unspecified => StatusCode::BAD_REQUEST,
            R::Unavailable => return ApiError::unavailable(rejection_name(code), reason),
            _ => StatusCode::CONFLICT,
        };
        ApiError::new(status, rejection_name(code), reason)
    }

    /// A query's error answer.
    pub fn query(error: pb::QueryError) -> ApiError {
        use pb::QueryErrorCode as Q;
        match Q::try_from(error.code).unwrap_or(Q::Unspecified) {
            Q::NotFound => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", error.reason),
            Q::NotReady => ApiError::unavailable("NOT_READY", error.reason),
            Q::Unavailable => ApiError::unavailable("UNAVAILABLE", error.reason),
            Q::Rejected => ApiError::rejected(
                RejectionCode::try_from(error.rejection).unwrap_or(RejectionCode::Unspecified),
                error.reason,
            ),
            Q::Malformed | Q::Unspecified => {
                ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED", error.reason)
            }
        }
    }

    /// The bus gave no usable answer: the engine is down or overloaded (503), or answered
    /// with bytes this gateway cannot read (502).
    pub fn bus(error: BusError) -> ApiError {
        match error {
            BusError::Unavailable { .. } => ApiError::unavailable(
                "UNAVAILABLE",
                format!("the engine is not answering: {error}"),
            ),
            BusError::BadReply { .. } | BusError::Internal(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "BAD_ENGINE_REPLY",
                error.to_string(),
            ),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "status": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
            "field": self.field,
        })
    }
}

/// `NOT_PRIMARY` for `REJECTION_CODE_NOT_PRIMARY`.
pub fn rejection_name(code: RejectionCode) -> &'static str {
    let name = code.as_str_name();
    name.strip_prefix("REJECTION_CODE_").unwrap_or(name)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Turns any error answer that is not already JSON — an extractor's or a mounted router's
/// plain-text rejection, axum's own 404 or 405 — into the error shape, keeping its status and
/// its text as the message. Successful answers pass untouched.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        s if s.is_server_error() => "INTERNAL",
        _ => "BAD_REQUEST",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut json = ApiError::new(status, code, message).into_response();
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(value) = parts.headers.get(&name) {
            json.headers_mut().insert(name, value.clone());
        }
    }
    json
}
