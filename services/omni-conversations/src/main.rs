//! `omni-conversations`: the conversation service alone, on the sled log in `--data`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use omni_bus::Metrics;
use omni_store::{EventLog, SledLog};

#[derive(Parser, Debug)]
#[command(about = "omni's conversation service: the one writer of the log")]
struct Args {
    /// The data directory; the log is in DIR/log.
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    /// The NATS server.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// How many times faster than the wall clock the engine's clock runs.
    #[arg(long, default_value_t = 1)]
    time_scale: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let dir = args.data.join("log");
    let log = Arc::new(
        SledLog::open(&dir).with_context(|| format!("opening the log in {}", dir.display()))?,
    );
    let client = omni_bus::connect(&args.nats_url, omni_conversations::SERVICE)
        .await
        .with_context(|| format!("connecting to {}", args.nats_url))?;
    let shutdown = omni_bus::shutdown_on_ctrl_c();
    let config = omni_conversations::Config {
        time_scale: args.time_scale,
        ..Default::default()
    };
    let shared: Arc<dyn EventLog> = log;
    omni_conversations::run(
        config,
        shared,
        client,
        Arc::new(Metrics::default()),
        shutdown,
    )
    .await?;
    Ok(())
}
