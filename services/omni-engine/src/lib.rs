//! The whole engine in one process, on embedded defaults: what `omni up` runs, and what the
//! simulator and the tests start in-process.
//!
//! - the log: sled under `DATA/log`;
//! - the bus: the server at `nats_url`, or a `nats-server` child with JetStream under
//!   `DATA/nats` when none is given;
//! - the services, each a task with its own `run(config, …, shutdown)`: conversations (the
//!   writer), router, projector (storing its snapshot in the log, so `omni replay --verify`
//!   checks a run), presence;
//! - `/metrics` in the Prometheus text format;
//! - the HTTP gateway (`omni-gateway`: the REST API, bearer tokens) when `http_addr` is set,
//!   serving the supervisor dashboard (`omni-dashboard`) at `/dashboard` and the presence
//!   webhooks' API (`omni-webhooks`, its database under `DATA/webhooks`, its counters in
//!   `/metrics`) too.
//!
//! The webhook service runs only with the gateway: endpoints are registered only through its
//! API, so without it the service would have no way to take a registration, and an engine
//! started without `http_addr` (a simulation, a test of the bus) keeps no second database.
//! Endpoints registered by an earlier run with the gateway are kept; their deliveries resume
//! (from the service's checkpoint, nothing lost) when the engine runs with it again.

mod nats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use omni_bus::Metrics;
use omni_store::{EventLog, SledLog};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use nats::{NatsError, NatsServer};

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The data directory: the log in `log/`, a started nats-server's store in `nats/`.
    pub data: PathBuf,
    /// The NATS server to use; `None` starts one.
    pub nats_url: Option<String>,
    /// Where to serve `/metrics`; `None` serves nothing. Port 0 picks a free one.
    pub metrics_addr: Option<SocketAddr>,
    /// How many times faster than the wall clock the engine's clock runs.
    pub time_scale: u32,
    /// Routers to run (more than one only to show that racing routers never overbook).
    pub routers: usize,
    /// Where to serve the HTTP gateway; `None` serves none. Port 0 picks a free one.
    pub http_addr: Option<SocketAddr>,
    /// The gateway's API tokens; when empty, one is generated ([`Engine::api_tokens`]).
    pub api_tokens: Vec<String>,
}

