//! A customer: one task per conversation. It asks for an agent, waits as patiently as its
//! channel makes it (and leaves when its patience runs out), says its lines of the handling
//! script (messages, a dropped connection and the return, the ending), writes back to a
//! waiting conversation, and on a pick-mode queue gets a member to pick it.

use std::sync::Arc;
use std::time::Instant;

use omni_core::{Actor, Channel, Command, ConversationId, ConversationStatus, is_eligible};
use omni_sim::behaviour::{self, RETRY_SECS};
use omni_sim::script::Step;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::mpsc;

use crate::plan::Arrival;
use crate::shared::{Agenda, AgentPrompt, CustomerMsg, Sent, Shared, sleep_until};

#[derive(Debug)]
enum Act {
    /// Patience for the wait that began in this phase.
    Patience(u32),
    /// Time for a member of the pick queue to pick it, in this phase.
    Pick(u32),
    /// Back after a dropped connection.
    Return,
    /// Writes to the waiting conversation.
    Reply,
    /// A line that must happen, tried again.
    Line(Step),
}

struct Customer {
    id: ConversationId,
    shared: Arc<Shared>,
    rng: SmallRng,
    channel: Channel,
    pick_mode: bool,
    status: Option<ConversationStatus>,
    /// Bumped on every status change: a patience timer of an earlier phase is stale.
    phase: u32,
    /// Dropped for good: says nothing more.
    gone: bool,
    agenda: Agenda<Act>,
}

/// Plays the customer of `id` (already registered in `shared`) until the conversation closes
/// or the run stops.
pub(crate) async fn run(
    shared: Arc<Shared>,
    id: ConversationId,
    arrival: Arrival,
    mut inbox: mpsc::UnboundedReceiver<CustomerMsg>,
) {
    let spec = shared.queues[arrival.queue].spec;
    let queue = shared.queues[arrival.queue].id;
    let mut customer = Customer {
        id,
        shared: Arc::clone(&shared),
        rng: SmallRng::seed_from_u64(arrival.seed),
        channel: spec.channel,
        pick_mode: spec.mode == omni_core::RoutingMode::Pick,
        status: None,
        phase: 0,
        gone: false,
        agenda: Agenda::default(),
    };
    let start = Command::StartConversation {
        conversation: id,
        queue,
        skills: arrival.skills,
        customer: format!("Customer {}", arrival.number),
    };
    let sent = shared.send(Actor::Customer, start).await;
    {
        let mut conversations = shared.conversations();
        if let Some(t) = conversations.get_mut(&id) {
            t.start_answered = Some(t.sent_at.elapsed());
            t.refused = !sent.ok();
        }
    }
    if !sent.ok() {
        return;
    }
    loop {
        tokio::select! {
            msg = inbox.recv() => match msg {
                None | Some(CustomerMsg::Stop) => return,
                Some(CustomerMsg::Status(ConversationStatus::Closed)) => return,
                Some(CustomerMsg::Status(status)) => customer.status_changed(status),
                Some(CustomerMsg::Line(step)) => customer.line(step).await,
                Some(CustomerMsg::ReplyAfter(ms)) => customer.after(ms, Act::Reply),
            },
            () = sleep_until(customer.agenda.next_at()) => {
                while let Some(act) = customer.agenda.pop_due(Instant::now()) {
                    customer.act(act).await;
                }
            }
        }
    }
}

impl Customer {
    fn after(&mut self, engine_ms: i64, act: Act) {
        let at = Instant::now() + self.shared.scale.wall(engine_ms);
        self.agenda.push(at, act);
    }

    /// Open again (new, or back in a queue): patience starts over, and in a pick queue a
    /// member will pick it.
    fn status_changed(&mut self, status: ConversationStatus) {
        self.status = Some(status);
        self.phase += 1;
        if status == ConversationStatus::Open && !self.gone {
            let patience = behaviour::patience_ms(&mut self.rng, self.channel);
            self.after(patience, Act::Patience(self.phase));
            if self.pick_mode {
                let after = behaviour::pick_after_ms(&mut self.rng);
                self.after(after, Act::Pick(self.phase));
            }
        }
    }

    async fn act(&mut self, act: Act) {
        let open_in_phase = |phase: u32, c: &Customer| {
            c.phase == phase && c.status == Some(ConversationStatus::Open)
        };
        match act {
            Act::Patience(phase) if open_in_phase(phase, self) && !self.gone => self.leave().await,
            Act::Pick(phase) if open_in_phase(phase, self) => {
                self.get_picked();
                // Picked or not, look again later: a pick can be refused in a race.
                self.after(RETRY_SECS * 1000, Act::Pick(phase));
            }
            Act::Patience(_) | Act::Pick(_) => {}
            Act::Return => {
                let command = Command::CustomerReconnect {
                    conversation: self.id,
                };
                if self.send(command).await.ok() {
                    self.count_reconnect();
                }
            }
            Act::Reply => {
                if !self.gone {
                    self.send(Command::CustomerMessage {
                        conversation: self.id,
                    })
                    .await;
                }
            }
            Act::Line(step) => self.line(step).await,
        }
    }

    /// Patience ran out before any agent took the conversation.
    async fn leave(&mut self) {
        if behaviour::leaves_by_dropping(&mut self.rng, self.channel) {
            self.drop_for_good().await;
        } else {
            self.send(Command::CustomerEnd {
                conversation: self.id,
            })
            .await;
        }
    }

    async fn drop_for_good(&mut self) -> bool {
        let command = Command::CustomerDisconnect {
            conversation: self.id,
        };
        let dropped = self.send(command).await.ok();
        if dropped {
            self.gone = true;
            self.count_disconnect();
        }
        dropped
    }

    /// A member of the pick queue who could take it picks it (as its desktop's queue view
    /// shows it).
    fn get_picked(&mut self) {
        let picker = {
            let world = self.shared.world();
            let Some(c) = world.conversations.get(&self.id) else {
                return;
            };
            if c.pending_offer.is_some() {
                return;
            }
            let Some(ws) = world
                .queues
                .get(&c.queue)
                .and_then(|q| world.workstreams.get(&q.config.workstream))
            else {
                return;
            };
            behaviour::pick_member(&world, &mut self.rng, c.queue, |a| is_eligible(a, c, ws))
        };
        if let Some(agent) = picker {
            self.shared.prompt_agent(agent, AgentPrompt::Pick(self.id));
        }
    }

    /// A line of the handling script.
    async fn line(&mut self, step: Step) {
        if self.gone {
            return;
        }
        let done = match step {
            Step::CustomerMessage | Step::CustomerReply => self
                .send(Command::CustomerMessage {
                    conversation: self.id,
                })
                .await
                .ok(),
            Step::CustomerBlip => {
                let command = Command::CustomerDisconnect {
                    conversation: self.id,
                };
                let dropped = self.send(command).await.ok();
                if dropped {
                    self.count_disconnect();
                    let after = behaviour::blip_return_ms(&mut self.rng);
                    self.after(after, Act::Return);
                }
                dropped
            }
            Step::CustomerEnd => self
                .send(Command::CustomerEnd {
                    conversation: self.id,
                })
                .await
                .ok(),
            Step::CustomerDrop => self.drop_for_good().await,
            _ => true,
        };
        if !done && step.must_happen() {
            self.after(RETRY_SECS * 1000, Act::Line(step));
        }
    }

    async fn send(&self, command: Command) -> Sent {
        self.shared.send(Actor::Customer, command).await
    }

    fn count_disconnect(&self) {
        self.shared
            .counters
            .customer_disconnects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn count_reconnect(&self) {
        self.shared
            .counters
            .customer_reconnects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
