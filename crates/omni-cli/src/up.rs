//! `omni up`: every service in one process on embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use omni_engine::{Engine, EngineConfig};

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// The data directory: the log in DIR/log, a started nats-server's store in DIR/nats.
    #[arg(long, default_value = "./data")]
    pub data: PathBuf,
    /// A running NATS server to use; without it a nats-server child is started.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// Where to serve /metrics (Prometheus text format).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    /// How many times faster than the wall clock the engine's clock runs (demos: offers time
    /// out after 120 engine seconds).
    #[arg(long, default_value_t = 1)]
    pub time_scale: u32,
    /// Where to serve the HTTP gateway (the REST API, /openapi.json).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The API token HTTP clients present (`Authorization: Bearer <token>`); repeat or
    /// separate by commas for several. Without one, a token is generated and printed.
    #[arg(
        long = "token",
        env = "OMNI_API_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub tokens: Vec<String>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
}

impl UpArgs {
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            nats_url: self.nats_url.clone(),
            metrics_addr: Some(self.metrics_addr),
            time_scale: self.time_scale,
            http_addr: Some(self.http),
            api_tokens: chosen_tokens(&self.tokens),
            ..EngineConfig::new(&self.data)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    init_tracing(args.log_json);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut engine = Engine::start(args.engine_config()).await?;
        if chosen_tokens(&args.tokens).is_empty() {
            print_generated_token(&engine);
        }
        tracing::info!(
            nats = %engine.nats_url,
            metrics = ?engine.metrics_addr.map(|a| format!("http://{a}/metrics")),
            http = ?engine.http_addr.map(|a| format!("http://{a}")),
            data = %args.data.display(),
            "omni is up; Ctrl-C stops it"
        );
        let failure = tokio::select! {
            _ = tokio::signal::ctrl_c() => None,
            failure = engine.failed() => Some(failure),
        };
        tracing::info!("stopping");
        engine.shutdown().await?;
        match failure {
            Some(failure) => Err(failure.into()),
            None => Ok(ExitCode::SUCCESS),
        }
    })
}

/// The tokens the user chose; an empty `OMNI_API_TOKEN` (as docker-compose passes when none
/// is exported) chooses none, so one is generated.
pub fn chosen_tokens(tokens: &[String]) -> Vec<String> {
    tokens.iter().filter(|t| !t.is_empty()).cloned().collect()
}

/// Shows the token the engine generated, once: nobody can call the API without it.
fn print_generated_token(engine: &Engine) {
    if let Some(token) = engine.api_tokens.first() {
        eprintln!(
            "API token (generated for this run; set OMNI_API_TOKEN or --token to choose one): {token}"
        );
    }
}
