//! The contact center a simulation runs in: channels, queues, skills, presences and agents,
//! provisioned through the same administration commands an operator would send.
//!
//! [`plan`] draws the center from a seed as a list of commands; the in-process simulation
//! decides them with the core, `omni-simulate` sends them to a running engine over the bus.

use omni_core::{
    AgentId, AgentProfile, AssignmentMethod, BaseStatus, Channel, Command, CustomPresence, Event,
    PresenceId, QueueConfig, QueueId, RoutingMode, Workstream, WorkstreamId, WrapUpBlocking,
};
use rand::Rng;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;

use crate::engine::Engine;

/// How one channel is configured and how much of the traffic it carries.
#[derive(Debug)]
pub struct ChannelSpec {
    pub channel: Channel,
    pub name: &'static str,
    /// Relative share of arriving customers.
    pub weight: u32,
    pub capacity_units: u32,
    pub mode: RoutingMode,
    pub wrap_up_blocking: WrapUpBlocking,
    pub offer_timeout_secs: u32,
    /// Replaces the documented 30-day waiting auto-close where an administrator shortened it.
    pub waiting_secs: Option<u64>,
}

/// The channels of the simulated center. The settings differ on purpose, so that every
/// option of a workstream is exercised: a call takes two units and rings for 30 s, Teams
/// routes in pick mode, the wrap-up blocking options all appear, and WhatsApp's administrator
/// shortened the waiting auto-close to an hour.
pub const CHANNELS: [ChannelSpec; 6] = [
    ChannelSpec {
        channel: Channel::LiveChat,
        name: "Web chat",
        weight: 34,
        capacity_units: 1,
        mode: RoutingMode::Push,
        wrap_up_blocking: WrapUpBlocking::ForSeconds(60),
        offer_timeout_secs: 120,
        waiting_secs: None,
    },
    ChannelSpec {
        channel: Channel::Voice,
        name: "Phone",
        weight: 24,
        capacity_units: 2,
        mode: RoutingMode::Push,
        wrap_up_blocking: WrapUpBlocking::Always,
        offer_timeout_secs: 30,
        waiting_secs: None,
    },
    ChannelSpec {
        channel: Channel::Sms,
        name: "SMS",
        weight: 10,
        capacity_units: 1,
        mode: RoutingMode::Push,
        wrap_up_blocking: WrapUpBlocking::Never,
        offer_timeout_secs: 120,
        waiting_secs: Some(24 * 3600),
    },
    ChannelSpec {
        channel: Channel::Teams,
        name: "Teams",
        weight: 8,
        capacity_units: 1,
        mode: RoutingMode::Pick,
        wrap_up_blocking: WrapUpBlocking::Never,
        offer_timeout_secs: 120,
        waiting_secs: Some(4 * 3600),
    },
    ChannelSpec {
        channel: Channel::WhatsApp,
        name: "WhatsApp",
        weight: 16,
        capacity_units: 1,
        mode: RoutingMode::Push,
        wrap_up_blocking: WrapUpBlocking::Never,
        offer_timeout_secs: 120,
        waiting_secs: Some(3600),
    },
    ChannelSpec {
        channel: Channel::Facebook,
        name: "Messenger",
        weight: 8,
        capacity_units: 1,
        mode: RoutingMode::Push,
        wrap_up_blocking: WrapUpBlocking::ForSeconds(120),
        offer_timeout_secs: 120,
        waiting_secs: Some(4 * 3600),
    },
];

/// What the queues of one channel are for; a queue is named after its channel and line.
pub const LINES: [&str; 5] = ["Sales", "Support", "Billing", "Returns", "Premium"];

/// Skills agents hold and conversations may ask for.
pub const SKILLS: [&str; 6] = [
    "billing",
    "technical",
    "returns",
    "spanish",
    "french",
    "vip",
];

