//! What the actors of a run share: the bus, the clock's scale, the log as the monitor folded
//! it, the customers' conversations, and the counters.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use omni_bus::Bus;
use omni_core::{Actor, AgentId, Command, ConversationId, StatusReason, Timestamp, World};
use omni_proto::{CommandEnvelope, Outcome};
use omni_sim::center::QueueInfo;
use omni_sim::script::{Plan, Step};
use tokio::sync::mpsc;
use uuid::Uuid;

/// How many times faster than the wall the engine's clock runs; the simulated people keep
/// the same pace, so a 25 s think time is 2.5 s of wall time at 10×.
#[derive(Clone, Copy, Debug)]
pub struct Scale(pub u32);

impl Scale {
    /// The wall time that `engine_ms` of engine time take.
    pub fn wall(self, engine_ms: i64) -> Duration {
        let micros = u64::try_from(engine_ms).unwrap_or(0).saturating_mul(1000);
        Duration::from_micros(micros / u64::from(self.0.max(1)))
    }
}

/// What an actor will do, earliest first; ties in the order they were planned.
#[derive(Debug)]
pub(crate) struct Agenda<A> {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    actions: HashMap<u64, A>,
    seq: u64,
}

impl<A> Default for Agenda<A> {
    fn default() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            actions: HashMap::new(),
            seq: 0,
        }
    }
}

impl<A> Agenda<A> {
    pub fn push(&mut self, at: Instant, action: A) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq)));
        self.actions.insert(self.seq, action);
    }

    pub fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The earliest action if it is due.
    pub fn pop_due(&mut self, now: Instant) -> Option<A> {
        let Reverse((at, seq)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.actions.remove(&seq)
    }
}

/// Sleeps until `at`, or forever when there is nothing planned.
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// What a customer hears.
#[derive(Debug)]
pub(crate) enum CustomerMsg {
    /// The conversation's status changed (as the log says).
    Status(omni_core::ConversationStatus),
    /// A line of the handling script that is the customer's to say or do.
    Line(Step),
    /// The conversation waits for the customer, who writes again after this long (engine ms).
    ReplyAfter(i64),
    /// The run is over.
    Stop,
}

/// What an agent is asked by someone else.
#[derive(Debug)]
pub(crate) enum AgentPrompt {
    /// Pick this conversation from a pick-mode queue.
    Pick(ConversationId),
    /// Leave the consult on this conversation.
    LeaveConsult(ConversationId),
    /// No more customers are coming: no more breaks.
    Drain,
    /// The run is over.
    Stop,
}

/// One customer's conversation, from sending the request to its close.
#[derive(Debug)]
pub(crate) struct Tracked {
    /// Index into the center's queues.
    pub queue: usize,
    pub plan: Plan,
    pub customer: mpsc::UnboundedSender<CustomerMsg>,
    /// When StartConversation was sent.
    pub sent_at: Instant,
    /// From sending StartConversation to its answer.
    pub start_answered: Option<Duration>,
    /// From sending StartConversation to the first offer push routing made (not a pick,
    /// a transfer or a supervisor's assignment) arriving on the agent's desktop.
    pub first_offer: Option<Duration>,
    /// Whether someone could take it the moment it was created (the router offers it at once).
    pub routable_on_arrival: Option<bool>,
    pub created_at: Option<Timestamp>,
    /// The first accept (or pick, or resume) by an agent.
    pub accepted_at: Option<Timestamp>,
    pub closed: Option<(Timestamp, StatusReason)>,
    /// The request was refused (or never answered).
    pub refused: bool,
}

/// Counters of a run, updated by every actor.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub commands: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    /// Commands that got no answer even after the bus's retries.
    pub unanswered: AtomicU64,
    pub offers: AtomicU64,
    pub offers_rejected: AtomicU64,
    pub offers_timed_out: AtomicU64,
    pub offers_withdrawn: AtomicU64,
    pub offers_ignored: AtomicU64,
    pub transfers_to_agent: AtomicU64,
    pub transfers_to_queue: AtomicU64,
    pub consults: AtomicU64,
    pub holds: AtomicU64,
    pub customer_disconnects: AtomicU64,
    pub customer_reconnects: AtomicU64,
    pub agent_disconnects: AtomicU64,
    pub presence_changes: AtomicU64,
    pub events: AtomicU64,
    /// The last log position the monitor folded.
    pub position: AtomicU64,
}

/// How a command fared.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum Sent {
    Accepted,
    Rejected(String),
    /// No answer, even after retrying.
    Unanswered,
}

impl Sent {
    pub fn ok(&self) -> bool {
        *self == Sent::Accepted
    }
}

/// Everything the actors of one run share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub bus: Bus,
    pub scale: Scale,
    pub queues: Vec<QueueInfo>,
    /// The log folded by the monitor: what desktops and supervisors would see through the
    /// projector's queries (who is free for a transfer, what waits in a pick queue).
    pub world: RwLock<World>,
    pub conversations: Mutex<HashMap<ConversationId, Tracked>>,
    pub agents: HashMap<AgentId, mpsc::UnboundedSender<AgentPrompt>>,
    pub counters: Counters,
    /// Refused commands by command name.
    pub rejections: Mutex<BTreeMap<&'static str, u64>>,
    /// Set while customers arrive and agents drain: utilisation is sampled then.
    pub sampling: AtomicBool,
}

impl Shared {
    pub fn world(&self) -> RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn conversations(&self) -> MutexGuard<'_, HashMap<ConversationId, Tracked>> {
        self.conversations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a command as `actor` and counts the outcome. Refusals are normal (someone else
    /// was faster, the customer left meanwhile): they are counted by command, not raised.
    pub async fn send(&self, actor: Actor, command: Command) -> Sent {
        let name = omni_proto::command_name(&command);
        let envelope = CommandEnvelope {
            command_id: Uuid::now_v7(),
            actor,
            correlation_id: None,
            command,
        };
        self.counters.commands.fetch_add(1, Relaxed);
        match self.bus.command(&envelope).await {
            Ok(Outcome::Accepted { .. }) => {
                self.counters.accepted.fetch_add(1, Relaxed);
                Sent::Accepted
            }
            Ok(Outcome::Rejected { reason, .. }) => {
                self.counters.rejected.fetch_add(1, Relaxed);
                *self
                    .rejections
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(name)
                    .or_default() += 1;
                tracing::debug!(command = name, %reason, "refused");
                Sent::Rejected(reason)
            }
            Err(e) => {
                self.counters.unanswered.fetch_add(1, Relaxed);
                tracing::warn!(command = name, error = %e, "no answer");
                Sent::Unanswered
            }
        }
    }

    /// A desktop was offered `conversation`: the first offer of a customer's conversation
    /// ends its intake-to-offer latency.
    pub fn note_offer(&self, conversation: ConversationId) {
        if let Some(t) = self.conversations().get_mut(&conversation) {
            if t.first_offer.is_none() {
                t.first_offer = Some(t.sent_at.elapsed());
            }
        }
    }

    /// Hands a line to the customer of `conversation`, if it is one of this run's.
    pub fn tell_customer(&self, conversation: ConversationId, msg: CustomerMsg) {
        if let Some(t) = self.conversations().get(&conversation) {
            let _ = t.customer.send(msg);
        }
    }

    pub fn prompt_agent(&self, agent: AgentId, prompt: AgentPrompt) {
        if let Some(inbox) = self.agents.get(&agent) {
            let _ = inbox.send(prompt);
        }
    }
}
