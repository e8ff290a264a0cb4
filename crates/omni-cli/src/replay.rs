//! `omni replay`: rebuild the projections, optionally as of a past moment, and check them
//! against the stored snapshot.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use omni_core::{AgentId, ConversationId, Timestamp};
use omni_projection::{Projection, SNAPSHOT_NAME, Summary, Until, rebuild, snapshot_of, verify};
use omni_store::EventLog;
use uuid::Uuid;

use crate::DataDir;
use crate::output::{print_json, progress};

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    data: DataDir,
    /// Stop at a global position, or at an RFC 3339 time (time travel: the state as it was
    /// then). Nothing is stored when time travelling.
    #[arg(long, value_parser = parse_until)]
    until: Option<Until>,
    /// Also print this conversation as the projections hold it.
    #[arg(long)]
    conversation: Option<Uuid>,
    /// Also print this agent as the projections hold it.
    #[arg(long)]
    agent: Option<Uuid>,
    /// Compare a rebuild with the stored snapshot; exit non-zero with a diff on mismatch.
    #[arg(long)]
    verify: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_until(text: &str) -> Result<Until, String> {
    if let Ok(position) = text.parse::<u64>() {
        return Ok(Until::Position(position));
    }
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("'{text}' is neither a log position nor an RFC 3339 time ({e})"))?;
    let millis = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("'{text}' is before 1970"))?
        .as_millis();
    Ok(Until::Time(Timestamp(i64::try_from(millis).map_err(
        |_| format!("'{text}' is too far in the future"),
    )?)))
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let log = args.data.open_existing()?;
    let head = log.head()?;
    let bar = progress(head, "replay");
    let started = Instant::now();
    if args.verify {
        let verification = verify(&log, &mut |p| bar.set_position(p))?;
        bar.finish_and_clear();
        if args.json {
            print_json(&serde_json::json!({
                "position": verification.position,
                "matches": verification.differences.is_empty(),
                "differences": verification.differences,
            }))?;
        } else if verification.differences.is_empty() {
            out!(
                "verified: the rebuild up to position {} equals the stored snapshot",
                verification.position
            )?;
        } else {
            out!(
                "MISMATCH: the rebuild up to position {} differs from the stored snapshot:",
                verification.position
            )?;
            for line in &verification.differences {
                out!("  {line}")?;
            }
        }
        return Ok(if verification.differences.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let until = args.until.unwrap_or(Until::Head);
    let projection = rebuild(&log, until, &mut |p| bar.set_position(p))?;
    bar.finish_and_clear();
    let summary = Summary::of(&projection, started.elapsed());
    if until == Until::Head && projection.unknown.is_empty() {
        log.save_snapshot(
            SNAPSHOT_NAME,
            &snapshot_of(&projection.world, projection.position),
        )
        .context("storing the snapshot")?;
    }
    let conversation = args
        .conversation
        .map(|id| {
            let id = ConversationId(id);
            detail(&projection, id, projection.world.conversations.get(&id))
        })
        .transpose()?;
    let agent = args
        .agent
        .map(|id| {
            let id = AgentId(id);
            detail(&projection, id, projection.world.agents.get(&id))
        })
        .transpose()?;
    if args.json {
        print_json(&serde_json::json!({
            "summary": summary,
            "conversation": conversation,
            "agent": agent,
        }))?;
    } else {
        print_summary(&summary)?;
        for detail in conversation.iter().chain(agent.iter()) {
            out!("{}", serde_json::to_string_pretty(detail)?)?;
        }
    }
    if let Some(first) = projection.unknown.first() {
        anyhow::bail!(
            "{} event(s) from a newer schema were counted but not folded (first at position \
             {first}); upgrade omni to read them — the log is left as it is",
            projection.unknown.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One projected entity as JSON, or an error naming what is missing and up to where.
fn detail(
    projection: &Projection,
    id: impl std::fmt::Display,
    found: Option<&impl serde::Serialize>,
) -> anyhow::Result<serde_json::Value> {
    let found = found.with_context(|| {
        format!(
            "{id} is not in the log (up to position {})",
            projection.position
        )
    })?;
    Ok(serde_json::to_value(found)?)
}

fn print_summary(s: &Summary) -> std::io::Result<()> {
    out!(
        "replayed {} events up to position {} in {} ms ({} events/s)",
        s.events,
        s.position,
        s.elapsed_ms,
        s.events_per_sec
    )?;
    out!("conversations: {}", s.conversations)?;
    for (status, n) in &s.conversations_by_status {
        out!("  {status:<10} {n}")?;
    }
    out!("sessions: {}", s.sessions)?;
    for (status, n) in &s.sessions_by_status {
        out!("  {status:<10} {n}")?;
    }
    out!("agents: {} ({} signed in)", s.agents, s.agents_signed_in)?;
    for (presence, n) in &s.agents_by_presence {
        out!("  {presence:<10} {n}")?;
    }
    Ok(())
}
