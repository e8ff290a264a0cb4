//! What the dashboard costs at the size of a large center: 5 000 agents signed in over 20
//! queues, 40 000 live conversations (half of them Active, half waiting in the queues).
//!
//! - `view/fold_stream`: folding a generated day (`omni_sim`, 200 agents, 2 000 conversations)
//!   into a `View`, which compares the rows each event can change: events per second;
//! - `view/delta`: one presence change folded, then the flush a page is sent (the changed row
//!   and every aggregate, recomputed from the world) serialised to JSON: the work of one
//!   250 ms flush while the center is busy;
//! - `view/snapshot`: the whole view serialised, as a page that connects (or lags) gets it.
//!
//! Run: `cargo bench -p omni-dashboard --bench view -- --warm-up-time 1 --measurement-time 3`.
//! Results are in `BENCHMARKS.md`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use omni_core::{
    AgentId, AgentProfile, AssignmentMethod, BaseStatus, Channel, Command, ConversationId,
    DEFAULT_MAX_SESSIONS, EventKind, Presence, PresenceId, PresenceSource, QueueConfig, QueueId,
    Timestamp, Workstream, WorkstreamId, World, apply, decide,
};
use omni_dashboard::View;
use omni_sim::{SimConfig, generate};

const AGENTS: u128 = 5_000;
const QUEUES: u128 = 20;
const CONVERSATIONS: u128 = 40_000;

/// A day decided up front: the world as the engine holds it and every event, in log order.
struct Day {
    world: World,
    now: Timestamp,
    log: Vec<omni_core::Event>,
}

impl Day {
    fn run(&mut self, command: Command) -> Vec<omni_core::Event> {
        self.now = self.now.plus_ms(1);
        let events = decide(&self.world, command, self.now).expect("the command is accepted");
        for event in &events {
            apply(&mut self.world, event);
        }
        self.log.extend(events.iter().cloned());
        events
    }
}

/// The dashboard's view of the busy center, flushed, and the last position and time.
struct Center {
    view: View,
    now: Timestamp,
    position: u64,
}

fn busy_center() -> Center {
    let mut center = Day {
        world: World::default(),
        now: Timestamp(1_700_000_000_000),
        log: Vec::new(),
    };
    let queue = |n: u128| QueueId::from_u128(0x1000 + n);
    for n in 0..QUEUES {
        let channel = if n % 2 == 0 {
            Channel::LiveChat
        } else {
            Channel::Sms
        };
        let workstream = WorkstreamId::from_u128(0x1000 + n);
        center.run(Command::ConfigureWorkstream(Workstream::with_defaults(
            workstream,
            &format!("workstream {n}"),
            channel,
        )));
        center.run(Command::ConfigureQueue(QueueConfig {
            id: queue(n),
            name: format!("queue {n}"),
            workstream,
            method: AssignmentMethod::HighestCapacity,
        }));
    }
    for n in 0..AGENTS {
        let agent = AgentId::from_u128(0x10_0000 + n);
        center.run(Command::ProvisionAgent(AgentProfile {
            id: agent,
            name: format!("Agent {n}"),
            capacity_units: 4,
            skills: Default::default(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            default_presence: PresenceId::AVAILABLE,
        }));
        for q in [n % QUEUES, (n + 7) % QUEUES] {
            center.run(Command::AddAgentToQueue {
                queue: queue(q),
                agent,
            });
        }
        center.run(Command::SignIn { agent });
    }
    for n in 0..CONVERSATIONS {
        center.run(Command::StartConversation {
            conversation: ConversationId::from_u128(0x1000_0000 + n),
            queue: queue(n % QUEUES),
            skills: Vec::new(),
            customer: format!("customer {n}"),
        });
    }
    let offers = center.run(Command::AssignmentCycle { queue: None });
    for event in offers {
        if let EventKind::IncomingSessionRequest { agent, session, .. } = event.kind {
            center.run(Command::Accept { agent, session });
        }
    }
    let mut view = View::default();
    for (position, event) in center.log.iter().enumerate() {
        view.fold(position as u64 + 1, event);
    }
    view.flush();
    Center {
        view,
        now: center.now,
        position: center.log.len() as u64,
    }
}

fn view(c: &mut Criterion) {
    let mut group = c.benchmark_group("view");
    group.sample_size(10);

    let events = generate(SimConfig {
        agents: 200,
        conversations: 2_000,
        seed: 42,
        ..SimConfig::default()
    });
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("fold_stream", |b| {
        b.iter(|| {
            let mut view = View::default();
            for (position, event) in events.iter().enumerate() {
                view.fold(position as u64 + 1, event);
            }
            black_box(view.position())
        });
    });

    let mut center = busy_center();
    let snapshot = center.view.snapshot();
    let live = snapshot.conversations.len();
    let open: u64 = snapshot.queues.iter().map(|q| q.open).sum();
    let json = serde_json::to_string(&snapshot).expect("JSON");
    eprintln!(
        "busy center: {} agents, {live} live conversations ({open} Open), snapshot {} KB of JSON",
        snapshot.agents.len(),
        json.len() / 1024
    );
    assert_eq!(live as u128, CONVERSATIONS);

    group.throughput(Throughput::Elements(1));
    let mut flip = 0u128;
    group.bench_function("delta", |b| {
        b.iter(|| {
            flip += 1;
            let base = if flip % 2 == 0 {
                BaseStatus::Available
            } else {
                BaseStatus::Away
            };
            let event = omni_core::Event {
                at: center.now,
                kind: EventKind::PresenceUpdate {
                    agent: AgentId::from_u128(0x10_0000 + flip % AGENTS),
                    presence: Presence::of(base),
                    source: PresenceSource::Agent,
                    sticky: base == BaseStatus::Away,
                },
            };
            center.position += 1;
            center.view.fold(center.position, &event);
            let update = center.view.flush().expect("a changed agent");
            black_box(serde_json::to_string(&update).expect("JSON").len())
        });
    });
    group.bench_function("snapshot", |b| {
        b.iter(|| {
            black_box(
                serde_json::to_string(&center.view.snapshot())
                    .expect("JSON")
                    .len(),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, view);
criterion_main!(benches);
