//! What agents do on their own, between conversations: breaks, dropped connections,
//! sign-outs, and coming back from each.

use omni_core::{AGENT_DISCONNECT_GRACE_SECS, AgentId, Command, Event, PresenceId};

use super::Simulation;
use super::agenda::{Action, AgentAct};
use crate::behaviour::{self, Routine};

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
        let back = match behaviour::routine(&mut self.rng) {
            Routine::Break(presence) => {
                let command = Command::SetPresence { agent, presence };
                if self.exec("set presence", command, out) {
                    Some((behaviour::break_ms(&mut self.rng), AgentAct::BackToWork))
                } else {
                    None
                }
            }
            Routine::Drop => {
                if self.exec("disconnect", Command::Disconnect { agent }, out) {
                    let length = behaviour::drop_length(&mut self.rng);
                    if length.outlasts_grace {
                        // The core must notice when the grace ends.
                        let grace_end = self.engine.now.plus_secs(AGENT_DISCONNECT_GRACE_SECS);
                        self.agenda.push_tick(grace_end);
                    }
                    Some((length.after_ms, AgentAct::Reconnect))
                } else {
                    None
                }
            }
            Routine::SignOut => {
                if self.exec("sign out", Command::SignOut { agent }, out) {
                    Some((behaviour::sign_out_ms(&mut self.rng), AgentAct::SignIn))
                } else {
                    None
                }
            }
            Routine::Nothing => None,
        };
        match back {
            Some((after, act)) => self.schedule(after, Action::Agent { agent, act }),
            None => self.plan_routine(agent),
        }
    }

    fn plan_routine(&mut self, agent: AgentId) {
        let after = behaviour::routine_gap_ms(&mut self.rng);
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
            let after = behaviour::back_from_default_presence_ms(&mut self.rng);
            let act = AgentAct::BackToWork;
            self.schedule(after, Action::Agent { agent, act });
        } else {
            self.plan_routine(agent);
        }
    }
}
