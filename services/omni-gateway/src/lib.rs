//! The HTTP gateway: the engine's commands, read models and presence APIs as a REST API, for
//! agent desktops, CRMs and middleware that do not speak NATS. It reaches the engine only over
//! the bus — commands on `omni.intake.*` (`Bus::command`, the command id being the request's
//! `Idempotency-Key`), reads on `omni.query.*`, presence on `omni.presence.*` — and judges
//! nothing: whether a command is allowed is the engine's answer, relayed with its code.
//!
//! - JSON in and out; every error has one shape ([`ApiError`]) naming the field at fault, with
//!   400/415/413 for bad input, 401 without a valid token, 404 for unknown ids, 409 with the
//!   core's code and reason for a refused command, 429 and 503 with `Retry-After`.
//! - Bearer tokens from the configuration, compared in constant time; the `access_token`
//!   query parameter is accepted too (browsers' EventSource cannot set headers). Only
//!   `/openapi.json` is public.
//! - A body size limit and a token bucket per token.
//! - The OpenAPI document at `/openapi.json`, built from the same table as the router.
//!
//! # Mounting more routes
//!
//! Other parts of the engine (webhooks under `/v1/webhooks`, the dashboard under
//! `/dashboard`) serve their routes through the gateway, behind the same tokens, limits and
//! error shape, and documented in the same `/openapi.json`: they hand [`Bound::serve`] a
//! [`Mounted`], built one route at a time with the OpenAPI operation of each. The gateway
//! depends on none of them; they depend on it (for [`Mounted`] and [`ApiError`]).
//!
//! ```no_run
//! # async fn demo(client: async_nats::Client) -> Result<(), omni_gateway::GatewayError> {
//! use axum::http::Method;
//! let (_stop, shutdown) = tokio::sync::watch::channel(false);
//! let config = omni_gateway::Config::new("127.0.0.1:0".parse().unwrap(), vec!["token".into()]);
//! let bound = omni_gateway::bind(config).await?; // the port is taken here
//! println!("listening on http://{}", bound.local_addr());
//! let mounted = omni_gateway::Mounted::new().route(
//!     Method::GET,
//!     "/dashboard",
//!     || async { "…" },
//!     (),
//!     serde_json::json!({"operationId": "dashboard", "responses": {"200": {"description": "the page"}}}),
//! );
//! bound.serve(client, mounted, shutdown).await
//! # }
//! ```
//!
//! Mounted paths must not clash with the gateway's (`/v1/...` listed in `/openapi.json`;
//! axum panics when merging). Their requests have passed the token check and the rate limit;
//! their error answers that are not JSON are turned into the error shape. Shutdown waits for
//! requests in flight, so a long-lived answer (server-sent events) must end when the same
//! `shutdown` signal turns true.

mod auth;
mod error;
mod input;
mod mount;
mod openapi;
mod routes;
mod views;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{MethodFilter, MethodRouter};
use omni_bus::Bus;
use tokio::sync::watch;

pub use auth::{RateLimit, generate_token};
pub use error::ApiError;
pub use mount::Mounted;
pub use openapi::error_response;
pub use routes::API_VERSIONS;

/// How long one request on the bus waits: longer than the read models wait for a
/// `min_position` (2 s), so their NOT_READY arrives as an answer (503 `NOT_READY`) instead of
/// the attempt timing out.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// The gateway's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen; port 0 picks a free one ([`Bound::local_addr`] says which).
    pub addr: SocketAddr,
    /// The API tokens a caller may present; at least one.
    pub tokens: Vec<String>,
    /// The largest request body, in bytes; larger ones are answered 413.
    pub body_limit: usize,
    pub rate_limit: RateLimit,
    /// How long a request waits for the engine (retrying with the same command id) before it
    /// is answered 503.
    pub engine_timeout: Duration,
}

