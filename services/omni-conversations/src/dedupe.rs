//! Idempotency by command id: a retried command gets the first answer, and a retry that
//! arrives while the first attempt is still being stored waits for it.

use std::collections::{HashMap, VecDeque};

use async_nats::Subject;
use bytes::Bytes;
use uuid::Uuid;

#[derive(Debug)]
enum Entry {
    /// Decided, not yet durable: retries waiting for the answer.
    InFlight(Vec<Subject>),
    /// The encoded accepted reply (with `replayed` set).
    Done(Bytes),
}

/// What to do with a command id.
#[derive(Debug)]
pub enum Seen {
    New,
    /// Answer with these bytes.
    Answered(Bytes),
    /// The first attempt is in flight; the reply subject was queued.
    Waiting,
}

/// The last `capacity` accepted command ids. Rejected commands are not remembered: a retry
/// is decided afresh, which gives the same rejection or, if things changed, a better answer.
#[derive(Debug)]
pub struct Dedupe {
    entries: HashMap<Uuid, Entry>,
    order: VecDeque<Uuid>,
    capacity: usize,
}

impl Dedupe {
    pub fn new(capacity: usize) -> Dedupe {
        Dedupe {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Looks `id` up; a new id is marked in flight.
    pub fn check(&mut self, id: Uuid, reply: Option<&Subject>) -> Seen {
        match self.entries.get_mut(&id) {
            Some(Entry::Done(bytes)) => Seen::Answered(bytes.clone()),
            Some(Entry::InFlight(waiting)) => {
                waiting.extend(reply.cloned());
                Seen::Waiting
            }
            None => {
                self.entries.insert(id, Entry::InFlight(Vec::new()));
                self.order.push_back(id);
                while self.order.len() > self.capacity {
                    if let Some(old) = self.order.pop_front() {
                        self.entries.remove(&old);
                    }
                }
                Seen::New
            }
        }
    }

    /// The command was accepted and stored: remember its replayed answer and return the
    /// retries that waited for it.
    pub fn done(&mut self, id: Uuid, replayed_reply: Bytes) -> Vec<Subject> {
        match self.entries.insert(id, Entry::Done(replayed_reply)) {
            Some(Entry::InFlight(waiting)) => waiting,
            _ => Vec::new(),
        }
    }

    /// The command was rejected or could not be stored: forget it, returning waiting retries.
    pub fn forget(&mut self, id: Uuid) -> Vec<Subject> {
        match self.entries.remove(&id) {
            Some(Entry::InFlight(waiting)) => waiting,
            _ => Vec::new(),
        }
    }

    /// Remembers an answer found in the log at start-up.
    pub fn remember(&mut self, id: Uuid, replayed_reply: Bytes) {
        if self
            .entries
            .insert(id, Entry::Done(replayed_reply))
            .is_none()
        {
            self.order.push_back(id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }
}