/// Custom presences the administrator defined, one or more per base status.
pub const CUSTOM_PRESENCES: [(&str, BaseStatus); 4] = [
    ("Lunch", BaseStatus::Away),
    ("Training", BaseStatus::Away),
    ("In a meeting", BaseStatus::BusyDnd),
    ("Back office", BaseStatus::Busy),
];

/// The presences agents choose for a break: the out-of-the-box ones that take them out of
/// routing, and every custom one (the "Back office" one keeps them routable, as Busy does).
pub fn break_presences() -> impl Iterator<Item = PresenceId> {
    [PresenceId::AWAY, PresenceId::BUSY_DND]
        .into_iter()
        .chain((0..CUSTOM_PRESENCES.len()).map(custom_presence_id))
}

/// Custom presence ids are fixed small numbers, so a stream is easy to read.
fn custom_presence_id(index: usize) -> PresenceId {
    PresenceId::from_u128(0xC057_0000 + index as u128)
}

/// The id of the custom presence called `name` in [`CUSTOM_PRESENCES`].
pub fn custom_presence(name: &str) -> PresenceId {
    let index = CUSTOM_PRESENCES
        .iter()
        .position(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no custom presence is called {name:?}"));
    custom_presence_id(index)
}

/// The skills a customer's request asks for: none for most, one for a quarter of them.
pub fn requested_skills(rng: &mut SmallRng) -> Vec<String> {
    if rng.random_bool(0.25) {
        SKILLS
            .choose(rng)
            .map(|s| vec![(*s).to_owned()])
            .unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// A queue as the simulation needs to know it.
#[derive(Clone, Copy, Debug)]
pub struct QueueInfo {
    pub id: QueueId,
    pub spec: &'static ChannelSpec,
}

/// A center drawn from a seed: the administration commands that build it, in order, and what
/// a simulation needs to know of it.
#[derive(Debug)]
pub struct CenterPlan {
    /// Workstreams, custom presences and queues, in the order they must be configured.
    pub configuration: Vec<Command>,
    pub queues: Vec<QueueInfo>,
    pub agents: Vec<AgentPlan>,
}

/// One agent of a [`CenterPlan`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AgentPlan {
    pub profile: AgentProfile,
    /// The queues the agent joins, the first one `i mod queues` so that every queue has
    /// members.
    pub queues: Vec<QueueId>,
}

impl AgentPlan {
    pub fn id(&self) -> AgentId {
        self.profile.id
    }

    /// Provisioning and queue memberships, in order (sign-in is the agent's own business).
    pub fn commands(&self) -> Vec<Command> {
        std::iter::once(Command::ProvisionAgent(self.profile.clone()))
            .chain(self.queues.iter().map(|&queue| Command::AddAgentToQueue {
                queue,
                agent: self.profile.id,
            }))
            .collect()
    }
}

/// Draws a center of `queues` queues over the channels (queue `i` serves channel `i mod 6`,
/// with assignment methods in rotation) and `agents` agents with capacities 2–6, one to three
/// skills, and membership in two to four queues. The same seeded `rng` state gives the same
/// center, ids included.
pub fn plan(rng: &mut SmallRng, agents: usize, queues: usize) -> CenterPlan {
    assert!(queues > 0, "a center needs at least one queue");
    let mut configuration = Vec::new();
    let workstreams: Vec<WorkstreamId> = CHANNELS
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let id = WorkstreamId::from_u128(0x3057_0000 + i as u128);
            let mut ws = Workstream::with_defaults(id, spec.name, spec.channel);
            ws.capacity_units = spec.capacity_units;
            ws.mode = spec.mode;
            ws.wrap_up_blocking = spec.wrap_up_blocking;
            ws.offer_timeout_secs = spec.offer_timeout_secs;
            if let Some(secs) = spec.waiting_secs {
                ws.timers.waiting_secs = Some(secs);
            }
            configuration.push(Command::ConfigureWorkstream(ws));
            id
        })
        .collect();
    for (i, (name, base)) in CUSTOM_PRESENCES.iter().enumerate() {
        configuration.push(Command::DefineCustomPresence(CustomPresence {
            id: custom_presence_id(i),
            name: (*name).to_owned(),
            base: *base,
        }));
    }
    let queue_infos: Vec<QueueInfo> = (0..queues)
        .map(|i| {
            let channel = i % CHANNELS.len();
            let line = LINES[(i / CHANNELS.len()) % LINES.len()];
            let id = QueueId::from_u128(0x0E0E_0000 + i as u128);
            configuration.push(Command::ConfigureQueue(QueueConfig {
                id,
                name: format!("{} {} {}", CHANNELS[channel].name, line, i),
                workstream: workstreams[channel],
                method: AssignmentMethod::ALL[i % AssignmentMethod::ALL.len()],
            }));
            QueueInfo {
                id,
                spec: &CHANNELS[channel],
            }
        })
        .collect();
    let agent_plans = (0..agents)
        .map(|i| {
            let id = AgentId::from_u128(rng.random());
            let skill_count = rng.random_range(1..=3);
            let skills = SKILLS
                .choose_multiple(rng, skill_count)
                .map(|s| (*s).to_owned())
                .collect();
            // Most desktops keep the default ten tabs; a few are set low, so the tab limit is
            // hit.
            let max_sessions = if rng.random_bool(0.1) { 3 } else { 10 };
            // Some administrators make agents start Away: they set themselves Available to
            // work.
            let default_presence = if rng.random_bool(0.1) {
                PresenceId::AWAY
            } else {
                PresenceId::AVAILABLE
            };
            let profile = AgentProfile {
                id,
                name: format!("Agent {i}"),
                capacity_units: rng.random_range(2..=6),
                skills,
                max_sessions,
                default_presence,
            };
            let mut memberships = vec![i % queues];
            let wanted = rng.random_range(2..=4).min(queues);
            while memberships.len() < wanted {
                let q = rng.random_range(0..queues);
                if !memberships.contains(&q) {
                    memberships.push(q);
                }
            }
            AgentPlan {
                profile,
                queues: memberships.iter().map(|&q| queue_infos[q].id).collect(),
            }
        })
        .collect();
    CenterPlan {
        configuration,
        queues: queue_infos,
        agents: agent_plans,
    }
}

