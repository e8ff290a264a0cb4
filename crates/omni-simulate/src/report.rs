//! The report of a run: what happened to the customers' conversations (from the log), how
//! long things took, what the agents did and how loaded agents and queues were.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// A latency distribution, in the unit its field names.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Latency {
    /// From unsorted samples (nearest-rank percentiles).
    pub fn of(mut samples: Vec<f64>) -> Latency {
        samples.sort_by(f64::total_cmp);
        Latency {
            count: samples.len(),
            p50: quantile(&samples, 0.50),
            p99: quantile(&samples, 0.99),
            max: samples.last().copied(),
        }
    }
}

/// The nearest-rank quantile of sorted samples.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The customers' conversations. `started = handled + abandoned + still_open`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Conversations {
    /// StartConversation requests sent.
    pub requested: u64,
    /// Requests the engine refused or never answered.
    pub refused: u64,
    /// Conversations created (ConversationCreated in the log).
    pub started: u64,
    /// Closed after an agent took them at least once.
    pub handled: u64,
    /// Closed without any agent taking them (the customer left, or a timer closed them).
    pub abandoned: u64,
    /// Not closed when the run ended (any other status).
    pub still_open: u64,
    /// The still open ones by status.
    pub still_open_by_status: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Offers {
    /// Offers made by routing (IncomingSessionRequest, picks excluded).
    pub made: u64,
    pub rejected: u64,
    pub timed_out: u64,
    pub withdrawn: u64,
    /// Offers agents chose to leave unanswered (they then time out).
    pub ignored_by_agents: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Commands {
    pub sent: u64,
    pub accepted: u64,
    /// Refusals are normal in a race (an agent accepts an offer the customer just left);
    /// counted by command.
    pub rejected: u64,
    pub rejected_by_command: BTreeMap<String, u64>,
    /// No answer even after the bus's retries.
    pub unanswered: u64,
    /// Setup commands refused (an agent already signed in or a member, on a re-run).
    pub setup_refused: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueueReport {
    pub name: String,
    pub channel: String,
    pub mode: String,
    pub started: u64,
    pub handled: u64,
    pub abandoned: u64,
    pub still_open: u64,
    pub wait_p50_secs: Option<f64>,
    pub wait_p99_secs: Option<f64>,
    /// Capacity units held by the queue's conversations ÷ capacity units of its signed-in
    /// members (members serve several queues, so a queue's share of its staff).
    pub utilisation: f64,
    pub mean_backlog: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AgentReport {
    pub name: String,
    pub id: String,
    pub capacity_units: u32,
    pub queues: usize,
    /// Mean used capacity ÷ capacity while signed in.
    pub utilisation: f64,
    /// Share of the run the agent was signed in.
    pub signed_in: f64,
    pub offers: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub ignored: u64,
    pub handled: u64,
    pub transfers: u64,
    pub consults_started: u64,
    pub breaks: u64,
    pub drops: u64,
}

/// Everything a run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub seed: u64,
    pub agents: usize,
    pub queues: usize,
    pub rate_per_sec: f64,
    pub duration_secs: f64,
    pub time_scale: u32,
    /// The whole run, provisioning and drain included (wall).
    pub elapsed_secs: f64,
    /// How long the drain took (wall), bounded by the configured drain.
    pub drain_secs: f64,
    pub conversations: Conversations,
    /// From creation to the first accept, in engine seconds (the customer's wait).
    pub wait_secs: Latency,
    /// From sending StartConversation to the IncomingSessionRequest on the desktop (wall
    /// milliseconds), for conversations someone could take when they arrived.
    pub intake_to_offer_ms: Latency,
    /// The same over every first offer, queued conversations included.
    pub intake_to_offer_all_ms: Latency,
    /// From sending StartConversation to its answer (wall milliseconds): one pass of the
    /// writer (decide, append, fsync).
    pub start_answer_ms: Latency,
    pub offers: Offers,
    pub transfers_to_agent: u64,
    pub transfers_to_queue: u64,
    pub consults: u64,
    pub holds: u64,
    pub customer_disconnects: u64,
    pub customer_reconnects: u64,
    pub agent_disconnects: u64,
    pub presence_changes: u64,
    pub commands: Commands,
    /// Events the monitor folded (the whole log, including earlier runs).
    pub events: u64,
    pub per_queue: Vec<QueueReport>,
    pub per_agent: Vec<AgentReport>,
    /// Agents whose used plus offered capacity exceeds their capacity at the end, as the log
    /// says (always empty: the core makes overbooking impossible).
    pub agents_over_capacity: Vec<String>,
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn pct(value: f64) -> String {
    format!("{:.0}%", value * 100.0)
}

/// Per-agent rows shown in the table; the JSON has them all.
const AGENT_ROWS: usize = 12;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.conversations;
        writeln!(
            f,
            "simulated {} agents in {} queues: {:.1} customers/s for {:.0} s (seed {}, engine clock {}x), {:.0} s in all, drain {:.1} s",
            self.agents,
            self.queues,
            self.rate_per_sec,
            self.duration_secs,
            self.seed,
            self.time_scale,
            self.elapsed_secs,
            self.drain_secs
        )?;
        writeln!(f)?;
        let open: Vec<String> = c
            .still_open_by_status
            .iter()
            .map(|(status, n)| format!("{status} {n}"))
            .collect();
        writeln!(
            f,
            "conversations  started {}  handled {}  abandoned {}  still open {}{}  (requested {}, refused {})",
            c.started,
            c.handled,
            c.abandoned,
            c.still_open,
            if open.is_empty() {
                String::new()
            } else {
                format!(": {}", open.join(", "))
            },
            c.requested,
            c.refused
        )?;
        writeln!(
            f,
            "wait (start → accept, engine s)       p50 {:>8}  p99 {:>8}  max {:>8}  n={}",
            opt(self.wait_secs.p50, 1),
            opt(self.wait_secs.p99, 1),
            opt(self.wait_secs.max, 1),
            self.wait_secs.count
        )?;
        for (label, l) in [
            (
                "intake → offer, routed on arrival (ms)",
                &self.intake_to_offer_ms,
            ),
            (
                "intake → offer, every first offer (ms)",
                &self.intake_to_offer_all_ms,
            ),
            (
                "StartConversation answered (ms)       ",
                &self.start_answer_ms,
            ),
        ] {
            writeln!(
                f,
                "{label} p50 {:>8}  p99 {:>8}  max {:>8}  n={}",
                opt(l.p50, 2),
                opt(l.p99, 2),
                opt(l.max, 2),
                l.count
            )?;
        }
        let o = &self.offers;
        writeln!(
            f,
            "offers         made {}  rejected {}  timed out {}  withdrawn {}  (left unanswered by agents {})",
            o.made, o.rejected, o.timed_out, o.withdrawn, o.ignored_by_agents
        )?;
        writeln!(
            f,
            "transfers      to an agent {}  to a queue {}   consults {}   holds {}",
            self.transfers_to_agent, self.transfers_to_queue, self.consults, self.holds
        )?;
        writeln!(
            f,
            "disconnects    customers {} (back {})  agents {}   presence changes {}",
            self.customer_disconnects,
            self.customer_reconnects,
            self.agent_disconnects,
            self.presence_changes
        )?;
        let k = &self.commands;
        let refusals: Vec<String> = k
            .rejected_by_command
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        writeln!(
            f,
            "commands       sent {}  accepted {}  refused {} ({})  unanswered {}",
            k.sent,
            k.accepted,
            k.rejected,
            if refusals.is_empty() {
                "none".to_owned()
            } else {
                refusals.join(", ")
            },
            k.unanswered
        )?;
        writeln!(
            f,
            "capacity       agents over capacity at the end: {}",
            if self.agents_over_capacity.is_empty() {
                "none".to_owned()
            } else {
                self.agents_over_capacity.join(", ")
            }
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<24} {:<9} {:<4} {:>7} {:>7} {:>9} {:>5} {:>10} {:>10} {:>6} {:>8}",
            "queue",
            "channel",
            "mode",
            "started",
            "handled",
            "abandoned",
            "open",
            "wait p50 s",
            "wait p99 s",
            "util",
            "backlog"
        )?;
        for q in &self.per_queue {
            writeln!(
                f,
                "{:<24} {:<9} {:<4} {:>7} {:>7} {:>9} {:>5} {:>10} {:>10} {:>6} {:>8.1}",
                q.name,
                q.channel,
                q.mode,
                q.started,
                q.handled,
                q.abandoned,
                q.still_open,
                opt(q.wait_p50_secs, 1),
                opt(q.wait_p99_secs, 1),
                pct(q.utilisation),
                q.mean_backlog
            )?;
        }
        writeln!(f)?;
        let mut by_load: Vec<&AgentReport> = self.per_agent.iter().collect();
        by_load.sort_by(|a, b| b.utilisation.total_cmp(&a.utilisation));
        let loads: Vec<f64> = by_load.iter().rev().map(|a| a.utilisation).collect();
        writeln!(
            f,
            "agent utilisation (used ÷ capacity while signed in): min {}  p10 {}  p50 {}  p90 {}  max {}",
            pct(loads.first().copied().unwrap_or(0.0)),
            pct(quantile(&loads, 0.10).unwrap_or(0.0)),
            pct(quantile(&loads, 0.50).unwrap_or(0.0)),
            pct(quantile(&loads, 0.90).unwrap_or(0.0)),
            pct(loads.last().copied().unwrap_or(0.0)),
        )?;
        let shown: Vec<&AgentReport> = if by_load.len() <= AGENT_ROWS {
            by_load
        } else {
            let half = AGENT_ROWS / 2;
            writeln!(
                f,
                "the {half} busiest and {half} least busy agents (every agent is in --json):"
            )?;
            by_load[..half]
                .iter()
                .chain(&by_load[by_load.len() - half..])
                .copied()
                .collect()
        };
        writeln!(
            f,
            "{:<11} {:>4} {:>6} {:>6} {:>9} {:>6} {:>8} {:>8} {:>7} {:>7} {:>9} {:>8} {:>6} {:>5}",
            "agent",
            "cap",
            "queues",
            "util",
            "signed in",
            "offers",
            "accepted",
            "rejected",
            "ignored",
            "handled",
            "transfers",
            "consults",
            "breaks",
            "drops"
        )?;
        for a in shown {
            writeln!(
                f,
                "{:<11} {:>4} {:>6} {:>6} {:>9} {:>6} {:>8} {:>8} {:>7} {:>7} {:>9} {:>8} {:>6} {:>5}",
                a.name,
                a.capacity_units,
                a.queues,
                pct(a.utilisation),
                pct(a.signed_in),
                a.offers,
                a.accepted,
                a.rejected,
                a.ignored,
                a.handled,
                a.transfers,
                a.consults_started,
                a.breaks,
                a.drops
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = Latency::of(samples);
        assert_eq!((l.p50, l.p99, l.max), (Some(50.0), Some(99.0), Some(100.0)));
        assert_eq!(Latency::of(vec![]).p50, None);
        assert_eq!(quantile(&[3.0], 0.99), Some(3.0));
    }
}
