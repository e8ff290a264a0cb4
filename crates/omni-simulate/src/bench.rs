//! The intake benchmark: how long a new conversation takes from the customer's request to the
//! offer on an agent's desktop, at a fixed rate of new conversations, and the highest rate
//! the engine sustains.
//!
//! [`provision`] sets up one chat queue whose agents have capacity for every conversation
//! (offers reserve capacity until answered; nobody answers here). [`intake`] then sends
//! `StartConversation` at a fixed rate, open loop (each request in its own task, so many are
//! in flight), and listens on `omni.desktop.*.incoming_session_request`. The path measured:
//! request → conversation service (decide, which offers a new conversation at once when an
//! agent has room; append; fsync; answer and publish) → the desktop subject. The router is not
//! on it: it serves conversations that wait in the backlog.
//!
//! The probes say what the hops cost alone: a NATS request-reply round trip on the same
//! server, and an `fdatasync` on the data directory's disk.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use omni_bus::Bus;
use omni_core::{
    Actor, AgentId, AgentProfile, AssignmentMethod, Channel, Command, ConversationId, EventKind,
    PresenceId, QueueConfig, QueueId, Workstream, WorkstreamId,
};
use omni_proto::{CommandEnvelope, Outcome};
use serde::Serialize;
use uuid::Uuid;

use crate::SimulateError;
use crate::report::{Latency, quantile};

/// The benchmark's queue and workstream.
pub const QUEUE: QueueId = QueueId::from_u128(0xBE4C_0000_0001);
const WORKSTREAM: WorkstreamId = WorkstreamId::from_u128(0xBE4C_0000_0002);
/// Capacity units per agent: offers reserve one each and nobody answers.
const CAPACITY: u32 = 1_000_000;

/// Sets up one push chat queue and `agents` signed-in agents with room for any run.
pub async fn provision(bus: &Bus, agents: usize) -> Result<Vec<AgentId>, SimulateError> {
    let mut ws = Workstream::with_defaults(WORKSTREAM, "Bench chat", Channel::LiveChat);
    // Offers stay open for the whole benchmark rather than timing out midway.
    ws.offer_timeout_secs = 3600;
    let mut commands = vec![
        Command::ConfigureWorkstream(ws),
        Command::ConfigureQueue(QueueConfig {
            id: QUEUE,
            name: "Bench chat".to_owned(),
            workstream: WORKSTREAM,
            method: AssignmentMethod::HighestCapacity,
        }),
    ];
    let ids: Vec<AgentId> = (0..agents)
        .map(|i| AgentId::from_u128(0xBE4C_A000_0000 + i as u128))
        .collect();
    for (i, &id) in ids.iter().enumerate() {
        commands.push(Command::ProvisionAgent(AgentProfile {
            id,
            name: format!("Bench agent {i}"),
            capacity_units: CAPACITY,
            skills: BTreeSet::new(),
            max_sessions: CAPACITY,
            default_presence: PresenceId::AVAILABLE,
        }));
        commands.push(Command::AddAgentToQueue {
            queue: QUEUE,
            agent: id,
        });
        commands.push(Command::SignIn { agent: id });
    }
    for command in commands {
        let name = omni_proto::command_name(&command);
        match send(bus, command).await {
            Ok(Outcome::Accepted { .. }) => {}
            Ok(Outcome::Rejected { reason, .. }) => {
                return Err(SimulateError::Setup {
                    command: name,
                    reason,
                });
            }
            Err(source) => {
                return Err(SimulateError::Unanswered {
                    command: name,
                    source,
                });
            }
        }
    }
    Ok(ids)
}

async fn send(bus: &Bus, command: Command) -> Result<Outcome, omni_bus::BusError> {
    bus.command(&CommandEnvelope::from_system(command)).await
}

