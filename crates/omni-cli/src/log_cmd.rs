//! `omni log`: print events as JSON, count them, or seed a realistic log.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;
use omni_projection::seed;
use omni_sim::SimConfig;
use omni_store::{EventLog, RecordedEvent};
use serde_json::{Value, json};

use crate::DataDir;
use crate::output::{print_json, progress};

#[derive(clap::Subcommand, Debug)]
pub enum LogCommand {
    /// Print the last events (and keep following with --follow).
    Tail {
        #[command(flatten)]
        data: DataDir,
        /// How many events to print.
        #[arg(short = 'n', long, default_value_t = 20)]
        count: u64,
        /// Keep printing events as they are appended.
        #[arg(long)]
        follow: bool,
    },
    /// Print the events at these global positions.
    Show {
        #[command(flatten)]
        data: DataDir,
        #[arg(required = true)]
        positions: Vec<u64>,
    },
    /// Count the log's events by kind and stream.
    Stats {
        #[command(flatten)]
        data: DataDir,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a generated, realistic contact-center log through the normal append path.
    Seed {
        #[command(flatten)]
        data: DataDir,
        /// Customer conversations to generate, each a full lifecycle.
        #[arg(long)]
        conversations: usize,
        /// Agents working the center.
        #[arg(long, default_value_t = 100)]
        agents: usize,
        /// Same seed, same events.
        #[arg(long, default_value_t = 0x5EED)]
        seed: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: LogCommand) -> anyhow::Result<ExitCode> {
    match command {
        LogCommand::Tail {
            data,
            count,
            follow,
        } => tail(&data, count, follow),
        LogCommand::Show { data, positions } => {
            let log = data.open_existing()?;
            let head = log.head()?;
            for position in positions {
                if position == 0 || position > head {
                    anyhow::bail!("position {position} is not in the log (it holds 1 to {head})");
                }
                let event = log
                    .read_all(position, 1)?
                    .into_iter()
                    .next()
                    .with_context(|| format!("position {position} could not be read"))?;
                print_json(&event_json(&event)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        LogCommand::Stats { data, json } => stats(&data, json),
        LogCommand::Seed {
            data,
            conversations,
            agents,
            seed: seed_value,
            json,
        } => {
            let log = data.open_or_create()?;
            let started = Instant::now();
            let bar = progress(0, "seed");
            let config = SimConfig {
                agents,
                conversations,
                seed: seed_value,
                ..SimConfig::default()
            };
            let report = seed(&log, config, &mut |events| bar.set_position(events))?;
            bar.finish_and_clear();
            log.close()?;
            if json {
                print_json(&report)?;
            } else {
                out!(
                    "seeded {} conversations: {} events, log head at {} ({:.1} s); \
                     try `omni replay --data {} --verify`",
                    report.conversations,
                    report.events,
                    report.head,
                    started.elapsed().as_secs_f64(),
                    data.data.display()
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One event as JSON: where it is in the log, its envelope, and the event itself.
fn event_json(event: &RecordedEvent) -> anyhow::Result<Value> {
    let envelope = omni_proto::decode(&event.payload)
        .with_context(|| format!("event at position {} cannot be read", event.position))?;
    let millis = u64::try_from(envelope.event.at.0).unwrap_or(0);
    Ok(json!({
        "position": event.position,
        "stream": event.stream,
        "stream_version": event.stream_version,
        "event_id": envelope.event_id,
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
        "actor": envelope.actor,
        "occurred_at": humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(millis)).to_string(),
        "kind": envelope.event.kind.name(),
        "event": envelope.event.kind,
    }))
}

fn tail(data: &DataDir, count: u64, follow: bool) -> anyhow::Result<ExitCode> {
    let log = data.open_existing()?;
    let from = log.head()?.saturating_sub(count) + 1;
    let mut subscription = log.subscribe(from)?;
    loop {
        match subscription.next_timeout(Duration::from_millis(250))? {
            Some(event) => out!("{}", serde_json::to_string(&event_json(&event)?)?)?,
            None if follow => continue,
            None => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn stats(data: &DataDir, json: bool) -> anyhow::Result<ExitCode> {
    let log = data.open_existing()?;
    let mut by_kind = BTreeMap::<&'static str, u64>::new();
    let mut streams = BTreeMap::<String, u64>::new();
    let mut bytes = 0u64;
    let mut unknown = 0u64;
    let mut failure = None;
    let events = log.for_each_from(1, &mut |event| {
        bytes += event.payload.len() as u64;
        *streams.entry(stream_kind(event.stream)).or_default() += 1;
        match omni_proto::decode(event.payload) {
            Ok(envelope) => *by_kind.entry(envelope.event.kind.name()).or_default() += 1,
            Err(omni_proto::DecodeError::UnknownEvent { .. }) => unknown += 1,
            Err(error) => {
                failure = Some(anyhow::anyhow!(
                    "event at position {} cannot be read: {error}",
                    event.position
                ));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    let report = json!({
        "events": events,
        "head": log.head()?,
        "payload_bytes": bytes,
        "unknown_events": unknown,
        "events_by_kind": by_kind,
        "events_by_stream_kind": streams,
    });
    if json {
        print_json(&report)?;
    } else {
        out!(
            "{events} events, head {}, {bytes} payload bytes, {unknown} from a newer schema",
            log.head()?
        )?;
        for (kind, n) in &by_kind {
            out!("  {kind:<30} {n}")?;
        }
        for (kind, n) in &streams {
            out!("  stream {kind:<23} {n}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// "conversation-<uuid>" → "conversation": stats per kind of stream, not per stream.
fn stream_kind(stream: &str) -> String {
    stream.split('-').next().unwrap_or(stream).to_owned()
}