impl Config {
    /// 64 KiB bodies, the default rate limit, 5 s for the engine.
    pub fn new(addr: SocketAddr, tokens: Vec<String>) -> Config {
        Config {
            addr,
            tokens,
            body_limit: 64 * 1024,
            rate_limit: RateLimit::default(),
            engine_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the HTTP gateway needs at least one API token")]
    NoTokens,
    #[error("an API token must be non-empty and without spaces")]
    BadToken,
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// A gateway whose port is taken, not serving yet.
#[derive(Debug)]
pub struct Bound {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    config: Config,
}

/// Checks the configuration and takes the port.
pub async fn bind(config: Config) -> Result<Bound, GatewayError> {
    if config.tokens.is_empty() {
        return Err(GatewayError::NoTokens);
    }
    if config
        .tokens
        .iter()
        .any(|t| t.is_empty() || t.chars().any(char::is_whitespace))
    {
        return Err(GatewayError::BadToken);
    }
    let bind_error = |error| GatewayError::Bind {
        addr: config.addr,
        error,
    };
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    Ok(Bound {
        listener,
        local_addr,
        config,
    })
}

impl Bound {
    /// Where the gateway listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves the API, plus the `mounted` routes behind the same guard and in the same
    /// document, until `shutdown` turns true; requests in flight are finished.
    pub async fn serve(
        self,
        client: async_nats::Client,
        mounted: Mounted,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), GatewayError> {
        let mut bus = Bus::new(client);
        bus.retry_for = self.config.engine_timeout;
        bus.attempt_timeout = ATTEMPT_TIMEOUT.min(self.config.engine_timeout);
        let app = app(&self.config, bus, mounted);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
            .map_err(GatewayError::Serve)
    }
}

/// The gateway alone, mini-redis style: bind, then serve until `shutdown`.
pub async fn run(
    config: Config,
    client: async_nats::Client,
    shutdown: watch::Receiver<bool>,
) -> Result<(), GatewayError> {
    bind(config)
        .await?
        .serve(client, Mounted::new(), shutdown)
        .await
}

/// Every (method, path) the gateway serves with `mounted`, in OpenAPI's spelling (`post`,
/// `/v1/conversations/{conversation_id}/accept`).
pub fn served_routes(mounted: &Mounted) -> Vec<(String, String)> {
    routes::ENDPOINTS
        .iter()
        .map(|e| (e.verb.as_str().to_owned(), e.path.to_owned()))
        .chain([("get".to_owned(), openapi::PATH.to_owned())])
        .chain(mounted.routes())
        .collect()
}

/// The OpenAPI document's operations, as [`served_routes`] spells them.
pub fn documented_routes(document: &serde_json::Value) -> Vec<(String, String)> {
    openapi::operations(document)
}

fn app(config: &Config, bus: Bus, mounted: Mounted) -> Router {
    let mut by_path: BTreeMap<&'static str, MethodRouter<Bus>> = BTreeMap::new();
    for endpoint in routes::ENDPOINTS {
        let handler = move |state: State<Bus>,
                            path: Result<Path<HashMap<String, String>>, PathRejection>,
                            query: Result<Query<Vec<(String, String)>>, QueryRejection>,
                            headers: HeaderMap,
                            body: Result<Bytes, BytesRejection>| {
            routes::handle(state, endpoint, path, query, headers, body)
        };
        let filter = match endpoint.verb {
            routes::Verb::Get => MethodFilter::GET,
            routes::Verb::Post => MethodFilter::POST,
            routes::Verb::Put => MethodFilter::PUT,
            routes::Verb::Delete => MethodFilter::DELETE,
        };
        let methods = by_path.remove(endpoint.path).unwrap_or_default();
        by_path.insert(endpoint.path, methods.on(filter, handler));
    }
    let api = by_path
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
        .with_state(bus);
    let document = Arc::new(openapi::document(&mounted));
    let guard = Arc::new(auth::Guard::new(
        config.tokens.clone(),
        config.rate_limit,
        &[openapi::PATH],
    ));
    Router::new()
        .merge(api)
        .route(
            openapi::PATH,
            axum::routing::get(move || {
                let document = Arc::clone(&document);
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
        .merge(mounted.router)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route") })
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(axum::middleware::from_fn_with_state(guard, auth::authorize))
        .layer(axum::middleware::map_response(error::json_errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices(doc: &serde_json::Value, path: &str, name: &str) -> Vec<String> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .and_then(|p| p["schema"]["enum"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    fn names<T>(vocabulary: Vec<(String, T)>) -> Vec<String> {
        vocabulary.into_iter().map(|(name, _)| name).collect()
    }

    /// The query vocabularies the document lists are the core's, named as the API names them.
    #[test]
    fn documented_choices_are_the_cores_vocabularies() {
        let doc = openapi::document(&Mounted::new());
        let conversations = "/v1/conversations";
        assert_eq!(
            choices(&doc, conversations, "channel"),
            names(input::channels())
        );
        assert_eq!(
            choices(&doc, conversations, "status"),
            names(input::statuses())
        );
        assert_eq!(
            choices(&doc, "/v1/agents", "presence"),
            names(input::base_statuses())
        );
    }

    #[test]
    fn the_document_describes_what_is_served_mounted_routes_included() {
        let operation = |id: &str| serde_json::json!({"operationId": id, "responses": {}});
        // Two services' routes, merged as the engine merges them; one path, two methods.
        let get = axum::http::Method::GET;
        let delete = axum::http::Method::DELETE;
        let one = Mounted::new().route(get, "/extra", || async {}, (), operation("a"));
        let other = Mounted::new()
            .route(delete, "/extra", || async {}, (), operation("b"))
            .schema("Extra", serde_json::json!({"type": "object"}));
        let mounted = one.merge(other);
        let document = openapi::document(&mounted);
        let mut served = served_routes(&mounted);
        let mut documented = documented_routes(&document);
        served.sort();
        documented.sort();
        assert_eq!(served, documented);
        assert!(served.contains(&("delete".to_owned(), "/extra".to_owned())));
        // The guard's answers are documented on mounted routes too.
        assert_eq!(
            document["paths"]["/extra"]["get"]["responses"]["401"],
            error_response("no token, or not a valid one")
        );
        assert_eq!(document["components"]["schemas"]["Extra"]["type"], "object");
        assert_eq!(document["components"]["schemas"]["Error"]["type"], "object");
    }
}
