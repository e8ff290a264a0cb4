//! What agents do on their own, between conversations: breaks, dropped connections,
//! sign-outs, and coming back from each.

use omni_core::{AGENT_DISCONNECT_GRACE_SECS, AgentId, Command, Event, PresenceId};
use rand::Rng;
use rand::seq::IndexedRandom;

use super::Simulation;
use super::agenda::{Action, AgentAct};
use crate::center;

/// Mean time between two things an agent does on their own (a break, a drop, a sign-out).
const ROUTINE_MEAN_SECS: f64 = 40.0 * 60.0;

impl Simulation {
    /// What an agent does on their own, between conversations.
    pub(super) fn agent_act(&mut self, agent: AgentId, act: AgentAct, out: &mut Vec<Event>) {
        match act {
            AgentAct::Routine => self.routine(agent, out),
            AgentAct::BackToWork => {
                let command = Command::SetPresence {
                    agent,
                    presence: PresenceId::AVAILABLE,
                };
                self.exec("set presence", command, out);
                self.plan_routine(agent);
            }
            AgentAct::Reconnect => {
                let grace_over = self
                    .engine
                    .world
                    .agents
                    .get(&agent)
                    .and_then(|a| a.disconnected)
                    .is_some_and(|d| {
                        self.engine.now >= d.at.plus_secs(AGENT_DISCONNECT_GRACE_SECS)
                    });
                if self.exec("reconnect", Command::Reconnect { agent }, out) {
                    if grace_over {
                        self.stats.reconnects_after_grace += 1;
                    } else {
                        self.stats.reconnects_within_grace += 1;
                    }
                }
                self.after_arrival(agent);
            }
            AgentAct::SignIn => {
                self.exec("sign in", Command::SignIn { agent }, out);
                self.after_arrival(agent);
            }
        }
    }

    /// Breaks, dropped connections and sign-outs, each followed by the return that ends it.
    /// Agents stop once every customer has arrived: the center is closing.
    fn routine(&mut self, agent: AgentId, out: &mut Vec<Event>) {
        if self.created == self.cfg.conversations {
            return;
        }
        // What the agent does, and when and how they come back from it.
        let back = match self.rng.random_range(0..100) {
            0..40 => {
                let choices: Vec<PresenceId> = center::break_presences().collect();
                let presence = *choices.choose(&mut self.rng).unwrap_or(&PresenceId::AWAY);
                let command = Command::SetPresence { agent, presence };
                if self.exec("set presence", command, out) {
                    Some((self.secs(180, 1200), AgentAct::BackToWork))
                } else {
                    None
                }
            }
            40..75 => {
                if !self.exec("disconnect", Command::Disconnect { agent }, out) {
                    None
                } else if self.rng.random_bool(0.25) {
                    // This drop outlasts the grace: the core must notice when it ends.
                    let grace_end = self.engine.now.plus_secs(AGENT_DISCONNECT_GRACE_SECS);
                    self.agenda.push_tick(grace_end);
                    let after = self.secs(AGENT_DISCONNECT_GRACE_SECS + 10, 600);
                    Some((after, AgentAct::Reconnect))
                } else {
                    let after = self.secs(5, AGENT_DISCONNECT_GRACE_SECS - 10);
                    Some((after, AgentAct::Reconnect))
                }
            }
            75..85 => {
                if self.exec("sign out", Command::SignOut { agent }, out) {
                    Some((self.secs(600, 2400), AgentAct::SignIn))
                } else {
                    None
                }
            }
            _ => None,
        };
        match back {
            Some((after, act)) => self.schedule(after, Action::Agent { agent, act }),
            None => self.plan_routine(agent),
        }
    }

    fn plan_routine(&mut self, agent: AgentId) {
        let after = self.exponential_ms(ROUTINE_MEAN_SECS * 1000.0);
        let act = AgentAct::Routine;
        self.schedule(after, Action::Agent { agent, act });
    }

    /// After sign-in or a late reconnect the administrator's default presence may hold the
    /// agent Away: they set themselves Available shortly. Otherwise routines resume.
    pub(super) fn after_arrival(&mut self, agent: AgentId) {
        let away = self.engine.world.agents.get(&agent).is_some_and(|a| {
            a.sticky_presence && !a.presence.base.accepts_transfers_and_consults()
        });
        if away {
            let after = self.secs(60, 300);
            let act = AgentAct::BackToWork;
            self.schedule(after, Action::Agent { agent, act });
        } else {
            self.plan_routine(agent);
        }
    }
}
