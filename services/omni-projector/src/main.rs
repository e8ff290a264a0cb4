//! `omni-projector`: the projector alone, answering queries from the events on the bus.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use omni_bus::Metrics;
use omni_store::{EventLog, SledLog};

#[derive(Parser, Debug)]
#[command(about = "omni's projector: folds the committed events and answers every query")]
struct Args {
    /// Where snapshots are kept (a store of their own; the log itself is read over the bus).
    /// Without it the projector folds the whole log at every start.
    #[arg(long)]
    snapshots: Option<PathBuf>,
    /// The NATS server.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Seconds between snapshots (when anything was folded).
    #[arg(long, default_value_t = 60)]
    snapshot_secs: u64,
    /// Events between snapshots.
    #[arg(long, default_value_t = 100_000)]
    snapshot_events: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let snapshots = match &args.snapshots {
        Some(dir) => {
            let log = SledLog::open(dir)
                .with_context(|| format!("opening the snapshot store in {}", dir.display()))?;
            Some(Arc::new(log) as Arc<dyn EventLog>)
        }
        None => None,
    };
    let client = omni_bus::connect(&args.nats_url, omni_projector::SERVICE)
        .await
        .with_context(|| format!("connecting to {}", args.nats_url))?;
    let shutdown = omni_bus::shutdown_on_ctrl_c();
    let config = omni_projector::Config {
        snapshots,
        snapshot_interval: Duration::from_secs(args.snapshot_secs),
        snapshot_events: args.snapshot_events,
        ..Default::default()
    };
    omni_projector::run(config, client, Arc::new(Metrics::default()), shutdown).await?;
    Ok(())
}
