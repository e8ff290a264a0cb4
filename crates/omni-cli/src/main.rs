//! `omni`: run the engine, replay and time travel over the event log, log inspection, and
//! seeding.
//!
//! Every failure ends as one clear line on stderr and a non-zero exit.

/// `println!` that hands back the write's error instead of panicking, so that `omni log tail |
/// head` ends quietly when the reader goes away (see [`main`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod log_cmd;
mod output;
mod replay;
mod simulate;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: under load the engine's worker threads spent a fifth
/// of their time in glibc's free-list upkeep (`unlink_chunk`, `malloc_consolidate`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "omni",
    version,
    about = "omni: an event-sourced omnichannel conversation engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Rebuild every projection from the log and print a summary.
    Replay(replay::ReplayArgs),
    /// Inspect or seed the event log.
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
    /// Run every service in one process (the sled log under --data; a nats-server child
    /// unless NATS_URL is set) until Ctrl-C.
    Up(up::UpArgs),
    /// Play a simulated contact center against the engine (or one started here) and report;
    /// or benchmark intake → offer latency (--bench-intake).
    Simulate(Box<simulate::SimulateArgs>),
}

/// Where the embedded log lives.
#[derive(clap::Args, Debug, Clone)]
pub struct DataDir {
    /// The data directory holding the log.
    #[arg(long, default_value = "./data")]
    data: PathBuf,
}

impl DataDir {
    /// The log directory inside the data directory.
    pub fn log_dir(&self) -> PathBuf {
        self.data.join("log")
    }

    /// Opens an existing log to read it through (replay, `log` commands), with a small page
    /// cache; a missing one is an error, never silently created.
    pub fn open_existing(&self) -> anyhow::Result<omni_store::SledLog> {
        let dir = self.log_dir();
        if !dir.is_dir() {
            anyhow::bail!(
                "no event log at {} (create one with `omni log seed --data {}`)",
                dir.display(),
                self.data.display()
            );
        }
        Ok(omni_store::SledLog::open_with_cache(
            &dir,
            omni_store::SCAN_CACHE_BYTES,
        )?)
    }

    /// Opens the log, creating it when missing.
    pub fn open_or_create(&self) -> anyhow::Result<omni_store::SledLog> {
        Ok(omni_store::SledLog::open(&self.log_dir())?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::Log(command) => log_cmd::run(command),
        Command::Up(args) => up::run(args),
        Command::Simulate(args) => simulate::run(*args),
    };
    match result {
        Ok(code) => code,
        // The reader of our output went away (`| head`): what it wanted, it has.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("omni: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