/// One fixed-rate run.
#[derive(Clone, Debug)]
pub struct IntakeConfig {
    /// New conversations per second.
    pub rate: f64,
    pub duration: Duration,
    /// How long after the last request offers may still arrive.
    pub grace: Duration,
}

/// What one fixed-rate run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IntakeResult {
    pub target_rate: f64,
    pub duration_secs: f64,
    /// Requests sent, and the rate the client managed.
    pub sent: u64,
    pub send_rate: f64,
    pub accepted: u64,
    pub refused: u64,
    pub unanswered: u64,
    /// Conversations offered before the grace ran out.
    pub offered: u64,
    /// Offers per second over the run (first request to last offer).
    pub offer_rate: f64,
    pub intake_to_offer_ms: Latency,
    pub intake_to_offer_p90_ms: Option<f64>,
    pub intake_to_offer_p999_ms: Option<f64>,
    /// From the request to its answer: one pass of the conversation service.
    pub start_answer_ms: Latency,
    /// Each quarter of the run alone (by send time): a backlog, or a cost that grows with
    /// the conversations in the engine's world, shows as later quarters getting slower.
    pub p50_by_quarter_ms: Vec<Option<f64>>,
    pub p99_by_quarter_ms: Vec<Option<f64>>,
    /// Offers kept up: the client sent at ≥ 98 % of the target and every conversation was
    /// offered within the grace.
    pub keeps_up: bool,
    /// Kept up with p99 ≤ [`SUSTAINED_P99_MS`]: bounded, where a backlog that grows reaches
    /// seconds within a step.
    pub sustained: bool,
}

/// The p99 above which a rate does not count as sustained.
pub const SUSTAINED_P99_MS: f64 = 250.0;

const NOT_YET: u64 = u64::MAX;

