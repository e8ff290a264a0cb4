//! The engine's metrics in the Prometheus text format: counters and latency histograms on
//! atomics, so recording costs a few nanoseconds on the hot path and nothing is locked.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds: 100 µs to 10 s.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&bound| secs <= bound) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }
}

/// Every metric the engine exports. One instance is shared by all services of a process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub commands_accepted: Counter,
    pub commands_rejected: Counter,
    pub commands_replayed: Counter,
    pub commands_malformed: Counter,
    pub events_appended: Counter,
    pub offers: Counter,
    pub offers_timed_out: Counter,
    pub offers_rejected: Counter,
    pub conversations_started: Counter,
    pub conversations_closed: Counter,
    pub dead_letters: Counter,
    pub route_requests: Counter,
    pub queries: Counter,
    /// From receiving a command to replying (decide + append + fsync).
    pub command_latency: Histogram,
    /// One group append to the log, fsync included.
    pub append_latency: Histogram,
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &Counter); 13] = [
            (
                "omni_commands_accepted_total",
                "Commands accepted and committed.",
                &self.commands_accepted,
            ),
            (
                "omni_commands_rejected_total",
                "Commands the core rejected.",
                &self.commands_rejected,
            ),
            (
                "omni_commands_replayed_total",
                "Retried commands answered from the first attempt.",
                &self.commands_replayed,
            ),
            (
                "omni_commands_malformed_total",
                "Requests that could not be read.",
                &self.commands_malformed,
            ),
            (
                "omni_events_appended_total",
                "Events appended to the log.",
                &self.events_appended,
            ),
            (
                "omni_offers_total",
                "Offers made (IncomingSessionRequest).",
                &self.offers,
            ),
            (
                "omni_offers_timed_out_total",
                "Offers that timed out.",
                &self.offers_timed_out,
            ),
            (
                "omni_offers_rejected_total",
                "Offers agents rejected.",
                &self.offers_rejected,
            ),
            (
                "omni_conversations_started_total",
                "Conversations created.",
                &self.conversations_started,
            ),
            (
                "omni_conversations_closed_total",
                "Conversations closed.",
                &self.conversations_closed,
            ),
            (
                "omni_dead_letters_total",
                "Messages dead-lettered.",
                &self.dead_letters,
            ),
            (
                "omni_route_requests_total",
                "Routing commands the router sent.",
                &self.route_requests,
            ),
            ("omni_queries_total", "Queries answered.", &self.queries),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.get()
            );
        }
        let histograms: [(&str, &str, &Histogram); 2] = [
            (
                "omni_command_latency_seconds",
                "From a command's arrival to its answer.",
                &self.command_latency,
            ),
            (
                "omni_append_latency_seconds",
                "One group append to the log, fsync included.",
                &self.append_latency,
            ),
        ];
        for (name, help, histogram) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
                cumulative += bucket.load(Relaxed);
                let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
            }
            let count = histogram.count();
            let sum = histogram.sum_micros.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
            );
        }
        out
    }
}