/// Where customers arrive: each queue in proportion to its channel's traffic weight.
#[derive(Clone, Debug)]
pub struct QueueMix {
    /// Running sums of the queues' weights.
    running: Vec<u32>,
}

impl QueueMix {
    pub fn new(queues: &[QueueInfo]) -> QueueMix {
        let running = queues
            .iter()
            .scan(0, |sum, q| {
                *sum += q.spec.weight;
                Some(*sum)
            })
            .collect();
        QueueMix { running }
    }

    /// The index of the queue the next customer arrives in.
    pub fn draw(&self, rng: &mut SmallRng) -> usize {
        let total = *self.running.last().unwrap_or(&0);
        let draw = rng.random_range(0..total.max(1));
        self.running.partition_point(|w| *w <= draw)
    }
}

/// What was provisioned.
#[derive(Debug)]
pub(crate) struct Center {
    pub queues: Vec<QueueInfo>,
    pub agents: Vec<AgentId>,
}

/// Provisions the center [`plan`] draws and signs everyone in. Returns the center and the
/// events, which a replay needs to rebuild the configuration.
pub(crate) fn provision(
    engine: &mut Engine,
    rng: &mut SmallRng,
    agents: usize,
    queues: usize,
) -> (Center, Vec<Event>) {
    let plan = plan(rng, agents, queues);
    let mut events = Vec::new();
    for command in plan.configuration {
        events.extend(engine.must(command));
    }
    let mut agent_ids = Vec::with_capacity(agents);
    for agent in plan.agents {
        for command in agent.commands() {
            events.extend(engine.must(command));
        }
        events.extend(engine.must(Command::SignIn { agent: agent.id() }));
        agent_ids.push(agent.id());
    }
    let center = Center {
        queues: plan.queues,
        agents: agent_ids,
    };
    (center, events)
}
