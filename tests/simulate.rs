//! `omni-simulate` against a live engine: a short seeded run whose report adds up and agrees
//! with the log (and whose live projection verifies against a replay), and a seed that always
//! plans the same center and the same arrivals.

use std::collections::BTreeMap;
use std::time::Duration;

use omni_core::{ConversationStatus, EventKind, World, apply};
use omni_simulate::{SimulateConfig, plan};

use crate::live::{Live, block_on};

const SEED: u64 = 42;

fn config() -> SimulateConfig {
    SimulateConfig {
        agents: 16,
        rate: 8.0,
        duration: Duration::from_secs(6),
        seed: SEED,
        time_scale: 60,
        drain: Duration::from_secs(8),
        queues_per_channel: 1,
    }
}

#[test]
fn a_seeded_simulation_reports_consistently_and_never_overbooks() {
    block_on(async {
        let config = config();
        let live = Live::start("simulate", config.time_scale).await;
        let mut phases = Vec::new();
        let report = omni_simulate::run(live.bus.clone(), config.clone(), &mut |p| {
            if phases.last() != Some(&p.phase) {
                phases.push(p.phase);
            }
        })
        .await
        .expect("the simulation runs");

        let c = &report.conversations;
        assert!(c.started >= 20, "too few customers arrived: {c:?}");
        assert_eq!(c.requested, c.started + c.refused, "{c:?}");
        assert_eq!(c.handled + c.abandoned + c.still_open, c.started, "{c:?}");
        assert_eq!(
            c.still_open_by_status.values().sum::<u64>(),
            c.still_open,
            "{c:?}"
        );
        assert!(c.handled > 0, "nobody was served: {report}");
        let queues = &report.per_queue;
        assert_eq!(queues.len(), 6);
        assert_eq!(queues.iter().map(|q| q.started).sum::<u64>(), c.started);
        assert_eq!(queues.iter().map(|q| q.handled).sum::<u64>(), c.handled);
        assert_eq!(report.per_agent.len(), config.agents);
        for latency in [
            &report.intake_to_offer_ms,
            &report.intake_to_offer_all_ms,
            &report.start_answer_ms,
        ] {
            assert!(latency.count > 0, "{report}");
            let (p50, p99, max) = (
                latency.p50.unwrap(),
                latency.p99.unwrap(),
                latency.max.unwrap(),
            );
            assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{latency:?}");
        }
        assert!(report.wait_secs.p50.is_some(), "{report}");
        assert!(report.offers.made > 0 && report.commands.accepted > 0);
        assert!(report.agents_over_capacity.is_empty(), "{report}");
        assert_eq!(
            phases,
            [
                omni_simulate::Phase::Provisioning,
                omni_simulate::Phase::Running,
                omni_simulate::Phase::Draining,
                omni_simulate::Phase::Reporting
            ]
        );

        // The projector's stored projection is what a replay of the log gives, and the log
        // says what the report says.
        let (_, log) = live.stop_verify_and_read_log().await;
        let mut world = World::default();
        for (_, envelope) in &log {
            apply(&mut world, &envelope.event);
        }
        for agent in world.agents.values() {
            assert!(
                agent.used_units + agent.offered_units <= agent.profile.capacity_units,
                "{agent:#?}"
            );
        }
        let planned = plan::center(SEED, config.agents, config.queues_per_channel);
        for agent in &planned.agents {
            assert_eq!(world.agents[&agent.id()].profile, agent.profile);
        }
        let mut by_status = BTreeMap::new();
        for conversation in world.conversations.values() {
            *by_status.entry(conversation.status).or_insert(0u64) += 1;
        }
        let closed = by_status
            .get(&ConversationStatus::Closed)
            .copied()
            .unwrap_or(0);
        assert_eq!(world.conversations.len() as u64, c.started);
        assert_eq!(closed, c.handled + c.abandoned, "{by_status:?}");
        let created = log
            .iter()
            .filter(|(_, e)| matches!(e.event.kind, EventKind::ConversationCreated { .. }))
            .count() as u64;
        assert_eq!(created, c.started);
    });
}

#[test]
fn the_same_seed_plans_the_same_center_and_arrivals() {
    let center = plan::center(SEED, 40, 2);
    let again = plan::center(SEED, 40, 2);
    assert_eq!(center.configuration, again.configuration);
    assert_eq!(center.agents, again.agents);
    assert_ne!(plan::center(SEED + 1, 40, 2).agents, center.agents);
    assert_eq!(center.queues.len(), 12);
    assert!(
        center
            .agents
            .iter()
            .all(|a| (2..=4).contains(&a.queues.len())),
        "every agent joins two to four queues"
    );

    let arrivals: Vec<plan::Arrival> = plan::arrivals(SEED, 20.0, &center.queues)
        .take(2_000)
        .collect();
    let replanned: Vec<plan::Arrival> = plan::arrivals(SEED, 20.0, &again.queues)
        .take(2_000)
        .collect();
    assert_eq!(arrivals, replanned);
    let other: Vec<plan::Arrival> = plan::arrivals(SEED + 1, 20.0, &center.queues)
        .take(2_000)
        .collect();
    assert_ne!(arrivals, other);

    // Poisson at 20 a second: 2 000 arrivals take about 100 s; about a quarter ask a skill.
    let last = arrivals.last().expect("arrivals").at.as_secs_f64();
    assert!((85.0..115.0).contains(&last), "{last}");
    assert!(arrivals.windows(2).all(|w| w[0].at <= w[1].at));
    let with_skills = arrivals.iter().filter(|a| !a.skills.is_empty()).count();
    assert!((400..600).contains(&with_skills), "{with_skills}");
    assert!(arrivals.iter().all(|a| a.queue < center.queues.len()));
}