impl EngineConfig {
    pub fn new(data: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            data: data.into(),
            nats_url: None,
            metrics_addr: None,
            time_scale: 1,
            routers: 1,
            http_addr: None,
            api_tokens: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot open the log: {0}")]
    Store(#[from] omni_store::StoreError),
    #[error("cannot serve metrics on {addr}: {reason}")]
    Metrics { addr: SocketAddr, reason: String },
    #[error("cannot start the HTTP gateway: {0}")]
    Gateway(omni_gateway::GatewayError),
    #[error("cannot open the webhook service: {0}")]
    Webhooks(omni_webhooks::WebhooksError),
    #[error("cannot generate an API token: {0}")]
    Token(getrandom::Error),
    #[error("the {service} service failed: {reason}")]
    Service {
        service: &'static str,
        reason: String,
    },
}

/// A running engine. Stop it with [`Engine::shutdown`].
#[derive(Debug)]
pub struct Engine {
    /// Where its bus is.
    pub nats_url: String,
    /// Where `/metrics` is served, if it is.
    pub metrics_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    /// Where the HTTP gateway is served, if it is.
    pub http_addr: Option<SocketAddr>,
    /// The tokens the gateway accepts: the configured ones, or the one generated (empty when
    /// no gateway runs).
    pub api_tokens: Vec<String>,
    /// Every (method, path) the gateway serves, its own routes and the mounted ones, as
    /// `omni_gateway::served_routes` spells them (empty when no gateway runs).
    pub http_routes: Vec<(String, String)>,
    stop: watch::Sender<bool>,
    services: JoinSet<(&'static str, Result<(), String>)>,
    log: Arc<SledLog>,
    nats: Option<NatsServer>,
}

impl Engine {
    /// Starts everything; returns once every service is listening.
    pub async fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        // The HTTP port is taken first: a port in use fails before anything else starts.
        let gateway = match config.http_addr {
            Some(addr) => Some(bind_gateway(addr, &config.api_tokens).await?),
            None => None,
        };
        let nats = match &config.nats_url {
            Some(_) => None,
            None => Some(NatsServer::start(&config.data.join("nats")).await?),
        };
        let nats_url = config
            .nats_url
            .clone()
            .unwrap_or_else(|| nats.as_ref().map(|n| n.url.clone()).unwrap_or_default());
        let log = Arc::new(SledLog::open(&config.data.join("log"))?);
        let webhooks = match gateway {
            Some(_) => Some(
                omni_webhooks::Webhooks::open(omni_webhooks::Config::new(
                    config.data.join("webhooks"),
                ))
                .map_err(EngineError::Webhooks)?,
            ),
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let (stop, shutdown) = watch::channel(false);
        let mut services = JoinSet::new();

        let client = connect(&nats_url, omni_conversations::SERVICE).await?;
        omni_bus::keep_dead_letters(&client).await;
        let shared: Arc<dyn EventLog> = log.clone();
        let conversations = omni_conversations::Config {
            time_scale: config.time_scale,
            ..Default::default()
        };
        services.spawn(named(
            omni_conversations::SERVICE,
            omni_conversations::run(
                conversations,
                shared,
                client,
                Arc::clone(&metrics),
                shutdown.clone(),
            ),
        ));
        let client = connect(&nats_url, omni_projector::SERVICE).await?;
        let projector = omni_projector::Config {
            snapshots: Some(log.clone()),
            ..Default::default()
        };
        services.spawn(named(
            omni_projector::SERVICE,
            omni_projector::run(projector, client, Arc::clone(&metrics), shutdown.clone()),
        ));
        let client = connect(&nats_url, omni_presence::SERVICE).await?;
        services.spawn(named(
            omni_presence::SERVICE,
            omni_presence::run(
                Default::default(),
                client,
                Arc::clone(&metrics),
                shutdown.clone(),
            ),
        ));
        for _ in 0..config.routers.max(1) {
            let client = connect(&nats_url, omni_router::SERVICE).await?;
            services.spawn(named(
                omni_router::SERVICE,
                omni_router::run(
                    Default::default(),
                    client,
                    Arc::clone(&metrics),
                    shutdown.clone(),
                ),
            ));
        }
        // The writer listens once it has folded the log; until it answers, the engine is not up.
        let mut probe = omni_bus::Bus::new(connect(&nats_url, "probe").await?);
        probe.retry_for = std::time::Duration::from_secs(600);
        probe
            .read_log(1, 1)
            .await
            .map_err(|e| EngineError::Service {
                service: omni_conversations::SERVICE,
                reason: e.to_string(),
            })?;
        let metrics_addr = match config.metrics_addr {
            Some(addr) => Some(
                serve_metrics(
                    addr,
                    Arc::clone(&metrics),
                    webhooks.as_ref().map(omni_webhooks::Webhooks::metrics),
                    shutdown.clone(),
                    &mut services,
                )
                .await?,
            ),
            None => None,
        };
        let (http_addr, api_tokens, http_routes) = match (gateway, webhooks) {
            (Some((bound, tokens)), Some(webhooks)) => {
                let addr = bound.local_addr();
                let client = connect(&nats_url, omni_webhooks::SERVICE).await?;
                services.spawn(named(
                    omni_webhooks::SERVICE,
                    webhooks.clone().run(client, shutdown.clone()),
                ));
                let dashboard = omni_dashboard::Dashboard::start(
                    connect(&nats_url, "dashboard").await?,
                    shutdown.clone(),
                )
                .await
                .map_err(|e| EngineError::Service {
                    service: "dashboard",
                    reason: e.to_string(),
                })?;
                // Other HTTP parts of the engine are served behind the gateway's tokens and
                // limits, and documented in its /openapi.json.
                let mounted = webhooks.mounted().merge(dashboard.mounted());
                let routes = omni_gateway::served_routes(&mounted);
                services.spawn(named("dashboard", async move {
                    dashboard.stopped().await;
                    Ok::<(), String>(())
                }));
                let client = connect(&nats_url, "gateway").await?;
                services.spawn(named(
                    "gateway",
                    bound.serve(client, mounted, shutdown.clone()),
                ));
                (Some(addr), tokens, routes)
            }
            _ => (None, Vec::new(), Vec::new()),
        };
        Ok(Engine {
            nats_url,
            metrics_addr,
            metrics,
            http_addr,
            api_tokens,
            http_routes,
            stop,
            services,
            log,
            nats,
        })
    }

    /// Waits until a service stops by itself (which is a failure: they run until shutdown).
    pub async fn failed(&mut self) -> EngineError {
        match self.services.join_next().await {
            Some(Ok((service, Err(reason)))) => EngineError::Service { service, reason },
            Some(Ok((service, Ok(())))) => EngineError::Service {
                service,
                reason: "stopped unexpectedly".to_owned(),
            },
            Some(Err(e)) => EngineError::Service {
                service: "a",
                reason: e.to_string(),
            },
            None => std::future::pending().await,
        }
    }

    /// Stops every service (in-flight commands are answered), closes the log, stops the NATS
    /// server it started.
    pub async fn shutdown(mut self) -> Result<(), EngineError> {
        let _ = self.stop.send(true);
        let mut first_error = None;
        while let Some(joined) = self.services.join_next().await {
            let failure = match joined {
                Ok((_, Ok(()))) => continue,
                Ok((service, Err(reason))) => EngineError::Service { service, reason },
                Err(e) => EngineError::Service {
                    service: "a",
                    reason: e.to_string(),
                },
            };
            first_error.get_or_insert(failure);
        }
        match Arc::try_unwrap(self.log) {
            Ok(log) => log.close()?,
            Err(_) => tracing::warn!("the log is still shared; it is flushed but not closed"),
        }
        if let Some(nats) = self.nats.take() {
            nats.stop().await;
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Takes the gateway's port; with no tokens configured, one is generated.
async fn bind_gateway(
    addr: SocketAddr,
    tokens: &[String],
) -> Result<(omni_gateway::Bound, Vec<String>), EngineError> {
    let tokens = if tokens.is_empty() {
        vec![omni_gateway::generate_token().map_err(EngineError::Token)?]
    } else {
        tokens.to_vec()
    };
    let bound = omni_gateway::bind(omni_gateway::Config::new(addr, tokens.clone()))
        .await
        .map_err(EngineError::Gateway)?;
    Ok((bound, tokens))
}

async fn named<E: std::fmt::Display>(
    service: &'static str,
    run: impl Future<Output = Result<(), E>>,
) -> (&'static str, Result<(), String>) {
    let result = run.await.map_err(|e| e.to_string());
    if let Err(reason) = &result {
        tracing::error!(service, %reason, "service stopped");
    }
    (service, result)
}

/// A client that keeps reconnecting for as long as the engine runs.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, EngineError> {
    omni_bus::connect(url, name)
        .await
        .map_err(|e| EngineError::Connect {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

/// Serves `/metrics`: the bus services' counters, and the webhook service's when it runs.
async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    webhooks: Option<Arc<omni_webhooks::WebhookMetrics>>,
    mut shutdown: watch::Receiver<bool>,
    services: &mut JoinSet<(&'static str, Result<(), String>)>,
) -> Result<SocketAddr, EngineError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| EngineError::Metrics {
            addr,
            reason: e.to_string(),
        })?;
    let bound = listener.local_addr().map_err(|e| EngineError::Metrics {
        addr,
        reason: e.to_string(),
    })?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let mut text = metrics.render();
            if let Some(webhooks) = &webhooks {
                text.push_str(&webhooks.render());
            }
            async move { ([("content-type", "text/plain; version=0.0.4")], text) }
        }),
    );
    services.spawn(named("metrics", async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.changed().await;
            })
            .await
    }));
    Ok(bound)
}