/// Sends `StartConversation` into [`QUEUE`] at `config.rate` for `config.duration` and
/// measures each conversation's time to its offer.
pub async fn intake(bus: &Bus, config: &IntakeConfig) -> Result<IntakeResult, SimulateError> {
    let total = (config.rate * config.duration.as_secs_f64())
        .round()
        .max(1.0) as usize;
    let tag = u128::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    ) << 64;
    let sent_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..total).map(|_| AtomicU64::new(NOT_YET)).collect());
    let answered_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..total).map(|_| AtomicU64::new(NOT_YET)).collect());
    let outcomes = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);

    let mut offers = bus
        .client()
        .subscribe(omni_bus::subjects::DESKTOP_ALL)
        .await
        .map_err(|e| SimulateError::Subscribe(e.to_string()))?;
    let _ = bus.client().flush().await;

    let t0 = Instant::now();
    let receiver = {
        let grace = config.grace;
        let duration = config.duration;
        tokio::spawn(async move {
            let mut offered_at = vec![NOT_YET; total];
            let mut offered = 0;
            let deadline = t0 + duration + grace;
            while offered < total {
                let Ok(Some(message)) =
                    tokio::time::timeout_at(deadline.into(), offers.next()).await
                else {
                    break;
                };
                let now = t0.elapsed().as_nanos() as u64;
                if !message
                    .subject
                    .ends_with(omni_bus::notify::INCOMING_SESSION_REQUEST)
                {
                    continue;
                }
                let Ok(envelope) = omni_proto::decode(&message.payload) else {
                    continue;
                };
                if let EventKind::IncomingSessionRequest { session, .. } = envelope.event.kind {
                    let id = session.conversation.0.as_u128();
                    if id >> 64 == tag >> 64 {
                        let index = (id & u128::from(u64::MAX)) as usize;
                        if index < total && offered_at[index] == NOT_YET {
                            offered_at[index] = now;
                            offered += 1;
                        }
                    }
                }
            }
            offered_at
        })
    };

    // Open loop: every millisecond, send whatever the rate says is due by now.
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0;
    let mut requests = tokio::task::JoinSet::new();
    while sent < total {
        tick.tick().await;
        let due = ((config.rate * t0.elapsed().as_secs_f64()) as usize).min(total);
        while sent < due {
            let index = sent;
            sent += 1;
            let bus = bus.clone();
            let sent_at = Arc::clone(&sent_at);
            let answered_at = Arc::clone(&answered_at);
            let outcomes = Arc::clone(&outcomes);
            requests.spawn(async move {
                let command = Command::StartConversation {
                    conversation: ConversationId(Uuid::from_u128(tag | index as u128)),
                    queue: QUEUE,
                    skills: Vec::new(),
                    customer: format!("bench {index}"),
                };
                let envelope = CommandEnvelope {
                    command_id: Uuid::now_v7(),
                    actor: Actor::Customer,
                    correlation_id: None,
                    command,
                };
                sent_at[index].store(t0.elapsed().as_nanos() as u64, Relaxed);
                let outcome = bus.command(&envelope).await;
                answered_at[index].store(t0.elapsed().as_nanos() as u64, Relaxed);
                let slot = match outcome {
                    Ok(Outcome::Accepted { .. }) => 0,
                    Ok(Outcome::Rejected { .. }) => 1,
                    Err(_) => 2,
                };
                outcomes[slot].fetch_add(1, Relaxed);
            });
        }
        // Reap finished requests so the set stays small.
        while requests.try_join_next().is_some() {}
    }
    let send_secs = t0.elapsed().as_secs_f64();
    while requests.join_next().await.is_some() {}
    let offered_at = receiver.await.unwrap_or_default();

    let mut latencies = Vec::with_capacity(total);
    let mut quarters = vec![Vec::new(); 4];
    let mut answers = Vec::with_capacity(total);
    let mut last_offer = 0;
    for index in 0..total {
        let sent = sent_at[index].load(Relaxed);
        if sent == NOT_YET {
            continue;
        }
        let answered = answered_at[index].load(Relaxed);
        if answered != NOT_YET {
            answers.push((answered - sent) as f64 / 1e6);
        }
        let offered = offered_at.get(index).copied().unwrap_or(NOT_YET);
        if offered != NOT_YET {
            let ms = offered.saturating_sub(sent) as f64 / 1e6;
            latencies.push(ms);
            quarters[(index * 4 / total).min(3)].push(ms);
            last_offer = last_offer.max(offered);
        }
    }
    let offered = latencies.len() as u64;
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    for quarter in &mut quarters {
        quarter.sort_by(f64::total_cmp);
    }
    let intake_to_offer_ms = Latency::of(latencies);
    let send_rate = sent as f64 / send_secs;
    let keeps_up = send_rate >= 0.98 * config.rate && offered == total as u64;
    let sustained = keeps_up
        && intake_to_offer_ms
            .p99
            .is_some_and(|p99| p99 <= SUSTAINED_P99_MS);
    Ok(IntakeResult {
        target_rate: config.rate,
        duration_secs: config.duration.as_secs_f64(),
        sent: sent as u64,
        send_rate,
        accepted: outcomes[0].load(Relaxed),
        refused: outcomes[1].load(Relaxed),
        unanswered: outcomes[2].load(Relaxed),
        offered,
        offer_rate: if last_offer > 0 {
            offered as f64 / (last_offer as f64 / 1e9)
        } else {
            0.0
        },
        intake_to_offer_p90_ms: quantile(&sorted, 0.90),
        intake_to_offer_p999_ms: quantile(&sorted, 0.999),
        intake_to_offer_ms,
        start_answer_ms: Latency::of(answers),
        p50_by_quarter_ms: quarters.iter().map(|q| quantile(q, 0.50)).collect(),
        p99_by_quarter_ms: quarters.iter().map(|q| quantile(q, 0.99)).collect(),
        keeps_up,
        sustained,
    })
}

