//! A simulated contact center played against a running engine over the bus, and the intake
//! latency benchmark.
//!
//! [`run`] provisions `omni-sim`'s center (workstreams on six channels, queues with every
//! assignment method, agents with skills and capacities) through the intake like an
//! administrator would, then plays it: one actor per agent listening on its desktop subject,
//! one per customer, arriving as a Poisson process. Customers ask for an agent, wait with
//! their channel's patience, write, drop and come back, and leave; agents answer offers after
//! a think time, reject some and let some time out, consult, transfer to colleagues and
//! queues, hold calls, end, wrap up, take breaks, drop and reconnect. Refused commands are
//! normal in such a race and are counted. After `duration` no customer arrives; agents finish
//! what they have (a bounded drain) and the report is built from the log the monitor followed.
//!
//! With a seed, the center and the arrivals ([`plan`]) are the same every time, and every
//! actor draws its decisions from its own seeded generator with `omni-sim`'s odds
//! ([`omni_sim::behaviour`]); timing is real, so what the engine answers may differ.
//!
//! [`bench`] measures intake → offer latency at a fixed rate and the highest sustained rate.

mod agent;
pub mod bench;
mod customer;
mod monitor;
pub mod plan;
mod report;
mod shared;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use omni_bus::{Bus, BusError};
use omni_core::{AgentId, Command, ConversationId, World};
use omni_proto::{CommandEnvelope, Outcome};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

pub use agent::AgentStats;
pub use report::{
    AgentReport, Commands, Conversations, Latency, Offers, QueueReport, Report, quantile,
};
pub use shared::Scale;

use crate::agent::AgentActor;
use crate::monitor::Samples;
use crate::shared::{AgentPrompt, Counters, CustomerMsg, Shared, Tracked};

/// The shape of a simulated run.
#[derive(Clone, Debug)]
pub struct SimulateConfig {
    /// Agents provisioned and signed in.
    pub agents: usize,
    /// Customers arriving per second of wall time, on average (Poisson).
    pub rate: f64,
    /// How long customers keep arriving (wall time).
    pub duration: Duration,
    /// The same seed provisions the same center and the same arrivals.
    pub seed: u64,
    /// The engine's clock runs this many times faster than the wall; the simulated people
    /// keep pace with it. Must match the engine's.
    pub time_scale: u32,
    /// How long agents may take to finish once customers stop arriving (wall time).
    pub drain: Duration,
    /// Queues per channel (there are six channels).
    pub queues_per_channel: usize,
}

