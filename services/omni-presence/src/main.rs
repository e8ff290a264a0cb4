//! `omni-presence`: the presence service alone (`CCaaS_GetPresence`,
//! `CCaaS_ModifyAgentPresence`).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use omni_bus::Metrics;

#[derive(Parser, Debug)]
#[command(about = "omni's presence service: get and modify agent presence over the bus")]
struct Args {
    /// The NATS server.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let client = omni_bus::connect(&args.nats_url, omni_presence::SERVICE)
        .await
        .with_context(|| format!("connecting to {}", args.nats_url))?;
    let shutdown = omni_bus::shutdown_on_ctrl_c();
    omni_presence::run(
        omni_presence::Config::default(),
        client,
        Arc::new(Metrics::default()),
        shutdown,
    )
    .await?;
    Ok(())
}