/// Round trips of a tiny request-reply on the bus's server, one at a time: the floor under
/// every hop of the intake path.
pub async fn probe_round_trip(bus: &Bus, count: usize) -> Result<Latency, SimulateError> {
    let client = bus.client().clone();
    let subject = format!("omni.bench.echo.{}", Uuid::now_v7().simple());
    let mut echo = client
        .subscribe(subject.clone())
        .await
        .map_err(|e| SimulateError::Subscribe(e.to_string()))?;
    let responder = {
        let client = client.clone();
        tokio::spawn(async move {
            while let Some(message) = echo.next().await {
                if let Some(reply) = message.reply {
                    let _ = client.publish(reply, message.payload).await;
                }
            }
        })
    };
    let _ = client.flush().await;
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        if client
            .request(subject.clone(), Bytes::from_static(&[0u8; 64]))
            .await
            .is_ok()
        {
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    responder.abort();
    Ok(Latency::of(samples))
}

/// `fdatasync` after writing a small record, `count` times, in `dir`: what each group commit
/// of the log pays at least. `grow`: each record extends the file (the file system must
/// journal the new size too); otherwise records overwrite space written and synced before,
/// as a log with preallocated segments does.
pub fn probe_fsync(dir: &Path, count: usize, grow: bool) -> std::io::Result<Latency> {
    use std::io::{Seek, SeekFrom};
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("fsync-probe-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let record = [0x5Au8; 256];
    if !grow {
        file.write_all(&vec![0u8; record.len() * count])?;
        file.sync_all()?;
        file.seek(SeekFrom::Start(0))?;
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(Latency::of(samples))
}

/// A latency histogram of the engine's `/metrics`, summarised.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Histogram {
    pub count: u64,
    pub mean_ms: f64,
    /// Upper bounds of the buckets holding the 50th and 99th percentiles.
    pub p50_at_most_ms: Option<f64>,
    pub p99_at_most_ms: Option<f64>,
}

/// Reads histogram `name` from the Prometheus text `metrics`.
pub fn histogram(metrics: &str, name: &str) -> Option<Histogram> {
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    let mut count = None;
    let mut sum = None;
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{name}_bucket{{le=\"")) {
            let (bound, value) = rest.split_once("\"} ")?;
            if bound != "+Inf" {
                buckets.push((bound.parse().ok()?, value.trim().parse().ok()?));
            }
        } else if let Some(value) = line.strip_prefix(&format!("{name}_count ")) {
            count = value.trim().parse::<u64>().ok();
        } else if let Some(value) = line.strip_prefix(&format!("{name}_sum ")) {
            sum = value.trim().parse::<f64>().ok();
        }
    }
    let count = count?;
    let at = |q: f64| {
        let rank = (q * count as f64).ceil() as u64;
        buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank.max(1))
            .map(|(bound, _)| bound * 1000.0)
    };
    Some(Histogram {
        count,
        mean_ms: if count > 0 {
            sum? * 1000.0 / count as f64
        } else {
            0.0
        },
        p50_at_most_ms: at(0.50),
        p99_at_most_ms: at(0.99),
    })
}

/// A counter of the engine's `/metrics`.
pub fn counter(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_and_counters_are_read_from_the_metrics_text() {
        let text = "omni_x_total 42\n\
            omni_l_seconds_bucket{le=\"0.001\"} 50\n\
            omni_l_seconds_bucket{le=\"0.002\"} 99\n\
            omni_l_seconds_bucket{le=\"0.005\"} 100\n\
            omni_l_seconds_bucket{le=\"+Inf\"} 100\n\
            omni_l_seconds_sum 0.15\n\
            omni_l_seconds_count 100\n";
        assert_eq!(counter(text, "omni_x_total"), Some(42));
        let h = histogram(text, "omni_l_seconds").expect("present");
        assert_eq!(h.count, 100);
        assert!((h.mean_ms - 1.5).abs() < 1e-9);
        assert_eq!(h.p50_at_most_ms, Some(1.0));
        assert_eq!(h.p99_at_most_ms, Some(2.0));
    }
}
