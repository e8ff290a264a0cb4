//! What a seed decides before anything runs: the center and the customers' arrivals. Both are
//! pure functions of the seed and the configuration, so two runs with one seed provision the
//! same center and see the same customers arrive at the same offsets, with the same requests;
//! what happens next depends on real timing too.

use std::time::Duration;

use omni_sim::behaviour;
use omni_sim::center::{self, CenterPlan, QueueInfo, QueueMix};
use omni_sim::script::Plan;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Streams of randomness derived from one seed, one per purpose, so adding an agent does not
/// change what customers do.
const CENTER: u64 = 0xCE17_E500;
const ARRIVALS: u64 = 0xA881_7A15;
const AGENTS: u64 = 0xA6E1_7500;

/// A well-mixed 64-bit value from a seed, a purpose and an index (SplitMix64's finaliser).
pub fn derive_seed(seed: u64, purpose: u64, index: u64) -> u64 {
    let mut z = seed
        .wrapping_add(purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED69));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The center a seed provisions: `omni-sim`'s, with `queues_per_channel` queues on each of
/// its six channels.
pub fn center(seed: u64, agents: usize, queues_per_channel: usize) -> CenterPlan {
    let mut rng = SmallRng::seed_from_u64(derive_seed(seed, CENTER, 0));
    let queues = queues_per_channel.max(1) * center::CHANNELS.len();
    center::plan(&mut rng, agents, queues)
}

/// The generator of the agent at `index`: its answers, scripts and routines.
pub fn agent_rng(seed: u64, index: usize) -> SmallRng {
    SmallRng::seed_from_u64(derive_seed(seed, AGENTS, index as u64))
}

/// One customer's arrival.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Arrival {
    /// The customer's number in the run, from 1.
    pub number: u64,
    /// When the customer arrives, from the start of the run (wall time).
    pub at: Duration,
    /// The queue, an index into the center's queues.
    pub queue: usize,
    /// Skills the request asks for (a quarter ask for one).
    pub skills: Vec<String>,
    /// The conversation's course: transfers, waits, how it ends, the customer's CRM records.
    pub plan: Plan,
    /// Seeds the customer's own decisions (patience, returns, how they leave).
    pub seed: u64,
}

/// Poisson arrivals at `rate` customers a second (wall time), endless; take what a run needs.
#[derive(Debug)]
pub struct Arrivals {
    rng: SmallRng,
    mix: QueueMix,
    queues: Vec<QueueInfo>,
    mean_gap_secs: f64,
    at_secs: f64,
    number: u64,
}

pub fn arrivals(seed: u64, rate: f64, queues: &[QueueInfo]) -> Arrivals {
    assert!(rate > 0.0, "the arrival rate must be positive");
    Arrivals {
        rng: SmallRng::seed_from_u64(derive_seed(seed, ARRIVALS, 0)),
        mix: QueueMix::new(queues),
        queues: queues.to_vec(),
        mean_gap_secs: 1.0 / rate,
        at_secs: 0.0,
        number: 0,
    }
}

impl Iterator for Arrivals {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        self.at_secs += behaviour::exponential(&mut self.rng, self.mean_gap_secs);
        self.number += 1;
        let queue = self.mix.draw(&mut self.rng);
        let skills = center::requested_skills(&mut self.rng);
        let plan = Plan::draw(self.queues[queue].spec.channel, &mut self.rng);
        Some(Arrival {
            number: self.number,
            at: Duration::from_secs_f64(self.at_secs),
            queue,
            skills,
            plan,
            seed: self.rng.random(),
        })
    }
}
