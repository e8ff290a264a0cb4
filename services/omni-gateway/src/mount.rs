//! Routes other parts of the engine serve through the gateway, with their OpenAPI operations.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};
use serde_json::{Map, Value};

/// The routes another part of the engine (the webhooks, a dashboard) serves through the
/// gateway, behind its tokens, limits and error shape. Each route is added together with the
/// OpenAPI operation that documents it, so `/openapi.json` lists exactly what is served
/// ([`crate::served_routes`]), while the gateway knows nothing of the service behind them.
#[derive(Debug, Default)]
pub struct Mounted {
    pub(crate) router: Router,
    pub(crate) operations: Vec<Operation>,
    pub(crate) schemas: Map<String, Value>,
}

/// One mounted route's documentation.
#[derive(Debug)]
pub(crate) struct Operation {
    /// OpenAPI's spelling: `get`, `post`.
    pub method: String,
    pub path: String,
    pub operation: Value,
}

impl Mounted {
    /// No routes.
    pub fn new() -> Mounted {
        Mounted::default()
    }

    /// Serves `method path` (an axum path: `{name}` for a parameter) with `handler` on `state`,
    /// documented by `operation`, an OpenAPI operation object (`operationId`, `summary`,
    /// `parameters`, `requestBody`, `responses`; [`crate::error_response`] for error answers).
    /// The gateway adds the 401 and 429 answers its guard gives. A path may be given several
    /// times with different methods. Panics, as axum does, when `method path` is routed
    /// already or clashes with the gateway's own routes at serve time.
    pub fn route<H, T, S>(
        mut self,
        method: Method,
        path: &str,
        handler: H,
        state: S,
        operation: Value,
    ) -> Mounted
    where
        H: Handler<T, S>,
        T: 'static,
        S: Clone + Send + Sync + 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("axum cannot route the method {method}"));
        self.router = self
            .router
            .route(path, on(filter, handler).with_state(state));
        self.operations.push(Operation {
            method: method.as_str().to_ascii_lowercase(),
            path: path.to_owned(),
            operation,
        });
        self
    }

    /// Adds `schema` to the document's components, for operations to refer to as
    /// `{"$ref": "#/components/schemas/<name>"}`. Panics when the gateway or an earlier call
    /// already defines `name`: two schemas under one name would make one of them a lie.
    pub fn schema(mut self, name: &str, schema: Value) -> Mounted {
        let previous = self.schemas.insert(name.to_owned(), schema);
        assert!(previous.is_none(), "the schema {name} is defined twice");
        self
    }

    /// These routes and `other`'s together (each service builds its own; the engine serves
    /// them all). Panics as [`Mounted::route`] and [`Mounted::schema`] do on a clash.
    pub fn merge(mut self, other: Mounted) -> Mounted {
        self.router = self.router.merge(other.router);
        self.operations.extend(other.operations);
        for (name, schema) in other.schemas {
            self = self.schema(&name, schema);
        }
        self
    }

    /// Every (method, path) mounted, as [`crate::served_routes`] spells them.
    pub fn routes(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.operations
            .iter()
            .map(|o| (o.method.clone(), o.path.clone()))
    }
}
