//! `omni-gateway`: the HTTP gateway alone, in front of a running engine's NATS server.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "omni's HTTP gateway: the engine's REST API over the bus")]
struct Args {
    /// The NATS server.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// An API token callers must present (repeat for several); one is generated and printed
    /// when none is given.
    #[arg(long = "token", env = "OMNI_API_TOKEN", value_delimiter = ',')]
    tokens: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = Args::parse();
    if args.tokens.is_empty() {
        let token = omni_gateway::generate_token().context("generating an API token")?;
        println!("API token (generated; pass --token or OMNI_API_TOKEN to choose one): {token}");
        args.tokens.push(token);
    }
    let client = omni_bus::connect(&args.nats_url, "gateway")
        .await
        .with_context(|| format!("connecting to {}", args.nats_url))?;
    let bound = omni_gateway::bind(omni_gateway::Config::new(args.http, args.tokens)).await?;
    println!("omni gateway on http://{}", bound.local_addr());
    bound
        .serve(
            client,
            omni_gateway::Mounted::new(),
            omni_bus::shutdown_on_ctrl_c(),
        )
        .await?;
    Ok(())
}