impl Default for SimulateConfig {
    fn default() -> SimulateConfig {
        SimulateConfig {
            agents: 50,
            rate: 5.0,
            duration: Duration::from_secs(30),
            seed: 0x5EED,
            time_scale: 1,
            drain: Duration::from_secs(60),
            queues_per_channel: 2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("the engine did not answer {command}: {source}")]
    Unanswered {
        command: &'static str,
        source: BusError,
    },
    #[error("the engine refused {command} while setting up the center: {reason}")]
    Setup {
        command: &'static str,
        reason: String,
    },
    #[error("cannot follow the engine's events: {0}")]
    Follow(String),
    #[error("cannot subscribe to a desktop: {0}")]
    Subscribe(String),
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { what: &'static str, secs: u64 },
}

/// Where a run is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Provisioning,
    Running,
    Draining,
    Reporting,
}

/// A progress line's worth of a running simulation.
#[derive(Clone, Debug)]
pub struct Progress {
    pub phase: Phase,
    /// Time in this phase, and its bound (the run's duration, the drain; zero for none).
    pub elapsed: Duration,
    pub limit: Duration,
    pub started: u64,
    pub handled: u64,
    pub abandoned: u64,
    pub open: u64,
    pub offers: u64,
    pub commands: u64,
    pub rejected: u64,
}

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Setup commands in flight at once.
const SETUP_CONCURRENCY: usize = 16;
/// How long to wait for the monitor to see the center, and for the final catch-up.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(120);

/// Runs a simulated contact center against the engine behind `bus` and reports.
pub async fn run(
    bus: Bus,
    config: SimulateConfig,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Report, SimulateError> {
    let begun = Instant::now();
    let center = plan::center(config.seed, config.agents, config.queues_per_channel);
    let report_progress =
        |phase, since: Instant, shared: Option<&Shared>, progress: &mut dyn FnMut(&Progress)| {
            let limit = match phase {
                Phase::Running => config.duration,
                Phase::Draining => config.drain,
                Phase::Provisioning | Phase::Reporting => Duration::ZERO,
            };
            progress(&snapshot(phase, since, limit, shared));
        };
    report_progress(Phase::Provisioning, begun, None, progress);

    // The center, as an administrator sets it up.
    let mut setup_refused = 0;
    for command in &center.configuration {
        if !setup(&bus, command.clone()).await? {
            setup_refused += 1;
        }
    }
    let refusals: Vec<u64> = futures_util::stream::iter(center.agents.iter())
        .map(|agent| {
            let bus = bus.clone();
            async move {
                let mut refused = 0;
                for command in agent.commands() {
                    if !setup(&bus, command).await? {
                        refused += 1;
                    }
                }
                Ok::<u64, SimulateError>(refused)
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    setup_refused += refusals.iter().sum::<u64>();

    // The shared view, the monitor following the log, the agents' inboxes.
    let mut inboxes = Vec::with_capacity(center.agents.len());
    let mut agent_senders = HashMap::new();
    for agent in &center.agents {
        let (tx, rx) = mpsc::unbounded_channel();
        agent_senders.insert(agent.id(), tx);
        inboxes.push(rx);
    }
    let shared = Arc::new(Shared {
        bus: bus.clone(),
        scale: Scale(config.time_scale.max(1)),
        queues: center.queues.clone(),
        world: RwLock::new(World::default()),
        conversations: Mutex::new(HashMap::new()),
        agents: agent_senders,
        counters: Counters::default(),
        rejections: Mutex::new(Default::default()),
        sampling: Default::default(),
    });
    let (stop_monitor, monitor_stop) = watch::channel(false);
    let events = omni_bus::follow(bus.clone(), 1, monitor_stop.clone())
        .await
        .map_err(|e| SimulateError::Follow(e.to_string()))?;
    let agent_ids: Vec<AgentId> = center.agents.iter().map(|a| a.id()).collect();
    let monitor = tokio::spawn(monitor::run(
        Arc::clone(&shared),
        events,
        agent_ids.clone(),
        monitor_stop,
    ));
    wait_until(
        || {
            let world = shared.world();
            agent_ids.iter().all(|a| world.agents.contains_key(a))
        },
        "the monitor to see the provisioned agents",
    )
    .await?;

    // The agents sign in on their desktops.
    let mut agents = tokio::task::JoinSet::new();
    for (index, (agent, inbox)) in center.agents.iter().zip(inboxes).enumerate() {
        let desk = bus
            .client()
            .subscribe(omni_bus::subjects::desktop_of(agent.id()))
            .await
            .map_err(|e| SimulateError::Subscribe(e.to_string()))?;
        let actor = AgentActor::new(
            agent.clone(),
            plan::agent_rng(config.seed, index),
            Arc::clone(&shared),
        );
        agents.spawn(async move { (index, actor.run(desk, inbox).await) });
    }
    let _ = bus.client().flush().await;
    wait_until(
        || {
            let world = shared.world();
            agent_ids
                .iter()
                .all(|a| world.agents.get(a).is_some_and(|a| a.signed_in))
        },
        "the agents to sign in",
    )
    .await?;

    // Customers arrive.
    shared.sampling.store(true, Relaxed);
    let started = Instant::now();
    let mut arrivals = plan::arrivals(config.seed, config.rate, &center.queues).peekable();
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    let mut customers = tokio::task::JoinSet::new();
    while let Some(next) = arrivals.peek().map(|a| a.at) {
        if next >= config.duration {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until((started + next).into()) => {
                let Some(arrival) = arrivals.next() else { break };
                let id = ConversationId(Uuid::now_v7());
                let (tx, rx) = mpsc::unbounded_channel();
                shared.conversations().insert(id, Tracked {
                    queue: arrival.queue,
                    plan: arrival.plan.clone(),
                    customer: tx,
                    sent_at: Instant::now(),
                    start_answered: None,
                    first_offer: None,
                    routable_on_arrival: None,
                    created_at: None,
                    accepted_at: None,
                    closed: None,
                    refused: false,
                });
                customers.spawn(customer::run(Arc::clone(&shared), id, arrival, rx));
            }
            _ = ticker.tick() => report_progress(Phase::Running, started, Some(&shared), progress),
            Some(_) = customers.join_next(), if !customers.is_empty() => {}
        }
    }

    // No more customers: agents finish what they have, within the drain.
    for agent in &agent_ids {
        shared.prompt_agent(*agent, AgentPrompt::Drain);
    }
    let drain_started = Instant::now();
    while drain_started.elapsed() < config.drain && !all_settled(&shared) {
        tokio::select! {
            _ = ticker.tick() => {
                report_progress(Phase::Draining, drain_started, Some(&shared), progress);
            }
            Some(_) = customers.join_next(), if !customers.is_empty() => {}
        }
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    report_progress(Phase::Reporting, Instant::now(), Some(&shared), progress);

    // The end: customers stop, agents go home, the monitor reads to the head of the log.
    shared.sampling.store(false, Relaxed);
    for t in shared.conversations().values() {
        let _ = t.customer.send(CustomerMsg::Stop);
    }
    for agent in &agent_ids {
        shared.prompt_agent(*agent, AgentPrompt::Stop);
    }
    let mut agent_stats = vec![AgentStats::default(); agent_ids.len()];
    while let Some(joined) = agents.join_next().await {
        if let Ok((index, stats)) = joined {
            agent_stats[index] = stats;
        }
    }
    customers.shutdown().await;
    let head = bus
        .read_log(shared.counters.position.load(Relaxed) + 1, 1)
        .await
        .map_err(|source| SimulateError::Unanswered {
            command: "read_log",
            source,
        })?
        .head;
    wait_until(
        || shared.counters.position.load(Relaxed) >= head,
        "the monitor to reach the head of the log",
    )
    .await?;
    let _ = stop_monitor.send(true);
    let samples = monitor.await.unwrap_or_default();

    let mut report = build_report(&config, &center, &shared, &agent_stats, &samples);
    report.elapsed_secs = begun.elapsed().as_secs_f64();
    report.drain_secs = drain_secs;
    report.commands.setup_refused = setup_refused;
    Ok(report)
}

/// Sends a setup command as the system; `false` if it was refused.
async fn setup(bus: &Bus, command: Command) -> Result<bool, SimulateError> {
    let name = omni_proto::command_name(&command);
    let envelope = CommandEnvelope::from_system(command);
    match bus.command(&envelope).await {
        Ok(Outcome::Accepted { .. }) => Ok(true),
        Ok(Outcome::Rejected { reason, .. }) => {
            // Provisioning replaces; joining a queue twice is refused: a re-run of the same
            // center. Anything else means the center cannot be built.
            if name == "add_agent_to_queue" && reason.contains("already a member") {
                Ok(false)
            } else {
                Err(SimulateError::Setup {
                    command: name,
                    reason,
                })
            }
        }
        Err(source) => Err(SimulateError::Unanswered {
            command: name,
            source,
        }),
    }
}

async fn wait_until(
    mut done: impl FnMut() -> bool,
    what: &'static str,
) -> Result<(), SimulateError> {
    let since = Instant::now();
    while !done() {
        if since.elapsed() > CATCH_UP_WITHIN {
            return Err(SimulateError::Timeout {
                what,
                secs: CATCH_UP_WITHIN.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Every conversation of the run is closed (or was never created).
fn all_settled(shared: &Shared) -> bool {
    shared
        .conversations()
        .values()
        .all(|t| t.closed.is_some() || t.refused)
}

fn snapshot(phase: Phase, since: Instant, limit: Duration, shared: Option<&Shared>) -> Progress {
    let mut p = Progress {
        phase,
        elapsed: since.elapsed(),
        limit,
        started: 0,
        handled: 0,
        abandoned: 0,
        open: 0,
        offers: 0,
        commands: 0,
        rejected: 0,
    };
    let Some(shared) = shared else {
        return p;
    };
    for t in shared.conversations().values() {
        if t.created_at.is_none() {
            continue;
        }
        p.started += 1;
        match (t.closed.is_some(), t.accepted_at.is_some()) {
            (true, true) => p.handled += 1,
            (true, false) => p.abandoned += 1,
            (false, _) => p.open += 1,
        }
    }
    let c = &shared.counters;
    p.offers = c.offers.load(Relaxed);
    p.commands = c.commands.load(Relaxed);
    p.rejected = c.rejected.load(Relaxed);
    p
}

fn build_report(
    config: &SimulateConfig,
    center: &omni_sim::center::CenterPlan,
    shared: &Shared,
    agent_stats: &[AgentStats],
    samples: &Samples,
) -> Report {
    let c = &shared.counters;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Relaxed);
    let mut report = Report {
        seed: config.seed,
        agents: config.agents,
        queues: center.queues.len(),
        rate_per_sec: config.rate,
        duration_secs: config.duration.as_secs_f64(),
        time_scale: config.time_scale,
        offers: Offers {
            made: load(&c.offers),
            rejected: load(&c.offers_rejected),
            timed_out: load(&c.offers_timed_out),
            withdrawn: load(&c.offers_withdrawn),
            ignored_by_agents: load(&c.offers_ignored),
        },
        transfers_to_agent: load(&c.transfers_to_agent),
        transfers_to_queue: load(&c.transfers_to_queue),
        consults: load(&c.consults),
        holds: load(&c.holds),
        customer_disconnects: load(&c.customer_disconnects),
        customer_reconnects: load(&c.customer_reconnects),
        agent_disconnects: load(&c.agent_disconnects),
        presence_changes: load(&c.presence_changes),
        commands: Commands {
            sent: load(&c.commands),
            accepted: load(&c.accepted),
            rejected: load(&c.rejected),
            rejected_by_command: shared
                .rejections
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            unanswered: load(&c.unanswered),
            setup_refused: 0,
        },
        events: load(&c.events),
        ..Report::default()
    };

    struct PerQueue {
        counts: Conversations,
        waits: Vec<f64>,
    }
    let mut per_queue: Vec<PerQueue> = center
        .queues
        .iter()
        .map(|_| PerQueue {
            counts: Conversations::default(),
            waits: Vec::new(),
        })
        .collect();
    let mut waits = Vec::new();
    let mut on_arrival = Vec::new();
    let mut every_offer = Vec::new();
    let mut answers = Vec::new();
    let total = &mut report.conversations;
    let world = shared.world();
    for (id, t) in shared.conversations().iter() {
        total.requested += 1;
        if t.refused || t.created_at.is_none() {
            total.refused += 1;
            continue;
        }
        let q = &mut per_queue[t.queue];
        total.started += 1;
        q.counts.started += 1;
        match (t.closed.is_some(), t.accepted_at.is_some()) {
            (true, true) => {
                total.handled += 1;
                q.counts.handled += 1;
            }
            (true, false) => {
                total.abandoned += 1;
                q.counts.abandoned += 1;
            }
            (false, _) => {
                total.still_open += 1;
                q.counts.still_open += 1;
                let status = world
                    .conversations
                    .get(id)
                    .map_or_else(|| "unknown".to_owned(), |c| format!("{:?}", c.status));
                *total.still_open_by_status.entry(status).or_default() += 1;
            }
        }
        if let (Some(created), Some(accepted)) = (t.created_at, t.accepted_at) {
            let secs = accepted.since(created) as f64 / 1000.0;
            waits.push(secs);
            q.waits.push(secs);
        }
        if let Some(offer) = t.first_offer {
            let ms = offer.as_secs_f64() * 1000.0;
            every_offer.push(ms);
            if t.routable_on_arrival == Some(true) {
                on_arrival.push(ms);
            }
        }
        if let Some(answer) = t.start_answered {
            answers.push(answer.as_secs_f64() * 1000.0);
        }
    }
    report.wait_secs = Latency::of(waits);
    report.intake_to_offer_ms = Latency::of(on_arrival);
    report.intake_to_offer_all_ms = Latency::of(every_offer);
    report.start_answer_ms = Latency::of(answers);

    report.per_queue = center
        .queues
        .iter()
        .zip(per_queue)
        .enumerate()
        .map(|(i, (info, q))| {
            let load = samples.queues.get(i).cloned().unwrap_or_default();
            let name = world
                .queues
                .get(&info.id)
                .map_or_else(|| info.spec.name.to_owned(), |q| q.config.name.clone());
            let wait = Latency::of(q.waits);
            QueueReport {
                name,
                channel: format!("{:?}", info.spec.channel),
                mode: format!("{:?}", info.spec.mode).to_lowercase(),
                started: q.counts.started,
                handled: q.counts.handled,
                abandoned: q.counts.abandoned,
                still_open: q.counts.still_open,
                wait_p50_secs: wait.p50,
                wait_p99_secs: wait.p99,
                utilisation: ratio(load.held_units, load.staffed_units),
                mean_backlog: ratio(load.backlog, samples.count as f64),
            }
        })
        .collect();

    report.per_agent = center
        .agents
        .iter()
        .zip(agent_stats)
        .enumerate()
        .map(|(i, (plan, stats))| {
            let load = samples.agents.get(i).cloned().unwrap_or_default();
            AgentReport {
                name: plan.profile.name.clone(),
                id: plan.id().0.to_string(),
                capacity_units: plan.profile.capacity_units,
                queues: plan.queues.len(),
                utilisation: ratio(load.used, load.signed_in as f64),
                signed_in: ratio(load.signed_in as f64, samples.count as f64),
                offers: stats.offers,
                accepted: stats.accepted,
                rejected: stats.rejected,
                ignored: stats.ignored,
                handled: stats.handled,
                transfers: stats.transfers,
                consults_started: stats.consults_started,
                breaks: stats.breaks,
                drops: stats.drops,
            }
        })
        .collect();

    report.agents_over_capacity = center
        .agents
        .iter()
        .filter_map(|plan| world.agents.get(&plan.id()))
        .filter(|a| a.used_units + a.offered_units > a.profile.capacity_units)
        .map(|a| a.profile.name.clone())
        .collect();
    report
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}
